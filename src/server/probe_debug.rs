//! `/probe?debug=true`: what blackbox_exporter answers in debug mode, in its layout. The log
//! lines are built from the run's outcome (phases, facts, evidence), each in logfmt, followed by
//! the metrics the probe would have returned and the module's configuration.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use vantage_probes::Outcome;

use crate::config::{Probe, Spec};
use crate::secret::Redactor;

/// A logfmt value: quoted when it holds spaces, quotes, `=` or nothing.
fn value(v: &str) -> String {
    if v.is_empty() || v.contains([' ', '"', '=', '\n', '\t']) {
        format!("{v:?}")
    } else {
        v.to_string()
    }
}

pub fn render(
    module: &str,
    probe: &Probe,
    outcome: &Outcome,
    started: SystemTime,
    metrics: &str,
    redactor: &Redactor,
) -> String {
    let mut out = String::from("Logs for the probe:\n");
    let prefix = format!("module={} target={}", value(module), value(&probe.target));
    let mut line = |at: Duration, level: &str, msg: &str, fields: &[(&str, String)]| {
        let ts = humantime::format_rfc3339_nanos(started + at);
        let mut l = format!(
            "ts={ts} caller=vantage {prefix} level={level} msg={}",
            value(msg)
        );
        for (k, v) in fields {
            let _ = write!(l, " {k}={}", value(v));
        }
        out.push_str(&redactor.redact(&l));
        out.push('\n');
    };
    let p = &outcome.phases;
    line(
        Duration::ZERO,
        "info",
        "Beginning probe",
        &[
            ("probe", probe.kind.as_str().to_string()),
            ("timeout_seconds", probe.timeout.as_secs_f64().to_string()),
        ],
    );
    let mut at = p.resolve;
    line(
        at,
        "info",
        "Resolved target address",
        &[(
            "ip_protocol",
            outcome
                .facts
                .conn
                .ip_protocol
                .map_or("unknown".into(), |f| format!("ip{f}")),
        )],
    );
    at += p.connect;
    line(
        at,
        "info",
        "Connected",
        &[("connect_seconds", p.connect.as_secs_f64().to_string())],
    );
    if outcome.facts.tls().is_some() || !p.tls.is_zero() {
        at += p.tls;
        line(
            at,
            "info",
            "TLS handshake done",
            &[("tls_seconds", p.tls.as_secs_f64().to_string())],
        );
    }
    let redirects = outcome.facts.http_facts().map_or(0, |h| h.redirects);
    if redirects > 0 {
        line(
            at,
            "info",
            "Followed redirects",
            &[("redirects", redirects.to_string())],
        );
    }
    if let Some(status) = outcome.facts.status() {
        at += p.processing;
        line(
            at,
            "info",
            "Received HTTP response",
            &[("status_code", status.to_string())],
        );
        at += p.transfer;
        let fields = [
            ("resolve", p.resolve.as_secs_f64().to_string()),
            ("connect", p.connect.as_secs_f64().to_string()),
            ("tls", p.tls.as_secs_f64().to_string()),
            ("processing", p.processing.as_secs_f64().to_string()),
            ("transfer", p.transfer.as_secs_f64().to_string()),
        ];
        line(at, "info", "Response timings", &fields);
    }
    let duration = (
        "duration_seconds",
        outcome.duration.as_secs_f64().to_string(),
    );
    if outcome.success() {
        line(
            outcome.duration,
            "info",
            "Probe succeeded",
            &[duration, ("evidence", outcome.evidence.clone())],
        );
    } else {
        let reason = outcome.reason.map_or("unknown", |r| r.as_str()).to_string();
        line(
            outcome.duration,
            "error",
            "Probe failed",
            &[
                duration,
                ("reason", reason),
                ("evidence", outcome.evidence.clone()),
            ],
        );
    }
    out.push_str("\n\n\nMetrics that would have been returned:\n");
    out.push_str(metrics);
    out.push_str("\n\n\nModule configuration:\n");
    let _ = writeln!(out, "prober: {}", probe.kind.as_str());
    let _ = writeln!(
        out,
        "timeout: {}",
        humantime::format_duration(probe.timeout)
    );
    if let Spec::Http(s) = &probe.spec {
        let _ = writeln!(out, "http:");
        let _ = writeln!(out, "  method: {}", s.request.method);
        let _ = writeln!(out, "  follow_redirects: {}", s.transport.follow_redirects);
        let _ = writeln!(out, "  max_redirects: {}", s.transport.max_redirects);
        let names: Vec<&str> = s.request.headers.keys().map(|k| k.as_str()).collect();
        if !names.is_empty() {
            // Names only: values may hold secrets.
            let _ = writeln!(out, "  headers: [{}]", names.join(", "));
        }
    }
    out
}
