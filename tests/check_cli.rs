//! `vantage check`, `validate` and `probe` as a user runs them: exit codes, reports, redaction.

use quick_xml::events::Event;

use crate::fixtures::http_target;
use crate::support::{vantage, write_config};

const TOKEN: &str = "tok-4f9a-SECRET-77c1";

fn config(t: &crate::fixtures::Target) -> String {
    format!(
        r#"
[defaults]
timeout = "2s"

[[probe]]
name = "healthy"
kind = "http"
url = "{ok}"

[[probe]]
name = "down"
kind = "http"
url = "{down}"
[probe.expect]
status = [200]

[[probe]]
name = "echo"
kind = "http"
url = "{echo}?token=${{TOKEN}}"
headers = {{ Authorization = "Bearer ${{TOKEN}}" }}
[probe.expect]
body_regex = ["^nothing-like-this"]
"#,
        ok = t.url("/ok"),
        down = t.url("/status/503"),
        echo = t.url("/echo"),
    )
}

fn closing_line(text: &str) -> (usize, usize) {
    let last = text.lines().last().unwrap();
    let (p, f) = last
        .split_once(" passed, ")
        .unwrap_or_else(|| panic!("bad closing line {last:?}"));
    (
        p.parse().unwrap(),
        f.trim_end_matches(" failed").parse().unwrap(),
    )
}

