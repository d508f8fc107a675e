//! Inline SVG charts for the status page: no script, no fonts or files from elsewhere. Colours
//! come from the page's CSS classes, so light and dark follow `prefers-color-scheme`. Every text
//! that reaches a chart is escaped by the caller's `esc`.

use std::fmt::Write as _;

use crate::daemon::history::RunPoint;
use crate::server::status_page::esc;

/// "3.2 ms", "1.40 s".
pub fn dur(secs: f64) -> String {
    if !secs.is_finite() {
        "–".into()
    } else if secs >= 1.0 {
        format!("{secs:.2} s")
    } else {
        format!("{:.1} ms", secs * 1000.0)
    }
}

/// "45 s", "12 min", "3.5 h", "2.1 d".
pub fn span(secs: f64) -> String {
    let s = secs.max(0.0);
    if s < 90.0 {
        format!("{s:.0} s")
    } else if s < 5400.0 {
        format!("{:.0} min", s / 60.0)
    } else if s < 172_800.0 {
        format!("{:.1} h", s / 3600.0)
    } else {
        format!("{:.1} d", s / 86_400.0)
    }
}

/// The span from `from` to `to` (Unix ms), whatever the stored values: a damaged state file
/// must not overflow the arithmetic.
pub fn between(from: i64, to: i64) -> String {
    span(to.saturating_sub(from) as f64 / 1000.0)
}

/// UTC date and time of Unix ms, e.g. `2026-11-22 04:36:53Z`.
pub fn utc(ms: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => "?".into(),
    }
}

/// One cell per recent run, oldest left; missing runs are grey. `slots` cells wide.
pub fn history_bar(runs: &[RunPoint], slots: usize, now_ms: i64) -> String {
    let (cell, gap, h) = (5, 2, 18);
    let width = slots * (cell + gap);
    let mut out = format!(
        "<svg class=\"history\" viewBox=\"0 0 {width} {h}\" width=\"{width}\" height=\"{h}\" preserveAspectRatio=\"none\" role=\"img\" aria-label=\"last {n} runs\">",
        n = runs.len().min(slots)
    );
    let shown = &runs[runs.len().saturating_sub(slots)..];
    let empty = slots - shown.len();
    for i in 0..empty {
        let _ = write!(
            out,
            "<rect class=\"none\" x=\"{}\" y=\"0\" width=\"{cell}\" height=\"{h}\" rx=\"1\"/>",
            i * (cell + gap)
        );
    }
    for (i, r) in shown.iter().enumerate() {
        let class = if r.success { "ok" } else { "bad" };
        let what = if r.success {
            "ok".to_string()
        } else {
            r.reason.map_or("failed", |x| x.as_str()).to_string()
        };
        let _ = write!(
            out,
            "<rect class=\"{class}\" x=\"{}\" y=\"0\" width=\"{cell}\" height=\"{h}\" rx=\"1\"><title>{} ago: {} in {}</title></rect>",
            (empty + i) * (cell + gap),
            between(r.at_ms, now_ms),
            esc(&what),
            dur(f64::from(r.duration_us) / 1e6),
        );
    }
    out.push_str("</svg>");
    out
}

/// A small line of `values` (oldest first), scaled to its own range.
pub fn sparkline(values: &[f64], class: &str, label: &str) -> String {
    let (w, h) = (120.0, 28.0);
    let mut out = format!(
        "<svg class=\"spark {class}\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"{}\">",
        esc(label)
    );
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if finite.len() >= 2 {
        let lo = finite.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let range = if hi > lo { hi - lo } else { 1.0 };
        let step = w / (values.len() - 1) as f64;
        let mut path = String::new();
        let mut pen_up = true;
        for (i, v) in values.iter().enumerate() {
            if !v.is_finite() {
                pen_up = true;
                continue;
            }
            let x = i as f64 * step;
            let y = h - 2.0 - (v - lo) / range * (h - 4.0);
            let _ = write!(path, "{}{x:.1},{y:.1} ", if pen_up { "M" } else { "L" });
            pen_up = false;
        }
        let _ = write!(out, "<path d=\"{}\"/>", path.trim_end());
    } else {
        let _ = write!(
            out,
            "<line class=\"empty\" x1=\"0\" y1=\"{y}\" x2=\"{w}\" y2=\"{y}\"/>",
            y = h / 2.0
        );
    }
    out.push_str("</svg>");
    out
}

/// Phase names as drawn, plus the time outside any phase (scheduling, redirects' overhead).
pub const PHASES: [&str; 6] = [
    "resolve",
    "connect",
    "tls",
    "processing",
    "transfer",
    "other",
];

