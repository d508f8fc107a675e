//! Config loading at scale (SPEC §10: linear loading; 20,000 probes validate in ≤ 1 s): the same
//! probe shape at 5k, 10k and 20k probes, so a quadratic step shows as a 4× jump per doubling.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

fn config_text(n: usize) -> String {
    let mut text = String::from("[defaults]\ninterval = \"30s\"\ntimeout = \"5s\"\n");
    for i in 0..n {
        text += &format!(
            "[[probe]]\nname = \"p{i}\"\nkind = \"http\"\nurl = \"http://127.0.0.1:9/{i}\"\n\
             labels = {{ team = \"t{}\" }}\n[probe.expect]\nstatus = [200]\n",
            i % 10
        );
    }
    text
}

fn config_scale(c: &mut Criterion) {
    let mut group = c.benchmark_group("config_validate");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));
    for n in [5_000, 10_000, 20_000] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vantage.toml");
        std::fs::write(&path, config_text(n)).unwrap();
        group.bench_with_input(BenchmarkId::from_parameter(n), &path, |b, path| {
            b.iter(|| {
                let config = vantage::config::load(path).unwrap();
                assert_eq!(config.probes.len(), n);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, config_scale);
criterion_main!(benches);
