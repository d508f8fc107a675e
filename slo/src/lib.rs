//! vantage's SLO engine: exact error budgets and burn rates from counted events.
//!
//! The main design decision: count, never estimate. Every probe run is an event recorded as an
//! integer good/total count in epoch-aligned buckets; the count over a window is the difference
//! of two cumulative slots, so it is exact for the window's buckets and costs O(1) to read.
//! Resolutions are chosen per SLO so that every window it reports or alerts on has buckets of at
//! most 1/30 of its length. The crate is pure: no clock, no I/O, no async — callers pass `now`
//! (Unix milliseconds) and event times, which makes every number reproducible in tests.

pub mod budget;
pub mod latency;
pub mod objective;
pub mod window;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use jiff::tz::TimeZone;
pub use objective::{
    default_policy, window_name, AlertPair, Budgeting, CalendarUnit, Objective, Period, Sli,
    SloSpec, WINDOWS,
};
pub use window::Counts;

use latency::{Merged, Sparse};
use window::{resolution_for, Level};

/// Period buckets are never coarser than 15 minutes: every time zone offset is a multiple of 15
/// minutes, so calendar periods start exactly on a bucket edge.
const CALENDAR_RES_CAP: i64 = 900_000;
/// No level is coarser than an hour.
const RES_CAP: i64 = 3_600_000;

/// A window's numbers at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowReport {
    /// Shared, not copied: evaluating 10,000 SLOs must not allocate a name per window.
    pub name: Arc<str>,
    pub seconds: f64,
    pub good: u64,
    pub total: u64,
    /// g/n; absent when n = 0.
    pub sli: Option<f64>,
    pub error_ratio: Option<f64>,
    /// e/B; absent when n = 0.
    pub burn_rate: Option<f64>,
    /// For latency_percentile SLIs: the window's percentile, seconds.
    pub percentile_seconds: Option<f64>,
}

/// Why one alert pair is or is not firing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairReport {
    pub severity: Arc<str>,
    pub burn_rate_threshold: f64,
    pub long: WindowReport,
    pub short: WindowReport,
    pub firing: bool,
    pub min_events: u64,
}

impl PairReport {
    /// Why the pair is or is not firing: both windows against the threshold, and the
    /// low-traffic guard. Built on demand: evaluation itself stays allocation-light.
    pub fn explanation(&self) -> String {
        let t = self.burn_rate_threshold;
        let mut why = format!("{}; {}", describe(&self.long, t), describe(&self.short, t));
        for w in [&self.long, &self.short] {
            if w.total < self.min_events {
                why.push_str(&format!(
                    "; {} holds {} events, fewer than min_events {}",
                    w.name, w.total, self.min_events
                ));
            }
        }
        format!(
            "{}: {why}",
            if self.firing { "firing" } else { "not firing" }
        )
    }
}

/// Everything about an SLO at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The fixed windows (5m … 3d).
    pub windows: Vec<WindowReport>,
    pub period: WindowReport,
    /// 1 − e(period)/B; may be negative; absent while the period has no events.
    pub budget_remaining: Option<f64>,
    pub budget_consumed: Option<f64>,
    /// At the current 1h burn rate; absent when nothing is burning.
    pub exhaustion_seconds: Option<f64>,
    pub alerts: Vec<PairReport>,
    /// Timeslice budgeting: slices of the period so far without any run.
    pub missing_slices: Option<u64>,
    /// latency_percentile: whether the period's percentile is within the threshold.
    pub percentile_met: Option<bool>,
}

impl Report {
    /// Every severity the SLO's alert pairs have, sorted, each once.
    pub fn severities(&self) -> Vec<&str> {
        let mut s: Vec<&str> = self.alerts.iter().map(|a| &*a.severity).collect();
        s.sort_unstable();
        s.dedup();
        s
    }

    /// The first firing pair of `severity`, if any: a severity fires when any of its pairs does.
    pub fn firing_pair(&self, severity: &str) -> Option<&PairReport> {
        self.alerts
            .iter()
            .find(|a| &*a.severity == severity && a.firing)
    }

