//! Honest phase timings. hyper does not say when the request left or when the first byte came
//! back, so the connection is wrapped in [`TimedIo`], which marks those instants as they happen.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// Instants seen on one connection.
#[derive(Debug, Default, Clone, Copy)]
pub struct Marks {
    /// When the last write before the first response byte completed.
    pub request_written: Option<Instant>,
    /// The first byte read after the request was written.
    pub first_byte: Option<Instant>,
}

/// A stream that records [`Marks`] into a shared cell.
pub struct TimedIo<S> {
    inner: S,
    marks: Arc<Mutex<Marks>>,
}

impl<S> TimedIo<S> {
    pub fn new(inner: S) -> (Self, Arc<Mutex<Marks>>) {
        let marks = Arc::new(Mutex::new(Marks::default()));
        (
            Self {
                inner,
                marks: marks.clone(),
            },
            marks,
        )
    }
}

fn lock(marks: &Mutex<Marks>) -> std::sync::MutexGuard<'_, Marks> {
    // The guarded data is plain instants: a poisoned lock still holds usable values.
    marks.lock().unwrap_or_else(|e| e.into_inner())
}

impl<S: AsyncRead + Unpin> AsyncRead for TimedIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = res {
            if buf.filled().len() > before {
                let mut m = lock(&self.marks);
                if m.request_written.is_some() && m.first_byte.is_none() {
                    m.first_byte = Some(Instant::now());
                }
            }
        }
        res
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for TimedIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = res {
            if n > 0 {
                let mut m = lock(&self.marks);
                if m.first_byte.is_none() {
                    m.request_written = Some(Instant::now());
                }
            }
        }
        res
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = res {
            if n > 0 {
                let mut m = lock(&self.marks);
                if m.first_byte.is_none() {
                    m.request_written = Some(Instant::now());
                }
            }
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
