//! Resolving `[alert]` and its sinks.

use std::time::Duration;

use url::Url;

use super::load::Located;
use super::raw::RawAlert;
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
    if let Some(n) = &a.alert_after_failures {
        if *n.get_ref() == 0 {
            ctx.err(n.span().start, "alert_after_failures must be at least 1");
        }
        out.alert_after_failures = *n.get_ref();
    }
    if let Some(n) = &a.resolve_after_successes {
        if *n.get_ref() == 0 {
            ctx.err(n.span().start, "resolve_after_successes must be at least 1");
        }
        out.resolve_after_successes = *n.get_ref();
    }
    if let Some(d) = &a.cert_alert_days {
        if !d.get_ref().is_finite() || *d.get_ref() < 0.0 {
            ctx.err(
                d.span().start,
                "cert_alert_days must be a number of days ≥ 0",
            );
        }
        out.cert_alert_days = *d.get_ref();
    }
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
