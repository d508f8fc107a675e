//! SPEC §10: the daemon's `SLOBurnRate` and Prometheus' (from `vantage rules`) for the same burn
//! are one alert in Alertmanager. A real Alertmanager (Debian `prometheus-alertmanager`) with the
//! shipped route (deploy/alertmanager/alertmanager.yml, receivers emptied so nothing leaves the
//! machine) gets both, each with the label set its producer gives it: the daemon's from its
//! alert state machine and Alertmanager sink payload, Prometheus' from the generated rule (the
//! rule's labels plus `alertname`, exactly what promtool's alert tests show Prometheus sends).

use std::time::Duration;

use vantage::alerting::engine::Alerts;
use vantage::cli::rules::{self, Options};
use vantage::daemon::evaluator::Evaluator;
use vantage::daemon::store::Store;

use crate::prom::Alertmanager;
use crate::support::load;

const CONFIG: &str = r#"
[[probe]]
name = "api"
kind = "http"
url = "http://127.0.0.1:9/"

[[slo]]
name = "api-availability"
probes = ["api"]
objective = 99
min_events = 0
labels = { team = "platform" }
runbook_url = "https://runbooks.example.com/api"
alerts = [
  { severity = "critical", long = "1h", short = "5m", burn_rate = 14.4 },
  { severity = "critical", long = "6h", short = "30m", burn_rate = 6 },
]

[alert]
external_url = "http://vantage.example:9464"
"#;

/// The shipped Alertmanager config with receivers that send nowhere.
fn am_config() -> String {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/alertmanager/alertmanager.yml"
    ))
    .unwrap();
    let mut doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let names: Vec<serde_yaml::Value> = doc["receivers"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| {
            let mut m = serde_yaml::Mapping::new();
            m.insert("name".into(), r["name"].clone());
            serde_yaml::Value::Mapping(m)
        })
        .collect();
    doc["receivers"] = serde_yaml::Value::Sequence(names);
    serde_yaml::to_string(&doc).unwrap()
}

async fn post(am: &Alertmanager, alerts: &serde_json::Value) {
    let r = vantage::alerting::notify::http_client()
        .post(format!("{}/api/v2/alerts", am.url))
        .json(alerts)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
}

async fn groups(am: &Alertmanager) -> Vec<serde_json::Value> {
    crate::support::get(format!("{}/api/v2/alerts/groups", am.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn rfc3339(ms: i64) -> String {
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + Duration::from_millis(ms as u64))
        .to_string()
}

#[tokio::test]
async fn daemon_and_prometheus_alerts_for_one_burn_are_one_alert() {
    let config = load(CONFIG);

    // The daemon: a burn (every run fails), evaluated, through the alert state machine.
    let evaluator = Evaluator::default();
    evaluator.apply(&config.slos);
    let clock = vantage::Clock::system();
    let now = clock.unix_ms();
    for i in 0..60 {
        evaluator.record(
            "api",
            false,
            Duration::from_millis(5),
            now - 300_000 + i * 5_000,
        );
    }
    evaluator.evaluate(now);
    let store = Store::new(clock);
    store.sync(&config.probes, &config.redactor);
    let mut alerts = Alerts::default();
    let transitions = alerts.step(now, &config.alert, &evaluator, &store);
    let daemon: Vec<_> = transitions
        .iter()
        .filter(|t| t.alert.name() == "SLOBurnRate")
        .map(|t| t.alert.clone())
        .collect();
    assert_eq!(
        daemon.len(),
        1,
        "one alert per SLO and severity: {daemon:?}"
    );
    let daemon_payload =
        vantage::alerting::notify::alertmanager(&daemon[0], Duration::from_secs(60), now);

    // Prometheus: the generated rule's labels plus alertname (Prometheus drops the series name
    // and adds alertname; the summed series carry nothing else).
    let generated = rules::generate(&config, "test", &Options::default()).unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&generated.text).unwrap();
    let rule_alerts: Vec<&serde_yaml::Value> = doc["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_sequence().unwrap().iter())
        .filter(|r| r.get("alert").is_some())
        .collect();
    assert_eq!(rule_alerts.len(), 1, "one rule per SLO and severity");
    let mut rule_labels: serde_json::Map<String, serde_json::Value> =
        serde_json::from_value(serde_json::to_value(&rule_alerts[0]["labels"]).unwrap()).unwrap();
    rule_labels.insert(
        "alertname".into(),
        rule_alerts[0]["alert"].as_str().unwrap().into(),
    );
    assert_eq!(
        serde_json::Value::Object(rule_labels.clone()),
        daemon_payload["labels"],
        "the same label set"
    );
    let prometheus_payload = serde_json::json!({
        "labels": rule_labels,
        "annotations": {"summary": "from Prometheus", "description": "rule-side"},
        "startsAt": rfc3339(now - 60_000),
        "endsAt": rfc3339(now + 300_000),
        "generatorURL": "http://prometheus:9090/graph?g0.expr=...",
    });

    let am = Alertmanager::start_config(&am_config()).await;
    post(&am, &serde_json::json!([daemon_payload])).await;
    post(&am, &serde_json::json!([prometheus_payload])).await;
    // Bounded wait for the alerts to be grouped.
    let mut seen = Vec::new();
    for _ in 0..50 {
        seen = groups(&am).await;
        if !seen.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen.len(), 1, "one group: {seen:#?}");
    let in_group = seen[0]["alerts"].as_array().unwrap();
    assert_eq!(in_group.len(), 1, "one alert in it: {seen:#?}");
    assert_eq!(in_group[0]["labels"], daemon_payload["labels"]);
    assert_eq!(am.alerts().await.len(), 1);

    // The control: a label set that differs by one label (the `job` the old rules kept) is a
    // second alert, so the check above can fail.
    let mut other = prometheus_payload.clone();
    other["labels"]["job"] = "vantage".into();
    post(&am, &serde_json::json!([other])).await;
    let mut n = 0;
    for _ in 0..50 {
        n = am.alerts().await.len();
        if n == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(n, 2, "Alertmanager tells label sets apart");
    am.stop().await;
}
