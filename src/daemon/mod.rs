//! `vantage run`: wires the store, metrics, scheduler and server together, and owns reloads.
//! One shutdown path: cancelling the token stops the scheduler and the server; `run` returns
//! when both have (the server's drain is bounded).

pub mod evaluator;
pub mod history;
pub mod scheduler;
pub mod state;
pub mod store;

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::alerting::engine::Alerts;
use crate::alerting::notify::Notifier;
use crate::config::{self, Config, Shard, SinkConfig};
use crate::daemon::evaluator::Evaluator;
use crate::daemon::scheduler::Scheduler;
use crate::daemon::store::Store;
use crate::metrics::Metrics;
use crate::secret::SharedRedactor;
use crate::server::{self, App, ReloadRequest};
use crate::supervise::supervise;

/// How the outside steers a running daemon: cancel `shutdown` to stop, send on `reload` to
/// reload the config file (SIGHUP and `POST /-/reload` both do).
#[derive(Clone)]
pub struct Control {
    pub shutdown: CancellationToken,
    pub reload: mpsc::Sender<ReloadRequest>,
}

/// A control and the receiving end `run` needs.
pub fn control() -> (Control, mpsc::Receiver<ReloadRequest>) {
    let (tx, rx) = mpsc::channel(16);
    (
        Control {
            shutdown: CancellationToken::new(),
            reload: tx,
        },
        rx,
    )
}

impl Control {
    /// Ask for a reload and wait for the verdict (number of probes, or the config's errors).
    pub async fn request_reload(&self) -> Result<usize, String> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.reload
            .send(tx)
            .await
            .map_err(|_| "the daemon is shutting down".to_string())?;
        rx.await
            .map_err(|_| "the daemon is shutting down".to_string())?
    }
}

/// What `run` needs besides the control.
pub struct Daemon {
    /// Re-read on every reload.
    pub config_path: PathBuf,
    pub config: Config,
    pub listener: TcpListener,
    /// Probe state; the caller may read it (the demo's summary does).
    pub store: Arc<Store>,
    /// SLO state, likewise.
    pub evaluator: Arc<Evaluator>,
    /// The log writer's redactor, taught new secrets on reload.
    pub log_redactor: Option<SharedRedactor>,
    /// `--shard i/n`, applied to every config this daemon loads.
    pub shard: Option<Shard>,
}

