//! The scheduler: every probe runs every `interval`, never overlapping itself, at an offset
//! within the interval fixed by a stable hash of its name (so restarts and reloads do not
//! stampede), under a global concurrency limit and a per-host rate limit. A run is measured from
//! its scheduled start, so waiting for either limit shows up as latency, not as a missing sample.
//! Everything uses tokio time, so tests can run with paused time.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::Clock as GovernorClock;
use governor::nanos::Nanos;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};
use vantage_probes::Outcome;

use crate::config::{stable_hash, Config, Limits, Probe};
use crate::daemon::evaluator::Evaluator;
use crate::daemon::store::{ProbeState, Store};
use crate::metrics::Metrics;
use crate::secret::Redactor;
use crate::Clock;

/// A governor clock on tokio time, so rate limits follow paused time in tests.
#[derive(Debug, Clone)]
pub struct TokioClock {
    base: Instant,
}

impl GovernorClock for TokioClock {
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
    evaluator: Arc<Evaluator>,
    limiter: Option<Arc<(HostLimiter, TokioClock)>>,
    metrics: Arc<Metrics>,
    redactor: Redactor,
    /// Aligns the schedule to wall time.
    clock: Clock,
}

/// Runs the probe tasks and swaps them on reload.
pub struct Scheduler {
    store: Arc<Store>,
    evaluator: Arc<Evaluator>,
    metrics: Arc<Metrics>,
    tasks: JoinSet<()>,
    generation: CancellationToken,
    limits: Option<(Limits, Arc<Semaphore>, Option<SharedLimiter>)>,
}

impl Scheduler {
    pub fn new(store: Arc<Store>, metrics: Arc<Metrics>, evaluator: Arc<Evaluator>) -> Self {
        Self {
            store,
            evaluator,
            metrics,
            tasks: JoinSet::new(),
            generation: CancellationToken::new(),
            limits: None,
        }
    }

    /// Run exactly the probes of `config` from now on. Tasks of the previous config stop at their
    /// next wait; a run in progress finishes and is recorded, and its successor waits for it.
    pub fn apply(&mut self, config: &Arc<Config>) {
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
            evaluator: self.evaluator.clone(),
            limiter,
            metrics: self.metrics.clone(),
            redactor: config.redactor.clone(),
            clock: *self.store.clock(),
        });
        let states = self.store.sync(&config.probes, &config.redactor);
        for (i, state) in states.into_iter().enumerate() {
            let probe: Arc<dyn Run> = Arc::new(ConfigProbe {
                config: config.clone(),
                i,
            });
            let cancel = self.generation.clone();
            let shared = shared.clone();
            let metrics = self.metrics.clone();
            self.tasks.spawn(crate::supervise::supervise(
                "probe",
                move |task, msg| metrics.task_panicked(task, msg),
                move || probe_loop(probe.clone(), state.clone(), shared.clone(), cancel.clone()),
            ));
        }
        info!(probes = config.probes.len(), "Scheduler running.");
    }

    /// Stop every task now, runs in progress included.
    pub async fn shutdown(mut self) {
        self.generation.cancel();
        self.tasks.shutdown().await;
    }
}

/// The first tick at or after `now` on the probe's grid: wall-clock times `t` with
/// `t ≡ offset (mod interval)`, where the offset comes from the name's hash. Offsets are whole
/// milliseconds: tokio's timers fire on millisecond boundaries, so a finer offset would only
/// show up as up to a millisecond of lag.
fn first_tick(name: &str, interval: Duration, shared: &Shared, now: Instant) -> Instant {
    let interval_ms = interval.as_millis().max(1);
    let offset_ms = u128::from(stable_hash(name)) % interval_ms;
    let wall_now = shared.clock.wall_at(now).as_nanos();
    let interval_ns = interval_ms * 1_000_000;
    let into_cycle = (wall_now + interval_ns - offset_ms * 1_000_000) % interval_ns;
    let wait = if into_cycle == 0 {
        0
    } else {
        interval_ns - into_cycle
    };
    vantage_probes::deadline(
        now,
        Duration::from_nanos(u64::try_from(wait).unwrap_or(u64::MAX)),
    )
}

/// What the loop runs: a probe, or in tests a stand-in with a known duration.
pub(crate) trait Run: Send + Sync {
    fn name(&self) -> &str;
    fn interval(&self) -> Duration;
    /// The host whose rate limit applies.
    fn host(&self) -> String;
    /// Run once, the outcome already scrubbed of `redactor`'s secrets.
    fn run<'a>(
        &'a self,
        clock: &'a Clock,
        scheduled: Instant,
        redactor: &'a Redactor,
    ) -> Pin<Box<dyn Future<Output = Outcome> + Send + 'a>>;
}

/// A probe of a shared config: the tasks share the config's probes rather than each holding a
/// copy (~0.8 KiB a probe, 40 MiB at 50,000 probes).
struct ConfigProbe {
    config: Arc<Config>,
    i: usize,
}

