//! The overview at `/`: every probe's state, history bar, uptime and certificate, and the SLOs.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use vantage_probes::Redactor;

use super::{cert_cell, enc, esc, firing_of, latency_values, page, pct, uptime_class, ProbeView};
use crate::daemon::store::ProbeState;
use crate::server::pieces::Pieces;
use crate::server::svg::{self as svg, dur, utc};
use crate::server::App;

/// Runs drawn in the overview's history bar.
const BAR_RUNS: usize = 40;
/// Longest filter text honoured.
const QUERY_MAX: usize = 200;

/// The overview's query: `?group=<label>&q=<filter>`.
#[derive(Debug, Default, Deserialize)]
pub struct OverviewQuery {
    pub group: Option<String>,
    pub q: Option<String>,
}

/// One SLO's line on the overview.
pub struct SloRow {
    name: String,
    objective: f64,
    period: String,
    sli: Option<f64>,
    remaining: Option<f64>,
    burn_5m: Option<f64>,
    burn_1h: Option<f64>,
    firing: Vec<String>,
    remaining_history: Vec<f64>,
}

impl SloRow {
    pub fn of(r: &crate::daemon::evaluator::Runtime) -> Self {
        let rep = r.report.as_ref();
        let burn = |name: &str| {
            rep.and_then(|x| x.windows.iter().find(|w| &*w.name == name))
                .and_then(|w| w.burn_rate)
        };
        Self {
            name: r.config.name.clone(),
            objective: r.config.spec.objective.percent(),
            period: r.slo.period_name(),
            sli: rep.and_then(|x| x.period.sli),
            remaining: rep.and_then(|x| x.budget_remaining),
            burn_5m: burn("5m"),
            burn_1h: burn("1h"),
            firing: firing_of(rep),
            remaining_history: r
                .history
                .points()
                .iter()
                .map(|s| f64::from(s.remaining))
                .collect(),
        }
    }
}

fn probe_rows(views: &[&ProbeView], now_ms: i64) -> String {
    let mut rows = String::new();
    for v in views {
        let (class, state) = v.state();
        let lat = latency_values(&v.runs);
        let last_lat = lat.last().map(|s| dur(*s)).unwrap_or_else(|| "–".into());
        let mut up = String::new();
        for (i, u) in v.uptime.iter().enumerate() {
            let hide = if i == 1 { " hide-s" } else { "" };
            let _ = write!(
                up,
                "<td class=\"uptime {}{hide}\">{}</td>",
                uptime_class(*u),
                pct(*u, 2)
            );
        }
        let failure = match &v.last_failure {
            Some(f) => format!(
                "<b>{}</b> {} ago<br><span class=\"evidence\">{}</span>",
                esc(f.reason.map_or("failed", |r| r.as_str())),
                svg::between(f.at, now_ms),
                esc(&crate::daemon::history::truncate(&f.evidence, 90))
            ),
            None => "<span class=\"muted\">none</span>".into(),
        };
        let _ = writeln!(
            rows,
            "<tr class=\"probe {class}\" data-probe=\"{name}\"><td><a href=\"probes/{link}\"><b>{name}</b></a><br><span class=\"muted\">{kind}</span></td>\
             <td><span class=\"badge {class} state\">{state}</span></td><td>{bar}</td><td class=\"hide-s\">{spark}<br><span class=\"muted\">last {last_lat}</span></td>{up}<td>{cert}</td><td class=\"evidence\">{failure}</td></tr>",
            name = esc(&v.name),
            link = enc(&v.name),
            kind = v.kind,
            state = esc(&state),
            bar = svg::history_bar(&v.runs, BAR_RUNS, now_ms),
            spark = svg::sparkline(&lat, "latency", "latency of recent runs"),
            cert = cert_cell(v.cert_days),
        );
    }
    rows
}

fn probe_table(views: &[&ProbeView], now_ms: i64) -> String {
    format!(
        "<div class=\"wrap\"><table class=\"probes\">\n<thead><tr><th>probe</th><th>state</th><th>last {BAR_RUNS} runs</th><th class=\"hide-s\">latency</th><th>24h</th><th class=\"hide-s\">7d</th><th>30d</th><th>cert</th><th>last failure</th></tr></thead>\n<tbody>\n{}</tbody></table></div>\n",
        probe_rows(views, now_ms)
    )
}

fn slo_table(slos: &[&SloRow]) -> String {
    if slos.is_empty() {
        return String::new();
    }
    let mut rows = String::new();
    for s in slos {
        let (class, firing) = if s.firing.is_empty() {
            ("up", "<span class=\"badge up\">ok</span>".to_string())
        } else {
            (
                "down",
                format!(
                    "<span class=\"badge down\">{}</span>",
                    esc(&s.firing.join(", "))
                ),
            )
        };
        let remaining_class = match s.remaining {
            Some(r) if r > 0.5 => "good",
            Some(r) if r > 0.0 => "fair",
            Some(_) => "poor",
            None => "unknown",
        };
        let _ = writeln!(
            rows,
            "<tr class=\"slo {class}\"><td><a href=\"slos/{link}\"><b>{name}</b></a><br><span class=\"muted\">{obj}% / {period}</span></td><td>{sli}</td>\
             <td class=\"{remaining_class}\"><b>{rem}</b></td><td>{spark}</td><td>{b5}</td><td class=\"hide-s\">{b1}</td><td>{firing}</td></tr>",
            name = esc(&s.name),
            link = enc(&s.name),
            obj = s.objective,
            period = esc(&s.period),
            sli = pct(s.sli, 3),
            rem = pct(s.remaining, 1),
            spark = svg::sparkline(&s.remaining_history, "budget", "error budget remaining over time"),
            b5 = s.burn_5m.map_or("–".into(), |v| format!("{v:.2}×")),
            b1 = s.burn_1h.map_or("–".into(), |v| format!("{v:.2}×")),
        );
    }
    format!(
        "<h2>SLOs</h2>\n<div class=\"wrap\"><table class=\"slos\">\n<thead><tr><th>slo</th><th>SLI (period)</th><th>budget left</th><th>burn-down</th><th>burn 5m</th><th class=\"hide-s\">burn 1h</th><th>alerts</th></tr></thead>\n<tbody>\n{rows}</tbody></table></div>\n"
    )
}

