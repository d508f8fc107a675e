//! Last-run gauges of the kinds tcp, dns, icmp and grpc, with blackbox_exporter's names.
//! (tcp's certificate series are the shared `probe_ssl_*` ones, from the outcome's TLS facts.)

use vantage_probes::grpc::SERVING_STATUSES;
use vantage_probes::Outcome;

use super::encode::Fam;
use super::probe_families::{bool_f, Out, F};
use crate::config::Kind;

/// The kinds whose phases are not HTTP's (no `probe_http_duration_seconds` for them).
pub(super) fn own_phases(k: Kind) -> bool {
    matches!(k, Kind::Tcp | Kind::Dns | Kind::Icmp | Kind::Grpc)
}

fn phases(fam: &mut Fam, p: &str, pairs: &[(&str, f64)]) {
    for (name, v) in pairs {
        fam.gauge(p, &[("phase", name)], *v);
    }
}

pub(super) fn last_run(f: &mut Out, p: &str, kind: Kind, o: &Outcome) {
    let ph = &o.phases;
    match kind {
        Kind::Dns => {
            if let Some(d) = o.facts.dns() {
                f.get(F::DnsAnswerRrs).gauge(p, &[], d.answer.len() as f64);
                f.get(F::DnsAuthorityRrs)
                    .gauge(p, &[], d.authority.len() as f64);
                f.get(F::DnsAdditionalRrs)
                    .gauge(p, &[], d.additional.len() as f64);
                if let Some(s) = d.serial {
                    f.get(F::DnsSerial).gauge(p, &[], f64::from(s));
                }
                f.get(F::DnsQuerySucceeded)
                    .gauge(p, &[], bool_f(d.query_succeeded));
            }
            let pairs = [
                ("resolve", ph.resolve.as_secs_f64()),
                ("connect", ph.connect.as_secs_f64()),
                ("request", ph.processing.as_secs_f64()),
            ];
            phases(f.get(F::DnsDuration), p, &pairs);
        }
        Kind::Icmp => {
            let icmp = o.facts.icmp();
            let rtt = icmp.as_ref().and_then(|i| i.rtt_seconds).unwrap_or(0.0);
            let pairs = [
                ("resolve", ph.resolve.as_secs_f64()),
                ("setup", ph.connect.as_secs_f64()),
                ("rtt", rtt),
            ];
            phases(f.get(F::IcmpDuration), p, &pairs);
            if let Some(h) = icmp.as_ref().and_then(|i| i.hop_limit) {
                f.get(F::IcmpHopLimit).gauge(p, &[], f64::from(h));
            }
        }
        Kind::Grpc => {
            if let Some(g) = o.facts.grpc() {
                let fam = f.get(F::GrpcHealthcheck);
                for s in SERVING_STATUSES {
                    let hit = g.serving_status.as_deref() == Some(s);
                    fam.gauge(p, &[("serving_status", s)], bool_f(hit));
                }
                f.get(F::GrpcStatus)
                    .gauge(p, &[], g.status_code.map_or(-1.0, f64::from));
                f.get(F::GrpcSsl).gauge(p, &[], bool_f(g.ssl));
            }
            let check = ph.connect + ph.tls + ph.processing;
            let pairs = [
                ("resolve", ph.resolve.as_secs_f64()),
                ("check", check.as_secs_f64()),
            ];
            phases(f.get(F::GrpcDuration), p, &pairs);
        }
        Kind::Http | Kind::Tls | Kind::Scrape | Kind::Tcp => {}
    }
}
