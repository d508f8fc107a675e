//! Loopback fixtures: a misbehaving HTTP server, a garbage speaker, TLS servers, and a PKI made
//! at run time (a committed certificate would be a time bomb for a certificate prober).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A server on 127.0.0.1; stops when dropped.
pub struct Target {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Target {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn https_url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve<F, Fut>(handler: F) -> Target
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handler = Arc::new(handler);
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            // NODELAY: replies written in several pieces must not wait for a delayed ACK, a kernel
            // timer that paused tokio time cannot see (see `kinds::serve`).
            let _ = stream.set_nodelay(true);
            let h = handler.clone();
            conns.spawn(async move { h(stream).await });
            while conns.try_join_next().is_some() {}
        }
    });
    Target { addr, task }
}

/// The HTTP target. Behaviour by path: see `handle_http`.
pub async fn http_target() -> Target {
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    serve(move |s| {
        let counter = counter.clone();
        async move { handle_http(s, &counter).await }
    })
    .await
}

/// Same paths over TLS with the given chain.
pub async fn https_target(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Target {
    serve_https(tls_acceptor(chain, key)).await
}

/// The HTTP target's paths behind `acceptor`.
async fn serve_https(acceptor: tokio_rustls::TlsAcceptor) -> Target {
    serve(move |s| {
        let acceptor = acceptor.clone();
        async move {
            if let Ok(Ok(tls)) =
                tokio::time::timeout(Duration::from_secs(5), acceptor.accept(s)).await
            {
                handle_http(tls, &Default::default()).await;
            }
        }
    })
    .await
}

/// HTTPS that requires a client certificate issued by `client_ca`.
pub async fn mtls_target(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_ca: CertificateDer<'static>,
) -> Target {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(client_ca).unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .unwrap();
    serve_https(tokio_rustls::TlsAcceptor::from(Arc::new(config))).await
}

/// Completes a TLS handshake and then closes.
pub async fn tls_target(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Target {
    let acceptor = tls_acceptor(chain, key);
    serve(move |s| {
        let acceptor = acceptor.clone();
        async move {
            if let Ok(Ok(mut tls)) =
                tokio::time::timeout(Duration::from_secs(5), acceptor.accept(s)).await
            {
                let mut buf = [0u8; 64];
                let _ = tokio::time::timeout(Duration::from_secs(2), tls.read(&mut buf)).await;
            }
        }
    })
    .await
}

fn tls_acceptor(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> tokio_rustls::TlsAcceptor {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// Writes bytes that are not HTTP (nor TLS), then closes.
pub async fn garbage_target() -> Target {
    serve(|mut s| async move {
        let _ = s
            .write_all(b"\x00\xff\xfeSSH-2.0-garbage\r\n\x16\x03not http at all\r\n\r\n")
            .await;
        let _ = s.shutdown().await;
    })
    .await
}

/// Accepts and closes at once, mid-handshake for TLS clients.
pub async fn closing_target() -> Target {
    serve(|mut s| async move {
        let mut buf = [0u8; 16];
        let _ = s.read(&mut buf).await;
        drop(s);
    })
    .await
}

/// A port with nothing listening (bound, then released).
pub async fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    addr
}

async fn read_head<S: AsyncRead + Unpin>(s: &mut S) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        if buf.len() > 64 * 1024 {
            return None;
        }
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(String::from_utf8_lossy(&buf).into_owned())
}

fn response(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

async fn handle_http<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    flaky: &std::sync::atomic::AtomicU64,
) {
    let Some(head) = read_head(&mut s).await else {
        return;
    };
    let mut path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    // Absolute-form (as sent to a proxy): answer by the path part.
    if let Some(rest) = path.strip_prefix("http://") {
        path = rest
            .find('/')
            .map_or("/".to_string(), |i| rest[i..].to_string());
    }
    let route = path.split('?').next().unwrap_or_default();
    let segments: Vec<&str> = route.trim_start_matches('/').split('/').collect();
    let json = [("content-type", "application/json")];
    let out = match segments.as_slice() {
        ["ok"] => response(
            200,
            &[("content-type", "text/plain")],
            b"all is healthy here",
        ),
        ["json"] => response(
            200,
            &json,
            br#"{"status":"healthy","n":3,"items":[{"s":"a"},{"s":"b"}]}"#,
        ),
        ["status", code] => response(code.parse().unwrap_or(500), &[], b"status page"),
        ["redirect", n] => match n.parse::<u32>().unwrap_or(0) {
            0 => response(200, &[], b"arrived"),
            n => response(302, &[("location", &format!("/redirect/{}", n - 1))], b""),
        },
        ["loop"] => response(302, &[("location", "/loop")], b""),
        ["big"] => response(200, &[], &vec![b'x'; 2 * 1024 * 1024]),
        ["big-chunked"] => {
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                .await;
            let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, "y".repeat(64 * 1024));
            for _ in 0..64 {
                if s.write_all(chunk.as_bytes()).await.is_err() {
                    return;
                }
            }
            let _ = s.write_all(b"0\r\n\r\n").await;
            return;
        }
        ["hang"] => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return;
        }
        ["drip"] => {
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n")
                .await;
            for _ in 0..1000 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if s.write_all(b"x").await.is_err() {
                    return;
                }
            }
            return;
        }
        ["endless-headers"] => {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\n").await;
            let line = format!("x-filler: {}\r\n", "a".repeat(1000));
            for _ in 0..100_000 {
                if s.write_all(line.as_bytes()).await.is_err() {
                    return;
                }
            }
            return;
        }
        ["delay", ms] => {
            tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(0))).await;
            response(200, &[], b"late but fine")
        }
        ["health", state] => {
            let body = match *state {
                "degraded" => {
                    r#"{"status":"degraded","checks":[{"name":"db","status":"pass"},{"name":"cache","status":"warn","message":"slow"}]}"#
                }
                "unhealthy" => r#"{"status":"unhealthy","checks":[{"name":"db","status":"fail"}]}"#,
                _ => r#"{"status":"healthy","checks":[{"name":"db","status":"pass"}]}"#,
            };
            response(200, &json, body.as_bytes())
        }
        ["echo"] => response(200, &[], head.as_bytes()),
        // Exactly every n-th request to any /flaky/n path fails with 503.
        ["flaky", n] => {
            let i = flaky.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            if i % n.parse::<u64>().unwrap_or(5).max(1) == 0 {
                response(503, &[], b"flaky failure")
            } else {
                response(200, &[], b"flaky success")
            }
        }
        _ => response(404, &[], b"not found"),
    };
    let _ = s.write_all(&out).await;
    let _ = s.shutdown().await;
}

