//! Alerts end to end: a webhook, a real Alertmanager, Slack and PagerDuty receivers on loopback.
//! Every test but the one with the real Alertmanager runs on paused tokio time: the daemon, its
//! targets and the receivers all live in the test's runtime, so the clock jumps whenever they
//! are all waiting, and the 500 ms probes and 1 s evaluations cost no real time.

use std::time::Duration;

use crate::daemon::{sample, start_daemon, start_daemon_at, start_daemon_in};
use crate::fixtures::{closed_port, switch_target, Receiver};
use crate::support::write_config;

fn config(target: &str, sinks: &str, state: Option<&std::path::Path>) -> String {
    let state = state
        .map(|d| {
            format!(
                "[state]\ndir = \"{}\"\nflush_interval = \"200ms\"\n",
                d.display()
            )
        })
        .unwrap_or_default();
    format!(
        r#"{state}
[[probe]]
name = "api"
kind = "http"
url = "{target}"
interval = "500ms"
timeout = "400ms"

[[slo]]
name = "api-availability"
probes = ["api"]
objective = 90
min_events = 5
runbook_url = "https://runbooks.example.com/api"
labels = {{ team = "sre" }}
alerts = [{{ severity = "critical", long = "20s", short = "4s", burn_rate = 2 }}]

[alert]
resend_interval = "2s"
{sinks}
"#
    )
}

fn statuses(bodies: &[serde_json::Value], alertname: &str) -> Vec<String> {
    bodies
        .iter()
        .filter(|b| b["labels"]["alertname"] == alertname)
        .map(|b| b["status"].as_str().unwrap_or("").to_string())
        .collect()
}

async fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = tokio::time::Instant::now();
    while start.elapsed() < limit {
        if f() {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: not within {limit:?}");
}

#[tokio::test]
async fn outage_pages_webhook_and_alertmanager_then_resolves() {
    let (target, up) = switch_target().await;
    let hook = Receiver::start().await;
    let am_hook = Receiver::start().await;
    let am = crate::prom::Alertmanager::start(&am_hook.url("/am")).await;
    let sinks = format!(
        "[[alert.sink]]\nkind = \"webhook\"\nurl = \"{}\"\n[[alert.sink]]\nkind = \"alertmanager\"\nurl = \"{}\"\n",
        hook.url("/hook"),
        am.url
    );
    let d = start_daemon(&config(&target.url("/"), &sinks, None)).await;

    // Healthy: nothing fires.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        hook.bodies("/hook").is_empty(),
        "no alert while healthy: {:?}",
        hook.bodies("/hook")
    );

    up.store(false, std::sync::atomic::Ordering::SeqCst);
    let took = wait_until(
        "SLOBurnRate at the webhook",
        Duration::from_secs(15),
        || statuses(&hook.bodies("/hook"), "SLOBurnRate").contains(&"firing".to_string()),
    )
    .await;
    eprintln!("SLOBurnRate reached the webhook {took:?} after the outage began");
    let firing = hook
        .bodies("/hook")
        .into_iter()
        .find(|b| b["labels"]["alertname"] == "SLOBurnRate")
        .unwrap();
    assert_eq!(firing["labels"]["slo"], "api-availability");
    assert_eq!(firing["labels"]["severity"], "critical");
    assert_eq!(firing["annotations"]["long_window"], "20s");
    assert_eq!(firing["annotations"]["short_window"], "4s");
    assert!(
        firing["labels"].get("long_window").is_none(),
        "not part of the identity"
    );
    assert_eq!(firing["labels"]["team"], "sre");
    assert_eq!(
        firing["annotations"]["runbook_url"],
        "https://runbooks.example.com/api"
    );
    assert!(firing["annotations"]["description"]
        .as_str()
        .unwrap()
        .contains("error budget remaining"));
    // ProbeDown fires on its own count of failures, which may land after the burn-rate page.
    wait_until("ProbeDown at the webhook", Duration::from_secs(10), || {
        statuses(&hook.bodies("/hook"), "ProbeDown").contains(&"firing".to_string())
    })
    .await;

    // In Alertmanager, with the labels routing needs.
    let mut in_am = serde_json::Value::Null;
    for _ in 0..100 {
        let alerts = am.alerts().await;
        if let Some(a) = alerts
            .iter()
            .find(|a| a["labels"]["alertname"] == "SLOBurnRate")
        {
            in_am = a.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(in_am["labels"]["slo"], "api-availability", "{in_am}");
    assert_eq!(in_am["labels"]["severity"], "critical");
    assert_eq!(
        in_am["annotations"]["runbook_url"],
        "https://runbooks.example.com/api"
    );
    assert!(in_am["generatorURL"]
        .as_str()
        .unwrap()
        .ends_with("/api/v1/slos/api-availability"));
    let (_, body) = d.get("/metrics").await;
    assert_eq!(
        sample(
            &body,
            "slo_alert_firing",
            &[("slo", "api-availability"), ("severity", "critical")]
        ),
        Some(1.0)
    );
    assert!(
        sample(
            &body,
            "vantage_notifications_total",
            &[("sink", "webhook"), ("result", "success")]
        )
        .unwrap()
            >= 2.0
    );

    // Recovery: RESOLVED to the webhook, and Alertmanager lets go of the alert.
    up.store(true, std::sync::atomic::Ordering::SeqCst);
    wait_until("RESOLVED at the webhook", Duration::from_secs(20), || {
        let b = hook.bodies("/hook");
        statuses(&b, "SLOBurnRate").contains(&"resolved".to_string())
            && statuses(&b, "ProbeDown").contains(&"resolved".to_string())
    })
    .await;
    let mut gone = false;
    for _ in 0..100 {
        if !am
            .alerts()
            .await
            .iter()
            .any(|a| a["labels"]["alertname"] == "SLOBurnRate")
        {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        gone,
        "Alertmanager still holds the SLOBurnRate alert after the RESOLVED"
    );
    // Alertmanager itself notified its receiver of both.
    let am_statuses: Vec<String> = am_hook
        .bodies("/am")
        .iter()
        .map(|b| b["status"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(
        am_statuses.contains(&"firing".to_string()),
        "{am_statuses:?}"
    );
    d.stop().await;
    am.stop().await;
}

#[tokio::test(start_paused = true)]
async fn restart_while_firing_neither_repages_nor_loses_the_resolve() {
    let (target, up) = switch_target().await;
    let hook = Receiver::start().await;
    let state = tempfile::tempdir().unwrap();
    let sinks = format!(
        "[[alert.sink]]\nkind = \"webhook\"\nurl = \"{}\"\n",
        hook.url("/hook")
    );
    let text = config(&target.url("/"), &sinks, Some(state.path()));
    up.store(false, std::sync::atomic::Ordering::SeqCst);
    let d = start_daemon_in(write_config(&text), &[]).await;
    let clock = d.clock;
    wait_until("ProbeDown firing", Duration::from_secs(15), || {
        statuses(&hook.bodies("/hook"), "ProbeDown").contains(&"firing".to_string())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    d.stop().await;

    let d = start_daemon_at(write_config(&text), clock).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let firings = statuses(&hook.bodies("/hook"), "ProbeDown")
        .iter()
        .filter(|s| *s == "firing")
        .count();
    assert_eq!(firings, 1, "the restart paged again");
    up.store(true, std::sync::atomic::Ordering::SeqCst);
    wait_until(
        "ProbeDown resolved after the restart",
        Duration::from_secs(15),
        || statuses(&hook.bodies("/hook"), "ProbeDown").contains(&"resolved".to_string()),
    )
    .await;
    d.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_dead_sink_does_not_stop_probing_and_gets_the_alert_later() {
    let (target, up) = switch_target().await;
    let port = closed_port().await.port();
    let sinks = format!("[[alert.sink]]\nkind = \"webhook\"\nname = \"late\"\nurl = \"http://127.0.0.1:{port}/hook\"\n");
    up.store(false, std::sync::atomic::Ordering::SeqCst);
    let d = start_daemon(&config(&target.url("/"), &sinks, None)).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (_, body) = d.get("/metrics").await;
    let failures = sample(
        &body,
        "vantage_notifications_total",
        &[("sink", "late"), ("result", "failure")],
    )
    .unwrap_or(0.0);
    assert!(failures >= 1.0, "failed deliveries are counted");
    let runs = sample(
        &body,
        "probe_runs_total",
        &[("probe", "api"), ("result", "failure")],
    )
    .unwrap();
    // Four seconds of clock at a 500 ms interval: eight runs, give or take the grid's phase.
    assert!((7.0..=9.0).contains(&runs), "probing went on: {runs} runs");
    let hook = Receiver::on_port(port).await;
    wait_until(
        "the alert once a receiver listens",
        Duration::from_secs(40),
        || statuses(&hook.bodies("/hook"), "ProbeDown").contains(&"firing".to_string()),
    )
    .await;
    d.stop().await;
}

#[tokio::test(start_paused = true)]
async fn slack_and_pagerduty_receive_their_formats() {
    let (target, up) = switch_target().await;
    let slack = Receiver::start().await;
    let pd = Receiver::start().await;
    let sinks = format!(
        "[[alert.sink]]\nkind = \"slack\"\nurl = \"{}\"\nseverities = [\"critical\"]\n[[alert.sink]]\nkind = \"pagerduty\"\nurl = \"{}\"\nrouting_key = \"R0UT1NGKEY\"\n",
        slack.url("/services/T000/B000/XXXX"),
        pd.url("/v2/enqueue")
    );
    up.store(false, std::sync::atomic::Ordering::SeqCst);
    let d = start_daemon(&config(&target.url("/"), &sinks, None)).await;
    wait_until("Slack and PagerDuty", Duration::from_secs(15), || {
        !slack.bodies("/services/T000/B000/XXXX").is_empty() && !pd.bodies("/v2/enqueue").is_empty()
    })
    .await;
    let msg = &slack.bodies("/services/T000/B000/XXXX")[0];
    assert!(
        msg["text"].as_str().unwrap().starts_with("[FIRING] "),
        "{msg}"
    );
    let att = &msg["attachments"][0];
    assert_eq!(att["color"], "#d0021b");
    assert!(
        att["title"].is_string() && att["text"].is_string() && att["fields"].is_array(),
        "{msg}"
    );
    let ev = &pd.bodies("/v2/enqueue")[0];
    assert_eq!(ev["routing_key"], "R0UT1NGKEY");
    assert_eq!(ev["event_action"], "trigger");
    assert!(ev["dedup_key"].as_str().unwrap().starts_with("vantage/"));
    assert_eq!(ev["payload"]["source"], "vantage");
    assert!(["critical", "warning", "error", "info"]
        .contains(&ev["payload"]["severity"].as_str().unwrap()));
    assert!(ev["payload"]["summary"].is_string());
    up.store(true, std::sync::atomic::Ordering::SeqCst);
    wait_until("PagerDuty resolve", Duration::from_secs(15), || {
        pd.bodies("/v2/enqueue")
            .iter()
            .any(|e| e["event_action"] == "resolve")
    })
    .await;
    let resolve = pd
        .bodies("/v2/enqueue")
        .into_iter()
        .find(|e| e["event_action"] == "resolve")
        .unwrap();
    let trigger_keys: Vec<serde_json::Value> = pd
        .bodies("/v2/enqueue")
        .iter()
        .filter(|e| e["event_action"] == "trigger")
        .map(|e| e["dedup_key"].clone())
        .collect();
    assert!(
        trigger_keys.contains(&resolve["dedup_key"]),
        "resolve uses the trigger's dedup_key"
    );
    d.stop().await;
}

#[tokio::test(start_paused = true)]
async fn certificate_expiring_alert() {
    let pki = crate::fixtures::Pki::new();
    let leaf = pki.leaf(&["localhost"], -1, 5);
    let server = crate::fixtures::tls_target(leaf.chain.clone(), leaf.key()).await;
    let hook = Receiver::start().await;
    let cfg = format!(
        "[[probe]]\nname = \"cert\"\nkind = \"tls\"\ntarget = \"{}\"\nserver_name = \"localhost\"\ntls = {{ ca = \"{}\" }}\ninterval = \"500ms\"\ntimeout = \"400ms\"\n[alert]\ncert_alert_days = 14\n[[alert.sink]]\nkind = \"webhook\"\nurl = \"{}\"\n",
        server.addr,
        pki.ca_path().display(),
        hook.url("/hook")
    );
    let d = start_daemon(&cfg).await;
    wait_until("CertificateExpiring", Duration::from_secs(10), || {
        statuses(&hook.bodies("/hook"), "CertificateExpiring").contains(&"firing".to_string())
    })
    .await;
    let a = hook
        .bodies("/hook")
        .into_iter()
        .find(|b| b["labels"]["alertname"] == "CertificateExpiring")
        .unwrap();
    assert_eq!(a["labels"]["probe"], "cert");
    assert_eq!(a["labels"]["severity"], "warning");
    assert!(
        a["annotations"]["summary"]
            .as_str()
            .unwrap()
            .contains("expires in 4.9 days"),
        "{a}"
    );
    assert!(
        statuses(&hook.bodies("/hook"), "ProbeDown").is_empty(),
        "the probe itself succeeds"
    );
    d.stop().await;
}

/// Sinks are compared by value on reload: a rotated routing key (a secret, printed as `***` by
/// `Debug`) must reach the new notifications.
#[tokio::test(start_paused = true)]
async fn rotating_a_pagerduty_routing_key_takes_effect_on_reload() {
    let (target, up) = switch_target().await;
    let pd = Receiver::start().await;
    let sinks = |key: &str| {
        format!(
            "[[alert.sink]]\nkind = \"pagerduty\"\nurl = \"{}\"\nrouting_key = \"{key}\"\n",
            pd.url("/v2/enqueue")
        )
    };
    up.store(false, std::sync::atomic::Ordering::SeqCst);
    let d = start_daemon(&config(&target.url("/"), &sinks("KEY-ONE"), None)).await;
    wait_until("the trigger", Duration::from_secs(15), || {
        !pd.bodies("/v2/enqueue").is_empty()
    })
    .await;
    assert_eq!(pd.bodies("/v2/enqueue")[0]["routing_key"], "KEY-ONE");
    std::fs::write(
        &d.cfg.path,
        config(&target.url("/"), &sinks("KEY-TWO"), None),
    )
    .unwrap();
    d.control.request_reload().await.unwrap();
    up.store(true, std::sync::atomic::Ordering::SeqCst);
    wait_until("the resolve", Duration::from_secs(15), || {
        pd.bodies("/v2/enqueue")
            .iter()
            .any(|e| e["event_action"] == "resolve")
    })
    .await;
    let resolve = pd
        .bodies("/v2/enqueue")
        .into_iter()
        .find(|e| e["event_action"] == "resolve")
        .unwrap();
    assert_eq!(resolve["routing_key"], "KEY-TWO", "{resolve}");
    d.stop().await;
}
