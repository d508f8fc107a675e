//! Everything in deploy/ is checked by a tool or a parser (no container engine runs here):
//! promtool for prometheus.yml and the rules, amtool for alertmanager.yml, systemd-analyze for
//! the unit, YAML/JSON parsers for the compose file, manifests and dashboards.

use std::path::{Path, PathBuf};

use crate::support::vantage;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

const EXAMPLE_ENV: [(&str, &str); 4] = [
    ("API_TOKEN", "example-token"),
    ("VANTAGE_TOKEN", "example-token"),
    (
        "SLACK_WEBHOOK_URL",
        "https://hooks.slack.example/services/T0/B0/X",
    ),
    ("PAGERDUTY_ROUTING_KEY", "example-routing-key"),
];

async fn tool(cmd: &str, args: &[&str]) -> (bool, String) {
    let out = tokio::process::Command::new(cmd)
        .args(args)
        .output()
        .await
        .unwrap_or_else(|e| panic!("{cmd} is installed (.ci/run installs it): {e}"));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn yaml_docs(path: &Path) -> Vec<serde_yaml::Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| {
            serde::Deserialize::deserialize(d).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
        .collect()
}

#[tokio::test]
async fn prometheus_config_and_rules_are_valid_and_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = vantage(
        &["rules", "-c", "deploy/examples/vantage.toml"],
        &EXAMPLE_ENV,
        root,
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let committed = std::fs::read_to_string(deploy().join("prometheus/vantage-rules.yml")).unwrap();
    assert_eq!(
        out.stdout, committed,
        "deploy/prometheus/vantage-rules.yml is stale: regenerate with `vantage rules -c deploy/examples/vantage.toml --output deploy/prometheus/vantage-rules.yml`"
    );
    let cfg = deploy().join("prometheus/prometheus.yml");
    let (ok, text) = tool("promtool", &["check", "config", cfg.to_str().unwrap()]).await;
    assert!(ok, "promtool check config:\n{text}");
    assert!(text.contains("SUCCESS"), "{text}");
}

#[tokio::test]
async fn alertmanager_config_is_valid() {
    let cfg = deploy().join("alertmanager/alertmanager.yml");
    let (ok, text) = tool("amtool", &["check-config", cfg.to_str().unwrap()]).await;
    assert!(ok, "amtool check-config:\n{text}");
}

#[tokio::test]
async fn kubernetes_manifests_parse_and_the_prometheusrule_is_current() {
    let mut kinds = Vec::new();
    for entry in std::fs::read_dir(deploy().join("k8s")).unwrap() {
        let path = entry.unwrap().path();
        for doc in yaml_docs(&path) {
            assert!(
                doc["apiVersion"].is_string(),
                "{}: apiVersion",
                path.display()
            );
            kinds.push(doc["kind"].as_str().unwrap().to_string());
        }
    }
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "ConfigMap",
            "Deployment",
            "PodMonitor",
            "PrometheusRule",
            "Service",
            "ServiceMonitor"
        ]
    );

    // The ConfigMap's config is valid, and the PrometheusRule holds exactly its rules.
    let cm = &yaml_docs(&deploy().join("k8s/configmap.yaml"))[0];
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("vantage.toml"),
        cm["data"]["vantage.toml"].as_str().unwrap(),
    )
    .unwrap();
    let out = vantage(&["rules"], &[], dir.path()).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let generated: serde_yaml::Value = serde_yaml::from_str(&out.stdout).unwrap();
    let rule = &yaml_docs(&deploy().join("k8s/prometheusrule.yaml"))[0];
    assert_eq!(
        rule["spec"]["groups"], generated["groups"],
        "deploy/k8s/prometheusrule.yaml is stale"
    );
}

#[test]
fn compose_and_grafana_files_parse() {
    let compose = &yaml_docs(&deploy().join("docker-compose.yml"))[0];
    for service in ["vantage", "prometheus", "alertmanager", "grafana"] {
        assert!(
            compose["services"][service].is_mapping(),
            "compose lacks {service}"
        );
    }
    for f in [
        "grafana/provisioning/datasources/prometheus.yml",
        "grafana/provisioning/dashboards/vantage.yml",
    ] {
        assert_eq!(yaml_docs(&deploy().join(f))[0]["apiVersion"], 1, "{f}");
    }
}

/// Every metric a dashboard queries is one vantage exports (or a `vantage rules` recording).
#[test]
fn dashboards_use_only_vantage_metrics() {
    let known = regex::Regex::new(r"^(probe_[a-z_]+|slo_[a-z_]+|vantage_[a-z_]+|slo:[a-z_:0-9]+)$")
        .unwrap();
    let selector = regex::Regex::new(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{").unwrap();
    let mut seen = 0;
    for name in ["vantage-probes.json", "vantage-slos.json"] {
        let text = std::fs::read_to_string(deploy().join("grafana/dashboards").join(name)).unwrap();
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        for panel in doc["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().unwrap() {
                let expr = target["expr"].as_str().unwrap();
                let metrics: Vec<&str> = selector
                    .captures_iter(expr)
                    .map(|c| c.get(1).unwrap().as_str())
                    .collect();
                assert!(!metrics.is_empty(), "{name}: {expr}");
                for m in metrics {
                    assert!(
                        known.is_match(m),
                        "{name}: {m} is not a vantage metric ({expr})"
                    );
                    seen += 1;
                }
            }
        }
    }
    assert!(seen >= 10);
}

#[tokio::test]
async fn systemd_unit_verifies() {
    let unit = std::fs::read_to_string(deploy().join("systemd/vantage.service")).unwrap();
    assert!(unit.contains("ExecReload=/bin/kill -HUP $MAINPID"));
    if which("systemd-analyze").is_none() {
        eprintln!("systemd-analyze is not installed: the unit was only read, not verified");
        return;
    }
    // Verify a copy whose ExecStart points at the binary just built (verify checks it exists).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vantage.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/vantage", env!("CARGO_BIN_EXE_vantage")),
    )
    .unwrap();
    let (ok, text) = tool("systemd-analyze", &["verify", path.to_str().unwrap()]).await;
    let relevant: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("vantage.service"))
        .collect();
    assert!(ok && relevant.is_empty(), "systemd-analyze verify:\n{text}");
}

#[test]
fn dockerfile_is_multi_stage_and_non_root() {
    let text = std::fs::read_to_string(deploy().join("Dockerfile")).unwrap();
    let froms = text.lines().filter(|l| l.starts_with("FROM ")).count();
    assert!(froms >= 2, "multi-stage");
    let user = text
        .lines()
        .rfind(|l| l.starts_with("USER "))
        .expect("a USER line");
    assert!(!user.contains("root") && !user.contains(" 0"), "{user}");
    assert!(text.contains("--locked"));
}

fn which(cmd: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(cmd))
            .find(|c| c.is_file())
    })
}
