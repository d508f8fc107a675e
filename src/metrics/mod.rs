//! `/metrics`. vantage's own metrics are ordinary prometheus-client metrics in a registry;
//! every probe's and every SLO's series are written by hand from the store and the evaluator at
//! scrape time ([`probe_families`], [`slo_families`], through [`encode`]), so a probe removed by a
//! reload simply stops appearing and the scheduler's hot path only updates its own record.
//!
//! Both text formats are served: Prometheus text 0.0.4 (what Prometheus and `promtool check
//! metrics` read by default) and OpenMetrics. The hand-written families are written directly in
//! the format asked for; the registry's part (small) is translated by
//! [`encode::to_prometheus_text`].
//!
//! No series is ever written twice (Prometheus would keep one of them at random): see the
//! module docs of [`probe_families`] and [`slo_families`] for why.

pub mod encode;
pub mod gzip;
mod health_names;
pub mod histogram;
mod kinds;
pub mod probe_families;
mod slo_families;

use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family as MetricFamily;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

pub use health_names::{HealthCheckNames, HEALTH_CHECK_NAMES_MAX, HEALTH_CHECK_NAME_MAX};
pub use probe_families::Mode;

use crate::daemon::evaluator::Evaluator;
use crate::daemon::store::Store;

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
    evaluator: Arc<Evaluator>,
    family_sizes: probe_families::FamilySizes,
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
        let build_info = MetricFamily::<Vec<(String, String)>, Gauge>::default();
        registry.register(
            "vantage_build_info",
            "vantage's version",
            build_info.clone(),
        );
        build_info
            .get_or_create(&vec![(
                "version".to_string(),
                env!("CARGO_PKG_VERSION").to_string(),
            )])
            .set(1);
        let state_write_errors = Counter::default();
        registry.register(
            "vantage_state_write_errors",
            "Failed writes of the state file",
            state_write_errors.clone(),
        );
        Self {
            registry,
            store,
            evaluator,
            family_sizes: Default::default(),
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
        self.render(true).concat()
    }

    /// Prometheus text format 0.0.4.
    pub fn render_text(&self) -> String {
        self.render(false).concat()
    }

    /// The exposition as consecutive pieces (vantage's own metrics, then each family's header
    /// and samples): `/metrics` sends or gzips them one after another without joining them.
    pub fn render(&self, openmetrics: bool) -> Vec<String> {
        let mut own = String::with_capacity(8 * 1024);
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut own, &self.registry);
        if let Some(len) = own.strip_suffix("# EOF\n").map(str::len) {
            own.truncate(len);
        }
        let own = if openmetrics {
            own
        } else {
            encode::to_prometheus_text(&own)
        };
        let mut out = vec![own];
        let mode = Mode::Daemon(&self.family_sizes);
        probe_families::render(&self.store, mode, &mut out, openmetrics);
        let now_ms = self.store.clock().unix_ms();
        slo_families::render(&self.evaluator, now_ms, &mut out, openmetrics);
        if openmetrics {
            out.push("# EOF\n".to_string());
        }
        out
    }
}

/// `/probe`'s answer: the last run's gauges without labels, in Prometheus text format 0.0.4.
pub fn render_last_run(store: &Store) -> String {
    let mut out = Vec::new();
    probe_families::render(store, Mode::LastRun, &mut out, false);
    out.concat()
}
