//! Expectations on an HTTP response: status, headers, body, JSON, health documents.
//! Each failing check names what it wanted and what it got.

use std::time::Duration;

use http::HeaderMap;
use regex::Regex;
use serde::Deserialize;
use serde_json::Value;
use serde_json_path::JsonPath;

use crate::net::Failure;
use crate::outcome::{HealthCheck, HealthFacts, HttpFacts, Reason};
use crate::secret::Redactor;

/// One accepted status: an exact code or a class such as `2xx`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusPattern {
    Code(u16),
    /// The hundreds digit: 2 for `2xx`.
    Class(u8),
}

impl StatusPattern {
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        if let Ok(code) = s.parse::<u16>() {
            return (100..=599)
                .contains(&code)
                .then_some(StatusPattern::Code(code));
        }
        let b = s.as_bytes();
        if b.len() == 3 && (b'1'..=b'5').contains(&b[0]) && b[1..].eq_ignore_ascii_case(b"xx") {
            return Some(StatusPattern::Class(b[0] - b'0'));
        }
        None
    }

    pub fn matches(self, status: u16) -> bool {
        match self {
            StatusPattern::Code(c) => c == status,
            StatusPattern::Class(c) => status / 100 == u16::from(c),
        }
    }
}

impl std::fmt::Display for StatusPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StatusPattern::Code(c) => write!(f, "{c}"),
            StatusPattern::Class(c) => write!(f, "{c}xx"),
        }
    }
}

/// A comparison on the values a JSONPath selects.
#[derive(Debug, Clone)]
pub enum JsonOp {
    Equals(Value),
    NotEquals(Value),
    Matches(Regex),
    Exists(bool),
    Lt(f64),
    Gt(f64),
}

/// `{ path = "$.status", equals = "healthy" }`: every selected value must satisfy the op, and
/// (except for `exists = false`) at least one value must be selected.
#[derive(Debug, Clone)]
pub struct JsonAssertion {
    pub path: JsonPath,
    /// The path as written, for evidence.
    pub path_text: String,
    pub op: JsonOp,
}

impl JsonAssertion {
    /// `Err` holds why it does not hold, with secrets masked.
    pub fn check(&self, doc: &Value, redactor: &Redactor) -> Result<(), String> {
        self.check_raw(doc, redactor)
    }

    fn check_raw(&self, doc: &Value, redactor: &Redactor) -> Result<(), String> {
        let short = |v: &Value| short(v, redactor);
        let nodes = self.path.query(doc).all();
        let p = &self.path_text;
        if let JsonOp::Exists(want) = self.op {
            return match (want, nodes.is_empty()) {
                (true, true) => Err(format!("{p}: no value, expected one to exist")),
                (false, false) => Err(format!("{p}: found {}, expected none", short(nodes[0]))),
                _ => Ok(()),
            };
        }
        if nodes.is_empty() {
            return Err(format!("{p}: no value"));
        }
        for node in nodes {
            let ok = match &self.op {
                JsonOp::Equals(v) => json_eq(node, v),
                JsonOp::NotEquals(v) => !json_eq(node, v),
                JsonOp::Matches(re) => re.is_match(&as_text(node)),
                JsonOp::Lt(x) => node.as_f64().is_some_and(|n| n < *x),
                JsonOp::Gt(x) => node.as_f64().is_some_and(|n| n > *x),
                JsonOp::Exists(_) => true,
            };
            if !ok {
                let want = match &self.op {
                    JsonOp::Equals(v) => format!("equal to {v}"),
                    JsonOp::NotEquals(v) => format!("not equal to {v}"),
                    JsonOp::Matches(re) => format!("matching /{}/", re.as_str()),
                    JsonOp::Lt(x) => format!("a number < {x}"),
                    JsonOp::Gt(x) => format!("a number > {x}"),
                    JsonOp::Exists(_) => String::new(),
                };
                return Err(format!("{p}: got {}, expected {want}", short(node)));
            }
        }
        Ok(())
    }
}

