//! `[server] probe_allow`: which targets `/probe` may reach, as structured rules.
//!
//! A rule is parsed once, at load, into a scheme, a host pattern, a port and a path glob:
//! `scheme://HOST[:PORT][/PATH]`. A target is matched after the URL parser has normalised it
//! (case, IDN, IPv4 in hex/octal/decimal, `..` segments, percent-encoding), by its parsed parts,
//! never by its text: userinfo, a `@` in the port, a `#` or `\` cannot move a target's real host
//! past a rule. The same matcher decides every redirect hop.
//!
//! - HOST: `*` (any host), a name (`api.example.com`, IDN allowed), a name whose whole leftmost
//!   label is `*` (`*.example.com`: exactly one label in front of `example.com`), an IPv4 literal
//!   in dotted decimal, a bracketed IPv6 literal (`[::1]`), or a CIDR (`10.0.0.0/8`, `[fd00::/8]`).
//!   A name never matches an IP literal, and an IP pattern never matches a name: the pattern is
//!   about what the target says, while the address filter decides what a name may resolve to.
//! - PORT: a number or `*`; absent means the scheme's default (80 for http, 443 for https and tls).
//! - PATH: a glob over `/`-separated segments: `*` matches within one segment, a segment `**`
//!   matches any number of segments. Absent means any path (`/**`).
//! - scheme: `http`, `https`, or `tls` (the `tls` module's `host:port` targets).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

/// Where a request goes, as the allow list sees it: parsed and normalised, never text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dest {
    pub scheme: String,
    pub host: Host<String>,
    pub port: u16,
    pub path: String,
}

impl Dest {
    /// An http(s) URL. Userinfo, a missing host or an unknown scheme is refused.
    pub fn of_url(url: &Url) -> Result<Dest, String> {
        if !url.username().is_empty() || url.password().is_some() {
            return Err("a target with userinfo (user:password@) is not allowed".into());
        }
        let host = url.host().ok_or("the URL has no host")?.to_owned();
        let port = url.port_or_known_default().ok_or("the URL has no port")?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("scheme {:?} is not http or https", url.scheme()));
        }
        Ok(Dest {
            scheme: url.scheme().to_string(),
            host,
            port,
            path: url.path().to_string(),
        })
    }

    /// A `tls` module's `host:port`, normalised as an https URL's host would be.
    pub fn tls(host: &str, port: u16) -> Result<Dest, String> {
        Self::host_port("tls", host, port)
    }

    /// A non-HTTP module's `host:port` (`icmp`: port 0), under its kind's scheme, normalised
    /// as an https URL's host would be.
    pub fn host_port(scheme: &str, host: &str, port: u16) -> Result<Dest, String> {
        if host.is_empty()
            || host.chars().any(|c| {
                matches!(c, '@' | '/' | '?' | '#' | '\\' | '[' | ']' | '%')
                    || c.is_whitespace()
                    || c.is_control()
            })
        {
            return Err(format!("invalid host {host:?}"));
        }
        // Port 0 (icmp) is written as 443 for the parse and put back below.
        let url_port = if port == 0 { 443 } else { port };
        let text = if host.contains(':') {
            format!("https://[{host}]:{url_port}/")
        } else {
            format!("https://{host}:{url_port}/")
        };
        let url = Url::parse(&text).map_err(|e| format!("invalid host {host:?}: {e}"))?;
        let d = Dest::of_url(&url)?;
        if d.port != url_port || d.path != "/" {
            return Err(format!("invalid host {host:?}"));
        }
        Ok(Dest {
            scheme: scheme.into(),
            port,
            ..d
        })
    }

    /// The host as a connection would use it: no brackets, no trailing dot removed.
    pub fn dial_host(&self) -> String {
        match &self.host {
            Host::Domain(d) => d.clone(),
            Host::Ipv4(a) => a.to_string(),
            Host::Ipv6(a) => a.to_string(),
        }
    }
}

/// One parsed `probe_allow` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowRule {
    pub scheme: String,
    pub host: HostPattern,
    /// `None` is `*`.
    pub port: Option<u16>,
    /// Path segments; `None` is any path.
    pub path: Option<Vec<String>>,
    /// The rule as written, for messages.
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    Any,
    /// Lowercase ASCII (IDN converted), no trailing dot. `wildcard`: one more label in front.
    Name {
        name: String,
        wildcard: bool,
    },
    Ip(IpAddr),
    Cidr {
        net: IpAddr,
        prefix: u8,
    },
}

