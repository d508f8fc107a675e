//! Secrets: values read from the environment. They are wrapped from the moment they are read,
//! and every text that leaves vantage (reports, logs, evidence, error messages) passes through a
//! [`Redactor`] that knows them all. Probes redact their own evidence before they shorten it, so
//! a target that echoes a token back cannot leak even a prefix of it.

use std::borrow::Cow;
use std::fmt;

use crate::outcome::{HttpFacts, KindFacts, Outcome};

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
#[derive(Clone, Default)]
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

/// Where an encoded form of `secret` that starts at `text[i]` ends. Each character of the
/// secret may appear, independently of its neighbours, as itself; percent-encoded (each UTF-8
/// byte as itself or `%XX` in either case, a space as `+`); as a JSON escape (`\"`, `\\`, `\/`,
/// `\n`…, or `\uXXXX` in either case, surrogate pairs above the BMP); or as an HTML/XML
/// character reference (`&#83;`, `&#x53;` in any case and with leading zeros, `&amp;`, `&lt;`,
/// `&gt;`, `&quot;`, `&apos;`). Decoding instead of listing forms: the mixes are too many.
fn escaped_match(text: &[u8], i: usize, secret: &str) -> Option<usize> {
    let mut j = i;
    for c in secret.chars() {
        j = char_match(text, j, c)?;
    }
    Some(j)
}

/// Where one encoded form of `c` starting at `text[j]` ends.
fn char_match(text: &[u8], j: usize, c: char) -> Option<usize> {
    let at = text.get(j..)?;
    let mut utf8 = [0u8; 4];
    if let Some(n) = percent_bytes(at, c.encode_utf8(&mut utf8).as_bytes()) {
        return Some(j + n);
    }
    match at.first()? {
        b'\\' => json_escape_len(at, c).map(|n| j + n),
        b'&' => html_reference_len(at, c).map(|n| j + n),
        _ => None,
    }
}

/// Length of `want`'s bytes at the start of `at`, each literal, `%XX` or (a space) `+`.
fn percent_bytes(at: &[u8], want: &[u8]) -> Option<usize> {
    let mut k = 0;
    for &b in want {
        match at.get(k..)? {
            [b'%', h, l, ..]
                if hex_value(*h).zip(hex_value(*l)).map(|(h, l)| h * 16 + l) == Some(b) =>
            {
                k += 3;
            }
            [b'+', ..] if b == b' ' => k += 1,
            [x, ..] if *x == b => k += 1,
            _ => return None,
        }
    }
    Some(k)
}

/// Four hex digits at the start of `at`.
fn hex4(at: &[u8]) -> Option<u16> {
    let digits = at.get(..4)?;
    digits
        .iter()
        .try_fold(0u16, |acc, &d| Some(acc * 16 + u16::from(hex_value(d)?)))
}

/// Length of a JSON escape of `c` at the start of `at` (which starts with a backslash).
fn json_escape_len(at: &[u8], c: char) -> Option<usize> {
    let short = match c {
        '"' => Some(b'"'),
        '\\' => Some(b'\\'),
        '/' => Some(b'/'),
        '\n' => Some(b'n'),
        '\r' => Some(b'r'),
        '\t' => Some(b't'),
        '\u{8}' => Some(b'b'),
        '\u{c}' => Some(b'f'),
        _ => None,
    };
    if short.is_some() && at.get(1) == short.as_ref() {
        return Some(2);
    }
    if at.get(1) != Some(&b'u') {
        return None;
    }
    let mut units = [0u16; 2];
    let units = c.encode_utf16(&mut units);
    let mut k = 0;
    for u in units.iter() {
        if at.get(k) != Some(&b'\\') || at.get(k + 1) != Some(&b'u') {
            return None;
        }
        if hex4(at.get(k + 2..)?)? != *u {
            return None;
        }
        k += 6;
    }
    Some(k)
}

/// Length of an HTML/XML character reference to `c` at the start of `at` (which starts with `&`).
fn html_reference_len(at: &[u8], c: char) -> Option<usize> {
    for (name, is) in [
        (&b"&amp;"[..], '&'),
        (b"&lt;", '<'),
        (b"&gt;", '>'),
        (b"&quot;", '"'),
        (b"&apos;", '\''),
    ] {
        if c == is && at.starts_with(name) {
            return Some(name.len());
        }
    }
    if at.get(1) != Some(&b'#') {
        return None;
    }
    let (radix, start) = match at.get(2) {
        Some(b'x' | b'X') => (16u32, 3),
        _ => (10, 2),
    };
    let mut value: u32 = 0;
    let mut k = start;
    // At most 10 digits (leading zeros included): enough for any code point, bounded work.
    while let Some(&d) = at.get(k).filter(|_| k - start < 10) {
        let digit = match radix {
            16 => hex_value(d).map(u32::from),
            _ => d.is_ascii_digit().then(|| u32::from(d - b'0')),
        };
        let Some(digit) = digit else { break };
        value = value * radix + digit;
        k += 1;
    }
    (k > start && at.get(k) == Some(&b';') && value == c as u32).then_some(k + 1)
}

