//! Resolving `[[probe]]` tables into runnable probes: kind-specific keys, URLs, TLS files,
//! expectations. Problems are collected into the shared context, never returned early.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use http::header::{
    HeaderMap, HeaderName, HeaderValue, ACCEPT_ENCODING, AUTHORIZATION, CONTENT_TYPE,
};
use http::Method;
use regex::Regex;
use serde_json_path::JsonPath;
use tokio::time::Instant;
use toml::Spanned;
use url::Url;
use vantage_probes::{
    run_http, run_tls, Clock, HttpExpect, HttpSpec, HttpVersions, IpFamily, JsonAssertion, JsonOp,
    Outcome, Request, TlsClient, TlsExpect, TlsOptions, TlsSpec, Transport,
};

use super::raw::{Kind, RawExpect, RawJsonAssertion, RawProbe, RawTls};
use super::{resolve_labels, Ctx, Defaults};
use crate::secret::Redactor;

const DEFAULT_MAX_BODY: u64 = 10 * 1024 * 1024;
const MAX_MAX_BODY: u64 = 1024 * 1024 * 1024;
const DEFAULT_MAX_REDIRECTS: u32 = 10;
const MAX_MAX_REDIRECTS: u32 = 50;
pub(super) const MAX_NAME_LEN: usize = 128;

/// One probe, resolved.
#[derive(Clone)]
pub struct Probe {
    pub name: String,
    pub kind: Kind,
    pub interval: Duration,
    pub timeout: Duration,
    pub labels: BTreeMap<String, String>,
    /// What is probed, for humans: the URL without credentials, or `host:port`. Redact on output.
    pub target: String,
    pub spec: Spec,
    /// `[probe.alert]`: this probe's overrides of `[alert]`'s thresholds.
    pub alert: super::ProbeAlert,
    /// `[metrics]` with this probe's `metrics` keys: its opt-in families.
    pub metrics: super::ProbeMetrics,
}

/// The runnable part of a probe.
#[derive(Clone)]
pub enum Spec {
    Http(Box<HttpSpec>),
    Tls(Box<TlsSpec>),
    Scrape(Box<vantage_probes::FlowSpec>),
    Tcp(Box<vantage_probes::TcpSpec>),
    Dns(Box<vantage_probes::DnsSpec>),
    Icmp(Box<vantage_probes::IcmpSpec>),
    Grpc(Box<vantage_probes::GrpcSpec>),
}

impl Probe {
    /// Run once. `scheduled` is when the run was due; the outcome's duration counts from there.
    pub async fn run(&self, clock: &Clock, scheduled: Instant) -> Outcome {
        match &self.spec {
            Spec::Http(s) => run_http(s, clock, scheduled).await,
            Spec::Tls(s) => run_tls(s, clock, scheduled).await,
            Spec::Scrape(s) => vantage_probes::run_flow(s, clock, scheduled).await,
            Spec::Tcp(s) => vantage_probes::run_tcp(s, clock, scheduled).await,
            Spec::Dns(s) => vantage_probes::run_dns(s, clock, scheduled).await,
            Spec::Icmp(s) => vantage_probes::run_icmp(s, clock, scheduled).await,
            Spec::Grpc(s) => vantage_probes::run_grpc(s, clock, scheduled).await,
        }
    }

    /// Where a run first connects: the proxy when one is set, else the target; for a flow, its
    /// first step's host. The one home of this answer (rate limits, address checks).
    pub fn dial_host(&self) -> Option<(String, u16)> {
        let from_url = |u: &Url| {
            Some((
                u.host_str()?.trim_matches(['[', ']']).to_string(),
                u.port_or_known_default()?,
            ))
        };
        match &self.spec {
            Spec::Http(s) => from_url(s.transport.proxy.as_ref().unwrap_or(&s.request.url)),
            Spec::Tls(s) => Some((s.host.clone(), s.port)),
            Spec::Scrape(s) => match &s.transport.proxy {
                Some(proxy) => from_url(proxy),
                // The first step's URL may hold {{ variables }} elsewhere; its host may not.
                None => Url::parse(&self.target).ok().as_ref().and_then(from_url),
            },
            Spec::Tcp(_) | Spec::Dns(_) | Spec::Icmp(_) | Spec::Grpc(_) => {
                super::kinds::dial_host(&self.spec)
            }
        }
    }

    /// The same probe under another name.
    pub fn renamed(mut self, name: &str) -> Probe {
        self.name = name.to_string();
        self
    }

    /// This probe (a `/probe` module) aimed at `target`: a URL for http (`http://` is assumed
    /// when no scheme is given, as blackbox_exporter does), `host:port` for tls.
    pub fn with_target(&self, target: &str) -> Result<Probe, String> {
        let spec = match &self.spec {
            Spec::Http(s) => {
                let with_scheme;
                let target = if target.contains("://") {
                    target
                } else {
                    with_scheme = format!("http://{target}");
                    &with_scheme
                };
                let mut s = s.as_ref().clone();
                s.request.url = parse_url(target)?;
                Spec::Http(Box::new(s))
            }
            Spec::Tls(s) => {
                let mut s = s.as_ref().clone();
                let (host, port) = parse_host_port(target)?;
                s.host = host;
                s.port = port;
                Spec::Tls(Box::new(s))
            }
            Spec::Scrape(_) => return Err("scrape flows cannot be /probe modules".into()),
            Spec::Tcp(_) | Spec::Dns(_) | Spec::Icmp(_) | Spec::Grpc(_) => {
                super::kinds::with_target(&self.spec, target)?.0
            }
        };
        let target = match &spec {
            Spec::Http(s) => display_url(&s.request.url),
            Spec::Tls(s) => format!("{}:{}", s.host, s.port),
            Spec::Scrape(_) => self.target.clone(),
            other => super::kinds::display_target(other).unwrap_or_default(),
        };
        Ok(Probe {
            name: self.name.clone(),
            kind: self.kind,
            interval: self.interval,
            timeout: self.timeout,
            labels: self.labels.clone(),
            target,
            spec,
            alert: self.alert,
            metrics: self.metrics,
        })
    }

