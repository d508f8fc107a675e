//! Resolving `[[slo]]` and `[state]`.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;
use vantage_slo::{
    default_policy, AlertPair, Budgeting, CalendarUnit, Objective, Period, Sli, SloSpec,
};

use super::load::{Located, RawConfig};
use super::raw::{RawSlo, RawState};
use super::{resolve_labels, stable_hash, Ctx, Diagnostic, Probe};

const DEFAULT_PERIOD: Duration = Duration::from_secs(30 * 86_400);
const DEFAULT_MIN_EVENTS: u64 = 10;
const DEFAULT_FLUSH: Duration = Duration::from_secs(10);

/// One SLO, resolved.
#[derive(Debug, Clone)]
pub struct SloConfig {
    pub name: String,
    /// The probes whose runs are its events (selectors matched against the config's probes).
    pub probes: Vec<String>,
    pub spec: SloSpec,
    pub runbook_url: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// Changes when the definition changes (probes, SLI, threshold, objective, budgeting,
    /// period): state is kept across reloads and restarts only while it stays the same.
    pub fingerprint: u64,
}

/// `[state]`, resolved.
#[derive(Debug, Clone)]
pub struct StateConfig {
    pub dir: Option<PathBuf>,
    pub flush_interval: Duration,
}

impl Default for StateConfig {
    fn default() -> Self {
        Self {
            dir: None,
            flush_interval: DEFAULT_FLUSH,
        }
    }
}

pub(super) fn resolve_state(raw: Option<&Located<RawState>>, ctx: &mut Ctx<'_>) -> StateConfig {
    let mut out = StateConfig::default();
    let Some(raw) = raw else { return out };
    ctx.file = raw.file;
    if let Some(d) = &raw.value.dir {
        out.dir = Some(ctx.sources.dir(raw.file).join(d.get_ref()));
    }
    if let Some(f) = &raw.value.flush_interval {
        if f.get_ref().0 < Duration::from_millis(100) {
            ctx.err(f.span().start, "flush_interval must be at least 100ms");
        }
        out.flush_interval = f.get_ref().0;
    }
    out
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn one_of<'a>(
    v: &'a Option<Spanned<String>>,
    default: &'a str,
    allowed: &[&str],
    key: &str,
    ctx: &mut Ctx<'_>,
) -> Option<&'a str> {
    let Some(s) = v else { return Some(default) };
    if allowed.contains(&s.get_ref().as_str()) {
        Some(s.get_ref())
    } else {
        ctx.err(
            s.span().start,
            format!(
                "unknown {key} {:?}, expected one of: {}",
                s.get_ref(),
                allowed.join(", ")
            ),
        );
        None
    }
}

/// `declared`: every probe name in the files, including probes refused for errors of their own
/// (an SLO naming one of those gets no second error for it).
pub(super) fn resolve_slos(
    raw: &RawConfig,
    probes: &[Probe],
    declared: &[&str],
    ctx: &mut Ctx<'_>,
    warnings: &mut Vec<Diagnostic>,
) -> Vec<SloConfig> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for item in &raw.slos {
        ctx.file = item.file;
        let before = ctx.errors.len();
        if let Some(s) = resolve_slo(&item.value, probes, declared, ctx, warnings) {
            if !seen.insert(s.name.clone()) {
                ctx.err(
                    item.value.name.span().start,
                    format!("duplicate SLO name {:?}", s.name),
                );
            } else if ctx.errors.len() == before {
                out.push(s);
            }
        }
    }
    out
}

