//! `vantage rules`: golden output, promtool check/test, and parity with a real Prometheus.

use std::path::Path;
use std::time::Duration;

use crate::fixtures::http_target;
use crate::support::{vantage, write_config};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

async fn promtool(args: &[&str], dir: &Path) -> (bool, String) {
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new("promtool")
            .args(args)
            .current_dir(dir)
            .output(),
    )
    .await
    .expect("promtool finishes")
    .expect("promtool is installed (Debian package prometheus; .ci/run installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn rules_are_golden_and_promtool_accepts_and_tests_them() {
    let out = vantage(&["rules", "-c", "tests/rules/vantage.toml"], &[], repo()).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let golden = repo().join("tests/golden/rules.yml");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &out.stdout).unwrap();
    }
    assert_eq!(
        out.stdout,
        std::fs::read_to_string(&golden).unwrap(),
        "differs from {}",
        golden.display()
    );
    for name in [
        "slo:sli_error:ratio_rate5m",
        "slo:sli_error:ratio_rate30m",
        "slo:sli_error:ratio_rate1h",
        "slo:sli_error:ratio_rate2h",
        "slo:sli_error:ratio_rate6h",
        "slo:sli_error:ratio_rate1d",
        "slo:sli_error:ratio_rate3d",
        "slo:sli_error:ratio_rate30d",
        "slo:objective:ratio",
        "slo:error_budget:ratio",
        "slo:time_period:days",
        "slo:current_burn_rate:ratio",
        "slo:period_burn_rate:ratio",
        "slo:period_error_budget_remaining:ratio",
        "probe_latency_seconds_bucket",
        "sum by () (increase(probe_runs_total",
    ] {
        assert!(out.stdout.contains(name), "missing {name}");
    }
    // The SRE Workbook factors for a 30-day period at 99.9%.
    for factor in ["> 0.0144 and", "> 0.006 and", "> 0.003 and", "> 0.001 and"] {
        assert!(out.stdout.contains(factor), "missing factor {factor}");
    }
    for rate in [
        "1h and 5m above burn rate 14.4; 6h and 30m above burn rate 6.",
        "1d and 2h above burn rate 3; 3d and 6h above burn rate 1.",
    ] {
        assert!(out.stdout.contains(rate), "missing {rate}");
    }
    // Nothing splits an SLO: no target label survives aggregation, and alerts carry the
    // daemon's labels only.
    for gone in ["sum without", "job", "long_window", "short_window"] {
        assert!(!out.stdout.contains(gone), "{gone} in the rules");
    }

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yml"), &out.stdout).unwrap();
    std::fs::copy(
        repo().join("tests/rules/rules_test.yml"),
        dir.path().join("rules_test.yml"),
    )
    .unwrap();
    let (ok, text) = promtool(&["check", "rules", "rules.yml"], dir.path()).await;
    assert!(ok, "promtool check rules:\n{text}");
    std::fs::copy(
        repo().join("tests/rules/k8s_test.yml"),
        dir.path().join("k8s_test.yml"),
    )
    .unwrap();
    let (ok, text) = promtool(&["test", "rules", "rules_test.yml"], dir.path()).await;
    assert!(ok, "promtool test rules:\n{text}");
    // Kubernetes target labels from two replicas: one SLO, summed (tests/rules/k8s_test.yml).
    let (ok, text) = promtool(&["test", "rules", "k8s_test.yml"], dir.path()).await;
    assert!(ok, "promtool test rules k8s_test.yml:\n{text}");
}

#[tokio::test]
async fn rules_refuse_a_threshold_that_is_not_a_bucket() {
    let cfg = write_config(
        "[[probe]]\nname = \"a\"\nkind = \"http\"\nurl = \"http://127.0.0.1:9/\"\n[[slo]]\nname = \"lat\"\nprobes = [\"a\"]\nobjective = 99\nsli = \"latency\"\nthreshold = \"333ms\"\n",
    );
    let out = vantage(&["rules"], &[], cfg.dir.path()).await;
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("is not a bucket of probe_latency_seconds"),
        "{}",
        out.stderr
    );
    // --output writes the file and prints nothing.
    let ok = write_config("[[probe]]\nname = \"a\"\nkind = \"http\"\nurl = \"http://127.0.0.1:9/\"\n[[slo]]\nname = \"a\"\nprobes = [\"a\"]\nobjective = 99\n");
    let out = vantage(&["rules", "--output", "r.yml"], &[], ok.dir.path()).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.is_empty());
    assert!(std::fs::read_to_string(ok.dir.path().join("r.yml"))
        .unwrap()
        .contains("slo:sli_error:ratio_rate5m"));
}

