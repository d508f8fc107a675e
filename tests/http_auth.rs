//! `basic_auth`, `bearer_token_file` and `oauth2` (client credentials) on http probes and
//! modules: config (accepted; located errors), behaviour against loopback targets and a loopback
//! token endpoint, and hostile token endpoints (401, garbage, huge, hanging, echoing).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use vantage::config::Config;
use vantage_probes::{Clock, Outcome, Reason};

use crate::fixtures::http_target;
use crate::support::{load_in, outcome, run_all, write_config, write_config_in};

const SECRET: &str = "cl1ent-s3cret-value";

fn probe(name: &str, url: &str, extra: &str) -> String {
    format!("[[probe]]\nname = \"{name}\"\nkind = \"http\"\nurl = \"{url}\"\ntimeout = \"1s\"\ninterval = \"1m\"\n{extra}\n")
}

fn config_error_in(dir: tempfile::TempDir, text: &str) -> String {
    let cfg = write_config_in(dir, text);
    match load_in(&cfg.path, &[("SECRET", SECRET)]) {
        Ok(_) => panic!("config accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

fn config_error(text: &str) -> String {
    config_error_in(tempfile::tempdir().unwrap(), text)
}

/// A loopback OAuth 2.0 token endpoint that counts the token requests it answers. By path:
/// `/token` (a JSON token `tok-N-…` valid 60 s), `/token-forever` (no `expires_in`), `/form`
/// (a form-encoded token), `/401`, `/garbage`, `/huge` (1 MiB), `/hang`, `/echo` (the
/// request's Authorization header as a JSON string: an endpoint echoing the client secret).
/// `/token` insists on the client credentials grant with basic client authentication.
struct TokenServer {
    addr: SocketAddr,
    count: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TokenServer {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn requests(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    async fn start() -> TokenServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let count = Arc::new(AtomicUsize::new(0));
        let c = count.clone();
        let task = tokio::spawn(async move {
            for _ in 0..1000 {
                let Ok((mut s, _)) = listener.accept().await else {
                    continue;
                };
                let c = c.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 2048];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 65536 {
                        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk)).await
                        {
                            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                            _ => return,
                        }
                    }
                    let text = String::from_utf8_lossy(&buf).to_string();
                    let head_len = text.find("\r\n\r\n").unwrap_or(0) + 4;
                    let lower = text[..head_len].to_ascii_lowercase();
                    let length: usize = lower
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0)
                        .min(65536);
                    while buf.len() < head_len + length {
                        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk)).await
                        {
                            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                            _ => return,
                        }
                    }
                    let body = String::from_utf8_lossy(&buf[head_len..]).to_string();
                    let path = text.split_whitespace().nth(1).unwrap_or("/").to_string();
                    let auth = text[..head_len]
                        .lines()
                        .find_map(|l| {
                            l.split_once(':')
                                .filter(|(k, _)| k.eq_ignore_ascii_case("authorization"))
                                .map(|(_, v)| v.trim().to_string())
                        })
                        .unwrap_or_default();
                    let n = c.fetch_add(1, Ordering::SeqCst) + 1;
                    let json = |status: u16, body: String| {
                        format!(
                            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        )
                        .into_bytes()
                    };
                    let out = match path.as_str() {
                        "/token" => {
                            let want_auth = format!(
                                "Basic {}",
                                base64::engine::general_purpose::STANDARD
                                    .encode(format!("vantage:{SECRET}"))
                            );
                            let grant = body.starts_with("grant_type=client_credentials")
                                && body.contains("scope=read+write")
                                && body.contains("audience=api");
                            if auth != want_auth || !grant {
                                json(
                                    400,
                                    format!("{{\"error\":\"invalid_request\",\"got\":{body:?}}}"),
                                )
                            } else {
                                json(200, format!("{{\"access_token\":\"tok-{n}-abcdefgh\",\"token_type\":\"bearer\",\"expires_in\":60}}"))
                            }
                        }
                        "/token-forever" => {
                            json(200, format!("{{\"access_token\":\"tok-{n}-forever\"}}"))
                        }
                        "/form" => {
                            let b = format!(
                                "access_token=tok-{n}-form&token_type=bearer&expires_in=3600"
                            );
                            format!("HTTP/1.1 200 OK\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{b}", b.len()).into_bytes()
                        }
                        "/401" => json(
                            401,
                            format!("{{\"error\":\"invalid_client\",\"secret\":\"{SECRET}\"}}"),
                        ),
                        "/garbage" => json(200, "<html>definitely not a token".to_string()),
                        "/huge" => json(
                            200,
                            format!("{{\"access_token\":\"{}\"}}", "a".repeat(1024 * 1024)),
                        ),
                        "/echo" => json(200, format!("{auth:?}")),
                        "/hang" => {
                            tokio::time::sleep(Duration::from_secs(3600)).await;
                            return;
                        }
                        _ => json(404, "{}".to_string()),
                    };
                    let _ = s.write_all(&out).await;
                    let _ = s.shutdown().await;
                });
            }
        });
        TokenServer { addr, count, task }
    }
}

