//! Response body decoding: `Content-Encoding` gzip, deflate, br and zstd (stacked codings too),
//! so that assertions and evidence see the text a browser would, whether the probe asked for
//! compression or the server compressed unasked.
//!
//! The limit applies to the *decoded* size and decoding stops one byte past it, so a gzip bomb
//! costs at most `max_body` bytes of memory and the work to produce them. Decoding yields to the
//! runtime every [`SLICE`] bytes, so the probe's timeout can still end it and other probes on the
//! same worker are not held up by a large body.

use std::io::{self, Read};

use bytes::Bytes;
use http::header::{HeaderMap, CONTENT_ENCODING};

/// More codings than this on one response is not a real server.
const MAX_CODINGS: usize = 4;
/// Decoded bytes between yields to the runtime.
const SLICE: usize = 256 * 1024;

/// One content coding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Coding {
    Gzip,
    Deflate,
    Br,
    Zstd,
}

/// Why a body could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq)]
pub(crate) enum DecodeError {
    #[error("unsupported Content-Encoding {0:?}")]
    Unsupported(String),
    #[error("Content-Encoding lists more than {MAX_CODINGS} codings")]
    TooManyCodings,
    #[error("decoded body exceeds max_body of {0} bytes")]
    TooLarge(u64),
    #[error("corrupt {coding} body: {detail}")]
    Corrupt {
        coding: &'static str,
        detail: String,
    },
}

impl Coding {
    fn name(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
            Coding::Br => "br",
            Coding::Zstd => "zstd",
        }
    }
}

/// The codings of a response, in the order the server applied them (`identity` dropped).
pub(crate) fn codings(headers: &HeaderMap) -> Result<Vec<Coding>, DecodeError> {
    let mut out = Vec::new();
    for value in headers.get_all(CONTENT_ENCODING) {
        let text = value.to_str().map_err(|_| {
            DecodeError::Unsupported(String::from_utf8_lossy(value.as_bytes()).into())
        })?;
        for token in text.split(',') {
            let token = token.trim();
            let coding = match token.to_ascii_lowercase().as_str() {
                "" | "identity" => continue,
                "gzip" | "x-gzip" => Coding::Gzip,
                "deflate" => Coding::Deflate,
                "br" => Coding::Br,
                "zstd" => Coding::Zstd,
                _ => {
                    let shown: String = token.chars().take(32).collect();
                    return Err(DecodeError::Unsupported(shown));
                }
            };
            if out.len() == MAX_CODINGS {
                return Err(DecodeError::TooManyCodings);
            }
            out.push(coding);
        }
    }
    Ok(out)
}

/// Undo `codings` (last applied, first undone), keeping at most `max` decoded bytes.
pub(crate) async fn decode(
    body: Bytes,
    codings: &[Coding],
    max: u64,
) -> Result<Bytes, DecodeError> {
    let mut body = body;
    if body.is_empty() {
        // 204, 304 and HEAD answers carry the header but no body.
        return Ok(body);
    }
    for &coding in codings.iter().rev() {
        body = Bytes::from(decode_one(&body, coding, max).await?);
    }
    Ok(body)
}

async fn decode_one(input: &[u8], coding: Coding, max: u64) -> Result<Vec<u8>, DecodeError> {
    let corrupt = |e: &dyn std::fmt::Display| DecodeError::Corrupt {
        coding: coding.name(),
        detail: e.to_string(),
    };
    let reader: Box<dyn Read + Send + '_> = match coding {
        Coding::Gzip => Box::new(flate2::read::MultiGzDecoder::new(input)),
        // RFC 9110's deflate is zlib-wrapped; some servers send raw deflate anyway.
        Coding::Deflate if looks_like_zlib(input) => {
            Box::new(flate2::read::ZlibDecoder::new(input))
        }
        Coding::Deflate => Box::new(flate2::read::DeflateDecoder::new(input)),
        Coding::Br => Box::new(brotli_decompressor::Decompressor::new(input, 4096)),
        Coding::Zstd => {
            Box::new(ruzstd::decoding::StreamingDecoder::new(input).map_err(|e| corrupt(&e))?)
        }
    };
    read_bounded(reader, max).await.map_err(|e| match e {
        Bounded::TooLarge => DecodeError::TooLarge(max),
        Bounded::Io(e) => corrupt(&e),
    })
}

/// A zlib stream starts with a CMF/FLG pair whose 16-bit value is a multiple of 31 (RFC 1950).
fn looks_like_zlib(b: &[u8]) -> bool {
    b.len() >= 2 && b[0] & 0x0f == 8 && (u16::from(b[0]) << 8 | u16::from(b[1])) % 31 == 0
}

enum Bounded {
    TooLarge,
    Io(io::Error),
}

