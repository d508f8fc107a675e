//! Config problems: located, all at once, secrets never quoted, hostile files never panic.

use crate::support::{load_in, vantage, write_config};

const THREE_PROBLEMS: &str = r#"
[defaults]
timeout = "2s"

[[probe]]
name = "api"
kind = "http"
url = "http://127.0.0.1:9/health"
intervall = "15s"

[[probe]]
name = "api"
kind = "http"
url = "http://127.0.0.1:9/other"

[[probe]]
name = "slow"
kind = "http"
url = "http://127.0.0.1:9/"
interval = "5s"
timeout = "5s"
headers = { Authorization = "Bearer ${MISSING_TOKEN}" }
[probe.expect]
body_regex = ["(unclosed"]
json = [{ path = "$[", equals = 1 }]
latency_under = 30
"#;

#[tokio::test]
async fn validate_reports_every_problem_with_location() {
    let cfg = write_config(THREE_PROBLEMS);
    let out = vantage(&["validate", "-c", "vantage.toml"], &[], cfg.dir.path()).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    let golden =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/validate_errors.txt");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &out.stderr).unwrap();
    }
    let want = std::fs::read_to_string(&golden).unwrap();
    assert_eq!(
        out.stderr,
        want,
        "validate output differs from {}",
        golden.display()
    );
    // The points the acceptance names, spelled out.
    assert!(out.stderr.contains(
        "vantage.toml:9:1: unknown key \"intervall\", expected one of: name, kind, interval"
    ));
    assert!(out.stderr.contains("interval, timeout"));
    assert!(out
        .stderr
        .contains("duplicate probe name \"api\", first defined at vantage.toml:6:8"));
    assert!(out
        .stderr
        .contains("environment variable MISSING_TOKEN is not set"));
}

#[tokio::test]
async fn every_problem_of_a_probe_is_reported() {
    let cfg = write_config(THREE_PROBLEMS);
    let err = load_in(&cfg.path, &[("MISSING_TOKEN", "a-long-token")]).unwrap_err();
    let text = err.to_string();
    for needle in [
        "unknown key \"intervall\"",
        "duplicate probe name",
        "must be shorter than interval",
        "invalid regex \"(unclosed\"",
        "invalid JSONPath \"$[\"",
        "duration string with a unit",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    assert!(!text.contains("MISSING_TOKEN is not set"));
}

#[test]
fn secrets_never_appear_in_errors() {
    let cfg = write_config(
        r#"
[[probe]]
name = "p"
kind = "http"
url = "http://exa mple.com/${TOKEN}"
"#,
    );
    let err = load_in(&cfg.path, &[("TOKEN", "tok-SECRET-42")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("invalid URL"), "{err}");
    assert!(!err.contains("tok-SECRET-42"), "{err}");
    assert!(err.contains("***"), "{err}");
}

#[test]
fn includes_are_relative_and_located() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("probes")).unwrap();
    std::fs::write(
        dir.path().join("probes/a.toml"),
        "[[probe]]\nname = \"a\"\nkind = \"http\"\nurl = \"http://127.0.0.1:9/\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("probes/b.toml"),
        "[[probe]]\nname = \"b\"\nkind = \"http\"\nurl = \"http://127.0.0.1:9/\"\nfoo = 1\n",
    )
    .unwrap();
    let main = dir.path().join("vantage.toml");
    std::fs::write(
        &main,
        "include = [\"probes/*.toml\"]\n[defaults]\ninterval = \"1m\"\n",
    )
    .unwrap();
    let err = load_in(&main, &[]).unwrap_err().to_string();
    assert!(err.contains("b.toml:5:1: unknown key \"foo\""), "{err}");
    std::fs::write(
        dir.path().join("probes/b.toml"),
        "[[probe]]\nname = \"b\"\nkind = \"http\"\nurl = \"http://127.0.0.1:9/\"\n",
    )
    .unwrap();
    let config = load_in(&main, &[]).unwrap();
    let names: Vec<&str> = config.probes.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert!(config.probes.iter().all(|p| p.interval.as_secs() == 60));
}

#[test]
fn include_cycles_terminate() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("vantage.toml");
    std::fs::write(&main, "include = [\"*.toml\"]\n").unwrap();
    std::fs::write(dir.path().join("b.toml"), "include = [\"*.toml\"]\n").unwrap();
    let config = load_in(&main, &[]).unwrap();
    assert!(config.probes.is_empty());
}

