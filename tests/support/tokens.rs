//! Tokens for the tests: HS256 and RS256 JWTs, claims, a JWKS document.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

pub const HS_SECRET: &str = "integration-secret-of-32-bytes!!";

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// An HS256 token for the `jwt` authorizer of [`JWT_HS`].
pub fn hs_token(claims: Value) -> String {
    // jsonwebtoken signs through the process's provider: verdict's, installed by whichever
    // test gets here first (tests run in any order)
    verdict::init_crypto();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("hs".into());
    encode(
        &header,
        &claims,
        &EncodingKey::from_secret(HS_SECRET.as_bytes()),
    )
    .expect("sign")
}

pub fn user_claims(sub: &str, roles: &[&str], ttl: i64) -> Value {
    json!({"sub": sub, "iss": "https://idp.test", "aud": "api", "exp": (now() as i64 + ttl),
           "roles": roles, "preferred_username": format!("{sub}-name"), "amr": ["pwd"]})
}

/// A `jwt` authorizer with an inline HMAC key, reading the bearer token or cookie `sess`.
pub fn jwt_hs(extra: &str) -> String {
    format!(
        "[authorizers.jwt]\ntype = \"jwt\"\ntoken_sources = [\"bearer\", \"cookie:sess\"]\nissuers = [\"https://idp.test\"]\naudiences = [\"api\"]\n{extra}\n[[authorizers.jwt.keys]]\nkid = \"hs\"\nalgorithms = [\"HS256\"]\nsecret = \"{HS_SECRET}\"\n"
    )
}

pub const RSA_PRIVATE: &str = include_str!("../fixtures/rsa.key.pem");

pub fn rs_token(kid: &str, claims: Value) -> String {
    verdict::init_crypto();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.into());
    encode(
        &header,
        &claims,
        &EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).expect("rsa key"),
    )
    .expect("sign")
}

pub fn jwks_with(kids: &[&str]) -> String {
    verdict::init_crypto();
    let key = EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).expect("rsa key");
    let keys: Vec<Jwk> = kids
        .iter()
        .map(|kid| {
            let mut jwk = Jwk::from_encoding_key(&key, Algorithm::RS256).expect("jwk");
            jwk.common.key_id = Some(kid.to_string());
            jwk
        })
        .collect();
    serde_json::to_string(&JwkSet { keys }).expect("jwks json")
}
