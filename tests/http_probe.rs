//! The HTTP probe against well-behaved and hostile loopback targets.

use std::time::{Duration, Instant};

use vantage_probes::Reason;

use crate::fixtures::{closed_port, garbage_target, http_target};
use crate::support::{load, outcome, run_all};

fn probe(name: &str, url: &str, extra: &str) -> String {
    format!("[[probe]]\nname = \"{name}\"\nkind = \"http\"\nurl = \"{url}\"\ntimeout = \"1s\"\ninterval = \"1m\"\n{extra}\n")
}

#[tokio::test]
async fn outcomes_for_every_behaviour() {
    let t = http_target().await;
    let garbage = garbage_target().await;
    let refused = closed_port().await;
    let mut cfg = String::new();
    cfg += &probe(
        "ok",
        &t.url("/ok"),
        "[probe.expect]\nstatus = [200]\nbody_contains = [\"healthy\"]",
    );
    cfg += &probe(
        "unavailable",
        &t.url("/status/503"),
        "[probe.expect]\nstatus = [200]",
    );
    cfg += &probe("redirected", &t.url("/redirect/3"), "");
    cfg += &probe("redirect-loop", &t.url("/loop"), "max_redirects = 5");
    cfg += &probe(
        "no-follow",
        &t.url("/redirect/1"),
        "follow_redirects = false\n[probe.expect]\nstatus = [302]",
    );
    cfg += &probe("too-big", &t.url("/big"), "max_body = \"1MiB\"");
    cfg += &probe(
        "too-big-chunked",
        &t.url("/big-chunked"),
        "max_body = \"1MiB\"",
    );
    cfg += &probe("hang", &t.url("/hang"), "");
    cfg += &probe("drip", &t.url("/drip"), "");
    cfg += &probe("endless-headers", &t.url("/endless-headers"), "");
    cfg += &probe(
        "regex-miss",
        &t.url("/ok"),
        "[probe.expect]\nbody_regex = ['^maintenance']",
    );
    cfg += &probe(
        "not-regex-hit",
        &t.url("/ok"),
        "[probe.expect]\nbody_not_regex = ['healthy']",
    );
    cfg += &probe("json-ok", &t.url("/json"), "[probe.expect]\njson = [{ path = \"$.status\", equals = \"healthy\" }, { path = \"$.n\", lt = 5 }]");
    cfg += &probe(
        "json-miss",
        &t.url("/json"),
        "[probe.expect]\njson = [{ path = \"$.status\", equals = \"down\" }]",
    );
    cfg += &probe(
        "json-not-json",
        &t.url("/ok"),
        "[probe.expect]\njson = [{ path = \"$.status\", exists = true }]",
    );
    cfg += &probe(
        "header-ok",
        &t.url("/json"),
        "[probe.expect]\nheaders = { \"Content-Type\" = \"^application/json\" }",
    );
    cfg += &probe(
        "header-miss",
        &t.url("/ok"),
        "[probe.expect]\nheaders = { \"content-type\" = \"^application/json\" }",
    );
    cfg += &probe(
        "header-absent",
        &t.url("/ok"),
        "[probe.expect]\nheaders = { \"x-missing\" = \".\" }",
    );
    cfg += &probe(
        "slow",
        &t.url("/delay/300"),
        "[probe.expect]\nlatency_under = \"100ms\"",
    );
    cfg += &probe(
        "degraded",
        &t.url("/health/degraded"),
        "[probe.expect]\nhealth = true",
    );
    cfg += &probe(
        "unhealthy",
        &t.url("/health/unhealthy"),
        "[probe.expect]\nhealth = true",
    );
    cfg += &probe(
        "health-not-doc",
        &t.url("/ok"),
        "[probe.expect]\nhealth = true",
    );
    cfg += &probe("refused", &format!("http://{refused}/"), "");
    cfg += &probe("garbage", &format!("http://{}/", garbage.addr), "");

    let started = Instant::now();
    let all = run_all(load(&cfg)).await;
    // Everything ran in parallel, each bounded by its 1 s timeout.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );

    let expect = |name: &str, reason: Option<Reason>, evidence: &str| {
        let o = outcome(&all, name);
        assert_eq!(o.reason, reason, "{name}: {o:#?}");
        assert_eq!(o.success(), reason.is_none(), "{name}");
        assert!(
            o.evidence.contains(evidence),
            "{name}: evidence {:?} lacks {evidence:?}",
            o.evidence
        );
        assert!(
            o.duration < Duration::from_millis(1500),
            "{name} took {:?}",
            o.duration
        );
        o
    };
    expect("ok", None, "status 200");
    expect(
        "unavailable",
        Some(Reason::HttpStatus),
        "status 503, expected 200",
    );
    let r = expect("redirected", None, "status 200");
    assert_eq!(r.facts.http_facts().unwrap().redirects, 3);
    expect(
        "redirect-loop",
        Some(Reason::RedirectLimit),
        "more than 5 redirects",
    );
    expect("no-follow", None, "status 302");
    expect("too-big", Some(Reason::BodyTooLarge), "exceeds max_body");
    expect(
        "too-big-chunked",
        Some(Reason::BodyTooLarge),
        "exceeds max_body",
    );
    expect(
        "hang",
        Some(Reason::Timeout),
        "timeout after 1s waiting for the first byte (processing)",
    );
    expect(
        "drip",
        Some(Reason::Timeout),
        "timeout after 1s waiting for",
    );
    expect("endless-headers", Some(Reason::Protocol), "too large");
    let r = expect(
        "regex-miss",
        Some(Reason::AssertionBody),
        "does not match /^maintenance/",
    );
    assert!(r.facts.failed_due_to_regex());
    expect(
        "not-regex-hit",
        Some(Reason::AssertionBody),
        "body matches /healthy/",
    );
    expect("json-ok", None, "status 200");
    expect(
        "json-miss",
        Some(Reason::AssertionJson),
        "$.status: got \"healthy\", expected equal to \"down\"",
    );
    expect(
        "json-not-json",
        Some(Reason::AssertionJson),
        "body is not JSON",
    );
    expect("header-ok", None, "status 200");
    expect(
        "header-miss",
        Some(Reason::AssertionHeader),
        "header content-type: \"text/plain\"",
    );
    expect(
        "header-absent",
        Some(Reason::AssertionHeader),
        "header x-missing: missing",
    );
    expect("slow", Some(Reason::Latency), "expected under 100.0ms");
    let d = expect("degraded", None, "status 200");
    let health = d.facts.health().unwrap();
    assert_eq!(health.status, "degraded");
    assert_eq!(health.checks[1].name, "cache");
    assert_eq!(health.checks[1].value(), 0.5);
    expect(
        "unhealthy",
        Some(Reason::AssertionHealth),
        "health status \"unhealthy\"",
    );
    expect(
        "health-not-doc",
        Some(Reason::AssertionHealth),
        "not a health document",
    );
    expect("refused", Some(Reason::Connect), "refused");
    expect("garbage", Some(Reason::Protocol), "malformed HTTP response");
}

