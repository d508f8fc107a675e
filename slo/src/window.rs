//! Exact event counts over sliding windows.
//!
//! Each resolution level is a ring of *cumulative* good/total counts per bucket: the count of a
//! window is the difference of two slots, so evaluating any window is O(1) whatever its length,
//! and recording an event is an add or two per level. Buckets are aligned to the Unix epoch; a
//! window `W` at `now` covers the buckets `b` with `floor((now - W) / res) < b ≤ floor(now / res)`.

use serde::{Deserialize, Serialize};

/// Good and total events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub good: u64,
    pub total: u64,
}

impl Counts {
    pub fn bad(&self) -> u64 {
        self.total.saturating_sub(self.good)
    }

    fn sub(self, earlier: Counts) -> Counts {
        Counts {
            good: self.good.saturating_sub(earlier.good),
            total: self.total.saturating_sub(earlier.total),
        }
    }
}

/// One resolution: a ring of cumulative counts. Good and total of a bucket sit side by side
/// (one cache line read per window edge: evaluating 10,000 SLOs is bound by memory reads); the
/// state file keeps its two arrays ([`SavedLevel`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "SavedLevel", into = "SavedLevel")]
pub struct Level {
    /// Bucket width, milliseconds.
    pub res: i64,
    /// Newest bucket index written; `None` before the first event.
    head: Option<i64>,
    /// Cumulative counts up to and including each bucket, at `index mod len`.
    cum: Vec<Counts>,
    /// Cumulative counts of everything older than the ring.
    floor: Counts,
    /// Read from a state file whose two arrays differ in length (`validate` refuses it).
    uneven: Option<(usize, usize)>,
}

/// A level as the state file holds it.
#[derive(Serialize, Deserialize)]
struct SavedLevel {
    res: i64,
    head: Option<i64>,
    cum_good: Vec<u64>,
    cum_total: Vec<u64>,
    floor: Counts,
}

impl From<SavedLevel> for Level {
    fn from(s: SavedLevel) -> Self {
        let uneven = (s.cum_good.len() != s.cum_total.len())
            .then_some((s.cum_good.len(), s.cum_total.len()));
        let cum: Vec<Counts> = s
            .cum_good
            .iter()
            .zip(&s.cum_total)
            .map(|(&good, &total)| Counts { good, total })
            .collect();
        Self {
            res: s.res,
            head: s.head,
            cum,
            floor: s.floor,
            uneven,
        }
    }
}

impl From<Level> for SavedLevel {
    fn from(l: Level) -> Self {
        Self {
            res: l.res,
            head: l.head,
            cum_good: l.cum.iter().map(|c| c.good).collect(),
            cum_total: l.cum.iter().map(|c| c.total).collect(),
            floor: l.floor,
        }
    }
}

impl Level {
    /// A level of `res` ms able to answer windows up to `longest` ms.
    pub fn new(res: i64, longest: i64) -> Self {
        let len = (longest / res + 2) as usize;
        Self {
            res,
            head: None,
            cum: vec![Counts::default(); len],
            floor: Counts::default(),
            uneven: None,
        }
    }

    pub fn len(&self) -> usize {
        self.cum.len()
    }

    pub fn is_empty(&self) -> bool {
        self.head.is_none()
    }

    fn slot(&self, b: i64) -> usize {
        b.rem_euclid(self.len() as i64) as usize
    }

    fn at(&self, slot: usize) -> Counts {
        self.cum[slot]
    }

    /// Cumulative counts through bucket `b`.
    fn cum(&self, b: i64) -> Counts {
        let Some(head) = self.head else {
            return Counts::default();
        };
        if b >= head {
            return self.at(self.slot(head));
        }
        if b <= head - self.len() as i64 {
            return self.floor;
        }
        self.at(self.slot(b))
    }

    /// Move the head forward to bucket `b`, carrying the cumulative counts.
    fn advance(&mut self, b: i64) {
        let Some(head) = self.head else {
            self.head = Some(b);
            return;
        };
        if b <= head {
            return;
        }
        let len = self.len() as i64;
        let carry = self.at(self.slot(head));
        // Buckets up to b - len leave the ring: remember their cumulative count.
        let floor = self.cum(b - len);
        for k in (head + 1).max(b - len + 1)..=b {
            let s = self.slot(k);
            self.cum[s] = carry;
        }
        self.floor = floor;
        self.head = Some(b);
    }

    /// Add `n` events (`good` of them good) at time `t` ms. Events older than the ring are
    /// dropped and reported as `false`.
    pub fn add(&mut self, t: i64, good: u64, n: u64) -> bool {
        let b = t.div_euclid(self.res);
        match self.head {
            Some(head) if b <= head - self.len() as i64 => return false,
            Some(head) if b < head => {
                // Late: every cumulative slot from b to head includes it.
                for k in b..=head {
                    let s = self.slot(k);
                    self.cum[s].good += good;
                    self.cum[s].total += n;
                }
                return true;
            }
            _ => self.advance(b),
        }
        let s = self.slot(b);
        self.cum[s].good += good;
        self.cum[s].total += n;
        true
    }

