//! Delivering alerts: one bounded queue and one task per sink, retries with exponential backoff
//! and jitter, in order. A dead or slow sink only ever delays its own queue: probing, evaluation
//! and other sinks go on. Transitions wait in the queue (up to [`QUEUE_MAX`], then the oldest is
//! dropped, counted and logged) until the sink takes them — an hour-long outage loses nothing.
//! Alertmanager's periodic re-sends are coalesced, so they never pile up.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use serde_json::{json, Value};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, warn};

use crate::alerting::engine::{Alert, Transition};
use crate::config::{SinkConfig, SinkKind};
use crate::metrics::Metrics;
use crate::Clock;

/// Most notifications waiting per sink.
pub const QUEUE_MAX: usize = 1024;
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
struct Item {
    seq: u64,
    alert: Alert,
    /// An Alertmanager refresh of a firing alert (coalesced), not a transition.
    resend: bool,
}

struct Sink {
    config: SinkConfig,
    queue: Mutex<VecDeque<Item>>,
    wake: Notify,
}

/// The sinks of the running config.
pub struct Notifier {
    sinks: Vec<Arc<Sink>>,
    seq: AtomicU64,
    stop: CancellationToken,
    metrics: Arc<Metrics>,
    resend_interval: Duration,
}

fn rfc3339(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_millis(t).to_string()
}

/// A reqwest client on rustls with the ring provider and the system's roots.
pub fn http_client() -> reqwest::Client {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(roots).with_no_client_auth());
    let builder = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .user_agent(concat!("vantage/", env!("CARGO_PKG_VERSION")));
    let builder = match tls {
        Ok(tls) => builder.tls_backend_preconfigured(tls),
        Err(_) => builder,
    };
    builder.build().unwrap_or_default()
}

impl Notifier {
    pub fn new(
        sinks: &[SinkConfig],
        resend_interval: Duration,
        metrics: Arc<Metrics>,
        clock: Clock,
    ) -> Self {
        let client = http_client();
        let stop = CancellationToken::new();
        let sinks: Vec<Arc<Sink>> = sinks
            .iter()
            .map(|c| {
                Arc::new(Sink {
                    config: c.clone(),
                    queue: Mutex::new(VecDeque::new()),
                    wake: Notify::new(),
                })
            })
            .collect();
        for s in &sinks {
            let (s, client, m, stop) = (s.clone(), client.clone(), metrics.clone(), stop.clone());
            let on_panic = metrics.clone();
            tokio::spawn(crate::supervise::supervise(
                "notifier",
                move |task, msg| on_panic.task_panicked(task, msg),
                move || {
                    deliver_loop(
                        s.clone(),
                        client.clone(),
                        m.clone(),
                        stop.clone(),
                        resend_interval,
                        clock,
                    )
                },
            ));
        }
        Self {
            sinks,
            seq: AtomicU64::new(0),
            stop,
            metrics,
            resend_interval,
        }
    }

    fn push(&self, sink: &Sink, alert: &Alert, resend: bool) {
        let item = Item {
            seq: self.seq.fetch_add(1, Ordering::Relaxed),
            alert: alert.clone(),
            resend,
        };
        let dropped = {
            let mut q = sink.queue.lock().unwrap_or_else(|e| e.into_inner());
            if resend {
                // Replace a waiting refresh of the same alert instead of queueing another.
                if let Some(old) = q
                    .iter_mut()
                    .skip(1)
                    .find(|i| i.resend && i.alert.key == item.alert.key)
                {
                    *old = item;
                    sink.wake.notify_one();
                    return;
                }
            }
            q.push_back(item);
            if q.len() > QUEUE_MAX {
                q.pop_front()
            } else {
                None
            }
        };
        if let Some(d) = dropped {
            self.metrics.notification(&sink.config.name, "dropped");
            error!(sink = %sink.config.name, alert = %d.alert.key, "Notification queue full; dropped the oldest notification.");
        }
        sink.wake.notify_one();
    }

    /// Queue a transition for every sink that takes its severity. Native sinks skip a firing
    /// warning while the same SLO's critical alert fires (inhibition); Alertmanager gets
    /// everything and inhibits by its own rules.
    pub fn transition(&self, t: &Transition) {
        for s in &self.sinks {
            if !s.config.wants(t.alert.severity()) {
                continue;
            }
            if t.inhibited && t.alert.firing() && s.config.kind != SinkKind::Alertmanager {
                continue;
            }
            self.push(s, &t.alert, false);
        }
    }

    /// Re-send firing alerts to Alertmanager sinks (call every `resend_interval`).
    pub fn resend(&self, active: &[Alert]) {
        for s in self
            .sinks
            .iter()
            .filter(|s| s.config.kind == SinkKind::Alertmanager)
        {
            for a in active.iter().filter(|a| s.config.wants(a.severity())) {
                self.push(s, a, true);
            }
        }
    }

