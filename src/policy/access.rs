//! Access: what a route makes of its authorizer chain's result. Runs on every request,
//! cached or not.
//!
//! Takes: the route, how its chain ended, and what an allow without a verified identity
//! means to the caller ([`Anonymous`], its dialect's declaration). Returns: the outcome
//! and, for the log line only, the reason of the rule that decided. Must never: let an
//! error through unless the route says `on_error = "allow"`, skip a required role, give a
//! reason to a client, or answer an `identify` route's allow for nobody to a caller that
//! reads every allow as "authenticated".

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use super::topics::TopicRules;
use super::{Access, Route};
use crate::decision::{Denial, Outcome};
use crate::identity::{Identity, SessionState};
use crate::request::{Anonymous, ForwardedRequest};

/// How a chain ended, before the route's access level is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainResult {
    Allowed(Arc<Identity>),
    Denied(Denial),
    /// Every authorizer abstained; `credential_presented` says whether any saw a credential.
    NoneApplied {
        credential_presented: bool,
    },
    /// An authorizer could not decide and `on_error = "deny"`.
    Failed,
    /// An authorizer could not decide and `on_error = "allow"`.
    FailedOpen,
}

/// Reasons the log line gives, each written once, by the rule that decides.
pub const MISSING_ROLE: &str = "missing required role";
pub const NONE_OF_THE_ROLES: &str = "none of the roles the route accepts";
pub const NO_CLAIMS: &str = "the route's scope or claim rules need a verified token's claims";
pub const MISSING_SCOPE: &str = "missing required scope";
pub const MISSING_CLAIM: &str = "a claim the route requires is missing";
pub const CLAIM_MISMATCH: &str = "a claim does not have a value the route accepts";
pub const UNRECOGNISED: &str = "no authorizer recognised the credential";
pub const COULD_NOT_DECIDE: &str = "authorizer could not decide";
pub const FAILED_OPEN: &str = "authorizer could not decide; on_error = allow";
pub const NO_IDENTITY: &str =
    "no verified identity, and this caller reads every allow as authenticated";

/// What the route makes of the chain: the outcome (built once, with how long a caller
/// may keep an allow) and, for the log line only, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruling {
    pub outcome: Outcome,
    /// Operators need to see why; clients never do.
    pub reason: Option<Cow<'static, str>>,
}

pub const NOT_THE_USERNAME: &str = "the token's subject is not the username";

/// Every rule of a route, applied to its chain's result: the access level and roles (and
/// where a refused client is sent), then for a caller's own facts the username a token
/// must name and the topic rules. `cache_for` is how long the chain's decisions stay
/// cached: an allow for an identity may be kept no longer; any other answer not at all.
/// Runs on every request, cached or not.
pub fn apply(
    route: &Route,
    chain: ChainResult,
    request: &ForwardedRequest<'_>,
    topics: &TopicRules,
    cache_for: Duration,
) -> Ruling {
    let caller = request.caller();
    let (outcome, reason) = refuse_or_allow(route, chain, caller.anonymous);
    let mut ruling = match (&route.deny_location, outcome) {
        (Some(location), Outcome::Unauthenticated { .. } | Outcome::Forbidden) => Ruling {
            outcome: Outcome::Redirect(location.clone()),
            reason: reason.map(Cow::Borrowed),
        },
        (_, outcome) => Ruling {
            outcome,
            reason: reason.map(Cow::Borrowed),
        },
    };
    let Outcome::Allow {
        identity,
        cache_for: keep,
        ..
    } = &mut ruling.outcome
    else {
        return ruling;
    };
    if let (Some(username), Some(identity)) = (&caller.username, identity.as_deref())
        && *identity.user_id != **username
    {
        // Trust decision: the caller authenticated the username; a token that names
        // someone else is somebody else's token.
        return Ruling {
            outcome: Outcome::Forbidden,
            reason: Some(Cow::Borrowed(NOT_THE_USERNAME)),
        };
    }
    if let Some(access) = &caller.mqtt {
        // The broker's publish or subscribe: the topic rules decide, every time (never
        // cached), with the roles of a token the route's authorizers verified; with no
        // verified token the roles are unknown, not empty.
        let roles = identity.as_deref().map(|i| &*i.roles);
        if let Some((outcome, reason)) = topics.rule(access, request.client_ip(), roles) {
            return Ruling {
                outcome,
                reason: Some(reason),
            };
        }
    }
    // Only an allow for an identity rests on cached decisions; an anonymous allow is not
    // kept by a caller's cache at all.
    *keep = if identity.is_some() {
        cache_for
    } else {
        Duration::ZERO
    };
    ruling
}

