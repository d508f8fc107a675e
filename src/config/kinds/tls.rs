//! `kind = "tls"`: a handshake and the certificate facts, no request.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use vantage_probes::{IpFamily, TlsExpect, TlsSpec};

use crate::config::probe::{host_port_text, parse_host_port, tls_options, Spec};
use crate::config::raw::{Dur, Kind, RawMetrics, RawProbeAlert, RawTls, RawTlsExpect};
use crate::config::Ctx;

/// One `[[probe]]` of kind tls.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTlsProbe {
    pub name: Spanned<String>,
    pub kind: Spanned<Kind>,
    pub interval: Option<Spanned<Dur>>,
    pub timeout: Option<Spanned<Dur>>,
    pub labels: Option<BTreeMap<String, Spanned<String>>>,
    pub alert: Option<Spanned<RawProbeAlert>>,
    pub metrics: Option<Spanned<RawMetrics>>,
    /// `host:port` to connect to (port 443 when omitted).
    pub target: Spanned<String>,
    /// SNI and hostname check (default: host of target).
    pub server_name: Option<Spanned<String>>,
    pub ip: Option<Spanned<IpFamily>>,
    pub tls: Option<Spanned<RawTls>>,
    pub expect: Option<Spanned<RawTlsExpect>>,
}

pub(super) fn resolve(
    p: &RawTlsProbe,
    timeout: Duration,
    ctx: &mut Ctx<'_>,
) -> Option<(String, Spec)> {
    let target = &p.target;
    let hostport = parse_host_port(target.get_ref())
        .map_err(|e| ctx.err(target.span().start, e))
        .ok();
    let options = tls_options(p.tls.as_ref(), ctx);
    let client = ctx
        .clients
        .tls(&options)
        .map_err(|e| {
            ctx.err(
                p.tls
                    .as_ref()
                    .map_or(target.span().start, |t| t.span().start),
                e.to_string(),
            )
        })
        .ok();
    let raw_tls = p.tls.as_ref().map(|t| t.get_ref());
    if let Some(skip) = raw_tls.and_then(|t| t.insecure_skip_verify.as_ref()) {
        ctx.err(
            skip.span().start,
            "tls probes use expect.verify = false instead of insecure_skip_verify",
        );
    }
    let mut expect = TlsExpect::default();
    if let Some(e) = &p.expect {
        let e = e.get_ref();
        if let Some(d) = &e.min_days_remaining {
            if !d.get_ref().is_finite() || *d.get_ref() < 0.0 {
                ctx.err(
                    d.span().start,
                    "min_days_remaining must be a number of days ≥ 0",
                );
            }
            expect.min_days_remaining = Some(*d.get_ref());
        }
        expect.verify = e.verify.as_ref().is_none_or(|v| *v.get_ref());
        expect.min_version = e.min_version.as_ref().map(|v| *v.get_ref());
    }
    let server_name = p
        .server_name
        .as_ref()
        .or(raw_tls.and_then(|t| t.server_name.as_ref()))
        .map(|s| s.get_ref().clone());
    let ((host, port), client) = (hostport?, client?);
    Some((
        host_port_text(&host, port),
        Spec::Tls(Box::new(TlsSpec {
            host,
            port,
            server_name,
            ip: p.ip.as_ref().map_or(IpFamily::Any, |i| *i.get_ref()),
            timeout,
            client,
            expect,
            filter: None,
        })),
    ))
}
