//! `GET /metrics`: the exposition, text or OpenMetrics, gzipped when asked.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::pieces::Pieces;
use super::App;

fn wants_openmetrics(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .is_some_and(|v| crate::metrics::gzip::wants_openmetrics(v.as_bytes()))
}

pub(super) async fn metrics(State(app): State<App>, headers: HeaderMap) -> Response {
    let openmetrics = wants_openmetrics(&headers);
    let gzip = headers
        .get(header::ACCEPT_ENCODING)
        .is_some_and(|v| crate::metrics::gzip::accepts_gzip(v.as_bytes()));
    let permit = match app.renders.slot().await {
        Ok(p) => p,
        Err(busy) => return busy,
    };
    // Rendering thousands of probes is CPU work: off the runtime's workers, so the scheduler
    // and other requests keep running meanwhile.
    let rendered = tokio::task::spawn_blocking(move || {
        let pieces = app.metrics.render(openmetrics);
        if gzip {
            Pieces::one(crate::metrics::gzip::gzip_pieces(&pieces))
        } else {
            Pieces::from(pieces)
        }
    })
    .await;
    let Ok(body) = rendered else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let body = axum::body::Body::new(body.holding(permit));
    let content_type = if openmetrics {
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    } else {
        "text/plain; version=0.0.4; charset=utf-8"
    };
    let mut response = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    let h = response.headers_mut();
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if gzip {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    response
}
