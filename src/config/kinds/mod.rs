//! Probe kinds with a config schema of their own: `tcp`, `dns`, `icmp`, `grpc`.
//!
//! The loader peeks at a `[[probe]]` (or `[module.NAME]`) table's `kind` and, for these kinds,
//! deserializes it into that kind's raw struct (`deny_unknown_fields`, no `flatten`), so a key
//! of another kind is reported by serde at its own line and column. Each kind's file holds its
//! raw struct and its resolution into a runnable [`Spec`].
//!
//! Adding a kind: a file here with `Raw<Kind>` (the common keys name, kind, interval, timeout,
//! labels repeated, plus its own) and `resolve`, a variant in [`RawKindProbe`], [`Kind`] and
//! [`Spec`], a runner in `probes/src/<kind>.rs`, and its metrics in `src/metrics/kinds.rs`.

mod dns;
mod grpc;
mod icmp;
mod tcp;

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use toml::de::DeValue;
use toml::Spanned;

use super::load::{self, FileId, Located, Sources};
use super::probe::{parse_host_port, valid_name, Probe, Spec, MAX_NAME_LEN};
use super::raw::{Dur, Kind, RawTls};
use super::{resolve_labels, Ctx, Defaults};
use vantage_probes::{TlsClient, TlsOptions};

pub use dns::RawDns;
pub use grpc::RawGrpc;
pub use icmp::RawIcmp;
pub use tcp::RawTcp;

/// A `[[probe]]` of a kind with its own schema.
#[derive(Debug, Clone)]
pub enum RawKindProbe {
    Tcp(RawTcp),
    Dns(RawDns),
    Icmp(RawIcmp),
    Grpc(RawGrpc),
}

/// The keys every kind has, borrowed from its raw struct.
pub(crate) struct Common<'a> {
    pub name: &'a Spanned<String>,
    pub kind: Kind,
    pub interval: Option<&'a Spanned<Dur>>,
    pub timeout: Option<&'a Spanned<Dur>>,
    pub labels: Option<&'a BTreeMap<String, Spanned<String>>>,
}

impl RawKindProbe {
    pub fn name(&self) -> &Spanned<String> {
        self.common().name
    }

    fn common(&self) -> Common<'_> {
        match self {
            RawKindProbe::Tcp(p) => p.common(),
            RawKindProbe::Dns(p) => p.common(),
            RawKindProbe::Icmp(p) => p.common(),
            RawKindProbe::Grpc(p) => p.common(),
        }
    }
}

/// The kind of a `[[probe]]` table when it is one of the kinds here.
pub fn peek_kind(item: &Spanned<DeValue<'_>>) -> Option<Kind> {
    let DeValue::Table(t) = item.get_ref() else {
        return None;
    };
    let kind = t
        .iter()
        .find(|(k, _)| k.get_ref().as_ref() == "kind")
        .map(|(_, v)| v)?;
    match kind.get_ref() {
        DeValue::String(s) => match s.as_ref() {
            "tcp" => Some(Kind::Tcp),
            "dns" => Some(Kind::Dns),
            "icmp" => Some(Kind::Icmp),
            "grpc" => Some(Kind::Grpc),
            _ => None,
        },
        _ => None,
    }
}

fn located<T: DeserializeOwned>(
    value: Spanned<DeValue<'_>>,
    file: FileId,
    sources: &Sources,
    errors: &mut Vec<load::Diagnostic>,
    wrap: fn(T) -> RawKindProbe,
) -> Option<Located<RawKindProbe>> {
    let span = value.span();
    load::deserialize::<T>(value, file, sources, errors).map(|v| Located {
        file,
        span,
        value: wrap(v),
    })
}

/// Deserialize a `[[probe]]` table of kind `kind` into its own raw struct.
pub fn read(
    value: Spanned<DeValue<'_>>,
    kind: Kind,
    file: FileId,
    sources: &Sources,
    errors: &mut Vec<load::Diagnostic>,
) -> Option<Located<RawKindProbe>> {
    match kind {
        Kind::Tcp => located(value, file, sources, errors, RawKindProbe::Tcp),
        Kind::Dns => located(value, file, sources, errors, RawKindProbe::Dns),
        Kind::Icmp => located(value, file, sources, errors, RawKindProbe::Icmp),
        Kind::Grpc => located(value, file, sources, errors, RawKindProbe::Grpc),
        Kind::Http | Kind::Tls | Kind::Scrape => None,
    }
}

