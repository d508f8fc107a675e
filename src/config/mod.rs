//! Config: raw serde structs ([`raw`]) read from files ([`load`]), then validated here into a
//! resolved [`Config`] whose probes are ready to run. Validation collects every problem with its
//! file, line and column instead of stopping at the first.

mod alert;
mod http_auth;
mod kinds;
pub mod load;
mod metrics;
mod probe;
pub mod raw;
mod server;
mod slo;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;
use std::time::Duration;

use toml::Spanned;

pub use alert::{AlertConfig, ProbeAlert, ProbeThresholds, SinkConfig, SinkKind};
pub use load::Diagnostic;
use load::{FileId, Located, Sources};
pub use metrics::ProbeMetrics;
use probe::Clients;
pub use probe::{Probe, Spec};
pub use raw::Kind;
use raw::RawDefaults;
pub use server::{AllowRule, Auth, Limits, Server, ServerTls, DEFAULT_LISTEN};
pub use slo::{SloConfig, StateConfig};

use crate::secret::Redactor;

const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Label names vantage itself puts on probe series; a user label may not shadow them.
const RESERVED_LABELS: &[&str] = &[
    "probe",
    "kind",
    "phase",
    "reason",
    "result",
    "quantile",
    "window",
    "step",
    "check",
    "le",
    "instance",
    "job",
    "slo",
    "severity",
    "alertname",
    "alert",
    "outcome",
    "version",
    "cipher",
    "fingerprint_sha256",
    "subject",
    "issuer",
    "subjectalternative",
    "serialnumber",
    "serving_status",
];

/// FNV-1a: a hash that never changes across builds, platforms or restarts (schedule offsets,
/// SLO fingerprints).
pub fn stable_hash(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// `--shard i/n`: this instance runs the probes whose stable name hash is `i` modulo `n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl std::str::FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("invalid shard {s:?}, expected i/n like 0/2"))?;
        let index: u32 = i
            .trim()
            .parse()
            .map_err(|_| format!("invalid shard index {i:?}"))?;
        let count: u32 = n
            .trim()
            .parse()
            .map_err(|_| format!("invalid shard count {n:?}"))?;
        if count == 0 || index >= count {
            return Err(format!("invalid shard {s:?}: need 0 ≤ i < n"));
        }
        Ok(Shard { index, count })
    }
}

impl Shard {
    pub fn owns(&self, probe: &str) -> bool {
        stable_hash(probe) % u64::from(self.count) == u64::from(self.index)
    }
}

/// A validated config, ready to run.
pub struct Config {
    pub probes: Vec<Probe>,
    pub server: Server,
    pub limits: Limits,
    /// `/probe` modules by name (the built-in `http_2xx` and `tls` included).
    pub modules: BTreeMap<String, Probe>,
    pub slos: Vec<SloConfig>,
    pub state: StateConfig,
    pub alert: AlertConfig,
    /// Set by `--shard`: the probes were narrowed to this shard's.
    pub shard: Option<Shard>,
    /// Knows every value that came from the environment, and the server's credentials.
    pub redactor: Redactor,
    pub warnings: Vec<Diagnostic>,
}

impl Config {
    /// Keep only the probes `shard` owns (SLOs keep counting the runs of those).
    pub fn apply_shard(&mut self, shard: Option<Shard>) {
        let Some(shard) = shard else { return };
        self.probes.retain(|p| shard.owns(&p.name));
        self.shard = Some(shard);
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.probes.iter().map(|p| p.name.as_str()).collect();
        f.debug_struct("Config").field("probes", &names).finish()
    }
}

/// Every problem found, in file order.
#[derive(Debug)]
pub struct ConfigError {
    pub errors: Vec<Diagnostic>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Load and validate `path`, reading `${NAME}` from the process environment.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    load_with_env(path, &|name| std::env::var(name).ok())
}

/// Load and validate `path` with an explicit environment (tests).
pub fn load_with_env(
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let mut errors = Vec::new();
    let raw = load::read(path, env, &mut errors);
    let config = resolve(&raw, &mut errors);
    if errors.is_empty() {
        return Ok(config);
    }
    errors.sort_by_key(|e| (e.file_order, e.line, e.col));
    // An error may quote a value that came from the environment.
    for e in &mut errors {
        e.message = raw.redactor.redact(&e.message).into_owned();
    }
    Err(ConfigError { errors })
}

/// Collects located problems while resolving one file's items.
pub(crate) struct Ctx<'a> {
    sources: &'a Sources,
    redactor: &'a Redactor,
    clients: &'a Clients,
    file: FileId,
    errors: &'a mut Vec<Diagnostic>,
}

impl Ctx<'_> {
    fn err(&mut self, offset: usize, message: impl Into<String>) {
        self.errors
            .push(self.sources.diag(self.file, offset, message));
    }
}

pub(crate) struct Defaults {
    interval: Duration,
    timeout: Duration,
    labels: BTreeMap<String, String>,
    /// `[metrics]`: what a probe without its own `metrics` keys exports.
    metrics: ProbeMetrics,
}

