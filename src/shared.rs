//! The fleet: what several verdict instances share through Redis or Valkey. A second
//! cache level under each instance's own, a revocation log every instance applies to a
//! local denylist, and a single flight across the fleet for `http` backends.
//!
//! Takes: the validated `[shared]` settings, and, from the resolver, a cache key with
//! the decision that would be made on a miss, or an allow to check against the denylist.
//! Returns: a decision from the store (verified), or the one made here (written back off
//! the request's path); whether an allow is revoked; whether the revocation feed is
//! stale. Must never: let anything read from the store make an allow that does not
//! verify under the fleet's secret and belong to its key, turn a store error or timeout
//! into anything but a miss, put a credential (or the secret) in the store, its keys or a
//! log line, or make a cached decision wait on the network.

mod feed;
pub mod revocation;
mod seal;
pub mod store;
mod wire;

use std::collections::BTreeSet;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::Deserialize;

use crate::cache::{CacheKey, CacheStatus, DecisionCache, Fetched};
use crate::clock::Clock;
use crate::decision::{AuthError, Decision, Verdict};
use crate::digest::sha256;
use crate::metrics::Metrics;
use crate::settings::{ConfigError, HumanDuration, StringList};

pub use self::feed::FeedHealth;
use self::revocation::{Denylist, Revocation};
use self::seal::{Purpose, Seal, TAG_LEN};
use self::store::{Store, StoreError};
use self::wire::WireDecision;

/// How the store is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Topology {
    /// One server (or a primary behind a fixed address).
    #[default]
    Standalone,
    /// Sentinels, asked for the current primary of `sentinel_master`.
    Sentinel,
    /// A Redis Cluster: every key stands alone, so no hash tags are needed.
    Cluster,
}

crate::settings::choices!(Topology {
    "standalone" => Standalone,
    "sentinel" => Sentinel,
    "cluster" => Cluster,
});

/// What an instance does once it cannot read the revocation log for `stale_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StalePolicy {
    /// Decide without the cache; an allow that only the revocation log could withdraw (a
    /// JWT's, a static token's) is refused with 503 until the feed is read again. An
    /// `http` backend, the authority of its own sessions, is asked afresh.
    #[default]
    Closed,
    /// Keep serving local decisions, cached ones included, and say so in the log.
    Local,
}

crate::settings::choices!(StalePolicy {
    "closed" => Closed,
    "local" => Local,
});

/// `[shared]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawShared {
    urls: StringList,
    #[serde(default)]
    topology: Topology,
    #[serde(default)]
    sentinel_master: Option<String>,
    #[serde(default)]
    secret_file: Option<String>,
    #[serde(default)]
    secret_env: Option<String>,
    #[serde(default)]
    key_prefix: Option<String>,
    #[serde(default)]
    read_timeout: Option<HumanDuration>,
    #[serde(default)]
    write_timeout: Option<HumanDuration>,
    #[serde(default)]
    connect_timeout: Option<HumanDuration>,
    #[serde(default)]
    stale_after: Option<HumanDuration>,
    #[serde(default)]
    on_stale: StalePolicy,
    #[serde(default)]
    cache_authorizers: Option<StringList>,
    #[serde(default)]
    flight_wait: Option<HumanDuration>,
    #[serde(default)]
    revocation_ttl: Option<HumanDuration>,
    #[serde(default)]
    stream_max_len: Option<u64>,
    #[serde(default)]
    admin_token_file: Option<String>,
    #[serde(default)]
    admin_token_env: Option<String>,
}

/// A secret read from a file or the environment: never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl Secret {
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// `[shared]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedSettings {
    pub urls: Vec<String>,
    pub topology: Topology,
    pub sentinel_master: String,
    pub secret: Secret,
    pub key_prefix: String,
    /// A store read on the request path (a shared-cache look-up) waits at most this long.
    pub read_timeout: Duration,
    /// A write, off the request path.
    pub write_timeout: Duration,
    pub connect_timeout: Duration,
    pub stale_after: Duration,
    pub on_stale: StalePolicy,
    /// The authorizers whose decisions go to the shared cache; `None`: every `http` one.
    pub cache_authorizers: Option<BTreeSet<String>>,
    /// How long a cold miss waits for another instance asking the same backend.
    pub flight_wait: Duration,
    /// How long a revocation with no expiry of its own is kept.
    pub revocation_ttl: Duration,
    /// The revocation log's length bound (approximate, as Redis trims).
    pub stream_max_len: u64,
    /// The bearer secret of `POST /revoke` on the admin listener; `None`: off.
    pub admin_token: Option<Secret>,
    /// How long one read of the revocation log blocks.
    pub block_for: Duration,
}