/// Deserialize a `[module.NAME]` of kind `kind`: the module's name becomes the probe's, and the
/// request's target replaces a placeholder, as blackbox_exporter's modules work.
pub fn read_module(
    name: &Spanned<String>,
    mut value: Spanned<DeValue<'_>>,
    kind: Kind,
    file: FileId,
    sources: &Sources,
    errors: &mut Vec<load::Diagnostic>,
) -> Option<Located<RawKindProbe>> {
    if let DeValue::Table(t) = value.get_mut() {
        for key in ["name", "target", "interval", "labels"] {
            if let Some((k, _)) = t.iter().find(|(k, _)| k.get_ref().as_ref() == key) {
                errors.push(sources.diag(
                    file,
                    k.span().start,
                    format!("key {key:?} does not belong in a module: /probe's request sets the target, [module.NAME] the name"),
                ));
                return None;
            }
        }
        let at = name.span();
        let s = |v: &str| {
            Spanned::new(
                at.clone(),
                DeValue::String(std::borrow::Cow::Owned(v.to_string())),
            )
        };
        let key = |k: &str| Spanned::new(at.clone(), std::borrow::Cow::Owned(k.to_string()));
        t.insert(key("name"), s(name.get_ref()));
        let placeholder = match kind {
            Kind::Icmp => "module.invalid",
            _ => "module.invalid:1",
        };
        t.insert(key("target"), s(placeholder));
    }
    read(value, kind, file, sources, errors)
}

/// Resolve one probe of these kinds; problems go to `ctx`.
pub(crate) fn resolve(p: &RawKindProbe, defaults: &Defaults, ctx: &mut Ctx<'_>) -> Option<Probe> {
    let errors_before = ctx.errors.len();
    let common = p.common();
    let name = common.name.get_ref().clone();
    let name_at = common.name.span().start;
    if !valid_name(&name) {
        ctx.err(
            name_at,
            format!("invalid probe name {name:?}: use 1 to {MAX_NAME_LEN} of a-z, 0-9, _ and -"),
        );
    }
    let interval = common.interval.map_or(defaults.interval, |i| i.get_ref().0);
    let timeout = common.timeout.map_or(defaults.timeout, |t| t.get_ref().0);
    let timing_at = common
        .timeout
        .or(common.interval)
        .map_or(name_at, |s| s.span().start);
    let interval_at = common.interval.map(|s| s.span().start);
    super::probe::check_timing(&name, interval, interval_at, timeout, timing_at, ctx);
    let mut labels = defaults.labels.clone();
    if let Some(l) = common.labels {
        labels.extend(resolve_labels(l, name_at, ctx));
    }
    let resolved = match p {
        RawKindProbe::Tcp(p) => tcp::resolve(p, timeout, ctx),
        RawKindProbe::Dns(p) => dns::resolve(p, timeout, ctx),
        RawKindProbe::Icmp(p) => icmp::resolve(p, timeout, ctx),
        RawKindProbe::Grpc(p) => grpc::resolve(p, timeout, ctx),
    };
    let (target, spec) = resolved?;
    if ctx.errors.len() > errors_before {
        return None;
    }
    Some(Probe {
        name,
        kind: common.kind,
        interval,
        timeout,
        labels,
        target,
        spec,
        // [probe.alert] overrides are not read for these kinds yet: [alert] applies.
        alert: Default::default(),
        // Per-probe `metrics` overrides are not read for these kinds yet: `[metrics]` applies.
        metrics: defaults.metrics.with(None),
    })
}

/// A TLS client for a tcp or grpc probe; `tls_config`'s files are loaded relative to the file.
fn tls_client(
    t: Option<&Spanned<RawTls>>,
    alpn: &[&[u8]],
    at: usize,
    ctx: &mut Ctx<'_>,
) -> Option<TlsClient> {
    let options: TlsOptions = super::probe::tls_options(t, ctx);
    TlsClient::new(&options, alpn)
        .map_err(|e| ctx.err(t.map_or(at, |t| t.span().start), e.to_string()))
        .ok()
}

/// `host:port` with a required port (no scheme default for these kinds).
fn host_port(
    s: &Spanned<String>,
    default_port: Option<u16>,
    ctx: &mut Ctx<'_>,
) -> Option<(String, u16)> {
    let text = s.get_ref().trim();
    let has_port = if let Some(rest) = text.strip_prefix('[') {
        rest.split_once(']')
            .is_some_and(|(_, tail)| tail.starts_with(':'))
    } else {
        text.matches(':').count() == 1
    };
    let parsed = match (has_port, default_port) {
        (true, _) => parse_host_port(text),
        (false, Some(port)) => parse_host_port(text).map(|(h, _)| (h, port)),
        (false, None) => Err(format!("invalid target {text:?}: expected host:port")),
    };
    parsed.map_err(|e| ctx.err(s.span().start, e)).ok()
}