/// A malformed rule: what is wrong and the byte offset in the rule text where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

fn bad(offset: usize, message: impl Into<String>) -> RuleError {
    RuleError {
        offset,
        message: message.into(),
    }
}

/// Default port of a scheme the rules know.
pub fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" | "tls" | "grpc" => Some(443),
        "dns" => Some(53),
        // Echo has no port: an icmp target is port 0, and so is an icmp rule.
        "icmp" => Some(0),
        _ => None,
    }
}

impl AllowRule {
    pub fn parse(text: &str) -> Result<AllowRule, RuleError> {
        if let Some(i) = text.find(|c: char| c.is_whitespace() || c.is_control()) {
            return Err(bad(i, "whitespace or a control character in the rule"));
        }
        let Some((scheme, rest)) = text.split_once("://") else {
            return Err(bad(
                0,
                "expected scheme://HOST[:PORT][/PATH], e.g. \"https://*.example.com/**\"",
            ));
        };
        let scheme = scheme.to_ascii_lowercase();
        if default_port(&scheme).is_none() && scheme != "tcp" {
            return Err(bad(
                0,
                format!("unknown scheme {scheme:?}: use http, https, tls, tcp, dns, grpc or icmp"),
            ));
        }
        let base = text.len() - rest.len();
        if let Some(i) = rest.find(['?', '#', '\\', '@']) {
            return Err(bad(
                base + i,
                format!(
                    "{:?} is not allowed in a rule (rules name scheme, host, port and path only)",
                    &rest[i..i + 1]
                ),
            ));
        }
        let (authority, path) =
            split_authority(rest).map_err(|e| bad(base + e.offset, e.message))?;
        let (host_text, port_text) =
            split_port(authority).map_err(|e| bad(base + e.offset, e.message))?;
        let host = parse_host(host_text).map_err(|e| bad(base + e.offset, e.message))?;
        let port = match port_text {
            None if scheme == "tcp" => {
                return Err(bad(
                    base + authority.len(),
                    "a tcp rule names its port (a number, or * for any)",
                ))
            }
            None => default_port(&scheme),
            Some("*") => None,
            Some(p) => {
                let at = base + host_text.len() + 1;
                match p.parse::<u16>() {
                    Ok(0) | Err(_) => {
                        return Err(bad(at, format!("port {p:?} is not a number 1-65535 or *")))
                    }
                    Ok(n) if !p.bytes().all(|b| b.is_ascii_digit()) => {
                        return Err(bad(at, format!("port {p:?} is not a number {n} or *")))
                    }
                    Ok(n) => Some(n),
                }
            }
        };
        let path_at = base + authority.len();
        let path = if path.is_empty() {
            None
        } else {
            Some(parse_path(path).map_err(|e| bad(path_at + e.offset, e.message))?)
        };
        Ok(AllowRule {
            scheme,
            host,
            port,
            path,
            text: text.to_string(),
        })
    }

    /// Does this rule allow `url` (already parsed, so normalised)? A URL with userinfo never
    /// matches.
    pub fn matches(&self, url: &Url) -> bool {
        Dest::of_url(url).is_ok_and(|d| self.matches_dest(&d))
    }

    pub fn matches_dest(&self, d: &Dest) -> bool {
        if d.scheme != self.scheme {
            return false;
        }
        let host = match &d.host {
            Host::Domain(s) => Host::Domain(s.as_str()),
            Host::Ipv4(a) => Host::Ipv4(*a),
            Host::Ipv6(a) => Host::Ipv6(*a),
        };
        if !self.host.matches(&host) || self.port.is_some_and(|p| p != d.port) {
            return false;
        }
        match &self.path {
            None => true,
            // An opaque path ("http:foo") has no leading '/': it never matches a path rule.
            Some(rule) => d.path.strip_prefix('/').is_some_and(|p| {
                let segments: Vec<&str> = p.split('/').collect();
                match_segments(rule, &segments)
            }),
        }
    }

    /// Whether this rule names `ip` explicitly: its host is that exact address, or a CIDR that
    /// contains it. Only such a rule lets a target reach a link-local or metadata address.
    pub fn names_address(&self, ip: &IpAddr) -> bool {
        match &self.host {
            HostPattern::Ip(a) => canonical(a) == canonical(ip),
            HostPattern::Cidr { net, prefix } => in_cidr(&canonical(ip), net, *prefix),
            HostPattern::Any | HostPattern::Name { .. } => false,
        }
    }
}

