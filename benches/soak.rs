//! The scheduler soak (SPEC §8 and §10): the release daemon runs many probes against a loopback
//! target for minutes, scraped every `SOAK_SCRAPE` seconds the way Prometheus does (gzip asked
//! for); this reports scheduling lag p50/p99 (from `vantage_scheduler_lag_seconds`), skipped runs,
//! CPU and peak RSS of the daemon process, and the scrape times.
//!
//! `benches/soak.sh [seconds] [probes] [interval] [slos] [target]` runs it: `SOAK_SECONDS`
//! (default 180), `SOAK_PROBES` (10000), `SOAK_INTERVAL` in seconds (10), `SOAK_SLOS` (0; each
//! SLO covers one probe), `SOAK_TARGET` (`fixture`: the tests' HTTP target on its own runtime
//! thread in this process; `nginx`: nginx-light in its own process, for headroom), `SOAK_SCRAPE`
//! (15), `SOAK_RELOAD` (0: none; else `POST /-/reload` every so many seconds after the first
//! interval). Under a plain `cargo bench` it does nothing unless `VANTAGE_SOAK=1`.

use std::time::{Duration, Instant};

#[allow(dead_code)]
#[path = "../tests/fixtures.rs"]
mod fixtures;

fn proc_field(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// utime + stime, seconds.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// (le, cumulative count) of a histogram without extra labels.
fn buckets(body: &str, name: &str) -> Vec<(f64, f64)> {
    body.lines()
        .filter(|l| l.starts_with(&format!("{name}_bucket{{")))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, l.rsplit(' ').next()?.parse().ok()?))
        })
        .collect()
}

fn quantile_bound(b: &[(f64, f64)], q: f64) -> f64 {
    let total = b.last().map(|x| x.1).unwrap_or(0.0);
    b.iter()
        .find(|(_, c)| *c >= q * total)
        .map(|x| x.0)
        .unwrap_or(f64::NAN)
}

