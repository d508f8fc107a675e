//! What the daemon knows about each probe: the last outcome, a short history, exact run
//! counters, latency histograms and windowed quantiles. The scheduler writes, `/metrics`, the API
//! and the status page read. State is keyed by probe name and survives reloads; a probe removed
//! from the config is removed from here, and so disappears from every output.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;
use vantage_probes::{Outcome, Reason};

use crate::config::{Kind, Probe};
use crate::metrics::histogram::Buckets;
use crate::secret::Redactor;
use crate::Clock;

/// Recent runs kept per probe for the API and the status page.
const HISTORY: usize = 10;
/// Recent failures kept per probe, with their evidence.
const FAILURES: usize = 5;
/// Longest evidence kept in history entries.
const EVIDENCE_MAX: usize = 300;
/// Most runs kept for the quantile windows: an hour of a 1 s probe. A faster probe's 1h window
/// covers its last 4,096 runs.
const WINDOW_MAX_RUNS: usize = 4096;
/// Quantile windows: 5 minutes and 1 hour.
pub const WINDOWS: [(&str, Duration); 2] = [
    ("5m", Duration::from_secs(300)),
    ("1h", Duration::from_secs(3600)),
];
pub const QUANTILES: [(&str, f64); 3] = [("0.5", 0.5), ("0.9", 0.9), ("0.99", 0.99)];

/// Buckets for `probe_latency_seconds`: 10 ms to 5 s in 7 steps (slower runs land in `+Inf`),
/// so a default HTTP probe stays within 30 series with every blackbox_exporter gauge (10 of them
/// are this histogram's). For `vantage rules`, a latency SLO's threshold must be one of these;
/// the daemon's own evaluation takes any threshold.
pub static LATENCY_BUCKETS: [f64; 7] = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

/// Buckets for `probe_phase_latency_seconds`: fewer than for whole runs, because there are five
/// phases per probe and a phase is mostly either sub-millisecond or the slow part of the run.
pub static PHASE_BUCKETS: [f64; 8] = [0.001, 0.005, 0.025, 0.1, 0.5, 2.5, 10.0, 60.0];

/// What stays fixed for a probe between reloads, redacted for output.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeMeta {
    pub kind: Kind,
    pub target: String,
    pub labels: Vec<(String, String)>,
    #[serde(serialize_with = "secs")]
    pub interval: Duration,
    #[serde(serialize_with = "secs")]
    pub timeout: Duration,
    /// `[probe.alert]` overrides.
    #[serde(skip)]
    pub alert: crate::config::ProbeAlert,
    /// `[metrics]`/`metrics = {...}`: the opt-in families this probe exports.
    #[serde(skip)]
    pub metrics: crate::config::ProbeMetrics,
    /// The label set of every series of this probe, as exposition text
    /// (`probe="api",kind="http",team="web"`): written once per reload, not per sample.
    #[serde(skip)]
    pub prefix: String,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl ProbeMeta {
    pub fn of(probe: &Probe, redactor: &Redactor) -> Self {
        let labels: Vec<(String, String)> = probe
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), redactor.redact(v).into_owned()))
            .collect();
        let base = [
            ("probe", probe.name.as_str()),
            ("kind", probe.kind.as_str()),
        ];
        let user = labels.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        Self {
            prefix: crate::metrics::encode::prefix(base.into_iter().chain(user)),
            kind: probe.kind,
            target: redactor.redact(&probe.target).into_owned(),
            labels,
            interval: probe.interval,
            timeout: probe.timeout,
            alert: probe.alert,
            metrics: probe.metrics,
        }
    }
}

/// One run, briefly.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// Unix seconds when the run ended.
    pub at: f64,
    pub run: u64,
    pub success: bool,
    pub reason: Option<Reason>,
    pub duration_seconds: f64,
    pub status: Option<u16>,
    pub evidence: String,
}

/// The last run in full.
#[derive(Debug, Clone)]
pub struct LastRun {
    pub at: f64,
    pub run: u64,
    pub outcome: Outcome,
}

/// Counters and histograms of one probe.
#[derive(Debug)]
pub struct Record {
    pub last: Option<LastRun>,
    pub history: VecDeque<RunSummary>,
    pub failures: VecDeque<RunSummary>,
    pub runs_success: u64,
    pub runs_failure: u64,
    pub failures_by_reason: BTreeMap<Reason, u64>,
    pub skipped: u64,
    /// Runs in a row with the same verdict as the last one.
    pub consecutive_failures: u32,
    pub consecutive_successes: u32,
    pub latency: Buckets<7>,
    /// Per-phase histograms, kept only while the probe exports them (`phase_histograms`): 440
    /// bytes a probe, 22 MiB at 50,000 probes. Turned on by a reload, they count from then.
    pub phase_latency: Option<Box<[Buckets<8>; 5]>>,
    /// (ms since `epoch`, duration in µs) of the last hour's runs: 8 bytes a run, since a
    /// 1 s probe keeps 3,600 of them.
    window: VecDeque<(u32, u32)>,
    epoch: Instant,
    /// When the last run was recorded, to tell an empty window from a stale one.
    last_seen: Option<Instant>,
    /// `[window][quantile]`, seconds; `None` while a window has no runs.
    pub quantiles: [[Option<f64>; 3]; 2],
    /// Per window: sum of durations (seconds) and number of runs.
    pub window_totals: [(f64, u64); 2],
    /// The status page's long history (uptime buckets, runs with phases, incidents); persisted.
    pub timeline: crate::daemon::history::Timeline,
    /// Health check names this probe exports, bounded over its life.
    pub health_names: crate::metrics::HealthCheckNames,
}

