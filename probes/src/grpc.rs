//! `kind = "grpc"`: the standard health-checking protocol (`grpc.health.v1.Health/Check`) over
//! HTTP/2, in clear text (prior knowledge) or over TLS (ALPN `h2`, with the certificate model of
//! `kind = "tls"`). The request is one string field and the response one enum field, so both
//! are encoded by hand over the `h2` crate rather than pulling in a gRPC stack.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use crate::net::{self, Failure, IpFamily};
use crate::outcome::{ConnFacts, Facts, KindFacts, Outcome, Phases, Reason};
use crate::tls::{check_certificate, describe_expiry, TlsClient};
use crate::Clock;

/// Largest response body read (a health response is a few bytes).
const MAX_BODY: usize = 64 * 1024;

/// The health protocol's serving statuses, by number.
pub const SERVING_STATUSES: [&str; 4] = ["UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"];

/// gRPC status code names, by number.
const CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// A `kind = "grpc"` probe.
#[derive(Debug, Clone)]
pub struct GrpcSpec {
    pub host: String,
    pub port: u16,
    pub ip: IpFamily,
    pub timeout: Duration,
    /// The service asked about; empty: the server as a whole.
    pub service: String,
    /// TLS with ALPN h2; else clear-text HTTP/2.
    pub tls: bool,
    pub server_name: Option<String>,
    /// Built with ALPN `h2`.
    pub client: TlsClient,
    pub verify: bool,
    pub min_days_remaining: Option<f64>,
    pub filter: Option<net::AddressFilter>,
}

/// What a grpc run learnt.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GrpcFacts {
    /// `grpc-status` of the call (0 OK).
    pub status_code: Option<u32>,
    /// The health response: SERVING, NOT_SERVING, UNKNOWN or SERVICE_UNKNOWN.
    pub serving_status: Option<String>,
    /// `grpc-message`, when the server sent one.
    pub message: Option<String>,
    /// Whether the call went over TLS.
    pub ssl: bool,
}

/// Run one grpc health check.
pub async fn run_grpc(spec: &GrpcSpec, clock: &Clock, scheduled: Instant) -> Outcome {
    let mut phases = Phases::default();
    let mut facts = ConnFacts::default();
    let mut grpc = GrpcFacts::default();
    let mut doing = "resolving".to_string();
    let deadline = crate::deadline(scheduled, spec.timeout);
    let result = tokio::time::timeout_at(
        deadline,
        grpc_inner(spec, clock, &mut phases, &mut facts, &mut grpc, &mut doing),
    )
    .await
    .unwrap_or_else(|_| {
        Err(Failure::new(
            Reason::Timeout,
            format!("timed out after {:?} while {doing}", spec.timeout),
        ))
    });
    if result.is_err() && !doing.starts_with("resolving") {
        let accounted: Duration = phases.as_array().iter().sum();
        let rest = scheduled.elapsed().saturating_sub(accounted);
        if doing.starts_with("connecting") {
            phases.connect += rest;
        } else if doing.contains("TLS") {
            phases.tls += rest;
        } else {
            phases.processing += rest;
        }
    }
    let facts = Facts::new(facts, KindFacts::Grpc(grpc));
    crate::finish(scheduled, phases, facts, result)
}

