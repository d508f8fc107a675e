//! The status page's memory: per probe, success counts in 5-minute buckets for a day and hourly
//! buckets for 30 days (24h/7d/30d uptime), the last runs with their phases (history bar and
//! latency charts), the last failures with evidence, and incidents (down/up transitions); per
//! SLO, sampled reports (burn-down and SLI over time). Everything is bounded, and persisted in
//! the state file in a compact form: packed little-endian records in base64.
//!
//! Bytes per probe in the state file, at most: buckets 4,032 raw → 5,376 base64; runs 60 × 36
//! = 2,160 → 2,880; failures and incidents ≤ 5 + 20 records of ≤ 300 bytes of evidence each.
//! A steady probe costs about 8.4 KB; a probe with every record full of evidence about 18 KB
//! (`saved_probe_size_is_bounded` measures both; JSON escapes of control characters in evidence
//! can add to the latter). Per SLO: 1,080 samples × 12 bytes = 12,960 →
//! 17,280 base64.

use std::collections::{BTreeMap, VecDeque};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use vantage_probes::{Outcome, Reason};

/// 5-minute buckets for one day.
pub const FINE_SECS: i64 = 300;
pub const FINE_LEN: usize = 288;
/// Hourly buckets for 30 days.
pub const COARSE_SECS: i64 = 3600;
pub const COARSE_LEN: usize = 720;
/// Runs kept with their phases.
pub const RUNS: usize = 60;
/// Failures kept with their evidence.
pub const FAILURES: usize = 5;
/// Incidents kept.
pub const INCIDENTS: usize = 20;
/// Longest evidence kept.
pub const EVIDENCE_MAX: usize = 300;
/// SLO samples: every 10 s for an hour, then every period/720 (at least hourly).
pub const SLO_FINE_SECS: i64 = 10;
pub const SLO_FINE_LEN: usize = 360;
pub const SLO_COARSE_LEN: usize = 720;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Cut `s` to at most `max` bytes on a character boundary, marking the cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}...", &s[..cut])
}

fn reason_code(r: Option<Reason>) -> u8 {
    r.and_then(|r| Reason::ALL.iter().position(|x| *x == r))
        .map_or(0, |i| i as u8 + 1)
}

fn reason_of(code: u8) -> Option<Reason> {
    (code as usize)
        .checked_sub(1)
        .and_then(|i| Reason::ALL.get(i).copied())
}

/// Good/total counts in fixed-width time buckets, newest at the back.
#[derive(Debug, Clone)]
pub struct Buckets {
    width: i64,
    cap: usize,
    /// Bucket index (`unix secs / width`) of the newest bucket.
    last: i64,
    counts: VecDeque<(u16, u16)>,
}

impl Buckets {
    fn new(width: i64, cap: usize) -> Self {
        Self {
            width,
            cap,
            last: 0,
            counts: VecDeque::new(),
        }
    }

    fn add(&mut self, t: i64, ok: bool) {
        let idx = t.div_euclid(self.width);
        if self.counts.is_empty() {
            self.last = idx;
            self.counts.push_back((0, 0));
        } else if idx > self.last {
            let gap = (idx - self.last).min(self.cap as i64);
            for _ in 0..gap {
                self.counts.push_back((0, 0));
            }
            while self.counts.len() > self.cap {
                self.counts.pop_front();
            }
            self.last = idx;
        }
        let back = self.last.saturating_sub(idx);
        if back >= self.cap as i64 {
            // Older than the whole ring: the clock went back further than the ring spans
            // (or the saved ring came from the future). Start over from this run.
            self.counts.clear();
            self.last = idx;
            self.counts.push_back((0, 0));
        } else if back >= self.counts.len() as i64 {
            return;
        }
        let back = self.last - idx;
        let pos = self.counts.len() - 1 - back as usize;
        let c = &mut self.counts[pos];
        c.1 = c.1.saturating_add(1);
        if ok {
            c.0 = c.0.saturating_add(1);
        }
    }

