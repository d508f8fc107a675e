//! The 10,000-probe soak (SPEC §8): the release daemon runs 10,000 probes at a 10 s interval
//! against a loopback target for a few minutes; this reports scheduling lag p50/p99 (from
//! `vantage_scheduler_lag_seconds`), skipped runs, CPU and peak RSS of the daemon process.
//!
//! `benches/soak.sh` runs it (`SOAK_SECONDS`, default 180; `SOAK_PROBES`, default 10000).
//! Under a plain `cargo bench` it does nothing unless `VANTAGE_SOAK=1`.

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

fn main() {
    if std::env::var("VANTAGE_SOAK").ok().as_deref() != Some("1") {
        return;
    }
    let seconds: u64 = std::env::var("SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(180);
    let probes: usize = std::env::var("SOAK_PROBES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let target_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let target = target_rt.block_on(fixtures::http_target());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n[scheduler]\nmax_concurrency = 1024\nper_host_rate = 0\n[defaults]\ninterval = \"10s\"\ntimeout = \"5s\"\n"
    );
    for i in 0..probes {
        cfg += &format!(
            "[[probe]]\nname = \"p{i:05}\"\nkind = \"http\"\nurl = \"{}?i={i}\"\n",
            target.url("/ok")
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
    std::thread::sleep(Duration::from_secs(12));
    let cpu_warm = cpu_seconds(pid).unwrap_or(0.0);
    let warm_at = Instant::now();
    let mut peak_rss = 0;
    while start.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_secs(1));
        peak_rss = peak_rss.max(proc_field(pid, "VmRSS:").unwrap_or(0));
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
            "/metrics scrape: {:.0} ms, {} MiB",
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
    println!("probes {probes}, interval 10 s, {seconds} s");
    println!("runs {runs} (failed {failures}), skipped {skipped}");
    println!(
        "scheduling lag: p50 <= {} s, p99 <= {} s (histogram bucket bounds)",
        quantile_bound(&lag, 0.5),
        quantile_bound(&lag, 0.99)
    );
    println!(
        "CPU: {:.2} cores over the run after warm-up ({:.1} s CPU in {:.0} s; {:.1} s in the first 12 s)",
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
