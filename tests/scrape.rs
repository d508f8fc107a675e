//! End-to-end flows against a fake scraping API on loopback.

use std::time::Duration;

use vantage_probes::Reason;

use crate::fixtures::scrape_api;
use crate::support::{load_in, outcome, run_all, write_config};

const TOKEN: &str = "sk-flow-SECRET-9931";

fn flow(base: &str, name: &str, token_var: &str, result_expect: &str, timeout: &str) -> String {
    format!(
        r#"
[[probe]]
name = "{name}"
kind = "scrape"
timeout = "{timeout}"
interval = "1m"

[[probe.step]]
name = "submit"
method = "POST"
url = "{base}/v1/scrape"
headers = {{ Authorization = "Bearer ${{{token_var}}}" }}
json = {{ url = "https://example.com", engine = "http" }}
expect = {{ status = [202] }}
capture = {{ job_id = {{ json = "$.id" }} }}

[[probe.step]]
name = "wait"
url = "{base}/v1/jobs/{{{{ job_id }}}}"
until = {{ json = [{{ path = "$.status", equals = "completed" }}] }}
poll_interval = "100ms"

[[probe.step]]
name = "result"
url = "{base}/v1/jobs/{{{{ job_id }}}}/result"
expect = {{ css = [{{ selector = "h1.title", text = "Example Domain" }}, {{ selector = "li.item", count = {result_expect} }}] }}
"#
    )
}

