//! Resolution and connection, timed, shared by every probe kind.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::Deserialize;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::outcome::Reason;

/// Which address family a probe may use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IpFamily {
    #[default]
    Any,
    Ipv4,
    Ipv6,
    /// An IPv4 address if the name has one, else any (blackbox_exporter's
    /// `preferred_ip_protocol: ip4` with `ip_protocol_fallback`).
    #[serde(rename = "prefer_ipv4")]
    PreferIpv4,
    /// An IPv6 address if the name has one, else any.
    #[serde(rename = "prefer_ipv6")]
    PreferIpv6,
}

impl IpFamily {
    fn allows(self, ip: &IpAddr) -> bool {
        match self {
            IpFamily::Any | IpFamily::PreferIpv4 | IpFamily::PreferIpv6 => true,
            IpFamily::Ipv4 => ip.is_ipv4(),
            IpFamily::Ipv6 => ip.is_ipv6(),
        }
    }

    /// Whether `ip` is of the preferred family (for the `prefer_*` choices; else any allowed).
    fn prefers(self, ip: &IpAddr) -> bool {
        match self {
            IpFamily::PreferIpv4 => ip.is_ipv4(),
            IpFamily::PreferIpv6 => ip.is_ipv6(),
            other => other.allows(ip),
        }
    }
}

/// Decides which resolved addresses a probe may connect to (the daemon's `/probe` endpoint
/// refuses link-local and cloud-metadata addresses, on every redirect hop too).
///
/// With [`AddressFilter::with_hops`], it is also a per-hop policy: before an HTTP request (the
/// first one and every redirect hop) is dialled, the hop's URL is checked and the address filter
/// for that hop is derived from it.
#[derive(Clone)]
pub struct AddressFilter(
    std::sync::Arc<AddressCheck>,
    Option<std::sync::Arc<HopCheck>>,
);

/// `Err` says why the address is refused.
type AddressCheck = dyn Fn(&IpAddr) -> Result<(), String> + Send + Sync;
/// `Err` says why the hop is refused; `Ok` is the address filter for that hop.
type HopCheck = dyn Fn(&url::Url) -> Result<AddressFilter, String> + Send + Sync;

impl AddressFilter {
    pub fn new(f: impl Fn(&IpAddr) -> Result<(), String> + Send + Sync + 'static) -> Self {
        Self(std::sync::Arc::new(f), None)
    }

    /// Also decide each HTTP hop by its URL, before anything is sent to it.
    pub fn with_hops(
        mut self,
        f: impl Fn(&url::Url) -> Result<AddressFilter, String> + Send + Sync + 'static,
    ) -> Self {
        self.1 = Some(std::sync::Arc::new(f));
        self
    }

    pub fn check(&self, ip: &IpAddr) -> Result<(), String> {
        (self.0)(ip)
    }

    /// The filter for a request to `url`, or why that request may not be made.
    pub fn for_hop(&self, url: &url::Url) -> Result<AddressFilter, String> {
        match &self.1 {
            Some(hop) => hop(url),
            None => Ok(self.clone()),
        }
    }
}

impl std::fmt::Debug for AddressFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AddressFilter")
    }
}

/// Why a run stopped early: becomes the outcome's reason and evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub reason: Reason,
    pub evidence: String,
}

impl Failure {
    pub fn new(reason: Reason, evidence: impl Into<String>) -> Self {
        Self {
            reason,
            evidence: evidence.into(),
        }
    }
}

/// Resolve `host` to one address of the wanted family. IP literals skip DNS.
pub(crate) async fn resolve(
    host: &str,
    port: u16,
    family: IpFamily,
    filter: Option<&AddressFilter>,
    spent: &mut Duration,
) -> Result<SocketAddr, Failure> {
    let addr = resolve_any(host, port, family, spent).await?;
    if let Some(f) = filter {
        f.check(&addr.ip()).map_err(|why| {
            Failure::new(
                Reason::Connect,
                format!("address {} refused: {why}", addr.ip()),
            )
        })?;
    }
    Ok(addr)
}

