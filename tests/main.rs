//! The one integration test binary: loopback fixtures, real processes, no network.

mod alerting;
mod am_dedup;
mod cardinality;
mod check_cli;
mod config_errors;
mod daemon;
mod deploy;
mod examples;
mod fixtures;
mod honest;
mod http_probe;
mod one_truth;
mod paused;
mod probe_alert;
mod probe_allow_prop;
mod probe_endpoint;
mod prom;
mod rules;
mod scrape;
mod slo;
mod status_page;
mod support;
mod tls_probe;