/// Numbers compare by value (TOML `1` equals JSON `1.0`); everything else structurally.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn short(v: &Value, redactor: &Redactor) -> String {
    let mut s = redactor.redact(&v.to_string()).into_owned();
    if s.len() > 120 {
        let mut cut = 117;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

/// What a CSS assertion checks on the elements its selector finds.
#[derive(Debug, Clone)]
pub enum CssCheck {
    /// The first element's text (whitespace collapsed) equals this.
    Text(String),
    /// The first element's text matches this.
    Matches(Regex),
    /// Exactly this many elements.
    Count(usize),
    Exists(bool),
}

/// `{ selector = "h1.title", text = "Example Domain" }`.
#[derive(Debug, Clone)]
pub struct CssAssertion {
    pub selector: scraper::Selector,
    /// As written, for evidence.
    pub selector_text: String,
    pub check: CssCheck,
}

/// How a metrics assertion compares the selected samples.
#[derive(Debug, Clone, Copy)]
pub enum MetricOp {
    Lt(f64),
    Gt(f64),
    Equals(f64),
    Exists(bool),
}

/// `{ series = 'queue_size{queue_name="scrape:http"}', lt = 10000 }`: every selected sample
/// must satisfy the op, and at least one must exist (except `exists = false`).
#[derive(Debug, Clone)]
pub struct MetricAssertion {
    pub selector: crate::exposition::Selector,
    pub op: MetricOp,
}

/// An element's text with runs of whitespace collapsed to one space.
pub fn element_text(e: &scraper::ElementRef<'_>) -> String {
    e.text()
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Everything `[probe.expect]` can say about an HTTP response. All must hold.
#[derive(Debug, Clone)]
pub struct HttpExpect {
    /// Accepted statuses; empty means `2xx`.
    pub status: Vec<StatusPattern>,
    pub body_contains: Vec<String>,
    pub body_regex: Vec<Regex>,
    pub body_not_regex: Vec<Regex>,
    /// Lowercase header name and a regex one of its values must match.
    pub headers: Vec<(String, Regex)>,
    /// Lowercase header name and a regex none of its values may match.
    pub headers_not: Vec<(String, Regex)>,
    /// Whether the final request must (true) or must not (false) have used TLS.
    pub ssl: Option<bool>,
    pub json: Vec<JsonAssertion>,
    pub health: bool,
    pub latency_under: Option<Duration>,
    /// For https: the effective certificate expiry must be at least this many days away.
    pub cert_min_days: Option<f64>,
    pub css: Vec<CssAssertion>,
    pub metrics: Vec<MetricAssertion>,
}

impl Default for HttpExpect {
    fn default() -> Self {
        Self {
            status: vec![StatusPattern::Class(2)],
            body_contains: Vec::new(),
            body_regex: Vec::new(),
            body_not_regex: Vec::new(),
            headers: Vec::new(),
            headers_not: Vec::new(),
            ssl: None,
            json: Vec::new(),
            health: false,
            latency_under: None,
            cert_min_days: None,
            css: Vec::new(),
            metrics: Vec::new(),
        }
    }
}

/// The parts of a response that expectations look at.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: bytes::Bytes,
}

impl Response {
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }
}

/// The first bytes of a body, printable, for evidence. Secrets are masked before the text is
/// shortened, so the cut can never leave a prefix of one behind.
pub fn excerpt(body: &[u8], redactor: &Redactor) -> String {
    const MAX: usize = 160;
    let window = &body[..body.len().min(MAX + redactor.longest())];
    let text = String::from_utf8_lossy(window);
    let text = redactor.redact(&text);
    let mut out: String = text
        .chars()
        .take(MAX)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().count() > MAX || body.len() > window.len() {
        out.push_str("...");
    }
    format!("body {:?}", out.trim())
}