    pub fn resend_interval(&self) -> Duration {
        self.resend_interval
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A jitter of up to half of `d`, from a per-process random hasher (no RNG crate, no clock).
fn jitter(d: Duration) -> Duration {
    use std::hash::{BuildHasher as _, Hasher as _};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(SEQ.fetch_add(1, Ordering::Relaxed));
    let half = d.as_millis() as u64 / 2;
    Duration::from_millis(if half == 0 { 0 } else { h.finish() % half })
}

async fn deliver_loop(
    sink: Arc<Sink>,
    client: reqwest::Client,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
    resend: Duration,
    clock: Clock,
) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let front = sink
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .front()
            .cloned();
        let Some(item) = front else {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = sink.wake.notified() => continue,
            }
        };
        let result = post(&client, &sink.config, &item.alert, resend, clock.unix_ms()).await;
        match result {
            Ok(()) => {
                metrics.notification(&sink.config.name, "success");
                debug!(sink = %sink.config.name, alert = %item.alert.key, firing = item.alert.firing(), "Notification delivered.");
                let mut q = sink.queue.lock().unwrap_or_else(|e| e.into_inner());
                if q.front().is_some_and(|f| f.seq == item.seq) {
                    q.pop_front();
                }
                backoff = BACKOFF_MIN;
            }
            Err(e) => {
                metrics.notification(&sink.config.name, "failure");
                warn!(sink = %sink.config.name, alert = %item.alert.key, error = %e, retry_in_ms = backoff.as_millis() as u64, "Notification failed; will retry.");
                let wait = backoff + jitter(backoff);
                backoff = (backoff * 2).min(BACKOFF_MAX);
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}

async fn post(
    client: &reqwest::Client,
    sink: &SinkConfig,
    alert: &Alert,
    resend: Duration,
    now_ms: i64,
) -> Result<(), String> {
    let (url, body) = match sink.kind {
        SinkKind::Alertmanager => {
            let url = sink.url.join("api/v2/alerts").map_err(|e| e.to_string())?;
            (url, json!([alertmanager(alert, resend, now_ms)]))
        }
        SinkKind::Webhook => (sink.url.clone(), webhook(alert)),
        SinkKind::Slack => (sink.url.clone(), slack(alert)),
        SinkKind::Pagerduty => (
            sink.url.clone(),
            pagerduty(
                alert,
                sink.routing_key
                    .as_ref()
                    .map(|k| k.expose())
                    .unwrap_or_default(),
            ),
        ),
    };
    let resp = client.post(url).json(&body).send().await.map_err(|e| {
        // reqwest's message can quote the URL, which may hold a credential: keep the kind only.
        if e.is_timeout() {
            "timed out".to_string()
        } else if e.is_connect() {
            "connection failed".to_string()
        } else {
            "request failed".to_string()
        }
    })?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!("status {}", resp.status().as_u16()))
    }
}

/// Alertmanager API v2: a firing alert's `endsAt` lies a few re-send intervals ahead, so
/// Alertmanager resolves it by itself if vantage disappears; a resolved one ends when it did.
pub fn alertmanager(a: &Alert, resend: Duration, now_ms: i64) -> Value {
    let ends = a
        .ends_at
        .unwrap_or_else(|| now_ms + 4 * resend.as_millis() as i64);
    json!({
        "labels": a.labels,
        "annotations": a.annotations,
        "startsAt": rfc3339(a.starts_at),
        "endsAt": rfc3339(ends),
        "generatorURL": a.generator_url,
    })
}

/// The generic webhook: one JSON object per transition.
pub fn webhook(a: &Alert) -> Value {
    json!({
        "version": "1",
        "status": if a.firing() { "firing" } else { "resolved" },
        "labels": a.labels,
        "annotations": a.annotations,
        "startsAt": rfc3339(a.starts_at),
        "endsAt": a.ends_at.map(rfc3339),
        "generatorURL": a.generator_url,
        "values": a.values,
    })
}

/// A Slack incoming-webhook message, coloured by severity (green when resolved).
pub fn slack(a: &Alert) -> Value {
    let (status, color) = match (a.firing(), a.severity()) {
        (false, _) => ("RESOLVED", "#2eb886"),
        (true, "critical") => ("FIRING", "#d0021b"),
        (true, "warning") => ("FIRING", "#f5a623"),
        (true, _) => ("FIRING", "#4a90e2"),
    };
    let summary = a
        .annotations
        .get("summary")
        .cloned()
        .unwrap_or_else(|| a.key.clone());
    let mut fields = vec![json!({"title": "severity", "value": a.severity(), "short": true})];
    for key in ["slo", "probe", "long_window", "short_window"] {
        if let Some(v) = a.labels.get(key).or_else(|| a.annotations.get(key)) {
            fields.push(json!({"title": key, "value": v, "short": true}));
        }
    }
    let link = a
        .annotations
        .get("runbook_url")
        .cloned()
        .unwrap_or_else(|| a.generator_url.clone());
    json!({
        "text": format!("[{status}] {summary}"),
        "attachments": [{
            "color": color,
            "title": format!("{} {}", a.name(), a.labels.get("slo").or(a.labels.get("probe")).cloned().unwrap_or_default()),
            "title_link": link,
            "text": a.annotations.get("description").cloned().unwrap_or_default(),
            "fields": fields,
            "footer": "vantage",
            "ts": a.ends_at.unwrap_or(a.starts_at) / 1000,
        }],
    })
}

