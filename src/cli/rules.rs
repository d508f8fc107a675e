//! `vantage rules`: Prometheus recording and alerting rules for the config's SLOs, with Sloth's
//! names, so that a Prometheus (or Thanos, Mimir) scraping many vantage instances evaluates the
//! same SLOs the daemon evaluates itself.
//!
//! The period's error ratio is event-weighted — failures over the period divided by runs over
//! the period — not an average of 5-minute ratios: an average gives a quiet night the same
//! weight as a busy day and disagrees with the budget vantage computes from exact counts.
//! Aggregation is `sum by ()` — by the labels that define the SLO, and the series carry none
//! of those: the rule attaches `slo` and the SLO's labels itself — so every target label
//! (`instance`, `job`, and Kubernetes' `pod`, `namespace`, `service`, `endpoint`) is summed
//! away: sharded instances, replicas and several locations add up to one SLO.
//!
//! Ranges are never shorter than 4 × the scrape interval (`--scrape-interval`, default 15s):
//! `increase(x[10s])` over 15 s scrapes holds at most one sample and is always empty, so an
//! alert pair using it could never fire. A window that would be shorter is widened to that
//! minimum; the output says so in a comment and `generate` returns a warning.
//!
//! Alerts: one `SLOBurnRate` per SLO and severity (the pairs of a severity are `or`ed), with
//! exactly the daemon's labels (`alertname`, `slo`, `severity` and the SLO's labels), so
//! Alertmanager sees the daemon's alert and Prometheus' alert for one burn as one alert.

use std::fmt::Write as _;
use std::time::Duration;

use vantage_slo::{window_name, AlertPair, CalendarUnit, Period, Sli};

use crate::config::{Config, SloConfig};
use crate::daemon::store::LATENCY_BUCKETS;

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

/// How the rules are generated.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Prometheus' scrape interval for vantage: no range is shorter than 4 × this.
    pub scrape_interval: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            scrape_interval: Duration::from_secs(15),
        }
    }
}

impl Options {
    /// The shortest range the rules use: 4 scrapes, so `increase()` always has samples.
    pub fn min_range(&self) -> Duration {
        self.scrape_interval.saturating_mul(4)
    }

    /// `w`, or the minimum range if `w` is shorter.
    fn range(&self, w: Duration) -> Duration {
        w.max(self.min_range())
    }
}

/// The generated file and what was widened.
#[derive(Debug, Clone)]
pub struct Generated {
    pub text: String,
    /// One line per widened window, for stderr.
    pub warnings: Vec<String>,
}

/// The ranges an SLO needs recorded: the fixed windows, the period and every alert window,
/// each at least the minimum range.
fn windows(slo: &SloConfig, opts: &Options) -> Vec<Duration> {
    let mut w: Vec<Duration> = vantage_slo::WINDOWS
        .iter()
        .map(|(_, d)| opts.range(*d))
        .collect();
    w.push(opts.range(nominal_period(slo)));
    for p in &slo.spec.alerts {
        w.push(opts.range(p.long));
        w.push(opts.range(p.short));
    }
    w.sort();
    w.dedup();
    w
}

fn selector(slo: &SloConfig) -> String {
    // Probe names are `[a-z0-9_-]+`: nothing in them is special to RE2 or to a PromQL string
    // (`-` is literal outside a character class), so they go in as they are.
    format!("probe=~\"^({})$\"", slo.probes.join("|"))
}