/// Stacked bars, one per run: each phase's share of the run's duration. Failed runs are marked
/// under their bar.
pub fn latency_chart(runs: &[RunPoint]) -> String {
    let (w, h, left, bottom) = (960.0, 220.0, 72.0, 16.0);
    let plot_h = h - bottom - 8.0;
    let max_us = runs.iter().map(|r| r.duration_us).max().unwrap_or(0).max(1) as f64;
    let mut out = format!(
        "<svg id=\"latency-chart\" class=\"chart latency\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"latency per run by phase\">"
    );
    for frac in [0.0, 0.5, 1.0] {
        let y = 8.0 + plot_h * (1.0 - frac);
        let _ = write!(
            out,
            "<line class=\"grid\" x1=\"{left}\" y1=\"{y:.1}\" x2=\"{w}\" y2=\"{y:.1}\"/><text class=\"axis\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            left - 4.0,
            y + 4.0,
            dur(max_us * frac / 1e6)
        );
    }
    // At least 30 slots, newest at the right: a young probe's few runs are not drawn as slabs.
    let slots = runs.len().max(30);
    let slot = (w - left) / slots as f64;
    let bar = (slot * 0.75).max(1.0);
    let first = slots - runs.len();
    for (i, r) in runs.iter().enumerate() {
        let x = left + (first + i) as f64 * slot + (slot - bar) / 2.0;
        let mut parts: Vec<u32> = r.phases_us.to_vec();
        let sum: u64 = parts.iter().map(|p| u64::from(*p)).sum();
        parts.push(u32::try_from(u64::from(r.duration_us).saturating_sub(sum)).unwrap_or(0));
        let mut y = 8.0 + plot_h;
        for (k, us) in parts.iter().enumerate() {
            if *us == 0 {
                continue;
            }
            let ph = f64::from(*us) / max_us * plot_h;
            y -= ph;
            let _ = write!(
                out,
                "<rect class=\"ph{k}\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bar:.1}\" height=\"{ph:.1}\"><title>{}: {}</title></rect>",
                PHASES[k],
                dur(f64::from(*us) / 1e6)
            );
        }
        if !r.success {
            let _ = write!(
                out,
                "<rect class=\"bad\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{bar:.1}\" height=\"4\"/>",
                h - bottom + 6.0
            );
        }
    }
    out.push_str("</svg>");
    out
}

/// The legend for [`latency_chart`], as HTML.
pub fn phase_legend() -> String {
    let mut out = String::from("<ul class=\"legend\">");
    for (k, name) in PHASES.iter().enumerate() {
        let _ = write!(out, "<li><i class=\"sw ph{k}\"></i>{name}</li>");
    }
    out.push_str("<li><i class=\"sw bad\"></i>failed run</li></ul>");
    out
}

/// A horizontal reference line on a [`line_chart`].
pub struct Reference<'a> {
    pub value: f64,
    pub label: &'a str,
    pub class: &'a str,
}

/// A line over time: `points` are (Unix seconds, value), NaN values break the line. The y range
/// is `lo..hi`, widened to hold every point and reference.
pub fn line_chart(
    id: &str,
    class: &str,
    points: &[(f64, f64)],
    lo: f64,
    hi: f64,
    refs: &[Reference],
    fmt: &dyn Fn(f64) -> String,
) -> String {
    let (w, h, left, bottom) = (960.0, 200.0, 72.0, 18.0);
    let top = 8.0;
    let plot_h = h - bottom - top;
    let values = points
        .iter()
        .map(|p| p.1)
        .chain(refs.iter().map(|r| r.value))
        .filter(|v| v.is_finite());
    let (mut lo, mut hi) = values.fold((lo, hi), |(a, b), v| (a.min(v), b.max(v)));
    if hi <= lo {
        hi = lo + 1.0;
        lo -= 0.0;
    }
    let t0 = points.first().map_or(0.0, |p| p.0);
    let t1 = points.last().map_or(1.0, |p| p.0);
    let tspan = if t1 > t0 { t1 - t0 } else { 1.0 };
    let xy = |t: f64, v: f64| {
        (
            left + (t - t0) / tspan * (w - left - 4.0),
            top + (hi - v) / (hi - lo) * plot_h,
        )
    };
    let mut out = format!(
        "<svg id=\"{}\" class=\"chart {}\" viewBox=\"0 0 {w} {h}\" role=\"img\">",
        esc(id),
        esc(class)
    );
    for v in [lo, (lo + hi) / 2.0, hi] {
        let (_, y) = xy(t0, v);
        let _ = write!(
            out,
            "<line class=\"grid\" x1=\"{left}\" y1=\"{y:.1}\" x2=\"{w}\" y2=\"{y:.1}\"/><text class=\"axis\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            left - 4.0,
            y + 4.0,
            esc(&fmt(v))
        );
    }
    for r in refs {
        let (_, y) = xy(t0, r.value);
        let _ = write!(
            out,
            "<line class=\"ref {}\" x1=\"{left}\" y1=\"{y:.1}\" x2=\"{w}\" y2=\"{y:.1}\"/><text class=\"axis {}\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            esc(r.class),
            esc(r.class),
            w - 4.0,
            y - 3.0,
            esc(r.label)
        );
    }
    let mut path = String::new();
    let mut pen_up = true;
    for (t, v) in points {
        if !v.is_finite() {
            pen_up = true;
            continue;
        }
        let (x, y) = xy(*t, *v);
        let _ = write!(path, "{}{x:.1},{y:.1} ", if pen_up { "M" } else { "L" });
        pen_up = false;
    }
    if !path.is_empty() {
        let _ = write!(out, "<path class=\"line\" d=\"{}\"/>", path.trim_end());
    }
    if points.len() >= 2 {
        let _ = write!(
            out,
            "<text class=\"axis\" x=\"{left}\" y=\"{:.1}\">{} ago</text><text class=\"axis\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">now</text>",
            h - 4.0,
            span(tspan),
            w - 4.0,
            h - 4.0
        );
    } else {
        let _ = write!(
            out,
            "<text class=\"axis\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">not enough samples yet</text>",
            (w + left) / 2.0,
            top + plot_h / 2.0
        );
    }
    out.push_str("</svg>");
    out
}

