//! A small, bounded parser for the Prometheus text exposition format, and series selectors
//! (`queue_size{queue_name="scrape:http"}`) to pick samples from it. Written by hand because
//! it only needs samples (no types, no timestamps' semantics), must never panic on hostile
//! input, and is fuzzed (`fuzz/fuzz_targets/exposition.rs`).

use regex::Regex;

/// Most samples read from one body.
pub const MAX_SAMPLES: usize = 100_000;
/// Most labels on one sample.
pub const MAX_LABELS: usize = 64;

/// One sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// Parse exposition text. `Err` names the first line that is not a sample, comment or blank.
pub fn parse(text: &str) -> Result<Vec<Sample>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if out.len() >= MAX_SAMPLES {
            return Err(format!("more than {MAX_SAMPLES} samples"));
        }
        let sample = parse_line(line).map_err(|e| format!("line {}: {e}", i + 1))?;
        out.push(sample);
    }
    Ok(out)
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

fn take_name(s: &str) -> Option<(&str, &str)> {
    let mut end = 0;
    for (i, c) in s.char_indices() {
        let ok = if i == 0 {
            is_name_start(c)
        } else {
            is_name_char(c)
        };
        if !ok {
            break;
        }
        end = i + c.len_utf8();
    }
    (end > 0).then(|| (&s[..end], &s[end..]))
}

/// A quoted label value; returns it unescaped and the rest after the closing quote.
fn take_quoted(s: &str) -> Result<(String, &str), String> {
    let mut chars = s.char_indices();
    if chars.next().map(|(_, c)| c) != Some('"') {
        return Err("expected '\"'".into());
    }
    let mut value = String::new();
    let mut escaped = false;
    for (i, c) in chars {
        if escaped {
            value.push(match c {
                'n' => '\n',
                other => other,
            });
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '"' {
            return Ok((value, &s[i + 1..]));
        } else {
            value.push(c);
        }
    }
    Err("unterminated label value".into())
}

type Labels = Vec<(String, String)>;

/// `{a="b",c="d"}` → labels and the rest.
fn take_labels(s: &str) -> Result<(Labels, &str), String> {
    let mut rest = s.strip_prefix('{').ok_or("expected '{'")?;
    let mut labels = Vec::new();
    loop {
        rest = rest.trim_start();
        if let Some(r) = rest.strip_prefix('}') {
            return Ok((labels, r));
        }
        if labels.len() >= MAX_LABELS {
            return Err(format!("more than {MAX_LABELS} labels"));
        }
        let (name, r) = take_name(rest).ok_or("expected a label name")?;
        let r = r
            .trim_start()
            .strip_prefix('=')
            .ok_or("expected '=' after a label name")?;
        let (value, r) = take_quoted(r.trim_start())?;
        labels.push((name.to_string(), value));
        rest = r.trim_start();
        if let Some(r) = rest.strip_prefix(',') {
            rest = r;
        } else if !rest.starts_with('}') {
            return Err("expected ',' or '}'".into());
        }
    }
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s
            .parse::<f64>()
            .map_err(|_| format!("invalid value {:?}", truncate(s))),
    }
}

