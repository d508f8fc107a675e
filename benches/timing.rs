//! Timing fidelity and check wall time, measured (not asserted). Run with
//! `cargo bench --bench timing`; the figures go into benches/README.md.
//!
//! 1. processing phase against a target that answers after exactly 50 ms, 1,000 probes in flight;
//!    the target runs in a process of its own (this binary, re-executed with
//!    `VANTAGE_TIMING_TARGET=1`), with its own runtime and one accept loop per core; each request
//!    carries an id and the target reports, per id, when the head arrived, when it was read and
//!    when the answer was written, so the prober's own error is processing - (written - arrived)
//! 2. processing phase against a 200 ms target, one probe at a time
//! 3. 40 probes of a 500 ms target through the check runner
//! 4. `vantage check` (the release binary) over 200 endpoints answering in 100 ms
//! 5. `vantage probe` process start to answer, against an instant target

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use tokio::time::Instant;
use vantage::cli::check::{self, CheckOptions};
use vantage::config::{Kind, Probe};
use vantage::secret::Redactor;
use vantage_probes::timing::StampedTcp;

#[allow(dead_code)]
#[path = "../tests/fixtures.rs"]
mod fixtures;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn summary(name: &str, mut xs: Vec<Duration>) {
    xs.sort();
    println!(
        "{name}: n={} min {} p50 {} p99 {} max {}",
        xs.len(),
        ms(xs[0]),
        ms(percentile(&xs, 0.5)),
        ms(percentile(&xs, 0.99)),
        ms(*xs.last().unwrap())
    );
}

fn probe(url: &str) -> Arc<Probe> {
    Arc::new(Probe::adhoc(url, Kind::Http, Duration::from_secs(10)).unwrap())
}

/// The target gets a runtime (and threads) of its own, so its work does not queue behind the
/// prober's tasks; on 2 cores they still share the CPU.
fn target_runtime() -> (tokio::runtime::Runtime, fixtures::Target) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let target = rt.block_on(fixtures::http_target());
    (rt, target)
}

/// The 50 ms target of figure 1, as a process of its own: this binary with
/// `VANTAGE_TIMING_TARGET` set. It prints `LISTEN <addr>`, answers `GET /delay/<ms>/<id>` that
/// many milliseconds after the request head is read, and exits when its stdin closes.
/// `GET /stats` answers one line per request answered since the last `/stats`:
/// `<id> <arrived> <read> <written>`, nanoseconds on the target's own monotonic clock (only
/// differences within the target are used, so the two processes' clocks never meet): when the
/// kernel received the request head's last segment (0 where kernel receive timestamps are not
/// available), when the target's task had read the whole head, and when the write of the answer
/// had returned.
fn target_process_main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let log: Arc<Mutex<Vec<Served>>> = Arc::default();
        let epoch = Instant::now();
        let first = reuseport_listener("127.0.0.1:0".parse().unwrap());
        let addr = first.local_addr().unwrap();
        let mut listeners = vec![first];
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        for _ in 1..workers {
            listeners.push(reuseport_listener(addr));
        }
        println!("LISTEN {addr}");
        for listener in listeners {
            let log = log.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((s, _)) = listener.accept().await else {
                        continue;
                    };
                    let _ = s.set_nodelay(true);
                    tokio::spawn(serve_delay(s, log.clone(), epoch));
                }
            });
        }
        // Until the bench closes our stdin.
        tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {}
        })
        .await
        .unwrap();
    });
}

/// One answered request, as the target saw it (ns since the target's epoch).
struct Served {
    id: u64,
    arrived: u64,
    read: u64,
    written: u64,
}

fn reuseport_listener(addr: std::net::SocketAddr) -> tokio::net::TcpListener {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_reuseaddr(true).unwrap();
    socket.set_reuseport(true).unwrap();
    socket.bind(addr).unwrap();
    socket.listen(4096).unwrap()
}

