//! Every SLO's series, from one evaluation under the evaluator's lock. Each SLO's label prefix
//! (its name and labels) is written once per scrape; SLO names are unique and user labels may
//! not use the names vantage writes, so no series is written twice. An SLO's period that equals
//! a fixed window is that window, and one series says so.

use super::encode::{prefix, Fam, Type};
use crate::daemon::evaluator::Evaluator;

/// Write every SLO's families to `out`, evaluated at `now_ms` (Unix ms).
pub fn render(evaluator: &Evaluator, now_ms: i64, out: &mut Vec<String>, openmetrics: bool) {
    use Type::{Counter, Gauge};
    let mut objective = Fam::new(
        "slo_objective_ratio",
        "The SLO's objective as a ratio",
        Gauge,
    );
    let mut period = Fam::seconds(
        "slo_period_seconds",
        "Length of the SLO's current period",
        Gauge,
    );
    let mut events = Fam::new("slo_events", "SLO events by outcome", Counter);
    let mut sli = Fam::new(
        "slo_sli_ratio",
        "Good events / all events per window (absent when a window has none)",
        Gauge,
    );
    let mut burn = Fam::new(
        "slo_burn_rate",
        "Error ratio / error budget per window",
        Gauge,
    );
    let mut remaining = Fam::new(
        "slo_error_budget_remaining_ratio",
        "1 - error ratio of the period / error budget (not clamped)",
        Gauge,
    );
    let mut exhaustion = Fam::seconds(
        "slo_error_budget_exhaustion_seconds",
        "Time until the budget is spent at the current 1h burn rate",
        Gauge,
    );
    let mut firing = Fam::new(
        "slo_alert_firing",
        "Whether a burn-rate alert of this severity is firing",
        Gauge,
    );
    let mut alert_burn = Fam::new(
        "slo_alert_window_burn_rate",
        "Error ratio / error budget over each window the SLO's burn-rate alerts use",
        Gauge,
    );
    evaluator.evaluate_with(now_ms, |slos| {
        for r in slos {
            let c = &r.config;
            let labels = c.labels.iter().map(|(k, v)| (k.as_str(), v.as_str()));
            let p = &prefix(std::iter::once(("slo", c.name.as_str())).chain(labels));
            objective.gauge(p, &[], c.spec.objective.ratio());
            events.counter(p, &[("outcome", "good")], r.events_good);
            events.counter(p, &[("outcome", "bad")], r.events_bad);
            let Some(rep) = &r.report else { continue };
            period.gauge(p, &[], rep.period.seconds);
            let period_is_window = rep.windows.iter().any(|w| w.name == rep.period.name);
            let period_window = (!period_is_window).then_some(&rep.period).into_iter();
            for w in rep.windows.iter().chain(period_window) {
                if let Some(v) = w.sli {
                    sli.gauge(p, &[("window", &w.name)], v);
                }
                if let Some(v) = w.burn_rate {
                    burn.gauge(p, &[("window", &w.name)], v);
                }
            }
            if let Some(v) = rep.budget_remaining {
                remaining.gauge(p, &[], v);
            }
            if let Some(v) = rep.exhaustion_seconds {
                exhaustion.gauge(p, &[], v);
            }
            // The windows the alerts use (SPEC §10: dashboards show these, not the fixed
            // ones), once per severity and window.
            let mut seen: Vec<(&str, &str)> = Vec::new();
            for a in &rep.alerts {
                for w in [&a.long, &a.short] {
                    let key = (&*a.severity, &*w.name);
                    if seen.contains(&key) {
                        continue;
                    }
                    seen.push(key);
                    if let Some(v) = w.burn_rate {
                        let labels = [("severity", &*a.severity), ("window", &*w.name)];
                        alert_burn.gauge(p, &labels, v);
                    }
                }
            }
            for sev in rep.severities() {
                let on = rep.firing_pair(sev).is_some();
                let labels = [("alert", "SLOBurnRate"), ("severity", sev)];
                firing.gauge(p, &labels, super::probe_families::bool_f(on));
            }
        }
    });
    for mut f in [
        objective, period, events, sli, burn, remaining, exhaustion, firing, alert_burn,
    ] {
        f.finish(out, openmetrics);
    }
}
