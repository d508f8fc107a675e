//! The status page: structure (HTML assertions), secrets, history across a restart, and a real
//! headless Chromium rendering the overview, a probe page and an SLO page.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::daemon::{start_daemon_at, start_daemon_in, Running};
use crate::fixtures::{http_target, https_target, Pki};
use crate::support::write_config;

const SECRET: &str = "s3cr3t-T0KEN-for-the-page";

fn probe(name: &str, url: &str, extra: &str) -> String {
    format!("[[probe]]\nname = \"{name}\"\nkind = \"http\"\nurl = \"{url}\"\ninterval = \"1s\"\ntimeout = \"900ms\"\n{extra}\n")
}

/// Rects of the given class in the first `<svg class="history"` after `after`.
fn cells(page: &str, class: &str) -> usize {
    let Some(start) = page.find("<svg class=\"history\"") else {
        return 0;
    };
    let end = page[start..]
        .find("</svg>")
        .map_or(page.len(), |e| start + e);
    page[start..end]
        .matches(&format!("<rect class=\"{class}\""))
        .count()
}

#[tokio::test]
async fn pages_show_history_charts_groups_and_no_secrets() {
    let t = http_target().await;
    let pki = Pki::new();
    let leaf = pki.leaf(&["localhost"], -1, 40);
    let tls = https_target(leaf.chain.clone(), leaf.key()).await;
    let text = probe("web", &t.url("/ok"), "labels = { team = \"web\" }")
        + &probe(
            "api",
            &format!("{}?token=${{TOKEN}}", t.url("/status/503")),
            "labels = { team = \"api\" }\n[probe.expect]\nstatus = [200]",
        )
        + &probe(
            "secure",
            &tls.https_url("/ok"),
            &format!(
                "tls = {{ ca = \"{}\", server_name = \"localhost\" }}\nlabels = {{ team = \"web\" }}",
                pki.ca_path().display()
            ),
        )
        + "[[slo]]\nname = \"web-availability\"\nprobes = [\"web\", \"api\"]\nobjective = 99\nmin_events = 1\n";
    let cfg = write_config(&text);
    let d = start_daemon_in(cfg, &[("TOKEN", SECRET)]).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let (status, page) = d.get("/").await;
    assert_eq!(status, 200);
    assert!(!page.contains(SECRET), "secret on the overview");
    for needle in [
        "<svg class=\"history\"",
        "<svg class=\"spark latency\"",
        "<svg class=\"spark budget\"",
        "<table class=\"probes\">",
        "<table class=\"slos\">",
        "href=\"probes/api\"",
        "href=\"slos/web-availability\"",
        "DOWN (http_status)",
        "prefers-color-scheme: dark",
        "name=\"viewport\"",
        "data-ok",
        "<noscript><meta http-equiv=\"refresh\"",
    ] {
        assert!(page.contains(needle), "overview lacks {needle}:\n{page}");
    }
    // No resource from elsewhere: the page works offline.
    for banned in ["src=\"http", "href=\"http", "@import", "url("] {
        assert!(!page.contains(banned), "overview loads {banned}");
    }
    assert!(cells(&page, "bad") + cells(&page, "ok") >= 2);
    // Uptime for every span, and the failing probe's last failure.
    assert!(page.contains("0.00%"), "api's uptime");
    assert!(page.contains("100.00%"), "web's uptime");
    assert!(page.contains("<b>http_status</b>"));

    // Grouping by a label, and the filter.
    let (_, grouped) = d.get("/?group=team").await;
    assert!(grouped.contains(">team=web <span class=\"muted\">2/2 up</span>"));
    assert!(grouped.contains(">team=api <span class=\"muted\">0/1 up</span>"));
    assert!(grouped.contains("<option value=\"team\" selected>"));
    let (_, filtered) = d.get("/?q=SECU").await;
    assert!(filtered.contains("data-probe=\"secure\""));
    assert!(!filtered.contains("data-probe=\"web\"") && !filtered.contains("data-probe=\"api\""));
    let (_, none) = d
        .get("/?q=%3Cscript%3Ealert(1)%3C/script%3E&group=%22%3E")
        .await;
    assert!(none.contains("No probe matches."));
    assert!(
        !none.contains("<script>alert(1)"),
        "the filter is echoed escaped"
    );
    assert!(none.contains("&lt;script&gt;alert(1)"));

    // The probe page: latency by phase, history, incidents, failures with evidence.
    let (status, p) = d.get("/probes/api").await;
    assert_eq!(status, 200);
    assert!(!p.contains(SECRET), "secret on the probe page");
    for needle in [
        "id=\"latency-chart\"",
        "class=\"ph3\"",
        "<svg class=\"history\"",
        "<table class=\"runs\">",
        "<table class=\"incidents\">",
        "<span class=\"badge down\">ongoing</span>",
        "class=\"card failure\"",
        "status 503",
        "uptime 30d",
        "href=\"../slos/web-availability\"",
    ] {
        assert!(p.contains(needle), "probe page lacks {needle}:\n{p}");
    }
    // The certificate section of the TLS probe.
    let (_, s) = d.get("/probes/secure").await;
    for needle in [
        "<h2>Certificate</h2>",
        "<table class=\"chain\">",
        "<span class=\"badge up\">ok</span>",
        "effective expiry",
    ] {
        assert!(s.contains(needle), "secure's page lacks {needle}:\n{s}");
    }
    assert!(s.contains("40 d") || s.contains("39 d"), "certificate days");

    // The SLO page: burn-down, SLI over time, each alert pair and why.
    let (status, slo) = d.get("/slos/web-availability").await;
    assert_eq!(status, 200);
    for needle in [
        "id=\"burndown\"",
        "id=\"sli-chart\"",
        "<svg class=\"burn\"",
        "<table class=\"alerts\">",
        "<tr class=\"pair\">",
        "objective 99%",
        "href=\"../probes/api\"",
    ] {
        assert!(slo.contains(needle), "SLO page lacks {needle}:\n{slo}");
    }
    assert!(
        slo.contains("firing:") || slo.contains("not firing:"),
        "explanations"
    );

    // Unknown names: a 404 page, the name escaped.
    let (status, nf) = d.get("/probes/%3Cimg%20src=x%3E").await;
    assert_eq!(status, 404);
    assert!(nf.contains("&lt;img src=x&gt;") && !nf.contains("<img src=x>"));
    let (status, _) = d.get("/slos/nope").await;
    assert_eq!(status, 404);
    d.stop().await;
}

