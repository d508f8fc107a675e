//! A connection whose client stops reading is closed: a write that makes no progress for
//! [`WRITE_STALL`] fails, and hyper drops the connection with its response (and the render
//! slot that response holds). hyper has a timeout for reading request heads, none for writing.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// Longest a write may wait for the client to take bytes.
pub const WRITE_STALL: Duration = Duration::from_secs(30);

/// `S`, with writes that fail after [`WRITE_STALL`] without progress.
pub struct StallGuard<S> {
    inner: S,
    stalled: Option<Pin<Box<Sleep>>>,
    limit: Duration,
}

impl<S> StallGuard<S> {
    pub fn new(inner: S) -> Self {
        Self::with_limit(inner, WRITE_STALL)
    }

    pub fn with_limit(inner: S, limit: Duration) -> Self {
        Self {
            inner,
            stalled: None,
            limit,
        }
    }

    /// Track a write's result: progress clears the clock, waiting starts it (once), and a wait
    /// past the limit becomes an error.
    fn watch<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if r.is_ready() {
            self.stalled = None;
            return r;
        }
        let limit = self.limit;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if timer.as_mut().poll(cx).is_ready() {
            self.stalled = None;
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "client stopped reading",
            )));
        }
        Poll::Pending
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for StallGuard<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for StallGuard<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.watch(cx, r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test(start_paused = true)]
    async fn a_reader_that_stops_is_cut_off_and_one_that_reads_is_not() {
        // A pipe with a 1 KiB buffer: nobody reads the other end.
        let (a, _b) = tokio::io::duplex(1024);
        let mut w = StallGuard::with_limit(a, Duration::from_secs(30));
        let started = tokio::time::Instant::now();
        let err = w.write_all(&vec![0u8; 64 * 1024]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(30));

        // A slow reader that keeps taking bytes is never cut off, however long it takes.
        let (a, mut b) = tokio::io::duplex(1024);
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 512];
            let mut n = 0;
            while n < 64 * 1024 {
                tokio::time::sleep(Duration::from_secs(10)).await;
                n += tokio::io::AsyncReadExt::read(&mut b, &mut buf)
                    .await
                    .unwrap();
            }
        });
        let mut w = StallGuard::with_limit(a, Duration::from_secs(30));
        w.write_all(&vec![0u8; 64 * 1024]).await.unwrap();
        reader.await.unwrap();
    }
}
