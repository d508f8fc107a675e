//! `vantage rules`: Prometheus recording and alerting rules for the config's SLOs, with Sloth's
//! names, so that a Prometheus (or Thanos, Mimir) scraping many vantage instances evaluates the
//! same SLOs the daemon evaluates itself.
//!
//! The period's error ratio is event-weighted — failures over the period divided by runs over
//! the period — not an average of 5-minute ratios: an average gives a quiet night the same
//! weight as a busy day and disagrees with the budget vantage computes from exact counts.
//! Aggregation is `sum without (instance, …)`, so sharded instances and several locations add up.

use std::fmt::Write as _;
use std::time::Duration;

use vantage_slo::{window_name, AlertPair, CalendarUnit, Period, Sli};

use crate::config::{Config, SloConfig};
use crate::store::LATENCY_BUCKETS;

/// A YAML double-quoted scalar (JSON string syntax is valid YAML).
fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

fn nominal_period(slo: &SloConfig) -> Duration {
    match &slo.spec.period {
        Period::Rolling(d) => *d,
        Period::Calendar {
            unit: CalendarUnit::Week,
            ..
        } => Duration::from_secs(7 * 86_400),
        Period::Calendar {
            unit: CalendarUnit::Month,
            ..
        } => Duration::from_secs(30 * 86_400),
    }
}

/// The windows an SLO needs recorded: the fixed ones, the period, and every alert window.
fn windows(slo: &SloConfig) -> Vec<Duration> {
    let mut w: Vec<Duration> = vantage_slo::WINDOWS.iter().map(|(_, d)| *d).collect();
    w.push(nominal_period(slo));
    for p in &slo.spec.alerts {
        w.push(p.long);
        w.push(p.short);
    }
    w.sort();
    w.dedup();
    w
}

/// Every label a selected probe's series carry besides what Prometheus adds: summed away.
fn summed_labels(config: &Config, slo: &SloConfig) -> Vec<String> {
    let mut labels = vec![
        "instance".to_string(),
        "probe".into(),
        "kind".into(),
        "result".into(),
    ];
    for p in config
        .probes
        .iter()
        .filter(|p| slo.probes.contains(&p.name))
    {
        for k in p.labels.keys() {
            if !labels.contains(k) {
                labels.push(k.clone());
            }
        }
    }
    labels
}

fn selector(slo: &SloConfig) -> String {
    // Probe names are `[a-z0-9_-]+`: nothing in them is special to RE2 or to a PromQL string
    // (`-` is literal outside a character class), so they go in as they are.
    format!("probe=~\"^({})$\"", slo.probes.join("|"))
}

/// The error ratio over `w`, as PromQL.
fn error_expr(config: &Config, slo: &SloConfig, w: Duration) -> Result<String, String> {
    let without = summed_labels(config, slo).join(", ");
    let sel = selector(slo);
    let r = window_name(w);
    match slo.spec.sli {
        Sli::Availability => Ok(format!(
            "sum without ({without}) (increase(probe_runs_total{{{sel},result=\"failure\"}}[{r}])) / sum without ({without}) (increase(probe_runs_total{{{sel}}}[{r}]))"
        )),
        Sli::Latency { threshold } | Sli::LatencyPercentile { threshold, .. } => {
            let t = threshold.as_secs_f64();
            if !LATENCY_BUCKETS.iter().any(|b| (b - t).abs() < 1e-9) {
                return Err(format!(
                    "SLO {:?}: threshold {} is not a bucket of probe_latency_seconds ({}); Prometheus rules can only count runs under a bucket bound",
                    slo.name,
                    humantime::format_duration(threshold),
                    LATENCY_BUCKETS.iter().map(|b| format!("{b}s")).collect::<Vec<_>>().join(", ")
                ));
            }
            let without_le = format!("{without}, le");
            // As the exposition writes it: `1.0`, `0.5`.
            let le = if t.fract() == 0.0 { format!("{t:.1}") } else { format!("{t}") };
            Ok(format!(
                "1 - (sum without ({without_le}) (increase(probe_latency_seconds_bucket{{{sel},le=\"{le}\"}}[{r}])) / sum without ({without}) (increase(probe_latency_seconds_count{{{sel}}}[{r}])))"
            ))
        }
    }
}

fn labels_block(out: &mut String, indent: &str, slo: &SloConfig, extra: &[(&str, String)]) {
    let _ = writeln!(out, "{indent}labels:");
    let _ = writeln!(out, "{indent}  slo: {}", q(&slo.name));
    for (k, v) in &slo.labels {
        let _ = writeln!(out, "{indent}  {k}: {}", q(v));
    }
    for (k, v) in extra {
        let _ = writeln!(out, "{indent}  {k}: {}", q(v));
    }
}

