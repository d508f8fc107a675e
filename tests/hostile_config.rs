//! A table of hostile inputs run through the real binary (SPEC §10 "Limits on input"): config
//! files and the files they name, durations, includes, and state files. Each has its expected
//! exit code and message fragment; none may panic, hang or eat memory.

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::vantage;

const PROBE: &str = "[[probe]]\nname = \"p\"\nkind = \"http\"\nurl = \"http://127.0.0.1:9/\"\n";
const TLS_PROBE: &str = "[[probe]]\nname = \"t\"\nkind = \"tls\"\ntarget = \"127.0.0.1:9\"\n";

/// What a case writes before running: (path relative to the case directory, contents). A
/// content of `FIFO` makes a named pipe, `DIR` a directory, `BIG` an 11 MiB file.
type Files = Vec<(&'static str, Vec<u8>)>;

struct Case {
    name: &'static str,
    files: Files,
    args: Vec<String>,
    code: i32,
    fragment: &'static str,
}

fn file(path: &'static str, text: impl Into<Vec<u8>>) -> (&'static str, Vec<u8>) {
    (path, text.into())
}

/// `vantage validate` of `vantage.toml` = `text`.
fn validate(name: &'static str, text: String, code: i32, fragment: &'static str) -> Case {
    validate_with(name, vec![file("vantage.toml", text)], code, fragment)
}

fn validate_with(name: &'static str, files: Files, code: i32, fragment: &'static str) -> Case {
    Case {
        name,
        files,
        args: vec!["validate".into(), "-c".into(), "vantage.toml".into()],
        code,
        fragment,
    }
}

fn probe_with(extra: &str) -> String {
    format!("{PROBE}{extra}\n")
}

fn durations() -> Vec<Case> {
    let timing = |name, interval: &str, timeout: &str, code, fragment| {
        let mut t = PROBE.to_string();
        if !interval.is_empty() {
            t += &format!("interval = {interval}\n");
        }
        if !timeout.is_empty() {
            t += &format!("timeout = {timeout}\n");
        }
        validate(name, t, code, fragment)
    };
    vec![
        timing("interval u64::MAX s", "\"18446744073709551615s\"", "", 2, "is too long"),
        timing("interval 2ns", "\"2ns\"", "", 2, "out of bounds: it must be between 50ms and 7d"),
        timing("interval 49ms", "\"49ms\"", "\"10ms\"", 2, "out of bounds"),
        timing("interval 8d", "\"8d\"", "", 2, "out of bounds"),
        timing("interval 0s", "\"0s\"", "", 2, "out of bounds"),
        timing("interval 401d", "\"401d\"", "", 2, "is too long"),
        timing("interval negative", "\"-5s\"", "", 2, "invalid duration"),
        timing("interval without unit", "\"5\"", "", 2, "has no unit"),
        timing("interval empty", "\"\"", "", 2, "invalid duration"),
        timing("interval number", "5", "", 2, "a duration string"),
        timing("interval float unit", "\"1e9s\"", "", 2, "invalid duration"),
        timing("interval words", "\"1 fortnight\"", "", 2, "invalid duration"),
        timing("interval huge digits", "\"99999999999999999999999s\"", "", 2, "invalid duration"),
        timing("timeout 0s", "\"10s\"", "\"0s\"", 2, "timeout must be greater than 0"),
        timing("timeout = interval", "\"10s\"", "\"10s\"", 2, "must be shorter than interval"),
        timing("timeout > interval", "\"7d\"", "\"7d\"", 2, "must be shorter than interval"),
        timing("timeout u64::MAX", "\"10s\"", "\"18446744073709551615s\"", 2, "is too long"),
        timing("bounds are inclusive", "\"50ms\"", "\"49ms\"", 0, "ok, 1 probes"),
        timing("7d interval", "\"7d\"", "\"1h\"", 0, "ok, 1 probes"),
        validate(
            "defaults interval 2ns",
            format!("[defaults]\ninterval = \"2ns\"\n{PROBE}"),
            2,
            "vantage.toml:2:12: interval 2ns is out of bounds",
        ),
        validate(
            "tcp probe interval 2ns (new kinds share the bounds)",
            "[[probe]]\nname = \"smtp\"\nkind = \"tcp\"\ntarget = \"127.0.0.1:25\"\ninterval = \"2ns\"\ntimeout = \"1ns\"\n".to_string(),
            2,
            "vantage.toml:5:12: interval 2ns is out of bounds",
        ),
        validate(
            "JSONPath with two recursive descents (attack pass: minutes and GBs on a nested body)",
            "[[probe]]\nname = \"jp\"\nkind = \"http\"\nurl = \"http://127.0.0.1:9/\"\n[probe.expect]\njson = [{ path = \"$..a..a\", exists = true }]\n".to_string(),
            2,
            "at most 1 recursive descent",
        ),
        validate(
            "include with ** (attack pass: /proc/**/*.toml never returned)",
            format!("include = [\"/proc/**/*.toml\"]\n{PROBE}"),
            2,
            "`**` is not supported",
        ),
        validate(
            "defaults timeout 0s",
            format!("[defaults]\ntimeout = \"0s\"\n{PROBE}"),
            2,
            "timeout must be greater than 0",
        ),
        validate(
            "defaults interval huge",
            format!("[defaults]\ninterval = \"584542046091y\"\n{PROBE}"),
            2,
            "vantage.toml:2:12:",
        ),
        validate(
            "latency_under 8d",
            probe_with("[probe.expect]\nlatency_under = \"8d\""),
            2,
            "latency_under 8days is too long",
        ),
        validate(
            "slo period 500d",
            format!("{PROBE}[[slo]]\nname = \"s\"\nprobes = [\"p\"]\nobjective = 99.0\nperiod = \"500d\"\n"),
            2,
            "at most 400d",
        ),
        validate(
            "state flush_interval huge",
            format!("[state]\ndir = \"s\"\nflush_interval = \"18446744073709551615s\"\n{PROBE}"),
            2,
            "is too long",
        ),
        validate(
            "alert resend_interval huge",
            format!("[alert]\nresend_interval = \"9999999h\"\n{PROBE}"),
            2,
            "is too long",
        ),
        Case {
            name: "probe --timeout u64::MAX",
            files: vec![],
            args: vec!["probe".into(), "--timeout".into(), "18446744073709551615s".into(), "http://127.0.0.1:9/".into()],
            code: 2,
            fragment: "is too long",
        },
        Case {
            name: "probe --timeout 8d",
            files: vec![],
            args: vec!["probe".into(), "--timeout".into(), "8d".into(), "http://127.0.0.1:9/".into()],
            code: 2,
            fragment: "at most 7d",
        },
        Case {
            name: "probe --timeout 0s",
            files: vec![],
            args: vec!["probe".into(), "--timeout".into(), "0s".into(), "http://127.0.0.1:9/".into()],
            code: 2,
            fragment: "timeout must be greater than 0",
        },
    ]
}

fn files() -> Vec<Case> {
    let include = |list: &str| format!("include = [{list}]\n{PROBE}");
    let ca = |path: &str| format!("{TLS_PROBE}tls = {{ ca = \"{path}\" }}\n");
    vec![
        validate(
            "include /dev/zero",
            include("\"/dev/zero\""),
            2,
            "vantage.toml:1:12: cannot read included file: /dev/zero is a device",
        ),
        validate(
            "include /dev/urandom",
            include("\"/dev/urandom\""),
            2,
            "is a device",
        ),
        validate_with(
            "include FIFO",
            vec![
                file("fifo", "FIFO"),
                file("vantage.toml", include("\"fifo\"")),
            ],
            2,
            "is a FIFO",
        ),
        validate("include directory", include("\".\""), 2, "is a directory"),
        validate(
            "include missing",
            include("\"nope.toml\""),
            2,
            "included file \"nope.toml\" does not exist",
        ),
        validate(
            "include missing absolute",
            include("\"/nonexistent/x.toml\""),
            2,
            "does not exist",
        ),
        validate_with(
            "include 11 MiB",
            vec![
                file("big.toml", "BIG"),
                file("vantage.toml", include("\"big.toml\"")),
            ],
            2,
            "more than the limit",
        ),
        validate_with(
            "include not UTF-8",
            vec![
                file("bin.toml", vec![0xff, 0xfe, 0x00, 0x80]),
                file("vantage.toml", include("\"bin.toml\"")),
            ],
            2,
            "is not UTF-8",
        ),
        validate_with(
            "include syntax error",
            vec![
                file("bad.toml", "[[probe]\n"),
                file("vantage.toml", include("\"bad.toml\"")),
            ],
            2,
            "bad.toml:1:",
        ),
        validate_with(
            "include with [server]",
            vec![
                file("srv.toml", "[server]\nlisten = \"x\"\n"),
                file("vantage.toml", include("\"srv.toml\"")),
            ],
            2,
            "only allowed in the main config file",
        ),
        validate(
            "include itself",
            include("\"vantage.toml\""),
            0,
            "ok, 1 probes",
        ),
        validate(
            "include glob matching nothing",
            include("\"conf.d/*.toml\""),
            0,
            "ok, 1 probes",
        ),
        validate("include empty list", include(""), 0, "ok, 1 probes"),
        validate(
            "include invalid glob",
            include("\"a[\""),
            2,
            "invalid include pattern",
        ),
        validate(
            "include not a list",
            format!("include = \"x.toml\"\n{PROBE}"),
            2,
            "vantage.toml:1:11:",
        ),
        validate_with(
            "include glob hits a directory",
            vec![
                ("d/sub.toml", b"DIR".to_vec()),
                file("vantage.toml", include("\"d/*.toml\"")),
            ],
            2,
            "is a directory",
        ),
        Case {
            name: "main config is /dev/zero",
            files: vec![],
            args: vec!["validate".into(), "-c".into(), "/dev/zero".into()],
            code: 2,
            fragment: "/dev/zero is a device",
        },
        Case {
            name: "main config is a directory",
            files: vec![],
            args: vec!["validate".into(), "-c".into(), ".".into()],
            code: 2,
            fragment: "is a directory",
        },
        Case {
            name: "main config missing",
            files: vec![],
            args: vec!["validate".into(), "-c".into(), "nope.toml".into()],
            code: 2,
            fragment: "nope.toml:1:1: cannot read config file",
        },
        validate_with(
            "main config not UTF-8",
            vec![file("vantage.toml", vec![b'a', 0xc3, 0x28])],
            2,
            "is not UTF-8",
        ),
        validate_with(
            "main config FIFO",
            vec![file("vantage.toml", "FIFO")],
            2,
            "is a FIFO",
        ),
        validate(
            "tls.ca /dev/zero",
            ca("/dev/zero"),
            2,
            "vantage.toml:5:14: /dev/zero is a device",
        ),
        validate("tls.ca directory", ca("."), 2, "is a directory"),
        validate("tls.ca missing", ca("nope.pem"), 2, "No such file"),
        validate_with(
            "tls.ca FIFO",
            vec![file("ca.pem", "FIFO"), file("vantage.toml", ca("ca.pem"))],
            2,
            "is a FIFO",
        ),
        validate_with(
            "tls.ca 11 MiB",
            vec![file("ca.pem", "BIG"), file("vantage.toml", ca("ca.pem"))],
            2,
            "more than the limit",
        ),
        validate_with(
            "tls.ca not PEM",
            vec![file("ca.pem", "hello"), file("vantage.toml", ca("ca.pem"))],
            2,
            "no certificates found",
        ),
        validate_with(
            "tls.ca broken PEM",
            vec![
                file(
                    "ca.pem",
                    "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
                ),
                file("vantage.toml", ca("ca.pem")),
            ],
            2,
            "cannot read PEM file",
        ),
        validate(
            "client_cert /dev/zero",
            format!(
                "{TLS_PROBE}tls = {{ client_cert = \"/dev/zero\", client_key = \"/dev/zero\" }}\n"
            ),
            2,
            "is a device",
        ),
        validate_with(
            "client_key FIFO",
            vec![
                file("k.pem", "FIFO"),
                file("c.pem", "x"),
                file(
                    "vantage.toml",
                    format!(
                        "{TLS_PROBE}tls = {{ client_cert = \"c.pem\", client_key = \"k.pem\" }}\n"
                    ),
                ),
            ],
            2,
            "cannot read PEM file",
        ),
        validate(
            "server tls cert /dev/zero",
            format!("[server]\ntls = {{ cert = \"/dev/zero\", key = \"/dev/zero\" }}\n{PROBE}"),
            2,
            "is a device",
        ),
        validate(
            "env variable missing",
            probe_with("headers = { A = \"${NOPE_NOT_SET}\" }"),
            2,
            "environment variable NOPE_NOT_SET is not set",
        ),
    ]
}

/// A state-file case: the daemon starts with `[state] dir = "state"` holding this file.
struct StateCase {
    name: &'static str,
    /// The state file (a valid one edited), or a special: `FIFO`, `DIR`.
    contents: Vec<u8>,
    /// In the warning; empty: the file is accepted (not moved aside).
    fragment: &'static str,
}

const NOW_SLACK_MS: i64 = 0;

fn state_cases() -> Vec<StateCase> {
    let now = vantage::Clock::system().unix_ms() - NOW_SLACK_MS;
    let valid: serde_json::Value =
        serde_json::from_slice(&vantage::daemon::state::sample_file(now, 200)).unwrap();
    let edit = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut v = valid.clone();
        f(&mut v);
        serde_json::to_vec(&v).unwrap()
    };
    let level = |v: &mut serde_json::Value| -> serde_json::Value {
        v["slos"]["slo0"]["state"]["levels"][0].clone()
    };
    let _ = level;
    let alert = |labels: serde_json::Value, starts_at: i64| {
        serde_json::json!([{
            "key": "SLOBurnRate/s/critical", "labels": labels, "annotations": {},
            "starts_at": starts_at, "ends_at": null, "values": {}, "generator_url": ""
        }])
    };
    let full_labels = serde_json::json!({"alertname": "SLOBurnRate", "slo": "s", "severity": "critical", "long_window": "1h", "short_window": "5m"});
    vec![
        StateCase {
            name: "valid",
            contents: serde_json::to_vec(&valid).unwrap(),
            fragment: "",
        },
        StateCase {
            name: "cum_good shorter",
            contents: edit(&|v| {
                v["slos"]["slo0"]["state"]["levels"][0]["cum_good"]
                    .as_array_mut()
                    .unwrap()
                    .truncate(3);
            }),
            fragment: "ring arrays differ in length",
        },
        StateCase {
            name: "cum_total empty",
            contents: edit(&|v| {
                v["slos"]["slo0"]["state"]["levels"][1]["cum_total"] = serde_json::json!([]);
            }),
            fragment: "ring arrays differ",
        },
        StateCase {
            name: "good > total",
            contents: edit(&|v| {
                let n = v["slos"]["slo0"]["state"]["levels"][0]["cum_total"]
                    .as_array()
                    .unwrap()
                    .len();
                for i in 0..n {
                    v["slos"]["slo0"]["state"]["levels"][0]["cum_good"][i] =
                        serde_json::json!(1u64 << 40);
                }
            }),
            fragment: "good events of",
        },
        StateCase {
            name: "counters near u64::MAX",
            contents: edit(&|v| {
                v["slos"]["slo0"]["state"]["levels"][2]["floor"] =
                    serde_json::json!({"good": u64::MAX - 5, "total": u64::MAX});
            }),
            fragment: "not a plausible count",
        },
        StateCase {
            name: "head in the future",
            contents: edit(&|v| {
                let res = v["slos"]["slo0"]["state"]["levels"][0]["res"]
                    .as_i64()
                    .unwrap();
                v["slos"]["slo0"]["state"]["levels"][0]["head"] =
                    serde_json::json!((now + 3_600_000) / res);
            }),
            fragment: "more than 5 minutes in the future",
        },
        StateCase {
            name: "head far future",
            contents: edit(&|v| {
                v["slos"]["slo0"]["state"]["levels"][0]["head"] = serde_json::json!(i64::MAX);
            }),
            fragment: "in the future",
        },
        StateCase {
            name: "head far past",
            contents: edit(&|v| {
                v["slos"]["slo0"]["state"]["levels"][0]["head"] = serde_json::json!(i64::MIN);
            }),
            fragment: "implausibly old",
        },
        StateCase {
            name: "decreasing ring",
            contents: edit(&|v| {
                let ring = v["slos"]["slo0"]["state"]["levels"][0]["cum_total"]
                    .as_array_mut()
                    .unwrap();
                for (i, x) in ring.iter_mut().enumerate() {
                    *x = serde_json::json!(1000 - (i as u64 % 1000));
                }
                let n = ring.len();
                v["slos"]["slo0"]["state"]["levels"][0]["cum_good"] = serde_json::json!(vec![0; n]);
            }),
            fragment: "decrease",
        },
        StateCase {
            name: "bucket width 7",
            contents: edit(&|v| {
                v["slos"]["slo0"]["state"]["levels"][0]["res"] = serde_json::json!(7);
            }),
            fragment: "bucket width 7 ms",
        },
        StateCase {
            name: "bucket width 0",
            contents: edit(&|v| {
                v["slos"]["slo0"]["state"]["levels"][0]["res"] = serde_json::json!(0);
            }),
            fragment: "bucket width 0 ms",
        },
        StateCase {
            name: "histogram lengths differ",
            contents: edit(&|v| {
                v["slos"]["slo1"]["state"]["hists"][0]["stamps"]
                    .as_array_mut()
                    .unwrap()
                    .pop();
            }),
            fragment: "stamps for",
        },
        StateCase {
            name: "histogram unsorted",
            contents: edit(&|v| {
                v["slos"]["slo1"]["state"]["hists"][0]["hists"][0] =
                    serde_json::json!([[5, 1], [3, 1]]);
            }),
            fragment: "malformed latency buckets",
        },
        StateCase {
            name: "histogram index out of range",
            contents: edit(&|v| {
                v["slos"]["slo1"]["state"]["hists"][0]["hists"][0] =
                    serde_json::json!([[65535, 1]]);
            }),
            fragment: "malformed latency buckets",
        },
        StateCase {
            name: "open timeslice good > total",
            contents: edit(&|v| {
                v["slos"]["slo2"]["state"]["slice"] =
                    serde_json::json!({"index": 1, "good": 9, "total": 2});
            }),
            fragment: "open timeslice",
        },
        StateCase {
            name: "dropped huge",
            contents: edit(&|v| {
                v["slos"]["slo0"]["state"]["dropped"] = serde_json::json!(u64::MAX);
            }),
            fragment: "dropped event count",
        },
        StateCase {
            name: "events_good huge",
            contents: edit(&|v| {
                v["slos"]["slo0"]["events_good"] = serde_json::json!(u64::MAX);
            }),
            fragment: "event counts are not plausible",
        },
        StateCase {
            name: "version 2",
            contents: edit(&|v| {
                v["version"] = serde_json::json!(2);
            }),
            fragment: "version 2 is not 1",
        },
        StateCase {
            name: "negative count",
            contents: edit(&|v| {
                v["slos"]["slo0"]["events_bad"] = serde_json::json!(-1);
            }),
            fragment: "does not parse",
        },
        StateCase {
            name: "not JSON",
            contents: b"\x00\xffnot json".to_vec(),
            fragment: "does not parse",
        },
        StateCase {
            name: "empty file",
            contents: Vec::new(),
            fragment: "does not parse",
        },
        StateCase {
            name: "truncated",
            contents: serde_json::to_vec(&valid).unwrap()[..100].to_vec(),
            fragment: "does not parse",
        },
        StateCase {
            name: "deeply nested",
            contents: "[".repeat(100_000).into_bytes(),
            fragment: "does not parse",
        },
        StateCase {
            name: "alert without window labels",
            contents: edit(&|v| {
                v["alerts"] = alert(
                    serde_json::json!({"alertname": "SLOBurnRate", "slo": "s", "severity": "critical"}),
                    now - 1000,
                );
            }),
            fragment: "lacks its window labels",
        },
        StateCase {
            name: "alert in the future",
            contents: edit(&|v| {
                v["alerts"] = alert(full_labels.clone(), now + 86_400_000);
            }),
            fragment: "starts in the future",
        },
        StateCase {
            name: "alert without alertname",
            contents: edit(&|v| {
                v["alerts"] = alert(serde_json::json!({}), now);
            }),
            fragment: "without a key or alertname",
        },
        StateCase {
            name: "state file is a FIFO",
            contents: b"FIFO".to_vec(),
            fragment: "not a regular file",
        },
        StateCase {
            name: "state file is a directory",
            contents: b"DIR".to_vec(),
            fragment: "not a regular file",
        },
    ]
}

