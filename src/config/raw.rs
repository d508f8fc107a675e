//! The config as written: serde structs, `deny_unknown_fields` everywhere, no `flatten`.
//! Single-value checks (durations, sizes, statuses) live in the types themselves, so a bad value
//! is reported at its own line and column by the TOML deserializer.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;
use vantage_probes::{StatusPattern, TlsVersion};

/// A duration written with a unit: `"250ms"`, `"30s"`, `"1h"`, `"30d"`. A bare number is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string with a unit, like \"30s\" or \"250ms\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Dur, E> {
                parse_duration(s).map(Dur).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if !t.is_empty() && t.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(format!(
            "duration {s:?} has no unit: write it like \"{t}s\" or \"{t}ms\""
        ));
    }
    let d = humantime::parse_duration(t).map_err(|e| format!("invalid duration {s:?}: {e}"))?;
    // No duration vantage takes is longer (SLO periods stop at 400d); a bound here keeps every
    // later `instant + duration` and `as_millis() as i64` far from overflowing.
    if d > MAX_DURATION {
        return Err(format!(
            "duration {s:?} is too long: at most 400d anywhere, 7d for probe timings"
        ));
    }
    Ok(d)
}

/// The longest duration any key accepts.
pub const MAX_DURATION: Duration = Duration::from_secs(400 * 86_400);

/// A byte size: `"10MiB"`, `"512KB"`, or a number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Size;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size like \"10MiB\" or a number of bytes")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Size, E> {
                u64::try_from(v)
                    .map(Size)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Size, E> {
                Ok(Size(v))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Size, E> {
                s.trim()
                    .parse::<bytesize::ByteSize>()
                    .map(|b| Size(b.as_u64()))
                    .map_err(|_| {
                        E::custom(format!(
                            "invalid size {s:?}: expected a number with a unit like \"10MiB\" or \"512KB\""
                        ))
                    })
            }
        }
        d.deserialize_any(V)
    }
}

/// `status = 200`, `status = "2xx"` or `status = [200, "3xx"]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusSpec(pub Vec<StatusPattern>);