fn alert_rule(out: &mut String, config: &Config, slo: &SloConfig, pair: &AlertPair) {
    let budget = ratio(slo.spec.objective.budget());
    let factor = ratio(pair.burn_rate * budget);
    let (long, short) = (window_name(pair.long), window_name(pair.short));
    let sel = format!("slo={}", q(&slo.name));
    let mut expr = format!(
        "(slo:sli_error:ratio_rate{long}{{{sel}}} > {factor}) and (slo:sli_error:ratio_rate{short}{{{sel}}} > {factor})"
    );
    if slo.spec.min_events > 0 {
        let mut ignoring = vec!["slo".to_string()];
        ignoring.extend(slo.labels.keys().cloned());
        let without = summed_labels(config, slo).join(", ");
        for w in [pair.long, pair.short] {
            let _ = write!(
                expr,
                " and ignoring ({}) (sum without ({without}) (increase(probe_runs_total{{{}}}[{}])) >= {})",
                ignoring.join(", "),
                selector(slo),
                window_name(w),
                slo.spec.min_events
            );
        }
    }
    let _ = writeln!(out, "      - alert: \"SLOBurnRate\"");
    let _ = writeln!(out, "        expr: {}", q(&expr));
    labels_block(
        out,
        "        ",
        slo,
        &[
            ("severity", pair.severity.clone()),
            ("long_window", long.clone()),
            ("short_window", short.clone()),
        ],
    );
    let _ = writeln!(out, "        annotations:");
    let _ = writeln!(
        out,
        "          summary: {}",
        q(&format!(
            "SLO {} is burning its error budget too fast ({})",
            slo.name, pair.severity
        ))
    );
    let _ = writeln!(
        out,
        "          description: {}",
        q(&format!(
            "Error ratio over {long} is {{{{ $value | humanizePercentage }}}}, above {:.4}% (burn rate {} × error budget {:.4}%), and so is the {short} window. See slo:period_error_budget_remaining:ratio{{slo=\"{}\"}} for the budget remaining.",
            factor * 100.0,
            pair.burn_rate,
            budget * 100.0,
            slo.name
        ))
    );
    if let Some(r) = &slo.runbook_url {
        let _ = writeln!(out, "          runbook_url: {}", q(r));
    }
}

/// A ratio as a short decimal: `1 − 0.999` is 0.0010000000000000009 in binary floating point,
/// and the rules should say 0.001.
fn ratio(v: f64) -> f64 {
    (v * 1e12).round() / 1e12
}

/// The whole rule file.
pub fn generate(config: &Config, source: &str) -> Result<String, Vec<String>> {
    let mut out = String::new();
    let mut errors = Vec::new();
    let _ = writeln!(
        out,
        "# Generated by `vantage rules` from {source}. Do not edit: regenerate."
    );
    let _ = writeln!(
        out,
        "# Recording rules use Sloth's names; alerts match the daemon's own (SPEC §4.3, §7)."
    );
    if config.slos.is_empty() {
        let _ = writeln!(out, "groups: []");
        return Ok(out);
    }
    let _ = writeln!(out, "groups:");
    for slo in &config.slos {
        let budget = ratio(slo.spec.objective.budget());
        let period = nominal_period(slo);
        let p = window_name(period);
        let _ = writeln!(
            out,
            "  - name: {}",
            q(&format!("vantage-slo-sli-recordings-{}", slo.name))
        );
        let _ = writeln!(out, "    rules:");
        for w in windows(slo) {
            match error_expr(config, slo, w) {
                Ok(expr) => {
                    let _ = writeln!(
                        out,
                        "      - record: \"slo:sli_error:ratio_rate{}\"",
                        window_name(w)
                    );
                    let _ = writeln!(out, "        expr: {}", q(&expr));
                    labels_block(&mut out, "        ", slo, &[]);
                }
                Err(e) => {
                    errors.push(e);
                    break;
                }
            }
        }
        let sel = format!("{{slo={}}}", q(&slo.name));
        let _ = writeln!(
            out,
            "  - name: {}",
            q(&format!("vantage-slo-meta-recordings-{}", slo.name))
        );
        let _ = writeln!(out, "    rules:");
        let meta = [
            ("slo:objective:ratio", format!("vector({})", ratio(slo.spec.objective.ratio()))),
            ("slo:error_budget:ratio", format!("vector({budget})")),
            ("slo:time_period:days", format!("vector({})", period.as_secs_f64() / 86_400.0)),
            ("slo:current_burn_rate:ratio", format!("slo:sli_error:ratio_rate5m{sel} / on(slo) group_left slo:error_budget:ratio{sel}")),
            ("slo:period_burn_rate:ratio", format!("slo:sli_error:ratio_rate{p}{sel} / on(slo) group_left slo:error_budget:ratio{sel}")),
            ("slo:period_error_budget_remaining:ratio", format!("1 - slo:period_burn_rate:ratio{sel}")),
        ];
        for (record, expr) in meta {
            let _ = writeln!(out, "      - record: {}", q(record));
            let _ = writeln!(out, "        expr: {}", q(&expr));
            labels_block(&mut out, "        ", slo, &[]);
        }
        if !slo.spec.alerts.is_empty() {
            let _ = writeln!(
                out,
                "  - name: {}",
                q(&format!("vantage-slo-alerts-{}", slo.name))
            );
            let _ = writeln!(out, "    rules:");
            for pair in &slo.spec.alerts {
                alert_rule(&mut out, config, slo, pair);
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}
