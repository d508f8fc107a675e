//! Crash-safe persistence of SLO counts (and, later, alert state) in `[state] dir`.
//!
//! One JSON file, replaced atomically: write a temporary file, fsync it, rename it over the old
//! one, fsync the directory. A `kill -9` at any moment leaves either the old or the new file,
//! both complete; at most one flush interval of events is lost. JSON over an embedded database:
//! the state is small (one document, tens of KiB per SLO), written whole every few seconds, and
//! an operator can read it. A file that does not parse, or of another version, is moved aside
//! with a warning and vantage starts empty — never a crash.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::alerting::engine::Alert;
use crate::daemon::evaluator::SavedSlo;
use crate::Clock;

const FILE: &str = "vantage-state.json";
const VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
pub struct StateFile {
    pub version: u32,
    /// Unix ms when written.
    pub saved_at: i64,
    pub slos: HashMap<String, SavedSlo>,
    /// Firing alerts: restored without paging again, and resolved when due.
    #[serde(default)]
    pub alerts: Vec<Alert>,
    /// The status page's history, in files written before it moved to `vantage-history.json`
    /// (read for compatibility, never written).
    #[serde(default, skip_serializing)]
    pub history: crate::daemon::history::SavedHistory,
}

pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// Read the state file. Missing: `None`. Unreadable or incompatible: moved aside, `None`.
pub fn load(dir: &Path, clock: &Clock) -> Option<StateFile> {
    let file = path(dir);
    let problem = match read(&file) {
        Ok(None) => return None,
        Ok(Some(bytes)) => match parse(&bytes, clock.unix_ms()) {
            Ok(s) => return Some(s),
            Err(problem) => problem,
        },
        Err(problem) => problem,
    };
    let aside = file.with_extension(format!("json.bad-{}", clock.unix_ms()));
    match std::fs::rename(&file, &aside) {
        Ok(()) => {
            warn!(path = %file.display(), moved_to = %aside.display(), problem = %problem, "State file moved aside; starting empty.")
        }
        Err(e) => {
            warn!(path = %file.display(), problem = %problem, error = %e, "State file unusable and could not be moved aside; starting empty.")
        }
    }
    None
}

/// The largest state file read: far more than any config produces (tens of KiB per SLO).
const MAX_STATE_BYTES: u64 = 512 * 1024 * 1024;

/// The file's bytes; `Ok(None)` when there is none. A path that is not a regular file (a FIFO
/// would block the start) or is too large is a problem, like a file that does not parse.
fn read(file: &Path) -> Result<Option<Vec<u8>>, String> {
    use std::io::Read as _;
    let meta = match std::fs::metadata(file) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read the state file: {e}")),
    };
    if !meta.is_file() {
        return Err("the state file is not a regular file".into());
    }
    if meta.len() > MAX_STATE_BYTES {
        return Err(format!(
            "the state file is larger than {MAX_STATE_BYTES} bytes"
        ));
    }
    let f = std::fs::File::open(file).map_err(|e| format!("cannot read the state file: {e}"))?;
    let mut bytes = Vec::new();
    f.take(MAX_STATE_BYTES)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read the state file: {e}"))?;
    Ok(Some(bytes))
}

/// Parse and validate a state file's bytes at `now` (Unix ms): every SLO's counts are checked
/// structurally ([`vantage_slo::State::validate`]) and every alert for the fields the alert
/// logic reads. The first problem found is returned; the caller moves the file aside.
pub fn parse(bytes: &[u8], now: i64) -> Result<StateFile, String> {
    let s = serde_json::from_slice::<StateFile>(bytes)
        .map_err(|e| format!("state file does not parse: {e}"))?;
    if s.version != VERSION {
        return Err(format!("state file version {} is not {VERSION}", s.version));
    }
    let max = vantage_slo::window::MAX_EVENTS;
    for (name, slo) in &s.slos {
        if slo.events_good > max || slo.events_bad > max {
            return Err(format!("SLO {name:?}: event counts are not plausible"));
        }
        slo.state
            .validate(now)
            .map_err(|e| format!("SLO {name:?}: {e}"))?;
    }
    for a in &s.alerts {
        if a.key.is_empty() || a.name().is_empty() {
            return Err("an alert without a key or alertname".into());
        }
        if a.starts_at > now.saturating_add(vantage_slo::window::MAX_CLOCK_SKEW_MS) {
            return Err(format!("alert {:?} starts in the future", a.key));
        }
        if a.name() == "SLOBurnRate"
            && !(a.labels.contains_key("long_window") && a.labels.contains_key("short_window"))
        {
            return Err(format!("alert {:?} lacks its window labels", a.key));
        }
    }
    Ok(s)
}

/// The status page's history lives in a file of its own, written less often than the SLO
/// counts: it is large (kilobytes per probe) and only 5-minute-grained, so writing it with
/// every flush would multiply the bytes written for nothing.
const HISTORY_FILE: &str = "vantage-history.json";