impl HttpExpect {
    /// Check the response (not latency: that needs the whole run). Records regex and health facts.
    pub(crate) fn evaluate(
        &self,
        resp: &Response,
        facts: &mut HttpFacts,
        redactor: &Redactor,
    ) -> Result<(), Failure> {
        let accepted: &[StatusPattern] = if self.status.is_empty() {
            &[StatusPattern::Class(2)]
        } else {
            &self.status
        };
        if !accepted.iter().any(|p| p.matches(resp.status)) {
            let want: Vec<String> = accepted.iter().map(|p| p.to_string()).collect();
            return Err(Failure::new(
                Reason::HttpStatus,
                format!(
                    "status {}, expected {}; {}",
                    resp.status,
                    want.join(" or "),
                    excerpt(&resp.body, redactor)
                ),
            ));
        }
        for (name, re) in &self.headers {
            let values: Vec<&str> = resp
                .headers
                .get_all(name.as_str())
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            if !values.iter().any(|v| re.is_match(v)) {
                let got = if values.is_empty() {
                    "missing".to_string()
                } else {
                    format!("{:?}", values.join(", "))
                };
                return Err(Failure::new(
                    Reason::AssertionHeader,
                    format!("header {name}: {got}, expected to match /{}/", re.as_str()),
                ));
            }
        }
        for (name, re) in &self.headers_not {
            let hit = resp
                .headers
                .get_all(name.as_str())
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find(|v| re.is_match(v));
            if let Some(v) = hit {
                return Err(Failure::new(
                    Reason::AssertionHeader,
                    format!(
                        "header {name}: {:?} matches /{}/, expected not to",
                        redactor.redact(v),
                        re.as_str()
                    ),
                ));
            }
        }
        if let Some(want) = self.ssl {
            if facts.ssl != want {
                let (got, expected) = if want {
                    ("plain HTTP", "TLS")
                } else {
                    ("TLS", "plain HTTP")
                };
                return Err(Failure::new(
                    Reason::Protocol,
                    format!("final request used {got}, expected {expected} (expect.ssl)"),
                ));
            }
        }
        let text = resp.text();
        for needle in &self.body_contains {
            if !text.contains(needle.as_str()) {
                return Err(Failure::new(
                    Reason::AssertionBody,
                    format!(
                        "body does not contain {needle:?}; {}",
                        excerpt(&resp.body, redactor)
                    ),
                ));
            }
        }
        for re in &self.body_regex {
            if !re.is_match(&text) {
                facts.failed_due_to_regex = true;
                return Err(Failure::new(
                    Reason::AssertionBody,
                    format!(
                        "body does not match /{}/; {}",
                        re.as_str(),
                        excerpt(&resp.body, redactor)
                    ),
                ));
            }
        }
        for re in &self.body_not_regex {
            if let Some(m) = re.find(&text) {
                facts.failed_due_to_regex = true;
                return Err(Failure::new(
                    Reason::AssertionBody,
                    format!(
                        "body matches /{}/ at {:?}",
                        re.as_str(),
                        excerpt(m.as_str().as_bytes(), redactor)
                    ),
                ));
            }
        }
        if !self.json.is_empty() {
            let doc: Value = serde_json::from_slice(&resp.body).map_err(|e| {
                Failure::new(
                    Reason::AssertionJson,
                    format!("body is not JSON ({e}); {}", excerpt(&resp.body, redactor)),
                )
            })?;
            for assertion in &self.json {
                assertion
                    .check(&doc, redactor)
                    .map_err(|why| Failure::new(Reason::AssertionJson, why))?;
            }
        }
        if self.health {
            let health = parse_health(&resp.body, redactor)?;
            let verdict = judge_health(&health);
            facts.health = Some(health);
            verdict?;
        }
        if !self.css.is_empty() {
            let doc = scraper::Html::parse_document(&text);
            for a in &self.css {
                check_css(&doc, a, redactor)
                    .map_err(|why| Failure::new(Reason::AssertionCss, why))?;
            }
        }
        if !self.metrics.is_empty() {
            let samples = crate::exposition::parse(&text).map_err(|e| {
                Failure::new(
                    Reason::AssertionMetrics,
                    format!(
                        "body is not Prometheus text exposition ({e}); {}",
                        excerpt(&resp.body, redactor)
                    ),
                )
            })?;
            for a in &self.metrics {
                check_metric(&samples, a)
                    .map_err(|why| Failure::new(Reason::AssertionMetrics, why))?;
            }
        }
        Ok(())
    }
}