    /// The severities firing now, sorted, each once: the one home of this answer (API, status
    /// page, metrics, alerts, demo).
    pub fn firing_severities(&self) -> Vec<&str> {
        let mut s: Vec<&str> = self
            .alerts
            .iter()
            .filter(|a| a.firing)
            .map(|a| &*a.severity)
            .collect();
        s.sort_unstable();
        s.dedup();
        s
    }
}

/// A window the SLO tracks, and the level that answers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Tracked {
    width: i64,
    /// The coarsest resolution allowed (the period of a calendar SLO has its own).
    cap: i64,
    level: usize,
    name: Arc<str>,
}

/// Per-bucket latency histograms of one level (latency_percentile only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct HistRing {
    res: i64,
    stamps: Vec<i64>,
    hists: Vec<Sparse>,
}

impl HistRing {
    fn new(res: i64, len: usize) -> Self {
        Self {
            res,
            stamps: vec![i64::MIN; len],
            hists: vec![Sparse::default(); len],
        }
    }

    fn record(&mut self, t: i64, micros: u64) {
        let b = t.div_euclid(self.res);
        let s = b.rem_euclid(self.stamps.len() as i64) as usize;
        if self.stamps[s] != b {
            if self.stamps[s] > b {
                return; // older than what the slot holds now
            }
            self.stamps[s] = b;
            self.hists[s].clear();
        }
        self.hists[s].record(micros);
    }

    fn merged(&self, lo: i64, hi: i64) -> Merged {
        let mut m = Merged::default();
        let len = self.stamps.len() as i64;
        for b in (lo + 1).max(hi - len + 1)..=hi {
            let s = b.rem_euclid(len) as usize;
            if self.stamps[s] == b {
                m.add(&self.hists[s]);
            }
        }
        m
    }
}

/// The state of a timeslice being filled.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct OpenSlice {
    index: i64,
    good: u64,
    total: u64,
}

/// One SLO's counts: what the daemon keeps and persists.
#[derive(Debug, Clone, PartialEq)]
pub struct Slo {
    spec: SloSpec,
    state: State,
    tracked: Vec<Tracked>,
    /// Index in `tracked` of the 7 fixed windows, of each alert pair's (long, short) windows
    /// and of the period; a window that is several of these is tracked once.
    fixed: Vec<usize>,
    pairs: Vec<(usize, usize)>,
    period: usize,
    period_label: Arc<str>,
    severities: Vec<Arc<str>>,
}

/// The part of an SLO that changes with events; serializable for persistence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    levels: Vec<Level>,
    hists: Vec<HistRing>,
    slice: Option<OpenSlice>,
    /// Events too old for every level.
    pub dropped: u64,
}

impl State {
    /// Check a state read from disk (see [`Level::validate`]); `now` is Unix ms. Returns what is
    /// wrong, never panics.
    pub fn validate(&self, now: i64) -> Result<(), String> {
        for (i, l) in self.levels.iter().enumerate() {
            l.validate(now).map_err(|e| format!("level {i}: {e}"))?;
        }
        let future = now.saturating_add(window::MAX_CLOCK_SKEW_MS);
        for (i, h) in self.hists.iter().enumerate() {
            if !window::LADDER.contains(&h.res) {
                return Err(format!(
                    "histogram {i}: bucket width {} ms is not one vantage uses",
                    h.res
                ));
            }
            if h.stamps.len() != h.hists.len() || h.stamps.is_empty() || h.stamps.len() > 1 << 24 {
                return Err(format!(
                    "histogram {i}: {} stamps for {} histograms",
                    h.stamps.len(),
                    h.hists.len()
                ));
            }
            let limit = future.div_euclid(h.res);
            if h.stamps.iter().any(|&b| b != i64::MIN && b > limit) {
                return Err(format!(
                    "histogram {i}: a bucket more than 5 minutes in the future"
                ));
            }
            for s in &h.hists {
                let sorted = s.0.windows(2).all(|w| w[0].0 < w[1].0);
                let max = latency::index(u64::MAX);
                if !sorted || s.0.iter().any(|(k, _)| *k > max) {
                    return Err(format!("histogram {i}: malformed latency buckets"));
                }
            }
        }
        if let Some(s) = &self.slice {
            if s.good > s.total || s.total > window::MAX_EVENTS {
                return Err(format!(
                    "open timeslice: {} good events of {}",
                    s.good, s.total
                ));
            }
        }
        if self.dropped > window::MAX_EVENTS {
            return Err("dropped event count is not plausible".into());
        }
        Ok(())
    }
}

