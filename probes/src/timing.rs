//! Honest phase timings. hyper does not say when the request left or when the first byte came
//! back, so the connection is wrapped in [`TimedIo`], which marks those instants as they happen.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use crate::outcome::Phases;

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

/// The phase a run is in. Runs mark each phase as they enter it, so a timeout can charge the
/// wait to the phase it interrupted and name it in the evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Phase {
    /// Waiting for DNS; also the phase a run is in before it has done anything.
    #[default]
    Resolve,
    Connect,
    Tls,
    Processing,
    Transfer,
}

impl Phase {
    /// The name used in [`crate::Phases::NAMES`] and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Resolve => "resolve",
            Phase::Connect => "connect",
            Phase::Tls => "tls",
            Phase::Processing => "processing",
            Phase::Transfer => "transfer",
        }
    }

    /// What the run was waiting for, for evidence: "waiting for the first byte".
    pub fn waiting_for(self) -> &'static str {
        match self {
            Phase::Resolve => "the name to resolve",
            Phase::Connect => "the connection",
            Phase::Tls => "the TLS handshake",
            Phase::Processing => "the first byte",
            Phase::Transfer => "the rest of the body",
        }
    }

    fn slot(self, phases: &mut Phases) -> &mut Duration {
        match self {
            Phase::Resolve => &mut phases.resolve,
            Phase::Connect => &mut phases.connect,
            Phase::Tls => &mut phases.tls,
            Phase::Processing => &mut phases.processing,
            Phase::Transfer => &mut phases.transfer,
        }
    }
}

/// A run that timed out in `phase` after `duration` (from its scheduled start): the time no
/// finished phase accounts for is the interrupted phase's, so the phases add up to `duration`.
pub fn charge_timeout(phases: &mut Phases, phase: Phase, duration: Duration) {
    let spent: Duration = phases.as_array().iter().sum();
    *phase.slot(phases) += duration.saturating_sub(spent);
}

/// `timeout after 1s waiting for the first byte (processing)`.
pub fn timeout_evidence(timeout: Duration, phase: Phase) -> String {
    format!(
        "timeout after {} waiting for {} ({})",
        short(timeout),
        phase.waiting_for(),
        phase.name()
    )
}

/// `1s`, `1.5s`, `250ms`, `12.5ms`: as a person would write the configured value.
fn short(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms >= 1000.0 {
        format!("{}s", trim(ms / 1000.0))
    } else {
        format!("{}ms", trim(ms))
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_charges_the_phase_in_progress() {
        let mut p = Phases {
            resolve: Duration::from_micros(10),
            connect: Duration::from_micros(40),
            ..Phases::default()
        };
        charge_timeout(&mut p, Phase::Processing, Duration::from_secs(1));
        assert_eq!(
            p.as_array().iter().sum::<Duration>(),
            Duration::from_secs(1)
        );
        assert_eq!(p.processing, Duration::from_micros(999_950));
        // Phases that already exceed the duration (clock skew between marks) are left alone.
        let mut q = Phases {
            tls: Duration::from_secs(2),
            ..Phases::default()
        };
        charge_timeout(&mut q, Phase::Transfer, Duration::from_secs(1));
        assert_eq!(q.transfer, Duration::ZERO);
    }

    #[test]
    fn evidence_names_the_phase() {
        assert_eq!(
            timeout_evidence(Duration::from_secs(1), Phase::Processing),
            "timeout after 1s waiting for the first byte (processing)"
        );
        assert_eq!(
            timeout_evidence(Duration::from_millis(1500), Phase::Tls),
            "timeout after 1.5s waiting for the TLS handshake (tls)"
        );
        assert_eq!(
            timeout_evidence(Duration::from_millis(250), Phase::Connect),
            "timeout after 250ms waiting for the connection (connect)"
        );
    }
}
