//! `kind = "http"`: one request (redirects followed), its expectations, and how requests travel
//! (shared with scrape flows).

use std::collections::BTreeMap;
use std::time::Duration;

use http::header::{
    HeaderMap, HeaderName, HeaderValue, ACCEPT_ENCODING, AUTHORIZATION, CONTENT_TYPE,
};
use http::Method;
use serde::Deserialize;
use toml::Spanned;
use url::Url;
use vantage_probes::{HttpSpec, IpFamily, Request, Transport};

use super::expect::resolve_http_expect;
use crate::config::probe::{
    display_url, parse_url, tls_options, Spec, DEFAULT_MAX_BODY, DEFAULT_MAX_REDIRECTS,
    MAX_MAX_BODY, MAX_MAX_REDIRECTS,
};
use crate::config::raw::{Dur, Kind, RawHttpExpect, RawMetrics, RawProbeAlert, RawTls, Size};
use crate::config::Ctx;

/// One `[[probe]]` of kind http.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    pub name: Spanned<String>,
    pub kind: Spanned<Kind>,
    pub interval: Option<Spanned<Dur>>,
    pub timeout: Option<Spanned<Dur>>,
    pub labels: Option<BTreeMap<String, Spanned<String>>>,
    pub alert: Option<Spanned<RawProbeAlert>>,
    pub metrics: Option<Spanned<RawMetrics>>,
    /// The URL to request.
    pub url: Spanned<String>,
    /// Request method (default GET).
    pub method: Option<Spanned<String>>,
    pub headers: Option<BTreeMap<String, Spanned<String>>>,
    /// Request body as text.
    pub body: Option<Spanned<String>>,
    /// Request body as JSON (sets content-type).
    pub json: Option<Spanned<toml::Value>>,
    /// Sent as `Authorization: Bearer …` (blackbox_exporter's `bearer_token`); write it as
    /// `${ENV_VAR}` so it is redacted everywhere.
    pub bearer_token: Option<Spanned<String>>,
    /// Send `Accept-Encoding: <this>` (blackbox_exporter's `compression`): "gzip", "deflate",
    /// "br", "zstd" or "identity". Bodies are decoded either way.
    pub compression: Option<Spanned<String>>,
    /// Local address to connect from (blackbox_exporter's `source_ip_address`).
    pub source_ip: Option<Spanned<String>>,
    /// HTTP versions accepted, `["1.1", "2"]` by default (see `config::http_auth`).
    pub http_versions: Option<Spanned<Vec<Spanned<String>>>>,
    /// `{ username, password }`, sent as `Authorization: Basic …`.
    pub basic_auth: Option<Spanned<crate::config::http_auth::RawBasicAuth>>,
    /// A file holding the bearer token, read at load (and on reload).
    pub bearer_token_file: Option<Spanned<String>>,
    /// OAuth 2.0 client credentials.
    pub oauth2: Option<Spanned<crate::config::http_auth::RawOauth2>>,
    /// Follow redirects (default true).
    pub follow_redirects: Option<Spanned<bool>>,
    /// Most redirects followed before `redirect_limit` (default 10).
    pub max_redirects: Option<Spanned<u32>>,
    /// Longest accepted body (default 10MiB); longer fails with `body_too_large`.
    pub max_body: Option<Spanned<Size>>,
    /// `any`, `ipv4`, `ipv6`, `prefer_ipv4` or `prefer_ipv6`.
    pub ip: Option<Spanned<IpFamily>>,
    /// An http:// proxy (CONNECT for https targets).
    pub proxy: Option<Spanned<String>>,
    pub tls: Option<Spanned<RawTls>>,
    pub expect: Option<Spanned<RawHttpExpect>>,
}

/// The keys that say how an http probe's or a scrape flow's requests travel.
pub(super) struct TransportKeys<'a> {
    pub name: &'a Spanned<String>,
    pub follow_redirects: Option<&'a Spanned<bool>>,
    pub max_redirects: Option<&'a Spanned<u32>>,
    pub max_body: Option<&'a Spanned<Size>>,
    pub ip: Option<&'a Spanned<IpFamily>>,
    pub proxy: Option<&'a Spanned<String>>,
    pub tls: Option<&'a Spanned<RawTls>>,
    pub source_ip: Option<&'a Spanned<String>>,
    pub http_versions: Option<&'a Spanned<Vec<Spanned<String>>>>,
}

