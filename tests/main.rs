//! The one integration test binary: loopback fixtures, real processes, no network.

mod alerting;
mod check_cli;
mod config_errors;
mod daemon;
mod deploy;
mod examples;
mod fixtures;
mod hostile_config;
mod hostile_daemon;
mod hostile_secrets;
mod http_probe;
mod prom;
mod rules;
mod scrape;
mod slo;
mod support;
mod tls_probe;
