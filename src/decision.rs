//! The decision vocabulary every stage shares: what an authorizer said ([`Verdict`],
//! [`Denial`], [`Decision`], [`AuthError`]), why a request was refused before routing
//! ([`Refusal`]), and what the request gets ([`Outcome`]).
//!
//! Takes: nothing from the rest of verdict but the identity vocabulary and the request's
//! [`ReadError`]. Returns: plain data. Must never: import a later stage (dialects,
//! policy, authorizers and the cache all import this file), or carry a credential or
//! internal detail in a reason that reaches a client.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::identity::{Identity, SessionState};
use crate::request::ReadError;

/// Why an authorizer said no. Carries nothing that may not reach a client log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// The credential is not valid (bad signature, expired, unknown key…): 401.
    InvalidCredential(&'static str),
    /// The credential is valid but not good enough here: 403.
    Forbidden(&'static str),
    /// The backend sent the client elsewhere (Cesbo `X-Location`): an absolute URL.
    Redirect(Arc<str>),
    /// Too many failed attempts: refused until this many seconds have passed.
    Throttled(u64),
}

impl Denial {
    /// A short reason for the log line.
    pub fn reason(&self) -> &'static str {
        match self {
            Denial::InvalidCredential(why) | Denial::Forbidden(why) => why,
            Denial::Redirect(_) => "backend redirected the client",
            Denial::Throttled(_) => "too many failed attempts: locked for a while",
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

/// A verdict plus how long it may be reused: the cacheable decision. `ttl` replaces the
/// cache's TTL for this kind of verdict (per-authorizer TTLs); `valid_for` caps it, e.g.
/// at a token's `exp` or a backend's `Cache-Control`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    pub ttl: Option<Duration>,
    pub valid_for: Option<Duration>,
}

impl Decision {
    pub fn allow(identity: Identity, valid_for: Option<Duration>) -> Self {
        Self::allow_shared(Arc::new(identity), valid_for)
    }

    /// An allow for an identity held elsewhere (a static token's): every decision and
    /// cache entry for it shares the one copy.
    pub fn allow_shared(identity: Arc<Identity>, valid_for: Option<Duration>) -> Self {
        Decision {
            verdict: Verdict::Allow(identity),
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

/// Why a request was refused before any route was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The TCP peer is not in `server.trusted_proxies`: its forwarded headers mean nothing.
    UntrustedPeer(IpAddr),
    /// What the caller sent cannot be read: the original target (or two readings of it
    /// disagree), a header that would pass as identity, or the caller's body.
    Unreadable(ReadError),
}

/// What the request gets, before a dialect puts it into its caller's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Let it through. `identity` is `None` for public routes and anonymous identify
    /// answers; `session` is what `x-authgear-session-valid` says.
    Allow {
        identity: Option<Arc<Identity>>,
        session: SessionState,
        /// How long a caller's own cache may keep this allow: never longer than verdict's
        /// cached decisions it rests on. Zero: not at all.
        cache_for: Duration,
    },
    /// No credential, or one that is not valid: 401 (or the login redirect).
    Unauthenticated { credential_presented: bool },
    /// Authenticated but not allowed here, or a deny route: 403.
    Forbidden,
    /// The backend sent the client to this absolute URL (Cesbo `X-Location`).
    Redirect(Arc<str>),
    /// Refused before routing (untrusted peer, bad target): 403.
    Refused(Refusal),
    /// Could not decide and the route says deny: 503.
    Unavailable,
    /// Too many failed attempts (a password guessed at): refused with `Retry-After`.
    Throttled { retry_after: u64 },
    /// Not verdict's to say (a topic rule says `ignore`): the caller asks its next source.
    Ignore,
    /// The caller only told verdict something (Icecast's `listener_remove`): nothing was
    /// asked, so nothing was decided; acknowledged, never counted as a refusal.
    Notified,
}

impl Outcome {
    /// An allow that no caller may cache (until the resolver says how long it may).
    pub fn allow(identity: Option<Arc<Identity>>, session: SessionState) -> Outcome {
        Outcome::Allow {
            identity,
            session,
            cache_for: Duration::ZERO,
        }
    }

    /// The outcome's name in logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Allow { .. } => "allow",
            Outcome::Unauthenticated { .. } => "unauthenticated",
            Outcome::Forbidden => "forbidden",
            Outcome::Redirect(_) => "redirect",
            Outcome::Refused(Refusal::UntrustedPeer(_)) => "untrusted-peer",
            Outcome::Refused(Refusal::Unreadable(error)) if error.is_body() => "bad-body",
            Outcome::Refused(Refusal::Unreadable(_)) => "bad-target",
            Outcome::Unavailable => "unavailable",
            Outcome::Throttled { .. } => "throttled",
            Outcome::Ignore => "ignore",
            Outcome::Notified => "notification",
        }
    }

    /// Why a refusal happened, for the log line.
    pub fn refusal_reason(&self) -> Option<Cow<'static, str>> {
        match self {
            Outcome::Refused(Refusal::UntrustedPeer(peer)) => Some(Cow::Owned(format!(
                "peer {peer} is not in server.trusted_proxies"
            ))),
            Outcome::Refused(Refusal::Unreadable(error)) => Some(Cow::Owned(error.to_string())),
            _ => None,
        }
    }
}