async fn run(cfg: &str) -> Vec<(String, vantage_probes::Outcome)> {
    let c = write_config(cfg);
    let config = load_in(
        &c.path,
        &[
            ("SCRAPER_TOKEN", TOKEN),
            ("WRONG_TOKEN", "sk-wrong-token-0000"),
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    run_all(config).await
}

#[tokio::test]
async fn the_whole_flow_and_its_failures() {
    let api = scrape_api(TOKEN).await;
    let base = format!("http://{}", api.target.addr);
    let cfg = flow(&base, "ok", "SCRAPER_TOKEN", "3", "10s")
        + &flow(&base, "bad-token", "WRONG_TOKEN", "3", "10s")
        + &flow(&base, "bad-count", "SCRAPER_TOKEN", "4", "10s");
    let all = run(&cfg).await;

    let o = outcome(&all, "ok");
    assert!(o.success(), "{o:#?}");
    let steps: Vec<&str> = o.facts.steps().iter().map(|s| s.name.as_str()).collect();
    assert_eq!(steps, ["submit", "wait", "result"]);
    assert_eq!(
        o.facts.steps()[1].attempts,
        3,
        "running twice, then completed"
    );
    assert!(o
        .facts
        .steps()
        .iter()
        .all(|s| s.success && s.duration > Duration::ZERO));
    assert_eq!(o.facts.steps()[0].status, Some(202));

    let o = outcome(&all, "bad-token");
    assert_eq!(o.reason, Some(Reason::StepFailed));
    assert!(
        o.evidence
            .starts_with("step submit: http_status: status 401"),
        "{}",
        o.evidence
    );
    assert_eq!(o.facts.steps().len(), 1);

    let o = outcome(&all, "bad-count");
    assert_eq!(o.reason, Some(Reason::StepFailed));
    assert!(
        o.evidence
            .starts_with("step result: assertion_css: css li.item: 3 elements, expected 4"),
        "{}",
        o.evidence
    );
    assert!(!o.evidence.contains(TOKEN));
}

#[tokio::test]
async fn metrics_steps() {
    let api = scrape_api(TOKEN).await;
    let base = format!("http://{}", api.target.addr);
    let metrics = |name: &str, path: &str| {
        format!(
            "[[probe]]\nname = \"{name}\"\nkind = \"scrape\"\ntimeout = \"5s\"\n[[probe.step]]\nname = \"queue-depth\"\nurl = \"{base}{path}\"\nexpect = {{ metrics = [{{ series = 'queue_size{{queue_name=\"scrape:http\"}}', lt = 10000 }}] }}\n"
        )
    };
    let all = run(&metrics("low", "/metrics")).await;
    assert!(
        outcome(&all, "low").success(),
        "{:#?}",
        outcome(&all, "low")
    );
    api.queue.store(20_000, std::sync::atomic::Ordering::SeqCst);
    let all = run(&(metrics("high", "/metrics") + &metrics("garbage", "/garbage-metrics"))).await;
    let o = outcome(&all, "high");
    assert_eq!(o.reason, Some(Reason::StepFailed));
    assert!(o.evidence.contains("assertion_metrics: metrics queue_size{queue_name=\"scrape:http\"} = 20000, expected < 10000"), "{}", o.evidence);
    let o = outcome(&all, "garbage");
    assert_eq!(o.reason, Some(Reason::StepFailed));
    assert!(
        o.evidence.contains("not Prometheus text exposition"),
        "{}",
        o.evidence
    );
}

#[tokio::test(start_paused = true)]
async fn until_never_holding_ends_at_the_timeout() {
    let api = scrape_api(TOKEN).await;
    let base = format!("http://{}", api.target.addr);
    let cfg = flow(&base, "stuck", "SCRAPER_TOKEN", "3", "2s")
        .replace("{{ job_id }}\"\nuntil", "stuck\"\nuntil");
    let started = std::time::Instant::now();
    let all = run(&cfg).await;
    let o = outcome(&all, "stuck");
    assert_eq!(o.reason, Some(Reason::StepFailed), "{o:#?}");
    assert!(
        o.evidence.starts_with("step wait: timeout"),
        "{}",
        o.evidence
    );
    assert!(
        o.evidence.contains("status"),
        "names the last unmet condition: {}",
        o.evidence
    );
    assert!(
        o.duration >= Duration::from_secs(2) && o.duration < Duration::from_millis(2600),
        "{:?}",
        o.duration
    );
    assert!(started.elapsed() < Duration::from_secs(4));
    let wait = o.facts.steps().iter().find(|s| s.name == "wait").unwrap();
    assert!(wait.attempts >= 5, "{wait:?}");
}

#[tokio::test]
async fn missing_capture_and_hostile_responses() {
    let api = scrape_api(TOKEN).await;
    let base = format!("http://{}", api.target.addr);
    let step = |name: &str, extra: &str| {
        format!("[[probe]]\nname = \"{name}\"\nkind = \"scrape\"\ntimeout = \"5s\"\nmax_body = \"1MiB\"\n{extra}\n")
    };
    let cfg = step(
        "no-capture",
        &format!("[[probe.step]]\nname = \"submit\"\nmethod = \"POST\"\nurl = \"{base}/v1/scrape\"\nheaders = {{ Authorization = \"Bearer ${{SCRAPER_TOKEN}}\" }}\ncapture = {{ job_id = {{ json = \"$.nope\" }} }}\n"),
    ) + &step("huge", &format!("[[probe.step]]\nname = \"big\"\nurl = \"{base}/huge\"\n"))
        + &step(
            "broken-html",
            &format!("[[probe.step]]\nname = \"page\"\nurl = \"{base}/invalid-html\"\nexpect = {{ css = [{{ selector = \"li.item\", count = 1 }}, {{ selector = \"h1.title\", matches = \"^Broken\" }}] }}\n"),
        );
    let all = run(&cfg).await;
    let o = outcome(&all, "no-capture");
    assert_eq!(o.reason, Some(Reason::CaptureMissing), "{o:#?}");
    assert!(
        o.evidence.contains(
            "step submit: capture_missing: capture job_id: JSONPath $.nope matched nothing"
        ),
        "{}",
        o.evidence
    );
    let o = outcome(&all, "huge");
    assert_eq!(o.reason, Some(Reason::StepFailed));
    assert!(
        o.evidence.starts_with("step big: body_too_large"),
        "{}",
        o.evidence
    );
    // Invalid HTML is parsed the way browsers recover it: the assertions judge what is there.
    let o = outcome(&all, "broken-html");
    assert!(o.success(), "{o:#?}");
}

#[test]
fn flow_config_problems() {
    let cfg = write_config(
        "[[probe]]\nname = \"f\"\nkind = \"scrape\"\n[[probe.step]]\nname = \"one\"\nurl = \"http://x.invalid/{{ later }}\"\n[[probe.step]]\nname = \"two\"\nurl = \"http://x.invalid/\"\ncapture = { later = { json = \"$.id\", header = \"x\" } }\nexpect = { css = [{ selector = \"h1[\", text = \"x\" }], metrics = [{ series = 'q{a=b}', lt = 1 }] }\n[[probe]]\nname = \"g\"\nkind = \"scrape\"\n",
    );
    let err = load_in(&cfg.path, &[]).unwrap_err().to_string();
    for needle in [
        "capture \"later\" is used before it is defined (step \"one\")",
        "a capture takes exactly one of: json, header, regex, css",
        "invalid CSS selector \"h1[\"",
        "invalid series selector",
        "needs at least one [[probe.step]]",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
}
