//! One config schema per probe kind.
//!
//! The loader peeks at a `[[probe]]` (or `[module.NAME]`) table's `kind` and deserializes it
//! into that kind's raw struct (`deny_unknown_fields`, no `flatten`), so a key of another kind
//! is reported by serde at its own line and column. Each kind's file holds its raw struct and
//! its resolution into a runnable [`Spec`]. `[[probe]]`, `[module.NAME]` and `vantage probe`
//! all go through [`read`] and [`resolve`].
//!
//! Adding a kind: a file here with `Raw<Kind>` (the common keys name, kind, interval, timeout,
//! labels, alert, metrics repeated, plus its own) and `resolve`, its type in `common_keys!` and
//! a variant in [`RawKindProbe`], [`Kind`] and [`Spec`], a runner in `probes/src/<kind>.rs`, and its metrics in
//! `src/metrics/kinds.rs`.

mod dns;
mod expect;
mod grpc;
mod http;
mod icmp;
mod scrape;
mod tcp;
mod tls;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::de::DeserializeOwned;
use toml::de::DeValue;
use toml::Spanned;

use super::load::{self, FileId, Located, Sources};
use super::probe::{parse_host_port, valid_name, Probe, Spec, MAX_NAME_LEN};
use super::raw::{Dur, Kind, RawMetrics, RawProbeAlert, RawTls};
use super::{resolve_labels, Ctx, Defaults};
use vantage_probes::{TlsClient, TlsOptions};

pub use dns::RawDns;
pub use grpc::RawGrpc;
pub use http::RawHttp;
pub use icmp::RawIcmp;
pub use scrape::RawScrape;
pub use tcp::RawTcp;
pub use tls::RawTlsProbe;

/// A `[[probe]]`, read into its kind's own schema.
#[derive(Debug, Clone)]
pub enum RawKindProbe {
    Http(Box<RawHttp>),
    Tls(Box<RawTlsProbe>),
    Scrape(Box<RawScrape>),
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
    pub alert: Option<&'a Spanned<RawProbeAlert>>,
    pub metrics: Option<&'a Spanned<RawMetrics>>,
}

/// `common()` for raw structs, which repeat the common keys (no `flatten`: it would break
/// `deny_unknown_fields`).
macro_rules! common_keys {
    ($($raw:ty),*) => {$(
        impl $raw {
            pub(super) fn common(&self) -> Common<'_> {
                Common {
                    name: &self.name,
                    kind: *self.kind.get_ref(),
                    interval: self.interval.as_ref(),
                    timeout: self.timeout.as_ref(),
                    labels: self.labels.as_ref(),
                    alert: self.alert.as_ref(),
                    metrics: self.metrics.as_ref(),
                }
            }
        }
    )*};
}

common_keys!(
    RawHttp,
    RawTlsProbe,
    RawScrape,
    RawTcp,
    RawDns,
    RawIcmp,
    RawGrpc
);

impl RawKindProbe {
    pub fn name(&self) -> &Spanned<String> {
        self.common().name
    }

    fn common(&self) -> Common<'_> {
        match self {
            RawKindProbe::Http(p) => p.common(),
            RawKindProbe::Tls(p) => p.common(),
            RawKindProbe::Scrape(p) => p.common(),
            RawKindProbe::Tcp(p) => p.common(),
            RawKindProbe::Dns(p) => p.common(),
            RawKindProbe::Icmp(p) => p.common(),
            RawKindProbe::Grpc(p) => p.common(),
        }
    }
}

/// The kind a `[[probe]]` table names, if it names a known one.
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
            "http" => Some(Kind::Http),
            "tls" => Some(Kind::Tls),
            "scrape" => Some(Kind::Scrape),
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

/// Only the `kind` of a table, to report a missing or unknown one where it is.
#[derive(serde::Deserialize)]
struct KindOnly {
    #[allow(dead_code)]
    kind: Kind,
}

