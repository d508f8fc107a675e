//! What an SLO promises: objective, period, SLI, budgeting, alert policy. Validated values only.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The target fraction of good events, strictly between 0 and 1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Objective(f64);

impl Objective {
    /// From a percentage (`99.9`). `Err` explains what is wrong.
    pub fn from_percent(p: f64) -> Result<Self, String> {
        if !p.is_finite() || p <= 0.0 || p >= 100.0 {
            return Err(format!(
                "objective {p} must be a percentage strictly between 0 and 100 (100 leaves no error budget)"
            ));
        }
        Ok(Self(p / 100.0))
    }

    pub fn ratio(self) -> f64 {
        self.0
    }

    pub fn percent(self) -> f64 {
        self.0 * 100.0
    }

    /// The error budget B = 1 − S.
    pub fn budget(self) -> f64 {
        1.0 - self.0
    }
}

/// A calendar unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CalendarUnit {
    /// ISO weeks, Monday 00:00 local time.
    Week,
    Month,
}

/// The SLO period.
#[derive(Debug, Clone, PartialEq)]
pub enum Period {
    Rolling(Duration),
    Calendar {
        unit: CalendarUnit,
        tz: jiff::tz::TimeZone,
    },
}

impl Period {
    /// A stable text for identity (fingerprints, persisted state): never a `Debug` string,
    /// which would change with a dependency's internals.
    pub fn canonical(&self) -> String {
        match self {
            Period::Rolling(d) => format!("rolling:{}ms", d.as_millis()),
            Period::Calendar { unit, tz } => format!(
                "calendar:{}:{}",
                match unit {
                    CalendarUnit::Week => "week",
                    CalendarUnit::Month => "month",
                },
                tz.iana_name().unwrap_or("UTC")
            ),
        }
    }
}

/// What makes an event good.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Sli {
    /// The run succeeded.
    Availability,
    /// The run succeeded within `threshold`.
    Latency { threshold: Duration },
    /// As `Latency`, and the `percentile` of run durations over a window is reported against
    /// `threshold` (from mergeable histograms).
    LatencyPercentile {
        percentile: f64,
        threshold: Duration,
    },
}

/// Counting runs, or counting time slices.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Budgeting {
    Occurrences,
    /// A slice is good when its good/total ratio is at least `target`; a slice without runs is
    /// missing, neither good nor bad.
    Timeslices {
        slice: Duration,
        target: f64,
    },
}

/// One multiwindow burn-rate pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertPair {
    pub severity: String,
    #[serde(with = "duration_secs")]
    pub long: Duration,
    #[serde(with = "duration_secs")]
    pub short: Duration,
    pub burn_rate: f64,
}

impl AlertPair {
    /// Whether the pair can ever fire: an error ratio cannot exceed 1.
    pub fn can_fire(&self, objective: Objective) -> bool {
        self.burn_rate * objective.budget() <= 1.0
    }

    /// Fraction of the period's budget consumed when the pair starts firing.
    pub fn budget_consumed_at_firing(&self, period: Duration) -> f64 {
        self.burn_rate * self.long.as_secs_f64() / period.as_secs_f64()
    }

    /// Time for a total outage to trip the long window from a clean state: θ·W/e with e = 1.
    pub fn detection_time(&self, objective: Objective) -> Duration {
        Duration::from_secs_f64(self.long.as_secs_f64() * self.burn_rate * objective.budget())
    }
}

mod duration_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

const DAY: u64 = 86_400;

/// The SRE Workbook's policy for a 30-day period (Table 5-8), scaled by `period / 30d`.
pub fn default_policy(period: Duration) -> Vec<AlertPair> {
    let scale = period.as_secs_f64() / (30 * DAY) as f64;
    let pair = |severity: &str, long: u64, short: u64, burn_rate: f64| AlertPair {
        severity: severity.to_string(),
        long: Duration::from_secs_f64(long as f64 * scale),
        short: Duration::from_secs_f64(short as f64 * scale),
        burn_rate,
    };
    vec![
        pair("critical", 3600, 300, 14.4),
        pair("critical", 6 * 3600, 1800, 6.0),
        pair("warning", DAY, 2 * 3600, 3.0),
        pair("warning", 3 * DAY, 6 * 3600, 1.0),
    ]
}

