//! Criterion: the SLO engine (SPEC §8): events ingested per second on one core, evaluating every
//! window of 10,000 SLOs, and memory per SLO with a 30-day period.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vantage_slo::{default_policy, Budgeting, Objective, Period, Sli, Slo, SloSpec};

const T0: i64 = 1_790_000_000_000;

fn spec() -> SloSpec {
    SloSpec {
        objective: Objective::from_percent(99.9).unwrap(),
        period: Period::Rolling(Duration::from_secs(30 * 86_400)),
        sli: Sli::Availability,
        budgeting: Budgeting::Occurrences,
        min_events: 10,
        alerts: default_policy(Duration::from_secs(30 * 86_400)),
    }
}

fn bench(c: &mut Criterion) {
    let mut slo = Slo::new(spec());
    println!(
        "memory per SLO (30d rolling, default policy): {} bytes",
        slo.memory_bytes()
    );
    let calendar = SloSpec {
        period: Period::Calendar {
            unit: vantage_slo::CalendarUnit::Month,
            tz: vantage_slo::TimeZone::get("Europe/Amsterdam").unwrap(),
        },
        ..spec()
    };
    println!(
        "memory per SLO (calendar month): {} bytes",
        Slo::new(calendar).memory_bytes()
    );

    // Ingest: 1,000 events per iteration, 1 ms apart (the clock moves as in production).
    let mut t = T0;
    let mut g = c.benchmark_group("ingest");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("record_1000_events", |b| {
        b.iter(|| {
            for i in 0..1000 {
                t += 1;
                slo.record(t, i % 97 != 0, Duration::from_millis(3));
            }
        })
    });
    g.finish();

    // Evaluate every window (7 + period + 8 alert windows) of 10,000 SLOs with history.
    let mut slos: Vec<Slo> = (0..10_000).map(|_| Slo::new(spec())).collect();
    for (i, s) in slos.iter_mut().enumerate() {
        for k in 0..200 {
            s.record(
                T0 + k * 60_000 + i as i64,
                (k + i as i64) % 50 != 0,
                Duration::from_millis(3),
            );
        }
    }
    let now = T0 + 200 * 60_000;
    c.bench_function("evaluate_10000_slos", |b| {
        b.iter(|| {
            let mut firing = 0;
            for s in slos.iter_mut() {
                firing += s.evaluate(now).alerts.iter().filter(|a| a.firing).count();
            }
            firing
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