/// Run until `control.shutdown` is cancelled.
pub async fn run(
    daemon: Daemon,
    control: Control,
    mut requests: mpsc::Receiver<ReloadRequest>,
) -> anyhow::Result<()> {
    let Daemon {
        config_path,
        config,
        listener,
        store,
        evaluator,
        log_redactor,
        shard,
    } = daemon;
    let mut config = config;
    config.apply_shard(shard);
    evaluator.apply(&config.slos);
    let clock = *store.clock();
    let metrics = Arc::new(Metrics::new(store.clone(), evaluator.clone()));
    let s = shard.unwrap_or(Shard { index: 0, count: 1 });
    metrics.set_shard(s.index, s.count);
    let alerting = Arc::new(Alerting::new(&config, metrics.clone(), clock));
    if let Some(dir) = &config.state.dir {
        let dir = dir.clone();
        if let Ok((Some(saved), history)) = tokio::task::spawn_blocking(move || {
            let saved = state::load(&dir, &clock);
            // An older state file carries the history itself.
            let history = match &saved {
                Some(s) if !s.history.probes.is_empty() || !s.history.slos.is_empty() => {
                    s.history.clone()
                }
                _ => state::load_history(&dir, &clock),
            };
            (saved, history)
        })
        .await
        {
            evaluator.restore_history(&history.slos, &saved.slos);
            store.restore_history(&history.probes);
            let n = evaluator.restore(saved.slos);
            let firing = saved.alerts.len();
            alerting
                .alerts
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .restore(saved.alerts);
            info!(
                slos = n,
                firing_alerts = firing,
                "Restored SLO and alert state."
            );
        }
    }
    evaluator.evaluate(clock.unix_ms());
    metrics.reload_successful.set(1);
    let mut scheduler = Scheduler::new(store.clone(), metrics.clone(), evaluator.clone());
    let config = Arc::new(config);
    scheduler.apply(&config);
    let tls = config.server.tls.clone();
    let addr = listener.local_addr()?;
    let live = Arc::new(RwLock::new(config.clone()));
    let store_for_alerts = store.clone();
    let app_store = store.clone();
    let app = App::new(
        store,
        evaluator.clone(),
        metrics.clone(),
        live.clone(),
        control.reload.clone(),
    );
    let background = tokio::spawn({
        let (e, a, l, c, m) = (
            evaluator.clone(),
            alerting.clone(),
            live.clone(),
            control.shutdown.clone(),
            metrics.clone(),
        );
        supervise(
            "evaluator",
            move |task, msg| m.task_panicked(task, msg),
            move || {
                evaluate_and_flush(
                    clock,
                    e.clone(),
                    store_for_alerts.clone(),
                    a.clone(),
                    l.clone(),
                    c.clone(),
                )
            },
        )
    });
    // The accept loop is supervised too: each restart serves a duplicate of the same socket.
    let listener = listener.into_std()?;
    let server = tokio::spawn({
        let (t, c, m) = (tls.clone(), control.shutdown.clone(), metrics.clone());
        supervise(
            "server",
            move |task, msg| m.task_panicked(task, msg),
            move || {
                let socket = listener.try_clone().and_then(TcpListener::from_std);
                let (app, tls, shutdown) = (app.clone(), t.clone(), c.clone());
                async move {
                    match socket {
                        Ok(socket) => server::serve(socket, app, tls, shutdown).await,
                        Err(e) => {
                            error!(error = %e, "Cannot reuse the listening socket; not serving.")
                        }
                    }
                }
            },
        )
    });
    info!(%addr, tls = tls.is_some(), "Serving /metrics, /probe, /api and the status page.");

    loop {
        tokio::select! {
            _ = control.shutdown.cancelled() => break,
            req = requests.recv() => {
                let Some(reply) = req else { break };
                let verdict = reload(&config_path, shard, &live, &mut scheduler, &evaluator, &metrics, log_redactor.as_ref()).await;
                if verdict.is_ok() {
                    alerting.apply(&live.read().unwrap_or_else(|e| e.into_inner()));
                }
                let _ = reply.send(verdict);
            }
        }
    }
    info!("Shutting down.");
    scheduler.shutdown().await;
    let _ = background.await;
    flush(&clock, &evaluator, &alerting, &live, &app_store, true).await;
    if tokio::time::timeout(Duration::from_secs(6), server)
        .await
        .is_err()
    {
        warn!("The server did not drain in time; closing anyway.");
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn reload(
    path: &std::path::Path,
    shard: Option<Shard>,
    live: &Arc<RwLock<Arc<Config>>>,
    scheduler: &mut Scheduler,
    evaluator: &Evaluator,
    metrics: &Metrics,
    log_redactor: Option<&SharedRedactor>,
) -> Result<usize, String> {
    let p = path.to_path_buf();
    let loaded = tokio::task::spawn_blocking(move || config::load(&p))
        .await
        .map_err(|e| format!("config loader failed: {e}"))?;
    let mut new = match loaded {
        Ok(c) => c,
        Err(e) => {
            metrics.reload_successful.set(0);
            metrics.health.reloaded(Err(format!(
                "{} problem(s), first: {}",
                e.errors.len(),
                e.errors
                    .first()
                    .map(ToString::to_string)
                    .unwrap_or_default()
            )));
            error!(errors = %e, "Config reload rejected; the previous config keeps running.");
            return Err(e.to_string());
        }
    };
    if let Some(shared) = log_redactor {
        if let Ok(mut r) = shared.write() {
            r.extend(&new.redactor);
        }
    }
    let old = live.read().unwrap_or_else(|e| e.into_inner()).clone();
    if new.server.listen != old.server.listen
        || new.server.tls.is_some() != old.server.tls.is_some()
    {
        warn!("server.listen and server.tls changes take effect on restart.");
    }
    new.apply_shard(shard);
    evaluator.apply(&new.slos);
    let new = Arc::new(new);
    scheduler.apply(&new);
    let n = new.probes.len();
    *live.write().unwrap_or_else(|e| e.into_inner()) = new;
    metrics.reload_successful.set(1);
    metrics.health.reloaded(Ok(()));
    info!(probes = n, "Config reloaded.");
    Ok(n)
}

/// Alert state and the notifier of the running config.
pub struct Alerting {
    alerts: std::sync::Mutex<Alerts>,
    notifier: std::sync::Mutex<(SinksKey, Arc<Notifier>)>,
    metrics: Arc<Metrics>,
    clock: crate::Clock,
}

impl Alerting {
    fn new(config: &Config, metrics: Arc<Metrics>, clock: crate::Clock) -> Self {
        let notifier = Notifier::new(
            &config.alert.sinks,
            config.alert.resend_interval,
            metrics.clone(),
            clock,
        );
        Self {
            alerts: std::sync::Mutex::new(Alerts::default()),
            notifier: std::sync::Mutex::new((sinks_key(config), Arc::new(notifier))),
            metrics,
            clock,
        }
    }

    /// A new notifier only when the sinks changed: queued notifications survive other reloads.
    fn apply(&self, config: &Config) {
        let mut n = self.notifier.lock().unwrap_or_else(|e| e.into_inner());
        let key = sinks_key(config);
        if n.0 != key {
            let notifier = Notifier::new(
                &config.alert.sinks,
                config.alert.resend_interval,
                self.metrics.clone(),
                self.clock,
            );
            *n = (key, Arc::new(notifier));
        }
    }

    fn notifier(&self) -> Arc<Notifier> {
        self.notifier
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .clone()
    }

    fn active(&self) -> Vec<crate::alerting::engine::Alert> {
        self.alerts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .active()
    }
}

/// What decides whether the notifier must be rebuilt: compared by value, never by `Debug`
/// text (which prints every secret as `***`).
type SinksKey = (Vec<SinkConfig>, Duration);

fn sinks_key(config: &Config) -> SinksKey {
    (config.alert.sinks.clone(), config.alert.resend_interval)
}

/// Evaluate every SLO each second; write the state every `flush_interval` (which may be shorter).
async fn evaluate_and_flush(
    clock: crate::Clock,
    evaluator: Arc<Evaluator>,
    store: Arc<Store>,
    alerting: Arc<Alerting>,
    live: Arc<RwLock<Arc<Config>>>,
    shutdown: CancellationToken,
) {
    let mut last_eval = tokio::time::Instant::now();
    let mut last_flush = tokio::time::Instant::now();
    let mut last_resend = tokio::time::Instant::now();
    let mut last_history = tokio::time::Instant::now();
    loop {
        let interval = live
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .state
            .flush_interval;
        let wait = interval.min(Duration::from_secs(1));
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        if last_eval.elapsed() >= Duration::from_secs(1) {
            last_eval = tokio::time::Instant::now();
            let now = clock.unix_ms();
            evaluator.evaluate(now);
            let config = live.read().unwrap_or_else(|e| e.into_inner()).clone();
            let transitions = alerting
                .alerts
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .step(now, &config.alert, &evaluator, &store);
            let notifier = alerting.notifier();
            for t in &transitions {
                info!(
                    alert = %t.alert.key,
                    status = if t.alert.firing() { "firing" } else { "resolved" },
                    "Alert {}.",
                    if t.alert.firing() { "firing" } else { "resolved" }
                );
                notifier.transition(t);
            }
            if last_resend.elapsed() >= notifier.resend_interval() {
                last_resend = tokio::time::Instant::now();
                notifier.resend(&alerting.active());
            }
            if !transitions.is_empty() {
                // Alert state changed: make it durable now, not at the next flush.
                last_flush = tokio::time::Instant::now();
                flush(&clock, &evaluator, &alerting, &live, &store, false).await;
            }
        }
        if last_flush.elapsed() >= interval {
            last_flush = tokio::time::Instant::now();
            // The history (5-minute grained, kilobytes per probe) at most once a minute.
            let history = last_history.elapsed() >= HISTORY_EVERY.max(interval);
            if history {
                last_history = tokio::time::Instant::now();
            }
            flush(&clock, &evaluator, &alerting, &live, &store, history).await;
        }
    }
}

/// How often the status page's history is written at most (and at shutdown).
const HISTORY_EVERY: Duration = Duration::from_secs(60);

async fn flush(
    clock: &crate::Clock,
    evaluator: &Evaluator,
    alerting: &Alerting,
    live: &Arc<RwLock<Arc<Config>>>,
    store: &Store,
    with_history: bool,
) {
    let dir = live
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .state
        .dir
        .clone();
    let Some(dir) = dir else { return };
    let saved = evaluator.save();
    let alerts = alerting.active();
    let history = with_history.then(|| crate::daemon::history::SavedHistory {
        probes: store.save_history(),
        slos: evaluator.save_history(),
    });
    let now = clock.unix_ms();
    let result =
        tokio::task::spawn_blocking(move || state::save(&dir, saved, alerts, history, now)).await;
    let failure = match result {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(format!("cannot write the state file: {e}")),
        Err(e) => Some(format!("the state writer failed: {e}")),
    };
    let metrics = &alerting.metrics;
    match failure {
        None => metrics.health.state_written(Ok(())),
        Some(e) => {
            metrics.state_write_errors.inc();
            // Logged when it starts failing; every failure is counted.
            if !metrics
                .health
                .checks()
                .iter()
                .any(|c| c.0 == "state" && !c.1)
            {
                error!(error = %e, "Cannot write the state file; counting failures in vantage_state_write_errors_total.");
            }
            metrics.health.state_written(Err(e));
        }
    }
}
