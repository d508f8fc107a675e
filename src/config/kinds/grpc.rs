//! `kind = "grpc"`: `target = "host:port"`, `service`, `tls`, `tls_config`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use vantage_probes::{GrpcSpec, IpFamily};

use super::{check_days, host_port, tls_client};
use crate::config::probe::Spec;
use crate::config::raw::{Dur, Kind, RawMetrics, RawProbeAlert, RawTls};
use crate::config::Ctx;

/// One `[[probe]]` of kind grpc.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGrpc {
    pub name: Spanned<String>,
    pub kind: Spanned<Kind>,
    pub interval: Option<Spanned<Dur>>,
    pub timeout: Option<Spanned<Dur>>,
    pub labels: Option<BTreeMap<String, Spanned<String>>>,
    pub alert: Option<Spanned<RawProbeAlert>>,
    pub metrics: Option<Spanned<RawMetrics>>,
    /// `host:port`.
    pub target: Spanned<String>,
    pub ip: Option<Spanned<IpFamily>>,
    /// The service asked about (default "": the server as a whole).
    pub service: Option<Spanned<String>>,
    /// HTTP/2 over TLS (default false: clear-text HTTP/2).
    pub tls: Option<Spanned<bool>>,
    pub tls_config: Option<Spanned<RawTls>>,
    pub expect: Option<Spanned<RawGrpcExpect>>,
}

/// `[probe.expect]` of a grpc probe over TLS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGrpcExpect {
    pub min_days_remaining: Option<Spanned<f64>>,
    pub verify: Option<Spanned<bool>>,
}

pub(super) fn resolve(p: &RawGrpc, timeout: Duration, ctx: &mut Ctx<'_>) -> Option<(String, Spec)> {
    let hostport = host_port(&p.target, None, ctx);
    let tls = p.tls.as_ref().is_some_and(|t| *t.get_ref());
    let raw_tls = p.tls_config.as_ref().map(|t| t.get_ref());
    let client = tls_client(p.tls_config.as_ref(), &[b"h2"], p.name.span().start, ctx);
    let expect = p.expect.as_ref().map(|e| e.get_ref());
    if let (Some(e), false) = (&p.expect, tls) {
        ctx.err(
            e.span().start,
            "expect.min_days_remaining and expect.verify need tls = true",
        );
    }
    if let (Some(t), false) = (&p.tls_config, tls) {
        ctx.err(t.span().start, "tls_config needs tls = true");
    }
    let min_days_remaining = check_days(expect.and_then(|e| e.min_days_remaining.as_ref()), ctx);
    let verify = expect
        .and_then(|e| e.verify.as_ref())
        .is_none_or(|v| *v.get_ref())
        && !raw_tls
            .and_then(|t| t.insecure_skip_verify.as_ref())
            .is_some_and(|v| *v.get_ref());
    let service = p
        .service
        .as_ref()
        .map(|s| s.get_ref().clone())
        .unwrap_or_default();
    if service.len() > 1024 {
        let at = p.service.as_ref().map_or(0, |s| s.span().start);
        ctx.err(at, "service names longer than 1024 bytes are not supported");
    }
    let (host, port) = hostport?;
    let spec = Spec::Grpc(Box::new(GrpcSpec {
        host,
        port,
        ip: p.ip.as_ref().map_or(IpFamily::Any, |i| *i.get_ref()),
        timeout,
        service,
        tls,
        server_name: raw_tls
            .and_then(|t| t.server_name.as_ref())
            .map(|s| s.get_ref().clone()),
        client: client?,
        verify,
        min_days_remaining,
        filter: None,
    }));
    Some((super::display_target(&spec)?, spec))
}
