//! Supervision of the daemon's long-running tasks, and the health facts readiness reports.
//!
//! Every task the daemon spawns for its whole life (a probe's loop, the evaluator, a notifier
//! sink, the server's accept loop) runs under [`supervise`]: a panic is caught, logged, counted
//! in `vantage_task_panics_total{task}`, and the task is made again after a short backoff. A
//! panic never silently stops evaluation or alerting while `/metrics` keeps serving.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::error;

/// How long readiness reports a task panic as a failed check.
pub const PANIC_REPORT_FOR: Duration = Duration::from_secs(300);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// What readiness reports besides "the process runs": failed reloads, failed state writes and
/// task panics. Updated by the daemon, read by `/health/ready`.
#[derive(Debug, Default)]
pub struct Health {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// By task: panics so far, when the last one happened, and its message.
    panics: BTreeMap<String, (u64, Instant, String)>,
    /// The error of the last state write, if it failed.
    state_write: Option<String>,
    /// Why the last reload was rejected, if it was: the running config is not the file's.
    reload: Option<String>,
}

/// One readiness check: name, pass, and a detail for the operator.
pub type Check = (&'static str, bool, Option<String>);

impl Health {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn task_panicked(&self, task: &str, message: &str) {
        let mut inner = self.lock();
        let entry =
            inner
                .panics
                .entry(task.to_string())
                .or_insert((0, Instant::now(), String::new()));
        entry.0 += 1;
        entry.1 = Instant::now();
        entry.2 = message.to_string();
    }

    pub fn state_written(&self, result: Result<(), String>) {
        self.lock().state_write = result.err();
    }

    pub fn reloaded(&self, result: Result<(), String>) {
        self.lock().reload = result.err();
    }

    /// The checks readiness adds: `config` (the last reload was applied), `state` (the last
    /// state write succeeded) and `tasks` (no task panicked in the last [`PANIC_REPORT_FOR`]).
    pub fn checks(&self) -> Vec<Check> {
        let inner = self.lock();
        let config = match &inner.reload {
            None => ("config", true, None),
            Some(e) => (
                "config",
                false,
                Some(format!(
                    "the last reload failed, so the running config is not the file's: {e}"
                )),
            ),
        };
        let state = match &inner.state_write {
            None => ("state", true, None),
            Some(e) => (
                "state",
                false,
                Some(format!("the last state write failed: {e}")),
            ),
        };
        let recent: Vec<String> = inner
            .panics
            .iter()
            .filter(|(_, (_, at, _))| at.elapsed() < PANIC_REPORT_FOR)
            .map(|(task, (n, _, msg))| {
                format!("task {task} panicked ({n} in all, restarted): {msg}")
            })
            .collect();
        let tasks = if recent.is_empty() {
            ("tasks", true, None)
        } else {
            ("tasks", false, Some(recent.join("; ")))
        };
        vec![config, state, tasks]
    }
}

/// Aborts the task when dropped: a supervisor that is itself aborted takes its task with it.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The text of a panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}

/// Run the task `make` builds until it returns. When it panics, `on_panic(task, message)` is
/// called (log, count, readiness) and the task is made again after a backoff that doubles up to
/// 10 s. Aborting the supervisor aborts the task.
pub async fn supervise<F, Fut, P>(task: &'static str, on_panic: P, mut make: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
    P: Fn(&str, &str),
{
    let mut backoff = FIRST_BACKOFF;
    loop {
        let mut handle = AbortOnDrop(tokio::spawn(make()));
        let started = Instant::now();
        match (&mut handle.0).await {
            Ok(()) => return,
            Err(e) if e.is_panic() => {
                let message = panic_message(&*e.into_panic());
                error!(task, panic = %message, "A daemon task panicked; restarting it.");
                on_panic(task, &message);
                // A task that ran a good while before panicking starts over with a short wait.
                if started.elapsed() > MAX_BACKOFF * 6 {
                    backoff = FIRST_BACKOFF;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            // Cancelled from outside (runtime shutting down): nothing to restart.
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    #[tokio::test(start_paused = true)]
    async fn a_panicking_task_is_restarted_and_counted() {
        let runs = Arc::new(AtomicU32::new(0));
        let health = Arc::new(Health::default());
        let r = runs.clone();
        let h = health.clone();
        supervise(
            "test",
            move |task, msg| h.task_panicked(task, msg),
            move || {
                let r = r.clone();
                async move {
                    if r.fetch_add(1, Ordering::SeqCst) < 3 {
                        panic!("boom");
                    }
                }
            },
        )
        .await;
        assert_eq!(runs.load(Ordering::SeqCst), 4);
        let checks = health.checks();
        let tasks = checks.iter().find(|c| c.0 == "tasks").unwrap();
        assert!(!tasks.1);
        assert!(tasks.2.as_deref().unwrap().contains("boom"), "{tasks:?}");
        assert!(
            tasks.2.as_deref().unwrap().contains("3 in all"),
            "{tasks:?}"
        );
        tokio::time::sleep(PANIC_REPORT_FOR).await;
        assert!(health.checks().iter().all(|c| c.1));
    }

    #[tokio::test(start_paused = true)]
    async fn aborting_the_supervisor_aborts_the_task() {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let sup = tokio::spawn(supervise("t", |_, _| {}, {
            let mut tx = Some(tx);
            move || {
                let tx = tx.take();
                async move {
                    let _keep = tx;
                    std::future::pending::<()>().await;
                }
            }
        }));
        tokio::task::yield_now().await;
        sup.abort();
        // The sender is dropped only when the inner task is gone.
        assert!(rx.await.is_err());
    }
}