/// Number of runs drawn on `/probes/{name}`.
async fn runs_on_page(d: &Running, name: &str) -> (usize, String) {
    let (_, page) = d.get(&format!("/probes/{name}")).await;
    (cells(&page, "ok") + cells(&page, "bad"), page)
}

fn first_incident_start(page: &str) -> Option<String> {
    let i = page.find("<tr class=\"incident\"><td>")?;
    let rest = &page[i + "<tr class=\"incident\"><td>".len()..];
    Some(rest[..rest.find("</td>")?].to_string())
}

#[tokio::test(start_paused = true)]
async fn history_survives_a_restart() {
    let t = http_target().await;
    let state = tempfile::tempdir().unwrap();
    let text = format!(
        "[state]\ndir = \"{}\"\nflush_interval = \"500ms\"\n",
        state.path().display()
    ) + &probe("good", &t.url("/ok"), "")
        + &probe(
            "bad",
            &t.url("/status/500"),
            "[probe.expect]\nstatus = [200]",
        )
        + "[[slo]]\nname = \"s\"\nprobes = [\"good\", \"bad\"]\nobjective = 99\n";
    // A known start on the second: the scheduler's grid, and so the number of runs each probe
    // has had, is the same on every run of the test.
    let clock = vantage::Clock::at(Duration::from_secs(1_800_000_000));
    let d = start_daemon_at(write_config(&text), clock).await;
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let (before, page) = runs_on_page(&d, "bad").await;
    let (good_before, _) = runs_on_page(&d, "good").await;
    let incident = first_incident_start(&page).expect("an incident before the restart");
    assert!(before >= 3, "{before} runs before the restart");
    d.stop().await;
    // The history has a file of its own, written at least once a minute and at shutdown.
    let file = std::fs::read_to_string(state.path().join("vantage-history.json")).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&file).unwrap();
    assert!(doc["probes"]["bad"]["runs"].as_str().unwrap().len() > 100);
    assert!(!doc["slos"]["s"]["fine"].as_str().unwrap().is_empty());

    let d = start_daemon_at(write_config(&text), clock).await;
    // Straight after the start, before a second run could happen.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (after, page) = runs_on_page(&d, "bad").await;
    assert!(
        after >= before,
        "{after} runs after the restart, {before} before"
    );
    assert_eq!(
        first_incident_start(&page).as_deref(),
        Some(incident.as_str())
    );
    let (_, overview) = d.get("/").await;
    assert!(overview.contains("0.00%") && overview.contains("100.00%"));
    d.stop().await;

    // A damaged history is dropped with the rest of the state intact; the daemon starts.
    let mut doc = doc;
    doc["probes"]["bad"]["runs"] = serde_json::json!("!!! not base64");
    doc["slos"]["s"]["fine"] = serde_json::json!("A".repeat(100_000));
    std::fs::write(
        state.path().join("vantage-history.json"),
        serde_json::to_vec(&doc).unwrap(),
    )
    .unwrap();
    let d = start_daemon_at(write_config(&text), clock).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, _) = d.get("/probes/bad").await;
    assert_eq!(status, 200);
    let (after, _) = runs_on_page(&d, "good").await;
    assert!(after >= before, "good's history is kept");
    assert!(
        after >= good_before,
        "{after} runs of good, {good_before} before"
    );
    d.stop().await;

    // A history file that is not JSON at all is moved aside; the SLO state still loads.
    std::fs::write(state.path().join("vantage-history.json"), b"\x00garbage{{{").unwrap();
    let d = start_daemon_at(write_config(&text), clock).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, _) = d.get("/probes/bad").await;
    assert_eq!(status, 200);
    let (_, slo) = d.get("/api/v1/slos/s").await;
    assert!(slo.contains("\"good\""), "{slo}");
    d.stop().await;
    let aside = std::fs::read_dir(state.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("vantage-history.json.bad-")
        });
    assert!(aside, "the broken history file is moved aside");
}

