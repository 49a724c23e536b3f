//! Authorizers: the things that look at a credential and say who this is.
//!
//! Takes: a [`ForwardedRequest`] through [`Authorizer::prepare`], which gives a
//! [`Question`] tied to the authorizer that prepared it (its cache material is everything
//! the answer depends on), then a per-worker [`Fetcher`] for [`Question::decide`].
//! Returns: a [`Decision`] holding `Allow(Identity)`, `Deny(Denial)` or `Abstain` ("no
//! credential I understand"), or an [`AuthError`] meaning "could not decide".
//! Must never: turn an error into an allow, look at route policy (roles and paths are
//! checked after the cache, on every request), or log a credential.

pub mod basic;
pub mod certificate;
pub mod http;
pub mod introspect;
pub mod jwt;
#[cfg(test)]
pub mod scripted;
pub mod static_tokens;

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Duration;

use crate::clock::Clock;
use crate::credential::{TokenSource, find_token};
use crate::decision::{AuthError, Decision};
use crate::identity::Claims;
use crate::metrics::Metrics;
use crate::request::{Audience, Audiences, ForwardedRequest};

/// A boxed future of the fleet's counters (the trait is used as an object).
pub type Counting<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + 'a>>;

/// Failed attempts counted across a fleet (the shared store, when there is one). Only
/// ever adds refusals: a count the store cannot give is no count, and the authorizer's
/// own counters still apply.
pub trait FleetCounter: Send + Sync {
    /// Adds one under `key` for `window`; the count in the window, if the store gave it.
    fn add<'a>(&'a self, key: &'a [u8; 32], window: Duration) -> Counting<'a, Option<u64>>;
    /// The count under `key` and how long its window has left, if the store gave them.
    fn count<'a>(&'a self, key: &'a [u8; 32]) -> Counting<'a, Option<(u64, Duration)>>;
}

/// Per-worker tools an authorizer may use to reach the network (awc clients are `!Send`,
/// so each worker builds its own): one client for key fetches, and one per backend URL
/// of every `http` authorizer.
pub struct Fetcher {
    pub client: awc::Client,
    backends: HashMap<String, Vec<awc::Client>>,
    /// Where backend latency and JWKS refreshes are counted, when metrics are on.
    pub metrics: Option<Metrics>,
    /// What key-refresh deadlines and backend cool-downs are read from.
    pub clock: Clock,
    /// Where backend calls and key fetches start their spans, when traces are on.
    pub tracing: Option<crate::tracing::Tracing>,
    /// A dry run (`verdict explain`, `verdict test`): no backend is asked and no key
    /// fetched; what needs one cannot decide.
    pub offline: bool,
    /// Where failed attempts are counted across the fleet, when there is a shared store.
    pub fleet: Option<std::sync::Arc<dyn FleetCounter>>,
}

impl Fetcher {
    /// A client for key fetches: no redirects followed, bounded time.
    pub fn new(timeout: Duration) -> Fetcher {
        let connector = awc::Connector::new().timeout(timeout);
        Fetcher {
            client: awc::Client::builder()
                .connector(connector)
                .timeout(timeout)
                .disable_redirects()
                .finish(),
            backends: HashMap::new(),
            metrics: None,
            clock: Clock::system(),
            tracing: None,
            offline: false,
            fleet: None,
        }
    }

    /// Key-fetch client plus the backend clients of every `http` authorizer.
    pub fn for_authorizers(
        timeout: Duration,
        authorizers: &[Authorizer],
        metrics: Option<Metrics>,
    ) -> Fetcher {
        let mut fetcher = Fetcher::new(timeout);
        fetcher.metrics = metrics;
        for authorizer in authorizers {
            match &authorizer.kind {
                AuthorizerKind::Http(http) => {
                    fetcher
                        .backends
                        .insert(authorizer.name.clone(), http::build_clients(http));
                }
                AuthorizerKind::Introspect(introspect) => {
                    fetcher.backends.insert(
                        authorizer.name.clone(),
                        http::clients_for(&introspect.transport, 1),
                    );
                }
                _ => {}
            }
        }
        fetcher
    }

