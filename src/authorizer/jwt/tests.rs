//! Unit tests of the `jwt` authorizer: building, verifying, claims.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::verify::value_list;
use super::{JwtAuthorizer, JwtSettings};
use crate::authorizer::Fetcher;
use crate::decision::{Decision, Denial, Verdict};
use crate::identity::claim;
use crate::settings::ConfigError;

pub const SECRET: &str = "an-hmac-secret-that-is-32-bytes!!";

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Builds authorizer `a` from TOML settings written under `[a]`.
fn from_toml(text: &str) -> Result<JwtAuthorizer, ConfigError> {
    crate::init_crypto();
    #[derive(Deserialize)]
    struct Wrap {
        a: JwtSettings,
    }
    let wrap: Wrap = config::Config::builder()
        .add_source(config::File::from_str(text, config::FileFormat::Toml))
        .build()
        .and_then(|c| c.try_deserialize())
        .expect("settings parse");
    JwtAuthorizer::build("a", wrap.a, Path::new("."))
}

fn authorizer(extra: &str) -> JwtAuthorizer {
    from_toml(&format!(
        "[a]\nissuers = [\"https://idp.test\"]\naudiences = [\"api\"]\n{extra}\n[[a.keys]]\nkid = \"hs\"\nalgorithms = [\"HS256\"]\nsecret = \"{SECRET}\"\n"
    ))
    .expect("builds")
}

fn sign(claims: Value, kid: Option<&str>) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = kid.map(str::to_owned);
    encode(
        &header,
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn good_claims() -> Value {
    json!({"sub": "u-123", "iss": "https://idp.test", "aud": "api", "exp": now() + 600,
           "roles": ["admin", "dev"], "amr": ["pwd", "mfa"], "auth_time": 1136171045u64,
           "email_verified": true, "preferred_username": "alice"})
}

fn verdict(a: &JwtAuthorizer, token: &str) -> Decision {
    let fetcher = Fetcher::new(Duration::from_secs(1));
    futures_util::FutureExt::now_or_never(a.decide(token, &fetcher))
        .expect("static keys never wait")
        .expect("no error")
}

fn denial(a: &JwtAuthorizer, token: &str) -> &'static str {
    match verdict(a, token).verdict {
        Verdict::Deny(Denial::InvalidCredential(why)) => why,
        other => panic!("expected a deny, got {other:?}"),
    }
}

#[actix_web::test]
async fn valid_token_maps_claims_to_identity() {
    let a = authorizer("");
    let decision = verdict(&a, &sign(good_claims(), Some("hs")));
    let Verdict::Allow(id) = decision.verdict else {
        panic!("not allowed")
    };
    assert_eq!(&*id.user_id, "u-123");
    assert_eq!(id.session_name(), "alice");
    assert_eq!(id.roles, ["admin", "dev"].map(std::sync::Arc::from).into());
    assert_eq!(id.amr, ["pwd", "mfa"].map(std::sync::Arc::from).into());
    assert_eq!(id.authenticated_at.map(|t| t.get()), Some(1136171045));
    assert!(id.verified);
    let ttl = decision.valid_for.expect("exp caps ttl");
    assert!(ttl <= Duration::from_secs(600) && ttl >= Duration::from_secs(590));
}

#[actix_web::test]
async fn expired_and_not_yet_valid_are_denied() {
    let a = authorizer("");
    let mut expired = good_claims();
    expired["exp"] = json!(now() - 120);
    assert_eq!(denial(&a, &sign(expired, Some("hs"))), "token expired");
    let mut within_leeway = good_claims();
    within_leeway["exp"] = json!(now() - 10);
    assert!(matches!(
        verdict(&a, &sign(within_leeway, Some("hs"))).verdict,
        Verdict::Allow(_)
    ));
    let mut future = good_claims();
    future["nbf"] = json!(now() + 300);
    assert_eq!(denial(&a, &sign(future, Some("hs"))), "token not yet valid");
}

#[actix_web::test]
async fn wrong_issuer_and_audience_are_denied() {
    let a = authorizer("");
    let mut iss = good_claims();
    iss["iss"] = json!("https://evil.test");
    assert_eq!(denial(&a, &sign(iss, Some("hs"))), "wrong issuer");
    let mut aud = good_claims();
    aud["aud"] = json!("other");
    assert_eq!(denial(&a, &sign(aud, Some("hs"))), "wrong audience");
    let mut no_iss = good_claims();
    no_iss.as_object_mut().unwrap().remove("iss");
    assert_eq!(
        denial(&a, &sign(no_iss, Some("hs"))),
        "required claim missing"
    );
    let mut numeric_iss = good_claims();
    numeric_iss["iss"] = json!(42);
    assert!(matches!(
        verdict(&a, &sign(numeric_iss, Some("hs"))).verdict,
        Verdict::Deny(_)
    ));
}

