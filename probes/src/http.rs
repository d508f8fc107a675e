//! The HTTP probe: one fresh connection per request, hyper's HTTP/1.1 client over a stream we
//! dial ourselves so that every phase is timed, redirects followed by hand (each hop a fresh,
//! timed connection), and the body read against a hard size limit.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};
use http::Method;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use url::Url;

use crate::credentials::{connect_tunnel, proxy_authorization, userinfo_to_basic_auth};
use crate::decode;
use crate::expect::{HttpExpect, Response};
use crate::net::{self, AddressFilter, Failure, IpFamily};
use crate::oauth2::Oauth2Client;
use crate::outcome::{ConnFacts, Facts, HttpFacts, KindFacts, Outcome, Phases, Reason};
use crate::secret::Redactor;
use crate::timing::{charge_timeout, timeout_evidence, Phase, StampedTcp, TimedIo};
use crate::tls::{self, TlsClient};
use crate::Clock;

/// Largest response head (status line and headers) we accept: endless headers are an attack.
const MAX_HEAD: usize = 64 * 1024;

/// One request, before redirects.
#[derive(Debug, Clone)]
pub struct Request {
    pub url: Url,
    pub method: Method,
    pub headers: HeaderMap,
    pub body: Option<Bytes>,
}

/// How requests travel: shared by the HTTP probe and each step of a flow.
#[derive(Debug, Clone)]
pub struct Transport {
    pub follow_redirects: bool,
    pub max_redirects: u32,
    pub max_body: u64,
    pub ip: IpFamily,
    pub proxy: Option<Url>,
    pub tls: TlsClient,
    /// Overrides SNI and the name the certificate is checked against.
    pub server_name: Option<String>,
    pub insecure_skip_verify: bool,
    /// For https: the effective certificate expiry must be this many days away (`cert_min_days`).
    pub cert_min_days: Option<f64>,
    /// Addresses this transport may not connect to.
    pub filter: Option<AddressFilter>,
    /// Local address to connect from (blackbox_exporter's `source_ip_address`).
    pub source_ip: Option<std::net::IpAddr>,
    /// HTTP versions this transport may speak (`http_versions`). The ALPN list offered is the
    /// [`TlsClient`]'s: build it with [`HttpVersions::alpn`].
    pub versions: HttpVersions,
}

/// Which HTTP versions a probe accepts (`http_versions = ["1.1", "2"]`, the default). HTTP/2 is
/// spoken over TLS only, when the server picks `h2` by ALPN; plain http is always HTTP/1.1 (no
/// h2c, as blackbox_exporter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpVersions {
    pub http1: bool,
    pub http2: bool,
}

impl Default for HttpVersions {
    fn default() -> Self {
        Self {
            http1: true,
            http2: true,
        }
    }
}

impl HttpVersions {
    /// The ALPN protocols to offer. With HTTP/2 allowed, `h2` first and `http/1.1` too (even when
    /// only "2" is accepted: a server that picks HTTP/1.1 then fails the run with a clear reason
    /// instead of a TLS alert, as blackbox_exporter's `valid_http_versions` does).
    pub fn alpn(self) -> &'static [&'static [u8]] {
        if self.http2 {
            &[b"h2", b"http/1.1"]
        } else {
            &[b"http/1.1"]
        }
    }

    /// `["1.1", "2"]`, for evidence.
    pub fn describe(self) -> String {
        let mut v = Vec::new();
        if self.http1 {
            v.push("\"1.1\"");
        }
        if self.http2 {
            v.push("\"2\"");
        }
        format!("[{}]", v.join(", "))
    }
}

/// A `kind = "http"` probe.
#[derive(Debug, Clone)]
pub struct HttpSpec {
    pub request: Request,
    pub transport: Transport,
    pub timeout: Duration,
    pub expect: HttpExpect,
    /// Secrets to mask in evidence (body excerpts may echo them).
    pub redactor: Redactor,
    /// OAuth 2.0 client credentials: each run sends the (cached) token as `Authorization`.
    pub oauth2: Option<Oauth2Client>,
}