impl RawShared {
    /// The files the section names (its secrets'), for a watch on the configuration.
    pub fn files(&self) -> Vec<String> {
        [&self.secret_file, &self.admin_token_file]
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }
}

impl SharedSettings {
    /// The settings of `[shared]`; the secret read from its file or variable.
    pub fn build(
        raw: RawShared,
        base_dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<SharedSettings, ConfigError> {
        let urls = raw.urls.0;
        if urls.is_empty() {
            return Err(ConfigError::invalid(
                "shared.urls",
                "give at least one store URL",
            ));
        }
        for url in &urls {
            let parsed = url::Url::parse(url).map_err(|e| {
                ConfigError::invalid("shared.urls", format!("{}: {e}", store::shown(url)))
            })?;
            if !matches!(parsed.scheme(), "redis" | "rediss") {
                return Err(ConfigError::invalid(
                    "shared.urls",
                    format!(
                        "{}: the scheme must be redis:// or rediss:// (TLS)",
                        store::shown(url)
                    ),
                ));
            }
        }
        if raw.topology == Topology::Standalone && urls.len() > 1 {
            return Err(ConfigError::invalid(
                "shared.urls",
                "several URLs need topology = \"cluster\" or \"sentinel\"",
            ));
        }
        let sentinel_master = match (raw.topology, raw.sentinel_master) {
            (Topology::Sentinel, Some(name)) if !name.is_empty() => name,
            (Topology::Sentinel, _) => {
                return Err(ConfigError::invalid(
                    "shared.sentinel_master",
                    "topology = \"sentinel\" needs the primary's name the sentinels watch",
                ));
            }
            (_, Some(_)) => {
                return Err(ConfigError::invalid(
                    "shared.sentinel_master",
                    "only read with topology = \"sentinel\"",
                ));
            }
            (_, None) => String::new(),
        };
        let secret = read_secret(
            "shared.secret",
            raw.secret_file.as_deref(),
            raw.secret_env.as_deref(),
            base_dir,
            env,
        )?
        .ok_or_else(|| {
            ConfigError::invalid(
                "shared.secret_file",
                "the shared store needs a secret (secret_file or secret_env): values in it are sealed with it",
            )
        })?;
        let admin_token = read_secret(
            "shared.admin_token",
            raw.admin_token_file.as_deref(),
            raw.admin_token_env.as_deref(),
            base_dir,
            env,
        )?;
        if admin_token.as_ref() == Some(&secret) {
            return Err(ConfigError::invalid(
                "shared.admin_token_file",
                "must differ from the store secret: whoever may revoke must not be able to forge",
            ));
        }
        let duration = |v: Option<HumanDuration>, default: u64| {
            v.map_or(Duration::from_millis(default), |d| d.0)
        };
        let read_timeout = duration(raw.read_timeout, 50);
        let write_timeout = duration(raw.write_timeout, 250);
        let connect_timeout = duration(raw.connect_timeout, 1000);
        let stale_after = duration(raw.stale_after, 5000);
        let flight_wait = duration(raw.flight_wait, 2000);
        let revocation_ttl = duration(raw.revocation_ttl, 24 * 3600 * 1000);
        for (key, value, low, high) in [
            ("shared.read_timeout", read_timeout, 1, 5_000),
            ("shared.write_timeout", write_timeout, 1, 30_000),
            ("shared.connect_timeout", connect_timeout, 10, 60_000),
            ("shared.stale_after", stale_after, 500, 3_600_000),
            ("shared.flight_wait", flight_wait, 0, 60_000),
            (
                "shared.revocation_ttl",
                revocation_ttl,
                1000,
                400 * 24 * 3_600_000,
            ),
        ] {
            let ms = u64::try_from(value.as_millis()).unwrap_or(u64::MAX);
            if ms < low || ms > high {
                return Err(ConfigError::invalid(
                    key,
                    format!("{value:?} is out of range ({low} ms to {high} ms)"),
                ));
            }
        }
        let key_prefix = raw.key_prefix.unwrap_or_else(|| "verdict:".to_string());
        if key_prefix.is_empty() || key_prefix.len() > 64 || key_prefix.contains(['{', '}']) {
            return Err(ConfigError::invalid(
                "shared.key_prefix",
                "1 to 64 bytes, without braces (every key stands alone in a Cluster)",
            ));
        }
        let stream_max_len = raw.stream_max_len.unwrap_or(100_000);
        if !(100..=100_000_000).contains(&stream_max_len) {
            return Err(ConfigError::invalid(
                "shared.stream_max_len",
                "100 to 100000000 entries",
            ));
        }
        Ok(SharedSettings {
            urls,
            topology: raw.topology,
            sentinel_master,
            secret,
            key_prefix,
            read_timeout,
            write_timeout,
            connect_timeout,
            stale_after,
            on_stale: raw.on_stale,
            cache_authorizers: raw.cache_authorizers.map(|l| l.0.into_iter().collect()),
            flight_wait,
            revocation_ttl,
            stream_max_len,
            admin_token,
            // a read returns at least this often, so a quiet log still counts as read
            block_for: (stale_after / 4).min(Duration::from_secs(1)),
        })
    }

    /// Which store this is (where, how reached, under which prefix and secret, read how):
    /// a reload that keeps it keeps the feed's health.
    fn store_fingerprint(&self) -> [u8; 32] {
        let text = format!(
            "{:?}|{:?}|{}|{}|{:?}|{:?}|{:?}|{:?}|{}|{}",
            self.urls,
            self.topology,
            self.sentinel_master,
            self.key_prefix,
            self.read_timeout,
            self.write_timeout,
            self.connect_timeout,
            self.stale_after,
            self.stream_max_len,
            hex::encode(sha256(self.secret.bytes())),
        );
        sha256(text.as_bytes())
    }

    /// The revocation log's key.
    pub fn stream_key(&self) -> String {
        format!("{}revocations", self.key_prefix)
    }
}

/// A secret from exactly one of a file or an environment variable; `None` when neither
/// is given. At least 32 bytes, trailing line breaks removed.
fn read_secret(
    key: &str,
    file: Option<&str>,
    variable: Option<&str>,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Secret>, ConfigError> {
    let text = match (file, variable) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::invalid(
                format!("{key}_file"),
                format!("give {key}_file or {key}_env, not both"),
            ));
        }
        (None, None) => return Ok(None),
        (Some(file), None) => {
            let path = base_dir.join(file);
            std::fs::read(&path).map_err(|e| {
                ConfigError::invalid(format!("{key}_file"), format!("{}: {e}", path.display()))
            })?
        }
        (None, Some(variable)) => env(variable)
            .ok_or_else(|| {
                ConfigError::invalid(
                    format!("{key}_env"),
                    format!("the variable {variable} is not set"),
                )
            })?
            .into_bytes(),
    };
    let mut bytes = text;
    while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        bytes.pop();
    }
    if bytes.len() < 32 {
        return Err(ConfigError::invalid(
            key,
            "at least 32 bytes (`openssl rand -hex 32` makes one)",
        ));
    }
    Ok(Some(Secret(bytes)))
}

