//! Route rules on who the user is, beyond "all of these roles": any-of roles, OAuth
//! scopes, and claim matchers (exact or glob, dotted paths, a list claim matching when
//! one item does), applied after the cache on every request; a claim or scope a token
//! does not carry never satisfies one.

use serde_json::json;

use crate::support::*;

const ROUTES: &str = r#"
[[route]]
name = "editors"
path = "/edit"
access = "authenticated"
roles_any = ["editor", "admin"]
[[route]]
name = "reports"
path = "/reports"
access = "authenticated"
scopes = ["reports:read"]
[[route]]
name = "org-42"
path = "/org"
access = "authenticated"
claims = { "org.id" = "42", tier = ["gold", "platinum*"] }
"#;

async fn status(v: &Verdict, path: &str, token: &str) -> u16 {
    auth_request(v, path)
        .insert_header(("Authorization", format!("Bearer {token}")))
        .status()
        .await
}

fn token(extra: serde_json::Value) -> String {
    let mut claims = user_claims("u1", &["reader"], 600);
    for (k, v) in extra.as_object().unwrap() {
        claims[k] = v.clone();
    }
    hs_token(claims)
}

#[actix_web::test]
async fn any_of_roles_scopes_and_claims_decide_after_the_cache() {
    let v = start("", &format!("{}{DEMO_KEYS}{ROUTES}", jwt_hs(""))).await;
    // any of the roles
    assert_eq!(
        status(&v, "/edit", &token(json!({"roles": ["editor"]}))).await,
        200
    );
    assert_eq!(
        status(&v, "/edit", &token(json!({"roles": ["admin", "x"]}))).await,
        200
    );
    assert_eq!(
        status(&v, "/edit", &token(json!({"roles": ["reader"]}))).await,
        403
    );
    // scopes: `scope` space-separated, or `scp` as a list
    assert_eq!(
        status(
            &v,
            "/reports",
            &token(json!({"scope": "openid reports:read"}))
        )
        .await,
        200
    );
    assert_eq!(
        status(&v, "/reports", &token(json!({"scp": ["reports:read"]}))).await,
        200
    );
    assert_eq!(
        status(&v, "/reports", &token(json!({"scope": "reports:write"}))).await,
        403
    );
    // a missing scope claim never satisfies the rule
    assert_eq!(status(&v, "/reports", &token(json!({}))).await, 403);
    // claims: a dotted path, exact; a glob; a list claim matching by one item
    let member = token(json!({"org": {"id": "42"}, "tier": "platinum-plus"}));
    assert_eq!(status(&v, "/org", &member).await, 200);
    let listed = token(json!({"org": {"id": 42}, "tier": ["silver", "gold"]}));
    assert_eq!(
        status(&v, "/org", &listed).await,
        200,
        "a number and a list"
    );
    let other_org = token(json!({"org": {"id": "43"}, "tier": "gold"}));
    assert_eq!(status(&v, "/org", &other_org).await, 403);
    let no_tier = token(json!({"org": {"id": "42"}}));
    assert_eq!(status(&v, "/org", &no_tier).await, 403, "a missing claim");
    // a static token has no claims: the rule is never met by it
    assert_eq!(status(&v, "/org", "admin-token").await, 403);
    assert_eq!(status(&v, "/reports", "valid-token").await, 403);
    // the rules run on every request, cached or not: the same token, another route
    assert_eq!(status(&v, "/org", &member).await, 200);
    assert_eq!(status(&v, "/reports", &member).await, 403);
}

#[test]
fn rules_that_cannot_work_are_explained() {
    let load = |routes: &str| {
        verdict::config::Config::from_toml(&format!("{}{DEMO_KEYS}{routes}", jwt_hs("")))
    };
    let error = load("[[route]]\npath = \"/x\"\naccess = \"authenticated\"\nroles_any = []\n")
        .unwrap_err()
        .to_string();
    assert!(error.contains("roles_any"), "{error}");
    let error = load("[[route]]\npath = \"/x\"\naccess = \"public\"\nscopes = [\"a\"]\n")
        .unwrap_err()
        .to_string();
    assert!(error.contains("only apply"), "{error}");
    let error =
        load("[[route]]\npath = \"/x\"\naccess = \"authenticated\"\nclaims = { tier = \"[\" }\n")
            .unwrap_err()
            .to_string();
    assert!(error.contains("claims"), "{error}");
    // claims on a route whose authorizers never give any: a warning that says so
    let config = load(
        "[[route]]\nname = \"keys-only\"\npath = \"/x\"\naccess = \"authenticated\"\nauthorizers = [\"keys\"]\nclaims = { tier = \"gold\" }\n",
    )
    .unwrap();
    assert!(
        config
            .warnings
            .iter()
            .any(|w| w.contains("keys-only") && w.contains("refused")),
        "{:?}",
        config.warnings
    );
}
