//! `[headers.custom]`: identity headers an application already reads (`X-User`,
//! `X-Org`), rendered once per decision from the verified identity and its claims; a
//! client's copy, or a name that folds to one, is refused like the built-in families';
//! a value the identity lacks is not sent; a value that could end the header is never sent.

use serde_json::json;

use crate::support::*;

const CUSTOM: &str = r#"
[headers.custom]
"X-User" = "${identity.user_id}"
"X-Org" = "${claim.org.id}"
"X-Who" = "user ${identity.user_id} in ${claim.org.name}"
"#;

fn token(org: serde_json::Value) -> String {
    let mut claims = user_claims("u-9", &["reader"], 600);
    claims["org"] = org;
    hs_token(claims)
}

#[actix_web::test]
async fn custom_headers_carry_the_identity_and_client_copies_are_refused() {
    let v = start("", &format!("{}{CUSTOM}", jwt_hs(""))).await;
    let r = auth_request(&v, "/x")
        .insert_header((
            "Authorization",
            format!("Bearer {}", token(json!({"id": 42, "name": "Acme"}))),
        ))
        .sent()
        .await;
    assert_eq!(r.status(), 200);
    let header = |name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    assert_eq!(header("x-user").as_deref(), Some("u-9"));
    assert_eq!(header("x-org").as_deref(), Some("42"));
    assert_eq!(header("x-who").as_deref(), Some("user u-9 in Acme"));
    // a claim the token lacks: that header is not sent at all
    let r = auth_request(&v, "/x")
        .insert_header((
            "Authorization",
            format!("Bearer {}", token(json!({"id": "7"}))),
        ))
        .sent()
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers().get("x-org").unwrap(), "7");
    assert!(
        r.headers().get("x-who").is_none(),
        "a partial value is never sent"
    );
    // a client's copy, or an alias of one, is refused
    for (name, value) in [("X-User", "admin"), ("X_User", "admin"), ("x.org", "1")] {
        let status = auth_request(&v, "/x")
            .insert_header((
                "Authorization",
                format!("Bearer {}", token(json!({"id": 1}))),
            ))
            .insert_header((name, value))
            .status()
            .await;
        assert_eq!(status, 403, "{name}");
    }
    // a value that could end the header: a 503, never the header
    let r = auth_request(&v, "/x")
        .insert_header((
            "Authorization",
            format!(
                "Bearer {}",
                token(json!({"id": "1\r\nX-Admin: yes", "name": "x"}))
            ),
        ))
        .sent()
        .await;
    assert_eq!(r.status(), 503);
    assert!(r.headers().get("x-org").is_none());
}

#[test]
fn custom_names_that_would_mean_something_else_are_refused() {
    for (name, says) in [
        ("Authorization", "already gives"),
        ("x-authgear-user-id", "already gives"),
        ("X_Authgear_User_Id", "already gives"),
        ("x-forwarded-user", "already gives"),
        ("bad name", "not a header name"),
    ] {
        let text = format!(
            "{}[headers.custom]\n\"{name}\" = \"${{identity.user_id}}\"\n",
            jwt_hs("")
        );
        let error = verdict::config::Config::from_toml(&text)
            .unwrap_err()
            .to_string();
        assert!(error.contains(says), "{name}: {error}");
    }
    let text = format!(
        "{}[headers.custom]\n\"x-a\" = \"${{request.path}}\"\n",
        jwt_hs("")
    );
    let error = verdict::config::Config::from_toml(&text)
        .unwrap_err()
        .to_string();
    assert!(error.contains("is not one of"), "{error}");
    let text = format!(
        "{}[headers.custom]\n\"x-user\" = \"a\"\n\"x_user\" = \"b\"\n",
        jwt_hs("")
    );
    let error = verdict::config::Config::from_toml(&text)
        .unwrap_err()
        .to_string();
    assert!(error.contains("folds"), "{error}");
}