impl ConfigProbe {
    fn probe(&self) -> &Probe {
        &self.config.probes[self.i]
    }
}

impl Run for ConfigProbe {
    fn name(&self) -> &str {
        &self.probe().name
    }
    fn interval(&self) -> Duration {
        self.probe().interval
    }
    fn host(&self) -> String {
        self.probe().dial_host().map(|(h, _)| h).unwrap_or_default()
    }
    fn run<'a>(
        &'a self,
        clock: &'a Clock,
        scheduled: Instant,
        redactor: &'a Redactor,
    ) -> Pin<Box<dyn Future<Output = Outcome> + Send + 'a>> {
        Box::pin(self.probe().run_redacted(clock, scheduled, redactor))
    }
}

async fn probe_loop(
    probe: Arc<dyn Run>,
    state: Arc<ProbeState>,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) {
    let interval = probe.interval();
    let host = probe.host();
    let mut next = first_tick(probe.name(), interval, &shared, Instant::now());
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
            let outcome = probe.run(&shared.clock, scheduled, &shared.redactor).await;
            drop(guards);
            outcome
        };
        if was_up != Some(outcome.success()) {
            if outcome.success() {
                info!(probe = %probe.name(), "Probe is up.");
            } else {
                info!(
                    probe = %probe.name(),
                    reason = outcome.reason.map(|r| r.as_str()),
                    evidence = %outcome.evidence,
                    "Probe is down."
                );
            }
            was_up = Some(outcome.success());
        }
        debug!(probe = %probe.name(), success = outcome.success(), duration_seconds = outcome.duration.as_secs_f64(), "Probe run finished.");
        shared.evaluator.record(
            probe.name(),
            outcome.success(),
            outcome.duration,
            shared.clock.unix_ms(),
        );
        state.observe(outcome, &shared.clock);

        next = vantage_probes::deadline(scheduled, interval);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Kind, Probe};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Mutex;

    /// Takes a fixed time and records when each run started and ended.
    struct Fake {
        name: String,
        interval: Duration,
        host: String,
        takes: Duration,
        running: AtomicU32,
        log: Mutex<Vec<(Instant, Instant)>>,
        overlapped: AtomicU32,
    }

    impl Run for Fake {
        fn name(&self) -> &str {
            &self.name
        }
        fn interval(&self) -> Duration {
            self.interval
        }
        fn host(&self) -> String {
            self.host.clone()
        }
        fn run<'a>(
            &'a self,
            _clock: &'a Clock,
            scheduled: Instant,
            _redactor: &'a Redactor,
        ) -> Pin<Box<dyn Future<Output = Outcome> + Send + 'a>> {
            Box::pin(async move {
                if self.running.fetch_add(1, Ordering::SeqCst) > 0 {
                    self.overlapped.fetch_add(1, Ordering::SeqCst);
                }
                let start = Instant::now();
                tokio::time::sleep(self.takes).await;
                self.running.fetch_sub(1, Ordering::SeqCst);
                self.log.lock().unwrap().push((scheduled, start));
                Outcome {
                    reason: None,
                    duration: scheduled.elapsed(),
                    phases: Default::default(),
                    evidence: String::new(),
                    facts: Default::default(),
                }
            })
        }
    }

    fn fake(name: &str, interval_ms: u64, takes_ms: u64, host: &str) -> Arc<Fake> {
        Arc::new(Fake {
            name: name.into(),
            interval: Duration::from_millis(interval_ms),
            host: host.into(),
            takes: Duration::from_millis(takes_ms),
            running: AtomicU32::new(0),
            log: Mutex::new(Vec::new()),
            overlapped: AtomicU32::new(0),
        })
    }

    struct Harness {
        store: Arc<Store>,
        shared: Arc<Shared>,
        cancel: CancellationToken,
        tasks: JoinSet<()>,
    }

    fn harness(concurrency: usize, per_host_rate: u32) -> Harness {
        let store = Arc::new(Store::new(Clock::at(Duration::from_secs(1_700_000_000))));
        let metrics = Arc::new(Metrics::new(store.clone(), Arc::new(Evaluator::default())));
        let limiter = std::num::NonZeroU32::new(per_host_rate).map(|rate| {
            let clock = TokioClock {
                base: Instant::now(),
            };
            let l = RateLimiter::new(
                Quota::per_second(rate),
                DefaultKeyedStateStore::default(),
                clock.clone(),
            );
            Arc::new((l, clock))
        });
        let shared = Arc::new(Shared {
            slots: Arc::new(Semaphore::new(concurrency)),
            evaluator: Arc::new(Evaluator::default()),
            limiter,
            metrics,
            redactor: Redactor::default(),
            clock: Clock::at(Duration::from_secs(1_700_000_000)),
        });
        Harness {
            store,
            shared,
            cancel: CancellationToken::new(),
            tasks: JoinSet::new(),
        }
    }

    impl Harness {
        fn spawn(&mut self, f: Arc<Fake>) -> Arc<ProbeState> {
            let probe = Probe::adhoc("http://h.invalid/", Kind::Http, Duration::from_millis(100))
                .unwrap()
                .renamed(&f.name);
            let mut all: Vec<Probe> = self
                .store
                .all()
                .iter()
                .map(|s| probe.clone().renamed(&s.name))
                .collect();
            all.push(probe);
            let state = self.store.sync(&all, &Redactor::default()).pop().unwrap();
            self.tasks.spawn(probe_loop(
                f,
                state.clone(),
                self.shared.clone(),
                self.cancel.clone(),
            ));
            state
        }
    }

    #[tokio::test(start_paused = true)]
    async fn runs_every_interval_without_lag() {
        let mut h = harness(16, 0);
        let f = fake("steady", 1000, 50, "a");
        let state = h.spawn(f.clone());
        tokio::time::sleep(Duration::from_millis(10_000)).await;
        let log = f.log.lock().unwrap().clone();
        assert!((9..=10).contains(&log.len()), "{} runs in 10 s", log.len());
        for w in log.windows(2) {
            assert_eq!(
                w[1].0 - w[0].0,
                Duration::from_secs(1),
                "ticks are exactly one interval apart"
            );
        }
        assert!(
            log.iter().all(|(scheduled, started)| started == scheduled),
            "no lag under paused time"
        );
        assert_eq!(state.record().skipped, 0);
        assert_eq!(f.overlapped.load(Ordering::SeqCst), 0);
        h.cancel.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_slot_skips_ticks_instead_of_overlapping() {
        // One slot shared by a probe that holds it for 2.5 s and a 1 s probe that needs it.
        let mut h = harness(1, 0);
        let hog = fake("hog", 10_000, 2500, "a");
        let quick = fake("quick", 1000, 10, "b");
        h.spawn(hog.clone());
        let state = h.spawn(quick.clone());
        tokio::time::sleep(Duration::from_millis(12_000)).await;
        assert_eq!(quick.overlapped.load(Ordering::SeqCst), 0);
        let skipped = state.record().skipped;
        let runs = quick.log.lock().unwrap().len() as u64;
        assert!(
            skipped >= 1,
            "waiting 2.5 s for the slot skips ticks ({runs} runs)"
        );
        assert!(
            (10..=13).contains(&(runs + skipped)),
            "runs {runs} + skipped {skipped}"
        );
        // A run that waited is measured from its scheduled start.
        let late = quick.log.lock().unwrap().iter().any(|(s, st)| *st > *s);
        assert!(late);
        h.cancel.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn per_host_rate_spreads_runs() {
        let mut h = harness(16, 2);
        let fakes: Vec<Arc<Fake>> = (0..6)
            .map(|i| fake(&format!("p{i}"), 60_000, 1, "same-host"))
            .collect();
        for f in &fakes {
            h.spawn(f.clone());
        }
        tokio::time::sleep(Duration::from_secs(60)).await;
        let mut starts: Vec<Instant> = fakes
            .iter()
            .flat_map(|f| {
                f.log
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|(_, s)| *s)
                    .collect::<Vec<_>>()
            })
            .collect();
        starts.sort();
        assert_eq!(starts.len(), 6);
        // 2 per second: no one-second window holds more than 2 starts.
        for w in starts.windows(3) {
            assert!(
                w[2] - w[0] >= Duration::from_millis(990),
                "{:?}",
                w[2] - w[0]
            );
        }
        h.cancel.cancel();
    }

    #[test]
    fn offsets_are_stable_and_spread() {
        assert_eq!(stable_hash("api-ready"), stable_hash("api-ready"));
        assert_ne!(stable_hash("a"), stable_hash("b"));
        let store = Arc::new(Store::new(Clock::at(Duration::from_secs(1_700_000_000))));
        let shared = Shared {
            slots: Arc::new(Semaphore::new(1)),
            evaluator: Arc::new(Evaluator::default()),
            limiter: None,
            metrics: Arc::new(Metrics::new(store, Arc::new(Evaluator::default()))),
            redactor: Redactor::default(),
            clock: Clock::at(Duration::from_secs(1_700_000_000)),
        };
        let interval = Duration::from_secs(60);
        let now = shared.clock.now();
        let ticks: Vec<Duration> = (0..200)
            .map(|i| first_tick(&format!("p{i}"), interval, &shared, now) - now)
            .collect();
        assert!(ticks.iter().all(|t| *t < interval));
        // Spread: every 10 s slice of the minute gets some probes.
        for slice in 0..6 {
            let n = ticks.iter().filter(|t| t.as_secs() / 10 == slice).count();
            assert!(n > 10, "slice {slice} has {n}");
        }
        // Same name, same wall clock: same tick (a restart lands on the same grid).
        let a = first_tick("x", interval, &shared, now);
        let b = first_tick("x", interval, &shared, now);
        assert_eq!(a, b);
        let later = first_tick("x", interval, &shared, now + Duration::from_secs(600));
        assert_eq!((later - a).as_secs() % 60, 0);
    }
}