#[actix_web::test]
async fn bad_signature_is_denied() {
    let a = authorizer("");
    let token = sign(good_claims(), Some("hs"));
    let (rest, sig) = token.rsplit_once('.').unwrap();
    let first = if sig.starts_with('A') { 'B' } else { 'A' };
    let flipped = format!("{first}{}", &sig[1..]);
    assert_eq!(denial(&a, &format!("{rest}.{flipped}")), "bad signature");
    let other = encode(
        &Header::new(Algorithm::HS256),
        &good_claims(),
        &EncodingKey::from_secret(b"another-secret-of-32-bytes-length!"),
    )
    .unwrap();
    assert!(matches!(verdict(&a, &other).verdict, Verdict::Deny(_)));
}

#[actix_web::test]
async fn alg_none_is_denied() {
    let a = authorizer("");
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    for alg in ["none", "None", "NONE"] {
        let token = format!(
            "{}.{}.",
            b64(&json!({"alg": alg, "kid": "hs"})),
            b64(&good_claims())
        );
        assert_eq!(denial(&a, &token), "unsigned token", "{alg}");
    }
}

#[actix_web::test]
async fn hmac_with_a_public_key_is_denied() {
    crate::init_crypto();
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("ec.pem");
    std::fs::write(&pem, TEST_EC_PUBLIC_PEM).unwrap();
    let text = format!(
        "[[a.keys]]\nkid = \"ec\"\nalgorithms = [\"ES256\"]\npem_file = {:?}\n",
        pem.display().to_string()
    );
    let a = from_toml(&text).unwrap();
    // the attacker signs HS256 using the public key text as the HMAC secret
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("ec".into());
    let forged = encode(
        &header,
        &json!({"sub": "admin", "exp": now() + 60}),
        &EncodingKey::from_secret(TEST_EC_PUBLIC_PEM.as_bytes()),
    )
    .unwrap();
    assert_eq!(denial(&a, &forged), "unknown key or algorithm");
    // and a PEM key can never be configured for HMAC at all
    let bad = format!(
        "[[a.keys]]\nalgorithms = [\"HS256\"]\npem_file = {:?}\n",
        pem.display().to_string()
    );
    let err = from_toml(&bad).unwrap_err().to_string();
    assert!(err.contains("never a PEM key"), "{err}");
}

#[actix_web::test]
async fn valid_es256_token_verifies_with_the_pem_key() {
    crate::init_crypto();
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("ec.pem");
    std::fs::write(&pem, TEST_EC_PUBLIC_PEM).unwrap();
    let text = format!(
        "[[a.keys]]\nalgorithms = [\"ES256\"]\npem_file = {:?}\n",
        pem.display().to_string()
    );
    let a = from_toml(&text).unwrap();
    let token = encode(
        &Header::new(Algorithm::ES256),
        &json!({"sub": "ec-user", "exp": now() + 60}),
        &EncodingKey::from_ec_pem(TEST_EC_PRIVATE_PEM.as_bytes()).unwrap(),
    )
    .unwrap();
    assert!(matches!(verdict(&a, &token).verdict, Verdict::Allow(id) if &*id.user_id == "ec-user"));
}

#[actix_web::test]
async fn every_matching_key_is_tried() {
    let second = "a-second-hmac-secret-of-32-bytes!";
    let a = from_toml(&format!(
        "[[a.keys]]\nalgorithms = [\"HS256\"]\nsecret = \"{SECRET}\"\n[[a.keys]]\nalgorithms = [\"HS256\"]\nsecret = \"{second}\"\n"
    ))
    .unwrap();
    let claims = json!({"sub": "rotated", "exp": now() + 60});
    let token = encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(second.as_bytes()),
    )
    .unwrap();
    assert!(matches!(verdict(&a, &token).verdict, Verdict::Allow(id) if &*id.user_id == "rotated"));
    let other = encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(b"a-third-secret-nobody-configured!"),
    )
    .unwrap();
    assert_eq!(denial(&a, &other), "bad signature");
}

#[actix_web::test]
async fn unknown_kid_is_denied() {
    let a = authorizer("");
    assert_eq!(
        denial(&a, &sign(good_claims(), Some("other"))),
        "unknown key or algorithm"
    );
}

