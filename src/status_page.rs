//! The status page: server-rendered HTML that refreshes itself. Every dynamic text is escaped.

use std::fmt::Write as _;
use std::sync::Arc;

use crate::store::{unix_now, ProbeState};

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

/// The whole page for these probes.
pub fn render(probes: &[Arc<ProbeState>]) -> String {
    let now = unix_now();
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
                let days = (t.effective_not_after as f64 - now) / 86_400.0;
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
</body></html>
"#,
        total = probes.len(),
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
