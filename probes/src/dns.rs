//! `kind = "dns"`: one query to one server, over UDP or TCP, with our own sockets and timeouts
//! (hickory-proto only builds and parses messages).
//!
//! Over UDP a reply with another ID is ignored and the probe keeps waiting (an off-path reply or
//! a late answer to an earlier query); a truncated (TC) reply is retried over TCP, as a resolver
//! would. Records are matched by regex in their zone-file form as hickory prints them:
//! `example.com. 300 IN A 192.0.2.1`.

use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
pub use hickory_proto::rr::{Name, RecordType};
use hickory_proto::rr::{RData, Record};
use regex::Regex;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UdpSocket;
use tokio::time::Instant;

use crate::net::{self, Failure, IpFamily};
use crate::outcome::{ConnFacts, Facts, KindFacts, Outcome, Phases, Reason};
use crate::Clock;

/// How the query travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DnsTransport {
    #[default]
    Udp,
    Tcp,
}

impl DnsTransport {
    pub fn as_str(self) -> &'static str {
        match self {
            DnsTransport::Udp => "udp",
            DnsTransport::Tcp => "tcp",
        }
    }
}

/// Assertions on one section's records (each record in its zone-file form).
#[derive(Debug, Clone, Default)]
pub struct RrAssertions {
    /// Fails when any record matches one of these (blackbox_exporter's fail_if_matches_regexp).
    pub none_match: Vec<Regex>,
    /// Fails when some record does not match one of these (fail_if_not_matches_regexp).
    pub all_match: Vec<Regex>,
    /// Fails when no record matches one of these (fail_if_none_matches_regexp).
    pub some_match: Vec<Regex>,
}

impl RrAssertions {
    fn check(&self, section: &str, records: &[String]) -> Result<(), String> {
        for re in &self.none_match {
            if let Some(r) = records.iter().find(|r| re.is_match(r)) {
                return Err(format!(
                    "{section} record {r:?} matches {:?} (none_match)",
                    re.as_str()
                ));
            }
        }
        for re in &self.all_match {
            if let Some(r) = records.iter().find(|r| !re.is_match(r)) {
                return Err(format!(
                    "{section} record {r:?} does not match {:?} (all_match)",
                    re.as_str()
                ));
            }
        }
        for re in &self.some_match {
            if !records.iter().any(|r| re.is_match(r)) {
                return Err(format!(
                    "no {section} record matches {:?} (some_match); records: {records:?}",
                    re.as_str()
                ));
            }
        }
        Ok(())
    }
}

/// A `kind = "dns"` probe.
#[derive(Debug, Clone)]
pub struct DnsSpec {
    /// The server to ask.
    pub host: String,
    pub port: u16,
    pub ip: IpFamily,
    pub timeout: Duration,
    pub transport: DnsTransport,
    pub query_name: Name,
    pub query_type: RecordType,
    pub recursion_desired: bool,
    /// Acceptable rcodes (numbers); default `[0]` (NOERROR).
    pub valid_rcodes: Vec<u16>,
    pub answer: RrAssertions,
    pub authority: RrAssertions,
    pub additional: RrAssertions,
    pub filter: Option<net::AddressFilter>,
}

/// What a dns run learnt.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DnsFacts {
    /// The reply's rcode, e.g. "NOERROR"; empty when no reply came.
    pub rcode: String,
    pub answer: Vec<String>,
    pub authority: Vec<String>,
    pub additional: Vec<String>,
    /// SOA serial from the answer section.
    pub serial: Option<u32>,
    /// "udp" or "tcp": how the reply that counted came.
    pub transport: String,
    /// A UDP reply was truncated and the query was repeated over TCP.
    pub retried_over_tcp: bool,
    /// Replies ignored because their ID was not the query's.
    pub ignored_replies: u32,
    /// The reply arrived with a valid rcode (blackbox_exporter's `probe_dns_query_succeeded`).
    pub query_succeeded: bool,
}

/// rcode names as DNS tools write them.
pub const RCODES: [(&str, u16); 11] = [
    ("NOERROR", 0),
    ("FORMERR", 1),
    ("SERVFAIL", 2),
    ("NXDOMAIN", 3),
    ("NOTIMP", 4),
    ("REFUSED", 5),
    ("YXDOMAIN", 6),
    ("YXRRSET", 7),
    ("NXRRSET", 8),
    ("NOTAUTH", 9),
    ("NOTZONE", 10),
];

/// `NOERROR` → 0, case-insensitive.
pub fn parse_rcode(s: &str) -> Option<u16> {
    RCODES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(s))
        .map(|(_, c)| *c)
}

pub fn rcode_name(code: u16) -> String {
    RCODES
        .iter()
        .find(|(_, c)| *c == code)
        .map_or_else(|| format!("RCODE{code}"), |(n, _)| (*n).to_string())
}