impl HostPattern {
    pub fn matches(&self, host: &Host<&str>) -> bool {
        match (self, host) {
            (HostPattern::Any, _) => true,
            (HostPattern::Name { name, wildcard }, Host::Domain(d)) => {
                let d = d.strip_suffix('.').unwrap_or(d).to_ascii_lowercase();
                if *wildcard {
                    d.strip_suffix(name.as_str())
                        .and_then(|front| front.strip_suffix('.'))
                        .is_some_and(|label| !label.is_empty() && !label.contains('.'))
                } else {
                    d == *name
                }
            }
            (HostPattern::Ip(IpAddr::V4(a)), Host::Ipv4(b)) => a == b,
            (HostPattern::Ip(IpAddr::V6(a)), Host::Ipv6(b)) => a == b,
            (HostPattern::Cidr { net, prefix }, Host::Ipv4(b)) => {
                in_cidr(&IpAddr::V4(*b), net, *prefix)
            }
            (HostPattern::Cidr { net, prefix }, Host::Ipv6(b)) => {
                in_cidr(&IpAddr::V6(*b), net, *prefix)
            }
            _ => false,
        }
    }
}

/// IPv4-mapped IPv6 addresses compare as the IPv4 address they carry.
fn canonical(ip: &IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(*ip, IpAddr::V4),
        v4 => *v4,
    }
}

fn in_cidr(ip: &IpAddr, net: &IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(*a) & mask == u32::from(*n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(*a) & mask == u128::from(*n) & mask
        }
        _ => false,
    }
}

/// `HOST[:PORT]` and the path. An IPv4 host followed by `/` and a number up to 32 is a CIDR
/// (`10.0.0.0/8`), whose port, if any, comes after the prefix length (`10.0.0.0/8:*`).
fn split_authority(rest: &str) -> Result<(&str, &str), RuleError> {
    let mut end = if rest.starts_with('[') {
        match rest.find(']') {
            Some(close) => close + 1,
            None => return Err(bad(0, "'[' without a closing ']'")),
        }
    } else {
        let first = rest.find([':', '/']).unwrap_or(rest.len());
        let mut end = first;
        if rest[first..].starts_with('/') && rest[..first].parse::<Ipv4Addr>().is_ok() {
            let digits = rest[first + 1..]
                .bytes()
                .take_while(u8::is_ascii_digit)
                .count();
            let next = rest.as_bytes().get(first + 1 + digits);
            let prefix = rest[first + 1..first + 1 + digits].parse::<u8>().ok();
            if (1..=2).contains(&digits)
                && prefix.is_some_and(|p| p <= 32)
                && matches!(next, None | Some(b':') | Some(b'/'))
            {
                end = first + 1 + digits;
            }
        }
        end
    };
    if rest[end..].starts_with(':') {
        end = rest[end..].find('/').map_or(rest.len(), |j| end + j);
    } else if !rest[end..].is_empty() && !rest[end..].starts_with('/') {
        return Err(bad(
            end,
            format!("unexpected {:?} after the host", &rest[end..]),
        ));
    }
    Ok(rest.split_at(end))
}

/// `host[:port]`, the host possibly bracketed.
fn split_port(authority: &str) -> Result<(&str, Option<&str>), RuleError> {
    if authority.is_empty() {
        return Err(bad(0, "missing host"));
    }
    let host_end = if authority.starts_with('[') {
        match authority.find(']') {
            Some(i) => i + 1,
            None => return Err(bad(0, "'[' without a closing ']'")),
        }
    } else {
        authority.find(':').unwrap_or(authority.len())
    };
    let (host, rest) = authority.split_at(host_end);
    match rest.strip_prefix(':') {
        None if rest.is_empty() => Ok((host, None)),
        None => Err(bad(host_end, format!("unexpected {rest:?} after the host"))),
        Some("") => Err(bad(host_end, "empty port after ':'")),
        Some(p) => Ok((host, Some(p))),
    }
}

fn parse_prefix(text: &str, max: u8, at: usize) -> Result<u8, RuleError> {
    match text.parse::<u8>() {
        Ok(p) if p <= max && text.bytes().all(|b| b.is_ascii_digit()) => Ok(p),
        _ => Err(bad(at, format!("CIDR prefix {text:?} is not 0-{max}"))),
    }
}

