//! `GET /probe`: blackbox_exporter-style probing of a target given in the request, behind the
//! allow list (`server.probe_allow`), the per-client rate limit and the in-flight bound.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use vantage_probes::AddressFilter;

use super::{error, App, ClientAddr};
use crate::config::Probe;
use crate::daemon::store::Store;
use crate::server::probe_allow::{Dest, ProbeAllow};

const MAX_TARGET_LEN: usize = 2048;
/// Client addresses the per-client rate limiter remembers before it forgets idle ones.
const RATE_LIMITER_KEYS: usize = 10_000;

#[derive(Deserialize)]
pub(super) struct ProbeQuery {
    target: Option<String>,
    module: Option<String>,
    debug: Option<String>,
}

/// Refuse a `/probe` request and count it.
fn reject(
    app: &App,
    status: StatusCode,
    reason: &'static str,
    message: impl Into<String>,
) -> Response {
    app.metrics.probe_rejected(reason);
    error(status, message)
}

/// What an http or tls `/probe` target is, parsed and checked against the allow list.
fn destination(probe: &mut Probe) -> Result<Dest, String> {
    match &mut probe.spec {
        crate::config::Spec::Http(s) => Dest::of_url(&s.request.url),
        crate::config::Spec::Tls(s) => {
            let d = Dest::tls(&s.host, s.port)?;
            // Dial exactly the host that was matched, in its normalised form.
            s.host = d.dial_host();
            Ok(d)
        }
        crate::config::Spec::Scrape(_) => Err("scrape flows cannot be /probe modules".into()),
        crate::config::Spec::Tcp(s) => dial_as(&mut s.host, "tcp", s.port),
        crate::config::Spec::Dns(s) => dial_as(&mut s.host, "dns", s.port),
        crate::config::Spec::Grpc(s) => dial_as(&mut s.host, "grpc", s.port),
        crate::config::Spec::Icmp(s) => dial_as(&mut s.host, "icmp", 0),
    }
}

/// A non-HTTP module's target as the allow list sees it; the probe then dials exactly the host
/// that was matched, in its normalised form.
fn dial_as(host: &mut String, scheme: &str, port: u16) -> Result<Dest, String> {
    let d = Dest::host_port(scheme, host, port)?;
    *host = d.dial_host();
    Ok(d)
}

/// The filter for a `/probe` run: the first request's addresses are checked against `first`,
/// and every HTTP hop (redirects included) must itself be allowed, with its own address check.
fn probe_filter(allow: Arc<ProbeAllow>, first: Dest) -> AddressFilter {
    let base = allow.clone();
    AddressFilter::new(move |ip| base.check_address(&first, ip)).with_hops(move |url| {
        let dest = Dest::of_url(url)?;
        allow.check(&dest)?;
        let allow = allow.clone();
        Ok(AddressFilter::new(move |ip| allow.check_address(&dest, ip)))
    })
}

/// The text a target would parse to, for the userinfo check (as `with_target` reads it).
fn has_userinfo(target: &str) -> bool {
    let text = if target.contains("://") {
        target.to_string()
    } else {
        format!("http://{target}")
    };
    match url::Url::parse(&text) {
        Ok(u) => !u.username().is_empty() || u.password().is_some(),
        // Unparseable: with_target refuses it; an '@' before the path is refused here anyway.
        Err(_) => false,
    }
}

