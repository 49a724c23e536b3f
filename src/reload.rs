//! Reloading: the configuration in force ([`Current`]) and the swap to a new one.
//!
//! Takes: where the configuration comes from (the file and the process environment), on
//! SIGHUP. Returns: nothing; it swaps the resolver in force, logs one line, and counts
//! the reload. Must never: change anything before the new configuration is completely
//! valid (keys and token files included), let one decision see parts of two
//! configurations (each takes the resolver in force once, at its start), reuse a cached
//! decision of an authorizer whose settings changed, or silently ignore a setting that
//! needs a restart.

use std::sync::{Arc, RwLock};

use crate::config::{Config, Source};
use crate::resolver::Resolver;

/// The resolver in force: read once at the start of every decision, swapped whole.
#[derive(Debug)]
pub struct Current {
    resolver: RwLock<Arc<Resolver>>,
}

impl Current {
    pub fn new(resolver: Arc<Resolver>) -> Current {
        Current {
            resolver: RwLock::new(resolver),
        }
    }

    /// The resolver in force now. A decision keeps this one to its end.
    pub fn get(&self) -> Arc<Resolver> {
        match self.resolver.read() {
            Ok(guard) => guard.clone(),
            // A writer panicked mid-swap: the value is still a whole Arc, still usable.
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set(&self, resolver: Arc<Resolver>) {
        match self.resolver.write() {
            Ok(mut guard) => *guard = resolver,
            Err(poisoned) => *poisoned.into_inner() = resolver,
        }
    }
}

/// Settings the running listeners were built with: a change is reported and takes effect
/// at the next restart. (`server.drain_timeout` is not one: a stop reads the one in
/// force when it begins.)
fn needs_restart(old: &Config, new: &Config) -> Vec<&'static str> {
    let (a, b) = (&old.server, &new.server);
    [
        ("server.listen", a.listen != b.listen),
        ("server.admin_listen", a.admin_listen != b.admin_listen),
        ("server.workers", a.workers != b.workers),
        (
            "server.resolve_dialect",
            a.resolve_dialect.name() != b.resolve_dialect.name(),
        ),
        (
            "server.request_head_timeout",
            a.request_head_timeout != b.request_head_timeout,
        ),
        ("server.keep_alive", a.keep_alive != b.keep_alive),
        (
            "server.max_connections",
            a.max_connections != b.max_connections,
        ),
        ("log.format", old.log_format != new.log_format),
    ]
    .into_iter()
    .filter(|(_, changed)| *changed)
    .map(|(key, _)| key)
    .collect()
}

/// Loads, validates and swaps in the configuration from `source`. On any problem the
/// configuration in force keeps serving and the problem is logged in the one line
/// `verdict check` would print. Returns the new resolver when it was swapped in.
pub async fn reload(current: &Current, source: &Source) -> Option<Arc<Resolver>> {
    let old = current.get();
    let what = source.file.as_ref().map_or_else(
        || "the embedded demo".to_string(),
        |f| f.display().to_string(),
    );
    let config = match Config::load(source) {
        Ok(config) => config,
        Err(e) => {
            old.metrics.reload(false);
            log::error!("reload: {what}: {e}; the previous configuration keeps serving");
            return None;
        }
    };
    for warning in &config.warnings {
        log::warn!("reload: configuration: {warning}");
    }
    for key in needs_restart(&old.config, &config) {
        log::warn!("reload: {key} changed; it takes effect at the next restart");
    }
    let fresh = match old.succeed(config) {
        Ok(fresh) => Arc::new(fresh),
        Err(e) => {
            old.metrics.reload(false);
            log::error!("reload: {what}: {e}; the previous configuration keeps serving");
            return None;
        }
    };
    // Keys are fetched before the swap, so the first decisions on the new configuration
    // do not wait for them (or fail for want of them).
    fresh.prefetch_keys().await;
    current.set(fresh.clone());
    fresh.metrics.reload(true);
    fresh.metrics.config_in_force(&fresh.config.fingerprint);
    log::info!(
        "reload: {what} in force (generation {}, configuration {})",
        fresh.generation,
        fresh.config.fingerprint
    );
    Some(fresh)
}
