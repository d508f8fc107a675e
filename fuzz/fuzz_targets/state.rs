//! The state file read at start-up: parse, structural validation, restore into SLOs, evaluate.
//! Whatever the file holds, start-up goes on (the file moved aside): never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// A fixed "now" (2026-09-21), so a finding replays the same way later.
const NOW: i64 = 1_790_000_000_000;

fuzz_target!(|data: &[u8]| {
    let _ = vantage::daemon::state::exercise(data, NOW);
});
