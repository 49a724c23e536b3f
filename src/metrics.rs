//! Counters and histograms, exposed in the Prometheus text format on the admin listener.
//!
//! Takes: observations from the decision path (decisions, cache results), the `http`
//! authorizer (backend latency and errors) and the `jwt` authorizer (JWKS refreshes).
//! Returns: the text exposition at `/metrics`. Must never: use a credential, a client
//! address or a request path as a label (labels are configured names only, so the series
//! count stays bounded), or fail a decision because a metric could not be recorded.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Every metric verdict exports.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    decisions: IntCounterVec,
    /// `verdict_cache_requests_total` by result, resolved once: counted on every request.
    cache_hits: IntCounter,
    cache_misses: IntCounter,
    memo_hits: IntCounter,
    cache_entries: IntGauge,
    backend_duration: HistogramVec,
    backend_errors: IntCounterVec,
    jwks_refreshes: IntCounterVec,
    reloads: IntCounterVec,
    last_reload: IntGauge,
    config_info: IntGaugeVec,
    decision_duration: HistogramVec,
    open_connections: IntGauge,
    store_duration: HistogramVec,
    store_errors: IntCounterVec,
    shared_cache: IntCounterVec,
    revocations: IntCounter,
    feed_lag: prometheus::Gauge,
    feed_stale: IntGauge,
    feed_transitions: IntCounterVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    pub fn new() -> prometheus::Result<Metrics> {
        let registry = Registry::new();
        let decisions = IntCounterVec::new(
            Opts::new(
                "verdict_decisions_total",
                "Decisions by route, deciding authorizer and outcome",
            ),
            &["route", "authorizer", "outcome"],
        )?;
        let cache_requests = IntCounterVec::new(
            Opts::new(
                "verdict_cache_requests_total",
                "Decision-cache look-ups by result (hit or miss)",
            ),
            &["result"],
        )?;
        let cache_entries =
            IntGauge::new("verdict_cache_entries", "Entries in the decision cache")?;
        let memo_hits = IntCounter::new(
            "verdict_answer_memo_hits_total",
            "Answers given again for the exact bytes of an earlier request (each also a cache hit)",
        )?;
        let backend_duration = HistogramVec::new(
            HistogramOpts::new(
                "verdict_backend_request_duration_seconds",
                "Auth backend request latency",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["authorizer", "backend"],
        )?;
        let backend_errors = IntCounterVec::new(
            Opts::new(
                "verdict_backend_errors_total",
                "Auth backend requests that failed (transport, 5xx, timeout, bad answer)",
            ),
            &["authorizer", "backend"],
        )?;
        let jwks_refreshes = IntCounterVec::new(
            Opts::new(
                "verdict_jwks_refreshes_total",
                "JWKS fetches by authorizer and result",
            ),
            &["authorizer", "result"],
        )?;
        let reloads = IntCounterVec::new(
            Opts::new("verdict_reloads_total", "Configuration reloads by result"),
            &["result"],
        )?;
        let last_reload = IntGauge::new(
            "verdict_last_reload_success_timestamp_seconds",
            "When the configuration in force was loaded (Unix seconds)",
        )?;
        let config_info = IntGaugeVec::new(
            Opts::new(
                "verdict_config_info",
                "The configuration in force, by a digest of its text and overrides",
            ),
            &["fingerprint"],
        )?;
        let decision_duration = HistogramVec::new(
            HistogramOpts::new(
                "verdict_decision_duration_seconds",
                "Time from a decision request's arrival to its answer",
            )
            .buckets(vec![
                0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["dialect", "outcome"],
        )?;
        let open_connections = IntGauge::new(
            "verdict_open_connections",
            "Connections open on the decision listener",
        )?;
        let store_duration = HistogramVec::new(
            HistogramOpts::new(
                "verdict_shared_store_duration_seconds",
                "Shared-store command latency, by command",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
            ]),
            &["command"],
        )?;
        let store_errors = IntCounterVec::new(
            Opts::new(
                "verdict_shared_store_errors_total",
                "Shared-store commands that failed or timed out, by command",
            ),
            &["command"],
        )?;
        let shared_cache = IntCounterVec::new(
            Opts::new(
                "verdict_shared_cache_requests_total",
                "Shared (second-level) cache look-ups by result: hit, miss, rejected (did not verify), error",
            ),
            &["result"],
        )?;
        let revocations = IntCounter::new(
            "verdict_revocations_applied_total",
            "Revocations applied to this instance's denylist",
        )?;
        let feed_lag = prometheus::Gauge::new(
            "verdict_revocation_feed_lag_seconds",
            "Time since the revocation log was last read (-1: never)",
        )?;
        let feed_stale = IntGauge::new(
            "verdict_revocation_feed_stale",
            "1 while the revocation log has not been read within shared.stale_after",
        )?;
        let feed_transitions = IntCounterVec::new(
            Opts::new(
                "verdict_revocation_feed_transitions_total",
                "Times the revocation feed became stale or recovered",
            ),
            &["to"],
        )?;
        let build_info = IntGaugeVec::new(
            Opts::new("verdict_build_info", "The running build"),
            &["version", "commit", "profile"],
        )?;
        build_info
            .with_label_values(&[
                env!("CARGO_PKG_VERSION"),
                env!("VERDICT_GIT_COMMIT"),
                env!("VERDICT_BUILD_PROFILE"),
            ])
            .set(1);
        // CPU, memory, open file descriptors and their limit, start time (procfs)
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        for collector in [
            Box::new(decisions.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(cache_requests.clone()),
            Box::new(cache_entries.clone()),
            Box::new(memo_hits.clone()),
            Box::new(backend_duration.clone()),
            Box::new(backend_errors.clone()),
            Box::new(jwks_refreshes.clone()),
            Box::new(reloads.clone()),
            Box::new(last_reload.clone()),
            Box::new(config_info.clone()),
            Box::new(decision_duration.clone()),
            Box::new(open_connections.clone()),
            Box::new(build_info.clone()),
            Box::new(store_duration.clone()),
            Box::new(store_errors.clone()),
            Box::new(shared_cache.clone()),
            Box::new(revocations.clone()),
            Box::new(feed_lag.clone()),
            Box::new(feed_stale.clone()),
            Box::new(feed_transitions.clone()),
        ] {
            registry.register(collector)?;
        }
        Ok(Metrics {
            registry,
            decisions,
            cache_hits: cache_requests.with_label_values(&["hit"]),
            cache_misses: cache_requests.with_label_values(&["miss"]),
            memo_hits,
            cache_entries,
            backend_duration,
            backend_errors,
            jwks_refreshes,
            reloads,
            last_reload,
            config_info,
            decision_duration,
            open_connections,
            store_duration,
            store_errors,
            shared_cache,
            revocations,
            feed_lag,
            feed_stale,
            feed_transitions,
        })
    }

    /// One shared-store command: how long it took, and whether it failed.
    pub fn store_call(&self, command: &str, seconds: f64, failed: bool) {
        self.store_duration
            .with_label_values(&[command])
            .observe(seconds);
        if failed {
            self.store_errors.with_label_values(&[command]).inc();
        }
    }

    /// One shared-cache look-up's result.
    pub fn shared_cache(&self, result: &str) {
        self.shared_cache.with_label_values(&[result]).inc();
    }

    pub fn revocation_applied(&self) {
        self.revocations.inc();
    }

    /// The feed's lag (`None`: never read) and whether it is stale.
    pub fn feed_lag(&self, seconds: Option<f64>, stale: bool) {
        self.feed_lag.set(seconds.unwrap_or(-1.0));
        self.feed_stale.set(i64::from(stale));
    }

    /// The feed became stale (`true`) or recovered.
    pub fn feed_transition(&self, stale: bool) {
        self.feed_stale.set(i64::from(stale));
        self.feed_transitions
            .with_label_values(&[if stale { "stale" } else { "fresh" }])
            .inc();
    }

    /// How long one decision took, by dialect and outcome.
    pub fn decision_duration(&self, dialect: &str, outcome: &str, seconds: f64) {
        self.decision_duration
            .with_label_values(&[dialect, outcome])
            .observe(seconds);
    }

    /// A connection opened (`+1`) or closed (`-1`) on the decision listener.
    pub fn connection(&self, delta: i64) {
        self.open_connections.add(delta);
    }

    /// A reload, successful or not.
    pub fn reload(&self, ok: bool) {
        self.reloads
            .with_label_values(&[if ok { "ok" } else { "error" }])
            .inc();
    }

    /// Marks the configuration with this fingerprint as the one in force, now.
    pub fn config_in_force(&self, fingerprint: &str) {
        self.config_info.reset();
        self.config_info.with_label_values(&[fingerprint]).set(1);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.last_reload.set(i64::try_from(now).unwrap_or(i64::MAX));
    }

    pub fn decision(&self, route: &str, authorizer: &str, outcome: &str) {
        self.decisions
            .with_label_values(&[route, authorizer, outcome])
            .inc();
    }

    pub fn memo_hit(&self) {
        self.memo_hits.inc();
    }

    pub fn cache(&self, hit: bool) {
        if hit {
            self.cache_hits.inc();
        } else {
            self.cache_misses.inc();
        }
    }

    pub fn backend(&self, authorizer: &str, backend: &str, seconds: f64, failed: bool) {
        self.backend_duration
            .with_label_values(&[authorizer, backend])
            .observe(seconds);
        if failed {
            self.backend_errors
                .with_label_values(&[authorizer, backend])
                .inc();
        }
    }

    pub fn jwks_refresh(&self, authorizer: &str, ok: bool) {
        self.jwks_refreshes
            .with_label_values(&[authorizer, if ok { "ok" } else { "error" }])
            .inc();
    }

    /// The text exposition, with the cache size read now.
    pub fn render(&self, cache_entries: u64) -> String {
        self.cache_entries
            .set(i64::try_from(cache_entries).unwrap_or(i64::MAX));
        let mut buffer = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buffer) {
            log::error!("metrics encoding failed: {e}");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_every_family() {
        let m = Metrics::new().unwrap();
        m.decision("api", "jwt", "allow");
        m.cache(true);
        m.cache(false);
        m.backend("astra", "http://b/check", 0.02, true);
        m.jwks_refresh("idp", true);
        let text = m.render(7);
        for needle in [
            "verdict_decisions_total{authorizer=\"jwt\",outcome=\"allow\",route=\"api\"} 1",
            "verdict_cache_requests_total{result=\"hit\"} 1",
            "verdict_cache_entries 7",
            "verdict_backend_request_duration_seconds_bucket{authorizer=\"astra\",backend=\"http://b/check\",le=\"0.025\"} 1",
            "verdict_backend_errors_total{authorizer=\"astra\",backend=\"http://b/check\"} 1",
            "verdict_jwks_refreshes_total{authorizer=\"idp\",result=\"ok\"} 1",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }
}
