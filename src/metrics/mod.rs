//! `/metrics`: one registry, registered once. Per-probe series come from a collector over the
//! [`Store`] at scrape time, so a probe removed by a reload simply stops appearing, and the
//! scheduler's hot path only updates its own record. vantage's own metrics are ordinary
//! prometheus-client metrics.
//!
//! prometheus-client writes OpenMetrics text. Prometheus' classic text format (0.0.4) differs in
//! three ways that matter here: counter families are named with their `_total`, and there are no
//! `# UNIT` and `# EOF` lines. [`to_prometheus_text`] makes that translation for scrapers (and
//! `promtool check metrics`) that do not ask for OpenMetrics.
//!
//! No series is ever written twice: every family is written through [`SeriesSet`], which keeps
//! the first sample of a label set and drops any later one (Prometheus would keep one of them
//! at random). Where two samples can legitimately collide, the family merges them first: an
//! SLO's period that equals a fixed window is that window, and health checks of one name are
//! merged with the worst status winning (see [`HealthCheckNames`]).

pub mod gzip;

use std::borrow::Cow;
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family as MetricFamily;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use vantage_probes::{HealthFacts, HttpFacts, Outcome, Phases, Reason, TlsFacts};

use crate::config::{Kind, ProbeMetrics};

mod kinds;
use crate::daemon::evaluator::Evaluator;
use crate::daemon::store::{ProbeMeta, ProbeState, Record, Store, QUANTILES, WINDOWS};

type Labels = Vec<(Cow<'static, str>, Cow<'static, str>)>;

/// Longest health check name exported, in bytes (longer names are cut at a character boundary).
pub const HEALTH_CHECK_NAME_MAX: usize = 128;
/// Most distinct health check names one probe exports over its life.
pub const HEALTH_CHECK_NAMES_MAX: usize = 64;

/// The health check names a probe exports: a target that invents names (a request ID, a
/// timestamp) would otherwise mint new series on every run, and one with 38 KB names would
/// bloat every scrape.
#[derive(Debug, Default)]
pub struct HealthCheckNames {
    admitted: BTreeSet<String>,
    /// Checks left out because the probe had used up its names (`probe_health_checks_dropped`).
    pub dropped: u64,
}

impl HealthCheckNames {
    /// Make `health`'s checks exportable: names cut to [`HEALTH_CHECK_NAME_MAX`] bytes, checks of
    /// one name merged with the worst status winning, and names beyond the probe's first
    /// [`HEALTH_CHECK_NAMES_MAX`] dropped and counted.
    pub fn admit(&mut self, health: &mut HealthFacts) {
        let mut kept: Vec<vantage_probes::HealthCheck> = Vec::with_capacity(health.checks.len());
        for mut check in std::mem::take(&mut health.checks) {
            truncate_at_char(&mut check.name, HEALTH_CHECK_NAME_MAX);
            if let Some(same) = kept.iter_mut().find(|k| k.name == check.name) {
                if check.value() < same.value() {
                    same.status = check.status;
                }
                continue;
            }
            if !self.admitted.contains(&check.name) {
                if self.admitted.len() >= HEALTH_CHECK_NAMES_MAX {
                    self.dropped += 1;
                    continue;
                }
                self.admitted.insert(check.name.clone());
            }
            kept.push(check);
        }
        health.checks = kept;
    }

    /// Whether this probe ever exported a health check (or dropped one).
    fn any(&self) -> bool {
        !self.admitted.is_empty() || self.dropped > 0
    }
}

fn truncate_at_char(s: &mut String, max: usize) {
    if s.len() <= max {
        return;
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.truncate(cut);
}

/// The label sets written so far in one family: the first sample of a series wins and any
/// later one is dropped, so `/metrics` cannot hold two samples of one series. A label set is
/// its base labels' [`label_key`] (computed once per probe or SLO) plus its extra labels.
struct SeriesSet<'a>(HashSet<(&'a str, Vec<(&'static str, String)>)>);

impl<'a> SeriesSet<'a> {
    fn new() -> Self {
        Self(HashSet::new())
    }

    /// `true` the first time this label set is seen.
    fn first(&mut self, base_key: &'a str, extra: &[(&'static str, String)]) -> bool {
        let mut extra = extra.to_vec();
        extra.sort();
        self.0.insert((base_key, extra))
    }
}

/// An unambiguous, order-independent text of a label set (length-prefixed, sorted).
fn label_key(labels: &Labels) -> String {
    use std::fmt::Write as _;
    let mut sorted: Vec<&(Cow<'static, str>, Cow<'static, str>)> = labels.iter().collect();
    sorted.sort();
    let mut key = String::new();
    for (k, v) in sorted {
        let _ = write!(key, "{}:{k}={}:{v};", k.len(), v.len());
    }
    key
}

/// Labels of `vantage_notifications_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct NotificationLabels {
    pub sink: String,
    pub result: String,
}