/// A certificate authority made for one test.
pub struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
    pub dir: tempfile::TempDir,
}

/// A leaf certificate's chain (leaf first) and key.
pub struct Leaf {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// Leaf notAfter, Unix seconds.
    pub not_after: i64,
}

impl Leaf {
    pub fn key(&self) -> PrivateKeyDer<'static> {
        self.key.clone_key()
    }
}

fn pem_block(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn now() -> time::OffsetDateTime {
    // Whole seconds: X.509 times have no fraction, and tests compare to the second.
    let t = time::OffsetDateTime::now_utc();
    t.replace_nanosecond(0).unwrap()
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, cn);
    p.not_before = now() - time::Duration::days(1);
    p.not_after = now() + time::Duration::days(3650);
    p
}

impl Pki {
    pub fn new() -> Pki {
        let ca = CertifiedIssuer::self_signed(
            ca_params("vantage test CA"),
            KeyPair::generate().unwrap(),
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        Pki { ca, dir }
    }

    /// The CA certificate, DER.
    pub fn ca_der(&self) -> CertificateDer<'static> {
        self.ca.der().clone()
    }

    /// Write a leaf's chain and key as PEM files into the PKI directory.
    pub fn write_pem(&self, leaf: &Leaf, stem: &str) {
        let mut pem = String::new();
        for der in &leaf.chain {
            pem += &pem_block("CERTIFICATE", der.as_ref());
        }
        std::fs::write(self.dir.path().join(format!("{stem}.pem")), pem).unwrap();
        let PrivateKeyDer::Pkcs8(k) = &leaf.key else {
            panic!("pkcs8 keys only")
        };
        std::fs::write(
            self.dir.path().join(format!("{stem}.key")),
            pem_block("PRIVATE KEY", k.secret_pkcs8_der()),
        )
        .unwrap();
    }

    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    fn params(
        names: &[&str],
        not_before_days: i64,
        not_after_days: i64,
    ) -> (CertificateParams, i64) {
        let mut p = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
        p.distinguished_name
            .push(DnType::CommonName, names.first().copied().unwrap_or("leaf"));
        p.not_before = now() + time::Duration::days(not_before_days);
        p.not_after = now() + time::Duration::days(not_after_days);
        let t = p.not_after.unix_timestamp();
        (p, t)
    }