#[tokio::test]
async fn unresolvable_host_fails_with_dns() {
    // Its own test with a longer timeout: how fast a failed lookup returns is the system
    // resolver's business.
    let cfg = "[[probe]]\nname = \"dns\"\nkind = \"http\"\nurl = \"http://does-not-exist.invalid/\"\ntimeout = \"20s\"\ninterval = \"1m\"\n";
    let all = run_all(load(cfg)).await;
    let o = outcome(&all, "dns");
    assert_eq!(o.reason, Some(Reason::Dns), "{o:#?}");
    assert!(o.evidence.contains("does-not-exist.invalid"));
}

#[tokio::test]
async fn forty_probes_run_in_parallel() {
    let t = http_target().await;
    let mut cfg = String::new();
    for i in 0..40 {
        cfg += &probe(&format!("p{i}"), &t.url("/delay/500"), "");
    }
    let started = Instant::now();
    let all = run_all(load(&cfg)).await;
    let took = started.elapsed();
    assert!(all.iter().all(|(_, o)| o.success()));
    // Sequentially this would be 20 s; in parallel it is one 500 ms round plus overhead.
    assert!(
        took < Duration::from_millis(2500),
        "40 probes took {took:?}"
    );
}

#[tokio::test]
async fn processing_phase_measures_server_delay() {
    let t = http_target().await;
    let all = run_all(load(&probe("late", &t.url("/delay/200"), ""))).await;
    let o = outcome(&all, "late");
    assert!(o.success(), "{o:#?}");
    let p = o.phases.processing;
    // The target sleeps exactly 200 ms between reading the request and answering. The upper
    // bound is loose on purpose: the precise figure is measured by benches, not asserted here.
    assert!(
        p >= Duration::from_millis(200) && p < Duration::from_millis(300),
        "processing {p:?}"
    );
    assert!(o.phases.connect < Duration::from_millis(100));
    assert!(o.duration >= p);
}

#[tokio::test]
async fn phases_are_summed_over_redirects() {
    let t = http_target().await;
    let all = run_all(load(&probe("r", &t.url("/redirect/2"), ""))).await;
    let o = outcome(&all, "r");
    assert!(o.success());
    assert_eq!(o.facts.http_facts().unwrap().redirects, 2);
    assert_eq!(o.facts.status(), Some(200));
    assert!(o.phases.processing > Duration::ZERO);
}

#[tokio::test]
async fn method_body_and_headers_are_sent() {
    let t = http_target().await;
    let cfg = probe(
        "echo",
        &t.url("/echo"),
        "method = \"post\"\njson = { a = 1 }\nheaders = { X-Custom = \"yes\" }\n[probe.expect]\nbody_regex = ['(?i)^POST /echo', '(?i)x-custom: yes', '(?i)content-type: application/json']",
    );
    let all = run_all(load(&cfg)).await;
    let o = outcome(&all, "echo");
    assert!(o.success(), "{o:#?}");
}

#[tokio::test]
async fn ip_family_is_honoured() {
    let t = http_target().await;
    let cfg = probe("v6", &format!("http://{}/ok", t.addr), "ip = \"ipv6\"");
    let all = run_all(load(&cfg)).await;
    let o = outcome(&all, "v6");
    assert_eq!(o.reason, Some(Reason::Dns), "{o:#?}");
    let cfg = probe("v4", &t.url("/ok"), "ip = \"ipv4\"");
    let all = run_all(load(&cfg)).await;
    assert_eq!(outcome(&all, "v4").facts.conn.ip_protocol, Some(4));
}

#[tokio::test]
async fn proxy_forwards_plain_http() {
    // The fixture answers absolute-form requests by path too, so it doubles as a proxy.
    let proxy = http_target().await;
    let cfg = probe(
        "via-proxy",
        "http://upstream.invalid/echo",
        &format!("proxy = \"http://user:pw@{}\"\n[probe.expect]\nbody_regex = ['GET http://upstream.invalid/echo', '(?i)proxy-authorization: Basic dXNlcjpwdw==']", proxy.addr),
    );
    let all = run_all(load(&cfg)).await;
    let o = outcome(&all, "via-proxy");
    assert!(o.success(), "{o:#?}");
}
