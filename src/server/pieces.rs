//! Big response bodies (`/metrics`, the status page): sent as the pieces they were rendered in,
//! and each holding one of the few render slots until it is sent or its connection closes, so
//! however many clients ask at once, at most [`RENDERS_MAX`] of them are in memory.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Big bodies rendered or being sent at once. A 10,000-probe `/metrics` is ~20 MiB of text and
/// the status page ~40 MiB of HTML; without a bound, ten slow readers held ten copies.
pub const RENDERS_MAX: usize = 2;
/// How long a request waits for a render slot before it is answered 503.
pub const RENDER_WAIT: Duration = Duration::from_secs(10);

/// The render slots.
#[derive(Debug, Clone)]
pub struct Renders(Arc<Semaphore>);

impl Default for Renders {
    fn default() -> Self {
        Self(Arc::new(Semaphore::new(RENDERS_MAX)))
    }
}

impl Renders {
    /// A slot, or the 503 to answer when none frees up within [`RENDER_WAIT`].
    pub async fn slot(&self) -> Result<OwnedSemaphorePermit, Response> {
        match tokio::time::timeout(RENDER_WAIT, self.0.clone().acquire_owned()).await {
            Ok(Ok(p)) => Ok(p),
            _ => Err((
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "1")],
                "busy: other large responses are being rendered or sent; try again\n",
            )
                .into_response()),
        }
    }
}

/// Largest frame handed to hyper (a copy of part of a piece).
const FRAME_MAX: usize = 64 * 1024;

/// A response body sent as the pieces it was rendered in: the exposition of 50,000 probes is
/// ~100 MiB, and joining it into one string would double the scrape's memory.
pub struct Pieces {
    pieces: std::collections::VecDeque<Bytes>,
    len: u64,
    _slot: Option<OwnedSemaphorePermit>,
}

impl Pieces {
    pub fn one(bytes: impl Into<Bytes>) -> Self {
        Self::from(vec![bytes.into()])
    }

    /// Keep `slot` until the body is sent or dropped.
    pub fn holding(mut self, slot: OwnedSemaphorePermit) -> Self {
        self._slot = Some(slot);
        self
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
        Self {
            pieces,
            len,
            _slot: None,
        }
    }
}

impl http_body::Body for Pieces {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        // hyper takes a frame into its own write buffer and asks for the next one until that
        // buffer is full; the body ends (and frees its slot) when it hands over its last frame.
        // Frames are therefore small copies: a stalled client then holds at most a frame or two
        // after its slot is free, never the whole page (attack-pass finding: a one-piece status
        // page released its slot at once and stayed in hyper's buffer, 18 MB a connection).
        let Some(front) = self.pieces.front_mut() else {
            return Poll::Ready(None);
        };
        let n = front.len().min(FRAME_MAX);
        let frame = Bytes::copy_from_slice(&front[..n]);
        bytes::Buf::advance(front, n);
        if front.is_empty() {
            self.pieces.pop_front();
        }
        self.len -= n as u64;
        Poll::Ready(Some(Ok(http_body::Frame::data(frame))))
    }

    fn is_end_stream(&self) -> bool {
        self.pieces.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.len)
    }
}

#[cfg(test)]
mod tests {
    use http_body::Body as _;
    use http_body_util::BodyExt as _;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn slots_bound_big_bodies_and_free_when_sent_or_dropped() {
        let renders = Renders::default();
        let a = Pieces::from(vec!["one ", "two"]).holding(renders.slot().await.unwrap());
        let b = Pieces::one("three").holding(renders.slot().await.unwrap());
        let started = tokio::time::Instant::now();
        let busy = renders.slot().await.unwrap_err();
        assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(started.elapsed(), RENDER_WAIT);

        // A body dropped unsent (its connection closed) frees its slot.
        drop(a);
        let started = tokio::time::Instant::now();
        let c = renders.slot().await.unwrap();
        assert_eq!(started.elapsed(), Duration::ZERO);

        // A body sent to its end frees its slot, and is the pieces in order.
        let sent = b.collect().await.unwrap().to_bytes();
        assert_eq!(&sent[..], b"three");
        let _d = renders.slot().await.unwrap();
        let text = Pieces::from(vec!["one ", "", "two"])
            .collect()
            .await
            .unwrap();
        assert_eq!(&text.to_bytes()[..], b"one two");
        drop(c);

        // A big piece goes out in small frames, and the slot is held until the last one is
        // taken (one slot here).
        let renders = Renders(Arc::new(Semaphore::new(1)));
        let page: String = "x".repeat(3 * FRAME_MAX + 5);
        let slot = renders.slot().await.unwrap();
        let mut body = Box::pin(Pieces::one(page.clone()).holding(slot));
        let mut sent = Vec::new();
        while let Some(frame) = body.as_mut().frame().await {
            let data = frame.unwrap().into_data().unwrap();
            assert!(data.len() <= FRAME_MAX);
            if !body.is_end_stream() {
                assert_eq!(renders.0.available_permits(), 0, "slot held mid-body");
            }
            sent.extend_from_slice(&data);
        }
        assert_eq!(sent, page.as_bytes());
        drop(body);
        assert_eq!(renders.0.available_permits(), 1);
    }
}