/// The fleet's shared state, as this instance holds it.
pub struct Shared {
    pub settings: SharedSettings,
    store_fingerprint: [u8; 32],
    store: Arc<Store>,
    seal: Arc<Seal>,
    /// The revocations in force here: kept across reloads, whatever the store does.
    pub denylist: Arc<Denylist>,
    pub health: Arc<FeedHealth>,
    metrics: Metrics,
    clock: Clock,
    /// The cache a revocation evicts from (the one in force: a reload may replace it).
    cache: RwLock<DecisionCache>,
    /// Names this instance in the fleet's locks.
    instance: String,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field(
                "urls",
                &self
                    .settings
                    .urls
                    .iter()
                    .map(|u| store::shown(u))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// How the fleet's state bears on `/readyz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// Serving, but without the fleet's revocations (`on_stale = "local"`).
    Degraded,
    Unready,
}

/// What a reloaded shared state takes over from the one it replaces.
#[derive(Debug)]
pub struct Carried {
    /// The revocations in force: never forgotten on a reload.
    pub denylist: Arc<Denylist>,
    /// The feed's health, when the store is the same.
    pub health: Option<Arc<FeedHealth>>,
}

/// What the denylist and the feed's health say about one allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Nothing withdraws it.
    Clear,
    /// A revocation names it: the reason.
    Revoked(&'static str),
    /// The feed is stale and the policy refuses what only the log could withdraw.
    Stale,
}

impl Shared {
    /// Connects (in the background) and starts the revocation feed. `carried` is what
    /// the shared state this one replaces on a reload hands on.
    pub fn start(
        settings: SharedSettings,
        metrics: Metrics,
        clock: Clock,
        cache: DecisionCache,
        carried: Option<Carried>,
    ) -> std::io::Result<Arc<Shared>> {
        let (denylist, health) = match carried {
            Some(Carried { denylist, health }) => (denylist, health),
            None => (Arc::default(), None),
        };
        let store = Store::start(&settings)?;
        let random: [u8; 8] = {
            let mut bytes = [0u8; 8];
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
                .map_err(|_| std::io::Error::other("no randomness for the instance id"))?;
            bytes
        };
        let shared = Arc::new(Shared {
            store_fingerprint: settings.store_fingerprint(),
            seal: Arc::new(Seal::new(settings.secret.bytes())),
            denylist,
            health: health.unwrap_or_else(|| Arc::new(FeedHealth::new(clock.unix_ms()))),
            store,
            metrics,
            clock,
            cache: RwLock::new(cache),
            instance: hex::encode(random),
            settings,
        });
        feed::start(&shared);
        log::info!(
            "shared store: {:?} {} (prefix {:?}, stale after {:?}, on stale: {})",
            shared.settings.topology,
            shared
                .settings
                .urls
                .iter()
                .map(|u| store::shown(u))
                .collect::<Vec<_>>()
                .join(", "),
            shared.settings.key_prefix,
            shared.settings.stale_after,
            match shared.settings.on_stale {
                StalePolicy::Closed => "closed",
                StalePolicy::Local => "local",
            },
        );
        Ok(shared)
    }