    /// A shorter (or longer) limit for the whole run.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
        match &mut self.spec {
            Spec::Http(s) => s.timeout = timeout,
            Spec::Tls(s) => s.timeout = timeout,
            Spec::Scrape(s) => s.timeout = timeout,
            Spec::Tcp(s) => s.timeout = timeout,
            Spec::Dns(s) => s.timeout = timeout,
            Spec::Icmp(s) => s.timeout = timeout,
            Spec::Grpc(s) => s.timeout = timeout,
        }
    }

    /// Refuse connections to addresses `filter` rejects, on every hop.
    pub fn set_filter(&mut self, filter: vantage_probes::AddressFilter) {
        match &mut self.spec {
            Spec::Http(s) => s.transport.filter = Some(filter),
            Spec::Tls(s) => s.filter = Some(filter),
            Spec::Scrape(s) => s.transport.filter = Some(filter),
            Spec::Tcp(s) => s.filter = Some(filter),
            Spec::Dns(s) => s.filter = Some(filter),
            Spec::Icmp(s) => s.filter = Some(filter),
            Spec::Grpc(s) => s.filter = Some(filter),
        }
    }

    /// A probe without a config file, for `vantage probe URL`.
    pub fn adhoc(target: &str, kind: Kind, timeout: Duration) -> Result<Probe, String> {
        let name = "adhoc".to_string();
        if timeout.is_zero() {
            return Err("timeout must be greater than 0".into());
        }
        if let Some(problem) = duration_problem("timeout", timeout) {
            return Err(problem);
        }
        let interval = timeout.saturating_add(Duration::from_secs(1));
        match kind {
            Kind::Scrape => Err("an ad-hoc probe is http or tls; flows need a config".into()),
            Kind::Tcp | Kind::Dns | Kind::Icmp | Kind::Grpc => Err(format!(
                "an ad-hoc probe is http or tls; kind {:?} needs a config",
                kind.as_str()
            )),
            Kind::Http => {
                let url = parse_url(target)?;
                // `vantage probe http://user:pass@host/`: the password is a secret here too.
                let mut redactor = Redactor::default();
                super::add_userinfo_secrets(&url, &mut redactor);
                let transport = Transport {
                    follow_redirects: true,
                    max_redirects: DEFAULT_MAX_REDIRECTS,
                    max_body: DEFAULT_MAX_BODY,
                    ip: IpFamily::Any,
                    proxy: None,
                    tls: http_tls_client(&TlsOptions::default(), HttpVersions::default())
                        .map_err(|e| e.to_string())?,
                    server_name: None,
                    insecure_skip_verify: false,
                    cert_min_days: None,
                    filter: None,
                    source_ip: None,
                    versions: HttpVersions::default(),
                };
                Ok(Probe {
                    name,
                    kind,
                    interval,
                    timeout,
                    labels: BTreeMap::new(),
                    alert: super::ProbeAlert::default(),
                    metrics: super::ProbeMetrics::default(),
                    target: display_url(&url),
                    spec: Spec::Http(Box::new(HttpSpec {
                        request: Request {
                            url,
                            method: Method::GET,
                            headers: HeaderMap::new(),
                            body: None,
                        },
                        transport,
                        timeout,
                        expect: HttpExpect::default(),
                        redactor,
                        oauth2: None,
                    })),
                })
            }
            Kind::Tls => {
                let hostport = match Url::parse(target) {
                    Ok(u) if u.has_host() && u.scheme() != "localhost" => format!(
                        "{}:{}",
                        u.host_str().unwrap_or_default(),
                        u.port_or_known_default().unwrap_or(443)
                    ),
                    _ => target.to_string(),
                };
                let (host, port) = parse_host_port(&hostport)?;
                let client =
                    TlsClient::new(&TlsOptions::default(), &[]).map_err(|e| e.to_string())?;
                Ok(Probe {
                    name,
                    kind,
                    interval,
                    timeout,
                    labels: BTreeMap::new(),
                    alert: super::ProbeAlert::default(),
                    metrics: super::ProbeMetrics::default(),
                    target: hostport,
                    spec: Spec::Tls(Box::new(TlsSpec {
                        host,
                        port,
                        server_name: None,
                        ip: IpFamily::Any,
                        timeout,
                        client,
                        expect: TlsExpect::default(),
                        filter: None,
                    })),
                })
            }
        }
    }
}