fn sum_of(body: &str, name: &str) -> f64 {
    body.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// nginx-light on loopback answering `200 ok` to everything, as one process (no master, so
/// killing it leaves no orphaned worker); killed when dropped.
struct Nginx(std::process::Child);

impl Nginx {
    fn start(dir: &std::path::Path, port: u16) -> Self {
        let d = dir.display();
        let conf = format!(
            "master_process off;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/nginx-error.log warn;\n\
             events {{ worker_connections 8192; }}\n\
             http {{ access_log off; client_body_temp_path {d}/cb; proxy_temp_path {d}/px;\n\
             fastcgi_temp_path {d}/fc; uwsgi_temp_path {d}/uw; scgi_temp_path {d}/sc;\n\
             server {{ listen 127.0.0.1:{port} backlog=4096; location / {{ return 200 \"ok\\n\"; }} }} }}\n"
        );
        let path = dir.join("nginx.conf");
        std::fs::write(&path, conf).unwrap();
        let child = std::process::Command::new("/usr/sbin/nginx")
            .args(["-e", &format!("{d}/nginx-error.log"), "-p"])
            .arg(dir)
            .arg("-c")
            .arg(&path)
            .spawn()
            .expect("nginx is installed (Debian package nginx-light; .ci/run installs it)");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Self(child)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One scrape as Prometheus makes it (gzip asked for): milliseconds to the whole body.
async fn scrape_ms(port: u16) -> Option<f64> {
    let started = Instant::now();
    let resp = vantage::alerting::notify::http_client()
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .ok()?;
    let _ = resp.bytes().await.ok()?;
    Some(started.elapsed().as_secs_f64() * 1000.0)
}

/// One `POST /-/reload` of the unchanged file: milliseconds to the answer (200 required).
async fn reload_ms(port: u16) -> Option<f64> {
    let started = Instant::now();
    let resp = vantage::alerting::notify::http_client()
        .post(format!("http://127.0.0.1:{port}/-/reload"))
        .send()
        .await
        .ok()?;
    assert_eq!(resp.status().as_u16(), 200, "reload refused");
    Some(started.elapsed().as_secs_f64() * 1000.0)
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    if std::env::var("VANTAGE_SOAK").ok().as_deref() != Some("1") {
        return;
    }
    let seconds: u64 = env_or("SOAK_SECONDS", 180);
    let probes: usize = env_or("SOAK_PROBES", 10_000);
    let interval: u64 = env_or("SOAK_INTERVAL", 10);
    let slos: usize = env_or("SOAK_SLOS", 0);
    let scrape_every: u64 = env_or("SOAK_SCRAPE", 15);
    let reload_every: u64 = env_or("SOAK_RELOAD", 0);
    let target_kind: String = env_or("SOAK_TARGET", "fixture".to_string());
    let target_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (_nginx, _fixture, target_url) = if target_kind == "nginx" {
        let port = free_port();
        let nginx = Nginx::start(dir.path(), port);
        (Some(nginx), None, format!("http://127.0.0.1:{port}/ok"))
    } else {
        let target = target_rt.block_on(fixtures::http_target());
        let url = target.url("/ok");
        (None, Some(target), url)
    };
    let port = free_port();
    let mut cfg = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n[scheduler]\nmax_concurrency = 1024\nper_host_rate = 0\n[defaults]\ninterval = \"{interval}s\"\ntimeout = \"5s\"\n"
    );
    for i in 0..probes {
        cfg += &format!(
            "[[probe]]\nname = \"p{i:05}\"\nkind = \"http\"\nurl = \"{target_url}?i={i}\"\n"
        );
    }
    for i in 0..slos.min(probes) {
        cfg += &format!(
            "[[slo]]\nname = \"s{i:05}\"\nprobes = [\"p{i:05}\"]\nobjective = 99.9\nperiod = \"30d\"\n"
        );
    }
    let path = dir.path().join("soak.toml");
    std::fs::write(&path, cfg).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_vantage"))
        .args([
            "run",
            "-c",
            path.to_str().unwrap(),
            "--log-level",
            "warn",
            "--log-format",
            "text",
        ])
        .spawn()
        .unwrap();
    let pid = child.id();
    let start = Instant::now();
    let cpu_start = cpu_seconds(pid).unwrap_or(0.0);
    // Skip the first interval (every probe's first run lands in it) when measuring CPU.
    std::thread::sleep(Duration::from_secs(interval + 2));
    let cpu_warm = cpu_seconds(pid).unwrap_or(0.0);
    let warm_at = Instant::now();
    let mut peak_rss = 0;
    let mut scrapes = Vec::new();
    let mut next_scrape = start + Duration::from_secs(scrape_every);
    let mut reloads = Vec::new();
    let mut next_reload = start + Duration::from_secs(reload_every.max(1) + interval);
    while start.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_secs(1));
        peak_rss = peak_rss.max(proc_field(pid, "VmRSS:").unwrap_or(0));
        if scrape_every > 0 && Instant::now() >= next_scrape {
            next_scrape += Duration::from_secs(scrape_every);
            if let Some(ms) = target_rt.block_on(scrape_ms(port)) {
                scrapes.push(ms);
            }
        }
        if reload_every > 0 && Instant::now() >= next_reload {
            next_reload += Duration::from_secs(reload_every);
            if let Some(ms) = target_rt.block_on(reload_ms(port)) {
                reloads.push(ms);
            }
        }
    }
    let cpu_end = cpu_seconds(pid).unwrap_or(0.0);
    let hwm = proc_field(pid, "VmHWM:").unwrap_or(0);
    let body = target_rt.block_on(async {
        let started = Instant::now();
        let resp = vantage::alerting::notify::http_client()
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .send()
            .await
            .unwrap();
        let body = resp.text().await.unwrap();
        println!(
            "/metrics scrape at the end (plain text): {:.0} ms, {} MiB",
            started.elapsed().as_secs_f64() * 1000.0,
            body.len() / (1024 * 1024)
        );
        body
    });
    let _ = child.kill();
    let _ = child.wait();
    let lag = buckets(&body, "vantage_scheduler_lag_seconds");
    let runs = sum_of(&body, "probe_runs_total");
    let skipped = sum_of(&body, "vantage_probe_runs_skipped_total");
    let failures = body
        .lines()
        .filter(|l| l.starts_with("probe_runs_total") && l.contains("result=\"failure\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>();
    scrapes.sort_by(f64::total_cmp);
    println!(
        "/metrics scrapes with gzip during the run: {}, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        scrapes.len(),
        percentile(&scrapes, 0.5),
        percentile(&scrapes, 0.99),
        scrapes.last().copied().unwrap_or(f64::NAN)
    );
    if !reloads.is_empty() {
        reloads.sort_by(f64::total_cmp);
        println!(
            "reloads (POST /-/reload, every {reload_every} s): {}, p50 {:.0} ms, max {:.0} ms",
            reloads.len(),
            percentile(&reloads, 0.5),
            reloads.last().copied().unwrap_or(f64::NAN)
        );
    }
    println!(
        "probes {probes}, SLOs {}, interval {interval} s, {seconds} s, target {target_kind}",
        slos.min(probes)
    );
    // `+ 0.0`: an empty sum is -0.0.
    println!(
        "runs {} (failed {}), skipped {}",
        runs + 0.0,
        failures + 0.0,
        skipped + 0.0
    );
    println!(
        "scheduling lag: p50 <= {} s, p99 <= {} s (histogram bucket bounds)",
        quantile_bound(&lag, 0.5),
        quantile_bound(&lag, 0.99)
    );
    println!(
        "CPU: {:.2} cores over the run after warm-up ({:.1} s CPU in {:.0} s; {:.1} s in the first interval + 2 s)",
        (cpu_end - cpu_warm) / warm_at.elapsed().as_secs_f64(),
        cpu_end - cpu_warm,
        warm_at.elapsed().as_secs_f64(),
        cpu_warm - cpu_start
    );
    println!(
        "RSS: peak sampled {} MiB, VmHWM {} MiB",
        peak_rss / 1024,
        hwm / 1024
    );
}
