//! Check-mode reports: text for people, JSON for programs, JUnit for CI dashboards, and GitHub
//! workflow annotations. All four are rendered from the same redacted results, so they agree.

use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, Event};
use quick_xml::Writer;
use serde::Serialize;
use vantage_probes::{Outcome, Phases};

use vantage_probes::http::ms;

use crate::cli::check::{RunResult, SloResult};

/// Output formats of `vantage check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Junit,
}

/// The results of one check.
pub struct Report {
    pub results: Vec<RunResult>,
    /// SLOs judged over the runs (with `--runs` > 1).
    pub slos: Vec<SloResult>,
    /// More than one run per probe: name runs as `probe#n`.
    pub multi_run: bool,
    /// Unix seconds when the check ended: certificate expiry is described from here.
    pub now: i64,
}

impl Report {
    pub fn passed(&self) -> usize {
        self.results.iter().filter(|r| r.outcome.success()).count()
    }

    pub fn failed(&self) -> usize {
        self.results.len() - self.passed()
    }

    fn label(&self, r: &RunResult) -> String {
        if self.multi_run {
            format!("{}#{}", r.name, r.run)
        } else {
            r.name.clone()
        }
    }

    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Text => self.text(),
            Format::Json => self.json(),
            Format::Junit => self.junit(),
        }
    }

    /// One block per run, then `N passed, N failed`.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let width = self
            .results
            .iter()
            .map(|r| self.label(r).len())
            .max()
            .unwrap_or(0);
        for r in &self.results {
            let o = &r.outcome;
            let verdict = if o.success() { "PASS" } else { "FAIL" };
            let _ = write!(
                out,
                "{verdict}  {:width$}  {:4}  {:>9}  ",
                self.label(r),
                r.kind.as_str(),
                ms(o.duration),
            );
            match o.reason {
                Some(reason) => {
                    let _ = writeln!(out, "{reason}: {}", o.evidence);
                }
                None => {
                    let _ = writeln!(out, "{}", o.evidence);
                }
            }
            for line in details(o, self.now) {
                let _ = writeln!(out, "      {line}");
            }
        }
        for s in &self.slos {
            let _ = writeln!(
                out,
                "SLO   {}: {} of {} {} good ({:.3}%), objective {}%{}: {}",
                s.name,
                s.good,
                s.total,
                if s.budgeting == "timeslices" {
                    "slices"
                } else {
                    "runs"
                },
                s.sli.unwrap_or(0.0) * 100.0,
                s.objective,
                s.percentile_seconds
                    .map(|p| format!(", percentile {}", ms(Duration::from_secs_f64(p))))
                    .unwrap_or_default(),
                match (s.judged, s.met) {
                    (false, _) => format!(
                        "met (not judged: fewer than min_events {})",
                        s.min_events.max(1)
                    ),
                    (true, true) => "met".to_string(),
                    (true, false) => "NOT MET".to_string(),
                }
            );
        }
        let _ = writeln!(out, "{} passed, {} failed", self.passed(), self.failed());
        out
    }

    /// The JSON document of SPEC §1.
    pub fn json(&self) -> String {
        #[derive(Serialize)]
        struct Doc<'a> {
            passed: usize,
            failed: usize,
            probes: Vec<ProbeDoc<'a>>,
            slos: &'a [SloResult],
        }
        #[derive(Serialize)]
        struct ProbeDoc<'a> {
            name: &'a str,
            kind: &'a str,
            target: &'a str,
            run: u32,
            success: bool,
            reason: Option<&'a str>,
            duration_seconds: f64,
            phases: &'a Phases,
            evidence: &'a str,
            facts: &'a vantage_probes::Facts,
        }
        let doc = Doc {
            passed: self.passed(),
            failed: self.failed(),
            probes: self
                .results
                .iter()
                .map(|r| ProbeDoc {
                    name: &r.name,
                    kind: r.kind.as_str(),
                    target: &r.target,
                    run: r.run,
                    success: r.outcome.success(),
                    reason: r.outcome.reason.map(|x| x.as_str()),
                    duration_seconds: r.outcome.duration.as_secs_f64(),
                    phases: &r.outcome.phases,
                    evidence: &r.outcome.evidence,
                    facts: &r.outcome.facts,
                })
                .collect(),
            slos: &self.slos,
        };
        let mut s = serde_json::to_string_pretty(&doc)
            .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
        s.push('\n');
        s
    }

    /// One `<testsuite>`, one `<testcase>` per run; failures carry reason, evidence and phases.
    pub fn junit(&self) -> String {
        let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
        let total: Duration = self.results.iter().map(|r| r.outcome.duration).sum();
        let tests = self.results.len().to_string();
        let failures = self.failed().to_string();
        let time = format!("{:.6}", total.as_secs_f64());
        let _ = w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)));
        let suite = BytesStart::new("testsuite").with_attributes([
            ("name", "vantage"),
            ("tests", tests.as_str()),
            ("failures", failures.as_str()),
            ("errors", "0"),
            ("skipped", "0"),
            ("time", time.as_str()),
        ]);
        let _ = w.write_event(Event::Start(suite));
        for r in &self.results {
            let name = self.label(r);
            let classname = format!("vantage.{}", r.kind.as_str());
            let time = format!("{:.6}", r.outcome.duration.as_secs_f64());
            let case = BytesStart::new("testcase").with_attributes([
                ("name", name.as_str()),
                ("classname", classname.as_str()),
                ("time", time.as_str()),
            ]);
            match r.outcome.reason {
                None => {
                    let _ = w.write_event(Event::Empty(case));
                }
                Some(reason) => {
                    let _ = w.write_event(Event::Start(case));
                    let message = format!(
                        "{reason}: {} ({})",
                        r.outcome.evidence,
                        phases_line(&r.outcome.phases)
                    );
                    let failure = BytesStart::new("failure").with_attributes([
                        ("message", message.as_str()),
                        ("type", reason.as_str()),
                    ]);
                    let body = format!(
                        "target: {}\n{}",
                        r.target,
                        details(&r.outcome, self.now).join("\n")
                    );
                    let _ = w.write_event(Event::Start(failure));
                    let _ = w.write_event(Event::Text(quick_xml::events::BytesText::new(&body)));
                    let _ = w.write_event(Event::End(BytesEnd::new("failure")));
                    let _ = w.write_event(Event::End(BytesEnd::new("testcase")));
                }
            }
        }
        let _ = w.write_event(Event::End(BytesEnd::new("testsuite")));
        let mut s = String::from_utf8_lossy(&w.into_inner()).into_owned();
        s.push('\n');
        s
    }

    /// `::error title=…::…` lines for GitHub Actions, one per failed run.
    pub fn github_annotations(&self) -> String {
        let mut out = String::new();
        for r in self.results.iter().filter(|r| !r.outcome.success()) {
            let reason = r.outcome.reason.map(|x| x.as_str()).unwrap_or("failure");
            let title = format!("vantage: probe {} failed ({reason})", self.label(r));
            let _ = writeln!(
                out,
                "::error title={}::{}",
                escape_property(&title),
                escape_data(&format!("{}: {}", r.target, r.outcome.evidence))
            );
        }
        out
    }
}

