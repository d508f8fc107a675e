//! `kind = "tcp"`: connect, optionally TLS from the first byte, then a scripted dialogue of
//! `send` / `expect` / `starttls` steps. After a STARTTLS step the certificate model of
//! `kind = "tls"` applies (verdict, effective expiry, `probe_ssl_*`), so certificates behind
//! SMTP, IMAP, POP3 or PostgreSQL are watched like any other.
//!
//! An `expect` regex is matched (multi-line mode: `^` and `$` match at line boundaries) against
//! everything received since the previous match; the probe reads until it matches, the peer
//! closes, [`MAX_BUFFER`] bytes arrive without a match, or the run's timeout ends. Captures of a
//! match — numbered and named — can be used in later `send`s as `{{ 1 }}` or `{{ name }}` (the
//! scrape flows' template syntax; `${…}` is the config's environment interpolation).

use std::collections::HashMap;
use std::time::Duration;

use regex::bytes::Regex;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use crate::net::{self, Failure, IpFamily};
use crate::outcome::{ConnFacts, Facts, KindFacts, Outcome, Phases, Reason};
use crate::tls::{check_certificate, describe_expiry, TlsClient};
use crate::Clock;

/// Bytes held while waiting for one `expect` to match.
pub const MAX_BUFFER: usize = 64 * 1024;
/// Reads while waiting for one `expect`: a peer dripping bytes one at a time cannot make the
/// regex rescan the buffer more than this often (CPU stays bounded, not just time).
pub const MAX_READS: usize = 1024;
/// Steps in one dialogue.
pub const MAX_STEPS: usize = 64;

/// One step of a dialogue: any of send, expect and starttls, done in that order.
#[derive(Debug, Clone, Default)]
pub struct QueryStep {
    /// Bytes to write; `{{ 1 }}` / `{{ name }}` insert an earlier capture.
    pub send: Option<Vec<u8>>,
    pub expect: Option<Regex>,
    /// Upgrade the connection to TLS after this step's send and expect.
    pub starttls: bool,
}

/// A `kind = "tcp"` probe.
#[derive(Debug, Clone)]
pub struct TcpSpec {
    pub host: String,
    pub port: u16,
    pub ip: IpFamily,
    pub timeout: Duration,
    /// TLS from the first byte.
    pub tls: bool,
    /// SNI and the name checked against the certificate; default `host`.
    pub server_name: Option<String>,
    pub client: TlsClient,
    /// A certificate that does not verify fails the probe (default true).
    pub verify: bool,
    pub min_days_remaining: Option<f64>,
    pub steps: Vec<QueryStep>,
    pub filter: Option<net::AddressFilter>,
}

/// What a tcp run saw.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TcpFacts {
    /// Dialogue steps completed.
    pub steps_done: usize,
    /// Whether a STARTTLS upgrade completed.
    pub starttls: bool,
    /// An `expect` did not match what the peer sent (blackbox_exporter's
    /// `probe_failed_due_to_regex`).
    pub failed_due_to_regex: bool,
    /// The last bytes received (up to 200, lossy UTF-8), for evidence.
    pub last_received: String,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Run one tcp probe. `scheduled` is when the run was due.
pub async fn run_tcp(spec: &TcpSpec, clock: &Clock, scheduled: Instant) -> Outcome {
    let mut phases = Phases::default();
    let mut conn = ConnFacts::default();
    let mut tcp_facts = TcpFacts::default();
    let mut doing = String::from("resolving");
    let deadline = crate::deadline(scheduled, spec.timeout);
    let result = tokio::time::timeout_at(
        deadline,
        tcp_inner(
            spec,
            clock,
            &mut phases,
            &mut conn,
            &mut tcp_facts,
            &mut doing,
        ),
    )
    .await
    .unwrap_or_else(|_| {
        Err(Failure::new(
            Reason::Timeout,
            format!("timed out after {:?} while {doing}", spec.timeout),
        ))
    });
    // A timeout mid-dialogue is attributed to the phase in progress.
    let accounted: Duration = phases.as_array().iter().sum();
    let total = scheduled.elapsed();
    if total > accounted && result.is_err() && !doing.starts_with("resolving") {
        if doing.contains("TLS") {
            phases.tls += total - accounted;
        } else if doing.starts_with("connecting") {
            phases.connect += total - accounted;
        } else {
            phases.processing += total - accounted;
        }
    }
    let facts = Facts::new(conn, KindFacts::Tcp(tcp_facts));
    crate::finish(scheduled, phases, facts, result)
}