    /// The shared state for a reloaded configuration: this one when `[shared]` did not
    /// change (the cache it evicts from updated), else a new one that keeps the denylist.
    pub fn succeed(
        self: &Arc<Self>,
        settings: Option<SharedSettings>,
        cache: &DecisionCache,
    ) -> std::io::Result<Option<Arc<Shared>>> {
        let Some(settings) = settings else {
            log::warn!(
                "reload: [shared] removed: this instance no longer reads the fleet's revocations"
            );
            return Ok(None);
        };
        if settings == self.settings {
            // the same shared state: its feed goes on; only the cache it evicts from may
            // have been replaced
            if let Ok(mut slot) = self.cache.write() {
                *slot = cache.clone();
            }
            return Ok(Some(self.clone()));
        }
        // Anew, with the revocations in force kept. On the same store the feed's health
        // carries over (the new feed reads the same log again from its start), so a
        // change of a policy setting does not make the instance stale for a moment.
        let same_store = settings.store_fingerprint() == self.store_fingerprint;
        log::info!(
            "reload: [shared] changed: {}; the revocations in force are kept",
            if same_store {
                "same store, settings renewed"
            } else {
                "connecting to the store anew"
            }
        );
        Shared::start(
            settings,
            self.metrics.clone(),
            self.clock.clone(),
            cache.clone(),
            Some(Carried {
                denylist: self.denylist.clone(),
                health: same_store.then(|| self.health.clone()),
            }),
        )
        .map(Some)
    }

    /// Whether `authorizer`'s decisions go to the shared cache (`http` ones by default).
    pub fn shares_decisions(&self, authorizer: &str, is_http: bool) -> bool {
        match &self.settings.cache_authorizers {
            Some(names) => names.contains(authorizer),
            None => is_http,
        }
    }

    /// The store's name for a cache key: a keyed digest of it, so the store holds
    /// nothing a guessed credential could be checked against.
    fn key_name(&self, key: &CacheKey, what: &str) -> String {
        let tag = self.seal.tag(Purpose::KeyName, &[key]);
        format!(
            "{}{what}:{}",
            self.settings.key_prefix,
            hex::encode(&tag[..20])
        )
    }

