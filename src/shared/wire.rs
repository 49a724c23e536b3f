//! What a shared decision looks like in the store: a compact JSON record of the verdict,
//! its identity, when it was made and when it expires.
//!
//! Takes: a [`Verdict`] and its times, or the bytes read back. Returns: the bytes, or
//! the decision they hold. Must never: hold a credential (an identity names a user and
//! a token's `jti` or digest, never the token), or make up a verdict from bytes it
//! cannot read (unreadable bytes are a miss for the caller).

use std::collections::HashSet;
use std::num::NonZeroU64;
use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Serialize};

use crate::decision::{Denial, Verdict};
use crate::identity::{Claims, Identity};

/// One decision as stored.
#[derive(Debug, Serialize, Deserialize)]
pub struct WireDecision {
    /// When it stops being valid, Unix milliseconds.
    #[serde(rename = "x")]
    pub expires_at: u64,
    /// When it was made, Unix milliseconds.
    #[serde(rename = "d")]
    pub decided_at: u64,
    #[serde(rename = "v")]
    verdict: WireVerdict,
}

#[derive(Debug, Serialize, Deserialize)]
enum WireVerdict {
    #[serde(rename = "a")]
    Allow(Box<WireIdentity>),
    /// 401, with its reason.
    #[serde(rename = "i")]
    Invalid(String),
    /// 403, with its reason.
    #[serde(rename = "f")]
    Forbidden(String),
    #[serde(rename = "r")]
    Redirect(String),
    #[serde(rename = "t")]
    Throttled(u64),
    #[serde(rename = "n")]
    Abstain,
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Debug, Serialize, Deserialize)]
struct WireIdentity {
    u: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    s: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    e: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    r: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    m: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    t: Option<NonZeroU64>,
    #[serde(default, skip_serializing_if = "is_false")]
    vf: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    an: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    cr: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    h: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    c: Option<Claims>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    x: Option<NonZeroU64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    j: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    i: Option<NonZeroU64>,
}

impl WireDecision {
    pub fn new(verdict: &Verdict, decided_at: u64, expires_at: u64) -> WireDecision {
        let verdict = match verdict {
            Verdict::Allow(identity) => WireVerdict::Allow(Box::new(WireIdentity {
                u: identity.user_id.to_string(),
                s: identity.session_name.as_deref().map(str::to_string),
                e: identity.email.to_string(),
                r: identity.roles.iter().map(|r| r.to_string()).collect(),
                m: identity.amr.iter().map(|a| a.to_string()).collect(),
                t: identity.authenticated_at,
                vf: identity.verified,
                an: identity.anonymous,
                cr: identity.can_reauthenticate,
                h: identity
                    .extra_headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                c: identity.claims.as_deref().cloned(),
                x: identity.expires_at,
                j: identity.token_id.as_deref().map(str::to_string),
                i: identity.issued_at,
            })),
            Verdict::Deny(Denial::InvalidCredential(why)) => WireVerdict::Invalid(why.to_string()),
            Verdict::Deny(Denial::Forbidden(why)) => WireVerdict::Forbidden(why.to_string()),
            Verdict::Deny(Denial::Redirect(to)) => WireVerdict::Redirect(to.to_string()),
            Verdict::Deny(Denial::Throttled(seconds)) => WireVerdict::Throttled(*seconds),
            Verdict::Abstain => WireVerdict::Abstain,
        };
        WireDecision {
            expires_at,
            decided_at,
            verdict,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The record in `bytes`; `None` when they are not one.
    pub fn from_bytes(bytes: &[u8]) -> Option<WireDecision> {
        serde_json::from_slice(bytes).ok()
    }

    /// The verdict it holds.
    pub fn verdict(self) -> Verdict {
        match self.verdict {
            WireVerdict::Allow(w) => {
                let mut identity = Identity {
                    user_id: w.u.into(),
                    session_name: None,
                    email: w.e.into(),
                    roles: w.r.into_iter().map(Arc::from).collect(),
                    amr: w.m.into_iter().map(Arc::from).collect(),
                    authenticated_at: w.t,
                    verified: w.vf,
                    anonymous: w.an,
                    can_reauthenticate: w.cr,
                    extra_headers: w
                        .h
                        .into_iter()
                        .map(|(k, v)| (k.into_boxed_str(), v.into_boxed_str()))
                        .collect(),
                    claims: w.c.map(Arc::new),
                    expires_at: w.x,
                    token_id: w.j.map(String::into_boxed_str),
                    issued_at: w.i,
                };
                if let Some(name) = w.s {
                    identity.set_session_name(&name);
                }
                Verdict::Allow(Arc::new(identity))
            }
            WireVerdict::Invalid(why) => Verdict::Deny(Denial::InvalidCredential(reason(&why))),
            WireVerdict::Forbidden(why) => Verdict::Deny(Denial::Forbidden(reason(&why))),
            WireVerdict::Redirect(to) => Verdict::Deny(Denial::Redirect(Arc::from(to))),
            WireVerdict::Throttled(seconds) => Verdict::Deny(Denial::Throttled(seconds)),
            WireVerdict::Abstain => Verdict::Abstain,
        }
    }
}

/// A denial's reason as the process's own static text. Reasons are a small set written
/// in verdict's code, and a record is read only after its seal verified, so the set stays
/// small; past a bound a reason is not kept, and a general one stands in.
fn reason(text: &str) -> &'static str {
    const LIMIT: usize = 256;
    static REASONS: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let Ok(mut reasons) = REASONS.get_or_init(Mutex::default).lock() else {
        return "denied (shared decision)";
    };
    if let Some(known) = reasons.get(text) {
        return known;
    }
    if reasons.len() >= LIMIT {
        return "denied (shared decision)";
    }
    let kept: &'static str = Box::leak(text.to_string().into_boxed_str());
    reasons.insert(kept);
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_verdict_reads_back_as_written() {
        let mut identity = Identity {
            user_id: "u1".into(),
            email: "u1@example.com".into(),
            roles: vec![Arc::from("admin")].into(),
            verified: true,
            extra_headers: vec![("x-plan".into(), "gold".into())].into(),
            token_id: Some("jti-1".into()),
            issued_at: NonZeroU64::new(1_700_000_000_999),
            ..Identity::default()
        };
        identity.set_session_name("session-7");
        for verdict in [
            Verdict::Allow(Arc::new(identity)),
            Verdict::Deny(Denial::InvalidCredential("token expired")),
            Verdict::Deny(Denial::Forbidden("backend said no")),
            Verdict::Deny(Denial::Redirect(Arc::from("https://example.com/x"))),
            Verdict::Abstain,
        ] {
            let bytes = WireDecision::new(&verdict, 5, 10).to_bytes();
            let back = WireDecision::from_bytes(&bytes).expect("reads");
            assert_eq!((back.decided_at, back.expires_at), (5, 10));
            assert_eq!(back.verdict(), verdict);
        }
    }

    #[test]
    fn garbage_is_no_decision() {
        for bytes in [
            &b""[..],
            b"{}",
            b"null",
            b"{\"x\":1,\"d\":1,\"v\":\"z\"}",
            b"\xff\xfe",
        ] {
            assert!(WireDecision::from_bytes(bytes).is_none(), "{bytes:?}");
        }
    }
}