/// PagerDuty Events API v2: trigger while firing, resolve after, one `dedup_key` per alert.
pub fn pagerduty(a: &Alert, routing_key: &str) -> Value {
    let dedup_key = format!("vantage/{}", a.key);
    if !a.firing() {
        return json!({"routing_key": routing_key, "event_action": "resolve", "dedup_key": dedup_key});
    }
    let severity = match a.severity() {
        "critical" => "critical",
        "warning" => "warning",
        "error" => "error",
        _ => "info",
    };
    let mut links = vec![json!({"href": a.generator_url, "text": "vantage"})];
    if let Some(r) = a.annotations.get("runbook_url") {
        links.push(json!({"href": r, "text": "runbook"}));
    }
    json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "payload": {
            "summary": a.annotations.get("summary").cloned().unwrap_or_else(|| a.key.clone()),
            "source": "vantage",
            "severity": severity,
            "timestamp": rfc3339(a.starts_at),
            "component": a.labels.get("slo").or(a.labels.get("probe")),
            "group": a.name(),
            "class": a.name(),
            "custom_details": {"labels": a.labels, "annotations": a.annotations, "values": a.values},
        },
        "links": links,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn alert(firing: bool) -> Alert {
        let mut labels = BTreeMap::new();
        labels.insert("alertname".to_string(), "SLOBurnRate".to_string());
        labels.insert("slo".to_string(), "api".to_string());
        labels.insert("severity".to_string(), "critical".to_string());
        let mut annotations = BTreeMap::new();
        annotations.insert("summary".to_string(), "SLO api is burning".to_string());
        annotations.insert("description".to_string(), "burn 15".to_string());
        annotations.insert("runbook_url".to_string(), "https://rb/api".to_string());
        Alert {
            key: "SLOBurnRate/api/critical".into(),
            labels,
            annotations,
            starts_at: 1_790_000_000_000,
            ends_at: (!firing).then_some(1_790_000_060_000),
            values: BTreeMap::new(),
            generator_url: "http://v/api/v1/slos/api".into(),
        }
    }

    #[test]
    fn pagerduty_events_v2() {
        let t = pagerduty(&alert(true), "KEY");
        assert_eq!(t["routing_key"], "KEY");
        assert_eq!(t["event_action"], "trigger");
        assert_eq!(t["dedup_key"], "vantage/SLOBurnRate/api/critical");
        assert_eq!(t["payload"]["summary"], "SLO api is burning");
        assert_eq!(t["payload"]["source"], "vantage");
        assert_eq!(t["payload"]["severity"], "critical");
        assert_eq!(t["payload"]["timestamp"], "2026-09-21T14:13:20.000Z");
        assert_eq!(t["links"][1]["href"], "https://rb/api");
        let r = pagerduty(&alert(false), "KEY");
        assert_eq!(
            r,
            json!({"routing_key": "KEY", "event_action": "resolve", "dedup_key": "vantage/SLOBurnRate/api/critical"})
        );
    }

    #[test]
    fn slack_incoming_webhook() {
        let f = slack(&alert(true));
        assert_eq!(f["text"], "[FIRING] SLO api is burning");
        assert_eq!(f["attachments"][0]["color"], "#d0021b");
        assert_eq!(f["attachments"][0]["title_link"], "https://rb/api");
        assert_eq!(
            f["attachments"][0]["fields"][0],
            json!({"title": "severity", "value": "critical", "short": true})
        );
        let r = slack(&alert(false));
        assert_eq!(r["text"], "[RESOLVED] SLO api is burning");
        assert_eq!(r["attachments"][0]["color"], "#2eb886");
    }

    #[test]
    fn webhook_and_alertmanager() {
        let w = webhook(&alert(false));
        assert_eq!(w["status"], "resolved");
        assert_eq!(w["endsAt"], "2026-09-21T14:14:20.000Z");
        let a = alertmanager(&alert(false), Duration::from_secs(60), 1_790_000_000_000);
        assert_eq!(a["endsAt"], "2026-09-21T14:14:20.000Z");
        assert_eq!(a["generatorURL"], "http://v/api/v1/slos/api");
        let firing = alertmanager(&alert(true), Duration::from_secs(60), 1_790_000_000_000);
        assert!(firing["endsAt"].as_str().unwrap() > "2026-09-21");
    }
}