    pub fn backend_clients(&self, name: &str) -> &[awc::Client] {
        self.backends.get(name).map_or(&[], Vec::as_slice)
    }
}

/// A configured authorizer: its name and what it is.
#[derive(Debug)]
pub struct Authorizer {
    pub name: String,
    pub kind: AuthorizerKind,
    /// Index of the `jwt` authorizer whose claims this one's templates read (`http`
    /// `claims_from`), resolved once at start.
    pub claims_source: Option<usize>,
    /// A digest of everything its answers depend on besides the request (settings and
    /// the files they name): part of every cache key, so a changed authorizer never
    /// reuses its old decisions.
    pub fingerprint: [u8; 32],
    /// The audiences routes scoped to dialects name it for; empty: bound to none. A route
    /// that names no authorizers skips it for a caller of another audience.
    pub audiences: Audiences,
}

impl Authorizer {
    /// Whether it asks an operator's backend (`http`): the backend is the authority of
    /// its own sessions, where a JWT or a static token carries its own proof.
    pub fn asks_a_backend(&self) -> bool {
        matches!(
            self.kind,
            AuthorizerKind::Http(_) | AuthorizerKind::Introspect(_)
        )
    }

    /// How long a cold miss may wait for another instance asking the same backend: never
    /// past the backend's own request timeout. `None` for authorizers with no backend.
    pub fn backend_timeout(&self) -> Option<Duration> {
        match &self.kind {
            AuthorizerKind::Http(http) => Some(http.transport.request_timeout),
            AuthorizerKind::Introspect(introspect) => Some(introspect.transport.request_timeout),
            _ => None,
        }
    }

    /// Whether a route with an implicit chain may ask it about a request from `audience`.
    pub fn serves(&self, audience: Audience) -> bool {
        self.audiences.is_empty() || self.audiences.contains(audience)
    }
}

/// The kinds of authorizer.
#[derive(Debug)]
pub enum AuthorizerKind {
    Jwt(Box<jwt::JwtAuthorizer>),
    Static(static_tokens::StaticTokens),
    Http(Box<http::HttpAuthorizer>),
    /// A client certificate a trusted proxy verified and forwarded.
    Certificate(Box<certificate::CertificateAuthorizer>),
    /// User names and password hashes (`Authorization: Basic`).
    Basic(Box<basic::BasicAuthorizer>),
    /// OAuth 2.0 token introspection (RFC 7662).
    Introspect(Box<introspect::IntrospectAuthorizer>),
    /// A test double that answers from a script.
    #[cfg(test)]
    Scripted(scripted::ScriptedAuthorizer),
}

/// What one authorizer is asked about one request. It can only be answered by the
/// authorizer that prepared it: the kind and the question travel together.
#[derive(Debug)]
pub struct Question<'a, 'r> {
    authorizer: &'a Authorizer,
    asked: Asked<'a, 'r>,
}

#[derive(Debug)]
enum Asked<'a, 'r> {
    Jwt(&'a jwt::JwtAuthorizer, Cow<'r, str>),
    Static(&'a static_tokens::StaticTokens, Cow<'r, str>),
    Http(&'a http::HttpAuthorizer, Box<http::BackendRequest>),
    Introspect(&'a introspect::IntrospectAuthorizer, Cow<'r, str>),
    Basic(&'a basic::BasicAuthorizer, Cow<'r, str>, std::net::IpAddr),
    Certificate(&'a certificate::CertificateAuthorizer, Cow<'r, str>),
    #[cfg(test)]
    Scripted(&'a scripted::ScriptedAuthorizer, Cow<'r, str>),
}

impl Question<'_, '_> {
    /// The authorizer that prepared this question.
    pub fn authorizer(&self) -> &Authorizer {
        self.authorizer
    }

    /// What the cache key is made of, for a debug line (never the material itself).
    pub fn key_kind(&self) -> &'static str {
        match &self.asked {
            Asked::Jwt(..)
            | Asked::Static(..)
            | Asked::Introspect(..)
            | Asked::Basic(..)
            | Asked::Certificate(..) => "credential",
            #[cfg(test)]
            Asked::Scripted(..) => "credential",
            Asked::Http(http, _) if http.has_cache_key() => "cache_key templates",
            Asked::Http(..) => "whole backend request",
        }
    }

