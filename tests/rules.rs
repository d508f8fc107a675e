//! `vantage rules`: golden output, promtool check/test, and parity with a real Prometheus.

use std::path::Path;
use std::time::Duration;

use crate::daemon::start_daemon;
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
        "sum without (instance",
    ] {
        assert!(out.stdout.contains(name), "missing {name}");
    }
    // The SRE Workbook factors for a 30-day period at 99.9%.
    for factor in ["> 0.0144)", "> 0.006)", "> 0.003)", "> 0.001)"] {
        assert!(out.stdout.contains(factor), "missing factor {factor}");
    }
    for rate in [
        "burn rate 14.4 ×",
        "burn rate 6 ×",
        "burn rate 3 ×",
        "burn rate 1 ×",
    ] {
        assert!(out.stdout.contains(rate), "missing {rate}");
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
    let (ok, text) = promtool(&["test", "rules", "rules_test.yml"], dir.path()).await;
    assert!(ok, "promtool test rules:\n{text}");
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

/// Prometheus, scraping a daemon and evaluating the generated rules, agrees with vantage on the
/// 5-minute error ratio. Tolerance: both count the same runs, but Prometheus sees them through
/// 1 s scrapes and `increase()` extrapolates to the window edges, while vantage counts 10 s
/// buckets; at ~20% errors over ~90 runs one run more or less moves the ratio by ~0.2–1.1
/// points, so the two may differ by a few runs' worth: 0.05.
#[tokio::test]
async fn prometheus_agrees_with_vantage() {
    let t = http_target().await;
    let cfg = format!(
        "[[probe]]\nname = \"flaky\"\nkind = \"http\"\nurl = \"{}\"\ninterval = \"1s\"\ntimeout = \"900ms\"\n[[slo]]\nname = \"flaky\"\nprobes = [\"flaky\"]\nobjective = 90\n",
        t.url("/flaky/5")
    );
    let d = start_daemon(&cfg).await;
    let rules = vantage(
        &["rules", "-c", d.cfg.path.to_str().unwrap()],
        &[],
        d.cfg.dir.path(),
    )
    .await;
    assert_eq!(rules.code, 0, "{}", rules.stderr);
    let rules_path = d.cfg.dir.path().join("rules.yml");
    std::fs::write(&rules_path, &rules.stdout).unwrap();
    let prom = crate::prom::Prometheus::start(&format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: vantage\n    static_configs:\n      - targets: ['{}']\n",
        rules_path.display(),
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
    prom.stop().await;
    d.stop().await;
}
