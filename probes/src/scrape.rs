//! End-to-end flows (`kind = "scrape"`): ordered HTTP steps that share cookies and captured
//! variables. A step may poll (`until`) within the flow's timeout; the flow fails at the first
//! failing step, and its evidence names the step and the step's own reason.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue, COOKIE, SET_COOKIE};
use http::Method;
use regex::Regex;
use serde_json_path::JsonPath;
use tokio::time::Instant;
use url::Url;

use crate::expect::{element_text, HttpExpect, Response};
use crate::http::{exchange, ms, Request, Transport};
use crate::net::Failure;
use crate::outcome::{
    ConnFacts, Facts, HttpFacts, KindFacts, Outcome, Phases, Reason, ScrapeFacts, StepFacts,
};
use crate::secret::Redactor;
use crate::Clock;

/// Most steps in a flow.
pub const MAX_STEPS: usize = 64;
/// Longest captured value kept.
const MAX_CAPTURE: usize = 8 * 1024;
/// Most cookies a flow keeps (RFC 6265 §6.1 asks for at least 50 per domain).
pub const MAX_COOKIES: usize = 64;
/// Largest cookie kept, name, value and attributes together (RFC 6265 §6.1: at least 4096).
pub const MAX_COOKIE_BYTES: usize = 4096;

/// A flow's cookies, by RFC 6265 (Domain, Path, Max-Age/Expires, Secure, host-only), bounded in
/// count and size so a target that sets a new cookie on every poll cannot grow it without end.
#[derive(Debug, Default)]
pub struct CookieJar {
    store: cookie_store::CookieStore,
}

impl CookieJar {
    /// Keep the `Set-Cookie` headers of a response to `url`. Cookies past the bounds, or that
    /// RFC 6265 refuses (say, a Domain that is not the host's), are ignored.
    pub fn store(&mut self, url: &Url, headers: &HeaderMap) {
        for v in headers.get_all(SET_COOKIE) {
            let Ok(text) = v.to_str() else { continue };
            if text.len() > MAX_COOKIE_BYTES {
                continue;
            }
            let Ok(cookie) = cookie_store::Cookie::parse(text, url) else {
                continue;
            };
            let key = (
                String::from(&cookie.domain),
                String::from(&cookie.path),
                cookie.name().to_string(),
            );
            if !self.store.contains_any(&key.0, &key.1, &key.2) && !self.has_room() {
                continue;
            }
            let _ = self.store.insert(cookie.into_owned(), url);
        }
    }

    /// Room for one more cookie, after forgetting expired ones (the store keeps them).
    fn has_room(&mut self) -> bool {
        if self.store.iter_any().count() < MAX_COOKIES {
            return true;
        }
        let expired: Vec<(String, String, String)> = self
            .store
            .iter_any()
            .filter(|c| c.is_expired())
            .map(|c| {
                (
                    String::from(&c.domain),
                    String::from(&c.path),
                    c.name().to_string(),
                )
            })
            .collect();
        for (d, p, n) in expired {
            self.store.remove(&d, &p, &n);
        }
        self.store.iter_any().count() < MAX_COOKIES
    }

    /// Cookies held, expired ones included.
    pub fn len(&self) -> usize {
        self.store.iter_any().count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `Cookie` header for a request to `url`, if any cookie applies.
    pub fn header_for(&self, url: &Url) -> Option<HeaderValue> {
        let pairs: Vec<String> = self
            .store
            .get_request_values(url)
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if pairs.is_empty() {
            return None;
        }
        let mut v = HeaderValue::from_str(&pairs.join("; ")).ok()?;
        v.set_sensitive(true);
        Some(v)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Lit(String),
    Var(String),
}

/// A string with `{{ name }}` placeholders.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = s;
        while let Some(i) = rest.find("{{") {
            if i > 0 {
                parts.push(Part::Lit(rest[..i].to_string()));
            }
            let after = &rest[i + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| format!("unclosed \"{{{{\" in {s:?}"))?;
            let name = after[..end].trim();
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!(
                    "invalid variable name {name:?} in {s:?}: use letters, digits and _"
                ));
            }
            parts.push(Part::Var(name.to_string()));
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Lit(rest.to_string()));
        }
        Ok(Self { parts })
    }

    /// The variables the template uses.
    pub fn vars(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(v.as_str()),
            Part::Lit(_) => None,
        })
    }

    /// `Err` names the first undefined variable.
    pub fn render(&self, vars: &BTreeMap<String, String>) -> Result<String, String> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Lit(l) => out.push_str(l),
                Part::Var(v) => out.push_str(vars.get(v).ok_or_else(|| v.clone())?),
            }
        }
        Ok(out)
    }
}