/// Labels of `vantage_probe_requests_rejected_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct ProbeRejectedLabels {
    pub reason: &'static str,
}

/// Why a `/probe` request was refused (the `reason` label).
pub const PROBE_REJECT_REASONS: [&str; 4] =
    ["max_in_flight", "rate_limit", "not_allowed", "bad_request"];

/// vantage's own metrics plus the registry that serves everything.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    store: Arc<Store>,
    notifications: MetricFamily<NotificationLabels, Counter>,
    shard: MetricFamily<Vec<(String, String)>, Gauge>,
    /// Scheduled start to actual start of each run.
    pub scheduler_lag: Histogram,
    pub reload_successful: Gauge,
    probe_rejected: MetricFamily<ProbeRejectedLabels, Counter>,
    /// `vantage_task_panics_total{task}`: daemon task panics caught by the supervisor.
    task_panics: MetricFamily<TaskLabels, Counter>,
    /// `vantage_state_write_errors_total`.
    pub state_write_errors: Counter,
    /// Failed reloads, failed state writes and task panics, for `/health/ready`.
    pub health: crate::supervise::Health,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct TaskLabels {
    pub task: String,
}

/// Buckets for `vantage_scheduler_lag_seconds`: lag is normally well under a millisecond, and
/// anything past a second means runs are being delayed by limits or an overloaded host.
const LAG_BUCKETS: [f64; 12] = [
    0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0,
];

impl Metrics {
    pub fn new(store: Arc<Store>, evaluator: Arc<Evaluator>) -> Self {
        let mut registry = Registry::default();
        let scheduler_lag = Histogram::new(LAG_BUCKETS);
        registry.register_with_unit(
            "vantage_scheduler_lag",
            "Time from a run's scheduled start to its actual start",
            Unit::Seconds,
            scheduler_lag.clone(),
        );
        let reload_successful = Gauge::default();
        registry.register(
            "vantage_config_last_reload_successful",
            "Whether the last config (re)load succeeded",
            reload_successful.clone(),
        );
        registry.register_collector(Box::new(ProbeCollector {
            store: store.clone(),
            last_run_only: false,
        }));
        registry.register_collector(Box::new(SloCollector {
            evaluator,
            clock: *store.clock(),
        }));
        let notifications = MetricFamily::<NotificationLabels, Counter>::default();
        registry.register(
            "vantage_notifications",
            "Alert notification attempts by sink and result (success, failure, dropped)",
            notifications.clone(),
        );
        let shard = MetricFamily::<Vec<(String, String)>, Gauge>::default();
        registry.register(
            "vantage_shard_info",
            "This instance's shard: it runs the probes whose name hash is index modulo count",
            shard.clone(),
        );
        let probe_rejected = MetricFamily::<ProbeRejectedLabels, Counter>::default();
        registry.register(
            "vantage_probe_requests_rejected",
            "/probe requests refused, by reason (max_in_flight, rate_limit, not_allowed, bad_request)",
            probe_rejected.clone(),
        );
        for reason in PROBE_REJECT_REASONS {
            let _ = probe_rejected.get_or_create(&ProbeRejectedLabels { reason });
        }
        let task_panics = MetricFamily::<TaskLabels, Counter>::default();
        registry.register(
            "vantage_task_panics",
            "Panics in daemon tasks, caught by the supervisor (the task was restarted)",
            task_panics.clone(),
        );
        let state_write_errors = Counter::default();
        registry.register(
            "vantage_state_write_errors",
            "Failed writes of the state file",
            state_write_errors.clone(),
        );
        Self {
            registry,
            store,
            notifications,
            shard,
            scheduler_lag,
            reload_successful,
            probe_rejected,
            task_panics,
            state_write_errors,
            health: crate::supervise::Health::default(),
        }
    }

    /// Count one refused `/probe` request.
    pub fn probe_rejected(&self, reason: &'static str) {
        self.probe_rejected
            .get_or_create(&ProbeRejectedLabels { reason })
            .inc();
    }

    pub fn set_shard(&self, index: u32, count: u32) {
        self.shard.clear();
        self.shard
            .get_or_create(&vec![
                ("index".to_string(), index.to_string()),
                ("count".to_string(), count.to_string()),
            ])
            .set(1);
    }

    /// A supervised task panicked (and is being restarted).
    pub fn task_panicked(&self, task: &str, message: &str) {
        self.task_panics
            .get_or_create(&TaskLabels {
                task: task.to_string(),
            })
            .inc();
        self.health.task_panicked(task, message);
    }

    /// Count one notification attempt.
    pub fn notification(&self, sink: &str, result: &'static str) {
        self.notifications
            .get_or_create(&NotificationLabels {
                sink: sink.to_string(),
                result: result.to_string(),
            })
            .inc();
    }

    /// OpenMetrics text.
    pub fn render_openmetrics(&self) -> String {
        let mut out = String::with_capacity(64 * 1024);
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        let summary = quantile_summary(&self.store);
        match out.strip_suffix("# EOF\n") {
            Some(body) => format!("{body}{summary}# EOF\n"),
            None => out + &summary,
        }
    }

