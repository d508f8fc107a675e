//! Honest measurements and clean series (SPEC §10): full TLS handshakes, phases that add up on a
//! timeout, decoded bodies, no duplicate series, bounded health check names, RFC 6265 cookies,
//! percent-decoded proxy credentials, serial numbers as blackbox_exporter writes them.

use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use vantage::cli::check::{self, CheckOptions};
use vantage_probes::exposition;
use vantage_probes::{Outcome, Reason};

use crate::daemon::start_daemon;
use crate::fixtures::{http_target, Pki};
use crate::support::{load, load_in, outcome, run_all, write_config_in};

/// A loopback server for these tests; stops when dropped.
struct Server {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

async fn serve<F, Fut>(handler: F) -> Server
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
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
            // Every connection is bounded: nothing here outlives a test by much.
            conns.spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(20), h(stream)).await;
            });
            while conns.try_join_next().is_some() {}
        }
    });
    Server { addr, task }
}

/// The request's path, once its head has arrived (bounded in size and time).
async fn read_path<S: AsyncRead + Unpin>(s: &mut S) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        if buf.len() > 16 * 1024 {
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
    let head = String::from_utf8_lossy(&buf);
    Some(head.split_whitespace().nth(1)?.to_string())
}

fn response(headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        out += &format!("{k}: {v}\r\n");
    }
    out += "Connection: close\r\n\r\n";
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

const TEXT: &[u8] = b"<html><p>status: healthy</p><p>version 1.2.3</p></html>";

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn zlib(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn br(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
        w.write_all(b).unwrap();
    }
    out
}

fn zstd(b: &[u8]) -> Vec<u8> {
    ruzstd::encoding::compress_to_vec(b, ruzstd::encoding::CompressionLevel::Fastest)
}

/// Encoded bodies, a bomb, hanging and dripping answers, a health document with duplicate names.
async fn honest_target() -> Server {
    // 32 MiB of zeros gzip to about 32 KiB.
    let bomb = Arc::new(gzip(&vec![0u8; 32 << 20]));
    serve(move |mut s| {
        let bomb = bomb.clone();
        async move {
            let Some(path) = read_path(&mut s).await else {
                return;
            };
            let out = match path.as_str() {
                "/gzip" => response(&[("Content-Encoding", "gzip")], &gzip(TEXT)),
                "/deflate" => response(&[("Content-Encoding", "deflate")], &zlib(TEXT)),
                "/br" => response(&[("Content-Encoding", "br")], &br(TEXT)),
                "/zstd" => response(&[("Content-Encoding", "zstd")], &zstd(TEXT)),
                "/gzip-br" => response(&[("Content-Encoding", "gzip, br")], &br(&gzip(TEXT))),
                "/corrupt" => response(&[("Content-Encoding", "gzip")], b"plain text, not gzip"),
                "/bomb" => response(&[("Content-Encoding", "gzip")], &bomb),
                "/health-dup" => response(
                    &[("Content-Type", "application/json")],
                    br#"{"status":"degraded","checks":[{"name":"db","status":"pass"},{"name":"db","status":"fail"},{"name":"cache","status":"warn"},{"name":"cache","status":"pass"}]}"#,
                ),
                "/hang" => {
                    tokio::time::sleep(Duration::from_secs(15)).await;
                    return;
                }
                "/drip" => {
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nfirst bytes")
                        .await;
                    tokio::time::sleep(Duration::from_secs(15)).await;
                    return;
                }
                _ => response(&[], b"not found"),
            };
            let _ = s.write_all(&out).await;
            let _ = s.shutdown().await;
        }
    })
    .await
}

fn http_probe(name: &str, url: &str, extra: &str) -> String {
    format!("[[probe]]\nname = \"{name}\"\nkind = \"http\"\nurl = \"{url}\"\ntimeout = \"500ms\"\ninterval = \"1m\"\n{extra}\n")
}

fn phase_sum(o: &Outcome) -> Duration {
    o.phases.as_array().iter().sum()
}

