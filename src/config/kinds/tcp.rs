//! `kind = "tcp"`: `target = "host:port"`, `tls`, `tls_config`, `query_response` steps.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use vantage_probes::{IpFamily, QueryStep, TcpSpec};

use super::{check_days, host_port, tls_client};
use crate::config::probe::Spec;
use crate::config::raw::{Dur, Kind, RawMetrics, RawProbeAlert, RawTls};
use crate::config::Ctx;

/// One `[[probe]]` of kind tcp.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTcp {
    pub name: Spanned<String>,
    pub kind: Spanned<Kind>,
    pub interval: Option<Spanned<Dur>>,
    pub timeout: Option<Spanned<Dur>>,
    pub labels: Option<BTreeMap<String, Spanned<String>>>,
    pub alert: Option<Spanned<RawProbeAlert>>,
    pub metrics: Option<Spanned<RawMetrics>>,
    /// `host:port` to connect to.
    pub target: Spanned<String>,
    pub ip: Option<Spanned<IpFamily>>,
    /// TLS from the first byte (default false).
    pub tls: Option<Spanned<bool>>,
    /// CA, server name, client certificate for `tls = true` and STARTTLS.
    pub tls_config: Option<Spanned<RawTls>>,
    /// The dialogue, in order.
    pub query_response: Option<Vec<Spanned<RawQueryStep>>>,
    pub expect: Option<Spanned<RawTcpExpect>>,
}

/// `{ send = "…", expect = "regex", starttls = true }`; `send_hex` for binary protocols.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQueryStep {
    pub send: Option<Spanned<String>>,
    pub send_hex: Option<Spanned<String>>,
    pub expect: Option<Spanned<String>>,
    pub starttls: Option<Spanned<bool>>,
}

/// `[probe.expect]` of a tcp probe: the certificate rules of kind tls, after TLS or STARTTLS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTcpExpect {
    pub min_days_remaining: Option<Spanned<f64>>,
    pub verify: Option<Spanned<bool>>,
}

fn hex(s: &Spanned<String>, ctx: &mut Ctx<'_>) -> Option<Vec<u8>> {
    let text: String = s.get_ref().chars().filter(|c| !c.is_whitespace()).collect();
    let ok = text.len() % 2 == 0 && text.bytes().all(|b| b.is_ascii_hexdigit());
    if !ok {
        ctx.err(
            s.span().start,
            "send_hex must be pairs of hex digits, like \"0000000804d2162f\"",
        );
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

pub(super) fn resolve(p: &RawTcp, timeout: Duration, ctx: &mut Ctx<'_>) -> Option<(String, Spec)> {
    let hostport = host_port(&p.target, None, ctx);
    let tls = p.tls.as_ref().is_some_and(|t| *t.get_ref());
    let raw_steps = p.query_response.as_deref().unwrap_or_default();
    if raw_steps.len() > vantage_probes::tcp::MAX_STEPS {
        ctx.err(
            p.name.span().start,
            format!(
                "more than {} query_response steps",
                vantage_probes::tcp::MAX_STEPS
            ),
        );
    }
    let mut steps = Vec::with_capacity(raw_steps.len());
    // Captures defined so far: numbered groups and names.
    let mut defined: HashSet<String> = HashSet::new();
    let mut starttls_seen = tls;
    for raw in raw_steps {
        let at = raw.span().start;
        let r = raw.get_ref();
        let mut step = QueryStep::default();
        match (&r.send, &r.send_hex) {
            (Some(a), Some(_)) => ctx.err(a.span().start, "set send or send_hex, not both"),
            (Some(s), None) => step.send = Some(s.get_ref().as_bytes().to_vec()),
            (None, Some(h)) => step.send = hex(h, ctx),
            (None, None) => {}
        }
        if let (Some(bytes), Some(s)) = (&step.send, r.send.as_ref()) {
            for name in vantage_probes::tcp::references(bytes) {
                if !defined.contains(&name) {
                    ctx.err(
                        s.span().start,
                        format!("send uses {{{{ {name} }}}}, which no earlier expect captures"),
                    );
                }
            }
        }
        if let Some(e) = &r.expect {
            match regex::bytes::RegexBuilder::new(e.get_ref())
                .multi_line(true)
                .size_limit(1 << 20)
                .build()
            {
                Ok(re) => {
                    for (i, name) in re.capture_names().enumerate() {
                        defined.insert(i.to_string());
                        if let Some(n) = name {
                            defined.insert(n.to_string());
                        }
                    }
                    step.expect = Some(re);
                }
                Err(err) => ctx.err(e.span().start, format!("invalid regex: {err}")),
            }
        }
        if let Some(st) = &r.starttls {
            step.starttls = *st.get_ref();
            if step.starttls && starttls_seen {
                ctx.err(
                    st.span().start,
                    "starttls on a connection that is already TLS (tls = true or an earlier starttls)",
                );
            }
            starttls_seen |= step.starttls;
        }
        if step.send.is_none() && step.expect.is_none() && !step.starttls {
            ctx.err(
                at,
                "a query_response step needs send, send_hex, expect or starttls",
            );
        }
        steps.push(step);
    }
    let raw_tls = p.tls_config.as_ref().map(|t| t.get_ref());
    let client = tls_client(p.tls_config.as_ref(), &[], p.name.span().start, ctx);
    let expect = p.expect.as_ref().map(|e| e.get_ref());
    if let (Some(e), false) = (&p.expect, starttls_seen) {
        ctx.err(
            e.span().start,
            "expect.min_days_remaining and expect.verify need tls = true or a starttls step",
        );
    }
    let min_days_remaining = check_days(expect.and_then(|e| e.min_days_remaining.as_ref()), ctx);
    let verify = expect
        .and_then(|e| e.verify.as_ref())
        .is_none_or(|v| *v.get_ref())
        && !raw_tls
            .and_then(|t| t.insecure_skip_verify.as_ref())
            .is_some_and(|v| *v.get_ref());
    let (host, port) = hostport?;
    let spec = TcpSpec {
        host,
        port,
        ip: p.ip.as_ref().map_or(IpFamily::Any, |i| *i.get_ref()),
        timeout,
        tls,
        server_name: raw_tls
            .and_then(|t| t.server_name.as_ref())
            .map(|s| s.get_ref().clone()),
        client: client?,
        verify,
        min_days_remaining,
        steps,
        filter: None,
    };
    let spec = Spec::Tcp(Box::new(spec));
    Some((super::display_target(&spec)?, spec))
}
