//! What one probe run yields. A failing target is data: every path out of a probe ends in an
//! [`Outcome`], never an `Err`.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

/// Why a run failed. A fixed, bounded set: it becomes a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Timeout,
    Dns,
    Connect,
    TlsHandshake,
    TlsVerify,
    CertExpiring,
    HttpStatus,
    RedirectLimit,
    BodyTooLarge,
    Protocol,
    AssertionBody,
    AssertionHeader,
    AssertionJson,
    AssertionCss,
    AssertionMetrics,
    AssertionHealth,
    Latency,
    CaptureMissing,
    StepFailed,
    /// A DNS reply's rcode is not among the probe's valid ones.
    DnsRcode,
    /// A DNS answer/authority/additional assertion failed.
    AssertionDns,
    /// A STARTTLS upgrade (or a dialogue step before it) failed.
    Starttls,
    /// A gRPC health check answered with a status other than SERVING, or a gRPC error.
    GrpcStatus,
}

impl Reason {
    pub const ALL: [Reason; 23] = [
        Reason::Timeout,
        Reason::Dns,
        Reason::Connect,
        Reason::TlsHandshake,
        Reason::TlsVerify,
        Reason::CertExpiring,
        Reason::HttpStatus,
        Reason::RedirectLimit,
        Reason::BodyTooLarge,
        Reason::Protocol,
        Reason::AssertionBody,
        Reason::AssertionHeader,
        Reason::AssertionJson,
        Reason::AssertionCss,
        Reason::AssertionMetrics,
        Reason::AssertionHealth,
        Reason::Latency,
        Reason::CaptureMissing,
        Reason::StepFailed,
        Reason::DnsRcode,
        Reason::AssertionDns,
        Reason::Starttls,
        Reason::GrpcStatus,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Timeout => "timeout",
            Reason::Dns => "dns",
            Reason::Connect => "connect",
            Reason::TlsHandshake => "tls_handshake",
            Reason::TlsVerify => "tls_verify",
            Reason::CertExpiring => "cert_expiring",
            Reason::HttpStatus => "http_status",
            Reason::RedirectLimit => "redirect_limit",
            Reason::BodyTooLarge => "body_too_large",
            Reason::Protocol => "protocol",
            Reason::AssertionBody => "assertion_body",
            Reason::AssertionHeader => "assertion_header",
            Reason::AssertionJson => "assertion_json",
            Reason::AssertionCss => "assertion_css",
            Reason::AssertionMetrics => "assertion_metrics",
            Reason::AssertionHealth => "assertion_health",
            Reason::Latency => "latency",
            Reason::CaptureMissing => "capture_missing",
            Reason::StepFailed => "step_failed",
            Reason::DnsRcode => "dns_rcode",
            Reason::AssertionDns => "assertion_dns",
            Reason::Starttls => "starttls",
            Reason::GrpcStatus => "grpc_status",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Time spent per phase, summed over redirects. Phases a run never reached stay zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Phases {
    #[serde(serialize_with = "seconds")]
    pub resolve: Duration,
    #[serde(serialize_with = "seconds")]
    pub connect: Duration,
    #[serde(serialize_with = "seconds")]
    pub tls: Duration,
    /// Request written to first response byte.
    #[serde(serialize_with = "seconds")]
    pub processing: Duration,
    /// First response byte to the end of the body.
    #[serde(serialize_with = "seconds")]
    pub transfer: Duration,
}

impl Phases {
    pub const NAMES: [&'static str; 5] = ["resolve", "connect", "tls", "processing", "transfer"];

    /// The phases in [`Phases::NAMES`] order.
    pub fn as_array(&self) -> [Duration; 5] {
        [
            self.resolve,
            self.connect,
            self.tls,
            self.processing,
            self.transfer,
        ]
    }
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// The verdict of certificate verification, with the reason when it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifyResult {
    Ok,
    Expired,
    NotYetValid,
    UnknownIssuer,
    HostnameMismatch,
    Other,
}

impl VerifyResult {
    pub const ALL: [VerifyResult; 6] = [
        VerifyResult::Ok,
        VerifyResult::Expired,
        VerifyResult::NotYetValid,
        VerifyResult::UnknownIssuer,
        VerifyResult::HostnameMismatch,
        VerifyResult::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            VerifyResult::Ok => "ok",
            VerifyResult::Expired => "expired",
            VerifyResult::NotYetValid => "not_yet_valid",
            VerifyResult::UnknownIssuer => "unknown_issuer",
            VerifyResult::HostnameMismatch => "hostname_mismatch",
            VerifyResult::Other => "other",
        }
    }
}

impl fmt::Display for VerifyResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Facts about one certificate, as presented by the server.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CertInfo {
    pub subject: String,
    pub issuer: String,
    pub sans: Vec<String>,
    /// Hex, colon-free, lowercase.
    pub serial: String,
    pub fingerprint_sha256: String,
    /// Unix seconds.
    pub not_before: i64,
    /// Unix seconds.
    pub not_after: i64,
}

/// Everything a TLS handshake taught us, collected even when verification fails.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TlsFacts {
    /// "1.2" or "1.3".
    pub version: String,
    /// IANA name, e.g. `TLS13_AES_128_GCM_SHA256`.
    pub cipher: String,
    pub verify_result: VerifyResult,
    /// The verifier's own words when the verdict is not `ok`.
    pub verify_detail: Option<String>,
    /// The presented chain, leaf first.
    pub chain: Vec<CertInfo>,
    /// Leaf notAfter (Unix seconds).
    pub leaf_not_after: i64,
    /// Earliest notAfter of every presented certificate (blackbox_exporter's meaning).
    pub earliest_not_after: i64,
    /// Earliest notAfter along the verified chain, trust anchor included, when one verified.
    pub verified_chain_not_after: Option<i64>,
    /// The expiry that matters: the verified chain's when one exists, else the leaf's.
    pub effective_not_after: i64,
    /// The session was resumed, which only a probe with `resume_sessions` allows: a resumed
    /// handshake carries no certificate, so the certificate facts are the first handshake's.
    pub resumed: bool,
}

impl TlsFacts {
    /// Days from `now` (Unix seconds) until the effective expiry; negative once expired. The
    /// one home of this number: messages, alerts, reports and the status page round it as they
    /// need, from here.
    pub fn days_left(&self, now: i64) -> f64 {
        (self.effective_not_after - now) as f64 / 86_400.0
    }
}

/// A health document's verdict (see `health = true`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthFacts {
    pub status: String,
    pub checks: Vec<HealthCheck>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthCheck {
    pub name: String,
    /// "pass", "warn" or "fail".
    pub status: String,
}

impl HealthCheck {
    /// 1 pass, 0.5 warn, 0 anything else.
    pub fn value(&self) -> f64 {
        match self.status.as_str() {
            "pass" => 1.0,
            "warn" => 0.5,
            _ => 0.0,
        }
    }
}

/// One step of a multi-step flow.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepFacts {
    pub name: String,
    pub success: bool,
    pub reason: Option<Reason>,
    pub status: Option<u16>,
    #[serde(serialize_with = "seconds")]
    pub duration: Duration,
    pub attempts: u32,
}

