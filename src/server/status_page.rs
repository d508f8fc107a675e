//! The status page: server-rendered HTML with inline SVG charts (`server::svg`), an overview at
//! `/`, a page per probe at `/probes/{name}` and per SLO at `/slos/{name}`. Every dynamic text is
//! escaped, and every evidence or target text passes the config's redactor once more on the way
//! out. A small script refetches the page every 5 seconds and swaps `<main>`, so the scroll
//! position stays; without script, a `<noscript>` meta refresh does the same job less smoothly.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use vantage_probes::{Redactor, TlsFacts};

use crate::daemon::history::{Failure, Incident, RunPoint, SloSample, UPTIME_SPANS};
use crate::daemon::store::ProbeState;
use crate::server::svg::{self as svg, dur, span, utc, Reference};
use crate::server::App;

/// Runs drawn in the overview's history bar.
const BAR_RUNS: usize = 40;
/// Longest filter text honoured.
const QUERY_MAX: usize = 200;

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

/// The overview's query: `?group=<label>&q=<filter>`.
#[derive(Debug, Default, Deserialize)]
pub struct OverviewQuery {
    pub group: Option<String>,
    pub q: Option<String>,
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
            labels: meta.labels,
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

/// One SLO's line on the overview.
pub struct SloRow {
    name: String,
    objective: f64,
    period: String,
    sli: Option<f64>,
    remaining: Option<f64>,
    burn_5m: Option<f64>,
    burn_1h: Option<f64>,
    firing: Vec<String>,
    remaining_history: Vec<f64>,
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

impl SloRow {
    pub fn of(r: &crate::daemon::evaluator::Runtime) -> Self {
        let rep = r.report.as_ref();
        let burn = |name: &str| {
            rep.and_then(|x| x.windows.iter().find(|w| &*w.name == name))
                .and_then(|w| w.burn_rate)
        };
        Self {
            name: r.config.name.clone(),
            objective: r.config.spec.objective.percent(),
            period: r.slo.period_name(),
            sli: rep.and_then(|x| x.period.sli),
            remaining: rep.and_then(|x| x.budget_remaining),
            burn_5m: burn("5m"),
            burn_1h: burn("1h"),
            firing: firing_of(rep),
            remaining_history: r
                .history
                .points()
                .iter()
                .map(|s| f64::from(s.remaining))
                .collect(),
        }
    }
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

fn probe_rows(views: &[&ProbeView], now_ms: i64) -> String {
    let mut rows = String::new();
    for v in views {
        let (class, state) = v.state();
        let lat = latency_values(&v.runs);
        let last_lat = lat.last().map(|s| dur(*s)).unwrap_or_else(|| "–".into());
        let mut up = String::new();
        for (i, u) in v.uptime.iter().enumerate() {
            let hide = if i == 1 { " hide-s" } else { "" };
            let _ = write!(
                up,
                "<td class=\"uptime {}{hide}\">{}</td>",
                uptime_class(*u),
                pct(*u, 2)
            );
        }
        let failure = match &v.last_failure {
            Some(f) => format!(
                "<b>{}</b> {} ago<br><span class=\"evidence\">{}</span>",
                esc(f.reason.map_or("failed", |r| r.as_str())),
                svg::between(f.at, now_ms),
                esc(&crate::daemon::history::truncate(&f.evidence, 90))
            ),
            None => "<span class=\"muted\">none</span>".into(),
        };
        let _ = writeln!(
            rows,
            "<tr class=\"probe {class}\" data-probe=\"{name}\"><td><a href=\"probes/{link}\"><b>{name}</b></a><br><span class=\"muted\">{kind}</span></td>\
             <td><span class=\"badge {class} state\">{state}</span></td><td>{bar}</td><td class=\"hide-s\">{spark}<br><span class=\"muted\">last {last_lat}</span></td>{up}<td>{cert}</td><td class=\"evidence\">{failure}</td></tr>",
            name = esc(&v.name),
            link = enc(&v.name),
            kind = v.kind,
            state = esc(&state),
            bar = svg::history_bar(&v.runs, BAR_RUNS, now_ms),
            spark = svg::sparkline(&lat, "latency", "latency of recent runs"),
            cert = cert_cell(v.cert_days),
        );
    }
    rows
}

fn probe_table(views: &[&ProbeView], now_ms: i64) -> String {
    format!(
        "<div class=\"wrap\"><table class=\"probes\">\n<thead><tr><th>probe</th><th>state</th><th>last {BAR_RUNS} runs</th><th class=\"hide-s\">latency</th><th>24h</th><th class=\"hide-s\">7d</th><th>30d</th><th>cert</th><th>last failure</th></tr></thead>\n<tbody>\n{}</tbody></table></div>\n",
        probe_rows(views, now_ms)
    )
}

fn slo_table(slos: &[&SloRow]) -> String {
    if slos.is_empty() {
        return String::new();
    }
    let mut rows = String::new();
    for s in slos {
        let (class, firing) = if s.firing.is_empty() {
            ("up", "<span class=\"badge up\">ok</span>".to_string())
        } else {
            (
                "down",
                format!(
                    "<span class=\"badge down\">{}</span>",
                    esc(&s.firing.join(", "))
                ),
            )
        };
        let remaining_class = match s.remaining {
            Some(r) if r > 0.5 => "good",
            Some(r) if r > 0.0 => "fair",
            Some(_) => "poor",
            None => "unknown",
        };
        let _ = writeln!(
            rows,
            "<tr class=\"slo {class}\"><td><a href=\"slos/{link}\"><b>{name}</b></a><br><span class=\"muted\">{obj}% / {period}</span></td><td>{sli}</td>\
             <td class=\"{remaining_class}\"><b>{rem}</b></td><td>{spark}</td><td>{b5}</td><td class=\"hide-s\">{b1}</td><td>{firing}</td></tr>",
            name = esc(&s.name),
            link = enc(&s.name),
            obj = s.objective,
            period = esc(&s.period),
            sli = pct(s.sli, 3),
            rem = pct(s.remaining, 1),
            spark = svg::sparkline(&s.remaining_history, "budget", "error budget remaining over time"),
            b5 = s.burn_5m.map_or("–".into(), |v| format!("{v:.2}×")),
            b1 = s.burn_1h.map_or("–".into(), |v| format!("{v:.2}×")),
        );
    }
    format!(
        "<h2>SLOs</h2>\n<div class=\"wrap\"><table class=\"slos\">\n<thead><tr><th>slo</th><th>SLI (period)</th><th>budget left</th><th>burn-down</th><th>burn 5m</th><th class=\"hide-s\">burn 1h</th><th>alerts</th></tr></thead>\n<tbody>\n{rows}</tbody></table></div>\n"
    )
}

/// The overview for these probes and SLOs at `now_ms`, grouped by the label `group` and
/// filtered by `q` when given.
pub fn render_overview(
    probes: &[Arc<ProbeState>],
    slos: &[SloRow],
    now_ms: i64,
    query: &OverviewQuery,
    redactor: &Redactor,
) -> String {
    let q = query
        .q
        .as_deref()
        .map(|q| crate::daemon::history::truncate(q.trim(), QUERY_MAX))
        .filter(|q| !q.is_empty());
    let group = query.group.as_deref().filter(|g| !g.is_empty());
    let views: Vec<ProbeView> = probes
        .iter()
        .map(|p| ProbeView::of(p, now_ms, redactor))
        .collect();
    let up = views.iter().filter(|v| v.up == Some(true)).count();
    let down = views.iter().filter(|v| v.up == Some(false)).count();
    let shown: Vec<&ProbeView> = views
        .iter()
        .filter(|v| q.as_deref().is_none_or(|q| v.matches(q)))
        .collect();
    let mut keys: Vec<&str> = views
        .iter()
        .flat_map(|v| v.labels.iter().map(|(k, _)| k.as_str()))
        .collect();
    keys.sort_unstable();
    keys.dedup();

    let mut main = String::new();
    if shown.is_empty() {
        main.push_str("<p class=\"muted empty\">No probe matches.</p>\n");
    }
    match group {
        None => {
            if !shown.is_empty() {
                main.push_str("<h2>Probes</h2>\n");
                main.push_str(&probe_table(&shown, now_ms));
            }
        }
        Some(key) => {
            let mut groups: std::collections::BTreeMap<Option<&str>, Vec<&ProbeView>> =
                Default::default();
            for v in &shown {
                let value = v
                    .labels
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v.as_str());
                groups.entry(value).or_default().push(v);
            }
            for (value, members) in groups {
                let n_up = members.iter().filter(|v| v.up == Some(true)).count();
                let title = match value {
                    Some(v) => format!("{key}={v}"),
                    None => format!("no {key} label"),
                };
                let _ = writeln!(
                    main,
                    "<h2 class=\"group-h group\">{} <span class=\"muted\">{n_up}/{} up</span></h2>",
                    esc(&title),
                    members.len()
                );
                main.push_str(&probe_table(&members, now_ms));
            }
        }
    }
    let slos: Vec<&SloRow> = slos
        .iter()
        .filter(|s| {
            q.as_deref()
                .is_none_or(|q| s.name.to_lowercase().contains(&q.to_lowercase()))
        })
        .collect();
    main.push_str(&slo_table(&slos));

