//! The daemon's HTTP endpoint (axum on an already-bound listener): `/metrics`, `/probe`,
//! `/health/*`, `/api/v1/*`, `/-/reload` and the status page. Plain HTTP or rustls; every
//! connection has a header-read timeout and the number of connections is bounded, so a slow or
//! hostile client cannot tie the daemon up.

pub mod probe_allow;
pub mod probe_debug;
pub mod status_page;
pub mod svg;

use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use governor::Quota;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde::Deserialize;
use serde_json::{json, Value};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::debug;
use vantage_probes::AddressFilter;

use crate::config::{Auth, Config, Probe, ServerTls};
use crate::daemon::evaluator::Evaluator;
use crate::daemon::store::{ProbeState, Store, QUANTILES, WINDOWS};
use crate::metrics::{Metrics, ProbeCollector};
use crate::server::probe_allow::{Dest, ProbeAllow};

/// Most connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 1024;
/// Most connections one client address may hold open; more are closed at once, so that one
/// client hoarding idle connections cannot keep others (and `/metrics`, `/health`) out.
pub const MAX_CONNECTIONS_PER_CLIENT: usize = 256;
/// A client must send its request head within this time.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_TARGET_LEN: usize = 2048;
/// Client addresses the per-client rate limiter remembers before it forgets idle ones.
const RATE_LIMITER_KEYS: usize = 10_000;

/// A reload request and where to send the verdict.
pub type ReloadRequest = oneshot::Sender<Result<usize, String>>;

/// Everything the handlers read. The config is swapped whole on reload.
#[derive(Clone)]
pub struct App {
    pub store: Arc<Store>,
    pub evaluator: Arc<Evaluator>,
    pub metrics: Arc<Metrics>,
    pub config: Arc<RwLock<Arc<Config>>>,
    pub reload: mpsc::Sender<ReloadRequest>,
    pub started: Instant,
    pub probe_gate: Arc<ProbeGate>,
}

/// The client's address, put on each request by the connection loop.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub IpAddr);

type KeyedLimiter = governor::DefaultKeyedRateLimiter<IpAddr>;

/// `/probe`'s limits, rebuilt when a reload changes them: requests in flight (all clients) and
/// an optional rate per client address. There is no global rate.
#[derive(Default)]
pub struct ProbeGate {
    state: std::sync::Mutex<Option<GateState>>,
}

#[derive(Clone)]
struct GateState {
    max_in_flight: usize,
    in_flight: Arc<Semaphore>,
    rate: u32,
    limiter: Option<Arc<KeyedLimiter>>,
}

impl ProbeGate {
    fn current(&self, max_in_flight: usize, rate: u32) -> GateState {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match &mut *state {
            Some(s) if s.max_in_flight == max_in_flight && s.rate == rate => {}
            other => {
                // Requests running under an old limit keep their permits on the old semaphore.
                let in_flight = match other.take() {
                    Some(s) if s.max_in_flight == max_in_flight => s.in_flight,
                    _ => Arc::new(Semaphore::new(max_in_flight)),
                };
                let limiter = std::num::NonZeroU32::new(rate)
                    .map(|r| Arc::new(governor::RateLimiter::keyed(Quota::per_second(r))));
                *other = Some(GateState {
                    max_in_flight,
                    in_flight,
                    rate,
                    limiter,
                });
            }
        }
        state.clone().expect("set above")
    }
}

impl App {
    pub fn new(
        store: Arc<Store>,
        evaluator: Arc<Evaluator>,
        metrics: Arc<Metrics>,
        config: Arc<RwLock<Arc<Config>>>,
        reload: mpsc::Sender<ReloadRequest>,
    ) -> Self {
        Self {
            store,
            evaluator,
            metrics,
            config,
            reload,
            started: Instant::now(),
            probe_gate: Arc::new(ProbeGate::default()),
        }
    }