async fn read_bounded(reader: impl Read + Send, max: u64) -> Result<Vec<u8>, Bounded> {
    let mut out = Vec::new();
    let mut reader = reader.take(max.saturating_add(1));
    loop {
        let before = out.len();
        let n = (&mut reader)
            .take(SLICE as u64)
            .read_to_end(&mut out)
            .map_err(Bounded::Io)?;
        if out.len() as u64 > max {
            return Err(Bounded::TooLarge);
        }
        if n == 0 || out.len() - before < SLICE {
            return Ok(out);
        }
        tokio::task::yield_now().await;
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    const TEXT: &[u8] = b"status: healthy\nversion: 1.2.3\n";

    fn gzip(b: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    }

    fn zlib(b: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    }

    fn raw_deflate(b: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    }

    fn br(b: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
            w.write_all(b).unwrap();
        }
        out
    }

    fn zstd(b: &[u8]) -> Vec<u8> {
        ruzstd::encoding::compress_to_vec(b, ruzstd::encoding::CompressionLevel::Fastest)
    }

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_ENCODING, v.parse().unwrap());
        h
    }

    fn roundtrip(encoding: &str, body: Vec<u8>, max: u64) -> Result<Bytes, DecodeError> {
        let codings = codings(&headers(encoding))?;
        block_on(decode(Bytes::from(body), &codings, max))
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn every_coding_decodes() {
        for (name, body) in [
            ("gzip", gzip(TEXT)),
            ("x-gzip", gzip(TEXT)),
            ("deflate", zlib(TEXT)),
            ("deflate", raw_deflate(TEXT)),
            ("br", br(TEXT)),
            ("zstd", zstd(TEXT)),
            ("identity", TEXT.to_vec()),
            ("GZIP", gzip(TEXT)),
        ] {
            assert_eq!(roundtrip(name, body, 1024).unwrap(), TEXT, "{name}");
        }
    }

    #[test]
    fn stacked_codings_are_undone_in_reverse() {
        let body = br(&gzip(TEXT));
        assert_eq!(roundtrip("gzip, br", body, 1024).unwrap(), TEXT);
        let mut h = HeaderMap::new();
        h.append(CONTENT_ENCODING, "zstd".parse().unwrap());
        h.append(CONTENT_ENCODING, "gzip".parse().unwrap());
        let c = codings(&h).unwrap();
        assert_eq!(c, [Coding::Zstd, Coding::Gzip]);
        assert_eq!(
            block_on(decode(Bytes::from(gzip(&zstd(TEXT))), &c, 1024)).unwrap(),
            TEXT
        );
    }

    #[test]
    fn bombs_stop_at_max_body() {
        // 8 MiB of zeros: a few KiB compressed, eight times the limit once decoded.
        let zeros = vec![0u8; 8 << 20];
        for (name, body) in [
            ("gzip", gzip(&zeros)),
            ("deflate", zlib(&zeros)),
            ("br", br(&zeros)),
            ("zstd", zstd(&zeros)),
        ] {
            assert!(
                body.len() < 512 << 10,
                "{name} bomb is {} bytes",
                body.len()
            );
            assert_eq!(
                roundtrip(name, body, 1 << 20),
                Err(DecodeError::TooLarge(1 << 20)),
                "{name}"
            );
        }
        // Bodies larger than one slice decode whole.
        let big: Vec<u8> = (0..3 * SLICE + 17).map(|i| (i % 251) as u8).collect();
        assert_eq!(roundtrip("gzip", gzip(&big), 4 << 20).unwrap(), big);
        assert_eq!(roundtrip("br", br(&big), 4 << 20).unwrap(), big);
        assert_eq!(roundtrip("zstd", zstd(&big), 4 << 20).unwrap(), big);
        // Exactly at the limit is fine.
        assert_eq!(
            roundtrip("gzip", gzip(TEXT), TEXT.len() as u64).unwrap(),
            TEXT
        );
        assert!(matches!(
            roundtrip("gzip", gzip(TEXT), TEXT.len() as u64 - 1),
            Err(DecodeError::TooLarge(_))
        ));
    }

    #[test]
    fn large_bodies_yield_so_a_timeout_can_end_them() {
        // 8 MiB of zeros under a 64 MiB limit: 32 slices. A decoder that never yielded would
        // finish inside the first poll and beat even a zero timeout.
        let body = Bytes::from(gzip(&vec![0u8; 8 << 20]));
        let c = [Coding::Gzip];
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let cut = rt.block_on(async {
            tokio::time::timeout(
                std::time::Duration::ZERO,
                decode(body.clone(), &c, 64 << 20),
            )
            .await
        });
        assert!(cut.is_err(), "decoding did not yield");
        let whole = rt.block_on(decode(body, &c, 64 << 20)).unwrap();
        assert_eq!(whole.len(), 8 << 20);
    }

    #[test]
    fn hostile_encodings_fail_cleanly() {
        for (encoding, body) in [
            ("gzip", b"not gzip at all".to_vec()),
            ("gzip", gzip(TEXT)[..10].to_vec()),
            ("deflate", vec![0xff; 40]),
            ("br", vec![0xff; 40]),
            ("zstd", b"\x28\xb5\x2f\xfd garbage".to_vec()),
            ("zstd", vec![0u8; 3]),
        ] {
            let err = roundtrip(encoding, body, 1024).unwrap_err();
            assert!(
                matches!(err, DecodeError::Corrupt { .. }),
                "{encoding}: {err:?}"
            );
        }
        assert_eq!(
            roundtrip("compress", TEXT.to_vec(), 1024),
            Err(DecodeError::Unsupported("compress".into()))
        );
        assert_eq!(
            roundtrip("gzip, gzip, gzip, gzip, gzip", TEXT.to_vec(), 1024),
            Err(DecodeError::TooManyCodings)
        );
        // An empty body is not decoded (HEAD, 204, 304).
        assert_eq!(roundtrip("gzip", Vec::new(), 1024).unwrap(), "");
    }
}