#[tokio::test(start_paused = true)]
async fn phases_add_up_on_a_timeout_and_name_the_phase() {
    let t = honest_target().await;
    // Accepts and never speaks: a TLS client waits in the handshake.
    let silent = serve(|s| async move {
        tokio::time::sleep(Duration::from_secs(15)).await;
        drop(s);
    })
    .await;
    let mut cfg = http_probe("hang", &t.url("/hang"), "");
    cfg += &http_probe("drip", &t.url("/drip"), "");
    cfg += &http_probe(
        "handshake",
        &format!("https://{}/", silent.addr),
        "tls = { insecure_skip_verify = true }",
    );
    cfg += &format!(
        "[[probe]]\nname = \"tls\"\nkind = \"tls\"\ntarget = \"{}\"\ntimeout = \"500ms\"\ninterval = \"1m\"\n",
        silent.addr
    );
    let all = run_all(load(&cfg)).await;
    for (name, phase, waiting) in [
        ("hang", "processing", "the first byte"),
        ("drip", "transfer", "the rest of the body"),
        ("handshake", "tls", "the TLS handshake"),
        ("tls", "tls", "the TLS handshake"),
    ] {
        let o = outcome(&all, name);
        assert_eq!(o.reason, Some(Reason::Timeout), "{name}: {o:#?}");
        assert_eq!(
            o.evidence.split("; address").next().unwrap(),
            format!("timeout after 500ms waiting for {waiting} ({phase})"),
            "{name}"
        );
        // Exactly: the interrupted phase is charged up to the instant the run ended.
        assert_eq!(phase_sum(o), o.duration, "{name}: {:?}", o.phases);
        let i = vantage_probes::Phases::NAMES
            .iter()
            .position(|p| *p == phase)
            .unwrap();
        assert!(
            o.phases.as_array()[i] >= Duration::from_millis(400),
            "{name}: {:?}",
            o.phases
        );
    }
}

#[tokio::test]
async fn bodies_are_decoded_before_assertions() {
    let t = honest_target().await;
    let mut cfg = String::new();
    for path in ["gzip", "deflate", "br", "zstd", "gzip-br"] {
        cfg += &http_probe(
            path,
            &t.url(&format!("/{path}")),
            "headers = { Accept-Encoding = \"gzip, deflate, br, zstd\" }\n[probe.expect]\nbody_regex = ['status: healthy</p>', 'version \\d+\\.\\d+']\nbody_contains = [\"<html>\"]\ncss = [{ selector = \"p\", count = 2 }]",
        );
    }
    cfg += &http_probe(
        "gzip-miss",
        &t.url("/gzip"),
        "[probe.expect]\nbody_regex = ['^maintenance']",
    );
    cfg += &http_probe("bomb", &t.url("/bomb"), "max_body = \"1MiB\"");
    cfg += &http_probe("corrupt", &t.url("/corrupt"), "");
    let all = run_all(load(&cfg)).await;
    for path in ["gzip", "deflate", "br", "zstd", "gzip-br"] {
        let o = outcome(&all, path);
        assert!(o.success(), "{path}: {o:#?}");
    }
    // The evidence quotes decoded text, not compressed bytes.
    let o = outcome(&all, "gzip-miss");
    assert_eq!(o.reason, Some(Reason::AssertionBody), "{o:#?}");
    assert!(o.evidence.contains("status: healthy"), "{}", o.evidence);
    // 32 KiB on the wire, 32 MiB decoded: stopped at 1 MiB.
    let o = outcome(&all, "bomb");
    assert_eq!(o.reason, Some(Reason::BodyTooLarge), "{o:#?}");
    assert!(
        o.evidence
            .contains("decoded body exceeds max_body of 1048576 bytes"),
        "{}",
        o.evidence
    );
    let o = outcome(&all, "corrupt");
    assert_eq!(o.reason, Some(Reason::Protocol), "{o:#?}");
    assert!(o.evidence.contains("corrupt gzip body"), "{}", o.evidence);
}

/// A TLS server that counts full and resumed handshakes, then answers HTTP.
struct CountingTls {
    server: Server,
    full: Arc<AtomicU64>,
    resumed: Arc<AtomicU64>,
}

