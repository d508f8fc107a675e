//! Honest phase timings. hyper does not say when the request left or when the first byte came
//! back, so the connection is wrapped in [`TimedIo`], which marks those instants as they happen.
//!
//! The first byte is dated by when it *arrived*, not by when the probe's task got round to
//! reading it: with a thousand probes in flight on two cores, a task is polled milliseconds after
//! its socket became readable, and that wait is the prober's, not the target's. On Linux the TCP
//! socket is wrapped in [`StampedTcp`], which reads with `recvmsg` and `SO_TIMESTAMPNS`: the
//! kernel's receive timestamp (CLOCK_REALTIME) is turned into a monotonic [`Instant`] by its age
//! at the moment of the read. Elsewhere, or if the socket refuses the option, the instant the read
//! returned stands in ([`StampSource::ReadReturned`]).
//!
//! What the kernel dates is the newest segment in what one read returned; TCP merges segments
//! that wait in the receive queue and keeps the newest timestamp. So the probe's first read after
//! the request takes one byte (the segment holding the first byte, when segments are still apart),
//! and a target that answers in pieces faster than the prober reads is dated by the last piece
//! already queued: still no later than the read, so never worse than the read's own instant.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::outcome::Phases;

/// Instants seen on one connection.
#[derive(Debug, Default, Clone, Copy)]
pub struct Marks {
    /// When the last write before the first response byte completed (the write call returned).
    pub request_written: Option<Instant>,
    /// When the first byte read after the request was written arrived: the kernel's receive
    /// timestamp where there is one (see [`StampSource`]), else when the read returned.
    pub first_byte: Option<Instant>,
}

/// A stream that records [`Marks`] into a shared cell.
pub struct TimedIo<S> {
    inner: S,
    marks: Arc<Mutex<Marks>>,
    /// Arrival instants of the bytes underneath (the TCP socket below a TLS stream, say).
    arrivals: Option<Arrivals>,
}

impl<S> TimedIo<S> {
    /// First bytes dated by when the read returned.
    pub fn new(inner: S) -> (Self, Arc<Mutex<Marks>>) {
        Self::build(inner, None)
    }

    /// First bytes dated by `arrivals`: those of the socket under `inner`.
    pub fn with_arrivals(inner: S, arrivals: Arrivals) -> (Self, Arc<Mutex<Marks>>) {
        Self::build(inner, Some(arrivals))
    }

    fn build(inner: S, arrivals: Option<Arrivals>) -> (Self, Arc<Mutex<Marks>>) {
        let marks = Arc::new(Mutex::new(Marks::default()));
        (
            Self {
                inner,
                marks: marks.clone(),
                arrivals,
            },
            marks,
        )
    }
}

fn lock<T>(cell: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded data is plain instants: a poisoned lock still holds usable values.
    cell.lock().unwrap_or_else(|e| e.into_inner())
}