/// Run one HTTP probe. `scheduled` is when the run was due: a late start counts as latency, and
/// the timeout (DNS included) runs from there.
pub async fn run_http(spec: &HttpSpec, clock: &Clock, scheduled: Instant) -> Outcome {
    let mut phases = Phases::default();
    let mut conn = ConnFacts::default();
    let mut hf = HttpFacts::default();
    let mut addr = None;
    let mut answered = false;
    let deadline = crate::deadline(scheduled, spec.timeout);
    let mut token_redactor = None;
    let result = tokio::time::timeout_at(deadline, async {
        let mut with_token;
        let mut request = &spec.request;
        if let Some(oauth2) = &spec.oauth2 {
            // Fetching a token is time before the first connection: the resolve phase's.
            let start = Instant::now();
            // Its own deadline (the run's): a hanging token endpoint is named in the evidence.
            let auth = tokio::time::timeout_at(
                deadline,
                oauth2.authorization(clock, &spec.transport, &spec.redactor),
            )
            .await
            .unwrap_or_else(|_| {
                Err(Failure::new(
                    Reason::Timeout,
                    format!(
                        "oauth2 token from {}: no token within the probe's timeout of {}",
                        oauth2.config().token_url,
                        ms(spec.timeout)
                    ),
                ))
            });
            phases.resolve += start.elapsed();
            let auth = auth?;
            with_token = spec.request.clone();
            with_token
                .headers
                .insert(header::AUTHORIZATION, auth.header);
            request = &with_token;
            token_redactor = Some(auth.redactor);
        }
        let redactor = token_redactor.as_ref().unwrap_or(&spec.redactor);
        let resp = exchange(
            clock,
            request,
            &spec.transport,
            &mut phases,
            &mut conn,
            &mut hf,
            &mut addr,
        )
        .await?;
        answered = true;
        spec.expect.evaluate(&resp, &mut hf, redactor)?;
        let took = scheduled.elapsed();
        if let Some(limit) = spec.expect.latency_under {
            if took > limit {
                return Err(Failure::new(
                    Reason::Latency,
                    format!("took {}, expected under {}", ms(took), ms(limit)),
                ));
            }
        }
        Ok(format!("status {}", resp.status))
    })
    .await;
    let end = Instant::now();
    let result = result.unwrap_or_else(|_| {
        let phase = conn.in_progress;
        charge_timeout(&mut phases, phase, end.saturating_duration_since(scheduled));
        Err(Failure::new(
            Reason::Timeout,
            timeout_evidence(spec.timeout, phase),
        ))
    });
    // A run that failed before a complete answer (garbage, a reset, endless headers) spent the
    // rest of its time in the phase it was in, as a timed-out one does: the phases add up.
    if result.is_err() && !answered {
        charge_timeout(
            &mut phases,
            conn.in_progress,
            end.saturating_duration_since(scheduled),
        );
    }
    let result = match addr {
        Some(a) => result
            .map(|e| format!("{e} from {a}"))
            .map_err(|f| Failure::new(f.reason, format!("{}; address {a}", f.evidence))),
        None => result,
    };
    let facts = Facts::new(conn, KindFacts::Http(hf));
    let mut outcome = crate::finish_at(end, scheduled, phases, facts, result);
    // The access token is no config secret: mask it wherever a target may have echoed it.
    if let Some(r) = &token_redactor {
        r.outcome(&mut outcome);
    }
    outcome
}

pub fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms >= 1000.0 {
        format!("{:.2}s", ms / 1000.0)
    } else {
        format!("{ms:.1}ms")
    }
}

