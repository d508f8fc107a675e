//! OAuth 2.0 client credentials (RFC 6749 §4.4) for HTTP probes, as blackbox_exporter's `oauth2`
//! (golang.org/x/oauth2/clientcredentials) does it: the client authenticates to the token
//! endpoint with HTTP basic auth, the form carries `grant_type=client_credentials`, the scopes
//! (space-separated) and any extra `endpoint_params`; the answer's `access_token` is sent as
//! `Authorization: <token_type> <access_token>` and cached until `expires_in` minus a margin.
//!
//! The token request travels like the probe's own requests (same TLS trust, proxy, address
//! family, source address and address filter), is bounded in size ([`MAX_TOKEN_BODY`]) and in
//! time (the probe's deadline), and never puts the client secret or a token in evidence.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::Method;
use serde::Deserialize;
use tokio::time::Instant;
use url::Url;

use crate::http::{exchange, Request, Transport};
use crate::net::Failure;
use crate::outcome::{ConnFacts, HttpFacts, Phases, Reason};
use crate::secret::{Redactor, Secret};
use crate::Clock;

/// Largest token endpoint answer read: a token response is a few hundred bytes.
pub const MAX_TOKEN_BODY: u64 = 64 * 1024;
/// A cached token is renewed this long before it expires (golang.org/x/oauth2's `expiryDelta`).
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(10);
/// `expires_in` values above this (ten years) are taken as this: no overflow, no forever-token
/// by accident.
const MAX_EXPIRES_IN: u64 = 86_400 * 3650;

/// `oauth2 = { token_url, client_id, client_secret, scopes, endpoint_params }`.
#[derive(Debug, Clone)]
pub struct Oauth2Config {
    pub token_url: Url,
    pub client_id: String,
    pub client_secret: Secret,
    pub scopes: Vec<String>,
    /// Extra form fields sent to the token endpoint, in order.
    pub endpoint_params: Vec<(String, String)>,
}

/// A token and what it takes to use it.
#[derive(Clone)]
struct Cached {
    /// The `Authorization` value, marked sensitive.
    header: HeaderValue,
    /// When the token stops being used (already less the margin); `None`: never expires.
    renew_at: Option<Instant>,
    /// The probe's redactor plus this token.
    redactor: Redactor,
}

/// A probe's OAuth 2.0 client: its config and its cached token. Clones share the cache.
#[derive(Clone)]
pub struct Oauth2Client {
    config: Arc<Oauth2Config>,
    cache: Arc<tokio::sync::Mutex<Option<Cached>>>,
}

impl std::fmt::Debug for Oauth2Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oauth2Client")
            .field("token_url", &self.config.token_url.as_str())
            .field("client_id", &self.config.client_id)
            .finish_non_exhaustive()
    }
}

/// What a run needs from a token: the header to send and a redactor that also masks the token.
pub struct Authorization {
    pub header: HeaderValue,
    pub redactor: Redactor,
}

impl Oauth2Client {
    pub fn new(config: Oauth2Config) -> Self {
        Self {
            config: Arc::new(config),
            cache: Arc::new(tokio::sync::Mutex::new(None)),
        }
    }

    pub fn config(&self) -> &Oauth2Config {
        &self.config
    }

    /// The cached token if it is still good, else a fresh one from the token endpoint. One fetch
    /// at a time per client: concurrent runs wait for it and share its token. The caller bounds
    /// the time (the probe's deadline). `redactor` is the probe's; evidence is masked with it and
    /// the client secret.
    pub async fn authorization(
        &self,
        clock: &Clock,
        transport: &Transport,
        redactor: &Redactor,
    ) -> Result<Authorization, Failure> {
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.as_ref() {
            if c.renew_at.is_none_or(|at| clock.now() < at) {
                return Ok(Authorization {
                    header: c.header.clone(),
                    redactor: c.redactor.clone(),
                });
            }
        }
        *cache = None;
        let mut masks = redactor.clone();
        masks.add(self.config.client_secret.clone());
        let fetched = self.fetch(clock, transport).await.map_err(|f| {
            Failure::new(
                f.reason,
                masks
                    .redact(&format!(
                        "oauth2 token from {}: {}",
                        self.config.token_url, f.evidence
                    ))
                    .into_owned(),
            )
        })?;
        let mut token_redactor = redactor.clone();
        token_redactor.add(Secret::new(fetched.access_token.clone()));
        let header = header_value(&fetched.token_type, &fetched.access_token).map_err(|_| {
            Failure::new(
                Reason::Protocol,
                format!(
                    "oauth2 token from {}: the access_token or token_type holds characters not allowed in a header",
                    self.config.token_url
                ),
            )
        })?;
        let renew_at = fetched.expires_in.map(|secs| {
            let life = Duration::from_secs(secs.min(MAX_EXPIRES_IN));
            fetched.at + life.saturating_sub(EXPIRY_MARGIN)
        });
        let c = Cached {
            header,
            renew_at,
            redactor: token_redactor,
        };
        let out = Authorization {
            header: c.header.clone(),
            redactor: c.redactor.clone(),
        };
        *cache = Some(c);
        Ok(out)
    }