impl<S: AsyncRead + Unpin> AsyncRead for TimedIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let written = {
            let m = lock(&self.marks);
            m.request_written.filter(|_| m.first_byte.is_none())
        };
        let Some(written) = written.filter(|_| buf.remaining() > 0) else {
            return Pin::new(&mut self.inner).poll_read(cx, buf);
        };
        // Waiting for the first byte: read just one, so the arrival read below is that byte's
        // segment's and not a later one's.
        let mut one = [0u8; 1];
        let mut first = ReadBuf::new(&mut one);
        let res = Pin::new(&mut self.inner).poll_read(cx, &mut first);
        if let Poll::Ready(Ok(())) = res {
            if !first.filled().is_empty() {
                let now = Instant::now();
                let arrived = self
                    .arrivals
                    .as_ref()
                    .and_then(Arrivals::last)
                    .map_or(now, |at| at.clamp(written, now));
                lock(&self.marks).first_byte = Some(arrived);
                buf.put_slice(first.filled());
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

/// Where a [`StampedTcp`]'s arrival instants come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StampSource {
    /// The kernel's receive timestamp of the data (Linux, `SO_TIMESTAMPNS`).
    Kernel,
    /// The instant the read returned: no kernel timestamps on this platform, or the socket
    /// refused the option.
    ReadReturned,
}

/// When the data of a [`StampedTcp`]'s latest read arrived; shared with the layers above it.
#[derive(Debug, Clone)]
pub struct Arrivals(Arc<ArrivalCell>);

#[derive(Debug)]
struct ArrivalCell {
    source: StampSource,
    last: Mutex<Option<Instant>>,
}

impl Arrivals {
    fn new(source: StampSource) -> Self {
        Self(Arc::new(ArrivalCell {
            source,
            last: Mutex::new(None),
        }))
    }

    pub fn source(&self) -> StampSource {
        self.0.source
    }

    /// When the data returned by the latest non-empty read arrived.
    pub fn last(&self) -> Option<Instant> {
        *lock(&self.0.last)
    }

    fn record(&self, at: Instant) {
        *lock(&self.0.last) = Some(at);
    }
}

/// A TCP stream whose reads note when their data arrived ([`Arrivals`]). Writes pass through.
pub struct StampedTcp {
    inner: TcpStream,
    arrivals: Arrivals,
    /// Room for one `SCM_TIMESTAMPNS` control message.
    #[cfg(target_os = "linux")]
    control: Vec<u8>,
}

impl StampedTcp {
    /// Wrap `inner`, asking the kernel for receive timestamps where it can give them.
    pub fn new(inner: TcpStream) -> (Self, Arrivals) {
        let arrivals = Arrivals::new(kernel::enable(&inner));
        (
            Self {
                inner,
                arrivals: arrivals.clone(),
                #[cfg(target_os = "linux")]
                control: kernel::control_buffer(),
            },
            arrivals,
        )
    }

    pub fn get_ref(&self) -> &TcpStream {
        &self.inner
    }

    pub fn get_mut(&mut self) -> &mut TcpStream {
        &mut self.inner
    }
}

impl AsyncRead for StampedTcp {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        #[cfg(target_os = "linux")]
        if self.arrivals.source() == StampSource::Kernel {
            let this = &mut *self;
            loop {
                std::task::ready!(this.inner.poll_read_ready(cx))?;
                let unfilled = buf.initialize_unfilled();
                let read = this.inner.try_io(tokio::io::Interest::READABLE, || {
                    kernel::recv(&this.inner, unfilled, &mut this.control)
                });
                match read {
                    Ok((n, stamp)) => {
                        buf.advance(n);
                        if n > 0 {
                            this.arrivals
                                .record(stamp.map_or_else(Instant::now, kernel::to_instant));
                        }
                        return Poll::Ready(Ok(()));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
        }
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = res {
            if buf.filled().len() > before {
                self.arrivals.record(Instant::now());
            }
        }
        res
    }
}

impl AsyncWrite for StampedTcp {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
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

/// Kernel receive timestamps, through nix's safe wrappers (the workspace forbids `unsafe`).
#[cfg(target_os = "linux")]
mod kernel {
    use std::io;
    use std::os::fd::AsRawFd;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use nix::sys::socket::{recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags};
    use tokio::net::TcpStream;
    use tokio::time::Instant;

    use super::StampSource;

    pub(super) fn enable(stream: &TcpStream) -> StampSource {
        match setsockopt(stream, sockopt::ReceiveTimestampns, &true) {
            Ok(()) => StampSource::Kernel,
            Err(_) => StampSource::ReadReturned,
        }
    }

    pub(super) fn control_buffer() -> Vec<u8> {
        nix::cmsg_space!(nix::sys::time::TimeSpec)
    }

    /// One `recvmsg` into `buf`: the byte count and the kernel's receive timestamp, if it sent
    /// one.
    pub(super) fn recv(
        stream: &TcpStream,
        buf: &mut [u8],
        control: &mut [u8],
    ) -> io::Result<(usize, Option<SystemTime>)> {
        let mut iov = [io::IoSliceMut::new(buf)];
        let msg = recvmsg::<()>(
            stream.as_raw_fd(),
            &mut iov,
            Some(control),
            MsgFlags::MSG_DONTWAIT,
        )
        .map_err(io::Error::from)?;
        let mut stamp = None;
        // A truncated control buffer (cannot happen: it has room for the one message asked
        // for) is treated as no timestamp.
        if let Ok(cmsgs) = msg.cmsgs() {
            for cmsg in cmsgs {
                if let ControlMessageOwned::ScmTimestampns(ts) = cmsg {
                    let secs = u64::try_from(ts.tv_sec()).ok();
                    let nanos = u32::try_from(ts.tv_nsec())
                        .ok()
                        .filter(|n| *n < 1_000_000_000);
                    stamp = secs
                        .zip(nanos)
                        .and_then(|(s, n)| UNIX_EPOCH.checked_add(Duration::new(s, n)));
                }
            }
        }
        Ok((msg.bytes, stamp))
    }

    /// A CLOCK_REALTIME stamp as a monotonic instant: now, less the stamp's age. A stamp from the
    /// future (the wall clock stepped back) is taken as now.
    pub(super) fn to_instant(stamp: SystemTime) -> Instant {
        let now = Instant::now();
        let age = SystemTime::now()
            .duration_since(stamp)
            .unwrap_or(Duration::ZERO);
        now.checked_sub(age).unwrap_or(now)
    }
}

#[cfg(not(target_os = "linux"))]
mod kernel {
    use tokio::net::TcpStream;

    use super::StampSource;

    pub(super) fn enable(_: &TcpStream) -> StampSource {
        StampSource::ReadReturned
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

    /// Hostile clocks: a stamp from the future (the wall clock stepped back) or from the epoch
    /// (stepped far forward, or a bogus stamp) never panics and never dates past now.
    #[cfg(target_os = "linux")]
    #[test]
    fn odd_kernel_stamps_are_bounded() {
        use std::time::{SystemTime, UNIX_EPOCH};
        let before = Instant::now();
        let future = kernel::to_instant(SystemTime::now() + Duration::from_secs(3600));
        assert!(future >= before && future <= Instant::now());
        let ancient = kernel::to_instant(UNIX_EPOCH);
        assert!(ancient <= Instant::now());
        let recent = kernel::to_instant(SystemTime::now() - Duration::from_millis(20));
        assert!(recent <= Instant::now() - Duration::from_millis(19));
    }

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
