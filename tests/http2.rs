//! HTTP/2 over TLS (ALPN `h2`): an h2-only target built at run time (hyper's server, HTTP/2
//! only, ALPN `h2` only, an rcgen certificate), and every behaviour of the HTTP/1.1 path again on
//! HTTP/2: redirects, `max_body` on the decoded body, head limits, header assertions, secret
//! redaction, cross-origin header dropping; and `http_versions`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use vantage_probes::Reason;

use crate::fixtures::{http_target, https_target, Pki};
use crate::support::{load, load_in, outcome, run_all, write_config};

/// An HTTP/2-only TLS server on 127.0.0.1; stops when dropped.
pub struct H2Target {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl H2Target {
    pub fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }
}

impl Drop for H2Target {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

type Reply = hyper::Response<Full<Bytes>>;

fn reply(status: u16, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Reply {
    let mut r = hyper::Response::builder().status(status);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.body(Full::new(body.into())).unwrap()
}

/// Behaviour by path:
/// `/ok`; `/echo` (the request's headers, one per line); `/redirect/N` (N hops to `/redirect/0`);
/// `/to?URL` (302 to the percent-encoded URL); `/big` (2 MiB); `/bomb` (4 MiB of zeros
/// gzipped); `/huge-header` (a 100 KiB header); `/last-modified`; `/gzip`.
async fn handle(req: hyper::Request<Incoming>) -> Result<Reply, Infallible> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or_default().to_string();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let text = [("content-type", "text/plain")];
    Ok(match segments.as_slice() {
        ["ok"] => reply(200, &text, "all is healthy here"),
        ["echo"] => {
            let mut out = format!("{} {} {:?}\n", req.method(), req.uri(), req.version());
            for (k, v) in req.headers() {
                out.push_str(&format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())));
            }
            reply(200, &text, out)
        }
        ["redirect", n] => match n.parse::<u32>().unwrap_or(0) {
            0 => reply(200, &[], "arrived"),
            n => reply(302, &[("location", &format!("/redirect/{}", n - 1))], ""),
        },
        ["to"] => {
            let to: String = url::form_urlencoded::parse(format!("u={query}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            reply(302, &[("location", &to)], "")
        }
        ["big"] => reply(200, &[], vec![b'x'; 2 * 1024 * 1024]),
        ["bomb"] => reply(
            200,
            &[("content-encoding", "gzip")],
            gzip(&vec![0u8; 4 * 1024 * 1024]),
        ),
        ["gzip"] => reply(
            200,
            &[("content-encoding", "gzip")],
            gzip(&b"compressible ".repeat(100)),
        ),
        ["huge-header"] => reply(200, &[("x-filler", &"a".repeat(100 * 1024))], "ok"),
        ["last-modified"] => reply(
            200,
            &[("last-modified", "Wed, 21 Oct 2015 07:28:00 GMT")],
            "hello",
        ),
        _ => reply(404, &[], "not found"),
    })
}

/// HTTP/2 only: ALPN offers `h2` alone, and the connection speaks nothing else.
pub async fn h2_target(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> H2Target {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            conns.spawn(async move {
                let Ok(Ok(tls)) =
                    tokio::time::timeout(Duration::from_secs(5), acceptor.accept(stream)).await
                else {
                    return;
                };
                let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), hyper::service::service_fn(handle));
                let _ = tokio::time::timeout(Duration::from_secs(30), conn).await;
            });
            while conns.try_join_next().is_some() {}
        }
    });
    H2Target { addr, task }
}

fn probe(name: &str, url: &str, extra: &str) -> String {
    format!("[[probe]]\nname = \"{name}\"\nkind = \"http\"\nurl = \"{url}\"\ntimeout = \"2s\"\ninterval = \"1m\"\n{extra}\n")
}

fn tls(pki: &Pki) -> String {
    format!(
        "tls = {{ ca = \"{}\", server_name = \"localhost\" }}\n",
        pki.ca_path().display()
    )
}