fn parse_host(text: &str) -> Result<HostPattern, RuleError> {
    if text == "*" {
        return Ok(HostPattern::Any);
    }
    if let Some(inner) = text.strip_prefix('[') {
        let inner = inner
            .strip_suffix(']')
            .ok_or_else(|| bad(0, "'[' without a closing ']'"))?;
        let (addr, prefix) = match inner.split_once('/') {
            Some((a, p)) => (a, Some(parse_prefix(p, 128, a.len() + 2)?)),
            None => (inner, None),
        };
        let ip: Ipv6Addr = addr
            .parse()
            .map_err(|_| bad(1, format!("{addr:?} is not an IPv6 address")))?;
        return Ok(match prefix {
            Some(prefix) => HostPattern::Cidr {
                net: IpAddr::V6(ip),
                prefix,
            },
            None => HostPattern::Ip(IpAddr::V6(ip)),
        });
    }
    if let Some((addr, p)) = text.split_once('/') {
        let ip: Ipv4Addr = addr.parse().map_err(|_| {
            bad(
                0,
                format!("{addr:?} is not an IPv4 address in dotted decimal (CIDR)"),
            )
        })?;
        let prefix = parse_prefix(p, 32, addr.len() + 1)?;
        return Ok(HostPattern::Cidr {
            net: IpAddr::V4(ip),
            prefix,
        });
    }
    if text.contains(':') {
        return Err(bad(0, "an IPv6 address must be in brackets: [::1]"));
    }
    if let Ok(ip) = text.parse::<Ipv4Addr>() {
        return Ok(HostPattern::Ip(IpAddr::V4(ip)));
    }
    let (wildcard, name) = match text.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    if let Some(i) = name.find('*') {
        let at = text.len() - name.len() + i;
        return Err(bad(
            at,
            "'*' in a host must be the whole leftmost label (\"*.example.com\") or the whole host",
        ));
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    match Host::parse(name) {
        Ok(Host::Domain(d)) => {
            if d.is_empty()
                || d.split('.').any(str::is_empty)
                || !d
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
            {
                return Err(bad(0, format!("{text:?} is not a host name")));
            }
            // A name that is all digits and dots would be read as an address by the URL parser.
            if d.rsplit('.')
                .next()
                .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()))
            {
                return Err(bad(
                    0,
                    format!("{text:?} is neither a dotted-decimal IPv4 address nor a host name"),
                ));
            }
            Ok(HostPattern::Name { name: d, wildcard })
        }
        Ok(Host::Ipv4(_)) | Ok(Host::Ipv6(_)) => Err(bad(
            0,
            format!(
                "{text:?} looks like an address in another notation: write IPv4 as dotted decimal"
            ),
        )),
        Err(e) => Err(bad(0, format!("{text:?} is not a host name: {e}"))),
    }
}

fn parse_path(path: &str) -> Result<Vec<String>, RuleError> {
    let mut out = Vec::new();
    let mut at = 1;
    for seg in path[1..].split('/') {
        if seg == "." || seg == ".." {
            return Err(bad(
                at,
                "'.' and '..' segments are not allowed in a rule path",
            ));
        }
        if seg.contains("**") && seg != "**" {
            return Err(bad(at, "'**' must be a whole path segment"));
        }
        if let Some(i) = seg.find('%') {
            let ok = seg
                .get(i + 1..i + 3)
                .is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
            if !ok {
                return Err(bad(at + i, "'%' must start a percent-encoded byte"));
            }
        }
        out.push(seg.to_string());
        at += seg.len() + 1;
    }
    Ok(out)
}

/// Segment-wise glob match; `**` spans zero or more segments.
fn match_segments(rule: &[String], path: &[&str]) -> bool {
    match rule.split_first() {
        None => path.is_empty(),
        Some((first, rest)) if first == "**" => {
            (0..=path.len()).any(|skip| match_segments(rest, &path[skip..]))
        }
        Some((first, rest)) => match path.split_first() {
            Some((p, prest)) => {
                match_glob(first.as_bytes(), p.as_bytes()) && match_segments(rest, prest)
            }
            None => false,
        },
    }
}

/// `*` matches any run of bytes (the segment holds no '/'); everything else is literal.
fn match_glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|b| *b == b'*')
}

/// Link-local (169.254/16, fe80::/10) and cloud metadata addresses (also IPv4-mapped).
pub fn is_sensitive(ip: &IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => v4.is_link_local() || v4 == Ipv4Addr::new(100, 100, 100, 200),
        IpAddr::V6(v6) => {
            (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)
        }
    }
}

/// The whole allow list and the decisions made with it.
#[derive(Debug, Clone, Default)]
pub struct ProbeAllow {
    pub rules: Vec<AllowRule>,
}