/// Chromium, run headless on `url`, bounded to 60 s. Returns (stdout, stderr).
async fn chromium(args: &[&str], url: &str, profile: &Path) -> (String, String) {
    let mut cmd = tokio::process::Command::new("/usr/bin/chromium");
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--enable-logging=stderr",
        "--v=0",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(args)
    .arg(url)
    .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("chromium finishes within 60 s")
        .expect("chromium runs");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn console_errors(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| {
            l.contains("CONSOLE")
                || l.contains("Uncaught")
                || l.contains("Refused to")
                || l.contains("net::ERR_")
        })
        .collect()
}

/// A page to render: name, path, what its DOM must hold, window size.
type Shot = (
    &'static str,
    &'static str,
    &'static [&'static str],
    (u32, u32),
);

#[tokio::test]
async fn pages_render_in_headless_chromium() {
    if !Path::new("/usr/bin/chromium").exists() {
        eprintln!("SKIPPED: /usr/bin/chromium is missing (CI installs Debian's chromium)");
        return;
    }
    let port = crate::fixtures::closed_port().await.port();
    let listen = format!("127.0.0.1:{port}");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_vantage"))
        .args(["demo", "--listen", &listen])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://{listen}");
    // Until the flaky probe has failed once (every fifth request), at most 40 s.
    let mut ready = false;
    for _ in 0..400 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Ok(r) = crate::support::get(format!("{base}/api/v1/probes/flaky")).await {
            let doc: serde_json::Value = r.json().await.unwrap_or_default();
            if doc["recent_failures"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
            {
                ready = true;
                break;
            }
        }
    }
    assert!(ready, "the demo's flaky probe never failed");
    let screenshots_dir = std::env::var_os("VANTAGE_SCREENSHOTS_DIR").map(PathBuf::from);
    if screenshots_dir.is_some() {
        // Richer charts for the README: a minute more of history.
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pages: [Shot; 5] = [
        (
            "overview",
            "/?group=env",
            &[
                "class=\"history\"",
                "class=\"spark latency\"",
                "class=\"spark budget\"",
            ],
            (1280, 900),
        ),
        (
            "probe",
            "/probes/secure-api",
            &[
                "id=\"latency-chart\"",
                "class=\"history\"",
                "class=\"chain\"",
            ],
            (1280, 1250),
        ),
        (
            "slo",
            "/slos/flaky-availability",
            &["id=\"burndown\"", "id=\"sli-chart\"", "class=\"burn\""],
            (1280, 1250),
        ),
        (
            "dark",
            "/probes/flaky",
            &["id=\"latency-chart\"", "class=\"incidents\""],
            (1280, 900),
        ),
        ("phone", "/", &["class=\"history\""], (400, 900)),
    ];
    for (name, path, needles, (w, h)) in pages {
        let url = format!("{base}{path}");
        let profile = tempfile::tempdir().unwrap();
        // Virtual time runs the 5 s refresh once: the fetched page's <main> is swapped in.
        let (dom, stderr) = chromium(
            &["--dump-dom", "--virtual-time-budget=7000"],
            &url,
            profile.path(),
        )
        .await;
        assert!(dom.contains("<main>"), "{name}: no DOM:\n{dom}\n{stderr}");
        assert!(
            dom.contains("data-ok=\"1\""),
            "{name}: the page's script did not run:\n{stderr}"
        );
        assert!(
            dom.contains("data-refreshed=\""),
            "{name}: the refresh did not swap <main>:\n{stderr}"
        );
        for n in needles {
            assert!(dom.contains(n), "{name}: rendered DOM lacks {n}");
        }
        assert!(dom.contains("<svg"), "{name}: no chart");
        let errors = console_errors(&stderr);
        assert!(errors.is_empty(), "{name}: console errors: {errors:#?}");

        let shot = tmp.path().join(format!("status-{name}.png"));
        let profile = tempfile::tempdir().unwrap();
        let (_, stderr) = chromium(
            &[
                &format!("--screenshot={}", shot.display()),
                &format!("--window-size={w},{h}"),
                "--hide-scrollbars",
                // Dark: prefers-color-scheme answers "dark".
                if name == "dark" {
                    "--force-dark-mode"
                } else {
                    "--no-default-browser-check"
                },
            ],
            &url,
            profile.path(),
        )
        .await;
        let png = std::fs::read(&shot)
            .unwrap_or_else(|e| panic!("{name}: no screenshot ({e}):\n{stderr}"));
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 10_000,
            "{name}: screenshot"
        );
        if let Some(dir) = &screenshots_dir {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::copy(&shot, dir.join(format!("status-{name}.png"))).unwrap();
        }
    }
    let _ = child.start_kill();
    let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
}

