//! The resolver: one decision, from a caller-neutral request to an outcome. Routing, the
//! authorizer chain (through the cache, with `on_error` and the `claims_from` look-up)
//! and the route's access rules live here together; no actix type is seen.
//!
//! Takes: a [`ForwardedRequest`] that a dialect built from trusted facts, and the
//! worker's [`Fetcher`]. Returns: a [`Decided`]: the outcome, the route and authorizer
//! that decided, the cache status, and the reason of the rule that decided (for the log
//! line only). Must never: turn an error into an allow unless the route says
//! `on_error = "allow"`, skip the access and role check on a cache hit, or treat a fact
//! the caller did not send as matching a rule.

use std::borrow::Cow;

use opentelemetry::trace::SpanKind;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::authorizer::{Authorizer, AuthorizerKind, Fetcher, Question};
use crate::cache::{CacheStatus, Cached, DecisionCache};
use crate::clock::Clock;
use crate::config::Config;
use crate::decision::{Denial, Outcome, Verdict};
use crate::identity::{Claims, Identity};
use crate::metrics::Metrics;
use crate::policy::{ChainResult, OnError, Route, Routing, Ruling};
use crate::request::ForwardedRequest;
use crate::shared::{Shared, Standing};
use crate::tracing::Tracing;

/// Timeout for JWKS fetches made through a [`Fetcher`] (each source also has its own,
/// shorter or equal, deadline).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// One decision, with everything the log line and the metrics need.
#[derive(Debug, Clone)]
pub struct Decided<'a> {
    pub outcome: Outcome,
    /// The route that decided; `None` when the request was refused before routing.
    pub route: Option<&'a str>,
    /// The authorizer whose verdict ended the chain (or that failed).
    pub authorizer: Option<&'a str>,
    pub cache: Option<CacheStatus>,
    /// Why, from the rule that decided. Operators see it; clients never do.
    pub reason: Option<Cow<'static, str>>,
    /// The shortest remaining lifetime of the cached decisions this one rests on.
    pub cache_for: Duration,
    /// Who the canonical route's chain verified the credential as, whatever the outcome
    /// (a missing role is still somebody's): the log line names the user, never the
    /// credential.
    pub identity: Option<Arc<Identity>>,
    /// The last authorizer failure on the way (a backend down, a JWKS unreachable),
    /// whatever `on_error` made of it: the decision's log line carries it, the one event
    /// a failure logs.
    pub error: Option<String>,
    /// Decision-cache look-ups made on the way (for the metrics of a memoized answer).
    pub lookups: u32,
}

impl Decided<'_> {
    /// A request ended before any route was chosen: refused, or only a notification.
    pub fn before_routing(outcome: Outcome) -> Decided<'static> {
        Decided {
            reason: outcome.refusal_reason(),
            outcome,
            route: None,
            authorizer: None,
            cache: None,
            cache_for: Duration::ZERO,
            identity: None,
            error: None,
            lookups: 0,
        }
    }
}

/// Shared by every worker: the configuration, the decision cache and the metrics.
pub struct Resolver {
    pub config: Arc<Config>,
    pub cache: DecisionCache,
    pub metrics: Metrics,
    /// What every deadline is read from: the cache's, the key fetches', the backends'.
    pub clock: Clock,
    /// Which configuration this is since start: 0, then one more per reload.
    pub generation: u64,
    /// The fleet's shared state (`[shared]`): kept across reloads that do not change it.
    pub shared: Option<Arc<Shared>>,
    /// Traces (`[tracing]`), from start to stop (a change needs a restart).
    pub tracing: Option<Tracing>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("generation", &self.generation)
            .field("configuration", &self.config.fingerprint)
            .finish()
    }
}

impl Resolver {
    pub fn new(config: Arc<Config>) -> std::io::Result<Resolver> {
        Resolver::with_clock(config, Clock::system())
    }