async fn resolve_any(
    host: &str,
    port: u16,
    family: IpFamily,
    spent: &mut Duration,
) -> Result<SocketAddr, Failure> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        if !family.allows(&ip) {
            return Err(Failure::new(
                Reason::Dns,
                format!("address {ip} is not of the required family {family:?}"),
            ));
        }
        return Ok(SocketAddr::new(ip, port));
    }
    let start = Instant::now();
    let result = tokio::net::lookup_host((bare, port)).await;
    *spent += start.elapsed();
    let addrs = result.map_err(|e| Failure::new(Reason::Dns, format!("resolving {bare}: {e}")))?;
    let mut seen = 0;
    let mut fallback = None;
    // Bounded: a name with thousands of addresses is read no further than this.
    for addr in addrs.take(256) {
        seen += 1;
        if family.prefers(&addr.ip()) {
            return Ok(addr);
        }
        if fallback.is_none() && family.allows(&addr.ip()) {
            fallback = Some(addr);
        }
    }
    if let Some(addr) = fallback {
        return Ok(addr);
    }
    let what = if seen == 0 {
        format!("resolving {bare}: no addresses")
    } else {
        format!("resolving {bare}: no address of the required family {family:?}")
    };
    Err(Failure::new(Reason::Dns, what))
}

/// Open a fresh TCP connection from `source` (any local address when `None`).
pub(crate) async fn connect_from(
    addr: SocketAddr,
    source: Option<IpAddr>,
    spent: &mut Duration,
) -> Result<TcpStream, Failure> {
    let Some(source) = source else {
        return connect(addr, spent).await;
    };
    if source.is_ipv4() != addr.is_ipv4() {
        return Err(Failure::new(
            Reason::Connect,
            format!("source_ip {source} and target address {addr} are of different families"),
        ));
    }
    let start = Instant::now();
    let result = async {
        let socket = if source.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.bind(SocketAddr::new(source, 0))?;
        socket.connect(addr).await
    }
    .await;
    *spent += start.elapsed();
    let stream = result.map_err(|e| {
        Failure::new(
            Reason::Connect,
            format!("connecting to {addr} from {source}: {e}"),
        )
    })?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Open a fresh TCP connection.
pub(crate) async fn connect(addr: SocketAddr, spent: &mut Duration) -> Result<TcpStream, Failure> {
    let start = Instant::now();
    let result = TcpStream::connect(addr).await;
    *spent += start.elapsed();
    let stream =
        result.map_err(|e| Failure::new(Reason::Connect, format!("connecting to {addr}: {e}")))?;
    // Probes write a whole request at once: Nagle would only add latency to the measurement.
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// blackbox_exporter's `probe_ip_addr_hash`: FNV-1a (32 bit) over the address's bytes, 4 for
/// IPv4 (and IPv4-mapped IPv6), 16 for IPv6.
pub fn ip_addr_hash(ip: std::net::IpAddr) -> u32 {
    let bytes: Vec<u8> = match ip {
        std::net::IpAddr::V4(v4) => v4.octets().to_vec(),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.octets().to_vec(),
            None => v6.octets().to_vec(),
        },
    };
    bytes.iter().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// 4 or 6.
pub(crate) fn family_number(addr: &SocketAddr) -> u8 {
    if addr.is_ipv4() {
        4
    } else {
        6
    }
}

#[cfg(test)]
mod ip_hash_tests {
    use super::{ip_addr_hash, IpFamily};

    #[test]
    fn preference_falls_back_to_the_other_family() {
        let v4: std::net::IpAddr = "127.0.0.1".parse().unwrap();
        let v6: std::net::IpAddr = "::1".parse().unwrap();
        assert!(IpFamily::PreferIpv6.allows(&v4) && !IpFamily::PreferIpv6.prefers(&v4));
        assert!(IpFamily::PreferIpv6.prefers(&v6));
        assert!(IpFamily::PreferIpv4.prefers(&v4) && !IpFamily::PreferIpv4.prefers(&v6));
        assert!(!IpFamily::Ipv6.allows(&v4));
    }

    #[test]
    fn matches_blackbox_exporter() {
        // Values printed by blackbox_exporter 0.23 / Go's hash/fnv over net.IP.To4()/To16().
        assert_eq!(ip_addr_hash("127.0.0.1".parse().unwrap()), 3_668_918_509);
        assert_eq!(
            ip_addr_hash("::ffff:127.0.0.1".parse().unwrap()),
            3_668_918_509
        );
        assert_ne!(ip_addr_hash("::1".parse().unwrap()), 3_668_918_509);
    }
}
