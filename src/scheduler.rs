//! The scheduler: every probe runs every `interval`, never overlapping itself, at an offset
//! within the interval fixed by a stable hash of its name (so restarts and reloads do not
//! stampede), under a global concurrency limit and a per-host rate limit. A run is measured from
//! its scheduled start, so waiting for either limit shows up as latency, not as a missing sample.
//! Everything uses tokio time, so tests can run with paused time.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use governor::clock::Clock;
use governor::nanos::Nanos;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::config::{Config, Limits, Probe, Spec};
use crate::metrics::Metrics;
use crate::secret::Redactor;
use crate::store::{ProbeState, Store};

/// A governor clock on tokio time, so rate limits follow paused time in tests.
#[derive(Debug, Clone)]
pub struct TokioClock {
    base: Instant,
}

impl Clock for TokioClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        Nanos::from(self.base.elapsed())
    }
}

type HostLimiter = RateLimiter<
    String,
    DefaultKeyedStateStore<String>,
    TokioClock,
    governor::middleware::NoOpMiddleware<Nanos>,
>;

type SharedLimiter = Arc<(HostLimiter, TokioClock)>;

/// What one generation of probe tasks shares.
struct Shared {
    slots: Arc<Semaphore>,
    limiter: Option<Arc<(HostLimiter, TokioClock)>>,
    metrics: Arc<Metrics>,
    redactor: Redactor,
    /// The tokio instant that corresponds to `wall_base` (aligns the schedule to wall time).
    base: Instant,
    wall_base: Duration,
}

/// Runs the probe tasks and swaps them on reload.
pub struct Scheduler {
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    tasks: JoinSet<()>,
    generation: CancellationToken,
    limits: Option<(Limits, Arc<Semaphore>, Option<SharedLimiter>)>,
    base: Instant,
    wall_base: Duration,
}

impl Scheduler {
    pub fn new(store: Arc<Store>, metrics: Arc<Metrics>) -> Self {
        Self {
            store,
            metrics,
            tasks: JoinSet::new(),
            generation: CancellationToken::new(),
            limits: None,
            base: Instant::now(),
            wall_base: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
        }
    }

    /// Run exactly the probes of `config` from now on. Tasks of the previous config stop at their
    /// next wait; a run in progress finishes and is recorded, and its successor waits for it.
    pub fn apply(&mut self, config: &Config) {
        self.generation.cancel();
        self.generation = CancellationToken::new();
        while self.tasks.try_join_next().is_some() {}

        let (slots, limiter) = match &self.limits {
            Some((l, s, r))
                if l.max_concurrency == config.limits.max_concurrency
                    && l.per_host_rate == config.limits.per_host_rate =>
            {
                (s.clone(), r.clone())
            }
            _ => {
                let slots = Arc::new(Semaphore::new(config.limits.max_concurrency));
                let limiter = std::num::NonZeroU32::new(config.limits.per_host_rate).map(|rate| {
                    let clock = TokioClock {
                        base: Instant::now(),
                    };
                    let limiter = RateLimiter::new(
                        Quota::per_second(rate),
                        DefaultKeyedStateStore::default(),
                        clock.clone(),
                    );
                    Arc::new((limiter, clock))
                });
                self.limits = Some((config.limits, slots.clone(), limiter.clone()));
                (slots, limiter)
            }
        };
        let shared = Arc::new(Shared {
            slots,
            limiter,
            metrics: self.metrics.clone(),
            redactor: config.redactor.clone(),
            base: self.base,
            wall_base: self.wall_base,
        });
        let states = self.store.sync(&config.probes, &config.redactor);
        for (probe, state) in config.probes.iter().zip(states) {
            let probe = Arc::new(probe.clone());
            let cancel = self.generation.clone();
            let shared = shared.clone();
            self.tasks.spawn(probe_loop(probe, state, shared, cancel));
        }
        info!(probes = config.probes.len(), "Scheduler running.");
    }

    /// Stop every task now, runs in progress included.
    pub async fn shutdown(mut self) {
        self.generation.cancel();
        self.tasks.shutdown().await;
    }
}

/// FNV-1a: a hash that never changes across builds, platforms or restarts.
pub fn stable_hash(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The first tick at or after `now` on the probe's grid: wall-clock times `t` with
/// `t ≡ offset (mod interval)`, where the offset comes from the name's hash.
fn first_tick(name: &str, interval: Duration, shared: &Shared, now: Instant) -> Instant {
    let interval_ns = interval.as_nanos().max(1);
    let offset = u128::from(stable_hash(name)) % interval_ns;
    let wall_now =
        shared.wall_base.as_nanos() + now.saturating_duration_since(shared.base).as_nanos();
    let into_cycle = (wall_now + interval_ns - offset) % interval_ns;
    let wait = if into_cycle == 0 {
        0
    } else {
        interval_ns - into_cycle
    };
    now + Duration::from_nanos(u64::try_from(wait).unwrap_or(u64::MAX))
}

fn host_of(probe: &Probe) -> String {
    match &probe.spec {
        Spec::Http(s) => s
            .transport
            .proxy
            .as_ref()
            .unwrap_or(&s.request.url)
            .host_str()
            .unwrap_or_default()
            .to_string(),
        Spec::Tls(s) => s.host.clone(),
    }
}

async fn probe_loop(
    probe: Arc<Probe>,
    state: Arc<ProbeState>,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) {
    let interval = probe.interval;
    let host = host_of(&probe);
    let mut next = first_tick(&probe.name, interval, &shared, Instant::now());
    let mut was_up: Option<bool> = None;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep_until(next) => {}
        }
        let scheduled = next;
        let outcome = {
            let wait = async {
                let run = state.run_lock.lock().await;
                // The semaphore is never closed.
                let slot = shared.slots.clone().acquire_owned().await.ok();
                if let Some(l) = &shared.limiter {
                    let (limiter, clock) = l.as_ref();
                    while let Err(not_until) = limiter.check_key(&host) {
                        tokio::time::sleep(not_until.wait_time_from(clock.now())).await;
                    }
                }
                (run, slot)
            };
            let guards = tokio::select! {
                _ = cancel.cancelled() => return,
                g = wait => g,
            };
            let started = Instant::now();
            shared
                .metrics
                .scheduler_lag
                .observe(started.saturating_duration_since(scheduled).as_secs_f64());
            let mut outcome = probe.run(scheduled).await;
            drop(guards);
            shared.redactor.outcome(&mut outcome);
            outcome
        };
        if was_up != Some(outcome.success) {
            if outcome.success {
                info!(probe = %probe.name, "Probe is up.");
            } else {
                info!(
                    probe = %probe.name,
                    reason = outcome.reason.map(|r| r.as_str()),
                    evidence = %outcome.evidence,
                    "Probe is down."
                );
            }
            was_up = Some(outcome.success);
        }
        debug!(probe = %probe.name, success = outcome.success, duration_seconds = outcome.duration.as_secs_f64(), "Probe run finished.");
        state.observe(outcome, Instant::now());

        next = scheduled + interval;
        let now = Instant::now();
        if next <= now {
            // Waiting for a slot or the rate limit took us past one or more ticks.
            let behind = now.duration_since(next).as_nanos() / interval.as_nanos().max(1) + 1;
            let behind = u32::try_from(behind).unwrap_or(u32::MAX);
            state.skipped(u64::from(behind));
            next += interval * behind;
        }
    }
}
