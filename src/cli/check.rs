//! `vantage check`: run each selected probe once (or N times, one run after the other), all
//! probes in parallel under a concurrency bound, and collect the outcomes in config order.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::debug;
use vantage_probes::Outcome;

use crate::config::{Kind, Probe, SloConfig};
use crate::daemon::evaluator::{budgeting_name, Evaluator};
use crate::secret::Redactor;
use crate::Clock;

/// How a check runs.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Runs per probe, sequential.
    pub runs: u32,
    /// Pause between one run's end and the next run's start.
    pub spacing: Duration,
    /// Most runs in flight at once, over all probes.
    pub concurrency: usize,
    pub clock: Clock,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            runs: 1,
            spacing: Duration::ZERO,
            concurrency: 100,
            clock: Clock::system(),
        }
    }
}

/// One run of one probe, redacted.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub name: String,
    pub kind: Kind,
    pub target: String,
    /// 1-based.
    pub run: u32,
    /// When the run ended, Unix ms: the instant the SLO engine records it at.
    pub ended_at: i64,
    pub outcome: Outcome,
}

/// Run the probes and return every run's result, ordered by probe (as given) then run.
///
/// A run's duration counts from when it got its concurrency slot: in a one-shot check, waiting
/// for our own slot is not the target's latency (the default bound is high enough that a
/// typical check never waits). The daemon's scheduler measures from the scheduled start.
pub async fn run(
    probes: Vec<Arc<Probe>>,
    options: &CheckOptions,
    redactor: &Redactor,
) -> Vec<RunResult> {
    let slots = Arc::new(Semaphore::new(options.concurrency.max(1)));
    let mut tasks = JoinSet::new();
    for (index, probe) in probes.into_iter().enumerate() {
        let slots = slots.clone();
        let redactor = redactor.clone();
        let runs = options.runs.max(1);
        let clock = options.clock;
        let spacing = options.spacing;
        tasks.spawn(async move {
            let mut results = Vec::with_capacity(runs as usize);
            for run in 1..=runs {
                if run > 1 && !spacing.is_zero() {
                    tokio::time::sleep(spacing).await;
                }
                let outcome = {
                    // The semaphore is never closed, so acquiring cannot fail.
                    let _slot = slots.acquire().await.expect("semaphore is never closed");
                    probe.run_redacted(&clock, Instant::now(), &redactor).await
                };
                let ended_at = clock.unix_ms();
                debug!(
                    probe = %probe.name,
                    run,
                    success = outcome.success(),
                    reason = outcome.reason.map(|r| r.as_str()),
                    duration_seconds = outcome.duration.as_secs_f64(),
                    evidence = %outcome.evidence,
                    "Probe run finished."
                );
                results.push(RunResult {
                    name: probe.name.clone(),
                    kind: probe.kind,
                    target: redactor.redact(&probe.target).into_owned(),
                    run,
                    ended_at,
                    outcome,
                });
            }
            (index, results)
        });
    }
    let mut all = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(r) => all.push(r),
            // A probe task can only end this way if it panicked: that is a bug in vantage, and
            // hiding it would make the check pass without that probe.
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    all.sort_by_key(|(i, _)| *i);
    all.into_iter().flat_map(|(_, r)| r).collect()
}

/// An SLO judged over a check's runs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SloResult {
    pub name: String,
    /// Percent.
    pub objective: f64,
    /// `occurrences` (events are runs) or `timeslices` (events are slices).
    pub budgeting: &'static str,
    /// Good events: runs, or slices for timeslice budgeting.
    pub good: u64,
    pub total: u64,
    /// good/total; absent without events.
    pub sli: Option<f64>,
    /// For latency_percentile SLIs: the runs' percentile, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percentile_seconds: Option<f64>,
    /// At least `max(min_events, 1)` events: the verdict means something.
    pub judged: bool,
    pub min_events: u64,
    pub met: bool,
}

/// The instant a check judges an SLO at: the end of its last run, or for timeslice budgeting
/// the end of the slice that run fell in, so that every slice that saw a run is closed and
/// counted (a check does not wait for the slice's wall-clock end).
pub fn judgment_instant(spec: &vantage_slo::SloSpec, last_run_ms: i64) -> i64 {
    match spec.budgeting {
        vantage_slo::Budgeting::Occurrences => last_run_ms,
        vantage_slo::Budgeting::Timeslices { slice, .. } => {
            let width = slice.as_millis().clamp(1, i64::MAX as u128) as i64;
            last_run_ms
                .div_euclid(width)
                .saturating_add(1)
                .saturating_mul(width)
        }
    }
}

/// Judge each SLO over the runs of its probes with the daemon's own engine: the runs are
/// recorded, at the instants they ended, into an [`Evaluator`] holding just that SLO (so the
/// budgeting, timeslices, windows and `min_events` are the daemon's), which is evaluated at
/// [`judgment_instant`] and judged by [`crate::daemon::evaluator::verdict`]. SLOs none of whose probes
/// ran are left out.
pub fn evaluate_slos(slos: &[SloConfig], results: &[RunResult]) -> Vec<SloResult> {
    let mut ordered: Vec<&RunResult> = results.iter().collect();
    // Record in time order, as the daemon sees runs end; stable, so equal instants keep order.
    ordered.sort_by_key(|r| r.ended_at);
    let mut out = Vec::new();
    for c in slos {
        let runs: Vec<&&RunResult> = ordered
            .iter()
            .filter(|r| c.probes.contains(&r.name))
            .collect();
        let Some(last) = runs.last() else {
            continue;
        };
        let evaluator = Evaluator::default();
        evaluator.apply(std::slice::from_ref(c));
        for r in &runs {
            evaluator.record(&r.name, r.outcome.success(), r.outcome.duration, r.ended_at);
        }
        let now = judgment_instant(&c.spec, last.ended_at);
        let Some(v) = evaluator.evaluate_with(now, |rts| rts.first().and_then(|r| r.verdict()))
        else {
            continue;
        };
        out.push(SloResult {
            name: c.name.clone(),
            objective: c.spec.objective.percent(),
            budgeting: budgeting_name(&c.spec),
            good: v.good,
            total: v.total,
            sli: v.sli,
            percentile_seconds: v.percentile_seconds,
            judged: v.judged,
            min_events: c.spec.min_events,
            met: v.met,
        });
    }
    out
}

/// Pick probes by name or glob (`api-*`). An empty selection means all. Unknown names are errors.
pub fn select(probes: Vec<Probe>, wanted: &[String]) -> Result<Vec<Arc<Probe>>, String> {
    if wanted.is_empty() {
        return Ok(probes.into_iter().map(Arc::new).collect());
    }
    let mut patterns = Vec::new();
    for w in wanted {
        let p = glob::Pattern::new(w).map_err(|e| format!("invalid --probe pattern {w:?}: {e}"))?;
        if !probes.iter().any(|probe| p.matches(&probe.name)) {
            let known: Vec<&str> = probes.iter().map(|p| p.name.as_str()).collect();
            return Err(format!(
                "no probe matches --probe {w:?}; probes: {}",
                known.join(", ")
            ));
        }
        patterns.push(p);
    }
    Ok(probes
        .into_iter()
        .filter(|probe| patterns.iter().any(|p| p.matches(&probe.name)))
        .map(Arc::new)
        .collect())
}
