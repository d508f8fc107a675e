//! The daemon as an uptime service and a Prometheus target: scheduling, /metrics (checked by a
//! real promtool and scraped by a real Prometheus), /probe, auth, API, reload, signals.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;
use vantage::daemon::store::Store;
use vantage::daemon::{self, Control};

use crate::fixtures::{http_target, https_target, Pki};
use crate::support::{load_in, write_config, Cfg};

/// A daemon running in this process on 127.0.0.1:0.
pub struct Running {
    pub addr: SocketAddr,
    pub control: Control,
    pub cfg: Cfg,
    /// The clock the daemon's store was made with.
    pub clock: vantage::Clock,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Running {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let resp = crate::support::get(self.url(path)).await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    pub async fn stop(mut self) {
        self.control.shutdown.cancel();
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), t)
                .await
                .expect("daemon stops within 10 s")
                .unwrap()
                .unwrap();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.control.shutdown.cancel();
    }
}

pub async fn start_daemon_in(cfg: Cfg, env: &[(&str, &str)]) -> Running {
    start_daemon_sharded(cfg, env, None).await
}

pub async fn start_daemon_sharded(cfg: Cfg, env: &[(&str, &str)], shard: Option<&str>) -> Running {
    start_daemon_full(cfg, env, shard, vantage::Clock::system()).await
}

/// A daemon on a given clock. A test that restarts a daemon under paused tokio time passes
/// the first one's `clock` again: `Clock::system()` pairs the paused instant with the machine's
/// wall clock, which paused time outruns, so a fresh one would put the restart in the past.
pub async fn start_daemon_at(cfg: Cfg, clock: vantage::Clock) -> Running {
    start_daemon_full(cfg, &[], None, clock).await
}

