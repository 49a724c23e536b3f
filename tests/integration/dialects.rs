//! Each dialect derives the right facts from what its proxy sends (the proxy contract
//! cases A1–A11, named in a comment above each test).

use std::time::{Duration, Instant};

use crate::support::*;

const ROUTES: &str = r#"
[[route]]
name = "items-write"
path = "/api/items"
methods = ["POST"]
access = "deny"
[[route]]
name = "admin"
path = "/admin"
access = "authenticated"
roles = ["admin"]
[[route]]
name = "root-only"
path_glob = "/"
access = "public"
[[route]]
name = "who"
path = "/who"
access = "identify"
"#;

async fn verdict_with_routes() -> Verdict {
    start("", &format!("{DEMO_KEYS}{ROUTES}")).await
}

/// A check as Envoy sends it: the original method, the original path after our prefix,
/// the original authority as `Host`.
fn envoy(v: &Verdict, method: awc::http::Method, path: &str) -> awc::ClientRequest {
    client()
        .request(method, v.url(path))
        .insert_header(("Host", "app.example.com"))
}

fn assert_identity(response: &awc::ClientResponse<impl Sized>, user: &str, session: &str) {
    let h = |n: &str| {
        response
            .headers()
            .get(n)
            .map(|v| v.to_str().expect("ascii").to_string())
    };
    assert_eq!(h("x-authgear-user-id").as_deref(), Some(user));
    assert_eq!(h("x-authgear-session-valid").as_deref(), Some("true"));
    assert_eq!(h("x-session-name").as_deref(), Some(session));
    for name in verdict::identity::family_names(verdict::identity::HeaderFamily::Authgear) {
        assert_eq!(
            response.headers().get_all(name).count(),
            1,
            "{name} exactly once"
        );
    }
}

// Proxy contract case A1.
#[actix_web::test]
async fn nginx_original_uri_gives_path_query_method_and_host() {
    let v = verdict_with_routes().await;
    let r = client()
        .get(v.url("/_resolver/resolve"))
        .insert_header(("Host", "authgear_resolver"))
        .insert_header(("X-Original-URI", "/app/page?x=1&y=%2F"))
        .insert_header(("X-Original-Method", "GET"))
        .insert_header(("X-Real-IP", "203.0.113.7"))
        .insert_header(("Authorization", "Bearer valid-token"))
        .sent()
        .await;
    assert_eq!(r.status(), 200);
    assert_identity(&r, "u-123", "alice");
    v.stop().await;
}

// Proxy contract case A2.
#[actix_web::test]
async fn announced_body_that_never_comes_is_answered_at_once() {
    // the naive config sends no X-Original-URI: only a route-less policy can answer it
    let v = start("", DEMO_KEYS).await;
    let started = Instant::now();
    let (bytes, closed) = raw(
        v.addr,
        b"GET /_resolver/auth-request HTTP/1.0\r\nHost: 127.0.0.1:8080\r\nContent-Length: 7\r\nAuthorization: Bearer valid-token\r\n\r\n",
        Duration::from_secs(3),
    );
    let answers = responses(&bytes);
    assert_eq!(answers.len(), 1, "{}", String::from_utf8_lossy(&bytes));
    assert_eq!(answers[0].0, 200);
    assert_eq!(header(&answers[0].1, "x-authgear-user-id"), Some("u-123"));
    // The answer came without waiting for the 7 body bytes that never arrive (a stall
    // would hit the 3 s read timeout instead).
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(
        closed,
        "HTTP/1.0 without keep-alive: the connection is closed after the answer"
    );
    v.stop().await;
}

