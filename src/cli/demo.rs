//! `vantage demo`: the embedded default. Starts loopback targets — healthy, flaky (exactly every
//! fifth request fails), slow, and a TLS endpoint whose certificate expires in five days — writes
//! a config for them, and runs the real daemon on it, printing a short live summary.

use crate::Clock;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::routing::get;
use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::daemon::store::Store;

/// Days until the demo TLS certificate expires.
pub const CERT_DAYS: i64 = 5;

fn targets(counter: Arc<AtomicU64>) -> Router {
    Router::new()
        .route("/ok", get(|| async { "all is healthy here" }))
        .route(
            "/health",
            get(|| async {
                (
                    [("content-type", "application/json")],
                    r#"{"status":"degraded","checks":[{"name":"db","status":"pass"},{"name":"cache","status":"warn"}]}"#,
                )
            }),
        )
        .route(
            "/flaky",
            get(move || {
                let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
                async move {
                    if n % 5 == 0 {
                        (axum::http::StatusCode::SERVICE_UNAVAILABLE, "try again")
                    } else {
                        (axum::http::StatusCode::OK, "fine this time")
                    }
                }
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                "slow but fine"
            }),
        )
}

/// A CA and a `localhost`/127.0.0.1 leaf expiring in [`CERT_DAYS`]; the CA is written to `dir`.
fn demo_pki(
    dir: &Path,
    clock: &Clock,
) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let now = time::OffsetDateTime::from_unix_timestamp(clock.unix_secs())?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "vantage demo CA");
    ca.not_before = now - time::Duration::days(1);
    ca.not_after = now + time::Duration::days(365);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate()?)?;
    std::fs::write(dir.join("demo-ca.pem"), ca.pem())?;
    let mut leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
    leaf.distinguished_name
        .push(DnType::CommonName, "localhost");
    leaf.not_before = now - time::Duration::days(1);
    leaf.not_after = now + time::Duration::days(CERT_DAYS);
    let key = KeyPair::generate()?;
    let cert = leaf.signed_by(&key, &ca)?;
    Ok((
        vec![cert.der().clone()],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    ))
}

async fn serve_plain(listener: TcpListener, router: Router, stop: CancellationToken) {
    let _ = axum::serve(listener, router)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
}

async fn serve_tls(
    listener: TcpListener,
    router: Router,
    acceptor: tokio_rustls::TlsAcceptor,
    stop: CancellationToken,
) {
    let service = TowerToHyperService::new(router);
    loop {
        let (stream, _) = tokio::select! {
            _ = stop.cancelled() => return,
            a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
        };
        let (acceptor, service) = (acceptor.clone(), service.clone());
        tokio::spawn(async move {
            if let Ok(Ok(tls)) =
                tokio::time::timeout(Duration::from_secs(5), acceptor.accept(stream)).await
            {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            }
        });
    }
}

/// The demo's targets, running until `stop`.
pub struct Targets {
    pub http: SocketAddr,
    pub https: SocketAddr,
}

