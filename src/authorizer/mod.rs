//! Authorizers: the things that look at a credential and say who this is.
//!
//! Takes: a [`ForwardedRequest`] (and, for authorizers that fetch keys or ask backends, a
//! per-worker [`Fetcher`]) through [`Authorizer::prepare`]: a [`Question`] whose cache
//! key is everything the answer depends on. Returns: a [`Decision`] holding `Allow(Identity)`,
//! `Deny(Denial)` or `Abstain` ("no credential I understand"), or an [`AuthError`] meaning
//! "could not decide". Must never: turn an error into an allow, look at route policy
//! (roles and paths are checked after the cache, on every request), or log a credential.

pub mod http;
pub mod jwt;
pub mod static_tokens;
pub mod template;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::request::ForwardedRequest;

/// Who the credential belongs to. Field formats follow Authgear's resolver headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    pub user_id: String,
    /// The Cesbo session name (`X-Session-Name`).
    pub session_name: String,
    pub email: String,
    pub roles: Vec<String>,
    /// Authentication method references, e.g. `pwd`, `mfa`.
    pub amr: Vec<String>,
    /// When the user authenticated, Unix seconds.
    pub authenticated_at: Option<u64>,
    pub verified: bool,
    pub anonymous: bool,
    pub can_reauthenticate: bool,
    /// Backend headers passed on to the proxy with the allow (`http` `copy_headers`).
    pub extra_headers: Vec<(String, String)>,
    /// The verified token's claims (`jwt`), for `${claim.NAME}` in `http` templates.
    pub claims: Option<Arc<serde_json::Map<String, serde_json::Value>>>,
}

/// Why an authorizer said no. Carries nothing that may not reach a client log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// The credential is not valid (bad signature, expired, unknown key…): 401.
    InvalidCredential(&'static str),
    /// The credential is valid but not good enough here: 403.
    Forbidden(&'static str),
    /// The backend sent the client elsewhere (Cesbo `X-Location`): an absolute URL.
    Redirect(Arc<str>),
}

impl Denial {
    /// A short reason for the log line.
    pub fn reason(&self) -> &'static str {
        match self {
            Denial::InvalidCredential(why) | Denial::Forbidden(why) => why,
            Denial::Redirect(_) => "backend redirected the client",
        }
    }
}

/// An authorizer's answer about one credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow(Arc<Identity>),
    Deny(Denial),
    /// Not mine: no credential this authorizer understands. The chain moves on.
    Abstain,
}

/// A verdict plus how long it may be reused. `ttl` replaces the cache's TTL for this
/// kind of verdict (per-authorizer TTLs); `valid_for` caps it, e.g. at a token's `exp`
/// or a backend's `Cache-Control`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    pub ttl: Option<Duration>,
    pub valid_for: Option<Duration>,
}

impl Decision {
    pub fn allow(identity: Identity, valid_for: Option<Duration>) -> Self {
        Decision {
            verdict: Verdict::Allow(Arc::new(identity)),
            ttl: None,
            valid_for,
        }
    }
    pub fn deny(denial: Denial) -> Self {
        Decision {
            verdict: Verdict::Deny(denial),
            ttl: None,
            valid_for: None,
        }
    }
    pub fn abstain() -> Self {
        Decision {
            verdict: Verdict::Abstain,
            ttl: None,
            valid_for: None,
        }
    }
}

/// "Could not decide": where it came from and what happened, never a credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// A remote dependency (JWKS endpoint, auth backend) failed.
    #[error("upstream {url}: {message}")]
    Upstream { url: String, message: String },
    /// A bug or an impossible state on our side.
    #[error("internal: {0}")]
    Internal(String),
}

/// Where a token is looked for, written `bearer`, `cookie:NAME`, `query:NAME` or
/// `header:NAME` in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    Bearer,
    Cookie(String),
    Query(String),
    Header(String),
}

impl<'de> Deserialize<'de> for TokenSource {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        TokenSource::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "token source {text:?} is not bearer, cookie:NAME, query:NAME or header:NAME"
            ))
        })
    }
}

impl TokenSource {
    pub fn parse(text: &str) -> Option<TokenSource> {
        if text == "bearer" {
            return Some(TokenSource::Bearer);
        }
        let (kind, name) = text.split_once(':')?;
        let name = name.trim();
        let valid_name = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !valid_name {
            return None;
        }
        match kind {
            "cookie" => Some(TokenSource::Cookie(name.to_string())),
            "query" => Some(TokenSource::Query(name.to_string())),
            "header" => {
                let lower = name.to_ascii_lowercase();
                // A token read from the Authorization header must go through `bearer`,
                // which checks the scheme; reading the raw header would take "Basic …".
                (lower != "authorization").then_some(TokenSource::Header(lower))
            }
            _ => None,
        }
    }

