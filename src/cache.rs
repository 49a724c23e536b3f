//! The decision cache: authorizer results keyed by a hash of what they depend on.
//!
//! Takes: a key and what makes the future that would decide on a miss. The key is the
//! SHA-256 of the authorizer's fingerprint and its question's cache material: for `jwt`
//! and `static`, the presented credential; for `http`, the rendered backend request
//! (method, first URL with its query, every header sent, the body), or the rendered
//! `cache_key` templates when an operator chose a coarser key. Returns: the verdict, how
//! long it stays valid, and whether it came from the cache. Allows live `cache.allow_ttl`
//! but never past the credential's own expiry, denies and abstains `cache.deny_ttl`;
//! concurrent misses for one key run the decision once. The store holds at most
//! `cache.max_entries`, each entry only a verdict and its deadline.
//! Must never: cache an error, store a raw credential, serve an entry past its deadline,
//! or be consulted for route policy (roles, paths, methods are re-checked by the caller on
//! every request). Deadlines are read from the resolver's [`Clock`].

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::clock::Clock;
use crate::decision::{AuthError, Decision, Verdict};
use crate::digest::sha256_of_parts;
use crate::flight::SingleFlight;
use crate::identity::Identity;

/// The identity of one authorizer question: SHA-256, so keys never collide in practice
/// and the credential itself is never kept.
pub type CacheKey = [u8; 32];

/// Where a decision came from, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    Hit,
    Miss,
    /// Not in this instance's cache, but in the fleet's shared one (verified).
    Shared,
}

impl CacheStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "hit",
            CacheStatus::Miss => "miss",
            CacheStatus::Shared => "shared",
        }
    }
}

/// One stored decision: the verdict and when it stops being valid. Nothing else, so an
/// entry is the key, a verdict (an `Arc` for an allow) and a deadline.
#[derive(Debug, Clone)]
struct Entry {
    verdict: Verdict,
    expires_at: Instant,
    /// When the decision was made, Unix milliseconds: a stale revocation feed stops the
    /// reuse of decisions made before its last good read.
    decided_at: u64,
}

impl Entry {
    /// How long it has left at `now`; `None` once it has expired.
    fn remaining(&self, now: Instant) -> Option<Duration> {
        let left = self.expires_at.checked_duration_since(now)?;
        (!left.is_zero()).then_some(left)
    }
}

/// A verdict, where it came from, and how much longer it may be reused.
#[derive(Debug)]
pub struct Cached {
    pub answer: Result<Verdict, Arc<AuthError>>,
    pub status: CacheStatus,
    /// How long this answer stays valid in verdict's cache: the longest any other cache
    /// (a proxy's) may keep an answer built on it. Zero for an error.
    pub remaining: Duration,
    /// When the answer was made, Unix milliseconds (now, for a fresh one).
    pub decided_at: u64,
}

/// Decision-cache settings, validated.
#[derive(Debug, Clone, Copy)]
pub struct CacheSettings {
    pub max_entries: u64,
    pub allow_ttl: Duration,
    pub deny_ttl: Duration,
}

/// What a miss found: the decision, where it came from, and when it was made when that
/// was not now (a shared decision's own time).
#[derive(Debug)]
pub struct Fetched {
    pub decision: Decision,
    pub status: CacheStatus,
    pub decided_at: Option<u64>,
}

/// A miss's answer as the callers that waited for it share it.
type Answer = Result<(Verdict, Duration, CacheStatus, u64), Arc<AuthError>>;

/// The shared cache of authorizer decisions.
#[derive(Clone)]
pub struct DecisionCache {
    /// Bounded by count; each entry carries its own deadline, checked on every read (an
    /// expired entry is a miss, and is removed then or evicted when room is needed).
    inner: Arc<quick_cache::sync::Cache<CacheKey, Entry>>,
    settings: CacheSettings,
    /// Decisions being made now, by key: concurrent misses wait for the one in flight
    /// instead of asking again, whether or not the answer will be kept.
    in_flight: Arc<SingleFlight<CacheKey, Answer>>,
    /// What every deadline is read from.
    clock: Clock,
}

impl DecisionCache {
    pub fn new(settings: CacheSettings, clock: Clock) -> DecisionCache {
        let capacity = usize::try_from(settings.max_entries).unwrap_or(usize::MAX);
        DecisionCache {
            inner: Arc::new(quick_cache::sync::Cache::new(capacity)),
            settings,
            in_flight: Arc::default(),
            clock,
        }
    }

    /// The same cache under new settings: the entries are kept (their keys carry each
    /// authorizer's fingerprint, so a changed authorizer never meets its old ones) unless
    /// the size changed, which needs a new cache.
    pub fn reconfigured(&self, settings: CacheSettings) -> DecisionCache {
        if settings.max_entries == self.settings.max_entries {
            DecisionCache {
                inner: self.inner.clone(),
                settings,
                in_flight: self.in_flight.clone(),
                clock: self.clock.clone(),
            }
        } else {
            DecisionCache::new(settings, self.clock.clone())
        }
    }