impl<'de> Deserialize<'de> for StatusSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        fn one<E: de::Error>(s: &str) -> Result<StatusPattern, E> {
            StatusPattern::parse(s).ok_or_else(|| {
                E::custom(format!(
                    "invalid status {s:?}: expected a code from 100 to 599 or a class like \"2xx\""
                ))
            })
        }
        impl<'de> Visitor<'de> for V {
            type Value = StatusSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a status code, a class like \"2xx\", or a list of them")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<StatusSpec, E> {
                one(&v.to_string()).map(|p| StatusSpec(vec![p]))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<StatusSpec, E> {
                one(&v.to_string()).map(|p| StatusSpec(vec![p]))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<StatusSpec, E> {
                one(s).map(|p| StatusSpec(vec![p]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StatusSpec, A::Error> {
                let mut out = Vec::new();
                while let Some(item) = seq.next_element::<StatusSpec>()? {
                    out.extend(item.0);
                }
                if out.is_empty() {
                    return Err(de::Error::custom("status list is empty"));
                }
                Ok(StatusSpec(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// `[defaults]`: inherited by every probe unless it sets its own.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawDefaults {
    /// How often each probe runs (default 30s).
    pub interval: Option<Spanned<Dur>>,
    /// Limit for one run, DNS included (default 10s).
    pub timeout: Option<Spanned<Dur>>,
    /// Labels added to every probe's series.
    pub labels: Option<BTreeMap<String, Spanned<String>>>,
}

/// The kinds of probe this version runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Http,
    Tls,
    Scrape,
    Tcp,
    Dns,
    Icmp,
    Grpc,
}

impl Kind {
    /// Every kind's name, as written in `kind = "…"`.
    pub const NAMES: [&'static str; 7] = ["http", "tls", "scrape", "tcp", "dns", "icmp", "grpc"];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Http => "http",
            Kind::Tls => "tls",
            Kind::Scrape => "scrape",
            Kind::Tcp => "tcp",
            Kind::Dns => "dns",
            Kind::Icmp => "icmp",
            Kind::Grpc => "grpc",
        }
    }
}

/// `tls = { ... }` on a probe.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// PEM file of CA certificates to trust instead of the system roots.
    pub ca: Option<Spanned<String>>,
    /// SNI and the name the certificate must be valid for.
    pub server_name: Option<Spanned<String>>,
    /// Do not fail on a certificate that does not verify (facts are still collected).
    pub insecure_skip_verify: Option<Spanned<bool>>,
    /// PEM client certificate chain for mutual TLS.
    pub client_cert: Option<Spanned<String>>,
    /// PEM private key for `client_cert`.
    pub client_key: Option<Spanned<String>>,
    /// Resume TLS sessions across runs (default false: every run does a full handshake).
    pub resume_sessions: Option<bool>,
}

/// `[metrics]`, and a probe's `metrics = { ... }` overrides: which costly per-probe families
/// `/metrics` exports (both off by default; see the README's cardinality table).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    /// `probe_phase_latency_seconds`: a histogram per phase (55 series per probe).
    pub phase_histograms: Option<bool>,
    /// `probe_latency_quantile_seconds`: sliding-window quantiles (10 series per probe).
    pub quantiles: Option<bool>,
}

/// `[probe.alert]`: overrides of `[alert]`'s probe-level keys for one probe (a flapping
/// dependency may need a higher `alert_after_failures` than the rest).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawProbeAlert {
    /// ProbeDown fires after this many consecutive failures (default: `[alert]`'s).
    pub alert_after_failures: Option<Spanned<u32>>,
    /// ProbeDown resolves after this many consecutive successes (default: `[alert]`'s).
    pub resolve_after_successes: Option<Spanned<u32>>,
    /// CertificateExpiring fires below this many days (default: `[alert]`'s).
    pub cert_alert_days: Option<Spanned<f64>>,
}

/// One `[[probe.step]]` of a scrape flow.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    pub name: Spanned<String>,
    /// Request method (default GET).
    pub method: Option<Spanned<String>>,
    /// URL; `{{ name }}` inserts a captured value.
    pub url: Spanned<String>,
    pub headers: Option<BTreeMap<String, Spanned<String>>>,
    pub body: Option<Spanned<String>>,
    pub json: Option<Spanned<toml::Value>>,
    /// Checked on the step's (final) response.
    pub expect: Option<Spanned<RawHttpExpect>>,
    /// Variables to capture from the response, by name.
    pub capture: Option<BTreeMap<String, Spanned<RawCapture>>>,
    /// Repeat the step until these hold, within the flow's timeout.
    pub until: Option<Spanned<RawHttpExpect>>,
    /// Pause between attempts of an `until` step (default 1s).
    pub poll_interval: Option<Spanned<Dur>>,
}

/// `{ json = "$.id" }`, `{ header = "location" }`, `{ regex = 'id=(\w+)' }` or `{ css = "h1" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCapture {
    pub json: Option<Spanned<String>>,
    pub header: Option<Spanned<String>>,
    pub regex: Option<Spanned<String>>,
    pub css: Option<Spanned<String>>,
}

/// `{ selector = "h1.title", text = "Example Domain" }`: exactly one of text, matches, count, exists.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCss {
    pub selector: Spanned<String>,
    pub text: Option<String>,
    pub matches: Option<Spanned<String>>,
    pub count: Option<u32>,
    pub exists: Option<bool>,
}

/// `{ series = 'queue_size{queue_name="scrape:http"}', lt = 10000 }`: exactly one of lt, gt,
/// equals, exists.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetric {
    pub series: Spanned<String>,
    pub lt: Option<f64>,
    pub gt: Option<f64>,
    pub equals: Option<f64>,
    pub exists: Option<bool>,
}

