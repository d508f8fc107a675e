//! The hand-written parsers that read what targets send and what users write: Prometheus
//! text exposition, series selectors and `{{ name }}` templates. None may panic or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = vantage_probes::exposition::parse(s);
        if let Ok(sel) = vantage_probes::exposition::Selector::parse(s) {
            if let Ok(samples) = vantage_probes::exposition::parse("x{a=\"b\"} 1\ny 2\n") {
                for sample in &samples {
                    let _ = sel.matches(sample);
                }
            }
        }
        if let Ok(t) = vantage_probes::Template::parse(s) {
            let _ = t.render(&Default::default());
        }
    }
});