pub(super) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Keys written for one kind but used on another.
fn misplaced_keys(p: &RawProbe, e: Option<&RawExpect>) -> Vec<(&'static str, usize, Kind)> {
    fn at<T>(v: &Option<Spanned<T>>) -> Option<usize> {
        v.as_ref().map(|s| s.span().start)
    }
    let mut out = Vec::new();
    let http_only = [
        ("url", at(&p.url)),
        ("method", at(&p.method)),
        ("body", at(&p.body)),
        ("json", at(&p.json)),
        ("follow_redirects", at(&p.follow_redirects)),
        ("max_redirects", at(&p.max_redirects)),
        ("max_body", at(&p.max_body)),
        ("proxy", at(&p.proxy)),
        ("bearer_token", at(&p.bearer_token)),
        ("compression", at(&p.compression)),
        ("source_ip", at(&p.source_ip)),
        ("http_versions", at(&p.http_versions)),
        ("basic_auth", at(&p.basic_auth)),
        ("bearer_token_file", at(&p.bearer_token_file)),
        ("oauth2", at(&p.oauth2)),
    ];
    let headers_at = p.headers.as_ref().map(|h| {
        h.values()
            .next()
            .map_or(p.name.span().start, |v| v.span().start)
    });
    let tls_only = [
        ("target", at(&p.target)),
        ("server_name", at(&p.server_name)),
    ];
    out.extend(
        http_only
            .into_iter()
            .chain([("headers", headers_at)])
            .filter_map(|(k, a)| a.map(|a| (k, a, Kind::Http))),
    );
    out.extend(
        tls_only
            .into_iter()
            .filter_map(|(k, a)| a.map(|a| (k, a, Kind::Tls))),
    );
    if let Some(e) = e {
        let ex_headers = e
            .headers
            .as_ref()
            .map(|h| h.values().next().map_or(0, |v| v.span().start));
        let http_expect = [
            ("expect.status", at(&e.status)),
            ("expect.body_contains", at(&e.body_contains)),
            (
                "expect.body_regex",
                e.body_regex
                    .as_ref()
                    .and_then(|v| v.first())
                    .map(|s| s.span().start),
            ),
            (
                "expect.body_not_regex",
                e.body_not_regex
                    .as_ref()
                    .and_then(|v| v.first())
                    .map(|s| s.span().start),
            ),
            ("expect.headers", ex_headers),
            (
                "expect.headers_not",
                e.headers_not
                    .as_ref()
                    .map(|h| h.values().next().map_or(0, |v| v.span().start)),
            ),
            ("expect.ssl", at(&e.ssl)),
            (
                "expect.json",
                e.json
                    .as_ref()
                    .and_then(|v| v.first())
                    .map(|s| s.span().start),
            ),
            ("expect.health", at(&e.health)),
            ("expect.latency_under", at(&e.latency_under)),
            ("expect.cert_min_days", at(&e.cert_min_days)),
        ];
        let tls_expect = [
            ("expect.min_days_remaining", at(&e.min_days_remaining)),
            ("expect.verify", at(&e.verify)),
            ("expect.min_version", at(&e.min_version)),
        ];
        out.extend(
            http_expect
                .into_iter()
                .filter_map(|(k, a)| a.map(|a| (k, a, Kind::Http))),
        );
        out.extend(
            tls_expect
                .into_iter()
                .filter_map(|(k, a)| a.map(|a| (k, a, Kind::Tls))),
        );
    }
    out
}

pub(super) fn resolve_probe(p: &RawProbe, defaults: &Defaults, ctx: &mut Ctx<'_>) -> Option<Probe> {
    let errors_before = ctx.errors.len();
    let name = p.name.get_ref().clone();
    if !valid_name(&name) {
        ctx.err(
            p.name.span().start,
            format!("invalid probe name {name:?}: use 1 to {MAX_NAME_LEN} of a-z, 0-9, _ and -"),
        );
    }
    let kind = *p.kind.get_ref();
    let expect = p.expect.as_ref().map(|e| e.get_ref());
    const SHARED_WITH_SCRAPE: [&str; 4] =
        ["follow_redirects", "max_redirects", "max_body", "proxy"];
    if let (Some(steps), false) = (&p.step, kind == Kind::Scrape) {
        let at = steps
            .first()
            .map_or(p.name.span().start, |s| s.span().start);
        ctx.err(
            at,
            format!(
                "[[probe.step]] applies to kind \"scrape\", not to kind {:?}",
                kind.as_str()
            ),
        );
    }
    let expect = if kind == Kind::Scrape { None } else { expect };
    for (key, at, only) in misplaced_keys(p, expect) {
        if kind == Kind::Scrape && only == Kind::Http && SHARED_WITH_SCRAPE.contains(&key) {
            continue;
        }
        if only != kind {
            ctx.err(
                at,
                format!(
                    "key {key:?} applies to kind {:?}, not to kind {:?}",
                    only.as_str(),
                    kind.as_str()
                ),
            );
        }
    }

    let interval = p
        .interval
        .as_ref()
        .map_or(defaults.interval, |i| i.get_ref().0);
    let timeout = p
        .timeout
        .as_ref()
        .map_or(defaults.timeout, |t| t.get_ref().0);
    let timing_at = p
        .timeout
        .as_ref()
        .or(p.interval.as_ref())
        .map_or(p.name.span().start, |s| s.span().start);
    let interval_at = p.interval.as_ref().map(|s| s.span().start);
    check_timing(&name, interval, interval_at, timeout, timing_at, ctx);
    let mut labels = defaults.labels.clone();
    if let Some(l) = &p.labels {
        labels.extend(resolve_labels(l, p.name.span().start, ctx));
    }

    let alert = super::alert::resolve_probe_alert(p.alert.as_ref(), ctx);
    let metrics = defaults
        .metrics
        .with(p.metrics.as_ref().map(|m| m.get_ref()));
    let (target, spec) = match kind {
        Kind::Http => resolve_http(p, timeout, ctx)?,
        Kind::Tls => resolve_tls(p, timeout, ctx)?,
        Kind::Scrape => resolve_scrape(p, timeout, ctx)?,
        // The loader sends these kinds to config/kinds/, never here.
        Kind::Tcp | Kind::Dns | Kind::Icmp | Kind::Grpc => return None,
    };
    if ctx.errors.len() > errors_before {
        return None;
    }
    Some(Probe {
        name,
        kind,
        interval,
        timeout,
        labels,
        target,
        spec,
        alert,
        metrics,
    })
}

/// Shortest and longest probe interval, and the longest any probe timing may be (SPEC §10).
pub(crate) const MIN_INTERVAL: Duration = Duration::from_millis(50);
pub(crate) const MAX_PROBE_DURATION: Duration = Duration::from_secs(7 * 86_400);