async fn counting_tls(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> CountingTls {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // rustls' defaults: a session cache and TLS 1.3 tickets, so a client that offers a session
    // gets it resumed.
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let full = Arc::new(AtomicU64::new(0));
    let resumed = Arc::new(AtomicU64::new(0));
    let (f, r) = (full.clone(), resumed.clone());
    let server = serve(move |s| {
        let (acceptor, f, r) = (acceptor.clone(), f.clone(), r.clone());
        async move {
            let Ok(mut tls) = acceptor.accept(s).await else {
                return;
            };
            match tls.get_ref().1.handshake_kind() {
                Some(rustls::HandshakeKind::Resumed) => r.fetch_add(1, Ordering::SeqCst),
                _ => f.fetch_add(1, Ordering::SeqCst),
            };
            if read_path(&mut tls).await.is_some() {
                let _ = tls.write_all(&response(&[], b"ok")).await;
                let _ = tls.shutdown().await;
            }
        }
    })
    .await;
    CountingTls {
        server,
        full,
        resumed,
    }
}

async fn run_times(cfg: &str, pki: &Pki, runs: u32) -> Vec<Outcome> {
    let dir = tempfile::tempdir_in(pki.path()).unwrap();
    let c = write_config_in(dir, cfg);
    let config = load_in(&c.path, &[]).unwrap_or_else(|e| panic!("{e}"));
    let probes = config.probes.into_iter().map(Arc::new).collect();
    let options = CheckOptions {
        runs,
        ..CheckOptions::default()
    };
    check::run(probes, &options, &config.redactor)
        .await
        .into_iter()
        .map(|r| r.outcome)
        .collect()
}

#[tokio::test]
async fn every_tls_run_is_a_full_handshake() {
    let pki = Pki::new();
    let leaf = pki.leaf(&["localhost"], -1, 30);
    let tls_opts = |extra: &str| {
        format!(
            "tls = {{ ca = \"{}\", server_name = \"localhost\"{extra} }}",
            pki.ca_path().display()
        )
    };
    for resume in [false, true] {
        let server = counting_tls(leaf.chain.clone(), leaf.key()).await;
        let extra = if resume {
            ", resume_sessions = true"
        } else {
            ""
        };
        let mut cfg = http_probe(
            "https",
            &format!("https://{}/", server.server.addr),
            &tls_opts(extra),
        );
        cfg = cfg.replace("500ms", "2s");
        cfg += &format!(
            "[[probe]]\nname = \"tls\"\nkind = \"tls\"\ntarget = \"{}\"\nserver_name = \"localhost\"\n{}\ntimeout = \"2s\"\n",
            server.server.addr,
            tls_opts(extra).replace(", server_name = \"localhost\"", "")
        );
        let outcomes = run_times(&cfg, &pki, 8).await;
        assert_eq!(outcomes.len(), 16);
        for o in &outcomes {
            assert!(o.success(), "{o:#?}");
            let facts = o.facts.tls().unwrap();
            assert_eq!(facts.chain.len(), 1, "the certificate is this run's");
        }
        let resumed = server.resumed.load(Ordering::SeqCst);
        let full = server.full.load(Ordering::SeqCst);
        if resume {
            // The counting server does resume when asked: the zero below is not for want of it.
            assert!(resumed > 0, "resumed {resumed}, full {full}");
            assert!(outcomes.iter().any(|o| o.facts.tls().unwrap().resumed));
        } else {
            assert_eq!((full, resumed), (16, 0));
            assert!(outcomes.iter().all(|o| !o.facts.tls().unwrap().resumed));
        }
    }
}

#[tokio::test]
async fn serial_numbers_lose_the_der_sign_byte() {
    // A serial whose first byte has the high bit set: DER stores it as 00 a9 08 …
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&[
        0xa9, 0x08, 0x00, 0x0f, 0x10,
    ]));
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let server = counting_tls(
        vec![cert.der().clone()],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
    .await;
    let cfg = format!(
        "[[probe]]\nname = \"tls\"\nkind = \"tls\"\ntarget = \"{}\"\nserver_name = \"localhost\"\ntimeout = \"2s\"\n[probe.expect]\nverify = false\n",
        server.server.addr
    );
    let all = run_all(load(&cfg)).await;
    let o = outcome(&all, "tls");
    assert!(o.success(), "{o:#?}");
    // blackbox_exporter's `serialnumber`: Go's big.Int Text(16), lowercase, no leading zeros.
    assert_eq!(o.facts.tls().unwrap().chain[0].serial, "a908000f10");
}