/// The error ratio over `w`, as PromQL.
fn error_expr(slo: &SloConfig, w: Duration) -> Result<String, String> {
    let sel = selector(slo);
    let r = window_name(w);
    match slo.spec.sli {
        Sli::Availability => Ok(format!(
            "sum by () (increase(probe_runs_total{{{sel},result=\"failure\"}}[{r}])) / sum by () (increase(probe_runs_total{{{sel}}}[{r}]))"
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
            // As the exposition writes it: `1.0`, `0.5`.
            let le = if t.fract() == 0.0 { format!("{t:.1}") } else { format!("{t}") };
            Ok(format!(
                "1 - (sum by () (increase(probe_latency_seconds_bucket{{{sel},le=\"{le}\"}}[{r}])) / sum by () (increase(probe_latency_seconds_count{{{sel}}}[{r}])))"
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

/// One pair's condition: both (widened) windows above the pair's factor, both holding
/// `min_events` runs.
fn pair_condition(slo: &SloConfig, pair: &AlertPair, opts: &Options) -> String {
    let budget = ratio(slo.spec.objective.budget());
    let factor = ratio(pair.burn_rate * budget);
    let (long, short) = (
        window_name(opts.range(pair.long)),
        window_name(opts.range(pair.short)),
    );
    let sel = format!("slo={}", q(&slo.name));
    let mut expr = format!(
        "slo:sli_error:ratio_rate{long}{{{sel}}} > {factor} and slo:sli_error:ratio_rate{short}{{{sel}}} > {factor}"
    );
    if slo.spec.min_events > 0 {
        for w in [&long, &short] {
            let _ = write!(
                expr,
                " and on () (sum by () (increase(probe_runs_total{{{}}}[{w}])) >= {})",
                selector(slo),
                slo.spec.min_events
            );
        }
    }
    format!("({expr})")
}

/// One `SLOBurnRate` alert for an SLO and severity: any of the severity's pairs.
fn alert_rule(out: &mut String, slo: &SloConfig, severity: &str, opts: &Options) {
    let pairs: Vec<&AlertPair> = slo
        .spec
        .alerts
        .iter()
        .filter(|p| p.severity == severity)
        .collect();
    let budget = ratio(slo.spec.objective.budget());
    let expr = pairs
        .iter()
        .map(|p| pair_condition(slo, p, opts))
        .collect::<Vec<_>>()
        .join(" or ");
    let described: Vec<String> = pairs
        .iter()
        .map(|p| {
            format!(
                "{} and {} above burn rate {}",
                window_name(opts.range(p.long)),
                window_name(opts.range(p.short)),
                p.burn_rate
            )
        })
        .collect();
    let _ = writeln!(out, "      - alert: \"SLOBurnRate\"");
    let _ = writeln!(out, "        expr: {}", q(&expr));
    labels_block(out, "        ", slo, &[("severity", severity.to_string())]);
    let _ = writeln!(out, "        annotations:");
    let _ = writeln!(
        out,
        "          summary: {}",
        q(&format!(
            "SLO {} is burning its error budget too fast ({severity})",
            slo.name
        ))
    );
    let _ = writeln!(
        out,
        "          description: {}",
        q(&format!(
            "Error ratio over the long window of a firing pair is {{{{ $value | humanizePercentage }}}} (error budget {:.4}%); pairs: {}. See slo:period_error_budget_remaining:ratio{{slo=\"{}\"}} for the budget remaining.",
            budget * 100.0,
            described.join("; "),
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
pub fn generate(config: &Config, source: &str, opts: &Options) -> Result<Generated, Vec<String>> {
    let mut out = String::new();
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let min = opts.min_range();
    let _ = writeln!(
        out,
        "# Generated by `vantage rules` from {source}. Do not edit: regenerate."
    );
    let _ = writeln!(
        out,
        "# Recording rules use Sloth's names; alerts match the daemon's own (SPEC §4.3, §7, §10)."
    );
    let _ = writeln!(
        out,
        "# Scrape interval {}: no range is shorter than {}.",
        window_name(opts.scrape_interval),
        window_name(min)
    );
    if config.slos.is_empty() {
        let _ = writeln!(out, "groups: []");
        return Ok(Generated {
            text: out,
            warnings,
        });
    }
    let _ = writeln!(out, "groups:");
    for slo in &config.slos {
        let budget = ratio(slo.spec.objective.budget());
        let period = nominal_period(slo);
        let p = window_name(opts.range(period));
        let _ = writeln!(
            out,
            "  - name: {}",
            q(&format!("vantage-slo-sli-recordings-{}", slo.name))
        );
        let _ = writeln!(out, "    rules:");
        for (name, w) in vantage_slo::WINDOWS {
            if w < min {
                let line = format!(
                    "SLO {}: the {name} window is recorded over {} (4 × scrape interval {})",
                    slo.name,
                    window_name(min),
                    window_name(opts.scrape_interval)
                );
                let _ = writeln!(out, "      # {line}.");
                warnings.push(line);
            }
        }
        for w in windows(slo, opts) {
            match error_expr(slo, w) {
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
        let current = window_name(opts.range(vantage_slo::WINDOWS[0].1));
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
            ("slo:current_burn_rate:ratio", format!("slo:sli_error:ratio_rate{current}{sel} / on(slo) group_left slo:error_budget:ratio{sel}")),
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
                for (which, w) in [("long", pair.long), ("short", pair.short)] {
                    if w < min {
                        let line = format!(
                            "SLO {}: the {} pair {}/{} has its {which} window {} widened to {} (4 × scrape interval {}): a shorter range holds too few samples to ever fire",
                            slo.name,
                            pair.severity,
                            window_name(pair.long),
                            window_name(pair.short),
                            window_name(w),
                            window_name(min),
                            window_name(opts.scrape_interval)
                        );
                        let _ = writeln!(out, "      # {line}.");
                        warnings.push(line);
                    }
                }
            }
            let mut severities: Vec<&str> = slo
                .spec
                .alerts
                .iter()
                .map(|a| a.severity.as_str())
                .collect();
            // The daemon's order: sorted, one alert each.
            severities.sort_unstable();
            severities.dedup();
            for severity in severities {
                alert_rule(&mut out, slo, severity, opts);
            }
        }
    }
    if errors.is_empty() {
        Ok(Generated {
            text: out,
            warnings,
        })
    } else {
        Err(errors)
    }
}