    /// The live entry for `key` and how long it has left. An expired one is removed (only
    /// if it is still the expired one: a fresh answer stored meanwhile stays).
    fn lookup(&self, key: &CacheKey) -> Option<(Verdict, Duration, u64)> {
        let entry = self.inner.get(key)?;
        let now = self.clock.now();
        match entry.remaining(now) {
            Some(left) => Some((entry.verdict, left, entry.decided_at)),
            None => {
                self.inner
                    .remove_if(key, |stored| stored.remaining(now).is_none());
                None
            }
        }
    }

    /// The key for one authorizer's question: its fingerprint (name, settings, files)
    /// and the question's material.
    pub fn key(fingerprint: &[u8; 32], credential: &str) -> CacheKey {
        // the fingerprint has a fixed length, so ("ab","c") and ("a","bc") cannot meet
        sha256_of_parts(&[fingerprint, credential.as_bytes()])
    }

    /// How long a decision may be reused (here, and in the fleet's shared cache).
    pub fn ttl_for(&self, decision: &Decision) -> Duration {
        let configured = match decision.verdict {
            Verdict::Allow(_) => self.settings.allow_ttl,
            Verdict::Deny(_) | Verdict::Abstain => self.settings.deny_ttl,
        };
        let base = decision.ttl.unwrap_or(configured);
        match decision.valid_for {
            Some(cap) => base.min(cap),
            None => base,
        }
    }

    /// The cached verdict for `key`, or the verdict of the future `decide` makes (made
    /// and run once for all concurrent callers). A decision whose TTL is zero is shared
    /// with the callers waiting for it and never stored (no entry, nothing to expire).
    /// Errors reach every waiter and are not stored.
    pub async fn get_or_decide<D, F>(&self, key: CacheKey, decide: D) -> Cached
    where
        D: FnOnce() -> F,
        F: Future<Output = Result<Decision, AuthError>>,
    {
        self.get_or_fetch(key, || async {
            decide().await.map(|decision| Fetched {
                decision,
                status: CacheStatus::Miss,
                decided_at: None,
            })
        })
        .await
    }

    /// [`DecisionCache::get_or_decide`] for a miss that may be answered from somewhere
    /// other than the authorizer (the fleet's shared cache): `fetch` says where its
    /// answer came from.
    pub async fn get_or_fetch<D, F>(&self, key: CacheKey, fetch: D) -> Cached
    where
        D: FnOnce() -> F,
        F: Future<Output = Result<Fetched, AuthError>>,
    {
        if let Some((verdict, remaining, decided_at)) = self.lookup(&key) {
            return Cached {
                answer: Ok(verdict),
                status: CacheStatus::Hit,
                remaining,
                decided_at,
            };
        }
        let (answer, ran) = self
            .in_flight
            .run(key, || async {
                // A caller that just finished stored its answer before its flight ended:
                // look again, so a caller that missed a moment ago does not ask twice.
                if let Some((verdict, remaining, decided_at)) = self.lookup(&key) {
                    return Ok((verdict, remaining, CacheStatus::Hit, decided_at));
                }
                match fetch().await {
                    Ok(Fetched {
                        decision,
                        status,
                        decided_at,
                    }) => {
                        let ttl = self.ttl_for(&decision);
                        let decided_at = decided_at.unwrap_or_else(|| self.clock.unix_ms());
                        if !ttl.is_zero() {
                            let entry = Entry {
                                verdict: decision.verdict.clone(),
                                expires_at: self.clock.now() + ttl,
                                decided_at,
                            };
                            self.inner.insert(key, entry);
                        }
                        Ok((decision.verdict, ttl, status, decided_at))
                    }
                    Err(error) => Err(Arc::new(error)),
                }
            })
            .await;
        match answer {
            Ok((verdict, remaining, status, decided_at)) => Cached {
                answer: Ok(verdict),
                // a caller that waited for another's answer did not ask
                status: if ran { status } else { CacheStatus::Hit },
                remaining,
                decided_at,
            },
            Err(error) => Cached {
                answer: Err(error),
                status: CacheStatus::Miss,
                remaining: Duration::ZERO,
                decided_at: self.clock.unix_ms(),
            },
        }
    }

    /// Forgets the decision for `key`, so the next ask decides afresh.
    pub fn forget(&self, key: &CacheKey) {
        self.inner.remove(key);
    }

