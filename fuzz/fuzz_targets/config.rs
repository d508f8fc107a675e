//! The config loader: TOML parsing, includes, `${ENV}` interpolation, validation of every key.
//! Whatever the file holds, loading ends with a config or located errors: never a panic, a
//! hang or unbounded memory.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = vantage::config::load::exercise(data);
});
