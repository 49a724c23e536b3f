//! End to end through a real nginx running the shipped `nginx/verdict.conf`.

use serde_json::Value;

use crate::proxies::{Kind, start_proxy};
use crate::support::*;

const ROUTES: &str = "[[route]]\npath = \"/admin\"\naccess = \"authenticated\"\nroles = [\"admin\"]\n[[route]]\npath = \"/public\"\naccess = \"public\"\n";

async fn body_json(
    response: &mut awc::ClientResponse<
        impl futures_util::Stream<Item = Result<actix_web::web::Bytes, awc::error::PayloadError>>
        + Unpin,
    >,
) -> Value {
    let bytes = response.body().await.expect("body");
    serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)))
}

#[actix_web::test]
async fn nginx_auth_request_end_to_end() {
    let v = start("", &format!("{DEMO_KEYS}{ROUTES}")).await;
    let app = echo_upstream().await;
    let Some(nginx) = start_proxy(Kind::Nginx, v.addr, app.addr) else {
        return;
    };

    // allowed: reaches the application with the identity; the client's copy is replaced
    let mut allowed = client()
        .get(nginx.url("/app/page?x=1"))
        .insert_header(("Authorization", "Bearer valid-token"))
        .insert_header(("x-authgear-user-id", "admin"))
        .insert_header(("X-Session-Name", "root"))
        .sent()
        .await;
    assert_eq!(allowed.status(), 200);
    let seen = body_json(&mut allowed).await;
    assert_eq!(echoed(&seen, "x-authgear-user-id"), vec!["u-123"]);
    assert_eq!(echoed(&seen, "x-session-name"), vec!["alice"]);
    assert_eq!(
        echoed(&seen, "host"),
        vec!["127.0.0.1"],
        "the application sees the host nginx routed on, not the upstream's name"
    );
    assert_eq!(echoed(&seen, "x-authgear-session-valid"), vec!["true"]);
    assert_eq!(echoed(&seen, "x-authgear-user-roles"), vec!["reader"]);
    assert_eq!(seen["uri"], "/app/page?x=1");

    // public route: a spoofed identity never reaches the application
    let mut public = client()
        .get(nginx.url("/public/x"))
        .insert_header(("x-authgear-user-id", "admin"))
        .sent()
        .await;
    assert_eq!(public.status(), 200);
    let seen = body_json(&mut public).await;
    assert!(echoed(&seen, "x-authgear-user-id").is_empty(), "{seen}");

    // no token: 401
    let missing = client().get(nginx.url("/app/page")).sent().await;
    assert_eq!(missing.status(), 401);

    // forbidden route: 403
    let forbidden = client()
        .get(nginx.url("/admin/panel"))
        .insert_header(("Authorization", "Bearer valid-token"))
        .sent()
        .await;
    assert_eq!(forbidden.status(), 403);

    // a POST with a body gets its answer without nginx waiting on verdict
    let posted = client()
        .post(nginx.url("/app/form"))
        .insert_header(("Authorization", "Bearer valid-token"))
        .send_body("a=1&b=2")
        .await
        .expect("send");
    assert_eq!(posted.status(), 200);

    // dot-segments and encoded slashes are judged as nginx routes them
    let sneaky = client()
        .get(nginx.url("/public/%2e%2e/admin/panel"))
        .insert_header(("Authorization", "Bearer valid-token"))
        .sent()
        .await;
    assert_eq!(sneaky.status(), 403);

    drop(nginx);
    v.stop().await;
    app.stop().await;
}

#[actix_web::test]
async fn nginx_redirects_browsers_to_login() {
    let v = start(
        "login_url = \"https://auth.example.com/login\"",
        &format!("{DEMO_KEYS}{ROUTES}"),
    )
    .await;
    let app = echo_upstream().await;
    let Some(nginx) = start_proxy(Kind::Nginx, v.addr, app.addr) else {
        return;
    };
    let browser = client()
        .get(nginx.url("/app/page?x=1"))
        .insert_header(("Accept", "text/html"))
        .sent()
        .await;
    assert_eq!(browser.status(), 302);
    let expected = format!(
        "https://auth.example.com/login?rd=http%3A%2F%2F127.0.0.1%3A{}%2Fapp%2Fpage%3Fx%3D1",
        nginx.port
    );
    assert_eq!(
        browser.headers().get("location").expect("location"),
        expected.as_str()
    );
    let allowed = client()
        .get(nginx.url("/app/page"))
        .insert_header(("Authorization", "Bearer valid-token"))
        .sent()
        .await;
    assert_eq!(allowed.status(), 200);
    drop(nginx);
    v.stop().await;
    app.stop().await;
}