/// What a run learnt about the connection it made, whatever its kind.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConnFacts {
    /// 4 or 6: the family of the address the (final) connection went to.
    pub ip_protocol: Option<u8>,
    /// blackbox_exporter's `probe_ip_addr_hash`: FNV-1a (32 bit) of the address's bytes (4 for
    /// IPv4, 16 for IPv6).
    pub ip_addr_hash: Option<u32>,
    /// The TLS handshake's facts, collected even when verification fails.
    pub tls: Option<TlsFacts>,
    /// The phase the run was last in: a timeout charges its wait there and names it.
    pub in_progress: crate::timing::Phase,
}

/// What an HTTP exchange (an http probe, or a scrape flow's last request) learnt.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HttpFacts {
    /// Final HTTP status.
    pub status: Option<u16>,
    /// "1.1" for HTTP/1.1, "2" for HTTP/2.
    pub version: Option<String>,
    /// Bytes of the final response's body as received (before decoding).
    pub content_length: Option<u64>,
    /// The final response's `Content-Length` header, -1 when it has none (blackbox_exporter's
    /// `probe_http_content_length`); `None` when no response head was read.
    pub declared_length: Option<i64>,
    /// Bytes of the final response's body after decoding (`probe_http_uncompressed_body_length`).
    pub uncompressed_body_length: Option<u64>,
    /// The final response's `Last-Modified`, Unix seconds.
    pub last_modified: Option<i64>,
    pub redirects: u32,
    /// blackbox_exporter's `probe_http_ssl`: the final request went over a TLS connection that
    /// was made (a failed handshake is not one).
    pub ssl: bool,
    /// A body regex assertion failed (blackbox_exporter's `probe_failed_due_to_regex`).
    pub failed_due_to_regex: bool,
    pub health: Option<HealthFacts>,
}