impl RawHttp {
    fn transport_keys(&self) -> TransportKeys<'_> {
        TransportKeys {
            name: &self.name,
            follow_redirects: self.follow_redirects.as_ref(),
            max_redirects: self.max_redirects.as_ref(),
            max_body: self.max_body.as_ref(),
            ip: self.ip.as_ref(),
            proxy: self.proxy.as_ref(),
            tls: self.tls.as_ref(),
            source_ip: self.source_ip.as_ref(),
            http_versions: self.http_versions.as_ref(),
        }
    }
}

pub(super) fn resolve(p: &RawHttp, timeout: Duration, ctx: &mut Ctx<'_>) -> Option<(String, Spec)> {
    let url_s = &p.url;
    let url = parse_url(url_s.get_ref())
        .map_err(|e| ctx.err(url_s.span().start, e))
        .ok();
    let method = resolve_method(p.method.as_ref(), ctx);
    let mut headers = HeaderMap::new();
    for (k, v) in p.headers.iter().flatten() {
        let name = HeaderName::from_bytes(k.as_bytes());
        let value = HeaderValue::from_str(v.get_ref());
        match (name, value) {
            (Ok(name), Ok(mut value)) => {
                // A value holding a secret stays out of Debug output and is dropped on a
                // redirect to another origin.
                let secret = ctx.redactor.redact(v.get_ref()) != v.get_ref().as_str();
                value.set_sensitive(secret);
                headers.insert(name, value);
            }
            (Err(_), _) => ctx.err(v.span().start, format!("invalid header name {k:?}")),
            (_, Err(_)) => ctx.err(v.span().start, format!("invalid value for header {k:?}")),
        }
    }
    let mut redactor = ctx.redactor.clone();
    let auth = crate::config::http_auth::resolve_auth(
        &crate::config::http_auth::AuthKeys {
            url: url.as_ref(),
            bearer_token: p.bearer_token.as_ref(),
            basic_auth: p.basic_auth.as_ref(),
            bearer_token_file: p.bearer_token_file.as_ref(),
            oauth2: p.oauth2.as_ref(),
        },
        &mut headers,
        &mut redactor,
        ctx,
    );
    if let Some(t) = &p.bearer_token {
        if p.basic_auth.is_some() || p.bearer_token_file.is_some() || p.oauth2.is_some() {
            // Reported by resolve_auth.
        } else if headers.contains_key(AUTHORIZATION) {
            ctx.err(
                t.span().start,
                "set bearer_token or an Authorization header, not both",
            );
        } else if t.get_ref().trim().is_empty() {
            ctx.err(t.span().start, "bearer_token is empty");
        } else {
            match HeaderValue::from_str(&format!("Bearer {}", t.get_ref().trim())) {
                Ok(mut value) => {
                    // Always a credential: kept out of Debug output and dropped on a redirect
                    // to another origin.
                    value.set_sensitive(true);
                    headers.insert(AUTHORIZATION, value);
                }
                Err(_) => ctx.err(t.span().start, "invalid characters in bearer_token"),
            }
        }
    }
    if let Some(c) = &p.compression {
        const ALGORITHMS: [&str; 5] = ["gzip", "deflate", "br", "zstd", "identity"];
        if !ALGORITHMS.contains(&c.get_ref().as_str()) {
            ctx.err(
                c.span().start,
                format!(
                    "unknown compression {:?}, expected one of: {}",
                    c.get_ref(),
                    ALGORITHMS.join(", ")
                ),
            );
        } else if headers.contains_key(ACCEPT_ENCODING) {
            ctx.err(
                c.span().start,
                "set compression or an Accept-Encoding header, not both",
            );
        } else if let Ok(v) = HeaderValue::from_str(c.get_ref()) {
            headers.insert(ACCEPT_ENCODING, v);
        }
    }
    let body = match (&p.body, &p.json) {
        (Some(b), Some(_)) => {
            ctx.err(b.span().start, "set body or json, not both");
            None
        }
        (Some(b), None) => Some(bytes::Bytes::from(b.get_ref().clone())),
        (None, Some(j)) => match serde_json::to_vec(j.get_ref()) {
            Ok(v) => {
                if !headers.contains_key(CONTENT_TYPE) {
                    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                }
                Some(bytes::Bytes::from(v))
            }
            Err(e) => {
                ctx.err(j.span().start, format!("json body cannot be encoded: {e}"));
                None
            }
        },
        (None, None) => None,
    };
    let transport = resolve_transport(&p.transport_keys(), ctx);
    let expect = resolve_http_expect(p.expect.as_ref(), ctx);
    if let (Some(url), Some(e)) = (&url, &p.expect) {
        if let (Some(c), false) = (&e.get_ref().cert_min_days, url.scheme() == "https") {
            ctx.err(c.span().start, "expect.cert_min_days needs an https URL");
        }
    }
    let (url, method, mut transport, expect) = (url?, method?, transport?, expect?);
    let oauth2 = auth?;
    transport.cert_min_days = expect.cert_min_days;
    let target = display_url(&url);
    Some((
        target,
        Spec::Http(Box::new(HttpSpec {
            request: Request {
                url,
                method,
                headers,
                body,
            },
            transport,
            timeout,
            expect,
            redactor,
            oauth2,
        })),
    ))
}