/// Start the targets and write the demo config into `dir`; returns the config path.
pub async fn start(
    dir: &Path,
    listen: &str,
    clock: &Clock,
    stop: CancellationToken,
) -> anyhow::Result<(std::path::PathBuf, Targets)> {
    let router = targets(Arc::new(AtomicU64::new(0)));
    let http = TcpListener::bind("127.0.0.1:0").await?;
    let https = TcpListener::bind("127.0.0.1:0").await?;
    let targets = Targets {
        http: http.local_addr()?,
        https: https.local_addr()?,
    };
    let (chain, key) = demo_pki(dir, clock)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    tokio::spawn(serve_plain(http, router.clone(), stop.clone()));
    tokio::spawn(serve_tls(https, router, acceptor, stop));

    let config = format!(
        r#"# The vantage demo: loopback targets started by `vantage demo`.
[server]
listen = "{listen}"
probe_allow = ["http://127.0.0.1:*/**"]

[defaults]
interval = "2s"
timeout = "1s"
labels = {{ env = "demo" }}

[[probe]]
name = "healthy"
kind = "http"
url = "http://{http}/ok"
[probe.expect]
status = [200]
body_contains = ["healthy"]

[[probe]]
name = "health-doc"
kind = "http"
url = "http://{http}/health"
[probe.expect]
health = true

[[probe]]
name = "flaky"
kind = "http"
url = "http://{http}/flaky"
[probe.expect]
status = [200]

[[probe]]
name = "slow"
kind = "http"
url = "http://{http}/slow"
[probe.expect]
latency_under = "800ms"

[[probe]]
name = "secure-api"
kind = "http"
url = "https://127.0.0.1:{https_port}/ok"
tls = {{ ca = "demo-ca.pem", server_name = "localhost" }}
[probe.expect]
cert_min_days = 3

[[probe]]
name = "cert-expiry"
kind = "tls"
target = "127.0.0.1:{https_port}"
server_name = "localhost"
tls = {{ ca = "demo-ca.pem" }}
interval = "10s"
timeout = "2s"
[probe.expect]
min_days_remaining = 14

# The flaky target fails every fifth request: a 99% objective burns its budget 20 times too fast,
# so the critical burn-rate pair fires within a minute.
[[slo]]
name = "flaky-availability"
probes = ["flaky"]
objective = 99
min_events = 5
runbook_url = "https://runbooks.example.com/flaky"

[[slo]]
name = "api-latency"
probes = ["healthy", "slow"]
objective = 90
sli = "latency"
threshold = "250ms"
min_events = 5
"#,
        http = targets.http,
        https_port = targets.https.port(),
    );
    let path = dir.join("vantage-demo.toml");
    std::fs::write(&path, config).context("writing the demo config")?;
    Ok((path, targets))
}

/// Runs drawn in the terminal's history bar.
const BAR_RUNS: usize = 30;

/// ANSI styling, or none when the output is not a terminal.
#[derive(Debug, Clone, Copy)]
struct Paint(bool);