    /// (good, total) over the buckets newer than `now - span`.
    fn sum(&self, now: i64, span: i64) -> (u64, u64) {
        let first = now.saturating_sub(span).div_euclid(self.width);
        let mut idx = self.last.saturating_sub(self.counts.len() as i64);
        let (mut good, mut total) = (0, 0);
        for (g, t) in &self.counts {
            idx += 1;
            if idx > first {
                good += u64::from(*g);
                total += u64::from(*t);
            }
        }
        (good, total)
    }

    fn encode(&self) -> String {
        let mut raw = Vec::with_capacity(self.counts.len() * 4);
        for (g, t) in &self.counts {
            raw.extend_from_slice(&g.to_le_bytes());
            raw.extend_from_slice(&t.to_le_bytes());
        }
        B64.encode(raw)
    }

    fn decode(&mut self, last: i64, text: &str) -> Result<(), String> {
        // Bucket indexes of Unix times from 1970 to the year 3000 only.
        if !(0..=32_503_680_000 / self.width).contains(&last) {
            return Err(format!("bucket index {last} is out of range"));
        }
        let raw = decode_bounded(text, self.cap * 4)?;
        if raw.len() % 4 != 0 {
            return Err("bucket data is not a whole number of records".into());
        }
        self.counts = raw
            .chunks_exact(4)
            .map(|c| {
                let g = u16::from_le_bytes([c[0], c[1]]);
                let t = u16::from_le_bytes([c[2], c[3]]);
                (g.min(t), t)
            })
            .collect();
        self.last = last;
        Ok(())
    }
}

/// Base64 `text` that must decode to at most `max` bytes; refused before decoding when longer.
fn decode_bounded(text: &str, max: usize) -> Result<Vec<u8>, String> {
    if text.len() > max.div_ceil(3) * 4 {
        return Err(format!("{} bytes of base64 exceed the bound", text.len()));
    }
    B64.decode(text).map_err(|e| format!("bad base64: {e}"))
}

/// One run, for the history bar and the latency charts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunPoint {
    /// Unix ms when it ended.
    pub at_ms: i64,
    pub success: bool,
    pub reason: Option<Reason>,
    pub status: Option<u16>,
    pub duration_us: u32,
    /// Per phase, in `Phases::NAMES` order.
    pub phases_us: [u32; 5],
}

const RUN_BYTES: usize = 8 + 1 + 1 + 2 + 4 + 20;

impl RunPoint {
    fn pack(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.at_ms.to_le_bytes());
        out.push(u8::from(self.success));
        out.push(reason_code(self.reason));
        out.extend_from_slice(&self.status.unwrap_or(0).to_le_bytes());
        out.extend_from_slice(&self.duration_us.to_le_bytes());
        for p in self.phases_us {
            out.extend_from_slice(&p.to_le_bytes());
        }
    }

    fn unpack(c: &[u8]) -> Self {
        let u32_at = |i: usize| u32::from_le_bytes([c[i], c[i + 1], c[i + 2], c[i + 3]]);
        let mut at = [0u8; 8];
        at.copy_from_slice(&c[0..8]);
        let status = u16::from_le_bytes([c[10], c[11]]);
        let mut phases_us = [0; 5];
        for (i, p) in phases_us.iter_mut().enumerate() {
            *p = u32_at(16 + 4 * i);
        }
        Self {
            at_ms: i64::from_le_bytes(at),
            success: c[8] != 0,
            reason: reason_of(c[9]),
            status: (status != 0).then_some(status),
            duration_us: u32_at(12),
            phases_us,
        }
    }
}

/// A failed run with its (redacted, truncated) evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// Unix ms.
    pub at: i64,
    #[serde(with = "reason_serde")]
    pub reason: Option<Reason>,
    pub status: Option<u16>,
    pub duration_us: u32,
    pub evidence: String,
}

