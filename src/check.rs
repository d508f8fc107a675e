//! `vantage check`: run each selected probe once (or N times, one run after the other), all
//! probes in parallel under a concurrency bound, and collect the outcomes in config order.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::debug;
use vantage_probes::Outcome;

use crate::config::{Kind, Probe};
use crate::secret::Redactor;

/// How a check runs.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Runs per probe, sequential.
    pub runs: u32,
    /// Pause between one run's end and the next run's start.
    pub spacing: Duration,
    /// Most runs in flight at once, over all probes.
    pub concurrency: usize,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            runs: 1,
            spacing: Duration::ZERO,
            concurrency: 100,
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
                    probe.run(Instant::now()).await
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
