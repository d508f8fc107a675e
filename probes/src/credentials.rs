//! Credentials on the wire: basic auth from URL userinfo and `basic_auth`, and through a proxy
//! (`Proxy-Authorization`, CONNECT tunnels).

use base64::Engine as _;
use http::header::{self, HeaderMap, HeaderValue};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use url::Url;

use crate::net::Failure;
use crate::outcome::Reason;

/// The longest CONNECT answer head read from a proxy.
const MAX_CONNECT_HEAD: usize = 16 * 1024;

/// The `Authorization: Basic` value for a URL's userinfo (percent-decoded, as curl sends it),
/// or `None` when the URL has none.
pub fn basic_auth_of(url: &Url) -> Option<(String, String, HeaderValue)> {
    if url.username().is_empty() && url.password().is_none() {
        return None;
    }
    let user = percent_decode(url.username());
    let pass = percent_decode(url.password().unwrap_or(""));
    let value = basic_auth_value(&user, &pass)?;
    Some((user, pass, value))
}

/// `Authorization: Basic base64(user:pass)`, marked sensitive: the one builder for URL userinfo
/// and `basic_auth = { username, password }`. `None` when the result is no valid header value.
pub fn basic_auth_value(user: &str, pass: &str) -> Option<HeaderValue> {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    let mut value = HeaderValue::from_str(&format!("Basic {token}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// URL userinfo becomes basic auth, as curl does: the credentials go in an `Authorization`
/// header (unless one is set already) and never on the request line or in `Host`.
pub fn userinfo_to_basic_auth(url: &mut Url, headers: &mut HeaderMap) {
    let Some((_, _, value)) = basic_auth_of(url) else {
        return;
    };
    if !headers.contains_key(header::AUTHORIZATION) {
        headers.insert(header::AUTHORIZATION, value);
    }
    let _ = url.set_username("");
    let _ = url.set_password(None);
}

/// `Proxy-Authorization` from the proxy URL's userinfo (percent-decoded, not form-decoded).
pub(crate) fn proxy_authorization(proxy: &Url) -> Option<HeaderValue> {
    if proxy.username().is_empty() {
        return None;
    }
    basic_auth_of(proxy).map(|(_, _, v)| v)
}

/// Open a CONNECT tunnel through an HTTP proxy.
pub(crate) async fn connect_tunnel(
    tcp: &mut TcpStream,
    proxy: &Url,
    host: &str,
    port: u16,
) -> Result<(), Failure> {
    let mut req = format!("CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n");
    if let Some(auth) = proxy_authorization(proxy) {
        req.push_str("Proxy-Authorization: ");
        req.push_str(auth.to_str().unwrap_or_default());
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    tcp.write_all(req.as_bytes())
        .await
        .map_err(|e| Failure::new(Reason::Connect, format!("proxy CONNECT: {e}")))?;
    let mut head = Vec::with_capacity(512);
    let mut byte = [0u8; 1];
    // Byte by byte so nothing of the tunnelled stream is consumed; the head is tiny.
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_CONNECT_HEAD {
            return Err(Failure::new(
                Reason::Protocol,
                "proxy CONNECT answer too large",
            ));
        }
        let n = tcp
            .read(&mut byte)
            .await
            .map_err(|e| Failure::new(Reason::Connect, format!("proxy CONNECT: {e}")))?;
        if n == 0 {
            return Err(Failure::new(
                Reason::Connect,
                "proxy closed the connection during CONNECT",
            ));
        }
        head.push(byte[0]);
    }
    let line = String::from_utf8_lossy(&head);
    let status = line.split_whitespace().nth(1).unwrap_or_default();
    if status != "200" {
        let first = line.lines().next().unwrap_or_default();
        return Err(Failure::new(
            Reason::Connect,
            format!("proxy refused CONNECT: {first}"),
        ));
    }
    Ok(())
}
