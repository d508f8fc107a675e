//! `/api/v1/probes` and `/api/v1/slos`: the JSON API. Each document is a typed `Serialize`
//! struct, so the API's shape is stated in one place.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use vantage_probes::Outcome;

use super::{error, App};
use crate::config::{Kind, Shard};
use crate::daemon::evaluator::{Runtime, Verdict};
use crate::daemon::store::{ProbeState, RunSummary, QUANTILES, WINDOWS};

/// `GET /api/v1/probes`.
#[derive(Serialize)]
pub(super) struct ProbeList {
    probes: Vec<ProbeSummary>,
    /// This instance's shard (`{"index": 0, "count": 1}` when not sharded).
    shard: Shard,
}

/// One probe in the list, and the head of its own document.
#[derive(Serialize)]
struct ProbeSummary {
    name: String,
    kind: Kind,
    target: String,
    /// The probe's labels; a repeated key keeps its last value.
    labels: BTreeMap<String, String>,
    interval_seconds: f64,
    /// The last run's verdict; absent before the first run.
    up: Option<bool>,
    last: Option<RunSummary>,
    runs: RunCounts,
    /// Unix seconds when the last run's certificate chain stops being valid.
    cert_not_after: Option<i64>,
}

#[derive(Serialize)]
struct RunCounts {
    success: u64,
    failure: u64,
}

/// `GET /api/v1/probes/{name}`: the summary and everything the daemon knows about the probe.
#[derive(Serialize)]
pub(super) struct ProbeDetail {
    #[serde(flatten)]
    summary: ProbeSummary,
    timeout_seconds: f64,
    last_outcome: Option<LastOutcome>,
    history: Vec<RunSummary>,
    recent_failures: Vec<RunSummary>,
    /// Failed runs by reason name.
    failures_by_reason: BTreeMap<&'static str, u64>,
    skipped_runs: u64,
    /// Window (`5m`, `1h`) → quantile (`0.5`, …) → seconds; `null` while a window is empty.
    latency_quantiles_seconds: BTreeMap<&'static str, BTreeMap<&'static str, Option<f64>>>,
}

#[derive(Serialize)]
struct LastOutcome {
    at: f64,
    run: u64,
    outcome: Outcome,
}

impl ProbeSummary {
    fn of(state: &ProbeState) -> Self {
        let meta = state.meta();
        let r = state.record();
        let last = r.history.back();
        Self {
            name: state.name.clone(),
            kind: meta.kind,
            target: meta.target.clone(),
            labels: meta.labels.iter().cloned().collect(),
            interval_seconds: meta.interval.as_secs_f64(),
            up: last.map(|l| l.success),
            last: last.cloned(),
            runs: RunCounts {
                success: r.runs_success,
                failure: r.runs_failure,
            },
            cert_not_after: r
                .last
                .as_ref()
                .and_then(|l| l.outcome.facts.tls())
                .map(|t| t.effective_not_after),
        }
    }
}

impl ProbeDetail {
    fn of(state: &ProbeState) -> Self {
        let summary = ProbeSummary::of(state);
        let meta = state.meta();
        let r = state.record();
        let latency = WINDOWS
            .iter()
            .enumerate()
            .map(|(w, (window, _))| {
                let q = QUANTILES
                    .iter()
                    .enumerate()
                    .map(|(i, (quantile, _))| (*quantile, r.quantiles[w][i]))
                    .collect();
                (*window, q)
            })
            .collect();
        Self {
            summary,
            timeout_seconds: meta.timeout.as_secs_f64(),
            last_outcome: r.last.as_ref().map(|l| LastOutcome {
                at: l.at,
                run: l.run,
                outcome: l.outcome.clone(),
            }),
            history: r.history.iter().cloned().collect(),
            recent_failures: r.failures.iter().cloned().collect(),
            failures_by_reason: r
                .failures_by_reason
                .iter()
                .map(|(k, v)| (k.as_str(), *v))
                .collect(),
            skipped_runs: r.skipped,
            latency_quantiles_seconds: latency,
        }
    }
}

pub(super) async fn api_probes(State(app): State<App>) -> Json<ProbeList> {
    let probes = app
        .store
        .all()
        .iter()
        .map(|s| ProbeSummary::of(s))
        .collect();
    let shard = app.config().shard.unwrap_or(Shard { index: 0, count: 1 });
    Json(ProbeList { probes, shard })
}

pub(super) async fn api_probe(State(app): State<App>, Path(name): Path<String>) -> Response {
    let Some(state) = app.store.get(&name) else {
        return error(StatusCode::NOT_FOUND, format!("no probe named {name:?}"));
    };
    Json(ProbeDetail::of(&state)).into_response()
}

/// `GET /api/v1/slos`.
#[derive(Serialize)]
pub(super) struct SloList {
    slos: Vec<SloDoc>,
}

/// One SLO: the summary in the list, with `detail` on its own document.
#[derive(Serialize)]
pub(super) struct SloDoc {
    name: String,
    /// Percent.
    objective: f64,
    period: String,
    probes: Vec<String>,
    labels: BTreeMap<String, String>,
    runbook_url: Option<String>,
    events: EventCounts,
    sli: Option<f64>,
    budget_remaining: Option<f64>,
    budget_consumed: Option<f64>,
    exhaustion_seconds: Option<f64>,
    /// Severities of the alert pairs firing now, sorted, each once.
    firing: Vec<String>,
    /// The same "SLO met" verdict `vantage check --runs N` gives (evaluator::verdict).
    verdict: Option<Verdict>,
    #[serde(flatten)]
    detail: Option<SloDetail>,
}