fn check_css(doc: &scraper::Html, a: &CssAssertion, redactor: &Redactor) -> Result<(), String> {
    let found: Vec<scraper::ElementRef<'_>> = doc.select(&a.selector).collect();
    let sel = &a.selector_text;
    let first_text = || found.first().map(element_text);
    let show = |t: &str| {
        redactor
            .redact(&short(&Value::String(t.to_string()), redactor))
            .into_owned()
    };
    match &a.check {
        CssCheck::Exists(want) => match (want, found.is_empty()) {
            (true, true) => Err(format!("css {sel}: no element matches")),
            (false, false) => Err(format!(
                "css {sel}: {} elements match, expected none",
                found.len()
            )),
            _ => Ok(()),
        },
        CssCheck::Count(n) => (found.len() == *n)
            .then_some(())
            .ok_or_else(|| format!("css {sel}: {} elements, expected {n}", found.len())),
        CssCheck::Text(want) => match first_text() {
            None => Err(format!("css {sel}: no element matches")),
            Some(t) if t == *want => Ok(()),
            Some(t) => Err(format!(
                "css {sel}: text {}, expected {}",
                show(&t),
                show(want)
            )),
        },
        CssCheck::Matches(re) => match first_text() {
            None => Err(format!("css {sel}: no element matches")),
            Some(t) if re.is_match(&t) => Ok(()),
            Some(t) => Err(format!(
                "css {sel}: text {}, expected to match /{}/",
                show(&t),
                re.as_str()
            )),
        },
    }
}

fn check_metric(samples: &[crate::exposition::Sample], a: &MetricAssertion) -> Result<(), String> {
    let found: Vec<f64> = samples
        .iter()
        .filter(|s| a.selector.matches(s))
        .map(|s| s.value)
        .collect();
    let sel = &a.selector.text;
    if let MetricOp::Exists(want) = a.op {
        return match (want, found.is_empty()) {
            (true, true) => Err(format!("metrics {sel}: no such series")),
            (false, false) => Err(format!(
                "metrics {sel}: {} series, expected none",
                found.len()
            )),
            _ => Ok(()),
        };
    }
    if found.is_empty() {
        return Err(format!("metrics {sel}: no such series"));
    }
    for v in found {
        let (ok, want) = match a.op {
            MetricOp::Lt(x) => (v < x, format!("< {x}")),
            MetricOp::Gt(x) => (v > x, format!("> {x}")),
            MetricOp::Equals(x) => (v == x, format!("= {x}")),
            MetricOp::Exists(_) => (true, String::new()),
        };
        if !ok {
            return Err(format!("metrics {sel} = {v}, expected {want}"));
        }
    }
    Ok(())
}

#[derive(Deserialize)]
struct HealthDoc {
    status: String,
    #[serde(default)]
    checks: Vec<HealthDocCheck>,
}

#[derive(Deserialize)]
struct HealthDocCheck {
    name: String,
    status: String,
}

const MAX_HEALTH_CHECKS: usize = 256;

/// Read a health document: `{"status": "healthy|degraded|unhealthy", "checks": [{name, status}]}`.
pub(crate) fn parse_health(body: &[u8], redactor: &Redactor) -> Result<HealthFacts, Failure> {
    let doc: HealthDoc = serde_json::from_slice(body).map_err(|e| {
        Failure::new(
            Reason::AssertionHealth,
            format!(
                "body is not a health document ({e}); {}",
                excerpt(body, redactor)
            ),
        )
    })?;
    if doc.checks.len() > MAX_HEALTH_CHECKS {
        return Err(Failure::new(
            Reason::AssertionHealth,
            format!(
                "health document lists {} checks, more than {MAX_HEALTH_CHECKS}",
                doc.checks.len()
            ),
        ));
    }
    Ok(HealthFacts {
        status: doc.status.to_ascii_lowercase(),
        checks: doc
            .checks
            .into_iter()
            .map(|c| HealthCheck {
                name: c.name,
                status: c.status.to_ascii_lowercase(),
            })
            .collect(),
    })
}