/// The forms are the secrets themselves (raw, escaped, base64): Debug shows only how many.
impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("secrets", &self.secrets.len())
            .finish_non_exhaustive()
    }
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

    /// Length of the longest form of a secret in bytes: how much of a text may hold one. An
    /// encoded character takes at most 14 bytes (`&#x` with ten digits and `;`), so a secret's
    /// encoded form is at most 14 times its length.
    pub fn longest(&self) -> usize {
        let raw = self.secrets.first().map_or(0, |s| s.expose().len());
        let form = self.forms.first().map_or(0, String::len);
        form.max(raw * 14)
    }

    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for f in &self.forms {
            if out.contains(f.as_str()) {
                out = Cow::Owned(out.replace(f.as_str(), MASK));
            }
        }
        if self.secrets.is_empty() || !out.contains(['%', '+', '\\', '&']) {
            return out;
        }
        if let Some(clean) = self.redact_encoded(&out) {
            out = Cow::Owned(clean);
        }
        out
    }

    /// Mask encoded forms (see [`escaped_match`]); `None` when there is none.
    fn redact_encoded(&self, text: &str) -> Option<String> {
        let bytes = text.as_bytes();
        let mut out = String::new();
        let mut copied = 0;
        let mut i = 0;
        while i < bytes.len() {
            let end = text.is_char_boundary(i).then(|| {
                self.secrets.iter().find_map(|s| {
                    escaped_match(bytes, i, s.expose()).filter(|&end| text.is_char_boundary(end))
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
        if let Some(tls) = &mut facts.conn.tls {
            if let Some(d) = &mut tls.verify_detail {
                self.redact_in_place(d);
            }
            for c in &mut tls.chain {
                self.redact_in_place(&mut c.subject);
                self.redact_in_place(&mut c.issuer);
                c.sans.iter_mut().for_each(|s| self.redact_in_place(s));
            }
        }
        // Every free-text field a target's answer can fill, kind by kind.
        match &mut facts.kind {
            KindFacts::Http(h) => self.http_facts(h),
            KindFacts::Scrape(sc) => {
                self.http_facts(&mut sc.last);
                for step in &mut sc.steps {
                    self.redact_in_place(&mut step.name);
                }
            }
            KindFacts::Tcp(t) => self.redact_in_place(&mut t.last_received),
            KindFacts::Dns(d) => {
                for rr in d
                    .answer
                    .iter_mut()
                    .chain(d.authority.iter_mut())
                    .chain(d.additional.iter_mut())
                {
                    self.redact_in_place(rr);
                }
            }
            KindFacts::Grpc(g) => {
                if let Some(m) = &mut g.message {
                    self.redact_in_place(m);
                }
                if let Some(m) = &mut g.serving_status {
                    self.redact_in_place(m);
                }
            }
            KindFacts::Tls | KindFacts::Icmp(_) => {}
        }
    }

    fn http_facts(&self, h: &mut HttpFacts) {
        if let Some(h) = &mut h.health {
            self.redact_in_place(&mut h.status);
            for c in &mut h.checks {
                self.redact_in_place(&mut c.name);
                self.redact_in_place(&mut c.status);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_character_escaped_is_still_masked() {
        let mut r = Redactor::default();
        r.add(Secret::new("Sup3r$ecret/\"tok+en=1".into()));
        let secret = "Sup3r$ecret/\"tok+en=1";
        let unicode_lower: String = secret
            .chars()
            .map(|c| format!("\\u{:04x}", c as u32))
            .collect();
        let unicode_upper: String = secret
            .chars()
            .map(|c| format!("\\u{:04X}", c as u32))
            .collect();
        let html_dec: String = secret.chars().map(|c| format!("&#{};", c as u32)).collect();
        let html_hex: String = secret
            .chars()
            .map(|c| format!("&#X{:06x};", c as u32))
            .collect();
        let mixed = "S\\u0075p3r%24ecret&#47;\\\"tok%2Ben=1";
        for form in [
            unicode_lower,
            unicode_upper,
            html_dec,
            html_hex,
            mixed.to_string(),
        ] {
            let text = format!("before {form} after");
            assert_eq!(r.redact(&text), "before *** after", "{form}");
        }
        // Not the secret: a near miss stays.
        assert_eq!(r.redact("&#83;up3r"), "&#83;up3r");
    }

    #[test]
    fn non_bmp_characters_match_as_surrogate_pairs() {
        let mut r = Redactor::default();
        r.add(Secret::new("k\u{1F600}y".into()));
        assert_eq!(r.redact("x k\\ud83d\\ude00y x"), "x *** x");
        assert_eq!(r.redact("x k&#128512;y x"), "x *** x");
    }

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