// Proxy contract case A3.
#[actix_web::test]
async fn traefik_forwarded_method_post_meets_post_rules() {
    let v = verdict_with_routes().await;
    let send = |method: &'static str| {
        client()
            .get(v.url("/_resolver/forward-auth"))
            .insert_header(("Host", "127.0.0.1:8080"))
            .insert_header(("X-Forwarded-Method", method))
            .insert_header(("X-Forwarded-Proto", "https"))
            .insert_header(("X-Forwarded-Host", "app.example.com:8443"))
            .insert_header(("X-Forwarded-Port", "8443"))
            .insert_header(("X-Forwarded-Uri", "/api/items?id=7"))
            .insert_header(("X-Forwarded-For", "203.0.113.7"))
            .insert_header(("X-Real-Ip", "203.0.113.7"))
            .insert_header(("Accept-Encoding", "gzip"))
            .insert_header(("Authorization", "Bearer valid-token"))
            .send()
    };
    let post = send("POST").await.expect("send");
    assert_eq!(post.status(), 403, "the POST rule on /api/items denies");
    assert!(post.headers().get("x-authgear-user-id").is_none());
    let get = send("GET").await.expect("send");
    assert_eq!(get.status(), 200);
    assert!(get.headers().get("content-encoding").is_none());
    assert_identity(&get, "u-123", "alice");
    v.stop().await;
}

// Proxy contract case A4.
#[actix_web::test]
async fn query_on_the_forward_auth_request_line_is_ignored() {
    let v = verdict_with_routes().await;
    let r = client()
        .get(v.url("/_resolver/forward-auth?id=7"))
        .insert_header(("Host", "app.example.com"))
        .insert_header(("X-Forwarded-Method", "POST"))
        .insert_header(("X-Forwarded-Uri", "/api/items?id=7"))
        .insert_header(("X-Forwarded-For", "203.0.113.7"))
        .insert_header(("X-Forwarded-Proto", "https"))
        .insert_header(("X-Forwarded-Host", "app.example.com"))
        .insert_header(("X-Original-Uri", "/public"))
        .insert_header(("Authorization", "Bearer valid-token"))
        .sent()
        .await;
    assert_eq!(
        r.status(),
        403,
        "X-Forwarded-Uri decides, not our own query or X-Original-Uri"
    );
    v.stop().await;
}

// Proxy contract case A5, A6.
#[actix_web::test]
async fn apisix_cookie_credential_allows_and_its_absence_is_401() {
    let v = start("", &format!("{}{ROUTES}", jwt_hs(""))).await;
    let token = hs_token(user_claims("u-apisix", &[], 600));
    let send = |cookie: Option<String>| {
        let mut request = client()
            .get(v.url("/_resolver/forward-auth"))
            .insert_header(("User-Agent", "lua-resty-http/0.17"))
            .insert_header(("X-Forwarded-Proto", "https"))
            .insert_header(("X-Forwarded-Method", "GET"))
            .insert_header(("X-Forwarded-Host", "app.example.com"))
            .insert_header(("X-Forwarded-Uri", "/who"))
            .insert_header(("X-Forwarded-For", "203.0.113.7"));
        if let Some(c) = cookie {
            request = request.insert_header(("Cookie", c));
        }
        request.send()
    };
    let with = send(Some(format!("sess={token}"))).await.expect("send");
    assert_eq!(with.status(), 200);
    assert_eq!(
        with.headers().get("x-authgear-user-id").unwrap(),
        "u-apisix"
    );
    assert_eq!(
        with.headers().get("x-session-name").unwrap(),
        "u-apisix-name"
    );
    let without = send(None).await.expect("send");
    assert_eq!(
        without.status(),
        200,
        "identify routes answer anonymous, detectably"
    );
    assert_eq!(without.headers().get("x-authgear-user-id").unwrap(), "");
    assert_eq!(
        without.headers().get("x-authgear-session-valid").unwrap(),
        ""
    );
    v.stop().await;
}