/// Write the state atomically (see the module docs); with `history`, the history file too.
pub fn save(
    dir: &Path,
    slos: HashMap<String, SavedSlo>,
    alerts: Vec<Alert>,
    history: Option<crate::daemon::history::SavedHistory>,
    now_ms: i64,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    if let Some(history) = history {
        let bytes = serde_json::to_vec(&history).map_err(std::io::Error::other)?;
        replace(dir, HISTORY_FILE, &bytes)?;
    }
    let doc = StateFile {
        version: VERSION,
        saved_at: now_ms,
        slos,
        alerts,
        history: Default::default(),
    };
    let bytes = serde_json::to_vec(&doc).map_err(std::io::Error::other)?;
    replace(dir, FILE, &bytes)
}

/// Replace `dir/name` with `bytes` atomically: temp file, fsync, rename, fsync of the directory.
fn replace(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join(name))?;
    // The rename is durable only once the directory entry is.
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// Read the history file. Missing: empty. Unreadable or not parsing: empty, with a warning (and
/// moved aside): the history only feeds the status page, it never blocks a start.
pub fn load_history(dir: &Path, clock: &Clock) -> crate::daemon::history::SavedHistory {
    let file = dir.join(HISTORY_FILE);
    let problem = match read(&file) {
        Ok(None) => return Default::default(),
        Ok(Some(bytes)) => match serde_json::from_slice(&bytes) {
            Ok(h) => return h,
            Err(e) => format!("the history file does not parse: {e}"),
        },
        Err(problem) => problem,
    };
    let aside = file.with_extension(format!("json.bad-{}", clock.unix_ms()));
    let _ = std::fs::rename(&file, &aside);
    warn!(path = %file.display(), problem = %problem, "Status page history unusable; starting it empty.");
    Default::default()
}

/// SLOs of the shapes a config makes (availability over 30 days, a latency percentile over 7
/// days with histograms, timeslices over a day), for [`exercise`].
fn exercise_specs() -> Vec<vantage_slo::SloSpec> {
    use std::time::Duration;
    use vantage_slo::{default_policy, Budgeting, Objective, Period, Sli, SloSpec};
    let day = Duration::from_secs(86_400);
    let spec = |period: Duration, sli: Sli, budgeting: Budgeting| SloSpec {
        objective: Objective::from_percent(99.0).unwrap_or_else(|_| unreachable!()),
        period: Period::Rolling(period),
        sli,
        budgeting,
        min_events: 0,
        alerts: default_policy(period),
    };
    vec![
        spec(30 * day, Sli::Availability, Budgeting::Occurrences),
        spec(
            7 * day,
            Sli::LatencyPercentile {
                percentile: 99.0,
                threshold: Duration::from_millis(300),
            },
            Budgeting::Occurrences,
        ),
        spec(
            day,
            Sli::Availability,
            Budgeting::Timeslices {
                slice: Duration::from_secs(60),
                target: 0.9,
            },
        ),
    ]
}

/// Everything a state file's bytes reach at start-up: parse and validate it, restore each saved
/// SLO into SLOs of the usual shapes, record and evaluate, restore the alerts. The fuzz target
/// and the corpus replay test call this; whatever the bytes, it must not panic. Returns how
/// many SLO states were restored.
pub fn exercise(bytes: &[u8], now: i64) -> usize {
    let Ok(file) = parse(bytes, now) else {
        return 0;
    };
    let mut restored = 0;
    for saved in file.slos.values() {
        for spec in exercise_specs() {
            let mut slo = vantage_slo::Slo::new(spec);
            if slo.restore(saved.state.clone()) {
                restored += 1;
                slo.evaluate(now);
                slo.record(now, false, std::time::Duration::from_millis(3));
                slo.record(now - 3_600_000, true, std::time::Duration::from_millis(400));
                slo.evaluate(now + 1000);
            }
        }
    }
    let mut alerts = crate::alerting::engine::Alerts::default();
    alerts.restore(file.alerts);
    let _ = alerts.active();
    restored
}

/// A valid state file holding one SLO of each shape [`exercise`] restores, with `events` runs
/// recorded before `now`: seeds for the fuzz corpus and tests.
pub fn sample_file(now: i64, events: i64) -> Vec<u8> {
    let mut slos = HashMap::new();
    for (i, spec) in exercise_specs().into_iter().enumerate() {
        let mut slo = vantage_slo::Slo::new(spec);
        for k in 0..events {
            slo.record(
                now - k * 37_000,
                k % 5 != 0,
                std::time::Duration::from_millis((k * 13 % 500) as u64),
            );
        }
        slos.insert(
            format!("slo{i}"),
            SavedSlo {
                fingerprint: i as u64,
                events_good: 0,
                events_bad: 0,
                state: slo.state().clone(),
            },
        );
    }
    let doc = StateFile {
        version: VERSION,
        saved_at: now,
        slos,
        alerts: Vec::new(),
        history: Default::default(),
    };
    serde_json::to_vec(&doc).unwrap_or_default()
}