    /// A resolver whose deadlines all read `clock` (a manual one, in tests).
    pub fn with_clock(config: Arc<Config>, clock: Clock) -> std::io::Result<Resolver> {
        let metrics = Metrics::new().map_err(|e| std::io::Error::other(format!("metrics: {e}")))?;
        metrics.config_in_force(&config.fingerprint);
        let cache = DecisionCache::new(config.cache, clock.clone());
        let shared = match &config.shared {
            Some(settings) => Some(Shared::start(
                settings.clone(),
                metrics.clone(),
                clock.clone(),
                cache.clone(),
                None,
            )?),
            None => None,
        };
        let tracing = match &config.tracing {
            Some(settings) => Some(Tracing::start(settings.clone())?),
            None => None,
        };
        Ok(Resolver {
            cache,
            config,
            metrics,
            clock,
            generation: 0,
            shared,
            tracing,
        })
    }

    /// The network tools for one worker (or a test): key-fetch and backend clients, the
    /// metrics, the clock.
    pub fn fetcher(&self) -> Fetcher {
        let mut fetcher = Fetcher::for_authorizers(
            FETCH_TIMEOUT,
            &self.config.authorizers,
            Some(self.metrics.clone()),
        );
        fetcher.clock = self.clock.clone();
        fetcher.tracing = self.tracing.clone();
        fetcher.fleet = self
            .shared
            .clone()
            .map(|shared| shared as Arc<dyn crate::authorizer::FleetCounter>);
        fetcher
    }

    /// The resolver for a reloaded configuration: the same metrics, the same cache where
    /// it can be kept, the same shared state unless `[shared]` changed (the revocations
    /// in force are kept either way), the next generation.
    pub fn succeed(&self, config: Config) -> std::io::Result<Resolver> {
        let cache = self.cache.reconfigured(config.cache);
        let shared = match (&self.shared, &config.shared) {
            (Some(old), settings) => old.succeed(settings.clone(), &cache)?,
            (None, Some(settings)) => Some(Shared::start(
                settings.clone(),
                self.metrics.clone(),
                self.clock.clone(),
                cache.clone(),
                None,
            )?),
            (None, None) => None,
        };
        Ok(Resolver {
            cache,
            config: Arc::new(config),
            metrics: self.metrics.clone(),
            clock: self.clock.clone(),
            generation: self.generation + 1,
            shared,
            tracing: self.tracing.clone(),
        })
    }

