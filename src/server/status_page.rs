//! The status page: server-rendered HTML that refreshes itself. Every dynamic text is escaped.

use std::fmt::Write as _;
use std::sync::Arc;

use crate::store::ProbeState;

fn esc(s: &str) -> String {
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

fn ms(secs: f64) -> String {
    if secs >= 1.0 {
        format!("{secs:.2} s")
    } else {
        format!("{:.1} ms", secs * 1000.0)
    }
}

/// One SLO's line on the page.
pub struct SloRow {
    name: String,
    objective: f64,
    period: String,
    sli: Option<f64>,
    remaining: Option<f64>,
    burn_5m: Option<f64>,
    burn_1h: Option<f64>,
    firing: Vec<String>,
}

impl SloRow {
    pub fn of(r: &crate::evaluator::Runtime) -> Self {
        let rep = r.report.as_ref();
        let burn = |name: &str| {
            rep.and_then(|x| x.windows.iter().find(|w| &*w.name == name))
                .and_then(|w| w.burn_rate)
        };
        let mut firing: Vec<String> = rep
            .map(|x| {
                x.alerts
                    .iter()
                    .filter(|a| a.firing)
                    .map(|a| a.severity.to_string())
                    .collect()
            })
            .unwrap_or_default();
        firing.sort();
        firing.dedup();
        Self {
            name: r.config.name.clone(),
            objective: r.config.spec.objective.percent(),
            period: r.slo.period_name(),
            sli: rep.and_then(|x| x.period.sli),
            remaining: rep.and_then(|x| x.budget_remaining),
            burn_5m: burn("5m"),
            burn_1h: burn("1h"),
            firing,
        }
    }
}

fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map(f).unwrap_or_else(|| "–".into())
}

fn slo_rows(slos: &[SloRow]) -> String {
    if slos.is_empty() {
        return String::new();
    }
    let mut rows = String::new();
    for s in slos {
        let class = if s.firing.is_empty() { "up" } else { "down" };
        let _ = writeln!(
            rows,
            "<tr class=\"{class}\"><td><a href=\"api/v1/slos/{name}\">{name}</a></td><td>{obj}% / {period}</td><td>{sli}</td><td>{rem}</td><td>{b5}</td><td>{b1}</td><td class=\"state\">{firing}</td></tr>",
            name = esc(&s.name),
            obj = s.objective,
            period = esc(&s.period),
            sli = opt(s.sli, |v| format!("{:.3}%", v * 100.0)),
            rem = opt(s.remaining, |v| format!("{:.1}%", v * 100.0)),
            b5 = opt(s.burn_5m, |v| format!("{v:.2}")),
            b1 = opt(s.burn_1h, |v| format!("{v:.2}")),
            firing = esc(&s.firing.join(", ")),
        );
    }
    format!(
        "<h2>SLOs</h2>\n<table>\n<thead><tr><th>slo</th><th>objective</th><th>SLI (period)</th><th>budget left</th><th>burn 5m</th><th>burn 1h</th><th>alerts firing</th></tr></thead>\n<tbody>\n{rows}</tbody></table>\n"
    )
}

/// The whole page for these probes and SLOs.
pub fn render(probes: &[Arc<ProbeState>], slos: &[SloRow], now: f64) -> String {
    let mut up = 0;
    let mut rows = String::new();
    for p in probes {
        let meta = p.meta();
        let r = p.record();
        let last = r.history.back();
        let (class, state) = match last {
            Some(l) if l.success => {
                up += 1;
                ("up", "UP".to_string())
            }
            Some(l) => (
                "down",
                format!(
                    "DOWN ({})",
                    l.reason.map(|x| x.as_str()).unwrap_or("failure")
                ),
            ),
            None => ("pending", "PENDING".to_string()),
        };
        let latency = last.map(|l| ms(l.duration_seconds)).unwrap_or_default();
        let p99 = r.quantiles[0][2].map(ms).unwrap_or_default();
        let total = r.runs_success + r.runs_failure;
        let ratio = if total > 0 {
            format!("{:.2}%", 100.0 * r.runs_success as f64 / total as f64)
        } else {
            String::new()
        };
        let cert = r
            .last
            .as_ref()
            .and_then(|l| l.outcome.facts.tls.as_ref())
            .map(|t| {
                let days = t.days_left(now as i64);
                if days < 0.0 {
                    format!("expired {:.0} days ago", -days)
                } else {
                    format!("{days:.0} days")
                }
            })
            .unwrap_or_default();
        let evidence = last.map(|l| l.evidence.as_str()).unwrap_or_default();
        let _ = writeln!(
            rows,
            "<tr class=\"{class}\"><td><a href=\"api/v1/probes/{name}\">{name}</a></td><td>{kind}</td><td class=\"state\">{state}</td>\
             <td>{latency}</td><td>{p99}</td><td>{ratio}</td><td>{cert}</td><td class=\"target\">{target}</td><td class=\"evidence\">{evidence}</td></tr>",
            name = esc(&p.name),
            kind = meta.kind.as_str(),
            state = esc(&state),
            target = esc(&meta.target),
            evidence = esc(evidence),
        );
    }
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="5">
<title>vantage: {up}/{total} up</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ text-align: left; padding: .35em .6em; border-bottom: 1px solid #ddd; vertical-align: top; }}
tr.up .state {{ color: #17803d; font-weight: 600; }}
tr.down .state {{ color: #c0262d; font-weight: 600; }}
tr.pending .state {{ color: #777; }}
td.evidence, td.target {{ font-family: ui-monospace, monospace; font-size: 12px; max-width: 40em; overflow-wrap: anywhere; }}
</style></head>
<body>
<h1>vantage</h1>
<p>{up} of {total} probes up. This page refreshes every 5 seconds. <a href="metrics">/metrics</a> · <a href="api/v1/probes">/api/v1/probes</a></p>
<table>
<thead><tr><th>probe</th><th>kind</th><th>state</th><th>last latency</th><th>p99 (5m)</th><th>success</th><th>certificate</th><th>target</th><th>evidence</th></tr></thead>
<tbody>
{rows}</tbody></table>
{slo_table}</body></html>
"#,
        total = probes.len(),
        slo_table = slo_rows(slos),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_html() {
        assert_eq!(esc("<script>\"&'"), "&lt;script&gt;&quot;&amp;&#39;");
    }
}