impl Record {
    fn new() -> Self {
        Self {
            last: None,
            history: VecDeque::with_capacity(HISTORY),
            // Most probes never fail: room for failures is made at the first.
            failures: VecDeque::new(),
            runs_success: 0,
            runs_failure: 0,
            failures_by_reason: BTreeMap::new(),
            skipped: 0,
            consecutive_failures: 0,
            consecutive_successes: 0,
            latency: Buckets::new(&LATENCY_BUCKETS),
            phase_latency: None,
            window: VecDeque::new(),
            epoch: Instant::now(),
            last_seen: None,
            quantiles: [[None; 3]; 2],
            window_totals: [(0.0, 0); 2],
            timeline: Default::default(),
            health_names: Default::default(),
        }
    }

    fn record(&mut self, mut outcome: Outcome, now: Instant, at: f64, phase_histograms: bool) {
        if let Some(h) = outcome
            .facts
            .http_facts_mut()
            .and_then(|h| h.health.as_mut())
        {
            self.health_names.admit(h);
        }
        let run = self.runs_success + self.runs_failure + 1;
        if outcome.success() {
            self.consecutive_successes = self.consecutive_successes.saturating_add(1);
            self.consecutive_failures = 0;
        } else {
            self.consecutive_failures = self.consecutive_failures.saturating_add(1);
            self.consecutive_successes = 0;
        }
        if outcome.success() {
            self.runs_success += 1;
        } else {
            self.runs_failure += 1;
            if let Some(r) = outcome.reason {
                *self.failures_by_reason.entry(r).or_default() += 1;
            }
        }
        self.timeline.record(&outcome, (at * 1000.0) as i64);
        self.latency.observe(outcome.duration.as_secs_f64());
        if phase_histograms {
            let phases = self.phase_latency.get_or_insert_with(|| {
                let p = || Buckets::new(&PHASE_BUCKETS);
                Box::new([p(), p(), p(), p(), p()])
            });
            for (h, d) in phases.iter_mut().zip(outcome.phases.as_array()) {
                h.observe(d.as_secs_f64());
            }
        } else {
            self.phase_latency = None;
        }
        let mut evidence = outcome.evidence.clone();
        if evidence.len() > EVIDENCE_MAX {
            let mut cut = EVIDENCE_MAX;
            while !evidence.is_char_boundary(cut) {
                cut -= 1;
            }
            evidence.truncate(cut);
            evidence.push_str("...");
        }
        let summary = RunSummary {
            at,
            run,
            success: outcome.success(),
            reason: outcome.reason,
            duration_seconds: outcome.duration.as_secs_f64(),
            status: outcome.facts.status(),
            evidence,
        };
        if !outcome.success() {
            if self.failures.len() == FAILURES {
                self.failures.pop_front();
            }
            self.failures.reserve_exact(FAILURES - self.failures.len());
            self.failures.push_back(summary.clone());
        }
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(summary);

        let micros = u32::try_from(outcome.duration.as_micros()).unwrap_or(u32::MAX);
        let at_ms = u32::try_from(now.saturating_duration_since(self.epoch).as_millis())
            .unwrap_or(u32::MAX);
        if self.window.len() == WINDOW_MAX_RUNS {
            self.window.pop_front();
        }
        self.window.push_back((at_ms, micros));
        self.last_seen = Some(now);
        self.recompute_quantiles(now);
        self.last = Some(LastRun { at, run, outcome });
    }

    /// Quantiles per window from an HDR histogram of the window's runs (2 significant digits:
    /// 1% relative error). The histogram is a per-thread scratch, reset for each computation,
    /// so recording a run neither allocates nor keeps a histogram per probe.
    fn recompute_quantiles(&mut self, now: Instant) {
        let now_ms = now.saturating_duration_since(self.epoch).as_millis() as u64;
        let longest = WINDOWS[WINDOWS.len() - 1].1.as_millis() as u64;
        while self
            .window
            .front()
            .is_some_and(|(t, _)| now_ms.saturating_sub(u64::from(*t)) > longest)
        {
            self.window.pop_front();
        }
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let Some(h) = scratch.as_mut() else { return };
            for (w, (_, span)) in WINDOWS.iter().enumerate() {
                let span = span.as_millis() as u64;
                h.reset();
                let (mut sum, mut count) = (0.0, 0);
                for (t, micros) in self.window.iter().rev() {
                    if now_ms.saturating_sub(u64::from(*t)) > span {
                        break;
                    }
                    h.saturating_record(u64::from((*micros).max(1)));
                    sum += f64::from(*micros) / 1e6;
                    count += 1;
                }
                self.window_totals[w] = (sum, count);
                for (q, (_, quantile)) in QUANTILES.iter().enumerate() {
                    self.quantiles[w][q] =
                        (!h.is_empty()).then(|| h.value_at_quantile(*quantile) as f64 / 1e6);
                }
            }
        });
    }

    /// Whether window `w` can still hold a run: otherwise its quantiles are stale, not current.
    pub fn window_live(&self, w: usize, now: Instant) -> bool {
        self.last_seen
            .is_some_and(|t| now.saturating_duration_since(t) <= WINDOWS[w].1)
    }
}