/// A stretch of failing runs: from the first failure to the next success.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// Unix ms of the first failed run.
    pub start: i64,
    /// Unix ms of the run that succeeded again; `None` while still down.
    pub end: Option<i64>,
    #[serde(with = "reason_serde")]
    pub reason: Option<Reason>,
    pub failed_runs: u32,
    /// The first failure's evidence.
    pub evidence: String,
}

mod reason_serde {
    use super::{reason_code, reason_of, Reason};
    pub fn serialize<S: serde::Serializer>(r: &Option<Reason>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(reason_code(*r))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Reason>, D::Error> {
        let code: u8 = serde::Deserialize::deserialize(d)?;
        Ok(reason_of(code))
    }
}

/// One probe's long history.
#[derive(Debug, Clone)]
pub struct Timeline {
    fine: Buckets,
    coarse: Buckets,
    pub runs: VecDeque<RunPoint>,
    pub failures: VecDeque<Failure>,
    pub incidents: VecDeque<Incident>,
}

impl Default for Timeline {
    fn default() -> Self {
        Self {
            fine: Buckets::new(FINE_SECS, FINE_LEN),
            coarse: Buckets::new(COARSE_SECS, COARSE_LEN),
            runs: VecDeque::new(),
            failures: VecDeque::new(),
            incidents: VecDeque::new(),
        }
    }
}

/// Uptime spans shown on the page.
pub const UPTIME_SPANS: [(&str, i64); 3] = [("24h", 86_400), ("7d", 604_800), ("30d", 2_592_000)];

impl Timeline {
    /// Record one (already redacted) run that ended at `at_ms` (Unix ms).
    pub fn record(&mut self, outcome: &Outcome, at_ms: i64) {
        let secs = at_ms.div_euclid(1000);
        self.fine.add(secs, outcome.success());
        self.coarse.add(secs, outcome.success());
        let us = |d: std::time::Duration| u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
        let phases = outcome.phases.as_array();
        let point = RunPoint {
            at_ms,
            success: outcome.success(),
            reason: outcome.reason,
            status: outcome.facts.status(),
            duration_us: us(outcome.duration),
            phases_us: phases.map(us),
        };
        if self.runs.len() == RUNS {
            self.runs.pop_front();
        }
        self.runs.push_back(point);
        if outcome.success() {
            if let Some(open) = self.incidents.back_mut().filter(|i| i.end.is_none()) {
                open.end = Some(at_ms);
            }
            return;
        }
        let evidence = truncate(&outcome.evidence, EVIDENCE_MAX);
        if self.failures.len() == FAILURES {
            self.failures.pop_front();
        }
        self.failures.push_back(Failure {
            at: at_ms,
            reason: outcome.reason,
            status: outcome.facts.status(),
            duration_us: point.duration_us,
            evidence: evidence.clone(),
        });
        match self.incidents.back_mut().filter(|i| i.end.is_none()) {
            Some(open) => open.failed_runs = open.failed_runs.saturating_add(1),
            None => {
                if self.incidents.len() == INCIDENTS {
                    self.incidents.pop_front();
                }
                self.incidents.push_back(Incident {
                    start: at_ms,
                    end: None,
                    reason: outcome.reason,
                    failed_runs: 1,
                    evidence,
                });
            }
        }
    }

    /// Fraction of good runs over the last `span` seconds before `now` (Unix secs); `None`
    /// without runs. Spans up to a day use 5-minute buckets, longer ones hourly buckets.
    pub fn uptime(&self, now: i64, span: i64) -> Option<f64> {
        let b = if span <= FINE_SECS * FINE_LEN as i64 {
            &self.fine
        } else {
            &self.coarse
        };
        let (good, total) = b.sum(now, span);
        (total > 0).then(|| good as f64 / total as f64)
    }

    pub fn save(&self) -> SavedTimeline {
        let mut runs = Vec::with_capacity(self.runs.len() * RUN_BYTES);
        for r in &self.runs {
            r.pack(&mut runs);
        }
        SavedTimeline {
            fine_last: self.fine.last,
            fine: self.fine.encode(),
            coarse_last: self.coarse.last,
            coarse: self.coarse.encode(),
            runs: B64.encode(runs),
            failures: self.failures.iter().cloned().collect(),
            incidents: self.incidents.iter().cloned().collect(),
        }
    }

