//! gzip for `/metrics`: Prometheus always sends `Accept-Encoding: gzip`, and the text of
//! thousands of probes compresses about tenfold.

use std::io::Write as _;

use flate2::write::GzEncoder;
use flate2::Compression;

/// Longest `Accept-Encoding` value read; a longer one is treated as not asking for gzip.
const ACCEPT_ENCODING_MAX: usize = 1024;

/// Whether an `Accept-Encoding` value allows gzip (RFC 9110 §12.5.3): a `gzip` (or `x-gzip`)
/// coding with a non-zero weight, or `*` with a non-zero weight when gzip is not named. A value
/// that cannot be read is no.
pub fn accepts_gzip(value: &[u8]) -> bool {
    if value.len() > ACCEPT_ENCODING_MAX {
        return false;
    }
    let Ok(value) = std::str::from_utf8(value) else {
        return false;
    };
    let mut gzip = None;
    let mut star = None;
    for item in value.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let mut weight = Some(1.0);
        for param in parts {
            let Some((k, v)) = param.split_once('=') else {
                continue;
            };
            if k.trim().eq_ignore_ascii_case("q") {
                weight = parse_weight(v.trim());
            }
        }
        // A malformed weight makes the item unusable, not the whole header.
        let Some(w) = weight else { continue };
        match coding.as_str() {
            "gzip" | "x-gzip" => gzip = Some(gzip.map_or(w, |g: f64| g.max(w))),
            "*" => star = Some(w),
            _ => {}
        }
    }
    match gzip {
        Some(w) => w > 0.0,
        None => star.is_some_and(|w| w > 0.0),
    }
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
