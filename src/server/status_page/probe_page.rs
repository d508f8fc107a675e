//! The page of one probe at `/probes/{name}`.

use std::fmt::Write as _;

use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Response};
use vantage_probes::{Redactor, TlsFacts};

use super::{card, cert_cell, enc, esc, not_found, page, pct, uptime_class, ProbeView};
use crate::daemon::history::{Incident, UPTIME_SPANS};
use crate::daemon::store::ProbeState;
use crate::server::svg::{self as svg, dur, utc};
use crate::server::App;

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
