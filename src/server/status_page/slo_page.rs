//! The page of one SLO at `/slos/{name}`.

use std::fmt::Write as _;

use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Response};
use vantage_probes::Redactor;

use super::{card, enc, esc, firing_of, not_found, page, pct};
use crate::daemon::history::SloSample;
use crate::server::svg::{self as svg, span, Reference};
use crate::server::App;

/// What the SLO page needs, copied out of the evaluator's lock.
pub struct SloView {
    name: String,
    objective: f64,
    period: String,
    probes: Vec<String>,
    runbook: Option<String>,
    report: Option<vantage_slo::Report>,
    events: (u64, u64),
    history: Vec<SloSample>,
}

impl SloView {
    pub fn of(r: &crate::daemon::evaluator::Runtime) -> Self {
        Self {
            name: r.config.name.clone(),
            objective: r.config.spec.objective.percent(),
            period: r.slo.period_name(),
            probes: r.config.probes.clone(),
            runbook: r.config.runbook_url.clone(),
            report: r.report.clone(),
            events: (r.events_good, r.events_bad),
            history: r.history.points(),
        }
    }
}

/// The page of one SLO.
pub fn render_slo(s: &SloView, redactor: &Redactor) -> String {
    let rep = s.report.as_ref();
    let firing = firing_of(rep);
    let badge = if firing.is_empty() {
        "<span class=\"badge up\">no alert firing</span>".to_string()
    } else {
        format!(
            "<span class=\"badge down\">firing: {}</span>",
            esc(&firing.join(", "))
        )
    };
    let probes: Vec<String> = s
        .probes
        .iter()
        .map(|p| format!("<a href=\"../probes/{}\">{}</a>", enc(p), esc(p)))
        .collect();
    let runbook = s
        .runbook
        .as_ref()
        .map(|u| {
            let u = redactor.redact(u);
            // Only web links become links: never a `javascript:` or `data:` href.
            let lower = u.to_ascii_lowercase();
            if lower.starts_with("https://") || lower.starts_with("http://") {
                format!(" · <a href=\"{}\" rel=\"noreferrer\">runbook</a>", esc(&u))
            } else {
                format!(" · runbook <code>{}</code>", esc(&u))
            }
        })
        .unwrap_or_default();
    let header = format!(
        "<p><a href=\"../\">← overview</a></p><h1>{name} {badge}</h1><p class=\"muted\">objective {obj}% over {period} · probes {probes}{runbook}</p>",
        name = esc(&s.name),
        obj = s.objective,
        period = esc(&s.period),
        probes = probes.join(", "),
    );
    let mut main = String::from("<div class=\"cards\">");
    main.push_str(&card(
        "SLI (period)",
        &pct(rep.and_then(|r| r.period.sli), 3),
        "",
    ));
    let remaining = rep.and_then(|r| r.budget_remaining);
    let rclass = match remaining {
        Some(r) if r > 0.5 => "good",
        Some(r) if r > 0.0 => "fair",
        Some(_) => "poor",
        None => "unknown",
    };
    main.push_str(&card("budget left", &pct(remaining, 1), rclass));
    main.push_str(&card(
        "exhausted in",
        &rep.and_then(|r| r.exhaustion_seconds)
            .map_or("–".into(), span),
        "",
    ));
    main.push_str(&card(
        "events good / bad",
        &format!("{} / {}", s.events.0, s.events.1),
        "",
    ));
    main.push_str("</div>\n<h2>Error budget burn-down</h2>\n");
    let burn: Vec<(f64, f64)> = s
        .history
        .iter()
        .map(|p| (f64::from(p.t), f64::from(p.remaining) * 100.0))
        .collect();
    main.push_str(&svg::line_chart(
        "burndown",
        "burndown",
        &burn,
        0.0,
        100.0,
        &[Reference {
            value: 0.0,
            label: "exhausted",
            class: "limit",
        }],
        &|v| format!("{v:.0}%"),
    ));
    let _ = writeln!(
        main,
        "<p class=\"muted\">Error budget remaining over the {} period, sampled every 10 s for the last hour and coarser before.</p>",
        esc(&s.period)
    );
    main.push_str("<h2>SLI over time</h2>\n");
    let sli: Vec<(f64, f64)> = s
        .history
        .iter()
        .map(|p| (f64::from(p.t), f64::from(p.sli) * 100.0))
        .collect();
    let target_label = format!("objective {}%", s.objective);
    main.push_str(&svg::line_chart(
        "sli-chart",
        "sli",
        &sli,
        s.objective.min(100.0),
        100.0,
        &[Reference {
            value: s.objective,
            label: &target_label,
            class: "target",
        }],
        &|v| format!("{v:.2}%"),
    ));
    let shortest = rep
        .and_then(|r| r.windows.first())
        .map_or("shortest".to_string(), |w| w.name.to_string());
    let _ = writeln!(
        main,
        "<p class=\"muted\">SLI over the {} window at each sample.</p>",
        esc(&shortest)
    );
    main.push_str("<h2>Burn-rate alerts</h2>\n");
    match rep {
        Some(rep) if !rep.alerts.is_empty() => {
            main.push_str("<div class=\"wrap\"><table class=\"alerts\"><thead><tr><th>severity</th><th>threshold</th><th>long window</th><th>short window</th><th>state</th></tr></thead><tbody>\n");
            for a in &rep.alerts {
                let w = |x: &vantage_slo::WindowReport| {
                    format!(
                        "<b>{}</b> {} {}",
                        esc(&x.name),
                        x.burn_rate.map_or("–".into(), |b| format!("{b:.2}×")),
                        svg::burn_bar(&x.name, x.burn_rate, a.burn_rate_threshold)
                    )
                };
                let state = if a.firing {
                    "<span class=\"badge down\">firing</span>"
                } else {
                    "<span class=\"badge up\">not firing</span>"
                };
                let _ = writeln!(
                    main,
                    "<tr class=\"pair\"><td><b>{}</b></td><td>{:.1}×</td><td>{}</td><td>{}</td><td>{state}</td></tr>\
                     <tr class=\"why\"><td colspan=\"5\" class=\"wrapok muted\">{}</td></tr>",
                    esc(&a.severity),
                    a.burn_rate_threshold,
                    w(&a.long),
                    w(&a.short),
                    esc(&a.explanation())
                );
            }
            main.push_str("</tbody></table></div>\n<p class=\"muted\">A pair fires when both windows burn faster than its threshold (the black line).</p>\n");
        }
        _ => main.push_str("<p class=\"muted\">No alert pairs evaluated yet.</p>\n"),
    }
    if let Some(rep) = rep {
        main.push_str("<h2>Windows</h2>\n<div class=\"wrap\"><table class=\"windows\"><thead><tr><th>window</th><th>good / total</th><th>SLI</th><th>burn rate</th></tr></thead><tbody>\n");
        for w in rep.windows.iter().chain(std::iter::once(&rep.period)) {
            let _ = writeln!(
                main,
                "<tr><td>{}</td><td>{} / {}</td><td>{}</td><td>{}</td></tr>",
                esc(&w.name),
                w.good,
                w.total,
                pct(w.sli, 3),
                w.burn_rate.map_or("–".into(), |b| format!("{b:.2}×"))
            );
        }
        main.push_str("</tbody></table></div>\n");
    }
    page(&format!("vantage SLO: {}", s.name), &header, &main, "../")
}