/// The interval and timeout rules every kind shares: the interval within bounds (reported at the
/// probe's own `interval`; one inherited from `[defaults]` is reported there), the timeout above
/// zero and shorter than the interval.
pub(crate) fn check_timing(
    name: &str,
    interval: Duration,
    interval_at: Option<usize>,
    timeout: Duration,
    timing_at: usize,
    ctx: &mut Ctx<'_>,
) {
    if let Some(problem) = interval_problem(interval) {
        if let Some(at) = interval_at {
            ctx.err(at, problem);
        }
    } else if timeout.is_zero() {
        ctx.err(timing_at, "timeout must be greater than 0");
    } else if timeout >= interval {
        ctx.err(
            timing_at,
            format!(
                "timeout ({}) must be shorter than interval ({}), or runs of probe {name:?} would overlap",
                humantime::format_duration(timeout),
                humantime::format_duration(interval)
            ),
        );
    }
}

/// Why `interval` is out of bounds, if it is.
pub(crate) fn interval_problem(interval: Duration) -> Option<String> {
    if interval < MIN_INTERVAL || interval > MAX_PROBE_DURATION {
        return Some(format!(
            "interval {} is out of bounds: it must be between 50ms and 7d",
            humantime::format_duration(interval)
        ));
    }
    None
}

/// Why a probe timing other than the interval (a timeout, a poll interval, a latency bound) is
/// out of bounds, if it is.
pub(crate) fn duration_problem(what: &str, d: Duration) -> Option<String> {
    if d > MAX_PROBE_DURATION {
        return Some(format!(
            "{what} {} is too long: at most 7d",
            humantime::format_duration(d)
        ));
    }
    None
}

fn parse_url(s: &str) -> Result<Url, String> {
    let url = Url::parse(s).map_err(|e| format!("invalid URL {s:?}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "URL scheme {:?} is not supported, expected http or https",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("URL {s:?} has no host"));
    }
    Ok(url)
}

/// The URL as shown to humans: no password.
fn display_url(url: &Url) -> String {
    let mut u = url.clone();
    if u.password().is_some() {
        let _ = u.set_password(Some("***"));
    }
    u.to_string()
}

pub(super) fn parse_host_port(s: &str) -> Result<(String, u16), String> {
    let s = s.trim();
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, tail) = rest
            .split_once(']')
            .ok_or_else(|| format!("invalid target {s:?}: unclosed ["))?;
        (h.to_string(), tail.strip_prefix(':'))
    } else if s.matches(':').count() == 1 {
        let (h, p) = s.split_once(':').unwrap_or((s, ""));
        (h.to_string(), Some(p))
    } else {
        (s.to_string(), None)
    };
    if host.is_empty() {
        return Err(format!("invalid target {s:?}: no host, expected host:port"));
    }
    let port = match port {
        None => 443,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("invalid port {p:?} in target {s:?}"))?,
    };
    Ok((host, port))
}

fn http_tls_client(
    options: &TlsOptions,
    versions: HttpVersions,
) -> Result<TlsClient, vantage_probes::Error> {
    TlsClient::new(options, versions.alpn())
}

/// TLS clients with default options, built once per config: most probes share them, and
/// building a client per probe dominated loading a large config.
#[derive(Default)]
pub(super) struct Clients {
    http: std::sync::OnceLock<TlsClient>,
    tls: std::sync::OnceLock<TlsClient>,
}

impl Clients {
    fn http(
        &self,
        options: &TlsOptions,
        versions: HttpVersions,
    ) -> Result<TlsClient, vantage_probes::Error> {
        if options.ca.is_some() || options.client_auth.is_some() || versions != Default::default() {
            return http_tls_client(options, versions);
        }
        if let Some(c) = self.http.get() {
            return Ok(c.clone());
        }
        let c = http_tls_client(options, versions)?;
        Ok(self.http.get_or_init(|| c).clone())
    }

    fn tls(&self, options: &TlsOptions) -> Result<TlsClient, vantage_probes::Error> {
        if options.ca.is_some() || options.client_auth.is_some() {
            return TlsClient::new(options, &[]);
        }
        if let Some(c) = self.tls.get() {
            return Ok(c.clone());
        }
        let c = TlsClient::new(options, &[])?;
        Ok(self.tls.get_or_init(|| c).clone())
    }
}

/// Load `tls = {...}`'s files; paths are relative to the file that names them.
pub(super) fn tls_options(t: Option<&Spanned<RawTls>>, ctx: &mut Ctx<'_>) -> TlsOptions {
    let mut options = TlsOptions::default();
    let Some(t) = t else { return options };
    let dir = ctx.sources.dir(ctx.file);
    let t_at = t.span().start;
    let t = t.get_ref();
    options.resume_sessions = t.resume_sessions.unwrap_or(false);
    if let Some(ca) = &t.ca {
        match super::load::load_certs(&dir.join(ca.get_ref())) {
            Ok(certs) => options.ca = Some(certs),
            Err(e) => ctx.err(ca.span().start, e.to_string()),
        }
    }
    match (&t.client_cert, &t.client_key) {
        (Some(cert), Some(key)) => {
            let chain = super::load::load_certs(&dir.join(cert.get_ref()));
            let k = super::load::load_key(&dir.join(key.get_ref()));
            match (chain, k) {
                (Ok(chain), Ok(k)) => options.client_auth = Some((chain, Arc::new(k))),
                (Err(e), _) => ctx.err(cert.span().start, e.to_string()),
                (_, Err(e)) => ctx.err(key.span().start, e.to_string()),
            }
        }
        (None, None) => {}
        _ => ctx.err(
            t_at,
            "client_cert and client_key go together: set both or neither",
        ),
    }
    options
}

