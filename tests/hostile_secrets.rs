//! Secrets echoed back by a target in another form (SPEC §10): JSON-escaped, percent-encoded,
//! base64, and URL userinfo. None may reach a report, the API, the status page or the log.

use base64::Engine as _;

use crate::daemon::start_daemon_in;
use crate::fixtures::http_target;
use crate::support::{vantage, write_config};

/// Has a space, a quote and a backslash: every encoding changes it.
const TOKEN: &str = "key\"SECRET\\abc uq";
const USER: &str = "robot";
const PASS: &str = "pw-Zx9-SECRET-77";

/// Every form of the secrets a leak could take.
fn leaks(text: &str) -> Vec<String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut forms = vec![
        "SECRET".to_string(),
        b64.encode(TOKEN),
        b64.encode(format!("{USER}:{PASS}")),
        b64.encode(PASS),
    ];
    forms.retain(|f| text.contains(f.as_str()));
    forms
}

fn config(t: &crate::fixtures::Target) -> String {
    let echo = t.url("/echo");
    let authority = echo.trim_start_matches("http://").to_string();
    format!(
        r#"
[defaults]
timeout = "2s"
interval = "5s"

# The token percent-encoded in the URL (the url crate encodes the space and the quote), and
# echoed back in the request line.
[[probe]]
name = "in-url"
kind = "http"
url = "{echo}?key=${{TOKEN}}"
[probe.expect]
body_regex = ["^nothing-like-this"]

# A header holding the token's JSON-escaped form, echoed back: the token never appears raw.
[[probe]]
name = "json-escaped"
kind = "http"
url = "{echo}"
headers = {{ X-Echo-Json = 'key\"SECRET\\abc uq', X-Echo-B64 = "{b64}" }}
[probe.expect]
body_regex = ["^nothing-like-this"]

# Userinfo: sent as basic auth (the echo shows it), redacted everywhere.
[[probe]]
name = "userinfo"
kind = "http"
url = "http://${{U}}:${{P}}@{authority}"
[probe.expect]
body_regex = ["(?i)authorization: basic "]

[[probe]]
name = "userinfo-fails"
kind = "http"
url = "http://${{U}}:${{P}}@{authority}"
[probe.expect]
body_regex = ["^nothing-like-this"]
"#,
        b64 = base64::engine::general_purpose::STANDARD.encode(TOKEN),
    )
}

const ENV: [(&str, &str); 3] = [("TOKEN", TOKEN), ("U", USER), ("P", PASS)];

#[tokio::test]
async fn echoed_secrets_never_reach_reports_in_any_form() {
    let t = http_target().await;
    let cfg = write_config(&config(&t));
    let dir = cfg.dir.path();
    let mut env = ENV.to_vec();
    env.push(("GITHUB_ACTIONS", "true"));
    for format in ["text", "json", "junit"] {
        let out = vantage(
            &["check", "--format", format, "--log-level", "debug"],
            &env,
            dir,
        )
        .await;
        assert_eq!(out.code, 1, "{format}: {}", out.stderr);
        for (stream, text) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
            assert_eq!(
                leaks(text),
                Vec::<String>::new(),
                "{format} {stream}:\n{text}"
            );
        }
        assert!(
            out.stdout.contains("***"),
            "{format}: nothing masked?\n{}",
            out.stdout
        );
        if format == "json" {
            let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
            let userinfo = doc["probes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == "userinfo")
                .unwrap();
            // The credentials were sent as basic auth: the echo matched.
            assert_eq!(userinfo["success"], true, "{userinfo}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn echoed_secrets_never_reach_the_api_or_status_page() {
    let t = http_target().await;
    let cfg = write_config(&config(&t));
    let d = start_daemon_in(cfg, &ENV).await;
    let mut runs = 0;
    for _ in 0..100 {
        let (_, body) = d.get("/api/v1/probes").await;
        let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
        runs = doc
            .as_array()
            .or_else(|| doc["probes"].as_array())
            .map_or(0, |a| {
                a.iter()
                    .filter(|p| {
                        !p["last"].is_null()
                            || !p["last_run"].is_null()
                            || p["runs"].as_u64().unwrap_or(0) > 0
                    })
                    .count()
            });
        if runs >= 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for path in [
        "/api/v1/probes",
        "/",
        "/api/v1/probes/in-url",
        "/api/v1/probes/userinfo-fails",
        "/api/v1/probes/json-escaped",
        "/metrics",
    ] {
        let (code, body) = d.get(path).await;
        assert_eq!(code, 200, "{path}");
        assert_eq!(leaks(&body), Vec::<String>::new(), "{path}:\n{body}");
    }
    let (_, body) = d.get("/api/v1/probes/in-url").await;
    assert!(body.contains("***"), "{body}");
    assert!(
        runs >= 4 || body.contains("evidence"),
        "probes did not run: {body}"
    );
    d.stop().await;
}