/// Where a captured value comes from.
#[derive(Debug, Clone)]
pub enum Capture {
    /// The first value the path selects (strings as they are, others as JSON).
    Json(JsonPath, String),
    /// A response header (lowercase name).
    Header(String),
    /// The first group of the first match (or the whole match without groups).
    Regex(Regex),
    /// The text of the first element the selector finds.
    Css(scraper::Selector, String),
}

impl Capture {
    fn take(&self, resp: &Response) -> Option<String> {
        let text = resp.text();
        let v = match self {
            Capture::Json(path, _) => {
                let doc: serde_json::Value = serde_json::from_slice(&resp.body).ok()?;
                let node = path.query(&doc).all().into_iter().next()?;
                match node {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                }
            }
            Capture::Header(name) => resp.headers.get(name.as_str())?.to_str().ok()?.to_string(),
            Capture::Regex(re) => {
                let c = re.captures(&text)?;
                c.get(1).or_else(|| c.get(0))?.as_str().to_string()
            }
            Capture::Css(sel, _) => {
                let doc = scraper::Html::parse_document(&text);
                let first = doc.select(sel).next()?;
                element_text(&first)
            }
        };
        (v.len() <= MAX_CAPTURE).then_some(v)
    }

    fn describe(&self) -> String {
        match self {
            Capture::Json(_, p) => format!("JSONPath {p}"),
            Capture::Header(h) => format!("header {h}"),
            Capture::Regex(r) => format!("regex /{}/", r.as_str()),
            Capture::Css(_, s) => format!("css {s}"),
        }
    }
}

/// One step.
#[derive(Debug, Clone)]
pub struct StepSpec {
    pub name: String,
    pub method: Method,
    pub url: Template,
    pub headers: Vec<(HeaderName, Template)>,
    pub body: Option<Template>,
    pub expect: HttpExpect,
    pub captures: Vec<(String, Capture)>,
    /// Repeat the step until this holds (within the flow's timeout).
    pub until: Option<HttpExpect>,
    pub poll_interval: Duration,
}

/// A `kind = "scrape"` probe.
#[derive(Debug, Clone)]
pub struct FlowSpec {
    pub steps: Vec<StepSpec>,
    pub transport: Transport,
    /// For the whole flow.
    pub timeout: Duration,
    pub redactor: Redactor,
}

/// Where a flow is, so a timeout can say which step it hit.
struct Progress {
    step: String,
    attempts: u32,
    last: Option<String>,
    started: Instant,
}

fn step_failure(step: &str, f: Failure) -> Failure {
    let reason = if f.reason == Reason::CaptureMissing {
        Reason::CaptureMissing
    } else {
        Reason::StepFailed
    };
    Failure::new(reason, format!("step {step}: {}: {}", f.reason, f.evidence))
}

/// Run one flow from its scheduled start.
pub async fn run_flow(spec: &FlowSpec, clock: &Clock, scheduled: Instant) -> Outcome {
    let mut phases = Phases::default();
    let mut conn = ConnFacts::default();
    let mut facts = ScrapeFacts::default();
    let mut progress = Progress {
        step: String::new(),
        attempts: 0,
        last: None,
        started: scheduled,
    };
    let deadline = crate::deadline(scheduled, spec.timeout);
    let result = tokio::time::timeout_at(
        deadline,
        flow(
            clock,
            spec,
            &mut phases,
            &mut conn,
            &mut facts,
            &mut progress,
        ),
    )
    .await
    .unwrap_or_else(|_| {
        let mut evidence = format!(
            "step {}: timeout: the flow's {} ran out after {} attempt(s)",
            progress.step,
            ms(spec.timeout),
            progress.attempts
        );
        if let Some(l) = &progress.last {
            evidence.push_str(&format!("; last: {l}"));
        }
        facts.steps.push(StepFacts {
            name: progress.step.clone(),
            success: false,
            reason: Some(Reason::Timeout),
            status: None,
            duration: progress.started.elapsed(),
            attempts: progress.attempts,
        });
        Err(Failure::new(Reason::StepFailed, evidence))
    });
    let facts = Facts::new(conn, KindFacts::Scrape(facts));
    crate::finish(scheduled, phases, facts, result)
}