    /// Prometheus text format 0.0.4.
    pub fn render_text(&self) -> String {
        to_prometheus_text(&self.render_openmetrics())
    }
}

/// `probe_latency_quantile_seconds`, by hand: prometheus-client cannot encode summaries, and a
/// `quantile` label on anything but a summary is flagged by `promtool check metrics`. A summary
/// is also what these are: sliding-window quantiles, with the window's `_sum` and `_count`.
fn quantile_summary(store: &Store) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let mut any = false;
    let mut seen = HashSet::new();
    for state in store.all() {
        let meta = state.meta();
        if !meta.metrics.quantiles {
            continue;
        }
        let labels = base_labels(&state.name, &meta);
        if !seen.insert(label_key(&labels)) {
            continue;
        }
        let mut prefix = String::new();
        for (k, v) in &labels {
            let _ = write!(prefix, "{k}=\"{}\",", escape_label(v));
        }
        let r = state.record();
        let now = store.clock().now();
        for (w, (window, _)) in WINDOWS.iter().enumerate() {
            let (sum, count) = r.window_totals[w];
            if count == 0 || !r.window_live(w, now) {
                continue;
            }
            if !any {
                out.push_str("# HELP probe_latency_quantile_seconds Run duration quantiles over a sliding window (HDR histogram, 1% relative error)\n");
                out.push_str("# TYPE probe_latency_quantile_seconds summary\n");
                out.push_str("# UNIT probe_latency_quantile_seconds seconds\n");
                any = true;
            }
            for (q, (quantile, _)) in QUANTILES.iter().enumerate() {
                if let Some(v) = r.quantiles[w][q] {
                    let _ = writeln!(out, "probe_latency_quantile_seconds{{{prefix}window=\"{window}\",quantile=\"{quantile}\"}} {v}");
                }
            }
            let _ = writeln!(
                out,
                "probe_latency_quantile_seconds_sum{{{prefix}window=\"{window}\"}} {sum}"
            );
            let _ = writeln!(
                out,
                "probe_latency_quantile_seconds_count{{{prefix}window=\"{window}\"}} {count}"
            );
        }
    }
    out
}

/// Escape a label value for the text formats: backslash, double quote, newline.
fn escape_label(v: &str) -> Cow<'_, str> {
    if !v.contains(['\\', '"', '\n']) {
        return Cow::Borrowed(v);
    }
    Cow::Owned(
        v.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n"),
    )
}

/// Translate OpenMetrics text into Prometheus text format 0.0.4 (see the module docs).
pub fn to_prometheus_text(om: &str) -> String {
    let mut out = String::with_capacity(om.len());
    let mut lines = om.lines().peekable();
    while let Some(line) = lines.next() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        // A family without labels: `name{} 1` reads as `name 1`.
        if let Some((series, value)) = line.split_once("{} ") {
            out.push_str(series);
            out.push(' ');
            out.push_str(value);
            out.push('\n');
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or_default();
            let is_counter = lines
                .peek()
                .is_some_and(|next| *next == format!("# TYPE {name} counter"));
            if is_counter {
                out.push_str(&format!("# HELP {name}_total{}\n", &rest[name.len()..]));
                lines.next();
                out.push_str(&format!("# TYPE {name}_total counter\n"));
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Encodes every probe's series from the store.
#[derive(Debug)]
pub struct ProbeCollector {
    store: Arc<Store>,
    /// `/probe` mode: only the last run's gauges, without the `probe`/`kind` labels, the way
    /// blackbox_exporter answers.
    last_run_only: bool,
}

impl ProbeCollector {
    pub fn last_run_only(store: Arc<Store>) -> Self {
        Self {
            store,
            last_run_only: true,
        }
    }

    /// Prometheus text for this collector alone.
    pub fn render(self) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self));
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        to_prometheus_text(&out)
    }
}

fn base_labels(name: &str, meta: &ProbeMeta) -> Labels {
    let mut l: Labels = Vec::with_capacity(2 + meta.labels.len());
    l.push(("probe".into(), Cow::Owned(name.to_string())));
    l.push(("kind".into(), meta.kind.as_str().into()));
    for (k, v) in &meta.labels {
        l.push((Cow::Owned(k.clone()), Cow::Owned(v.clone())));
    }
    l
}