#[test]
fn wrong_kind_and_bad_values_are_named() {
    let cfg = write_config(
        r#"
[[probe]]
name = "Bad Name"
kind = "tls"
target = "example.com:443"
url = "http://example.com/"
labels = { probe = "x", "1bad" = "y" }
[probe.expect]
status = 200

[[probe]]
name = "k"
kind = "smtp"

[[probe]]
name = "u"
kind = "http"
url = "ftp://example.com/"
max_body = "lots"
"#,
    );
    let err = load_in(&cfg.path, &[]).unwrap_err().to_string();
    for needle in [
        "invalid probe name \"Bad Name\"",
        "key \"url\" applies to kind \"http\", not to kind \"tls\"",
        "key \"expect.status\" applies to kind \"http\"",
        "label name \"probe\" is reserved",
        "invalid label name \"1bad\"",
        "unknown value \"smtp\", expected one of: http, tls, scrape",
        "invalid size \"lots\"",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
}

/// A user label named like a label vantage writes on some family (`cipher` on
/// `probe_tls_cipher_info`, `subject` on `probe_ssl_last_chain_info`, …) would write that label
/// twice in one sample, and Prometheus refuses the whole scrape: refused where it is written.
#[test]
fn labels_vantage_writes_are_reserved() {
    let cfg = write_config(
        r#"
[[probe]]
name = "t"
kind = "tls"
target = "example.com:443"
labels = { cipher = "x", subjectalternative = "y", team = "web" }

[[slo]]
name = "s"
probes = ["t"]
objective = 99.0
labels = { outcome = "good" }
"#,
    );
    let err = load_in(&cfg.path, &[]).unwrap_err().to_string();
    for needle in [
        "label name \"cipher\" is reserved",
        "label name \"subjectalternative\" is reserved",
        "label name \"outcome\" is reserved",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    assert!(!err.contains("\"team\""), "{err}");
    // The SLO names a probe that exists but was refused: no second error for it (attack-pass
    // note: "names no existing probe" followed every refused probe).
    assert!(!err.contains("names no existing probe"), "{err}");
}

#[test]
fn hostile_files_give_errors_not_panics() {
    let cases: Vec<Vec<u8>> = vec![
        b"\x00\xff\xfe garbage".to_vec(),
        b"[[probe]\nname=".to_vec(),
        b"probe = 5".to_vec(),
        b"probe = [1, 2]".to_vec(),
        b"[[probe]]\nname = \"a\"\nkind = \"http\"\nurl = \"${\"".to_vec(),
        "a = ".repeat(10_000).into_bytes(),
        "x = "
            .to_string()
            .into_bytes()
            .into_iter()
            .chain("[".repeat(5_000).into_bytes())
            .collect(),
        b"[defaults]\ninterval = \"-5s\"".to_vec(),
        b"[defaults]\ninterval = \"99999999999999999999d\"".to_vec(),
    ];
    // A simple deterministic generator adds random mutations of a valid config.
    let valid = b"[[probe]]\nname = \"a\"\nkind = \"http\"\nurl = \"http://127.0.0.1:9/\"\n[probe.expect]\nstatus = [200]\n";
    let mut seed: u64 = 0x9e3779b97f4a7c15;
    let mut cases = cases;
    for _ in 0..300 {
        let mut v = valid.to_vec();
        for _ in 0..3 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let i = (seed as usize) % v.len();
            v[i] = (seed >> 32) as u8;
        }
        cases.push(v);
    }
    for (i, bytes) in cases.iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vantage.toml");
        std::fs::write(&path, bytes).unwrap();
        // Ok or Err both fine; a panic fails the test.
        let result = std::panic::catch_unwind(|| load_in(&path, &[]).map(|_| ()));
        assert!(result.is_ok(), "case {i} panicked");
        if let Ok(Err(e)) = result {
            assert!(!e.errors.is_empty(), "case {i}: error without diagnostics");
        }
    }
}

/// Every kind reads `[probe.alert]` and `metrics`: the common keys live in each kind's schema,
/// so the newer kinds no longer drop them silently (before the per-kind schemas, a tcp probe's
/// overrides were ignored and `[alert]`'s applied).
#[test]
fn every_kind_takes_the_common_keys() {
    let mut text = String::new();
    for (name, kind, target) in [
        ("h", "http", "url = \"http://127.0.0.1:9/\""),
        ("t", "tls", "target = \"127.0.0.1:9\""),
        ("c", "tcp", "target = \"127.0.0.1:9\""),
        (
            "d",
            "dns",
            "target = \"127.0.0.1:53\"\nquery_name = \"example.com\"",
        ),
        ("i", "icmp", "target = \"127.0.0.1\""),
        ("g", "grpc", "target = \"127.0.0.1:9\""),
    ] {
        text += &format!(
            "[[probe]]\nname = \"{name}\"\nkind = \"{kind}\"\n{target}\nmetrics = {{ phase_histograms = true }}\n[probe.alert]\nalert_after_failures = 7\n\n"
        );
    }
    let cfg = write_config(&text);
    let config = load_in(&cfg.path, &[]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.probes.len(), 6);
    for p in &config.probes {
        assert_eq!(p.alert.alert_after_failures, Some(7), "{}", p.name);
        assert!(p.metrics.phase_histograms, "{}", p.name);
    }
}

