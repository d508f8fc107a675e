//! Our own time-driven logic under paused tokio time: the one `Clock` follows
//! `tokio::time::advance`, so burn-rate firing, ProbeDown hysteresis and the state flush are
//! tested to the second without sleeping for real.

use std::time::Duration;

use vantage::alerting::engine::Alerts;
use vantage::config::Config;
use vantage::daemon::evaluator::Evaluator;
use vantage::daemon::store::Store;
use vantage::Clock;
use vantage_probes::{Outcome, Reason};

use crate::support::load;

const START: Duration = Duration::from_secs(1_800_000_000);

fn config() -> Config {
    load(
        r#"
[[probe]]
name = "api"
kind = "http"
url = "http://127.0.0.1:9/"
interval = "1s"
timeout = "500ms"

[[slo]]
name = "api-availability"
probes = ["api"]
objective = 99.9
period = "30d"
"#,
    )
}

fn outcome(success: bool) -> Outcome {
    Outcome {
        reason: (!success).then_some(Reason::Timeout),
        duration: Duration::from_millis(20),
        phases: Default::default(),
        evidence: if success { "status 200" } else { "timeout" }.into(),
        facts: Default::default(),
    }
}

/// One run a second, as the scheduler records it: the evaluator's event and the store's record
/// both at the clock's time.
async fn run(clock: &Clock, config: &Config, store: &Store, evaluator: &Evaluator, ok: bool) {
    tokio::time::advance(Duration::from_secs(1)).await;
    evaluator.record("api", ok, Duration::from_millis(20), clock.unix_ms());
    store.get("api").unwrap().observe(outcome(ok), clock);
    let _ = config;
}

#[tokio::test(start_paused = true)]
async fn burn_rate_alert_fires_at_the_workbook_detection_time() {
    let config = config();
    let clock = Clock::at(START);
    let store = Store::new(clock);
    store.sync(&config.probes, &config.redactor);
    let evaluator = Evaluator::default();
    evaluator.apply(&config.slos);
    let mut alerts = Alerts::default();
    // Seven healthy hours: every window of the critical pairs is full.
    for _ in 0..7 * 3600 {
        run(&clock, &config, &store, &evaluator, true).await;
    }
    evaluator.evaluate(clock.unix_ms());
    assert!(alerts
        .step(clock.unix_ms(), &config.alert, &evaluator, &store)
        .is_empty());
    // A total outage trips the 1h/5m pair at 14.4 × 0.1% × 1h = 51.84 s (SRE Workbook θ·W/e);
    // the 1h window's one-minute buckets move that by at most a second or two.
    let mut fired_after = None;
    for k in 1..=120 {
        run(&clock, &config, &store, &evaluator, false).await;
        evaluator.evaluate(clock.unix_ms());
        let t = alerts.step(clock.unix_ms(), &config.alert, &evaluator, &store);
        // (The 3d/6h warning pair, at burn rate 1 over seven hours of history, fires first:
        // correct, and not what this test is about.)
        if let Some(t) = t.iter().find(|t| {
            t.alert.labels["alertname"] == "SLOBurnRate" && t.alert.labels["severity"] == "critical"
        }) {
            assert_eq!(t.alert.annotations["long_window"], "1h");
            assert_eq!(t.alert.starts_at, clock.unix_ms());
            fired_after = Some(k);
            break;
        }
    }
    let k = fired_after.expect("SLOBurnRate fires within two minutes of a total outage");
    assert!((50..=54).contains(&k), "fired after {k} s");
}

#[tokio::test(start_paused = true)]
async fn probe_down_fires_after_three_failures_and_resolves_after_two_successes() {
    let config = config();
    let clock = Clock::at(START);
    let store = Store::new(clock);
    store.sync(&config.probes, &config.redactor);
    let evaluator = Evaluator::default();
    evaluator.apply(&config.slos);
    let mut alerts = Alerts::default();
    let step = |alerts: &mut Alerts| {
        alerts
            .step(clock.unix_ms(), &config.alert, &evaluator, &store)
            .into_iter()
            .filter(|t| t.alert.labels["alertname"] == "ProbeDown")
            .map(|t| t.alert.firing())
            .collect::<Vec<bool>>()
    };
    // (run succeeds, transitions expected after it)
    let script: [(bool, &[bool]); 8] = [
        (false, &[]),
        (false, &[]),
        (false, &[true]),
        (true, &[]),
        (false, &[]),
        (true, &[]),
        (true, &[false]),
        (false, &[]),
    ];
    for (i, (ok, expected)) in script.iter().enumerate() {
        run(&clock, &config, &store, &evaluator, *ok).await;
        assert_eq!(&step(&mut alerts), expected, "after run {}", i + 1);
    }
    let resolved_at = clock.unix_ms();
    assert_eq!(
        resolved_at,
        (START + Duration::from_secs(8)).as_millis() as i64
    );
}

#[tokio::test(start_paused = true)]
async fn the_state_is_flushed_every_flush_interval_on_the_clock() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = crate::support::write_config(&format!(
        r#"
[state]
dir = "{}"
flush_interval = "10s"

[[probe]]
name = "api"
kind = "http"
url = "http://127.0.0.1:9/"
interval = "1h"
timeout = "1s"

[[slo]]
name = "api-availability"
probes = ["api"]
objective = 99
period = "1d"
"#,
        dir.path().display()
    ));
    let config = crate::support::load_in(&cfg.path, &[]).unwrap();
    let clock = Clock::at(START);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (control, requests) = vantage::daemon::control();
    let d = vantage::daemon::Daemon {
        config_path: cfg.path.clone(),
        config,
        listener,
        store: std::sync::Arc::new(Store::new(clock)),
        evaluator: std::sync::Arc::new(Evaluator::default()),
        log_redactor: None,
        shard: None,
    };
    let task = tokio::spawn(vantage::daemon::run(d, control.clone(), requests));
    let file = dir.path().join("vantage-state.json");
    // Ten seconds of clock: one flush, stamped with the clock's time, not the machine's.
    let mut saved_at = None;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let Ok(bytes) = std::fs::read(&file) {
            let doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            saved_at = doc["saved_at"].as_i64();
            break;
        }
    }
    let saved_at = saved_at.expect("the state file is written within 20 s of clock time");
    let since_start = saved_at - START.as_millis() as i64;
    assert!(
        (10_000..=11_000).contains(&since_start),
        "first flush {since_start} ms after start"
    );
    control.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