fn resolve_http(p: &RawProbe, timeout: Duration, ctx: &mut Ctx<'_>) -> Option<(String, Spec)> {
    let Some(url_s) = &p.url else {
        ctx.err(p.name.span().start, "probe of kind \"http\" needs a url");
        return None;
    };
    let url = parse_url(url_s.get_ref())
        .map_err(|e| ctx.err(url_s.span().start, e))
        .ok();
    let method = resolve_method(p.method.as_ref(), ctx);
    let mut headers = HeaderMap::new();
    for (k, v) in p.headers.iter().flatten() {
        let name = HeaderName::from_bytes(k.as_bytes());
        let value = HeaderValue::from_str(v.get_ref());
        match (name, value) {
            (Ok(name), Ok(mut value)) => {
                // A value holding a secret stays out of Debug output and is dropped on a
                // redirect to another origin.
                let secret = ctx.redactor.redact(v.get_ref()) != v.get_ref().as_str();
                value.set_sensitive(secret);
                headers.insert(name, value);
            }
            (Err(_), _) => ctx.err(v.span().start, format!("invalid header name {k:?}")),
            (_, Err(_)) => ctx.err(v.span().start, format!("invalid value for header {k:?}")),
        }
    }
    let mut redactor = ctx.redactor.clone();
    let auth = super::http_auth::resolve_auth(
        &super::http_auth::AuthKeys {
            url: url.as_ref(),
            bearer_token: p.bearer_token.as_ref(),
            basic_auth: p.basic_auth.as_ref(),
            bearer_token_file: p.bearer_token_file.as_ref(),
            oauth2: p.oauth2.as_ref(),
        },
        &mut headers,
        &mut redactor,
        ctx,
    );
    if let Some(t) = &p.bearer_token {
        if p.basic_auth.is_some() || p.bearer_token_file.is_some() || p.oauth2.is_some() {
            // Reported by resolve_auth.
        } else if headers.contains_key(AUTHORIZATION) {
            ctx.err(
                t.span().start,
                "set bearer_token or an Authorization header, not both",
            );
        } else if t.get_ref().trim().is_empty() {
            ctx.err(t.span().start, "bearer_token is empty");
        } else {
            match HeaderValue::from_str(&format!("Bearer {}", t.get_ref().trim())) {
                Ok(mut value) => {
                    // Always a credential: kept out of Debug output and dropped on a redirect
                    // to another origin.
                    value.set_sensitive(true);
                    headers.insert(AUTHORIZATION, value);
                }
                Err(_) => ctx.err(t.span().start, "invalid characters in bearer_token"),
            }
        }
    }
    if let Some(c) = &p.compression {
        const ALGORITHMS: [&str; 5] = ["gzip", "deflate", "br", "zstd", "identity"];
        if !ALGORITHMS.contains(&c.get_ref().as_str()) {
            ctx.err(
                c.span().start,
                format!(
                    "unknown compression {:?}, expected one of: {}",
                    c.get_ref(),
                    ALGORITHMS.join(", ")
                ),
            );
        } else if headers.contains_key(ACCEPT_ENCODING) {
            ctx.err(
                c.span().start,
                "set compression or an Accept-Encoding header, not both",
            );
        } else if let Ok(v) = HeaderValue::from_str(c.get_ref()) {
            headers.insert(ACCEPT_ENCODING, v);
        }
    }
    let body = match (&p.body, &p.json) {
        (Some(b), Some(_)) => {
            ctx.err(b.span().start, "set body or json, not both");
            None
        }
        (Some(b), None) => Some(bytes::Bytes::from(b.get_ref().clone())),
        (None, Some(j)) => match serde_json::to_vec(j.get_ref()) {
            Ok(v) => {
                if !headers.contains_key(CONTENT_TYPE) {
                    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                }
                Some(bytes::Bytes::from(v))
            }
            Err(e) => {
                ctx.err(j.span().start, format!("json body cannot be encoded: {e}"));
                None
            }
        },
        (None, None) => None,
    };
    let transport = resolve_transport(p, ctx);
    let expect = resolve_http_expect(p.expect.as_ref(), ctx);
    if let (Some(url), Some(e)) = (&url, &p.expect) {
        if let (Some(c), false) = (&e.get_ref().cert_min_days, url.scheme() == "https") {
            ctx.err(c.span().start, "expect.cert_min_days needs an https URL");
        }
    }
    let (url, method, mut transport, expect) = (url?, method?, transport?, expect?);
    let oauth2 = auth?;
    transport.cert_min_days = expect.cert_min_days;
    let target = display_url(&url);
    Some((
        target,
        Spec::Http(Box::new(HttpSpec {
            request: Request {
                url,
                method,
                headers,
                body,
            },
            transport,
            timeout,
            expect,
            redactor,
            oauth2,
        })),
    ))
}

/// `method = "post"` → POST; default GET.
fn resolve_method(m: Option<&Spanned<String>>, ctx: &mut Ctx<'_>) -> Option<Method> {
    let Some(m) = m else { return Some(Method::GET) };
    Method::from_bytes(m.get_ref().to_ascii_uppercase().as_bytes())
        .map_err(|_| {
            ctx.err(
                m.span().start,
                format!("invalid HTTP method {:?}", m.get_ref()),
            )
        })
        .ok()
}