fn oauth2(token_url: &str) -> String {
    format!("oauth2 = {{ token_url = \"{token_url}\", client_id = \"vantage\", client_secret = \"${{SECRET}}\", scopes = [\"read\", \"write\"], endpoint_params = {{ audience = \"api\" }} }}\n")
}

fn load_secret(text: &str) -> Config {
    let cfg = write_config(text);
    load_in(&cfg.path, &[("SECRET", SECRET)]).unwrap_or_else(|e| panic!("{e}"))
}

async fn run_once(config: &Config, clock: &Clock) -> Outcome {
    config.probes[0].run(clock, Instant::now()).await
}

#[test]
fn auth_keys_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "abc\n").unwrap();
    let text = probe(
        "basic",
        "http://127.0.0.1:9/",
        "basic_auth = { username = \"u\", password = \"${SECRET}\" }",
    ) + &probe(
        "file",
        "http://127.0.0.1:9/",
        "bearer_token_file = \"token\"",
    ) + &probe("oauth", "http://127.0.0.1:9/", &oauth2("https://auth.example/token"))
        + "[module.m]\nkind = \"http\"\nbasic_auth = { username = \"u\" }\nhttp_versions = [\"2\"]\n"
        + &format!("[module.o]\nkind = \"http\"\n{}", oauth2("http://127.0.0.1:9/token"));
    let cfg = write_config_in(dir, &text);
    let c = load_in(&cfg.path, &[("SECRET", SECRET)]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.probes.len(), 3);
    // Literal secrets are secrets too: nothing of them in Debug output.
    for p in &c.probes {
        if let vantage::config::Spec::Http(h) = &p.spec {
            let dbg = format!("{h:?}");
            assert!(!dbg.contains(SECRET), "{dbg}");
        }
    }
}