/// One family's samples for one probe: extra labels and a value.
type Samples = Vec<(Vec<(&'static str, String)>, f64)>;

/// A probe as the collector sees it: its state, base labels, kind and the labels' key.
type ProbeRow = (Arc<ProbeState>, Labels, Kind, String, ProbeMetrics);

struct Family<'a> {
    probes: &'a [ProbeRow],
}

impl Family<'_> {
    fn gauge(
        &self,
        enc: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        unit: Option<&Unit>,
        f: impl Fn(Kind, &Record) -> Samples,
    ) -> Result<(), std::fmt::Error> {
        self.write(enc, name, help, unit, MetricType::Gauge, f)
    }

    fn counter(
        &self,
        enc: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        f: impl Fn(Kind, &Record) -> Samples,
    ) -> Result<(), std::fmt::Error> {
        self.write(enc, name, help, None, MetricType::Counter, f)
    }

    fn write(
        &self,
        enc: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        unit: Option<&Unit>,
        kind: MetricType,
        f: impl Fn(Kind, &Record) -> Samples,
    ) -> Result<(), std::fmt::Error> {
        let mut samples = Vec::with_capacity(self.probes.len());
        for (state, labels, kind, key, _) in self.probes {
            let s = f(*kind, &state.record());
            if !s.is_empty() {
                samples.push((labels, key, s));
            }
        }
        if samples.is_empty() {
            return Ok(());
        }
        let mut m = enc.encode_descriptor(name, help, unit, kind)?;
        let mut seen = SeriesSet::new();
        for (labels, key, s) in samples {
            for (extra, v) in s {
                if !seen.first(key, &extra) {
                    continue;
                }
                let extra: Vec<(&str, &str)> =
                    extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
                let set = (labels.as_slice(), extra.as_slice());
                let fam = m.encode_family(&set)?;
                match kind {
                    MetricType::Counter => {
                        prometheus_client::metrics::counter::ConstCounter::new(v as u64)
                            .encode(fam)?
                    }
                    _ => prometheus_client::metrics::gauge::ConstGauge::new(v).encode(fam)?,
                }
            }
        }
        Ok(())
    }

    fn histogram(
        &self,
        enc: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        wanted: impl Fn(&ProbeMetrics) -> bool,
        f: impl Fn(Kind, &Record) -> Vec<(Vec<(&'static str, String)>, Histogram)>,
    ) -> Result<(), std::fmt::Error> {
        if !self.probes.iter().any(|p| wanted(&p.4)) {
            return Ok(());
        }
        let mut m =
            enc.encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Histogram)?;
        let mut seen = SeriesSet::new();
        for (state, labels, kind, key, opted) in self.probes {
            if !wanted(opted) {
                continue;
            }
            let hs = f(*kind, &state.record());
            for (extra, h) in hs {
                if !seen.first(key, &extra) {
                    continue;
                }
                let extra: Vec<(&str, &str)> =
                    extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
                h.encode(m.encode_family(&(labels.as_slice(), extra.as_slice()))?)?;
            }
        }
        Ok(())
    }
}

fn last(r: &Record) -> Option<&Outcome> {
    r.last.as_ref().map(|l| &l.outcome)
}

fn http(k: Kind, r: &Record) -> Option<&HttpFacts> {
    last(r)
        .filter(|_| k == Kind::Http)
        .and_then(|o| o.facts.http_facts())
}

fn tls(r: &Record) -> Option<TlsFacts> {
    last(r).and_then(|o| o.facts.tls().cloned())
}

/// `subjectalternative` as blackbox_exporter writes it: the DNS names only, comma-separated.
fn dns_sans(sans: &[String]) -> String {
    sans.iter()
        .filter(|s| s.parse::<std::net::IpAddr>().is_err())
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(",")
}

fn one(v: f64) -> Samples {
    vec![(Vec::new(), v)]
}

fn bool_f(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

impl prometheus_client::collector::Collector for ProbeCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let probes: Vec<ProbeRow> = self
            .store
            .all()
            .into_iter()
            .map(|s| {
                let meta = s.meta();
                let labels = if self.last_run_only {
                    Labels::new()
                } else {
                    base_labels(&s.name, &meta)
                };
                let key = label_key(&labels);
                (s, labels, meta.kind, key, meta.metrics)
            })
            .collect();
        let fam = Family { probes: &probes };
        let secs = Some(&Unit::Seconds);

        // Last-run gauges, blackbox_exporter's names and meanings.
        fam.gauge(
            &mut enc,
            "probe_success",
            "Whether the last run succeeded",
            None,
            |_, r| {
                last(r)
                    .map(|o| one(bool_f(o.success())))
                    .unwrap_or_default()
            },
        )?;
        fam.gauge(
            &mut enc,
            "probe_duration",
            "Duration of the last run, from its scheduled start",
            secs,
            |_, r| {
                last(r)
                    .map(|o| one(o.duration.as_secs_f64()))
                    .unwrap_or_default()
            },
        )?;
        fam.gauge(
            &mut enc,
            "probe_dns_lookup_time",
            "DNS lookup time of the last run",
            secs,
            |_, r| {
                last(r)
                    .map(|o| one(o.phases.resolve.as_secs_f64()))
                    .unwrap_or_default()
            },
        )?;
        fam.gauge(
            &mut enc,
            "probe_ip_protocol",
            "IP family (4 or 6) of the last run's address",
            None,
            |k, r| {
                last(r)
                    .and_then(|o| match (o.facts.conn.ip_protocol, k) {
                        (Some(p), _) => Some(f64::from(p)),
                        // blackbox_exporter's http prober: 0 when no address was resolved.
                        (None, Kind::Http) => Some(0.0),
                        (None, _) => None,
                    })
                    .map(one)
                    .unwrap_or_default()
            },
        )?;
        fam.gauge(
            &mut enc,
            "probe_ip_addr_hash",
            "FNV-1a hash of the last run's address (changes when the address does)",
            None,
            |k, r| {
                last(r)
                    .and_then(|o| match (o.facts.conn.ip_addr_hash, k) {
                        (Some(h), _) => Some(f64::from(h)),
                        (None, Kind::Http) => Some(0.0),
                        (None, _) => None,
                    })
                    .map(one)
                    .unwrap_or_default()
            },
        )?;
        fam.gauge(
            &mut enc,
            "probe_http_status_code",
            "HTTP status of the last run's final response (0: none)",
            None,
            |k, r| {
                http(k, r)
                    .map(|h| one(f64::from(h.status.unwrap_or(0))))
                    .unwrap_or_default()
            },
        )?;
        fam.gauge(
            &mut enc,
            "probe_http_duration",
            "Duration of each phase of the last run, summed over redirects",
            secs,
            |k, r| {
                last(r)
                    .filter(|_| !kinds::own_phases(k) && k != Kind::Tls)
                    .map(|o| {
                        // As blackbox_exporter: only the resolve phase when no address was
                        // resolved (the later phases never began).
                        let n = if o.facts.conn.ip_protocol.is_none() && k == Kind::Http {
                            1
                        } else {
                            Phases::NAMES.len()
                        };
                        Phases::NAMES
                            .iter()
                            .take(n)
                            .zip(o.phases.as_array())
                            .map(|(n, d)| (vec![("phase", (*n).to_string())], d.as_secs_f64()))
                            .collect()
                    })
                    .unwrap_or_default()
            },
        )?;
        fam.gauge(
            &mut enc,
            "probe_http_content_length",
            "Content-Length header of the last run's final response (-1: none; 0: no response)",
            None,
            |k, r| {
                http(k, r)
                    .map(|h| one(h.declared_length.unwrap_or(0) as f64))
                    .unwrap_or_default()
            },
        )?;
        fam.gauge(
            &mut enc,
            "probe_http_uncompressed_body_length",
            "Body length of the last run's final response after decoding",
            None,
            |k, r| {
                http(k, r)
                    .map(|h| one(h.uncompressed_body_length.unwrap_or(0) as f64))
                    .unwrap_or_default()
            },
        )?;
        fam.gauge(
            &mut enc,
            "probe_http_last_modified_timestamp",
            "Last-Modified header of the last run's final response (Unix seconds)",
            secs,
            |k, r| {
                http(k, r)
                    .and_then(|h| h.last_modified)
                    .map(|t| one(t as f64))
                    .unwrap_or_default()
            },
        )?;
        fam.gauge(
            &mut enc,
            "probe_http_redirects",
            "Redirects followed in the last run",
            None,
            |k, r| {
                http(k, r)
                    .map(|h| one(f64::from(h.redirects)))
                    .unwrap_or_default()
            },
        )?;
        fam.gauge(
            &mut enc,
            "probe_http_ssl",
            "Whether the last run's final request used TLS",
            None,
            |k, r| http(k, r).map(|h| one(bool_f(h.ssl))).unwrap_or_default(),
        )?;
        fam.gauge(
            &mut enc,
            "probe_http_version",
            "HTTP version of the last run's final response",
            None,
            |k, r| {
                http(k, r)
                    .map(|h| {
                        one(h
                            .version
                            .as_deref()
                            .and_then(|v| v.parse::<f64>().ok())
                            .unwrap_or(0.0))
                    })
                    .unwrap_or_default()
            },
        )?;
        fam.gauge(
            &mut enc,
            "probe_failed_due_to_regex",
            "Whether a body regex assertion failed in the last run",
            None,
            |k, r| {
                last(r)
                    .filter(|_| matches!(k, Kind::Http | Kind::Tls | Kind::Tcp))
                    .map(|o| one(bool_f(o.facts.failed_due_to_regex())))
                    .unwrap_or_default()
            },
        )?;

        // Certificates: present whenever a handshake completed, verified or not.
        fam.gauge(
            &mut enc,
            "probe_ssl_earliest_cert_expiry",
            "Earliest notAfter among all certificates the server presented (Unix seconds)",
            None,
            |_, r| {
                tls(r)
                    .map(|t| one(t.earliest_not_after as f64))
                    .unwrap_or_default()
            },
        )?;
        fam.gauge(&mut enc, "probe_ssl_last_chain_expiry_timestamp", "Effective expiry: earliest notAfter along the verified chain, or the leaf's when none verified", secs, |_, r| {
            tls(r).map(|t| one(t.effective_not_after as f64)).unwrap_or_default()
        })?;
        fam.gauge(
            &mut enc,
            "probe_ssl_leaf_expiry_timestamp",
            "notAfter of the leaf certificate",
            secs,
            |_, r| {
                tls(r)
                    .map(|t| one(t.leaf_not_after as f64))
                    .unwrap_or_default()
            },
        )?;
        fam.gauge(
            &mut enc,
            "probe_ssl_last_chain_info",
            "The leaf certificate of the last handshake",
            None,
            |_, r| {
                tls(r)
                    .and_then(|t| t.chain.first().cloned())
                    .map(|c| {
                        vec![(
                            vec![
                                ("fingerprint_sha256", c.fingerprint_sha256),
                                ("subject", c.subject),
                                ("issuer", c.issuer),
                                ("subjectalternative", dns_sans(&c.sans)),
                                ("serialnumber", c.serial),
                            ],
                            1.0,
                        )]
                    })
                    .unwrap_or_default()
            },
        )?;
        fam.gauge(
            &mut enc,
            "probe_ssl_verify_result",
            "Certificate verification verdict of the last handshake",
            None,
            |_, r| {
                tls(r)
                    .map(|t| vec![(vec![("result", t.verify_result.as_str().to_string())], 1.0)])
                    .unwrap_or_default()
            },
        )?;
        fam.gauge(
            &mut enc,
            "probe_tls_version_info",
            "TLS version of the last handshake",
            None,
            |_, r| {
                tls(r)
                    .map(|t| vec![(vec![("version", format!("TLS {}", t.version))], 1.0)])
                    .unwrap_or_default()
            },
        )?;
        fam.gauge(
            &mut enc,
            "probe_tls_cipher_info",
            "Cipher suite of the last handshake",
            None,
            |_, r| {
                tls(r)
                    .map(|t| vec![(vec![("cipher", t.cipher)], 1.0)])
                    .unwrap_or_default()
            },
        )?;
        fam.gauge(
            &mut enc,
            "probe_health_check_status",
            "Health document checks of the last run: 1 pass, 0.5 warn, 0 fail",
            None,
            |_, r| {
                last(r)
                    .and_then(|o| o.facts.health())
                    .map(|h| {
                        h.checks
                            .iter()
                            .map(|c| (vec![("check", c.name.clone())], c.value()))
                            .collect()
                    })
                    .unwrap_or_default()
            },
        )?;
        fam.gauge(
            &mut enc,
            "probe_step_duration",
            "Duration of each step of the last flow run",
            secs,
            |_, r| {
                last(r)
                    .map(|o| {
                        o.facts
                            .steps()
                            .iter()
                            .map(|s| (vec![("step", s.name.clone())], s.duration.as_secs_f64()))
                            .collect()
                    })
                    .unwrap_or_default()
            },
        )?;
        kinds::encode(&fam, &mut enc)?;
        if self.last_run_only {
            return Ok(());
        }
        // Exact counters.
        fam.counter(&mut enc, "probe_runs", "Probe runs by result", |_, r| {
            vec![
                (
                    vec![("result", "success".to_string())],
                    r.runs_success as f64,
                ),
                (
                    vec![("result", "failure".to_string())],
                    r.runs_failure as f64,
                ),
            ]
        })?;
        fam.counter(
            &mut enc,
            "probe_failures",
            "Failed probe runs by reason",
            |_, r| {
                r.failures_by_reason
                    .iter()
                    .map(|(reason, n): (&Reason, &u64)| {
                        (vec![("reason", reason.as_str().to_string())], *n as f64)
                    })
                    .collect()
            },
        )?;
        fam.counter(
            &mut enc,
            "probe_health_checks_dropped",
            "Health checks left out because the probe already exports its 64 names",
            |_, r| {
                if r.health_names.any() {
                    one(r.health_names.dropped as f64)
                } else {
                    Vec::new()
                }
            },
        )?;
        fam.counter(
            &mut enc,
            "vantage_probe_runs_skipped",
            "Runs skipped because the previous one was still waiting or running",
            // Absent while zero (like probe_failures_total{reason}): a healthy probe should not
            // pay a series for something that never happened (SPEC §10: ≤ 30 per HTTP probe).
            |_, r| {
                if r.skipped > 0 {
                    one(r.skipped as f64)
                } else {
                    Vec::new()
                }
            },
        )?;
        fam.histogram(
            &mut enc,
            "probe_latency",
            "Run durations, from the scheduled start",
            |_| true,
            |_, r| vec![(Vec::new(), r.latency.clone())],
        )?;
        fam.histogram(
            &mut enc,
            "probe_phase_latency",
            "Phase durations of each run",
            |m| m.phase_histograms,
            |_, r| {
                Phases::NAMES
                    .iter()
                    .zip(r.phase_latency.iter())
                    .map(|(n, h)| (vec![("phase", (*n).to_string())], h.clone()))
                    .collect()
            },
        )?;

        let mut m = enc.encode_descriptor(
            "vantage_build_info",
            "vantage's version",
            None,
            MetricType::Gauge,
        )?;
        let labels: Labels = vec![("version".into(), env!("CARGO_PKG_VERSION").into())];
        prometheus_client::metrics::gauge::ConstGauge::new(1).encode(m.encode_family(&labels)?)?;
        Ok(())
    }
}

