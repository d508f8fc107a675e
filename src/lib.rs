//! vantage: a synthetic prober and SLO evaluator.
//!
//! The main design decision: one config, one meaning, three uses. `vantage check` (a CI gate),
//! `vantage run` (a daemon) and Prometheus all see the same probes, built once from a validated
//! [`config::Config`], run by the `vantage-probes` crate, and reported through a [`secret::Redactor`]
//! so that nothing read from the environment ever leaves the process.

pub use vantage_probes::Clock;

pub mod alerting;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod logging;
pub mod metrics;
pub mod secret;
pub mod server;
pub mod supervise;