    /// Everything the answer depends on, for the cache key.
    pub fn cache_material(&self) -> &str {
        match &self.asked {
            Asked::Jwt(_, token)
            | Asked::Static(_, token)
            | Asked::Introspect(_, token)
            | Asked::Basic(_, token, _)
            | Asked::Certificate(_, token) => token,
            #[cfg(test)]
            Asked::Scripted(_, token) => token,
            Asked::Http(_, request) => &request.cache_material,
        }
    }

    /// Answers the question. Cached by the caller under its cache material.
    pub async fn decide(&self, fetcher: &Fetcher) -> Result<Decision, AuthError> {
        // What may wait on the network (a backend here, a JWKS fetch inside `jwt`) is
        // boxed, so this future, and every future that holds it, stays small for the rest.
        match &self.asked {
            Asked::Jwt(jwt, token) => jwt.decide(token, fetcher).await,
            Asked::Static(keys, token) => Ok(keys.decide(token)),
            Asked::Http(http, request) => {
                Box::pin(http.decide(request, &self.authorizer.name, fetcher)).await
            }
            Asked::Certificate(certificate, value) => Ok(certificate.decide(value)),
            Asked::Basic(basic, credential, client) => {
                Box::pin(basic.decide(
                    credential,
                    *client,
                    &fetcher.clock,
                    fetcher.fleet.as_deref(),
                ))
                .await
            }
            Asked::Introspect(introspect, token) => {
                Box::pin(introspect.decide(token, &self.authorizer.name, fetcher)).await
            }
            #[cfg(test)]
            Asked::Scripted(script, _) => script.decide(),
        }
    }
}

impl Authorizer {
    /// The client request headers this authorizer reads credentials (or, for `http`, any
    /// template value) from, lower-case. A `query:NAME` source reads the target, which
    /// every dialect forwards.
    pub fn request_headers(&self) -> Vec<String> {
        let sources = match &self.kind {
            AuthorizerKind::Jwt(a) => a.token_sources(),
            AuthorizerKind::Static(a) => a.token_sources(),
            AuthorizerKind::Http(a) => return a.request_headers(),
            AuthorizerKind::Introspect(a) => a.token_sources(),
            AuthorizerKind::Basic(a) => a.token_sources(),
            AuthorizerKind::Certificate(a) => a.token_sources(),
            #[cfg(test)]
            AuthorizerKind::Scripted(a) => a.token_sources(),
        };
        sources.iter().filter_map(TokenSource::header).collect()
    }

    /// The question this authorizer would answer for this request; `None` when the
    /// request carries no credential it reads (an abstain that costs nothing).
    /// `claims` are those of the `claims_from` token, for `http` templates.
    pub fn prepare<'a, 'r>(
        &'a self,
        request: &'r ForwardedRequest<'r>,
        claims: Option<&Claims>,
    ) -> Option<Question<'a, 'r>> {
        let asked = match &self.kind {
            AuthorizerKind::Jwt(a) => Asked::Jwt(a, find_token(a.token_sources(), request)?),
            AuthorizerKind::Static(a) => Asked::Static(a, find_token(a.token_sources(), request)?),
            AuthorizerKind::Http(a) => Asked::Http(a, Box::new(a.render(request, claims))),
            AuthorizerKind::Introspect(a) => {
                Asked::Introspect(a, find_token(a.token_sources(), request)?)
            }
            AuthorizerKind::Certificate(a) => {
                Asked::Certificate(a, find_token(a.token_sources(), request)?)
            }
            AuthorizerKind::Basic(a) => Asked::Basic(
                a,
                find_token(a.token_sources(), request)?,
                request.client_ip(),
            ),
            #[cfg(test)]
            AuthorizerKind::Scripted(a) => {
                Asked::Scripted(a, find_token(a.token_sources(), request)?)
            }
        };
        Some(Question {
            authorizer: self,
            asked,
        })
    }
}
