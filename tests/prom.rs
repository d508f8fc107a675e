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
            if let Ok(r) = reqwest::get(format!("{}/-/ready", prom.url)).await {
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
        let resp = reqwest::get(format!("{}/api/v1/query?query={q}", self.url)).await;
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