    /// The decision stored under `name`, if it verifies, belongs there and is alive.
    fn open(&self, name: &str, bytes: &[u8]) -> Option<(Decision, u64)> {
        if bytes.len() <= TAG_LEN {
            return None;
        }
        let (tag, record) = bytes.split_at(TAG_LEN);
        // Trust decision: only what this fleet's secret sealed for this very key counts;
        // anything else (forged, moved from another key, sealed under another secret)
        // is a miss, never a decision
        if !self
            .seal
            .verify(Purpose::Decision, &[name.as_bytes(), record], tag)
        {
            return None;
        }
        let wire = WireDecision::from_bytes(record)?;
        let now = self.clock.unix_ms();
        let left = wire.expires_at.checked_sub(now).filter(|l| *l > 0)?;
        let decided_at = wire.decided_at;
        let decision = Decision {
            verdict: wire.verdict(),
            ttl: None,
            valid_for: Some(Duration::from_millis(left)),
        };
        Some((decision, decided_at))
    }

    /// One look-up in the shared cache, within the read deadline.
    async fn lookup(&self, name: &str) -> Option<(Decision, u64)> {
        let started = std::time::Instant::now();
        let read: Result<Option<Vec<u8>>, StoreError> = self
            .store
            .query(redis::cmd("GET").arg(name), self.settings.read_timeout)
            .await;
        self.metrics
            .store_call("get", started.elapsed().as_secs_f64(), read.is_err());
        match read {
            Ok(Some(bytes)) => match self.open(name, &bytes) {
                Some(found) => {
                    self.metrics.shared_cache("hit");
                    Some(found)
                }
                None => {
                    self.metrics.shared_cache("rejected");
                    log::debug!("shared cache: a value that does not verify was ignored");
                    None
                }
            },
            Ok(None) => {
                self.metrics.shared_cache("miss");
                None
            }
            Err(e) => {
                self.metrics.shared_cache("error");
                log::debug!("shared cache: {e}");
                None
            }
        }
    }

    /// Writes a decision under `name` for `ttl`, off the request's path; then, when
    /// `lock` is given, ends the fleet's flight for it.
    fn put(&self, name: String, verdict: &Verdict, ttl: Duration, lock: Option<String>) {
        let now = self.clock.unix_ms();
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let value = (ttl_ms > 0).then(|| {
            let record = WireDecision::new(verdict, now, now.saturating_add(ttl_ms)).to_bytes();
            let tag = self
                .seal
                .tag(Purpose::Decision, &[name.as_bytes(), &record]);
            let mut value = Vec::with_capacity(TAG_LEN + record.len());
            value.extend_from_slice(&tag);
            value.extend_from_slice(&record);
            value
        });
        let store = self.store.clone();
        let metrics = self.metrics.clone();
        let deadline = self.settings.write_timeout;
        let instance = self.instance.clone();
        self.store.spawn(async move {
            if let Some(value) = value {
                let started = std::time::Instant::now();
                let written: Result<(), StoreError> = store
                    .query(
                        redis::cmd("SET")
                            .arg(&name)
                            .arg(value)
                            .arg("PX")
                            .arg(ttl_ms),
                        deadline,
                    )
                    .await;
                metrics.store_call("set", started.elapsed().as_secs_f64(), written.is_err());
                if let Err(e) = written {
                    log::debug!("shared cache: write failed: {e}");
                }
            }
            if let Some(lock) = lock {
                // only our own lock: one that expired and was taken since is another's
                let _: Result<i64, StoreError> = store
                    .query(
                        redis::cmd("EVAL")
                            .arg(RELEASE_LOCK)
                            .arg(1)
                            .arg(&lock)
                            .arg(&instance),
                        deadline,
                    )
                    .await;
            }
        });
    }

