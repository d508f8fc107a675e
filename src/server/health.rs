//! `/health/live`, `/health/ready` and `POST /-/reload`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use super::{error, App};

fn health_doc(app: &App, checks: Vec<(&str, bool)>) -> (StatusCode, Json<Value>) {
    let healthy = checks.iter().all(|(_, ok)| *ok);
    let checks: Vec<Value> = checks
        .into_iter()
        .map(|(name, ok)| json!({"name": name, "status": if ok { "pass" } else { "fail" }}))
        .collect();
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": if healthy { "healthy" } else { "unhealthy" },
            "checks": checks,
            "version": env!("CARGO_PKG_VERSION"),
            "uptime": app.started.elapsed().as_secs_f64(),
        })),
    )
}

pub(super) async fn live(State(app): State<App>) -> impl IntoResponse {
    health_doc(&app, vec![("process", true)])
}

pub(super) async fn ready(State(app): State<App>) -> impl IntoResponse {
    let config = app.config();
    let scheduler = !app.reload.is_closed();
    // `config` (a rejected reload leaves a running config that is not the file's), `state`
    // (the last state write) and `tasks` (recent panics) come from the daemon's health record.
    let mut checks = app.metrics.health.checks();
    checks.push(("scheduler", scheduler, None));
    checks.push(("probes", app.store.all().len() == config.probes.len(), None));
    let healthy = checks.iter().all(|c| c.1);
    let checks: Vec<Value> = checks
        .into_iter()
        .map(|(name, ok, detail)| {
            let mut c = json!({"name": name, "status": if ok { "pass" } else { "fail" }});
            if let Some(d) = detail {
                c["detail"] = json!(app.config().redactor.redact(&d));
            }
            c
        })
        .collect();
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": if healthy { "healthy" } else { "unhealthy" },
            "checks": checks,
            "version": env!("CARGO_PKG_VERSION"),
            "uptime": app.started.elapsed().as_secs_f64(),
        })),
    )
}

pub(super) async fn reload(State(app): State<App>) -> Response {
    let (tx, rx) = oneshot::channel();
    if app.reload.send(tx).await.is_err() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the daemon is shutting down",
        );
    }
    match rx.await {
        Ok(Ok(n)) => Json(json!({"status": "reloaded", "probes": n})).into_response(),
        Ok(Err(e)) => error(
            StatusCode::BAD_REQUEST,
            format!("config rejected, the previous one keeps running:\n{e}"),
        ),
        Err(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the daemon is shutting down",
        ),
    }
}