/// Encodes every SLO's numbers from the evaluator's last reports.
#[derive(Debug)]
struct SloCollector {
    evaluator: Arc<Evaluator>,
    clock: crate::Clock,
}

impl prometheus_client::collector::Collector for SloCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        type Sample = (Labels, Vec<(&'static str, String)>, f64);
        let mut objective: Vec<Sample> = Vec::new();
        let mut period: Vec<Sample> = Vec::new();
        let mut events: Vec<Sample> = Vec::new();
        let mut sli: Vec<Sample> = Vec::new();
        let mut burn: Vec<Sample> = Vec::new();
        let mut remaining: Vec<Sample> = Vec::new();
        let mut exhaustion: Vec<Sample> = Vec::new();
        let mut firing: Vec<Sample> = Vec::new();
        let mut alert_burn: Vec<Sample> = Vec::new();
        self.evaluator.evaluate_with(self.clock.unix_ms(), |slos| {
            for r in slos {
                let c = &r.config;
                let mut base: Labels = vec![("slo".into(), Cow::Owned(c.name.clone()))];
                for (k, v) in &c.labels {
                    base.push((Cow::Owned(k.clone()), Cow::Owned(v.clone())));
                }
                objective.push((base.clone(), vec![], c.spec.objective.ratio()));
                events.push((
                    base.clone(),
                    vec![("outcome", "good".into())],
                    r.events_good as f64,
                ));
                events.push((
                    base.clone(),
                    vec![("outcome", "bad".into())],
                    r.events_bad as f64,
                ));
                let Some(rep) = &r.report else { continue };
                period.push((base.clone(), vec![], rep.period.seconds));
                // The period is exported under its own name unless a fixed window has it:
                // then it is that window, and one series says so.
                let period_is_window = rep.windows.iter().any(|w| w.name == rep.period.name);
                let period_window = (!period_is_window).then_some(&rep.period).into_iter();
                for w in rep.windows.iter().chain(period_window) {
                    if let Some(v) = w.sli {
                        sli.push((base.clone(), vec![("window", w.name.to_string())], v));
                    }
                    if let Some(v) = w.burn_rate {
                        burn.push((base.clone(), vec![("window", w.name.to_string())], v));
                    }
                }
                if let Some(v) = rep.budget_remaining {
                    remaining.push((base.clone(), vec![], v));
                }
                if let Some(v) = rep.exhaustion_seconds {
                    exhaustion.push((base.clone(), vec![], v));
                }
                // The windows the alerts use (SPEC §10: dashboards show these, not the
                // fixed ones), once per severity and window.
                let mut seen: Vec<(&str, &str)> = Vec::new();
                for a in &rep.alerts {
                    for w in [&a.long, &a.short] {
                        let key = (&*a.severity, &*w.name);
                        if seen.contains(&key) {
                            continue;
                        }
                        seen.push(key);
                        if let Some(v) = w.burn_rate {
                            alert_burn.push((
                                base.clone(),
                                vec![
                                    ("severity", a.severity.to_string()),
                                    ("window", w.name.to_string()),
                                ],
                                v,
                            ));
                        }
                    }
                }
                for sev in rep.severities() {
                    let on = rep.firing_pair(sev).is_some();
                    firing.push((
                        base.clone(),
                        vec![
                            ("alert", "SLOBurnRate".into()),
                            ("severity", sev.to_string()),
                        ],
                        bool_f(on),
                    ));
                }
            }
        });
        type Family<'a> = (&'a str, &'a str, Option<Unit>, MetricType, &'a Vec<Sample>);
        let families: [Family; 9] = [
            (
                "slo_objective_ratio",
                "The SLO's objective as a ratio",
                None,
                MetricType::Gauge,
                &objective,
            ),
            (
                "slo_period",
                "Length of the SLO's current period",
                Some(Unit::Seconds),
                MetricType::Gauge,
                &period,
            ),
            (
                "slo_events",
                "SLO events by outcome",
                None,
                MetricType::Counter,
                &events,
            ),
            (
                "slo_sli_ratio",
                "Good events / all events per window (absent when a window has none)",
                None,
                MetricType::Gauge,
                &sli,
            ),
            (
                "slo_burn_rate",
                "Error ratio / error budget per window",
                None,
                MetricType::Gauge,
                &burn,
            ),
            (
                "slo_error_budget_remaining_ratio",
                "1 - error ratio of the period / error budget (not clamped)",
                None,
                MetricType::Gauge,
                &remaining,
            ),
            (
                "slo_error_budget_exhaustion",
                "Time until the budget is spent at the current 1h burn rate",
                Some(Unit::Seconds),
                MetricType::Gauge,
                &exhaustion,
            ),
            (
                "slo_alert_firing",
                "Whether a burn-rate alert of this severity is firing",
                None,
                MetricType::Gauge,
                &firing,
            ),
            (
                "slo_alert_window_burn_rate",
                "Error ratio / error budget over each window the SLO's burn-rate alerts use",
                None,
                MetricType::Gauge,
                &alert_burn,
            ),
        ];
        let keys: Vec<Vec<String>> = families
            .iter()
            .map(|f| f.4.iter().map(|(base, _, _)| label_key(base)).collect())
            .collect();
        for ((name, help, unit, kind, samples), keys) in families.into_iter().zip(&keys) {
            if samples.is_empty() {
                continue;
            }
            let mut m = enc.encode_descriptor(name, help, unit.as_ref(), kind)?;
            let mut seen = SeriesSet::new();
            for ((base, extra, v), key) in samples.iter().zip(keys) {
                if !seen.first(key, extra) {
                    continue;
                }
                let extra: Vec<(&str, &str)> =
                    extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
                let set = (base.as_slice(), extra.as_slice());
                let fam = m.encode_family(&set)?;
                match kind {
                    MetricType::Counter => {
                        prometheus_client::metrics::counter::ConstCounter::new(*v as u64)
                            .encode(fam)?
                    }
                    _ => prometheus_client::metrics::gauge::ConstGauge::new(*v).encode(fam)?,
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openmetrics_to_prometheus_text() {
        let om = "# HELP a_runs Runs\n# TYPE a_runs counter\na_runs_total{x=\"1\"} 3\n# HELP b Gauge\n# TYPE b gauge\n# UNIT b seconds\nb{} 1.0\n# EOF\n";
        assert_eq!(
            to_prometheus_text(om),
            "# HELP a_runs_total Runs\n# TYPE a_runs_total counter\na_runs_total{x=\"1\"} 3\n# HELP b Gauge\n# TYPE b gauge\nb 1.0\n"
        );
    }

    fn check(name: &str, status: &str) -> vantage_probes::HealthCheck {
        vantage_probes::HealthCheck {
            name: name.to_string(),
            status: status.to_string(),
        }
    }

    #[test]
    fn health_checks_merge_worst_first_and_stay_bounded() {
        let mut names = HealthCheckNames::default();
        let mut h = HealthFacts {
            status: "pass".into(),
            checks: vec![
                check("db", "pass"),
                check("db", "fail"),
                check("db", "warn"),
                check("cache", "warn"),
                check("cache", "pass"),
            ],
        };
        names.admit(&mut h);
        assert_eq!(h.checks, [check("db", "fail"), check("cache", "warn")]);

        // Long names are cut at a character boundary; names that then agree are one check.
        let long = "é".repeat(100);
        let mut h = HealthFacts {
            status: "pass".into(),
            checks: vec![check(&long, "pass"), check(&format!("{long}x"), "fail")],
        };
        names.admit(&mut h);
        assert_eq!(h.checks.len(), 1);
        assert_eq!(h.checks[0].name.len(), 128);
        assert_eq!(h.checks[0].status, "fail");

        // 3 names so far; run after run of fresh names fills the probe's 64 and no more.
        for run in 0..10 {
            let mut h = HealthFacts {
                status: "pass".into(),
                checks: (0..256)
                    .map(|i| check(&format!("r{run}-{i}"), "pass"))
                    .chain(std::iter::once(check("db", "pass")))
                    .collect(),
            };
            names.admit(&mut h);
            assert!(h.checks.iter().any(|c| c.name == "db"), "known names stay");
        }
        assert_eq!(names.admitted.len(), HEALTH_CHECK_NAMES_MAX);
        assert_eq!(names.dropped, 10 * 256 - (64 - 3));
    }

    #[test]
    fn series_set_keeps_the_first_sample_of_a_series() {
        let a: Labels = vec![("probe".into(), "a".into()), ("kind".into(), "http".into())];
        let b: Labels = vec![("kind".into(), "http".into()), ("probe".into(), "a".into())];
        let (ka, kb) = (label_key(&a), label_key(&b));
        assert_eq!(ka, kb, "label order does not make a new series");
        // Length prefixes keep `a=b,c` and `a=b` + `,c=` apart.
        let c: Labels = vec![("x".into(), "1;y=2".into())];
        let d: Labels = vec![("x".into(), "1".into()), ("y".into(), "2".into())];
        assert_ne!(label_key(&c), label_key(&d));
        let mut seen = SeriesSet::new();
        assert!(seen.first(&ka, &[("window", "1d".into())]));
        assert!(!seen.first(&kb, &[("window", "1d".into())]));
        assert!(seen.first(&ka, &[("window", "30d".into())]));
        assert!(seen.first(&ka, &[]));
        assert!(!seen.first(&ka, &[]));
    }

    #[test]
    fn label_escaping() {
        assert_eq!(escape_label("plain"), "plain");
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