/// Send `req`, follow redirects, read the final body. Phases and facts accumulate as we go, so a
/// timeout still reports what was reached.
pub async fn exchange(
    clock: &Clock,
    req: &Request,
    transport: &Transport,
    phases: &mut Phases,
    conn: &mut ConnFacts,
    hf: &mut HttpFacts,
    addr: &mut Option<SocketAddr>,
) -> Result<Response, Failure> {
    let mut url = req.url.clone();
    let mut method = req.method.clone();
    let mut body = req.body.clone();
    let mut headers = req.headers.clone();
    userinfo_to_basic_auth(&mut url, &mut headers);
    hf.redirects = 0;
    let mut hop_filter = match &transport.filter {
        Some(f) => Some(f.for_hop(&url).map_err(|why| {
            Failure::new(Reason::Connect, format!("target {url} refused: {why}"))
        })?),
        None => None,
    };
    loop {
        let resp = one_hop(
            clock,
            &url,
            &method,
            &headers,
            body.clone(),
            transport,
            hop_filter.as_ref(),
            phases,
            conn,
            hf,
            addr,
        )
        .await?;
        let status = resp.status;
        hf.status = Some(status);
        let location = resp
            .headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let is_redirect = matches!(status, 301 | 302 | 303 | 307 | 308);
        let (true, true, Some(location)) = (transport.follow_redirects, is_redirect, location)
        else {
            check_version(&url, transport.versions, hf, status)?;
            return Ok(resp);
        };
        if hf.redirects >= transport.max_redirects {
            return Err(Failure::new(
                Reason::RedirectLimit,
                format!(
                    "more than {} redirects; last: {status} to {location}",
                    transport.max_redirects
                ),
            ));
        }
        let next = url.join(&location).map_err(|e| {
            Failure::new(
                Reason::Protocol,
                format!("redirect to invalid location {location:?}: {e}"),
            )
        })?;
        if !matches!(next.scheme(), "http" | "https") {
            return Err(Failure::new(
                Reason::Protocol,
                format!("redirect to unsupported scheme {:?}", next.scheme()),
            ));
        }
        // Every hop is decided before it is dialled: nothing is sent to a refused one.
        if let Some(f) = &transport.filter {
            hop_filter = Some(f.for_hop(&next).map_err(|why| {
                Failure::new(
                    Reason::Connect,
                    format!("redirect_blocked: {status} to {next} refused: {why}"),
                )
            })?);
        }
        hf.redirects += 1;
        // As browsers do: 303, and 301/302 after a POST, become a GET without a body.
        if status == 303 || (matches!(status, 301 | 302) && method == Method::POST) {
            method = Method::GET;
            body = None;
            headers.remove(header::CONTENT_TYPE);
        }
        // Credentials stay with the origin they were meant for: on a redirect to another origin,
        // Authorization, Cookie and every header marked sensitive (the config marks each header
        // whose value holds a secret) are dropped.
        if next.origin() != url.origin() {
            headers.remove(header::AUTHORIZATION);
            headers.remove(header::COOKIE);
            headers.remove(header::PROXY_AUTHORIZATION);
            let secret: Vec<header::HeaderName> = headers
                .iter()
                .filter(|(_, v)| v.is_sensitive())
                .map(|(n, _)| n.clone())
                .collect();
            for name in secret {
                headers.remove(name);
            }
        }
        url = next;
    }
}

/// The final answer's HTTP version must be one the probe accepts (blackbox_exporter's
/// `valid_http_versions`, checked as it does: on the final response, after it was read).
fn check_version(
    url: &Url,
    versions: HttpVersions,
    facts: &HttpFacts,
    status: u16,
) -> Result<(), Failure> {
    let version = facts.version.as_deref().unwrap_or_default();
    let ok = match version {
        "2" => versions.http2,
        // HTTP/1.0 answers are accepted as HTTP/1.x.
        _ => versions.http1,
    };
    if ok {
        return Ok(());
    }
    let why = match (version, url.scheme()) {
        ("2", _) => "",
        (_, "https") => ": the server did not choose HTTP/2 (ALPN h2)",
        _ => ": plain http is HTTP/1.1 only (HTTP/2 is spoken over TLS, no h2c)",
    };
    Err(Failure::new(
        Reason::Protocol,
        format!(
            "status {status} over HTTP/{version}, not among http_versions {}{why}",
            versions.describe()
        ),
    ))
}