    let mut options = String::from("<option value=\"\">no grouping</option>");
    for k in &keys {
        let sel = if Some(*k) == group { " selected" } else { "" };
        let _ = write!(
            options,
            "<option value=\"{k}\"{sel}>group by {k}</option>",
            k = esc(k)
        );
    }
    let firing = slos.iter().filter(|s| !s.firing.is_empty()).count();
    let header = format!(
        "<h1>vantage</h1><p class=\"summary\"><b>{up}</b> of {total} probes up{down_text} · {n_slo} SLOs{firing_text} · {now}</p>\
         <form class=\"filter\" method=\"get\"><input type=\"search\" name=\"q\" placeholder=\"filter: name, target, label\" value=\"{q}\" aria-label=\"filter\">\
         <select name=\"group\" aria-label=\"group by\">{options}</select><button type=\"submit\">apply</button></form>",
        total = views.len(),
        down_text = if down > 0 {
            format!(", <span class=\"poor\">{down} down</span>")
        } else {
            String::new()
        },
        n_slo = slos.len(),
        firing_text = if firing > 0 {
            format!(", <span class=\"poor\">{firing} alerting</span>")
        } else {
            String::new()
        },
        now = utc(now_ms),
        q = esc(q.as_deref().unwrap_or_default()),
    );
    page(
        &format!("vantage: {up}/{} up", views.len()),
        &header,
        &main,
        "",
    )
}

fn incident_rows(incidents: &[Incident], now_ms: i64, redactor: &Redactor) -> String {
    let mut rows = String::new();
    for i in incidents.iter().rev() {
        let (end, length) = match i.end {
            Some(e) => (utc(e), svg::between(i.start, e)),
            None => (
                "<span class=\"badge down\">ongoing</span>".into(),
                svg::between(i.start, now_ms),
            ),
        };
        let _ = writeln!(
            rows,
            "<tr class=\"incident\"><td>{}</td><td>{end}</td><td>{length}</td><td>{}</td><td>{}</td><td class=\"evidence\">{}</td></tr>",
            utc(i.start),
            i.failed_runs,
            esc(i.reason.map_or("failed", |r| r.as_str())),
            esc(&redactor.redact(&i.evidence)),
        );
    }
    rows
}

fn cert_section(tls: &TlsFacts, now: i64, redactor: &Redactor) -> String {
    let days = tls.days_left(now);
    let verdict_class = if tls.verify_result == vantage_probes::VerifyResult::Ok {
        "up"
    } else {
        "down"
    };
    let mut out = format!(
        "<div class=\"cards cert\"><div class=\"card\"><div class=\"k\">verdict</div><div class=\"v\"><span class=\"badge {verdict_class}\">{}</span></div></div>\
         <div class=\"card\"><div class=\"k\">effective expiry</div><div class=\"v\">{}</div><div class=\"muted\">{}</div></div>\
         <div class=\"card\"><div class=\"k\">leaf expiry</div><div class=\"v\">{:.0} d</div></div>\
         <div class=\"card\"><div class=\"k\">TLS</div><div class=\"v\">{}</div><div class=\"muted\">{}</div></div></div>\n",
        tls.verify_result.as_str(),
        cert_cell(Some(days)),
        utc(tls.effective_not_after.saturating_mul(1000)),
        (tls.leaf_not_after - now) as f64 / 86_400.0,
        esc(&tls.version),
        esc(&tls.cipher),
    );
    if let Some(d) = &tls.verify_detail {
        let _ = writeln!(
            out,
            "<pre class=\"evidence\">{}</pre>",
            esc(&redactor.redact(d))
        );
    }
    out.push_str("<div class=\"wrap\"><table class=\"chain\"><thead><tr><th>#</th><th>subject</th><th>issuer</th><th>not after</th><th>SANs</th></tr></thead><tbody>\n");
    for (i, c) in tls.chain.iter().enumerate() {
        let _ = writeln!(
            out,
            "<tr><td>{i}</td><td class=\"wrapok\">{}</td><td class=\"wrapok\">{}</td><td>{}</td><td class=\"wrapok\">{}</td></tr>",
            esc(&c.subject),
            esc(&c.issuer),
            utc(c.not_after.saturating_mul(1000)),
            esc(&c.sans.join(", "))
        );
    }
    out.push_str("</tbody></table></div>\n");
    out
}

fn card(k: &str, v: &str, class: &str) -> String {
    format!(
        "<div class=\"card\"><div class=\"k\">{}</div><div class=\"v {class}\">{v}</div></div>",
        esc(k)
    )
}

/// The page of one probe.
pub fn render_probe(p: &ProbeState, slos: &[String], now_ms: i64, redactor: &Redactor) -> String {
    let v = ProbeView::of(p, now_ms, redactor);
    let r = p.record();
    let t = &r.timeline;
    let now = now_ms.div_euclid(1000);
    let (class, state) = v.state();
    let labels: Vec<String> = v
        .labels
        .iter()
        .map(|(k, val)| format!("<code>{}={}</code>", esc(k), esc(val)))
        .collect();
    let header = format!(
        "<p><a href=\"../\">← all probes</a></p><h1>{name} <span class=\"badge {class} state\">{state}</span></h1>\
         <p class=\"muted\">{kind} · <code>{target}</code> {labels}</p>",
        name = esc(&v.name),
        state = esc(&state),
        kind = v.kind,
        target = esc(&v.target),
        labels = labels.join(" "),
    );
    let mut main = String::from("<div class=\"cards\">");
    for ((name, _), u) in UPTIME_SPANS.iter().zip(v.uptime) {
        main.push_str(&card(
            &format!("uptime {name}"),
            &pct(u, 3),
            uptime_class(u),
        ));
    }
    let q = |w: usize, i: usize| r.quantiles[w][i].map_or("–".into(), dur);
    main.push_str(&card(
        "p50 / p99 (1h)",
        &format!("{} / {}", q(1, 0), q(1, 2)),
        "",
    ));
    main.push_str(&card("certificate", &cert_cell(v.cert_days), ""));
    main.push_str(&card(
        "runs ok / failed",
        &format!("{} / {}", r.runs_success, r.runs_failure),
        "",
    ));
    main.push_str("</div>\n<h2>Latency by phase</h2>\n");
    main.push_str(&svg::latency_chart(&v.runs));
    main.push_str(&svg::phase_legend());
    let _ = writeln!(
        main,
        "<h2>Run history</h2>\n<p>{}</p>",
        svg::history_bar(&v.runs, crate::daemon::history::RUNS, now_ms)
    );
    main.push_str("<div class=\"wrap\"><table class=\"runs\"><thead><tr><th>ended</th><th>result</th><th>status</th><th>duration</th><th class=\"hide-s\">phases</th></tr></thead><tbody>\n");
    for run in t.runs.iter().rev().take(20) {
        let result = if run.success {
            "<span class=\"badge up\">ok</span>".to_string()
        } else {
            format!(
                "<span class=\"badge down\">{}</span>",
                run.reason.map_or("failed", |x| x.as_str())
            )
        };
        let phases: Vec<String> = svg::PHASES
            .iter()
            .zip(run.phases_us)
            .filter(|(_, us)| *us > 0)
            .map(|(n, us)| format!("{n} {}", dur(f64::from(us) / 1e6)))
            .collect();
        let _ = writeln!(
            main,
            "<tr><td>{} <span class=\"muted\">({} ago)</span></td><td>{result}</td><td>{}</td><td>{}</td><td class=\"hide-s muted\">{}</td></tr>",
            utc(run.at_ms),
            svg::between(run.at_ms, now_ms),
            run.status.map_or("–".into(), |s| s.to_string()),
            dur(f64::from(run.duration_us) / 1e6),
            phases.join(" · ")
        );
    }
    main.push_str("</tbody></table></div>\n<h2>Incidents</h2>\n");
    let incidents: Vec<Incident> = t.incidents.iter().cloned().collect();
    if incidents.is_empty() {
        main.push_str("<p class=\"muted\">No incident recorded.</p>\n");
    } else {
        let _ = writeln!(
            main,
            "<div class=\"wrap\"><table class=\"incidents\"><thead><tr><th>down since</th><th>up again</th><th>lasted</th><th>failed runs</th><th>reason</th><th>evidence</th></tr></thead><tbody>\n{}</tbody></table></div>",
            incident_rows(&incidents, now_ms, redactor)
        );
    }
    main.push_str("<h2>Recent failures</h2>\n");
    if t.failures.is_empty() {
        main.push_str("<p class=\"muted\">No failure recorded.</p>\n");
    }
    for f in t.failures.iter().rev() {
        let _ = writeln!(
            main,
            "<div class=\"card failure\"><b>{}</b> <span class=\"muted\">{} · {} ago · status {} · {}</span><pre class=\"evidence\">{}</pre></div>",
            esc(f.reason.map_or("failed", |x| x.as_str())),
            utc(f.at),
            svg::between(f.at, now_ms),
            f.status.map_or("–".into(), |s| s.to_string()),
            dur(f64::from(f.duration_us) / 1e6),
            esc(&redactor.redact(&f.evidence))
        );
    }
    if let Some(tls) = r.last.as_ref().and_then(|l| l.outcome.facts.tls()) {
        main.push_str("<h2>Certificate</h2>\n");
        main.push_str(&cert_section(tls, now, redactor));
    }
    if !slos.is_empty() {
        main.push_str("<h2>SLOs</h2>\n<ul>");
        for s in slos {
            let _ = write!(
                main,
                "<li><a href=\"../slos/{}\">{}</a></li>",
                enc(s),
                esc(s)
            );
        }
        main.push_str("</ul>\n");
    }
    page(&format!("vantage: {}", v.name), &header, &main, "../")
}

/// What the SLO page needs, copied out of the evaluator's lock.
pub struct SloView {
    name: String,
    objective: f64,
    period: String,
    probes: Vec<String>,
    runbook: Option<String>,
    report: Option<vantage_slo::Report>,
    events: (u64, u64),
    history: Vec<SloSample>,
}

impl SloView {
    pub fn of(r: &crate::daemon::evaluator::Runtime) -> Self {
        Self {
            name: r.config.name.clone(),
            objective: r.config.spec.objective.percent(),
            period: r.slo.period_name(),
            probes: r.config.probes.clone(),
            runbook: r.config.runbook_url.clone(),
            report: r.report.clone(),
            events: (r.events_good, r.events_bad),
            history: r.history.points(),
        }
    }
}

/// The page of one SLO.
pub fn render_slo(s: &SloView, redactor: &Redactor) -> String {
    let rep = s.report.as_ref();
    let firing = firing_of(rep);
    let badge = if firing.is_empty() {
        "<span class=\"badge up\">no alert firing</span>".to_string()
    } else {
        format!(
            "<span class=\"badge down\">firing: {}</span>",
            esc(&firing.join(", "))
        )
    };
    let probes: Vec<String> = s
        .probes
        .iter()
        .map(|p| format!("<a href=\"../probes/{}\">{}</a>", enc(p), esc(p)))
        .collect();
    let runbook = s
        .runbook
        .as_ref()
        .map(|u| {
            let u = redactor.redact(u);
            // Only web links become links: never a `javascript:` or `data:` href.
            let lower = u.to_ascii_lowercase();
            if lower.starts_with("https://") || lower.starts_with("http://") {
                format!(" · <a href=\"{}\" rel=\"noreferrer\">runbook</a>", esc(&u))
            } else {
                format!(" · runbook <code>{}</code>", esc(&u))
            }
        })
        .unwrap_or_default();
    let header = format!(
        "<p><a href=\"../\">← overview</a></p><h1>{name} {badge}</h1><p class=\"muted\">objective {obj}% over {period} · probes {probes}{runbook}</p>",
        name = esc(&s.name),
        obj = s.objective,
        period = esc(&s.period),
        probes = probes.join(", "),
    );
    let mut main = String::from("<div class=\"cards\">");
    main.push_str(&card(
        "SLI (period)",
        &pct(rep.and_then(|r| r.period.sli), 3),
        "",
    ));
    let remaining = rep.and_then(|r| r.budget_remaining);
    let rclass = match remaining {
        Some(r) if r > 0.5 => "good",
        Some(r) if r > 0.0 => "fair",
        Some(_) => "poor",
        None => "unknown",
    };
    main.push_str(&card("budget left", &pct(remaining, 1), rclass));
    main.push_str(&card(
        "exhausted in",
        &rep.and_then(|r| r.exhaustion_seconds)
            .map_or("–".into(), span),
        "",
    ));
    main.push_str(&card(
        "events good / bad",
        &format!("{} / {}", s.events.0, s.events.1),
        "",
    ));
    main.push_str("</div>\n<h2>Error budget burn-down</h2>\n");
    let burn: Vec<(f64, f64)> = s
        .history
        .iter()
        .map(|p| (f64::from(p.t), f64::from(p.remaining) * 100.0))
        .collect();
    main.push_str(&svg::line_chart(
        "burndown",
        "burndown",
        &burn,
        0.0,
        100.0,
        &[Reference {
            value: 0.0,
            label: "exhausted",
            class: "limit",
        }],
        &|v| format!("{v:.0}%"),
    ));
    let _ = writeln!(
        main,
        "<p class=\"muted\">Error budget remaining over the {} period, sampled every 10 s for the last hour and coarser before.</p>",
        esc(&s.period)
    );
    main.push_str("<h2>SLI over time</h2>\n");
    let sli: Vec<(f64, f64)> = s
        .history
        .iter()
        .map(|p| (f64::from(p.t), f64::from(p.sli) * 100.0))
        .collect();
    let target_label = format!("objective {}%", s.objective);
    main.push_str(&svg::line_chart(
        "sli-chart",
        "sli",
        &sli,
        s.objective.min(100.0),
        100.0,
        &[Reference {
            value: s.objective,
            label: &target_label,
            class: "target",
        }],
        &|v| format!("{v:.2}%"),
    ));
    let shortest = rep
        .and_then(|r| r.windows.first())
        .map_or("shortest".to_string(), |w| w.name.to_string());
    let _ = writeln!(
        main,
        "<p class=\"muted\">SLI over the {} window at each sample.</p>",
        esc(&shortest)
    );
    main.push_str("<h2>Burn-rate alerts</h2>\n");
    match rep {
        Some(rep) if !rep.alerts.is_empty() => {
            main.push_str("<div class=\"wrap\"><table class=\"alerts\"><thead><tr><th>severity</th><th>threshold</th><th>long window</th><th>short window</th><th>state</th></tr></thead><tbody>\n");
            for a in &rep.alerts {
                let w = |x: &vantage_slo::WindowReport| {
                    format!(
                        "<b>{}</b> {} {}",
                        esc(&x.name),
                        x.burn_rate.map_or("–".into(), |b| format!("{b:.2}×")),
                        svg::burn_bar(&x.name, x.burn_rate, a.burn_rate_threshold)
                    )
                };
                let state = if a.firing {
                    "<span class=\"badge down\">firing</span>"
                } else {
                    "<span class=\"badge up\">not firing</span>"
                };
                let _ = writeln!(
                    main,
                    "<tr class=\"pair\"><td><b>{}</b></td><td>{:.1}×</td><td>{}</td><td>{}</td><td>{state}</td></tr>\
                     <tr class=\"why\"><td colspan=\"5\" class=\"wrapok muted\">{}</td></tr>",
                    esc(&a.severity),
                    a.burn_rate_threshold,
                    w(&a.long),
                    w(&a.short),
                    esc(&a.explanation())
                );
            }
            main.push_str("</tbody></table></div>\n<p class=\"muted\">A pair fires when both windows burn faster than its threshold (the black line).</p>\n");
        }
        _ => main.push_str("<p class=\"muted\">No alert pairs evaluated yet.</p>\n"),
    }
    if let Some(rep) = rep {
        main.push_str("<h2>Windows</h2>\n<div class=\"wrap\"><table class=\"windows\"><thead><tr><th>window</th><th>good / total</th><th>SLI</th><th>burn rate</th></tr></thead><tbody>\n");
        for w in rep.windows.iter().chain(std::iter::once(&rep.period)) {
            let _ = writeln!(
                main,
                "<tr><td>{}</td><td>{} / {}</td><td>{}</td><td>{}</td></tr>",
                esc(&w.name),
                w.good,
                w.total,
                pct(w.sli, 3),
                w.burn_rate.map_or("–".into(), |b| format!("{b:.2}×"))
            );
        }
        main.push_str("</tbody></table></div>\n");
    }
    page(&format!("vantage SLO: {}", s.name), &header, &main, "../")
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

/// `GET /`.
pub async fn overview(State(app): State<App>, Query(q): Query<OverviewQuery>) -> Html<String> {
    let slos = app
        .evaluator
        .with(|slos| slos.iter().map(SloRow::of).collect::<Vec<_>>());
    let config = app.config();
    Html(render_overview(
        &app.store.all(),
        &slos,
        app.store.clock().unix_ms(),
        &q,
        &config.redactor,
    ))
}

/// `GET /probes/{name}`.
pub async fn probe(State(app): State<App>, Path(name): Path<String>) -> Response {
    let Some(state) = app.store.get(&name) else {
        return not_found("probe", &name);
    };
    let slos = app.evaluator.with(|slos| {
        slos.iter()
            .filter(|r| r.config.probes.contains(&name))
            .map(|r| r.config.name.clone())
            .collect::<Vec<_>>()
    });
    let config = app.config();
    Html(render_probe(
        &state,
        &slos,
        app.store.clock().unix_ms(),
        &config.redactor,
    ))
    .into_response()
}

/// `GET /slos/{name}`.
pub async fn slo(State(app): State<App>, Path(name): Path<String>) -> Response {
    let view = app
        .evaluator
        .with(|slos| slos.iter().find(|r| r.config.name == name).map(SloView::of));
    let config = app.config();
    match view {
        Some(v) => Html(render_slo(&v, &config.redactor)).into_response(),
        None => not_found("SLO", &name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_html() {
        assert_eq!(esc("<script>\"&'"), "&lt;script&gt;&quot;&amp;&#39;");
    }

    #[test]
    fn slo_page_resists_hostile_text() {
        let v = SloView {
            name: "<img src=x onerror=alert(1)>".into(),
            objective: 99.0,
            period: "30d".into(),
            probes: vec!["a b/\"c".into()],
            runbook: Some("JavaScript:alert(1)".into()),
            report: None,
            events: (0, 0),
            history: vec![
                SloSample {
                    t: 10,
                    remaining: f32::NAN,
                    sli: f32::NAN,
                },
                SloSample {
                    t: 20,
                    remaining: f32::NAN,
                    sli: 1.0,
                },
            ],
        };
        let secret = Redactor::default();
        let html = render_slo(&v, &secret);
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.to_lowercase().contains("href=\"javascript"), "{html}");
        assert!(html.contains("href=\"../probes/a%20b%2F%22c\""));
        assert!(!html.contains("NaN"));
        assert!(html.contains("id=\"burndown\"") && html.contains("id=\"sli-chart\""));
        assert!(html.contains("No alert pairs evaluated yet."));
    }

    #[test]
    fn encodes_path_segments() {
        assert_eq!(enc("a b/c?d#e"), "a%20b%2Fc%3Fd%23e");
        assert_eq!(enc("api-v1.x_~"), "api-v1.x_~");
    }
}