    /// Check a level read from a state file: everything the code relies on (equal ring lengths,
    /// good ≤ total, cumulative counts that never decrease, sane magnitudes, a head not in the
    /// future beyond [`MAX_CLOCK_SKEW_MS`]). Returns what is wrong, never panics.
    pub fn validate(&self, now: i64) -> Result<(), String> {
        if !LADDER.contains(&self.res) {
            return Err(format!(
                "bucket width {} ms is not one vantage uses",
                self.res
            ));
        }
        if let Some((good, total)) = self.uneven {
            return Err(format!(
                "ring arrays differ in length ({good} good, {total} total)"
            ));
        }
        if self.len() < 2 || self.len() > MAX_RING {
            return Err(format!("ring length {} is out of range", self.len()));
        }
        let sane = |c: Counts, what: &str| -> Result<(), String> {
            if c.good > c.total {
                return Err(format!(
                    "{what}: {} good events of {} in all",
                    c.good, c.total
                ));
            }
            if c.total > MAX_EVENTS {
                return Err(format!(
                    "{what}: {} events is not a plausible count",
                    c.total
                ));
            }
            Ok(())
        };
        sane(self.floor, "counts before the ring")?;
        let Some(head) = self.head else {
            let untouched =
                self.floor == Counts::default() && self.cum.iter().all(|c| *c == Counts::default());
            return if untouched {
                Ok(())
            } else {
                Err("counts without a newest bucket".into())
            };
        };
        let limit = now.saturating_add(MAX_CLOCK_SKEW_MS).div_euclid(self.res);
        if head > limit {
            return Err(format!(
                "newest bucket starts at {} ms, more than 5 minutes in the future",
                head.saturating_mul(self.res)
            ));
        }
        let len = self.len() as i64;
        if head < i64::MIN / 2 + len {
            return Err("newest bucket is implausibly old".into());
        }
        let mut prev = self.floor;
        for b in head - len + 1..=head {
            let c = self.at(self.slot(b));
            sane(c, "a bucket")?;
            if c.good < prev.good || c.total < prev.total {
                return Err("cumulative counts decrease along the ring".into());
            }
            if c.good - prev.good > c.total - prev.total {
                return Err("a bucket has more good events than events".into());
            }
            prev = c;
        }
        Ok(())
    }

    /// Counts in the window of `width` ms ending at `now`.
    pub fn window(&self, now: i64, width: i64) -> Counts {
        let hi = now.div_euclid(self.res);
        let lo = (now - width).div_euclid(self.res);
        self.cum(hi).sub(self.cum(lo))
    }

    /// Counts from bucket of `start` (inclusive) to `now`.
    pub fn since(&self, start: i64, now: i64) -> Counts {
        let hi = now.div_euclid(self.res);
        let lo = start.div_euclid(self.res) - 1;
        self.cum(hi).sub(self.cum(lo))
    }

    /// Non-empty buckets as (index, good, total), oldest first: the compact form for storage.
    pub fn buckets(&self) -> Vec<(i64, u64, u64)> {
        let Some(head) = self.head else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let first = head - self.len() as i64 + 1;
        for b in first..=head {
            let c = self.cum(b).sub(self.cum(b - 1));
            if c.total > 0 {
                out.push((b, c.good, c.total));
            }
        }
        out
    }
}

/// How far in the future a restored bucket may start: clocks differ a little between hosts and
/// restarts, but a ring whose head is far ahead would stop counting until the clock caught up.
pub const MAX_CLOCK_SKEW_MS: i64 = 5 * 60 * 1000;
/// More events than any SLO records in its life (2^53: exact in an f64).
pub const MAX_EVENTS: u64 = 1 << 53;
/// Longest ring a level has (400 days at 100 ms would be more than any config makes).
const MAX_RING: usize = 1 << 24;

/// The ladder of bucket widths (ms) a level may use.
pub const LADDER: [i64; 8] = [
    100, 1_000, 10_000, 60_000, 300_000, 900_000, 3_600_000, 86_400_000,
];

/// The coarsest ladder width that is at most `width / 30` (and at most `cap`).
pub fn resolution_for(width: i64, cap: i64) -> i64 {
    let mut best = LADDER[0];
    for r in LADDER {
        if r * 30 <= width && r <= cap {
            best = r;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_in_windows() {
        let mut l = Level::new(1000, 10_000);
        for t in 0..20 {
            l.add(t * 1000 + 500, u64::from(t % 2 == 0), 1);
        }
        // Window of 5 s at 19.5 s: buckets 15..=19.
        assert_eq!(l.window(19_500, 5_000), Counts { good: 2, total: 5 });
        // Ahead of the data: the same buckets plus empty ones.
        assert_eq!(l.window(21_500, 5_000), Counts { good: 1, total: 3 });
        assert_eq!(l.window(100_000, 5_000), Counts::default());
    }

    #[test]
    fn late_and_expired_events() {
        let mut l = Level::new(1000, 5_000);
        assert!(l.add(10_000, 1, 1));
        assert!(l.add(8_000, 0, 1), "late but inside the ring");
        assert_eq!(l.window(10_000, 5_000), Counts { good: 1, total: 2 });
        assert!(!l.add(1_000, 1, 1), "older than the ring");
    }

    #[test]
    fn long_gaps_reset_the_ring() {
        let mut l = Level::new(1000, 5_000);
        l.add(0, 1, 1);
        l.add(1_000_000, 0, 1);
        assert_eq!(l.window(1_000_000, 5_000), Counts { good: 0, total: 1 });
        assert_eq!(l.buckets(), vec![(1000, 0, 1)]);
    }

    #[test]
    fn resolutions() {
        assert_eq!(resolution_for(300_000, i64::MAX), 10_000);
        assert_eq!(resolution_for(3_600_000, i64::MAX), 60_000);
        assert_eq!(resolution_for(30 * 86_400_000, 900_000), 900_000);
        assert_eq!(resolution_for(4_000, i64::MAX), 100);
    }
}