#[tokio::test]
async fn an_h2_only_target_is_probed_over_http2() {
    let pki = Pki::new();
    let leaf = pki.leaf(&["localhost"], -1, 90);
    let t = h2_target(leaf.chain.clone(), leaf.key()).await;
    let tls = tls(&pki);
    let mut cfg = String::new();
    cfg += &probe(
        "ok",
        &t.url("/ok"),
        &format!("{tls}[probe.expect]\nbody_regex = [\"healthy\"]\nheaders = {{ Content-Type = \"^text/plain\" }}"),
    );
    cfg += &probe("redirects", &t.url("/redirect/3"), &tls);
    cfg += &probe(
        "limit",
        &t.url("/redirect/3"),
        &format!("{tls}max_redirects = 2"),
    );
    cfg += &probe("big", &t.url("/big"), &format!("{tls}max_body = \"1KiB\""));
    cfg += &probe(
        "bomb",
        &t.url("/bomb"),
        &format!("{tls}max_body = \"64KiB\""),
    );
    cfg += &probe(
        "gzip",
        &t.url("/gzip"),
        &format!("{tls}[probe.expect]\nbody_regex = [\"^compressible compressible\"]"),
    );
    cfg += &probe("huge-header", &t.url("/huge-header"), &tls);
    cfg += &probe(
        "header-fails",
        &t.url("/ok"),
        &format!("{tls}[probe.expect]\nheaders_not = {{ Content-Type = \"text\" }}"),
    );
    cfg += &probe(
        "echo",
        &t.url("/echo"),
        &format!("{tls}method = \"post\"\nbody = \"x\"\nheaders = {{ X-Test = \"yes\", Connection = \"keep-alive\" }}\n[probe.expect]\nbody_regex = [\"^POST https://127.0.0.1:[0-9]+/echo HTTP/2.0\\n(.|\\n)*x-test: yes\"]"),
    );
    let all = run_all(load(&cfg)).await;
    let o = outcome(&all, "ok");
    assert!(o.success(), "{}", o.evidence);
    assert_eq!(
        o.facts.http_facts().and_then(|h| h.version.as_deref()),
        Some("2")
    );
    assert_eq!(o.facts.status(), Some(200));
    assert!(o.phases.tls > Duration::ZERO);
    assert!(o.phases.processing > Duration::ZERO);
    let o = outcome(&all, "redirects");
    assert!(o.success(), "{}", o.evidence);
    assert_eq!(o.facts.http_facts().map_or(0, |h| h.redirects), 3);
    assert_eq!(
        o.facts.http_facts().and_then(|h| h.version.as_deref()),
        Some("2")
    );
    let o = outcome(&all, "limit");
    assert_eq!(o.reason, Some(Reason::RedirectLimit), "{}", o.evidence);
    let o = outcome(&all, "big");
    assert_eq!(o.reason, Some(Reason::BodyTooLarge), "{}", o.evidence);
    let o = outcome(&all, "bomb");
    assert_eq!(o.reason, Some(Reason::BodyTooLarge), "{}", o.evidence);
    assert!(o.evidence.contains("decoded"), "{}", o.evidence);
    let o = outcome(&all, "gzip");
    assert!(o.success(), "{}", o.evidence);
    let o = outcome(&all, "huge-header");
    assert!(!o.success());
    assert_eq!(o.reason, Some(Reason::Protocol), "{}", o.evidence);
    let o = outcome(&all, "header-fails");
    assert_eq!(o.reason, Some(Reason::AssertionHeader), "{}", o.evidence);
    let o = outcome(&all, "echo");
    assert!(o.success(), "{}", o.evidence);
}

#[tokio::test]
async fn http2_hops_drop_credentials_across_origins_and_redact_secrets() {
    let pki = Pki::new();
    let leaf = pki.leaf(&["localhost"], -1, 90);
    let t = h2_target(leaf.chain.clone(), leaf.key()).await;
    let plain = http_target().await;
    let tls = tls(&pki);
    let cross = format!(
        "/to?{}",
        url::form_urlencoded::byte_serialize(plain.url("/echo").as_bytes()).collect::<String>()
    );
    let mut cfg = String::new();
    cfg += &probe(
        "cross",
        &t.url(&cross),
        &format!("{tls}headers = {{ Authorization = \"Bearer ${{TOKEN}}\", X-Key = \"${{TOKEN}}\" }}\n[probe.expect]\nbody_not_regex = [\"(?i)(authorization|x-key|s3cr3t)\"]"),
    );
    cfg += &probe(
        "echoed",
        &t.url("/echo"),
        &format!("{tls}headers = {{ X-Key = \"${{TOKEN}}\" }}\n[probe.expect]\nbody_regex = [\"^nothing\"]"),
    );
    let c = write_config(&cfg);
    let config = load_in(&c.path, &[("TOKEN", "s3cr3t-t0ken-value")]).unwrap();
    let all = run_all(config).await;
    let o = outcome(&all, "cross");
    assert!(o.success(), "{}", o.evidence);
    assert_eq!(o.facts.http_facts().map_or(0, |h| h.redirects), 1);
    // The last hop was plain HTTP/1.1.
    assert_eq!(
        o.facts.http_facts().and_then(|h| h.version.as_deref()),
        Some("1.1")
    );
    let o = outcome(&all, "echoed");
    assert_eq!(o.reason, Some(Reason::AssertionBody));
    assert!(!o.evidence.contains("s3cr3t"), "{}", o.evidence);
    assert!(o.evidence.contains("***"), "{}", o.evidence);
}