/// Every panel expression of the shipped Grafana dashboards, with the template variables
/// matching everything.
pub fn dashboard_exprs() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for name in ["vantage-probes.json", "vantage-slos.json"] {
        let text =
            std::fs::read_to_string(repo().join("deploy/grafana/dashboards").join(name)).unwrap();
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        for panel in doc["panels"].as_array().unwrap() {
            for t in panel["targets"].as_array().into_iter().flatten() {
                let expr = t["expr"]
                    .as_str()
                    .unwrap()
                    .replace("$slo", ".+")
                    .replace("$probe", ".+")
                    .replace("$instance", ".+");
                out.push((
                    format!("{name}: {}", panel["title"].as_str().unwrap()),
                    expr,
                ));
            }
        }
    }
    out
}

/// Prometheus, scraping a daemon and evaluating the generated rules, agrees with vantage on the
/// 5-minute error ratio. Tolerance: both count the same runs, but Prometheus sees them through
/// 1 s scrapes and `increase()` extrapolates to the window edges, while vantage counts 10 s
/// buckets; at ~20% errors over ~90 runs one run more or less moves the ratio by ~0.2–1.1
/// points, so the two may differ by a few runs' worth: 0.05.
///
/// The same Prometheus then answers every panel of the shipped dashboards with data: the
/// daemon also watches a certificate, and a second job scrapes its `/probe` blackbox-style
/// (series keyed on `instance`, as the probes dashboard's /probe view expects).
#[tokio::test]
async fn prometheus_agrees_with_vantage() {
    let t = http_target().await;
    let pki = crate::fixtures::Pki::new();
    let leaf = pki.leaf(&["localhost"], -1, 90);
    let tls = crate::fixtures::tls_target(leaf.chain.clone(), leaf.key()).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(pki.ca_path(), dir.path().join("ca.pem")).unwrap();
    let cfg = format!(
        "[server]\nprobe_allow = [\"http://127.0.0.1:*/**\"]\n[[probe]]\nname = \"flaky\"\nkind = \"http\"\nurl = \"{}\"\ninterval = \"1s\"\ntimeout = \"900ms\"\n[[probe]]\nname = \"cert\"\nkind = \"tls\"\ntarget = \"{}\"\nserver_name = \"localhost\"\ntls = {{ ca = \"ca.pem\" }}\ninterval = \"5s\"\ntimeout = \"2s\"\n[[slo]]\nname = \"flaky\"\nprobes = [\"flaky\"]\nobjective = 90\n",
        t.url("/flaky/5"),
        tls.addr
    );
    let d = crate::daemon::start_daemon_in(crate::support::write_config_in(dir, &cfg), &[]).await;
    let rules = vantage(
        &[
            "rules",
            "-c",
            d.cfg.path.to_str().unwrap(),
            "--scrape-interval",
            "1s",
        ],
        &[],
        d.cfg.dir.path(),
    )
    .await;
    assert_eq!(rules.code, 0, "{}", rules.stderr);
    let rules_path = d.cfg.dir.path().join("rules.yml");
    std::fs::write(&rules_path, &rules.stdout).unwrap();
    let prom = crate::prom::Prometheus::start(&format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: vantage\n    static_configs:\n      - targets: ['{}']\n  - job_name: vantage-probe\n    metrics_path: /probe\n    params:\n      module: [http_2xx]\n    static_configs:\n      - targets: ['{}']\n    relabel_configs:\n      - source_labels: [__address__]\n        target_label: __param_target\n      - source_labels: [__param_target]\n        target_label: instance\n      - target_label: __address__\n        replacement: '{}'\n",
        rules_path.display(),
        d.addr,
        t.url("/ok"),
        d.addr
    ))
    .await;
    tokio::time::sleep(Duration::from_secs(75)).await;
    let value = |r: &[serde_json::Value]| {
        r.first()
            .and_then(|v| v["value"][1].as_str())
            .and_then(|s| s.parse::<f64>().ok())
    };
    let mut agreed = None;
    for _ in 0..30 {
        let prom_side = value(
            &prom
                .query("slo:sli_error:ratio_rate5m{slo=\"flaky\"}")
                .await,
        );
        let vantage_side = value(
            &prom
                .query("1 - slo_sli_ratio{slo=\"flaky\",window=\"5m\"}")
                .await,
        );
        if let (Some(p), Some(v)) = (prom_side, vantage_side) {
            agreed = Some((p, v));
            if (p - v).abs() <= 0.05 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let (p, v) = agreed.expect("both sides have a value");
    assert!((p - v).abs() <= 0.05, "Prometheus {p} vs vantage {v}");
    assert!(
        (0.1..=0.3).contains(&v),
        "about one in five runs fails: {v}"
    );

    // Every dashboard panel has data (bounded retries per panel).
    let exprs = dashboard_exprs();
    assert!(exprs.len() >= 10, "{exprs:?}");
    let mut empty = Vec::new();
    for (panel, expr) in &exprs {
        let mut got = Vec::new();
        for _ in 0..10 {
            got = prom.query(expr).await;
            if !got.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        if got.is_empty() {
            empty.push(format!("{panel}: {expr}"));
        }
    }
    assert!(
        empty.is_empty(),
        "panels without data:\n{}",
        empty.join("\n")
    );
    // The SLO dashboard's burn-rate panel shows the SLO's own alert windows: a 30-day SLO's
    // default policy is 1h/5m, 6h/30m, 1d/2h, 3d/6h, but at 90% the 14.4 pair (1h/5m) can
    // never fire (it would need an error ratio of 1.44) and is not part of the SLO.
    let mut windows: Vec<String> = prom
        .query("slo_alert_window_burn_rate{slo=\"flaky\"}")
        .await
        .iter()
        .map(|s| {
            format!(
                "{} {}",
                s["metric"]["severity"].as_str().unwrap(),
                s["metric"]["window"].as_str().unwrap()
            )
        })
        .collect();
    windows.sort();
    assert_eq!(
        windows,
        [
            "critical 30m",
            "critical 6h",
            "warning 1d",
            "warning 2h",
            "warning 3d",
            "warning 6h"
        ]
    );
    prom.stop().await;
    d.stop().await;
}

/// The alert conditions of a generated rule file: (slo, severity, [pair condition]).
fn alert_pairs(rules: &str) -> Vec<(String, String, Vec<String>, serde_yaml::Value)> {
    let doc: serde_yaml::Value = serde_yaml::from_str(rules).unwrap();
    let mut out = Vec::new();
    for g in doc["groups"].as_sequence().unwrap() {
        for r in g["rules"].as_sequence().unwrap() {
            if r.get("alert").is_none() {
                continue;
            }
            let expr = r["expr"].as_str().unwrap();
            let inner = expr
                .strip_prefix('(')
                .and_then(|e| e.strip_suffix(')'))
                .expect("pairs are parenthesised");
            let pairs: Vec<String> = inner.split(") or (").map(|p| format!("({p})")).collect();
            out.push((
                r["labels"]["slo"].as_str().unwrap().to_string(),
                r["labels"]["severity"].as_str().unwrap().to_string(),
                pairs,
                r["annotations"].clone(),
            ));
        }
    }
    out
}

/// SPEC §10: at Prometheus' default 15 s scrape interval, every alert pair of a 1-day, 7-day
/// and 28-day SLO can fire. The old rules gave the 1-day SLO's fast pair a 10 s short window:
/// `increase(…[10s])` over 15 s scrapes is always empty, so that pair never fired. Here probes
/// fail throughout (15 runs per scrape, 3 hours of 15 s samples: promtool refuses queries over
/// more than 10,000 samples, so the windows longer than 3 h are judged on the data they hold);
/// at 3 h every pair's condition holds and both alerts (critical, warning) of each SLO fire
/// with the daemon's labels.
#[tokio::test]
async fn every_alert_pair_fires_at_a_15s_scrape_interval() {
    let out = vantage(&["rules", "-c", "tests/rules/periods.toml"], &[], repo()).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains(
            "warning: SLO day: the critical pair 2m/10s has its short window 10s widened to 1m"
        ),
        "the widening is reported on stderr: {}",
        out.stderr
    );
    assert!(out.stdout.contains(
        "      # SLO day: the critical pair 2m/10s has its short window 10s widened to 1m"
    ));
    // No range below 4 × 15 s anywhere in the output.
    let ranges = regex_lite_ranges(&out.stdout);
    assert!(!ranges.is_empty());
    for r in &ranges {
        let d = humantime::parse_duration(r).unwrap();
        assert!(
            d >= Duration::from_secs(60),
            "range [{r}] is shorter than 1m"
        );
    }

    let alerts = alert_pairs(&out.stdout);
    assert_eq!(alerts.len(), 6, "one alert per SLO and severity");
    let mut yaml = String::from(
        "rule_files:\n  - rules.yml\nevaluation_interval: 5m\ntests:\n  - interval: 15s\n    input_series:\n",
    );
    for p in ["day", "week", "month"] {
        for (result, step) in [("success", 0), ("failure", 15)] {
            yaml.push_str(&format!(
                "      - series: 'probe_runs_total{{job=\"vantage\",instance=\"a:9464\",probe=\"{p}\",kind=\"http\",result=\"{result}\"}}'\n        values: '0+{step}x720'\n"
            ));
        }
    }
    yaml.push_str("    promql_expr_test:\n");
    let mut n_pairs = 0;
    for (_, _, pairs, _) in &alerts {
        for cond in pairs {
            n_pairs += 1;
            yaml.push_str(&format!(
                "      - expr: {}\n        eval_time: 3h\n        exp_samples:\n          - labels: '{{}}'\n            value: 1\n",
                serde_json::to_string(&format!("count({cond})")).unwrap()
            ));
        }
    }
    assert_eq!(n_pairs, 12, "4 pairs per SLO");
    yaml.push_str("    alert_rule_test:\n      - eval_time: 3h\n        alertname: SLOBurnRate\n        exp_alerts:\n");
    for (slo, severity, _, annotations) in &alerts {
        yaml.push_str(&format!(
            "          - exp_labels:\n              slo: {slo}\n              severity: {severity}\n            exp_annotations:\n"
        ));
        for (k, v) in annotations.as_mapping().unwrap() {
            let v = v
                .as_str()
                .unwrap()
                .replace("{{ $value | humanizePercentage }}", "100%");
            yaml.push_str(&format!(
                "              {}: {}\n",
                k.as_str().unwrap(),
                serde_json::to_string(&v).unwrap()
            ));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yml"), &out.stdout).unwrap();
    std::fs::write(dir.path().join("periods_test.yml"), &yaml).unwrap();
    let (ok, text) = promtool(&["check", "rules", "rules.yml"], dir.path()).await;
    assert!(ok, "promtool check rules:\n{text}");
    let (ok, text) = promtool(&["test", "rules", "periods_test.yml"], dir.path()).await;
    assert!(ok, "promtool test rules:\n{text}\n{yaml}");
}

/// Every `[range]` in PromQL expressions of a rule file.
fn regex_lite_ranges(rules: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in rules
        .lines()
        .filter(|l| l.trim_start().starts_with("expr:"))
    {
        let mut rest = line;
        while let Some(i) = rest.find('[') {
            let Some(j) = rest[i..].find(']') else { break };
            out.push(rest[i + 1..i + j].to_string());
            rest = &rest[i + j..];
        }
    }
    out
}

/// `--scrape-interval`: ranges follow it; a bad value is a usage error.
#[tokio::test]
async fn scrape_interval_sets_the_shortest_range() {
    let out = vantage(
        &[
            "rules",
            "-c",
            "tests/rules/vantage.toml",
            "--scrape-interval",
            "2m",
        ],
        &[],
        repo(),
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    for r in regex_lite_ranges(&out.stdout) {
        let d = humantime::parse_duration(&r).unwrap();
        assert!(
            d >= Duration::from_secs(480),
            "range [{r}] is shorter than 8m"
        );
    }
    // The 5m window and the 5m short windows are widened, and say so.
    assert!(
        out.stdout.contains("the 5m window is recorded over 8m"),
        "{}",
        out.stdout
    );
    assert!(out
        .stdout
        .contains("slo:current_burn_rate:ratio\"\n        expr: \"slo:sli_error:ratio_rate8m"));
    assert!(out.stderr.contains("widened to 8m"), "{}", out.stderr);
    for bad in ["0s", "abc", "2h", "-1s", "999999999999999999d"] {
        let out = vantage(
            &[
                "rules",
                "-c",
                "tests/rules/vantage.toml",
                "--scrape-interval",
                bad,
            ],
            &[],
            repo(),
        )
        .await;
        assert_eq!(out.code, 2, "--scrape-interval {bad}: {}", out.stderr);
    }
}
