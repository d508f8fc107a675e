//! Resolving `[[probe]]` tables into runnable probes: kind-specific keys, URLs, TLS files,
//! expectations. Problems are collected into the shared context, never returned early.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use toml::Spanned;
use url::Url;
use vantage_probes::{
    run_http, run_tls, Clock, HttpSpec, HttpVersions, Outcome, TlsClient, TlsOptions, TlsSpec,
};

use super::raw::{Kind, RawTls};
use super::Ctx;

pub(super) const DEFAULT_MAX_BODY: u64 = 10 * 1024 * 1024;
pub(super) const MAX_MAX_BODY: u64 = 1024 * 1024 * 1024;
pub(super) const DEFAULT_MAX_REDIRECTS: u32 = 10;
pub(super) const MAX_MAX_REDIRECTS: u32 = 50;
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

    /// Run once and scrub the outcome of every secret in `redactor`: the one home of
    /// run-then-redact (scheduler, `/probe`, `vantage check`), so no caller can forget a half.
    pub async fn run_redacted(
        &self,
        clock: &Clock,
        scheduled: Instant,
        redactor: &vantage_probes::Redactor,
    ) -> Outcome {
        let mut outcome = self.run(clock, scheduled).await;
        redactor.outcome(&mut outcome);
        outcome
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
            Spec::Tls(s) => host_port_text(&s.host, s.port),
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

    /// A probe without a config file, for `vantage probe URL` and the built-in modules: the
    /// `[[probe]]` table a user would write for it, read and resolved as one.
    pub fn adhoc(target: &str, kind: Kind, timeout: Duration) -> Result<Probe, String> {
        super::kinds::adhoc(target, kind, timeout)
    }
}

pub(super) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
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

pub(super) fn parse_url(s: &str) -> Result<Url, String> {
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
pub(super) fn display_url(url: &Url) -> String {
    let mut u = url.clone();
    if u.password().is_some() {
        let _ = u.set_password(Some("***"));
    }
    u.to_string()
}

/// `host:port` as written back: an IPv6 address in brackets, so the port stays apart from it.
pub(super) fn host_port_text(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

pub(super) fn parse_host_port(s: &str) -> Result<(String, u16), String> {
    let s = s.trim();
    if s.contains('@') {
        // Not quoted: what precedes the @ may be a password.
        return Err("invalid target: host:port takes no user:password@".into());
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, tail) = rest
            .split_once(']')
            .ok_or_else(|| format!("invalid target {s:?}: unclosed ["))?;
        if h.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!(
                "invalid target {s:?}: [{h}] is not an IPv6 address"
            ));
        }
        let port = match tail {
            "" => None,
            t => Some(
                t.strip_prefix(':')
                    .ok_or_else(|| format!("invalid target {s:?}: expected :port after ]"))?,
            ),
        };
        (h.to_string(), port)
    } else if s.matches(':').count() == 1 {
        let (h, p) = s.split_once(':').unwrap_or((s, ""));
        (h.to_string(), Some(p))
    } else if s.contains(':') {
        if s.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!(
                "invalid target {s:?}: write an IPv6 address in brackets, as [::1]:443"
            ));
        }
        (s.to_string(), None)
    } else {
        (s.to_string(), None)
    };
    if host.is_empty() {
        return Err(format!("invalid target {s:?}: no host, expected host:port"));
    }
    if !host.contains(':') && url::Host::parse(&host).is_err() {
        return Err(format!(
            "invalid target {s:?}: {host:?} is not a host name or address"
        ));
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
    pub(super) fn http(
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

    pub(super) fn tls(&self, options: &TlsOptions) -> Result<TlsClient, vantage_probes::Error> {
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