impl Paint {
    fn paint(self, code: &str, text: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
    fn green(self, t: &str) -> String {
        self.paint("32", t)
    }
    fn red(self, t: &str) -> String {
        self.paint("31", t)
    }
    fn yellow(self, t: &str) -> String {
        self.paint("33", t)
    }
    fn dim(self, t: &str) -> String {
        self.paint("2", t)
    }
    fn bold(self, t: &str) -> String {
        self.paint("1", t)
    }
}

/// The status page's history bar in characters: one cell per recent run, oldest left. With
/// colour, a green or red block; without, `+` for a success and `x` for a failure.
fn history_bar(runs: &[crate::daemon::history::RunPoint], paint: Paint) -> String {
    let shown = &runs[runs.len().saturating_sub(BAR_RUNS)..];
    let mut out = String::new();
    let empty = BAR_RUNS - shown.len();
    if empty > 0 {
        out.push_str(&paint.dim(&(if paint.0 { "▁" } else { "." }).repeat(empty)));
    }
    for r in shown {
        out.push_str(&match (r.success, paint.0) {
            (true, true) => paint.green("▇"),
            (false, true) => paint.red("▇"),
            (true, false) => "+".into(),
            (false, false) => "x".into(),
        });
    }
    out
}

/// Pad `text` to `width` characters (ANSI-free text only).
fn pad(text: &str, width: usize) -> String {
    let n = text.chars().count();
    format!("{text}{}", " ".repeat(width.saturating_sub(n)))
}

/// The live summary: per probe its state, history bar, last latency and 24h uptime; per SLO its
/// budget and burn rate. `color` adds ANSI colours (for a terminal).
pub fn summary(
    store: &Store,
    evaluator: &crate::daemon::evaluator::Evaluator,
    listen: &str,
    color: bool,
) -> String {
    let paint = Paint(color);
    let now_ms = store.clock().unix_ms();
    let mut out = format!(
        "{} on http://{listen}/  {}\n",
        paint.bold("vantage demo"),
        paint.dim("(status page, /metrics, /api/v1/probes; Ctrl-C stops)")
    );
    for p in store.all() {
        let r = p.record();
        let painted = match r.history.back() {
            Some(l) if l.success => paint.green(&pad("UP", 20)),
            Some(l) => {
                let s = format!("DOWN {}", l.reason.map(|x| x.as_str()).unwrap_or(""));
                paint.red(&pad(&s, 20))
            }
            None => paint.dim(&pad("...", 20)),
        };
        let latency = r
            .history
            .back()
            .map(|l| format!("{:.1} ms", l.duration_seconds * 1000.0))
            .unwrap_or_default();
        let runs: Vec<_> = r.timeline.runs.iter().copied().collect();
        let uptime = r
            .timeline
            .uptime(now_ms.div_euclid(1000), 86_400)
            .map(|u| format!("{:.1}%", u * 100.0))
            .unwrap_or_else(|| "-".into());
        out.push_str(&format!(
            "  {} {painted} {} {:>10}  {:>6} 24h  {}/{} ok\n",
            pad(&p.name, 12),
            history_bar(&runs, paint),
            latency,
            uptime,
            r.runs_success,
            r.runs_success + r.runs_failure
        ));
    }
    evaluator.with(|slos| {
        for r in slos {
            let Some(rep) = &r.report else { continue };
            let burn = rep
                .windows
                .iter()
                .find(|w| &*w.name == "5m")
                .and_then(|w| w.burn_rate);
            let firing = rep.firing_severities();
            let budget = rep
                .budget_remaining
                .map(|b| format!("{:.1}%", b * 100.0))
                .unwrap_or_else(|| "-".into());
            let budget = match rep.budget_remaining {
                Some(b) if b <= 0.0 => paint.red(&format!("{budget:>8}")),
                Some(b) if b < 0.5 => paint.yellow(&format!("{budget:>8}")),
                Some(_) => paint.green(&format!("{budget:>8}")),
                None => format!("{budget:>8}"),
            };
            out.push_str(&format!(
                "  SLO {} {}% budget left {budget}  burn(5m) {:>6}  {}\n",
                pad(&r.config.name, 20),
                r.config.spec.objective.percent(),
                burn.map(|b| format!("{b:.2}"))
                    .unwrap_or_else(|| "-".into()),
                if firing.is_empty() {
                    String::new()
                } else {
                    paint.red(&format!("FIRING {}", firing.join(",")))
                }
            ));
        }
    });
    out
}

/// One frame for a terminal: back to the top-left corner, each line overwritten and cleared to
/// its end, then the rest of the screen cleared. No full-screen clear, so nothing piles up in
/// the scrollback: the summary redraws in place.
pub fn redraw(text: &str) -> String {
    let mut out = String::from("\x1b[H");
    for line in text.lines() {
        out.push_str(line);
        out.push_str("\x1b[K\n");
    }
    out.push_str("\x1b[J");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redraw_overwrites_in_place() {
        let f = redraw("a\nbb\n");
        assert_eq!(f, "\x1b[Ha\x1b[K\nbb\x1b[K\n\x1b[J");
        assert!(
            !f.contains("\x1b[2J"),
            "a full clear scrolls copies into the scrollback"
        );
    }

    #[test]
    fn history_bar_with_and_without_colour() {
        let run = |ok| crate::daemon::history::RunPoint {
            at_ms: 0,
            success: ok,
            reason: None,
            status: None,
            duration_us: 1,
            phases_us: [0; 5],
        };
        let runs = vec![run(true), run(false), run(true)];
        let plain = history_bar(&runs, Paint(false));
        assert_eq!(plain, format!("{}+x+", ".".repeat(BAR_RUNS - 3)));
        let coloured = history_bar(&runs, Paint(true));
        assert!(coloured.contains("\x1b[31m▇\x1b[0m") && coloured.contains("\x1b[32m▇\x1b[0m"));
        let many: Vec<_> = (0..100).map(|i| run(i % 2 == 0)).collect();
        assert_eq!(history_bar(&many, Paint(false)).chars().count(), BAR_RUNS);
    }
}
