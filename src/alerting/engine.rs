//! The alert state machine: `SLOBurnRate` (per SLO and severity, from the multiwindow pairs),
//! `ProbeDown` (consecutive failures, with hysteresis on recovery) and `CertificateExpiring`.
//! Each step compares what should fire with what is firing and yields the transitions; the
//! notifier delivers them. Active alerts are persisted with the SLO state, so a restart while
//! firing neither pages again nor forgets the RESOLVED that is due.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::config::AlertConfig;
use crate::daemon::evaluator::Evaluator;
use crate::daemon::store::Store;

/// One alert, as sent to every sink.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Stable identity: alertname plus the slo or probe plus severity.
    pub key: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// Unix ms.
    pub starts_at: i64,
    /// Unix ms; set when resolved.
    pub ends_at: Option<i64>,
    /// Numbers behind the alert (burn rates, budget remaining, days left).
    pub values: BTreeMap<String, f64>,
    pub generator_url: String,
}

impl Alert {
    pub fn severity(&self) -> &str {
        self.labels
            .get("severity")
            .map(String::as_str)
            .unwrap_or("warning")
    }

    pub fn name(&self) -> &str {
        self.labels
            .get("alertname")
            .map(String::as_str)
            .unwrap_or("")
    }

    pub fn firing(&self) -> bool {
        self.ends_at.is_none()
    }
}

/// A change to deliver.
#[derive(Debug, Clone)]
pub struct Transition {
    pub alert: Alert,
    /// For SLO warnings: the same SLO's critical alert is firing (native sinks inhibit).
    pub inhibited: bool,
}

/// Active alerts by key.
#[derive(Debug, Default)]
pub struct Alerts {
    active: HashMap<String, Alert>,
}

/// What should be firing now, before comparing with what is.
struct Want {
    key: String,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    values: BTreeMap<String, f64>,
    generator_url: String,
}

fn pct(v: f64) -> String {
    format!("{:.1}%", v * 100.0)
}

impl Alerts {
    pub fn restore(&mut self, alerts: Vec<Alert>) {
        for a in alerts.into_iter().filter(Alert::firing) {
            self.active.insert(a.key.clone(), a);
        }
    }

    pub fn active(&self) -> Vec<Alert> {
        let mut v: Vec<Alert> = self.active.values().cloned().collect();
        v.sort_by(|a, b| a.key.cmp(&b.key));
        v
    }