async fn tcp_inner(
    spec: &TcpSpec,
    clock: &Clock,
    phases: &mut Phases,
    facts: &mut ConnFacts,
    tcp_facts: &mut TcpFacts,
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
    let name = spec
        .server_name
        .as_deref()
        .unwrap_or(&spec.host)
        .to_string();
    let mut stream: Box<dyn Io> = Box::new(tcp);
    let mut cert_summary = String::new();
    if spec.tls {
        *doing = "in the TLS handshake".into();
        let (tls, summary) = upgrade(spec, stream, &name, clock, phases, facts).await?;
        stream = tls;
        cert_summary = summary;
    }
    let mut buf: Vec<u8> = Vec::new();
    let mut captures: HashMap<String, Vec<u8>> = HashMap::new();
    let result = dialogue(
        spec,
        clock,
        &mut stream,
        &mut buf,
        &mut captures,
        &name,
        phases,
        facts,
        tcp_facts,
        &mut cert_summary,
        doing,
    )
    .await;
    tcp_facts.last_received = excerpt(&buf);
    result?;
    let steps = spec.steps.len();
    let mut evidence = format!("{addr}, {steps} dialogue step{}", plural(steps));
    if !cert_summary.is_empty() {
        evidence.push_str(", ");
        evidence.push_str(&cert_summary);
    }
    Ok(evidence)
}

#[allow(clippy::too_many_arguments)]
async fn dialogue(
    spec: &TcpSpec,
    clock: &Clock,
    stream: &mut Box<dyn Io>,
    buf: &mut Vec<u8>,
    captures: &mut HashMap<String, Vec<u8>>,
    name: &str,
    phases: &mut Phases,
    facts: &mut ConnFacts,
    tcp_facts: &mut TcpFacts,
    cert_summary: &mut String,
    doing: &mut String,
) -> Result<(), Failure> {
    for (i, step) in spec.steps.iter().enumerate() {
        let n = i + 1;
        // A refused STARTTLS shows as the expect just before (or of) the upgrade failing.
        let before_starttls = step.starttls
            || spec
                .steps
                .get(i + 1)
                .is_some_and(|s| s.starttls && s.send.is_none() && s.expect.is_none());
        if let Some(send) = &step.send {
            let bytes = substitute(send, captures).map_err(|missing| {
                Failure::new(
                    Reason::CaptureMissing,
                    format!(
                        "step {n}: send uses {{{{ {missing} }}}}, which no earlier expect captured"
                    ),
                )
            })?;
            *doing = format!("sending step {n}");
            let start = Instant::now();
            let w = stream.write_all(&bytes).await;
            let w = match w {
                Ok(()) => stream.flush().await,
                Err(e) => Err(e),
            };
            phases.processing += start.elapsed();
            w.map_err(|e| Failure::new(Reason::Protocol, format!("step {n}: send failed: {e}")))?;
        }
        if let Some(re) = &step.expect {
            *doing = format!("waiting for step {n}'s reply matching {:?}", re.as_str());
            let start = Instant::now();
            let r = expect(stream, buf, re, captures).await;
            phases.processing += start.elapsed();
            if let Err(why) = r {
                let reason = if before_starttls {
                    Reason::Starttls
                } else {
                    tcp_facts.failed_due_to_regex = why.mismatch;
                    Reason::Protocol
                };
                let what = if before_starttls {
                    "STARTTLS refused or not offered: "
                } else {
                    ""
                };
                return Err(Failure::new(
                    reason,
                    format!(
                        "step {n}: {what}{} (expected {:?}; received {:?})",
                        why.detail,
                        re.as_str(),
                        excerpt(buf)
                    ),
                ));
            }
        }
        if step.starttls {
            *doing = format!("in the TLS handshake of step {n} (STARTTLS)");
            // Bytes received before the upgrade must not be read as if they came over TLS.
            buf.clear();
            let plain = std::mem::replace(stream, Box::new(tokio::io::duplex(1).0));
            let (tls, summary) = upgrade(spec, plain, name, clock, phases, facts).await?;
            *stream = tls;
            *cert_summary = summary;
            tcp_facts.starttls = true;
        }
        tcp_facts.steps_done = n;
    }
    Ok(())
}

