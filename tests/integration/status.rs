//! Status semantics, login redirects and failure modes (the proxy contract cases B2–B10,
//! named in a comment above each test).

use crate::support::*;

const LOGIN: &str = "login_url = \"https://auth.example.com/login\"";

fn nginx_request(v: &Verdict, uri: &str) -> awc::ClientRequest {
    auth_request(v, uri)
        .insert_header(("X-Forwarded-Proto", "https"))
        .insert_header(("X-Forwarded-Host", "app.example.com"))
}

fn assert_no_identity(r: &awc::ClientResponse<impl Sized>) {
    for (name, _) in r.headers() {
        let n = name.as_str();
        assert!(
            !n.starts_with("x-authgear") && n != "x-session-name",
            "deny leaked {n}"
        );
    }
}

// Proxy contract case B2, B3.
#[actix_web::test]
async fn identify_routes_always_answer_200_like_authgear() {
    let routes = "[[route]]\npath = \"/\"\naccess = \"identify\"\n";
    let v = start("", &format!("{}{routes}", jwt_hs("leeway = \"0s\""))).await;
    let anonymous = nginx_request(&v, "/page")
        .insert_header(("x-authgear-user-id", "admin"))
        .sent()
        .await;
    assert_eq!(anonymous.status(), 200);
    assert_eq!(
        anonymous.headers().get("x-authgear-user-id").unwrap(),
        "",
        "the client's copy is never echoed"
    );
    assert_eq!(
        anonymous.headers().get("x-authgear-session-valid").unwrap(),
        ""
    );
    let expired = hs_token(user_claims("u-1", &[], -60));
    let invalid = nginx_request(&v, "/page")
        .insert_header(("Cookie", format!("sess={expired}")))
        .sent()
        .await;
    assert_eq!(invalid.status(), 200);
    assert_eq!(
        invalid.headers().get("x-authgear-session-valid").unwrap(),
        "false"
    );
    assert_eq!(invalid.headers().get("x-authgear-user-id").unwrap(), "");
    let good = hs_token(user_claims("u-1", &["a", "b"], 600));
    let valid = nginx_request(&v, "/page")
        .insert_header(("Authorization", format!("Bearer {good}")))
        .sent()
        .await;
    assert_eq!(valid.status(), 200);
    assert_eq!(
        valid.headers().get("x-authgear-session-valid").unwrap(),
        "true"
    );
    assert_eq!(valid.headers().get("x-authgear-user-roles").unwrap(), "a,b");
    assert_eq!(
        valid.headers().get("x-authgear-session-amr").unwrap(),
        "pwd"
    );
    v.stop().await;
}

// Proxy contract case B4, B5.
#[actix_web::test]
async fn auth_request_login_is_401_with_location_never_3xx() {
    let v = start(LOGIN, DEMO_KEYS).await;
    let mut r = nginx_request(&v, "/page?x=1")
        .insert_header(("Accept", "text/html"))
        .sent()
        .await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers().get("location").unwrap(),
        "https://auth.example.com/login?rd=https%3A%2F%2Fapp.example.com%2Fpage%3Fx%3D1"
    );
    assert_eq!(
        r.headers().get("www-authenticate").unwrap(),
        "Bearer realm=\"verdict\""
    );
    assert_no_identity(&r);
    assert!(r.body().await.expect("body").is_empty());
    v.stop().await;
}

// Proxy contract case B6.
#[actix_web::test]
async fn forward_auth_redirects_browsers_and_gives_apis_401() {
    let v = start(LOGIN, DEMO_KEYS).await;
    let send = |accept: &'static str, method: &'static str| {
        client()
            .get(v.url("/_resolver/forward-auth"))
            .insert_header(("X-Forwarded-Method", method))
            .insert_header(("X-Forwarded-Proto", "https"))
            .insert_header(("X-Forwarded-Host", "app.example.com"))
            .insert_header(("X-Forwarded-Uri", "/page"))
            .insert_header(("Accept", accept))
            .send()
    };
    let browser = send("text/html,application/xhtml+xml", "GET")
        .await
        .expect("send");
    assert_eq!(browser.status(), 302);
    assert_eq!(
        browser.headers().get("location").unwrap(),
        "https://auth.example.com/login?rd=https%3A%2F%2Fapp.example.com%2Fpage"
    );
    assert_no_identity(&browser);
    let api = send("application/json", "GET").await.expect("send");
    assert_eq!(api.status(), 401);
    let form_post = send("text/html", "POST").await.expect("send");
    assert_eq!(form_post.status(), 401, "only navigations are redirected");
    v.stop().await;
}

