//! Verifying a token and turning its claims into an identity.
//!
//! Takes: a presented token, the authorizer's pinned keys (static and JWKS) and its
//! validation rules. Returns: `Allow(identity)` with the cache lifetime capped at `exp`;
//! `Deny(InvalidCredential)` for every verification failure; `Abstain` when the credential
//! is not a JWT at all; an error only when keys cannot be had. Must never: let the token's
//! header choose an algorithm its key is not pinned to, or log a token.

use std::num::NonZeroU64;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde_json::Value;

use super::JwtAuthorizer;
use super::keys::candidates;
use crate::authorizer::Fetcher;
use crate::decision::{AuthError, Decision, Denial};
use crate::identity::{Claims, Identity, claim};

impl JwtAuthorizer {
    /// Verifies a token.
    pub async fn decide(&self, token: &str, fetcher: &Fetcher) -> Result<Decision, AuthError> {
        // The header is parsed once on the way to a verdict; only a header jsonwebtoken
        // refuses is looked at again, to tell "not a JWT" (abstain) from a bad one.
        let header = match jsonwebtoken::decode_header(token) {
            Ok(header) => header,
            Err(_) => {
                return Ok(match jwt_alg(token) {
                    // Not a JWT at all (an API key, an opaque session id): not ours to judge.
                    None => Decision::abstain(),
                    Some(alg) if alg.eq_ignore_ascii_case("none") => {
                        Decision::deny(Denial::InvalidCredential("unsigned token"))
                    }
                    Some(_) => Decision::deny(Denial::InvalidCredential("malformed token")),
                });
            }
        };
        // RFC 7515 §4.1.11: a token whose header lists critical extensions must be refused
        // by a verifier that does not understand them, and verdict understands none (an
        // empty list is invalid as well).
        if header.crit.is_some() {
            return Ok(Decision::deny(Denial::InvalidCredential(
                "critical header extension not understood",
            )));
        }
        let kid = header.kid.as_deref();
        let mut keys_to_try = candidates(kid, header.alg, &self.static_keys);
        if let Some(jwks) = &self.jwks {
            // boxed: a fetch's state is carried only by the tokens that use a JWKS
            let keys = Box::pin(jwks.keys_for(fetcher, kid)).await?;
            keys_to_try.extend(candidates(kid, header.alg, &keys.keys));
        }
        if keys_to_try.is_empty() {
            // Not cached: the key may be published a moment later, and the token must be
            // accepted as soon as it is fetched, not after deny_ttl.
            let mut unknown = Decision::deny(Denial::InvalidCredential("unknown key or algorithm"));
            unknown.ttl = Some(Duration::ZERO);
            return Ok(unknown);
        }
        let Some(validation) = self.validations.get(&header.alg) else {
            return Ok(Decision::deny(Denial::InvalidCredential(
                "algorithm not allowed",
            )));
        };
        // Several keys can share a kid (or have none): the token is valid if one of them
        // verifies it; the answer otherwise is the last key's reason.
        let mut failure = "bad signature";
        for key in &keys_to_try {
            match jsonwebtoken::decode::<serde_json::Map<String, Value>>(
                token, &key.key, validation,
            ) {
                Ok(data) => return Ok(self.identity_from(&data.claims)),
                Err(e) => failure = describe(e.kind()),
            }
        }
        Ok(Decision::deny(Denial::InvalidCredential(failure)))
    }

    fn identity_from(&self, claims: &Claims) -> Decision {
        identity_from_claims(&self.claims, &self.names, self.keep_claims, claims)
    }
}

/// The identity verified claims name, by `names` (a JWT's, or an introspected token's):
/// an allow valid until its `exp`, or a deny when the claims name no user.
pub(crate) fn identity_from_claims(
    names: &super::ClaimNames,
    pool: &crate::identity::NamePool,
    keep_claims: bool,
    claims: &Claims,
) -> Decision {
    let Some(user_id) = claim(claims, &names.user_id)
        .and_then(value_text)
        .filter(|s| !s.is_empty())
    else {
        return Decision::deny(Denial::InvalidCredential("token names no user"));
    };
    let session_name = claim(claims, &names.session_name).and_then(value_text);
    let mut identity = Identity {
        session_name: None,
        email: claim(claims, &names.email)
            .and_then(value_text)
            .unwrap_or_default()
            .into(),
        roles: claim(claims, &names.roles)
            .map(value_list)
            .unwrap_or_default()
            .iter()
            .map(|role| pool.name(role))
            .collect(),
        amr: claim(claims, &names.amr)
            .map(value_list)
            .unwrap_or_default()
            .iter()
            .map(|method| pool.name(method))
            .collect(),
        authenticated_at: claim(claims, &names.auth_time)
            .and_then(Value::as_u64)
            .and_then(NonZeroU64::new),
        verified: claim(claims, &names.verified).is_some_and(value_true),
        anonymous: claim(claims, &names.anonymous).is_some_and(value_true),
        can_reauthenticate: claim(claims, &names.can_reauthenticate).is_some_and(value_true),
        user_id: user_id.into(),
        extra_headers: Box::default(),
        // the claims only where an authorizer reads them (claims_from)
        claims: keep_claims.then(|| Arc::new(claims.clone())),
        expires_at: claims
            .get("exp")
            .and_then(Value::as_u64)
            .and_then(NonZeroU64::new),
        token_id: claims.get("jti").and_then(value_text).map(Into::into),
        // the end of the second the token names: a revocation made within that
        // second refuses it (the earlier reading would let a token of the second
        // before a logout through)
        issued_at: claims
            .get("iat")
            .or_else(|| claim(claims, &names.auth_time))
            .and_then(Value::as_u64)
            .and_then(|secs| NonZeroU64::new(secs.saturating_mul(1000).saturating_add(999))),
    };
    if let Some(name) = session_name {
        identity.set_session_name(&name);
    }
    let valid_for = claims.get("exp").and_then(Value::as_u64).map(|exp| {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Duration::from_secs(exp.saturating_sub(now))
    });
    Decision::allow(identity, valid_for)
}

/// The `alg` of a token if it is shaped like a JWS (three base64url parts, a JSON header
/// with an `alg` string).
fn jwt_alg(token: &str) -> Option<String> {
    let mut parts = token.split('.');
    let header = parts.next()?;
    parts.next()?;
    parts.next()?;
    if parts.next().is_some() {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .ok()?;
    let value: Value = serde_json::from_slice(&bytes).ok()?;
    value.get("alg")?.as_str().map(str::to_owned)
}

fn describe(kind: &jsonwebtoken::errors::ErrorKind) -> &'static str {
    use jsonwebtoken::errors::ErrorKind as K;
    match kind {
        K::ExpiredSignature => "token expired",
        K::ImmatureSignature => "token not yet valid",
        K::InvalidIssuer => "wrong issuer",
        K::InvalidAudience => "wrong audience",
        K::InvalidSignature => "bad signature",
        K::InvalidAlgorithm | K::InvalidKeyFormat => "algorithm not allowed for key",
        K::MissingRequiredClaim(_) => "required claim missing",
        K::InvalidClaimFormat(_) => "claim has the wrong type",
        _ => "malformed token",
    }
}

fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

pub(super) fn value_list(v: &Value) -> Vec<String> {
    match v {
        Value::Array(items) => items.iter().filter_map(value_text).collect(),
        Value::String(s) => s
            .split([' ', ','])
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

fn value_true(v: &Value) -> bool {
    matches!(v, Value::Bool(true)) || matches!(v, Value::String(s) if s == "true")
}
