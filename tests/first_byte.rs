//! The first byte is dated by when it arrived (the kernel's receive timestamp on Linux), not by
//! when the probe's task got round to reading it (issue 13, SPEC §8 timing fidelity). These tests
//! assert order, not speed: a late reader must see an arrival before its read started, an answer
//! in pieces is dated by its first piece, TLS by the answer and not the session tickets.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use vantage_probes::timing::{StampSource, StampedTcp, TimedIo};
use vantage_probes::{Outcome, Reason};

use crate::fixtures::{https_target, Pki};
use crate::support::{load, outcome, run_all};

fn phase_sum(o: &Outcome) -> Duration {
    o.phases.as_array().iter().sum()
}

/// A connected pair on loopback: (client, server).
async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, _) = listener.accept().await.unwrap();
    (client, server)
}

#[tokio::test]
async fn the_timed_stream_reports_kernel_timestamps_on_linux() {
    let (client, _server) = pair().await;
    let (_stream, arrivals) = StampedTcp::new(client);
    let expected = if cfg!(target_os = "linux") {
        StampSource::Kernel
    } else {
        StampSource::ReadReturned
    };
    assert_eq!(arrivals.source(), expected);
    assert_eq!(arrivals.last(), None, "nothing read yet");
}

/// The prober's task is late (here: it sleeps before reading): the first byte is still dated by
/// when it arrived. With the read's own instant (the old way, and the fallback off Linux) it
/// would be dated after `read_started`.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_late_reader_dates_the_first_byte_by_its_arrival() {
    let (client, mut server) = pair().await;
    let (stamped, arrivals) = StampedTcp::new(client);
    let arrivals_probe = arrivals.clone();
    // The kernel switches receive timestamps on host-wide a moment after the first socket asks
    // (a deferred static key); until then reads carry no stamp and the read's instant stands in.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (mut io, marks) = TimedIo::with_arrivals(stamped, arrivals);
    io.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let written = marks.lock().unwrap().request_written.unwrap();
    let mut head = [0u8; 18];
    server.read_exact(&mut head).await.unwrap();
    let before_answer = Instant::now();
    server.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let read_started = Instant::now();
    let mut got = [0u8; 64];
    let n = io.read(&mut got).await.unwrap();
    assert_eq!(
        &got[..n],
        b"H",
        "the first read after the request takes one byte"
    );
    let first = marks.lock().unwrap().first_byte.unwrap();
    assert!(
        first < read_started,
        "dated at the read, not the arrival: first {first:?} read {read_started:?} answered {before_answer:?} kernel {:?}",
        arrivals_probe
    );
    // The kernel stamp (CLOCK_REALTIME, converted) lands after the answer was sent, allowing
    // for the conversion's few µs.
    assert!(
        first + Duration::from_millis(5) >= before_answer && first >= written,
        "{first:?} {before_answer:?} {written:?}"
    );
    // The rest reads as usual and leaves the mark alone.
    let n = io.read(&mut got).await.unwrap();
    assert_eq!(&got[..n], b"TTP/1.1 200 OK\r\n\r\n");
    assert_eq!(marks.lock().unwrap().first_byte, Some(first));
}

/// A target that answers in pieces: the first piece, 400 ms of silence, the rest. `processing`
/// ends at the first piece; the silence is `transfer`'s.
#[tokio::test]
async fn an_answer_in_pieces_is_dated_by_its_first_byte() {
    let target = serve_once(|mut s| async move {
        read_head(&mut s).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let _ = s.write_all(b"HTTP/1.1 2").await;
        tokio::time::sleep(Duration::from_millis(400)).await;
        let _ = s
            .write_all(b"00 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            .await;
        let _ = s.shutdown().await;
    })
    .await;
    let cfg = format!(
        "[[probe]]\nname = \"pieces\"\nkind = \"http\"\nurl = \"http://{target}/\"\ntimeout = \"5s\"\ninterval = \"1m\"\n"
    );
    let all = run_all(load(&cfg)).await;
    let o = outcome(&all, "pieces");
    assert!(o.success(), "{o:#?}");
    assert!(
        o.phases.processing >= Duration::from_millis(50)
            && o.phases.processing < Duration::from_millis(400),
        "{:?}",
        o.phases
    );
    assert!(
        o.phases.transfer >= Duration::from_millis(350),
        "{:?}",
        o.phases
    );
    assert!(phase_sum(o) <= o.duration, "{:?}", o.phases);
}

/// Over TLS the socket also carries the server's session tickets, which arrive right after the
/// handshake, before the answer: the first byte is the answer's, 150 ms later.
#[tokio::test]
async fn tls_first_byte_is_the_answer_not_the_session_tickets() {
    let pki = Pki::new();
    let leaf = pki.leaf(&["localhost", "127.0.0.1"], -1, 30);
    let target = https_target(leaf.chain.clone(), leaf.key()).await;
    let cfg = format!(
        "[[probe]]\nname = \"slow\"\nkind = \"http\"\nurl = \"{}\"\ntimeout = \"5s\"\ninterval = \"1m\"\ntls = {{ insecure_skip_verify = true }}\n",
        target.https_url("/delay/150")
    );
    let all = run_all(load(&cfg)).await;
    let o = outcome(&all, "slow");
    assert!(o.success(), "{o:#?}");
    assert!(
        o.phases.processing >= Duration::from_millis(150),
        "{:?}",
        o.phases
    );
    assert!(phase_sum(o) <= o.duration, "{:?}", o.phases);
}

/// Hostile: a target that answers before it is asked (the answer is in the socket before the
/// request is written). The arrival is clamped to the request's write: processing is not
/// negative, the phases still add up, nothing panics.
#[tokio::test]
async fn an_answer_before_the_request_is_clamped_to_the_write() {
    let target = serve_once(|mut s| async move {
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            .await;
        read_head(&mut s).await;
        let _ = s.shutdown().await;
    })
    .await;
    let cfg = format!(
        "[[probe]]\nname = \"eager\"\nkind = \"http\"\nurl = \"http://{target}/\"\ntimeout = \"2s\"\ninterval = \"1m\"\n"
    );
    let all = run_all(load(&cfg)).await;
    let o = outcome(&all, "eager");
    assert!(o.success() || o.reason == Some(Reason::Protocol), "{o:#?}");
    assert!(
        o.phases.processing < Duration::from_secs(1),
        "{:?}",
        o.phases
    );
    assert!(phase_sum(o) <= o.duration, "{:?}", o.phases);
}

async fn read_head(s: &mut TcpStream) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 64 * 1024 {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Serves connections with `handler` for 10 s at most; returns the address.
async fn serve_once<F, Fut>(handler: F) -> std::net::SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handler = Arc::new(handler);
    tokio::spawn(async move {
        let _ = tokio::time::timeout(Duration::from_secs(10), async {
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((s, _)) = listener.accept().await {
                conns.spawn((*handler)(s));
            }
        })
        .await;
    });
    addr
}