    /// Rebuild from the state file, enforcing every bound; a damaged part is an error.
    pub fn restore(saved: &SavedTimeline) -> Result<Self, String> {
        let mut t = Timeline::default();
        t.fine.decode(saved.fine_last, &saved.fine)?;
        t.coarse.decode(saved.coarse_last, &saved.coarse)?;
        let runs = decode_bounded(&saved.runs, RUNS * RUN_BYTES)?;
        if runs.len() % RUN_BYTES != 0 {
            return Err("run data is not a whole number of records".into());
        }
        t.runs = runs.chunks_exact(RUN_BYTES).map(RunPoint::unpack).collect();
        let clean = |s: &str| truncate(s, EVIDENCE_MAX);
        let skip_f = saved.failures.len().saturating_sub(FAILURES);
        t.failures = saved.failures[skip_f..]
            .iter()
            .map(|f| Failure {
                evidence: clean(&f.evidence),
                ..f.clone()
            })
            .collect();
        let skip_i = saved.incidents.len().saturating_sub(INCIDENTS);
        t.incidents = saved.incidents[skip_i..]
            .iter()
            .map(|i| Incident {
                evidence: clean(&i.evidence),
                ..i.clone()
            })
            .collect();
        Ok(t)
    }
}

/// A [`Timeline`] as stored in the state file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SavedTimeline {
    pub fine_last: i64,
    /// Base64 of (good u16, total u16) per 5-minute bucket, oldest first.
    pub fine: String,
    pub coarse_last: i64,
    /// Likewise per hour.
    pub coarse: String,
    /// Base64 of 36-byte run records.
    pub runs: String,
    pub failures: Vec<Failure>,
    pub incidents: Vec<Incident>,
}

/// One sampled SLO report.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SloSample {
    /// Unix seconds.
    pub t: u32,
    /// Error budget remaining (1 = untouched); NaN while unknown.
    pub remaining: f32,
    /// SLI over the shortest window; NaN while unknown.
    pub sli: f32,
}

/// Sampled reports of one SLO: every 10 s for the last hour, and coarser over the period.
#[derive(Debug, Clone, Default)]
pub struct SloHistory {
    fine: VecDeque<SloSample>,
    coarse: VecDeque<SloSample>,
}

fn push_sample(ring: &mut VecDeque<SloSample>, s: SloSample, spacing: i64, cap: usize) {
    if ring
        .back()
        .is_some_and(|b| i64::from(s.t) - i64::from(b.t) < spacing)
    {
        return;
    }
    if ring.len() == cap {
        ring.pop_front();
    }
    ring.push_back(s);
}

impl SloHistory {
    /// Sample `report` at `now_ms` when a sample is due.
    pub fn sample(&mut self, report: &vantage_slo::Report, now_ms: i64) {
        let Ok(t) = u32::try_from(now_ms.div_euclid(1000)) else {
            return;
        };
        let nan = |v: Option<f64>| v.map_or(f32::NAN, |v| v as f32);
        let s = SloSample {
            t,
            remaining: nan(report.budget_remaining),
            sli: nan(report.windows.first().and_then(|w| w.sli)),
        };
        let coarse = ((report.period.seconds as i64) / SLO_COARSE_LEN as i64).max(3600);
        push_sample(&mut self.fine, s, SLO_FINE_SECS, SLO_FINE_LEN);
        push_sample(&mut self.coarse, s, coarse, SLO_COARSE_LEN);
    }

    /// Every sample, oldest first: the coarse ones before the fine ring, then the fine ring.
    pub fn points(&self) -> Vec<SloSample> {
        let start = self.fine.front().map_or(u32::MAX, |s| s.t);
        self.coarse
            .iter()
            .filter(|s| s.t < start)
            .chain(self.fine.iter())
            .copied()
            .collect()
    }