#[test]
fn bad_auth_values_are_located_errors() {
    let url = "http://127.0.0.1:9/";
    let cases: &[(&str, &str, &str)] = &[
        ("basic_auth = { username = \"\" }", "basic_auth.username is empty", ":7:"),
        ("basic_auth = { username = \"a:b\" }", "must not contain ':'", ":7:"),
        ("basic_auth = { user = \"a\" }", "unknown key \"user\"", ":7:"),
        ("basic_auth = \"a:b\"", "vantage.toml:7:", ":7:"),
        (
            "basic_auth = { username = \"a\" }\nheaders = { Authorization = \"x\" }",
            "set an Authorization header or basic_auth, not both",
            ":7:",
        ),
        (
            "basic_auth = { username = \"a\" }\nbearer_token = \"t\"",
            "set bearer_token or basic_auth, not both",
            ":7:",
        ),
        (
            "bearer_token_file = \"missing\"",
            "bearer_token_file: ",
            ":7:",
        ),
        ("bearer_token_file = \".\"", "is a directory, expected a regular file", ":7:"),
        ("bearer_token_file = \"empty\"", "is empty", ":7:"),
        ("bearer_token_file = \"two-lines\"", "one token on one line", ":7:"),
        (
            "bearer_token_file = \"token\"\nbearer_token = \"t\"",
            "set bearer_token or bearer_token_file, not both",
            ":7:",
        ),
        (
            "oauth2 = { token_url = \"ftp://x/\", client_id = \"a\", client_secret = \"b\" }",
            "must be an http:// or https:// URL",
            ":7:",
        ),
        (
            "oauth2 = { token_url = \"not a url\", client_id = \"a\", client_secret = \"b\" }",
            "invalid oauth2.token_url",
            ":7:",
        ),
        (
            "oauth2 = { token_url = \"http://a:b@x/\", client_id = \"a\", client_secret = \"b\" }",
            "must not hold credentials",
            ":7:",
        ),
        (
            "oauth2 = { token_url = \"http://x/\", client_id = \"\", client_secret = \"b\" }",
            "oauth2.client_id is empty",
            ":7:",
        ),
        (
            "oauth2 = { token_url = \"http://x/\", client_id = \"a\" }",
            "missing key \"client_secret\"",
            ":7:",
        ),
        (
            "oauth2 = { token_url = \"http://x/\", client_id = \"a\", client_secret = \"b\", scopes = [\"a b\"] }",
            "invalid oauth2 scope",
            ":7:",
        ),
        (
            "oauth2 = { token_url = \"http://x/\", client_id = \"a\", client_secret = \"b\", endpoint_params = { grant_type = \"password\" } }",
            "may not set \"grant_type\"",
            ":7:",
        ),
        (
            "oauth2 = { token_url = \"http://x/\", client_id = \"a\", client_secret = \"b\" }\nbasic_auth = { username = \"u\" }",
            "set oauth2 or basic_auth, not both",
            ":8:",
        ),
    ];
    for (extra, want, line) in cases {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("empty"), "\n\n").unwrap();
        std::fs::write(dir.path().join("token"), "abc\n").unwrap();
        std::fs::write(dir.path().join("two-lines"), "abc\ndef\n").unwrap();
        let e = config_error_in(dir, &probe("p", url, extra));
        assert!(e.contains(want), "{extra}: {e}");
        assert!(e.contains(&format!("vantage.toml{line}")), "{extra}: {e}");
    }
    // Credentials in the URL and basic_auth: one path, so not both.
    let e = config_error(&probe(
        "p",
        "http://a:b@127.0.0.1:9/",
        "basic_auth = { username = \"u\" }",
    ));
    assert!(
        e.contains("set credentials in the URL or basic_auth, not both"),
        "{e}"
    );
    // http-only keys on another kind are refused, located.
    for key in [
        "basic_auth = { username = \"u\" }",
        "bearer_token_file = \"t\"",
        "oauth2 = { token_url = \"http://x/\", client_id = \"a\", client_secret = \"b\" }",
    ] {
        let e = config_error(&format!(
            "[[probe]]\nname = \"t\"\nkind = \"tls\"\ntarget = \"127.0.0.1:443\"\n{key}\n"
        ));
        let name = key.split(' ').next().unwrap();
        assert!(e.contains(name), "{key}: {e}");
        assert!(e.contains("vantage.toml:5:"), "{key}: {e}");
    }
    // A FIFO would block a naive read forever; it is refused.
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    if made.is_ok_and(|s| s.success()) {
        let e = config_error_in(dir, &probe("p", url, "bearer_token_file = \"fifo\""));
        assert!(e.contains("is a FIFO"), "{e}");
    }
    // Larger than 10 MiB: refused, not read.
    let dir = tempfile::tempdir().unwrap();
    let big = std::fs::File::create(dir.path().join("big")).unwrap();
    big.set_len(11 * 1024 * 1024).unwrap();
    let e = config_error_in(dir, &probe("p", url, "bearer_token_file = \"big\""));
    assert!(e.contains("more than the limit"), "{e}");
}

