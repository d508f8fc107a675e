//! Alerting: the engine turns SLO reports and probe records into alert transitions (pure state,
//! no I/O), and the notifier delivers them to sinks with queues, retries and payloads of their
//! own.

pub mod engine;
pub mod notify;