#[tokio::test]
async fn proxy_passwords_keep_their_plus_signs() {
    // The fixture answers absolute-form requests by path, so it doubles as a proxy; /echo
    // returns the request head.
    let proxy = http_target().await;
    // user "u+1", password "p+q+" (the second + percent-encoded), a space as %20.
    let cfg = http_probe(
        "via-proxy",
        "http://upstream.invalid/echo",
        &format!(
            "proxy = \"http://u+1:p+q%2B%20@{}\"\n[probe.expect]\nbody_regex = ['(?i)proxy-authorization: Basic dSsxOnArcSsg']",
            proxy.addr
        ),
    );
    let all = run_all(load(&cfg)).await;
    let o = outcome(&all, "via-proxy");
    assert!(o.success(), "{o:#?}");
}

/// `(name, sorted labels)` of every sample that appears more than once.
fn duplicates(body: &str) -> Vec<String> {
    let samples = exposition::parse(body).unwrap_or_else(|e| panic!("{e}\n{body}"));
    let mut seen: HashMap<(String, Vec<(String, String)>), u32> = HashMap::new();
    for s in samples {
        let mut labels = s.labels.clone();
        labels.sort();
        *seen.entry((s.name.clone(), labels)).or_default() += 1;
    }
    let mut dups: Vec<String> = seen
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|((name, labels), n)| format!("{n}× {name}{labels:?}"))
        .collect();
    dups.sort();
    dups
}

#[tokio::test(start_paused = true)]
async fn metrics_never_hold_a_series_twice() {
    let t = honest_target().await;
    let plain = http_target().await;
    let pki = Pki::new();
    let leaf = pki.leaf(&["localhost"], -1, 30);
    let tls = counting_tls(leaf.chain.clone(), leaf.key()).await;
    let ca = pki.ca_path();
    let probe = |name: &str, url: &str, extra: &str| {
        format!("[[probe]]\nname = \"{name}\"\nkind = \"http\"\nurl = \"{url}\"\ninterval = \"1s\"\ntimeout = \"900ms\"\n{extra}\n")
    };
    // The opt-in families are on, so the duplicate scan covers them too.
    let mut cfg = String::from(
        "[metrics]\nphase_histograms = true\nquantiles = true\n[defaults]\nlabels = { team = \"sre\" }\n",
    );
    cfg += &probe("ok", &plain.url("/ok"), "");
    cfg += &probe("down", &plain.url("/status/500"), "");
    cfg += &probe(
        "health",
        &t.url("/health-dup"),
        "[probe.expect]\nhealth = true",
    );
    cfg += &probe(
        "secure",
        &format!("https://{}/", tls.server.addr),
        &format!(
            "tls = {{ ca = \"{}\", server_name = \"localhost\" }}",
            ca.display()
        ),
    );
    cfg += &format!(
        "[[probe]]\nname = \"cert\"\nkind = \"tls\"\ntarget = \"{}\"\nserver_name = \"localhost\"\ntls = {{ ca = \"{}\" }}\ninterval = \"1s\"\ntimeout = \"900ms\"\n",
        tls.server.addr,
        ca.display()
    );
    cfg += &format!(
        "[[probe]]\nname = \"flow\"\nkind = \"scrape\"\ninterval = \"1s\"\ntimeout = \"900ms\"\n[[probe.step]]\nname = \"one\"\nurl = \"{}\"\n[[probe.step]]\nname = \"two\"\nurl = \"{}\"\n",
        plain.url("/ok"),
        plain.url("/ok")
    );
    cfg += "[[slo]]\nname = \"daily\"\nprobes = [\"ok\", \"down\"]\nobjective = 99\nperiod = \"1d\"\nmin_events = 1\n";
    cfg += "[[slo]]\nname = \"monthly\"\nprobes = [\"*\"]\nobjective = 99.9\n";
    let d = start_daemon(&cfg).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (status, body) = d.get("/metrics").await;
    assert_eq!(status, 200);
    let dups = duplicates(&body);
    assert!(dups.is_empty(), "duplicate series: {dups:#?}");

    // Every family is in the scan.
    let names: std::collections::BTreeSet<String> = exposition::parse(&body)
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    for family in [
        "probe_success",
        "probe_duration_seconds",
        "probe_http_status_code",
        "probe_ssl_last_chain_info",
        "probe_tls_version_info",
        "probe_health_check_status",
        "probe_health_checks_dropped_total",
        "probe_step_duration_seconds",
        "probe_runs_total",
        "probe_failures_total",
        "probe_latency_seconds_bucket",
        "probe_phase_latency_seconds_bucket",
        "probe_latency_quantile_seconds",
        "slo_sli_ratio",
        "slo_burn_rate",
        "slo_events_total",
        "slo_objective_ratio",
        "vantage_build_info",
    ] {
        assert!(names.contains(family), "{family} missing from /metrics");
    }
    // The 1d period is the 1d window: one series, and the failing check reads as failing.
    let series = |name: &str, want: &[(&str, &str)]| -> Vec<f64> {
        exposition::parse(&body)
            .unwrap()
            .into_iter()
            .filter(|s| {
                s.name == name
                    && want
                        .iter()
                        .all(|(k, v)| s.labels.iter().any(|(a, b)| a == k && b == v))
            })
            .map(|s| s.value)
            .collect()
    };
    assert_eq!(
        series("slo_sli_ratio", &[("slo", "daily"), ("window", "1d")]).len(),
        1
    );
    assert_eq!(
        series("slo_burn_rate", &[("slo", "daily"), ("window", "1d")]).len(),
        1
    );
    assert_eq!(
        series(
            "probe_health_check_status",
            &[("probe", "health"), ("check", "db")]
        ),
        [0.0]
    );
    assert_eq!(
        series(
            "probe_health_check_status",
            &[("probe", "health"), ("check", "cache")]
        ),
        [0.5]
    );
    d.stop().await;
}

