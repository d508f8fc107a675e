//! Content negotiation and gzip for `/metrics`: Prometheus always sends `Accept-Encoding:
//! gzip`, and the text of thousands of probes compresses 13–20 fold.

use std::io::Write as _;

use flate2::write::GzEncoder;
use flate2::Compression;

/// Longest `Accept` or `Accept-Encoding` value read; a longer one is treated as asking for
/// nothing in particular.
const ACCEPT_MAX: usize = 1024;

/// The items of an `Accept`-style header value, lowercased, each with its weight (`q`, default
/// 1). An item whose weight cannot be read is left out (not the whole header); an unreadable or
/// overlong value has none.
fn weighted(value: &[u8]) -> Vec<(String, f64)> {
    if value.len() > ACCEPT_MAX {
        return Vec::new();
    }
    let Ok(value) = std::str::from_utf8(value) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in value.split(',') {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let mut weight = Some(1.0);
        for param in parts {
            let Some((k, v)) = param.split_once('=') else {
                continue;
            };
            if k.trim().eq_ignore_ascii_case("q") {
                weight = parse_weight(v.trim());
            }
        }
        if let Some(w) = weight {
            out.push((name, w));
        }
    }
    out
}

/// The highest weight among `items` whose name is one of `names`.
fn best(items: &[(String, f64)], names: &[&str]) -> Option<f64> {
    items
        .iter()
        .filter(|(n, _)| names.contains(&n.as_str()))
        .map(|(_, w)| *w)
        .reduce(f64::max)
}

/// Whether an `Accept-Encoding` value allows gzip (RFC 9110 §12.5.3): a `gzip` (or `x-gzip`)
/// coding with a non-zero weight, or `*` with a non-zero weight when gzip is not named. A value
/// that cannot be read is no.
pub fn accepts_gzip(value: &[u8]) -> bool {
    let items = weighted(value);
    match best(&items, &["gzip", "x-gzip"]) {
        Some(w) => w > 0.0,
        None => best(&items, &["*"]).is_some_and(|w| w > 0.0),
    }
}

/// Whether an `Accept` value prefers OpenMetrics (RFC 9110 §12.5.1): it names
/// `application/openmetrics-text` with a non-zero weight at least that of the text format
/// (`text/plain`, `text/*`, `*/*`). Anything else gets the text format.
pub fn wants_openmetrics(value: &[u8]) -> bool {
    let items = weighted(value);
    let Some(om) = best(&items, &["application/openmetrics-text"]) else {
        return false;
    };
    let text = best(&items, &["text/plain", "text/*", "*/*"]).unwrap_or(0.0);
    om > 0.0 && om >= text
}

/// A qvalue: `0`–`1` with at most three decimals.
fn parse_weight(v: &str) -> Option<f64> {
    let ok = !v.is_empty()
        && v.len() <= 5
        && v.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && (v.starts_with('0') || v.starts_with('1'));
    let w: f64 = v.parse().ok().filter(|_| ok)?;
    (0.0..=1.0).contains(&w).then_some(w)
}

/// `text` gzipped at level 1: a scrape pays for the compression every time, and level 1 gets
/// most of the gain of the text's repetition at a fraction of the cost.
pub fn gzip(text: &[u8]) -> Vec<u8> {
    gzip_pieces(&[text])
}

/// One gzip stream of `pieces` one after another (the exposition is never joined first).
pub fn gzip_pieces(pieces: &[impl AsRef<[u8]>]) -> Vec<u8> {
    let len: usize = pieces.iter().map(|p| p.as_ref().len()).sum();
    let mut enc = GzEncoder::new(Vec::with_capacity(len / 8), Compression::fast());
    for p in pieces {
        // Writing to a Vec cannot fail.
        let _ = enc.write_all(p.as_ref());
    }
    enc.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_prefers_openmetrics_only_when_weighted_so() {
        for (accept, om) in [
            // Prometheus 2 and 3 defaults.
            ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1", true),
            ("application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1", true),
            ("application/openmetrics-text", true),
            ("application/openmetrics-text; q=0", false),
            ("text/plain;q=1, application/openmetrics-text;q=0.5", false),
            ("text/plain, application/openmetrics-text", true),
            ("*/*", false),
            ("", false),
            ("application/openmetrics-text;q=nonsense", false),
        ] {
            assert_eq!(wants_openmetrics(accept.as_bytes()), om, "{accept}");
        }
        assert!(!wants_openmetrics(&[b'a'; 2000]));
    }

    #[test]
    fn accept_encoding() {
        for yes in [
            "gzip",
            "GZIP",
            "identity, gzip",
            "gzip;q=0.5",
            "x-gzip",
            "*",
            "br, *;q=0.1",
            "gzip;q=bogus, gzip",
            "gzip, deflate, br",
        ] {
            assert!(accepts_gzip(yes.as_bytes()), "{yes}");
        }
        for no in [
            "",
            "identity",
            "gzip;q=0",
            "gzip;q=0.000",
            "*;q=0",
            "gzip;q=0, *",
            "gzip;q=2",
            "gzip;q=-1",
            "gzip;q=NaN",
            "gzip;q=bogus",
            "gzipx",
            ",,,;;;===",
        ] {
            assert!(!accepts_gzip(no.as_bytes()), "{no}");
        }
        assert!(!accepts_gzip(&[0xff, 0xfe]));
        let long = format!("{}gzip", "a,".repeat(1000));
        assert!(
            !accepts_gzip(long.as_bytes()),
            "over-long headers are not read"
        );
    }

    #[test]
    fn gzip_round_trips() {
        use std::io::Read as _;
        let text = "probe_success{probe=\"a\"} 1\n".repeat(1000);
        let z = gzip(text.as_bytes());
        assert!(z.len() < text.len() / 10);
        let mut back = String::new();
        flate2::read::GzDecoder::new(&z[..])
            .read_to_string(&mut back)
            .unwrap();
        assert_eq!(back, text);
    }
}
