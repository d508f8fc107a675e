//! The differential test: the real blackbox_exporter (Debian `prometheus-blackbox-exporter`)
//! and vantage's `/probe` against the same loopback targets, compared metric by metric: names,
//! label sets and values (timings by presence only). Every difference that is not listed in
//! `KNOWN_DIFFERENCES` (mirrored in the README's compatibility table) fails the test.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use vantage_probes::exposition::{self, Sample};

use crate::daemon::start_daemon;
use crate::fixtures::{closed_port, http_target, https_target, tls_target, Pki};

const BLACKBOX: &str = "/usr/bin/prometheus-blackbox-exporter";

/// Every intentional difference: (metric, cases it applies to — empty for every case, reason).
/// Each entry has a row in the README's "blackbox_exporter compatibility" table.
const KNOWN_DIFFERENCES: &[(&str, &[&str], &str)] = &[
    (
        "probe_ssl_leaf_expiry_timestamp_seconds",
        &[],
        "vantage addition: the leaf's notAfter, separate from the chain's effective expiry",
    ),
    (
        "probe_ssl_verify_result",
        &[],
        "vantage addition: the verification verdict as a label (ok, expired, unknown_issuer, …)",
    ),
    (
        "probe_ssl_earliest_cert_expiry",
        &["tls_expired", "tls_self_signed", "tls_wrong_host", "tcp_tls_expired"],
        "vantage reports certificate facts when verification fails (blackbox_exporter reports none)",
    ),
    (
        "probe_ssl_last_chain_expiry_timestamp_seconds",
        &["tls_expired", "tls_self_signed", "tls_wrong_host", "tcp_tls_expired"],
        "vantage reports certificate facts when verification fails",
    ),
    (
        "probe_ssl_last_chain_info",
        &["tls_expired", "tls_self_signed", "tls_wrong_host", "tcp_tls_expired"],
        "vantage reports certificate facts when verification fails",
    ),
    (
        "probe_tls_version_info",
        &["tls_expired", "tls_self_signed", "tls_wrong_host", "tcp_tls_expired"],
        "vantage reports the handshake's facts when verification fails",
    ),
    (
        "probe_tls_cipher_info",
        &["tls_expired", "tls_self_signed", "tls_wrong_host", "tcp_tls_expired"],
        "vantage reports the handshake's facts when verification fails",
    ),
    (
        "probe_ssl_last_chain_expiry_timestamp_seconds",
        &["tls_insecure_self_signed"],
        "with verification skipped no chain is verified: blackbox_exporter writes Go's zero time (-62135596800), vantage the leaf's notAfter",
    ),
    (
        "probe_tls_cipher_info",
        &[],
        "added in blackbox_exporter 0.24; the Debian 0.23 this test runs lacks it",
    ),
    (
        "probe_http_uncompressed_body_length",
        &["gzip", "http2_gzip"],
        "vantage always decodes bodies (gzip/deflate/br/zstd) before assertions; blackbox_exporter only with `compression` set",
    ),
];

/// Labels vantage adds to a blackbox_exporter metric: (metric, label, reason). The label is
/// dropped from vantage's sample before comparing; every other label must match.
const KNOWN_LABEL_DIFFERENCES: &[(&str, &str, &str)] = &[(
    "probe_ssl_last_chain_info",
    "serialnumber",
    "added in blackbox_exporter 0.24 (serial without a DER sign byte); Debian's 0.23 lacks it",
)];

/// Metrics compared by presence only: their values are timings.
fn is_timing(name: &str) -> bool {
    matches!(
        name,
        "probe_duration_seconds" | "probe_dns_lookup_time_seconds" | "probe_http_duration_seconds"
    )
}

fn known(metric: &str, case: &str) -> bool {
    KNOWN_DIFFERENCES
        .iter()
        .any(|(m, cases, _)| *m == metric && (cases.is_empty() || cases.contains(&case)))
}