async fn serve_delay(s: tokio::net::TcpStream, log: Arc<Mutex<Vec<Served>>>, epoch: Instant) {
    let (mut s, arrivals) = StampedTcp::new(s);
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let read_at = Instant::now();
    let arrived_at = arrivals.last();
    let ns = |t: Instant| t.saturating_duration_since(epoch).as_nanos() as u64;
    let head = String::from_utf8_lossy(&buf);
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut record = None;
    let body = if let Some(rest) = path.strip_prefix("/delay/") {
        let (ms, id) = rest.split_once('/').unwrap_or((rest, "0"));
        let want = Duration::from_millis(ms.parse().unwrap_or(0));
        tokio::time::sleep_until(read_at + want).await;
        record = Some(id.parse().unwrap_or(0));
        "ok".to_string()
    } else if path == "/stats" {
        let served = std::mem::take(&mut *log.lock().unwrap());
        served
            .iter()
            .map(|r| format!("{} {} {} {}\n", r.id, r.arrived, r.read, r.written))
            .collect()
    } else {
        "not found".to_string()
    };
    let resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = s.write_all(resp.as_bytes()).await;
    let written_at = Instant::now();
    if let Some(id) = record {
        log.lock().unwrap().push(Served {
            id,
            arrived: arrived_at.map_or(0, ns),
            read: ns(read_at),
            written: ns(written_at),
        });
    }
    let _ = s.shutdown().await;
}

/// The target process, killed when dropped.
struct TargetProcess {
    child: std::process::Child,
    addr: std::net::SocketAddr,
}

