//! `/probe` attacked as an SSRF attacker would, and used as a large Prometheus would: hostile
//! targets (each with the verdict it must get, run through the daemon against loopback side
//! servers that must receive nothing), redirect hops, secret headers across origins, limits,
//! the per-client connection cap, debug output, rule validation, and a real Prometheus scraping
//! 500 blackbox-style targets.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::daemon::{sample, start_daemon, start_daemon_in, Running};
use crate::support::write_config;

/// A loopback HTTP server that counts the connections it accepts and keeps the request heads.
/// Paths: `/ok` 200; `/pub/...` 404; `/redir/CODE?to=LOCATION` a redirect; `/slow` 200 after
/// 3 s; anything else 404.
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    heads: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    pub(crate) async fn start(ip: &str) -> Server {
        let listener = TcpListener::bind((ip, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let (a, h) = (accepted.clone(), heads.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((s, _)) = listener.accept().await else {
                    continue;
                };
                let _ = s.set_nodelay(true);
                a.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(answer(s, h.clone()));
            }
        });
        Server {
            addr,
            accepted,
            heads,
            task,
        }
    }

    pub(crate) fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

async fn answer(mut s: TcpStream, heads: Arc<Mutex<Vec<String>>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 65536 {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    heads.lock().unwrap().push(head.clone());
    let target = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let reply = if path == "/ok" {
        "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok".to_string()
    } else if path == "/slow" {
        tokio::time::sleep(Duration::from_secs(3)).await;
        "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok".to_string()
    } else if let Some(code) = path.strip_prefix("/redir/") {
        let to = url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "to")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        format!("HTTP/1.1 {code} Redirect\r\nlocation: {to}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
    } else {
        "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_string()
    };
    let _ = s.write_all(reply.as_bytes()).await;
    let _ = s.shutdown().await;
}

pub(crate) fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// What `/probe` must answer.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Verdict {
    /// Refused before probing, with this status.
    Refused(u16),
    /// Probed (only allowed hops), and the probe succeeded.
    Up,
    /// Probed, and failed with evidence containing this text.
    Down(&'static str),
}

async fn verdict_of(d: &Running, target: &str, module: &str) -> (Verdict, String) {
    let (status, body) = d
        .get(&format!(
            "/probe?debug=true&module={module}&target={}",
            enc(target)
        ))
        .await;
    if status != 200 {
        return (Verdict::Refused(status), body);
    }
    if sample(&body, "probe_success", &[]) == Some(1.0) {
        return (Verdict::Up, body);
    }
    (Verdict::Down(""), body)
}

fn probe_config(t: &Server, t2: &Server) -> String {
    format!(
        r#"
[server]
probe_allow = [
  "http://{t}/ok",
  "http://{t}/redir/**",
  "http://{t}/pub/*",
  "http://{t2}/**",
]

[module.post]
kind = "http"
method = "POST"
body = "the-post-body"

[module.secret]
kind = "http"
headers = {{ X-Api-Key = "${{PROBE_KEY}}", X-Plain = "hello" }}

[[probe]]
name = "p"
kind = "http"
url = "http://{t}/ok"
interval = "1h"
"#,
        t = t.addr,
        t2 = t2.addr,
    )
}

/// The hostile targets: `{T}` is the allowed server, `{S}` and `{S2}` side servers on another
/// port and another loopback address that must never be reached.
fn hostile_cases(f: &dyn Fn(&str) -> String) -> Vec<(&'static str, String, Verdict)> {
    use Verdict::*;
    let redir =
        |code: u16, to: &str| format!("{}/redir/{code}?to={}", f("http://{T}"), enc(&f(to)));
    let blocked = Down("redirect_blocked");
    vec![
        // userinfo, and '@' in the port or path
        (
            "userinfo walks around a port glob",
            "http://{T}@{S}/ok".into(),
            Refused(400),
        ),
        ("user:password", "http://x:y@{T}/ok".into(), Refused(400)),
        (
            "host:port:x as userinfo",
            "http://{T}:1@{S}/ok".into(),
            Refused(400),
        ),
        (
            "userinfo without a scheme",
            "{T}@{S}/ok".into(),
            Refused(400),
        ),
        (
            "side address as userinfo",
            "http://{S}@{T}/ok".into(),
            Refused(400),
        ),
        (
            "empty password",
            "http://127.0.0.1:@{S}/ok".into(),
            Refused(400),
        ),
        (
            "percent-encoded userinfo",
            "http://a%2540b@{S}/ok".into(),
            Refused(400),
        ),
        ("'@' in the path", "http://{T}/ok@{S}".into(), Refused(403)),
        (
            "'@' in a globbed path segment stays a path",
            "http://{T}/pub/@{S}".into(),
            Down("status 404"),
        ),
        (
            "'@' percent-encoded in the port",
            "http://{T}%40{S}/ok".into(),
            Refused(400),
        ),
        (
            "'@' percent-encoded in the host",
            "http://127.0.0.1%40{S}/ok".into(),
            Refused(400),
        ),
        ("empty userinfo is no userinfo", "http://@{T}/ok".into(), Up),
        // fragment, query and backslash tricks
        (
            "fragment before '@'",
            "http://{S}#@{T}/ok".into(),
            Refused(403),
        ),
        (
            "query before '@'",
            "http://{S}?@{T}/ok".into(),
            Refused(403),
        ),
        (
            "backslash before '@'",
            "http://{S}\\@{T}/ok".into(),
            Refused(403),
        ),
        ("backslash as path separator", "http://{T}\\ok".into(), Up),
        (
            "backslashes instead of slashes",
            "http:\\\\{S}\\ok".into(),
            Refused(403),
        ),
        // other schemes
        (
            "https to a non-allowed port",
            "https://{S}/ok".into(),
            Refused(403),
        ),
        ("file scheme", "file:///etc/passwd".into(), Refused(400)),
        ("gopher scheme", "gopher://{S}/".into(), Refused(400)),
        // IPv6 forms
        (
            "IPv4-mapped IPv6",
            "http://[::ffff:127.0.0.1]:{SP}/ok".into(),
            Refused(403),
        ),
        ("IPv6 loopback", "http://[::1]:{SP}/ok".into(), Refused(403)),
        (
            "IPv6 expanded mapped form",
            "http://[0:0:0:0:0:ffff:7f00:1]:{TP}/ok".into(),
            Refused(403),
        ),
        (
            "IPv6 mapped metadata",
            "http://[::ffff:169.254.169.254]/".into(),
            Refused(403),
        ),
        (
            "IPv6 zone id",
            "http://[fe80::1%25lo]:{SP}/".into(),
            Refused(400),
        ),
        ("unclosed IPv6", "http://[::1/".into(), Refused(400)),
        // IPv4 in hex, octal and decimal: normalised before matching
        (
            "hex IPv4 to the allowed server",
            "http://0x7f000001:{TP}/ok".into(),
            Up,
        ),
        (
            "decimal IPv4 to the allowed server",
            "http://2130706433:{TP}/ok".into(),
            Up,
        ),
        (
            "octal IPv4 to the allowed server",
            "http://0177.0.0.1:{TP}/ok".into(),
            Up,
        ),
        (
            "short hex IPv4 to the side port",
            "http://0x7f.1:{SP}/ok".into(),
            Refused(403),
        ),
        (
            "short IPv4 to the side port",
            "http://127.1:{SP}/ok".into(),
            Refused(403),
        ),
        (
            "hex metadata address",
            "http://0xa9fea9fe/latest".into(),
            Refused(403),
        ),
        (
            "decimal metadata address",
            "http://2852039166/latest".into(),
            Refused(403),
        ),
        (
            "other loopback address",
            "http://{S2}/ok".into(),
            Refused(403),
        ),
        // IDN and case
        (
            "upper-case scheme and host",
            "HTTP://127.0.0.1:{TP}/ok".into(),
            Up,
        ),
        (
            "paths are case-sensitive",
            "http://{T}/OK".into(),
            Refused(403),
        ),
        (
            "name instead of the allowed address",
            "http://LOCALHOST:{TP}/ok".into(),
            Refused(403),
        ),
        (
            "IDN that maps to localhost",
            "http://ⓛⓞⓒⓐⓛⓗⓞⓢⓣ:{SP}/ok".into(),
            Refused(403),
        ),
        (
            "full-width dots to the side port",
            "http://127。0。0。1:{SP}/ok".into(),
            Refused(403),
        ),
        (
            "full-width dots to the allowed server",
            "http://127。0。0。1:{TP}/ok".into(),
            Up,
        ),
        // trailing dots
        (
            "trailing dot on the address, side port",
            "http://127.0.0.1.:{SP}/ok".into(),
            Refused(403),
        ),
        (
            "trailing dot on the address, allowed port",
            "http://127.0.0.1.:{TP}/ok".into(),
            Up,
        ),
        (
            "trailing dot on a name",
            "http://localhost.:{SP}/".into(),
            Refused(403),
        ),
        // '..' in paths: normalised before matching, so it cannot climb out of a rule
        (
            "dot-dot back into an allowed path",
            "http://{T}/pub/../ok".into(),
            Up,
        ),
        (
            "dot-dot out of an allowed path",
            "http://{T}/ok/../../admin".into(),
            Refused(403),
        ),
        (
            "encoded dot-dot",
            "http://{T}/pub/%2e%2e/admin".into(),
            Refused(403),
        ),
        (
            "encoded slash stays in its segment",
            "http://{T}/pub/..%2fadmin".into(),
            Down("status 404"),
        ),
        // redirects: every hop must be allowed, or nothing is sent to it
        (
            "301 to a non-allowed port",
            redir(301, "http://{S}/ok"),
            blocked,
        ),
        (
            "302 to a non-allowed host",
            redir(302, "http://{S2}/ok"),
            blocked,
        ),
        (
            "307 to a non-allowed scheme",
            redir(307, "https://{T}/ok"),
            blocked,
        ),
        (
            "308 to a non-allowed path (relative)",
            redir(308, "/admin"),
            blocked,
        ),
        (
            "307 scheme-relative to the side port",
            redir(307, "//{S}/ok"),
            blocked,
        ),
        (
            "302 to metadata",
            redir(302, "http://169.254.169.254/latest/meta-data/"),
            blocked,
        ),
        (
            "301 to IPv6 loopback",
            redir(301, "http://[::1]:{SP}/"),
            blocked,
        ),
        (
            "302 to hex IPv4 on the side port",
            redir(302, "http://0x7f000001:{SP}/"),
            blocked,
        ),
        (
            "307 to a hop with userinfo",
            redir(307, "http://u:p@{T}/ok"),
            blocked,
        ),
        (
            "302 with backslashes",
            redir(302, "http:\\\\{S}\\ok"),
            blocked,
        ),
        (
            "303 to a non-allowed port",
            redir(303, "http://{S}/ok"),
            blocked,
        ),
        (
            "chain: allowed hop, then a non-allowed one",
            redir(302, &redir(307, "http://{S}/ok")),
            blocked,
        ),
        ("302 to an allowed target", redir(302, "http://{T}/ok"), Up),
        ("308 relative to an allowed path", redir(308, "/ok"), Up),
    ]
}

fn fill(text: &str, t: &Server, s: &Server, s2: &Server) -> String {
    text.replace("{T}", &t.addr.to_string())
        .replace("{S2}", &s2.addr.to_string())
        .replace("{S}", &s.addr.to_string())
        .replace("{TP}", &t.addr.port().to_string())
        .replace("{SP}", &s.addr.port().to_string())
}

#[tokio::test]
async fn hostile_targets_get_their_verdict_and_reach_nothing() {
    let t = Server::start("127.0.0.1").await;
    let t2 = Server::start("127.0.0.1").await;
    let s = Server::start("127.0.0.1").await;
    let s2 = Server::start("127.0.0.2").await;
    let d = start_daemon_in(
        write_config(&probe_config(&t, &t2)),
        &[("PROBE_KEY", "k-123456")],
    )
    .await;
    let cases = hostile_cases(&|x| fill(x, &t, &s, &s2));
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let mut wrong = Vec::new();
    for module in ["http_2xx", "post"] {
        for (what, target, want) in &cases {
            let target = fill(target, &t, &s, &s2);
            let (got, body) = verdict_of(&d, &target, module).await;
            let ok = match (want, got) {
                (Verdict::Down(needle), Verdict::Down(_)) => body.contains(needle),
                (w, g) => *w == g,
            };
            if !ok {
                let evidence = body
                    .lines()
                    .find(|l| l.contains("msg=\"Probe"))
                    .unwrap_or(&body);
                wrong.push(format!(
                    "{module} {what}: {target}: want {want:?}, got {got:?}: {evidence}"
                ));
            }
            if s.accepted() + s2.accepted() > 0 {
                wrong.push(format!(
                    "{module} {what}: {target}: a side server was reached"
                ));
                break;
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n---\n"));
    assert_eq!(s.accepted(), 0);
    assert_eq!(s2.accepted(), 0);
    assert!(t.accepted() > 0, "the allowed server was probed");
    // The POST body never went anywhere but the allowed server.
    let (_, metrics) = d.get("/metrics").await;
    assert!(
        sample(
            &metrics,
            "vantage_probe_requests_rejected_total",
            &[("reason", "not_allowed")]
        )
        .unwrap()
            > 0.0,
        "{metrics}"
    );
    d.stop().await;
}

#[tokio::test]
async fn secret_headers_stay_with_their_origin() {
    let t = Server::start("127.0.0.1").await;
    let t2 = Server::start("127.0.0.1").await;
    let d = start_daemon_in(
        write_config(&probe_config(&t, &t2)),
        &[("PROBE_KEY", "k-123456")],
    )
    .await;
    let target = format!(
        "http://{}/redir/307?to={}",
        t.addr,
        enc(&format!("http://{}/ok", t2.addr))
    );
    let (v, body) = verdict_of(&d, &target, "secret").await;
    assert_eq!(v, Verdict::Up, "{body}");
    let first = t.heads.lock().unwrap().clone();
    let second = t2.heads.lock().unwrap().clone();
    assert_eq!(second.len(), 1, "{second:?}");
    let first = first.join("").to_ascii_lowercase();
    let second = second.join("").to_ascii_lowercase();
    assert!(first.contains("x-api-key: k-123456"), "{first}");
    assert!(first.contains("x-plain: hello"), "{first}");
    assert!(!second.contains("x-api-key"), "{second}");
    assert!(!second.contains("k-123456"), "{second}");
    assert!(
        second.contains("x-plain: hello"),
        "non-secret headers are kept: {second}"
    );
    assert!(
        !body.contains("k-123456"),
        "debug output leaks the secret: {body}"
    );
    d.stop().await;
}

#[tokio::test]
async fn debug_answers_like_blackbox_exporter() {
    let t = Server::start("127.0.0.1").await;
    let t2 = Server::start("127.0.0.1").await;
    let d = start_daemon_in(
        write_config(&probe_config(&t, &t2)),
        &[("PROBE_KEY", "k-123456")],
    )
    .await;
    let resp = crate::support::get(d.url(&format!(
        "/probe?debug=true&target={}",
        enc(&format!("http://{}/ok", t.addr))
    )))
    .await
    .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/plain"), "{ct}");
    let body = resp.text().await.unwrap();
    assert!(body.starts_with("Logs for the probe:\n"), "{body}");
    assert!(
        body.contains("msg=\"Beginning probe\" probe=http"),
        "{body}"
    );
    assert!(body.contains("msg=\"Probe succeeded\""), "{body}");
    assert!(
        body.contains("\n\n\n\nMetrics that would have been returned:\n"),
        "{body}"
    );
    assert_eq!(sample(&body, "probe_success", &[]), Some(1.0), "{body}");
    assert!(
        body.contains("\n\n\nModule configuration:\nprober: http\n"),
        "{body}"
    );
    let ts = body.lines().nth(1).unwrap();
    assert!(
        ts.starts_with("ts=20") && ts.contains(" level=info "),
        "{ts}"
    );
    // Without debug: the metrics alone.
    let (_, plain) = d
        .get(&format!(
            "/probe?target={}",
            enc(&format!("http://{}/ok", t.addr))
        ))
        .await;
    assert!(plain.starts_with("# HELP"), "{plain}");
    d.stop().await;
}

#[tokio::test(start_paused = true)]
async fn in_flight_limit_answers_503_and_counts() {
    let t = Server::start("127.0.0.1").await;
    let cfg = format!(
        "[server]\nprobe_allow = [\"http://{}/**\"]\nprobe_max_in_flight = 2\n[[probe]]\nname = \"p\"\nkind = \"http\"\nurl = \"http://{}/ok\"\ninterval = \"1h\"\n",
        t.addr, t.addr
    );
    let d = start_daemon(&cfg).await;
    let slow = format!("/probe?target={}", enc(&format!("http://{}/slow", t.addr)));
    let a = tokio::spawn(crate::support::get(d.url(&slow)));
    let b = tokio::spawn(crate::support::get(d.url(&slow)));
    // Both slow probes have reached the target (the scheduled probe adds at most one).
    for _ in 0..100 {
        let slow_heads = t
            .heads
            .lock()
            .unwrap()
            .iter()
            .filter(|h| h.contains("/slow"))
            .count();
        if slow_heads >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, body) = d.get(&slow).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("probe_max_in_flight"), "{body}");
    assert_eq!(a.await.unwrap().unwrap().status().as_u16(), 200);
    assert_eq!(b.await.unwrap().unwrap().status().as_u16(), 200);
    let (status, _) = d
        .get(&format!(
            "/probe?target={}",
            enc(&format!("http://{}/ok", t.addr))
        ))
        .await;
    assert_eq!(status, 200, "a slot is free again");
    let (_, metrics) = d.get("/metrics").await;
    assert_eq!(
        sample(
            &metrics,
            "vantage_probe_requests_rejected_total",
            &[("reason", "max_in_flight")]
        ),
        Some(1.0),
        "{metrics}"
    );
    d.stop().await;
}