/// Either side of the TLS fork, as one stream type.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

#[allow(clippy::too_many_arguments)]
async fn one_hop(
    clock: &Clock,
    url: &Url,
    method: &Method,
    headers: &HeaderMap,
    body: Option<Bytes>,
    transport: &Transport,
    filter: Option<&AddressFilter>,
    phases: &mut Phases,
    conn: &mut ConnFacts,
    hf: &mut HttpFacts,
    addr_out: &mut Option<SocketAddr>,
) -> Result<Response, Failure> {
    let https = match url.scheme() {
        "http" => false,
        "https" => true,
        other => {
            return Err(Failure::new(
                Reason::Protocol,
                format!("unsupported scheme {other:?}"),
            ))
        }
    };
    let host = url
        .host_str()
        .ok_or_else(|| Failure::new(Reason::Protocol, "URL has no host"))?
        .to_string();
    let port = url
        .port_or_known_default()
        .ok_or_else(|| Failure::new(Reason::Protocol, "URL has no port"))?;

    // Dial the target, or the proxy.
    let (dial_host, dial_port) = match &transport.proxy {
        Some(p) => (
            p.host_str().unwrap_or_default().to_string(),
            p.port_or_known_default().unwrap_or(3128),
        ),
        None => (host.clone(), port),
    };
    conn.in_progress = Phase::Resolve;
    let addr = net::resolve(
        &dial_host,
        dial_port,
        transport.ip,
        filter,
        &mut phases.resolve,
    )
    .await?;
    *addr_out = Some(addr);
    conn.ip_protocol = Some(net::family_number(&addr));
    conn.ip_addr_hash = Some(net::ip_addr_hash(addr.ip()));
    conn.in_progress = Phase::Connect;
    let mut tcp = net::connect_from(addr, transport.source_ip, &mut phases.connect).await?;
    if let (Some(proxy), true) = (&transport.proxy, https) {
        let start = Instant::now();
        let tunnel = connect_tunnel(&mut tcp, proxy, &host, port).await;
        phases.connect += start.elapsed();
        tunnel?;
    }

    // Reads note when their bytes arrived: the first byte is dated by that, not by when this
    // task was polled (timing.rs).
    let (tcp, arrivals) = StampedTcp::new(tcp);
    let (stream, h2): (Box<dyn Io>, bool) = if https {
        let name = transport.server_name.as_deref().unwrap_or(&host);
        conn.in_progress = Phase::Tls;
        let (stream, tls) = transport
            .tls
            .handshake(tcp, name, clock, &mut phases.tls)
            .await?;
        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
        let verdict = tls::check_certificate(
            &tls,
            !transport.insecure_skip_verify,
            transport.cert_min_days,
            clock.unix_secs(),
        );
        conn.tls = Some(tls);
        verdict?;
        // blackbox_exporter's probe_http_ssl: 1 only once a TLS connection was made.
        hf.ssl = true;
        (Box::new(stream), h2)
    } else {
        hf.ssl = false;
        (Box::new(tcp), false)
    };

    let target = if h2 {
        // HTTP/2 carries the scheme and authority as pseudo-headers: the URI is absolute, and
        // there is no Host or Connection header.
        // A Host header set by the probe (a virtual host on an address) is the authority.
        let authority = match headers.get(header::HOST).and_then(|v| v.to_str().ok()) {
            Some(h) => h.to_string(),
            None => host_header(url)?.to_str().unwrap_or_default().to_string(),
        };
        let mut t = format!("https://{authority}");
        t.push_str(url.path());
        if let Some(q) = url.query() {
            t.push('?');
            t.push_str(q);
        }
        t
    } else if transport.proxy.is_some() && !https {
        url.as_str().to_string()
    } else {
        let mut t = url.path().to_string();
        if let Some(q) = url.query() {
            t.push('?');
            t.push_str(q);
        }
        t
    };
    let mut builder = http::Request::builder().method(method.clone()).uri(target);
    if h2 {
        builder = builder.version(http::Version::HTTP_2);
    }
    // The builder holds its first error (a request target hyper cannot carry, such as one of
    // 64 KiB or more after a redirect's percent-encoding) and then has no headers: a failed
    // run, never a panic.
    let Some(req_headers) = builder.headers_mut() else {
        let len = target_len(url);
        return Err(Failure::new(
            Reason::Protocol,
            format!("request target of {len} bytes cannot be sent (too long or invalid)"),
        ));
    };
    if !h2 {
        req_headers.insert(header::HOST, host_header(url)?);
        // Each run is a fresh connection: say so, and the server need not keep it.
        req_headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    req_headers.insert(
        header::USER_AGENT,
        HeaderValue::from_static(concat!("vantage/", env!("CARGO_PKG_VERSION"))),
    );
    req_headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
    if let (Some(proxy), false) = (&transport.proxy, https) {
        if let Some(auth) = proxy_authorization(proxy) {
            req_headers.insert(header::PROXY_AUTHORIZATION, auth);
        }
    }
    for (name, value) in headers {
        // Connection-specific headers are not HTTP/2's (RFC 9113 §8.2.2).
        if h2 && is_connection_specific(name) {
            continue;
        }
        req_headers.insert(name.clone(), value.clone());
    }
    let request = builder
        .body(Full::new(body.unwrap_or_default()))
        .map_err(|e| Failure::new(Reason::Protocol, format!("building request: {e}")))?;

    conn.in_progress = Phase::Processing;
    let (io, marks) = TimedIo::with_arrivals(stream, arrivals);
    let (response, driver, sent, head_at) = if h2 {
        // Both sides send SETTINGS before any request, so the byte marks of TimedIo do not
        // bracket the request on HTTP/2: processing runs from handing the request to the
        // connection to its response head being decoded.
        let mut conn_builder =
            hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new());
        conn_builder.max_header_list_size(MAX_HEAD as u32);
        let (mut sender, connection) = conn_builder
            .handshake::<_, Full<Bytes>>(TokioIo::new(io))
            .await
            .map_err(|e| hyper_failure(&e))?;
        let driver = AbortOnDrop(tokio::spawn(connection));
        let sent = Instant::now();
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| hyper_failure(&e))?;
        let head_at = Instant::now();
        (response, driver, sent, head_at)
    } else {
        let mut conn_builder = hyper::client::conn::http1::Builder::new();
        conn_builder.max_buf_size(MAX_HEAD);
        let (mut sender, connection) = conn_builder
            .handshake::<_, Full<Bytes>>(TokioIo::new(io))
            .await
            .map_err(|e| hyper_failure(&e))?;
        let driver = AbortOnDrop(tokio::spawn(connection));
        let sent = Instant::now();
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| hyper_failure(&e))?;
        let head_at = Instant::now();
        (response, driver, sent, head_at)
    };
    let m = *marks.lock().unwrap_or_else(|e| e.into_inner());
    let (written, first_byte) = if h2 {
        (sent, head_at)
    } else {
        (
            m.request_written.unwrap_or(sent),
            m.first_byte.unwrap_or(head_at),
        )
    };
    phases.processing += first_byte.saturating_duration_since(written);
    conn.in_progress = Phase::Transfer;

    hf.version = Some(
        match response.version() {
            http::Version::HTTP_10 => "1.0",
            http::Version::HTTP_11 => "1.1",
            http::Version::HTTP_2 => "2",
            _ => "other",
        }
        .to_string(),
    );
    let (parts, mut incoming) = response.into_parts();
    hf.declared_length = Some(
        parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX)),
    );
    hf.last_modified = parts
        .headers
        .get(header::LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_secs()).ok());
    hf.uncompressed_body_length = None;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(len) = declared {
        if len > transport.max_body {
            phases.transfer += first_byte.elapsed();
            return Err(Failure::new(
                Reason::BodyTooLarge,
                format!(
                    "status {}; declared body of {len} bytes exceeds max_body of {} bytes",
                    parts.status.as_u16(),
                    transport.max_body
                ),
            ));
        }
    }
    let mut buf = BytesMut::new();
    let read = async {
        while let Some(frame) = incoming.frame().await {
            let frame = frame.map_err(|e| hyper_failure(&e))?;
            if let Ok(data) = frame.into_data() {
                if (buf.len() + data.len()) as u64 > transport.max_body {
                    return Err(Failure::new(
                        Reason::BodyTooLarge,
                        format!(
                            "status {}; body exceeds max_body of {} bytes",
                            parts.status.as_u16(),
                            transport.max_body
                        ),
                    ));
                }
                buf.extend_from_slice(&data);
            }
        }
        Ok(())
    }
    .await;
    phases.transfer += first_byte.elapsed();
    drop(driver);
    read?;
    hf.content_length = Some(buf.len() as u64);
    // Decoding is part of receiving the body: its time is the transfer phase's too.
    let decoding = Instant::now();
    let body = decode_body(buf.freeze(), &parts, transport.max_body).await;
    phases.transfer += decoding.elapsed();
    let body = body?;
    hf.uncompressed_body_length = Some(body.len() as u64);
    Ok(Response {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    })
}