/// The overview for these probes and SLOs at `now_ms`, grouped by the label `group` and
/// filtered by `q` when given.
pub fn render_overview(
    probes: &[Arc<ProbeState>],
    slos: &[SloRow],
    now_ms: i64,
    query: &OverviewQuery,
    redactor: &Redactor,
) -> String {
    let q = query
        .q
        .as_deref()
        .map(|q| crate::daemon::history::truncate(q.trim(), QUERY_MAX))
        .filter(|q| !q.is_empty());
    let group = query.group.as_deref().filter(|g| !g.is_empty());
    let views: Vec<ProbeView> = probes
        .iter()
        .map(|p| ProbeView::of(p, now_ms, redactor))
        .collect();
    let up = views.iter().filter(|v| v.up == Some(true)).count();
    let down = views.iter().filter(|v| v.up == Some(false)).count();
    let shown: Vec<&ProbeView> = views
        .iter()
        .filter(|v| q.as_deref().is_none_or(|q| v.matches(q)))
        .collect();
    let mut keys: Vec<&str> = views
        .iter()
        .flat_map(|v| v.labels.iter().map(|(k, _)| k.as_str()))
        .collect();
    keys.sort_unstable();
    keys.dedup();

    let mut main = String::new();
    if shown.is_empty() {
        main.push_str("<p class=\"muted empty\">No probe matches.</p>\n");
    }
    match group {
        None => {
            if !shown.is_empty() {
                main.push_str("<h2>Probes</h2>\n");
                main.push_str(&probe_table(&shown, now_ms));
            }
        }
        Some(key) => {
            let mut groups: std::collections::BTreeMap<Option<&str>, Vec<&ProbeView>> =
                Default::default();
            for v in &shown {
                let value = v
                    .labels
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v.as_str());
                groups.entry(value).or_default().push(v);
            }
            for (value, members) in groups {
                let n_up = members.iter().filter(|v| v.up == Some(true)).count();
                let title = match value {
                    Some(v) => format!("{key}={v}"),
                    None => format!("no {key} label"),
                };
                let _ = writeln!(
                    main,
                    "<h2 class=\"group-h group\">{} <span class=\"muted\">{n_up}/{} up</span></h2>",
                    esc(&title),
                    members.len()
                );
                main.push_str(&probe_table(&members, now_ms));
            }
        }
    }
    let slos: Vec<&SloRow> = slos
        .iter()
        .filter(|s| {
            q.as_deref()
                .is_none_or(|q| s.name.to_lowercase().contains(&q.to_lowercase()))
        })
        .collect();
    main.push_str(&slo_table(&slos));

    let mut options = String::from("<option value=\"\">no grouping</option>");
    for k in &keys {
        let sel = if Some(*k) == group { " selected" } else { "" };
        let _ = write!(
            options,
            "<option value=\"{k}\"{sel}>group by {k}</option>",
            k = esc(k)
        );
    }
    let firing = slos.iter().filter(|s| !s.firing.is_empty()).count();
    let header = format!(
        "<h1>vantage</h1><p class=\"summary\"><b>{up}</b> of {total} probes up{down_text} · {n_slo} SLOs{firing_text} · {now}</p>\
         <form class=\"filter\" method=\"get\"><input type=\"search\" name=\"q\" placeholder=\"filter: name, target, label\" value=\"{q}\" aria-label=\"filter\">\
         <select name=\"group\" aria-label=\"group by\">{options}</select><button type=\"submit\">apply</button></form>",
        total = views.len(),
        down_text = if down > 0 {
            format!(", <span class=\"poor\">{down} down</span>")
        } else {
            String::new()
        },
        n_slo = slos.len(),
        firing_text = if firing > 0 {
            format!(", <span class=\"poor\">{firing} alerting</span>")
        } else {
            String::new()
        },
        now = utc(now_ms),
        q = esc(q.as_deref().unwrap_or_default()),
    );
    page(
        &format!("vantage: {up}/{} up", views.len()),
        &header,
        &main,
        "",
    )
}

/// `GET /`.
/// The page holds a render slot while it is built and sent (at 10,000 probes it is ~40 MiB), and
/// is built off the runtime's workers.
pub async fn overview(State(app): State<App>, Query(q): Query<OverviewQuery>) -> Response {
    let slot = match app.renders.slot().await {
        Ok(s) => s,
        Err(busy) => return busy,
    };
    let rendered = tokio::task::spawn_blocking(move || {
        let slos = app
            .evaluator
            .with(|slos| slos.iter().map(SloRow::of).collect::<Vec<_>>());
        let config = app.config();
        render_overview(
            &app.store.all(),
            &slos,
            app.store.clock().unix_ms(),
            &q,
            &config.redactor,
        )
    })
    .await;
    let Ok(html) = rendered else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let body = axum::body::Body::new(Pieces::one(html).holding(slot));
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}
