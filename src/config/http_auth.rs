//! The http kind's HTTP/2 and authentication keys: `http_versions`, `basic_auth`,
//! `bearer_token_file` and `oauth2` (blackbox_exporter's `valid_http_versions`, `basic_auth`,
//! `bearer_token_file`, `oauth2`). Raw forms and their resolution live here, apart from the rest
//! of the http keys, so they move with the http kind as one piece.

use std::collections::BTreeMap;

use http::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use serde::Deserialize;
use toml::Spanned;
use url::Url;
use vantage_probes::{HttpVersions, Oauth2Client, Oauth2Config};

use super::Ctx;
use crate::secret::{Redactor, Secret};

/// `basic_auth = { username = "...", password = "${PW}" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBasicAuth {
    pub username: Spanned<String>,
    /// Optional (empty when absent), as in blackbox_exporter.
    pub password: Option<Spanned<String>>,
}

/// `oauth2 = { token_url, client_id, client_secret, scopes = [], endpoint_params = {} }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOauth2 {
    pub token_url: Spanned<String>,
    pub client_id: Spanned<String>,
    pub client_secret: Spanned<String>,
    pub scopes: Option<Vec<Spanned<String>>>,
    pub endpoint_params: Option<BTreeMap<String, Spanned<String>>>,
}

/// The auth-related keys of one http probe or module, as written.
pub(super) struct AuthKeys<'a> {
    pub url: Option<&'a Url>,
    pub bearer_token: Option<&'a Spanned<String>>,
    pub basic_auth: Option<&'a Spanned<RawBasicAuth>>,
    pub bearer_token_file: Option<&'a Spanned<String>>,
    pub oauth2: Option<&'a Spanned<RawOauth2>>,
}

/// `http_versions = ["1.1", "2"]` (the default: both).
pub(super) fn resolve_versions(
    v: Option<&Spanned<Vec<Spanned<String>>>>,
    ctx: &mut Ctx<'_>,
) -> HttpVersions {
    let Some(v) = v else {
        return HttpVersions::default();
    };
    let mut out = HttpVersions {
        http1: false,
        http2: false,
    };
    if v.get_ref().is_empty() {
        ctx.err(
            v.span().start,
            "http_versions is empty: list \"1.1\", \"2\" or both",
        );
        return HttpVersions::default();
    }
    for item in v.get_ref() {
        let slot = match item.get_ref().as_str() {
            "1.1" => &mut out.http1,
            "2" => &mut out.http2,
            other => {
                ctx.err(
                    item.span().start,
                    format!("unknown HTTP version {other:?}, expected \"1.1\" or \"2\""),
                );
                continue;
            }
        };
        if *slot {
            ctx.err(
                item.span().start,
                format!("duplicate HTTP version {:?}", item.get_ref()),
            );
        }
        *slot = true;
    }
    if !out.http1 && !out.http2 {
        return HttpVersions::default();
    }
    out
}