/// Credentials written as URL userinfo (`https://user:pass@host/`) are sent as basic auth and
/// are secrets: the password, and `user:pass` (what the header encodes).
fn userinfo_secrets(raw: &load::RawConfig) -> crate::secret::Redactor {
    let mut redactor = raw.redactor.clone();
    for item in &raw.probes {
        let kinds::RawKindProbe::Http(p) = &item.value else {
            continue;
        };
        if let Ok(url) = url::Url::parse(p.url.get_ref()) {
            add_userinfo_secrets(&url, &mut redactor);
        }
    }
    redactor
}

/// A URL's userinfo password (and `user:password`) become secrets, as environment values are.
pub(crate) fn add_userinfo_secrets(url: &url::Url, redactor: &mut crate::secret::Redactor) {
    if let Some((user, pass, _)) = vantage_probes::credentials::basic_auth_of(url) {
        if !pass.is_empty() {
            redactor.add(crate::secret::Secret::new(format!("{user}:{pass}")));
            redactor.add(crate::secret::Secret::new(pass));
        }
    }
}

fn resolve(raw: &load::RawConfig, errors: &mut Vec<Diagnostic>) -> Config {
    let mut defaults = resolve_defaults(raw.defaults.as_ref(), raw, errors);
    defaults.metrics = ProbeMetrics::default().with(raw.metrics.as_ref().map(|m| &m.value));
    let clients = Clients::default();
    let mut probes = Vec::new();
    let mut seen: HashMap<String, Diagnostic> = HashMap::new();
    let base_redactor = userinfo_secrets(raw);
    for item in &raw.probes {
        let mut ctx = Ctx {
            sources: &raw.sources,
            redactor: &base_redactor,
            clients: &clients,
            file: item.file,
            errors,
        };
        let name = item.value.name();
        if let Some(first) = seen.get(name.get_ref()) {
            ctx.err(
                name.span().start,
                format!(
                    "duplicate probe name {:?}, first defined at {}:{}:{}",
                    name.get_ref(),
                    first.file,
                    first.line,
                    first.col
                ),
            );
            continue;
        }
        let here = raw.sources.diag(item.file, name.span().start, "");
        seen.insert(name.get_ref().clone(), here);
        if let Some(p) = kinds::resolve(&item.value, &defaults, &mut ctx) {
            probes.push(p);
        }
    }
    let mut redactor = base_redactor.clone();
    let mut ctx = Ctx {
        sources: &raw.sources,
        redactor: &raw.redactor,
        clients: &clients,
        file: 0,
        errors,
    };
    let server = server::resolve_server(raw.server.as_ref(), &mut ctx, &mut redactor);
    let limits = server::resolve_limits(raw.scheduler.as_ref(), &mut ctx);
    let state = slo::resolve_state(raw.state.as_ref(), &mut ctx);
    let mut warnings = Vec::new();
    let declared: Vec<&str> = seen.keys().map(String::as_str).collect();
    let slos = slo::resolve_slos(raw, &probes, &declared, &mut ctx, &mut warnings);
    let alert = alert::resolve_alert(raw.alert.as_ref(), &server, &mut ctx, &mut redactor);
    let modules = server::resolve_modules(raw, &clients, &raw.redactor, errors);
    Config {
        shard: None,
        alert,
        probes,
        server,
        limits,
        modules,
        slos,
        state,
        redactor,
        warnings,
    }
}

fn resolve_defaults(
    d: Option<&Located<RawDefaults>>,
    raw: &load::RawConfig,
    errors: &mut Vec<Diagnostic>,
) -> Defaults {
    let mut out = Defaults {
        interval: DEFAULT_INTERVAL,
        timeout: DEFAULT_TIMEOUT,
        labels: BTreeMap::new(),
        metrics: ProbeMetrics::default(),
    };
    let Some(d) = d else { return out };
    let clients = Clients::default();
    let mut ctx = Ctx {
        sources: &raw.sources,
        redactor: &raw.redactor,
        clients: &clients,
        file: d.file,
        errors,
    };
    if let Some(i) = &d.value.interval {
        out.interval = i.get_ref().0;
        if let Some(problem) = probe::interval_problem(out.interval) {
            ctx.err(i.span().start, problem);
        }
    }
    if let Some(t) = &d.value.timeout {
        out.timeout = t.get_ref().0;
        if t.get_ref().0.is_zero() {
            ctx.err(t.span().start, "timeout must be greater than 0");
        } else if let Some(problem) = probe::duration_problem("timeout", out.timeout) {
            ctx.err(t.span().start, problem);
        }
    }
    if let Some(labels) = &d.value.labels {
        out.labels = resolve_labels(labels, d.span.start, &mut ctx);
    }
    out
}

pub(crate) fn resolve_labels(
    labels: &BTreeMap<String, Spanned<String>>,
    at: usize,
    ctx: &mut Ctx<'_>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, v) in labels {
        let valid = k.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid || k.starts_with("__") {
            ctx.err(
                v.span().start.max(at),
                format!("invalid label name {k:?}: use letters, digits and _, not starting with a digit or __"),
            );
        } else if RESERVED_LABELS.contains(&k.as_str()) {
            ctx.err(
                v.span().start,
                format!(
                    "label name {k:?} is reserved by vantage; reserved: {}",
                    RESERVED_LABELS.join(", ")
                ),
            );
        } else {
            out.insert(k.clone(), v.get_ref().clone());
        }
    }
    out
}