// Proxy contract case A7, A8, A9.
#[actix_web::test]
async fn envoy_original_method_and_path_come_from_our_request_line() {
    let v = verdict_with_routes().await;
    let get = envoy(
        &v,
        awc::http::Method::GET,
        "/_resolver/ext-authz/app/page?x=1",
    )
    .insert_header(("content-length", "0"))
    .insert_header(("Authorization", "Bearer valid-token"))
    .sent()
    .await;
    assert_eq!(get.status(), 200, "exactly 200, never 204");
    assert_identity(&get, "u-123", "alice");
    let post = envoy(
        &v,
        awc::http::Method::POST,
        "/_resolver/ext-authz/api/items",
    )
    .insert_header(("Authorization", "Bearer valid-token"))
    .sent()
    .await;
    assert_eq!(
        post.status(),
        403,
        "the original POST reaches the POST rule"
    );
    let put = envoy(&v, awc::http::Method::PUT, "/_resolver/ext-authz/api/items")
        .insert_header(("Authorization", "Bearer valid-token"))
        .sent()
        .await;
    assert_eq!(put.status(), 200, "any method is accepted");
    for method in [awc::http::Method::HEAD, awc::http::Method::OPTIONS] {
        let mut r = envoy(&v, method.clone(), "/_resolver/ext-authz/app/page")
            .insert_header(("Authorization", "Bearer valid-token"))
            .sent()
            .await;
        assert_eq!(r.status(), 200, "{method}");
        assert_identity(&r, "u-123", "alice");
        assert!(r.body().await.expect("body").is_empty());
    }
    v.stop().await;
}

// Proxy contract case A10.
#[actix_web::test]
async fn envoy_bare_prefix_and_trailing_slash_mean_root() {
    let v = verdict_with_routes().await;
    for path in ["/_resolver/ext-authz", "/_resolver/ext-authz/"] {
        let r = envoy(&v, awc::http::Method::GET, path).sent().await;
        assert_eq!(r.status(), 200, "{path}: '/' is the public root-only route");
    }
    let r = envoy(&v, awc::http::Method::GET, "/_resolver/ext-authz/other")
        .sent()
        .await;
    assert_eq!(
        r.status(),
        401,
        "anything else falls to the authenticated default"
    );
    v.stop().await;
}

// Proxy contract case A11.
#[actix_web::test]
async fn haproxy_head_with_connection_close_is_answered_and_closed() {
    let v = verdict_with_routes().await;
    let (bytes, closed) = raw(
        v.addr,
        b"HEAD /_resolver/auth-request HTTP/1.1\r\nhost: 127.0.0.1:8080\r\nx-original-uri: /app/page\r\nx-original-method: GET\r\naccept: */*\r\nauthorization: Bearer valid-token\r\nconnection: close\r\n\r\n",
        Duration::from_secs(5),
    );
    let answers = responses(&bytes);
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].0, 200);
    assert_eq!(header(&answers[0].1, "x-authgear-user-id"), Some("u-123"));
    assert!(closed, "the connection is closed right after the answer");
    v.stop().await;
}

#[actix_web::test]
async fn resolve_path_follows_the_configured_dialect() {
    let v = start(
        "resolve_dialect = \"ext-authz\"",
        &format!("{DEMO_KEYS}{ROUTES}"),
    )
    .await;
    let r = envoy(&v, awc::http::Method::POST, "/_resolver/resolve/api/items")
        .insert_header(("Authorization", "Bearer valid-token"))
        .sent()
        .await;
    assert_eq!(
        r.status(),
        403,
        "Envoy's path_prefix form works on /_resolver/resolve"
    );
    let r = envoy(&v, awc::http::Method::GET, "/_resolver/resolve/app")
        .insert_header(("Authorization", "Bearer valid-token"))
        .sent()
        .await;
    assert_eq!(r.status(), 200);
    let other = start("", DEMO_KEYS).await;
    let r = client()
        .get(other.url("/_resolver/resolve/app"))
        .sent()
        .await;
    assert_eq!(
        r.status(),
        404,
        "no tail on /_resolver/resolve unless the dialect is ext-authz"
    );
    v.stop().await;
    other.stop().await;
}

#[actix_web::test]
async fn api_key_from_a_named_header() {
    let v = verdict_with_routes().await;
    let r = client()
        .get(v.url("/_resolver/auth-request"))
        .insert_header(("X-Original-URI", "/app"))
        .insert_header(("X-Original-Method", "GET"))
        .insert_header(("X-Api-Key", "admin-token"))
        .sent()
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers().get("x-authgear-user-id").unwrap(), "u-admin");
    assert_eq!(
        r.headers().get("x-authgear-user-roles").unwrap(),
        "reader,admin"
    );
    v.stop().await;
}