/// A query name, made fully qualified; `None` when it is not a domain name.
pub fn parse_name(s: &str) -> Option<Name> {
    if s.trim().is_empty() || s.len() > 255 {
        return None;
    }
    let mut n = Name::from_utf8(s).ok()?;
    n.set_fqdn(true);
    Some(n)
}

/// A record type by name (`A`, `aaaa`, `MX`, …); `None` for a name hickory does not know.
pub fn parse_type(s: &str) -> Option<RecordType> {
    s.to_ascii_uppercase()
        .parse::<RecordType>()
        .ok()
        .filter(|t| !matches!(t, RecordType::Unknown(_)))
}

/// Largest UDP reply read.
const MAX_UDP: usize = 65_535;
/// Replies read on one UDP socket before giving up (wrong IDs included): bounds a flood.
const MAX_UDP_REPLIES: u32 = 256;

/// Run one dns probe.
pub async fn run_dns(spec: &DnsSpec, _clock: &Clock, scheduled: Instant) -> Outcome {
    let mut phases = Phases::default();
    let mut facts = ConnFacts::default();
    let mut dns = DnsFacts::default();
    let mut doing = String::from("resolving the server");
    let deadline = crate::deadline(scheduled, spec.timeout);
    let result = tokio::time::timeout_at(
        deadline,
        dns_inner(spec, &mut phases, &mut facts, &mut dns, &mut doing),
    )
    .await
    .unwrap_or_else(|_| {
        Err(Failure::new(
            Reason::Timeout,
            format!("timed out after {:?} while {doing}", spec.timeout),
        ))
    });
    if result.is_err() {
        let accounted: Duration = phases.as_array().iter().sum();
        let total = scheduled.elapsed();
        if total > accounted && !doing.starts_with("resolving") {
            if doing.starts_with("connecting") {
                phases.connect += total - accounted;
            } else {
                phases.processing += total - accounted;
            }
        }
    }
    let facts = Facts::new(facts, KindFacts::Dns(dns));
    crate::finish(scheduled, phases, facts, result)
}

fn random_id() -> u16 {
    let mut h = std::hash::RandomState::new().build_hasher();
    h.write_u64(u64::from(std::process::id()));
    (h.finish() & 0xffff) as u16
}

async fn dns_inner(
    spec: &DnsSpec,
    phases: &mut Phases,
    facts: &mut ConnFacts,
    dns: &mut DnsFacts,
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
    let id = random_id();
    let mut msg = Message::new();
    msg.set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(spec.recursion_desired)
        .add_query(Query::query(spec.query_name.clone(), spec.query_type));
    let query = msg
        .to_vec()
        .map_err(|e| Failure::new(Reason::Protocol, format!("encoding the query: {e}")))?;

    let mut reply = match spec.transport {
        DnsTransport::Udp => {
            *doing = format!("waiting for a UDP reply from {addr}");
            let r = udp_exchange(addr, &query, id, phases, dns).await?;
            dns.transport = "udp".into();
            r
        }
        DnsTransport::Tcp => None,
    };
    if reply.as_ref().is_none_or(|m| m.truncated()) {
        if reply.is_some() {
            dns.retried_over_tcp = true;
        }
        *doing = format!("connecting to {addr} over TCP");
        let mut stream = net::connect(addr, &mut phases.connect).await?;
        *doing = format!("waiting for a TCP reply from {addr}");
        let start = Instant::now();
        let r = tcp_exchange(&mut stream, &query, id).await;
        phases.processing += start.elapsed();
        reply = Some(r?);
        dns.transport = "tcp".into();
    }
    let Some(reply) = reply else {
        return Err(Failure::new(Reason::Protocol, "no reply"));
    };
    let rcode = u16::from(reply.response_code());
    dns.rcode = rcode_name(rcode);
    let show = |rs: &[Record]| rs.iter().map(|r| r.to_string()).collect::<Vec<_>>();
    dns.answer = show(reply.answers());
    dns.authority = show(reply.name_servers());
    dns.additional = show(reply.additionals());
    dns.serial = reply.answers().iter().find_map(|r| match r.data() {
        RData::SOA(soa) => Some(soa.serial()),
        _ => None,
    });
    if !spec.valid_rcodes.contains(&rcode) {
        let valid: Vec<String> = spec.valid_rcodes.iter().map(|c| rcode_name(*c)).collect();
        return Err(Failure::new(
            Reason::DnsRcode,
            format!(
                "{addr} answered {} for {} {}, valid: {}",
                dns.rcode,
                spec.query_name,
                spec.query_type,
                valid.join(", ")
            ),
        ));
    }
    dns.query_succeeded = true;
    for (section, assertions, records) in [
        ("answer", &spec.answer, &dns.answer),
        ("authority", &spec.authority, &dns.authority),
        ("additional", &spec.additional, &dns.additional),
    ] {
        assertions
            .check(section, records)
            .map_err(|why| Failure::new(Reason::AssertionDns, why))?;
    }
    Ok(format!(
        "{addr} over {}: {} for {} {}, {} answer, {} authority, {} additional record(s)",
        dns.transport,
        dns.rcode,
        spec.query_name,
        spec.query_type,
        dns.answer.len(),
        dns.authority.len(),
        dns.additional.len()
    ))
}