/// Undo the response's `Content-Encoding`: assertions and evidence see decoded text, and
/// `max_body` bounds the decoded size (a gzip bomb stops one byte past it).
async fn decode_body(
    raw: Bytes,
    parts: &http::response::Parts,
    max_body: u64,
) -> Result<Bytes, Failure> {
    let status = parts.status.as_u16();
    let codings = decode::codings(&parts.headers)
        .map_err(|e| Failure::new(Reason::Protocol, format!("status {status}; {e}")))?;
    if codings.is_empty() {
        return Ok(raw);
    }
    decode::decode(raw, &codings, max_body).await.map_err(|e| {
        let reason = match e {
            decode::DecodeError::TooLarge(_) => Reason::BodyTooLarge,
            _ => Reason::Protocol,
        };
        Failure::new(reason, format!("status {status}; {e}"))
    })
}

/// Headers that belong to one HTTP/1.1 connection and must not be sent over HTTP/2.
fn is_connection_specific(name: &header::HeaderName) -> bool {
    name == header::CONNECTION
        || name == header::HOST
        || name == header::TRANSFER_ENCODING
        || name == header::UPGRADE
        || name.as_str() == "keep-alive"
        || name.as_str() == "proxy-connection"
}

struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn host_header(url: &Url) -> Result<HeaderValue, Failure> {
    let host = url.host_str().unwrap_or_default();
    let value = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    };
    HeaderValue::from_str(&value).map_err(|_| Failure::new(Reason::Protocol, "invalid host"))
}

/// Bytes of the request target (path and query) of `url`.
fn target_len(url: &Url) -> usize {
    url.path().len() + url.query().map_or(0, |q| q.len() + 1)
}

fn hyper_failure(e: &hyper::Error) -> Failure {
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        source = s.source();
    }
    // A TLS alert after the handshake (say, the server rejecting our client certificate under
    // TLS 1.3) surfaces on the first read: it is still a TLS failure, not an HTTP one.
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let tls = s.downcast_ref::<rustls::Error>().or_else(|| {
            s.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(t) = tls {
            return Failure::new(Reason::TlsHandshake, format!("TLS: {t}"));
        }
        source = s.source();
    }
    let what = if detail.contains("too large") {
        "response head too large"
    } else if e.is_parse() || e.is_parse_status() {
        "malformed HTTP response"
    } else if e.is_incomplete_message() {
        "connection closed before a complete response"
    } else {
        "HTTP exchange failed"
    };
    Failure::new(Reason::Protocol, format!("{what} ({detail})"))
}
