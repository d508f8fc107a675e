//! Bearer or basic credentials on every endpoint but `/health/*`.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine as _;
use subtle::ConstantTimeEq;

use super::{error, App};
use crate::config::Auth;

/// Bearer or basic credentials, compared in constant time. `/health/*` is not behind this.
pub(super) async fn auth(State(app): State<App>, req: Request, next: Next) -> Response {
    let config = app.config();
    let Some(auth) = &config.server.auth else {
        return next.run(req).await;
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let ok = match auth {
        Auth::Bearer(token) => given
            .strip_prefix("Bearer ")
            .is_some_and(|t| bool::from(t.as_bytes().ct_eq(token.expose().as_bytes()))),
        Auth::Basic { username, password } => given
            .strip_prefix("Basic ")
            .and_then(|b| {
                base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .ok()
            })
            .and_then(|d| String::from_utf8(d).ok())
            .and_then(|d| {
                d.split_once(':')
                    .map(|(u, p)| (u.to_string(), p.to_string()))
            })
            .is_some_and(|(u, p)| {
                let user_ok = u.as_bytes().ct_eq(username.as_bytes());
                let pass_ok = p.as_bytes().ct_eq(password.expose().as_bytes());
                bool::from(user_ok & pass_ok)
            }),
    };
    if ok {
        return next.run(req).await;
    }
    let challenge = match auth {
        Auth::Bearer(_) => "Bearer realm=\"vantage\"",
        Auth::Basic { .. } => "Basic realm=\"vantage\"",
    };
    let mut resp = error(StatusCode::UNAUTHORIZED, "authentication required");
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    resp
}