#[tokio::test]
async fn basic_auth_and_token_files_are_sent_and_redacted() {
    let t = http_target().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "f1le-t0ken-abc\r\n").unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("prom:{SECRET}"));
    let mut text = String::new();
    text += &probe(
        "basic",
        &t.url("/echo"),
        &format!("basic_auth = {{ username = \"prom\", password = \"${{SECRET}}\" }}\n[probe.expect]\nbody_regex = [\"(?i)authorization: Basic {b64}\\r\\n\"]"),
    );
    text += &probe(
        "basic-literal-echoed",
        &t.url("/echo"),
        "basic_auth = { username = \"prom\", password = \"l1teral-passw0rd\" }\n[probe.expect]\nbody_regex = [\"^nothing\"]",
    );
    text += &probe(
        "file",
        &t.url("/echo"),
        "bearer_token_file = \"token\"\n[probe.expect]\nbody_regex = [\"(?i)authorization: Bearer f1le-t0ken-abc\\r\\n\"]",
    );
    text += &probe(
        "file-echoed",
        &t.url("/echo"),
        "bearer_token_file = \"token\"\n[probe.expect]\nbody_regex = [\"^nothing\"]",
    );
    let cfg = write_config_in(dir, &text);
    let config = load_in(&cfg.path, &[("SECRET", SECRET)]).unwrap();
    let all = run_all(config).await;
    for name in ["basic", "file"] {
        let o = outcome(&all, name);
        assert!(o.success(), "{name}: {}", o.evidence);
    }
    let o = outcome(&all, "basic-literal-echoed");
    assert_eq!(o.reason, Some(Reason::AssertionBody));
    let lit = base64::engine::general_purpose::STANDARD.encode("prom:l1teral-passw0rd");
    assert!(!o.evidence.contains("l1teral"), "{}", o.evidence);
    assert!(!o.evidence.contains(&lit), "{}", o.evidence);
    let o = outcome(&all, "file-echoed");
    assert_eq!(o.reason, Some(Reason::AssertionBody));
    assert!(!o.evidence.contains("f1le-t0ken"), "{}", o.evidence);
    assert!(o.evidence.contains("Bearer ***"), "{}", o.evidence);

    // The file is config: a reload (a fresh load) reads it again.
    std::fs::write(cfg.dir.path().join("token"), "n3w-t0ken\n").unwrap();
    let config = load_in(&cfg.path, &[("SECRET", SECRET)]).unwrap();
    let all = run_all(config).await;
    let o = outcome(&all, "file-echoed");
    assert!(!o.evidence.contains("n3w-t0ken"), "{}", o.evidence);
    assert!(!o.success());
    let o = outcome(&all, "file");
    assert!(!o.success(), "the old token is no longer sent");
}

#[tokio::test]
async fn oauth2_token_is_fetched_once_sent_and_cached() {
    let tokens = TokenServer::start().await;
    let t = http_target().await;
    let config = load_secret(&probe(
        "o",
        &t.url("/echo"),
        &format!(
            "{}[probe.expect]\nbody_regex = [\"(?i)authorization: Bearer tok-1-abcdefgh\\r\\n\"]",
            oauth2(&tokens.url("/token"))
        ),
    ));
    let clock = Clock::system();
    for i in 0..3 {
        let o = run_once(&config, &clock).await;
        assert!(o.success(), "run {i}: {}", o.evidence);
        // The token never shows, even in success evidence.
        assert!(!o.evidence.contains("tok-1"), "{}", o.evidence);
    }
    assert_eq!(tokens.requests(), 1, "the token is cached across runs");
}

#[tokio::test]
async fn oauth2_token_is_renewed_after_it_expires() {
    let tokens = TokenServer::start().await;
    let t = http_target().await;
    let config = load_secret(&probe(
        "o",
        &t.url("/echo"),
        &format!(
            "{}[probe.expect]\nbody_regex = [\"(?i)authorization: Bearer tok-\"]",
            oauth2(&tokens.url("/token"))
        ),
    ));
    let clock = Clock::system();
    let o = run_once(&config, &clock).await;
    assert!(o.success(), "{}", o.evidence);
    assert_eq!(tokens.requests(), 1);
    // 45 s later (60 s token, renewed 10 s before it expires): still the cached token.
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(45)).await;
    tokio::time::resume();
    let o = run_once(&config, &clock).await;
    assert!(o.success(), "{}", o.evidence);
    assert_eq!(tokens.requests(), 1);
    // 51 s after it was fetched: within the margin, so a new one.
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(6)).await;
    tokio::time::resume();
    let o = run_once(&config, &clock).await;
    assert!(o.success(), "{}", o.evidence);
    assert_eq!(tokens.requests(), 2, "renewed within the expiry margin");
}