    pub fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

pub fn router(app: App) -> Router {
    let protected = Router::new()
        .route("/", get(status_page::overview))
        .route("/probes/{name}", get(status_page::probe))
        .route("/slos/{name}", get(status_page::slo))
        .route("/metrics", get(metrics))
        .route("/probe", get(probe))
        .route("/api/v1/probes", get(api_probes))
        .route("/api/v1/probes/{name}", get(api_probe))
        .route("/api/v1/slos", get(api_slos))
        .route("/api/v1/slos/{name}", get(api_slo))
        .route("/-/reload", post(reload))
        .route_layer(middleware::from_fn_with_state(app.clone(), auth));
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .merge(protected)
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint") })
        .layer(middleware::from_fn(head_limit))
        .with_state(app)
}

/// The largest request head (request line and headers) served; larger gets 431.
pub const MAX_REQUEST_HEAD: usize = 64 * 1024;

/// hyper's read buffer bounds the head only loosely (it accepted 100 KiB with a 64 KiB buffer):
/// measure the head as it was sent and refuse anything over [`MAX_REQUEST_HEAD`].
async fn head_limit(req: Request, next: Next) -> Response {
    // "METHOD URI HTTP/1.1\r\n", "name: value\r\n" per header, the blank line.
    let line = req.method().as_str().len() + req.uri().to_string().len() + 12;
    let headers: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if line + headers + 2 > MAX_REQUEST_HEAD {
        return error(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!("the request head is larger than {MAX_REQUEST_HEAD} bytes"),
        );
    }
    next.run(req).await
}

/// Serve until `shutdown`, then let open requests finish (bounded by the caller).
pub async fn serve(
    listener: TcpListener,
    app: App,
    tls: Option<ServerTls>,
    shutdown: CancellationToken,
) {
    let acceptor = match tls.map(tls_acceptor).transpose() {
        Ok(a) => a,
        Err(e) => {
            // Validated at config load; a failure here is unexpected but must not crash.
            tracing::error!(error = %e, "Cannot set up TLS for the server; not serving.");
            return;
        }
    };
    let router = router(app);
    let per_client = Arc::new(ClientConnections::default());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        // Room for a head of MAX_REQUEST_HEAD and the start of a body; head_limit enforces
        // the head's size exactly.
        .max_buf_size(MAX_REQUEST_HEAD + 16 * 1024)
        // hyper's default of 100 headers would refuse a small head with many short headers:
        // the limit is the head's size (head_limit), and 4,096 of the shortest headers fit it.
        .max_headers(4096);
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    debug!(error = %e, "Accept failed.");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let Some(client_slot) = per_client.clone().enter(peer.ip()) else {
            debug!(%peer, "Client holds too many connections; closing the new one.");
            drop(stream);
            continue;
        };
        let service =
            TowerToHyperService::new(router.clone().layer(axum::Extension(ClientAddr(peer.ip()))));
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _client_slot = client_slot;
            match acceptor {
                Some(acceptor) => {
                    let tls =
                        match tokio::time::timeout(HEADER_READ_TIMEOUT, acceptor.accept(stream))
                            .await
                        {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                debug!(%peer, error = %e, "TLS handshake with client failed.");
                                return;
                            }
                            Err(_) => return,
                        };
                    let conn = builder.serve_connection(TokioIo::new(tls), service);
                    let _ = watcher.watch(conn).await;
                }
                None => {
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    let _ = watcher.watch(conn).await;
                }
            }
        });
    }
    drop(listener);
    // Give open requests a moment; the daemon bounds the whole shutdown anyway.
    let _ = tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await;
}

/// Open connections per client address.
#[derive(Default)]
struct ClientConnections(std::sync::Mutex<std::collections::HashMap<IpAddr, usize>>);

/// One connection of a client; leaving frees the slot.
struct ClientSlot(Arc<ClientConnections>, IpAddr);

impl ClientConnections {
    fn enter(self: Arc<Self>, ip: IpAddr) -> Option<ClientSlot> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(ip).or_insert(0);
        if *n >= MAX_CONNECTIONS_PER_CLIENT {
            return None;
        }
        *n += 1;
        drop(map);
        Some(ClientSlot(self, ip))
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut map = self.0 .0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.1);
            }
        }
    }
}

