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
                    probe.run(&clock, Instant::now()).await
                };
                let mut outcome = outcome;
                redactor.outcome(&mut outcome);
                debug!(
                    probe = %probe.name,
                    run,
                    success = outcome.success,
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
    pub good: u64,
    pub total: u64,
    /// good/total; absent without runs.
    pub sli: Option<f64>,
    /// For latency_percentile SLIs: the runs' percentile, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percentile_seconds: Option<f64>,
    pub met: bool,
}

/// Judge each SLO over the runs of its probes: every run is an event, good as the SLI says.
/// SLOs none of whose probes ran are left out.
pub fn evaluate_slos(slos: &[SloConfig], results: &[RunResult]) -> Vec<SloResult> {
    let mut out = Vec::new();
    for c in slos {
        let slo = vantage_slo::Slo::new(c.spec.clone());
        let runs: Vec<&RunResult> = results
            .iter()
            .filter(|r| c.probes.contains(&r.name))
            .collect();
        if runs.is_empty() {
            continue;
        }
        let good = runs
            .iter()
            .filter(|r| slo.is_good(r.outcome.success, r.outcome.duration))
            .count() as u64;
        let total = runs.len() as u64;
        let sli = good as f64 / total as f64;
        let (percentile_seconds, percentile_ok) = match c.spec.sli {
            vantage_slo::Sli::LatencyPercentile {
                percentile,
                threshold,
            } => {
                let mut h = vantage_slo::latency::Sparse::default();
                for r in &runs {
                    h.record(r.outcome.duration.as_micros() as u64);
                }
                let mut m = vantage_slo::latency::Merged::default();
                m.add(&h);
                let p = m.percentile(percentile).map(|us| us as f64 / 1e6);
                (p, p.is_some_and(|p| p <= threshold.as_secs_f64()))
            }
            _ => (None, true),
        };
        out.push(SloResult {
            name: c.name.clone(),
            objective: c.spec.objective.percent(),
            good,
            total,
            sli: Some(sli),
            percentile_seconds,
            met: sli >= c.spec.objective.ratio() && percentile_ok,
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
