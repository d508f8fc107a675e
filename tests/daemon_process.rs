//! The daemon as a process and a service: signals, HTTPS, `vantage demo`, shards (split from
//! `daemon.rs`, which keeps the in-process daemon harness).

use std::time::Duration;

use crate::daemon::*;
use crate::fixtures::{http_target, Pki};
use crate::support::write_config;

#[tokio::test]
async fn signals_reload_and_stop_the_binary() {
    let t = http_target().await;
    let port = crate::fixtures::closed_port().await.port();
    let server = format!("[server]\nlisten = \"127.0.0.1:{port}\"\n");
    let cfg = write_config(&(server.clone() + &probe("one", &t.url("/ok"), "")));
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_vantage"))
        .args([
            "run",
            "-c",
            cfg.path.to_str().unwrap(),
            "--log-format",
            "json",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = vantage::alerting::notify::http_client();
    let get = |path: &str| {
        let url = format!("{base}{path}");
        let client = client.clone();
        async move {
            match client.get(url).send().await {
                Ok(r) => Some(r.text().await.unwrap_or_default()),
                Err(_) => None,
            }
        }
    };
    let wait_for = |pred: Box<dyn Fn(&str) -> bool>, what: &'static str| async move {
        for _ in 0..100 {
            if let Some(body) = get("/metrics").await {
                if pred(&body) {
                    return body;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("timed out waiting for {what}");
    };
    wait_for(
        Box::new(|b| b.contains("probe_success{probe=\"one\"")),
        "the first probe",
    )
    .await;
    let pid = child.id().unwrap().to_string();
    let kill = |sig: &str| {
        std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
    };

    std::fs::write(
        &cfg.path,
        server.clone() + &probe("one", &t.url("/ok"), "") + &probe("two", &t.url("/ok"), ""),
    )
    .unwrap();
    let started = tokio::time::Instant::now();
    assert!(kill("-HUP").success());
    wait_for(
        Box::new(|b| b.contains("probe_success{probe=\"two\"")),
        "the added probe",
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "added probe took {:?}",
        started.elapsed()
    );

    std::fs::write(&cfg.path, "this is not toml [").unwrap();
    assert!(kill("-HUP").success());
    let body = wait_for(
        Box::new(|b| b.contains("vantage_config_last_reload_successful 0")),
        "the rejected reload",
    )
    .await;
    assert!(body.contains("probe=\"two\""), "old probes keep running");

    let stopping = tokio::time::Instant::now();
    assert!(kill("-TERM").success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(
        stopping.elapsed() < Duration::from_secs(3),
        "SIGTERM took {:?}",
        stopping.elapsed()
    );
}

#[tokio::test]
async fn serves_https_with_the_configured_certificate() {
    let pki = Pki::new();
    let leaf = pki.leaf(&["localhost"], -1, 30);
    pki.write_pem(&leaf, "server");
    let t = http_target().await;
    let cfg = format!(
        "[server]\ntls = {{ cert = \"{0}/server.pem\", key = \"{0}/server.key\" }}\n",
        pki.path().display()
    ) + &probe("p", &t.url("/ok"), "");
    let d = start_daemon(&cfg).await;
    // vantage's own HTTPS probe, trusting the test CA, asks the daemon for its health.
    let check = format!(
        "[[probe]]\nname = \"self\"\nkind = \"http\"\nurl = \"https://{}/health/live\"\ntls = {{ ca = \"{}\", server_name = \"localhost\" }}\n[probe.expect]\njson = [{{ path = \"$.status\", equals = \"healthy\" }}]\n",
        d.addr,
        pki.ca_path().display()
    );
    let all = crate::support::run_all(crate::support::load(&check)).await;
    let o = crate::support::outcome(&all, "self");
    assert!(o.success(), "{o:#?}");
    assert_eq!(o.facts.tls().unwrap().leaf_not_after, leaf.not_after);
    // Plain HTTP to the TLS port gets nowhere.
    assert!(crate::support::get(d.url("/health/live")).await.is_err());
    d.stop().await;
}

#[tokio::test]
async fn demo_serves_its_probes() {
    let port = crate::fixtures::closed_port().await.port();
    let listen = format!("127.0.0.1:{port}");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_vantage"))
        .args(["demo", "--listen", &listen])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut metrics = String::new();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Ok(r) = crate::support::get(format!("http://{listen}/metrics")).await {
            metrics = r.text().await.unwrap_or_default();
            let probes = ["healthy", "flaky", "slow", "secure-api"];
            if probes
                .iter()
                .all(|p| metrics.contains(&format!("probe_success{{probe=\"{p}\"")))
            {
                break;
            }
        }
    }
    for p in ["healthy", "flaky", "slow", "secure-api"] {
        assert!(
            metrics.contains(&format!("probe_success{{probe=\"{p}\"")),
            "no series for {p}:\n{metrics}"
        );
    }
    let page = crate::support::get(format!("http://{listen}/"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for p in ["healthy", "flaky", "slow", "cert-expiry"] {
        assert!(page.contains(&format!(">{p}<")), "status page lacks {p}");
    }
    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn shards_split_the_probes() {
    let t = http_target().await;
    let mut cfg = String::new();
    for i in 0..12 {
        cfg += &probe(&format!("p{i}"), &t.url("/ok"), "");
    }
    let a = start_daemon_sharded(write_config(&cfg), &[], Some("0/2")).await;
    let b = start_daemon_sharded(write_config(&cfg), &[], Some("1/2")).await;
    let names = |body: &str| -> Vec<String> {
        let doc: serde_json::Value = serde_json::from_str(body).unwrap();
        doc["probes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, body_a) = a.get("/api/v1/probes").await;
    let (_, body_b) = b.get("/api/v1/probes").await;
    let (na, nb) = (names(&body_a), names(&body_b));
    assert!(!na.is_empty() && !nb.is_empty(), "{na:?} {nb:?}");
    assert!(
        na.iter().all(|n| !nb.contains(n)),
        "disjoint: {na:?} {nb:?}"
    );
    let mut all: Vec<String> = na.iter().chain(&nb).cloned().collect();
    all.sort_by_key(|n| n[1..].parse::<u32>().unwrap());
    assert_eq!(all, (0..12).map(|i| format!("p{i}")).collect::<Vec<_>>());
    let doc: serde_json::Value = serde_json::from_str(&body_b).unwrap();
    assert_eq!(doc["shard"], serde_json::json!({"index": 1, "count": 2}));
    let (_, metrics) = b.get("/metrics").await;
    assert_eq!(
        sample(
            &metrics,
            "vantage_shard_info",
            &[("index", "1"), ("count", "2")]
        ),
        Some(1.0)
    );
    a.stop().await;
    b.stop().await;
}