/// A scrape flow: its steps, and the HTTP facts of the last request it made.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScrapeFacts {
    pub steps: Vec<StepFacts>,
    pub last: HttpFacts,
}

/// What only one kind of probe learns.
#[derive(Debug, Clone, PartialEq)]
pub enum KindFacts {
    Http(HttpFacts),
    /// A TLS probe learns nothing beyond the connection's facts.
    Tls,
    Scrape(ScrapeFacts),
    Tcp(crate::tcp::TcpFacts),
    Dns(crate::dns::DnsFacts),
    Icmp(crate::icmp::IcmpFacts),
    Grpc(crate::grpc::GrpcFacts),
}

/// The facts of a run: what every kind learns about its connection, and what only its kind
/// learns.
#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    pub conn: ConnFacts,
    pub kind: KindFacts,
}

impl Default for Facts {
    /// An HTTP probe's facts, before it has learnt anything.
    fn default() -> Facts {
        Facts::http()
    }
}

impl Facts {
    pub fn new(conn: ConnFacts, kind: KindFacts) -> Facts {
        Facts { conn, kind }
    }

    /// An HTTP probe's facts, before it has learnt anything.
    pub fn http() -> Facts {
        Facts::new(ConnFacts::default(), KindFacts::Http(HttpFacts::default()))
    }

    pub fn tls(&self) -> Option<&TlsFacts> {
        self.conn.tls.as_ref()
    }

    /// The HTTP facts: an http probe's, or a scrape flow's last request's.
    pub fn http_facts(&self) -> Option<&HttpFacts> {
        match &self.kind {
            KindFacts::Http(h) => Some(h),
            KindFacts::Scrape(s) => Some(&s.last),
            _ => None,
        }
    }

    pub fn http_facts_mut(&mut self) -> Option<&mut HttpFacts> {
        match &mut self.kind {
            KindFacts::Http(h) => Some(h),
            KindFacts::Scrape(s) => Some(&mut s.last),
            _ => None,
        }
    }

    /// The final HTTP status, for the kinds that speak HTTP.
    pub fn status(&self) -> Option<u16> {
        self.http_facts()?.status
    }

    pub fn health(&self) -> Option<&HealthFacts> {
        self.http_facts()?.health.as_ref()
    }

    pub fn steps(&self) -> &[StepFacts] {
        match &self.kind {
            KindFacts::Scrape(s) => &s.steps,
            _ => &[],
        }
    }

    pub fn tcp(&self) -> Option<&crate::tcp::TcpFacts> {
        match &self.kind {
            KindFacts::Tcp(t) => Some(t),
            _ => None,
        }
    }

    pub fn dns(&self) -> Option<&crate::dns::DnsFacts> {
        match &self.kind {
            KindFacts::Dns(d) => Some(d),
            _ => None,
        }
    }