/// A key of another kind is named as such wherever serde finds it, for every kind.
#[test]
fn keys_of_another_kind_are_named_for_every_kind() {
    let cfg = write_config(
        "[[probe]]\nname = \"c\"\nkind = \"tcp\"\ntarget = \"127.0.0.1:9\"\nurl = \"http://x/\"\n\n\
         [[probe]]\nname = \"h\"\nkind = \"http\"\nurl = \"http://x/\"\nquery_name = \"a\"\n\n\
         [[probe]]\nname = \"s\"\nkind = \"scrape\"\nbearer_token = \"x\"\n[[probe.step]]\nname = \"a\"\nurl = \"http://x/\"\n",
    );
    let err = load_in(&cfg.path, &[]).unwrap_err().to_string();
    for needle in [
        "vantage.toml:5:1: key \"url\" applies to kind \"http\", not to kind \"tcp\"",
        "vantage.toml:11:1: key \"query_name\" applies to kind \"dns\", not to kind \"http\"",
        "vantage.toml:16:1: key \"bearer_token\" applies to kind \"http\", not to kind \"scrape\"",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
}

/// Attack-pass findings: a `kind` written as a table was accepted by serde's enum-as-table form
/// and the probe vanished without a word (`validate` said "ok, 0 probes"); a tls target with
/// userinfo or an unbracketed IPv6 address with a port was taken as a host.
#[test]
fn odd_kinds_and_targets_are_refused_where_they_are() {
    let cfg = write_config(
        "[[probe]]\nname = \"a\"\nkind = { http = {} }\nurl = \"http://x/\"\n\n\
         [[probe]]\nname = \"b\"\nkind = \"tls\"\ntarget = \"user:pw@127.0.0.1:443\"\n\n\
         [[probe]]\nname = \"c\"\nkind = \"tls\"\ntarget = \"::1:8443\"\n\n\
         [[probe]]\nname = \"d\"\nkind = \"tcp\"\ntarget = \"a b:25\"\n\n\
         [module.m]\nkind = { scrape = [] }\n",
    );
    let err = load_in(&cfg.path, &[]).unwrap_err().to_string();
    for needle in [
        "vantage.toml:3:8: kind must be a string, one of: http, tls, scrape, tcp, dns, icmp, grpc",
        "vantage.toml:9:10: invalid target: host:port takes no user:password@",
        "vantage.toml:19:10: invalid target \"a b:25\"",
        "vantage.toml:22:8: kind must be a string",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    assert!(!err.contains("pw@"), "the password is not quoted:\n{err}");
    // An unbracketed IPv6 address is an address (::1:8443 is one), written back in brackets.
    let cfg = write_config("[[probe]]\nname = \"c\"\nkind = \"tls\"\ntarget = \"::1:8443\"\n");
    let config = load_in(&cfg.path, &[]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.probes[0].target, "[::1:8443]:443");
}

/// Every problem at once, also inside `[[probe.step]]` arrays and modules (attack-pass finding:
/// only the first step error was reported, and one key a module may not have hid the rest).
#[test]
fn steps_and_modules_report_every_problem() {
    let cfg = write_config(
        "[[probe]]\nname = \"s\"\nkind = \"scrape\"\n[[probe.step]]\nname = \"a\"\nurl = \"http://x/\"\nbogus1 = 1\nmethod = 5\n[[probe.step]]\nname = \"b\"\nurl = 7\n\n\
         [module.m]\nkind = \"http\"\nname = \"x\"\nmethod = 5\nlabels = { a = \"b\" }\n",
    );
    let err = load_in(&cfg.path, &[]).unwrap_err().to_string();
    for needle in [
        "vantage.toml:7:1: unknown key \"bogus1\"",
        "vantage.toml:8:10: invalid type: integer \"5\"",
        "vantage.toml:11:7: invalid type: integer \"7\"",
        "vantage.toml:15:1: key \"name\" does not belong in a module",
        "vantage.toml:16:10: invalid type: integer \"5\"",
        "vantage.toml:17:1: key \"labels\" does not belong in a module",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
}
