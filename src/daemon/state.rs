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

use crate::alert::Alert;
use crate::evaluator::SavedSlo;
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
    /// The status page's history (see `status_history` for its size per probe and SLO).
    #[serde(default)]
    pub history: crate::status_history::SavedHistory,
}

pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// Read the state file. Missing: `None`. Unreadable or incompatible: moved aside, `None`.
pub fn load(dir: &Path, clock: &Clock) -> Option<StateFile> {
    let file = path(dir);
    let bytes = match std::fs::read(&file) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            warn!(path = %file.display(), error = %e, "Cannot read the state file; starting empty.");
            return None;
        }
    };
    let problem = match serde_json::from_slice::<StateFile>(&bytes) {
        Ok(s) if s.version == VERSION => return Some(s),
        Ok(s) => format!("state file version {} is not {VERSION}", s.version),
        Err(e) => format!("state file does not parse: {e}"),
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

/// Write the state atomically (see the module docs).
pub fn save(
    dir: &Path,
    slos: HashMap<String, SavedSlo>,
    alerts: Vec<Alert>,
    history: crate::status_history::SavedHistory,
    now_ms: i64,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let doc = StateFile {
        version: VERSION,
        saved_at: now_ms,
        slos,
        alerts,
        history,
    };
    let bytes = serde_json::to_vec(&doc).map_err(std::io::Error::other)?;
    let tmp = dir.join(format!("{FILE}.tmp"));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path(dir))?;
    // The rename is durable only once the directory entry is.
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}
