//! A real Prometheus (Debian package `prometheus`), started on loopback for one test.

use std::time::Duration;

use tokio::process::{Child, Command};

pub struct Prometheus {
    pub url: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Start with `config` (prometheus.yml text) and wait until it is ready (bounded).
    pub async fn start(config: &str) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("prometheus.yml");
        std::fs::write(&cfg, config).unwrap();
        let port = crate::fixtures::closed_port().await.port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--web.enable-lifecycle")
            .arg("--log.level=warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("prometheus is installed (Debian package prometheus; .ci/run installs it)");
        let url = format!("http://127.0.0.1:{port}");
        let prom = Prometheus {
            url,
            child,
            _dir: dir,
        };
        for _ in 0..300 {
            if let Ok(r) = crate::support::get(format!("{}/-/ready", prom.url)).await {
                if r.status().is_success() {
                    return prom;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("Prometheus did not become ready within 30 s");
    }

    /// An instant query's result vector.
    pub async fn query(&self, q: &str) -> Vec<serde_json::Value> {
        let q: String = url::form_urlencoded::byte_serialize(q.as_bytes()).collect();
        let resp = crate::support::get(format!("{}/api/v1/query?query={q}", self.url)).await;
        let Ok(resp) = resp else { return Vec::new() };
        let doc: serde_json::Value = resp.json().await.unwrap_or_default();
        doc["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}

/// A real Alertmanager (Debian package `prometheus-alertmanager`) whose one receiver is a
/// webhook back into the test.
pub struct Alertmanager {
    pub url: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    pub async fn start(webhook: &str) -> Alertmanager {
        Self::start_config(&format!(
            "route:\n  receiver: test\n  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: test\n    webhook_configs:\n      - url: '{webhook}'\n        send_resolved: true\n"
        ))
        .await
    }

    /// Start with `config` (alertmanager.yml text).
    pub async fn start_config(config: &str) -> Alertmanager {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("alertmanager.yml");
        std::fs::write(&cfg, config).unwrap();
        let port = crate::fixtures::closed_port().await.port();
        let child = Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--storage.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .arg("--log.level=warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("alertmanager is installed (Debian package prometheus-alertmanager; .ci/run installs it)");
        let url = format!("http://127.0.0.1:{port}");
        let am = Alertmanager {
            url,
            child,
            _dir: dir,
        };
        for _ in 0..300 {
            if let Ok(r) = crate::support::get(format!("{}/-/ready", am.url)).await {
                if r.status().is_success() {
                    return am;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("Alertmanager did not become ready within 30 s");
    }

    /// Active alerts.
    pub async fn alerts(&self) -> Vec<serde_json::Value> {
        let Ok(r) = crate::support::get(format!(
            "{}/api/v2/alerts?active=true&silenced=false&inhibited=false",
            self.url
        ))
        .await
        else {
            return Vec::new();
        };
        r.json::<Vec<serde_json::Value>>().await.unwrap_or_default()
    }

    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}
