//! The `introspect` authorizer against a fake issuer on port 0: the RFC 7662 request
//! (form-encoded token, Basic client authentication), what an answer means, how long an
//! active answer is reused, and that the token is never logged.

use serde_json::json;

use crate::support::*;

fn authorizer(url: &str, extra: &str) -> String {
    format!(
        "[authorizers.opaque]\ntype = \"introspect\"\nurl = \"{url}\"\nclient_id = \"verdict\"\nclient_secret_env = \"VERDICT_TEST_INTROSPECT_SECRET\"\nissuers = [\"https://idp.example.com/\"]\n{extra}\n"
    )
}

async fn status(v: &Verdict, token: &str) -> u16 {
    auth_request(v, "/x")
        .insert_header(("Authorization", format!("Bearer {token}")))
        .status()
        .await
}

fn active(extra: serde_json::Value) -> Reply {
    let mut body = json!({
        "active": true, "sub": "user-1", "iss": "https://idp.example.com/",
        "exp": now() + 600, "scope": "openid profile",
        "realm_access": {"roles": ["admin"]}
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    Reply::status(200)
        .header("content-type", "application/json")
        .body(body.to_string())
}

#[actix_web::test]
async fn an_opaque_token_is_introspected_once_per_ttl_and_mapped_like_a_jwt() {
    // the secret from the environment, as a deployment would give it (the env map the
    // test passes to the configuration)
    let issuer = fake_backend(active(json!({}))).await;
    let body = authorizer(
        &issuer.url("/introspect"),
        "[authorizers.opaque.claims]\nroles = \"realm_access.roles\"",
    );
    let (v, clock) = start_with_clock_env(
        "",
        &format!(
            "{body}[[route]]\npath = \"/x\"\naccess = \"authenticated\"\nroles = [\"admin\"]\n"
        ),
        &[("VERDICT_TEST_INTROSPECT_SECRET", "s3cret:with colon")],
    )
    .await;
    let r = auth_request(&v, "/x")
        .insert_header(("Authorization", "Bearer opaque-token-abc"))
        .sent()
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers().get("x-authgear-user-id").unwrap(), "user-1");
    let asked = &issuer.received()[0];
    assert_eq!(asked.method, "POST");
    assert_eq!(
        String::from_utf8_lossy(&asked.body),
        "token=opaque-token-abc"
    );
    assert_eq!(
        asked.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    use base64::Engine as _;
    let expected = base64::engine::general_purpose::STANDARD.encode("verdict:s3cret%3Awith+colon");
    assert_eq!(
        asked.header("authorization"),
        Some(format!("Basic {expected}").as_str())
    );
    // reused within allow_ttl (5 s by default) ...
    assert_eq!(status(&v, "opaque-token-abc").await, 200);
    assert_eq!(issuer.hits(), 1);
    // ... and asked again after it: a token revoked at the issuer stops working
    issuer.set_default(
        Reply::status(200)
            .header("content-type", "application/json")
            .body(r#"{"active": false}"#),
    );
    clock.advance(std::time::Duration::from_secs(6));
    assert_eq!(status(&v, "opaque-token-abc").await, 401);
    assert_eq!(issuer.hits(), 2);
}

#[actix_web::test]
async fn inactive_expired_foreign_and_broken_answers_admit_no_one() {
    let issuer = fake_backend(Reply::status(200)).await;
    let (v, _clock) = start_with_clock_env(
        "",
        &authorizer(&issuer.url("/introspect"), ""),
        &[("VERDICT_TEST_INTROSPECT_SECRET", "s3cret")],
    )
    .await;
    for (n, (reply, expected)) in [
        (Reply::status(200).body(r#"{"active": false}"#), 401),
        (Reply::status(200).body(r#"{"sub": "user-1"}"#), 401),
        (active(json!({"exp": 1})), 401),
        (active(json!({"iss": "https://evil.example.com/"})), 401),
        (active(json!({"active": "true"})), 401),
        (Reply::status(200).body("not json"), 503),
        (Reply::status(500), 503),
        (Reply::status(401), 503),
    ]
    .into_iter()
    .enumerate()
    {
        issuer.push(reply);
        assert_eq!(
            status(&v, &format!("token-{n}")).await,
            expected,
            "answer {n}"
        );
    }
}
