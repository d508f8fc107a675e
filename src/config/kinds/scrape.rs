//! `kind = "scrape"`: a flow of HTTP steps with captures, polling and per-step expectations.

use std::collections::BTreeMap;
use std::time::Duration;

use http::header::{HeaderName, CONTENT_TYPE};
use serde::Deserialize;
use toml::Spanned;
use vantage_probes::IpFamily;

use super::expect::{compile_css, compile_regex, parse_json_path, resolve_http_expect};
use super::http::{resolve_method, resolve_transport, TransportKeys};
use crate::config::probe::{duration_problem, parse_url, valid_name, Spec};
use crate::config::raw::{Dur, Kind, RawMetrics, RawProbeAlert, RawStep, RawTls, Size};
use crate::config::Ctx;

/// One `[[probe]]` of kind scrape.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScrape {
    pub name: Spanned<String>,
    pub kind: Spanned<Kind>,
    pub interval: Option<Spanned<Dur>>,
    pub timeout: Option<Spanned<Dur>>,
    pub labels: Option<BTreeMap<String, Spanned<String>>>,
    pub alert: Option<Spanned<RawProbeAlert>>,
    pub metrics: Option<Spanned<RawMetrics>>,
    /// The flow's steps, in order; each has its own `expect`.
    pub step: Option<Vec<Spanned<RawStep>>>,
    pub follow_redirects: Option<Spanned<bool>>,
    pub max_redirects: Option<Spanned<u32>>,
    pub max_body: Option<Spanned<Size>>,
    pub ip: Option<Spanned<IpFamily>>,
    pub proxy: Option<Spanned<String>>,
    pub tls: Option<Spanned<RawTls>>,
}

