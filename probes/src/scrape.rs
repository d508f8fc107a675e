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
use crate::outcome::{Facts, Outcome, Phases, Reason, StepFacts};
use crate::secret::Redactor;

/// Most steps in a flow.
pub const MAX_STEPS: usize = 64;
/// Longest captured value kept.
const MAX_CAPTURE: usize = 8 * 1024;

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
pub async fn run_flow(spec: &FlowSpec, scheduled: Instant) -> Outcome {
    let mut phases = Phases::default();
    let mut facts = Facts::default();
    let mut progress = Progress {
        step: String::new(),
        attempts: 0,
        last: None,
        started: scheduled,
    };
    let deadline = crate::deadline(scheduled, spec.timeout);
    let result =
        tokio::time::timeout_at(deadline, flow(spec, &mut phases, &mut facts, &mut progress))
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
    crate::finish(scheduled, phases, facts, result)
}

async fn flow(
    spec: &FlowSpec,
    phases: &mut Phases,
    facts: &mut Facts,
    progress: &mut Progress,
) -> Result<String, Failure> {
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    let mut cookies: BTreeMap<String, String> = BTreeMap::new();
    for step in &spec.steps {
        progress.step = step.name.clone();
        progress.attempts = 0;
        progress.last = None;
        progress.started = Instant::now();
        let result = run_step(spec, step, &mut vars, &mut cookies, phases, facts, progress).await;
        let status = facts.status;
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

async fn run_step(
    spec: &FlowSpec,
    step: &StepSpec,
    vars: &mut BTreeMap<String, String>,
    cookies: &mut BTreeMap<String, String>,
    phases: &mut Phases,
    facts: &mut Facts,
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
        if !cookies.is_empty() {
            let jar: Vec<String> = cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
            if let Ok(v) = HeaderValue::from_str(&jar.join("; ")) {
                headers.insert(COOKIE, v);
            }
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
            url,
            method: step.method.clone(),
            headers,
            body,
        };
        let mut addr = None;
        let resp = exchange(&req, &spec.transport, phases, facts, &mut addr).await?;
        for v in resp.headers.get_all(SET_COOKIE) {
            if let Some((k, val)) = v
                .to_str()
                .ok()
                .and_then(|s| s.split(';').next())
                .and_then(|c| c.split_once('='))
            {
                cookies.insert(k.trim().to_string(), val.trim().to_string());
            }
        }
        if let Some(until) = &step.until {
            let mut scratch = Facts::default();
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
