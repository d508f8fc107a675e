//! Probe kinds icmp and grpc against real loopback peers built here (split from `kinds.rs`).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use vantage_probes::Reason;

use crate::fixtures::Pki;
use crate::kinds::{acceptor, run_cfg, serve};
use crate::support::outcome;

fn icmp_permitted() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    let cap_net_raw = status
        .lines()
        .find(|l| l.starts_with("CapEff:"))
        .and_then(|l| u64::from_str_radix(l.split_whitespace().nth(1)?, 16).ok())
        .is_some_and(|caps| caps & (1 << 13) != 0);
    let gid = field("Gid:").unwrap_or(u64::MAX);
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range").unwrap_or_default();
    let mut r = range
        .split_whitespace()
        .filter_map(|v| v.parse::<u64>().ok());
    let in_range = matches!((r.next(), r.next()), (Some(lo), Some(hi)) if lo <= gid && gid <= hi);
    cap_net_raw || in_range
}

#[tokio::test]
async fn icmp_echo_to_loopback_v4_and_v6() {
    let cfg = "[[probe]]\nname = \"v4\"\nkind = \"icmp\"\ntarget = \"127.0.0.1\"\ntimeout = \"2s\"\npayload_size = 100\n\
               [[probe]]\nname = \"v6\"\nkind = \"icmp\"\ntarget = \"::1\"\ntimeout = \"2s\"\n";
    let pki = Pki::new();
    let (_c, all) = run_cfg(&pki, cfg).await;
    for name in ["v4", "v6"] {
        let o = outcome(&all, name);
        if icmp_permitted() {
            assert!(o.success(), "{name}: {o:?}");
            let i = o.facts.icmp().unwrap();
            assert!(i.rtt_seconds.is_some_and(|r| r > 0.0), "{i:?}");
            assert!(o.evidence.contains("echo reply from"), "{}", o.evidence);
        } else {
            assert_eq!(o.reason, Some(Reason::Connect), "{o:?}");
            assert!(
                o.evidence.contains("ICMP is not permitted"),
                "{}",
                o.evidence
            );
            assert!(o.evidence.contains("ping_group_range"), "{}", o.evidence);
        }
    }
    if icmp_permitted() {
        let v4 = outcome(&all, "v4").facts.icmp().unwrap();
        if v4.socket == "raw" {
            assert_eq!(v4.hop_limit, Some(64), "{v4:?}");
        }
    }
}

// ---------------------------------------------------------------- grpc

fn grpc_frame(status: u8) -> bytes::Bytes {
    bytes::Bytes::from(vec![0, 0, 0, 0, 2, 0x08, status])
}

