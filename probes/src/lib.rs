//! vantage's probes: plain specs in, [`Outcome`]s out.
//!
//! The main design decision: a probe never returns an error. Whatever the target does — refuse,
//! hang, drip bytes, send garbage, present a bad certificate — the run ends in an `Outcome` with a
//! reason from a fixed set and evidence a human can act on, within the probe's timeout, which is
//! measured from the *scheduled* start. Connections are dialled by hand (no pooling, no hidden
//! retries) so that the phase timings describe one honest, fresh connection.
//!
//! This crate knows HTTP, TLS and response parsing. It knows nothing of the daemon's config types
//! or of metrics: callers build specs and map outcomes.

pub mod clock;
pub mod credentials;
mod decode;
pub mod dns;
pub mod expect;
pub mod exposition;
pub mod grpc;
pub mod http;
pub mod icmp;
pub mod net;
pub mod oauth2;
pub mod outcome;
pub mod scrape;
pub mod secret;
pub mod tcp;
pub mod timing;
pub mod tls;

pub use clock::Clock;
pub use dns::{run_dns, DnsFacts, DnsSpec, DnsTransport, RrAssertions};
pub use expect::{
    CssAssertion, CssCheck, HttpExpect, JsonAssertion, JsonOp, MetricAssertion, MetricOp, Response,
    StatusPattern,
};
pub use grpc::{run_grpc, GrpcFacts, GrpcSpec};
pub use http::{run_http, HttpSpec, HttpVersions, Request, Transport};
pub use icmp::{run_icmp, IcmpFacts, IcmpSpec};
pub use net::{AddressFilter, IpFamily};
pub use oauth2::{Oauth2Client, Oauth2Config};
pub use outcome::{
    CertInfo, ConnFacts, Facts, HealthCheck, HealthFacts, HttpFacts, KindFacts, Outcome, Phases,
    Reason, ScrapeFacts, StepFacts, TlsFacts, VerifyResult,
};
pub use scrape::{run_flow, Capture, FlowSpec, StepSpec, Template};
pub use secret::{Redactor, Secret};
pub use tcp::{run_tcp, QueryStep, TcpFacts, TcpSpec};
pub use timing::Phase;
pub use tls::{run_tls, TlsClient, TlsExpect, TlsOptions, TlsSpec, TlsVersion};

use tokio::time::Instant;

/// Errors building a probe (never running one).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading PEM file {0}: {1}")]
    Pem(String, String),
    #[error("TLS setup: {0}")]
    Tls(String),
}

/// Close a run: the duration runs from the scheduled start.
pub(crate) fn finish(
    scheduled: Instant,
    phases: Phases,
    facts: Facts,
    result: Result<String, net::Failure>,
) -> Outcome {
    finish_at(Instant::now(), scheduled, phases, facts, result)
}

/// [`finish`] for a run that ended at `end` (a timeout charges its phases up to that instant).
pub(crate) fn finish_at(
    end: Instant,
    scheduled: Instant,
    phases: Phases,
    facts: Facts,
    result: Result<String, net::Failure>,
) -> Outcome {
    let duration = end.saturating_duration_since(scheduled);
    match result {
        Ok(evidence) => Outcome {
            reason: None,
            duration,
            phases,
            evidence,
            facts,
        },
        Err(f) => Outcome {
            reason: Some(f.reason),
            duration,
            phases,
            evidence: f.evidence,
            facts,
        },
    }
}

/// `start + d`, saturating: a duration too large for the clock gives a time about 30 years
/// away (as tokio's own "far future" does) instead of a panic.
pub fn deadline(start: Instant, d: std::time::Duration) -> Instant {
    const FAR: std::time::Duration = std::time::Duration::from_secs(86_400 * 365 * 30);
    start
        .checked_add(d.min(FAR))
        .or_else(|| start.checked_add(std::time::Duration::from_secs(86_400)))
        .unwrap_or(start)
}

#[cfg(test)]
mod deadline_tests {
    use super::*;

    #[test]
    fn deadline_saturates() {
        let now = Instant::now();
        assert!(deadline(now, std::time::Duration::MAX) > now);
        assert_eq!(
            deadline(now, std::time::Duration::from_secs(1)),
            now + std::time::Duration::from_secs(1)
        );
    }
}