/// Send over UDP and wait for the reply with our ID. `Ok(None)` never happens today; a
/// truncated reply is returned for the caller to retry over TCP.
async fn udp_exchange(
    addr: SocketAddr,
    query: &[u8],
    id: u16,
    phases: &mut Phases,
    dns: &mut DnsFacts,
) -> Result<Option<Message>, Failure> {
    let bind: SocketAddr = if addr.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let start = Instant::now();
    let socket = UdpSocket::bind(bind)
        .await
        .map_err(|e| Failure::new(Reason::Connect, format!("UDP socket: {e}")))?;
    // connect() makes the kernel drop datagrams from any other address.
    socket
        .connect(addr)
        .await
        .map_err(|e| Failure::new(Reason::Connect, format!("UDP to {addr}: {e}")))?;
    phases.connect += start.elapsed();
    let start = Instant::now();
    let result = async {
        socket
            .send(query)
            .await
            .map_err(|e| Failure::new(Reason::Connect, format!("sending to {addr}: {e}")))?;
        let mut buf = vec![0u8; MAX_UDP];
        for _ in 0..MAX_UDP_REPLIES {
            let n = socket
                .recv(&mut buf)
                .await
                .map_err(|e| Failure::new(Reason::Connect, format!("UDP from {addr}: {e}")))?;
            let msg = Message::from_vec(&buf[..n]).map_err(|e| {
                Failure::new(
                    Reason::Protocol,
                    format!("{addr} sent a reply that does not parse as DNS ({n} bytes): {e}"),
                )
            })?;
            if msg.id() != id || msg.message_type() != MessageType::Response {
                dns.ignored_replies += 1;
                continue;
            }
            return Ok(Some(msg));
        }
        Err(Failure::new(
            Reason::Protocol,
            format!("{addr} sent {MAX_UDP_REPLIES} replies, none to our query"),
        ))
    }
    .await;
    phases.processing += start.elapsed();
    result
}

/// One query over a TCP connection (two-byte length prefix).
async fn tcp_exchange(
    stream: &mut tokio::net::TcpStream,
    query: &[u8],
    id: u16,
) -> Result<Message, Failure> {
    let len = u16::try_from(query.len())
        .map_err(|_| Failure::new(Reason::Protocol, "query too long for TCP"))?;
    let mut framed = Vec::with_capacity(query.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(query);
    stream
        .write_all(&framed)
        .await
        .map_err(|e| Failure::new(Reason::Connect, format!("sending over TCP: {e}")))?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await.map_err(|e| {
        Failure::new(
            Reason::Protocol,
            format!("reading the TCP reply's length: {e}"),
        )
    })?;
    let len = usize::from(u16::from_be_bytes(len));
    let mut buf = vec![0u8; len];
    stream.read_exact(&mut buf).await.map_err(|e| {
        Failure::new(
            Reason::Protocol,
            format!("reading a {len}-byte TCP reply: {e}"),
        )
    })?;
    let msg = Message::from_vec(&buf).map_err(|e| {
        Failure::new(
            Reason::Protocol,
            format!("TCP reply does not parse as DNS: {e}"),
        )
    })?;
    if msg.id() != id {
        return Err(Failure::new(
            Reason::Protocol,
            format!("TCP reply has ID {} but the query had {id}", msg.id()),
        ));
    }
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rcode_names() {
        assert_eq!(parse_rcode("nxdomain"), Some(3));
        assert_eq!(rcode_name(3), "NXDOMAIN");
        assert_eq!(rcode_name(23), "RCODE23");
        assert_eq!(parse_rcode("bogus"), None);
    }

    #[test]
    fn assertions() {
        let recs = vec!["a. 1 IN A 192.0.2.1".to_string()];
        let a = RrAssertions {
            some_match: vec![Regex::new("192\\.0\\.2\\.1").unwrap()],
            ..Default::default()
        };
        assert!(a.check("answer", &recs).is_ok());
        let b = RrAssertions {
            none_match: vec![Regex::new("IN A").unwrap()],
            ..Default::default()
        };
        assert!(b.check("answer", &recs).is_err());
        let c = RrAssertions {
            all_match: vec![Regex::new("AAAA").unwrap()],
            ..Default::default()
        };
        assert!(c.check("answer", &recs).is_err());
    }
}