    /// Compare the wanted alerts with the active ones at `now` (Unix ms).
    pub fn step(
        &mut self,
        now: i64,
        config: &AlertConfig,
        evaluator: &Evaluator,
        store: &Store,
    ) -> Vec<Transition> {
        let mut wanted: Vec<Want> = Vec::new();
        let mut critical_slos: Vec<String> = Vec::new();
        evaluator.with(|slos| {
            for r in slos {
                let Some(rep) = &r.report else { continue };
                let c = &r.config;
                for sev in rep.severities() {
                    let key = format!("SLOBurnRate/{}/{sev}", c.name);
                    let Some(pair) = rep.firing_pair(sev) else {
                        continue;
                    };
                    if sev == "critical" {
                        critical_slos.push(c.name.clone());
                    }
                    // The windows of the pair that fired first, kept for the alert's life. They
                    // are annotations, not labels: the identity is alertname, slo and severity
                    // (plus the SLO's labels), exactly what `vantage rules` gives Prometheus'
                    // alert, so Alertmanager merges the two (SPEC §10).
                    let first = |k: &str| {
                        self.active
                            .get(&key)
                            .and_then(|a| a.annotations.get(k).or_else(|| a.labels.get(k)).cloned())
                    };
                    let long = first("long_window").unwrap_or_else(|| pair.long.name.to_string());
                    let short = first("short_window").unwrap_or_else(|| pair.short.name.to_string());
                    let mut labels: BTreeMap<String, String> = c.labels.clone().into_iter().collect();
                    labels.insert("alertname".into(), "SLOBurnRate".into());
                    labels.insert("slo".into(), c.name.clone());
                    labels.insert("severity".into(), sev.to_string());
                    let remaining = rep.budget_remaining.unwrap_or(1.0);
                    let mut annotations = BTreeMap::new();
                    annotations.insert(
                        "summary".into(),
                        format!("SLO {} is burning its error budget too fast ({sev})", c.name),
                    );
                    annotations.insert(
                        "description".into(),
                        format!(
                            "Burn rate {:.2} over {} and {:.2} over {} (threshold {}); error budget remaining {} of the {} period; objective {}%.",
                            pair.long.burn_rate.unwrap_or(0.0),
                            pair.long.name,
                            pair.short.burn_rate.unwrap_or(0.0),
                            pair.short.name,
                            pair.burn_rate_threshold,
                            pct(remaining),
                            r.slo.period_name(),
                            c.spec.objective.percent()
                        ),
                    );
                    annotations.insert("long_window".into(), long);
                    annotations.insert("short_window".into(), short);
                    if let Some(u) = &c.runbook_url {
                        annotations.insert("runbook_url".into(), u.clone());
                    }
                    let mut values = BTreeMap::new();
                    values.insert("burn_rate_long".into(), pair.long.burn_rate.unwrap_or(0.0));
                    values.insert("burn_rate_short".into(), pair.short.burn_rate.unwrap_or(0.0));
                    values.insert("burn_rate_threshold".into(), pair.burn_rate_threshold);
                    values.insert("budget_remaining".into(), remaining);
                    wanted.push(Want {
                        key,
                        labels,
                        annotations,
                        values,
                        generator_url: format!("{}/api/v1/slos/{}", config.external_url, c.name),
                    });
                }
            }
        });

        let now_s = now / 1000;
        for p in store.all() {
            let meta = p.meta();
            let r = p.record();
            let base = |alertname: &str, severity: &str| {
                let mut labels: BTreeMap<String, String> = meta.labels.iter().cloned().collect();
                labels.insert("alertname".into(), alertname.into());
                labels.insert("probe".into(), p.name.clone());
                labels.insert("severity".into(), severity.into());
                labels
            };
            // `[alert]`'s thresholds, overridden by the probe's `[probe.alert]`.
            let limits = config.for_probe(&meta.alert);
            let down_key = format!("ProbeDown/{}", p.name);
            let down = if self.active.contains_key(&down_key) {
                r.consecutive_successes < limits.resolve_after_successes
            } else {
                r.consecutive_failures >= limits.alert_after_failures
            };
            if down {
                let last = r.last.as_ref().map(|l| {
                    format!(
                        "{}: {}",
                        l.outcome.reason.map(|x| x.as_str()).unwrap_or("failure"),
                        l.outcome.evidence
                    )
                });
                let mut annotations = BTreeMap::new();
                annotations.insert("summary".into(), format!("Probe {} is down", p.name));
                annotations.insert(
                    "description".into(),
                    format!(
                        "{} consecutive failed runs of {} ({}). Last: {}",
                        r.consecutive_failures,
                        meta.target,
                        meta.kind.as_str(),
                        last.unwrap_or_default()
                    ),
                );
                let mut values = BTreeMap::new();
                values.insert(
                    "consecutive_failures".into(),
                    f64::from(r.consecutive_failures),
                );
                wanted.push(Want {
                    key: down_key,
                    labels: base("ProbeDown", "critical"),
                    annotations,
                    values,
                    generator_url: format!("{}/api/v1/probes/{}", config.external_url, p.name),
                });
            }
            if let Some(tls) = r.last.as_ref().and_then(|l| l.outcome.facts.tls()) {
                let days = tls.days_left(now_s);
                if days < limits.cert_alert_days {
                    let mut annotations = BTreeMap::new();
                    annotations.insert(
                        "summary".into(),
                        format!(
                            "Certificate of {} expires in {:.1} days",
                            p.name,
                            vantage_probes::tls::days_left_tenths(tls, now_s).max(0.0)
                        ),
                    );
                    annotations.insert(
                        "description".into(),
                        format!(
                            "The effective expiry of {} is {} (Unix seconds), {:.1} days away; alerting below {} days.",
                            meta.target, tls.effective_not_after, days, limits.cert_alert_days
                        ),
                    );
                    let mut values = BTreeMap::new();
                    values.insert("days_remaining".into(), days);
                    wanted.push(Want {
                        key: format!("CertificateExpiring/{}", p.name),
                        labels: base("CertificateExpiring", "warning"),
                        annotations,
                        values,
                        generator_url: format!("{}/api/v1/probes/{}", config.external_url, p.name),
                    });
                }
            }
        }

        let mut out = Vec::new();
        let inhibited = |a: &Alert| {
            a.name() == "SLOBurnRate"
                && a.severity() != "critical"
                && a.labels
                    .get("slo")
                    .is_some_and(|s| critical_slos.contains(s))
        };
        let wanted_keys: Vec<String> = wanted.iter().map(|w| w.key.clone()).collect();
        for w in wanted {
            match self.active.get_mut(&w.key) {
                Some(a) => {
                    // Still firing: refresh what it says (numbers move), keep its identity.
                    a.annotations = w.annotations;
                    a.values = w.values;
                }
                None => {
                    let a = Alert {
                        key: w.key.clone(),
                        labels: w.labels,
                        annotations: w.annotations,
                        starts_at: now,
                        ends_at: None,
                        values: w.values,
                        generator_url: w.generator_url,
                    };
                    out.push(Transition {
                        inhibited: inhibited(&a),
                        alert: a.clone(),
                    });
                    self.active.insert(w.key, a);
                }
            }
        }
        let gone: Vec<String> = self
            .active
            .keys()
            .filter(|k| !wanted_keys.contains(k))
            .cloned()
            .collect();
        for k in gone {
            if let Some(mut a) = self.active.remove(&k) {
                a.ends_at = Some(now);
                out.push(Transition {
                    alert: a,
                    inhibited: false,
                });
            }
        }
        out
    }
}