#[actix_web::test]
async fn malformed_tokens_are_denied_or_not_ours() {
    let a = authorizer("");
    assert_eq!(verdict(&a, "demo-token").verdict, Verdict::Abstain);
    assert_eq!(verdict(&a, "a.b.c").verdict, Verdict::Abstain);
    let b64 = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    let bad_header = format!("{}.{}.sig", b64("{\"alg\":\"HS256\",\"typ\":7}"), b64("{}"));
    assert_eq!(denial(&a, &bad_header), "malformed token");
    let garbage_payload = format!("{}.!!!.sig", b64("{\"alg\":\"HS256\",\"kid\":\"hs\"}"));
    assert!(matches!(
        verdict(&a, &garbage_payload).verdict,
        Verdict::Deny(_)
    ));
    let unknown_alg = format!("{}.{}.sig", b64("{\"alg\":\"XS999\"}"), b64("{}"));
    assert_eq!(denial(&a, &unknown_alg), "malformed token");
}

#[actix_web::test]
async fn token_without_subject_is_denied() {
    let a = authorizer("");
    let mut claims = good_claims();
    claims.as_object_mut().unwrap().remove("sub");
    assert_eq!(denial(&a, &sign(claims, Some("hs"))), "token names no user");
}

#[test]
fn config_rejects_unsafe_settings() {
    let build = |text: &str| from_toml(text).map(|_| ()).unwrap_err().to_string();
    assert!(build("[a]\n").contains("needs keys or jwks_url"));
    assert!(
        build("[[a.keys]]\nalgorithms = [\"HS256\"]\nsecret = \"short\"\n")
            .contains("at least 32 bytes")
    );
    assert!(build("[[a.keys]]\nalgorithms = [\"HS256\", \"RS256\"]\nsecret = \"an-hmac-secret-that-is-32-bytes!!\"\n").contains("one family"));
    assert!(
        build(
            "[[a.keys]]\nalgorithms = [\"none\"]\nsecret = \"an-hmac-secret-that-is-32-bytes!!\"\n"
        )
        .contains("is not one of")
    );
    assert!(build("[a]\njwks_url = \"https://idp/jwks\"\n").contains("jwks_algorithms"));
    assert!(
        build("[a]\njwks_url = \"https://idp/jwks\"\njwks_algorithms = [\"HS256\"]\n")
            .contains("never taken from a URL")
    );
}

#[test]
fn claims_reach_into_objects_and_accept_strings() {
    let claims = json!({"realm_access": {"roles": ["a", "b"]}, "scope": "read write"});
    let map = claims.as_object().unwrap();
    assert_eq!(
        claim(map, "realm_access.roles").map(value_list).unwrap(),
        vec!["a", "b"]
    );
    assert_eq!(
        claim(map, "scope").map(value_list).unwrap(),
        vec!["read", "write"]
    );
    assert!(claim(map, "missing.path").is_none());
}

pub const TEST_EC_PRIVATE_PEM: &str = include_str!("../../../tests/fixtures/ec256.key.pem");
pub const TEST_EC_PUBLIC_PEM: &str = include_str!("../../../tests/fixtures/ec256.pub.pem");

#[test]
fn authgears_own_access_token_claims_map_through_the_preset() {
    let claims = json!({"sub": "u-ag", "iss": "https://idp.test", "aud": "api", "exp": now() + 600,
        "amr": ["pwd"], "auth_time": 1136171045u64,
        "https://authgear.com/claims/user/roles": ["editor", "viewer"],
        "https://authgear.com/claims/user/is_anonymous": false,
        "https://authgear.com/claims/user/is_verified": true,
        "https://authgear.com/claims/user/can_reauthenticate": true});
    for claims_setting in ["claims = \"authgear\"", "[a.claims]\npreset = \"authgear\""] {
        let a = authorizer(claims_setting);
        let Verdict::Allow(identity) = verdict(&a, &sign(claims.clone(), Some("hs"))).verdict
        else {
            panic!("allowed");
        };
        assert_eq!(&*identity.user_id, "u-ag");
        assert_eq!(identity.roles.len(), 2, "{claims_setting}");
        assert!(identity.verified && identity.can_reauthenticate && !identity.anonymous);
    }
    // without the preset, can_reauthenticate is off unless mapped by name
    let a = authorizer(
        "[a.claims]\ncan_reauthenticate = \"https://authgear.com/claims/user/can_reauthenticate\"\nroles = \"\"",
    );
    let Verdict::Allow(identity) = verdict(&a, &sign(claims, Some("hs"))).verdict else {
        panic!("allowed");
    };
    assert!(identity.can_reauthenticate && identity.roles.is_empty());
    let unknown = config::Config::builder()
        .add_source(config::File::from_str(
            "claims = \"keycloak\"",
            config::FileFormat::Toml,
        ))
        .build()
        .and_then(|c| c.get::<super::ClaimNames>("claims"))
        .expect_err("an unknown preset");
    assert!(
        unknown
            .to_string()
            .contains("is not one of default, authgear"),
        "{unknown}"
    );
}
