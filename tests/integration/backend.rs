//! The `http` authorizer against a fake backend that answers each protocol and
//! misbehaves on demand.

use std::time::Duration;

use serde_json::Value;

use crate::support::*;

async fn status_of(v: &Verdict, uri: &str) -> u16 {
    viewer_check(v, uri).status().await
}

#[actix_web::test]
async fn status_protocol_statuses() {
    let backend = fake_backend(Reply::status(200).header("X-Session-Name", "alice")).await;
    let v = start(
        "",
        &http_authorizer(&[backend.url("/check")], "status", "forward_query = true"),
    )
    .await;
    let r = viewer_check(&v, "/play/a001/index.m3u8?token=good")
        .sent()
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers().get("x-session-name").unwrap(), "alice");
    assert_eq!(r.headers().get("x-authgear-session-valid").unwrap(), "true");
    for (reply, expected, path) in [
        (401, 401, "/p1"),
        (403, 403, "/p2"),
        (404, 403, "/p3"),
        (429, 403, "/p4"),
        (302, 503, "/p5"),
        (500, 503, "/p6"),
        (503, 503, "/p7"),
        (204, 503, "/p8"),
    ] {
        backend.set_default(Reply::status(reply).header("Location", "http://elsewhere/"));
        let r = viewer_check(&v, path).sent().await;
        assert_eq!(r.status().as_u16(), expected, "backend {reply}");
        assert!(r.headers().get("x-authgear-user-id").is_none());
    }
    v.stop().await;
    backend.stop().await;
}

#[actix_web::test]
async fn the_backend_receives_the_cesbo_request() {
    let backend = fake_backend(Reply::status(200)).await;
    let v = start(
        "",
        &http_authorizer(&[backend.url("/check?src=verdict")], "status", "forward_query = true\n[authorizers.backend.headers]\nX-Token = \"${query.token}\"\nX-Seg = \"${path.3}\""),
    )
    .await;
    assert_eq!(
        status_of(&v, "/play/a001/index.m3u8?token=123&x=a%20b").await,
        200
    );
    let got = backend.received().pop().expect("one request");
    assert_eq!(got.method, "GET");
    assert_eq!(got.uri, "/check?src=verdict&token=123&x=a%20b");
    assert_eq!(got.header("x-session-id").map(str::len), Some(16));
    assert_eq!(got.header("x-channel-id"), Some("a001"));
    assert_eq!(got.header("x-real-ip"), Some("203.0.113.7"));
    assert_eq!(got.header("x-real-path"), Some("/play/a001/index.m3u8"));
    assert_eq!(got.header("x-real-ua"), Some("VLC/3.0"));
    assert_eq!(got.header("x-real-host"), Some("live.example.com"));
    assert_eq!(
        got.header("x-real-origin"),
        Some("https://live.example.com")
    );
    assert_eq!(got.header("x-token"), Some("123"));
    assert_eq!(got.header("x-seg"), Some("index.m3u8"));
    assert!(got.body.is_empty());
    v.stop().await;
    backend.stop().await;
}

