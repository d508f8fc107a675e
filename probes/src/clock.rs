//! The one clock. Wall-clock time is read once, when a [`Clock`] is made, and from then on
//! follows tokio's monotonic clock. Everything that needs "now" — the scheduler's grid, SLO
//! buckets, alert timestamps, certificate expiry maths, state files — asks a `Clock` it was
//! given, so a test with paused tokio time (`start_paused = true`) moves the whole daemon's
//! notion of time with `tokio::time::advance`, wall clock included.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// A tokio instant paired with the wall-clock time it stands for.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base: Instant,
    /// Wall-clock time at `base`, since the Unix epoch.
    wall_base: Duration,
}

impl Clock {
    /// The system clock, read once now. The only place vantage reads the wall clock.
    pub fn system() -> Self {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Self::at(wall)
    }

    /// A clock whose current tokio instant stands for `wall` (since the Unix epoch): for tests
    /// that need a known date.
    pub fn at(wall: Duration) -> Self {
        Self {
            base: Instant::now(),
            wall_base: wall,
        }
    }

    /// Monotonic now (tokio time: paused in tests).
    pub fn now(&self) -> Instant {
        Instant::now()
    }

    /// Wall-clock time at `instant`, since the Unix epoch. Instants before the clock was made
    /// count backwards from its base.
    pub fn wall_at(&self, instant: Instant) -> Duration {
        match instant.checked_duration_since(self.base) {
            Some(after) => self.wall_base.saturating_add(after),
            None => self
                .wall_base
                .saturating_sub(self.base.saturating_duration_since(instant)),
        }
    }

    /// Wall-clock time now, since the Unix epoch.
    pub fn wall(&self) -> Duration {
        self.wall_at(self.now())
    }

    /// Unix milliseconds now.
    pub fn unix_ms(&self) -> i64 {
        i64::try_from(self.wall().as_millis()).unwrap_or(i64::MAX)
    }

    /// Unix seconds now, truncated.
    pub fn unix_secs(&self) -> i64 {
        i64::try_from(self.wall().as_secs()).unwrap_or(i64::MAX)
    }

    /// Unix seconds now, with a fraction.
    pub fn unix_f64(&self) -> f64 {
        self.wall().as_secs_f64()
    }

    /// The tokio instant of wall-clock time `wall` (since the Unix epoch); saturates at the
    /// clock's base for times before it.
    pub fn instant_of(&self, wall: Duration) -> Instant {
        self.base + wall.saturating_sub(self.wall_base)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn wall_time_follows_paused_tokio_time() {
        let clock = Clock::at(Duration::from_secs(1_700_000_000));
        assert_eq!(clock.unix_secs(), 1_700_000_000);
        tokio::time::advance(Duration::from_secs(90)).await;
        assert_eq!(clock.unix_secs(), 1_700_000_090);
        assert_eq!(clock.unix_ms(), 1_700_000_090_000);
        let later = clock.instant_of(Duration::from_secs(1_700_000_100));
        assert_eq!(later - clock.now(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn instants_before_the_base_count_backwards() {
        let earlier = Instant::now();
        tokio::time::advance(Duration::from_secs(5)).await;
        let clock = Clock::at(Duration::from_secs(100));
        assert_eq!(clock.wall_at(earlier), Duration::from_secs(95));
    }
}