    /// Drops every allow whose identity `revoked` names; returns how many. A revocation
    /// evicts what it matches at once (every decision checks the denylist too).
    pub fn evict_allows(&self, revoked: impl Fn(&Identity) -> bool) -> usize {
        let before = self.inner.len();
        self.inner.retain(|_, entry| match &entry.verdict {
            Verdict::Allow(identity) => !revoked(identity),
            _ => true,
        });
        before.saturating_sub(self.inner.len())
    }

    /// Number of entries held. An expired entry counts until a read removes it or the
    /// size bound evicts it.
    pub fn entry_count(&self) -> u64 {
        u64::try_from(self.inner.len()).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::Denial;
    use crate::digest::sha256;
    use crate::identity::Identity;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A cache on a manual clock: its entries expire only when the test moves the clock.
    fn cache(allow_ms: u64, deny_ms: u64) -> (DecisionCache, Clock) {
        let clock = Clock::manual();
        let cache = DecisionCache::new(
            CacheSettings {
                max_entries: 1000,
                allow_ttl: Duration::from_millis(allow_ms),
                deny_ttl: Duration::from_millis(deny_ms),
            },
            clock.clone(),
        );
        (cache, clock)
    }

    fn allow(valid_for: Option<Duration>) -> Decision {
        Decision::allow(
            Identity {
                user_id: "u".into(),
                ..Identity::default()
            },
            valid_for,
        )
    }

    /// `count` concurrent asks for `key`, each decision counted in `calls` and held open
    /// until every ask has joined (a yield per ask, so no time needs to pass).
    async fn ask_at_once(
        cache: &DecisionCache,
        key: CacheKey,
        count: usize,
        calls: &Arc<AtomicUsize>,
    ) -> Vec<Cached> {
        let asks = (0..count).map(|_| async {
            cache
                .get_or_decide(key, || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    for _ in 0..count {
                        actix_web::rt::task::yield_now().await;
                    }
                    Ok(allow(None))
                })
                .await
        });
        futures_util::future::join_all(asks).await
    }

    #[actix_web::test]
    async fn the_cache_holds_at_most_max_entries() {
        let cache = DecisionCache::new(
            CacheSettings {
                max_entries: 10,
                allow_ttl: Duration::from_secs(60),
                deny_ttl: Duration::from_secs(60),
            },
            Clock::manual(),
        );
        for i in 0..100 {
            let key = DecisionCache::key(&sha256(b"a"), &format!("token-{i}"));
            cache.get_or_decide(key, || async { Ok(allow(None)) }).await;
        }
        assert!(cache.entry_count() <= 10, "{} entries", cache.entry_count());
        assert!(cache.entry_count() > 0);
    }

    #[actix_web::test]
    async fn an_expired_entry_is_a_miss_and_is_removed() {
        let (cache, clock) = cache(30, 30);
        let key = DecisionCache::key(&sha256(b"a"), "token");
        cache.get_or_decide(key, || async { Ok(allow(None)) }).await;
        assert_eq!(cache.entry_count(), 1);
        clock.advance(Duration::from_millis(29));
        assert!(cache.lookup(&key).is_some(), "1 ms left");
        clock.advance(Duration::from_millis(1));
        assert!(cache.lookup(&key).is_none(), "expired");
        assert_eq!(cache.entry_count(), 0, "removed on the read");
        let again = cache.get_or_decide(key, || async { Ok(allow(None)) }).await;
        assert_eq!(again.status, CacheStatus::Miss);
    }

    #[actix_web::test]
    async fn second_call_is_a_hit() {
        let (cache, _clock) = cache(10_000, 1_000);
        let key = DecisionCache::key(&sha256(b"a"), "token");
        let Cached {
            answer: first,
            status,
            ..
        } = cache.get_or_decide(key, || async { Ok(allow(None)) }).await;
        assert!(first.is_ok());
        assert_eq!(status, CacheStatus::Miss);
        let Cached { status, .. } = cache
            .get_or_decide(key, || async { panic!("must not run on a hit") })
            .await;
        assert_eq!(status, CacheStatus::Hit);
    }

    #[actix_web::test]
    async fn errors_are_not_cached() {
        let (cache, _clock) = cache(10_000, 1_000);
        let key = DecisionCache::key(&sha256(b"a"), "token");
        let Cached { answer: result, .. } = cache
            .get_or_decide(key, || async { Err(AuthError::Internal("boom".into())) })
            .await;
        assert!(result.is_err());
        let Cached {
            answer: result,
            status,
            ..
        } = cache.get_or_decide(key, || async { Ok(allow(None)) }).await;
        assert!(result.is_ok());
        assert_eq!(status, CacheStatus::Miss);
    }