impl Slo {
    pub fn new(spec: SloSpec) -> Self {
        let mut widths: Vec<(i64, i64)> = Vec::new(); // (width, resolution cap)
        for (_, d) in WINDOWS {
            widths.push((d.as_millis() as i64, RES_CAP));
        }
        for p in &spec.alerts {
            widths.push((p.long.as_millis().max(1) as i64, RES_CAP));
            widths.push((p.short.as_millis().max(1) as i64, RES_CAP));
        }
        let (period_width, period_cap) = match &spec.period {
            Period::Rolling(d) => (d.as_millis() as i64, RES_CAP),
            Period::Calendar { unit, .. } => {
                let longest = match unit {
                    CalendarUnit::Week => 7 * 86_400_000 + 3_600_000,
                    CalendarUnit::Month => 31 * 86_400_000 + 3_600_000,
                };
                (longest, CALENDAR_RES_CAP)
            }
        };
        widths.push((period_width, period_cap));

        // One level per resolution, long enough for the longest window it answers.
        let mut levels: Vec<(i64, i64)> = Vec::new(); // (res, longest)
        let mut tracked: Vec<Tracked> = Vec::new();
        // Each distinct window is tracked (and evaluated) once: the default policy's alert
        // windows are mostly fixed windows too. `at[i]` is the tracked index of `widths[i]`.
        let mut at = Vec::with_capacity(widths.len());
        for (w, cap) in &widths {
            if let Some(t) = tracked.iter().position(|t| t.width == *w && t.cap == *cap) {
                at.push(t);
                continue;
            }
            at.push(tracked.len());
            let res = resolution_for(*w, *cap);
            let level = match levels.iter().position(|(r, _)| *r == res) {
                Some(i) => {
                    levels[i].1 = levels[i].1.max(*w);
                    i
                }
                None => {
                    levels.push((res, *w));
                    levels.len() - 1
                }
            };
            tracked.push(Tracked {
                width: *w,
                cap: *cap,
                level,
                name: Arc::from(window_name(Duration::from_millis(*w as u64))),
            });
        }
        let n_fixed = WINDOWS.len();
        let fixed = at[..n_fixed].to_vec();
        let pairs = (0..spec.alerts.len())
            .map(|i| (at[n_fixed + 2 * i], at[n_fixed + 2 * i + 1]))
            .collect();
        let period = at[at.len() - 1];
        let hists = match spec.sli {
            Sli::LatencyPercentile { .. } => levels
                .iter()
                .map(|(res, longest)| HistRing::new(*res, (longest / res + 2) as usize))
                .collect(),
            _ => Vec::new(),
        };
        let state = State {
            levels: levels
                .iter()
                .map(|(res, longest)| Level::new(*res, *longest))
                .collect(),
            hists,
            slice: None,
            dropped: 0,
        };
        let period_label = Arc::from(match &spec.period {
            Period::Rolling(d) => window_name(*d),
            Period::Calendar {
                unit: CalendarUnit::Month,
                ..
            } => "month".to_string(),
            Period::Calendar {
                unit: CalendarUnit::Week,
                ..
            } => "week".to_string(),
        });
        let severities = spec
            .alerts
            .iter()
            .map(|a| Arc::from(a.severity.as_str()))
            .collect();
        Self {
            spec,
            state,
            tracked,
            fixed,
            pairs,
            period,
            period_label,
            severities,
        }
    }

    pub fn spec(&self) -> &SloSpec {
        &self.spec
    }

    /// The counts, for persistence.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Restore counts saved from an SLO with the same definition. `false` (and nothing changed)
    /// when the saved shape does not match this definition.
    pub fn restore(&mut self, state: State) -> bool {
        let same_shape = state.levels.len() == self.state.levels.len()
            && state
                .levels
                .iter()
                .zip(&self.state.levels)
                .all(|(a, b)| a.res == b.res && a.len() == b.len())
            && state.hists.len() == self.state.hists.len()
            && state
                .hists
                .iter()
                .zip(&self.state.hists)
                .all(|(a, b)| a.res == b.res && a.stamps.len() == b.stamps.len())
            // A state that is inconsistent in itself never gets in, whoever calls this.
            && state.validate(i64::MAX).is_ok();
        if same_shape {
            self.state = state;
        }
        same_shape
    }