async fn flow(
    clock: &Clock,
    spec: &FlowSpec,
    phases: &mut Phases,
    conn: &mut ConnFacts,
    facts: &mut ScrapeFacts,
    progress: &mut Progress,
) -> Result<String, Failure> {
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    let mut cookies = CookieJar::default();
    for step in &spec.steps {
        progress.step = step.name.clone();
        progress.attempts = 0;
        progress.last = None;
        progress.started = Instant::now();
        let result = run_step(
            clock,
            spec,
            step,
            &mut vars,
            &mut cookies,
            phases,
            conn,
            &mut facts.last,
            progress,
        )
        .await;
        let status = facts.last.status;
        let failed = result.as_ref().err().map(|f| f.reason);
        facts.steps.push(StepFacts {
            name: step.name.clone(),
            success: result.is_ok(),
            reason: failed,
            status,
            duration: progress.started.elapsed(),
            attempts: progress.attempts,
        });
        result.map_err(|f| step_failure(&step.name, f))?;
    }
    Ok(format!("{} steps passed", spec.steps.len()))
}

#[allow(clippy::too_many_arguments)]
async fn run_step(
    clock: &Clock,
    spec: &FlowSpec,
    step: &StepSpec,
    vars: &mut BTreeMap<String, String>,
    cookies: &mut CookieJar,
    phases: &mut Phases,
    conn: &mut ConnFacts,
    facts: &mut HttpFacts,
    progress: &mut Progress,
) -> Result<(), Failure> {
    let missing = |v: String| {
        Failure::new(
            Reason::CaptureMissing,
            format!("{{{{ {v} }}}} is not defined"),
        )
    };
    loop {
        progress.attempts += 1;
        let url_text = step.url.render(vars).map_err(missing)?;
        let url = Url::parse(&url_text).map_err(|e| {
            Failure::new(
                Reason::Protocol,
                format!("invalid URL after templating: {e}"),
            )
        })?;
        let mut headers = HeaderMap::new();
        if let Some(v) = cookies.header_for(&url) {
            headers.insert(COOKIE, v);
        }
        for (name, t) in &step.headers {
            let value = t.render(vars).map_err(missing)?;
            let mut v = HeaderValue::from_str(&value).map_err(|_| {
                Failure::new(
                    Reason::Protocol,
                    format!("header {name} is not a valid value after templating"),
                )
            })?;
            v.set_sensitive(true);
            headers.insert(name.clone(), v);
        }
        let body = match &step.body {
            Some(t) => Some(Bytes::from(t.render(vars).map_err(missing)?)),
            None => None,
        };
        let req = Request {
            url: url.clone(),
            method: step.method.clone(),
            headers,
            body,
        };
        let mut addr = None;
        let resp = exchange(clock, &req, &spec.transport, phases, conn, facts, &mut addr).await?;
        cookies.store(&url, &resp.headers);
        if let Some(until) = &step.until {
            let mut scratch = HttpFacts::default();
            if let Err(f) = until.evaluate(&resp, &mut scratch, &spec.redactor) {
                progress.last = Some(format!("{}: {}", f.reason, f.evidence));
                tokio::time::sleep(step.poll_interval).await;
                continue;
            }
        }
        step.expect.evaluate(&resp, facts, &spec.redactor)?;
        for (name, c) in &step.captures {
            let v = c.take(&resp).ok_or_else(|| {
                Failure::new(
                    Reason::CaptureMissing,
                    format!("capture {name}: {} matched nothing", c.describe()),
                )
            })?;
            vars.insert(name.clone(), v);
        }
        return Ok(());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        let t = Template::parse("https://x/{{ job_id }}/r?{{a}}").unwrap();
        assert_eq!(t.vars().collect::<Vec<_>>(), ["job_id", "a"]);
        let mut vars = BTreeMap::new();
        vars.insert("job_id".to_string(), "42".to_string());
        assert_eq!(t.render(&vars), Err("a".to_string()));
        vars.insert("a".to_string(), "b".to_string());
        assert_eq!(t.render(&vars).unwrap(), "https://x/42/r?b");
        assert!(Template::parse("{{ x").is_err());
        assert!(Template::parse("{{ }}").is_err());
        assert!(Template::parse("{{ a-b }}").is_err());
        assert_eq!(Template::parse("plain").unwrap().vars().count(), 0);
    }
}

