//! Cardinality discipline (issue 17): a default HTTP probe costs at most 30 series on
//! `/metrics`; the per-phase histograms and the quantile summary are opt-in.

use std::collections::BTreeMap;
use std::time::Duration;

use vantage_probes::exposition;

use crate::daemon::start_daemon;
use crate::fixtures::http_target;

/// Series on `/metrics` per `probe` label, and the families each probe has.
fn per_probe(body: &str) -> BTreeMap<String, (usize, Vec<String>)> {
    let mut out: BTreeMap<String, (usize, Vec<String>)> = BTreeMap::new();
    for s in exposition::parse(body).expect("/metrics parses") {
        let Some((_, probe)) = s.labels.iter().find(|(k, _)| k == "probe") else {
            continue;
        };
        let e = out.entry(probe.clone()).or_default();
        e.0 += 1;
        if !e.1.contains(&s.name) {
            e.1.push(s.name.clone());
        }
    }
    out
}

fn probe(name: &str, url: &str, extra: &str) -> String {
    format!("[[probe]]\nname = \"{name}\"\nkind = \"http\"\nurl = \"{url}\"\ninterval = \"1s\"\ntimeout = \"900ms\"\n{extra}\n")
}

#[tokio::test(start_paused = true)]
async fn default_http_probe_costs_at_most_30_series_and_opt_ins_add_families() {
    let t = http_target().await;
    let mut cfg = probe("plain", &t.url("/ok"), "");
    cfg += &probe(
        "failing",
        &t.url("/status/503"),
        "[probe.expect]\nstatus = [200]",
    );
    cfg += &probe(
        "phases",
        &t.url("/ok"),
        "metrics = { phase_histograms = true }",
    );
    cfg += &probe("quantiles", &t.url("/ok"), "metrics = { quantiles = true }");
    let d = start_daemon(&cfg).await;

    // Bounded wait until every probe has run at least twice.
    let mut body = String::new();
    for _ in 0..100 {
        let (status, b) = d.get("/metrics").await;
        assert_eq!(status, 200);
        body = b;
        let runs = |p: &str| {
            exposition::parse(&body)
                .unwrap()
                .into_iter()
                .filter(|s| {
                    s.name == "probe_latency_seconds_count"
                        && s.labels.iter().any(|(k, v)| k == "probe" && v == p)
                })
                .map(|s| s.value)
                .next()
                .unwrap_or(0.0)
        };
        if ["plain", "failing", "phases", "quantiles"]
            .iter()
            .all(|p| runs(p) >= 2.0)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let series = per_probe(&body);
    let count = |p: &str| series.get(p).map(|s| s.0).unwrap_or(0);
    let has = |p: &str, family: &str| {
        series
            .get(p)
            .is_some_and(|s| s.1.iter().any(|f| f == family))
    };

    for p in ["plain", "failing"] {
        assert!(has(p, "probe_success"), "{p} has run: {body}");
        assert!(
            has(p, "probe_latency_seconds_bucket"),
            "{p} keeps its latency histogram"
        );
        assert!(
            has(p, "probe_http_duration_seconds"),
            "{p} keeps the last-run gauges"
        );
        assert!(
            !has(p, "probe_phase_latency_seconds_bucket"),
            "{p}: phase histograms are opt-in"
        );
        assert!(
            !has(p, "probe_latency_quantile_seconds"),
            "{p}: quantiles are opt-in"
        );
        assert!(
            count(p) <= 30,
            "{p} costs {} series: {:?}",
            count(p),
            series[p]
        );
    }
    assert!(has("failing", "probe_failures_total"));

    // Opting in adds exactly the family asked for: 5 phases × (8 buckets + +Inf + sum + count).
    assert!(has("phases", "probe_phase_latency_seconds_bucket"));
    assert!(!has("phases", "probe_latency_quantile_seconds"));
    assert_eq!(count("phases"), count("plain") + 55);
    assert!(has("quantiles", "probe_latency_quantile_seconds"));
    assert!(has("quantiles", "probe_latency_quantile_seconds_count"));
    assert!(!has("quantiles", "probe_phase_latency_seconds_bucket"));
    assert!(count("quantiles") > count("plain"));
}

#[tokio::test]
async fn metrics_settings_of_the_wrong_shape_are_config_errors() {
    for (cfg, want) in [
        ("[metrics]\nphase_histograms = \"yes\"\n", "expected a boolean"),
        ("[metrics]\nbuckets = 3\n", "buckets"),
        ("metrics = 1\n", "invalid type"),
        (
            "[[probe]]\nname = \"a\"\nkind = \"http\"\nurl = \"http://127.0.0.1:1/\"\nmetrics = { quantile = true }\n",
            "quantile",
        ),
    ] {
        let written = crate::support::write_config(cfg);
        let err = crate::support::load_in(&written.path, &[])
            .expect_err(cfg)
            .to_string();
        assert!(err.contains(want), "{cfg}: {err}");
    }
}

// Real time, on purpose: this test reuses one client's connection, which Prometheus does too.
// Under paused time the second request on a kept-alive connection saw the clock jump 10 s (the
// client's timeout) while the runtime sat idle waiting on loopback I/O and the blocking render;
// the cause inside tokio's auto-advance was not pinned down. Real time is what production runs.
#[tokio::test]
async fn metrics_are_gzipped_when_asked_and_the_same_text() {
    use std::io::Read as _;
    let t = http_target().await;
    let d = start_daemon(&probe("plain", &t.url("/ok"), "")).await;
    let client = vantage::alerting::notify::http_client();
    let fetch = |enc: Option<&'static str>| {
        let mut req = client.get(d.url("/metrics"));
        if let Some(enc) = enc {
            req = req.header("accept-encoding", enc);
        }
        req.send()
    };
    // Bounded wait for the first run, so both bodies hold the probe's series.
    for _ in 0..50 {
        let (_, body) = d.get("/metrics").await;
        if body.contains("probe_success{") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let zipped = fetch(Some("gzip, deflate, br")).await.unwrap();
    assert_eq!(zipped.status(), 200);
    assert_eq!(zipped.headers()["content-encoding"], "gzip");
    assert_eq!(zipped.headers()["vary"], "accept-encoding");
    assert!(zipped.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let bytes = zipped.bytes().await.unwrap();
    let mut text = String::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_string(&mut text)
        .expect("a gzip stream");
    let families = |body: &str| -> Vec<String> {
        let mut names: Vec<String> = exposition::parse(body)
            .unwrap()
            .into_iter()
            .map(|s| s.name)
            .collect();
        names.dedup();
        names
    };
    assert!(families(&text).iter().any(|f| f == "probe_success"));

    for enc in [None, Some("identity"), Some("gzip;q=0"), Some("gzip;q=x")] {
        let plain = fetch(enc).await.unwrap();
        assert!(
            plain.headers().get("content-encoding").is_none(),
            "{enc:?} is not gzip"
        );
        let body = plain.text().await.unwrap();
        assert_eq!(families(&body), families(&text), "{enc:?}");
    }
}
