//! Criterion: the daemon's per-run bookkeeping and `/metrics` rendering at 10,000 probes.
//! Run with `cargo bench --bench daemon`.

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use vantage::config::{Kind, Probe, SloConfig};
use vantage::daemon::evaluator::Evaluator;
use vantage::daemon::store::Store;
use vantage::metrics::Metrics;
use vantage::secret::Redactor;
use vantage_probes::{
    CertInfo, ConnFacts, Facts, HttpFacts, KindFacts, Outcome, Phases, Reason, TlsFacts,
    VerifyResult,
};

fn outcome(i: usize) -> Outcome {
    let tls = (i % 4 == 0).then(|| TlsFacts {
        version: "1.3".into(),
        cipher: "TLS13_AES_128_GCM_SHA256".into(),
        verify_result: VerifyResult::Ok,
        verify_detail: None,
        chain: vec![CertInfo {
            subject: format!("CN=host{i}.example.com"),
            issuer: "CN=Example CA".into(),
            sans: vec![format!("host{i}.example.com")],
            serial: "0a1b2c3d".into(),
            fingerprint_sha256: "ab".repeat(32),
            not_before: 1_700_000_000,
            not_after: 1_800_000_000,
        }],
        leaf_not_after: 1_800_000_000,
        earliest_not_after: 1_800_000_000,
        verified_chain_not_after: Some(1_800_000_000),
        effective_not_after: 1_800_000_000,
        resumed: false,
    });
    let success = i % 10 != 0;
    Outcome {
        reason: (!success).then_some(Reason::HttpStatus),
        duration: Duration::from_micros(1500 + (i as u64 % 1000)),
        phases: Phases {
            resolve: Duration::from_micros(10),
            connect: Duration::from_micros(100),
            tls: Duration::from_micros(500),
            processing: Duration::from_micros(800),
            transfer: Duration::from_micros(90),
        },
        evidence: format!(
            "status {} from 10.0.0.1:443",
            if success { 200 } else { 503 }
        ),
        facts: Facts::new(
            ConnFacts {
                ip_protocol: Some(4),
                tls: tls.clone(),
                ..ConnFacts::default()
            },
            KindFacts::Http(HttpFacts {
                status: Some(if success { 200 } else { 503 }),
                version: Some("1.1".into()),
                content_length: Some(1234),
                ssl: tls.is_some(),
                ..HttpFacts::default()
            }),
        ),
    }
}

fn probes(n: usize) -> Vec<Probe> {
    let base = Probe::adhoc("http://h.invalid/", Kind::Http, Duration::from_secs(5)).unwrap();
    (0..n)
        .map(|i| base.clone().renamed(&format!("probe-{i:05}")))
        .collect()
}

fn bench(c: &mut Criterion) {
    // Paused tokio time: each observed run is 10 s after the previous one, as for a probe with a
    // 10 s interval, so the quantile windows hold what they would in production (360 runs).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    let _guard = rt.enter();

    let clock = vantage::Clock::system();
    let store = Arc::new(Store::new(clock));
    let states = store.sync(&probes(1), &Redactor::default());
    let state = states[0].clone();
    let o = outcome(4);
    for _ in 0..400 {
        rt.block_on(tokio::time::advance(Duration::from_secs(10)));
        state.observe(o.clone(), &clock);
    }
    c.bench_function("observe_one_run_10s_interval", |b| {
        b.iter(|| {
            rt.block_on(tokio::time::advance(Duration::from_secs(10)));
            state.observe(o.clone(), &clock);
        });
    });

    let store = Arc::new(Store::new(vantage::Clock::system()));
    let states = store.sync(&probes(10_000), &Redactor::default());
    for (i, s) in states.iter().enumerate() {
        for k in 0..3 {
            s.observe(outcome(i + k), &clock);
        }
    }
    // 1,000 SLOs over those probes, each with some history.
    let config_probes = probes(10_000);
    let slos: Vec<SloConfig> = (0..1000)
        .map(|i| SloConfig {
            name: format!("slo-{i:04}"),
            probes: vec![config_probes[i * 10].name.clone()],
            spec: vantage_slo::SloSpec {
                objective: vantage_slo::Objective::from_percent(99.9).unwrap(),
                period: vantage_slo::Period::Rolling(Duration::from_secs(30 * 86_400)),
                sli: vantage_slo::Sli::Availability,
                budgeting: vantage_slo::Budgeting::Occurrences,
                min_events: 10,
                alerts: vantage_slo::default_policy(Duration::from_secs(30 * 86_400)),
            },
            runbook_url: None,
            labels: Default::default(),
            fingerprint: i as u64,
        })
        .collect();
    let evaluator = Arc::new(Evaluator::default());
    evaluator.apply(&slos);
    let now = clock.unix_ms();
    for (i, p) in config_probes.iter().enumerate().step_by(10) {
        for k in 0..100 {
            evaluator.record(
                &p.name,
                (i + k) % 50 != 0,
                Duration::from_millis(3),
                now - 1000 * k as i64,
            );
        }
    }
    let metrics = Metrics::new(store.clone(), evaluator);
    let size = metrics.render_text().len();
    println!(
        "/metrics for 10,000 probes and 1,000 SLOs: {} MiB",
        size / (1024 * 1024)
    );
    // What `/metrics` does: render the pieces, then send them as they are or gzip them.
    c.bench_function("render_metrics_10k_probes_1k_slos", |b| {
        b.iter(|| {
            let pieces = metrics.render(false);
            assert!(pieces.iter().map(String::len).sum::<usize>() > 1_000_000);
        })
    });
    let gz = vantage::metrics::gzip::gzip_pieces(&metrics.render(false)).len();
    println!("/metrics gzipped: {:.1} MiB", gz as f64 / (1024.0 * 1024.0));
    c.bench_function("render_and_gzip_metrics_10k_probes_1k_slos", |b| {
        b.iter(|| {
            let z = vantage::metrics::gzip::gzip_pieces(&metrics.render(false));
            assert!(z.len() > 10_000);
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(10));
    targets = bench
}
criterion_main!(benches);