    pub fn save(&self) -> SavedSloHistory {
        let enc = |ring: &VecDeque<SloSample>| {
            let mut raw = Vec::with_capacity(ring.len() * 12);
            for s in ring {
                raw.extend_from_slice(&s.t.to_le_bytes());
                raw.extend_from_slice(&s.remaining.to_le_bytes());
                raw.extend_from_slice(&s.sli.to_le_bytes());
            }
            B64.encode(raw)
        };
        SavedSloHistory {
            fine: enc(&self.fine),
            coarse: enc(&self.coarse),
        }
    }

    pub fn restore(saved: &SavedSloHistory) -> Result<Self, String> {
        let dec = |text: &str, cap: usize| -> Result<VecDeque<SloSample>, String> {
            let raw = decode_bounded(text, cap * 12)?;
            if raw.len() % 12 != 0 {
                return Err("sample data is not a whole number of records".into());
            }
            let f = |b: &[u8]| {
                let v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                if v.is_finite() {
                    v
                } else {
                    f32::NAN
                }
            };
            let mut ring: VecDeque<SloSample> = raw
                .chunks_exact(12)
                .map(|c| SloSample {
                    t: u32::from_le_bytes([c[0], c[1], c[2], c[3]]),
                    remaining: f(&c[4..8]),
                    sli: f(&c[8..12]),
                })
                .collect();
            // Out-of-order samples would draw lines backwards: keep the ordered prefix.
            let ordered = ring
                .iter()
                .zip(ring.iter().skip(1))
                .position(|(a, b)| b.t < a.t)
                .map_or(ring.len(), |i| i + 1);
            ring.truncate(ordered);
            Ok(ring)
        };
        Ok(Self {
            fine: dec(&saved.fine, SLO_FINE_LEN)?,
            coarse: dec(&saved.coarse, SLO_COARSE_LEN)?,
        })
    }
}

/// An [`SloHistory`] as stored: base64 of (t u32, remaining f32, sli f32) records.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SavedSloHistory {
    pub fine: String,
    pub coarse: String,
}

