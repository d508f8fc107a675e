//! `/probe` under load, measured (not asserted as a timing): 8 clients x 400 requests through one
//! in-process daemon at default settings (no rate limit, 256 in flight), against a loopback
//! target. Every answer must be 200 with `probe_success 1`, and no request may be refused: the
//! figure is throughput with no limiter in the way. Run with `cargo bench --bench probe_load`;
//! the figures go into benches/README.md.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::Instant;
use vantage::daemon::store::Store;
use vantage::daemon::{self, Daemon};

const CLIENTS: usize = 8;
const REQUESTS: usize = 400;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// A target answering 200 "ok" on a fresh connection each time (probes do not reuse them).
async fn target() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let mut head = Vec::new();
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
                    match s.read(&mut buf).await {
                        Ok(n) if n > 0 => head.extend_from_slice(&buf[..n]),
                        _ => return,
                    }
                }
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

#[tokio::main]
async fn main() {
    let t = target().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vantage.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nprobe_allow = [\"http://{t}/**\"]\n\n[[probe]]\nname = \"p\"\nkind = \"http\"\nurl = \"http://{t}/ok\"\ninterval = \"1h\"\n"
        ),
    )
    .unwrap();
    let config = vantage::config::load_with_env(&path, &|_| None).unwrap_or_else(|e| panic!("{e}"));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (control, requests) = daemon::control();
    let d = Daemon {
        config_path: path.clone(),
        config,
        listener,
        store: Arc::new(Store::new(vantage::Clock::system())),
        evaluator: Arc::new(vantage::daemon::evaluator::Evaluator::default()),
        log_redactor: None,
        shard: None,
    };
    let task = tokio::spawn(daemon::run(d, control.clone(), requests));
    let url = format!("http://{addr}/probe?module=http_2xx&target=http://{t}/ok");
    // Warm up: the daemon answers.
    let warm = vantage::alerting::notify::http_client();
    for _ in 0..50 {
        if warm.get(&url).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let start = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let url = url.clone();
        clients.push(tokio::spawn(async move {
            let client = vantage::alerting::notify::http_client();
            let mut latencies = Vec::with_capacity(REQUESTS);
            let mut failures = 0usize;
            for _ in 0..REQUESTS {
                let t0 = Instant::now();
                let ok = match client.get(&url).send().await {
                    Ok(r) if r.status().as_u16() == 200 => r
                        .text()
                        .await
                        .is_ok_and(|b| b.lines().any(|l| l.starts_with("probe_success 1"))),
                    _ => false,
                };
                latencies.push(t0.elapsed());
                failures += usize::from(!ok);
            }
            (latencies, failures)
        }));
    }
    let mut all = Vec::new();
    let mut failures = 0;
    for c in clients {
        let (l, f) = c.await.unwrap();
        all.extend(l);
        failures += f;
    }
    let elapsed = start.elapsed();
    all.sort();
    let n = all.len();
    println!(
        "probe_load: {CLIENTS} clients x {REQUESTS} requests = {n} in {:.2} s: {:.0} requests/s; \
         latency p50 {} p99 {} max {}; not 200 + probe_success 1: {failures}",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        ms(percentile(&all, 0.5)),
        ms(percentile(&all, 0.99)),
        ms(*all.last().unwrap()),
    );
    let metrics = warm
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let rejected: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("vantage_probe_requests_rejected_total"))
        .collect();
    println!("{}", rejected.join("\n"));
    control.shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    assert_eq!(
        failures, 0,
        "every request must answer 200 with probe_success 1"
    );
    assert!(
        rejected.iter().all(|l| l.ends_with(" 0")),
        "nothing may be refused at default settings"
    );
}
