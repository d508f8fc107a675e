//! Resolving `[alert]` and its sinks.

use std::time::Duration;

use url::Url;

use super::load::Located;
use super::raw::{RawAlert, RawProbeAlert};
use super::{Ctx, Server};
use crate::secret::{Redactor, Secret};

const PAGERDUTY_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// Where alerts go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkKind {
    Alertmanager,
    Webhook,
    Slack,
    Pagerduty,
}

impl SinkKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SinkKind::Alertmanager => "alertmanager",
            SinkKind::Webhook => "webhook",
            SinkKind::Slack => "slack",
            SinkKind::Pagerduty => "pagerduty",
        }
    }
}

/// Compared by value on reload (secrets included: `Secret` compares its real value), so
/// rotating a routing key or a token in a sink URL takes effect.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkConfig {
    pub name: String,
    pub kind: SinkKind,
    pub url: Url,
    /// Empty: every severity.
    pub severities: Vec<String>,
    pub routing_key: Option<Secret>,
}

impl SinkConfig {
    pub fn wants(&self, severity: &str) -> bool {
        self.severities.is_empty() || self.severities.iter().any(|s| s == severity)
    }
}

/// `[alert]`, resolved.
#[derive(Debug, Clone)]
pub struct AlertConfig {
    pub alert_after_failures: u32,
    pub resolve_after_successes: u32,
    pub cert_alert_days: f64,
    /// Base of the links in alerts (`generatorURL`), without a trailing slash.
    pub external_url: String,
    pub resend_interval: Duration,
    pub sinks: Vec<SinkConfig>,
}

impl AlertConfig {
    fn defaults(server: &Server) -> Self {
        let scheme = if server.tls.is_some() {
            "https"
        } else {
            "http"
        };
        Self {
            alert_after_failures: 3,
            resolve_after_successes: 2,
            cert_alert_days: 14.0,
            external_url: format!("{scheme}://{}", server.listen),
            resend_interval: Duration::from_secs(60),
            sinks: Vec::new(),
        }
    }
}

/// A probe's `[probe.alert]` overrides; `None` keeps `[alert]`'s value.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProbeAlert {
    pub alert_after_failures: Option<u32>,
    pub resolve_after_successes: Option<u32>,
    pub cert_alert_days: Option<f64>,
}

/// The thresholds that apply to one probe: `[alert]`'s, overridden by its `[probe.alert]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProbeThresholds {
    pub alert_after_failures: u32,
    pub resolve_after_successes: u32,
    pub cert_alert_days: f64,
}

impl AlertConfig {
    /// The thresholds for a probe with these overrides.
    pub fn for_probe(&self, o: &ProbeAlert) -> ProbeThresholds {
        ProbeThresholds {
            alert_after_failures: o.alert_after_failures.unwrap_or(self.alert_after_failures),
            resolve_after_successes: o
                .resolve_after_successes
                .unwrap_or(self.resolve_after_successes),
            cert_alert_days: o.cert_alert_days.unwrap_or(self.cert_alert_days),
        }
    }
}

/// Check the three probe-level keys (of `[alert]` or `[probe.alert]`), reporting each bad
/// value at its location; the values as given.
fn check_thresholds(
    after: Option<&toml::Spanned<u32>>,
    resolve: Option<&toml::Spanned<u32>>,
    days: Option<&toml::Spanned<f64>>,
    ctx: &mut Ctx<'_>,
) -> ProbeAlert {
    if let Some(n) = after.filter(|n| *n.get_ref() == 0) {
        ctx.err(n.span().start, "alert_after_failures must be at least 1");
    }
    if let Some(n) = resolve.filter(|n| *n.get_ref() == 0) {
        ctx.err(n.span().start, "resolve_after_successes must be at least 1");
    }
    if let Some(d) = days.filter(|d| !d.get_ref().is_finite() || *d.get_ref() < 0.0) {
        ctx.err(
            d.span().start,
            "cert_alert_days must be a number of days ≥ 0",
        );
    }
    ProbeAlert {
        alert_after_failures: after.map(|n| *n.get_ref()),
        resolve_after_successes: resolve.map(|n| *n.get_ref()),
        cert_alert_days: days.map(|d| *d.get_ref()),
    }
}

