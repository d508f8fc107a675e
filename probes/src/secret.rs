//! Secrets: values read from the environment. They are wrapped from the moment they are read,
//! and every text that leaves vantage (reports, logs, evidence, error messages) passes through a
//! [`Redactor`] that knows them all. Probes redact their own evidence before they shorten it, so
//! a target that echoes a token back cannot leak even a prefix of it.

use std::borrow::Cow;
use std::fmt;

use crate::outcome::Outcome;

/// What a secret is replaced with.
pub const MASK: &str = "***";

/// A value from the environment. Debug and Display print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The real value, for the one place that needs it (building a request).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

/// Replaces every known secret value in a text with `***`, in every form a target may echo it
/// back in: raw, JSON-escaped (`\"`, `\\`, `\/`, `\uXXXX` in either case), XML/HTML-escaped,
/// percent-encoded (`%XX` in either case, space as `%20` or `+`, any mix of encoded and plain
/// characters) and base64 (standard and URL-safe, padded or not, and inside a longer base64 text
/// such as a basic-auth header at any alignment).
#[derive(Clone, Default, Debug)]
pub struct Redactor {
    /// Longest first, so a secret that contains another is masked whole.
    secrets: Vec<Secret>,
    /// Every literal form of every secret (raw included), longest first.
    forms: Vec<String>,
}

/// Base64 cores shorter than this are not masked on their own: a few characters of base64
/// occur by chance in ordinary text. (The full encodings of a secret are always masked.)
const MIN_BASE64_CORE: usize = 8;

/// `s` with JSON string escapes: `slash` also escapes `/`; `unicode` escapes every non-ASCII
/// character as `\uXXXX` (surrogate pairs above the BMP), in upper-case hex when `upper`.
fn json_escaped(s: &str, slash: bool, unicode: bool, upper: bool) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(s.len() + 8);
    let hex = |out: &mut String, u: u16| {
        if upper {
            let _ = write!(out, "\\u{u:04X}");
        } else {
            let _ = write!(out, "\\u{u:04x}");
        }
    };
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' if slash => out.push_str("\\/"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => hex(&mut out, c as u16),
            c if unicode && !c.is_ascii() => {
                let mut buf = [0u16; 2];
                for u in c.encode_utf16(&mut buf) {
                    hex(&mut out, *u);
                }
            }
            c => out.push(c),
        }
    }
    out
}

fn xml_escaped(s: &str, apos: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', apos)
}

/// The base64 forms of `s`: its full encodings, and the characters that depend only on `s` when
/// it sits at byte offset 0, 1 or 2 of a longer encoded text.
fn base64_forms(s: &[u8]) -> Vec<String> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    use base64::Engine as _;
    let mut out = Vec::new();
    for engine in [&STANDARD, &URL_SAFE] {
        out.push(engine.encode(s));
    }
    for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
        out.push(engine.encode(s));
        for k in 0..3usize {
            let mut data = vec![0u8; k];
            data.extend_from_slice(s);
            let text = engine.encode(&data);
            // Character i encodes bits [6i, 6i + 6): keep those entirely inside `s`.
            let first = (8 * k).div_ceil(6);
            let end = (8 * (k + s.len())) / 6;
            if end > first && end - first >= MIN_BASE64_CORE {
                out.push(text[first..end].to_string());
            }
        }
    }
    out
}