/// `GET /slos/{name}`.
pub async fn slo(State(app): State<App>, Path(name): Path<String>) -> Response {
    let view = app
        .evaluator
        .with(|slos| slos.iter().find(|r| r.config.name == name).map(SloView::of));
    let config = app.config();
    match view {
        Some(v) => Html(render_slo(&v, &config.redactor)).into_response(),
        None => not_found("SLO", &name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slo_page_resists_hostile_text() {
        let v = SloView {
            name: "<img src=x onerror=alert(1)>".into(),
            objective: 99.0,
            period: "30d".into(),
            probes: vec!["a b/\"c".into()],
            runbook: Some("JavaScript:alert(1)".into()),
            report: None,
            events: (0, 0),
            history: vec![
                SloSample {
                    t: 10,
                    remaining: f32::NAN,
                    sli: f32::NAN,
                },
                SloSample {
                    t: 20,
                    remaining: f32::NAN,
                    sli: 1.0,
                },
            ],
        };
        let secret = Redactor::default();
        let html = render_slo(&v, &secret);
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.to_lowercase().contains("href=\"javascript"), "{html}");
        assert!(html.contains("href=\"../probes/a%20b%2F%22c\""));
        assert!(!html.contains("NaN"));
        assert!(html.contains("id=\"burndown\"") && html.contains("id=\"sli-chart\""));
        assert!(html.contains("No alert pairs evaluated yet."));
    }
}