/// `unhealthy` or any `fail` fails; `degraded` and `warn` pass. Unknown words fail: a health
/// endpoint that says something we cannot read is not known to be healthy.
fn judge_health(h: &HealthFacts) -> Result<(), Failure> {
    match h.status.as_str() {
        "healthy" | "degraded" => {}
        other => {
            return Err(Failure::new(
                Reason::AssertionHealth,
                format!("health status {other:?}, expected healthy or degraded"),
            ))
        }
    }
    for c in &h.checks {
        match c.status.as_str() {
            "pass" | "warn" => {}
            other => {
                return Err(Failure::new(
                    Reason::AssertionHealth,
                    format!("health check {:?} is {other:?}", c.name),
                ))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_patterns() {
        assert_eq!(StatusPattern::parse("2xx"), Some(StatusPattern::Class(2)));
        assert_eq!(StatusPattern::parse("404"), Some(StatusPattern::Code(404)));
        assert_eq!(StatusPattern::parse("6xx"), None);
        assert_eq!(StatusPattern::parse("99"), None);
        assert_eq!(StatusPattern::parse("2x"), None);
        assert!(StatusPattern::Class(2).matches(204));
        assert!(!StatusPattern::Class(2).matches(301));
    }

    fn assertion(path: &str, op: JsonOp) -> JsonAssertion {
        JsonAssertion {
            path: JsonPath::parse(path).unwrap(),
            path_text: path.into(),
            op,
        }
    }

    #[test]
    fn json_ops() {
        let doc: Value =
            serde_json::json!({"status": "ok", "n": 3, "items": [{"s": "a"}, {"s": "b"}]});
        assert!(assertion("$.status", JsonOp::Equals("ok".into()))
            .check(&doc, &Redactor::default())
            .is_ok());
        assert!(assertion("$.n", JsonOp::Equals(3.0.into()))
            .check(&doc, &Redactor::default())
            .is_ok());
        assert!(assertion("$.n", JsonOp::Lt(4.0))
            .check(&doc, &Redactor::default())
            .is_ok());
        assert!(assertion("$.n", JsonOp::Gt(4.0))
            .check(&doc, &Redactor::default())
            .is_err());
        assert!(assertion("$.missing", JsonOp::Exists(false))
            .check(&doc, &Redactor::default())
            .is_ok());
        assert!(assertion("$.missing", JsonOp::Equals(1.into()))
            .check(&doc, &Redactor::default())
            .is_err());
        let err = assertion("$.items[*].s", JsonOp::Equals("a".into()))
            .check(&doc, &Redactor::default())
            .unwrap_err();
        assert!(err.contains("\"b\""), "{err}");
        let re = Regex::new("^[ab]$").unwrap();
        assert!(assertion("$.items[*].s", JsonOp::Matches(re))
            .check(&doc, &Redactor::default())
            .is_ok());
    }

    #[test]
    fn health_documents() {
        let ok = parse_health(
            br#"{"status":"degraded","checks":[{"name":"db","status":"warn"}]}"#,
            &Redactor::default(),
        )
        .unwrap();
        assert!(judge_health(&ok).is_ok());
        let bad = parse_health(
            br#"{"status":"healthy","checks":[{"name":"db","status":"fail"}]}"#,
            &Redactor::default(),
        )
        .unwrap();
        assert!(judge_health(&bad).unwrap_err().evidence.contains("db"));
        assert!(parse_health(b"<html>", &Redactor::default()).is_err());
        assert!(parse_health(br#"{"status": 5}"#, &Redactor::default()).is_err());
    }

    #[test]
    fn excerpt_masks_secrets_before_cutting() {
        let mut r = Redactor::default();
        r.add(crate::secret::Secret::new("SECRET-TOKEN-VALUE".into()));
        let mut body = vec![b'a'; 150];
        body.extend_from_slice(b"SECRET-TOKEN-VALUE and more");
        let e = excerpt(&body, &r);
        assert!(!e.contains("SECRET"), "{e}");
        assert!(e.contains("***"), "{e}");
    }

    #[test]
    fn excerpt_is_short_and_printable() {
        let body = vec![b'a'; 1000];
        assert!(excerpt(&body, &Redactor::default()).len() < 200);
        assert_eq!(excerpt(b"a\r\nb", &Redactor::default()), "body \"a  b\"");
        assert_eq!(
            excerpt(&[0xff, 0xfe], &Redactor::default()),
            "body \"\u{fffd}\u{fffd}\""
        );
    }
}