/// A scrape flow: steps in order, captures defined before they are used.
pub(super) fn resolve(
    p: &RawScrape,
    timeout: Duration,
    ctx: &mut Ctx<'_>,
) -> Option<(String, Spec)> {
    let Some(raw_steps) = p.step.as_ref().filter(|s| !s.is_empty()) else {
        ctx.err(
            p.name.span().start,
            "probe of kind \"scrape\" needs at least one [[probe.step]]",
        );
        return None;
    };
    if raw_steps.len() > vantage_probes::scrape::MAX_STEPS {
        ctx.err(
            p.name.span().start,
            format!("more than {} steps", vantage_probes::scrape::MAX_STEPS),
        );
    }
    let transport = resolve_transport(
        &TransportKeys {
            name: &p.name,
            follow_redirects: p.follow_redirects.as_ref(),
            max_redirects: p.max_redirects.as_ref(),
            max_body: p.max_body.as_ref(),
            ip: p.ip.as_ref(),
            proxy: p.proxy.as_ref(),
            tls: p.tls.as_ref(),
            source_ip: None,
            http_versions: None,
        },
        ctx,
    );
    let mut defined: Vec<String> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    let mut steps = Vec::new();
    for rs in raw_steps {
        let r = rs.get_ref();
        let name = r.name.get_ref().clone();
        if !valid_name(&name) {
            ctx.err(
                r.name.span().start,
                format!("invalid step name {name:?}: use a-z, 0-9, _ and -"),
            );
        } else if names.contains(&name) {
            ctx.err(r.name.span().start, format!("duplicate step name {name:?}"));
        }
        names.push(name.clone());
        let template = |t: &Spanned<String>,
                        ctx: &mut Ctx<'_>,
                        defined: &[String]|
         -> Option<vantage_probes::Template> {
            match vantage_probes::Template::parse(t.get_ref()) {
                Ok(tpl) => {
                    for v in tpl.vars() {
                        if !defined.iter().any(|d| d == v) {
                            ctx.err(
                                t.span().start,
                                format!(
                                    "capture {v:?} is used before it is defined (step {name:?})"
                                ),
                            );
                        }
                    }
                    Some(tpl)
                }
                Err(e) => {
                    ctx.err(t.span().start, e);
                    None
                }
            }
        };
        let url = template(&r.url, ctx, &defined);
        if let Some(u) = &url {
            if u.vars().next().is_none() {
                if let Err(e) = parse_url(r.url.get_ref()) {
                    ctx.err(r.url.span().start, e);
                }
            }
        }
        let method = resolve_method(r.method.as_ref(), ctx);
        let mut headers = Vec::new();
        let mut has_content_type = false;
        for (k, v) in r.headers.iter().flatten() {
            match HeaderName::from_bytes(k.as_bytes()) {
                Ok(h) => {
                    has_content_type |= h == CONTENT_TYPE;
                    if let Some(t) = template(v, ctx, &defined) {
                        headers.push((h, t));
                    }
                }
                Err(_) => ctx.err(v.span().start, format!("invalid header name {k:?}")),
            }
        }
        let body = match (&r.body, &r.json) {
            (Some(b), Some(_)) => {
                ctx.err(b.span().start, "set body or json, not both");
                None
            }
            (Some(b), None) => template(b, ctx, &defined),
            (None, Some(j)) => {
                let text = serde_json::to_string(j.get_ref()).unwrap_or_default();
                if !has_content_type {
                    if let Ok(t) = vantage_probes::Template::parse("application/json") {
                        headers.push((CONTENT_TYPE, t));
                    }
                }
                template(&Spanned::new(j.span(), text), ctx, &defined)
            }
            (None, None) => None,
        };
        let expect = resolve_http_expect(r.expect.as_ref(), ctx);
        let until = r.until.as_ref().map(|u| resolve_http_expect(Some(u), ctx));
        let mut captures = Vec::new();
        for (cname, c) in r.capture.iter().flatten() {
            if !cname
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
                || cname.is_empty()
            {
                ctx.err(
                    c.span().start,
                    format!("invalid capture name {cname:?}: use letters, digits and _"),
                );
            }
            let rc = c.get_ref();
            let sources = [
                rc.json.is_some(),
                rc.header.is_some(),
                rc.regex.is_some(),
                rc.css.is_some(),
            ];
            if sources.iter().filter(|x| **x).count() != 1 {
                ctx.err(
                    c.span().start,
                    "a capture takes exactly one of: json, header, regex, css",
                );
                continue;
            }
            let capture = if let Some(j) = &rc.json {
                parse_json_path(j.get_ref())
                    .map(|p| vantage_probes::Capture::Json(p, j.get_ref().clone()))
                    .map_err(|e| {
                        ctx.err(
                            j.span().start,
                            format!("invalid JSONPath {:?}: {e}", j.get_ref()),
                        )
                    })
                    .ok()
            } else if let Some(h) = &rc.header {
                Some(vantage_probes::Capture::Header(
                    h.get_ref().to_ascii_lowercase(),
                ))
            } else if let Some(re) = &rc.regex {
                compile_regex(re, ctx).map(vantage_probes::Capture::Regex)
            } else {
                rc.css.as_ref().and_then(|css| {
                    compile_css(css, ctx)
                        .map(|sel| vantage_probes::Capture::Css(sel, css.get_ref().clone()))
                })
            };
            if let Some(c) = capture {
                captures.push((cname.clone(), c));
            }
            defined.push(cname.clone());
        }
        let poll_interval = r
            .poll_interval
            .as_ref()
            .map_or(Duration::from_secs(1), |d| d.get_ref().0);
        if poll_interval.is_zero() {
            let at = r
                .poll_interval
                .as_ref()
                .map_or(r.name.span().start, |d| d.span().start);
            ctx.err(at, "poll_interval must be greater than 0");
        } else if let Some(problem) = duration_problem("poll_interval", poll_interval) {
            let at = r
                .poll_interval
                .as_ref()
                .map_or(r.name.span().start, |d| d.span().start);
            ctx.err(at, problem);
        }
        if let (Some(url), Some(method), Some(expect)) = (url, method, expect) {
            steps.push(vantage_probes::StepSpec {
                name,
                method,
                url,
                headers,
                body,
                expect,
                captures,
                until: until.flatten(),
                poll_interval,
            });
        }
    }
    let target = raw_steps[0].get_ref().url.get_ref().clone();
    Some((
        target,
        Spec::Scrape(Box::new(vantage_probes::FlowSpec {
            steps,
            transport: transport?,
            timeout,
            redactor: ctx.redactor.clone(),
        })),
    ))
}
