//! Outcomes → SLOs. Every probe run is recorded in each SLO that selects its probe; a periodic
//! evaluation turns the counts into the reports that `/metrics`, the API and the status page
//! show. SLO state is kept across reloads while an SLO's name and definition stay the same.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::warn;
use vantage_slo::{Budgeting, Report, Slo, SloSpec};

use crate::config::SloConfig;

/// One SLO at run time.
#[derive(Debug)]
pub struct Runtime {
    pub config: Arc<SloConfig>,
    pub slo: Slo,
    /// Every event since this SLO's state began (the `slo_events_total` counters).
    pub events_good: u64,
    pub events_bad: u64,
    pub report: Option<Report>,
    /// Sampled reports for the status page's charts; persisted.
    pub history: crate::daemon::history::SloHistory,
}

impl Runtime {
    /// The "SLO met" verdict of the last report; absent before the first evaluation.
    pub fn verdict(&self) -> Option<Verdict> {
        self.report.as_ref().map(|r| verdict(&self.config.spec, r))
    }
}

/// Whether an SLO is met over its period: the one home of that judgment, used by the daemon
/// (`Runtime::verdict`) and by `vantage check --runs N` (which feeds its runs through an
/// [`Evaluator`] and judges them here).
///
/// The events are what the SLO's budgeting counts:
/// - `occurrences`: every run is an event, good as the SLI says;
/// - `timeslices`: every *closed* slice that saw at least one run is an event, good when the
///   ratio of good runs in it reaches the slice target. A slice without runs is no event (the
///   report counts it in `missing_slices`); a slice still open is not judged yet.
///
/// The SLO is *judged* once the period holds at least `max(min_events, 1)` events — the same
/// low-traffic guard the burn-rate alerts use — and is then met when good/total reaches the
/// objective and, for `latency_percentile`, the period's percentile is within the threshold.
/// An SLO that is not judged is met: too few events say nothing against it, exactly as they
/// never fire an alert.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub good: u64,
    pub total: u64,
    /// good/total; absent without events.
    pub sli: Option<f64>,
    /// latency_percentile: the period's percentile, seconds.
    pub percentile_seconds: Option<f64>,
    /// The period holds at least `max(min_events, 1)` events.
    pub judged: bool,
    pub met: bool,
}

/// See [`Verdict`].
pub fn verdict(spec: &SloSpec, report: &Report) -> Verdict {
    let p = &report.period;
    let judged = p.total > 0 && p.total >= spec.min_events;
    // good/total against the objective in integers where it matters: `good ≥ ratio × total`
    // in f64 is off by one ulp for objectives such as 90% (1 − 0.9 ≠ 0.1), so compare with
    // a tolerance far below one event in any count a u64 can hold in practice.
    let ratio_met = p.good as f64 + 1e-9 >= spec.objective.ratio() * p.total as f64;
    let met = !judged || (ratio_met && report.percentile_met != Some(false));
    Verdict {
        good: p.good,
        total: p.total,
        sli: (p.total > 0).then(|| p.good as f64 / p.total as f64),
        percentile_seconds: p.percentile_seconds,
        judged,
        met,
    }
}

/// The budgeting mode's name, for reports.
pub fn budgeting_name(spec: &SloSpec) -> &'static str {
    match spec.budgeting {
        Budgeting::Occurrences => "occurrences",
        Budgeting::Timeslices { .. } => "timeslices",
    }
}

/// What one SLO saves to disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedSlo {
    pub fingerprint: u64,
    pub events_good: u64,
    pub events_bad: u64,
    pub state: vantage_slo::State,
}

#[derive(Debug, Default)]
struct Inner {
    slos: Vec<Runtime>,
    by_probe: HashMap<String, Vec<usize>>,
    /// When every SLO's report was last refreshed (Unix ms); `None` after `apply`.
    evaluated_at: Option<i64>,
}

/// How long a full evaluation serves readers that accept a recent one (`/api/v1/slos` after a
/// `/metrics` scrape): runs recorded since then show in the counters, not yet in the report.
pub const FRESH_MS: i64 = 1000;

