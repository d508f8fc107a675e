//! Every probe's series, written from the store in one pass: each probe's record is locked
//! once per scrape and its samples are added to each family's buffer; then the families are
//! written out in order. Names and meanings are blackbox_exporter's where it has them.
//!
//! No series is written twice, by construction: a probe's label prefix carries its unique name,
//! user labels may not use any label name vantage writes (`config::RESERVED_LABELS`), and the
//! labels a family adds per sample (phases, reasons, health checks, steps, …) are distinct
//! within one probe.

use std::sync::Mutex;

use tokio::time::Instant;
use vantage_probes::{HttpFacts, Outcome, Phases};

use super::encode::{Fam, Type};
use super::kinds;
use crate::config::{Kind, ProbeMetrics};
use crate::daemon::store::{Record, Store, QUANTILES, WINDOWS};

/// Declares the families' enum and `ALL`, the order they are written in.
macro_rules! families {
    ($($f:ident),* $(,)?) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(super) enum F {
            $($f),*
        }

        const ALL: &[F] = &[$(F::$f),*];
    };
}

families! {
    Success,
    Duration,
    DnsLookup,
    IpProtocol,
    IpAddrHash,
    HttpStatus,
    HttpDuration,
    HttpContentLength,
    HttpUncompressedLength,
    HttpLastModified,
    HttpRedirects,
    HttpSsl,
    HttpVersion,
    FailedDueToRegex,
    SslEarliestExpiry,
    SslChainExpiry,
    SslLeafExpiry,
    SslChainInfo,
    SslVerifyResult,
    TlsVersion,
    TlsCipher,
    HealthCheckStatus,
    StepDuration,
    DnsAnswerRrs,
    DnsAuthorityRrs,
    DnsAdditionalRrs,
    DnsSerial,
    DnsQuerySucceeded,
    DnsDuration,
    IcmpDuration,
    IcmpHopLimit,
    GrpcHealthcheck,
    GrpcStatus,
    GrpcSsl,
    GrpcDuration,
    Runs,
    Failures,
    HealthChecksDropped,
    RunsSkipped,
    Latency,
    PhaseLatency,
    LatencyQuantile,
}

