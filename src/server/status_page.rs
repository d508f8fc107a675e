//! The status page: server-rendered HTML with inline SVG charts (`server::svg`), an overview at
//! `/`, a page per probe at `/probes/{name}` and per SLO at `/slos/{name}`. Every dynamic text is
//! escaped, and every evidence or target text passes the config's redactor once more on the way
//! out. A small script refetches the page every 5 seconds and swaps `<main>`, so the scroll
//! position stays; without script, a `<noscript>` meta refresh does the same job less smoothly.

mod overview_page;
mod probe_page;
mod slo_page;

pub use overview_page::{overview, render_overview, OverviewQuery, SloRow};
pub use probe_page::{probe, render_probe};
pub use slo_page::{render_slo, slo, SloView};

use std::fmt::Write as _;

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use vantage_probes::Redactor;

use crate::daemon::history::{Failure, RunPoint, UPTIME_SPANS};
use crate::daemon::store::ProbeState;

pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encode one path segment or query value.
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn pct(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{:.*}%", digits, v * 100.0),
        _ => "–".into(),
    }
}

fn uptime_class(v: Option<f64>) -> &'static str {
    match v {
        Some(v) if v >= 0.999 => "good",
        Some(v) if v >= 0.99 => "fair",
        Some(_) => "poor",
        None => "unknown",
    }
}

/// One probe, read under its lock and then rendered without it.
struct ProbeView {
    name: String,
    kind: &'static str,
    target: String,
    labels: Vec<(String, String)>,
    runs: Vec<RunPoint>,
    uptime: [Option<f64>; 3],
    cert_days: Option<f64>,
    last_failure: Option<Failure>,
    up: Option<bool>,
    last_reason: Option<&'static str>,
}

impl ProbeView {
    fn of(p: &ProbeState, now_ms: i64, redactor: &Redactor) -> Self {
        let meta = p.meta();
        let r = p.record();
        let t = &r.timeline;
        let now = now_ms.div_euclid(1000);
        let last = r.last.as_ref();
        Self {
            name: p.name.clone(),
            kind: meta.kind.as_str(),
            target: redactor.redact(&meta.target).into_owned(),
            labels: meta.labels.clone(),
            runs: t.runs.iter().copied().collect(),
            uptime: UPTIME_SPANS.map(|(_, s)| t.uptime(now, s)),
            cert_days: last.and_then(|l| l.outcome.cert_days_remaining(now)),
            last_failure: t.failures.back().map(|f| Failure {
                evidence: redactor.redact(&f.evidence).into_owned(),
                ..f.clone()
            }),
            up: last.map(|l| l.outcome.success()),
            last_reason: last.and_then(|l| l.outcome.reason).map(|x| x.as_str()),
        }
    }

    fn state(&self) -> (&'static str, String) {
        match self.up {
            Some(true) => ("up", "UP".into()),
            Some(false) => (
                "down",
                format!("DOWN ({})", self.last_reason.unwrap_or("failure")),
            ),
            None => ("pending", "PENDING".into()),
        }
    }

    fn matches(&self, q: &str) -> bool {
        let q = q.to_lowercase();
        self.name.to_lowercase().contains(&q)
            || self.target.to_lowercase().contains(&q)
            || self.kind.contains(&q)
            || self
                .labels
                .iter()
                .any(|(k, v)| format!("{k}={v}").to_lowercase().contains(&q))
    }
}

fn firing_of(rep: Option<&vantage_slo::Report>) -> Vec<String> {
    rep.map(|x| {
        x.firing_severities()
            .into_iter()
            .map(str::to_owned)
            .collect()
    })
    .unwrap_or_default()
}

