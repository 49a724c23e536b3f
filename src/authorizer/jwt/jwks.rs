//! A JWKS endpoint: fetch, refresh and the refetch rate limit.
//!
//! Takes: the URL and pinned algorithms of a `jwt` authorizer's `jwks_url`, and a
//! per-worker [`Fetcher`]. Returns: the last good [`KeySet`], fetched at start, refreshed
//! in the background every `jwks_refresh`, refetched on an unknown `kid` at most once per
//! `jwks_min_refetch` (concurrent callers share one fetch); every deadline read from the
//! fetcher's clock. Must never: take a symmetric
//! key from a URL, drop the last good keys because a fetch failed, or let a stream of
//! unknown `kid`s hammer the issuer.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};

use super::keys::PinnedKey;
use crate::authorizer::Fetcher;
use crate::decision::AuthError;
use crate::flight::SingleFlight;

/// Keys from one JWKS document, by `kid`.
#[derive(Debug, Default)]
pub(super) struct KeySet {
    pub(super) keys: Vec<PinnedKey>,
}

#[derive(Debug, Default)]
pub(super) struct JwksState {
    pub(super) keys: Arc<KeySet>,
    pub(super) fetched_at: Option<Instant>,
    pub(super) last_failure: Option<Instant>,
}

/// A JWKS endpoint with its last good key set.
#[derive(Debug)]
pub(super) struct JwksSource {
    /// The authorizer's name, for metrics.
    pub(super) authorizer: String,
    pub(super) url: String,
    pub(super) algorithms: Vec<Algorithm>,
    pub(super) refresh: Duration,
    pub(super) min_refetch: Duration,
    pub(super) timeout: Duration,
    pub(super) state: RwLock<JwksState>,
    /// Concurrent refetches share one fetch.
    pub(super) flight: SingleFlight<(), Result<Arc<KeySet>, AuthError>>,
}

/// Since `at`, by `now`; zero when `at` is later (never negative).
fn since(now: Instant, at: Instant) -> Duration {
    now.saturating_duration_since(at)
}

impl JwksSource {
    /// The key set to verify a token with `kid`: the current one, refreshed when stale or
    /// when it lacks `kid` (at most once per `min_refetch`).
    pub(super) async fn keys_for(
        &self,
        fetcher: &Fetcher,
        kid: Option<&str>,
    ) -> Result<Arc<KeySet>, AuthError> {
        let now = fetcher.clock.now();
        let (keys, stale) = {
            let state = self.state()?;
            let stale = state
                .fetched_at
                .is_none_or(|t| since(now, t) >= self.refresh);
            (state.keys.clone(), stale)
        };
        let missing =
            kid.is_some_and(|kid| !keys.keys.iter().any(|k| k.kid.as_deref() == Some(kid)));
        if !stale && !missing {
            return Ok(keys);
        }
        match self.refresh(fetcher).await {
            Ok(fresh) => Ok(fresh),
            Err(e) => {
                let state = self.state()?;
                if state.fetched_at.is_some() {
                    // keep serving the last good keys while the issuer is unreachable
                    Ok(state.keys.clone())
                } else {
                    Err(e)
                }
            }
        }
    }

