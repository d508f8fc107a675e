//! Last-run gauges of the kinds tcp, dns, icmp and grpc, with blackbox_exporter's names.
//! (tcp's certificate series are the shared `probe_ssl_*` ones, from the outcome's TLS facts.)

use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Unit;
use vantage_probes::grpc::SERVING_STATUSES;
use vantage_probes::Outcome;

use super::{bool_f, last, one, Family, Samples};
use crate::config::Kind;
use crate::daemon::store::Record;

/// The kinds whose phases are not HTTP's (no `probe_http_duration_seconds` for them).
pub(super) fn own_phases(k: Kind) -> bool {
    matches!(k, Kind::Tcp | Kind::Dns | Kind::Icmp | Kind::Grpc)
}

fn of(k: Kind, want: Kind, r: &Record) -> Option<&Outcome> {
    last(r).filter(|_| k == want)
}

fn phases(pairs: &[(&'static str, f64)]) -> Samples {
    pairs
        .iter()
        .map(|(n, v)| (vec![("phase", (*n).to_string())], *v))
        .collect()
}

pub(super) fn encode(fam: &Family<'_>, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let secs = Some(&Unit::Seconds);
    // dns
    let dns = |k: Kind, r: &Record| of(k, Kind::Dns, r).and_then(|o| o.facts.dns().cloned());
    let rrs = |n: usize| one(n as f64);
    fam.gauge(
        enc,
        "probe_dns_answer_rrs",
        "Records in the answer section of the last reply",
        None,
        |k, r| dns(k, r).map(|d| rrs(d.answer.len())).unwrap_or_default(),
    )?;
    fam.gauge(
        enc,
        "probe_dns_authority_rrs",
        "Records in the authority section of the last reply",
        None,
        |k, r| {
            dns(k, r)
                .map(|d| rrs(d.authority.len()))
                .unwrap_or_default()
        },
    )?;
    fam.gauge(
        enc,
        "probe_dns_additional_rrs",
        "Records in the additional section of the last reply",
        None,
        |k, r| {
            dns(k, r)
                .map(|d| rrs(d.additional.len()))
                .unwrap_or_default()
        },
    )?;
    fam.gauge(
        enc,
        "probe_dns_serial",
        "SOA serial in the answer of the last reply",
        None,
        |k, r| {
            dns(k, r)
                .and_then(|d| d.serial)
                .map(|s| one(f64::from(s)))
                .unwrap_or_default()
        },
    )?;
    fam.gauge(
        enc,
        "probe_dns_query_succeeded",
        "Whether the last query got a reply with a valid rcode",
        None,
        |k, r| {
            dns(k, r)
                .map(|d| one(bool_f(d.query_succeeded)))
                .unwrap_or_default()
        },
    )?;
    fam.gauge(
        enc,
        "probe_dns_duration",
        "Duration of each phase of the last DNS query",
        secs,
        |k, r| {
            of(k, Kind::Dns, r)
                .map(|o| {
                    phases(&[
                        ("resolve", o.phases.resolve.as_secs_f64()),
                        ("connect", o.phases.connect.as_secs_f64()),
                        ("request", o.phases.processing.as_secs_f64()),
                    ])
                })
                .unwrap_or_default()
        },
    )?;
    // icmp
    fam.gauge(
        enc,
        "probe_icmp_duration",
        "Duration of each phase of the last echo",
        secs,
        |k, r| {
            of(k, Kind::Icmp, r)
                .map(|o| {
                    phases(&[
                        ("resolve", o.phases.resolve.as_secs_f64()),
                        ("setup", o.phases.connect.as_secs_f64()),
                        (
                            "rtt",
                            o.facts
                                .icmp()
                                .as_ref()
                                .and_then(|i| i.rtt_seconds)
                                .unwrap_or(0.0),
                        ),
                    ])
                })
                .unwrap_or_default()
        },
    )?;
    fam.gauge(
        enc,
        "probe_icmp_reply_hop_limit",
        "TTL / hop limit of the last echo reply, where the socket shows it",
        None,
        |k, r| {
            of(k, Kind::Icmp, r)
                .and_then(|o| o.facts.icmp()?.hop_limit)
                .map(|h| one(f64::from(h)))
                .unwrap_or_default()
        },
    )?;
    // grpc
    fam.gauge(
        enc,
        "probe_grpc_healthcheck_response",
        "Serving status of the last health check (1 for the status answered)",
        None,
        |k, r| {
            of(k, Kind::Grpc, r)
                .and_then(|o| o.facts.grpc())
                .map(|g| {
                    SERVING_STATUSES
                        .iter()
                        .map(|s| {
                            let hit = g.serving_status.as_deref() == Some(*s);
                            (vec![("serving_status", (*s).to_string())], bool_f(hit))
                        })
                        .collect()
                })
                .unwrap_or_default()
        },
    )?;
    fam.gauge(
        enc,
        "probe_grpc_status_code",
        "grpc-status of the last health check (-1: none)",
        None,
        |k, r| {
            of(k, Kind::Grpc, r)
                .and_then(|o| o.facts.grpc())
                .map(|g| one(g.status_code.map_or(-1.0, f64::from)))
                .unwrap_or_default()
        },
    )?;
    fam.gauge(
        enc,
        "probe_grpc_ssl",
        "Whether the last health check went over TLS",
        None,
        |k, r| {
            of(k, Kind::Grpc, r)
                .and_then(|o| o.facts.grpc())
                .map(|g| one(bool_f(g.ssl)))
                .unwrap_or_default()
        },
    )?;
    fam.gauge(
        enc,
        "probe_grpc_duration",
        "Duration of each phase of the last health check",
        secs,
        |k, r| {
            of(k, Kind::Grpc, r)
                .map(|o| {
                    let p = &o.phases;
                    phases(&[
                        ("resolve", p.resolve.as_secs_f64()),
                        ("check", (p.connect + p.tls + p.processing).as_secs_f64()),
                    ])
                })
                .unwrap_or_default()
        },
    )?;
    Ok(())
}
