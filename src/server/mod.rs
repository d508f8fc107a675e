//! The daemon's HTTP endpoint (axum on an already-bound listener): `/metrics`, `/probe`,
//! `/health/*`, `/api/v1/*`, `/-/reload` and the status page. Plain HTTP or rustls; every
//! connection has a header-read timeout and the number of connections is bounded, so a slow or
//! hostile client cannot tie the daemon up.

pub mod probe_allow;
pub mod probe_debug;
pub mod status_page;
pub mod svg;

mod api;
mod auth;
mod health;
mod metrics_endpoint;
pub(crate) mod pieces;
mod probe_endpoint;
mod stall;

use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use governor::Quota;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::config::{Config, ServerTls};
use crate::daemon::evaluator::Evaluator;
use crate::daemon::store::Store;
use crate::metrics::Metrics;

/// Most connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 1024;
/// Most connections one client address may hold open; more are closed at once, so that one
/// client hoarding idle connections cannot keep others (and `/metrics`, `/health`) out.
pub const MAX_CONNECTIONS_PER_CLIENT: usize = 256;
/// A client must send its request head within this time.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// Slots for the big bodies (`/metrics`, the status page).
    pub renders: pieces::Renders,
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
            renders: pieces::Renders::default(),
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
        .route("/metrics", get(metrics_endpoint::metrics))
        .route("/probe", get(probe_endpoint::probe))
        .route("/api/v1/probes", get(api::api_probes))
        .route("/api/v1/probes/{name}", get(api::api_probe))
        .route("/api/v1/slos", get(api::api_slos))
        .route("/api/v1/slos/{name}", get(api::api_slo))
        .route("/-/reload", post(health::reload))
        .route_layer(middleware::from_fn_with_state(app.clone(), auth::auth));
    Router::new()
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
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
                    let conn = builder
                        .serve_connection(TokioIo::new(stall::StallGuard::new(tls)), service);
                    let _ = watcher.watch(conn).await;
                }
                None => {
                    let conn = builder
                        .serve_connection(TokioIo::new(stall::StallGuard::new(stream)), service);
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
