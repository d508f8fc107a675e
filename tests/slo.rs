//! SLOs end to end: exact counts in the daemon, persistence across kill -9, the CI SLO gate,
//! validation.

use std::time::Duration;

use crate::daemon::{sample, start_daemon};
use crate::fixtures::http_target;
use crate::support::{load_in, vantage, write_config};

fn probe(name: &str, url: &str) -> String {
    format!("[[probe]]\nname = \"{name}\"\nkind = \"http\"\nurl = \"{url}\"\ninterval = \"1s\"\ntimeout = \"900ms\"\n")
}

#[tokio::test(start_paused = true)]
async fn daemon_counts_exactly_and_burns_as_computed() {
    let t = http_target().await;
    let cfg = probe("flaky", &t.url("/flaky/5"))
        + "[[slo]]\nname = \"flaky-availability\"\nprobes = [\"flaky\"]\nobjective = 90\nlabels = { team = \"sre\" }\n";
    let d = start_daemon(&cfg).await;
    tokio::time::sleep(Duration::from_millis(6500)).await;
    // Read when no run is in flight between the probe's and the SLO's counters (bounded retries).
    let mut checked = false;
    for _ in 0..20 {
        let (_, body) = d.get("/metrics").await;
        let ok = sample(
            &body,
            "probe_runs_total",
            &[("probe", "flaky"), ("result", "success")],
        )
        .unwrap();
        let bad = sample(
            &body,
            "probe_runs_total",
            &[("probe", "flaky"), ("result", "failure")],
        )
        .unwrap();
        let good_events = sample(
            &body,
            "slo_events_total",
            &[("slo", "flaky-availability"), ("outcome", "good")],
        )
        .unwrap();
        let bad_events = sample(
            &body,
            "slo_events_total",
            &[("slo", "flaky-availability"), ("outcome", "bad")],
        )
        .unwrap();
        if (good_events, bad_events) != (ok, bad) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        assert!(bad >= 1.0, "every fifth run fails: {ok} ok, {bad} bad");
        let burn = sample(
            &body,
            "slo_burn_rate",
            &[("slo", "flaky-availability"), ("window", "5m")],
        )
        .unwrap();
        let want = (bad / (ok + bad)) / 0.1;
        assert!((burn - want).abs() < 1e-9, "burn {burn} vs {want}");
        let remaining = sample(
            &body,
            "slo_error_budget_remaining_ratio",
            &[("slo", "flaky-availability")],
        )
        .unwrap();
        assert!(
            (remaining - (1.0 - want)).abs() < 1e-9,
            "remaining {remaining} vs {}",
            1.0 - want
        );
        assert_eq!(
            sample(
                &body,
                "slo_objective_ratio",
                &[("slo", "flaky-availability"), ("team", "sre")]
            ),
            Some(0.9)
        );
        assert_eq!(
            sample(
                &body,
                "slo_period_seconds",
                &[("slo", "flaky-availability")]
            ),
            Some(30.0 * 86_400.0)
        );
        assert!(sample(
            &body,
            "slo_sli_ratio",
            &[("slo", "flaky-availability"), ("window", "30d")]
        )
        .is_some());
        assert!(sample(
            &body,
            "slo_alert_firing",
            &[("slo", "flaky-availability"), ("severity", "critical")]
        )
        .is_some());
        checked = true;
        break;
    }
    assert!(checked, "counters never agreed");

    let (status, body) = d.get("/api/v1/slos/flaky-availability").await;
    assert_eq!(status, 200);
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["objective"], 90.0);
    assert_eq!(doc["windows"].as_array().unwrap().len(), 7);
    let alerts = doc["alerts"].as_array().unwrap();
    assert!(!alerts.is_empty());
    assert!(alerts[0]["explanation"].as_str().unwrap().contains("burn"));
    // The daemon's verdict, the one `check --runs` gives: every run so far is in the period.
    let v = &doc["verdict"];
    let (good, total) = (v["good"].as_u64().unwrap(), v["total"].as_u64().unwrap());
    assert_eq!(
        total,
        doc["events"]["good"].as_u64().unwrap() + doc["events"]["bad"].as_u64().unwrap()
    );
    assert_eq!(good, doc["events"]["good"].as_u64().unwrap());
    assert_eq!(v["judged"], total >= 10, "{v}");
    let (status, _) = d.get("/api/v1/slos/nope").await;
    assert_eq!(status, 404);
    let (_, page) = d.get("/").await;
    assert!(page.contains(">flaky-availability<"));
    d.stop().await;
}