/// blackbox_exporter-style: one probe now, the last-run gauges as the body.
pub(super) async fn probe(
    State(app): State<App>,
    client: Option<axum::Extension<ClientAddr>>,
    headers: HeaderMap,
    Query(q): Query<ProbeQuery>,
) -> Response {
    let config = app.config();
    let allow = &config.server.probe_allow;
    if allow.is_empty() {
        return reject(
            &app,
            StatusCode::FORBIDDEN,
            "not_allowed",
            "/probe is disabled: set server.probe_allow to the targets it may probe",
        );
    }
    let gate = app.probe_gate.current(
        config.server.probe_max_in_flight,
        config.server.probe_rate_limit,
    );
    if let (Some(limiter), Some(axum::Extension(ClientAddr(ip)))) = (&gate.limiter, &client) {
        if limiter.len() > RATE_LIMITER_KEYS {
            limiter.retain_recent();
        }
        if limiter.check_key(ip).is_err() {
            return reject(
                &app,
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit",
                format!(
                    "more than {} /probe requests per second from {ip} (server.probe_rate_limit)",
                    gate.rate
                ),
            );
        }
    }
    let Some(target) = q.target.filter(|t| !t.trim().is_empty()) else {
        return reject(
            &app,
            StatusCode::BAD_REQUEST,
            "bad_request",
            "missing parameter: target",
        );
    };
    if target.len() > MAX_TARGET_LEN {
        return reject(
            &app,
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("target longer than {MAX_TARGET_LEN} bytes"),
        );
    }
    let target = target.trim();
    if has_userinfo(target) {
        return reject(
            &app,
            StatusCode::BAD_REQUEST,
            "bad_request",
            "a target with userinfo (user:password@) is not allowed",
        );
    }
    let debug_mode = q
        .debug
        .as_deref()
        .is_some_and(|d| d.eq_ignore_ascii_case("true"));
    let module_name = q.module.unwrap_or_else(|| "http_2xx".to_string());
    let Some(module) = config.modules.get(&module_name) else {
        let known: Vec<&str> = config.modules.keys().map(String::as_str).collect();
        return reject(
            &app,
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!(
                "unknown module {module_name:?}; modules: {}",
                known.join(", ")
            ),
        );
    };
    let mut probe = match module.with_target(target) {
        Ok(p) => p,
        Err(e) => {
            return reject(
                &app,
                StatusCode::BAD_REQUEST,
                "bad_request",
                config.redactor.redact(&e).into_owned(),
            )
        }
    };
    let dest = match destination(&mut probe) {
        Ok(d) => d,
        Err(e) => {
            return reject(
                &app,
                StatusCode::BAD_REQUEST,
                "bad_request",
                config.redactor.redact(&e).into_owned(),
            )
        }
    };
    if let Err(why) = allow.check(&dest) {
        return reject(
            &app,
            StatusCode::FORBIDDEN,
            "not_allowed",
            format!("target is {why}"),
        );
    }
    // An address literal is decided now; a name is decided when it resolves (on every hop).
    let literal = match &dest.host {
        url::Host::Ipv4(a) => Some(IpAddr::V4(*a)),
        url::Host::Ipv6(a) => Some(IpAddr::V6(*a)),
        url::Host::Domain(_) => None,
    };
    if let Some(ip) = literal {
        if let Err(why) = allow.check_address(&dest, &ip) {
            return reject(
                &app,
                StatusCode::FORBIDDEN,
                "not_allowed",
                format!("target address {ip} refused: {why}"),
            );
        }
    }
    let Ok(_in_flight) = gate.in_flight.clone().try_acquire_owned() else {
        return reject(
            &app,
            StatusCode::SERVICE_UNAVAILABLE,
            "max_in_flight",
            format!(
                "{} /probe requests are already running (server.probe_max_in_flight); try again shortly",
                gate.max_in_flight
            ),
        );
    };
    probe.set_filter(probe_filter(Arc::new(allow.clone()), dest));
    if let Some(limit) = scrape_timeout(&headers) {
        probe.set_timeout(probe.timeout.min(limit));
    }
    let clock = *app.store.clock();
    let started_at = std::time::UNIX_EPOCH + clock.wall();
    // On a task of its own, so a bug in a run answers 500 and is counted like a daemon task's
    // panic, instead of dropping the connection unseen.
    let run = {
        let (probe, redactor) = (probe.clone(), config.redactor.clone());
        // Aborted if the client goes away: the run is never left without its in-flight slot.
        tokio_util::task::AbortOnDropHandle::new(tokio::spawn(async move {
            probe.run_redacted(&clock, clock.now(), &redactor).await
        }))
    };
    let outcome = match run.await {
        Ok(outcome) => outcome,
        Err(e) => {
            let why = if e.is_panic() {
                "panicked"
            } else {
                "was cancelled"
            };
            app.metrics
                .task_panicked("probe_endpoint", &format!("a /probe run {why}"));
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the probe run {why}; see the daemon's log"),
            );
        }
    };
    let store = Arc::new(Store::new(clock));
    let states = store.sync(std::slice::from_ref(&probe), &config.redactor);
    if let Some(state) = states.first() {
        state.observe(outcome.clone(), &clock);
    }
    let body = crate::metrics::render_last_run(&store);
    if debug_mode {
        let text = crate::server::probe_debug::render(
            &module_name,
            &probe,
            &outcome,
            started_at,
            &body,
            &config.redactor,
        );
        return ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// Prometheus sends its scrape timeout; answer half a second before it, as blackbox_exporter does.
fn scrape_timeout(headers: &HeaderMap) -> Option<Duration> {
    let secs: f64 = headers
        .get("x-prometheus-scrape-timeout-seconds")?
        .to_str()
        .ok()?
        .parse()
        .ok()?;
    // Any float a client sends: huge values must not panic (they only ever shorten a timeout,
    // so anything that does not fit a Duration is simply no limit).
    (secs.is_finite() && secs > 0.0)
        .then(|| Duration::try_from_secs_f64((secs - 0.5).max(0.1)).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn allow(rules: &[&str]) -> Arc<ProbeAllow> {
        Arc::new(ProbeAllow {
            rules: rules
                .iter()
                .map(|r| crate::server::probe_allow::AllowRule::parse(r).unwrap())
                .collect(),
        })
    }

    /// The filter the prober applies to every resolved address: a name that resolves to a
    /// metadata or link-local address is refused, on the first hop and on redirect hops, even
    /// when another rule names that address exactly.
    #[test]
    fn names_resolving_to_metadata_are_refused_on_every_hop() {
        let allow = allow(&["http://*.example.com/**", "http://169.254.169.254/**"]);
        let first = Dest::of_url(&url::Url::parse("http://a.example.com/").unwrap()).unwrap();
        let filter = probe_filter(allow, first);
        for ip in [
            "169.254.169.254",
            "169.254.1.1",
            "fe80::1",
            "::ffff:169.254.169.254",
            "fd00:ec2::254",
            "100.100.100.200",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(filter.check(&ip).is_err(), "first hop to {ip}");
            for hop in ["http://b.example.com/x", "http://metadata.example.com/"] {
                let f = filter.for_hop(&url::Url::parse(hop).unwrap()).unwrap();
                assert!(f.check(&ip).is_err(), "{hop} resolving to {ip}");
            }
        }
        assert!(filter.check(&"10.0.0.1".parse().unwrap()).is_ok());
        // The exact rule lets the literal address through, and only it.
        let md = url::Url::parse("http://169.254.169.254/latest").unwrap();
        let f = filter.for_hop(&md).unwrap();
        assert!(f.check(&"169.254.169.254".parse().unwrap()).is_ok());
        assert!(filter
            .for_hop(&url::Url::parse("http://169.254.169.253/").unwrap())
            .is_err());
        // Hops outside every rule, or with userinfo, are refused before any address is looked at.
        for hop in [
            "http://example.com/",
            "https://a.example.com/",
            "http://u:p@a.example.com/",
            "http://a.example.com:8080/",
        ] {
            assert!(
                filter.for_hop(&url::Url::parse(hop).unwrap()).is_err(),
                "{hop}"
            );
        }
    }

    #[test]
    fn userinfo_is_seen_in_every_spelling() {
        for t in [
            "http://u@x/",
            "u:p@x:80",
            "http://127.0.0.1:1@127.0.0.1:2/",
            "http://a%40b@x/",
            "HTTP://u@x",
        ] {
            assert!(has_userinfo(t), "{t}");
        }
        for t in ["http://x/@y", "x:80/a@b", "http://@x/", "http://x/?a=@b"] {
            assert!(!has_userinfo(t), "{t}");
        }
    }

    #[test]
    fn scrape_timeout_header() {
        let mut h = HeaderMap::new();
        assert_eq!(scrape_timeout(&h), None);
        h.insert(
            "x-prometheus-scrape-timeout-seconds",
            HeaderValue::from_static("10"),
        );
        assert_eq!(scrape_timeout(&h), Some(Duration::from_secs_f64(9.5)));
        h.insert(
            "x-prometheus-scrape-timeout-seconds",
            HeaderValue::from_static("nan"),
        );
        assert_eq!(scrape_timeout(&h), None);
        // Found by the attack pass: these panicked ("cannot convert float seconds to Duration").
        for huge in ["1e20", "99999999999999999999", "18446744073709551616"] {
            h.insert(
                "x-prometheus-scrape-timeout-seconds",
                HeaderValue::from_static(huge),
            );
            assert_eq!(scrape_timeout(&h), None, "{huge}");
        }
    }
}