#[cfg(test)]
mod cookie_tests {
    use super::*;

    fn set(cookies: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for c in cookies {
            h.append(SET_COOKIE, HeaderValue::from_str(c).unwrap());
        }
        h
    }

    /// The Cookie header's pairs, sorted (the store's order is its own).
    fn header(jar: &CookieJar, url: &str) -> String {
        let h = jar
            .header_for(&Url::parse(url).unwrap())
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let mut pairs: Vec<&str> = h.split("; ").filter(|p| !p.is_empty()).collect();
        pairs.sort();
        pairs.join("; ")
    }

    #[test]
    fn attributes_are_honoured() {
        let mut jar = CookieJar::default();
        let from = Url::parse("https://app.example.com/login/form").unwrap();
        jar.store(
            &from,
            &set(&[
                "sid=1; Path=/",
                "api=2; Path=/api",
                "sec=3; Path=/; Secure",
                "gone=4; Path=/; Max-Age=0",
                "wide=5; Path=/; Domain=example.com",
                "evil=6; Path=/; Domain=other.example",
                "local=7",
            ]),
        );
        assert_eq!(
            header(&jar, "https://app.example.com/"),
            "sec=3; sid=1; wide=5"
        );
        let api = header(&jar, "https://app.example.com/api/v1");
        assert!(api.contains("api=2") && api.contains("sid=1"), "{api}");
        // Secure cookies never travel over plain HTTP.
        assert_eq!(header(&jar, "http://app.example.com/"), "sid=1; wide=5");
        // Domain: the parent domain's cookie reaches a sibling, host-only ones do not.
        assert_eq!(header(&jar, "https://www.example.com/"), "wide=5");
        assert_eq!(header(&jar, "https://other.example/"), "");
        // The default path is the directory of the URL that set it.
        assert_eq!(
            header(&jar, "https://app.example.com/login/x"),
            "local=7; sec=3; sid=1; wide=5"
        );
        // Max-Age=0 on a later response removes a cookie.
        jar.store(&from, &set(&["sid=1; Path=/; Max-Age=0"]));
        assert_eq!(header(&jar, "https://app.example.com/"), "sec=3; wide=5");
    }

    #[test]
    fn jar_is_bounded() {
        let mut jar = CookieJar::default();
        let url = Url::parse("http://t.example/poll").unwrap();
        for i in 0..1000 {
            jar.store(&url, &set(&[&format!("c{i}=v; Path=/p{i}")]));
            jar.store(&url, &set(&[&format!("d{i}=v; Path=/")]));
        }
        assert_eq!(jar.len(), MAX_COOKIES);
        // An oversized cookie is ignored; updates of known cookies still apply.
        let big = format!("d0={}; Path=/", "x".repeat(MAX_COOKIE_BYTES));
        jar.store(&url, &set(&[&big, "d1=updated; Path=/"]));
        let h = header(&jar, "http://t.example/");
        assert!(h.contains("d0=v") && h.contains("d1=updated"), "{h}");
        assert!(h.len() < MAX_COOKIES * 64, "{}", h.len());
        // Expired cookies make room for new ones.
        let expire: Vec<String> = (0..MAX_COOKIES)
            .map(|i| format!("d{i}=; Path=/; Max-Age=0"))
            .collect();
        let expire: Vec<&str> = expire.iter().map(String::as_str).collect();
        jar.store(&url, &set(&expire));
        jar.store(&url, &set(&["fresh=1; Path=/"]));
        assert_eq!(header(&jar, "http://t.example/"), "fresh=1");
        assert!(jar.len() <= MAX_COOKIES);
    }

    #[test]
    fn hostile_set_cookie_headers_are_ignored() {
        let mut jar = CookieJar::default();
        let url = Url::parse("http://t.example/").unwrap();
        jar.store(
            &url,
            &set(&[
                "",
                "=",
                "noequals",
                "; Path=/",
                "a=b; Domain=.",
                "a=b; Max-Age=-1",
            ]),
        );
        let h = header(&jar, "http://t.example/");
        assert!(!h.contains("a=b"), "{h}");
    }
}
