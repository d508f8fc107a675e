//! `[probe.alert]`: per-probe `alert_after_failures`, `resolve_after_successes` and
//! `cert_alert_days`, driven through the daemon's alert state machine with paused time.

use std::time::Duration;

use vantage::alerting::engine::Alerts;
use vantage::daemon::evaluator::Evaluator;
use vantage::daemon::store::Store;
use vantage_probes::outcome::{Facts, TlsFacts, VerifyResult};
use vantage_probes::Outcome;

use crate::support::{load, load_in, write_config};

const CONFIG: &str = r#"
[alert]
alert_after_failures = 2
resolve_after_successes = 2
cert_alert_days = 14

[[probe]]
name = "steady"
kind = "http"
url = "http://127.0.0.1:9/"

[[probe]]
name = "flappy"
kind = "http"
url = "http://127.0.0.1:9/flappy"

[probe.alert]
alert_after_failures = 5
resolve_after_successes = 1
cert_alert_days = 60
"#;

fn outcome(success: bool, not_after: Option<i64>) -> Outcome {
    Outcome {
        reason: (!success).then_some(vantage_probes::Reason::HttpStatus),
        duration: Duration::from_millis(5),
        phases: Default::default(),
        evidence: String::new(),
        facts: Facts {
            conn: vantage_probes::ConnFacts {
                tls: not_after.map(|t| TlsFacts {
                    version: "1.3".into(),
                    cipher: "TLS13_AES_128_GCM_SHA256".into(),
                    verify_result: VerifyResult::Ok,
                    verify_detail: None,
                    chain: Vec::new(),
                    leaf_not_after: t,
                    earliest_not_after: t,
                    verified_chain_not_after: Some(t),
                    effective_not_after: t,
                    resumed: false,
                }),
                ..Default::default()
            },
            ..Default::default()
        },
    }
}

fn firing(alerts: &Alerts) -> Vec<String> {
    alerts.active().into_iter().map(|a| a.key).collect()
}

#[tokio::test(start_paused = true)]
async fn probe_alert_overrides_thresholds_per_probe() {
    let config = load(CONFIG);
    let flappy = config.probes.iter().find(|p| p.name == "flappy").unwrap();
    assert_eq!(flappy.alert.alert_after_failures, Some(5));
    let steady = config.probes.iter().find(|p| p.name == "steady").unwrap();
    assert_eq!(steady.alert, Default::default());

    let store = Store::new(vantage::Clock::at(std::time::Duration::from_secs(
        1_700_000_000,
    )));
    store.sync(&config.probes, &config.redactor);
    let evaluator = Evaluator::default();
    let mut alerts = Alerts::default();
    let now_ms = 1_700_000_000_000i64;
    let step = |alerts: &mut Alerts, i: i64| {
        alerts.step(now_ms + i * 10_000, &config.alert, &evaluator, &store)
    };
    let run = |success: bool| {
        for name in ["steady", "flappy"] {
            store
                .get(name)
                .unwrap()
                .observe(outcome(success, None), store.clock());
        }
    };

    // Failures: steady (global 2) goes down at the 2nd, flappy (its own 5) only at the 5th.
    for i in 1..=5 {
        run(false);
        tokio::time::advance(Duration::from_secs(10)).await;
        step(&mut alerts, i);
        let f = firing(&alerts);
        assert_eq!(
            f.contains(&"ProbeDown/steady".to_string()),
            i >= 2,
            "run {i}: {f:?}"
        );
        assert_eq!(
            f.contains(&"ProbeDown/flappy".to_string()),
            i >= 5,
            "run {i}: {f:?}"
        );
    }
    // One success resolves flappy (its own 1); steady needs the global 2.
    run(true);
    step(&mut alerts, 6);
    assert_eq!(firing(&alerts), ["ProbeDown/steady"]);
    run(true);
    step(&mut alerts, 7);
    assert!(firing(&alerts).is_empty());

    // A certificate 30 days from expiry: under flappy's 60, over the global 14.
    let not_after = now_ms / 1000 + 30 * 86_400;
    for name in ["steady", "flappy"] {
        store
            .get(name)
            .unwrap()
            .observe(outcome(true, Some(not_after)), store.clock());
    }
    step(&mut alerts, 8);
    assert_eq!(firing(&alerts), ["CertificateExpiring/flappy"]);
}

/// Hostile `[probe.alert]` values are config errors at their location, never a panic.
#[test]
fn probe_alert_rejects_bad_values() {
    for (bad, want) in [
        (
            "alert_after_failures = 0",
            "alert_after_failures must be at least 1",
        ),
        (
            "resolve_after_successes = 0",
            "resolve_after_successes must be at least 1",
        ),
        (
            "cert_alert_days = -1.0",
            "cert_alert_days must be a number of days ≥ 0",
        ),
        (
            "cert_alert_days = nan",
            "cert_alert_days must be a number of days ≥ 0",
        ),
        (
            "cert_alert_days = inf",
            "cert_alert_days must be a number of days ≥ 0",
        ),
        ("alert_after_failures = -3", "expected u32"),
        ("alert_after_failures = 99999999999", "expected u32"),
        ("alert_after_failures = \"5\"", "invalid type"),
        (
            "resend_interval = \"1m\"",
            "unknown key \"resend_interval\"",
        ),
        ("sink = []", "unknown key \"sink\""),
    ] {
        let cfg = write_config(&format!(
            "[[probe]]\nname = \"a\"\nkind = \"http\"\nurl = \"http://127.0.0.1:9/\"\n[probe.alert]\n{bad}\n"
        ));
        let err = load_in(&cfg.path, &[]).expect_err(bad).to_string();
        assert!(err.contains(want), "{bad}: {err}");
        assert!(
            err.contains("vantage.toml:6:"),
            "{bad}: located at its line: {err}"
        );
    }
}