/// The fixed reporting windows (SPEC §4.1), besides the period.
pub const WINDOWS: [(&str, Duration); 7] = [
    ("5m", Duration::from_secs(300)),
    ("30m", Duration::from_secs(1800)),
    ("1h", Duration::from_secs(3600)),
    ("2h", Duration::from_secs(7200)),
    ("6h", Duration::from_secs(6 * 3600)),
    ("1d", Duration::from_secs(DAY)),
    ("3d", Duration::from_secs(3 * DAY)),
];

/// A whole SLO definition.
#[derive(Debug, Clone, PartialEq)]
pub struct SloSpec {
    pub objective: Objective,
    pub period: Period,
    pub sli: Sli,
    pub budgeting: Budgeting,
    /// A burn-rate window with fewer events never fires.
    pub min_events: u64,
    pub alerts: Vec<AlertPair>,
}

/// A short human name for a window length: `5m`, `1h`, `30d`, `20s`.
pub fn window_name(d: Duration) -> String {
    let s = d.as_secs();
    if d.subsec_millis() != 0 || s == 0 {
        return format!("{}ms", d.as_millis());
    }
    for (unit, secs) in [("d", DAY), ("h", 3600), ("m", 60)] {
        if s % secs == 0 {
            return format!("{}{unit}", s / secs);
        }
    }
    format!("{s}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objectives() {
        assert!((Objective::from_percent(99.9).unwrap().budget() - 0.001).abs() < 1e-12);
        assert!(Objective::from_percent(100.0).is_err());
        assert!(Objective::from_percent(0.0).is_err());
        assert!(Objective::from_percent(f64::NAN).is_err());
    }

    #[test]
    fn workbook_table_5_8() {
        // Burn rates and budget consumed at firing for a 30-day period.
        let period = Duration::from_secs(30 * DAY);
        let policy = default_policy(period);
        let consumed: Vec<f64> = policy
            .iter()
            .map(|p| p.budget_consumed_at_firing(period))
            .collect();
        let want = [0.02, 0.05, 0.10, 0.10];
        for (c, w) in consumed.iter().zip(want) {
            assert!((c - w).abs() < 1e-9, "{consumed:?}");
        }
        let rates: Vec<f64> = policy.iter().map(|p| p.burn_rate).collect();
        assert_eq!(rates, [14.4, 6.0, 3.0, 1.0]);
        // Detection time of a 100% outage at 99.9%: θ·W/e.
        let s = Objective::from_percent(99.9).unwrap();
        assert!((policy[0].detection_time(s).as_secs_f64() - 51.84).abs() < 1e-9);
        assert!((policy[1].detection_time(s).as_secs_f64() - 129.6).abs() < 1e-9);
    }

    #[test]
    fn pairs_that_cannot_fire() {
        let ninety = Objective::from_percent(90.0).unwrap();
        let p = &default_policy(Duration::from_secs(30 * DAY))[0];
        assert!(!p.can_fire(ninety), "14.4 × 10% > 1");
        assert!(p.can_fire(Objective::from_percent(99.0).unwrap()));
    }

    #[test]
    fn scaled_policy_and_names() {
        let week = default_policy(Duration::from_secs(7 * DAY));
        assert_eq!(week[0].long, Duration::from_secs(840));
        assert_eq!(window_name(Duration::from_secs(300)), "5m");
        assert_eq!(window_name(Duration::from_secs(30 * DAY)), "30d");
        assert_eq!(window_name(Duration::from_secs(20)), "20s");
        assert_eq!(window_name(Duration::from_millis(1500)), "1500ms");
    }
}