/// `[probe.expect]` of an http probe, and a scrape step's `expect` and `until`: every
/// condition must hold.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawHttpExpect {
    /// Accepted statuses (default "2xx").
    pub status: Option<Spanned<StatusSpec>>,
    /// Strings the body must contain.
    pub body_contains: Option<Spanned<Vec<String>>>,
    /// Regexes the body must match.
    pub body_regex: Option<Vec<Spanned<String>>>,
    /// Regexes the body must not match.
    pub body_not_regex: Option<Vec<Spanned<String>>>,
    /// Header name → regex one of its values must match.
    pub headers: Option<BTreeMap<String, Spanned<String>>>,
    /// Header name → regex none of its values may match (blackbox_exporter's
    /// `fail_if_header_matches`).
    pub headers_not: Option<BTreeMap<String, Spanned<String>>>,
    /// The final request must (true) or must not (false) have used TLS (blackbox_exporter's
    /// `fail_if_not_ssl` / `fail_if_ssl`).
    pub ssl: Option<Spanned<bool>>,
    /// JSONPath assertions.
    pub json: Option<Vec<Spanned<RawJsonAssertion>>>,
    /// Read the body as a health document.
    pub health: Option<Spanned<bool>>,
    /// The whole run must take less than this.
    pub latency_under: Option<Spanned<Dur>>,
    /// https: the effective certificate expiry must be at least this many days away.
    pub cert_min_days: Option<Spanned<f64>>,
    /// CSS assertions on the body as HTML.
    pub css: Option<Vec<Spanned<RawCss>>>,
    /// Assertions on the body as Prometheus text exposition.
    pub metrics: Option<Vec<Spanned<RawMetric>>>,
}

/// `[probe.expect]` of a tls probe.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawTlsExpect {
    /// The effective certificate expiry must be at least this many days away.
    pub min_days_remaining: Option<Spanned<f64>>,
    /// Chain and hostname must verify (default true).
    pub verify: Option<Spanned<bool>>,
    /// Lowest acceptable protocol version, "1.2" or "1.3".
    pub min_version: Option<Spanned<TlsVersion>>,
}

/// `[server]`: the daemon's HTTP endpoint.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// Address to serve /metrics, /probe, /api, /health and the status page on.
    pub listen: Option<Spanned<String>>,
    /// Require a bearer token or basic auth on every endpoint but /health/*.
    pub auth: Option<Spanned<RawAuth>>,
    /// Serve HTTPS with this certificate chain and key (PEM files).
    pub tls: Option<Spanned<RawServerTls>>,
    /// Rules (`scheme://HOST[:PORT][/PATH]`) for what `/probe?target=` may probe; empty or absent
    /// disables /probe.
    pub probe_allow: Option<Vec<Spanned<String>>>,
    /// `/probe` requests running at once (default 256); beyond it, 503.
    pub probe_max_in_flight: Option<Spanned<u32>>,
    /// `/probe` requests per second per client address (default 0 = off); beyond it, 429.
    pub probe_rate_limit: Option<Spanned<u32>>,
}

/// `auth = { bearer_token = "..." }` or `auth = { basic = { username, password } }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    pub bearer_token: Option<Spanned<String>>,
    pub basic: Option<Spanned<RawBasic>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBasic {
    pub username: String,
    pub password: Spanned<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServerTls {
    pub cert: Spanned<String>,
    pub key: Spanned<String>,
}

/// `[scheduler]`: bounds on the load vantage puts on targets.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawScheduler {
    /// Most probe runs in flight at once (default 256).
    pub max_concurrency: Option<Spanned<u32>>,
    /// Most runs started per second against one host (default 50; 0 = no limit).
    pub per_host_rate: Option<Spanned<u32>>,
}

/// `[state]`: where SLO windows and alert state survive restarts.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawState {
    /// Directory for the state file (created if missing).
    pub dir: Option<Spanned<String>>,
    /// How often state is written (default 10s); at most this much is lost on a crash.
    pub flush_interval: Option<Spanned<Dur>>,
}

/// One `[[slo]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSlo {
    /// Unique, `[a-z0-9_-]+`; the `slo` label.
    pub name: Spanned<String>,
    /// Probe names or globs; every run of these is an event.
    pub probes: Spanned<Vec<Spanned<String>>>,
    /// Percent, strictly between 0 and 100.
    pub objective: Spanned<f64>,
    /// Rolling period (default 30d). Exclusive with `calendar`.
    pub period: Option<Spanned<Dur>>,
    /// `month` or `week`, in `time_zone`.
    pub calendar: Option<Spanned<String>>,
    /// IANA time zone of a calendar period (default UTC).
    pub time_zone: Option<Spanned<String>>,
    /// `availability` (default), `latency` or `latency_percentile`.
    pub sli: Option<Spanned<String>>,
    /// Latency SLIs: the duration a good run stays within.
    pub threshold: Option<Spanned<Dur>>,
    /// latency_percentile: which percentile (0–100).
    pub percentile: Option<Spanned<f64>>,
    /// `occurrences` (default) or `timeslices`.
    pub budgeting: Option<Spanned<String>>,
    /// Timeslices: the slice length (default 1m).
    pub slice: Option<Spanned<Dur>>,
    /// Timeslices: a slice is good when its good/total ratio is at least this (default 1.0).
    pub slice_target: Option<Spanned<f64>>,
    /// A burn-rate window with fewer events never fires (default 10).
    pub min_events: Option<Spanned<u64>>,
    pub runbook_url: Option<Spanned<String>>,
    pub labels: Option<BTreeMap<String, Spanned<String>>>,
    /// The multiwindow policy; default: the SRE Workbook's, scaled by period / 30d.
    pub alerts: Option<Vec<Spanned<RawAlertPair>>>,
}