fn mkfifo(path: &Path) {
    let ok = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap()
        .success();
    assert!(ok, "mkfifo {}", path.display());
}

fn write(dir: &Path, path: &str, contents: &[u8]) {
    let p = dir.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    match contents {
        b"FIFO" => mkfifo(&p),
        b"DIR" => std::fs::create_dir_all(&p).unwrap(),
        b"BIG" => {
            let f = std::fs::File::create(&p).unwrap();
            f.set_len(11 * 1024 * 1024).unwrap();
        }
        _ => std::fs::write(&p, contents).unwrap(),
    }
}

#[tokio::test]
async fn hostile_config_table() {
    let cases: Vec<Case> = durations().into_iter().chain(files()).collect();
    let mut failures = Vec::new();
    for case in &cases {
        let dir = tempfile::tempdir().unwrap();
        for (path, contents) in &case.files {
            write(dir.path(), path, contents);
        }
        let args: Vec<&str> = case.args.iter().map(String::as_str).collect();
        let out = vantage(&args, &[], dir.path()).await;
        let all = format!("{}{}", out.stdout, out.stderr);
        if out.code != case.code || !all.contains(case.fragment) || all.contains("panicked") {
            failures.push(format!(
                "{}: exit {} (want {}), output:\n{all}\nwanted fragment: {}",
                case.name, out.code, case.code, case.fragment
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n---\n")
    );
}

/// Start the daemon on `dir` (whose state directory is ready), wait until it serves, stop it;
/// its stderr.
async fn daemon_start_log(dir: &Path) -> String {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_vantage"));
    cmd.args(["run", "-c", "vantage.toml", "--log-format", "text"])
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = String::new();
    let read = async {
        while let Ok(Some(line)) = lines.next_line().await {
            log.push_str(&line);
            log.push('\n');
            if line.contains("Serving") {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(30), read).await;
    let _ = child.start_kill();
    let _ = child.wait().await;
    log
}

#[tokio::test]
async fn hostile_state_table() {
    let cases = state_cases();
    let mut failures = Vec::new();
    for case in &cases {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("vantage.toml"),
            format!("[server]\nlisten = \"127.0.0.1:0\"\n\n[state]\ndir = \"state\"\n\n{PROBE}interval = \"1h\"\n"),
        )
        .unwrap();
        write(dir.path(), "state/vantage-state.json", &case.contents);
        let log = daemon_start_log(dir.path()).await;
        let served = log.contains("Serving");
        let moved = log.contains("moved aside");
        let aside = std::fs::read_dir(dir.path().join("state"))
            .unwrap()
            .filter_map(Result::ok)
            .any(|e| e.file_name().to_string_lossy().contains(".bad-"));
        let ok = if case.fragment.is_empty() {
            served && !moved && !aside
        } else {
            served && moved && aside && log.contains(case.fragment)
        };
        if !ok || log.contains("panicked") {
            failures.push(format!(
                "{}: served {served}, moved {moved}, aside {aside}, wanted {:?}; log:\n{log}",
                case.name, case.fragment
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n---\n")
    );
}

#[test]
fn table_has_at_least_60_cases() {
    let n = durations().len() + files().len() + state_cases().len();
    assert!(n >= 60, "{n} cases");
}

/// The committed fuzz corpus (`fuzz/seeds`, with every crash the fuzzers found) replayed through
/// the same entry points the fuzz targets call: CI keeps the findings fixed without nightly.
#[test]
fn fuzz_corpus_replays() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let mut n = 0;
    for (kind, run) in [
        (
            "config",
            &(|d: &[u8]| {
                let _ = vantage::config::load::exercise(d);
            }) as &dyn Fn(&[u8]),
        ),
        ("state", &|d: &[u8]| {
            let _ = vantage::daemon::state::exercise(d, 1_790_000_000_000);
        }),
    ] {
        let dir = root.join(kind);
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(Result::ok)
            .map(|e| e.path())
            .collect();
        entries.sort();
        assert!(!entries.is_empty(), "no corpus in {}", dir.display());
        for path in entries {
            let data = std::fs::read(&path).unwrap();
            // A panic fails the test; the path says which input.
            eprintln!("replaying {}", path.display());
            run(&data);
            n += 1;
        }
    }
    assert!(n >= 4);
}

/// Seeds for the state fuzzer: valid files of every SLO shape (run with `--ignored`).
#[test]
#[ignore]
fn write_state_seeds() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/state");
    std::fs::create_dir_all(&dir).unwrap();
    let now = 1_790_000_000_000;
    for events in [0, 3, 40] {
        let bytes = vantage::daemon::state::sample_file(now, events);
        assert!(vantage::daemon::state::exercise(&bytes, now) >= 3);
        std::fs::write(dir.join(format!("sample-{events}.json")), bytes).unwrap();
    }
}