#[tokio::test]
async fn http_versions_decide_what_is_spoken() {
    let pki = Pki::new();
    let leaf = pki.leaf(&["localhost"], -1, 90);
    let h2 = h2_target(leaf.chain.clone(), leaf.key()).await;
    let h1 = https_target(leaf.chain.clone(), leaf.key()).await;
    let plain = http_target().await;
    let tls = tls(&pki);
    let mut cfg = String::new();
    cfg += &probe(
        "h2-on-h2",
        &h2.url("/ok"),
        &format!("{tls}http_versions = [\"2\"]"),
    );
    cfg += &probe(
        "h2-on-h1",
        &h1.https_url("/ok"),
        &format!("{tls}http_versions = [\"2\"]"),
    );
    cfg += &probe("h2-on-plain", &plain.url("/ok"), "http_versions = [\"2\"]");
    cfg += &probe(
        "h1-on-h1",
        &h1.https_url("/ok"),
        &format!("{tls}http_versions = [\"1.1\"]"),
    );
    cfg += &probe(
        "h1-on-h2",
        &h2.url("/ok"),
        &format!("{tls}http_versions = [\"1.1\"]"),
    );
    cfg += &probe("both-on-h1", &h1.https_url("/ok"), &tls);
    let all = run_all(load(&cfg)).await;
    let o = outcome(&all, "h2-on-h2");
    assert!(o.success(), "{}", o.evidence);
    assert_eq!(
        o.facts.http_facts().and_then(|h| h.version.as_deref()),
        Some("2")
    );
    let o = outcome(&all, "h2-on-h1");
    assert!(!o.success());
    assert_eq!(o.reason, Some(Reason::Protocol), "{}", o.evidence);
    assert!(
        o.evidence.contains("did not choose HTTP/2"),
        "{}",
        o.evidence
    );
    // The TLS facts were still read.
    assert!(o.facts.tls().is_some());
    let o = outcome(&all, "h2-on-plain");
    assert_eq!(o.reason, Some(Reason::Protocol), "{}", o.evidence);
    assert!(o.evidence.contains("no h2c"), "{}", o.evidence);
    let o = outcome(&all, "h1-on-h1");
    assert!(o.success(), "{}", o.evidence);
    assert_eq!(
        o.facts.http_facts().and_then(|h| h.version.as_deref()),
        Some("1.1")
    );
    // An h2-only server refuses a client that offers only http/1.1: a TLS failure, not a hang.
    let o = outcome(&all, "h1-on-h2");
    assert!(!o.success());
    assert_eq!(o.reason, Some(Reason::TlsHandshake), "{}", o.evidence);
    let o = outcome(&all, "both-on-h1");
    assert!(o.success(), "{}", o.evidence);
    assert_eq!(
        o.facts.http_facts().and_then(|h| h.version.as_deref()),
        Some("1.1")
    );
}

#[test]
fn http_versions_config_is_checked() {
    let c = load(&probe(
        "p",
        "https://127.0.0.1:9/",
        "http_versions = [\"1.1\", \"2\"]",
    ));
    assert_eq!(c.probes.len(), 1);
    let cases: BTreeMap<&str, &str> = [
        ("http_versions = [\"3\"]", "unknown HTTP version \"3\""),
        ("http_versions = []", "http_versions is empty"),
        (
            "http_versions = [\"2\", \"2\"]",
            "duplicate HTTP version \"2\"",
        ),
        ("http_versions = \"2\"", "vantage.toml:7:"),
        (
            "http_versions = [\"HTTP/2.0\"]",
            "unknown HTTP version \"HTTP/2.0\"",
        ),
    ]
    .into_iter()
    .collect();
    for (extra, want) in cases {
        let cfg = write_config(&probe("p", "https://127.0.0.1:9/", extra));
        let e = match load_in(&cfg.path, &[]) {
            Ok(_) => panic!("accepted: {extra}"),
            Err(e) => e.to_string(),
        };
        assert!(e.contains(want), "{extra}: {e}");
        assert!(e.contains("vantage.toml:7:"), "{extra}: {e}");
    }
    // An http-only key on another kind is refused, located.
    let cfg = write_config(
        "[[probe]]\nname = \"t\"\nkind = \"tls\"\ntarget = \"127.0.0.1:443\"\nhttp_versions = [\"2\"]\n",
    );
    let e = match load_in(&cfg.path, &[]) {
        Ok(_) => panic!("http_versions accepted on a tls probe"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("http_versions"), "{e}");
    assert!(e.contains("vantage.toml:5:"), "{e}");
}