    /// A leaf for `names`, valid from `not_before_days` to `not_after_days` relative to now.
    pub fn leaf(&self, names: &[&str], not_before_days: i64, not_after_days: i64) -> Leaf {
        let (p, not_after) = Self::params(names, not_before_days, not_after_days);
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.ca).unwrap();
        Leaf {
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            not_after,
        }
    }

    /// A leaf signed by an intermediate (which expires in `intermediate_days`) signed by the CA.
    pub fn leaf_via_intermediate(
        &self,
        names: &[&str],
        leaf_days: i64,
        intermediate_days: i64,
    ) -> (Leaf, i64) {
        let mut ip = ca_params("vantage test intermediate");
        ip.not_after = now() + time::Duration::days(intermediate_days);
        let inter_not_after = ip.not_after.unix_timestamp();
        let inter = CertifiedIssuer::signed_by(ip, KeyPair::generate().unwrap(), &self.ca).unwrap();
        let (p, not_after) = Self::params(names, -1, leaf_days);
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &inter).unwrap();
        (
            Leaf {
                chain: vec![cert.der().clone(), inter.der().clone()],
                key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
                not_after,
            },
            inter_not_after,
        )
    }

    /// A self-signed leaf (no CA).
    pub fn self_signed(names: &[&str], days: i64) -> Leaf {
        let (p, not_after) = Self::params(names, -1, days);
        let key = KeyPair::generate().unwrap();
        let cert = p.self_signed(&key).unwrap();
        Leaf {
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            not_after,
        }
    }
}

/// A target whose health the test switches: 200 while `up`, 503 otherwise.
pub async fn switch_target() -> (Target, Arc<std::sync::atomic::AtomicBool>) {
    let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flag = up.clone();
    let t = serve(move |mut s| {
        let up = flag.clone();
        async move {
            if read_head(&mut s).await.is_none() {
                return;
            }
            let out = if up.load(std::sync::atomic::Ordering::SeqCst) {
                response(200, &[], b"up")
            } else {
                response(503, &[], b"down")
            };
            let _ = s.write_all(&out).await;
            let _ = s.shutdown().await;
        }
    })
    .await;
    (t, up)
}

/// An HTTP receiver that records every request's path and JSON body.
pub struct Receiver {
    pub addr: SocketAddr,
    pub seen: Arc<std::sync::Mutex<Vec<(String, serde_json::Value)>>>,
    _task: Target,
}

impl Receiver {
    pub async fn start() -> Receiver {
        Self::on(TcpListener::bind("127.0.0.1:0").await.unwrap()).await
    }

    /// Listen on a given (so far closed) port.
    pub async fn on_port(port: u16) -> Receiver {
        Self::on(TcpListener::bind(("127.0.0.1", port)).await.unwrap()).await
    }

    async fn on(listener: TcpListener) -> Receiver {
        let addr = listener.local_addr().unwrap();
        let seen: Arc<std::sync::Mutex<Vec<(String, serde_json::Value)>>> = Default::default();
        let record = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    continue;
                };
                let _ = s.set_nodelay(true);
                let record = record.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let (head_end, len) = loop {
                        let Ok(Ok(n)) =
                            tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk)).await
                        else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
                            let len = head
                                .lines()
                                .find_map(|l| {
                                    l.strip_prefix("content-length:")
                                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                                })
                                .unwrap_or(0);
                            break (i + 4, len);
                        }
                    };
                    while buf.len() < head_end + len {
                        let Ok(Ok(n)) =
                            tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk)).await
                        else {
                            return;
                        };
                        if n == 0 {
                            break;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                    let body =
                        serde_json::from_slice(&buf[head_end..]).unwrap_or(serde_json::Value::Null);
                    record.lock().unwrap().push((path, body));
                    let _ = s
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
                        )
                        .await;
                });
            }
        });
        Receiver {
            addr,
            seen,
            _task: Target { addr, task },
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn bodies(&self, path: &str) -> Vec<serde_json::Value> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, b)| b.clone())
            .collect()
    }
}

