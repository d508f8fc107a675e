//! A fixed-bucket histogram that the store owns and `/metrics` reads directly: plain counts
//! under the probe's record lock, no allocation and no lock of its own (prometheus-client's
//! `Histogram` keeps its own lock and does not expose its bucket counts).

/// Counts of observations `≤` each bound (not cumulative; [`Buckets::cumulative`] adds them
/// up), plus those above the last bound, their sum and number.
#[derive(Debug, Clone, PartialEq)]
pub struct Buckets<const N: usize> {
    bounds: &'static [f64; N],
    counts: [u64; N],
    sum: f64,
    count: u64,
}

impl<const N: usize> Buckets<N> {
    pub fn new(bounds: &'static [f64; N]) -> Self {
        Self {
            bounds,
            counts: [0; N],
            sum: 0.0,
            count: 0,
        }
    }

    /// Count one observation: it falls in the first bucket whose bound is `≥ v` (Prometheus'
    /// `le`), or only in `+Inf`. A NaN counts in `+Inf` and leaves the sum alone.
    pub fn observe(&mut self, v: f64) {
        if let Some(i) = self.bounds.iter().position(|b| v <= *b) {
            self.counts[i] += 1;
        }
        if !v.is_nan() {
            self.sum += v;
        }
        self.count += 1;
    }

    pub fn bounds(&self) -> &'static [f64; N] {
        self.bounds
    }

    /// Observations `≤` each bound, in bound order.
    pub fn cumulative(&self) -> [u64; N] {
        let mut acc = 0;
        self.counts.map(|c| {
            acc += c;
            acc
        })
    }

    pub fn sum(&self) -> f64 {
        self.sum
    }

    pub fn count(&self) -> u64 {
        self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_le_bucket() {
        static B: [f64; 3] = [0.1, 1.0, 5.0];
        let mut h = Buckets::new(&B);
        for v in [0.05, 0.1, 0.5, 1.0, 7.0, f64::NAN] {
            h.observe(v);
        }
        assert_eq!(h.cumulative(), [2, 4, 4]);
        assert_eq!(h.count(), 6);
        assert!((h.sum() - 8.65).abs() < 1e-9);
    }
}