/// Workflow command data: `%`, CR and LF are encoded.
fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Workflow command properties also encode `:` and `,`.
fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

pub fn phases_line(p: &Phases) -> String {
    Phases::NAMES
        .iter()
        .zip(p.as_array())
        .map(|(n, d)| format!("{n} {}", ms(d)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn date(unix: i64) -> String {
    match u64::try_from(unix) {
        Ok(secs) => {
            humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
        }
        Err(_) => format!("{unix} (before 1970)"),
    }
}

/// The indented lines under a run: phases, HTTP facts, certificate facts, health checks.
pub fn details(o: &Outcome, now: i64) -> Vec<String> {
    let mut lines = vec![format!("phases: {}", phases_line(&o.phases))];
    let f = &o.facts;
    if let Some((h, status)) = f.http_facts().and_then(|h| Some((h, h.status?))) {
        let mut s = format!("http: status {status}");
        if let Some(v) = &h.version {
            let _ = write!(s, ", HTTP/{v}");
        }
        if let Some(len) = h.content_length {
            let _ = write!(s, ", {len} bytes");
        }
        if h.redirects > 0 {
            let _ = write!(s, ", {} redirects", h.redirects);
        }
        lines.push(s);
    }
    if let Some(tls) = f.tls() {
        lines.push(format!(
            "tls: TLS {} {}, verify {}{}",
            tls.version,
            tls.cipher,
            tls.verify_result,
            tls.verify_detail
                .as_deref()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default()
        ));
        if let Some(leaf) = tls.chain.first() {
            lines.push(format!(
                "certificate: {}, issued by {}, SANs [{}], serial {}, sha256 {}",
                leaf.subject,
                leaf.issuer,
                leaf.sans.join(", "),
                leaf.serial,
                leaf.fingerprint_sha256
            ));
        }
        lines.push(format!(
            "expiry: {} (effective {}, leaf {}, earliest presented {}{})",
            vantage_probes::tls::describe_expiry(tls, now),
            date(tls.effective_not_after),
            date(tls.leaf_not_after),
            date(tls.earliest_not_after),
            tls.verified_chain_not_after
                .map(|t| format!(", verified chain {}", date(t)))
                .unwrap_or_default()
        ));
    }
    for st in f.steps() {
        lines.push(format!(
            "step {}: {}{}, {}, {} attempt{}",
            st.name,
            st.reason.map(|r| r.as_str()).unwrap_or("ok"),
            st.status
                .map(|s| format!(", status {s}"))
                .unwrap_or_default(),
            ms(st.duration),
            st.attempts,
            if st.attempts == 1 { "" } else { "s" }
        ));
    }
    if let Some(h) = f.health() {
        let checks: Vec<String> = h
            .checks
            .iter()
            .map(|c| format!("{} {}", c.name, c.status))
            .collect();
        lines.push(format!("health: {} [{}]", h.status, checks.join(", ")));
    }
    lines.extend(kind_lines(f));
    lines
}

/// Facts of the kinds tcp, dns, icmp and grpc.
fn kind_lines(f: &vantage_probes::Facts) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(t) = &f.tcp() {
        lines.push(format!(
            "tcp: {} step(s) done{}{}",
            t.steps_done,
            if t.starttls { ", STARTTLS" } else { "" },
            if t.last_received.is_empty() {
                String::new()
            } else {
                format!(", last received {:?}", t.last_received)
            }
        ));
    }
    if let Some(d) = &f.dns() {
        lines.push(format!(
            "dns: rcode {} over {}{}, {} answer, {} authority, {} additional{}",
            if d.rcode.is_empty() { "none" } else { &d.rcode },
            if d.transport.is_empty() {
                "-"
            } else {
                &d.transport
            },
            if d.retried_over_tcp {
                " (retried after TC)"
            } else {
                ""
            },
            d.answer.len(),
            d.authority.len(),
            d.additional.len(),
            d.serial
                .map(|s| format!(", serial {s}"))
                .unwrap_or_default()
        ));
        for r in d.answer.iter().take(10) {
            lines.push(format!("answer: {r}"));
        }
    }
    if let Some(i) = &f.icmp() {
        lines.push(format!(
            "icmp: {} socket{}{}",
            if i.socket.is_empty() { "no" } else { &i.socket },
            i.rtt_seconds
                .map(|r| format!(", rtt {:.3} ms", r * 1000.0))
                .unwrap_or_default(),
            i.hop_limit
                .map(|h| format!(", hop limit {h}"))
                .unwrap_or_default()
        ));
    }
    if let Some(g) = &f.grpc() {
        lines.push(format!(
            "grpc: status {}, serving {}{}",
            g.status_code.map_or("none".to_string(), |c| c.to_string()),
            g.serving_status.as_deref().unwrap_or("unknown"),
            if g.ssl { ", TLS" } else { "" }
        ));
    }
    lines
}

/// The `vantage probe` output: what was probed, the verdict, and every detail.
pub fn describe(kind: &str, target: &str, o: &Outcome, now: i64) -> String {
    let mut out = format!("{kind} {target}\n");
    let verdict = match o.reason {
        None => format!("success: {}", o.evidence),
        Some(r) => format!("failure ({r}): {}", o.evidence),
    };
    let _ = writeln!(out, "  result: {verdict}");
    let _ = writeln!(out, "  duration: {}", ms(o.duration));
    for line in details(o, now) {
        let _ = writeln!(out, "  {line}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotation_escaping() {
        assert_eq!(escape_data("a%b\nc"), "a%25b%0Ac");
        assert_eq!(escape_property("t: a,b"), "t%3A a%2Cb");
    }
}