/// Resolve a probe's `[probe.alert]`.
pub(super) fn resolve_probe_alert(
    raw: Option<&toml::Spanned<RawProbeAlert>>,
    ctx: &mut Ctx<'_>,
) -> ProbeAlert {
    let Some(a) = raw.map(|a| a.get_ref()) else {
        return ProbeAlert::default();
    };
    check_thresholds(
        a.alert_after_failures.as_ref(),
        a.resolve_after_successes.as_ref(),
        a.cert_alert_days.as_ref(),
        ctx,
    )
}

pub(super) fn resolve_alert(
    raw: Option<&Located<RawAlert>>,
    server: &Server,
    ctx: &mut Ctx<'_>,
    redactor: &mut Redactor,
) -> AlertConfig {
    let mut out = AlertConfig::defaults(server);
    let Some(raw) = raw else { return out };
    ctx.file = raw.file;
    let a = &raw.value;
    let global = check_thresholds(
        a.alert_after_failures.as_ref(),
        a.resolve_after_successes.as_ref(),
        a.cert_alert_days.as_ref(),
        ctx,
    );
    let t = out.for_probe(&global);
    out.alert_after_failures = t.alert_after_failures;
    out.resolve_after_successes = t.resolve_after_successes;
    out.cert_alert_days = t.cert_alert_days;
    if let Some(u) = &a.external_url {
        match Url::parse(u.get_ref()) {
            Ok(_) => out.external_url = u.get_ref().trim_end_matches('/').to_string(),
            Err(e) => ctx.err(u.span().start, format!("invalid external_url: {e}")),
        }
    }
    if let Some(r) = &a.resend_interval {
        if r.get_ref().0 < Duration::from_secs(1) {
            ctx.err(r.span().start, "resend_interval must be at least 1s");
        }
        out.resend_interval = r.get_ref().0;
    }
    for (i, s) in a.sink.iter().flatten().enumerate() {
        let at = s.span().start;
        let s = s.get_ref();
        let kind = match s.kind.get_ref().as_str() {
            "alertmanager" => SinkKind::Alertmanager,
            "webhook" => SinkKind::Webhook,
            "slack" => SinkKind::Slack,
            "pagerduty" => SinkKind::Pagerduty,
            other => {
                ctx.err(
                    s.kind.span().start,
                    format!("unknown sink kind {other:?}, expected one of: alertmanager, webhook, slack, pagerduty"),
                );
                continue;
            }
        };
        let url_text = match (&s.url, kind) {
            (Some(u), _) => u.get_ref().clone(),
            (None, SinkKind::Pagerduty) => PAGERDUTY_URL.to_string(),
            (None, _) => {
                ctx.err(at, format!("a {} sink needs a url", kind.as_str()));
                continue;
            }
        };
        let url = match Url::parse(&url_text) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => u,
            _ => {
                let at = s.url.as_ref().map_or(at, |u| u.span().start);
                ctx.err(at, "sink url must be an http:// or https:// URL");
                continue;
            }
        };
        // Webhook URLs (Slack's above all) carry their credential in the path.
        redactor.add(Secret::new(url_text.clone()));
        let routing_key = s.routing_key.as_ref().map(|k| {
            let secret = Secret::new(k.get_ref().clone());
            redactor.add(secret.clone());
            secret
        });
        if kind == SinkKind::Pagerduty && routing_key.is_none() {
            ctx.err(at, "a pagerduty sink needs a routing_key");
        }
        let name = match &s.name {
            Some(n) => n.get_ref().clone(),
            None if a
                .sink
                .iter()
                .flatten()
                .filter(|o| o.get_ref().kind.get_ref() == s.kind.get_ref())
                .count()
                > 1 =>
            {
                format!("{}-{}", kind.as_str(), i + 1)
            }
            None => kind.as_str().to_string(),
        };
        out.sinks.push(SinkConfig {
            name,
            kind,
            url,
            severities: s
                .severities
                .iter()
                .flatten()
                .map(|x| x.get_ref().clone())
                .collect(),
            routing_key,
        });
    }
    out
}