#[tokio::test]
async fn oauth2_token_without_expiry_and_form_answers_work() {
    let tokens = TokenServer::start().await;
    let t = http_target().await;
    let mut text = probe(
        "forever",
        &t.url("/echo"),
        &format!(
            "{}[probe.expect]\nbody_regex = [\"(?i)authorization: Bearer tok-[0-9]+-forever\\r\\n\"]",
            oauth2(&tokens.url("/token-forever"))
        ),
    );
    text += &probe(
        "form",
        &t.url("/echo"),
        &format!(
            "{}[probe.expect]\nbody_regex = [\"(?i)authorization: Bearer tok-[0-9]+-form\\r\\n\"]",
            oauth2(&tokens.url("/form"))
        ),
    );
    let all = run_all(load_secret(&text)).await;
    assert!(
        outcome(&all, "forever").success(),
        "{}",
        outcome(&all, "forever").evidence
    );
    assert!(
        outcome(&all, "form").success(),
        "{}",
        outcome(&all, "form").evidence
    );
}

#[tokio::test]
async fn hostile_token_endpoints_fail_the_run_without_leaks() {
    let tokens = TokenServer::start().await;
    let t = http_target().await;
    let closed = crate::fixtures::closed_port().await;
    let cases: &[(&str, String, Reason, &str)] = &[
        (
            "denied",
            tokens.url("/401"),
            Reason::HttpStatus,
            "status 401",
        ),
        (
            "garbage",
            tokens.url("/garbage"),
            Reason::Protocol,
            "not a JSON token response",
        ),
        (
            "huge",
            tokens.url("/huge"),
            Reason::BodyTooLarge,
            "max_body",
        ),
        (
            "hang",
            tokens.url("/hang"),
            Reason::Timeout,
            "no token within the probe's timeout",
        ),
        (
            "echo",
            tokens.url("/echo"),
            Reason::Protocol,
            "not a JSON token response",
        ),
        (
            "closed",
            format!("http://{closed}/token"),
            Reason::Connect,
            "oauth2 token from",
        ),
    ];
    let mut text = String::new();
    for (name, url, _, _) in cases {
        text += &probe(name, &t.url("/ok"), &oauth2(url));
    }
    let config = load_secret(&text);
    let started = std::time::Instant::now();
    let all = run_all(config).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("vantage:{SECRET}"));
    for (name, _, reason, want) in cases {
        let o = outcome(&all, name);
        assert!(!o.success(), "{name}");
        assert_eq!(o.reason, Some(*reason), "{name}: {}", o.evidence);
        assert!(o.evidence.contains(want), "{name}: {}", o.evidence);
        assert!(
            o.evidence.contains("oauth2 token from"),
            "{name}: {}",
            o.evidence
        );
        assert!(!o.evidence.contains(SECRET), "{name}: {}", o.evidence);
        assert!(!o.evidence.contains(&b64), "{name}: {}", o.evidence);
        // Nothing was sent to the target: no status, and the phases still add up.
        assert_eq!(o.facts.status(), None, "{name}");
        let sum: Duration = o.phases.as_array().iter().sum();
        assert!(sum <= o.duration, "{name}");
    }
    let o = outcome(&all, "hang");
    assert!(o.duration < Duration::from_millis(1900), "{:?}", o.duration);
}

