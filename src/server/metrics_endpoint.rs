//! `GET /metrics`: the exposition, text or OpenMetrics, gzipped when asked.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::App;

fn wants_openmetrics(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/openmetrics-text"))
}

pub(super) async fn metrics(State(app): State<App>, headers: HeaderMap) -> Response {
    let openmetrics = wants_openmetrics(&headers);
    let gzip = headers
        .get(header::ACCEPT_ENCODING)
        .is_some_and(|v| crate::metrics::gzip::accepts_gzip(v.as_bytes()));
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
    let body = axum::body::Body::new(body);
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

/// A response body sent as the pieces it was rendered in: the exposition of 50,000 probes is
/// ~100 MiB, and joining it into one string would double the scrape's memory.
struct Pieces {
    pieces: std::collections::VecDeque<Bytes>,
    len: u64,
}

impl Pieces {
    fn one(bytes: Vec<u8>) -> Self {
        Self::from(vec![bytes])
    }
}

impl<T: Into<Bytes>> From<Vec<T>> for Pieces {
    fn from(pieces: Vec<T>) -> Self {
        let pieces: std::collections::VecDeque<Bytes> = pieces
            .into_iter()
            .map(Into::into)
            .filter(|b: &Bytes| !b.is_empty())
            .collect();
        let len = pieces.iter().map(|b| b.len() as u64).sum();
        Self { pieces, len }
    }
}

impl http_body::Body for Pieces {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let next = self.pieces.pop_front();
        if let Some(b) = &next {
            self.len -= b.len() as u64;
        }
        Poll::Ready(next.map(|b| Ok(http_body::Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.pieces.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.len)
    }
}