/// `{ severity = "critical", long = "1h", short = "5m", burn_rate = 14.4 }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlertPair {
    pub severity: Spanned<String>,
    pub long: Spanned<Dur>,
    pub short: Spanned<Dur>,
    pub burn_rate: Spanned<f64>,
}

/// `[alert]`: probe-level alert rules and the sinks alerts go to.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawAlert {
    /// ProbeDown fires after this many consecutive failures (default 3).
    pub alert_after_failures: Option<Spanned<u32>>,
    /// ProbeDown resolves after this many consecutive successes (default 2).
    pub resolve_after_successes: Option<Spanned<u32>>,
    /// CertificateExpiring fires when the effective expiry is closer than this (default 14).
    pub cert_alert_days: Option<Spanned<f64>>,
    /// Base URL of this vantage as others reach it, for links in alerts (default: from listen).
    pub external_url: Option<Spanned<String>>,
    /// Firing alerts are re-sent to Alertmanager this often (default 1m).
    pub resend_interval: Option<Spanned<Dur>>,
    /// `[[alert.sink]]`.
    pub sink: Option<Vec<Spanned<RawSink>>>,
}

/// One `[[alert.sink]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSink {
    /// `alertmanager`, `webhook`, `slack` or `pagerduty`.
    pub kind: Spanned<String>,
    /// The `sink` label (default: the kind, numbered when repeated).
    pub name: Option<Spanned<String>>,
    /// Alertmanager base URL, webhook URL, Slack incoming-webhook URL, or PagerDuty Events API
    /// URL (default `https://events.pagerduty.com/v2/enqueue`).
    pub url: Option<Spanned<String>>,
    /// Only these severities (default all).
    pub severities: Option<Vec<Spanned<String>>>,
    /// PagerDuty integration (routing) key.
    pub routing_key: Option<Spanned<String>>,
}

/// `{ path = "$.status", equals = "healthy" }`: exactly one operator.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJsonAssertion {
    pub path: Spanned<String>,
    pub equals: Option<toml::Value>,
    pub not_equals: Option<toml::Value>,
    pub matches: Option<Spanned<String>>,
    pub exists: Option<bool>,
    pub lt: Option<f64>,
    pub gt: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_units() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(
            parse_duration("30d").unwrap(),
            Duration::from_secs(30 * 86400)
        );
        assert!(parse_duration("30").unwrap_err().contains("no unit"));
        assert!(parse_duration("abc").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn sizes() {
        let s: Size = toml::from_str::<BTreeMap<String, Size>>("a = \"10MiB\"").unwrap()["a"];
        assert_eq!(s.0, 10 * 1024 * 1024);
        assert!(toml::from_str::<BTreeMap<String, Size>>("a = -1").is_err());
        assert!(toml::from_str::<BTreeMap<String, Size>>("a = \"lots\"").is_err());
    }

    #[test]
    fn statuses() {
        let parse =
            |s: &str| toml::from_str::<BTreeMap<String, StatusSpec>>(s).map(|m| m["a"].clone());
        assert_eq!(parse("a = 200").unwrap().0, vec![StatusPattern::Code(200)]);
        assert_eq!(
            parse("a = [200, \"3xx\"]").unwrap().0,
            vec![StatusPattern::Code(200), StatusPattern::Class(3)]
        );
        assert!(parse("a = 700").is_err());
        assert!(parse("a = []").is_err());
        assert!(parse("a = true").is_err());
    }
}