/// Handshake and judge the certificate as a `kind = "tls"` probe would.
async fn upgrade(
    spec: &TcpSpec,
    stream: Box<dyn Io>,
    name: &str,
    clock: &Clock,
    phases: &mut Phases,
    facts: &mut ConnFacts,
) -> Result<(Box<dyn Io>, String), Failure> {
    let (tls_stream, tls) = spec
        .client
        .handshake(stream, name, clock, &mut phases.tls)
        .await?;
    let now = clock.unix_secs();
    let summary = format!(
        "TLS {} {}, {}",
        tls.version,
        tls.cipher,
        describe_expiry(&tls, now)
    );
    let verdict = check_certificate(&tls, spec.verify, spec.min_days_remaining, now);
    facts.tls = Some(tls);
    verdict.map_err(|f| Failure::new(f.reason, format!("{}; {summary}", f.evidence)))?;
    Ok((Box::new(tls_stream), summary))
}

struct Mismatch {
    detail: String,
    /// The peer sent data that did not match (as opposed to closing or erroring).
    mismatch: bool,
}

/// Read until `re` matches the buffer; consume through the match and record its captures.
async fn expect(
    stream: &mut Box<dyn Io>,
    buf: &mut Vec<u8>,
    re: &Regex,
    captures: &mut HashMap<String, Vec<u8>>,
) -> Result<(), Mismatch> {
    let mut chunk = [0u8; 4096];
    for _ in 0..=MAX_READS {
        if let Some(c) = re.captures(buf) {
            let end = c.get(0).map_or(0, |m| m.end());
            for (i, name) in re.capture_names().enumerate() {
                if let Some(m) = c.get(i) {
                    captures.insert(i.to_string(), m.as_bytes().to_vec());
                    if let Some(name) = name {
                        captures.insert(name.to_string(), m.as_bytes().to_vec());
                    }
                }
            }
            buf.drain(..end);
            return Ok(());
        }
        if buf.len() >= MAX_BUFFER {
            return Err(Mismatch {
                detail: format!("no match in the first {MAX_BUFFER} bytes"),
                mismatch: true,
            });
        }
        let want = chunk.len().min(MAX_BUFFER - buf.len());
        match stream.read(&mut chunk[..want]).await {
            Ok(0) => {
                return Err(Mismatch {
                    detail: "the peer closed the connection without a matching reply".into(),
                    mismatch: !buf.is_empty(),
                })
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => {
                return Err(Mismatch {
                    detail: format!("read failed: {e}"),
                    mismatch: false,
                })
            }
        }
    }
    Err(Mismatch {
        detail: format!("no match after {MAX_READS} reads"),
        mismatch: true,
    })
}

/// Replace `{{ name }}` (or `{{ 1 }}`) with captured bytes; `Err(name)` for an unknown
/// capture. Text that is not a `{{ … }}` reference stays as written.
pub fn substitute(template: &[u8], captures: &HashMap<String, Vec<u8>>) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(template.len());
    let mut rest = template;
    while let Some((before, name, after)) = next_reference(rest) {
        out.extend_from_slice(before);
        let value = captures.get(&name).ok_or(name)?;
        out.extend_from_slice(value);
        rest = after;
    }
    out.extend_from_slice(rest);
    Ok(out)
}

/// The names `{{ … }}` refers to in a template, for validation at load time.
pub fn references(template: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some((_, name, after)) = next_reference(rest) {
        out.push(name);
        rest = after;
    }
    out
}

/// The text before the first `{{ name }}`, the trimmed name, and the text after it.
fn next_reference(s: &[u8]) -> Option<(&[u8], String, &[u8])> {
    let open = s.windows(2).position(|w| w == b"{{")?;
    let inner = &s[open + 2..];
    let close = inner.windows(2).position(|w| w == b"}}")?;
    let name = String::from_utf8_lossy(&inner[..close]).trim().to_string();
    Some((&s[..open], name, &inner[close + 2..]))
}

fn excerpt(buf: &[u8]) -> String {
    let start = buf.len().saturating_sub(200);
    String::from_utf8_lossy(&buf[start..]).into_owned()
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutes_captures() {
        let mut c = HashMap::new();
        c.insert("1".to_string(), b"abc".to_vec());
        c.insert("tag".to_string(), b"T1".to_vec());
        assert_eq!(
            substitute(b"{{tag}} LOGIN {{ 1 }} $x {{", &c).unwrap(),
            b"T1 LOGIN abc $x {{".to_vec()
        );
        assert_eq!(substitute(b"{{ 2 }}", &c), Err("2".to_string()));
        assert_eq!(references(b"a {{1}} b {{ n }}"), vec!["1", "n"]);
    }
}