impl TargetProcess {
    fn start() -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env("VANTAGE_TIMING_TARGET", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("LISTEN ")
            .unwrap()
            .parse()
            .unwrap();
        Self { child, addr }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Per request id: (arrived, read, written) on the target's clock, in ns.
    async fn served(&self) -> HashMap<u64, (u64, u64, u64)> {
        let mut s = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        s.write_all(b"GET /stats HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).await.unwrap();
        let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        body.lines()
            .filter_map(|l| {
                let v: Vec<u64> = l.split(' ').filter_map(|x| x.parse().ok()).collect();
                (v.len() == 4).then(|| (v[0], (v[1], v[2], v[3])))
            })
            .collect()
    }
}

impl Drop for TargetProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `a - b` in ms, signed.
fn signed_ms(a: Duration, b: Duration) -> f64 {
    (a.as_secs_f64() - b.as_secs_f64()) * 1000.0
}

fn signed_summary(name: &str, mut xs: Vec<f64>) {
    xs.sort_by(f64::total_cmp);
    let at = |p: f64| xs[((xs.len() as f64 - 1.0) * p).round() as usize];
    let abs_p99 = {
        let mut a: Vec<f64> = xs.iter().map(|x| x.abs()).collect();
        a.sort_by(f64::total_cmp);
        a[((a.len() as f64 - 1.0) * 0.99).round() as usize]
    };
    println!(
        "{name}: n={} min {:.3} p50 {:.3} p99 {:.3} max {:.3} ms; |x| p99 {:.3} ms",
        xs.len(),
        xs[0],
        at(0.5),
        at(0.99),
        xs[xs.len() - 1],
        abs_p99
    );
}

/// One burst of 1,000 probes against the target process, each request tagged with its id;
/// prints the classic error (processing vs the nominal 50 ms), the target's own share and the
/// prober's own error per request: processing - (target wrote - target received).
async fn burst(label: &str, target: &TargetProcess) {
    let probes: Vec<Arc<Probe>> = (0..1000)
        .map(|id| probe(&target.url(&format!("/delay/50/{id}"))))
        .collect();
    let options = CheckOptions {
        concurrency: 1000,
        ..CheckOptions::default()
    };
    let results = check::run(probes, &options, &Redactor::default()).await;
    let failed = results.iter().filter(|r| !r.outcome.success()).count();
    let processing: Vec<Duration> = results
        .iter()
        .map(|r| r.outcome.phases.processing)
        .collect();
    println!("1. {label}: 50 ms target process, 1000 in flight, {failed} failed");
    summary("   processing", processing.clone());
    let err: Vec<Duration> = processing
        .iter()
        .map(|p| p.abs_diff(Duration::from_millis(50)))
        .collect();
    summary("   classic error |processing - 50 ms|", err);
    let served = target.served().await;
    let (mut prober_vs_read, mut prober_vs_arrival, mut target_late, mut read_late) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for r in &results {
        let Some(id) = r
            .target
            .rsplit('/')
            .next()
            .and_then(|x| x.parse::<u64>().ok())
        else {
            continue;
        };
        let Some(&(arrived, read, written)) = served.get(&id) else {
            continue;
        };
        let ns = Duration::from_nanos;
        let p = r.outcome.phases.processing;
        prober_vs_read.push(signed_ms(p, ns(written.saturating_sub(read))));
        target_late.push(signed_ms(
            ns(written.saturating_sub(read)),
            Duration::from_millis(50),
        ));
        if arrived != 0 {
            prober_vs_arrival.push(signed_ms(p, ns(written.saturating_sub(arrived))));
            read_late.push(signed_ms(ns(read), ns(arrived)));
        }
    }
    signed_summary(
        "   target: (written - read) - 50 ms (its own lateness)",
        target_late,
    );
    if !read_late.is_empty() {
        signed_summary(
            "   target: read - arrived (its task's delay in reading the head)",
            read_late,
        );
    }
    signed_summary(
        "   PROBER ERROR processing - (target written - target read)",
        prober_vs_read,
    );
    if !prober_vs_arrival.is_empty() {
        signed_summary(
            "   PROBER ERROR processing - (target written - head arrived at target)",
            prober_vs_arrival,
        );
    }
}

async fn fidelity(target: &fixtures::Target) {
    let process = TargetProcess::start();
    burst("multi-thread prober runtime", &process).await;
    // Warm: connections and timers are set up once, the second burst is the figure.
    burst("again", &process).await;
    drop(process);

    let p = probe(&target.url("/delay/200"));
    let mut xs = Vec::new();
    for _ in 0..20 {
        xs.push(
            p.run(&vantage::Clock::system(), Instant::now())
                .await
                .phases
                .processing,
        );
    }
    summary("2. processing, 200 ms target, sequential", xs);

    let probes: Vec<Arc<Probe>> = (0..40).map(|_| probe(&target.url("/delay/500"))).collect();
    let mut walls = Vec::new();
    for _ in 0..5 {
        let start = std::time::Instant::now();
        let r = check::run(
            probes.clone(),
            &CheckOptions::default(),
            &Redactor::default(),
        )
        .await;
        assert!(r.iter().all(|r| r.outcome.success()));
        walls.push(start.elapsed());
    }
    summary("3. 40 probes x 500 ms, wall time", walls);
}

async fn binary(target: &fixtures::Target) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = String::new();
    for i in 0..200 {
        cfg += &format!(
            "[[probe]]\nname = \"e{i}\"\nkind = \"http\"\nurl = \"{}?e={i}\"\ntimeout = \"5s\"\n",
            target.url("/delay/100")
        );
    }
    std::fs::write(dir.path().join("vantage.toml"), cfg).unwrap();
    let exe = env!("CARGO_BIN_EXE_vantage");
    let mut walls = Vec::new();
    for _ in 0..5 {
        let start = std::time::Instant::now();
        let out = tokio::process::Command::new(exe)
            .args(["check", "--log-level", "warn"])
            .current_dir(dir.path())
            .output()
            .await
            .unwrap();
        walls.push(start.elapsed());
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("200 passed, 0 failed"), "{stdout}");
    }
    summary("4. vantage check, 200 endpoints x 100 ms, wall time", walls);

    let url = target.url("/ok");
    let mut walls = Vec::new();
    for _ in 0..30 {
        let start = std::time::Instant::now();
        let out = tokio::process::Command::new(exe)
            .args(["probe", &url, "--log-level", "warn"])
            .output()
            .await
            .unwrap();
        walls.push(start.elapsed());
        assert!(out.status.success());
    }
    summary(
        "5. vantage probe, process start to exit, instant target",
        walls,
    );
}

fn main() {
    if std::env::var_os("VANTAGE_TIMING_TARGET").is_some() {
        target_process_main();
        return;
    }
    // `cargo test --benches` runs bench binaries with --bench absent; only measure on `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let (target_rt, target) = target_runtime();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        fidelity(&target).await;
        binary(&target).await;
    });
    drop(target);
    drop(target_rt);
}