/// A gRPC health server over h2: "" and "svc-ok" SERVING, "svc-down" NOT_SERVING, anything else
/// NOT_FOUND (trailers only).
pub(crate) async fn grpc_server(tls: Option<tokio_rustls::TlsAcceptor>) -> SocketAddr {
    async fn handle<S: AsyncRead + AsyncWrite + Unpin>(io: S) {
        let Ok(mut conn) = h2::server::handshake(io).await else {
            return;
        };
        while let Some(Ok((req, mut respond))) = conn.accept().await {
            let mut body = req.into_body();
            let mut data = Vec::new();
            while let Some(Ok(chunk)) = body.data().await {
                let _ = body.flow_control().release_capacity(chunk.len());
                data.extend_from_slice(&chunk);
            }
            let service = if data.len() > 7 {
                String::from_utf8_lossy(&data[7..]).into_owned()
            } else {
                String::new()
            };
            let status = match service.as_str() {
                "" | "svc-ok" => Some(1),
                "svc-down" => Some(2),
                _ => None,
            };
            let resp = http::Response::builder()
                .status(200)
                .header("content-type", "application/grpc");
            match status {
                Some(s) => {
                    let Ok(mut send) = respond.send_response(resp.body(()).unwrap(), false) else {
                        continue;
                    };
                    let _ = send.send_data(grpc_frame(s), false);
                    let mut trailers = http::HeaderMap::new();
                    trailers.insert("grpc-status", "0".parse().unwrap());
                    let _ = send.send_trailers(trailers);
                }
                None => {
                    let resp = resp
                        .header("grpc-status", "5")
                        .header("grpc-message", "unknown service")
                        .body(())
                        .unwrap();
                    let _ = respond.send_response(resp, true);
                }
            }
        }
    }
    serve(move |s| {
        let tls = tls.clone();
        async move {
            match tls {
                Some(acc) => {
                    if let Ok(t) = acc.accept(s).await {
                        handle(t).await
                    }
                }
                None => handle(s).await,
            }
        }
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn grpc_health_checks() {
    let pki = Pki::new();
    let leaf = pki.leaf(&["localhost"], -1, 30);
    let plain = grpc_server(None).await;
    let tls = grpc_server(Some(acceptor(leaf.chain.clone(), leaf.key(), &[b"h2"]))).await;
    let http1 = serve(|mut s| async move {
        let mut buf = [0u8; 256];
        let _ = s.read(&mut buf).await;
        let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
    })
    .await;
    let silent = serve(|s| async move {
        tokio::time::sleep(Duration::from_secs(4)).await;
        drop(s);
    })
    .await;
    let g = |name: &str, addr: SocketAddr, extra: &str| {
        format!("[[probe]]\nname = \"{name}\"\nkind = \"grpc\"\ntarget = \"{addr}\"\ntimeout = \"2s\"\n{extra}\n")
    };
    let mut cfg = String::new();
    cfg += &g("whole", plain, "");
    cfg += &g("ok", plain, "service = \"svc-ok\"");
    cfg += &g("down", plain, "service = \"svc-down\"");
    cfg += &g("missing", plain, "service = \"nope\"");
    cfg += &g("tls", tls, "service = \"svc-ok\"\ntls = true\ntls_config = { ca = \"ca.pem\", server_name = \"localhost\" }");
    cfg += &g("not-grpc", http1, "");
    cfg += &g("silent", silent, "timeout = \"500ms\"").replace("timeout = \"2s\"\n", "");
    cfg += &g("tls-to-plain", plain, "tls = true");
    let (_c, all) = run_cfg(&pki, &cfg).await;

    for name in ["whole", "ok"] {
        let o = outcome(&all, name);
        assert!(o.success(), "{name}: {o:?}");
        assert_eq!(
            o.facts.grpc().unwrap().serving_status.as_deref(),
            Some("SERVING")
        );
    }
    let o = outcome(&all, "down");
    assert_eq!(o.reason, Some(Reason::GrpcStatus), "{o:?}");
    assert!(o.evidence.contains("NOT_SERVING"), "{}", o.evidence);
    let o = outcome(&all, "missing");
    assert_eq!(o.reason, Some(Reason::GrpcStatus), "{o:?}");
    assert!(o.evidence.contains("NOT_FOUND"), "{}", o.evidence);
    assert_eq!(o.facts.grpc().unwrap().status_code, Some(5));
    let o = outcome(&all, "tls");
    assert!(o.success(), "{o:?}");
    assert!(o.facts.grpc().unwrap().ssl);
    assert_eq!(o.facts.tls().unwrap().leaf_not_after, leaf.not_after);
    assert_eq!(outcome(&all, "not-grpc").reason, Some(Reason::Protocol));
    let o = outcome(&all, "silent");
    assert_eq!(o.reason, Some(Reason::Timeout), "{o:?}");
    assert!(
        o.evidence.contains("waiting for the health check"),
        "{}",
        o.evidence
    );
    assert_eq!(
        outcome(&all, "tls-to-plain").reason,
        Some(Reason::TlsHandshake)
    );
}

// ---------------------------------------------------------------- config
