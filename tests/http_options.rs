//! blackbox_exporter's http options under vantage's names: `expect.ssl` (fail_if_ssl /
//! fail_if_not_ssl) and `expect.headers_not` (fail_if_header_matches): config and behaviour.

use vantage_probes::Reason;

use crate::fixtures::{http_target, https_target, Pki};
use crate::support::{load, load_in, outcome, run_all, write_config};

fn probe(name: &str, url: &str, extra: &str) -> String {
    format!("[[probe]]\nname = \"{name}\"\nkind = \"http\"\nurl = \"{url}\"\ntimeout = \"1s\"\ninterval = \"1m\"\n{extra}\n")
}

fn config_error(text: &str) -> String {
    let cfg = write_config(text);
    match load_in(&cfg.path, &[]) {
        Ok(_) => panic!("config accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn expect_ssl_and_headers_not_are_accepted() {
    let c = load(&probe(
        "p",
        "http://127.0.0.1:9/",
        "[probe.expect]\nssl = false\nheaders_not = { Server = \"^nginx\", X-Debug = \".\" }",
    ));
    assert_eq!(c.probes.len(), 1);
}

#[test]
fn bad_values_are_located_errors() {
    let e = config_error(&probe(
        "p",
        "http://127.0.0.1:9/",
        "[probe.expect]\nheaders_not = { Server = \"(unclosed\" }",
    ));
    assert!(e.contains("invalid regex \"(unclosed\""), "{e}");
    assert!(e.contains("vantage.toml:8:"), "{e}");
    let e = config_error(&probe(
        "p",
        "http://127.0.0.1:9/",
        "[probe.expect]\nheaders_not = { \"bad name\" = \"x\" }",
    ));
    assert!(e.contains("invalid header name \"bad name\""), "{e}");
    let e = config_error(&probe(
        "p",
        "http://127.0.0.1:9/",
        "[probe.expect]\nssl = \"yes\"",
    ));
    assert!(e.contains("vantage.toml:8:"), "{e}");
    // http-only keys on a tls probe are refused, located.
    let e = config_error(
        "[[probe]]\nname = \"t\"\nkind = \"tls\"\ntarget = \"127.0.0.1:443\"\n[probe.expect]\nssl = true\n",
    );
    assert!(e.contains("expect.ssl"), "{e}");
    assert!(e.contains("vantage.toml:6:"), "{e}");
}

#[tokio::test]
async fn expect_ssl_and_headers_not_decide_the_outcome() {
    let t = http_target().await;
    let pki = Pki::new();
    let leaf = pki.leaf(&["localhost"], -1, 90);
    let s = https_target(leaf.chain.clone(), leaf.key()).await;
    let tls = format!(
        "tls = {{ ca = \"{}\", server_name = \"localhost\" }}\n",
        pki.ca_path().display()
    );
    let mut cfg = String::new();
    cfg += &probe(
        "plain-not-ssl",
        &t.url("/ok"),
        "[probe.expect]\nssl = false",
    );
    cfg += &probe("plain-ssl", &t.url("/ok"), "[probe.expect]\nssl = true");
    cfg += &probe(
        "tls-ssl",
        &s.https_url("/ok"),
        &format!("{tls}[probe.expect]\nssl = true"),
    );
    cfg += &probe(
        "tls-not-ssl",
        &s.https_url("/ok"),
        &format!("{tls}[probe.expect]\nssl = false"),
    );
    cfg += &probe(
        "header-matches",
        &t.url("/ok"),
        "[probe.expect]\nheaders_not = { Content-Type = \"^text/\" }",
    );
    cfg += &probe(
        "header-differs",
        &t.url("/ok"),
        "[probe.expect]\nheaders_not = { Content-Type = \"json\" }",
    );
    cfg += &probe(
        "header-absent",
        &t.url("/ok"),
        "[probe.expect]\nheaders_not = { X-Missing = \".*\" }",
    );
    let all = run_all(load(&cfg)).await;
    assert!(outcome(&all, "plain-not-ssl").success());
    let o = outcome(&all, "plain-ssl");
    assert!(!o.success());
    assert_eq!(o.reason, Some(Reason::Protocol));
    assert!(o.evidence.contains("expected TLS"), "{}", o.evidence);
    assert!(
        outcome(&all, "tls-ssl").success(),
        "{}",
        outcome(&all, "tls-ssl").evidence
    );
    let o = outcome(&all, "tls-not-ssl");
    assert!(!o.success());
    assert!(o.evidence.contains("expected plain HTTP"), "{}", o.evidence);
    let o = outcome(&all, "header-matches");
    assert!(!o.success());
    assert_eq!(o.reason, Some(Reason::AssertionHeader));
    assert!(o.evidence.contains("content-type"), "{}", o.evidence);
    assert!(outcome(&all, "header-differs").success());
    assert!(outcome(&all, "header-absent").success());
}

#[test]
fn bearer_token_config_errors_are_located_and_quote_no_secret() {
    let c = load(&probe("p", "http://127.0.0.1:9/", "bearer_token = \"abc\""));
    assert_eq!(c.probes.len(), 1);
    let e = config_error(&probe(
        "p",
        "http://127.0.0.1:9/",
        "bearer_token = \"abc\"\nheaders = { Authorization = \"Basic eA==\" }",
    ));
    assert!(e.contains("bearer_token or an Authorization header"), "{e}");
    assert!(e.contains("vantage.toml:7:"), "{e}");
    let e = config_error(&probe("p", "http://127.0.0.1:9/", "bearer_token = \"  \""));
    assert!(e.contains("bearer_token is empty"), "{e}");
    let e = config_error(&probe(
        "p",
        "http://127.0.0.1:9/",
        "bearer_token = \"s3cr3t\\nInjected: 1\"",
    ));
    assert!(e.contains("invalid characters in bearer_token"), "{e}");
    assert!(!e.contains("s3cr3t"), "{e}");
    let e = config_error(
        "[[probe]]\nname = \"t\"\nkind = \"tls\"\ntarget = \"127.0.0.1:443\"\nbearer_token = \"x\"\n",
    );
    assert!(e.contains("bearer_token"), "{e}");
    assert!(e.contains("vantage.toml:5:"), "{e}");
}

#[tokio::test]
async fn bearer_token_is_sent_and_redacted_when_echoed() {
    let t = http_target().await;
    let mut cfg = probe(
        "sent",
        &t.url("/echo"),
        "bearer_token = \"tok123\"\n[probe.expect]\nbody_regex = [\"(?i)authorization: Bearer tok123\\r\\n\"]",
    );
    cfg += &probe(
        "secret",
        &t.url("/echo"),
        "bearer_token = \"${TOK}\"\n[probe.expect]\nbody_contains = [\"not in the echo\"]",
    );
    let c = write_config(&cfg);
    let config = load_in(&c.path, &[("TOK", "hunter2-bearer")]).unwrap();
    let all = run_all(config).await;
    let o = outcome(&all, "sent");
    assert!(o.success(), "{}", o.evidence);
    let o = outcome(&all, "secret");
    assert!(!o.success());
    assert!(o.evidence.contains("Bearer ***"), "{}", o.evidence);
    assert!(!o.evidence.contains("hunter2"), "{}", o.evidence);
}

#[test]
fn compression_config_is_checked() {
    let c = load(&probe("p", "http://127.0.0.1:9/", "compression = \"gzip\""));
    assert_eq!(c.probes.len(), 1);
    let e = config_error(&probe("p", "http://127.0.0.1:9/", "compression = \"lzma\""));
    assert!(e.contains("unknown compression \"lzma\""), "{e}");
    assert!(e.contains("vantage.toml:7:"), "{e}");
    let e = config_error(&probe(
        "p",
        "http://127.0.0.1:9/",
        "compression = \"gzip\\r\\nX-Injected: 1\"",
    ));
    assert!(e.contains("unknown compression"), "{e}");
    let e = config_error(&probe(
        "p",
        "http://127.0.0.1:9/",
        "compression = \"br\"\nheaders = { Accept-Encoding = \"gzip\" }",
    ));
    assert!(
        e.contains("compression or an Accept-Encoding header"),
        "{e}"
    );
    let e = config_error(
        "[[probe]]\nname = \"t\"\nkind = \"tls\"\ntarget = \"127.0.0.1:443\"\ncompression = \"gzip\"\n",
    );
    assert!(e.contains("compression"), "{e}");
    assert!(e.contains("vantage.toml:5:"), "{e}");
}

#[tokio::test]
async fn compression_sends_accept_encoding() {
    let t = http_target().await;
    let mut cfg = probe(
        "gzip",
        &t.url("/echo"),
        "compression = \"gzip\"\n[probe.expect]\nbody_regex = [\"(?i)accept-encoding: gzip\\r\\n\"]",
    );
    cfg += &probe(
        "none",
        &t.url("/echo"),
        "[probe.expect]\nbody_not_regex = [\"(?i)accept-encoding\"]",
    );
    let all = run_all(load(&cfg)).await;
    assert!(
        outcome(&all, "gzip").success(),
        "{}",
        outcome(&all, "gzip").evidence
    );
    assert!(
        outcome(&all, "none").success(),
        "{}",
        outcome(&all, "none").evidence
    );
}

#[test]
fn ip_preference_config_is_checked() {
    for v in ["prefer_ipv4", "prefer_ipv6", "ipv4", "ipv6", "any"] {
        let c = load(&probe("p", "http://127.0.0.1:9/", &format!("ip = \"{v}\"")));
        assert_eq!(c.probes.len(), 1, "{v}");
    }
    let e = config_error(&probe("p", "http://127.0.0.1:9/", "ip = \"prefer_ipv5\""));
    assert!(e.contains("prefer_ipv5"), "{e}");
    assert!(e.contains("vantage.toml:7:"), "{e}");
}

#[tokio::test]
async fn ip_preference_falls_back_to_the_other_family() {
    let t = http_target().await;
    let port = t.addr.port();
    let mut cfg = probe(
        "prefer6-literal4",
        &format!("http://127.0.0.1:{port}/ok"),
        "ip = \"prefer_ipv6\"",
    );
    cfg += &probe(
        "strict6-literal4",
        &format!("http://127.0.0.1:{port}/ok"),
        "ip = \"ipv6\"",
    );
    cfg += &probe(
        "prefer6-name",
        &format!("http://localhost:{port}/ok"),
        "ip = \"prefer_ipv6\"",
    );
    cfg += &probe(
        "prefer4-name",
        &format!("http://localhost:{port}/ok"),
        "ip = \"prefer_ipv4\"",
    );
    let all = run_all(load(&cfg)).await;
    let o = outcome(&all, "prefer6-literal4");
    assert!(o.success(), "{}", o.evidence);
    assert_eq!(o.facts.conn.ip_protocol, Some(4));
    let o = outcome(&all, "strict6-literal4");
    assert!(!o.success());
    assert_eq!(o.reason, Some(Reason::Dns));
    // The target listens on 127.0.0.1 only: with a preference for IPv6, an IPv4 address is
    // still chosen when the name has no IPv6 one (and when it has, ::1 refuses: then the
    // probe fails on connect, as blackbox_exporter's would).
    let o = outcome(&all, "prefer4-name");
    assert!(o.success(), "{}", o.evidence);
    assert_eq!(o.facts.conn.ip_protocol, Some(4));
    let o = outcome(&all, "prefer6-name");
    let has_v6 = std::net::ToSocketAddrs::to_socket_addrs(&("localhost", port))
        .unwrap()
        .any(|a| a.is_ipv6());
    if has_v6 {
        assert_eq!(o.facts.conn.ip_protocol, Some(6), "{}", o.evidence);
    } else {
        assert!(o.success(), "{}", o.evidence);
        assert_eq!(o.facts.conn.ip_protocol, Some(4));
    }
}

#[test]
fn source_ip_config_is_checked() {
    let c = load(&probe(
        "p",
        "http://127.0.0.1:9/",
        "source_ip = \"127.0.0.2\"",
    ));
    assert_eq!(c.probes.len(), 1);
    let e = config_error(&probe(
        "p",
        "http://127.0.0.1:9/",
        "source_ip = \"localhost\"",
    ));
    assert!(
        e.contains("source_ip \"localhost\" is not an IP address"),
        "{e}"
    );
    assert!(e.contains("vantage.toml:7:"), "{e}");
    let e = config_error(
        "[[probe]]\nname = \"t\"\nkind = \"tls\"\ntarget = \"127.0.0.1:443\"\nsource_ip = \"127.0.0.1\"\n",
    );
    assert!(e.contains("source_ip"), "{e}");
    assert!(e.contains("vantage.toml:5:"), "{e}");
}

#[tokio::test]
async fn source_ip_is_the_connections_local_address() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let peers = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = peers.clone();
    let server = tokio::spawn(async move {
        for _ in 0..10 {
            let Ok((mut s, peer)) = listener.accept().await else {
                continue;
            };
            seen.lock().unwrap().push(peer.ip());
            let mut buf = [0u8; 4096];
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), s.read(&mut buf)).await;
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                .await;
        }
    });
    let url = format!("http://{addr}/");
    let mut cfg = probe("from2", &url, "source_ip = \"127.0.0.2\"");
    cfg += &probe("from6", &url, "source_ip = \"::1\"");
    cfg += &probe("unassigned", &url, "source_ip = \"192.0.2.1\"");
    let all = run_all(load(&cfg)).await;
    let o = outcome(&all, "from2");
    assert!(o.success(), "{}", o.evidence);
    let o = outcome(&all, "from6");
    assert!(!o.success());
    assert_eq!(o.reason, Some(Reason::Connect));
    assert!(o.evidence.contains("different families"), "{}", o.evidence);
    let o = outcome(&all, "unassigned");
    assert!(!o.success());
    assert_eq!(o.reason, Some(Reason::Connect));
    let peers = peers.lock().unwrap().clone();
    assert_eq!(
        peers,
        vec!["127.0.0.2".parse::<std::net::IpAddr>().unwrap()],
        "only the 127.0.0.2 run connected"
    );
    server.abort();
}
