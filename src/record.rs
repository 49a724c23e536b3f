//! Recording a decision: the one decision log line and the decision metrics, written by
//! one function for every outcome, refusals before routing included.
//!
//! Takes: the dialect's name, the [`Decided`] outcome, the status the caller was sent,
//! what the caller said of the original request, whether the answer had to be changed
//! (an identity that could not be sent), and the latency. Returns: nothing; it logs and
//! counts. Must never: log a credential, a query string or a header value (the path is
//! the canonical one, quoted; the query is left out because tokens travel in it).

use std::time::Duration;

use crate::decision::{Outcome, Refusal};
use crate::metrics::Metrics;
use crate::request::Target;
use crate::resolver::Decided;

/// One decision, as the record sees it.
#[derive(Debug)]
pub struct Record<'a> {
    pub dialect: &'a str,
    pub decided: &'a Decided<'a>,
    pub status: u16,
    pub target: Option<&'a Target>,
    /// Why the answer is not the one the outcome asked for (it became a 503).
    pub problem: Option<String>,
    pub latency: Duration,
}

/// Counts the decision and writes its log line.
pub fn record(metrics: &Metrics, entry: &Record<'_>) {
    let decided = entry.decided;
    let route = decided.route.unwrap_or("-");
    let authorizer = decided.authorizer.unwrap_or("-");
    metrics.decision(route, authorizer, decided.outcome.name());
    let level = if entry.problem.is_some() {
        log::Level::Error
    } else if matches!(decided.outcome, Outcome::Refused(Refusal::UntrustedPeer(_))) {
        // A peer outside trusted_proxies reached the decision port: a deployment mistake
        // or a probe, either way something an operator should see.
        log::Level::Warn
    } else {
        log::Level::Info
    };
    if !log::log_enabled!(level) {
        return;
    }
    let target = entry.target;
    let reason = match (&entry.problem, &decided.reason) {
        (Some(problem), _) => format!(" reason=\"identity cannot be sent as headers: {problem}\""),
        (None, Some(reason)) => format!(" reason=\"{reason}\""),
        (None, None) => String::new(),
    };
    log::log!(
        level,
        "decision dialect={} route={route} authorizer={authorizer} outcome={} status={} cache={} latency_us={} method={} host={} path={:?}{reason}",
        entry.dialect,
        decided.outcome.name(),
        entry.status,
        decided.cache.map_or("-", |c| c.as_str()),
        entry.latency.as_micros(),
        target.and_then(|t| t.method.as_deref()).unwrap_or("-"),
        target.and_then(|t| t.host.as_deref()).unwrap_or("-"),
        target.and_then(|t| t.path.as_deref()).unwrap_or("-"),
    );
}