    /// Bytes of counts held (for the memory budget).
    pub fn memory_bytes(&self) -> usize {
        let levels: usize = self.state.levels.iter().map(|l| l.len() * 16).sum();
        let hists: usize = self
            .state
            .hists
            .iter()
            .map(|h| {
                h.stamps.len() * 8
                    + h.hists
                        .iter()
                        .map(|s| 24 + s.0.capacity() * 6)
                        .sum::<usize>()
            })
            .sum();
        std::mem::size_of::<Self>() + levels + hists
    }

    /// Whether a run is a good event under this SLI.
    pub fn is_good(&self, success: bool, duration: Duration) -> bool {
        match self.spec.sli {
            Sli::Availability => success,
            Sli::Latency { threshold } | Sli::LatencyPercentile { threshold, .. } => {
                success && duration <= threshold
            }
        }
    }

    /// Record one run that ended at `at` (Unix ms).
    pub fn record(&mut self, at: i64, success: bool, duration: Duration) {
        let good = self.is_good(success, duration);
        for h in &mut self.state.hists {
            h.record(at, duration.as_micros() as u64);
        }
        match self.spec.budgeting {
            Budgeting::Occurrences => self.add(at, u64::from(good), 1),
            Budgeting::Timeslices { slice, .. } => {
                let width = slice.as_millis().max(1) as i64;
                let index = at.div_euclid(width);
                self.close_slices(index * width);
                let open = self.state.slice.get_or_insert(OpenSlice {
                    index,
                    good: 0,
                    total: 0,
                });
                if open.index == index {
                    open.good += u64::from(good);
                    open.total += 1;
                } else {
                    // Later than the open slice cannot happen after close_slices; earlier is late.
                    self.state.dropped += 1;
                }
            }
        }
    }

    fn add(&mut self, at: i64, good: u64, n: u64) {
        let mut kept = false;
        for l in &mut self.state.levels {
            kept |= l.add(at, good, n);
        }
        if !kept {
            self.state.dropped += n;
        }
    }

    /// Close the open slice if `now` is past its end: it becomes one good or bad event, at its
    /// last millisecond.
    fn close_slices(&mut self, now: i64) {
        let Budgeting::Timeslices { slice, target } = self.spec.budgeting else {
            return;
        };
        let width = slice.as_millis().max(1) as i64;
        if let Some(open) = self.state.slice {
            if now >= (open.index + 1) * width {
                let good = open.total > 0 && open.good as f64 / open.total as f64 >= target;
                self.state.slice = None;
                self.add((open.index + 1) * width - 1, u64::from(good), 1);
            }
        }
    }

    fn window(&self, t: usize, now: i64) -> WindowReport {
        let name = self.tracked[t].name.clone();
        let tr = &self.tracked[t];
        let level = &self.state.levels[tr.level];
        let c = level.window(now, tr.width);
        let percentile_seconds = match (self.spec.sli, self.state.hists.get(tr.level)) {
            (Sli::LatencyPercentile { percentile, .. }, Some(h)) => h
                .merged((now - tr.width).div_euclid(h.res), now.div_euclid(h.res))
                .percentile(percentile)
                .map(|us| us as f64 / 1e6),
            _ => None,
        };
        self.report(name, tr.width, c, percentile_seconds)
    }

    fn report(
        &self,
        name: Arc<str>,
        width: i64,
        c: Counts,
        percentile_seconds: Option<f64>,
    ) -> WindowReport {
        let error_ratio = budget::error_ratio(c.good, c.total);
        WindowReport {
            name,
            seconds: width as f64 / 1000.0,
            good: c.good,
            total: c.total,
            sli: error_ratio.map(|e| 1.0 - e),
            error_ratio,
            burn_rate: error_ratio.map(|e| e / self.spec.objective.budget()),
            percentile_seconds,
        }
    }

    /// The period's name as a label value: `30d`, `month`, `week`.
    pub fn period_name(&self) -> String {
        match &self.spec.period {
            Period::Rolling(d) => window_name(*d),
            Period::Calendar {
                unit: CalendarUnit::Month,
                ..
            } => "month".into(),
            Period::Calendar {
                unit: CalendarUnit::Week,
                ..
            } => "week".into(),
        }
    }