/// The real blackbox_exporter on a loopback port; killed on drop.
struct Blackbox {
    addr: SocketAddr,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Blackbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Blackbox {
    async fn start(modules_yaml: &str) -> Blackbox {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("blackbox.yml");
        std::fs::File::create(&cfg)
            .unwrap()
            .write_all(modules_yaml.as_bytes())
            .unwrap();
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let child = Command::new(BLACKBOX)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus-blackbox-exporter is installed (.ci/run installs it)");
        let bb = Blackbox {
            addr,
            child,
            _dir: dir,
        };
        for _ in 0..100 {
            if let Ok(r) = crate::support::get(format!("http://{addr}/-/healthy")).await {
                if r.status().is_success() {
                    return bb;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("blackbox_exporter not ready within 10 s");
    }
}

/// Targets only this test needs: a chunked body, a gzip body, a Last-Modified header.
struct Extra {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Extra {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

async fn extra_target() -> Extra {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        for _ in 0..1000 {
            let Ok((mut s, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 2048];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 65536 {
                    match tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk)).await {
                        Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                        _ => return,
                    }
                }
                let head = String::from_utf8_lossy(&buf).to_string();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let mut out: Vec<u8> = match path.as_str() {
                    "/chunked" => {
                        let body = "z".repeat(300);
                        format!(
                            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
                            body.len()
                        )
                        .into_bytes()
                    }
                    "/gzip" => {
                        let body = gzip(&b"compressible ".repeat(100));
                        let mut o = format!(
                            "HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                            body.len()
                        )
                        .into_bytes();
                        o.extend_from_slice(&body);
                        o
                    }
                    "/last-modified-garbage" => b"HTTP/1.1 200 OK\r\nlast-modified: yesterday-ish \xff\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello".to_vec(),
                    "/last-modified-far" => b"HTTP/1.1 200 OK\r\nlast-modified: Fri, 31 Dec 9999 23:59:59 GMT\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello".to_vec(),
                    "/last-modified-epoch" => b"HTTP/1.1 200 OK\r\nlast-modified: Thu, 01 Jan 1970 00:00:00 GMT\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello".to_vec(),
                    "/last-modified" => b"HTTP/1.1 200 OK\r\nlast-modified: Wed, 21 Oct 2015 07:28:00 GMT\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello".to_vec(),
                    _ => b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_vec(),
                };
                let _ = s.write_all(&out).await;
                out.clear();
                let _ = s.shutdown().await;
            });
        }
    });
    Extra { addr, task }
}

type Series = BTreeMap<(String, Vec<(String, String)>), f64>;

fn series(body: &str, drop_known_labels: bool) -> Series {
    let samples: Vec<Sample> =
        exposition::parse(body).unwrap_or_else(|e| panic!("unparsable /probe body: {e}\n{body}"));
    let mut out = Series::new();
    for s in samples {
        let mut labels = s.labels;
        if drop_known_labels {
            labels.retain(|(l, _)| {
                !KNOWN_LABEL_DIFFERENCES
                    .iter()
                    .any(|(m, kl, _)| *m == s.name && kl == l)
            });
        }
        labels.sort();
        let key = (s.name, labels);
        assert!(!out.contains_key(&key), "duplicate series {key:?}");
        out.insert(key, s.value);
    }
    out
}

/// Every unexplained difference between the two bodies for `case`.
fn differences(case: &str, bb: &str, va: &str) -> Vec<String> {
    let (b, v) = (series(bb, false), series(va, true));
    let names: BTreeSet<&String> = b.keys().chain(v.keys()).map(|(n, _)| n).collect();
    let mut out = Vec::new();
    for name in names {
        if known(name, case) {
            continue;
        }
        let pick = |s: &Series| -> BTreeMap<Vec<(String, String)>, f64> {
            s.iter()
                .filter(|((n, _), _)| n == name)
                .map(|((_, l), v)| (l.clone(), *v))
                .collect()
        };
        let (bs, vs) = (pick(&b), pick(&v));
        let (bl, vl): (BTreeSet<_>, BTreeSet<_>) = (bs.keys().collect(), vs.keys().collect());
        if bl != vl {
            out.push(format!(
                "{case}: {name}: label sets differ: blackbox_exporter {bl:?}, vantage {vl:?}"
            ));
            continue;
        }
        if is_timing(name) {
            continue;
        }
        for (labels, bv) in &bs {
            let vv = vs[labels];
            if (bv - vv).abs() > 1e-9 * bv.abs().max(1.0) {
                out.push(format!(
                    "{case}: {name}{labels:?}: blackbox_exporter {bv}, vantage {vv}"
                ));
            }
        }
    }
    out
}

fn blackbox_modules(ca: &Path) -> String {
    let ca = ca.display();
    format!(
        r#"modules:
  http_2xx:
    prober: http
    timeout: 1s
    http:
      preferred_ip_protocol: ip4
  http_gzip:
    prober: http
    timeout: 1s
    http:
      preferred_ip_protocol: ip4
      compression: gzip
  https_ca:
    prober: http
    timeout: 1s
    http:
      preferred_ip_protocol: ip4
      tls_config:
        ca_file: {ca}
        server_name: localhost
  https_h2:
    prober: http
    timeout: 1s
    http:
      preferred_ip_protocol: ip4
      valid_http_versions: ["HTTP/2.0"]
      tls_config:
        ca_file: {ca}
        server_name: localhost
  https_insecure:
    prober: http
    timeout: 1s
    http:
      preferred_ip_protocol: ip4
      tls_config:
        insecure_skip_verify: true
  tcp_tls:
    prober: tcp
    timeout: 1s
    tcp:
      preferred_ip_protocol: ip4
      tls: true
      tls_config:
        ca_file: {ca}
        server_name: localhost
"#
    )
}

fn vantage_config(ca: &Path) -> String {
    let ca = ca.display();
    format!(
        r#"
[server]
probe_allow = ["http://dns-failure.invalid/**", "http://127.0.0.1:*/**", "https://127.0.0.1:*/**", "tls://127.0.0.1:*"]

[module.http_2xx]
kind = "http"
timeout = "1s"

[module.http_gzip]
kind = "http"
timeout = "1s"
compression = "gzip"

[module.https_ca]
kind = "http"
timeout = "1s"
tls = {{ ca = "{ca}", server_name = "localhost" }}

[module.https_h2]
kind = "http"
timeout = "1s"
http_versions = ["2"]
tls = {{ ca = "{ca}", server_name = "localhost" }}

[module.https_insecure]
kind = "http"
timeout = "1s"
tls = {{ insecure_skip_verify = true }}

[module.tcp_tls]
kind = "tls"
timeout = "1s"
server_name = "localhost"
tls = {{ ca = "{ca}" }}
"#
    )
}

async fn fetch(base: &str, module: &str, target: &str) -> String {
    let url = format!(
        "{base}/probe?module={module}&target={}",
        url::form_urlencoded::byte_serialize(target.as_bytes()).collect::<String>()
    );
    let resp = tokio::time::timeout(Duration::from_secs(10), crate::support::get(&url))
        .await
        .unwrap_or_else(|_| panic!("{url} answered within 10 s"))
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200, "{url}");
    resp.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blackbox_exporter_and_vantage_agree_metric_by_metric() {
    if !Path::new(BLACKBOX).exists() {
        panic!("{BLACKBOX} missing: the differential test needs the real blackbox_exporter");
    }
    let pki = Pki::new();
    let bb = Blackbox::start(&blackbox_modules(&pki.ca_path())).await;
    let va = start_daemon(&vantage_config(&pki.ca_path())).await;

    let plain = http_target().await;
    let extra = extra_target().await;
    let valid = pki.leaf(&["localhost", "127.0.0.1"], -1, 90);
    let https_valid = https_target(valid.chain.clone(), valid.key()).await;
    let (via, _) = pki.leaf_via_intermediate(&["localhost"], 90, 30);
    let https_inter = https_target(via.chain.clone(), via.key()).await;
    let expired = pki.leaf(&["localhost"], -30, -1);
    let https_expired = https_target(expired.chain.clone(), expired.key()).await;
    let selfs = Pki::self_signed(&["localhost"], 90);
    let https_self = https_target(selfs.chain.clone(), selfs.key()).await;
    let other = pki.leaf(&["other.example"], -1, 90);
    let https_wrong = https_target(other.chain.clone(), other.key()).await;
    let h2_only = crate::http2::h2_target(valid.chain.clone(), valid.key()).await;
    let tls_valid = tls_target(valid.chain.clone(), valid.key()).await;
    let tls_expired = tls_target(expired.chain.clone(), expired.key()).await;
    let closed = closed_port().await;

    let cases: Vec<(&str, &str, String)> = vec![
        ("http_200", "http_2xx", plain.url("/ok")),
        ("http_404", "http_2xx", plain.url("/status/404")),
        ("http_503", "http_2xx", plain.url("/status/503")),
        ("redirect_chain", "http_2xx", plain.url("/redirect/3")),
        (
            "chunked",
            "http_2xx",
            format!("http://{}/chunked", extra.addr),
        ),
        ("gzip", "http_2xx", format!("http://{}/gzip", extra.addr)),
        (
            "gzip_compression",
            "http_gzip",
            format!("http://{}/gzip", extra.addr),
        ),
        (
            "last_modified",
            "http_2xx",
            format!("http://{}/last-modified", extra.addr),
        ),
        (
            "last_modified_garbage",
            "http_2xx",
            format!("http://{}/last-modified-garbage", extra.addr),
        ),
        (
            "last_modified_far",
            "http_2xx",
            format!("http://{}/last-modified-far", extra.addr),
        ),
        (
            "last_modified_epoch",
            "http_2xx",
            format!("http://{}/last-modified-epoch", extra.addr),
        ),
        ("closed_port", "http_2xx", format!("http://{closed}/ok")),
        ("hang", "http_2xx", plain.url("/hang")),
        ("tls_valid", "https_ca", https_valid.https_url("/ok")),
        ("tls_intermediate", "https_ca", https_inter.https_url("/ok")),
        ("http2", "https_ca", h2_only.url("/ok")),
        ("http2_only", "https_h2", h2_only.url("/ok")),
        (
            "http2_only_on_http1",
            "https_h2",
            https_valid.https_url("/ok"),
        ),
        ("http2_gzip", "https_ca", h2_only.url("/gzip")),
        ("http2_redirect", "https_ca", h2_only.url("/redirect/2")),
        (
            "http2_last_modified",
            "https_ca",
            h2_only.url("/last-modified"),
        ),
        ("tls_expired", "https_ca", https_expired.https_url("/ok")),
        ("tls_self_signed", "https_ca", https_self.https_url("/ok")),
        ("tls_wrong_host", "https_ca", https_wrong.https_url("/ok")),
        (
            "tls_insecure_self_signed",
            "https_insecure",
            https_self.https_url("/ok"),
        ),
        (
            "dns_failure",
            "http_2xx",
            "http://dns-failure.invalid/ok".to_string(),
        ),
        ("tcp_tls_valid", "tcp_tls", tls_valid.addr.to_string()),
        ("tcp_tls_expired", "tcp_tls", tls_expired.addr.to_string()),
    ];

    let mut all = Vec::new();
    for (case, module, target) in &cases {
        let b = fetch(&format!("http://{}", bb.addr), module, target).await;
        let v = fetch(&va.url(""), module, target).await;
        if *case == "http2_only" {
            // The HTTP/2 case compares a success, not two agreeing failures.
            for (body, who) in [(&b, "blackbox_exporter"), (&v, "vantage")] {
                let s = series(body, false);
                for (name, want) in [("probe_success", 1.0), ("probe_http_version", 2.0)] {
                    assert_eq!(
                        s.get(&(name.to_string(), vec![])),
                        Some(&want),
                        "{who}:\n{body}"
                    );
                }
            }
        }
        let d = differences(case, &b, &v);
        if !d.is_empty() {
            all.push(format!(
                "--- {case}\n{}\nblackbox_exporter:\n{}\nvantage:\n{}",
                d.join("\n"),
                strip(&b),
                strip(&v)
            ));
        }
    }
    assert!(
        all.is_empty(),
        "unexplained differences (fix them or list them in KNOWN_DIFFERENCES and the README):\n{}",
        all.join("\n")
    );
    va.stop().await;
}

fn strip(body: &str) -> String {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_known_difference_is_in_the_readme() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for (metric, _, _) in KNOWN_DIFFERENCES {
        assert!(
            readme.contains(&format!("`{metric}`")),
            "README compatibility table lacks {metric}"
        );
    }
    for (metric, label, _) in KNOWN_LABEL_DIFFERENCES {
        assert!(
            readme.contains(&format!("`{metric}`")) && readme.contains(&format!("`{label}`")),
            "README compatibility table lacks {metric} {label}"
        );
    }
}

#[test]
fn the_comparison_catches_a_difference() {
    let b = "probe_success 1\nprobe_http_content_length -1\nprobe_ip_addr_hash 1\n";
    let v = "probe_success 1\nprobe_http_content_length 300\n";
    let d = differences("x", b, v);
    assert_eq!(d.len(), 2, "{d:?}");
    // Timings compare by presence only.
    assert!(differences(
        "x",
        "probe_duration_seconds 1\n",
        "probe_duration_seconds 2\n"
    )
    .is_empty());
    assert_eq!(differences("x", "probe_duration_seconds 1\n", "").len(), 1);
}