#[tokio::test]
async fn log_formats_choose_the_shape_of_lines() {
    let busy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = busy.local_addr().unwrap().port();
    let cfg = write_config(&format!("[server]\nlisten = \"127.0.0.1:{port}\"\n"));
    let path = cfg.path.to_str().unwrap();
    let run = |format: Option<&'static str>| {
        let mut args = vec!["run", "-c", path];
        if let Some(f) = format {
            args.extend(["--log-format", f]);
        }
        let args: Vec<String> = args.into_iter().map(String::from).collect();
        let dir = cfg.dir.path().to_path_buf();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            crate::support::vantage(&args, &[], &dir).await
        }
    };
    // Not a terminal: JSON by default.
    let out = run(None).await;
    assert_eq!(out.code, 2);
    let line = out
        .stderr
        .lines()
        .find(|l| l.contains("Cannot listen"))
        .unwrap();
    let doc: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
    assert_eq!(doc["level"], "ERROR");
    for f in ["compact", "text"] {
        let out = run(Some(f)).await;
        let line = out
            .stderr
            .lines()
            .find(|l| l.contains("Cannot listen"))
            .unwrap();
        assert!(
            !line.starts_with('{') && line.contains("ERROR"),
            "{f}: {line}"
        );
        assert!(!line.contains("\x1b["), "{f}: colours only on a terminal");
    }
    let out = run(Some("pretty")).await;
    let at = out
        .stderr
        .find("Cannot listen")
        .expect("pretty logs the event");
    // Pretty spreads an event over lines: the source location on a line of its own.
    assert!(out.stderr[at..].lines().count() >= 2, "{}", out.stderr);
    assert!(
        out.stderr[at..].contains("\n    at src/cli/mod.rs:"),
        "{}",
        out.stderr
    );
    let out = run(Some("xml")).await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("xml"));
    drop(busy);
}