/// The status page's history in the state file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SavedHistory {
    #[serde(default)]
    pub probes: BTreeMap<String, SavedTimeline>,
    #[serde(default)]
    pub slos: BTreeMap<String, SavedSloHistory>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn outcome(success: bool, ms: u64, evidence: &str) -> Outcome {
        let mut o = Outcome {
            reason: (!success).then_some(Reason::HttpStatus),
            duration: Duration::from_millis(ms),
            phases: Default::default(),
            evidence: evidence.to_string(),
            facts: Default::default(),
        };
        o.phases.processing = Duration::from_millis(ms / 2);
        o.facts.http_facts_mut().expect("http facts").status =
            Some(if success { 200 } else { 503 });
        o
    }

    const DAY0: i64 = 1_800_000_000_000;

    #[test]
    fn uptime_over_spans_and_gaps() {
        let mut t = Timeline::default();
        // 40 days, one run an hour; the last 10 days every fourth fails.
        for h in 0..(40 * 24) {
            let ok = h < 30 * 24 || h % 4 != 0;
            t.record(&outcome(ok, 10, "x"), DAY0 + h * 3_600_000);
        }
        let now = (DAY0 + (40 * 24 - 1) * 3_600_000) / 1000;
        assert_eq!(t.uptime(now, 86_400), Some(0.75));
        assert_eq!(t.uptime(now, 604_800), Some(0.75));
        let m = t.uptime(now, 2_592_000).unwrap();
        assert!((m - (0.75 * 10.0 + 20.0) / 30.0).abs() < 0.01, "{m}");
        // Bounded: never more buckets than a month of hours, or a day of 5 minutes.
        assert!(t.coarse.counts.len() <= COARSE_LEN && t.fine.counts.len() <= FINE_LEN);
        // A long silence empties the spans instead of reporting stale uptime.
        assert_eq!(t.uptime(now + 40 * 86_400, 86_400), None);
    }

    #[test]
    fn incidents_open_and_close() {
        let mut t = Timeline::default();
        t.record(&outcome(true, 5, ""), DAY0);
        t.record(&outcome(false, 5, "status 503"), DAY0 + 1000);
        t.record(&outcome(false, 5, "status 503 again"), DAY0 + 2000);
        assert_eq!(t.incidents.len(), 1);
        assert_eq!(t.incidents[0].end, None);
        t.record(&outcome(true, 5, ""), DAY0 + 3000);
        let i = &t.incidents[0];
        assert_eq!(
            (i.start, i.end, i.failed_runs),
            (DAY0 + 1000, Some(DAY0 + 3000), 2)
        );
        assert_eq!(i.evidence, "status 503");
        assert_eq!(t.failures.len(), 2);
        for k in 0..100 {
            t.record(&outcome(k % 2 == 0, 5, "e"), DAY0 + 10_000 + k * 1000);
        }
        assert!(t.incidents.len() <= INCIDENTS && t.failures.len() <= FAILURES);
        assert!(t.runs.len() <= RUNS);
    }

    #[test]
    fn timeline_round_trips_through_json() {
        let mut t = Timeline::default();
        for k in 0..200 {
            t.record(
                &outcome(k % 7 != 0, 5 + k as u64, "ü".repeat(400).as_str()),
                DAY0 + k * 61_000,
            );
        }
        let saved = t.save();
        let json = serde_json::to_string(&saved).unwrap();
        let back: SavedTimeline = serde_json::from_str(&json).unwrap();
        let r = Timeline::restore(&back).unwrap();
        assert_eq!(r.runs, t.runs);
        assert_eq!(r.failures, t.failures);
        assert_eq!(r.incidents, t.incidents);
        assert_eq!(r.fine.counts, t.fine.counts);
        assert_eq!(r.coarse.counts, t.coarse.counts);
        let now = (DAY0 + 200 * 61_000) / 1000;
        assert_eq!(r.uptime(now, 86_400), t.uptime(now, 86_400));
    }

    #[test]
    fn saved_probe_size_is_bounded() {
        let mut t = Timeline::default();
        // Every bucket and run filled, no failures: the steady state.
        for k in 0..(31 * 24 * 12) {
            t.record(&outcome(true, 5, ""), DAY0 + k * 300_000);
        }
        let steady = serde_json::to_string(&t.save()).unwrap().len();
        // Then failures and incidents full of maximal evidence.
        for k in 0..200 {
            let ev = "x".repeat(1000);
            t.record(
                &outcome(k % 2 == 0, 5, &ev),
                DAY0 + 40 * 86_400_000 + k * 1000,
            );
        }
        let worst = serde_json::to_string(&t.save()).unwrap().len();
        eprintln!("state bytes per probe: steady {steady}, worst {worst}");
        assert!(steady < 8_600, "{steady}");
        assert!(worst < 18_500, "{worst}");
    }

    #[test]
    fn hostile_saved_timelines_are_refused_or_clamped() {
        let mut bad = SavedTimeline {
            fine: "!!!not base64".into(),
            ..Default::default()
        };
        assert!(Timeline::restore(&bad).is_err());
        bad.fine = B64.encode([1, 2, 3]);
        assert!(Timeline::restore(&bad).is_err());
        // Far more data than the bound: refused before decoding.
        bad.fine = "A".repeat(10_000_000);
        assert!(Timeline::restore(&bad).is_err());
        bad.fine = String::new();
        bad.runs = B64.encode([0u8; RUN_BYTES * (RUNS + 1)]);
        assert!(Timeline::restore(&bad).is_err());
        // good > total is clamped; an unknown reason code becomes "no reason"; extra records and
        // long evidence are cut.
        let mut raw = Vec::new();
        raw.extend_from_slice(&9u16.to_le_bytes());
        raw.extend_from_slice(&3u16.to_le_bytes());
        let mut run = vec![0u8; RUN_BYTES];
        run[9] = 250;
        let f = Failure {
            at: 1,
            reason: None,
            status: None,
            duration_us: 0,
            evidence: "y".repeat(100_000),
        };
        let ok = SavedTimeline {
            fine: B64.encode(&raw),
            fine_last: 5,
            runs: B64.encode(&run),
            failures: vec![f; 50],
            ..Default::default()
        };
        let t = Timeline::restore(&ok).unwrap();
        assert_eq!(t.fine.counts[0], (3, 3));
        assert_eq!(t.runs[0].reason, None);
        assert_eq!(t.failures.len(), FAILURES);
        assert!(t.failures[0].evidence.len() <= EVIDENCE_MAX + 3);
        let future = SavedTimeline {
            fine_last: i64::MAX,
            ..Default::default()
        };
        assert!(Timeline::restore(&future).is_err());
        // Runs stamped anywhere in i64, and a clock far behind the ring: recording and uptime
        // still work.
        let mut run = vec![0u8; RUN_BYTES];
        run[..8].copy_from_slice(&i64::MIN.to_le_bytes());
        let odd = SavedTimeline {
            fine: B64.encode([1, 0, 1, 0]),
            fine_last: 32_503_680_000 / FINE_SECS,
            runs: B64.encode(&run),
            ..Default::default()
        };
        let mut t = Timeline::restore(&odd).unwrap();
        t.record(&outcome(true, 1, ""), DAY0);
        assert_eq!(t.uptime(DAY0 / 1000, 86_400), Some(1.0));
        assert_eq!(t.runs.len(), 2);
        let json = r#"{"fine_last":0,"fine":"","coarse_last":0,"coarse":"","runs":"","failures":[{"at":1,"reason":255,"status":null,"duration_us":1,"evidence":""}],"incidents":[]}"#;
        let s: SavedTimeline = serde_json::from_str(json).unwrap();
        assert_eq!(Timeline::restore(&s).unwrap().failures[0].reason, None);
    }

    fn report(remaining: f64, sli: f64) -> vantage_slo::Report {
        let w = vantage_slo::WindowReport {
            name: "5m".into(),
            seconds: 300.0,
            good: 1,
            total: 1,
            sli: Some(sli),
            error_ratio: None,
            burn_rate: None,
            percentile_seconds: None,
        };
        vantage_slo::Report {
            windows: vec![w.clone()],
            period: vantage_slo::WindowReport {
                name: "30d".into(),
                seconds: 2_592_000.0,
                ..w
            },
            budget_remaining: Some(remaining),
            budget_consumed: None,
            exhaustion_seconds: None,
            alerts: vec![],
            missing_slices: None,
            percentile_met: None,
        }
    }

    #[test]
    fn slo_samples_are_spaced_bounded_and_round_trip() {
        let mut h = SloHistory::default();
        for s in 0..20_000i64 {
            h.sample(&report(1.0 - s as f64 / 20_000.0, 0.99), DAY0 + s * 1000);
        }
        assert_eq!(h.fine.len(), SLO_FINE_LEN);
        assert!(h.coarse.len() <= SLO_COARSE_LEN);
        let pts = h.points();
        assert!(pts.windows(2).all(|w| w[0].t < w[1].t));
        assert_eq!(pts.last().unwrap().t as i64, (DAY0 + 19_990_000) / 1000);
        let back = SloHistory::restore(&h.save()).unwrap();
        assert_eq!(back.points(), pts);
        let hostile = SavedSloHistory {
            fine: B64.encode([0xffu8; 24]),
            coarse: "A".repeat(1_000_000),
        };
        assert!(SloHistory::restore(&hostile).is_err());
        let odd = SavedSloHistory {
            fine: B64.encode([0xffu8; 24]),
            coarse: String::new(),
        };
        let r = SloHistory::restore(&odd).unwrap();
        assert!(r.fine.iter().all(|s| s.remaining.is_nan()));
    }
}