#[tokio::test]
async fn oauth2_works_in_a_module_for_probe() {
    let tokens = TokenServer::start().await;
    let t = http_target().await;
    // probe_allow names the target's port only: the token URL is the config's, not the request's.
    let text = format!(
        "[server]\nprobe_allow = [\"http://127.0.0.1:{}/**\"]\n[module.api]\nkind = \"http\"\ntimeout = \"2s\"\n{}",
        t.addr.port(),
        oauth2(&tokens.url("/token"))
    );
    let cfg = write_config(&text);
    let va = crate::daemon::start_daemon_in(cfg, &[("SECRET", SECRET)]).await;
    for _ in 0..2 {
        let url = format!(
            "{}?module=api&target={}",
            va.url("/probe"),
            url::form_urlencoded::byte_serialize(t.url("/ok").as_bytes()).collect::<String>()
        );
        let body = crate::support::get(&url)
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(body.contains("probe_success 1"), "{body}");
        assert!(!body.contains(SECRET));
    }
    assert_eq!(
        tokens.requests(),
        1,
        "the module's token is cached across requests"
    );
    va.stop().await;
    // A module whose token endpoint fails: probe_success 0, and no secret in /probe?debug.
    let text = format!(
        "[server]\nprobe_allow = [\"http://127.0.0.1:*/**\"]\n[module.api]\nkind = \"http\"\ntimeout = \"2s\"\n{}",
        oauth2(&tokens.url("/401"))
    );
    let cfg = write_config(&text);
    let va = crate::daemon::start_daemon_in(cfg, &[("SECRET", SECRET)]).await;
    let url = format!(
        "{}?module=api&debug=true&target={}",
        va.url("/probe"),
        url::form_urlencoded::byte_serialize(t.url("/ok").as_bytes()).collect::<String>()
    );
    let body = crate::support::get(&url)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("probe_success 0"), "{body}");
    assert!(body.contains("status 401"), "{body}");
    assert!(!body.contains(SECRET), "{body}");
    va.stop().await;
}

#[tokio::test]
async fn oauth2_token_stays_with_its_origin_on_a_redirect() {
    let tokens = TokenServer::start().await;
    let pki = crate::fixtures::Pki::new();
    let leaf = pki.leaf(&["localhost"], -1, 90);
    let h2 = crate::http2::h2_target(leaf.chain.clone(), leaf.key()).await;
    let plain = http_target().await;
    let cross = format!(
        "/to?{}",
        url::form_urlencoded::byte_serialize(plain.url("/echo").as_bytes()).collect::<String>()
    );
    let mut text = probe(
        "same-origin",
        &h2.url("/echo"),
        &format!(
            "tls = {{ ca = \"{}\", server_name = \"localhost\" }}\n{}[probe.expect]\nbody_regex = [\"authorization: Bearer tok-\"]",
            pki.ca_path().display(),
            oauth2(&tokens.url("/token"))
        ),
    );
    text += &probe(
        "cross-origin",
        &h2.url(&cross),
        &format!(
            "tls = {{ ca = \"{}\", server_name = \"localhost\" }}\n{}[probe.expect]\nbody_not_regex = [\"(?i)authorization|tok-\"]",
            pki.ca_path().display(),
            oauth2(&tokens.url("/token"))
        ),
    );
    let all = run_all(load_secret(&text)).await;
    // Over HTTP/2 the token is sent to the probe's origin...
    let o = outcome(&all, "same-origin");
    assert!(o.success(), "{}", o.evidence);
    // ...and dropped on the hop to another origin.
    let o = outcome(&all, "cross-origin");
    assert!(o.success(), "{}", o.evidence);
    assert_eq!(o.facts.http_facts().map_or(0, |h| h.redirects), 1);
}

/// `http_versions` is about the probe's target: an HTTP/2-only probe still fetches its token from
/// an HTTP/1.1 endpoint (here plain http, which is HTTP/1.1 only). Attack-pass finding: the
/// probe's versions were applied to the token request, so this probe could never succeed.
#[tokio::test]
async fn http_versions_do_not_apply_to_the_token_request() {
    let tokens = TokenServer::start().await;
    let pki = crate::fixtures::Pki::new();
    let leaf = pki.leaf(&["localhost"], -1, 90);
    let t = crate::http2::h2_target(leaf.chain.clone(), leaf.key()).await;
    let config = load_secret(&probe(
        "h2",
        &t.url("/ok"),
        &format!(
            "http_versions = [\"2\"]\ntls = {{ ca = \"{}\", server_name = \"localhost\" }}\n{}",
            pki.ca_path().display(),
            oauth2(&tokens.url("/token"))
        ),
    ));
    let o = run_once(&config, &Clock::system()).await;
    assert!(o.success(), "{}", o.evidence);
    assert_eq!(o.facts.http_facts().unwrap().version.as_deref(), Some("2"));
    assert_eq!(tokens.requests(), 1);
}