const STYLE: &str = r#"
:root { color-scheme: light dark; --bg:#f6f7f9; --fg:#1c1d21; --muted:#686b75; --card:#fff; --line:#e2e4e9;
  --ok:#1f9d55; --bad:#d64045; --warn:#c98500; --none:#d6d8de; --accent:#2f6fd6;
  --ph0:#8e7cc3; --ph1:#4f9dd9; --ph2:#2fb3a6; --ph3:#e0a030; --ph4:#d9667b; --ph5:#a3a6b0; }
@media (prefers-color-scheme: dark) { :root { --bg:#121317; --fg:#e6e7ec; --muted:#9a9caa; --card:#1c1d23;
  --line:#30323b; --ok:#3ccf7a; --bad:#ff6b6f; --warn:#f0b43c; --none:#3a3d48; --accent:#6ea0ff; } }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; background: var(--bg); color: var(--fg); }
header, main, footer { max-width: 1200px; margin: 0 auto; padding: 0 16px; }
header { padding-top: 18px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 26px 0 8px; }
a { color: var(--accent); text-decoration: none; } a:hover { text-decoration: underline; }
.muted, .axis { color: var(--muted); fill: var(--muted); }
.summary { margin: 0 0 10px; }
form.filter { display: flex; flex-wrap: wrap; gap: 8px; margin: 8px 0 4px; }
form.filter input, form.filter select, form.filter button { font: inherit; padding: 5px 8px; border: 1px solid var(--line);
  border-radius: 6px; background: var(--card); color: var(--fg); }
.wrap { overflow-x: auto; background: var(--card); border: 1px solid var(--line); border-radius: 10px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 7px 10px; border-bottom: 1px solid var(--line); vertical-align: middle; white-space: nowrap; }
th { font-weight: 600; color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .03em; }
tr:last-child td { border-bottom: 0; }
td.wrapok, td.evidence { white-space: normal; overflow-wrap: anywhere; min-width: 14em; max-width: 24em; }
.evidence, pre, code { font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; font-size: 12px; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; margin: 4px 0 0; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 999px; font-weight: 600; font-size: 12px; }
.badge.up { background: color-mix(in srgb, var(--ok) 18%, transparent); color: var(--ok); }
.badge.down { background: color-mix(in srgb, var(--bad) 18%, transparent); color: var(--bad); }
.badge.pending { background: color-mix(in srgb, var(--muted) 18%, transparent); color: var(--muted); }
.good { color: var(--ok); } .fair { color: var(--warn); } .poor { color: var(--bad); } .unknown { color: var(--muted); }
svg .ok { fill: var(--ok); } svg .bad { fill: var(--bad); } svg .none { fill: var(--none); }
svg.spark path { fill: none; stroke: var(--accent); stroke-width: 1.6; }
svg.spark line.empty { stroke: var(--none); stroke-dasharray: 3 3; }
svg.chart { display: block; width: 100%; height: auto; background: var(--card); border: 1px solid var(--line); border-radius: 10px; }
svg.chart text { font-size: 12px; }
svg .grid { stroke: var(--line); stroke-width: 1; }
svg .line { fill: none; stroke: var(--accent); stroke-width: 2; vector-effect: non-scaling-stroke; }
svg .ref { stroke-width: 1.5; stroke-dasharray: 5 4; vector-effect: non-scaling-stroke; }
svg .ref.target { stroke: var(--ok); } svg .ref.limit { stroke: var(--bad); }
svg text.target { fill: var(--ok); } svg text.limit { fill: var(--bad); }
svg.burn .track { fill: var(--none); } svg.burn .threshold { stroke: var(--fg); stroke-width: 2; }
.ph0 { fill: var(--ph0); background: var(--ph0); } .ph1 { fill: var(--ph1); background: var(--ph1); }
.ph2 { fill: var(--ph2); background: var(--ph2); } .ph3 { fill: var(--ph3); background: var(--ph3); }
.ph4 { fill: var(--ph4); background: var(--ph4); } .ph5 { fill: var(--ph5); background: var(--ph5); }
i.sw.bad { background: var(--bad); }
ul.legend { list-style: none; display: flex; flex-wrap: wrap; gap: 12px; padding: 0; margin: 6px 0; color: var(--muted); font-size: 12px; }
i.sw { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 5px; vertical-align: -1px; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 10px; margin-top: 12px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 10px 12px; }
.card .k { color: var(--muted); font-size: 12px; } .card .v { font-size: 20px; font-weight: 600; }
.group-h { display: flex; align-items: baseline; gap: 10px; }
footer { color: var(--muted); padding-top: 24px; padding-bottom: 24px; font-size: 12px; }
@media (max-width: 700px) { body { font-size: 13px; } .hide-s { display: none; } th, td { padding: 6px 7px; }
  svg.history { width: 150px; } svg.chart text { font-size: 22px; } td.evidence { min-width: 0; }
  td.evidence .evidence, td.evidence br { display: none; } }
"#;

/// Refetch every 5 s and swap `<main>`: the scroll position and the filter form stay.
const SCRIPT: &str = r#"(function(){var b=document.body;
function swap(t){var d=new DOMParser().parseFromString(t,"text/html");var m=d.querySelector("main");var o=document.querySelector("main");
if(m&&o){o.replaceWith(document.adoptNode(m));document.title=d.title;b.setAttribute("data-refreshed",String(Date.now()));}}
setInterval(function(){if(document.hidden)return;fetch(location.href,{cache:"no-store",credentials:"same-origin"})
.then(function(r){return r.ok?r.text():null}).then(function(t){if(t)swap(t)}).catch(function(){});},5000);
b.setAttribute("data-ok","1");})();"#;

fn page(title: &str, header: &str, main: &str, root: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<noscript><meta http-equiv="refresh" content="10"></noscript>
<title>{title}</title>
<style>{STYLE}</style></head>
<body>
<header>{header}</header>
<main>
{main}</main>
<footer>vantage · refreshes every 5 s · <a href="{root}metrics">/metrics</a> · <a href="{root}api/v1/probes">/api/v1/probes</a> · <a href="{root}api/v1/slos">/api/v1/slos</a></footer>
<script>{SCRIPT}</script>
</body></html>
"#,
        title = esc(title),
    )
}

fn latency_values(runs: &[RunPoint]) -> Vec<f64> {
    runs.iter()
        .map(|r| f64::from(r.duration_us) / 1e6)
        .collect()
}

fn cert_cell(days: Option<f64>) -> String {
    match days {
        Some(d) if d < 0.0 => format!("<span class=\"poor\">expired {:.0} d ago</span>", -d),
        Some(d) => {
            let class = if d < 7.0 {
                "poor"
            } else if d < 21.0 {
                "fair"
            } else {
                "good"
            };
            format!("<span class=\"{class}\">{d:.0} d</span>")
        }
        None => "<span class=\"unknown\">–</span>".into(),
    }
}

fn card(k: &str, v: &str, class: &str) -> String {
    format!(
        "<div class=\"card\"><div class=\"k\">{}</div><div class=\"v {class}\">{v}</div></div>",
        esc(k)
    )
}

fn not_found(what: &str, name: &str) -> Response {
    let body = page(
        "vantage: not found",
        "<p><a href=\"../\">← overview</a></p><h1>Not found</h1>",
        &format!("<p>No {what} named <code>{}</code>.</p>\n", esc(name)),
        "../",
    );
    (StatusCode::NOT_FOUND, Html(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_html() {
        assert_eq!(esc("<script>\"&'"), "&lt;script&gt;&quot;&amp;&#39;");
    }

    #[test]
    fn encodes_path_segments() {
        assert_eq!(enc("a b/c?d#e"), "a%20b%2Fc%3Fd%23e");
        assert_eq!(enc("api-v1.x_~"), "api-v1.x_~");
    }
}
