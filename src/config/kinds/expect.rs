//! HTTP expectations (`[probe.expect]` of http, a scrape step's `expect` and `until`): status,
//! body, headers, JSONPath, CSS, metrics, health, latency, certificate days.

use http::header::HeaderName;
use regex::Regex;
use serde_json_path::JsonPath;
use toml::Spanned;
use vantage_probes::{HttpExpect, JsonAssertion, JsonOp};

use crate::config::probe::duration_problem;
use crate::config::raw::{RawHttpExpect, RawJsonAssertion};
use crate::config::Ctx;

pub(super) fn compile_css(s: &Spanned<String>, ctx: &mut Ctx<'_>) -> Option<scraper::Selector> {
    scraper::Selector::parse(s.get_ref())
        .map_err(|e| {
            ctx.err(
                s.span().start,
                format!("invalid CSS selector {:?}: {e}", s.get_ref()),
            )
        })
        .ok()
}

pub(super) fn compile_regex(s: &Spanned<String>, ctx: &mut Ctx<'_>) -> Option<Regex> {
    Regex::new(s.get_ref())
        .map_err(|e| {
            // regex's message draws a caret diagram over several lines; keep its last line.
            let text = e.to_string();
            let why = text
                .lines()
                .last()
                .unwrap_or_default()
                .trim_start_matches("error: ")
                .to_string();
            ctx.err(
                s.span().start,
                format!("invalid regex {:?}: {why}", s.get_ref()),
            )
        })
        .ok()
}

pub(super) fn resolve_http_expect(
    e: Option<&Spanned<RawHttpExpect>>,
    ctx: &mut Ctx<'_>,
) -> Option<HttpExpect> {
    let mut out = HttpExpect::default();
    let Some(e) = e else { return Some(out) };
    let before = ctx.errors.len();
    let e = e.get_ref();
    if let Some(s) = &e.status {
        out.status = s.get_ref().0.clone();
    }
    out.body_contains = e
        .body_contains
        .as_ref()
        .map(|b| b.get_ref().clone())
        .unwrap_or_default();
    out.body_regex = e
        .body_regex
        .iter()
        .flatten()
        .filter_map(|r| compile_regex(r, ctx))
        .collect();
    out.body_not_regex = e
        .body_not_regex
        .iter()
        .flatten()
        .filter_map(|r| compile_regex(r, ctx))
        .collect();
    for (name, re) in e.headers.iter().flatten() {
        if HeaderName::from_bytes(name.as_bytes()).is_err() {
            ctx.err(re.span().start, format!("invalid header name {name:?}"));
        }
        if let Some(r) = compile_regex(re, ctx) {
            out.headers.push((name.to_ascii_lowercase(), r));
        }
    }
    for (name, re) in e.headers_not.iter().flatten() {
        if HeaderName::from_bytes(name.as_bytes()).is_err() {
            ctx.err(re.span().start, format!("invalid header name {name:?}"));
        }
        if let Some(r) = compile_regex(re, ctx) {
            out.headers_not.push((name.to_ascii_lowercase(), r));
        }
    }
    out.ssl = e.ssl.as_ref().map(|s| *s.get_ref());
    out.json = e
        .json
        .iter()
        .flatten()
        .filter_map(|j| resolve_json_assertion(j, ctx))
        .collect();
    out.health = e.health.as_ref().is_some_and(|h| *h.get_ref());
    for c in e.css.iter().flatten() {
        let at = c.span().start;
        let c = c.get_ref();
        let checks = [
            c.text.is_some(),
            c.matches.is_some(),
            c.count.is_some(),
            c.exists.is_some(),
        ];
        if checks.iter().filter(|x| **x).count() != 1 {
            ctx.err(
                at,
                "a CSS assertion takes exactly one of: text, matches, count, exists",
            );
            continue;
        }
        let check = if let Some(t) = &c.text {
            Some(vantage_probes::CssCheck::Text(t.clone()))
        } else if let Some(m) = &c.matches {
            compile_regex(m, ctx).map(vantage_probes::CssCheck::Matches)
        } else if let Some(n) = c.count {
            Some(vantage_probes::CssCheck::Count(n as usize))
        } else {
            Some(vantage_probes::CssCheck::Exists(c.exists.unwrap_or(true)))
        };
        if let (Some(selector), Some(check)) = (compile_css(&c.selector, ctx), check) {
            out.css.push(vantage_probes::CssAssertion {
                selector,
                selector_text: c.selector.get_ref().clone(),
                check,
            });
        }
    }
    for m in e.metrics.iter().flatten() {
        let at = m.span().start;
        let m = m.get_ref();
        let ops: Vec<vantage_probes::MetricOp> = [
            m.lt.map(vantage_probes::MetricOp::Lt),
            m.gt.map(vantage_probes::MetricOp::Gt),
            m.equals.map(vantage_probes::MetricOp::Equals),
            m.exists.map(vantage_probes::MetricOp::Exists),
        ]
        .into_iter()
        .flatten()
        .collect();
        if ops.len() != 1 {
            ctx.err(
                at,
                "a metrics assertion takes exactly one of: lt, gt, equals, exists",
            );
            continue;
        }
        match vantage_probes::exposition::Selector::parse(m.series.get_ref()) {
            Ok(selector) => out.metrics.push(vantage_probes::MetricAssertion {
                selector,
                op: ops[0],
            }),
            Err(e) => ctx.err(m.series.span().start, e),
        }
    }
    out.latency_under = e.latency_under.as_ref().map(|l| l.get_ref().0);
    if let Some(l) = &e.latency_under {
        if let Some(problem) = duration_problem("latency_under", l.get_ref().0) {
            ctx.err(l.span().start, problem);
        }
    }
    if let Some(d) = &e.cert_min_days {
        if !d.get_ref().is_finite() || *d.get_ref() < 0.0 {
            ctx.err(d.span().start, "cert_min_days must be a number of days ≥ 0");
        }
        out.cert_min_days = Some(*d.get_ref());
    }
    (ctx.errors.len() == before).then_some(out)
}

