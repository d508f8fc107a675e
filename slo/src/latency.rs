//! Mergeable latency histograms in HDR style: log-linear buckets with 128 sub-buckets per power
//! of two, so any recorded value is known within 1/128 (< 1%) relative error. Per-bucket
//! histograms are kept sparse (a probe records a handful of runs per bucket), and merged into a
//! dense one only to answer a percentile.

use serde::{Deserialize, Serialize};

const SUB_BITS: u32 = 7;
const SUB: u64 = 1 << SUB_BITS;

/// Index of the log-linear bucket holding `micros`.
pub fn index(micros: u64) -> u16 {
    if micros < SUB {
        return micros as u16;
    }
    let exp = 63 - micros.leading_zeros() - SUB_BITS + 1;
    let sub = (micros >> (exp - 1)) - SUB;
    (u64::from(exp) * SUB + sub) as u16
}

/// The highest value (µs) of bucket `i`: a percentile is reported as its bucket's upper edge.
pub fn upper(i: u16) -> u64 {
    let i = u64::from(i);
    if i < SUB {
        return i;
    }
    let exp = i / SUB;
    let sub = i % SUB;
    ((SUB + sub + 1) << (exp - 1)) - 1
}

/// A sparse histogram: (bucket index, count), sorted by index.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sparse(pub Vec<(u16, u32)>);

impl Sparse {
    pub fn record(&mut self, micros: u64) {
        let i = index(micros);
        match self.0.binary_search_by_key(&i, |(k, _)| *k) {
            Ok(p) => self.0[p].1 += 1,
            Err(p) => self.0.insert(p, (i, 1)),
        }
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }
}

/// A dense merge of sparse histograms, for percentiles.
#[derive(Debug, Default)]
pub struct Merged {
    counts: std::collections::BTreeMap<u16, u64>,
    total: u64,
}

impl Merged {
    pub fn add(&mut self, s: &Sparse) {
        for (i, n) in &s.0 {
            *self.counts.entry(*i).or_default() += u64::from(*n);
            self.total += u64::from(*n);
        }
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    /// The `p`-th percentile (0–100) in µs, or `None` when empty.
    pub fn percentile(&self, p: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((p / 100.0) * self.total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in &self.counts {
            seen += n;
            if seen >= rank {
                return Some(upper(*i));
            }
        }
        self.counts.keys().last().map(|i| upper(*i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_error_under_one_percent() {
        for v in [
            1u64,
            50,
            127,
            128,
            129,
            1000,
            12_345,
            499_999,
            500_000,
            59_999_999,
            3_600_000_000,
        ] {
            let u = upper(index(v));
            assert!(u >= v, "{v} -> {u}");
            assert!((u - v) as f64 <= v as f64 / 100.0 + 1.0, "{v} -> {u}");
            assert_eq!(index(u), index(v));
        }
    }

    #[test]
    fn percentiles() {
        let mut s = Sparse::default();
        for v in 1..=100u64 {
            s.record(v * 1000);
        }
        let mut m = Merged::default();
        m.add(&s);
        let p95 = m.percentile(95.0).unwrap();
        assert!((95_000..=95_000 + 950).contains(&p95), "{p95}");
        assert_eq!(Merged::default().percentile(50.0), None);
    }
}