/// How an http or scrape probe's requests travel: redirects, size limit, family, proxy, TLS.
fn resolve_transport(p: &RawProbe, ctx: &mut Ctx<'_>) -> Option<Transport> {
    let max_redirects = p
        .max_redirects
        .as_ref()
        .map_or(DEFAULT_MAX_REDIRECTS, |m| *m.get_ref());
    if max_redirects > MAX_MAX_REDIRECTS {
        let at = p.max_redirects.as_ref().map_or(0, |m| m.span().start);
        ctx.err(
            at,
            format!("max_redirects of {max_redirects} is above the limit of {MAX_MAX_REDIRECTS}"),
        );
    }
    let max_body = p
        .max_body
        .as_ref()
        .map_or(DEFAULT_MAX_BODY, |m| m.get_ref().0);
    if max_body > MAX_MAX_BODY {
        let at = p.max_body.as_ref().map_or(0, |m| m.span().start);
        ctx.err(
            at,
            format!("max_body of {max_body} bytes is above the limit of 1GiB"),
        );
    }
    let proxy = p
        .proxy
        .as_ref()
        .and_then(|px| match Url::parse(px.get_ref()) {
            Ok(u) if u.scheme() == "http" && u.has_host() => Some(u),
            Ok(_) => {
                ctx.err(px.span().start, "proxy must be an http:// URL");
                None
            }
            Err(e) => {
                ctx.err(px.span().start, format!("invalid proxy URL: {e}"));
                None
            }
        });
    let versions = super::http_auth::resolve_versions(p.http_versions.as_ref(), ctx);
    let options = tls_options(p.tls.as_ref(), ctx);
    let tls = match ctx.clients.http(&options, versions) {
        Ok(c) => Some(c),
        Err(e) => {
            let at = p
                .tls
                .as_ref()
                .map_or(p.name.span().start, |t| t.span().start);
            ctx.err(at, e.to_string());
            None
        }
    };
    let raw_tls = p.tls.as_ref().map(|t| t.get_ref());
    let source_ip = match &p.source_ip {
        None => None,
        Some(s) => match s.get_ref().parse::<std::net::IpAddr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                ctx.err(
                    s.span().start,
                    format!("source_ip {:?} is not an IP address", s.get_ref()),
                );
                return None;
            }
        },
    };
    Some(Transport {
        follow_redirects: p.follow_redirects.as_ref().is_none_or(|f| *f.get_ref()),
        max_redirects,
        max_body,
        ip: p.ip.as_ref().map_or(IpFamily::Any, |i| *i.get_ref()),
        proxy,
        tls: tls?,
        server_name: raw_tls
            .and_then(|t| t.server_name.as_ref())
            .map(|s| s.get_ref().clone()),
        insecure_skip_verify: raw_tls
            .and_then(|t| t.insecure_skip_verify.as_ref())
            .is_some_and(|i| *i.get_ref()),
        cert_min_days: None,
        filter: None,
        source_ip,
        versions,
    })
}

/// A scrape flow: steps in order, captures defined before they are used.
fn resolve_scrape(p: &RawProbe, timeout: Duration, ctx: &mut Ctx<'_>) -> Option<(String, Spec)> {
    if let Some(e) = &p.expect {
        ctx.err(
            e.span().start,
            "kind \"scrape\" takes its expectations per step: [probe.step.expect]",
        );
    }
    let Some(raw_steps) = p.step.as_ref().filter(|s| !s.is_empty()) else {
        ctx.err(
            p.name.span().start,
            "probe of kind \"scrape\" needs at least one [[probe.step]]",
        );
        return None;
    };
    if raw_steps.len() > vantage_probes::scrape::MAX_STEPS {
        ctx.err(
            p.name.span().start,
            format!("more than {} steps", vantage_probes::scrape::MAX_STEPS),
        );
    }
    let transport = resolve_transport(p, ctx);
    let mut defined: Vec<String> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    let mut steps = Vec::new();
    for rs in raw_steps {
        let r = rs.get_ref();
        let name = r.name.get_ref().clone();
        if !valid_name(&name) {
            ctx.err(
                r.name.span().start,
                format!("invalid step name {name:?}: use a-z, 0-9, _ and -"),
            );
        } else if names.contains(&name) {
            ctx.err(r.name.span().start, format!("duplicate step name {name:?}"));
        }
        names.push(name.clone());
        let template = |t: &Spanned<String>,
                        ctx: &mut Ctx<'_>,
                        defined: &[String]|
         -> Option<vantage_probes::Template> {
            match vantage_probes::Template::parse(t.get_ref()) {
                Ok(tpl) => {
                    for v in tpl.vars() {
                        if !defined.iter().any(|d| d == v) {
                            ctx.err(
                                t.span().start,
                                format!(
                                    "capture {v:?} is used before it is defined (step {name:?})"
                                ),
                            );
                        }
                    }
                    Some(tpl)
                }
                Err(e) => {
                    ctx.err(t.span().start, e);
                    None
                }
            }
        };
        let url = template(&r.url, ctx, &defined);
        if let Some(u) = &url {
            if u.vars().next().is_none() {
                if let Err(e) = parse_url(r.url.get_ref()) {
                    ctx.err(r.url.span().start, e);
                }
            }
        }
        let method = resolve_method(r.method.as_ref(), ctx);
        let mut headers = Vec::new();
        let mut has_content_type = false;
        for (k, v) in r.headers.iter().flatten() {
            match HeaderName::from_bytes(k.as_bytes()) {
                Ok(h) => {
                    has_content_type |= h == CONTENT_TYPE;
                    if let Some(t) = template(v, ctx, &defined) {
                        headers.push((h, t));
                    }
                }
                Err(_) => ctx.err(v.span().start, format!("invalid header name {k:?}")),
            }
        }
        let body = match (&r.body, &r.json) {
            (Some(b), Some(_)) => {
                ctx.err(b.span().start, "set body or json, not both");
                None
            }
            (Some(b), None) => template(b, ctx, &defined),
            (None, Some(j)) => {
                let text = serde_json::to_string(j.get_ref()).unwrap_or_default();
                if !has_content_type {
                    if let Ok(t) = vantage_probes::Template::parse("application/json") {
                        headers.push((CONTENT_TYPE, t));
                    }
                }
                template(&Spanned::new(j.span(), text), ctx, &defined)
            }
            (None, None) => None,
        };
        let expect = resolve_http_expect(r.expect.as_ref(), ctx);
        let until = r.until.as_ref().map(|u| resolve_http_expect(Some(u), ctx));
        let mut captures = Vec::new();
        for (cname, c) in r.capture.iter().flatten() {
            if !cname
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
                || cname.is_empty()
            {
                ctx.err(
                    c.span().start,
                    format!("invalid capture name {cname:?}: use letters, digits and _"),
                );
            }
            let rc = c.get_ref();
            let sources = [
                rc.json.is_some(),
                rc.header.is_some(),
                rc.regex.is_some(),
                rc.css.is_some(),
            ];
            if sources.iter().filter(|x| **x).count() != 1 {
                ctx.err(
                    c.span().start,
                    "a capture takes exactly one of: json, header, regex, css",
                );
                continue;
            }
            let capture = if let Some(j) = &rc.json {
                parse_json_path(j.get_ref())
                    .map(|p| vantage_probes::Capture::Json(p, j.get_ref().clone()))
                    .map_err(|e| {
                        ctx.err(
                            j.span().start,
                            format!("invalid JSONPath {:?}: {e}", j.get_ref()),
                        )
                    })
                    .ok()
            } else if let Some(h) = &rc.header {
                Some(vantage_probes::Capture::Header(
                    h.get_ref().to_ascii_lowercase(),
                ))
            } else if let Some(re) = &rc.regex {
                compile_regex(re, ctx).map(vantage_probes::Capture::Regex)
            } else {
                rc.css.as_ref().and_then(|css| {
                    compile_css(css, ctx)
                        .map(|sel| vantage_probes::Capture::Css(sel, css.get_ref().clone()))
                })
            };
            if let Some(c) = capture {
                captures.push((cname.clone(), c));
            }
            defined.push(cname.clone());
        }
        let poll_interval = r
            .poll_interval
            .as_ref()
            .map_or(Duration::from_secs(1), |d| d.get_ref().0);
        if poll_interval.is_zero() {
            let at = r
                .poll_interval
                .as_ref()
                .map_or(r.name.span().start, |d| d.span().start);
            ctx.err(at, "poll_interval must be greater than 0");
        } else if let Some(problem) = duration_problem("poll_interval", poll_interval) {
            let at = r
                .poll_interval
                .as_ref()
                .map_or(r.name.span().start, |d| d.span().start);
            ctx.err(at, problem);
        }
        if let (Some(url), Some(method), Some(expect)) = (url, method, expect) {
            steps.push(vantage_probes::StepSpec {
                name,
                method,
                url,
                headers,
                body,
                expect,
                captures,
                until: until.flatten(),
                poll_interval,
            });
        }
    }
    let target = raw_steps[0].get_ref().url.get_ref().clone();
    Some((
        target,
        Spec::Scrape(Box::new(vantage_probes::FlowSpec {
            steps,
            transport: transport?,
            timeout,
            redactor: ctx.redactor.clone(),
        })),
    ))
}

