//! Every example config in deploy/ loads.

use crate::support::load_in;

#[test]
fn every_example_config_loads() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            // Examples read their secrets from the environment; give them placeholder values.
            let env = [
                ("API_TOKEN", "example-token"),
                ("VANTAGE_TOKEN", "example-token"),
                (
                    "SLACK_WEBHOOK_URL",
                    "https://hooks.slack.example/services/T0/B0/X",
                ),
                ("PAGERDUTY_ROUTING_KEY", "example-routing-key"),
                ("SCRAPER_TOKEN", "example-token"),
            ];
            if let Err(e) = load_in(&path, &env) {
                panic!("{} does not load:\n{e}", path.display());
            }
            seen += 1;
        }
    }
    assert!(seen > 0, "no example configs in {}", dir.display());
}