    /// The first credential found in this source.
    pub fn find<'r>(&self, request: &'r ForwardedRequest) -> Option<Cow<'r, str>> {
        match self {
            TokenSource::Bearer => request.bearer_token().map(Cow::Borrowed),
            TokenSource::Cookie(name) => request.cookie(name).map(Cow::Borrowed),
            TokenSource::Query(name) => request.query_param(name).map(Cow::Owned),
            TokenSource::Header(name) => request
                .header(name)
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(Cow::Borrowed),
        }
    }
}

/// The first credential found, trying the sources in their configured order.
pub fn find_token<'r>(
    sources: &[TokenSource],
    request: &'r ForwardedRequest,
) -> Option<Cow<'r, str>> {
    sources.iter().find_map(|s| s.find(request))
}

/// Per-worker tools an authorizer may use to reach the network (awc clients are `!Send`,
/// so each worker builds its own): one client for key fetches, and one per backend URL
/// of every `http` authorizer.
pub struct Fetcher {
    pub client: awc::Client,
    backends: HashMap<String, Vec<awc::Client>>,
    /// Where backend latency and JWKS refreshes are counted, when metrics are on.
    pub metrics: Option<crate::metrics::Metrics>,
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
        }
    }

    /// Key-fetch client plus the backend clients of every `http` authorizer.
    pub fn for_authorizers(
        timeout: Duration,
        authorizers: &[Authorizer],
        metrics: Option<crate::metrics::Metrics>,
    ) -> Fetcher {
        let mut fetcher = Fetcher::new(timeout);
        fetcher.metrics = metrics;
        for authorizer in authorizers {
            if let AuthorizerKind::Http(http) = &authorizer.kind {
                fetcher
                    .backends
                    .insert(authorizer.name.clone(), http::build_clients(http));
            }
        }
        fetcher
    }

    pub fn backend_clients(&self, name: &str) -> &[awc::Client] {
        self.backends.get(name).map_or(&[], Vec::as_slice)
    }
}

/// What an authorizer is asked about one request: a token, or a rendered backend request.
#[derive(Debug, Clone)]
pub enum Question<'r> {
    Token(Cow<'r, str>),
    Backend(Box<http::BackendRequest>),
}

impl Question<'_> {
    /// Everything the answer depends on, for the cache key.
    pub fn cache_material(&self) -> &str {
        match self {
            Question::Token(token) => token,
            Question::Backend(request) => &request.cache_material,
        }
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
}

/// The kinds of authorizer.
#[derive(Debug)]
pub enum AuthorizerKind {
    Jwt(Box<jwt::JwtAuthorizer>),
    Static(static_tokens::StaticTokens),
    Http(Box<http::HttpAuthorizer>),
}

impl Authorizer {
    /// The question this authorizer would answer for this request; `None` when the
    /// request carries no credential it reads (an abstain that costs nothing).
    /// `claims` are those of the `claims_from` token, for `http` templates.
    pub fn prepare<'r>(
        &self,
        request: &'r ForwardedRequest,
        claims: Option<&serde_json::Map<String, serde_json::Value>>,
    ) -> Option<Question<'r>> {
        match &self.kind {
            AuthorizerKind::Jwt(a) => find_token(a.token_sources(), request).map(Question::Token),
            AuthorizerKind::Static(a) => {
                find_token(a.token_sources(), request).map(Question::Token)
            }
            AuthorizerKind::Http(a) => Some(Question::Backend(Box::new(a.render(request, claims)))),
        }
    }

    /// Answers a prepared question. Cached by the caller under its cache material.
    pub async fn decide(
        &self,
        question: &Question<'_>,
        fetcher: &Fetcher,
    ) -> Result<Decision, AuthError> {
        match (&self.kind, question) {
            (AuthorizerKind::Jwt(a), Question::Token(token)) => a.decide(token, fetcher).await,
            (AuthorizerKind::Static(a), Question::Token(token)) => Ok(a.decide(token)),
            (AuthorizerKind::Http(a), Question::Backend(request)) => {
                a.decide(request, &self.name, fetcher).await
            }
            _ => Err(AuthError::Internal(format!(
                "authorizer {} got a question of the wrong kind",
                self.name
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_sources_parse() {
        assert_eq!(TokenSource::parse("bearer"), Some(TokenSource::Bearer));
        assert_eq!(
            TokenSource::parse("cookie:session"),
            Some(TokenSource::Cookie("session".into()))
        );
        assert_eq!(
            TokenSource::parse("header:X-Api-Key"),
            Some(TokenSource::Header("x-api-key".into()))
        );
        assert_eq!(
            TokenSource::parse("query:access_token"),
            Some(TokenSource::Query("access_token".into()))
        );
        assert_eq!(TokenSource::parse("header:Authorization"), None);
        assert_eq!(TokenSource::parse("cookie:"), None);
        assert_eq!(TokenSource::parse("cookie:a b"), None);
        assert_eq!(TokenSource::parse("form:x"), None);
    }
}
