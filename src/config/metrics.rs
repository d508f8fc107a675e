//! `[metrics]` and a probe's `metrics = { ... }`: which costly per-probe families `/metrics`
//! exports. Both are off by default, so a default HTTP probe stays within 30 series.

use super::raw::RawMetrics;

/// The opt-in families one probe exports: `[metrics]`, overridden by the probe's own keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProbeMetrics {
    /// `probe_phase_latency_seconds`.
    pub phase_histograms: bool,
    /// `probe_latency_quantile_seconds`.
    pub quantiles: bool,
}

impl ProbeMetrics {
    /// `base` with whatever `raw` sets.
    pub fn with(self, raw: Option<&RawMetrics>) -> Self {
        let Some(raw) = raw else { return self };
        Self {
            phase_histograms: raw.phase_histograms.unwrap_or(self.phase_histograms),
            quantiles: raw.quantiles.unwrap_or(self.quantiles),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_keys_override_the_section() {
        let section = ProbeMetrics::default().with(Some(&RawMetrics {
            phase_histograms: Some(true),
            quantiles: None,
        }));
        assert_eq!(
            section,
            ProbeMetrics {
                phase_histograms: true,
                quantiles: false
            }
        );
        let probe = section.with(Some(&RawMetrics {
            phase_histograms: Some(false),
            quantiles: Some(true),
        }));
        assert_eq!(
            probe,
            ProbeMetrics {
                phase_histograms: false,
                quantiles: true
            }
        );
        assert_eq!(section.with(None), section);
    }
}