/// All SLOs of the running config.
#[derive(Debug, Default)]
pub struct Evaluator {
    inner: Mutex<Inner>,
}

impl Evaluator {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Run exactly `slos`: unchanged ones keep their counts, new or changed ones start empty.
    pub fn apply(&self, slos: &[SloConfig]) {
        let mut inner = self.lock();
        let mut old: HashMap<String, Runtime> = inner
            .slos
            .drain(..)
            .map(|r| (r.config.name.clone(), r))
            .collect();
        let mut next = Vec::with_capacity(slos.len());
        for c in slos {
            let kept = old
                .remove(&c.name)
                .filter(|r| r.config.fingerprint == c.fingerprint)
                .and_then(|r| {
                    let mut slo = Slo::new(c.spec.clone());
                    // Alert windows may have changed the bucket layout: keep the counts only if
                    // they still fit.
                    slo.restore(r.slo.state().clone()).then_some(Runtime {
                        config: Arc::new(c.clone()),
                        slo,
                        events_good: r.events_good,
                        events_bad: r.events_bad,
                        report: None,
                        history: r.history,
                    })
                });
            next.push(kept.unwrap_or_else(|| Runtime {
                config: Arc::new(c.clone()),
                slo: Slo::new(c.spec.clone()),
                events_good: 0,
                events_bad: 0,
                report: None,
                history: Default::default(),
            }));
        }
        let mut by_probe: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, r) in next.iter().enumerate() {
            for p in &r.config.probes {
                by_probe.entry(p.clone()).or_default().push(i);
            }
        }
        inner.slos = next;
        inner.by_probe = by_probe;
        inner.evaluated_at = None;
    }

    /// Record one run of `probe` that ended at `at` (Unix ms).
    pub fn record(&self, probe: &str, success: bool, duration: Duration, at: i64) {
        let mut inner = self.lock();
        let Inner { slos, by_probe, .. } = &mut *inner;
        let Some(indexes) = by_probe.get(probe) else {
            return;
        };
        for &i in indexes {
            let r = &mut slos[i];
            if r.slo.is_good(success, duration) {
                r.events_good += 1;
            } else {
                r.events_bad += 1;
            }
            r.slo.record(at, success, duration);
        }
    }

    /// Refresh every SLO's report at `now` (Unix ms).
    pub fn evaluate(&self, now: i64) {
        Self::refresh(&mut self.lock(), now);
    }

    fn refresh(inner: &mut Inner, now: i64) {
        for r in &mut inner.slos {
            let report = r.slo.evaluate(now);
            r.history.sample(&report, now);
            r.report = Some(report);
        }
        inner.evaluated_at = Some(now);
    }

    /// Like [`Evaluator::evaluate_with`], but reuse the reports of an evaluation less than
    /// [`FRESH_MS`] before `now` (a clock that went back re-evaluates).
    pub fn evaluate_fresh_with<T>(&self, now: i64, f: impl FnOnce(&[Runtime]) -> T) -> T {
        let mut inner = self.lock();
        let fresh = inner
            .evaluated_at
            .is_some_and(|t| now >= t && now - t < FRESH_MS);
        if !fresh {
            Self::refresh(&mut inner, now);
        }
        f(&inner.slos)
    }

    /// Evaluate at `now`, then read every SLO under the same lock: what is read is consistent
    /// (counters and reports agree).
    pub fn evaluate_with<T>(&self, now: i64, f: impl FnOnce(&[Runtime]) -> T) -> T {
        let mut inner = self.lock();
        Self::refresh(&mut inner, now);
        f(&inner.slos)
    }

    /// Read every SLO (config, counters, last report) under the lock.
    pub fn with<T>(&self, f: impl FnOnce(&[Runtime]) -> T) -> T {
        f(&self.lock().slos)
    }

    /// The state to persist, by SLO name.
    pub fn save(&self) -> HashMap<String, SavedSlo> {
        self.lock()
            .slos
            .iter()
            .map(|r| {
                (
                    r.config.name.clone(),
                    SavedSlo {
                        fingerprint: r.config.fingerprint,
                        events_good: r.events_good,
                        events_bad: r.events_bad,
                        state: r.slo.state().clone(),
                    },
                )
            })
            .collect()
    }

    /// Put back saved counts for SLOs whose definition is unchanged. Returns how many.
    pub fn restore(&self, saved: HashMap<String, SavedSlo>) -> usize {
        let mut inner = self.lock();
        let mut n = 0;
        for r in &mut inner.slos {
            let Some(s) = saved.get(&r.config.name) else {
                continue;
            };
            if s.fingerprint != r.config.fingerprint {
                warn!(slo = %r.config.name, "SLO definition changed since the state was saved; starting it empty.");
                continue;
            }
            if r.slo.restore(s.state.clone()) {
                r.events_good = s.events_good;
                r.events_bad = s.events_bad;
                n += 1;
            } else {
                warn!(slo = %r.config.name, "Saved SLO state does not fit its alert windows; starting it empty.");
            }
        }
        n
    }

    /// Every SLO's sampled history, for the state file.
    pub fn save_history(
        &self,
    ) -> std::collections::BTreeMap<String, crate::daemon::history::SavedSloHistory> {
        self.lock()
            .slos
            .iter()
            .map(|r| (r.config.name.clone(), r.history.save()))
            .collect()
    }

    /// Put back sampled histories of SLOs whose counts were restored (`restore` first).
    pub fn restore_history(
        &self,
        saved: &std::collections::BTreeMap<String, crate::daemon::history::SavedSloHistory>,
        restored: &HashMap<String, SavedSlo>,
    ) {
        let mut inner = self.lock();
        for r in &mut inner.slos {
            let same = restored
                .get(&r.config.name)
                .is_some_and(|s| s.fingerprint == r.config.fingerprint);
            let Some(s) = saved.get(&r.config.name).filter(|_| same) else {
                continue;
            };
            match crate::daemon::history::SloHistory::restore(s) {
                Ok(h) => r.history = h,
                Err(e) => {
                    warn!(slo = %r.config.name, error = %e, "Saved SLO history is damaged; starting it empty.")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slo() -> SloConfig {
        SloConfig {
            name: "avail".into(),
            probes: vec!["p".into()],
            spec: vantage_slo::SloSpec {
                objective: vantage_slo::Objective::from_percent(99.0).unwrap(),
                period: vantage_slo::Period::Rolling(Duration::from_secs(86_400)),
                sli: vantage_slo::Sli::Availability,
                budgeting: vantage_slo::Budgeting::Occurrences,
                min_events: 1,
                alerts: vantage_slo::default_policy(Duration::from_secs(86_400)),
            },
            runbook_url: None,
            labels: Default::default(),
            fingerprint: 1,
        }
    }

    fn sli(e: &Evaluator, now: i64) -> Option<f64> {
        e.evaluate_fresh_with(now, |slos| {
            slos[0]
                .report
                .as_ref()
                .and_then(|r| r.windows.iter().find_map(|w| w.sli))
        })
    }

    #[test]
    fn a_fresh_evaluation_is_reused_for_a_second_then_refreshed() {
        let e = Evaluator::default();
        e.apply(&[slo()]);
        let t = 1_700_000_000_000;
        e.record("p", true, Duration::from_millis(3), t - 10);
        assert_eq!(sli(&e, t), Some(1.0));
        e.record("p", false, Duration::from_millis(3), t + 10);
        assert_eq!(sli(&e, t + FRESH_MS - 1), Some(1.0), "reused");
        let refreshed = sli(&e, t + FRESH_MS).unwrap();
        assert!(refreshed < 1.0, "re-evaluated: {refreshed}");
        // A clock that went back, or a new config, does not reuse.
        e.record("p", false, Duration::from_millis(3), t + 20);
        assert!(sli(&e, t + 5).unwrap() < refreshed);
        e.apply(&[SloConfig {
            fingerprint: 2,
            ..slo()
        }]);
        assert_eq!(sli(&e, t + 6), None, "a changed SLO starts empty");
    }
}