fn tls_acceptor(tls: ServerTls) -> Result<tokio_rustls::TlsAcceptor, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(tls.chain, tls.key.clone_key())?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// Bearer or basic credentials, compared in constant time. `/health/*` is not behind this.
async fn auth(State(app): State<App>, req: Request, next: Next) -> Response {
    let config = app.config();
    let Some(auth) = &config.server.auth else {
        return next.run(req).await;
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let ok = match auth {
        Auth::Bearer(token) => given
            .strip_prefix("Bearer ")
            .is_some_and(|t| bool::from(t.as_bytes().ct_eq(token.expose().as_bytes()))),
        Auth::Basic { username, password } => given
            .strip_prefix("Basic ")
            .and_then(|b| {
                base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .ok()
            })
            .and_then(|d| String::from_utf8(d).ok())
            .and_then(|d| {
                d.split_once(':')
                    .map(|(u, p)| (u.to_string(), p.to_string()))
            })
            .is_some_and(|(u, p)| {
                let user_ok = u.as_bytes().ct_eq(username.as_bytes());
                let pass_ok = p.as_bytes().ct_eq(password.expose().as_bytes());
                bool::from(user_ok & pass_ok)
            }),
    };
    if ok {
        return next.run(req).await;
    }
    let challenge = match auth {
        Auth::Bearer(_) => "Bearer realm=\"vantage\"",
        Auth::Basic { .. } => "Basic realm=\"vantage\"",
    };
    let mut resp = error(StatusCode::UNAUTHORIZED, "authentication required");
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    resp
}

fn wants_openmetrics(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/openmetrics-text"))
}

async fn metrics(State(app): State<App>, headers: HeaderMap) -> Response {
    let openmetrics = wants_openmetrics(&headers);
    let gzip = headers
        .get(header::ACCEPT_ENCODING)
        .is_some_and(|v| crate::metrics::gzip::accepts_gzip(v.as_bytes()));
    // Rendering thousands of probes is CPU work: off the runtime's workers, so the scheduler
    // and other requests keep running meanwhile.
    let rendered = tokio::task::spawn_blocking(move || {
        let text = if openmetrics {
            app.metrics.render_openmetrics()
        } else {
            app.metrics.render_text()
        };
        if gzip {
            crate::metrics::gzip::gzip(text.as_bytes())
        } else {
            text.into_bytes()
        }
    })
    .await;
    let Ok(body) = rendered else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let content_type = if openmetrics {
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    } else {
        "text/plain; version=0.0.4; charset=utf-8"
    };
    let mut response = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    let h = response.headers_mut();
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if gzip {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    response
}

fn health_doc(app: &App, checks: Vec<(&str, bool)>) -> (StatusCode, Json<Value>) {
    let healthy = checks.iter().all(|(_, ok)| *ok);
    let checks: Vec<Value> = checks
        .into_iter()
        .map(|(name, ok)| json!({"name": name, "status": if ok { "pass" } else { "fail" }}))
        .collect();
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": if healthy { "healthy" } else { "unhealthy" },
            "checks": checks,
            "version": env!("CARGO_PKG_VERSION"),
            "uptime": app.started.elapsed().as_secs_f64(),
        })),
    )
}

async fn live(State(app): State<App>) -> impl IntoResponse {
    health_doc(&app, vec![("process", true)])
}

async fn ready(State(app): State<App>) -> impl IntoResponse {
    let config = app.config();
    let scheduler = !app.reload.is_closed();
    // `config` (a rejected reload leaves a running config that is not the file's), `state`
    // (the last state write) and `tasks` (recent panics) come from the daemon's health record.
    let mut checks = app.metrics.health.checks();
    checks.push(("scheduler", scheduler, None));
    checks.push(("probes", app.store.all().len() == config.probes.len(), None));
    let healthy = checks.iter().all(|c| c.1);
    let checks: Vec<Value> = checks
        .into_iter()
        .map(|(name, ok, detail)| {
            let mut c = json!({"name": name, "status": if ok { "pass" } else { "fail" }});
            if let Some(d) = detail {
                c["detail"] = json!(app.config().redactor.redact(&d));
            }
            c
        })
        .collect();
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": if healthy { "healthy" } else { "unhealthy" },
            "checks": checks,
            "version": env!("CARGO_PKG_VERSION"),
            "uptime": app.started.elapsed().as_secs_f64(),
        })),
    )
}

async fn reload(State(app): State<App>) -> Response {
    let (tx, rx) = oneshot::channel();
    if app.reload.send(tx).await.is_err() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the daemon is shutting down",
        );
    }
    match rx.await {
        Ok(Ok(n)) => Json(json!({"status": "reloaded", "probes": n})).into_response(),
        Ok(Err(e)) => error(
            StatusCode::BAD_REQUEST,
            format!("config rejected, the previous one keeps running:\n{e}"),
        ),
        Err(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the daemon is shutting down",
        ),
    }
}

