//! `/probe` limits and scale: per-client rate limits and connection caps, rule validation, tls
//! modules, and a real Prometheus scraping 500 targets (split from `probe_endpoint.rs`).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

use crate::daemon::{sample, start_daemon};
use crate::probe_endpoint::*;
use crate::support::{load_in, write_config};

/// One GET from a chosen loopback source address (a second "client"); status and body.
async fn get_from(ip: &str, to: SocketAddr, path: &str) -> (u16, String) {
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind(format!("{ip}:0").parse().unwrap()).unwrap();
    let mut s = tokio::time::timeout(Duration::from_secs(5), sock.connect(to))
        .await
        .expect("connect within 5 s")
        .unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nhost: {to}\r\nconnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("answer within 10 s")
        .unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

#[tokio::test]
async fn rate_limit_is_per_client_and_off_by_default() {
    let t = Server::start("127.0.0.1").await;
    let base = format!(
        "[server]\nprobe_allow = [\"http://{}/**\"]\n[[probe]]\nname = \"p\"\nkind = \"http\"\nurl = \"http://{}/ok\"\ninterval = \"1h\"\n",
        t.addr, t.addr
    );
    // Default: no limit at all; 60 requests in a burst from one client all pass (the old
    // global limit of 20/s answered 429 here).
    let d = start_daemon(&base).await;
    let path = format!("/probe?target={}", enc(&format!("http://{}/ok", t.addr)));
    let mut tasks = Vec::new();
    for _ in 0..60 {
        let (addr, path) = (d.addr, path.clone());
        tasks.push(tokio::spawn(async move {
            get_from("127.0.0.1", addr, &path).await.0
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200);
    }
    d.stop().await;

    let cfg = base.replace("[server]\n", "[server]\nprobe_rate_limit = 2\n");
    let d = start_daemon(&cfg).await;
    let mut codes = Vec::new();
    for _ in 0..6 {
        codes.push(get_from("127.0.0.1", d.addr, &path).await.0);
    }
    assert!(codes.contains(&429), "{codes:?}");
    assert!(codes.contains(&200), "{codes:?}");
    // Another client is not starved by the noisy one.
    let (status, body) = get_from("127.0.0.2", d.addr, &path).await;
    assert_eq!(status, 200, "{body}");
    let (_, metrics) = d.get("/metrics").await;
    assert!(
        sample(
            &metrics,
            "vantage_probe_requests_rejected_total",
            &[("reason", "rate_limit")]
        )
        .unwrap()
            >= 1.0,
        "{metrics}"
    );
    d.stop().await;
}

#[tokio::test]
async fn one_client_hoarding_connections_does_not_starve_metrics() {
    let t = Server::start("127.0.0.1").await;
    let cfg = format!(
        "[[probe]]\nname = \"p\"\nkind = \"http\"\nurl = \"http://{}/ok\"\ninterval = \"1h\"\n",
        t.addr
    );
    let d = start_daemon(&cfg).await;
    // More idle connections from 127.0.0.2 than the daemon serves at once.
    let mut idle = Vec::new();
    for _ in 0..1100 {
        let sock = TcpSocket::new_v4().unwrap();
        sock.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        match tokio::time::timeout(Duration::from_secs(2), sock.connect(d.addr)).await {
            Ok(Ok(s)) => idle.push(s),
            _ => break,
        }
    }
    assert!(idle.len() >= 1025, "opened {}", idle.len());
    tokio::time::sleep(Duration::from_millis(200)).await;
    for path in ["/metrics", "/health/live", "/health/ready"] {
        let (status, body) =
            tokio::time::timeout(Duration::from_secs(5), get_from("127.0.0.1", d.addr, path))
                .await
                .unwrap_or_else(|_| panic!("{path} did not answer within 5 s"));
        assert_eq!(status, 200, "{path}: {body}");
    }
    drop(idle);
    d.stop().await;
}

#[tokio::test]
async fn malformed_rules_are_located() {
    for (rule, col) in [
        ("http://**", 24),
        ("http://[::1:*/", 24),
        ("https://a.*.example.com/", 27),
        ("http://x:99999/", 26),
        ("http://x/a/../b", 28),
        ("http://0x7f000001/", 24),
    ] {
        let cfg = write_config(&format!("[server]\nprobe_allow = [\"{rule}\"]\n"));
        let err = load_in(&cfg.path, &[]).expect_err(rule).to_string();
        assert!(
            err.contains(&format!("vantage.toml:2:{col}")),
            "{rule}: {err}"
        );
        assert!(err.contains("invalid probe_allow rule"), "{err}");
    }
    let cfg = write_config("[server]\nprobe_max_in_flight = 0\n");
    let err = load_in(&cfg.path, &[]).expect_err("zero").to_string();
    assert!(err.contains("probe_max_in_flight"), "{err}");
}

#[tokio::test]
async fn tls_module_targets_are_matched_as_tls_urls() {
    let s = Server::start("127.0.0.1").await;
    let cfg = "[server]\nprobe_allow = [\"tls://127.0.0.1:1\"]\n[[probe]]\nname = \"p\"\nkind = \"http\"\nurl = \"http://127.0.0.1:9/ok\"\ninterval = \"1h\"\n";
    let d = start_daemon(cfg).await;
    for (target, want) in [
        (format!("{}", s.addr), 403),
        (format!("0x7f000001:{}", s.addr.port()), 403),
        (format!("u@127.0.0.1:{}", s.addr.port()), 400),
        (format!("127.0.0.1/x:{}", s.addr.port()), 400),
        ("[::ffff:169.254.169.254]:443".to_string(), 403),
    ] {
        let (status, body) = d
            .get(&format!("/probe?module=tls&target={}", enc(&target)))
            .await;
        assert_eq!(status, want, "{target}: {body}");
    }
    // The allowed one is probed (and fails: nothing listens on port 1).
    let (status, _) = d
        .get(&format!("/probe?module=tls&target={}", enc("127.0.0.1:1")))
        .await;
    assert_eq!(status, 200);
    assert_eq!(s.accepted(), 0);
    d.stop().await;
}

/// Acceptance: a real Prometheus scraping 500 blackbox-style targets through one vantage at a
/// 5 s interval sees `up == 1` and `probe_success == 1` for every one of them.
#[tokio::test]
async fn prometheus_scrapes_500_targets_through_one_vantage() {
    let t = Server::start("127.0.0.1").await;
    let cfg = format!(
        "[server]\nprobe_allow = [\"http://{t}/ok\"]\n[[probe]]\nname = \"p\"\nkind = \"http\"\nurl = \"http://{t}/ok\"\ninterval = \"1h\"\n",
        t = t.addr
    );
    let d = start_daemon(&cfg).await;
    let targets: Vec<String> = (0..500)
        .map(|i| format!("          - 'http://{}/ok?i={i}'", t.addr))
        .collect();
    let prom_cfg = format!(
        r#"global:
  scrape_interval: 5s
  scrape_timeout: 4s
scrape_configs:
  - job_name: blackbox
    metrics_path: /probe
    params:
      module: [http_2xx]
    static_configs:
      - targets:
{}
    relabel_configs:
      - source_labels: [__address__]
        target_label: __param_target
      - source_labels: [__param_target]
        target_label: instance
      - target_label: __address__
        replacement: '{}'
"#,
        targets.join("\n"),
        d.addr
    );
    let prom = crate::prom::Prometheus::start(&prom_cfg).await;
    let count = |v: &[serde_json::Value]| -> f64 {
        v.first()
            .and_then(|r| r["value"][1].as_str())
            .and_then(|s| s.parse().ok())
            .unwrap_or(0.0)
    };
    let mut last = (0.0, 0.0, 0.0);
    for _ in 0..120 {
        let up = count(&prom.query("count(up{job=\"blackbox\"} == 1)").await);
        let down = count(&prom.query("count(up{job=\"blackbox\"} == 0)").await);
        let success = count(
            &prom
                .query("count(probe_success{job=\"blackbox\"} == 1)")
                .await,
        );
        last = (up, down, success);
        assert_eq!(down, 0.0, "some scrapes failed: up {up}, down {down}");
        if up == 500.0 && success == 500.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        last,
        (500.0, 0.0, 500.0),
        "(up, down, probe_success) after the bounded wait"
    );
    // Two more intervals: still every one up, and nothing was refused.
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        count(&prom.query("count(up{job=\"blackbox\"} == 1)").await),
        500.0
    );
    assert_eq!(
        count(&prom.query("count(up{job=\"blackbox\"} == 0)").await),
        0.0
    );
    let (_, metrics) = d.get("/metrics").await;
    for reason in ["max_in_flight", "rate_limit", "not_allowed", "bad_request"] {
        assert_eq!(
            sample(
                &metrics,
                "vantage_probe_requests_rejected_total",
                &[("reason", reason)]
            ),
            Some(0.0),
            "{reason}"
        );
    }
    prom.stop().await;
    d.stop().await;
}