#[tokio::test]
async fn slo_state_survives_reload_and_kill_9() {
    let t = http_target().await;
    let port = crate::fixtures::closed_port().await.port();
    let state = tempfile::tempdir().unwrap();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n[state]\ndir = \"{}\"\nflush_interval = \"500ms\"\n",
        state.path().display()
    ) + &probe("api", &t.url("/ok"))
        + "[[slo]]\nname = \"api\"\nprobes = [\"api\"]\nobjective = 99\n";
    let cfg = write_config(&text);
    let spawn = || {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_vantage"))
            .args(["run", "-c", cfg.path.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    };
    let events = |body: &str| {
        sample(
            body,
            "slo_events_total",
            &[("slo", "api"), ("outcome", "good")],
        )
    };
    let metrics = || async {
        match crate::support::get(format!("http://127.0.0.1:{port}/metrics")).await {
            Ok(r) => r.text().await.ok(),
            Err(_) => None,
        }
    };
    let mut child = spawn();
    let mut before = 0.0;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Some(n) = metrics().await.as_deref().and_then(events) {
            before = n;
            if n >= 5.0 {
                break;
            }
        }
    }
    assert!(before >= 5.0, "five runs recorded");
    tokio::time::sleep(Duration::from_millis(700)).await; // one flush since
    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-9", &pid])
        .status()
        .unwrap();
    let _ = child.wait().await;
    assert!(crate::fixtures::closed_port().await.port() > 0);

    let mut child = spawn();
    let mut after = None;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Some(n) = metrics().await.as_deref().and_then(events) {
            after = Some(n);
            break;
        }
    }
    let after = after.expect("restarted daemon answers");
    assert!(
        after >= before,
        "events kept across kill -9: {before} then {after}"
    );
    let mut later = 0.0;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        later = metrics().await.as_deref().and_then(events).unwrap_or(0.0);
        if later > after {
            break;
        }
    }
    assert!(later > after, "and it goes on counting");
    child.kill().await.unwrap();

    // A corrupt state file is moved aside; the daemon starts empty.
    let file = state.path().join("vantage-state.json");
    std::fs::write(&file, b"{ not json").unwrap();
    let mut child = spawn();
    let mut fresh = None;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Some(body) = metrics().await {
            fresh = Some(events(&body).unwrap_or(0.0));
            break;
        }
    }
    assert!(fresh.unwrap() < before, "started empty");
    let aside = std::fs::read_dir(state.path())
        .unwrap()
        .filter_map(Result::ok)
        .any(|e| e.file_name().to_string_lossy().contains(".bad-"));
    assert!(aside, "the corrupt file was moved aside");
    child.kill().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn reload_keeps_slo_state_while_definition_is_unchanged() {
    let t = http_target().await;
    let base = probe("api", &t.url("/ok")) + &probe("other", &t.url("/ok"));
    let d = start_daemon(
        &(base.clone() + "[[slo]]\nname = \"api\"\nprobes = [\"api\"]\nobjective = 99\n"),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let good = |b: &str| {
        sample(
            b,
            "slo_events_total",
            &[("slo", "api"), ("outcome", "good")],
        )
        .unwrap_or(0.0)
    };
    let (_, body) = d.get("/metrics").await;
    let before = good(&body);
    assert!(before >= 1.0);
    // Same definition, other settings changed: counts stay.
    std::fs::write(&d.cfg.path, base.clone() + "[[slo]]\nname = \"api\"\nprobes = [\"api\"]\nobjective = 99\nrunbook_url = \"https://runbooks/api\"\n").unwrap();
    d.control.request_reload().await.unwrap();
    let (_, body) = d.get("/metrics").await;
    assert!(good(&body) >= before);
    // Another objective is another SLO: it starts over.
    std::fs::write(
        &d.cfg.path,
        base + "[[slo]]\nname = \"api\"\nprobes = [\"api\"]\nobjective = 99.5\n",
    )
    .unwrap();
    d.control.request_reload().await.unwrap();
    let (_, body) = d.get("/metrics").await;
    assert!(good(&body) < before);
    d.stop().await;
}

#[tokio::test]
async fn check_runs_gate_on_the_slo() {
    let t = http_target().await;
    let cfg = write_config(
        &(probe("quarter", &t.url("/flaky/4"))
            + &probe("healthy", &t.url("/ok"))
            + "[[slo]]\nname = \"quarter\"\nprobes = [\"quarter\"]\nobjective = 99\n"
            + "[[slo]]\nname = \"healthy\"\nprobes = [\"healthy\"]\nobjective = 99\n"),
    );
    let out = vantage(
        &[
            "check", "--runs", "20", "--probe", "quarter", "--format", "json",
        ],
        &[],
        cfg.dir.path(),
    )
    .await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let slos = doc["slos"].as_array().unwrap();
    assert_eq!(slos.len(), 1, "only the SLO whose probes ran");
    assert_eq!(slos[0]["name"], "quarter");
    assert_eq!(slos[0]["total"], 20);
    assert_eq!(slos[0]["good"], 15);
    assert!((slos[0]["sli"].as_f64().unwrap() - 0.75).abs() < 1e-9);
    assert_eq!(slos[0]["met"], false);
    assert_eq!(slos[0]["objective"], 99.0);

    let out = vantage(
        &["check", "--runs", "20", "--probe", "healthy"],
        &[],
        cfg.dir.path(),
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(
        out.stdout
            .contains("SLO   healthy: 20 of 20 runs good (100.000%), objective 99%: met"),
        "{}",
        out.stdout
    );
    assert_eq!(out.stdout.lines().last().unwrap(), "20 passed, 0 failed");
}

#[test]
fn validation_of_slos() {
    let slow_probe = "[[probe]]\nname = \"api\"\nkind = \"http\"\nurl = \"http://127.0.0.1:9/\"\ninterval = \"30s\"\n";
    let cfg = write_config(
        &(slow_probe.to_string()
            + "[[slo]]\nname = \"perfect\"\nprobes = [\"api\"]\nobjective = 100\n"
            + "[[slo]]\nname = \"ghost\"\nprobes = [\"nope-*\"]\nobjective = 99\n"
            + "[[slo]]\nname = \"loose\"\nprobes = [\"api\"]\nobjective = 90\nalerts = [{ severity = \"critical\", long = \"1h\", short = \"5m\", burn_rate = 14.4 }]\n"
            + "[[slo]]\nname = \"sliced\"\nprobes = [\"api\"]\nobjective = 99\nbudgeting = \"timeslices\"\nslice = \"10s\"\n"
            + "[[slo]]\nname = \"tz\"\nprobes = [\"api\"]\nobjective = 99\ncalendar = \"month\"\ntime_zone = \"Mars/Olympus\"\n"),
    );
    let err = load_in(&cfg.path, &[]).unwrap_err().to_string();
    for needle in [
        "objective 100 must be a percentage strictly between 0 and 100",
        "SLO \"ghost\" names no existing probe: \"nope-*\" matches nothing",
        "this pair can never fire: burn_rate 14.4 × (1 − 90%) = 1.440 > 1, and an error ratio cannot exceed 1",
        "probe \"api\" runs every 30s, longer than the timeslice of 10s",
        "unknown time zone \"Mars/Olympus\"",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }

    // The default policy's 14.4x pair on a 90% SLO is left out with a warning, not an error.
    let cfg = write_config(
        &(probe("api", "http://127.0.0.1:9/")
            + "[[slo]]\nname = \"loose\"\nprobes = [\"api\"]\nobjective = 90\n"),
    );
    let config = load_in(&cfg.path, &[]).unwrap();
    assert_eq!(
        config.slos[0].spec.alerts.len(),
        3,
        "14.4 × 10% > 1 cannot fire; 6 × 10% can"
    );
    assert!(config
        .warnings
        .iter()
        .any(|w| w.message.contains("can never fire")));
}