/// Every literal form of `s` [`Redactor::redact`] masks (the percent-encoded ones are matched by
/// decoding instead: they are too many to list).
fn forms_of(s: &str) -> Vec<String> {
    let mut forms = vec![s.to_string()];
    for slash in [false, true] {
        for (unicode, upper) in [(false, false), (true, false), (true, true)] {
            forms.push(json_escaped(s, slash, unicode, upper));
        }
    }
    forms.push(xml_escaped(s, "&#39;"));
    forms.push(xml_escaped(s, "&apos;"));
    forms.push(xml_escaped(s, "&#x27;"));
    forms.extend(base64_forms(s.as_bytes()));
    forms
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Where a percent-encoded form of `secret` that starts at `text[i]` ends: each byte of the
/// secret may appear as itself, as `%XX` (either case), or (a space) as `+`.
fn percent_match(text: &[u8], i: usize, secret: &[u8]) -> Option<usize> {
    let mut j = i;
    for &want in secret {
        let at = text.get(j..)?;
        match at {
            [b'%', h, l, ..]
                if hex_value(*h).zip(hex_value(*l)).map(|(h, l)| h * 16 + l) == Some(want) =>
            {
                j += 3;
            }
            [b'+', ..] if want == b' ' => j += 1,
            [c, ..] if *c == want => j += 1,
            _ => return None,
        }
    }
    Some(j)
}

impl Redactor {
    pub fn add(&mut self, secret: Secret) {
        if secret.expose().is_empty() || self.secrets.contains(&secret) {
            return;
        }
        for form in forms_of(secret.expose()) {
            if !form.is_empty() && !self.forms.contains(&form) {
                self.forms.push(form);
            }
        }
        self.forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
        self.secrets.push(secret);
        self.secrets
            .sort_by_key(|s| std::cmp::Reverse(s.expose().len()));
    }

    pub fn extend(&mut self, other: &Redactor) {
        for s in &other.secrets {
            self.add(s.clone());
        }
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// Length of the longest form of a secret in bytes (a percent-encoded one is at most three
    /// times the secret): how much of a text may hold one.
    pub fn longest(&self) -> usize {
        let raw = self.secrets.first().map_or(0, |s| s.expose().len());
        let form = self.forms.first().map_or(0, String::len);
        form.max(raw * 3)
    }

    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for f in &self.forms {
            if out.contains(f.as_str()) {
                out = Cow::Owned(out.replace(f.as_str(), MASK));
            }
        }
        if self.secrets.is_empty() || !out.contains(['%', '+']) {
            return out;
        }
        if let Some(clean) = self.redact_percent(&out) {
            out = Cow::Owned(clean);
        }
        out
    }

    /// Mask percent-encoded forms; `None` when there is none.
    fn redact_percent(&self, text: &str) -> Option<String> {
        let bytes = text.as_bytes();
        let mut out = String::new();
        let mut copied = 0;
        let mut i = 0;
        while i < bytes.len() {
            let end = text.is_char_boundary(i).then(|| {
                self.secrets.iter().find_map(|s| {
                    percent_match(bytes, i, s.expose().as_bytes())
                        .filter(|&end| text.is_char_boundary(end))
                })
            });
            match end.flatten() {
                Some(end) => {
                    out.push_str(&text[copied..i]);
                    out.push_str(MASK);
                    copied = end;
                    i = end;
                }
                None => i += 1,
            }
        }
        if copied == 0 {
            return None;
        }
        out.push_str(&text[copied..]);
        Some(out)
    }

    pub fn redact_in_place(&self, text: &mut String) {
        if let Cow::Owned(clean) = self.redact(text) {
            *text = clean;
        }
    }

    /// Scrub every free-text field of an outcome.
    pub fn outcome(&self, outcome: &mut Outcome) {
        if self.secrets.is_empty() {
            return;
        }
        self.redact_in_place(&mut outcome.evidence);
        let facts = &mut outcome.facts;
        if let Some(tls) = &mut facts.tls {
            if let Some(d) = &mut tls.verify_detail {
                self.redact_in_place(d);
            }
            for c in &mut tls.chain {
                self.redact_in_place(&mut c.subject);
                self.redact_in_place(&mut c.issuer);
                c.sans.iter_mut().for_each(|s| self.redact_in_place(s));
            }
        }
        if let Some(h) = &mut facts.health {
            self.redact_in_place(&mut h.status);
            for c in &mut h.checks {
                self.redact_in_place(&mut c.name);
                self.redact_in_place(&mut c.status);
            }
        }
        for step in &mut facts.steps {
            self.redact_in_place(&mut step.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_print_as_mask() {
        let s = Secret::new("hunter2".into());
        assert_eq!(format!("{s} {s:?}"), "*** ***");
    }

    #[test]
    fn longest_secret_wins() {
        let mut r = Redactor::default();
        r.add(Secret::new("abc".into()));
        r.add(Secret::new("abcdef".into()));
        r.add(Secret::new(String::new()));
        assert_eq!(r.redact("x abcdef y abc"), "x *** y ***");
        assert!(matches!(r.redact("nothing"), Cow::Borrowed(_)));
    }

    fn redactor(secret: &str) -> Redactor {
        let mut r = Redactor::default();
        r.add(Secret::new(secret.into()));
        r
    }

    #[test]
    fn json_escaped_forms() {
        let r = redactor("key\"SECRET\\abc/é😀");
        for text in [
            "key\\\"SECRET\\\\abc/é😀",
            "key\\\"SECRET\\\\abc\\/é😀",
            "key\\\"SECRET\\\\abc/\\u00e9\\ud83d\\ude00",
            "key\\\"SECRET\\\\abc\\/\\u00E9\\uD83D\\uDE00",
        ] {
            let echoed = format!("{{\"echo\":\"{text}\"}}");
            assert_eq!(r.redact(&echoed), "{\"echo\":\"***\"}", "{text}");
        }
        // What serde_json writes is one of them.
        let json = serde_json::to_string("key\"SECRET\\abc/é😀").unwrap();
        assert_eq!(r.redact(&json), "\"***\"");
    }

    #[test]
    fn percent_encoded_forms() {
        let r = redactor("uq SECRET\"/é");
        for text in [
            "uq%20SECRET%22%2F%C3%A9",
            "uq+SECRET%22/%c3%a9",
            "%75%71%20%53%45%43%52%45%54%22%2f%C3%A9",
            "uq%20SECRET\"/é",
        ] {
            let url = format!("http://h/?key={text}&x=1");
            assert_eq!(r.redact(&url), "http://h/?key=***&x=1", "{text}");
        }
        // A near miss stays.
        assert_eq!(r.redact("uq%20SECRE"), "uq%20SECRE");
        // The url crate's own encoding.
        let u = url::Url::parse("http://h/?key=uq SECRET\"/é").unwrap();
        assert!(!r.redact(u.as_str()).contains("SECRET"), "{u}");
    }

    #[test]
    fn base64_forms() {
        use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
        use base64::Engine as _;
        let secret = "p4ss?w>rd~~~";
        let r = redactor(secret);
        assert_eq!(r.redact(&STANDARD.encode(secret)), "***");
        assert_eq!(r.redact(&URL_SAFE_NO_PAD.encode(secret)), "***");
        // Inside a basic-auth header, whatever the user name's length.
        for user in ["", "a", "ab", "abc"] {
            let header = format!("Basic {}", STANDARD.encode(format!("{user}:{secret}")));
            let clean = r.redact(&header);
            assert!(clean.contains(MASK), "{user}: {clean}");
            let full = STANDARD.encode(secret);
            assert!(!clean.contains(&full[2..full.len() - 4]), "{user}: {clean}");
        }
    }

    #[test]
    fn xml_escaped_forms() {
        let r = redactor("a<b>&\"c'd");
        assert_eq!(r.redact("x a&lt;b&gt;&amp;&quot;c&#39;d y"), "x *** y");
        assert_eq!(r.redact("x a&lt;b&gt;&amp;&quot;c&apos;d y"), "x *** y");
    }

    #[test]
    fn hostile_texts_never_panic() {
        let r = redactor("é%+x");
        for text in ["%", "%%", "%C3", "%c3%a9%25%2B", "é%+x", "+++%%%ééé", "%e9"] {
            let _ = r.redact(text);
        }
        assert_eq!(r.redact("%C3%A9%25%2Bx"), "***");
    }
}