/// `target` for /probe: the same parsing as the config's, on a request's text.
pub(crate) fn with_target(spec: &Spec, target: &str) -> Result<(Spec, String), String> {
    let port_of = |default: Option<u16>| -> Result<(String, u16), String> {
        let t = target.trim();
        let t = t.split_once("://").map_or(t, |(_, rest)| rest);
        let has_port = if let Some(rest) = t.strip_prefix('[') {
            rest.split_once(']')
                .is_some_and(|(_, tail)| tail.starts_with(':'))
        } else {
            t.matches(':').count() == 1
        };
        match (has_port, default) {
            (true, _) => parse_host_port(t),
            (false, Some(p)) => parse_host_port(t).map(|(h, _)| (h, p)),
            (false, None) => Err(format!("invalid target {t:?}: expected host:port")),
        }
    };
    let spec = match spec {
        Spec::Tcp(s) => {
            let (host, port) = port_of(None)?;
            let mut s = s.as_ref().clone();
            (s.host, s.port) = (host, port);
            Spec::Tcp(Box::new(s))
        }
        Spec::Dns(s) => {
            let (host, port) = port_of(Some(53))?;
            let mut s = s.as_ref().clone();
            (s.host, s.port) = (host, port);
            Spec::Dns(Box::new(s))
        }
        Spec::Grpc(s) => {
            let (host, port) = port_of(None)?;
            let mut s = s.as_ref().clone();
            (s.host, s.port) = (host, port);
            Spec::Grpc(Box::new(s))
        }
        Spec::Icmp(s) => {
            let mut s = s.as_ref().clone();
            s.host = icmp::parse_host(target)?;
            Spec::Icmp(Box::new(s))
        }
        Spec::Http(_) | Spec::Tls(_) | Spec::Scrape(_) => {
            return Err("not a tcp, dns, icmp or grpc module".into())
        }
    };
    let shown = display_target(&spec).unwrap_or_default();
    Ok((spec, shown))
}

/// How these kinds' targets are shown and matched by `probe_allow`: `tcp://host:port`,
/// `dns://server:port`, `icmp://host`, `grpc://host:port`.
pub(crate) fn display_target(spec: &Spec) -> Option<String> {
    let hp = |scheme: &str, host: &str, port: u16| {
        if host.contains(':') {
            format!("{scheme}://[{host}]:{port}")
        } else {
            format!("{scheme}://{host}:{port}")
        }
    };
    Some(match spec {
        Spec::Tcp(s) => hp("tcp", &s.host, s.port),
        Spec::Dns(s) => hp("dns", &s.host, s.port),
        Spec::Grpc(s) => hp("grpc", &s.host, s.port),
        Spec::Icmp(s) if s.host.contains(':') => format!("icmp://[{}]", s.host),
        Spec::Icmp(s) => format!("icmp://{}", s.host),
        _ => return None,
    })
}

/// Where a run of these kinds first connects.
pub(crate) fn dial_host(spec: &Spec) -> Option<(String, u16)> {
    match spec {
        Spec::Tcp(s) => Some((s.host.clone(), s.port)),
        Spec::Dns(s) => Some((s.host.clone(), s.port)),
        Spec::Grpc(s) => Some((s.host.clone(), s.port)),
        Spec::Icmp(s) => Some((s.host.clone(), 0)),
        _ => None,
    }
}

/// Days ≥ 0 and finite.
fn check_days(d: Option<&Spanned<f64>>, ctx: &mut Ctx<'_>) -> Option<f64> {
    let d = d?;
    if !d.get_ref().is_finite() || *d.get_ref() < 0.0 {
        ctx.err(
            d.span().start,
            "min_days_remaining must be a number of days ≥ 0",
        );
    }
    Some(*d.get_ref())
}

fn compile(re: &Spanned<String>, ctx: &mut Ctx<'_>) -> Option<regex::Regex> {
    regex::RegexBuilder::new(re.get_ref())
        .size_limit(1 << 20)
        .build()
        .map_err(|e| ctx.err(re.span().start, format!("invalid regex: {e}")))
        .ok()
}