/// Deserialize a `[[probe]]` table into its kind's raw struct. A table without a known `kind`
/// is reported there (a missing key, or an unknown value with the kinds there are).
pub fn read(
    value: Spanned<DeValue<'_>>,
    file: FileId,
    sources: &Sources,
    errors: &mut Vec<load::Diagnostic>,
) -> Option<Located<RawKindProbe>> {
    let Some(kind) = peek_kind(&value) else {
        if !matches!(value.get_ref(), DeValue::Table(_)) {
            errors.push(sources.diag(
                file,
                value.span().start,
                "a probe must be a table, written [[probe]]",
            ));
            return None;
        }
        // A `kind` that is not a string (`kind = { http = {} }` is how serde writes an enum as
        // a table) is refused here, so no probe vanishes without a word.
        if let DeValue::Table(t) = value.get_ref() {
            if let Some((_, k)) = t.iter().find(|(k, _)| k.get_ref().as_ref() == "kind") {
                if !matches!(k.get_ref(), DeValue::String(_)) {
                    errors.push(sources.diag(
                        file,
                        k.span().start,
                        format!("kind must be a string, one of: {}", Kind::NAMES.join(", ")),
                    ));
                    return None;
                }
            }
        }
        // Missing, or an unknown name: serde says which, at its place. Should it accept what
        // it was given after all, the table is still refused, and said to be.
        let before = errors.len();
        if load::deserialize::<KindOnly>(value.clone(), file, sources, errors).is_some()
            || errors.len() == before
        {
            errors.push(sources.diag(
                file,
                value.span().start,
                format!("a probe needs kind = one of: {}", Kind::NAMES.join(", ")),
            ));
        }
        return None;
    };
    let before = errors.len();
    let read = match kind {
        Kind::Http => located(value, file, sources, errors, |p| {
            RawKindProbe::Http(Box::new(p))
        }),
        Kind::Tls => located(value, file, sources, errors, |p| {
            RawKindProbe::Tls(Box::new(p))
        }),
        Kind::Scrape => located(value, file, sources, errors, |p| {
            RawKindProbe::Scrape(Box::new(p))
        }),
        Kind::Tcp => located(value, file, sources, errors, RawKindProbe::Tcp),
        Kind::Dns => located(value, file, sources, errors, RawKindProbe::Dns),
        Kind::Icmp => located(value, file, sources, errors, RawKindProbe::Icmp),
        Kind::Grpc => located(value, file, sources, errors, RawKindProbe::Grpc),
    };
    for d in &mut errors[before..] {
        if let Some(better) = misplaced(&d.message, kind) {
            d.message = better;
        }
    }
    read
}

/// The keys a raw struct takes, as serde lists them: asked once by offering it a key no struct
/// has, so the lists cannot drift from the structs.
fn keys_of<T: DeserializeOwned>() -> Vec<String> {
    let mut t = toml::Table::new();
    t.insert("\u{0}".into(), toml::Value::Integer(0));
    let Err(e) = toml::Value::Table(t).try_into::<T>() else {
        return Vec::new();
    };
    let text = e.to_string();
    let Some((_, list)) = text.split_once("expected one of ") else {
        return Vec::new();
    };
    list.lines()
        .next()
        .unwrap_or_default()
        .split(", ")
        .map(|k| k.trim().trim_matches('`').to_string())
        .collect()
}

/// One kind's own keys, and its `expect` keys.
struct KindKeys {
    kind: Kind,
    top: Vec<String>,
    expect: Vec<String>,
}

fn kind_keys() -> &'static [KindKeys] {
    static KEYS: std::sync::OnceLock<Vec<KindKeys>> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        use super::raw::{RawHttpExpect, RawTlsExpect};
        let keys = |kind, top, expect| KindKeys { kind, top, expect };
        vec![
            keys(Kind::Http, keys_of::<RawHttp>(), keys_of::<RawHttpExpect>()),
            keys(
                Kind::Tls,
                keys_of::<RawTlsProbe>(),
                keys_of::<RawTlsExpect>(),
            ),
            keys(Kind::Scrape, keys_of::<RawScrape>(), Vec::new()),
            keys(Kind::Tcp, keys_of::<RawTcp>(), Vec::new()),
            keys(Kind::Dns, keys_of::<RawDns>(), Vec::new()),
            keys(Kind::Icmp, keys_of::<RawIcmp>(), Vec::new()),
            keys(Kind::Grpc, keys_of::<RawGrpc>(), Vec::new()),
        ]
    })
}

/// serde's "unknown key" for a key that another kind takes, said in those words.
fn misplaced(message: &str, kind: Kind) -> Option<String> {
    let key = message
        .strip_prefix("unknown key \"")?
        .split_once('"')?
        .0
        .to_string();
    let owners = |expect: bool| -> Vec<&'static str> {
        kind_keys()
            .iter()
            .filter(|k| k.kind != kind && if expect { &k.expect } else { &k.top }.contains(&key))
            .map(|k| k.kind.as_str())
            .collect()
    };
    let (shown, owners) = match owners(false) {
        o if !o.is_empty() => (key.clone(), o),
        _ => (format!("expect.{key}"), owners(true)),
    };
    let (last, rest) = owners.split_last()?;
    let kinds = if rest.is_empty() {
        format!("{last:?}")
    } else {
        let rest: Vec<String> = rest.iter().map(|k| format!("{k:?}")).collect();
        format!("{} or {last:?}", rest.join(", "))
    };
    Some(format!(
        "key {shown:?} applies to kind {kinds}, not to kind {:?}",
        kind.as_str()
    ))
}

