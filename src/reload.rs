//! Reloading: the configuration in force ([`Current`]) and the swap to a new one.
//!
//! Takes: where the configuration comes from (the file and the process environment), on
//! SIGHUP or when a watched file changes ([`Watched`]: the configuration file and every
//! file it names, robust to the symlink swap a Kubernetes ConfigMap makes). Returns:
//! nothing; it swaps the resolver in force, logs one line, and counts the reload. Must
//! never: change anything before the new configuration is completely valid (keys and
//! token files included), let one decision see parts of two configurations (each takes
//! the resolver in force once, at its start), reuse a cached decision of an authorizer
//! whose settings changed, or silently ignore a setting that needs a restart.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
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
        ("server.watch", a.watch != b.watch),
        ("server.grpc_listen", a.grpc_listen != b.grpc_listen),
        ("tracing", old.tracing != new.tracing),
    ]
    .into_iter()
    .filter(|(_, changed)| *changed)
    .map(|(key, _)| key)
    .collect()
}

/// Why a reload runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// SIGHUP: always reloads.
    Signal,
    /// A watched file changed: reloads only when the configuration did (an editor's
    /// scratch file or a touch changes nothing).
    FileChange,
}

/// Whether two configurations would decide the same: the same text and environment, the
/// same authorizers (their fingerprints cover the files they name) and the same `[shared]`.
fn same_configuration(old: &Config, new: &Config) -> bool {
    old.fingerprint == new.fingerprint
        && old.shared == new.shared
        && old.authorizers.len() == new.authorizers.len()
        && old
            .authorizers
            .iter()
            .zip(&new.authorizers)
            .all(|(a, b)| a.name == b.name && a.fingerprint == b.fingerprint)
}

/// Loads, validates and swaps in the configuration from `source`. On any problem the
/// configuration in force keeps serving and the problem is logged in the one line
/// `verdict check` would print. Returns the new resolver when it was swapped in.
pub async fn reload(current: &Current, source: &Source) -> Option<Arc<Resolver>> {
    reload_for(current, source, Trigger::Signal).await
}

/// [`reload`], for `trigger`.
pub async fn reload_for(
    current: &Current,
    source: &Source,
    trigger: Trigger,
) -> Option<Arc<Resolver>> {
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
    if trigger == Trigger::FileChange {
        if same_configuration(&old.config, &config) {
            log::debug!("reload: {what}: a watched file changed, the configuration did not");
            return None;
        }
        log::info!("reload: a watched file changed");
    }
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

/// What a watch looks at: the folders holding the configuration file and the files it
/// names, and the names in them that matter. A folder is watched, not a file: an editor
/// replaces a file by renaming another over it, and Kubernetes swaps a `..data` symlink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watched {
    pub folders: BTreeSet<PathBuf>,
    names: BTreeSet<OsString>,
}

/// The name Kubernetes gives the symlink it swaps when a ConfigMap or Secret changes.
const KUBERNETES_DATA: &str = "..data";

impl Watched {
    /// What to watch for the configuration from `file` and the files `config` names.
    pub fn of(file: &Path, config: &Config) -> Watched {
        let mut folders = BTreeSet::new();
        let mut names = BTreeSet::new();
        names.insert(OsString::from(KUBERNETES_DATA));
        for path in std::iter::once(file).chain(config.named_files.iter().map(PathBuf::as_path)) {
            let folder = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            };
            folders.insert(folder);
            if let Some(name) = path.file_name() {
                names.insert(name.to_os_string());
            }
        }
        Watched { folders, names }
    }

    /// Whether a change at `path` may change the configuration.
    pub fn matters(&self, path: &Path) -> bool {
        path.file_name()
            .is_some_and(|name| self.names.contains(name))
    }

    /// Starts watching: `changed` is called (on the watcher's thread) for every event that
    /// matters. The watch lasts as long as the returned watcher.
    pub fn start(
        &self,
        changed: impl Fn() + Send + 'static,
    ) -> notify::Result<notify::RecommendedWatcher> {
        use notify::Watcher;
        let this = self.clone();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                match event {
                    Ok(event) if event.paths.iter().any(|p| this.matters(p)) => changed(),
                    Ok(_) => {}
                    // the watch itself failed: a reload is the safe answer (it changes nothing
                    // unless the configuration did)
                    Err(_) => changed(),
                }
            })?;
        for folder in &self.folders {
            watcher.watch(folder, notify::RecursiveMode::NonRecursive)?;
        }
        Ok(watcher)
    }
}