#[tokio::test]
async fn reports_agree_and_exit_codes() {
    let t = http_target().await;
    let cfg = write_config(&config(&t));
    let env = [("TOKEN", TOKEN)];
    let dir = cfg.dir.path();

    let text = vantage(&["check"], &env, dir).await;
    assert_eq!(text.code, 1, "{}", text.stderr);
    assert_eq!(closing_line(&text.stdout), (1, 2), "{}", text.stdout);
    assert!(text.stdout.contains("FAIL  down"));
    assert!(text
        .stdout
        .contains("http_status: status 503, expected 200"));

    let json = vantage(&["check", "--format", "json"], &env, dir).await;
    assert_eq!(json.code, 1);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["passed"], 1);
    assert_eq!(doc["failed"], 2);
    let probes = doc["probes"].as_array().unwrap();
    assert_eq!(probes.len(), 3);
    let down = probes.iter().find(|p| p["name"] == "down").unwrap();
    assert_eq!(down["reason"], "http_status");
    assert_eq!(down["success"], false);
    assert_eq!(down["run"], 1);
    assert_eq!(down["facts"]["status"], 503);
    assert!(down["facts"]["cert_not_after"].is_null());
    // Facts carry only the keys of the probe's kind: an http probe has no flow steps.
    assert!(down["facts"].get("steps").is_none());
    assert_eq!(down["facts"]["ssl"], false);
    assert!(down["phases"]["processing"].as_f64().unwrap() > 0.0);
    assert!(down["evidence"].as_str().unwrap().contains("status 503"));
    let healthy = probes.iter().find(|p| p["name"] == "healthy").unwrap();
    assert!(healthy["reason"].is_null());
    assert!(doc["slos"].as_array().unwrap().is_empty());

    let out_file = dir.join("report.xml");
    let junit = vantage(
        &[
            "check",
            "--format",
            "junit",
            "--output",
            out_file.to_str().unwrap(),
        ],
        &env,
        dir,
    )
    .await;
    assert_eq!(junit.code, 1);
    assert!(junit.stdout.is_empty());
    let xml = std::fs::read_to_string(&out_file).unwrap();
    let (mut cases, mut failures, mut suite_failures) = (0, 0, String::new());
    let mut reader = quick_xml::Reader::from_str(&xml);
    loop {
        match reader.read_event().unwrap() {
            Event::Start(e) | Event::Empty(e) => match e.name().as_ref() {
                b"testsuite" => {
                    suite_failures = e
                        .attributes()
                        .flatten()
                        .find(|a| a.key.as_ref() == b"failures")
                        .map(|a| String::from_utf8_lossy(&a.value).into_owned())
                        .unwrap();
                }
                b"testcase" => cases += 1,
                b"failure" => {
                    failures += 1;
                    let msg = e
                        .attributes()
                        .flatten()
                        .find(|a| a.key.as_ref() == b"message")
                        .map(|a| String::from_utf8_lossy(&a.value).into_owned())
                        .unwrap();
                    assert!(
                        msg.contains("processing"),
                        "phases in failure message: {msg}"
                    );
                }
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!((cases - failures, failures), (1, 2));
    assert_eq!(suite_failures, "2");

    let only = vantage(&["check", "--probe", "healthy"], &env, dir).await;
    assert_eq!(only.code, 0, "{}", only.stdout);
    assert_eq!(closing_line(&only.stdout), (1, 0));

    let glob = vantage(&["check", "--probe", "d*", "--probe", "healthy"], &env, dir).await;
    assert_eq!(closing_line(&glob.stdout), (1, 1));

    let unknown = vantage(&["check", "--probe", "nope"], &env, dir).await;
    assert_eq!(unknown.code, 2);
    assert!(
        unknown.stderr.contains("no probe matches"),
        "{}",
        unknown.stderr
    );

    let runs = vantage(
        &[
            "check", "--runs", "3", "--probe", "healthy", "--format", "json",
        ],
        &env,
        dir,
    )
    .await;
    let doc: serde_json::Value = serde_json::from_str(&runs.stdout).unwrap();
    let run_numbers: Vec<u64> = doc["probes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["run"].as_u64().unwrap())
        .collect();
    assert_eq!(run_numbers, [1, 2, 3]);

    let missing_env = vantage(&["check"], &[], dir).await;
    assert_eq!(missing_env.code, 2);
    assert!(missing_env
        .stderr
        .contains("environment variable TOKEN is not set"));

    let usage = vantage(&["check", "--runs", "0"], &env, dir).await;
    assert_eq!(usage.code, 2);
    let no_file = vantage(&["check", "-c", "nope.toml"], &env, dir).await;
    assert_eq!(no_file.code, 2);
    assert!(no_file
        .stderr
        .contains("nope.toml:1:1: cannot read config file"));
}

#[tokio::test]
async fn token_never_appears_in_any_output() {
    let t = http_target().await;
    let cfg = write_config(&config(&t));
    let dir = cfg.dir.path();
    let env = [("TOKEN", TOKEN), ("GITHUB_ACTIONS", "true")];
    for format in ["text", "json", "junit"] {
        for log in [
            &["--log-level", "trace"][..],
            &["--log-level", "trace", "--log-format", "text"][..],
        ] {
            let mut args = vec!["check", "--format", format];
            args.extend_from_slice(log);
            let out = vantage(&args, &env, dir).await;
            assert_eq!(out.code, 1);
            assert!(
                !out.stdout.contains(TOKEN),
                "{format}: token in stdout:\n{}",
                out.stdout
            );
            assert!(!out.stderr.contains(TOKEN), "{format}: token in stderr");
            // The echo target did send the token back: it was redacted, not absent.
            if format != "junit" {
                assert!(
                    out.stdout.contains("Bearer ***"),
                    "{format}: {}",
                    out.stdout
                );
            }
        }
    }
}

#[tokio::test]
async fn github_annotations() {
    let t = http_target().await;
    let cfg = write_config(&config(&t));
    let out = vantage(
        &["check"],
        &[("TOKEN", TOKEN), ("GITHUB_ACTIONS", "true")],
        cfg.dir.path(),
    )
    .await;
    let annotations: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("::error "))
        .collect();
    assert_eq!(annotations.len(), 2, "{}", out.stdout);
    assert!(
        annotations[0].starts_with("::error title=vantage%3A probe down failed (http_status)::")
    );
    let json = vantage(
        &["check", "--format", "json"],
        &[("TOKEN", TOKEN), ("GITHUB_ACTIONS", "true")],
        cfg.dir.path(),
    )
    .await;
    serde_json::from_str::<serde_json::Value>(&json.stdout).expect("annotations keep stdout JSON");
    assert!(json.stderr.contains("::error title="));
}

#[tokio::test]
async fn validate_and_probe_commands() {
    let t = http_target().await;
    let cfg = write_config(&config(&t));
    let ok = vantage(&["validate"], &[("TOKEN", TOKEN)], cfg.dir.path()).await;
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert!(ok.stdout.contains("ok, 3 probes"));

    let up = vantage(&["probe", &t.url("/ok")], &[], cfg.dir.path()).await;
    assert_eq!(up.code, 0, "{}", up.stdout);
    assert!(up.stdout.contains("result: success"));
    assert!(up.stdout.contains("processing"));
    let down = vantage(&["probe", &t.url("/status/500")], &[], cfg.dir.path()).await;
    assert_eq!(down.code, 1);
    assert!(down.stdout.contains("failure (http_status)"));
    let bad = vantage(&["probe", "not a url"], &[], cfg.dir.path()).await;
    assert_eq!(bad.code, 2);
}

/// Found by the attack pass: `vantage probe` with a URL password showed the password when the
/// target echoed the decoded basic-auth credentials back.
#[tokio::test]
async fn adhoc_probe_masks_an_echoed_url_password() {
    use base64::Engine as _;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        for _ in 0..4 {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let mut buf = vec![0u8; 8192];
            let n = s.read(&mut buf).await.unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).to_string();
            let creds = head
                .lines()
                .find_map(|l| l.strip_prefix("authorization: Basic "))
                .or_else(|| {
                    head.lines()
                        .find_map(|l| l.strip_prefix("Authorization: Basic "))
                })
                .and_then(|b| {
                    base64::engine::general_purpose::STANDARD
                        .decode(b.trim())
                        .ok()
                })
                .map(|b| String::from_utf8_lossy(&b).to_string())
                .unwrap_or_default();
            let body = format!("you are {creds}");
            let resp = format!(
                "HTTP/1.1 500 Oops\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(resp.as_bytes()).await;
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://alice:longpassword123@{addr}/dec");
    let out = vantage(&["probe", &url], &[], dir.path()).await;
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(out.stdout.contains("you are"), "{}", out.stdout);
    assert!(
        !out.stdout.contains("longpassword123") && !out.stderr.contains("longpassword123"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    server.abort();
}