impl ProbeAllow {
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Why `d` may not be probed, if it may not.
    pub fn check(&self, d: &Dest) -> Result<(), String> {
        if self.rules.iter().any(|r| r.matches_dest(d)) {
            Ok(())
        } else {
            Err("not allowed by server.probe_allow".into())
        }
    }

    /// Why a URL may not be probed, if it may not.
    pub fn check_url(&self, url: &Url) -> Result<(), String> {
        self.check(&Dest::of_url(url)?)
    }

    /// Why a connection for `d` may not go to `ip`, if it may not: a link-local or metadata
    /// address needs a rule that matches `d` and names the address explicitly.
    pub fn check_address(&self, d: &Dest, ip: &IpAddr) -> Result<(), String> {
        if !is_sensitive(ip) {
            return Ok(());
        }
        if self
            .rules
            .iter()
            .any(|r| r.matches_dest(d) && r.names_address(ip))
        {
            return Ok(());
        }
        Err("link-local and cloud metadata addresses need a probe_allow rule whose host is that address or a CIDR containing it".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(t: &str) -> AllowRule {
        AllowRule::parse(t).unwrap_or_else(|e| panic!("{t}: {e}"))
    }

    fn allows(r: &str, u: &str) -> bool {
        rule(r).matches(&Url::parse(u).unwrap())
    }

    #[test]
    fn parses_the_documented_forms() {
        let r = rule("https://*.example.com/**");
        assert_eq!(
            r.host,
            HostPattern::Name {
                name: "example.com".into(),
                wildcard: true
            }
        );
        assert_eq!(r.port, Some(443));
        assert_eq!(rule("http://127.0.0.1:*/**").port, None);
        assert_eq!(
            rule("http://[::1]:8080/x").host,
            HostPattern::Ip("::1".parse().unwrap())
        );
        assert_eq!(
            rule("http://[fd00::/8]:*").host,
            HostPattern::Cidr {
                net: "fd00::".parse().unwrap(),
                prefix: 8
            }
        );
        assert_eq!(
            rule("http://10.0.0.0/8:*/api/**").host,
            HostPattern::Cidr {
                net: "10.0.0.0".parse().unwrap(),
                prefix: 8
            }
        );
        assert_eq!(
            rule("http://10.0.0.0/8:*/api/**").path,
            Some(vec!["api".into(), "**".into()])
        );
        assert_eq!(rule("http://10.0.0.0/8").port, Some(80));
        assert_eq!(rule("http://10.0.0.0/8/x").path, Some(vec!["x".into()]));
        assert_eq!(rule("http://10.0.0.1/404").path, Some(vec!["404".into()]));
        assert_eq!(rule("tls://*:*").host, HostPattern::Any);
        assert_eq!(
            rule("https://BÜCHER.example").host,
            HostPattern::Name {
                name: "xn--bcher-kva.example".into(),
                wildcard: false
            }
        );
    }

    #[test]
    fn rejects_malformed_rules_with_an_offset() {
        for (text, offset) in [
            ("http://**", 7),
            ("http://a.*.com/", 9),
            ("http://x*.com/", 8),
            ("ftp://x/", 0),
            ("example.com/**", 0),
            ("http://[::1/", 7),
            ("http://::1/", 7),
            ("http://x:/", 8),
            ("http://x:99999/", 9),
            ("http://x:0/", 9),
            ("http://x:+80/", 9),
            ("http://u@x/", 8),
            ("http://x/a?b", 10),
            ("http://x/a#b", 10),
            ("http://x\\y/", 8),
            ("http://x/a/../b", 11),
            ("http://x/a**/", 9),
            ("http://[fd00::/129]", 15),
            ("http://[::1]x/", 12),
            ("http://0x7f000001/", 7),
            ("http://127.1/", 7),
            ("http://1.2.3.4.5/", 7),
            ("http://x y/", 8),
            ("http://x/%zz", 9),
            ("http:///", 7),
            ("http://", 7),
        ] {
            let e = AllowRule::parse(text).expect_err(text);
            assert_eq!(e.offset, offset, "{text}: {e}");
        }
    }

    #[test]
    fn matches_parsed_urls() {
        assert!(allows(
            "https://*.example.com/**",
            "https://a.example.com/x/y"
        ));
        assert!(allows(
            "https://*.example.com/**",
            "https://A.EXAMPLE.COM./"
        ));
        assert!(!allows("https://*.example.com/**", "https://example.com/"));
        assert!(!allows(
            "https://*.example.com/**",
            "https://a.b.example.com/"
        ));
        assert!(!allows(
            "https://*.example.com/**",
            "https://a.example.com:1@localhost/"
        ));
        assert!(!allows(
            "https://*.example.com/**",
            "https://a.example.com:8443/"
        ));
        assert!(!allows("https://*.example.com/**", "http://a.example.com/"));
        assert!(!allows(
            "https://*.example.com/**",
            "https://evilexample.com/"
        ));
        assert!(allows("http://127.0.0.2:*/**", "http://127.0.0.2:1/ok"));
        assert!(!allows(
            "http://127.0.0.2:*/**",
            "http://127.0.0.2:1@127.0.0.1:9/ok"
        ));
        assert!(allows("http://127.0.0.1/**", "http://0x7f000001/"));
        assert!(allows("http://127.0.0.1/**", "http://2130706433/"));
        assert!(allows("http://127.0.0.1/**", "http://0177.0.0.1/"));
        assert!(allows("http://[::1]:*/**", "http://[0:0:0:0:0:0:0:1]:8/"));
        assert!(!allows("http://[::1]:*/**", "http://127.0.0.1:8/"));
        assert!(allows("http://[fd00::/8]:*", "http://[fd12::1]:8/a"));
        assert!(!allows("http://[fd00::/8]:*", "http://[fe80::1]:8/a"));
        assert!(allows("http://x/api/*", "http://x/api/v1"));
        assert!(!allows("http://x/api/*", "http://x/api/v1/y"));
        assert!(!allows("http://x/api/*", "http://x/api/../admin"));
        assert!(!allows("http://x/api/*", "http://x/api/%2e%2e/admin"));
        assert!(allows("http://x/api/**", "http://x/api/a/b/c"));
        assert!(allows("http://x/a/**/z", "http://x/a/z"));
        assert!(allows("http://x/a/**/z", "http://x/a/b/c/z"));
        assert!(!allows("http://x/a/**/z", "http://x/a/b/c/y"));
        assert!(allows("http://x/*.json", "http://x/a.json"));
        assert!(!allows("http://x/", "http://x/a"));
        assert!(allows(
            "https://bücher.example",
            "https://xn--bcher-kva.example/"
        ));
        assert!(!allows("http://localhost:*/**", "http://127.0.0.1:80/"));
    }

    #[test]
    fn metadata_needs_an_exact_rule() {
        let allow = ProbeAllow {
            rules: vec![
                rule("http://169.254.169.254.evil.example/**"),
                rule("http://*:*/**"),
            ],
        };
        let md: IpAddr = "169.254.169.254".parse().unwrap();
        let u = Dest::of_url(&Url::parse("http://169.254.169.254/latest").unwrap()).unwrap();
        assert!(allow.check(&u).is_ok());
        assert!(allow.check_address(&u, &md).is_err());
        let exact = ProbeAllow {
            rules: vec![rule("http://169.254.169.254/**")],
        };
        assert!(exact.check_address(&u, &md).is_ok());
        let cidr = ProbeAllow {
            rules: vec![rule("http://169.254.0.0/16/**")],
        };
        assert!(cidr.check_address(&u, &md).is_ok());
        // A name resolving to the metadata address is refused even with an exact rule elsewhere.
        let both = ProbeAllow {
            rules: vec![
                rule("http://169.254.169.254/**"),
                rule("http://*.example.com/**"),
            ],
        };
        let named = Dest::of_url(&Url::parse("http://a.example.com/").unwrap()).unwrap();
        assert!(both.check_address(&named, &md).is_err());
        assert!(both
            .check_address(&named, &"::ffff:169.254.169.254".parse().unwrap())
            .is_err());
        assert!(both
            .check_address(&named, &"127.0.0.1".parse().unwrap())
            .is_ok());
    }

    #[test]
    fn sensitive_addresses() {
        for ip in [
            "169.254.169.254",
            "169.254.1.1",
            "100.100.100.200",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:169.254.169.254",
        ] {
            assert!(is_sensitive(&ip.parse().unwrap()), "{ip}");
        }
        for ip in ["127.0.0.1", "10.0.0.1", "::1", "8.8.8.8"] {
            assert!(!is_sensitive(&ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn glob_has_no_exponential_case() {
        let p = "*a*a*a*a*a*a*a*a*a*b";
        let t = "a".repeat(2000);
        assert!(!match_glob(p.as_bytes(), t.as_bytes()));
    }
}