fn compile_css(s: &Spanned<String>, ctx: &mut Ctx<'_>) -> Option<scraper::Selector> {
    scraper::Selector::parse(s.get_ref())
        .map_err(|e| {
            ctx.err(
                s.span().start,
                format!("invalid CSS selector {:?}: {e}", s.get_ref()),
            )
        })
        .ok()
}

fn compile_regex(s: &Spanned<String>, ctx: &mut Ctx<'_>) -> Option<Regex> {
    Regex::new(s.get_ref())
        .map_err(|e| {
            // regex's message draws a caret diagram over several lines; keep its last line.
            let text = e.to_string();
            let why = text
                .lines()
                .last()
                .unwrap_or_default()
                .trim_start_matches("error: ")
                .to_string();
            ctx.err(
                s.span().start,
                format!("invalid regex {:?}: {why}", s.get_ref()),
            )
        })
        .ok()
}

fn resolve_http_expect(e: Option<&Spanned<RawExpect>>, ctx: &mut Ctx<'_>) -> Option<HttpExpect> {
    let mut out = HttpExpect::default();
    let Some(e) = e else { return Some(out) };
    let before = ctx.errors.len();
    let e = e.get_ref();
    if let Some(s) = &e.status {
        out.status = s.get_ref().0.clone();
    }
    out.body_contains = e
        .body_contains
        .as_ref()
        .map(|b| b.get_ref().clone())
        .unwrap_or_default();
    out.body_regex = e
        .body_regex
        .iter()
        .flatten()
        .filter_map(|r| compile_regex(r, ctx))
        .collect();
    out.body_not_regex = e
        .body_not_regex
        .iter()
        .flatten()
        .filter_map(|r| compile_regex(r, ctx))
        .collect();
    for (name, re) in e.headers.iter().flatten() {
        if HeaderName::from_bytes(name.as_bytes()).is_err() {
            ctx.err(re.span().start, format!("invalid header name {name:?}"));
        }
        if let Some(r) = compile_regex(re, ctx) {
            out.headers.push((name.to_ascii_lowercase(), r));
        }
    }
    for (name, re) in e.headers_not.iter().flatten() {
        if HeaderName::from_bytes(name.as_bytes()).is_err() {
            ctx.err(re.span().start, format!("invalid header name {name:?}"));
        }
        if let Some(r) = compile_regex(re, ctx) {
            out.headers_not.push((name.to_ascii_lowercase(), r));
        }
    }
    out.ssl = e.ssl.as_ref().map(|s| *s.get_ref());
    out.json = e
        .json
        .iter()
        .flatten()
        .filter_map(|j| resolve_json_assertion(j, ctx))
        .collect();
    out.health = e.health.as_ref().is_some_and(|h| *h.get_ref());
    for c in e.css.iter().flatten() {
        let at = c.span().start;
        let c = c.get_ref();
        let checks = [
            c.text.is_some(),
            c.matches.is_some(),
            c.count.is_some(),
            c.exists.is_some(),
        ];
        if checks.iter().filter(|x| **x).count() != 1 {
            ctx.err(
                at,
                "a CSS assertion takes exactly one of: text, matches, count, exists",
            );
            continue;
        }
        let check = if let Some(t) = &c.text {
            Some(vantage_probes::CssCheck::Text(t.clone()))
        } else if let Some(m) = &c.matches {
            compile_regex(m, ctx).map(vantage_probes::CssCheck::Matches)
        } else if let Some(n) = c.count {
            Some(vantage_probes::CssCheck::Count(n as usize))
        } else {
            Some(vantage_probes::CssCheck::Exists(c.exists.unwrap_or(true)))
        };
        if let (Some(selector), Some(check)) = (compile_css(&c.selector, ctx), check) {
            out.css.push(vantage_probes::CssAssertion {
                selector,
                selector_text: c.selector.get_ref().clone(),
                check,
            });
        }
    }
    for m in e.metrics.iter().flatten() {
        let at = m.span().start;
        let m = m.get_ref();
        let ops: Vec<vantage_probes::MetricOp> = [
            m.lt.map(vantage_probes::MetricOp::Lt),
            m.gt.map(vantage_probes::MetricOp::Gt),
            m.equals.map(vantage_probes::MetricOp::Equals),
            m.exists.map(vantage_probes::MetricOp::Exists),
        ]
        .into_iter()
        .flatten()
        .collect();
        if ops.len() != 1 {
            ctx.err(
                at,
                "a metrics assertion takes exactly one of: lt, gt, equals, exists",
            );
            continue;
        }
        match vantage_probes::exposition::Selector::parse(m.series.get_ref()) {
            Ok(selector) => out.metrics.push(vantage_probes::MetricAssertion {
                selector,
                op: ops[0],
            }),
            Err(e) => ctx.err(m.series.span().start, e),
        }
    }
    out.latency_under = e.latency_under.as_ref().map(|l| l.get_ref().0);
    if let Some(l) = &e.latency_under {
        if let Some(problem) = duration_problem("latency_under", l.get_ref().0) {
            ctx.err(l.span().start, problem);
        }
    }
    if let Some(d) = &e.cert_min_days {
        if !d.get_ref().is_finite() || *d.get_ref() < 0.0 {
            ctx.err(d.span().start, "cert_min_days must be a number of days ≥ 0");
        }
        out.cert_min_days = Some(*d.get_ref());
    }
    (ctx.errors.len() == before).then_some(out)
}

