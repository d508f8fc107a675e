//! Resolving the daemon's sections: `[server]`, `[scheduler]` and `[module.*]`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::load::{Located, RawConfig};
use super::probe::Clients;
use super::raw::{Kind, RawScheduler, RawServer};
use super::{Ctx, Defaults, Diagnostic, Probe};
use crate::secret::{Redactor, Secret};
pub use crate::server::probe_allow::AllowRule;
use crate::server::probe_allow::ProbeAllow;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:9464";
const DEFAULT_MAX_CONCURRENCY: usize = 256;
const DEFAULT_PER_HOST_RATE: u32 = 50;

/// `[server]`, resolved.
#[derive(Debug, Clone)]
pub struct Server {
    pub listen: SocketAddr,
    pub auth: Option<Auth>,
    pub tls: Option<ServerTls>,
    /// `/probe` targets (and every redirect hop) must match one of these; empty disables `/probe`.
    pub probe_allow: ProbeAllow,
    /// `/probe` requests running at once; beyond it, 503.
    pub probe_max_in_flight: usize,
    /// `/probe` requests per second per client address; 0 is no limit.
    pub probe_rate_limit: u32,
}

pub const DEFAULT_PROBE_MAX_IN_FLIGHT: usize = 256;

impl Default for Server {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.parse().expect("constant address parses"),
            auth: None,
            tls: None,
            probe_allow: ProbeAllow::default(),
            probe_max_in_flight: DEFAULT_PROBE_MAX_IN_FLIGHT,
            probe_rate_limit: 0,
        }
    }
}

/// Credentials every endpoint but /health/* requires.
#[derive(Debug, Clone)]
pub enum Auth {
    Bearer(Secret),
    Basic { username: String, password: Secret },
}

#[derive(Clone)]
pub struct ServerTls {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: Arc<PrivateKeyDer<'static>>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("certs", &self.chain.len())
            .finish()
    }
}

/// `[scheduler]`, resolved.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_concurrency: usize,
    /// Runs started per second per host; 0 is no limit.
    pub per_host_rate: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
            per_host_rate: DEFAULT_PER_HOST_RATE,
        }
    }
}

pub(super) fn resolve_server(
    raw: Option<&Located<RawServer>>,
    ctx: &mut Ctx<'_>,
    redactor: &mut Redactor,
) -> Server {
    let mut out = Server::default();
    let Some(raw) = raw else { return out };
    ctx.file = raw.file;
    let s = &raw.value;
    if let Some(listen) = &s.listen {
        match listen.get_ref().parse::<SocketAddr>() {
            Ok(a) => out.listen = a,
            Err(_) => ctx.err(
                listen.span().start,
                format!(
                    "invalid listen address {:?}, expected ip:port like \"127.0.0.1:9464\" or \"[::]:9464\"",
                    listen.get_ref()
                ),
            ),
        }
    }
    if let Some(auth) = &s.auth {
        let at = auth.span().start;
        let a = auth.get_ref();
        match (&a.bearer_token, &a.basic) {
            (Some(t), None) if !t.get_ref().is_empty() => {
                let secret = Secret::new(t.get_ref().clone());
                redactor.add(secret.clone());
                out.auth = Some(Auth::Bearer(secret));
            }
            (None, Some(b)) if !b.get_ref().password.get_ref().is_empty() => {
                let b = b.get_ref();
                let secret = Secret::new(b.password.get_ref().clone());
                redactor.add(secret.clone());
                out.auth = Some(Auth::Basic {
                    username: b.username.clone(),
                    password: secret,
                });
            }
            (Some(_), Some(_)) => ctx.err(at, "auth takes bearer_token or basic, not both"),
            (None, None) => ctx.err(at, "auth needs bearer_token or basic"),
            _ => ctx.err(at, "auth credentials must not be empty"),
        }
    }
    if let Some(tls) = &s.tls {
        let t = tls.get_ref();
        let dir = ctx.sources.dir(ctx.file);
        let chain = super::load::load_certs(&dir.join(t.cert.get_ref()));
        let key = super::load::load_key(&dir.join(t.key.get_ref()));
        match (chain, key) {
            (Ok(chain), Ok(key)) => {
                out.tls = Some(ServerTls {
                    chain,
                    key: Arc::new(key),
                })
            }
            (Err(e), _) => ctx.err(t.cert.span().start, e.to_string()),
            (_, Err(e)) => ctx.err(t.key.span().start, e.to_string()),
        }
    }
    for rule in s.probe_allow.iter().flatten() {
        match AllowRule::parse(rule.get_ref()) {
            Ok(r) => out.probe_allow.rules.push(r),
            // Point at the offending character: one past the opening quote, plus its offset.
            Err(e) => ctx.err(
                rule.span().start + 1 + e.offset,
                format!("invalid probe_allow rule {:?}: {e}", rule.get_ref()),
            ),
        }
    }
    if let Some(m) = &s.probe_max_in_flight {
        if *m.get_ref() == 0 {
            ctx.err(m.span().start, "probe_max_in_flight must be at least 1");
        }
        out.probe_max_in_flight = (*m.get_ref()).max(1) as usize;
    }
    if let Some(r) = &s.probe_rate_limit {
        out.probe_rate_limit = *r.get_ref();
    }
    out
}

pub(super) fn resolve_limits(raw: Option<&Located<RawScheduler>>, ctx: &mut Ctx<'_>) -> Limits {
    let mut out = Limits::default();
    let Some(raw) = raw else { return out };
    ctx.file = raw.file;
    if let Some(m) = &raw.value.max_concurrency {
        if *m.get_ref() == 0 {
            ctx.err(m.span().start, "max_concurrency must be at least 1");
        }
        out.max_concurrency = *m.get_ref() as usize;
    }
    if let Some(r) = &raw.value.per_host_rate {
        out.per_host_rate = *r.get_ref();
    }
    out
}

/// Modules by name, with the built-in `http_2xx` and `tls` unless the config defines its own.
pub(super) fn resolve_modules(
    raw: &RawConfig,
    clients: &Clients,
    redactor: &Redactor,
    errors: &mut Vec<Diagnostic>,
) -> BTreeMap<String, Probe> {
    let defaults = Defaults {
        interval: Duration::from_secs(3600),
        timeout: Duration::from_secs(5),
        labels: BTreeMap::new(),
        metrics: super::ProbeMetrics::default(),
    };
    let mut out = BTreeMap::new();
    for (name, m) in &raw.modules {
        let mut ctx = Ctx {
            sources: &raw.sources,
            redactor,
            clients,
            file: m.file,
            errors,
        };
        if out.contains_key(name.get_ref()) {
            ctx.err(
                name.span().start,
                format!("duplicate module {:?}", name.get_ref()),
            );
            continue;
        }
        if let Some(p) = super::kinds::resolve(&m.value, &defaults, &mut ctx) {
            out.insert(name.get_ref().clone(), p);
        }
    }
    for (name, kind) in [("http_2xx", Kind::Http), ("tls", Kind::Tls)] {
        if !out.contains_key(name) {
            let target = if kind == Kind::Http {
                "http://module.invalid/"
            } else {
                "module.invalid:443"
            };
            if let Ok(p) = Probe::adhoc(target, kind, defaults.timeout) {
                out.insert(name.to_string(), p.renamed(name));
            }
        }
    }
    out
}