/// A window's burn rate against the alert threshold, as a horizontal bar.
pub fn burn_bar(name: &str, rate: Option<f64>, threshold: f64) -> String {
    let (w, h) = (260.0, 18.0);
    let v = rate.filter(|r| r.is_finite()).unwrap_or(0.0).max(0.0);
    let scale = (threshold * 1.5).max(v).max(f64::MIN_POSITIVE);
    let bw = v / scale * w;
    let tx = threshold / scale * w;
    let class = if v >= threshold { "bad" } else { "ok" };
    format!(
        "<svg class=\"burn\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"{name} burn rate\"><rect class=\"track\" x=\"0\" y=\"3\" width=\"{w}\" height=\"12\" rx=\"2\"/><rect class=\"{class}\" x=\"0\" y=\"3\" width=\"{bw:.1}\" height=\"12\" rx=\"2\"/><line class=\"threshold\" x1=\"{tx:.1}\" y1=\"0\" x2=\"{tx:.1}\" y2=\"{h}\"/></svg>",
        name = esc(name),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_survive_odd_input() {
        // No runs, one run, NaN and infinite values: still one well-formed <svg> each.
        for svg in [
            history_bar(&[], 30, 0),
            history_bar(
                &[RunPoint {
                    at_ms: i64::MIN,
                    success: false,
                    reason: None,
                    status: None,
                    duration_us: u32::MAX,
                    phases_us: [u32::MAX; 5],
                }],
                30,
                i64::MAX,
            ),
            latency_chart(&[RunPoint {
                at_ms: i64::MAX,
                success: false,
                reason: None,
                status: None,
                duration_us: 0,
                phases_us: [u32::MAX; 5],
            }]),
            sparkline(&[], "latency", "x"),
            sparkline(&[f64::NAN, 1.0, f64::INFINITY], "latency", "x"),
            latency_chart(&[]),
            line_chart("a", "b", &[], 0.0, 1.0, &[], &|v| format!("{v}")),
            line_chart(
                "a",
                "b",
                &[(5.0, f64::NAN), (5.0, 2.0)],
                0.0,
                0.0,
                &[],
                &|v| format!("{v}"),
            ),
            burn_bar("1h", Some(f64::NAN), 14.4),
            burn_bar("1h", None, 0.0),
        ] {
            assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"), "{svg}");
            assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
        }
    }

    #[test]
    fn history_bar_has_one_cell_per_slot() {
        let run = |ok| RunPoint {
            at_ms: 1000,
            success: ok,
            reason: None,
            status: None,
            duration_us: 100,
            phases_us: [0; 5],
        };
        let runs: Vec<RunPoint> = (0..50).map(|i| run(i % 3 != 0)).collect();
        let svg = history_bar(&runs, 40, 2000);
        assert_eq!(svg.matches("<rect").count(), 40);
        let svg = history_bar(&runs[..3], 40, 2000);
        assert_eq!(svg.matches("class=\"none\"").count(), 37);
        assert_eq!(svg.matches("class=\"bad\"").count(), 1);
    }
}