    /// Forget the cached token (the next run fetches one).
    pub async fn clear(&self) {
        *self.cache.lock().await = None;
    }

    async fn fetch(&self, clock: &Clock, transport: &Transport) -> Result<Fetched, Failure> {
        let c = &self.config;
        // The serializer is not Send: it must not live across an await.
        let body = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "client_credentials");
            if !c.scopes.is_empty() {
                form.append_pair("scope", &c.scopes.join(" "));
            }
            for (k, v) in &c.endpoint_params {
                form.append_pair(k, v);
            }
            form.finish()
        };
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        headers.insert(
            header::AUTHORIZATION,
            client_basic_auth(&c.client_id, c.client_secret.expose())?,
        );
        let request = Request {
            url: c.token_url.clone(),
            method: Method::POST,
            headers,
            body: Some(Bytes::from(body)),
        };
        let transport = token_transport(transport);
        let at = clock.now();
        let mut phases = Phases::default();
        let mut conn = ConnFacts::default();
        let mut facts = HttpFacts::default();
        let mut addr = None;
        let resp = exchange(
            clock,
            &request,
            &transport,
            &mut phases,
            &mut conn,
            &mut facts,
            &mut addr,
        )
        .await?;
        if !(200..300).contains(&resp.status) {
            return Err(Failure::new(
                Reason::HttpStatus,
                format!("token endpoint answered status {}", resp.status),
            ));
        }
        let mut fetched = parse_token(&resp.headers, &resp.body)?;
        fetched.at = at;
        Ok(fetched)
    }
}

/// How the token request travels: as the probe's requests, but checked against the token URL's
/// own name (no `server_name` override, no certificate age requirement, verification on), with
/// a small body limit, and without the probe's address filter: that filter guards the targets a
/// `/probe` request names, while the token URL is the operator's, from the config.
fn token_transport(t: &Transport) -> Transport {
    let mut t = t.clone();
    t.filter = None;
    t.max_body = MAX_TOKEN_BODY;
    t.server_name = None;
    t.cert_min_days = None;
    t.insecure_skip_verify = false;
    // `http_versions` is about the probe's target: the token endpoint may speak either.
    t.versions = crate::http::HttpVersions::default();
    t.tls = t.tls.with_alpn(t.versions.alpn());
    t
}

/// `Authorization: Basic` for the client, with id and secret form-encoded first, as
/// golang.org/x/oauth2 does (`AuthStyleInHeader`).
fn client_basic_auth(id: &str, secret: &str) -> Result<HeaderValue, Failure> {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let token =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", enc(id), enc(secret)));
    let mut v = HeaderValue::from_str(&format!("Basic {token}")).map_err(|_| {
        Failure::new(
            Reason::Protocol,
            "client credentials are not a valid header",
        )
    })?;
    v.set_sensitive(true);
    Ok(v)
}

/// `Bearer abc`, with golang.org/x/oauth2's normalisation of the type.
fn header_value(
    token_type: &str,
    token: &str,
) -> Result<HeaderValue, http::header::InvalidHeaderValue> {
    let kind = match token_type.to_ascii_lowercase().as_str() {
        "" | "bearer" => "Bearer".to_string(),
        "mac" => "MAC".to_string(),
        "basic" => "Basic".to_string(),
        _ => token_type.to_string(),
    };
    let mut v = HeaderValue::from_str(&format!("{kind} {token}"))?;
    v.set_sensitive(true);
    Ok(v)
}

#[derive(Debug)]
struct Fetched {
    access_token: String,
    token_type: String,
    expires_in: Option<u64>,
    at: Instant,
}

