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
    // The rules of the config the compose file runs.
    let out = vantage(
        &["rules", "-c", "deploy/compose/vantage.toml"],
        &EXAMPLE_ENV,
        root,
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let committed = std::fs::read_to_string(deploy().join("prometheus/vantage-rules.yml")).unwrap();
    assert_eq!(
        out.stdout, committed,
        "deploy/prometheus/vantage-rules.yml is stale: regenerate with `vantage rules -c deploy/compose/vantage.toml --output deploy/prometheus/vantage-rules.yml`"
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
            if panel["type"] == "row" {
                continue;
            }
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

/// `${NAME:-default}` as docker compose expands it, with nothing set.
fn compose_default(v: &str) -> String {
    match v.strip_prefix("${").and_then(|v| v.strip_suffix('}')) {
        Some(inner) => inner
            .split_once(":-")
            .map(|(_, d)| d)
            .unwrap_or("")
            .to_string(),
        None => v.to_string(),
    }
}

/// `host:port` of a URL or address.
fn host_port(s: &str) -> (String, u16) {
    let rest = s.split_once("://").map_or(s, |(_, r)| r);
    let hp = rest.split('/').next().unwrap();
    let (h, p) = hp.rsplit_once(':').expect("an explicit port");
    (h.to_string(), p.parse().unwrap())
}

/// SPEC §10: deploy/docker-compose.yml works as shipped. Its vantage config (the file the
/// compose file mounts where the Dockerfile's CMD reads it) listens on all addresses at the port
/// Prometheus scrapes, allows every target Prometheus sends to /probe, and sends alerts to the
/// alertmanager service (not to itself); Prometheus' alertmanager and rules agree with it too.
#[tokio::test]
async fn compose_vantage_prometheus_and_alertmanager_agree() {
    let compose = &yaml_docs(&deploy().join("docker-compose.yml"))[0];
    let services = compose["services"].as_mapping().unwrap();
    let service = |name: &str| {
        services
            .get(name)
            .unwrap_or_else(|| panic!("compose lacks service {name}"))
    };
    let v = service("vantage");

    // The config the container reads: the Dockerfile's CMD names it, the compose file mounts it.
    let dockerfile = std::fs::read_to_string(deploy().join("Dockerfile")).unwrap();
    let cmd = dockerfile
        .lines()
        .find(|l| l.starts_with("CMD"))
        .expect("Dockerfile CMD");
    let cmd: Vec<String> = serde_json::from_str(cmd.trim_start_matches("CMD").trim()).unwrap();
    let config_in_container = &cmd[cmd.iter().position(|a| a == "-c").unwrap() + 1];
    let mount = v["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|m| m.as_str())
        .find_map(|m| {
            let mut parts = m.split(':');
            let (host, container) = (parts.next()?, parts.next()?);
            (container == config_in_container).then(|| host.to_string())
        })
        .unwrap_or_else(|| panic!("compose mounts nothing at {config_in_container}"));
    let config_path = deploy().join(&mount);
    let env: Vec<(String, String)> = v["environment"]
        .as_mapping()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.as_str().unwrap().to_string(),
                        compose_default(v.as_str().unwrap()),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let config = crate::support::load_in(&config_path, &env_refs).unwrap_or_else(|e| {
        panic!(
            "{} with the compose environment:\n{e}",
            config_path.display()
        )
    });

    // Listen: every address (another container connects), on the port everyone uses.
    let listen = config.server.listen;
    assert!(
        listen.ip().is_unspecified(),
        "vantage listens on {listen}: unreachable from the prometheus container"
    );
    let port = listen.port();
    let published: Vec<String> = v["ports"]
        .as_sequence()
        .map(|p| p.iter().map(|x| x.as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    assert!(
        published.iter().any(|p| p.ends_with(&format!(":{port}"))),
        "compose publishes {published:?}, vantage listens on {port}"
    );
    assert!(
        config.server.auth.is_none(),
        "prometheus.yml sends no credentials; [server] auth would make every scrape 401"
    );

    // Prometheus: scrapes vantage:port, and /probe through vantage:port.
    let prom = &yaml_docs(&deploy().join("prometheus/prometheus.yml"))[0];
    let jobs = prom["scrape_configs"].as_sequence().unwrap();
    let want = format!("vantage:{port}");
    let mut probe_targets = Vec::new();
    let mut scraped = false;
    for job in jobs {
        let targets: Vec<String> = job["static_configs"]
            .as_sequence()
            .unwrap()
            .iter()
            .flat_map(|c| c["targets"].as_sequence().unwrap().iter())
            .map(|t| t.as_str().unwrap().to_string())
            .collect();
        if job["metrics_path"].as_str() == Some("/probe") {
            let address = job["relabel_configs"]
                .as_sequence()
                .unwrap()
                .iter()
                .find(|r| r["target_label"].as_str() == Some("__address__"))
                .and_then(|r| r["replacement"].as_str())
                .expect("the /probe job sends its requests to vantage");
            assert_eq!(address, want, "the /probe job's address");
            probe_targets.extend(targets);
        } else {
            assert_eq!(
                targets,
                std::slice::from_ref(&want),
                "job {:?}",
                job["job_name"]
            );
            let (h, _) = host_port(&targets[0]);
            assert!(
                services.contains_key(h.as_str()),
                "{h} is a compose service"
            );
            scraped = true;
        }
    }
    assert!(scraped, "Prometheus scrapes vantage");
    assert!(!probe_targets.is_empty());

    // Every /probe target is allowed; nothing beyond the list is (no allow-everything rule).
    for t in &probe_targets {
        assert!(
            config
                .server
                .probe_allow
                .check_url(&url::Url::parse(t).unwrap())
                .is_ok(),
            "/probe?target={t} would get 403: not in probe_allow"
        );
    }
    for t in [
        "http://169.254.169.254/latest/meta-data/",
        "http://vantage:9464/metrics",
        "https://evil.example.net/",
    ] {
        assert!(
            config
                .server
                .probe_allow
                .check_url(&url::Url::parse(t).unwrap())
                .is_err(),
            "probe_allow lets /probe reach {t}"
        );
    }

    // Alerts: the daemon's Alertmanager sink is the alertmanager service Prometheus uses.
    let am_targets: Vec<String> = prom["alerting"]["alertmanagers"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|a| a["static_configs"].as_sequence().unwrap().iter())
        .flat_map(|c| c["targets"].as_sequence().unwrap().iter())
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    assert_eq!(am_targets.len(), 1, "{am_targets:?}");
    let (am_host, am_port) = host_port(&am_targets[0]);
    let am = service(&am_host);
    assert!(
        am["image"].as_str().unwrap().contains("alertmanager"),
        "{am_host} runs Alertmanager"
    );
    let sinks: Vec<_> = config
        .alert
        .sinks
        .iter()
        .filter(|s| s.kind == vantage::config::SinkKind::Alertmanager)
        .collect();
    assert!(
        !sinks.is_empty(),
        "the compose config sends alerts to Alertmanager"
    );
    for s in sinks {
        assert_eq!(
            (
                s.url.host_str().unwrap(),
                s.url.port_or_known_default().unwrap()
            ),
            (am_host.as_str(), am_port),
            "sink {} goes to {}, not to the alertmanager service",
            s.name,
            s.url
        );
    }

    // Rules: Prometheus evaluates this config's SLOs (and only them).
    let rules = std::fs::read_to_string(deploy().join("prometheus/vantage-rules.yml")).unwrap();
    let rules: serde_yaml::Value = serde_yaml::from_str(&rules).unwrap();
    let mut rule_slos: Vec<String> = rules["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_sequence().unwrap().iter())
        .filter_map(|r| r["labels"]["slo"].as_str().map(str::to_string))
        .collect();
    rule_slos.sort();
    rule_slos.dedup();
    let mut config_slos: Vec<String> = config.slos.iter().map(|s| s.name.clone()).collect();
    config_slos.sort();
    assert_eq!(rule_slos, config_slos);
    assert!(
        prom["rule_files"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|f| f.as_str() == Some("vantage-rules.yml")),
        "Prometheus loads the rules"
    );
    // The scrape interval the rules were generated for is Prometheus'.
    let interval = prom["global"]["scrape_interval"].as_str().unwrap();
    let header = std::fs::read_to_string(deploy().join("prometheus/vantage-rules.yml")).unwrap();
    assert!(
        header.contains(&format!("# Scrape interval {interval}:")),
        "rules generated for another scrape interval than {interval}"
    );
}
