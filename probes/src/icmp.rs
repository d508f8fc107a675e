//! `kind = "icmp"`: one echo request, one echo reply, over IPv4 or IPv6.
//!
//! The socket is an unprivileged ping socket (`SOCK_DGRAM`, allowed when the process's group is
//! in `net.ipv4.ping_group_range`) when the kernel allows one, else a raw socket (needs
//! `CAP_NET_RAW`); when neither is permitted the run fails with an error that says so. The
//! socket is connected to the target, so the kernel drops datagrams from other hosts, and every
//! reply is checked again here: source address, type, identifier (raw sockets; ping sockets
//! have theirs rewritten by the kernel), sequence and payload. Anything else is ignored and the
//! probe keeps waiting, within its timeout.

use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::time::Duration;

use serde::Serialize;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::time::Instant;

use crate::net::{self, Failure, IpFamily};
use crate::outcome::{ConnFacts, Facts, KindFacts, Outcome, Phases, Reason};
use crate::Clock;

/// Largest `payload_size`.
pub const MAX_PAYLOAD: usize = 65_000;
/// Datagrams read before giving up (wrong hosts and IDs included): bounds a flood.
const MAX_READS: u32 = 1024;

/// A `kind = "icmp"` probe.
#[derive(Debug, Clone)]
pub struct IcmpSpec {
    pub host: String,
    pub ip: IpFamily,
    pub timeout: Duration,
    /// Bytes of payload after the 8-byte ICMP header.
    pub payload_size: usize,
    pub filter: Option<net::AddressFilter>,
}

/// What an icmp run saw.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IcmpFacts {
    /// "dgram" (unprivileged ping socket) or "raw".
    pub socket: String,
    /// Round-trip time of the echo, seconds.
    pub rtt_seconds: Option<f64>,
    /// TTL / hop limit of the reply, when the socket shows it (raw IPv4).
    pub hop_limit: Option<u8>,
    /// Datagrams ignored (another host, type, identifier or sequence).
    pub ignored: u32,
}

/// Run one icmp probe. Phases: resolve, connect (socket setup), processing (round trip).
pub async fn run_icmp(spec: &IcmpSpec, _clock: &Clock, scheduled: Instant) -> Outcome {
    let mut phases = Phases::default();
    let mut facts = ConnFacts::default();
    let mut icmp = IcmpFacts::default();
    let mut doing = "resolving".to_string();
    let deadline = crate::deadline(scheduled, spec.timeout);
    let result = tokio::time::timeout_at(
        deadline,
        icmp_inner(spec, &mut phases, &mut facts, &mut icmp, &mut doing),
    )
    .await
    .unwrap_or_else(|_| {
        Err(Failure::new(
            Reason::Timeout,
            format!("timed out after {:?} while {doing}", spec.timeout),
        ))
    });
    if result.is_err() && doing.starts_with("waiting") {
        let accounted: Duration = phases.as_array().iter().sum();
        phases.processing += scheduled.elapsed().saturating_sub(accounted);
    }
    let facts = Facts::new(facts, KindFacts::Icmp(icmp));
    crate::finish(scheduled, phases, facts, result)
}

fn random_u16() -> u16 {
    let mut h = std::hash::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    (h.finish() & 0xffff) as u16
}

/// Open a ping socket, else a raw one; the error names both refusals.
fn open(v6: bool) -> Result<(Socket, bool), Failure> {
    let (domain, proto) = if v6 {
        (Domain::IPV6, Protocol::ICMPV6)
    } else {
        (Domain::IPV4, Protocol::ICMPV4)
    };
    let dgram = match Socket::new(domain, Type::DGRAM, Some(proto)) {
        Ok(s) => return Ok((s, false)),
        Err(e) => e,
    };
    match Socket::new(domain, Type::RAW, Some(proto)) {
        Ok(s) => Ok((s, true)),
        Err(raw) => Err(Failure::new(
            Reason::Connect,
            format!(
                "ICMP is not permitted: an unprivileged ping socket was refused ({dgram}; \
                 allow this process's group in net.ipv4.ping_group_range) and a raw socket \
                 was refused ({raw}; needs CAP_NET_RAW)"
            ),
        )),
    }
}

