//! Property: for random `probe_allow` rule sets, random (hostile) target URLs and random redirect
//! chains, "allowed" implies that the connection the prober would make (scheme, host as dialled,
//! port, path) and every followed hop satisfy some rule, as judged by an independent oracle over
//! the rules' written parts, and that a sensitive address is only reached through a rule naming it.

use std::net::IpAddr;

use proptest::prelude::*;
use url::Url;
use vantage::server::probe_allow::{AllowRule, Dest, ProbeAllow};

const SCHEMES: [&str; 2] = ["http", "https"];
const HOSTS: [&str; 11] = [
    "*",
    "127.0.0.1",
    "127.0.0.2",
    "10.0.0.0/8",
    "[::1]",
    "[fd00::/8]",
    "a.example.com",
    "*.example.com",
    "169.254.169.254",
    "169.254.0.0/16",
    "localhost",
];
const PORTS: [&str; 5] = ["", ":*", ":80", ":8080", ":443"];
const PATHS: [&str; 8] = [
    "", "/", "/ok", "/api/*", "/api/**", "/**", "/a/**/z", "/*.json",
];

const U_SCHEMES: [&str; 5] = ["http://", "HTTPS://", "http:\\\\", "https://", "http:/"];
const U_USERINFO: [&str; 5] = ["", "u@", "u:p@", "127.0.0.1:80@", "@"];
const U_HOSTS: [&str; 20] = [
    "127.0.0.1",
    "0x7f000001",
    "2130706433",
    "127.1",
    "127.0.0.2",
    "[::1]",
    "[::ffff:127.0.0.1]",
    "10.1.2.3",
    "0x0a.1",
    "a.example.com",
    "A.EXAMPLE.COM.",
    "b.a.example.com",
    "example.com",
    "localhost",
    "ⓛocalhost",
    "169.254.169.254",
    "0xa9fea9fe",
    "[fd00::1]",
    "[fe80::1]",
    "[::ffff:169.254.169.254]",
];
const U_PORTS: [&str; 7] = ["", ":80", ":8080", ":443", ":0x50", ":08080", ":"];
const U_PATHS: [&str; 14] = [
    "",
    "/",
    "/ok",
    "/api/x",
    "/api/x/y",
    "/api/../ok",
    "/a/b/z",
    "/x.json",
    "/%2e%2e/ok",
    "/ok#@127.0.0.2/",
    "?@127.0.0.2/",
    "\\ok",
    "/ok@127.0.0.2",
    "/api/%2F..%2Fx",
];
const RELATIVE: [&str; 6] = [
    "/ok",
    "//127.0.0.2/ok",
    "../api/x",
    "ok",
    "/api/a.json",
    "//[::1]:8080/",
];

#[derive(Debug, Clone)]
struct Parts {
    scheme: &'static str,
    host: &'static str,
    port: &'static str,
    path: &'static str,
}

impl Parts {
    fn text(&self) -> String {
        format!("{}://{}{}{}", self.scheme, self.host, self.port, self.path)
    }
}

fn parts() -> impl Strategy<Value = Parts> {
    (
        0..SCHEMES.len(),
        0..HOSTS.len(),
        0..PORTS.len(),
        0..PATHS.len(),
    )
        .prop_map(|(s, h, p, a)| Parts {
            scheme: SCHEMES[s],
            host: HOSTS[h],
            port: PORTS[p],
            path: PATHS[a],
        })
}

fn url_text() -> impl Strategy<Value = String> {
    (
        0..U_SCHEMES.len(),
        0..U_USERINFO.len(),
        0..U_HOSTS.len(),
        0..U_PORTS.len(),
        0..U_PATHS.len(),
    )
        .prop_map(|(s, u, h, p, a)| {
            format!(
                "{}{}{}{}{}",
                U_SCHEMES[s], U_USERINFO[u], U_HOSTS[h], U_PORTS[p], U_PATHS[a]
            )
        })
}

fn location() -> impl Strategy<Value = String> {
    prop_oneof![
        url_text(),
        (0..RELATIVE.len()).prop_map(|i| RELATIVE[i].to_string())
    ]
}