fn toml_to_json(v: &toml::Value) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

/// Most recursive descents (`..`) in one JSONPath. Evaluation runs on the body synchronously:
/// each further descent multiplies the work by the document's size (`$..a..a..a…` over a
/// nested body took minutes and gigabytes), while one is linear.
const MAX_JSONPATH_DESCENTS: usize = 1;

/// A JSONPath, refused when it could take more than linear time on a hostile body.
pub(super) fn parse_json_path(text: &str) -> Result<JsonPath, String> {
    let path = JsonPath::parse(text).map_err(|e| e.to_string())?;
    if text.matches("..").count() > MAX_JSONPATH_DESCENTS {
        return Err(format!(
            "at most {MAX_JSONPATH_DESCENTS} recursive descent (`..`) per path: each one more multiplies the work by the body's size"
        ));
    }
    Ok(path)
}

fn resolve_json_assertion(
    j: &Spanned<RawJsonAssertion>,
    ctx: &mut Ctx<'_>,
) -> Option<JsonAssertion> {
    let at = j.span().start;
    let j = j.get_ref();
    let path = parse_json_path(j.path.get_ref())
        .map_err(|e| {
            ctx.err(
                j.path.span().start,
                format!("invalid JSONPath {:?}: {e}", j.path.get_ref()),
            )
        })
        .ok();
    let mut ops = Vec::new();
    if let Some(v) = &j.equals {
        ops.push(JsonOp::Equals(toml_to_json(v)));
    }
    if let Some(v) = &j.not_equals {
        ops.push(JsonOp::NotEquals(toml_to_json(v)));
    }
    if let Some(m) = &j.matches {
        ops.extend(compile_regex(m, ctx).map(JsonOp::Matches));
    }
    if let Some(e) = j.exists {
        ops.push(JsonOp::Exists(e));
    }
    if let Some(x) = j.lt {
        ops.push(JsonOp::Lt(x));
    }
    if let Some(x) = j.gt {
        ops.push(JsonOp::Gt(x));
    }
    if ops.len() != 1 {
        ctx.err(
            at,
            format!(
                "a JSON assertion takes exactly one of: equals, not_equals, matches, exists, lt, gt (found {})",
                ops.len()
            ),
        );
        return None;
    }
    Some(JsonAssertion {
        path: path?,
        path_text: j.path.get_ref().clone(),
        op: ops.pop()?,
    })
}