thread_local! {
    /// µs from 1 to an hour, 2 significant digits: ~10 KB, once per thread.
    static SCRATCH: std::cell::RefCell<Option<hdrhistogram::Histogram<u32>>> =
        std::cell::RefCell::new(hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 2).ok());
}

/// One probe's state.
#[derive(Debug)]
pub struct ProbeState {
    pub name: String,
    meta: RwLock<Arc<ProbeMeta>>,
    /// Held for the whole of a run: a probe never overlaps itself, across reloads too.
    pub run_lock: tokio::sync::Mutex<()>,
    record: Mutex<Record>,
}

impl ProbeState {
    pub fn meta(&self) -> Arc<ProbeMeta> {
        self.meta.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn record(&self) -> MutexGuard<'_, Record> {
        self.record.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Store one (already redacted) outcome.
    pub fn observe(&self, outcome: Outcome, clock: &Clock) {
        let phase_histograms = self
            .meta
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .metrics
            .phase_histograms;
        self.record()
            .record(outcome, clock.now(), clock.unix_f64(), phase_histograms);
    }

    pub fn skipped(&self, n: u64) {
        self.record().skipped += n;
    }
}

/// Every probe's state, by name, and the clock its runs are stamped with.
#[derive(Debug)]
pub struct Store {
    probes: RwLock<BTreeMap<String, Arc<ProbeState>>>,
    clock: Clock,
    /// Timelines restored from the state file for probes not synced yet.
    pending: Mutex<BTreeMap<String, crate::daemon::history::Timeline>>,
}

impl Store {
    pub fn new(clock: Clock) -> Self {
        Self {
            probes: RwLock::default(),
            clock,
            pending: Mutex::default(),
        }
    }

    /// The daemon's clock: everything that reads or writes this store tells time by it.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Make the store hold exactly `probes`: new ones start empty, kept ones keep their counts
    /// (with fresh metadata), removed ones are dropped. A probe whose kind changed is a new
    /// probe under an old name: its counts, history and timeline start empty.
    pub fn sync(&self, probes: &[Probe], redactor: &Redactor) -> Vec<Arc<ProbeState>> {
        let mut map = self.probes.write().unwrap_or_else(|e| e.into_inner());
        let mut next = BTreeMap::new();
        let mut out = Vec::with_capacity(probes.len());
        for p in probes {
            let meta = Arc::new(ProbeMeta::of(p, redactor));
            let state = match map.remove(&p.name) {
                Some(s) => {
                    let mut m = s.meta.write().unwrap_or_else(|e| e.into_inner());
                    if m.kind != meta.kind {
                        *s.record() = Record::new();
                    }
                    *m = meta;
                    drop(m);
                    s
                }
                None => {
                    let mut record = Record::new();
                    if let Some(t) = self
                        .pending
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&p.name)
                    {
                        record.timeline = t;
                    }
                    Arc::new(ProbeState {
                        name: p.name.clone(),
                        meta: RwLock::new(meta),
                        run_lock: tokio::sync::Mutex::new(()),
                        record: Mutex::new(record),
                    })
                }
            };
            next.insert(p.name.clone(), state.clone());
            out.push(state);
        }
        *map = next;
        out
    }

    pub fn get(&self, name: &str) -> Option<Arc<ProbeState>> {
        self.probes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// Every probe, by name.
    pub fn all(&self) -> Vec<Arc<ProbeState>> {
        self.probes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Every probe's timeline, for the state file.
    pub fn save_history(&self) -> BTreeMap<String, crate::daemon::history::SavedTimeline> {
        self.all()
            .iter()
            .map(|p| (p.name.clone(), p.record().timeline.save()))
            .collect()
    }

    /// Put back saved timelines: now for probes already here, at their first sync otherwise.
    /// A damaged timeline is dropped with a warning. Returns how many were usable.
    pub fn restore_history(
        &self,
        saved: &BTreeMap<String, crate::daemon::history::SavedTimeline>,
    ) -> usize {
        let mut n = 0;
        for (name, s) in saved {
            let t = match crate::daemon::history::Timeline::restore(s) {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(probe = %name, error = %e, "Saved probe history is damaged; starting it empty.");
                    continue;
                }
            };
            n += 1;
            match self.get(name) {
                Some(p) => p.record().timeline = t,
                None => {
                    let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                    pending.insert(name.clone(), t);
                }
            }
        }
        n
    }
}