fn truncate(s: &str) -> &str {
    let mut end = s.len().min(40);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn parse_line(line: &str) -> Result<Sample, String> {
    let (name, rest) = take_name(line).ok_or("expected a metric name")?;
    let (labels, rest) = if rest.starts_with('{') {
        take_labels(rest)?
    } else {
        (Vec::new(), rest)
    };
    let mut fields = rest.split_whitespace();
    let value = parse_value(fields.next().ok_or("expected a value")?)?;
    if let Some(ts) = fields.next() {
        ts.parse::<i64>()
            .map_err(|_| format!("invalid timestamp {:?}", truncate(ts)))?;
    }
    if fields.next().is_some() {
        return Err("unexpected text after the value".into());
    }
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// How a label matcher compares.
#[derive(Debug, Clone)]
pub enum MatchOp {
    Eq(String),
    Ne(String),
    Re(Regex),
    NotRe(Regex),
}

/// `name{label="v",other=~"re"}`: which samples a metrics assertion looks at.
#[derive(Debug, Clone)]
pub struct Selector {
    pub name: String,
    pub matchers: Vec<(String, MatchOp)>,
    /// As written, for evidence.
    pub text: String,
}

impl Selector {
    pub fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let (name, rest) = take_name(t)
            .ok_or_else(|| format!("invalid series selector {s:?}: expected a metric name"))?;
        let mut matchers = Vec::new();
        if !rest.trim().is_empty() {
            let mut r = rest
                .trim()
                .strip_prefix('{')
                .ok_or_else(|| format!("invalid series selector {s:?}: expected '{{'"))?;
            loop {
                r = r.trim_start();
                if let Some(after) = r.strip_prefix('}') {
                    if !after.trim().is_empty() {
                        return Err(format!("invalid series selector {s:?}: text after '}}'"));
                    }
                    break;
                }
                let (label, after) = take_name(r).ok_or_else(|| {
                    format!("invalid series selector {s:?}: expected a label name")
                })?;
                let after = after.trim_start();
                let (op, after) = if let Some(a) = after.strip_prefix("=~") {
                    ("=~", a)
                } else if let Some(a) = after.strip_prefix("!~") {
                    ("!~", a)
                } else if let Some(a) = after.strip_prefix("!=") {
                    ("!=", a)
                } else if let Some(a) = after.strip_prefix('=') {
                    ("=", a)
                } else {
                    return Err(format!(
                        "invalid series selector {s:?}: expected =, !=, =~ or !~"
                    ));
                };
                let (value, after) = take_quoted(after.trim_start())
                    .map_err(|e| format!("invalid series selector {s:?}: {e}"))?;
                let anchored = |v: &str| {
                    Regex::new(&format!("^(?:{v})$"))
                        .map_err(|e| format!("invalid regex in {s:?}: {e}"))
                };
                let m = match op {
                    "=" => MatchOp::Eq(value),
                    "!=" => MatchOp::Ne(value),
                    "=~" => MatchOp::Re(anchored(&value)?),
                    _ => MatchOp::NotRe(anchored(&value)?),
                };
                matchers.push((label.to_string(), m));
                r = after.trim_start();
                if let Some(a) = r.strip_prefix(',') {
                    r = a;
                } else if !r.starts_with('}') {
                    return Err(format!(
                        "invalid series selector {s:?}: expected ',' or '}}'"
                    ));
                }
            }
        }
        Ok(Self {
            name: name.to_string(),
            matchers,
            text: t.to_string(),
        })
    }

    pub fn matches(&self, s: &Sample) -> bool {
        if s.name != self.name {
            return false;
        }
        self.matchers.iter().all(|(label, op)| {
            let v = s
                .labels
                .iter()
                .find(|(k, _)| k == label)
                .map_or("", |(_, v)| v.as_str());
            match op {
                MatchOp::Eq(x) => v == x,
                MatchOp::Ne(x) => v != x,
                MatchOp::Re(r) => r.is_match(v),
                MatchOp::NotRe(r) => !r.is_match(v),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exposition() {
        let text = "# HELP q Queue.\n# TYPE q gauge\nqueue_size{queue_name=\"scrape:http\",x=\"a\\\"b\"} 123\nqueue_size{queue_name=\"other\"} 7 1700000000000\nup 1\nnan_metric NaN\n";
        let s = parse(text).unwrap();
        assert_eq!(s.len(), 4);
        assert_eq!(s[0].labels[1], ("x".into(), "a\"b".into()));
        let sel = Selector::parse("queue_size{queue_name=\"scrape:http\"}").unwrap();
        assert_eq!(
            s.iter()
                .filter(|x| sel.matches(x))
                .map(|x| x.value)
                .collect::<Vec<_>>(),
            [123.0]
        );
        let re = Selector::parse("queue_size{queue_name=~\"scrape:.*\"}").unwrap();
        assert_eq!(s.iter().filter(|x| re.matches(x)).count(), 1);
        assert_eq!(
            s.iter()
                .filter(|x| Selector::parse("up").unwrap().matches(x))
                .count(),
            1
        );
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        for bad in [
            "{",
            r#"x{a="b""#,
            "x 1 2 3",
            "x notanumber",
            "x{a=b} 1",
            "\u{0}",
            "é 1",
            r#"x{a="\"} 1"#,
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        for bad in [
            "",
            "1x",
            "x{",
            "x{a=\"b\" c=\"d\"}",
            "x{a~\"b\"}",
            "x{a=~\"(\"}",
            "x{a=\"b\"} y",
        ] {
            assert!(Selector::parse(bad).is_err(), "{bad:?}");
        }
    }
}