fn resolve_slo(
    s: &RawSlo,
    probes: &[Probe],
    declared: &[&str],
    ctx: &mut Ctx<'_>,
    warnings: &mut Vec<Diagnostic>,
) -> Option<SloConfig> {
    let before = ctx.errors.len();
    let name = s.name.get_ref().clone();
    if !valid_name(&name) {
        ctx.err(
            s.name.span().start,
            format!("invalid SLO name {name:?}: use 1 to 128 of a-z, 0-9, _ and -"),
        );
    }
    let objective = Objective::from_percent(*s.objective.get_ref())
        .map_err(|e| ctx.err(s.objective.span().start, e))
        .ok();

    // Probes, by name or glob; each selector must match something.
    let mut selected: Vec<String> = Vec::new();
    if s.probes.get_ref().is_empty() {
        ctx.err(
            s.probes.span().start,
            format!("SLO {name:?} names no probes"),
        );
    }
    for sel in s.probes.get_ref() {
        match glob::Pattern::new(sel.get_ref()) {
            Ok(p) => {
                let matched: Vec<&Probe> = probes.iter().filter(|pr| p.matches(&pr.name)).collect();
                // Matches only refused probes: their own errors say why.
                let declared_match = declared.iter().any(|n| p.matches(n));
                if matched.is_empty() && !declared_match {
                    ctx.err(
                        sel.span().start,
                        format!(
                            "SLO {name:?} names no existing probe: {:?} matches nothing",
                            sel.get_ref()
                        ),
                    );
                }
                for m in matched {
                    if !selected.contains(&m.name) {
                        selected.push(m.name.clone());
                    }
                }
            }
            Err(e) => ctx.err(
                sel.span().start,
                format!("invalid probe pattern {:?}: {e}", sel.get_ref()),
            ),
        }
    }
    selected.sort();

    let period = match (&s.period, &s.calendar) {
        (Some(p), Some(_)) => {
            ctx.err(p.span().start, "set period (rolling) or calendar, not both");
            None
        }
        (Some(p), None) => {
            let d = p.get_ref().0;
            if d < Duration::from_secs(3600) || d > Duration::from_secs(400 * 86_400) {
                ctx.err(p.span().start, "period must be between 1h and 400d");
            }
            Some(Period::Rolling(d))
        }
        (None, Some(c)) => {
            let unit = match c.get_ref().as_str() {
                "month" => Some(CalendarUnit::Month),
                "week" => Some(CalendarUnit::Week),
                other => {
                    ctx.err(
                        c.span().start,
                        format!("unknown calendar {other:?}, expected month or week"),
                    );
                    None
                }
            };
            let tz_name = s.time_zone.as_ref().map_or("UTC", |t| t.get_ref().as_str());
            let tz = vantage_slo::TimeZone::get(tz_name)
                .map_err(|_| {
                    let at = s.time_zone.as_ref().map_or(c.span().start, |t| t.span().start);
                    ctx.err(at, format!("unknown time zone {tz_name:?}, expected an IANA name like \"Europe/Amsterdam\""))
                })
                .ok();
            match (unit, tz) {
                (Some(unit), Some(tz)) => Some(Period::Calendar { unit, tz }),
                _ => None,
            }
        }
        (None, None) => Some(Period::Rolling(DEFAULT_PERIOD)),
    };
    if let (Some(t), None) = (&s.time_zone, &s.calendar) {
        ctx.err(t.span().start, "time_zone applies to calendar periods only");
    }
    let nominal = match &period {
        Some(Period::Rolling(d)) => *d,
        Some(Period::Calendar {
            unit: CalendarUnit::Week,
            ..
        }) => Duration::from_secs(7 * 86_400),
        _ => DEFAULT_PERIOD,
    };

    let sli_kind = one_of(
        &s.sli,
        "availability",
        &["availability", "latency", "latency_percentile"],
        "sli",
        ctx,
    );
    let threshold = s.threshold.as_ref().map(|t| t.get_ref().0);
    let sli = match sli_kind {
        Some("availability") => {
            if let Some(t) = &s.threshold {
                ctx.err(t.span().start, "threshold applies to latency SLIs only");
            }
            Some(Sli::Availability)
        }
        Some("latency") => match threshold {
            Some(threshold) => Some(Sli::Latency { threshold }),
            None => {
                ctx.err(
                    s.name.span().start,
                    "sli = \"latency\" needs a threshold, like threshold = \"500ms\"",
                );
                None
            }
        },
        Some(_) => match (threshold, &s.percentile) {
            (Some(threshold), Some(p)) if *p.get_ref() > 0.0 && *p.get_ref() < 100.0 => {
                Some(Sli::LatencyPercentile {
                    percentile: *p.get_ref(),
                    threshold,
                })
            }
            (_, Some(p)) if !(*p.get_ref() > 0.0 && *p.get_ref() < 100.0) => {
                ctx.err(
                    p.span().start,
                    "percentile must be strictly between 0 and 100",
                );
                None
            }
            _ => {
                ctx.err(
                    s.name.span().start,
                    "sli = \"latency_percentile\" needs percentile and threshold",
                );
                None
            }
        },
        None => None,
    };

    let budgeting_kind = one_of(
        &s.budgeting,
        "occurrences",
        &["occurrences", "timeslices"],
        "budgeting",
        ctx,
    );
    let budgeting = match budgeting_kind {
        Some("timeslices") => {
            let slice = s
                .slice
                .as_ref()
                .map_or(Duration::from_secs(60), |d| d.get_ref().0);
            let target = s.slice_target.as_ref().map_or(1.0, |t| *t.get_ref());
            if let Some(t) = &s.slice_target {
                if !(target > 0.0 && target <= 1.0) {
                    ctx.err(t.span().start, "slice_target must be in (0, 1]");
                }
            }
            for p in probes.iter().filter(|p| selected.contains(&p.name)) {
                if p.interval > slice {
                    let at = s
                        .slice
                        .as_ref()
                        .map_or(s.name.span().start, |d| d.span().start);
                    ctx.err(
                        at,
                        format!(
                            "probe {:?} runs every {}, longer than the timeslice of {}: most slices would have no runs",
                            p.name,
                            humantime::format_duration(p.interval),
                            humantime::format_duration(slice)
                        ),
                    );
                }
            }
            Some(Budgeting::Timeslices { slice, target })
        }
        Some(_) => {
            for (key, v) in [
                ("slice", s.slice.as_ref().map(|d| d.span().start)),
                (
                    "slice_target",
                    s.slice_target.as_ref().map(|d| d.span().start),
                ),
            ] {
                if let Some(at) = v {
                    ctx.err(
                        at,
                        format!("{key} applies to budgeting = \"timeslices\" only"),
                    );
                }
            }
            Some(Budgeting::Occurrences)
        }
        None => None,
    };

    // Alert pairs: written ones must be able to fire; default ones that cannot are left out.
    let mut alerts = Vec::new();
    match &s.alerts {
        Some(pairs) => {
            for p in pairs {
                let r = p.get_ref();
                let pair = AlertPair {
                    severity: r.severity.get_ref().clone(),
                    long: r.long.get_ref().0,
                    short: r.short.get_ref().0,
                    burn_rate: *r.burn_rate.get_ref(),
                };
                if pair.severity.is_empty()
                    || !pair.severity.bytes().all(|b| b.is_ascii_lowercase())
                {
                    ctx.err(
                        r.severity.span().start,
                        "severity must be a lowercase word, like critical or warning",
                    );
                }
                if pair.short.is_zero() || pair.short >= pair.long {
                    ctx.err(
                        r.short.span().start,
                        "the short window must be shorter than the long one (and not zero)",
                    );
                }
                if pair.burn_rate.is_nan() || pair.burn_rate <= 0.0 || !pair.burn_rate.is_finite() {
                    ctx.err(
                        r.burn_rate.span().start,
                        "burn_rate must be a positive number",
                    );
                } else if let Some(o) = objective {
                    if !pair.can_fire(o) {
                        ctx.err(
                            r.burn_rate.span().start,
                            format!(
                                "this pair can never fire: burn_rate {} × (1 − {}%) = {:.3} > 1, and an error ratio cannot exceed 1",
                                pair.burn_rate,
                                o.percent(),
                                pair.burn_rate * o.budget()
                            ),
                        );
                    }
                }
                alerts.push(pair);
            }
        }
        None => {
            for pair in default_policy(nominal) {
                match objective {
                    Some(o) if !pair.can_fire(o) => warnings.push(ctx.sources.diag(
                        ctx.file,
                        s.objective.span().start,
                        format!(
                            "SLO {name:?}: the default {} pair {}/{} at burn rate {} can never fire for a {}% objective and is left out",
                            pair.severity,
                            vantage_slo::window_name(pair.long),
                            vantage_slo::window_name(pair.short),
                            pair.burn_rate,
                            o.percent()
                        ),
                    )),
                    _ => alerts.push(pair),
                }
            }
        }
    }

    let min_events = s
        .min_events
        .as_ref()
        .map_or(DEFAULT_MIN_EVENTS, |m| *m.get_ref());
    let labels = s
        .labels
        .as_ref()
        .map(|l| resolve_labels(l, s.name.span().start, ctx))
        .unwrap_or_default();
    if ctx.errors.len() > before {
        return None;
    }
    let spec = SloSpec {
        objective: objective?,
        period: period?,
        sli: sli?,
        budgeting: budgeting?,
        min_events,
        alerts,
    };
    let fingerprint = fingerprint(&selected, &spec);
    Some(SloConfig {
        name,
        probes: selected,
        spec,
        runbook_url: s.runbook_url.as_ref().map(|r| r.get_ref().clone()),
        labels,
        fingerprint,
    })
}

/// What makes saved SLO counts still mean the same thing: the selected probes, the SLI, the
/// objective, the budgeting and the period — hashed from a canonical JSON serialization, so
/// neither a `Debug` format nor a dependency upgrade can change it.
fn fingerprint(probes: &[String], spec: &SloSpec) -> u64 {
    #[derive(serde::Serialize)]
    struct Identity<'a> {
        probes: &'a [String],
        sli: &'a vantage_slo::Sli,
        objective: f64,
        budgeting: &'a vantage_slo::Budgeting,
        period: String,
    }
    let identity = Identity {
        probes,
        sli: &spec.sli,
        objective: spec.objective.ratio(),
        budgeting: &spec.budgeting,
        period: spec.period.canonical(),
    };
    // Serializing plain data cannot fail; an empty text would only mean "start empty".
    stable_hash(&serde_json::to_string(&identity).unwrap_or_default())
}