    #[actix_web::test]
    async fn deny_expires_before_allow_and_exp_caps_allow() {
        let (cache, clock) = cache(10_000, 100);
        let deny_key = DecisionCache::key(&sha256(b"a"), "bad");
        let allow_key = DecisionCache::key(&sha256(b"a"), "good");
        let short_key = DecisionCache::key(&sha256(b"a"), "expiring");
        let _ = cache
            .get_or_decide(deny_key, || async {
                Ok(Decision::deny(Denial::InvalidCredential("x")))
            })
            .await;
        let _ = cache
            .get_or_decide(allow_key, || async { Ok(allow(None)) })
            .await;
        let _ = cache
            .get_or_decide(short_key, || async {
                Ok(allow(Some(Duration::from_millis(100))))
            })
            .await;
        clock.advance(Duration::from_millis(100));
        let Cached {
            status: deny_status,
            ..
        } = cache
            .get_or_decide(deny_key, || async { Ok(Decision::abstain()) })
            .await;
        let Cached {
            status: allow_status,
            ..
        } = cache
            .get_or_decide(allow_key, || async { Ok(Decision::abstain()) })
            .await;
        let Cached {
            status: short_status,
            ..
        } = cache
            .get_or_decide(short_key, || async { Ok(Decision::abstain()) })
            .await;
        assert_eq!(deny_status, CacheStatus::Miss);
        assert_eq!(allow_status, CacheStatus::Hit);
        assert_eq!(
            short_status,
            CacheStatus::Miss,
            "an allow never outlives its token"
        );
    }

    #[actix_web::test]
    async fn concurrent_misses_decide_once() {
        let (cache, _clock) = cache(10_000, 1_000);
        let key = DecisionCache::key(&sha256(b"a"), "token");
        let calls = Arc::new(AtomicUsize::new(0));
        let results = ask_at_once(&cache, key, 100, &calls).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(results.iter().all(|c| c.answer.is_ok()));
        assert_eq!(
            results
                .iter()
                .filter(|c| c.status == CacheStatus::Miss)
                .count(),
            1
        );
    }

    #[actix_web::test]
    async fn a_hit_says_how_long_it_has_left() {
        let (cache, clock) = cache(10_000, 1_000);
        let key = DecisionCache::key(&sha256(b"a"), "token");
        let first = cache
            .get_or_decide(key, || async { Ok(allow(Some(Duration::from_secs(3)))) })
            .await;
        assert_eq!(first.remaining, Duration::from_secs(3));
        clock.advance(Duration::from_millis(300));
        let hit = cache.get_or_decide(key, || async { Ok(allow(None)) }).await;
        assert_eq!(hit.status, CacheStatus::Hit);
        assert_eq!(hit.remaining, Duration::from_millis(2700));
        let error = cache
            .get_or_decide(DecisionCache::key(&sha256(b"a"), "x"), || async {
                Err(AuthError::Internal("boom".into()))
            })
            .await;
        assert_eq!(error.remaining, Duration::ZERO);
    }

    #[actix_web::test]
    async fn a_zero_ttl_is_never_stored_but_concurrent_misses_still_decide_once() {
        let (cache, _clock) = cache(0, 0);
        let key = DecisionCache::key(&sha256(b"a"), "token");
        let calls = Arc::new(AtomicUsize::new(0));
        let results = ask_at_once(&cache, key, 50, &calls).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1, "coalesced");
        assert!(results.iter().all(|c| c.answer.is_ok()));
        assert_eq!(cache.entry_count(), 0, "nothing stored");
        // and the next request decides again
        cache
            .get_or_decide(key, || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok(allow(None))
            })
            .await;
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[actix_web::test]
    async fn a_cancelled_leader_hands_over_to_a_waiter() {
        let (cache, _clock) = cache(10_000, 1_000);
        let key = DecisionCache::key(&sha256(b"a"), "token");
        let leader = cache.get_or_decide(key, std::future::pending);
        let waiter = cache.get_or_decide(key, || async { Ok(allow(None)) });
        // the leader starts, the waiter joins it, then the leader's client goes away
        let mut leader = Box::pin(leader);
        assert!(futures_util::FutureExt::now_or_never(&mut leader).is_none());
        let mut waiter = Box::pin(waiter);
        assert!(futures_util::FutureExt::now_or_never(&mut waiter).is_none());
        drop(leader);
        let answer = futures_util::FutureExt::now_or_never(&mut waiter)
            .expect("the waiter decides itself, at once");
        assert!(answer.answer.is_ok());
    }

    #[test]
    fn keys_separate_authorizers_and_credentials() {
        assert_ne!(
            DecisionCache::key(&sha256(b"a"), "t1"),
            DecisionCache::key(&sha256(b"b"), "t1")
        );
        assert_ne!(
            DecisionCache::key(&sha256(b"a"), "t1"),
            DecisionCache::key(&sha256(b"a"), "t2")
        );
        assert_eq!(
            DecisionCache::key(&sha256(b"a"), "t1"),
            DecisionCache::key(&sha256(b"a"), "t1")
        );
    }
}