/// A health endpoint that invents fresh, long check names on every request.
async fn inventive_health() -> Server {
    let n = Arc::new(AtomicU64::new(0));
    serve(move |mut s| {
        let n = n.clone();
        async move {
            if read_path(&mut s).await.is_none() {
                return;
            }
            let run = n.fetch_add(1, Ordering::SeqCst);
            let checks: Vec<String> = (0..40)
                .map(|i| {
                    format!(
                        r#"{{"name":"{run}-{i}-{}","status":"pass"}}"#,
                        "x".repeat(1000)
                    )
                })
                .collect();
            let doc = format!(r#"{{"status":"healthy","checks":[{}]}}"#, checks.join(","));
            let _ = s.write_all(&response(&[], doc.as_bytes())).await;
            let _ = s.shutdown().await;
        }
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn health_check_names_are_bounded_in_length_and_number() {
    let t = inventive_health().await;
    let cfg = format!(
        "[[probe]]\nname = \"h\"\nkind = \"http\"\nurl = \"{}\"\ninterval = \"200ms\"\ntimeout = \"150ms\"\n[probe.expect]\nhealth = true\n",
        t.url("/")
    );
    let d = start_daemon(&cfg).await;
    // Scrape while runs of 40 fresh names each go by, until two runs' worth were dropped.
    let mut names = std::collections::BTreeSet::new();
    let mut dropped = 0.0;
    let mut largest = 0;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let body = d.get("/metrics").await.1;
        largest = largest.max(body.len());
        for s in exposition::parse(&body).unwrap() {
            if s.name == "probe_health_check_status" {
                let name = s
                    .labels
                    .iter()
                    .find(|(k, _)| k == "check")
                    .unwrap()
                    .1
                    .clone();
                assert_eq!(name.len(), 128, "{name}");
                names.insert(name);
            }
            if s.name == "probe_health_checks_dropped_total" {
                dropped = s.value;
            }
        }
        if dropped >= 80.0 {
            break;
        }
    }
    assert!(dropped >= 80.0, "dropped {dropped}");
    // Over the probe's life: 64 names at most, whatever the target invents.
    assert!(
        !names.is_empty() && names.len() <= 64,
        "{} names",
        names.len()
    );
    assert!(largest < 64 * 1024, "/metrics reached {largest} bytes");
    d.stop().await;
}

/// A login flow: cookies scoped by Path, Secure and Max-Age.
async fn cookie_target() -> Server {
    serve(|mut s| async move {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let head = String::from_utf8_lossy(&buf).to_string();
        let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
        let cookie = head
            .lines()
            .find_map(|l| l.strip_prefix("cookie: ").or(l.strip_prefix("Cookie: ")))
            .unwrap_or("")
            .to_string();
        let out = match path.as_str() {
            "/login" => {
                let mut r =
                    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n".to_string();
                for c in [
                    "sid=abc; Path=/",
                    "admin=1; Path=/admin",
                    "secure=1; Path=/; Secure",
                    "gone=1; Path=/; Max-Age=0",
                ] {
                    r += &format!("Set-Cookie: {c}\r\n");
                }
                r += "\r\nok";
                r.into_bytes()
            }
            _ => response(&[], format!("cookie=[{cookie}]").as_bytes()),
        };
        let _ = s.write_all(&out).await;
        let _ = s.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn flows_keep_cookies_by_rfc_6265() {
    let t = cookie_target().await;
    let cfg = format!(
        "[[probe]]\nname = \"flow\"\nkind = \"scrape\"\ntimeout = \"2s\"\n\
         [[probe.step]]\nname = \"login\"\nurl = \"{}\"\n\
         [[probe.step]]\nname = \"page\"\nurl = \"{}\"\nexpect = {{ body_contains = ['sid=abc'], body_not_regex = ['admin', 'gone'] }}\n\
         [[probe.step]]\nname = \"admin\"\nurl = \"{}\"\nexpect = {{ body_contains = ['admin=1', 'sid=abc'] }}\n",
        t.url("/login"),
        t.url("/page"),
        t.url("/admin/panel"),
    );
    let all = run_all(load(&cfg)).await;
    let o = outcome(&all, "flow");
    assert!(o.success(), "{o:#?}");
}

/// Found by the attack pass: on a protocol failure the time spent reading the answer's head
/// was charged to no phase (garbage: 16 ms of phases in a 26 ms run).
#[tokio::test]
async fn phases_add_up_on_protocol_failures() {
    let garbage = crate::fixtures::garbage_target().await;
    let t = http_target().await;
    let mut cfg = http_probe("garbage", &format!("http://{}/", garbage.addr), "");
    cfg += &http_probe("endless", &t.url("/endless-headers"), "");
    let all = run_all(load(&cfg)).await;
    for name in ["garbage", "endless"] {
        let o = outcome(&all, name);
        assert!(!o.success(), "{name}: {o:#?}");
        assert_ne!(o.reason, Some(Reason::Timeout), "{name}: {o:#?}");
        assert_eq!(phase_sum(o), o.duration, "{name}: {:?}", o.phases);
    }
}

/// A request target hyper cannot carry (64 KiB or more, here reached through a redirect whose
/// `<` each become `%3C`) is a failed run, not a panic that takes `vantage check` and every other
/// probe's result with it (attack-pass finding: `expect("fresh builder has headers")`).
#[tokio::test]
async fn an_overlong_request_target_fails_the_run_instead_of_panicking() {
    let target = serve(|mut s: TcpStream| async move {
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf).await;
        let location = format!("/{}", "<".repeat(22_000));
        let head = format!(
            "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let _ = s.write_all(head.as_bytes()).await;
    })
    .await;
    let t = http_target().await;
    let mut cfg = http_probe("long", &format!("http://{}/", target.addr), "");
    cfg += &http_probe("fine", &t.url("/status/200"), "");
    let all = run_all(load(&cfg)).await;
    let o = outcome(&all, "long");
    assert_eq!(o.reason, Some(Reason::Protocol), "{o:#?}");
    assert!(o.evidence.contains("cannot be sent"), "{}", o.evidence);
    assert!(outcome(&all, "fine").success());
}