#[derive(Deserialize)]
struct ProbeQuery {
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
async fn probe(
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
    let outcome = probe
        .run_redacted(&clock, clock.now(), &config.redactor)
        .await;
    let store = Arc::new(Store::new(clock));
    let states = store.sync(std::slice::from_ref(&probe), &config.redactor);
    if let Some(state) = states.first() {
        state.observe(outcome.clone(), &clock);
    }
    let body = ProbeCollector::last_run_only(store).render();
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

fn probe_summary(state: &ProbeState) -> Value {
    let meta = state.meta();
    let r = state.record();
    let last = r.history.back();
    let labels: serde_json::Map<String, Value> = meta
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    json!({
        "name": state.name,
        "kind": meta.kind,
        "target": meta.target,
        "labels": labels,
        "interval_seconds": meta.interval.as_secs_f64(),
        "up": last.map(|l| l.success),
        "last": last,
        "runs": {"success": r.runs_success, "failure": r.runs_failure},
        "cert_not_after": r.last.as_ref().and_then(|l| l.outcome.facts.tls()).map(|t| t.effective_not_after),
    })
}

async fn api_probes(State(app): State<App>) -> Json<Value> {
    let probes: Vec<Value> = app.store.all().iter().map(|s| probe_summary(s)).collect();
    let shard = app
        .config()
        .shard
        .map_or(json!({"index": 0, "count": 1}), |s| json!(s));
    Json(json!({ "probes": probes, "shard": shard }))
}

async fn api_probe(State(app): State<App>, Path(name): Path<String>) -> Response {
    let Some(state) = app.store.get(&name) else {
        return error(StatusCode::NOT_FOUND, format!("no probe named {name:?}"));
    };
    let mut doc = probe_summary(&state);
    let meta = state.meta();
    let r = state.record();
    let mut latency = serde_json::Map::new();
    for (w, (window, _)) in WINDOWS.iter().enumerate() {
        let mut q = serde_json::Map::new();
        for (i, (quantile, _)) in QUANTILES.iter().enumerate() {
            q.insert((*quantile).to_string(), json!(r.quantiles[w][i]));
        }
        latency.insert((*window).to_string(), Value::Object(q));
    }
    let failures: serde_json::Map<String, Value> = r
        .failures_by_reason
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), json!(v)))
        .collect();
    if let Value::Object(o) = &mut doc {
        o.insert("timeout_seconds".into(), json!(meta.timeout.as_secs_f64()));
        o.insert(
            "last_outcome".into(),
            json!(r
                .last
                .as_ref()
                .map(|l| json!({"at": l.at, "run": l.run, "outcome": l.outcome}))),
        );
        o.insert("history".into(), json!(r.history));
        o.insert("recent_failures".into(), json!(r.failures));
        o.insert("failures_by_reason".into(), Value::Object(failures));
        o.insert("skipped_runs".into(), json!(r.skipped));
        o.insert("latency_quantiles_seconds".into(), Value::Object(latency));
    }
    Json(doc).into_response()
}

fn slo_doc(r: &crate::daemon::evaluator::Runtime, full: bool) -> Value {
    let c = &r.config;
    let rep = r.report.as_ref();
    let firing: Vec<&str> = rep
        .map(vantage_slo::Report::firing_severities)
        .unwrap_or_default();
    let mut doc = json!({
        "name": c.name,
        "objective": c.spec.objective.percent(),
        "period": r.slo.period_name(),
        "probes": c.probes,
        "labels": c.labels,
        "runbook_url": c.runbook_url,
        "events": {"good": r.events_good, "bad": r.events_bad},
        "sli": rep.and_then(|x| x.period.sli),
        "budget_remaining": rep.and_then(|x| x.budget_remaining),
        "budget_consumed": rep.and_then(|x| x.budget_consumed),
        "exhaustion_seconds": rep.and_then(|x| x.exhaustion_seconds),
        "firing": firing,
        // The same "SLO met" verdict `vantage check --runs N` gives (evaluator::verdict).
        "verdict": r.verdict(),
    });
    if let (true, Value::Object(o), Some(rep)) = (full, &mut doc, rep) {
        o.insert("windows".into(), json!(rep.windows));
        o.insert("period_window".into(), json!(rep.period));
        let alerts: Vec<Value> = rep
            .alerts
            .iter()
            .map(|a| {
                let mut v = json!(a);
                if let Value::Object(m) = &mut v {
                    m.insert("explanation".into(), json!(a.explanation()));
                }
                v
            })
            .collect();
        o.insert("alerts".into(), Value::Array(alerts));
        o.insert("min_events".into(), json!(c.spec.min_events));
        o.insert("missing_slices".into(), json!(rep.missing_slices));
        o.insert("percentile_met".into(), json!(rep.percentile_met));
    }
    doc
}

async fn api_slos(State(app): State<App>) -> Json<Value> {
    let slos = app
        .evaluator
        .evaluate_fresh_with(app.store.clock().unix_ms(), |slos| {
            slos.iter().map(|r| slo_doc(r, false)).collect::<Vec<_>>()
        });
    Json(json!({ "slos": slos }))
}

async fn api_slo(State(app): State<App>, Path(name): Path<String>) -> Response {
    let doc = app
        .evaluator
        .evaluate_fresh_with(app.store.clock().unix_ms(), |slos| {
            slos.iter()
                .find(|r| r.config.name == name)
                .map(|r| slo_doc(r, true))
        });
    match doc {
        Some(d) => Json(d).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no SLO named {name:?}")),
    }
}

#[cfg(test)]
mod tests {
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