    /// Routes every reading of the request, runs each route's authorizer chain through
    /// the cache, and applies the route's access rules. The request is allowed only when
    /// every reading is; the identity is the canonical reading's.
    pub async fn decide(&self, request: &ForwardedRequest<'_>, fetcher: &Fetcher) -> Decided<'_> {
        // Trust decision: a client's copy of a configured identity header, or a name that
        // folds to one (CGI-style applications read `X_User` as `x-user`), would pass as
        // the identity verdict sets: the request is refused, as for the built-in families
        let custom = &self.config.answer.custom;
        if !custom.is_empty()
            && request.headers().iter().any(|header| {
                let folded = crate::request::cgi_folded(&header.name);
                custom
                    .iter()
                    .any(|(name, _)| crate::request::cgi_folded(name.as_str()) == folded)
            })
        {
            return Decided::before_routing(Outcome::Refused(
                crate::decision::Refusal::Unreadable(
                    crate::request::ReadError::IdentityHeaderAlias,
                ),
            ));
        }
        let Routing { route, others } = self.config.policy.route_readings(request);
        if log::log_enabled!(log::Level::Debug) {
            log::debug!(
                "route {} ({}) for {} {} {:?}",
                route.name,
                route.describe_rules(),
                request.target().method.as_deref().unwrap_or("-"),
                request.target().host.as_deref().unwrap_or("-"),
                request.target().path.as_deref().unwrap_or("-"),
            );
            for (other, why) in &others {
                log::debug!("route {} must allow too: {why}", other.name);
            }
        }
        let mut decided = self.decide_on(route, request, fetcher).await;
        if !matches!(decided.outcome, Outcome::Allow { .. }) {
            return decided;
        }
        for (other, reading) in others {
            // Trust decision: another reading of the target, or a fact the caller did not
            // send, may put the request under this route; its answer must be an allow too.
            let theirs = self.decide_on(other, request, fetcher).await;
            if !matches!(theirs.outcome, Outcome::Allow { .. }) {
                let why = theirs.reason.as_deref().unwrap_or(theirs.outcome.name());
                // the refusing route's failure explains the refusal; else the canonical
                // route's failure still happened and is still this decision's one event
                let error = theirs.error.clone().or(decided.error);
                return Decided {
                    reason: Some(Cow::Owned(format!(
                        "{reading}: route {} refuses: {why}",
                        other.name
                    ))),
                    error,
                    ..theirs
                };
            }
            // The allow rests on this route's decisions too.
            if let Outcome::Allow { cache_for, .. } = &mut decided.outcome {
                *cache_for = (*cache_for).min(theirs.cache_for);
            }
            decided.cache_for = decided.cache_for.min(theirs.cache_for);
            if decided.error.is_none() {
                decided.error = theirs.error;
            }
            decided.lookups += theirs.lookups;
        }
        decided
    }

    /// One route's decision: its chain (unless its access makes that moot), then its
    /// access rules.
    async fn decide_on<'a>(
        &'a self,
        route: &'a Route,
        request: &ForwardedRequest<'_>,
        fetcher: &Fetcher,
    ) -> Decided<'a> {
        let mut decided = Decided {
            outcome: Outcome::Forbidden,
            route: Some(&route.name),
            authorizer: None,
            cache: None,
            reason: None,
            cache_for: Duration::MAX,
            identity: None,
            error: None,
            lookups: 0,
        };
        let chain = if !route.asks_authorizers() {
            ChainResult::NoneApplied {
                credential_presented: false,
            }
        } else {
            self.run_chain(route, request, fetcher, &mut decided).await
        };
        if let ChainResult::Allowed(identity) = &chain {
            decided.identity = Some(identity.clone());
        }
        let Ruling { outcome, reason } =
            self.config
                .policy
                .apply(route, chain, request, decided.cache_for);
        decided.cache_for = match &outcome {
            Outcome::Allow { cache_for, .. } => *cache_for,
            _ => Duration::ZERO,
        };
        decided.outcome = outcome;
        decided.reason = reason;
        decided
    }

    /// The route's authorizers in order: the first non-abstain ends the chain; an error
    /// ends it as the route's `on_error` says.
    async fn run_chain<'a>(
        &'a self,
        route: &Route,
        request: &ForwardedRequest<'_>,
        fetcher: &Fetcher,
        decided: &mut Decided<'a>,
    ) -> ChainResult {
        let mut credential_presented = false;
        for &index in &route.chain {
            let authorizer = &self.config.authorizers[index];
            // Trust decision: a credential meant for one audience (a viewer's token) does
            // not open another's routes unless the route names its authorizer.
            if route.implicit_chain && !authorizer.serves(request.caller().audience) {
                continue;
            }
            let claims = match authorizer.claims_source {
                Some(source) => {
                    self.claims_of(&self.config.authorizers[source], request, fetcher)
                        .await
                }
                None => None,
            };
            if let Some((_, remaining)) = &claims {
                decided.cache_for = decided.cache_for.min(*remaining);
            }
            let Some(question) = authorizer.prepare(request, claims.as_ref().map(|(c, _)| &**c))
            else {
                log::debug!(
                    "authorizer {}: abstains: no credential in its sources",
                    authorizer.name
                );
                continue;
            };
            credential_presented = true;
            let cached = self.ask(&question, fetcher).await;
            self.metrics.cache(cached.status == CacheStatus::Hit);
            decided.lookups += 1;
            if let (Some(shared), Ok(Verdict::Allow(identity))) = (&self.shared, &cached.answer) {
                // Trust decision: every allow, cached or not, is checked against the
                // fleet's revocations; while the feed is stale, what only the log could
                // withdraw is refused under the default policy
                match shared.standing(
                    &authorizer.name,
                    identity,
                    cached.decided_at,
                    !authorizer.asks_a_backend(),
                ) {
                    Standing::Clear => {}
                    Standing::Revoked(why) => {
                        decided.authorizer = Some(&authorizer.name);
                        decided.cache = Some(cached.status);
                        decided.identity = Some(identity.clone());
                        return ChainResult::Denied(Denial::InvalidCredential(why));
                    }
                    Standing::Stale => {
                        decided.authorizer = Some(&authorizer.name);
                        decided.cache = Some(cached.status);
                        decided.error = Some(format!(
                            "authorizer {}: the revocation feed is stale (shared.on_stale = \"closed\"): its allow cannot be checked",
                            authorizer.name
                        ));
                        return ChainResult::Failed;
                    }
                }
            }
            decided.cache = Some(cached.status);
            decided.authorizer = Some(&authorizer.name);
            // An answer built on this decision must not outlive it anywhere.
            decided.cache_for = decided.cache_for.min(cached.remaining);
            if log::log_enabled!(log::Level::Debug) {
                // the kind of key only: the key and its material stand for a credential
                let answer = match &cached.answer {
                    Ok(verdict) => match verdict {
                        Verdict::Allow(identity) => format!("allows user {}", identity.user_id),
                        Verdict::Deny(denial) => format!("denies: {}", denial.reason()),
                        Verdict::Abstain => "abstains: not a credential it knows".to_string(),
                    },
                    Err(_) => "could not decide".to_string(),
                };
                log::debug!(
                    "authorizer {}: {answer} (cache {} on a {} key, {:?} left)",
                    authorizer.name,
                    cached.status.as_str(),
                    question.key_kind(),
                    cached.remaining
                );
            }
            match cached.answer {
                // the first authorizer that knows the credential ends the chain
                Ok(Verdict::Allow(identity)) => return ChainResult::Allowed(identity),
                Ok(Verdict::Deny(denial)) => return ChainResult::Denied(denial),
                Ok(Verdict::Abstain) => {}
                Err(error) => {
                    // one event per failure: the decision's own line says it (at warn)
                    decided.error = Some(format!(
                        "authorizer {} could not decide: {error}",
                        authorizer.name
                    ));
                    match route.on_error {
                        OnError::Deny => return ChainResult::Failed,
                        // The operator chose availability over safety for this route; the
                        // policy's reason says the request went through unauthenticated.
                        OnError::Allow => return ChainResult::FailedOpen,
                        OnError::Abstain => continue,
                    }
                }
            }
        }
        ChainResult::NoneApplied {
            credential_presented,
        }
    }

    /// One question, through the cache (and the fleet's shared cache, for the
    /// authorizers that share their decisions).
    async fn ask(&self, question: &Question<'_, '_>, fetcher: &Fetcher) -> Cached {
        let authorizer = question.authorizer();
        let key = DecisionCache::key(&authorizer.fingerprint, question.cache_material());
        let Some(shared) = &self.shared else {
            return self
                .cache
                .get_or_decide(key, || question.decide(fetcher))
                .await;
        };
        let cached = if shared.shares_decisions(&authorizer.name, authorizer.asks_a_backend()) {
            let flight = authorizer
                .backend_timeout()
                .map(|timeout| timeout.min(shared.settings.flight_wait));
            self.cache
                .get_or_fetch(key, || async {
                    // a span for the store's part, when the decision is traced
                    let span = self
                        .tracing
                        .as_ref()
                        .and_then(|t| t.child("verdict shared store", SpanKind::Client));
                    let fetched = shared
                        .fetch(
                            &key,
                            flight,
                            |decision| self.cache.ttl_for(decision),
                            || question.decide(fetcher),
                        )
                        .await;
                    if let Some(span) = span {
                        let status = match &fetched {
                            Ok(f) => f.status.as_str(),
                            Err(_) => "error",
                        };
                        crate::tracing::finish(
                            &span,
                            vec![opentelemetry::KeyValue::new("verdict.shared", status)],
                            fetched.is_err(),
                        );
                    }
                    fetched
                })
                .await
        } else {
            self.cache
                .get_or_decide(key, || question.decide(fetcher))
                .await
        };
        // Trust decision: while the revocation feed is stale, a cached allow made before
        // its last good read is not reused: it is made afresh, here, without the store
        if cached.status != CacheStatus::Miss
            && matches!(cached.answer, Ok(Verdict::Allow(_)))
            && !shared.may_reuse(cached.decided_at)
        {
            self.cache.forget(&key);
            return self
                .cache
                .get_or_decide(key, || question.decide(fetcher))
                .await;
        }
        cached
    }

    /// The claims of the token that `jwt` authorizer `authorizer` allows for this
    /// request, through the cache like any other decision. `None` when it does not allow.
    async fn claims_of(
        &self,
        authorizer: &Authorizer,
        request: &ForwardedRequest<'_>,
        fetcher: &Fetcher,
    ) -> Option<(Arc<Claims>, Duration)> {
        let question = authorizer.prepare(request, None)?;
        let cached = self.ask(&question, fetcher).await;
        match cached.answer.ok()? {
            Verdict::Allow(identity) => {
                // a revoked token's claims are no one's
                if let Some(shared) = &self.shared
                    && shared.standing(
                        &authorizer.name,
                        &identity,
                        cached.decided_at,
                        !authorizer.asks_a_backend(),
                    ) != Standing::Clear
                {
                    return None;
                }
                Some((identity.claims.clone()?, cached.remaining))
            }
            _ => None,
        }
    }

    /// One loop per JWKS, refreshing it every `jwks_refresh` on the resolver's clock, so
    /// keys stay current without a request paying for the fetch. Each loop ends once the
    /// resolver is gone (a reload replaced it, or the servers stopped). The caller runs
    /// them (the edge spawns them; a test drives them with a manual clock).
    pub fn key_refreshers(resolver: &Arc<Resolver>) -> Vec<impl Future<Output = ()> + 'static> {
        let mut loops = Vec::new();
        for (index, authorizer) in resolver.config.authorizers.iter().enumerate() {
            let AuthorizerKind::Jwt(jwt) = &authorizer.kind else {
                continue;
            };
            let Some(interval) = jwt.jwks_refresh_interval() else {
                continue;
            };
            let weak = Arc::downgrade(resolver);
            let clock = resolver.clock.clone();
            loops.push(async move {
                let mut fetcher = Fetcher::new(FETCH_TIMEOUT);
                fetcher.clock = clock.clone();
                let mut next = clock.now() + interval;
                loop {
                    // on a schedule, not "interval after the last fetch ended"
                    clock.sleep_until(next).await;
                    next = (next + interval).max(clock.now());
                    let Some(resolver) = weak.upgrade() else {
                        break;
                    };
                    fetcher.metrics = Some(resolver.metrics.clone());
                    let authorizer = &resolver.config.authorizers[index];
                    if let AuthorizerKind::Jwt(jwt) = &authorizer.kind
                        && let Err(e) = jwt.prefetch(&fetcher).await
                    {
                        log::warn!(
                            "authorizer {}: JWKS refresh failed, keeping the last keys: {e}",
                            authorizer.name
                        );
                    }
                }
            });
        }
        loops
    }

    /// Fetches every JWKS once, so the first requests do not wait (or fail) for keys.
    pub async fn prefetch_keys(&self) {
        let mut fetcher = Fetcher::new(FETCH_TIMEOUT);
        fetcher.metrics = Some(self.metrics.clone());
        fetcher.clock = self.clock.clone();
        for authorizer in &self.config.authorizers {
            if let AuthorizerKind::Jwt(jwt) = &authorizer.kind
                && let Err(e) = jwt.prefetch(&fetcher).await
            {
                log::error!(
                    "authorizer {}: initial JWKS fetch failed: {e}",
                    authorizer.name
                );
            }
        }
    }
}

#[cfg(test)]
mod tests;