// Proxy contract case B8, B10.
#[actix_web::test]
async fn denials_carry_no_identity_and_a_missing_role_is_403() {
    let routes = "[[route]]\npath = \"/admin\"\naccess = \"authenticated\"\nroles = [\"admin\"]\n[[route]]\npath = \"/closed\"\naccess = \"deny\"\n";
    let v = start("", &format!("{DEMO_KEYS}{routes}")).await;
    let mut forbidden = nginx_request(&v, "/admin/users")
        .insert_header(("Authorization", "Bearer valid-token"))
        .sent()
        .await;
    assert_eq!(
        forbidden.status(),
        403,
        "authenticated but lacking the role"
    );
    assert_no_identity(&forbidden);
    assert!(forbidden.body().await.expect("body").is_empty());
    let admin = nginx_request(&v, "/admin/users")
        .insert_header(("Authorization", "Bearer admin-token"))
        .sent()
        .await;
    assert_eq!(admin.status(), 200);
    let closed = nginx_request(&v, "/closed")
        .insert_header(("Authorization", "Bearer admin-token"))
        .sent()
        .await;
    assert_eq!(closed.status(), 403);
    assert_no_identity(&closed);
    let wrong = nginx_request(&v, "/page")
        .insert_header(("Authorization", "Bearer wrong-token"))
        .sent()
        .await;
    assert_eq!(wrong.status(), 401);
    assert_eq!(
        wrong.headers().get("www-authenticate").unwrap(),
        "Bearer realm=\"verdict\", error=\"invalid_token\""
    );
    assert_no_identity(&wrong);
    v.stop().await;
}

/// A JWKS endpoint that is down: the route's on_error decides.
fn jwks_down(on_error: &str) -> String {
    let port = free_port();
    format!(
        "[authorizers.idp]\ntype = \"jwt\"\njwks_url = \"http://127.0.0.1:{port}/jwks.json\"\njwks_algorithms = [\"RS256\"]\njwks_timeout = \"500ms\"\n{DEMO_KEYS}\n[default_route]\nauthorizers = [\"idp\", \"keys\"]\non_error = \"{on_error}\"\n"
    )
}

// Proxy contract case B9.
#[actix_web::test]
async fn unreachable_keys_are_503_by_default() {
    let v = start("", &jwks_down("deny")).await;
    let token = rs_token("k1", user_claims("u", &[], 600));
    let r = nginx_request(&v, "/page")
        .insert_header(("Authorization", format!("Bearer {token}")))
        .sent()
        .await;
    assert_eq!(r.status(), 503);
    assert_no_identity(&r);
    v.stop().await;
}

#[actix_web::test]
async fn on_error_allow_lets_through_anonymously() {
    let v = start("", &jwks_down("allow")).await;
    let token = rs_token("k1", user_claims("u", &[], 600));
    let r = nginx_request(&v, "/page")
        .insert_header(("Authorization", format!("Bearer {token}")))
        .sent()
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers().get("x-authgear-user-id").unwrap(),
        "",
        "never the token's claimed user"
    );
    v.stop().await;
}

#[actix_web::test]
async fn on_error_abstain_moves_to_the_next_authorizer() {
    let v = start("", &jwks_down("abstain")).await;
    let token = rs_token("k1", user_claims("u", &[], 600));
    let r = nginx_request(&v, "/page")
        .insert_header(("Authorization", format!("Bearer {token}")))
        .sent()
        .await;
    assert_eq!(
        r.status(),
        401,
        "the jwt failed, the static authorizer does not know the token"
    );
    let r = nginx_request(&v, "/page")
        .insert_header(("Authorization", "Bearer valid-token"))
        .sent()
        .await;
    assert_eq!(
        r.status(),
        200,
        "a static key still works while the IdP is down"
    );
    v.stop().await;
}

#[actix_web::test]
async fn jwt_failure_modes_end_in_401() {
    let v = start("", &jwt_hs("leeway = \"0s\"")).await;
    let mut wrong_issuer = user_claims("u", &[], 600);
    wrong_issuer["iss"] = "https://evil.test".into();
    let mut wrong_audience = user_claims("u", &[], 600);
    wrong_audience["aud"] = "other".into();
    let mut not_yet = user_claims("u", &[], 600);
    not_yet["nbf"] = (now() + 300).into();
    let cases = [
        ("expired", hs_token(user_claims("u", &[], -5))),
        ("wrong issuer", hs_token(wrong_issuer)),
        ("wrong audience", hs_token(wrong_audience)),
        ("not yet valid", hs_token(not_yet)),
        ("unknown kid", rs_token("nope", user_claims("u", &[], 600))),
        ("garbage", "eyJhbGciOiJIUzI1NiJ9.e30.c2ln".to_string()),
    ];
    for (name, token) in cases {
        let r = nginx_request(&v, "/page")
            .insert_header(("Authorization", format!("Bearer {token}")))
            .sent()
            .await;
        assert_eq!(r.status(), 401, "{name}");
        assert_no_identity(&r);
    }
    v.stop().await;
}