fn toml_to_json(v: &toml::Value) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

/// Most recursive descents (`..`) in one JSONPath. Evaluation runs on the body synchronously:
/// each further descent multiplies the work by the document's size (`$..a..a..a…` over a
/// nested body took minutes and gigabytes), while one is linear.
const MAX_JSONPATH_DESCENTS: usize = 1;

/// A JSONPath, refused when it could take more than linear time on a hostile body.
fn parse_json_path(text: &str) -> Result<JsonPath, String> {
    let path = JsonPath::parse(text).map_err(|e| e.to_string())?;
    if text.matches("..").count() > MAX_JSONPATH_DESCENTS {
        return Err(format!(
            "at most {MAX_JSONPATH_DESCENTS} recursive descent (`..`) per path: each one more multiplies the work by the body's size"
        ));
    }
    Ok(path)
}

fn resolve_json_assertion(
    j: &Spanned<RawJsonAssertion>,
    ctx: &mut Ctx<'_>,
) -> Option<JsonAssertion> {
    let at = j.span().start;
    let j = j.get_ref();
    let path = parse_json_path(j.path.get_ref())
        .map_err(|e| {
            ctx.err(
                j.path.span().start,
                format!("invalid JSONPath {:?}: {e}", j.path.get_ref()),
            )
        })
        .ok();
    let mut ops = Vec::new();
    if let Some(v) = &j.equals {
        ops.push(JsonOp::Equals(toml_to_json(v)));
    }
    if let Some(v) = &j.not_equals {
        ops.push(JsonOp::NotEquals(toml_to_json(v)));
    }
    if let Some(m) = &j.matches {
        ops.extend(compile_regex(m, ctx).map(JsonOp::Matches));
    }
    if let Some(e) = j.exists {
        ops.push(JsonOp::Exists(e));
    }
    if let Some(x) = j.lt {
        ops.push(JsonOp::Lt(x));
    }
    if let Some(x) = j.gt {
        ops.push(JsonOp::Gt(x));
    }
    if ops.len() != 1 {
        ctx.err(
            at,
            format!(
                "a JSON assertion takes exactly one of: equals, not_equals, matches, exists, lt, gt (found {})",
                ops.len()
            ),
        );
        return None;
    }
    Some(JsonAssertion {
        path: path?,
        path_text: j.path.get_ref().clone(),
        op: ops.pop()?,
    })
}

fn resolve_tls(p: &RawProbe, timeout: Duration, ctx: &mut Ctx<'_>) -> Option<(String, Spec)> {
    let Some(target) = &p.target else {
        ctx.err(
            p.name.span().start,
            "probe of kind \"tls\" needs a target (host:port)",
        );
        return None;
    };
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
        format!("{host}:{port}"),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port() {
        assert_eq!(
            parse_host_port("a.example:8443").unwrap(),
            ("a.example".into(), 8443)
        );
        assert_eq!(
            parse_host_port("a.example").unwrap(),
            ("a.example".into(), 443)
        );
        assert_eq!(parse_host_port("[::1]:9").unwrap(), ("::1".into(), 9));
        assert!(parse_host_port(":443").is_err());
        assert!(parse_host_port("a:0").is_err());
        assert!(parse_host_port("a:x").is_err());
    }

    #[test]
    fn names() {
        assert!(valid_name("api-ready_2"));
        assert!(!valid_name("Api"));
        assert!(!valid_name(""));
        assert!(!valid_name("a b"));
    }

    #[test]
    fn display_url_hides_password() {
        let u = Url::parse("https://user:pw@example.com/x").unwrap();
        assert_eq!(display_url(&u), "https://user:***@example.com/x");
    }
}