#[derive(Serialize)]
struct EventCounts {
    good: u64,
    bad: u64,
}

/// What only `/api/v1/slos/{name}` shows (once the SLO has a report).
#[derive(Serialize)]
struct SloDetail {
    windows: Vec<vantage_slo::WindowReport>,
    period_window: vantage_slo::WindowReport,
    alerts: Vec<PairDoc>,
    min_events: u64,
    missing_slices: Option<u64>,
    percentile_met: Option<bool>,
}

/// One alert pair's report and its explanation in words.
#[derive(Serialize)]
struct PairDoc {
    #[serde(flatten)]
    pair: vantage_slo::PairReport,
    explanation: String,
}

impl SloDoc {
    fn of(r: &Runtime, full: bool) -> Self {
        let c = &r.config;
        let rep = r.report.as_ref();
        let firing: Vec<String> = rep
            .map(|rep| {
                rep.firing_severities()
                    .into_iter()
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let detail = rep.filter(|_| full).map(|rep| SloDetail {
            windows: rep.windows.clone(),
            period_window: rep.period.clone(),
            alerts: rep
                .alerts
                .iter()
                .map(|a| PairDoc {
                    pair: a.clone(),
                    explanation: a.explanation(),
                })
                .collect(),
            min_events: c.spec.min_events,
            missing_slices: rep.missing_slices,
            percentile_met: rep.percentile_met,
        });
        Self {
            name: c.name.clone(),
            objective: c.spec.objective.percent(),
            period: r.slo.period_name(),
            probes: c.probes.clone(),
            labels: c.labels.clone(),
            runbook_url: c.runbook_url.clone(),
            events: EventCounts {
                good: r.events_good,
                bad: r.events_bad,
            },
            sli: rep.and_then(|x| x.period.sli),
            budget_remaining: rep.and_then(|x| x.budget_remaining),
            budget_consumed: rep.and_then(|x| x.budget_consumed),
            exhaustion_seconds: rep.and_then(|x| x.exhaustion_seconds),
            firing,
            verdict: r.verdict(),
            detail,
        }
    }
}

pub(super) async fn api_slos(State(app): State<App>) -> Json<SloList> {
    let slos = app
        .evaluator
        .evaluate_fresh_with(app.store.clock().unix_ms(), |slos| {
            slos.iter().map(|r| SloDoc::of(r, false)).collect()
        });
    Json(SloList { slos })
}

pub(super) async fn api_slo(State(app): State<App>, Path(name): Path<String>) -> Response {
    let doc = app
        .evaluator
        .evaluate_fresh_with(app.store.clock().unix_ms(), |slos| {
            slos.iter()
                .find(|r| r.config.name == name)
                .map(|r| SloDoc::of(r, true))
        });
    match doc {
        Some(d) => Json(d).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no SLO named {name:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The typed documents keep the JSON the API always had: the same keys, labels as an
    /// object, the detail flattened in, and the pair explanation next to the pair's fields.
    #[test]
    fn documents_keep_their_keys() {
        let summary = ProbeSummary {
            name: "api".into(),
            kind: Kind::Http,
            target: "http://x/".into(),
            labels: [("team".to_string(), "a".to_string())].into(),
            interval_seconds: 15.0,
            up: None,
            last: None,
            runs: RunCounts {
                success: 1,
                failure: 2,
            },
            cert_not_after: None,
        };
        let v = serde_json::to_value(&summary).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "cert_not_after",
                "interval_seconds",
                "kind",
                "labels",
                "last",
                "name",
                "runs",
                "target",
                "up"
            ]
        );
        assert_eq!(v["labels"]["team"], "a");
        assert_eq!(v["kind"], "http");
        assert_eq!(v["runs"]["failure"], 2);
        let detail = ProbeDetail {
            summary,
            timeout_seconds: 5.0,
            last_outcome: None,
            history: vec![],
            recent_failures: vec![],
            failures_by_reason: BTreeMap::new(),
            skipped_runs: 0,
            latency_quantiles_seconds: BTreeMap::new(),
        };
        let v = serde_json::to_value(&detail).unwrap();
        for k in [
            "name",
            "timeout_seconds",
            "last_outcome",
            "history",
            "recent_failures",
            "failures_by_reason",
            "skipped_runs",
            "latency_quantiles_seconds",
        ] {
            assert!(v.get(k).is_some(), "{k} missing: {v}");
        }
        // Attack pass: non-finite numbers (an empty window's ratios, a hostile saved state)
        // serialize as null, never as invalid JSON or a failed response.
        let doc = SloDoc {
            name: "<s>\"".into(),
            objective: f64::NAN,
            period: "30d".into(),
            probes: vec![],
            labels: BTreeMap::new(),
            runbook_url: None,
            events: EventCounts { good: 0, bad: 0 },
            sli: Some(f64::NAN),
            budget_remaining: Some(f64::NEG_INFINITY),
            budget_consumed: Some(f64::INFINITY),
            exhaustion_seconds: None,
            firing: vec![],
            verdict: None,
            detail: None,
        };
        let text = serde_json::to_string(&doc).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(v["sli"].is_null() && v["objective"].is_null(), "{text}");
        assert!(v["budget_remaining"].is_null() && v["budget_consumed"].is_null());
        assert_eq!(v["name"], "<s>\"");
        assert!(v.get("windows").is_none(), "no detail in the list form");
        let list = ProbeList {
            probes: vec![],
            shard: Shard { index: 0, count: 1 },
        };
        assert_eq!(
            serde_json::to_value(&list).unwrap(),
            serde_json::json!({"probes": [], "shard": {"index": 0, "count": 1}})
        );
    }
}
