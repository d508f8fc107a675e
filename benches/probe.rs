//! Criterion: the cost of one probe run against a loopback target, and of loading a config.
//! Run with `cargo bench --bench probe`.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use tokio::time::Instant;
use vantage::config::{Kind, Probe};

#[allow(dead_code)]
#[path = "../tests/fixtures.rs"]
mod fixtures;

fn probes(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let target = rt.block_on(fixtures::http_target());
    let http = Probe::adhoc(&target.url("/ok"), Kind::Http, Duration::from_secs(5)).unwrap();
    c.bench_function("http_probe_loopback", |b| {
        b.iter(|| {
            let o = rt.block_on(http.run(&vantage::Clock::system(), Instant::now()));
            assert!(o.success());
        })
    });

    let pki = fixtures::Pki::new();
    let leaf = pki.leaf(&["127.0.0.1"], -1, 90);
    let tls_target = rt.block_on(fixtures::tls_target(leaf.chain.clone(), leaf.key()));
    // Verification fails against the system roots (our CA is not among them); the handshake,
    // chain parsing and verification work are the same either way.
    let tls = Probe::adhoc(
        &tls_target.addr.to_string(),
        Kind::Tls,
        Duration::from_secs(5),
    )
    .unwrap();
    c.bench_function("tls_probe_loopback", |b| {
        b.iter(|| {
            let o = rt.block_on(tls.run(&vantage::Clock::system(), Instant::now()));
            assert!(o.facts.tls().is_some());
        })
    });
}

fn config_load(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vantage.toml");
    let mut text = String::from("[defaults]\ninterval = \"30s\"\ntimeout = \"5s\"\n");
    for i in 0..1000 {
        text += &format!(
            "[[probe]]\nname = \"p{i}\"\nkind = \"http\"\nurl = \"http://127.0.0.1:9/{i}\"\n\
             [probe.expect]\nstatus = [200]\nbody_regex = ['ok']\njson = [{{ path = \"$.status\", equals = \"ok\" }}]\n"
        );
    }
    std::fs::write(&path, text).unwrap();
    c.bench_function("config_load_1000_probes", |b| {
        b.iter(|| {
            let config = vantage::config::load(&path).unwrap();
            assert_eq!(config.probes.len(), 1000);
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(5));
    targets = probes, config_load
}
criterion_main!(benches);