async fn icmp_inner(
    spec: &IcmpSpec,
    phases: &mut Phases,
    facts: &mut ConnFacts,
    icmp: &mut IcmpFacts,
    doing: &mut String,
) -> Result<String, Failure> {
    let addr = net::resolve(
        &spec.host,
        0,
        spec.ip,
        spec.filter.as_ref(),
        &mut phases.resolve,
    )
    .await?;
    facts.ip_protocol = Some(net::family_number(&addr));
    let v6 = addr.is_ipv6();
    *doing = "opening an ICMP socket".into();
    let start = Instant::now();
    let setup = (|| {
        let (socket, raw) = open(v6)?;
        let io = |e: std::io::Error| Failure::new(Reason::Connect, format!("ICMP socket: {e}"));
        socket.set_nonblocking(true).map_err(io)?;
        socket.connect(&addr.into()).map_err(io)?;
        let std_socket: std::net::UdpSocket = socket.into();
        let socket = UdpSocket::from_std(std_socket).map_err(io)?;
        Ok::<_, Failure>((socket, raw))
    })();
    phases.connect += start.elapsed();
    let (socket, raw) = setup?;
    icmp.socket = if raw { "raw" } else { "dgram" }.into();

    let id = random_u16();
    let seq = random_u16();
    let payload: Vec<u8> = (0..spec.payload_size).map(|i| (i % 251) as u8).collect();
    let request = echo_request(v6, id, seq, &payload);
    *doing = format!("waiting for an echo reply from {}", addr.ip());
    let start = Instant::now();
    let result = async {
        socket.send(&request).await.map_err(|e| {
            Failure::new(
                Reason::Connect,
                format!("sending an echo request to {}: {e}", addr.ip()),
            )
        })?;
        let mut buf = vec![0u8; spec.payload_size + 128];
        for _ in 0..MAX_READS {
            let (n, from) = socket.recv_from(&mut buf).await.map_err(|e| {
                Failure::new(Reason::Connect, format!("ICMP from {}: {e}", addr.ip()))
            })?;
            let expect = Expected {
                from: addr.ip(),
                id: raw.then_some(id),
                seq,
                payload: &payload,
                ip_header: raw && !v6,
            };
            match parse_reply(&buf[..n], from.ip(), &expect) {
                Some(hop_limit) => return Ok(hop_limit),
                None => icmp.ignored += 1,
            }
        }
        Err(Failure::new(
            Reason::Protocol,
            format!("{MAX_READS} ICMP datagrams arrived, none our echo reply"),
        ))
    }
    .await;
    let rtt = start.elapsed();
    phases.processing += rtt;
    let hop_limit = result?;
    icmp.rtt_seconds = Some(rtt.as_secs_f64());
    icmp.hop_limit = hop_limit;
    Ok(format!(
        "echo reply from {} in {:.3} ms ({} socket, {} payload bytes)",
        addr.ip(),
        rtt.as_secs_f64() * 1000.0,
        icmp.socket,
        spec.payload_size
    ))
}

/// An ICMP echo request: type, code, checksum, identifier, sequence, payload.
pub fn echo_request(v6: bool, id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(8 + payload.len());
    p.push(if v6 { 128 } else { 8 });
    p.push(0);
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(payload);
    if !v6 {
        // ICMPv6's checksum covers a pseudo-header: the kernel fills it in.
        let sum = checksum(&p);
        p[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    p
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in data.chunks(2) {
        let word = u16::from_be_bytes([chunk[0], chunk.get(1).copied().unwrap_or(0)]);
        sum = sum.wrapping_add(u32::from(word));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// What the reply to our request looks like.
pub struct Expected<'a> {
    pub from: IpAddr,
    /// Checked on raw sockets; ping sockets rewrite it.
    pub id: Option<u16>,
    pub seq: u16,
    pub payload: &'a [u8],
    /// Raw IPv4 sockets deliver the IP header too.
    pub ip_header: bool,
}

/// `Some(hop limit)` when `datagram` from `from` is our echo reply; `None` to ignore it.
pub fn parse_reply(datagram: &[u8], from: IpAddr, expect: &Expected<'_>) -> Option<Option<u8>> {
    if from != expect.from {
        return None;
    }
    let (icmp, hop_limit) = if expect.ip_header {
        let first = *datagram.first()?;
        if first >> 4 != 4 {
            return None;
        }
        let ihl = usize::from(first & 0x0f) * 4;
        if ihl < 20 {
            return None;
        }
        (datagram.get(ihl..)?, Some(*datagram.get(8)?))
    } else {
        (datagram, None)
    };
    if icmp.len() < 8 {
        return None;
    }
    let reply_type = if expect.from.is_ipv6() { 129 } else { 0 };
    if icmp[0] != reply_type || icmp[1] != 0 {
        return None;
    }
    let id = u16::from_be_bytes([icmp[4], icmp[5]]);
    let seq = u16::from_be_bytes([icmp[6], icmp[7]]);
    if expect.id.is_some_and(|want| want != id) || seq != expect.seq {
        return None;
    }
    if &icmp[8..] != expect.payload {
        return None;
    }
    Some(hop_limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(v6: bool, id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
        let mut r = echo_request(v6, id, seq, payload);
        r[0] = if v6 { 129 } else { 0 };
        r
    }

    #[test]
    fn accepts_only_our_reply() {
        let me: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        let expect = Expected {
            from: me,
            id: Some(7),
            seq: 9,
            payload: b"abc",
            ip_header: false,
        };
        assert_eq!(
            parse_reply(&reply(false, 7, 9, b"abc"), me, &expect),
            Some(None)
        );
        // Another host, another identifier or sequence, another payload, a request, garbage.
        assert_eq!(
            parse_reply(&reply(false, 7, 9, b"abc"), other, &expect),
            None
        );
        assert_eq!(parse_reply(&reply(false, 8, 9, b"abc"), me, &expect), None);
        assert_eq!(parse_reply(&reply(false, 7, 10, b"abc"), me, &expect), None);
        assert_eq!(parse_reply(&reply(false, 7, 9, b"abd"), me, &expect), None);
        assert_eq!(
            parse_reply(&echo_request(false, 7, 9, b"abc"), me, &expect),
            None
        );
        assert_eq!(parse_reply(&[0, 0, 1], me, &expect), None);
    }

    #[test]
    fn raw_ipv4_reply_carries_ttl() {
        let me: IpAddr = "127.0.0.1".parse().unwrap();
        let mut d = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 61, 1, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1,
        ];
        d.extend(reply(false, 1, 2, b""));
        let expect = Expected {
            from: me,
            id: Some(1),
            seq: 2,
            payload: b"",
            ip_header: true,
        };
        assert_eq!(parse_reply(&d, me, &expect), Some(Some(61)));
        assert_eq!(parse_reply(&d[..10], me, &expect), None);
    }

    #[test]
    fn checksum_of_a_known_packet() {
        let p = echo_request(false, 0x1234, 1, b"");
        assert_eq!(checksum(&p), 0);
    }
}
