//! Periods and the budget arithmetic of SPEC §4.2. Calendar periods are computed in the SLO's
//! IANA time zone with jiff, so a month that crosses a DST change is 1 hour shorter or longer.

use jiff::{Span, Timestamp, ToSpan, Zoned};

use crate::objective::{CalendarUnit, Period};

/// The period that contains `now` (Unix ms): its start and its full length, in ms.
pub fn period_bounds(period: &Period, now: i64) -> (i64, i64) {
    match period {
        Period::Rolling(d) => {
            let len = d.as_millis() as i64;
            (now - len, len)
        }
        Period::Calendar { unit, tz } => {
            let Ok(ts) = Timestamp::from_millisecond(now) else {
                return (now, 1);
            };
            let zoned = ts.to_zoned(tz.clone());
            match calendar_start(&zoned, *unit) {
                Some((start, end)) => {
                    let s = start.timestamp().as_millisecond();
                    let e = end.timestamp().as_millisecond();
                    (s, (e - s).max(1))
                }
                None => (now, 1),
            }
        }
    }
}

fn calendar_start(z: &Zoned, unit: CalendarUnit) -> Option<(Zoned, Zoned)> {
    let day = z.start_of_day().ok()?;
    let (start, step): (Zoned, Span) = match unit {
        CalendarUnit::Month => (day.first_of_month().ok()?.start_of_day().ok()?, 1.month()),
        CalendarUnit::Week => {
            let back = i64::from(day.weekday().to_monday_zero_offset());
            (
                day.checked_sub(back.days()).ok()?.start_of_day().ok()?,
                1.week(),
            )
        }
    };
    let end = start.checked_add(step).ok()?.start_of_day().ok()?;
    Some((start, end))
}

/// Budget numbers for one window.
pub fn error_ratio(good: u64, total: u64) -> Option<f64> {
    (total > 0).then(|| 1.0 - good as f64 / total as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objective::CalendarUnit;

    fn ms(s: &str, tz: &str) -> i64 {
        let dt: jiff::civil::DateTime = s.parse().unwrap();
        dt.to_zoned(jiff::tz::TimeZone::get(tz).unwrap())
            .unwrap()
            .timestamp()
            .as_millisecond()
    }

    #[test]
    fn calendar_month_across_dst() {
        let tz = jiff::tz::TimeZone::get("Europe/Amsterdam").unwrap();
        let period = Period::Calendar {
            unit: CalendarUnit::Month,
            tz,
        };
        // March 2026: DST starts on the 29th, so the month is 31 days minus an hour.
        let (start, len) = period_bounds(&period, ms("2026-03-15T12:00", "Europe/Amsterdam"));
        assert_eq!(start, ms("2026-03-01T00:00", "Europe/Amsterdam"));
        assert_eq!(len, (31 * 24 - 1) * 3_600_000);
        // October 2026: DST ends on the 25th: an hour longer.
        let (_, len) = period_bounds(&period, ms("2026-10-31T23:59", "Europe/Amsterdam"));
        assert_eq!(len, (31 * 24 + 1) * 3_600_000);
    }

    #[test]
    fn calendar_week_starts_monday_local() {
        let tz = jiff::tz::TimeZone::get("America/New_York").unwrap();
        let period = Period::Calendar {
            unit: CalendarUnit::Week,
            tz,
        };
        // Sunday 2026-11-22 10:00 local belongs to the week of Monday 2026-11-16.
        let (start, len) = period_bounds(&period, ms("2026-11-22T10:00", "America/New_York"));
        assert_eq!(start, ms("2026-11-16T00:00", "America/New_York"));
        assert_eq!(len, 7 * 24 * 3_600_000);
    }

    #[test]
    fn rolling() {
        let p = Period::Rolling(std::time::Duration::from_secs(3600));
        assert_eq!(
            period_bounds(&p, 10_000_000),
            (10_000_000 - 3_600_000, 3_600_000)
        );
    }
}