#[actix_web::test]
async fn post_sends_a_json_body_and_get_encodes_body_into_the_query() {
    let backend = fake_backend(
        Reply::status(200)
            .header("content-type", "application/json")
            .body(r#"{"result":"allow"}"#),
    )
    .await;
    let body = "[authorizers.backend.body]\nusername = \"${header.x-user}\"\ntopic = \"${query.topic}\"\npeerhost = \"${client_ip}\"";
    let post = start(
        "",
        &http_authorizer(
            &[backend.url("/emqx")],
            "json",
            &format!("method = \"POST\"\n{body}"),
        ),
    )
    .await;
    let topic = "a%2Bb%2Fc%26d%20e%20%C3%A9"; // a+b/c&d e é
    let r = viewer_check(&post, &format!("/mqtt?topic={topic}"))
        .insert_header(("X-User", "alice"))
        .sent()
        .await;
    assert_eq!(r.status(), 200);
    let got = backend.received().pop().expect("request");
    assert_eq!(got.method, "POST");
    assert_eq!(got.header("content-type"), Some("application/json"));
    assert_eq!(got.header("accept"), Some("application/json"));
    let json: Value = serde_json::from_slice(&got.body).expect("JSON body");
    assert_eq!(json["username"], "alice");
    assert_eq!(json["topic"], "a+b/c&d e \u{e9}");
    assert_eq!(json["peerhost"], "203.0.113.7");
    post.stop().await;

    let get = start("", &http_authorizer(&[backend.url("/emqx")], "json", body)).await;
    let r = viewer_check(&get, &format!("/mqtt?topic={topic}"))
        .insert_header(("X-User", "al ice"))
        .sent()
        .await;
    assert_eq!(r.status(), 200);
    let got = backend.received().pop().expect("request");
    assert_eq!(got.method, "GET");
    assert!(got.body.is_empty());
    assert_eq!(
        got.uri,
        "/emqx?peerhost=203.0.113.7&topic=a%2Bb%2Fc%26d%20e%20%C3%A9&username=al%20ice"
    );
    get.stop().await;
    backend.stop().await;
}

#[actix_web::test]
async fn line_breaks_never_reach_a_backend_header() {
    let backend = fake_backend(Reply::status(200)).await;
    let v = start(
        "",
        &http_authorizer(
            &[backend.url("/check")],
            "status",
            "[authorizers.backend.headers]\nX-User = \"${query.user}\"",
        ),
    )
    .await;
    for injection in ["a%0d%0aX-Evil:%201", "a%0aX-Evil:1", "a%0db", "a%00b"] {
        let r = viewer_check(&v, &format!("/p?user={injection}"))
            .sent()
            .await;
        assert_eq!(r.status(), 403, "{injection}");
    }
    assert_eq!(backend.hits(), 0, "nothing was sent");
    assert_eq!(status_of(&v, "/p?user=plain").await, 200);
    v.stop().await;
    backend.stop().await;
}

#[actix_web::test]
async fn hanging_refusing_and_oversized_backends_are_errors() {
    let backend = fake_backend(Reply::status(200).delay(Duration::from_secs(3))).await;
    let v = start("", &http_authorizer(&[backend.url("/slow")], "status", "")).await;
    let started = std::time::Instant::now();
    assert_eq!(status_of(&v, "/hang").await, 503);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the request timeout cut the wait"
    );
    v.stop().await;

    let closed = format!("http://127.0.0.1:{}/check", free_port());
    let v = start("", &http_authorizer(&[closed], "status", "retries = 2")).await;
    assert_eq!(status_of(&v, "/refused").await, 503);
    v.stop().await;

    backend.set_default(Reply::status(200).body(vec![b'x'; 10 * 1024 * 1024]));
    let v = start("", &http_authorizer(&[backend.url("/big")], "status", "")).await;
    assert_eq!(
        status_of(&v, "/big").await,
        503,
        "a 10 MiB body is over max_response_bytes"
    );
    v.stop().await;
    backend.stop().await;
}

#[actix_web::test]
async fn five_hundred_then_two_hundred_is_retried() {
    let backend = fake_backend(Reply::status(200)).await;
    backend.push(Reply::status(500));
    let v = start(
        "",
        &http_authorizer(&[backend.url("/check")], "status", "retries = 1"),
    )
    .await;
    assert_eq!(status_of(&v, "/r").await, 200);
    assert_eq!(backend.hits(), 2);
    backend.push(Reply::status(403));
    assert_eq!(status_of(&v, "/denied").await, 403);
    assert_eq!(backend.hits(), 3, "a deny is never retried");
    v.stop().await;
    backend.stop().await;
}