/// The oracle: does the connection (scheme, dialled host, port, path) satisfy the written rule?
/// Written from the rule's text parts, independently of the matcher.
fn oracle(p: &Parts, scheme: &str, host: &str, port: u16, path: &str) -> bool {
    if scheme != p.scheme {
        return false;
    }
    let ip: Option<IpAddr> = host.parse().ok();
    let name = host.trim_end_matches('.').to_ascii_lowercase();
    let host_ok = match p.host {
        "*" => true,
        "10.0.0.0/8" => matches!(ip, Some(IpAddr::V4(a)) if a.octets()[0] == 10),
        "169.254.0.0/16" => matches!(ip, Some(IpAddr::V4(a)) if a.octets()[..2] == [169, 254]),
        "[fd00::/8]" => matches!(ip, Some(IpAddr::V6(a)) if a.octets()[0] == 0xfd),
        "[::1]" => ip == Some("::1".parse().unwrap()),
        "*.example.com" => {
            ip.is_none()
                && name
                    .strip_suffix(".example.com")
                    .is_some_and(|l| !l.is_empty() && !l.contains('.'))
        }
        literal => match literal.parse::<IpAddr>() {
            Ok(rule_ip) => ip == Some(rule_ip),
            Err(_) => ip.is_none() && name == literal,
        },
    };
    let default = if scheme == "https" { 443 } else { 80 };
    let port_ok = match p.port {
        "" => port == default,
        ":*" => true,
        n => n[1..].parse::<u16>().ok() == Some(port),
    };
    let seg: Vec<&str> = path.split('/').collect();
    let path_ok = match p.path {
        "" | "/**" => path.starts_with('/'),
        "/" | "/ok" => path == p.path,
        "/api/*" => seg.len() == 3 && seg[1] == "api",
        "/api/**" => seg.len() >= 2 && seg[1] == "api",
        "/a/**/z" => seg.len() >= 3 && seg[1] == "a" && seg.last() == Some(&"z"),
        "/*.json" => seg.len() == 2 && seg[1].ends_with(".json"),
        other => panic!("oracle lacks path {other}"),
    };
    host_ok && port_ok && path_ok
}

fn sensitive(ip: &IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(*ip, IpAddr::V4),
        v4 => *v4,
    };
    match ip {
        IpAddr::V4(a) => a.octets()[..2] == [169, 254],
        IpAddr::V6(a) => a.segments()[0] & 0xffc0 == 0xfe80,
    }
}

/// Check one hop the way the daemon does; on "allowed", assert the oracle. Returns whether the
/// hop is allowed (a refused hop ends the chain).
fn hop(allow: &ProbeAllow, rules: &[Parts], url: &Url) -> Result<bool, TestCaseError> {
    let Ok(dest) = Dest::of_url(url) else {
        return Ok(false);
    };
    if allow.check(&dest).is_err() {
        return Ok(false);
    }
    prop_assert!(
        url.username().is_empty() && url.password().is_none(),
        "{url}"
    );
    // What the prober dials: host_str without brackets, the port or the scheme's default.
    let host = url
        .host_str()
        .unwrap()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = url.port_or_known_default().unwrap();
    let ok = rules
        .iter()
        .any(|r| oracle(r, url.scheme(), host, port, url.path()));
    prop_assert!(ok, "{url} allowed, but no rule is satisfied: {rules:?}");
    if let Ok(ip) = host.parse::<IpAddr>() {
        if allow.check_address(&dest, &ip).is_ok() && sensitive(&ip) {
            let named = rules.iter().any(|r| {
                oracle(r, url.scheme(), host, port, url.path())
                    && matches!(r.host, "169.254.169.254" | "169.254.0.0/16")
            });
            prop_assert!(
                named,
                "{url}: sensitive {ip} reached without a rule naming it"
            );
        }
    }
    Ok(true)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn allowed_implies_every_hop_satisfies_a_rule(
        rules in prop::collection::vec(parts(), 1..4),
        target in url_text(),
        chain in prop::collection::vec(location(), 0..4),
    ) {
        let parsed: Vec<AllowRule> = rules.iter().map(|p| AllowRule::parse(&p.text()).unwrap()).collect();
        let allow = ProbeAllow { rules: parsed };
        let Ok(mut url) = Url::parse(&target) else { return Ok(()) };
        if !hop(&allow, &rules, &url)? {
            return Ok(());
        }
        for loc in &chain {
            let Ok(next) = url.join(loc) else { return Ok(()) };
            if !hop(&allow, &rules, &next)? {
                return Ok(());
            }
            url = next;
        }
    }
}