    /// The decision for `key`: from the shared cache when a verified one is there, else
    /// made here by `decide` (with `flight`, after waiting up to that long for another
    /// instance making the same one) and written back. `ttl_of` is the local cache's rule.
    pub async fn fetch<D, F>(
        &self,
        key: &CacheKey,
        flight: Option<Duration>,
        ttl_of: impl Fn(&Decision) -> Duration,
        decide: D,
    ) -> Result<Fetched, AuthError>
    where
        D: FnOnce() -> F,
        F: Future<Output = Result<Decision, AuthError>>,
    {
        let name = self.key_name(key, "d");
        if let Some((decision, decided_at)) = self.lookup(&name).await {
            return Ok(Fetched {
                decision,
                status: CacheStatus::Shared,
                decided_at: Some(decided_at),
            });
        }
        let mut lock = None;
        if let Some(wait) = flight.filter(|w| !w.is_zero()) {
            let lock_name = self.key_name(key, "l");
            let wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
            let taken: Result<Option<String>, StoreError> = self
                .store
                .query(
                    redis::cmd("SET")
                        .arg(&lock_name)
                        .arg(&self.instance)
                        .arg("NX")
                        .arg("PX")
                        .arg(wait_ms),
                    self.settings.read_timeout,
                )
                .await;
            match taken {
                Ok(Some(_)) => lock = Some(lock_name),
                // another instance is asking the backend: wait for its answer, but never
                // past `wait`; then decide here
                Ok(None) => {
                    if let Some(found) = self.wait_for(&name, &lock_name, wait).await {
                        return Ok(found);
                    }
                }
                // no store: decide here, as without one
                Err(e) => log::debug!("shared flight: {e}"),
            }
        }
        match decide().await {
            Ok(decision) => {
                self.put(name, &decision.verdict, ttl_of(&decision), lock);
                Ok(Fetched {
                    decision,
                    status: CacheStatus::Miss,
                    decided_at: None,
                })
            }
            Err(error) => {
                if let Some(lock) = lock {
                    // errors are never shared: let the waiting instances ask themselves
                    self.put(name, &Verdict::Abstain, Duration::ZERO, Some(lock));
                }
                Err(error)
            }
        }
    }

    /// Polls for the answer another instance is making, while its lock stands and for
    /// at most `wait`.
    async fn wait_for(&self, name: &str, lock_name: &str, wait: Duration) -> Option<Fetched> {
        let until = std::time::Instant::now() + wait;
        let mut pause = Duration::from_millis(2);
        loop {
            let left = until.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return None;
            }
            tokio::time::sleep(pause.min(left)).await;
            pause = (pause * 2).min(Duration::from_millis(20));
            let mut both = redis::pipe();
            both.cmd("GET").arg(name).cmd("EXISTS").arg(lock_name);
            let read: Result<(Option<Vec<u8>>, bool), StoreError> =
                self.store.pipeline(&both, self.settings.read_timeout).await;
            match read {
                Ok((Some(bytes), _)) => {
                    if let Some((decision, decided_at)) = self.open(name, &bytes) {
                        self.metrics.shared_cache("hit");
                        return Some(Fetched {
                            decision,
                            status: CacheStatus::Shared,
                            decided_at: Some(decided_at),
                        });
                    }
                    self.metrics.shared_cache("rejected");
                    return None;
                }
                // the other instance finished without a shareable answer
                Ok((None, false)) => return None,
                Ok((None, true)) => {}
                Err(_) => return None,
            }
        }
    }

    /// Where an allow of `authorizer` for `identity`, made at `decided_at`, stands.
    /// `self_contained`: the credential carries its own proof (a JWT, a static token), so
    /// only the revocation log can withdraw it.
    pub fn standing(
        &self,
        authorizer: &str,
        identity: &crate::identity::Identity,
        decided_at: u64,
        self_contained: bool,
    ) -> Standing {
        if let Some(reason) = self
            .denylist
            .check(authorizer, identity, decided_at, || self.clock.unix_ms())
        {
            return Standing::Revoked(reason);
        }
        if self_contained && self.settings.on_stale == StalePolicy::Closed && self.health.is_stale()
        {
            return Standing::Stale;
        }
        Standing::Clear
    }

    /// What an answer memoized now is valid under: the revocations applied so far; `None`
    /// while the feed is stale and the policy refuses what only the log could withdraw
    /// (then nothing is reused without the checks a decision makes).
    pub fn memo_epoch(&self) -> Option<u64> {
        let stale = self.settings.on_stale == StalePolicy::Closed && self.health.is_stale();
        (!stale).then(|| self.denylist.epoch())
    }

    /// Whether a cached allow made at `decided_at` may be reused: not when the feed is
    /// stale and it was made before the feed's last good read.
    pub fn may_reuse(&self, decided_at: u64) -> bool {
        !(self.settings.on_stale == StalePolicy::Closed
            && self.health.is_stale()
            && decided_at <= self.health.last_good())
    }

    /// Applies a revocation here (the denylist, then the cache) and appends it to the
    /// fleet's log. Returns the log entry's id.
    pub async fn revoke(&self, revocation: Revocation) -> Result<String, StoreError> {
        let id = feed::publish(&self.store, &self.settings, &self.seal, &revocation).await?;
        self.apply(revocation);
        Ok(id)
    }