#[actix_web::test]
async fn nginx_with_a_cesbo_style_backend() {
    let backend = fake_backend(Reply::status(200).header("X-Session-Name", "viewer-7")).await;
    let body = format!(
        "[authorizers.astra]\ntype = \"http\"\nprotocol = \"status\"\nurls = [\"{}\"]\nforward_query = true\n",
        backend.url("/check")
    );
    let v = start("", &body).await;
    let app = echo_upstream().await;
    let Some(nginx) = start_proxy(Kind::Nginx, v.addr, app.addr) else {
        return;
    };

    let mut allowed = client()
        .get(nginx.url("/play/a001/index.m3u8?token=123"))
        .sent()
        .await;
    assert_eq!(allowed.status(), 200);
    let seen = body_json(&mut allowed).await;
    assert_eq!(
        echoed(&seen, "x-session-name"),
        vec!["viewer-7"],
        "X-Session-Name reaches the app"
    );
    let asked = backend.received().pop().expect("backend asked");
    assert_eq!(asked.uri, "/check?token=123");
    assert_eq!(asked.header("x-channel-id"), Some("a001"));
    assert_eq!(asked.header("x-real-path"), Some("/play/a001/index.m3u8"));

    backend.set_default(Reply::status(403).header(
        "X-Location",
        "http://promo.example.com/play/promo/index.m3u8",
    ));
    let promo = client()
        .get(nginx.url("/play/a002/index.m3u8?token=bad"))
        .sent()
        .await;
    assert_eq!(
        promo.status(),
        302,
        "X-Location becomes the viewer's redirect"
    );
    assert_eq!(
        promo.headers().get("location").expect("location"),
        "http://promo.example.com/play/promo/index.m3u8"
    );

    backend.set_default(Reply::status(403));
    let refused = client()
        .get(nginx.url("/play/a003/index.m3u8?token=bad"))
        .sent()
        .await;
    assert_eq!(refused.status(), 403);

    drop(nginx);
    v.stop().await;
    app.stop().await;
    backend.stop().await;
}

/// A request verdict refuses at the HTTP layer (nginx forwards a header value with a
/// control byte; verdict's parser refuses it) reached the client as nginx's 500; raw bytes
/// that are not UTF-8 in the target are decided the same way every time.
#[actix_web::test]
async fn http_layer_refusals_reach_the_client_as_403_through_nginx() {
    let v = start("", &format!("{DEMO_KEYS}{ROUTES}")).await;
    let app = fake_backend(Reply::status(200)).await;
    let Some(nginx) = start_proxy(Kind::Nginx, v.addr, app.addr) else {
        return;
    };
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], nginx.port).into();
    let wait = std::time::Duration::from_secs(3);
    let control = b"GET /public/x HTTP/1.1\r\nHost: app\r\nX-Odd: a\x01b\r\nAuthorization: Bearer valid-token\r\nConnection: close\r\n\r\n";
    let (bytes, _) = raw(addr, control, wait);
    let text = String::from_utf8_lossy(&bytes);
    // nginx passes the value on; verdict's parser refuses it, as 403 (a 400 became 500)
    assert!(text.starts_with("HTTP/1.1 403"), "{text}");
    for _ in 0..2 {
        let raw_bytes = b"GET /public/\xff\xfe HTTP/1.1\r\nHost: app\r\nAuthorization: Bearer valid-token\r\nConnection: close\r\n\r\n";
        let (bytes, _) = raw(addr, raw_bytes, wait);
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.starts_with("HTTP/1.1 403"), "{text}");
    }
    assert_eq!(app.hits(), 0);
    drop(nginx);
    v.stop().await;
    app.stop().await;
}