fn refuse_or_allow(
    route: &Route,
    chain: ChainResult,
    caller: Anonymous,
) -> (Outcome, Option<&'static str>) {
    let ruling = |outcome: Outcome, reason: Option<&'static str>| (outcome, reason);
    let anonymous = Outcome::allow(None, SessionState::Absent);
    match (route.access, chain) {
        // A public route needs no one (a free channel, an open topic tree): every caller
        // may take its allow for nobody.
        (Access::Public, _) => ruling(anonymous, None),
        (Access::Deny, _) => ruling(Outcome::Forbidden, None),
        (_, ChainResult::Failed) => ruling(Outcome::Unavailable, Some(COULD_NOT_DECIDE)),
        // The operator chose availability over safety for this route (logged at warn).
        (_, ChainResult::FailedOpen) => ruling(anonymous, Some(FAILED_OPEN)),
        (Access::Identify, ChainResult::Allowed(identity)) => {
            ruling(Outcome::allow(Some(identity), SessionState::Valid), None)
        }
        // Trust decision: only a caller whose answer can say "nobody" gets an allow for
        // an invalid credential; to every other caller an invalid credential is a deny.
        (Access::Identify, ChainResult::Denied(denial)) => match caller {
            Anonymous::Expressible => ruling(
                Outcome::allow(None, SessionState::Invalid),
                Some(denial.reason()),
            ),
            Anonymous::ClientKnown | Anonymous::Never => refused(denial),
        },
        (
            Access::Identify,
            ChainResult::NoneApplied {
                credential_presented,
            },
        ) => match (caller, credential_presented) {
            (Anonymous::Expressible, _) => ruling(
                Outcome::allow(
                    None,
                    if credential_presented {
                        SessionState::Invalid
                    } else {
                        SessionState::Absent
                    },
                ),
                credential_presented.then_some(UNRECOGNISED),
            ),
            // a broker's authorization check: no token is fine (the broker logged the
            // client in), a token no one recognises is not
            (Anonymous::ClientKnown, false) => ruling(anonymous, None),
            (Anonymous::ClientKnown, true) => ruling(
                Outcome::Unauthenticated {
                    credential_presented,
                },
                Some(UNRECOGNISED),
            ),
            // Trust decision: this caller admits on any allow; without a verified
            // identity there is nobody to admit.
            (Anonymous::Never, _) => ruling(
                Outcome::Unauthenticated {
                    credential_presented,
                },
                Some(if credential_presented {
                    UNRECOGNISED
                } else {
                    NO_IDENTITY
                }),
            ),
        },
        (Access::Authenticated, ChainResult::Allowed(identity)) => {
            if let Some(unmet) = route.unmet(&identity) {
                ruling(Outcome::Forbidden, Some(unmet))
            } else {
                ruling(Outcome::allow(Some(identity), SessionState::Valid), None)
            }
        }
        (Access::Authenticated, ChainResult::Denied(denial)) => refused(denial),
        (
            Access::Authenticated,
            ChainResult::NoneApplied {
                credential_presented,
            },
        ) => ruling(
            Outcome::Unauthenticated {
                credential_presented,
            },
            credential_presented.then_some(UNRECOGNISED),
        ),
    }
}

/// What an authorizer's denial becomes, with its reason.
fn refused(denial: Denial) -> (Outcome, Option<&'static str>) {
    let reason = Some(denial.reason());
    let outcome = match denial {
        Denial::Redirect(location) => Outcome::Redirect(location),
        Denial::Throttled(seconds) => Outcome::Throttled {
            retry_after: seconds,
        },
        Denial::Forbidden(_) => Outcome::Forbidden,
        Denial::InvalidCredential(_) => Outcome::Unauthenticated {
            credential_presented: true,
        },
    };
    (outcome, reason)
}