/// Resolve `basic_auth`, `bearer_token_file` and `oauth2` into `headers` (an `Authorization`
/// value, always sensitive) and the probe's `redactor` (every password, token and client secret,
/// whether written literally or as `${ENV}`). At most one source of credentials per probe: an
/// `Authorization` header, `bearer_token`, `bearer_token_file`, `basic_auth`, `oauth2` or URL
/// userinfo. Must run before `bearer_token` is turned into a header.
pub(super) fn resolve_auth(
    keys: &AuthKeys<'_>,
    headers: &mut HeaderMap,
    redactor: &mut Redactor,
    ctx: &mut Ctx<'_>,
) -> Option<Option<Oauth2Client>> {
    let errors_before = ctx.errors.len();
    // Every source of credentials that is set, in the order they are checked.
    let userinfo = keys
        .url
        .is_some_and(|u| !u.username().is_empty() || u.password().is_some());
    let mut sources: Vec<(&str, usize)> = Vec::new();
    if headers.contains_key(AUTHORIZATION) {
        sources.push(("an Authorization header", 0));
    }
    if userinfo {
        sources.push(("credentials in the URL", 0));
    }
    if let Some(b) = keys.bearer_token {
        sources.push(("bearer_token", b.span().start));
    }
    if let Some(b) = keys.bearer_token_file {
        sources.push(("bearer_token_file", b.span().start));
    }
    if let Some(b) = keys.basic_auth {
        sources.push(("basic_auth", b.span().start));
    }
    if let Some(o) = keys.oauth2 {
        sources.push(("oauth2", o.span().start));
    }
    // Pairs of the older sources (bearer_token with an Authorization header) are theirs to
    // report; any pair with one of these keys is reported here, once, at that key.
    const NEW_KEYS: [&str; 3] = ["bearer_token_file", "basic_auth", "oauth2"];
    if sources.len() > 1 {
        if let Some(i) = sources.iter().position(|(n, _)| NEW_KEYS.contains(n)) {
            let (name, at) = sources[i];
            let other = if i == 0 { sources[1].0 } else { sources[0].0 };
            ctx.err(
                at,
                format!(
                    "set {other} or {name}, not both: a request carries one set of credentials"
                ),
            );
            return None;
        }
    }
    if let Some(b) = keys.basic_auth {
        let user = b.get_ref().username.get_ref();
        let pass = b
            .get_ref()
            .password
            .as_ref()
            .map(|p| p.get_ref().as_str())
            .unwrap_or_default();
        if user.is_empty() {
            ctx.err(
                b.get_ref().username.span().start,
                "basic_auth.username is empty",
            );
        } else if user.contains(':') {
            ctx.err(
                b.get_ref().username.span().start,
                "basic_auth.username must not contain ':' (it separates the password)",
            );
        } else if let Some(v) = vantage_probes::credentials::basic_auth_value(user, pass) {
            if !pass.is_empty() {
                redactor.add(Secret::new(format!("{user}:{pass}")));
                redactor.add(Secret::new(pass.to_string()));
            }
            headers.insert(AUTHORIZATION, v);
        }
    }
    if let Some(f) = keys.bearer_token_file {
        let path = ctx.sources.dir(ctx.file).join(f.get_ref());
        match super::load::read_limited(&path) {
            Err(e) => ctx.err(f.span().start, format!("bearer_token_file: {e}")),
            Ok(bytes) => match String::from_utf8(bytes) {
                Err(_) => ctx.err(
                    f.span().start,
                    format!("bearer_token_file: {} is not UTF-8 text", path.display()),
                ),
                Ok(text) => {
                    let token = text.trim();
                    if token.is_empty() {
                        ctx.err(
                            f.span().start,
                            format!("bearer_token_file: {} is empty", path.display()),
                        );
                    } else {
                        // Registered before anything else can print it.
                        redactor.add(Secret::new(token.to_string()));
                        match HeaderValue::from_str(&format!("Bearer {token}")) {
                            Ok(mut v) => {
                                v.set_sensitive(true);
                                headers.insert(AUTHORIZATION, v);
                            }
                            Err(_) => ctx.err(
                                f.span().start,
                                format!(
                                    "bearer_token_file: {} holds characters not allowed in a header (one token on one line is expected)",
                                    path.display()
                                ),
                            ),
                        }
                    }
                }
            },
        }
    }
    let oauth2 = keys.oauth2.and_then(|o| resolve_oauth2(o, redactor, ctx));
    (ctx.errors.len() == errors_before).then_some(oauth2)
}

fn resolve_oauth2(
    o: &Spanned<RawOauth2>,
    redactor: &mut Redactor,
    ctx: &mut Ctx<'_>,
) -> Option<Oauth2Client> {
    let r = o.get_ref();
    let errors_before = ctx.errors.len();
    let token_url = match Url::parse(r.token_url.get_ref()) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => {
            if !u.username().is_empty() || u.password().is_some() {
                ctx.err(
                    r.token_url.span().start,
                    "oauth2.token_url must not hold credentials: use client_id and client_secret",
                );
            }
            Some(u)
        }
        Ok(_) => {
            ctx.err(
                r.token_url.span().start,
                "oauth2.token_url must be an http:// or https:// URL",
            );
            None
        }
        Err(e) => {
            ctx.err(
                r.token_url.span().start,
                format!("invalid oauth2.token_url: {e}"),
            );
            None
        }
    };
    if r.client_id.get_ref().is_empty() {
        ctx.err(r.client_id.span().start, "oauth2.client_id is empty");
    }
    if r.client_secret.get_ref().is_empty() {
        ctx.err(
            r.client_secret.span().start,
            "oauth2.client_secret is empty",
        );
    }
    let mut scopes = Vec::new();
    for s in r.scopes.iter().flatten() {
        let v = s.get_ref();
        // RFC 6749 §3.3: scope tokens are printable ASCII without space, '"' or '\'.
        if v.is_empty()
            || !v
                .bytes()
                .all(|b| (0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\')
        {
            ctx.err(
                s.span().start,
                format!("invalid oauth2 scope {v:?}: one token of printable ASCII, no spaces"),
            );
        }
        scopes.push(v.clone());
    }
    const RESERVED: [&str; 3] = ["grant_type", "scope", "client_secret"];
    let mut params = Vec::new();
    for (k, v) in r.endpoint_params.iter().flatten() {
        if RESERVED.contains(&k.as_str()) {
            ctx.err(
                v.span().start,
                format!("oauth2.endpoint_params may not set {k:?}: vantage sets it"),
            );
        }
        params.push((k.clone(), v.get_ref().clone()));
    }
    if ctx.errors.len() > errors_before {
        return None;
    }
    let secret = r.client_secret.get_ref().clone();
    redactor.add(Secret::new(secret.clone()));
    Some(Oauth2Client::new(Oauth2Config {
        token_url: token_url?,
        client_id: r.client_id.get_ref().clone(),
        client_secret: Secret::new(secret),
        scopes,
        endpoint_params: params,
    }))
}