async fn start_daemon_full(
    cfg: Cfg,
    env: &[(&str, &str)],
    shard: Option<&str>,
    clock: vantage::Clock,
) -> Running {
    let config = load_in(&cfg.path, env).unwrap_or_else(|e| panic!("{e}"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (control, requests) = daemon::control();
    let d = daemon::Daemon {
        config_path: cfg.path.clone(),
        config,
        listener,
        store: Arc::new(Store::new(clock)),
        evaluator: Arc::new(vantage::daemon::evaluator::Evaluator::default()),
        log_redactor: None,
        shard: shard.map(|s| s.parse().unwrap()),
    };
    let task = tokio::spawn(daemon::run(d, control.clone(), requests));
    Running {
        addr,
        control,
        cfg,
        clock,
        task: Some(task),
    }
}

pub async fn start_daemon(text: &str) -> Running {
    start_daemon_in(write_config(text), &[]).await
}

/// The value of the first sample of `name` whose labels include all of `labels`, read with the
/// project's exposition parser (escaped values and label names that prefix others included).
/// Line by line, so a `/probe?debug=true` body's log lines are passed over.
pub fn sample(body: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    body.lines()
        .filter_map(|line| vantage_probes::exposition::parse(line).ok())
        .flatten()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|s| s.value)
}

pub(crate) fn probe(name: &str, url: &str, extra: &str) -> String {
    format!("[[probe]]\nname = \"{name}\"\nkind = \"http\"\nurl = \"{url}\"\ninterval = \"1s\"\ntimeout = \"900ms\"\n{extra}\n")
}

#[tokio::test(start_paused = true)]
async fn schedules_counts_and_isolates_hanging_targets() {
    let t = http_target().await;
    // `healthy` opts into the quantile summary (checked below); the rest keep the defaults.
    let mut cfg = probe("healthy", &t.url("/ok"), "metrics = { quantiles = true }\n");
    cfg += &probe(
        "failing",
        &t.url("/status/503"),
        "[probe.expect]\nstatus = [200]",
    );
    for i in 0..30 {
        cfg += &probe(&format!("hang-{i}"), &t.url("/hang"), "");
    }
    let d = start_daemon(&cfg).await;
    tokio::time::sleep(Duration::from_millis(6000)).await;
    let (status, body) = d.get("/metrics").await;
    assert_eq!(status, 200);
    let ok = sample(
        &body,
        "probe_runs_total",
        &[("probe", "healthy"), ("result", "success")],
    )
    .unwrap();
    let bad = sample(
        &body,
        "probe_runs_total",
        &[("probe", "healthy"), ("result", "failure")],
    )
    .unwrap();
    assert!(
        (5.0..=7.0).contains(&(ok + bad)),
        "healthy ran {} times in 6 s",
        ok + bad
    );
    assert_eq!(
        bad, 0.0,
        "30 hanging neighbours must not fail the healthy probe"
    );
    // Absent while zero (nothing was skipped).
    assert_eq!(
        sample(
            &body,
            "vantage_probe_runs_skipped_total",
            &[("probe", "healthy")]
        )
        .unwrap_or(0.0),
        0.0
    );
    let failures = sample(
        &body,
        "probe_runs_total",
        &[("probe", "failing"), ("result", "failure")],
    )
    .unwrap();
    assert!(failures >= 5.0);
    assert_eq!(
        sample(
            &body,
            "probe_failures_total",
            &[("probe", "failing"), ("reason", "http_status")]
        ),
        Some(failures),
        "every failure is counted under its reason"
    );
    let hangs = sample(
        &body,
        "probe_failures_total",
        &[("probe", "hang-7"), ("reason", "timeout")],
    )
    .unwrap();
    assert!(hangs >= 4.0, "hang-7 timed out {hangs} times");
    assert_eq!(
        sample(&body, "probe_success", &[("probe", "healthy")]),
        Some(1.0)
    );
    assert_eq!(
        sample(&body, "probe_success", &[("probe", "failing")]),
        Some(0.0)
    );
    assert_eq!(
        sample(&body, "probe_http_status_code", &[("probe", "failing")]),
        Some(503.0)
    );
    assert!(sample(
        &body,
        "probe_latency_quantile_seconds",
        &[("probe", "healthy"), ("quantile", "0.99"), ("window", "5m")]
    )
    .is_some());
    let count = sample(
        &body,
        "probe_latency_quantile_seconds_count",
        &[("probe", "healthy"), ("window", "5m")],
    )
    .unwrap();
    assert_eq!(count, ok + bad, "the 5m window holds every run so far");
    assert!(sample(
        &body,
        "probe_latency_seconds_bucket",
        &[("probe", "healthy"), ("le", "+Inf")]
    )
    .is_some());
    assert_eq!(
        sample(&body, "vantage_config_last_reload_successful", &[]),
        Some(1.0)
    );
    d.stop().await;
}

#[tokio::test]
async fn promtool_accepts_the_exposition() {
    let t = http_target().await;
    let pki = Pki::new();
    let leaf = pki.leaf(&["localhost"], -1, 30);
    let expired = pki.leaf(&["localhost"], -30, -1);
    let https = https_target(leaf.chain.clone(), leaf.key()).await;
    let https_expired = https_target(expired.chain.clone(), expired.key()).await;
    let ca = pki.ca_path();
    let tls = format!(
        "tls = {{ ca = \"{}\", server_name = \"localhost\" }}",
        ca.display()
    );
    let mut cfg = String::from("[defaults]\nlabels = { team = \"sre\" }\n");
    cfg += &probe("ok", &t.url("/ok"), "");
    cfg += &probe(
        "health",
        &t.url("/health/degraded"),
        "[probe.expect]\nhealth = true",
    );
    cfg += &probe("down", &t.url("/status/500"), "");
    cfg += &probe("secure", &https.https_url("/ok"), &tls);
    cfg += &probe("expired", &https_expired.https_url("/ok"), &tls);
    cfg += &format!(
        "[[probe]]\nname = \"cert\"\nkind = \"tls\"\ntarget = \"{}\"\nserver_name = \"localhost\"\ntls = {{ ca = \"{}\" }}\ninterval = \"1s\"\ntimeout = \"900ms\"\n",
        https_expired.addr,
        ca.display()
    );
    let d = start_daemon(&cfg).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (_, body) = d.get("/metrics").await;

    // Certificate metrics are there for an expired certificate too, to the second.
    assert_eq!(
        sample(
            &body,
            "probe_ssl_earliest_cert_expiry",
            &[("probe", "cert")]
        ),
        Some(expired.not_after as f64)
    );
    assert_eq!(
        sample(
            &body,
            "probe_ssl_earliest_cert_expiry",
            &[("probe", "expired")]
        ),
        Some(expired.not_after as f64)
    );
    assert_eq!(
        sample(
            &body,
            "probe_ssl_leaf_expiry_timestamp_seconds",
            &[("probe", "secure")]
        ),
        Some(leaf.not_after as f64)
    );
    assert_eq!(
        sample(
            &body,
            "probe_ssl_verify_result",
            &[("probe", "cert"), ("result", "expired")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &body,
            "probe_ssl_verify_result",
            &[("probe", "secure"), ("result", "ok")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &body,
            "probe_health_check_status",
            &[("probe", "health"), ("check", "cache")]
        ),
        Some(0.5)
    );
    assert_eq!(
        sample(&body, "probe_http_ssl", &[("probe", "secure")]),
        Some(1.0)
    );
    assert!(body.contains(
        "probe_tls_version_info{probe=\"secure\",kind=\"http\",team=\"sre\",version=\"TLS 1.3\"} 1"
    ));

    let mut child = tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("promtool is installed (Debian package prometheus; .ci/run installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .await
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics said:\n{said}\n---\n{body}"
    );

    // OpenMetrics when asked.
    let om = vantage::alerting::notify::http_client()
        .get(d.url("/metrics"))
        .header("accept", "application/openmetrics-text; version=1.0.0")
        .send()
        .await
        .unwrap();
    assert!(om.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = om.text().await.unwrap();
    assert!(text.ends_with("# EOF\n"));
    assert!(text.contains("# TYPE probe_runs counter"));
    d.stop().await;
}

#[tokio::test]
async fn prometheus_scrapes_probe_success() {
    let t = http_target().await;
    let cfg = probe("alpha", &t.url("/ok"), "") + &probe("beta", &t.url("/status/500"), "");
    let d = start_daemon(&cfg).await;
    let prom = crate::prom::Prometheus::start(&format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: vantage\n    static_configs:\n      - targets: ['{}']\n",
        d.addr
    ))
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let result = prom.query("probe_success").await;
        let mut seen: Vec<(String, String)> = result
            .iter()
            .map(|r| {
                (
                    r["metric"]["probe"].as_str().unwrap_or("").to_string(),
                    r["value"][1].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        seen.sort();
        if seen
            == [
                ("alpha".to_string(), "1".to_string()),
                ("beta".to_string(), "0".to_string()),
            ]
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Prometheus never saw both probes: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    prom.stop().await;
    d.stop().await;
}

#[tokio::test(start_paused = true)]
async fn reload_adds_removes_and_rejects() {
    let t = http_target().await;
    let d = start_daemon(&probe("first", &t.url("/ok"), "")).await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    std::fs::write(&d.cfg.path, probe("second", &t.url("/ok"), "")).unwrap();
    let resp = vantage::alerting::notify::http_client()
        .post(d.url("/-/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let (_, body) = d.get("/metrics").await;
    assert!(
        sample(&body, "probe_success", &[("probe", "second")]).is_some(),
        "added probe runs"
    );
    assert!(
        !body.contains("probe=\"first\""),
        "removed probe's series are gone"
    );

    std::fs::write(
        &d.cfg.path,
        "[[probe]]\nname = \"broken\"\nkind = \"http\"\n",
    )
    .unwrap();
    let resp = vantage::alerting::notify::http_client()
        .post(d.url("/-/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let text = resp.text().await.unwrap();
    assert!(
        text.contains("missing key") && text.contains("url"),
        "{text}"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_, body) = d.get("/metrics").await;
    assert_eq!(
        sample(&body, "vantage_config_last_reload_successful", &[]),
        Some(0.0)
    );
    let runs = |b: &str| {
        sample(
            b,
            "probe_runs_total",
            &[("probe", "second"), ("result", "success")],
        )
        .unwrap()
    };
    let before = runs(&body);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_, body) = d.get("/metrics").await;
    assert!(runs(&body) > before, "the old config keeps running");
    d.stop().await;
}

/// A probe whose kind changes on reload is a new probe under an old name: its counters start
/// afresh instead of carrying the http probe's runs into the tcp series (attack-pass finding).
#[tokio::test(start_paused = true)]
async fn reload_that_changes_a_probes_kind_starts_its_counts_afresh() {
    let t = http_target().await;
    let d = start_daemon(&probe("p", &t.url("/ok"), "")).await;
    tokio::time::sleep(Duration::from_millis(3300)).await;
    let (_, body) = d.get("/metrics").await;
    let runs = |b: &str, kind: &str| {
        sample(
            b,
            "probe_runs_total",
            &[("probe", "p"), ("kind", kind), ("result", "success")],
        )
    };
    let http_runs = runs(&body, "http").unwrap();
    assert!(http_runs >= 3.0, "{http_runs}");
    std::fs::write(
        &d.cfg.path,
        format!(
            "[[probe]]\nname = \"p\"\nkind = \"tcp\"\ntarget = \"{}\"\ninterval = \"1s\"\ntimeout = \"900ms\"\n",
            t.addr
        ),
    )
    .unwrap();
    let resp = vantage::alerting::notify::http_client()
        .post(d.url("/-/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let (_, body) = d.get("/metrics").await;
    assert_eq!(runs(&body, "http"), None, "no http series after the change");
    let tcp_runs = runs(&body, "tcp").unwrap_or(0.0);
    assert!(
        tcp_runs < http_runs,
        "tcp {tcp_runs} carried http's {http_runs}"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_, body) = d.get("/metrics").await;
    assert!(runs(&body, "tcp").unwrap() >= 1.0);
    d.stop().await;
}

#[tokio::test]
async fn probe_endpoint_is_guarded() {
    let t = http_target().await;
    let closed = start_daemon(&probe("p", &t.url("/ok"), "")).await;
    let target = t.url("/ok");
    let (status, body) = closed.get(&format!("/probe?target={target}")).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("probe_allow"));
    closed.stop().await;

    let cfg = "[server]\nprobe_allow = [\"http://127.0.0.1:*/**\"]\n".to_string()
        + &probe("p", &t.url("/ok"), "");
    let d = start_daemon(&cfg).await;
    let (status, body) = d
        .get(&format!("/probe?target={target}&module=http_2xx"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(sample(&body, "probe_success", &[]), Some(1.0), "{body}");
    assert!(
        body.lines()
            .any(|l| l.starts_with("probe_http_status_code 200")),
        "{body}"
    );
    assert!(!body.contains("probe=\""), "blackbox-style: no probe label");
    let (status, body) = d
        .get(&format!("/probe?target={}", t.url("/status/500")))
        .await;
    assert_eq!(status, 200);
    assert_eq!(sample(&body, "probe_success", &[]), Some(0.0), "{body}");
    let (status, body) = d
        .get(&format!(
            "/probe?target=http://localhost:{}/ok",
            t.addr.port()
        ))
        .await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = d
        .get("/probe?target=http://169.254.169.254/latest/meta-data/")
        .await;
    assert_eq!(status, 403);
    let (status, body) = d.get("/probe").await;
    assert_eq!(status, 400);
    assert!(body.contains("missing parameter: target"));
    let (status, body) = d.get(&format!("/probe?target={target}&module=nope")).await;
    assert_eq!(status, 400);
    assert!(body.contains("unknown module"));
    let (status, _) = d.get(&format!("/probe?target={}", "a".repeat(5000))).await;
    assert_eq!(status, 400);
    d.stop().await;

    // Even an allow-everything rule does not reach metadata addresses.
    let cfg = "[server]\nprobe_allow = [\"http://*:*/**\"]\n".to_string()
        + &probe("p", &t.url("/ok"), "");
    let d = start_daemon(&cfg).await;
    let (status, body) = d
        .get("/probe?target=http://169.254.169.254/latest/meta-data/")
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("metadata"));
    d.stop().await;
}

#[tokio::test]
async fn auth_guards_everything_but_health() {
    let t = http_target().await;
    let cfg = "[server]\nauth = { bearer_token = \"${VANTAGE_TOKEN}\" }\n".to_string()
        + &probe("p", &t.url("/ok"), "");
    let d = start_daemon_in(write_config(&cfg), &[("VANTAGE_TOKEN", "s3cret-token-123")]).await;
    let client = vantage::alerting::notify::http_client();
    for path in ["/metrics", "/api/v1/probes", "/", "/probe?target=x"] {
        let r = client.get(d.url(path)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 401, "{path}");
        let r = client
            .get(d.url(path))
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401, "{path}");
    }
    let r = client
        .get(d.url("/metrics"))
        .bearer_auth("s3cret-token-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = client.post(d.url("/-/reload")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    for path in ["/health/live", "/health/ready"] {
        let r = client.get(d.url(path)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path}");
        let doc: serde_json::Value = r.json().await.unwrap();
        assert_eq!(doc["status"], "healthy");
        assert!(doc["uptime"].as_f64().is_some());
        assert_eq!(doc["version"], env!("CARGO_PKG_VERSION"));
    }
    d.stop().await;

    let cfg =
        "[server]\nauth = { basic = { username = \"prom\", password = \"pw-long-enough\" } }\n"
            .to_string()
            + &probe("p", &t.url("/ok"), "");
    let d = start_daemon(&cfg).await;
    let r = client
        .get(d.url("/metrics"))
        .basic_auth("prom", Some("pw-long-enough"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = client
        .get(d.url("/metrics"))
        .basic_auth("prom", Some("nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    d.stop().await;
}

#[tokio::test(start_paused = true)]
async fn api_status_page_and_hostile_clients() {
    let t = http_target().await;
    let cfg = probe("good", &t.url("/ok"), "")
        + &probe(
            "bad",
            &t.url("/status/503"),
            "[probe.expect]\nstatus = [200]",
        );
    let d = start_daemon(&cfg).await;
    tokio::time::sleep(Duration::from_millis(2200)).await;

    let (status, body) = d.get("/api/v1/probes").await;
    assert_eq!(status, 200);
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["probes"].as_array().unwrap().len(), 2);
    let (status, body) = d.get("/api/v1/probes/bad").await;
    assert_eq!(status, 200);
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["up"], false);
    assert_eq!(doc["last_outcome"]["outcome"]["reason"], "http_status");
    assert!(doc["recent_failures"][0]["evidence"]
        .as_str()
        .unwrap()
        .contains("status 503"));
    assert!(!doc["history"].as_array().unwrap().is_empty());
    assert!(doc["latency_quantiles_seconds"]["5m"]["0.5"]
        .as_f64()
        .is_some());
    let (status, _) = d.get("/api/v1/probes/%3Cscript%3E").await;
    assert_eq!(status, 404);
    let (status, page) = d.get("/").await;
    assert_eq!(status, 200);
    assert!(page.contains(">good<") && page.contains(">bad<"));
    assert!(page.contains("DOWN (http_status)"));
    assert!(page.contains("http-equiv=\"refresh\""));

    // Garbage, an oversized head, and a half-sent request do not hurt the daemon.
    let mut s = tokio::net::TcpStream::connect(d.addr).await.unwrap();
    s.write_all(b"\x00\xff garbage \r\n\r\n").await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    let mut s = tokio::net::TcpStream::connect(d.addr).await.unwrap();
    let huge = format!(
        "GET /metrics HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "a".repeat(200_000)
    );
    let _ = s.write_all(huge.as_bytes()).await;
    let _half = tokio::net::TcpStream::connect(d.addr).await.unwrap();
    let (status, _) = d.get("/health/live").await;
    assert_eq!(status, 200);
    let (status, _) = d.get("/nope").await;
    assert_eq!(status, 404);
    d.stop().await;
}