async fn grpc_inner(
    spec: &GrpcSpec,
    clock: &Clock,
    phases: &mut Phases,
    facts: &mut ConnFacts,
    grpc: &mut GrpcFacts,
    doing: &mut String,
) -> Result<String, Failure> {
    let addr = net::resolve(
        &spec.host,
        spec.port,
        spec.ip,
        spec.filter.as_ref(),
        &mut phases.resolve,
    )
    .await?;
    facts.ip_protocol = Some(net::family_number(&addr));
    *doing = format!("connecting to {addr}");
    let tcp = net::connect(addr, &mut phases.connect).await?;
    let authority = if spec.host.contains(':') && !spec.host.starts_with('[') {
        format!("[{}]:{}", spec.host, spec.port)
    } else {
        format!("{}:{}", spec.host, spec.port)
    };
    let mut summary = String::new();
    let result = if spec.tls {
        *doing = "in the TLS handshake".into();
        let name = spec.server_name.as_deref().unwrap_or(&spec.host);
        let (stream, tls) = spec
            .client
            .handshake(tcp, name, clock, &mut phases.tls)
            .await?;
        grpc.ssl = true;
        let now = clock.unix_secs();
        summary = format!(
            ", TLS {} {}, {}",
            tls.version,
            tls.cipher,
            describe_expiry(&tls, now)
        );
        let alpn_h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
        let verdict = check_certificate(&tls, spec.verify, spec.min_days_remaining, now);
        facts.tls = Some(tls);
        verdict.map_err(|f| Failure::new(f.reason, format!("{}{summary}", f.evidence)))?;
        if !alpn_h2 {
            return Err(Failure::new(
                Reason::Protocol,
                format!("the server did not agree to HTTP/2 (ALPN h2){summary}"),
            ));
        }
        *doing = "waiting for the health check's reply".into();
        check(stream, "https", &authority, spec, phases, grpc).await
    } else {
        *doing = "waiting for the health check's reply".into();
        check(tcp, "http", &authority, spec, phases, grpc).await
    };
    result?;
    let what = if spec.service.is_empty() {
        "the server".to_string()
    } else {
        format!("service {:?}", spec.service)
    };
    Ok(format!("{addr}: {what} is SERVING{summary}"))
}

/// The Check call over one connection.
async fn check<S>(
    io: S,
    scheme: &str,
    authority: &str,
    spec: &GrpcSpec,
    phases: &mut Phases,
    grpc: &mut GrpcFacts,
) -> Result<(), Failure>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let start = Instant::now();
    let proto = |e: h2::Error| Failure::new(Reason::Protocol, format!("HTTP/2: {e}"));
    let call = async {
        let (client, conn) = h2::client::handshake(io).await.map_err(proto)?;
        let exchange = async {
            let mut client = client.ready().await.map_err(proto)?;
            let request = http::Request::builder()
                .method("POST")
                .uri(format!(
                    "{scheme}://{authority}/grpc.health.v1.Health/Check"
                ))
                .header("content-type", "application/grpc")
                .header("te", "trailers")
                .body(())
                .map_err(|e| Failure::new(Reason::Protocol, format!("request: {e}")))?;
            let (response, mut send) = client.send_request(request, false).map_err(proto)?;
            send.send_data(frame(&encode_request(&spec.service)), true)
                .map_err(proto)?;
            let response = response.await.map_err(proto)?;
            let (parts, mut body) = response.into_parts();
            if parts.status != http::StatusCode::OK {
                return Err(Failure::new(
                    Reason::GrpcStatus,
                    format!("HTTP status {} instead of 200", parts.status),
                ));
            }
            let mut data = BytesMut::new();
            while let Some(chunk) = body.data().await {
                let chunk = chunk.map_err(proto)?;
                let _ = body.flow_control().release_capacity(chunk.len());
                if data.len() + chunk.len() > MAX_BODY {
                    return Err(Failure::new(
                        Reason::Protocol,
                        format!("response body over {MAX_BODY} bytes"),
                    ));
                }
                data.extend_from_slice(&chunk);
            }
            let trailers = body.trailers().await.map_err(proto)?;
            // A trailers-only response carries grpc-status in the headers.
            let meta = trailers.as_ref().unwrap_or(&parts.headers);
            let status = meta
                .get("grpc-status")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u32>().ok());
            let message = meta
                .get("grpc-message")
                .and_then(|v| v.to_str().ok())
                .map(|m| m.chars().take(200).collect::<String>());
            Ok::<_, Failure>((status, message, data.freeze()))
        };
        tokio::select! {
            r = exchange => r,
            c = conn => Err(match c {
                Ok(()) => Failure::new(Reason::Protocol, "the server closed the HTTP/2 connection before replying"),
                Err(e) => proto(e),
            }),
        }
    };
    let result = call.await;
    phases.processing += start.elapsed();
    let (status, message, data) = result?;
    grpc.status_code = status;
    grpc.message = message.clone();
    match status {
        Some(0) => {}
        Some(code) => {
            let name = CODES.get(code as usize).copied().unwrap_or("UNKNOWN_CODE");
            return Err(Failure::new(
                Reason::GrpcStatus,
                format!(
                    "grpc-status {code} ({name}){}",
                    message.map(|m| format!(": {m}")).unwrap_or_default()
                ),
            ));
        }
        None => {
            return Err(Failure::new(
                Reason::Protocol,
                "the reply has no grpc-status",
            ))
        }
    }
    let serving = decode_response(&data)
        .map_err(|why| Failure::new(Reason::Protocol, format!("health response: {why}")))?;
    let name = SERVING_STATUSES
        .get(serving as usize)
        .copied()
        .unwrap_or("UNKNOWN");
    grpc.serving_status = Some(name.to_string());
    if serving != 1 {
        return Err(Failure::new(
            Reason::GrpcStatus,
            format!("health status {name} (service {:?})", spec.service),
        ));
    }
    Ok(())
}