    pub fn icmp(&self) -> Option<&crate::icmp::IcmpFacts> {
        match &self.kind {
            KindFacts::Icmp(i) => Some(i),
            _ => None,
        }
    }

    pub fn grpc(&self) -> Option<&crate::grpc::GrpcFacts> {
        match &self.kind {
            KindFacts::Grpc(g) => Some(g),
            _ => None,
        }
    }

    /// An expected pattern did not match what the target sent (blackbox_exporter's
    /// `probe_failed_due_to_regex`), for the kinds that match patterns.
    pub fn failed_due_to_regex(&self) -> bool {
        match &self.kind {
            KindFacts::Tcp(t) => t.failed_due_to_regex,
            _ => self.http_facts().is_some_and(|h| h.failed_due_to_regex),
        }
    }
}

/// The JSON form (`vantage check --format json`, the API): one flat object, as before the
/// facts were structured, with only the keys the run's kind has.
impl Serialize for Facts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("ip_protocol", &self.conn.ip_protocol)?;
        m.serialize_entry("ip_addr_hash", &self.conn.ip_addr_hash)?;
        // The one meaning of `cert_not_after` everywhere: the effective expiry.
        m.serialize_entry("cert_not_after", &self.tls().map(|t| t.effective_not_after))?;
        m.serialize_entry("tls", &self.conn.tls)?;
        let http = |m: &mut S::SerializeMap, h: &HttpFacts| -> Result<(), S::Error> {
            m.serialize_entry("status", &h.status)?;
            m.serialize_entry("http_version", &h.version)?;
            m.serialize_entry("content_length", &h.content_length)?;
            m.serialize_entry("declared_length", &h.declared_length)?;
            m.serialize_entry("uncompressed_body_length", &h.uncompressed_body_length)?;
            m.serialize_entry("last_modified", &h.last_modified)?;
            m.serialize_entry("redirects", &h.redirects)?;
            m.serialize_entry("ssl", &h.ssl)?;
            m.serialize_entry("failed_due_to_regex", &h.failed_due_to_regex)?;
            m.serialize_entry("health", &h.health)
        };
        match &self.kind {
            KindFacts::Http(h) => http(&mut m, h)?,
            KindFacts::Tls => {}
            KindFacts::Scrape(sc) => {
                http(&mut m, &sc.last)?;
                m.serialize_entry("steps", &sc.steps)?;
            }
            KindFacts::Tcp(t) => m.serialize_entry("tcp", t)?,
            KindFacts::Dns(d) => m.serialize_entry("dns", d)?,
            KindFacts::Icmp(i) => m.serialize_entry("icmp", i)?,
            KindFacts::Grpc(g) => m.serialize_entry("grpc", g)?,
        }
        m.end()
    }
}

/// One run's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Why the run failed; `None` for a success. The one home of the verdict.
    pub reason: Option<Reason>,
    /// From the scheduled start to the end of the run.
    pub duration: Duration,
    pub phases: Phases,
    /// Human-readable: status, the failing assertion, body excerpt, the chosen address.
    pub evidence: String,
    pub facts: Facts,
}

impl Outcome {
    pub fn success(&self) -> bool {
        self.reason.is_none()
    }

    /// Days from `now` (Unix seconds) until the effective certificate expiry, if any.
    pub fn cert_days_remaining(&self, now: i64) -> Option<f64> {
        Some(self.facts.tls()?.days_left(now))
    }
}

impl Serialize for Outcome {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut o = s.serialize_struct("Outcome", 6)?;
        o.serialize_field("success", &self.success())?;
        o.serialize_field("reason", &self.reason)?;
        o.serialize_field("duration", &self.duration.as_secs_f64())?;
        o.serialize_field("phases", &self.phases)?;
        o.serialize_field("evidence", &self.evidence)?;
        o.serialize_field("facts", &self.facts)?;
        o.end()
    }
}