/// A fake scraping API: POST /v1/scrape (bearer token, sets a session cookie) → job id;
/// GET /v1/jobs/{id} → "running" twice, then "completed" (job "stuck" never completes; the
/// session cookie is required); GET /v1/jobs/{id}/result → HTML; GET /metrics → queue_size.
pub struct ScrapeApi {
    pub target: Target,
    pub queue: Arc<std::sync::atomic::AtomicU64>,
}

pub async fn scrape_api(token: &str) -> ScrapeApi {
    let queue = Arc::new(std::sync::atomic::AtomicU64::new(123));
    let polls: Arc<std::sync::Mutex<std::collections::HashMap<String, u32>>> = Default::default();
    let ids = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (q, token) = (queue.clone(), token.to_string());
    let target = serve(move |mut s| {
        let (q, token, polls, ids) = (q.clone(), token.clone(), polls.clone(), ids.clone());
        async move {
            let Some(head) = read_head(&mut s).await else { return };
            let lower = head.to_lowercase();
            let mut words = head.split_whitespace();
            let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or("/").to_string());
            let json = [("content-type", "application/json")];
            let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
            let has_session = lower.contains("cookie: session=s3ss10n");
            let out = match (method, segments.as_slice()) {
                ("POST", ["v1", "scrape"]) => {
                    if lower.contains(&format!("authorization: bearer {}", token.to_lowercase())) {
                        let id = ids.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                        let body = format!(r#"{{"id":"job-{id}","state":"queued"}}"#);
                        response(202, &[("content-type", "application/json"), ("set-cookie", "session=s3ss10n; Path=/; HttpOnly")], body.as_bytes())
                    } else {
                        response(401, &json, br#"{"error":"bad token"}"#)
                    }
                }
                ("GET", ["v1", "jobs", id]) if has_session => {
                    let n = {
                        let mut p = polls.lock().unwrap();
                        let n = p.entry(id.to_string()).or_insert(0);
                        *n += 1;
                        *n
                    };
                    let status = if *id == "stuck" || n <= 2 { "running" } else { "completed" };
                    response(200, &json, format!(r#"{{"id":"{id}","status":"{status}"}}"#).as_bytes())
                }
                ("GET", ["v1", "jobs", _]) => response(403, &json, br#"{"error":"no session"}"#),
                ("GET", ["v1", "jobs", _, "result"]) => response(
                    200,
                    &[("content-type", "text/html")],
                    b"<html><head><title>r</title></head><body><h1 class=\"title\">Example   Domain</h1><ul><li class=\"item\">a</li><li class=\"item\">b</li><li class=\"item\">c</li></ul></body></html>",
                ),
                ("GET", ["metrics"]) => {
                    let v = q.load(std::sync::atomic::Ordering::SeqCst);
                    response(200, &[], format!("# TYPE queue_size gauge\nqueue_size{{queue_name=\"scrape:http\"}} {v}\nqueue_size{{queue_name=\"scrape:browser\"}} 5\n").as_bytes())
                }
                ("GET", ["garbage-metrics"]) => response(200, &[], b"queue_size{queue_name=\"scrape:http\" 12\n\x00\xff{{{"),
                ("GET", ["invalid-html"]) => response(200, &[], b"<<<div><h1 class=title>Broken<li class=item>x</p></div></ul><<<"),
                ("GET", ["huge"]) => response(200, &[], &vec![b'z'; 3 * 1024 * 1024]),
                _ => response(404, &[], b"not found"),
            };
            let _ = s.write_all(&out).await;
            let _ = s.shutdown().await;
        }
    })
    .await;
    ScrapeApi { target, queue }
}