#[actix_web::test]
async fn json_protocol_results() {
    let backend = fake_backend(Reply::status(204)).await;
    let v = start_logged("", &http_authorizer(&[backend.url("/emqx")], "json", "")).await;
    assert_eq!(status_of(&v, "/j1").await, 200, "204 allows");
    let cases: Vec<(Reply, u16)> = vec![
        (
            Reply::status(200)
                .header("content-type", "application/json")
                .body(r#"{"result":"allow"}"#),
            200,
        ),
        (Reply::status(200).body(r#"{"result":"allow"}"#), 200),
        (
            Reply::status(200)
                .header("content-type", "application/x-www-form-urlencoded")
                .body("result=allow"),
            200,
        ),
        (
            Reply::status(200)
                .header("content-type", "application/json")
                .body(r#"{"result":"deny"}"#),
            403,
        ),
        (
            Reply::status(200)
                .header("content-type", "application/json")
                .body(r#"{"result":"ignore"}"#),
            401,
        ),
        (Reply::status(403), 401),
        (
            Reply::status(200)
                .header("content-type", "application/json")
                .body(r#"{"result":"maybe"}"#),
            503,
        ),
        (
            Reply::status(200)
                .header("content-type", "application/json")
                .body("{not json"),
            503,
        ),
        (
            Reply::status(200)
                .header("content-type", "text/plain")
                .body("allow"),
            503,
        ),
    ];
    for (i, (reply, expected)) in cases.into_iter().enumerate() {
        backend.set_default(reply.clone());
        assert_eq!(
            status_of(&v, &format!("/j/{i}")).await,
            expected,
            "{reply:?}"
        );
    }
    assert!(
        v.log_with("maybe")
            .await
            .lines()
            .any(|l| l.contains(&backend.url("/emqx")) && l.contains("maybe")),
        "the error names the backend"
    );
    v.stop().await;
    backend.stop().await;
}

#[actix_web::test]
async fn authgear_protocol() {
    let backend = fake_backend(
        Reply::status(200)
            .header("x-authgear-session-valid", "true")
            .header("x-authgear-user-id", "u-42")
            .header("x-authgear-user-roles", "a,b")
            .header("x-authgear-session-amr", "pwd mfa")
            .header("x-authgear-user-verified", "true"),
    )
    .await;
    let v = start(
        "",
        &http_authorizer(&[backend.url("/_resolver/resolve")], "authgear", ""),
    )
    .await;
    let r = viewer_check(&v, "/g1").sent().await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers().get("x-authgear-user-id").unwrap(), "u-42");
    assert_eq!(r.headers().get("x-authgear-user-roles").unwrap(), "a,b");
    assert_eq!(
        r.headers().get("x-authgear-session-amr").unwrap(),
        "pwd mfa"
    );
    assert_eq!(r.headers().get("x-authgear-user-verified").unwrap(), "true");
    backend.set_default(Reply::status(200).header("x-authgear-session-valid", "false"));
    assert_eq!(status_of(&v, "/g2").await, 401);
    backend.set_default(Reply::status(200));
    assert_eq!(
        status_of(&v, "/g3").await,
        401,
        "no header: abstain, nobody else applies"
    );
    v.stop().await;
    backend.stop().await;
}

#[actix_web::test]
async fn failover_and_cool_down() {
    let first = fake_backend(Reply::status(500)).await;
    let second = fake_backend(Reply::status(200).header("X-Session-Name", "from-second")).await;
    let (v, clock) = start_with_clock(
        "",
        &http_authorizer(
            &[first.url("/a"), second.url("/b")],
            "status",
            "retries = 1\ncooldown = \"400ms\"",
        ),
    )
    .await;
    let r = viewer_check(&v, "/f1").sent().await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers().get("x-session-name").unwrap(), "from-second");
    assert_eq!(first.hits(), 2, "tried and retried once");
    assert_eq!(second.hits(), 1);
    assert_eq!(status_of(&v, "/f2").await, 200);
    assert_eq!(first.hits(), 2, "skipped while cooling down");
    assert_eq!(second.hits(), 2);
    clock.advance(Duration::from_millis(400));
    first.set_default(Reply::status(200).header("X-Session-Name", "from-first"));
    let r = viewer_check(&v, "/f3").sent().await;
    assert_eq!(
        r.headers().get("x-session-name").unwrap(),
        "from-first",
        "back in order after the cool-down"
    );
    v.stop().await;
    first.stop().await;
    second.stop().await;
}

#[actix_web::test]
async fn on_error_values_for_a_dead_backend() {
    let dead = format!("http://127.0.0.1:{}/check", free_port());
    for (on_error, token, expected) in [
        ("deny", "valid-token", 503),
        ("allow", "none", 200),
        ("abstain", "valid-token", 200),
        ("abstain", "wrong-token", 401),
    ] {
        let body = format!(
            "{}{DEMO_KEYS}\n[default_route]\nauthorizers = [\"backend\", \"keys\"]\non_error = \"{on_error}\"\n",
            http_authorizer(std::slice::from_ref(&dead), "status", "")
        );
        let v = start_logged("", &body).await;
        let r = viewer_check(&v, "/x")
            .insert_header(("Authorization", format!("Bearer {token}")))
            .sent()
            .await;
        assert_eq!(
            r.status().as_u16(),
            expected,
            "on_error = {on_error}, token {token}"
        );
        if on_error == "allow" {
            assert_eq!(r.headers().get("x-authgear-user-id").unwrap(), "");
            assert!(
                v.log_with("on_error = \"allow\"")
                    .await
                    .lines()
                    .any(|l| l.contains(" WARN ") && l.contains("on_error = \"allow\"")),
                "the fail-open is logged at warn"
            );
        }
        v.stop().await;
    }
}

#[actix_web::test]
async fn cache_hits_ttls_and_per_path_keys() {
    let backend = fake_backend(Reply::status(200)).await;
    let (v, clock) = start_with_clock(
        "",
        &http_authorizer(
            &[backend.url("/check")],
            "status",
            "forward_query = true\nallow_ttl = \"300ms\"",
        ),
    )
    .await;
    assert_eq!(status_of(&v, "/a?token=1").await, 200);
    assert_eq!(status_of(&v, "/a?token=1").await, 200);
    assert_eq!(backend.hits(), 1, "hit");
    assert_eq!(status_of(&v, "/b?token=1").await, 200);
    assert_eq!(backend.hits(), 2, "/a and /b never share a backend answer");
    clock.advance(Duration::from_millis(300));
    assert_eq!(status_of(&v, "/a?token=1").await, 200);
    assert_eq!(backend.hits(), 3, "the per-authorizer TTL expired");
    backend.push(Reply::status(500));
    backend.push(Reply::status(500));
    assert_eq!(status_of(&v, "/err").await, 503);
    assert_eq!(status_of(&v, "/err").await, 200, "the error was not cached");
    v.stop().await;
    backend.stop().await;
}

#[actix_web::test]
async fn hundred_identical_misses_make_one_backend_call() {
    let backend = fake_backend(Reply::status(200).delay(Duration::from_millis(200))).await;
    let v = start(
        "workers = 2",
        &http_authorizer(&[backend.url("/check")], "status", "forward_query = true"),
    )
    .await;
    let futures = (0..100).map(|_| {
        let request = viewer_check(&v, "/live?token=same");
        async move { request.status().await }
    });
    let statuses = futures_util::future::join_all(futures).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(backend.hits(), 1);
    v.stop().await;
    backend.stop().await;
}

#[actix_web::test]
async fn coarse_cache_key_and_cache_control() {
    let backend = fake_backend(Reply::status(200)).await;
    let v = start(
        "",
        &http_authorizer(
            &[backend.url("/check")],
            "status",
            "forward_query = true\ncache_key = [\"${query.token}\"]",
        ),
    )
    .await;
    assert_eq!(status_of(&v, "/a?token=t1").await, 200);
    assert_eq!(status_of(&v, "/b?token=t1").await, 200);
    assert_eq!(
        backend.hits(),
        1,
        "the configured key ignores the path on purpose"
    );
    v.stop().await;

    backend.set_default(Reply::status(200).header("Cache-Control", "no-store"));
    let v = start(
        "",
        &http_authorizer(
            &[backend.url("/check")],
            "status",
            "honor_cache_control = true",
        ),
    )
    .await;
    let before = backend.hits();
    assert_eq!(status_of(&v, "/n").await, 200);
    assert_eq!(status_of(&v, "/n").await, 200);
    assert_eq!(backend.hits(), before + 2, "no-store is honoured");
    v.stop().await;
    backend.stop().await;
}

#[actix_web::test]
async fn x_location_and_copied_headers() {
    let backend = fake_backend(
        Reply::status(403).header("X-Location", "http://promo.example.com/play/promo"),
    )
    .await;
    let v = start(
        "",
        &http_authorizer(
            &[backend.url("/check")],
            "status",
            "copy_headers = [\"X-Tier\"]",
        ),
    )
    .await;
    let r = viewer_check(&v, "/d").sent().await;
    assert_eq!(r.status(), 401, "auth-request: 401 + Location, never a 3xx");
    assert_eq!(
        r.headers().get("location").unwrap(),
        "http://promo.example.com/play/promo"
    );
    let r = client()
        .get(v.url("/_resolver/forward-auth"))
        .insert_header(("X-Forwarded-Method", "GET"))
        .insert_header(("X-Forwarded-Uri", "/d2"))
        .sent()
        .await;
    assert_eq!(r.status(), 302);
    assert_eq!(
        r.headers().get("location").unwrap(),
        "http://promo.example.com/play/promo"
    );
    backend.set_default(
        Reply::status(200)
            .header("X-Tier", "gold")
            .header("X-Secret", "no"),
    );
    let r = viewer_check(&v, "/ok").sent().await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers().get("x-tier").unwrap(), "gold");
    assert!(r.headers().get("x-secret").is_none());
    v.stop().await;
    backend.stop().await;
}

#[actix_web::test]
async fn claims_of_an_earlier_jwt_feed_templates() {
    let backend = fake_backend(Reply::status(200)).await;
    let extra = "claims_from = \"jwt\"\n[authorizers.backend.headers]\nX-User = \"${claim.sub}\"";
    let body = format!(
        "{}{}\n[default_route]\nauthorizers = [\"backend\"]\n",
        jwt_hs(""),
        http_authorizer(&[backend.url("/check")], "status", extra)
    );
    let v = start("", &body).await;
    let token = hs_token(user_claims("u-claims", &[], 600));
    let r = viewer_check(&v, "/c")
        .insert_header(("Authorization", format!("Bearer {token}")))
        .sent()
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        backend.received().pop().expect("request").header("x-user"),
        Some("u-claims")
    );
    let r = viewer_check(&v, "/c").sent().await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        backend.received().pop().expect("request").header("x-user"),
        Some(""),
        "no token: renders empty"
    );
    v.stop().await;
    backend.stop().await;
}

#[test]
fn http_config_errors() {
    use verdict::config::Config;
    let err = |extra: &str, urls: &str| {
        Config::from_toml(&format!(
            "[authorizers.b]\ntype = \"http\"\nprotocol = \"status\"\nurls = [{urls}]\n{extra}\n"
        ))
        .expect_err("rejected")
        .to_string()
    };
    assert!(err("", "\"http://${query.host}/x\"").contains("host must be literal"));
    assert!(err("", "\"ftp://x/\"").contains("not an http(s) URL"));
    assert!(err("", "").contains("at least one backend URL"));
    assert!(err("method = \"PUT\"", "\"http://a/\"").contains("GET or POST"));
    assert!(
        err("[authorizers.b.headers]\nX = \"${nope}\"", "\"http://a/\"")
            .contains("unknown placeholder")
    );
    assert!(
        err("copy_headers = [\"x-authgear-user-id\"]", "\"http://a/\"")
            .contains("cannot be copied")
    );
    assert!(
        err(
            "[authorizers.b.headers]\nX = \"${claim.sub}\"",
            "\"http://a/\""
        )
        .contains("claims_from")
    );
    assert!(err("ca_file = \"/nonexistent.pem\"", "\"https://a/\"").contains("ca_file"));
    let wrong_kind = Config::from_toml(&format!(
        "{DEMO_KEYS}[authorizers.b]\ntype = \"http\"\nprotocol = \"status\"\nurls = [\"http://a/\"]\nclaims_from = \"keys\"\n"
    ))
    .expect_err("a static authorizer has no claims")
    .to_string();
    assert!(
        wrong_kind.contains("is not a jwt authorizer"),
        "{wrong_kind}"
    );
}

/// An https backend with a certificate from the test CA in `tests/fixtures`.
async fn tls_backend() -> (std::net::SocketAddr, actix_web::dev::ServerHandle) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    verdict::init_crypto();
    let fixtures = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(fixtures.join("backend.cert.pem"))
            .expect("cert")
            .collect::<Result<_, _>>()
            .expect("cert");
    let key = PrivateKeyDer::from_pem_file(fixtures.join("backend.key.pem")).expect("key");
    let tls = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("tls config");
    let server = actix_web::HttpServer::new(|| {
        actix_web::App::new().default_service(actix_web::web::to(|| async {
            actix_web::HttpResponse::Ok()
                .insert_header(("X-Session-Name", "over-tls"))
                .finish()
        }))
    })
    .workers(1)
    .disable_signals()
    .bind_rustls_0_23("127.0.0.1:0", tls)
    .expect("bind tls");
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    (addr, handle)
}

