//! `kind = "icmp"`: `target` (a host), `ip`, `payload_size`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use vantage_probes::{IcmpSpec, IpFamily};

use crate::config::probe::Spec;
use crate::config::raw::{Dur, Kind, RawMetrics, RawProbeAlert};
use crate::config::Ctx;

const DEFAULT_PAYLOAD: usize = 56;

/// One `[[probe]]` of kind icmp.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIcmp {
    pub name: Spanned<String>,
    pub kind: Spanned<Kind>,
    pub interval: Option<Spanned<Dur>>,
    pub timeout: Option<Spanned<Dur>>,
    pub labels: Option<BTreeMap<String, Spanned<String>>>,
    pub alert: Option<Spanned<RawProbeAlert>>,
    pub metrics: Option<Spanned<RawMetrics>>,
    /// A host name or an IP address (no port).
    pub target: Spanned<String>,
    pub ip: Option<Spanned<IpFamily>>,
    /// Bytes after the ICMP header (default 56).
    pub payload_size: Option<Spanned<u32>>,
}

/// A host: a name, an IPv4 address, or an IPv6 address with or without brackets.
pub(super) fn parse_host(s: &str) -> Result<String, String> {
    let t = s.trim();
    let t = t.strip_prefix("icmp://").unwrap_or(t);
    let bare = t.trim_start_matches('[').trim_end_matches(']');
    let is_ip = bare.parse::<std::net::IpAddr>().is_ok();
    let name_ok = !bare.is_empty()
        && bare.len() <= 253
        && bare
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    if is_ip || name_ok {
        Ok(bare.to_string())
    } else {
        Err(format!(
            "invalid icmp target {s:?}: expected a host name or IP address, without a port"
        ))
    }
}

pub(super) fn resolve(p: &RawIcmp, timeout: Duration, ctx: &mut Ctx<'_>) -> Option<(String, Spec)> {
    let host = parse_host(p.target.get_ref())
        .map_err(|e| ctx.err(p.target.span().start, e))
        .ok();
    let payload_size = match &p.payload_size {
        None => DEFAULT_PAYLOAD,
        Some(s) => {
            let n = *s.get_ref() as usize;
            if n > vantage_probes::icmp::MAX_PAYLOAD {
                ctx.err(
                    s.span().start,
                    format!(
                        "payload_size {n} is above the limit of {}",
                        vantage_probes::icmp::MAX_PAYLOAD
                    ),
                );
            }
            n
        }
    };
    let spec = Spec::Icmp(Box::new(IcmpSpec {
        host: host?,
        ip: p.ip.as_ref().map_or(IpFamily::Any, |i| *i.get_ref()),
        timeout,
        payload_size,
        filter: None,
    }));
    Some((super::display_target(&spec)?, spec))
}
