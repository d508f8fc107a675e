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

/// The kind-specific facts of a run. Fields a kind does not produce stay empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Facts {
    /// Final HTTP status.
    pub status: Option<u16>,
    /// Leaf certificate notAfter, Unix seconds (HTTPS and TLS probes).
    pub cert_not_after: Option<i64>,
    pub steps: Vec<StepFacts>,
    /// "1.1" for HTTP/1.1.
    pub http_version: Option<String>,
    pub content_length: Option<u64>,
    pub redirects: u32,
    /// 4 or 6: the family of the address the final request went to.
    pub ip_protocol: Option<u8>,
    pub ssl: bool,
    /// blackbox_exporter's `probe_ip_addr_hash`: FNV-1a (32 bit) of the address's bytes (4 for
    /// IPv4, 16 for IPv6).
    pub ip_addr_hash: Option<u32>,
    /// The final response's `Content-Length` header, -1 when it has none (blackbox_exporter's
    /// `probe_http_content_length`); `None` when no response head was read.
    pub declared_length: Option<i64>,
    /// Bytes of the final response's body after decoding (`probe_http_uncompressed_body_length`).
    pub uncompressed_body_length: Option<u64>,
    /// The final response's `Last-Modified`, Unix seconds.
    pub last_modified: Option<i64>,
    /// A body regex assertion failed (blackbox_exporter's `probe_failed_due_to_regex`).
    pub failed_due_to_regex: bool,
    pub tls: Option<TlsFacts>,
    pub health: Option<HealthFacts>,
    /// The phase the run was last in: a timeout charges its wait there and names it.
    #[serde(skip)]
    pub in_progress: crate::timing::Phase,
    /// kind = "tcp": the dialogue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp: Option<crate::tcp::TcpFacts>,
    /// kind = "dns": the reply.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns: Option<crate::dns::DnsFacts>,
    /// kind = "icmp": the echo.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icmp: Option<crate::icmp::IcmpFacts>,
    /// kind = "grpc": the health check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc: Option<crate::grpc::GrpcFacts>,
}

/// One run's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    pub success: bool,
    pub reason: Option<Reason>,
    /// From the scheduled start to the end of the run.
    #[serde(serialize_with = "seconds")]
    pub duration: Duration,
    pub phases: Phases,
    /// Human-readable: status, the failing assertion, body excerpt, the chosen address.
    pub evidence: String,
    pub facts: Facts,
}

impl Outcome {
    /// Days from `now` (Unix seconds) until the effective certificate expiry, if any.
    pub fn cert_days_remaining(&self, now: i64) -> Option<f64> {
        Some(self.facts.tls.as_ref()?.days_left(now))
    }
}