    /// Adds one verified revocation to the denylist and evicts what it names.
    fn apply(&self, revocation: Revocation) {
        let description = revocation.describe();
        let evicted = if let Ok(cache) = self.cache.read() {
            cache.evict_allows(|identity| Denylist::evicts(&revocation, identity))
        } else {
            0
        };
        if self.denylist.apply(revocation) {
            self.metrics.revocation_applied();
            log::info!("revocation in force: {description} ({evicted} cached allow(s) evicted)");
        }
    }

    /// What `/readyz` says of the fleet's state: one line (the store, the feed's lag, the
    /// revocations in force), and whether it makes the instance unready (a stale feed
    /// under `on_stale = "closed"`), or only degraded (under `"local"`).
    pub fn readiness(&self) -> (String, Readiness) {
        let lag = self.health.lag(self.clock.unix_ms());
        let read = lag.map_or("never".to_string(), |l| {
            format!("{:.1} s ago", l.as_secs_f64())
        });
        let store = if self.store.connected() {
            "connected"
        } else {
            "not connected"
        };
        let stale = self.health.is_stale();
        let line = format!(
            "shared: store {store}; revocation feed {}last read {read}; {} revocation(s) in force",
            if stale { "stale, " } else { "" },
            self.denylist.len()
        );
        let readiness = match (stale, self.settings.on_stale) {
            (false, _) => Readiness::Ready,
            (true, StalePolicy::Closed) => Readiness::Unready,
            (true, StalePolicy::Local) => Readiness::Degraded,
        };
        (line, readiness)
    }

    /// A constant-time check of an admin bearer token against `shared.admin_token`.
    pub fn admin_token_matches(&self, presented: &[u8]) -> bool {
        match &self.settings.admin_token {
            // Trust decision: compared as digests in constant time, so neither the length
            // nor the bytes of the token leak through timing
            Some(token) => {
                use subtle::ConstantTimeEq as _;
                bool::from(sha256(token.bytes()).ct_eq(&sha256(presented)))
            }
            None => false,
        }
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }
}

impl crate::authorizer::FleetCounter for Shared {
    fn add<'a>(
        &'a self,
        key: &'a [u8; 32],
        window: Duration,
    ) -> crate::authorizer::Counting<'a, Option<u64>> {
        Box::pin(async move {
            let name = self.key_name(key, "f");
            let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
            let mut both = redis::pipe();
            // the window starts with the first failure: PEXPIRE … NX (Redis 7, Valkey)
            both.cmd("INCR")
                .arg(&name)
                .cmd("PEXPIRE")
                .arg(&name)
                .arg(window_ms)
                .arg("NX")
                .ignore();
            let counted: Result<(u64,), StoreError> =
                self.store.pipeline(&both, self.settings.read_timeout).await;
            counted.ok().map(|(count,)| count)
        })
    }

    fn count<'a>(
        &'a self,
        key: &'a [u8; 32],
    ) -> crate::authorizer::Counting<'a, Option<(u64, Duration)>> {
        Box::pin(async move {
            let name = self.key_name(key, "f");
            let mut both = redis::pipe();
            both.cmd("GET").arg(&name).cmd("PTTL").arg(&name);
            let read: Result<(Option<u64>, i64), StoreError> =
                self.store.pipeline(&both, self.settings.read_timeout).await;
            match read.ok()? {
                (Some(count), ttl) if ttl > 0 => Some((
                    count,
                    Duration::from_millis(u64::try_from(ttl).unwrap_or(0)),
                )),
                _ => None,
            }
        })
    }
}

/// Deletes a fleet lock only when it is still this instance's (EVAL with the text: one
/// round trip, and no script cache a Cluster node may lack).
const RELEASE_LOCK: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

/// Appends one revocation to the log of the store `settings` names, from a process that
/// does not serve (`verdict revoke`). Returns the entry's id.
pub async fn publish_once(
    settings: &SharedSettings,
    revocation: &Revocation,
) -> Result<String, StoreError> {
    let store = Store::start(settings).map_err(|e| StoreError::Redis(e.to_string()))?;
    let seal = Seal::new(settings.secret.bytes());
    feed::publish_with(&store, settings, &seal, revocation).await
}