#[derive(Deserialize)]
struct JsonToken {
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

/// The token endpoint's answer: JSON (RFC 6749 §5.1), or a form-encoded body, which
/// golang.org/x/oauth2 also accepts (`application/x-www-form-urlencoded` or `text/plain`).
fn parse_token(headers: &HeaderMap, body: &[u8]) -> Result<Fetched, Failure> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let form = content_type.starts_with("application/x-www-form-urlencoded")
        || content_type.starts_with("text/plain");
    let (token, kind, expires) = if form {
        let mut token = None;
        let mut kind = None;
        let mut expires = None;
        for (k, v) in url::form_urlencoded::parse(body) {
            match k.as_ref() {
                "access_token" => token = Some(v.into_owned()),
                "token_type" => kind = Some(v.into_owned()),
                "expires_in" => expires = Some(v.into_owned()),
                _ => {}
            }
        }
        let expires = match expires {
            None => None,
            Some(e) => Some(expires_in(&serde_json::Value::String(e))?),
        };
        (token, kind, expires.flatten())
    } else {
        // serde's message may quote the answer: only its position goes in the evidence.
        let parsed: JsonToken = serde_json::from_slice(body).map_err(|e| {
            Failure::new(
                Reason::Protocol,
                format!(
                    "token endpoint answer is not a JSON token response ({:?} error at line {} column {})",
                    e.classify(),
                    e.line(),
                    e.column()
                ),
            )
        })?;
        let expires = match &parsed.expires_in {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => expires_in(v)?,
        };
        (parsed.access_token, parsed.token_type, expires)
    };
    let access_token = token.filter(|t| !t.is_empty()).ok_or_else(|| {
        Failure::new(
            Reason::Protocol,
            "token endpoint answer has no access_token",
        )
    })?;
    Ok(Fetched {
        access_token,
        token_type: kind.unwrap_or_default(),
        expires_in: expires,
        at: Instant::now(),
    })
}

/// `expires_in` as seconds: a number or a numeric string; 0 means no expiry (as in
/// golang.org/x/oauth2). Negative or fractional values are refused.
fn expires_in(v: &serde_json::Value) -> Result<Option<u64>, Failure> {
    let n = match v {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    match n {
        Some(0) => Ok(None),
        Some(n) => Ok(Some(n)),
        None => Err(Failure::new(
            Reason::Protocol,
            "token endpoint answer has an invalid expires_in",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(body: &str) -> Result<Fetched, Failure> {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        parse_token(&h, body.as_bytes())
    }

    #[test]
    fn parses_json_and_form_answers() {
        let t = json(r#"{"access_token":"abc","token_type":"bearer","expires_in":3600}"#)
            .expect("valid answer");
        assert_eq!(t.access_token, "abc");
        assert_eq!(t.expires_in, Some(3600));
        let t = json(r#"{"access_token":"abc","expires_in":"60"}"#).expect("string expires_in");
        assert_eq!(t.expires_in, Some(60));
        let t = json(r#"{"access_token":"abc","expires_in":0}"#).expect("zero expires_in");
        assert_eq!(t.expires_in, None);
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        let t = parse_token(&h, b"access_token=x%2By&token_type=bearer&expires_in=5")
            .expect("form answer");
        assert_eq!(t.access_token, "x+y");
        assert_eq!(t.expires_in, Some(5));
    }

    #[test]
    fn refuses_bad_answers() {
        for body in [
            "",
            "garbage",
            "[]",
            r#"{"token_type":"bearer"}"#,
            r#"{"access_token":""}"#,
            r#"{"access_token":5}"#,
            r#"{"access_token":"a","expires_in":-1}"#,
            r#"{"access_token":"a","expires_in":1.5}"#,
            r#"{"access_token":"a","expires_in":"soon"}"#,
        ] {
            let err = json(body).expect_err(body);
            assert_eq!(err.reason, Reason::Protocol, "{body}");
        }
    }

    #[test]
    fn token_type_is_normalised_and_header_is_sensitive() {
        let v = header_value("bearer", "t").expect("valid");
        assert_eq!(v.to_str().ok(), Some("Bearer t"));
        assert!(v.is_sensitive());
        assert_eq!(
            header_value("", "t").expect("valid").to_str().ok(),
            Some("Bearer t")
        );
        assert_eq!(
            header_value("MAC", "t").expect("valid").to_str().ok(),
            Some("MAC t")
        );
        assert!(header_value("bearer", "a\nb").is_err());
    }

    #[test]
    fn client_credentials_are_form_encoded_before_base64() {
        let v = client_basic_auth("id:1", "s e/c").expect("valid");
        let b64 = v.to_str().unwrap_or_default().trim_start_matches("Basic ");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap_or_default();
        assert_eq!(String::from_utf8_lossy(&decoded), "id%3A1:s+e%2Fc");
    }
}