fn def(f: F) -> Fam {
    use Type::{Counter as C, Gauge as G};
    let (g, s) = (Fam::new, Fam::seconds);
    match f {
        F::Success => g("probe_success", "Whether the last run succeeded", G),
        F::Duration => s("probe_duration_seconds", "Duration of the last run, from its scheduled start", G),
        F::DnsLookup => s("probe_dns_lookup_time_seconds", "DNS lookup time of the last run", G),
        F::IpProtocol => g("probe_ip_protocol", "IP family (4 or 6) of the last run's address", G),
        F::IpAddrHash => g("probe_ip_addr_hash", "FNV-1a hash of the last run's address (changes when the address does)", G),
        F::HttpStatus => g("probe_http_status_code", "HTTP status of the last run's final response (0: none)", G),
        F::HttpDuration => s("probe_http_duration_seconds", "Duration of each phase of the last run, summed over redirects", G),
        F::HttpContentLength => g("probe_http_content_length", "Content-Length header of the last run's final response (-1: none; 0: no response)", G),
        F::HttpUncompressedLength => g("probe_http_uncompressed_body_length", "Body length of the last run's final response after decoding", G),
        F::HttpLastModified => s("probe_http_last_modified_timestamp_seconds", "Last-Modified header of the last run's final response (Unix seconds)", G),
        F::HttpRedirects => g("probe_http_redirects", "Redirects followed in the last run", G),
        F::HttpSsl => g("probe_http_ssl", "Whether the last run's final request used TLS", G),
        F::HttpVersion => g("probe_http_version", "HTTP version of the last run's final response", G),
        F::FailedDueToRegex => g("probe_failed_due_to_regex", "Whether a body regex assertion failed in the last run", G),
        F::SslEarliestExpiry => g("probe_ssl_earliest_cert_expiry", "Earliest notAfter among all certificates the server presented (Unix seconds)", G),
        F::SslChainExpiry => s("probe_ssl_last_chain_expiry_timestamp_seconds", "Effective expiry: earliest notAfter along the verified chain, or the leaf's when none verified", G),
        F::SslLeafExpiry => s("probe_ssl_leaf_expiry_timestamp_seconds", "notAfter of the leaf certificate", G),
        F::SslChainInfo => g("probe_ssl_last_chain_info", "The leaf certificate of the last handshake", G),
        F::SslVerifyResult => g("probe_ssl_verify_result", "Certificate verification verdict of the last handshake", G),
        F::TlsVersion => g("probe_tls_version_info", "TLS version of the last handshake", G),
        F::TlsCipher => g("probe_tls_cipher_info", "Cipher suite of the last handshake", G),
        F::HealthCheckStatus => g("probe_health_check_status", "Health document checks of the last run: 1 pass, 0.5 warn, 0 fail", G),
        F::StepDuration => s("probe_step_duration_seconds", "Duration of each step of the last flow run", G),
        F::DnsAnswerRrs => g("probe_dns_answer_rrs", "Records in the answer section of the last reply", G),
        F::DnsAuthorityRrs => g("probe_dns_authority_rrs", "Records in the authority section of the last reply", G),
        F::DnsAdditionalRrs => g("probe_dns_additional_rrs", "Records in the additional section of the last reply", G),
        F::DnsSerial => g("probe_dns_serial", "SOA serial in the answer of the last reply", G),
        F::DnsQuerySucceeded => g("probe_dns_query_succeeded", "Whether the last query got a reply with a valid rcode", G),
        F::DnsDuration => s("probe_dns_duration_seconds", "Duration of each phase of the last DNS query", G),
        F::IcmpDuration => s("probe_icmp_duration_seconds", "Duration of each phase of the last echo", G),
        F::IcmpHopLimit => g("probe_icmp_reply_hop_limit", "TTL / hop limit of the last echo reply, where the socket shows it", G),
        F::GrpcHealthcheck => g("probe_grpc_healthcheck_response", "Serving status of the last health check (1 for the status answered)", G),
        F::GrpcStatus => g("probe_grpc_status_code", "grpc-status of the last health check (-1: none)", G),
        F::GrpcSsl => g("probe_grpc_ssl", "Whether the last health check went over TLS", G),
        F::GrpcDuration => s("probe_grpc_duration_seconds", "Duration of each phase of the last health check", G),
        F::Runs => g("probe_runs", "Probe runs by result", C),
        F::Failures => g("probe_failures", "Failed probe runs by reason", C),
        F::HealthChecksDropped => g("probe_health_checks_dropped", "Health checks left out because the probe already exports its 64 names", C),
        F::RunsSkipped => g("vantage_probe_runs_skipped", "Runs skipped because the previous one was still waiting or running", C),
        F::Latency => s("probe_latency_seconds", "Run durations, from the scheduled start", Type::Histogram),
        F::PhaseLatency => s("probe_phase_latency_seconds", "Phase durations of each run", Type::Histogram),
        F::LatencyQuantile => s("probe_latency_quantile_seconds", "Run duration quantiles over a sliding window (HDR histogram, 1% relative error)", Type::Summary),
    }
}

/// The families being filled.
pub(super) struct Out(Vec<Fam>);

impl Out {
    fn new() -> Self {
        debug_assert!(ALL.iter().enumerate().all(|(i, f)| *f as usize == i));
        Self(ALL.iter().map(|f| def(*f)).collect())
    }

    pub(super) fn get(&mut self, f: F) -> &mut Fam {
        &mut self.0[f as usize]
    }

    fn finish(&mut self, out: &mut Vec<String>, openmetrics: bool) {
        for f in &mut self.0 {
            f.finish(out, openmetrics);
        }
    }
}

/// Which series to write.
#[derive(Debug, Clone, Copy)]
pub enum Mode<'a> {
    /// `/metrics`: every family, each probe's series labelled with its name, kind and labels;
    /// buffers sized from the daemon's last scrape.
    Daemon(&'a FamilySizes),
    /// `/probe`: only the last run's gauges, without labels, the way blackbox_exporter answers.
    LastRun,
}

/// Each family's size in the daemon's last scrape: the next one reserves that much (plus a
/// little) up front instead of growing its buffers by doubling, which costs copies and up to
/// twice the memory at 50,000 probes.
#[derive(Debug, Default)]
pub struct FamilySizes(Mutex<Vec<usize>>);