/// Deserialize a `[module.NAME]` of kind `kind`: the module's name becomes the probe's, and the
/// request's target replaces a placeholder, as blackbox_exporter's modules work.
pub fn read_module(
    name: &Spanned<String>,
    mut value: Spanned<DeValue<'_>>,
    file: FileId,
    sources: &Sources,
    errors: &mut Vec<load::Diagnostic>,
) -> Option<Located<RawKindProbe>> {
    let kind = peek_kind(&value);
    if kind == Some(Kind::Scrape) {
        errors.push(sources.diag(
            file,
            value.span().start,
            "a scrape flow cannot be a /probe module: its steps name their own URLs",
        ));
        return None;
    }
    if let DeValue::Table(t) = value.get_mut() {
        for key in [
            "name", "target", "url", "interval", "labels", "alert", "metrics",
        ] {
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
        match kind {
            Some(Kind::Http) => t.insert(key("url"), s("http://module.invalid/")),
            Some(Kind::Tls) => t.insert(key("target"), s("module.invalid:443")),
            Some(Kind::Icmp) => t.insert(key("target"), s("module.invalid")),
            _ => t.insert(key("target"), s("module.invalid:1")),
        };
    }
    read(value, file, sources, errors)
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
    let alert = super::alert::resolve_probe_alert(common.alert, ctx);
    let metrics = defaults.metrics.with(common.metrics.map(|m| m.get_ref()));
    let resolved = match p {
        RawKindProbe::Http(p) => http::resolve(p, timeout, ctx),
        RawKindProbe::Tls(p) => tls::resolve(p, timeout, ctx),
        RawKindProbe::Scrape(p) => scrape::resolve(p, timeout, ctx),
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
        alert,
        metrics,
    })
}

/// The probe `vantage probe TARGET` runs (and the built-in `/probe` modules): a `[[probe]]`
/// table written for it, then read and resolved as any other, so it is checked as one.
pub(crate) fn adhoc(target: &str, kind: Kind, timeout: Duration) -> Result<Probe, String> {
    if timeout.is_zero() {
        return Err("timeout must be greater than 0".into());
    }
    if let Some(problem) = super::probe::duration_problem("timeout", timeout) {
        return Err(problem);
    }
    // The run's interval is the timeout and a second, and an interval is at most 7d.
    if timeout.saturating_add(Duration::from_secs(1)) > super::probe::MAX_PROBE_DURATION {
        return Err("an ad-hoc probe's timeout must be under 7d".into());
    }
    let mut table = toml::Table::new();
    let mut put = |k: &str, v: String| table.insert(k.to_string(), toml::Value::String(v));
    put("name", "adhoc".into());
    put("kind", kind.as_str().into());
    match kind {
        Kind::Http => put("url", target.into()),
        Kind::Tls => {
            // A URL is taken for its host and port, as a user pasting one expects.
            let hostport = match url::Url::parse(target) {
                Ok(u) if u.has_host() && u.scheme() != "localhost" => format!(
                    "{}:{}",
                    u.host_str().unwrap_or_default(),
                    u.port_or_known_default().unwrap_or(443)
                ),
                _ => target.to_string(),
            };
            put("target", hostport)
        }
        Kind::Scrape | Kind::Tcp | Kind::Dns | Kind::Icmp | Kind::Grpc => {
            return Err(format!(
                "an ad-hoc probe is http or tls; kind {:?} needs a config",
                kind.as_str()
            ))
        }
    };
    put("timeout", format!("{}ns", timeout.as_nanos()));
    let interval = timeout.saturating_add(Duration::from_secs(1));
    put("interval", format!("{}ns", interval.as_nanos()));
    let text = toml::to_string(&table).map_err(|e| e.to_string())?;

    let mut sources = Sources::default();
    let file = sources.add("<command line>".into(), Default::default(), text.clone());
    let mut errors = Vec::new();
    let root = toml::de::DeTable::parse(&text).map_err(|e| e.to_string())?;
    let span = root.span();
    let value = Spanned::new(span, DeValue::Table(root.into_inner()));
    let raw = read(value, file, &sources, &mut errors);
    // `vantage probe http://user:pass@host/`: the password is a secret here too.
    let mut redactor = crate::secret::Redactor::default();
    if let Some(url) = (kind == Kind::Http)
        .then(|| url::Url::parse(target).ok())
        .flatten()
    {
        super::add_userinfo_secrets(&url, &mut redactor);
    }
    let clients = super::probe::Clients::default();
    let defaults = Defaults {
        interval,
        timeout,
        labels: BTreeMap::new(),
        metrics: Default::default(),
    };
    let probe = raw.and_then(|raw| {
        let mut ctx = Ctx {
            sources: &sources,
            redactor: &redactor,
            clients: &clients,
            file,
            errors: &mut errors,
        };
        resolve(&raw.value, &defaults, &mut ctx)
    });
    match probe {
        Some(p) if errors.is_empty() => Ok(p),
        _ => Err(errors
            .into_iter()
            .map(|d| d.message)
            .collect::<Vec<_>>()
            .join("; ")),
    }
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