/// A gRPC length-prefixed message, uncompressed.
fn frame(message: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(5 + message.len());
    out.push(0);
    out.extend_from_slice(
        &u32::try_from(message.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    out.extend_from_slice(message);
    Bytes::from(out)
}

/// `HealthCheckRequest { string service = 1; }`.
pub fn encode_request(service: &str) -> Vec<u8> {
    let mut out = Vec::new();
    if !service.is_empty() {
        out.push(0x0a);
        put_varint(&mut out, service.len() as u64);
        out.extend_from_slice(service.as_bytes());
    }
    out
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint(buf: &[u8], pos: &mut usize) -> Result<u64, String> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos).ok_or("truncated varint")?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("varint longer than 10 bytes".into())
}

/// The `status` of a framed `HealthCheckResponse { ServingStatus status = 1; }` (0 when absent,
/// as protobuf defaults).
pub fn decode_response(body: &[u8]) -> Result<u64, String> {
    if body.len() < 5 {
        return Err(format!(
            "{} bytes, shorter than a gRPC message header",
            body.len()
        ));
    }
    if body[0] != 0 {
        return Err("compressed messages are not supported".into());
    }
    let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    let msg = body.get(5..5 + len).ok_or_else(|| {
        format!(
            "message of {len} bytes announced, {} present",
            body.len() - 5
        )
    })?;
    let mut pos = 0;
    let mut status = 0;
    while pos < msg.len() {
        let key = varint(msg, &mut pos)?;
        let (field, wire) = (key >> 3, key & 7);
        match wire {
            0 => {
                let v = varint(msg, &mut pos)?;
                if field == 1 {
                    status = v;
                }
            }
            1 => pos += 8,
            2 => {
                let l = usize::try_from(varint(msg, &mut pos)?).map_err(|_| "length overflow")?;
                pos = pos.checked_add(l).ok_or("length overflow")?;
            }
            5 => pos += 4,
            w => return Err(format!("unsupported wire type {w}")),
        }
        if pos > msg.len() {
            return Err("truncated field".into());
        }
    }
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_and_response_encoding() {
        assert_eq!(encode_request(""), Vec::<u8>::new());
        assert_eq!(encode_request("ab"), vec![0x0a, 2, b'a', b'b']);
        assert_eq!(decode_response(&[0, 0, 0, 0, 2, 0x08, 1]), Ok(1));
        assert_eq!(decode_response(&[0, 0, 0, 0, 0]), Ok(0));
        assert!(decode_response(&[0, 0, 0, 0, 9, 0x08]).is_err());
        assert!(decode_response(&[0, 0, 0, 0, 2, 0x08, 0x80]).is_err());
        assert!(decode_response(&[1, 0, 0, 0, 0]).is_err());
        assert!(decode_response(&[0, 0, 0, 0, 3, 0x0a, 0x7f, 0]).is_err());
    }
}
