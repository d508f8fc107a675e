//! The health check names a probe exports, bounded over its life.

use std::collections::BTreeSet;

use vantage_probes::HealthFacts;

/// Longest health check name exported, in bytes (longer names are cut at a character boundary).
pub const HEALTH_CHECK_NAME_MAX: usize = 128;
/// Most distinct health check names one probe exports over its life.
pub const HEALTH_CHECK_NAMES_MAX: usize = 64;

/// The health check names a probe exports: a target that invents names (a request ID, a
/// timestamp) would otherwise mint new series on every run, and one with 38 KB names would
/// bloat every scrape.
#[derive(Debug, Default)]
pub struct HealthCheckNames {
    admitted: BTreeSet<String>,
    /// Checks left out because the probe had used up its names (`probe_health_checks_dropped`).
    pub dropped: u64,
}

impl HealthCheckNames {
    /// Make `health`'s checks exportable: names cut to [`HEALTH_CHECK_NAME_MAX`] bytes, checks of
    /// one name merged with the worst status winning, and names beyond the probe's first
    /// [`HEALTH_CHECK_NAMES_MAX`] dropped and counted.
    pub fn admit(&mut self, health: &mut HealthFacts) {
        let mut kept: Vec<vantage_probes::HealthCheck> = Vec::with_capacity(health.checks.len());
        for mut check in std::mem::take(&mut health.checks) {
            truncate_at_char(&mut check.name, HEALTH_CHECK_NAME_MAX);
            if let Some(same) = kept.iter_mut().find(|k| k.name == check.name) {
                if check.value() < same.value() {
                    same.status = check.status;
                }
                continue;
            }
            if !self.admitted.contains(&check.name) {
                if self.admitted.len() >= HEALTH_CHECK_NAMES_MAX {
                    self.dropped += 1;
                    continue;
                }
                self.admitted.insert(check.name.clone());
            }
            kept.push(check);
        }
        health.checks = kept;
    }

    /// Whether this probe ever exported a health check (or dropped one).
    pub(super) fn any(&self) -> bool {
        !self.admitted.is_empty() || self.dropped > 0
    }
}

fn truncate_at_char(s: &mut String, max: usize) {
    if s.len() <= max {
        return;
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.truncate(cut);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, status: &str) -> vantage_probes::HealthCheck {
        vantage_probes::HealthCheck {
            name: name.to_string(),
            status: status.to_string(),
        }
    }

    #[test]
    fn health_checks_merge_worst_first_and_stay_bounded() {
        let mut names = HealthCheckNames::default();
        let mut h = HealthFacts {
            status: "pass".into(),
            checks: vec![
                check("db", "pass"),
                check("db", "fail"),
                check("db", "warn"),
                check("cache", "warn"),
                check("cache", "pass"),
            ],
        };
        names.admit(&mut h);
        assert_eq!(h.checks, [check("db", "fail"), check("cache", "warn")]);

        // Long names are cut at a character boundary; names that then agree are one check.
        let long = "é".repeat(100);
        let mut h = HealthFacts {
            status: "pass".into(),
            checks: vec![check(&long, "pass"), check(&format!("{long}x"), "fail")],
        };
        names.admit(&mut h);
        assert_eq!(h.checks.len(), 1);
        assert_eq!(h.checks[0].name.len(), 128);
        assert_eq!(h.checks[0].status, "fail");

        // 3 names so far; run after run of fresh names fills the probe's 64 and no more.
        for run in 0..10 {
            let mut h = HealthFacts {
                status: "pass".into(),
                checks: (0..256)
                    .map(|i| check(&format!("r{run}-{i}"), "pass"))
                    .chain(std::iter::once(check("db", "pass")))
                    .collect(),
            };
            names.admit(&mut h);
            assert!(h.checks.iter().any(|c| c.name == "db"), "known names stay");
        }
        assert_eq!(names.admitted.len(), HEALTH_CHECK_NAMES_MAX);
        assert_eq!(names.dropped, 10 * 256 - (64 - 3));
    }
}
