//! Timing fidelity and check wall time, measured (not asserted). Run with
//! `cargo bench --bench timing`; the figures go into benches/README.md.
//!
//! 1. processing phase against a target that answers after exactly 50 ms, 1,000 probes in flight
//! 2. processing phase against a 200 ms target, one probe at a time
//! 3. 40 probes of a 500 ms target through the check runner
//! 4. `vantage check` (the release binary) over 200 endpoints answering in 100 ms
//! 5. `vantage probe` process start to answer, against an instant target

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use vantage::check::{self, CheckOptions};
use vantage::config::{Kind, Probe};
use vantage::secret::Redactor;

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

async fn fidelity(target: &fixtures::Target) {
    let probes: Vec<Arc<Probe>> = (0..1000).map(|_| probe(&target.url("/delay/50"))).collect();
    let options = CheckOptions {
        concurrency: 1000,
        ..CheckOptions::default()
    };
    let results = check::run(probes, &options, &Redactor::default()).await;
    let failed = results.iter().filter(|r| !r.outcome.success).count();
    let processing: Vec<Duration> = results
        .iter()
        .map(|r| r.outcome.phases.processing)
        .collect();
    summary(
        "1. processing, 50 ms target, 1000 in flight",
        processing.clone(),
    );
    let err: Vec<Duration> = processing
        .iter()
        .map(|p| p.abs_diff(Duration::from_millis(50)))
        .collect();
    summary("   |processing - 50 ms|", err);
    println!("   failed runs: {failed}");

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
        assert!(r.iter().all(|r| r.outcome.success));
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