impl FamilySizes {
    fn get(&self) -> std::sync::MutexGuard<'_, Vec<usize>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Every probe's families, as pieces of the exposition appended to `out`.
pub fn render(store: &Store, mode: Mode<'_>, out: &mut Vec<String>, openmetrics: bool) {
    let mut fams = Out::new();
    if let Mode::Daemon(sizes) = mode {
        for (f, n) in fams.0.iter_mut().zip(sizes.get().iter()) {
            f.reserve(n + n / 16 + 1024);
        }
    }
    let now = store.clock().now();
    for state in store.all() {
        let meta = state.meta();
        let prefix = match mode {
            Mode::Daemon(_) => meta.prefix.as_str(),
            Mode::LastRun => "",
        };
        let r = state.record();
        if let Some(o) = r.last.as_ref().map(|l| &l.outcome) {
            last_run(&mut fams, prefix, meta.kind, o);
        }
        if let Mode::Daemon(_) = mode {
            counters(&mut fams, prefix, meta.metrics, &r, now);
        }
    }
    if let Mode::Daemon(sizes) = mode {
        *sizes.get() = fams.0.iter().map(Fam::text_len).collect();
    }
    fams.finish(out, openmetrics);
}

pub(super) fn bool_f(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

/// `subjectalternative` as blackbox_exporter writes it: the DNS names only, comma-separated.
fn dns_sans(sans: &[String]) -> String {
    sans.iter()
        .filter(|s| s.parse::<std::net::IpAddr>().is_err())
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(",")
}

/// The last run's gauges.
fn last_run(f: &mut Out, p: &str, kind: Kind, o: &Outcome) {
    let conn = &o.facts.conn;
    f.get(F::Success).gauge(p, &[], bool_f(o.success()));
    f.get(F::Duration).gauge(p, &[], o.duration.as_secs_f64());
    f.get(F::DnsLookup)
        .gauge(p, &[], o.phases.resolve.as_secs_f64());
    // blackbox_exporter's http prober: 0 when no address was resolved.
    let or_zero = |v: Option<f64>| match (v, kind) {
        (Some(v), _) => Some(v),
        (None, Kind::Http) => Some(0.0),
        (None, _) => None,
    };
    if let Some(v) = or_zero(conn.ip_protocol.map(f64::from)) {
        f.get(F::IpProtocol).gauge(p, &[], v);
    }
    if let Some(v) = or_zero(conn.ip_addr_hash.map(f64::from)) {
        f.get(F::IpAddrHash).gauge(p, &[], v);
    }
    if let Some(h) = o.facts.http_facts().filter(|_| kind == Kind::Http) {
        http(f, p, h);
    }
    if !kinds::own_phases(kind) && kind != Kind::Tls {
        // As blackbox_exporter: only the resolve phase when no address was resolved (the
        // later phases never began).
        let n = if conn.ip_protocol.is_none() && kind == Kind::Http {
            1
        } else {
            Phases::NAMES.len()
        };
        let fam = f.get(F::HttpDuration);
        for (name, d) in Phases::NAMES.iter().take(n).zip(o.phases.as_array()) {
            fam.gauge(p, &[("phase", name)], d.as_secs_f64());
        }
    }
    if matches!(kind, Kind::Http | Kind::Tls | Kind::Tcp) {
        f.get(F::FailedDueToRegex)
            .gauge(p, &[], bool_f(o.facts.failed_due_to_regex()));
    }
    // Certificates: present whenever a handshake completed, verified or not.
    if let Some(t) = o.facts.tls() {
        f.get(F::SslEarliestExpiry)
            .gauge(p, &[], t.earliest_not_after as f64);
        f.get(F::SslChainExpiry)
            .gauge(p, &[], t.effective_not_after as f64);
        f.get(F::SslLeafExpiry)
            .gauge(p, &[], t.leaf_not_after as f64);
        if let Some(c) = t.chain.first() {
            let sans = dns_sans(&c.sans);
            f.get(F::SslChainInfo).gauge(
                p,
                &[
                    ("fingerprint_sha256", &c.fingerprint_sha256),
                    ("subject", &c.subject),
                    ("issuer", &c.issuer),
                    ("subjectalternative", &sans),
                    ("serialnumber", &c.serial),
                ],
                1.0,
            );
        }
        f.get(F::SslVerifyResult)
            .gauge(p, &[("result", t.verify_result.as_str())], 1.0);
        f.get(F::TlsVersion)
            .gauge(p, &[("version", &format!("TLS {}", t.version))], 1.0);
        f.get(F::TlsCipher).gauge(p, &[("cipher", &t.cipher)], 1.0);
    }
    if let Some(h) = o.facts.health() {
        // Names are merged and bounded as the run is stored (`HealthCheckNames::admit`).
        let fam = f.get(F::HealthCheckStatus);
        for (i, c) in h.checks.iter().enumerate() {
            if !h.checks[..i].iter().any(|e| e.name == c.name) {
                fam.gauge(p, &[("check", &c.name)], c.value());
            }
        }
    }
    let steps = o.facts.steps();
    let fam = f.get(F::StepDuration);
    for (i, s) in steps.iter().enumerate() {
        if !steps[..i].iter().any(|e| e.name == s.name) {
            fam.gauge(p, &[("step", &s.name)], s.duration.as_secs_f64());
        }
    }
    kinds::last_run(f, p, kind, o);
}

fn http(f: &mut Out, p: &str, h: &HttpFacts) {
    f.get(F::HttpStatus)
        .gauge(p, &[], f64::from(h.status.unwrap_or(0)));
    f.get(F::HttpContentLength)
        .gauge(p, &[], h.declared_length.unwrap_or(0) as f64);
    f.get(F::HttpUncompressedLength)
        .gauge(p, &[], h.uncompressed_body_length.unwrap_or(0) as f64);
    if let Some(t) = h.last_modified {
        f.get(F::HttpLastModified).gauge(p, &[], t as f64);
    }
    f.get(F::HttpRedirects)
        .gauge(p, &[], f64::from(h.redirects));
    f.get(F::HttpSsl).gauge(p, &[], bool_f(h.ssl));
    let version = h.version.as_deref().and_then(|v| v.parse::<f64>().ok());
    f.get(F::HttpVersion).gauge(p, &[], version.unwrap_or(0.0));
}

/// Exact counters, histograms and the opt-in quantile summary.
fn counters(f: &mut Out, p: &str, m: ProbeMetrics, r: &Record, now: Instant) {
    let runs = f.get(F::Runs);
    runs.counter(p, &[("result", "success")], r.runs_success);
    runs.counter(p, &[("result", "failure")], r.runs_failure);
    let failures = f.get(F::Failures);
    for (reason, n) in &r.failures_by_reason {
        failures.counter(p, &[("reason", reason.as_str())], *n);
    }
    if r.health_names.any() {
        f.get(F::HealthChecksDropped)
            .counter(p, &[], r.health_names.dropped);
    }
    // Absent while zero (like probe_failures_total{reason}): a healthy probe should not pay a
    // series for something that never happened (SPEC §10: ≤ 30 per HTTP probe).
    if r.skipped > 0 {
        f.get(F::RunsSkipped).counter(p, &[], r.skipped);
    }
    f.get(F::Latency).histogram(p, &[], &r.latency);
    if let (true, Some(phases)) = (m.phase_histograms, &r.phase_latency) {
        let fam = f.get(F::PhaseLatency);
        for (name, h) in Phases::NAMES.iter().zip(phases.iter()) {
            fam.histogram(p, &[("phase", name)], h);
        }
    }
    if m.quantiles {
        quantiles(f.get(F::LatencyQuantile), p, r, now);
    }
}

/// `probe_latency_quantile_seconds`: sliding-window quantiles, with the window's `_sum` and
/// `_count` (a summary: a `quantile` label on anything else is flagged by `promtool`).
fn quantiles(fam: &mut Fam, p: &str, r: &Record, now: Instant) {
    for (w, (window, _)) in WINDOWS.iter().enumerate() {
        let (sum, count) = r.window_totals[w];
        if count == 0 || !r.window_live(w, now) {
            continue;
        }
        for (q, (quantile, _)) in QUANTILES.iter().enumerate() {
            if let Some(v) = r.quantiles[w][q] {
                fam.gauge(p, &[("window", window), ("quantile", quantile)], v);
            }
        }
        fam.sum_count(p, &[("window", window)], sum, count);
    }
}