    /// Every number of SPEC §4.2 and the verdict of every alert pair, at `now` (Unix ms).
    pub fn evaluate(&mut self, now: i64) -> Report {
        self.close_slices(now);
        let mut memo: Vec<Option<WindowReport>> = vec![None; self.tracked.len()];
        let mut window = |t: usize| -> WindowReport {
            memo[t].get_or_insert_with(|| self.window(t, now)).clone()
        };
        let windows: Vec<WindowReport> = self.fixed.iter().map(|t| window(*t)).collect();
        let (start, period_len) = budget::period_bounds(&self.spec.period, now);
        let period_tr = &self.tracked[self.period];
        let level = &self.state.levels[period_tr.level];
        // Rolling: the same window rule as every other window. Calendar: from the bucket holding
        // the period's first instant (an exact edge: calendar levels are ≤ 15 min).
        let counts = match self.spec.period {
            Period::Rolling(_) => level.window(now, period_len),
            Period::Calendar { .. } => level.since(start, now),
        };
        let percentile_seconds = match (self.spec.sli, self.state.hists.get(period_tr.level)) {
            (Sli::LatencyPercentile { percentile, .. }, Some(h)) => h
                .merged(start.div_euclid(h.res) - 1, now.div_euclid(h.res))
                .percentile(percentile)
                .map(|us| us as f64 / 1e6),
            _ => None,
        };
        let period = self.report(
            self.period_label.clone(),
            period_len,
            counts,
            percentile_seconds,
        );
        let budget_consumed = period.burn_rate;
        let budget_remaining = budget_consumed.map(|c| 1.0 - c);
        let burn_1h = windows
            .iter()
            .find(|w| &*w.name == "1h")
            .and_then(|w| w.burn_rate);
        let exhaustion_seconds = match (budget_remaining, burn_1h) {
            (Some(r), _) if r <= 0.0 => Some(0.0),
            (Some(r), Some(b)) if b > 0.0 => Some(r * (period_len as f64 / 1000.0) / b),
            _ => None,
        };
        let alerts = self
            .pairs
            .iter()
            .zip(&self.spec.alerts)
            .zip(&self.severities)
            .map(|(((l, s), pair), severity)| {
                let long = window(*l);
                let short = window(*s);
                judge(pair, severity.clone(), long, short, self.spec.min_events)
            })
            .collect();
        let missing_slices = match self.spec.budgeting {
            Budgeting::Timeslices { slice, .. } => {
                let width = slice.as_millis().max(1) as i64;
                let elapsed_slices = ((now - start).max(0) / width) as u64;
                Some(elapsed_slices.saturating_sub(period.total))
            }
            Budgeting::Occurrences => None,
        };
        let percentile_met = match self.spec.sli {
            Sli::LatencyPercentile { threshold, .. } => period
                .percentile_seconds
                .map(|p| p <= threshold.as_secs_f64()),
            _ => None,
        };
        Report {
            windows,
            period,
            budget_remaining,
            budget_consumed,
            exhaustion_seconds,
            alerts,
            missing_slices,
            percentile_met,
        }
    }
}

fn describe(w: &WindowReport, threshold: f64) -> String {
    match w.burn_rate {
        Some(b) => format!(
            "{} burn {:.2} {} {} ({} bad of {})",
            w.name,
            b,
            if b > threshold { ">" } else { "≤" },
            threshold,
            w.total - w.good,
            w.total
        ),
        None => format!("{} has no events", w.name),
    }
}

/// A pair fires when both windows burn faster than its rate and both hold `min_events`.
fn judge(
    pair: &AlertPair,
    severity: Arc<str>,
    long: WindowReport,
    short: WindowReport,
    min_events: u64,
) -> PairReport {
    let t = pair.burn_rate;
    let hot = |w: &WindowReport| w.burn_rate.is_some_and(|b| b > t);
    let enough = |w: &WindowReport| w.total >= min_events;
    let firing = hot(&long) && hot(&short) && enough(&long) && enough(&short);
    PairReport {
        severity,
        burn_rate_threshold: t,
        long,
        short,
        firing,
        min_events,
    }
}

#[cfg(test)]
mod tests;
