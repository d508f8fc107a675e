use std::time::Duration;

use proptest::prelude::*;

use super::*;

const T0: i64 = 1_790_000_000_000; // a Unix ms in 2026

fn spec(objective: f64, period: Duration) -> SloSpec {
    SloSpec {
        objective: Objective::from_percent(objective).unwrap(),
        period: Period::Rolling(period),
        sli: Sli::Availability,
        budgeting: Budgeting::Occurrences,
        min_events: 0,
        alerts: default_policy(period),
    }
}

/// Recount events the slow way, with the same bucket alignment as the engine.
fn brute(events: &[(i64, bool)], now: i64, width: i64, res: i64) -> (u64, u64) {
    let hi = now.div_euclid(res);
    let lo = (now - width).div_euclid(res);
    let mut good = 0;
    let mut total = 0;
    for (t, g) in events {
        let b = t.div_euclid(res);
        if b > lo && b <= hi {
            total += 1;
            good += u64::from(*g);
        }
    }
    (good, total)
}

fn check_all(slo: &mut Slo, events: &[(i64, bool)], now: i64) {
    let report = slo.evaluate(now);
    for w in &report.windows {
        let width = (w.seconds * 1000.0) as i64;
        let res = window::resolution_for(width, RES_CAP);
        let (good, total) = brute(events, now, width, res);
        assert_eq!((w.good, w.total), (good, total), "window {}", w.name);
        match w.sli {
            Some(s) => assert!((s - good as f64 / total as f64).abs() < 1e-12),
            None => assert_eq!(total, 0),
        }
    }
    let period_width = (report.period.seconds * 1000.0) as i64;
    let res = window::resolution_for(period_width, RES_CAP);
    let (good, total) = brute(events, now, period_width, res);
    assert_eq!(
        (report.period.good, report.period.total),
        (good, total),
        "period"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Events in any order within a few minutes: every window equals a recount.
    #[test]
    fn shuffled_events_recount(
        events in proptest::collection::vec((0i64..240_000, any::<bool>()), 0..400),
        after in 0i64..600_000,
    ) {
        let mut slo = Slo::new(spec(99.0, Duration::from_secs(30 * 86_400)));
        let events: Vec<(i64, bool)> = events.into_iter().map(|(t, g)| (T0 + t, g)).collect();
        for (t, g) in &events {
            slo.record(*t, *g, Duration::from_millis(5));
        }
        check_all(&mut slo, &events, T0 + 240_000 + after);
    }

    /// Events in time order over days, with gaps: every window and the period equal a recount.
    #[test]
    fn days_of_events_recount(
        gaps in proptest::collection::vec((1i64..3_600_000, any::<bool>()), 1..300),
        tail in 0i64..7_200_000,
    ) {
        let mut slo = Slo::new(spec(99.9, Duration::from_secs(7 * 86_400)));
        let mut t = T0;
        let mut events = Vec::new();
        for (gap, good) in gaps {
            t += gap * 3; // up to 3 h apart: spans several days
            slo.record(t, good, Duration::from_millis(5));
            events.push((t, good));
        }
        check_all(&mut slo, &events, t + tail);
    }
}

#[test]
fn numbers_of_spec_4_2() {
    // 90% objective, 20% failing: burn 2, budget remaining −1, exactly.
    let mut slo = Slo::new(spec(90.0, Duration::from_secs(30 * 86_400)));
    for i in 0..100 {
        slo.record(T0 + i * 1000, i % 5 != 0, Duration::from_millis(5));
    }
    let r = slo.evaluate(T0 + 100_000);
    let five = &r.windows[0];
    assert_eq!((five.good, five.total), (80, 100));
    assert!((five.burn_rate.unwrap() - 2.0).abs() < 1e-9);
    assert!((r.budget_consumed.unwrap() - 2.0).abs() < 1e-9);
    assert!(
        (r.budget_remaining.unwrap() + 1.0).abs() < 1e-9,
        "not clamped"
    );
    assert_eq!(r.exhaustion_seconds, Some(0.0));
    // An empty window has no SLI.
    let later = slo.evaluate(T0 + 10 * 86_400_000);
    assert_eq!(later.windows[0].sli, None);
    assert_eq!(later.windows[0].burn_rate, None);
}

#[test]
fn time_to_exhaustion() {
    // 99%, 0.5% failing in the last hour only, period otherwise clean.
    let mut slo = Slo::new(spec(99.0, Duration::from_secs(30 * 86_400)));
    for i in 0..2000 {
        slo.record(
            T0 + i * 1000,
            i % 200 != 0 || i < 1000,
            Duration::from_millis(5),
        );
    }
    let r = slo.evaluate(T0 + 2_000_000);
    let burn = r.windows[2].burn_rate.unwrap();
    let remaining = r.budget_remaining.unwrap();
    let want = remaining * 30.0 * 86_400.0 / burn;
    assert!((r.exhaustion_seconds.unwrap() - want).abs() < 1e-6);
}

#[test]
fn workbook_detection_time_for_a_total_outage() {
    // One run a second; 99.9%; the 1h/14.4 pair should fire ≈ 51.8 s into a 100% outage.
    let mut slo = Slo::new(spec(99.9, Duration::from_secs(30 * 86_400)));
    let outage = T0 + 2 * 3_600_000;
    let mut t = T0;
    while t < outage {
        slo.record(t, true, Duration::from_millis(5));
        t += 1000;
    }
    let mut fired_at = None;
    while t < outage + 600_000 {
        slo.record(t, false, Duration::from_millis(5));
        let r = slo.evaluate(t);
        if r.alerts[0].firing {
            fired_at = Some(t - outage);
            break;
        }
        t += 1000;
    }
    let fired = fired_at.expect("the page fires") as f64 / 1000.0;
    assert!(
        (50.0..=54.0).contains(&fired),
        "fired after {fired} s, θ·W/e = 51.8 s"
    );
    let r = slo.evaluate(t);
    assert!(
        r.alerts[0].explanation().starts_with("firing: 1h burn"),
        "{}",
        r.alerts[0].explanation()
    );
}

#[test]
fn min_events_guards_low_traffic() {
    let mut s = spec(90.0, Duration::from_secs(30 * 86_400));
    s.min_events = 5;
    s.alerts = vec![AlertPair {
        severity: "critical".into(),
        long: Duration::from_secs(20),
        short: Duration::from_secs(4),
        burn_rate: 2.0,
    }];
    let mut slo = Slo::new(s);
    slo.record(T0, false, Duration::ZERO);
    slo.record(T0 + 1000, false, Duration::ZERO);
    let r = slo.evaluate(T0 + 1500);
    assert!(!r.alerts[0].firing);
    assert!(
        r.alerts[0]
            .explanation()
            .contains("fewer than min_events 5"),
        "{}",
        r.alerts[0].explanation()
    );
    for i in 2..8 {
        slo.record(T0 + i * 500, false, Duration::ZERO);
    }
    let r = slo.evaluate(T0 + 3600);
    assert!(r.alerts[0].firing, "{}", r.alerts[0].explanation());
}

#[test]
fn latency_sli_and_percentile() {
    let mut s = spec(90.0, Duration::from_secs(86_400));
    s.sli = Sli::LatencyPercentile {
        percentile: 95.0,
        threshold: Duration::from_millis(500),
    };
    let mut slo = Slo::new(s);
    for i in 0..100i64 {
        // 1 ms … 100 ms, and every tenth run takes 1 s.
        let d = if i % 10 == 0 {
            Duration::from_secs(1)
        } else {
            Duration::from_millis(i as u64 + 1)
        };
        slo.record(T0 + i * 100, true, d);
    }
    let r = slo.evaluate(T0 + 10_000);
    assert_eq!((r.windows[0].good, r.windows[0].total), (90, 100));
    let p95 = r.windows[0].percentile_seconds.unwrap();
    assert!((1.0..1.01).contains(&p95), "{p95}");
    assert_eq!(r.percentile_met, Some(false));
}

#[test]
fn timeslices_count_slices() {
    let mut s = spec(90.0, Duration::from_secs(86_400));
    s.budgeting = Budgeting::Timeslices {
        slice: Duration::from_secs(60),
        target: 1.0,
    };
    let mut slo = Slo::new(s);
    let start = T0 - T0.rem_euclid(60_000);
    // Minute 0: all good. Minute 1: one bad. Minute 2: no runs. Minute 3: good.
    for i in 0..6 {
        slo.record(start + i * 10_000, true, Duration::ZERO);
    }
    for i in 0..6 {
        slo.record(start + 60_000 + i * 10_000, i != 3, Duration::ZERO);
    }
    slo.record(start + 180_000, true, Duration::ZERO);
    let r = slo.evaluate(start + 240_000);
    assert_eq!((r.windows[0].good, r.windows[0].total), (2, 3));
    assert!(r.missing_slices.unwrap() >= 1);
}

#[test]
fn calendar_period_starts_at_local_midnight() {
    let tz = jiff::tz::TimeZone::get("Asia/Kolkata").unwrap();
    let mut s = spec(99.0, Duration::from_secs(86_400));
    s.period = Period::Calendar {
        unit: CalendarUnit::Month,
        tz: tz.clone(),
    };
    s.alerts = default_policy(Duration::from_secs(30 * 86_400));
    let mut slo = Slo::new(s);
    let month_start: i64 = "2026-11-01T00:00"
        .parse::<jiff::civil::DateTime>()
        .unwrap()
        .to_zoned(tz)
        .unwrap()
        .timestamp()
        .as_millisecond();
    slo.record(month_start - 60_000, false, Duration::ZERO); // October, local time
    slo.record(month_start + 60_000, true, Duration::ZERO);
    let r = slo.evaluate(month_start + 3_600_000);
    assert_eq!(&*r.period.name, "month");
    assert_eq!(
        (r.period.good, r.period.total),
        (1, 1),
        "the October run is not in November"
    );
    assert_eq!(r.period.seconds, 30.0 * 86_400.0);
}

#[test]
fn state_round_trips_and_memory_stays_small() {
    let mut slo = Slo::new(spec(99.9, Duration::from_secs(30 * 86_400)));
    for i in 0..5000 {
        slo.record(T0 + i * 1000, i % 7 != 0, Duration::from_millis(3));
    }
    let saved = serde_json::to_string(slo.state()).unwrap();
    let mut fresh = Slo::new(spec(99.9, Duration::from_secs(30 * 86_400)));
    assert!(fresh.restore(serde_json::from_str(&saved).unwrap()));
    assert_eq!(fresh.evaluate(T0 + 5_000_000), slo.evaluate(T0 + 5_000_000));
    let other = Slo::new(spec(99.9, Duration::from_secs(7 * 86_400)));
    let mut other = other;
    assert!(
        !other.restore(serde_json::from_str(&saved).unwrap()),
        "a different shape is refused"
    );
    assert!(
        slo.memory_bytes() <= 64 * 1024,
        "{} bytes",
        slo.memory_bytes()
    );
}

/// A saved state, edited as JSON the way a damaged or hostile file would be.
fn edited_state(edit: impl FnOnce(&mut serde_json::Value)) -> State {
    let mut slo = Slo::new(spec(99.0, Duration::from_secs(30 * 86_400)));
    for i in 0..50 {
        slo.record(T0 + i * 1000, i % 7 != 0, Duration::from_millis(5));
    }
    let mut v = serde_json::to_value(slo.state()).unwrap();
    edit(&mut v);
    serde_json::from_value(v).unwrap()
}

#[test]
fn restore_refuses_inconsistent_states() {
    let fresh = || Slo::new(spec(99.0, Duration::from_secs(30 * 86_400)));
    // Unchanged: accepted.
    let ok = edited_state(|_| {});
    assert_eq!(ok.validate(T0 + 60_000), Ok(()));
    assert!(fresh().restore(ok));
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "ring arrays differ",
            Box::new(|v| {
                v["levels"][0]["cum_good"].as_array_mut().unwrap().pop();
            }),
        ),
        (
            "good events of",
            Box::new(|v| {
                let n = v["levels"][0]["cum_total"].as_array().unwrap().len();
                for i in 0..n {
                    v["levels"][0]["cum_good"][i] = serde_json::json!(1_000_000u64);
                }
            }),
        ),
        (
            "not a plausible count",
            Box::new(|v| {
                v["levels"][1]["floor"] =
                    serde_json::json!({"good": u64::MAX - 1, "total": u64::MAX});
            }),
        ),
        (
            "future",
            Box::new(|v| {
                v["levels"][0]["head"] = serde_json::json!(i64::MAX / 1_000_000);
            }),
        ),
        (
            "bucket width",
            Box::new(|v| v["levels"][0]["res"] = serde_json::json!(0)),
        ),
    ];
    for (want, edit) in cases {
        let state = edited_state(edit);
        let err = state.validate(T0 + 60_000).unwrap_err();
        assert!(err.contains(want), "{want}: {err}");
        let mut slo = fresh();
        if want != "future" {
            // A future head is only detectable against the clock; the rest never gets in.
            assert!(!slo.restore(state), "{want}: restored");
        }
        // Whatever happened, evaluating never panics.
        slo.evaluate(T0 + 120_000);
    }
}

#[test]
fn counts_bad_never_underflows() {
    let c = window::Counts { good: 5, total: 3 };
    assert_eq!(c.bad(), 0);
}