#[actix_web::test]
async fn https_backends_use_the_configured_ca() {
    let (addr, handle) = tls_backend().await;
    let url = format!("https://localhost:{}/check", addr.port());
    let ca =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/test-ca.pem");
    let v = start(
        "",
        &http_authorizer(
            std::slice::from_ref(&url),
            "status",
            &format!("ca_file = {:?}", ca.display().to_string()),
        ),
    )
    .await;
    let r = viewer_check(&v, "/tls").sent().await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers().get("x-session-name").unwrap(), "over-tls");
    v.stop().await;
    let untrusting = start("", &http_authorizer(&[url], "status", "")).await;
    assert_eq!(
        status_of(&untrusting, "/tls").await,
        503,
        "the test CA is not among the default roots"
    );
    untrusting.stop().await;
    handle.stop(false).await;
}

#[actix_web::test]
async fn raw_utf8_client_headers_reach_the_backend() {
    let backend = fake_backend(Reply::status(200)).await;
    let v = start("", &http_authorizer(&[backend.url("/check")], "status", "")).await;
    let r = client()
        .get(v.url("/_resolver/auth-request"))
        .insert_header(("X-Original-URI", "/play/a001/x"))
        .insert_header(("X-Original-Method", "GET"))
        .insert_header((
            "User-Agent",
            awc::http::header::HeaderValue::from_bytes("Player caf\u{e9}/1".as_bytes())
                .expect("value"),
        ))
        .sent()
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        backend
            .received()
            .pop()
            .expect("request")
            .header("x-real-ua"),
        Some("Player caf\u{e9}/1")
    );
    v.stop().await;
    backend.stop().await;
}