    fn state(&self) -> Result<std::sync::RwLockReadGuard<'_, JwksState>, AuthError> {
        self.state
            .read()
            .map_err(|_| AuthError::Internal("jwks state poisoned".into()))
    }

    /// What the last fetch says for `min_refetch` after it: its keys after a success,
    /// a refusal to try again after a failure (a down issuer is not hammered by every
    /// request with a new kid). `None` once it is older than that.
    fn recent(&self, now: Instant) -> Result<Option<Arc<KeySet>>, AuthError> {
        let state = self.state()?;
        if state
            .last_failure
            .is_some_and(|t| since(now, t) < self.min_refetch)
        {
            return Err(AuthError::Upstream {
                url: self.url.clone(),
                message: "recent JWKS fetch failed; waiting before the next try".into(),
            });
        }
        Ok(state
            .fetched_at
            .filter(|t| since(now, *t) < self.min_refetch)
            .map(|_| state.keys.clone()))
    }

    /// Fetches the document unless one was fetched (or failed) within `min_refetch`.
    /// Concurrent callers share one fetch.
    pub(super) async fn refresh(&self, fetcher: &Fetcher) -> Result<Arc<KeySet>, AuthError> {
        if let Some(keys) = self.recent(fetcher.clock.now())? {
            return Ok(keys);
        }
        let (result, _) = self
            .flight
            .run((), || async {
                // a fetch that landed while this caller waited to run counts too
                if let Some(keys) = self.recent(fetcher.clock.now())? {
                    return Ok(keys);
                }
                let outcome = self.fetch(fetcher).await;
                if let Some(metrics) = &fetcher.metrics {
                    metrics.jwks_refresh(&self.authorizer, outcome.is_ok());
                }
                if let Ok(mut state) = self.state.write() {
                    let now = fetcher.clock.now();
                    match &outcome {
                        Ok(keys) => {
                            state.keys = keys.clone();
                            state.fetched_at = Some(now);
                            state.last_failure = None;
                        }
                        Err(_) => state.last_failure = Some(now),
                    }
                }
                outcome
            })
            .await;
        result
    }

    async fn fetch(&self, fetcher: &Fetcher) -> Result<Arc<KeySet>, AuthError> {
        let fail = |message: String| AuthError::Upstream {
            url: self.url.clone(),
            message,
        };
        if fetcher.offline {
            return Err(fail("a dry run fetches no keys".into()));
        }
        // a span for the fetch when a traced decision waits on it
        let span = fetcher
            .tracing
            .as_ref()
            .and_then(|t| t.child("verdict jwks fetch", opentelemetry::trace::SpanKind::Client));
        let body = actix_web::rt::time::timeout(self.timeout, async {
            let mut request = fetcher
                .client
                .get(&self.url)
                .insert_header(("accept", "application/json"));
            for (name, value) in span
                .as_ref()
                .map(crate::tracing::inject)
                .unwrap_or_default()
            {
                request = request.insert_header((name, value));
            }
            let mut response = request
                .send()
                .await
                .map_err(|e| fail(format!("request failed: {e}")))?;
            if response.status().as_u16() != 200 {
                return Err(fail(format!("answered {}", response.status().as_u16())));
            }
            response
                .body()
                .limit(1024 * 1024)
                .await
                .map_err(|e| fail(format!("body: {e}")))
        })
        .await
        .map_err(|_| fail("timed out".into()))
        .and_then(|r| r);
        if let Some(span) = &span {
            crate::tracing::finish(
                span,
                vec![opentelemetry::KeyValue::new(
                    "verdict.jwks",
                    self.url.clone(),
                )],
                body.is_err(),
            );
        }
        let body = body?;
        let set: JwkSet =
            serde_json::from_slice(&body).map_err(|e| fail(format!("not a JWKS: {e}")))?;
        let mut keys = Vec::new();
        for jwk in &set.keys {
            if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
                continue;
            }
            let family_algorithms: Vec<Algorithm> = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => AlgorithmFamily::Rsa.algorithms().to_vec(),
                AlgorithmParameters::EllipticCurve(p) => match p.curve {
                    EllipticCurve::P256 => vec![Algorithm::ES256],
                    EllipticCurve::P384 => vec![Algorithm::ES384],
                    _ => continue,
                },
                AlgorithmParameters::OctetKeyPair(_) => vec![Algorithm::EdDSA],
                // symmetric or unknown key types are never accepted from a URL
                _ => continue,
            };
            let published: Option<Algorithm> = match jwk.common.key_algorithm {
                // KeyAlgorithm and Algorithm share their JOSE names; encryption
                // algorithms (RSA-OAEP…) have no Algorithm and the key is skipped.
                Some(ka) => match serde_json::to_value(ka)
                    .ok()
                    .and_then(|v| v.as_str()?.parse::<Algorithm>().ok())
                {
                    Some(alg) => Some(alg),
                    None => continue,
                },
                None => None,
            };
            let algorithms: Vec<Algorithm> = family_algorithms
                .into_iter()
                .filter(|a| self.algorithms.contains(a))
                .filter(|a| published.is_none_or(|p| p == *a))
                .collect();
            if algorithms.is_empty() {
                continue;
            }
            let Ok(key) = DecodingKey::from_jwk(jwk) else {
                log::warn!("jwks {}: skipping a key that does not parse", self.url);
                continue;
            };
            keys.push(PinnedKey {
                kid: jwk.common.key_id.clone(),
                key,
                algorithms,
            });
        }
        // An empty set is an identity provider's (or a CDN's) error page that happens to
        // be valid JSON, not a rotation to no keys: treat it as a failed fetch, so the last
        // good keys stay in use and the failure is logged and counted.
        if keys.is_empty() {
            return Err(fail(format!(
                "no usable key among {} published; keeping the last good keys",
                set.keys.len()
            )));
        }
        log::info!("jwks {}: {} usable keys", self.url, keys.len());
        Ok(Arc::new(KeySet { keys }))
    }
}