/// `method = "post"` → POST; default GET.
pub(super) fn resolve_method(m: Option<&Spanned<String>>, ctx: &mut Ctx<'_>) -> Option<Method> {
    let Some(m) = m else { return Some(Method::GET) };
    Method::from_bytes(m.get_ref().to_ascii_uppercase().as_bytes())
        .map_err(|_| {
            ctx.err(
                m.span().start,
                format!("invalid HTTP method {:?}", m.get_ref()),
            )
        })
        .ok()
}

/// How an http or scrape probe's requests travel: redirects, size limit, family, proxy, TLS.
pub(super) fn resolve_transport(p: &TransportKeys<'_>, ctx: &mut Ctx<'_>) -> Option<Transport> {
    let max_redirects = p
        .max_redirects
        .map_or(DEFAULT_MAX_REDIRECTS, |m| *m.get_ref());
    if max_redirects > MAX_MAX_REDIRECTS {
        let at = p.max_redirects.map_or(0, |m| m.span().start);
        ctx.err(
            at,
            format!("max_redirects of {max_redirects} is above the limit of {MAX_MAX_REDIRECTS}"),
        );
    }
    let max_body = p.max_body.map_or(DEFAULT_MAX_BODY, |m| m.get_ref().0);
    if max_body > MAX_MAX_BODY {
        let at = p.max_body.map_or(0, |m| m.span().start);
        ctx.err(
            at,
            format!("max_body of {max_body} bytes is above the limit of 1GiB"),
        );
    }
    let proxy = p.proxy.and_then(|px| match Url::parse(px.get_ref()) {
        Ok(u) if u.scheme() == "http" && u.has_host() => Some(u),
        Ok(_) => {
            ctx.err(px.span().start, "proxy must be an http:// URL");
            None
        }
        Err(e) => {
            ctx.err(px.span().start, format!("invalid proxy URL: {e}"));
            None
        }
    });
    let versions = crate::config::http_auth::resolve_versions(p.http_versions, ctx);
    let options = tls_options(p.tls, ctx);
    let tls = match ctx.clients.http(&options, versions) {
        Ok(c) => Some(c),
        Err(e) => {
            let at = p.tls.map_or(p.name.span().start, |t| t.span().start);
            ctx.err(at, e.to_string());
            None
        }
    };
    let raw_tls = p.tls.map(|t| t.get_ref());
    let source_ip = match p.source_ip {
        None => None,
        Some(s) => match s.get_ref().parse::<std::net::IpAddr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                ctx.err(
                    s.span().start,
                    format!("source_ip {:?} is not an IP address", s.get_ref()),
                );
                return None;
            }
        },
    };
    Some(Transport {
        follow_redirects: p.follow_redirects.is_none_or(|f| *f.get_ref()),
        max_redirects,
        max_body,
        ip: p.ip.map_or(IpFamily::Any, |i| *i.get_ref()),
        proxy,
        tls: tls?,
        server_name: raw_tls
            .and_then(|t| t.server_name.as_ref())
            .map(|s| s.get_ref().clone()),
        insecure_skip_verify: raw_tls
            .and_then(|t| t.insecure_skip_verify.as_ref())
            .is_some_and(|i| *i.get_ref()),
        cert_min_days: None,
        filter: None,
        source_ip,
        versions,
    })
}
