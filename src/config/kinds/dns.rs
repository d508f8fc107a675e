//! `kind = "dns"`: `target` (the server), `query_name`, `query_type`, `transport`,
//! `valid_rcodes`, `recursion_desired`, and `[probe.expect]` assertions per section.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use vantage_probes::{DnsSpec, DnsTransport, IpFamily, RrAssertions};

use super::{compile, host_port};
use crate::config::probe::Spec;
use crate::config::raw::{Dur, Kind, RawMetrics, RawProbeAlert};
use crate::config::Ctx;

/// One `[[probe]]` of kind dns.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDns {
    pub name: Spanned<String>,
    pub kind: Spanned<Kind>,
    pub interval: Option<Spanned<Dur>>,
    pub timeout: Option<Spanned<Dur>>,
    pub labels: Option<BTreeMap<String, Spanned<String>>>,
    pub alert: Option<Spanned<RawProbeAlert>>,
    pub metrics: Option<Spanned<RawMetrics>>,
    /// The server: `host` or `host:port` (port 53 by default).
    pub target: Spanned<String>,
    pub ip: Option<Spanned<IpFamily>>,
    pub query_name: Spanned<String>,
    /// `A` by default; any type name hickory knows (`AAAA`, `MX`, `SOA`, `TXT`, …).
    pub query_type: Option<Spanned<String>>,
    pub transport: Option<Spanned<DnsTransport>>,
    /// rcodes that count as success (default `["NOERROR"]`).
    pub valid_rcodes: Option<Spanned<Vec<Spanned<String>>>>,
    /// Set the RD bit (default true).
    pub recursion_desired: Option<Spanned<bool>>,
    pub expect: Option<Spanned<RawDnsExpect>>,
}

/// `[probe.expect]` of a dns probe.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDnsExpect {
    pub answer: Option<Spanned<RawRrAssertions>>,
    pub authority: Option<Spanned<RawRrAssertions>>,
    pub additional: Option<Spanned<RawRrAssertions>>,
}

/// Regexes over one section's records, each record written `name ttl class type data`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRrAssertions {
    /// No record may match any of these.
    pub none_match: Option<Vec<Spanned<String>>>,
    /// Every record must match each of these.
    pub all_match: Option<Vec<Spanned<String>>>,
    /// Some record must match each of these.
    pub some_match: Option<Vec<Spanned<String>>>,
}

fn assertions(r: Option<&Spanned<RawRrAssertions>>, ctx: &mut Ctx<'_>) -> RrAssertions {
    let mut out = RrAssertions::default();
    let Some(r) = r else { return out };
    let r = r.get_ref();
    let mut list = |v: &Option<Vec<Spanned<String>>>| {
        v.iter()
            .flatten()
            .filter_map(|s| compile(s, ctx))
            .collect::<Vec<_>>()
    };
    out.none_match = list(&r.none_match);
    out.all_match = list(&r.all_match);
    out.some_match = list(&r.some_match);
    out
}

pub(super) fn resolve(p: &RawDns, timeout: Duration, ctx: &mut Ctx<'_>) -> Option<(String, Spec)> {
    let hostport = host_port(&p.target, Some(53), ctx);
    let qname = p.query_name.get_ref();
    let query_name = vantage_probes::dns::parse_name(qname);
    if query_name.is_none() {
        ctx.err(
            p.query_name.span().start,
            format!("invalid query_name {qname:?}: expected a domain name"),
        );
    }
    let query_type = match &p.query_type {
        None => Some(vantage_probes::dns::RecordType::A),
        Some(t) => {
            let parsed = vantage_probes::dns::parse_type(t.get_ref());
            if parsed.is_none() {
                ctx.err(
                    t.span().start,
                    format!(
                        "unknown query_type {:?}: expected a record type like A, AAAA, MX, SOA",
                        t.get_ref()
                    ),
                );
            }
            parsed
        }
    };
    let mut valid_rcodes = Vec::new();
    match &p.valid_rcodes {
        None => valid_rcodes.push(0),
        Some(list) if list.get_ref().is_empty() => ctx.err(
            list.span().start,
            "valid_rcodes is empty: list at least one, like \"NOERROR\"",
        ),
        Some(list) => {
            for code in list.get_ref() {
                match vantage_probes::dns::parse_rcode(code.get_ref()) {
                    Some(c) => valid_rcodes.push(c),
                    None => ctx.err(
                        code.span().start,
                        format!(
                            "unknown rcode {:?}: expected one of {}",
                            code.get_ref(),
                            vantage_probes::dns::RCODES
                                .iter()
                                .map(|(n, _)| *n)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ),
                }
            }
        }
    }
    let expect = p.expect.as_ref().map(|e| e.get_ref());
    let answer = assertions(expect.and_then(|e| e.answer.as_ref()), ctx);
    let authority = assertions(expect.and_then(|e| e.authority.as_ref()), ctx);
    let additional = assertions(expect.and_then(|e| e.additional.as_ref()), ctx);
    let (host, port) = hostport?;
    let spec = Spec::Dns(Box::new(DnsSpec {
        host,
        port,
        ip: p.ip.as_ref().map_or(IpFamily::Any, |i| *i.get_ref()),
        timeout,
        transport: p
            .transport
            .as_ref()
            .map_or(DnsTransport::Udp, |t| *t.get_ref()),
        query_name: query_name?,
        query_type: query_type?,
        recursion_desired: p.recursion_desired.as_ref().is_none_or(|r| *r.get_ref()),
        valid_rcodes,
        answer,
        authority,
        additional,
        filter: None,
    }));
    Some((super::display_target(&spec)?, spec))
}
