//! Recording a decision: the one decision log line and the decision metrics, written by
//! one function for every outcome, refusals before routing included.
//!
//! Takes: the dialect's name, the [`Decided`] outcome, the status the caller was sent,
//! what the caller said of the original request (its target and client address), whether
//! the answer had to be changed (an identity that could not be sent), and the latency.
//! Returns: nothing; it logs and counts. The line says who (the verified identity's user
//! id, when a credential was verified) and from where (the client address the dialect
//! established). Must never: log a credential, a query string or a header value (the
//! path is the canonical one, quoted; the query is left out because tokens travel in it).

use std::cell::OnceCell;
use std::net::IpAddr;
use std::time::Duration;

use crate::decision::{Outcome, Refusal};
use crate::logging::PreparedLine;
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
    /// The client's address as the dialect established it; `None` when the request was
    /// refused before it was read.
    pub client_ip: Option<IpAddr>,
    /// Why the answer is not the one the outcome asked for (it became a 503).
    pub problem: Option<String>,
    pub latency: Duration,
    /// The decision's trace, when traces are on.
    pub trace_id: Option<String>,
}

/// What a decision's span says of it (never a credential, never a client address).
pub fn span_attributes(entry: &Record<'_>) -> Vec<opentelemetry::KeyValue> {
    use opentelemetry::KeyValue;
    let decided = entry.decided;
    vec![
        KeyValue::new("verdict.dialect", entry.dialect.to_string()),
        KeyValue::new("verdict.route", decided.route.unwrap_or("-").to_string()),
        KeyValue::new(
            "verdict.authorizer",
            decided.authorizer.unwrap_or("-").to_string(),
        ),
        KeyValue::new("verdict.outcome", decided.outcome.name()),
        KeyValue::new("verdict.cache", decided.cache.map_or("-", |c| c.as_str())),
        KeyValue::new("http.response.status_code", i64::from(entry.status)),
    ]
}

/// Counts the decision and writes its log line.
pub fn record(metrics: &Metrics, entry: &Record<'_>) {
    record_with(metrics, entry, None);
}

/// [`record`] for a decision made again (an answer memo hit): `line` holds the line the
/// first such record prepared (crate::logging::prepare), so each one after it hands over
/// only its time and latency. The same counts, the same line.
pub fn record_again(metrics: &Metrics, entry: &Record<'_>, line: &OnceCell<Option<PreparedLine>>) {
    record_with(metrics, entry, Some(line));
}

fn record_with(
    metrics: &Metrics,
    entry: &Record<'_>,
    again: Option<&OnceCell<Option<PreparedLine>>>,
) {
    let decided = entry.decided;
    let route = decided.route.unwrap_or("-");
    let authorizer = decided.authorizer.unwrap_or("-");
    metrics.decision(route, authorizer, decided.outcome.name());
    metrics.decision_duration(
        entry.dialect,
        decided.outcome.name(),
        entry.latency.as_secs_f64(),
    );
    let level = if entry.problem.is_some() {
        log::Level::Error
    } else if matches!(decided.outcome, Outcome::Refused(Refusal::UntrustedPeer(_)))
        || decided.error.is_some()
    {
        // A peer outside trusted_proxies reached the decision port (a deployment mistake
        // or a probe), or a backend or key source failed: something an operator should
        // see, once, on the decision it changed.
        log::Level::Warn
    } else {
        log::Level::Info
    };
    // The records go to their own target, so that is the filter to ask: asking for this
    // module's (`verdict::record`) made `RUST_LOG=verdict::decision=warn` log nothing.
    if !log::log_enabled!(target: DECISION_TARGET, level) {
        return;
    }
    let latency_us = u64::try_from(entry.latency.as_micros()).unwrap_or(u64::MAX);
    match again {
        Some(cell) => {
            let prepared = cell.get_or_init(|| with_fields(entry, level, crate::logging::prepare));
            let handed = prepared
                .as_ref()
                .is_some_and(|line| crate::logging::decision_again(line, latency_us));
            if !handed {
                with_fields(entry, level, crate::logging::decision);
            }
        }
        None => with_fields(entry, level, crate::logging::decision),
    }
}

/// Calls `then` with the decision's log record, at `level`.
fn with_fields<R>(
    entry: &Record<'_>,
    level: log::Level,
    then: impl FnOnce(&crate::logging::DecisionRecord<'_>) -> R,
) -> R {
    let decided = entry.decided;
    let route = decided.route.unwrap_or("-");
    let authorizer = decided.authorizer.unwrap_or("-");
    let target = entry.target;
    let reason = match (&entry.problem, &decided.reason) {
        (Some(problem), _) => Some(format!("identity cannot be sent as headers: {problem}")),
        (None, Some(reason)) => Some(reason.to_string()),
        (None, None) => None,
    };
    let user = decided.identity.as_deref().map(|i| &*i.user_id);
    // One record, structured, handed over unformatted: the writer thread writes it as
    // `key=value` pairs or as one JSON object (crate::logging).
    use crate::logging::Field::{Address, Number, Text};
    let fields = [
        ("dialect", Text(entry.dialect)),
        ("route", Text(route)),
        ("authorizer", Text(authorizer)),
        ("outcome", Text(decided.outcome.name())),
        ("status", Number(u64::from(entry.status))),
        ("cache", Text(decided.cache.map_or("-", |c| c.as_str()))),
        (
            "latency_us",
            Number(u64::try_from(entry.latency.as_micros()).unwrap_or(u64::MAX)),
        ),
        (
            "method",
            Text(target.and_then(|t| t.method.as_deref()).unwrap_or("-")),
        ),
        (
            "host",
            Text(target.and_then(|t| t.host.as_deref()).unwrap_or("-")),
        ),
        (
            "path",
            Text(target.and_then(|t| t.path.as_deref()).unwrap_or("-")),
        ),
        // who and from where: a user id and an address, never the credential
        ("user", Text(user.unwrap_or("-"))),
        ("client_ip", Address(entry.client_ip)),
        ("reason", Text(reason.as_deref().unwrap_or_default())),
        ("error", Text(decided.error.as_deref().unwrap_or_default())),
        (
            "trace_id",
            Text(entry.trace_id.as_deref().unwrap_or_default()),
        ),
    ];
    then(&crate::logging::DecisionRecord {
        level,
        target: DECISION_TARGET,
        message: "decision",
        fields: &fields,
    })
}

/// The log target of decision records (`RUST_LOG=verdict::decision=warn` keeps only the
/// refusals).
pub const DECISION_TARGET: &str = "verdict::decision";
