//! Regression tests: one test per fixed bug, named for the bug, each failing on the code
//! before its fix. A bug fix adds its test here, whatever part of verdict it touches.

use std::time::Duration;

use crate::support::*;

/// Refusals before routing used to skip the decision log line's single format and the
/// encoder: an untrusted peer got a hand-written 403 and its own warn line. Every
/// refusal is now an outcome, answered by the dialect and recorded like any decision.
#[actix_web::test]
async fn untrusted_peer_refusal_is_recorded_like_every_decision() {
    let v = start_logged("trusted_proxies = [\"10.0.0.0/8\"]", DEMO_KEYS).await;
    let r = auth_request(&v, "/page")
        .insert_header(("Authorization", "Bearer valid-token"))
        .sent()
        .await;
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("x-authgear-user-id").is_none());
    let log = v.log_with("decision dialect=auth-request").await;
    let line = log
        .lines()
        .find(|l| l.contains("decision dialect=auth-request"))
        .unwrap_or_else(|| panic!("no decision line in:\n{log}"));
    assert!(line.contains(" WARN "), "{line}");
    assert!(line.contains("outcome=untrusted-peer status=403"), "{line}");
    assert!(
        line.contains("reason=\"peer 127.0.0.1 is not in server.trusted_proxies\""),
        "{line}"
    );
    assert_eq!(
        v.metric(
            "verdict_decisions_total{authorizer=\"-\",outcome=\"untrusted-peer\",route=\"-\"}"
        )
        .await,
        1
    );
    v.stop().await;
}

/// Routes for the bypass classes: a denied admin area (by path, by host and by method)
/// beside a public area.
const BYPASS_ROUTES: &str = r#"
[[route]]
name = "admin-host"
host = "admin.example.com"
access = "deny"
[[route]]
name = "admin"
path = "/admin"
access = "deny"
[[route]]
name = "delete"
path = "/api"
methods = ["DELETE"]
access = "deny"
[[route]]
name = "public"
path = "/public"
access = "public"
"#;

async fn bypass_verdict() -> Verdict {
    start("", &format!("{DEMO_KEYS}{BYPASS_ROUTES}")).await
}

/// nginx sends the client's target raw; these go to verdict as X-Original-URI.
fn as_nginx(v: &Verdict, uri: &str) -> awc::ClientRequest {
    auth_request(v, uri)
        .insert_header(("X-Forwarded-Proto", "https"))
        .insert_header(("X-Forwarded-Host", "app.example.com"))
        .insert_header(("Authorization", "Bearer valid-token"))
}

#[actix_web::test]
async fn a_port_on_the_host_escaped_an_exact_host_rule() {
    let v = bypass_verdict().await;
    for host in ["admin.example.com:8443", "ADMIN.example.com.:8443"] {
        let r = client()
            .get(v.url("/_resolver/forward-auth"))
            .insert_header(("X-Forwarded-Method", "GET"))
            .insert_header(("X-Forwarded-Proto", "https"))
            .insert_header(("X-Forwarded-Host", host))
            .insert_header(("X-Forwarded-Uri", "/public"))
            .insert_header(("Authorization", "Bearer valid-token"))
            .status()
            .await;
        assert_eq!(r, 403, "{host} is admin.example.com");
    }
    v.stop().await;
}

#[actix_web::test]
async fn a_client_sent_original_url_chose_the_host() {
    let v = bypass_verdict().await;
    // nginx routed to the admin virtual host; the client's own X-Original-URL names the
    // public one
    let to_admin = |url: &str| {
        auth_request(&v, "/public")
            .insert_header(("X-Forwarded-Proto", "https"))
            .insert_header(("X-Forwarded-Host", "admin.example.com"))
            .insert_header(("X-Original-URL", url.to_string()))
            .insert_header(("Authorization", "Bearer valid-token"))
    };
    assert_eq!(
        to_admin("https://app.example.com/public").status().await,
        403,
        "X-Original-URL disagrees with X-Forwarded-Host"
    );
    assert_eq!(
        to_admin("https://admin.example.com/public").status().await,
        403,
        "agreeing descriptions, and the admin host is denied"
    );
    let r = as_nginx(&v, "/public")
        .insert_header(("X-Original-URL", "https://app.example.com/public"))
        .status()
        .await;
    assert_eq!(r, 200, "agreeing descriptions of an allowed request");
    v.stop().await;
}

#[actix_web::test]
async fn a_jwt_with_critical_header_extensions_was_accepted() {
    let v = start("", &jwt_hs("")).await;
    for crit in [vec!["exp-extension".to_string()], vec![]] {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some("hs".into());
        header.crit = Some(crit.clone());
        let token = jsonwebtoken::encode(
            &header,
            &user_claims("u-crit", &[], 600),
            &jsonwebtoken::EncodingKey::from_secret(HS_SECRET.as_bytes()),
        )
        .expect("sign");
        let r = auth_request(&v, "/page")
            .insert_header(("Authorization", format!("Bearer {token}")))
            .status()
            .await;
        assert_eq!(r, 401, "crit {crit:?}");
    }
    let plain = hs_token(user_claims("u-plain", &[], 600));
    let r = auth_request(&v, "/page")
        .insert_header(("Authorization", format!("Bearer {plain}")))
        .status()
        .await;
    assert_eq!(r, 200);
    v.stop().await;
}

#[actix_web::test]
async fn targets_an_application_reads_as_admin_were_allowed() {
    let v = bypass_verdict().await;
    for uri in [
        // dot segments the application does not resolve (Express, WSGI)
        "/admin/../public",
        "/admin/%2e%2e/public",
        "/admin%2f..%2fpublic",
        "/admin/..%2fpublic",
        // path parameters (Tomcat, Spring, Jetty)
        "/public/..;/admin",
        "/admin;x",
        // backslashes, trailing dots and spaces (IIS, ASP.NET)
        "/admin\\panel",
        "/public\\..\\admin",
        "/admin./",
        "/admin%20/",
        "/admin.%20/x",
        // case (Express by default, ASP.NET, IIS)
        "/ADMIN",
        "/Admin/x",
    ] {
        let r = as_nginx(&v, uri).sent().await;
        assert_eq!(r.status(), 403, "{uri}");
        assert!(r.headers().get("x-authgear-user-id").is_none(), "{uri}");
    }
    for uri in [
        "/public",
        "/public/a.js",
        "/public/x/../y",
        "/administrator",
    ] {
        assert_eq!(as_nginx(&v, uri).status().await, 200, "{uri}");
    }
    v.stop().await;
}

#[actix_web::test]
async fn method_overrides_reached_a_route_the_method_did_not() {
    let v = bypass_verdict().await;
    let post = |uri: &str| as_nginx(&v, uri).insert_header(("X-Original-Method", "POST"));
    assert_eq!(post("/api/items").status().await, 200);
    for header in [
        "X-HTTP-Method-Override",
        "X-HTTP-Method",
        "X-Method-Override",
    ] {
        let r = post("/api/items")
            .insert_header((header, "DELETE"))
            .status()
            .await;
        assert_eq!(r, 403, "{header}");
    }
    assert_eq!(post("/api/items?_method=delete").status().await, 403);
    assert_eq!(
        post("/api/items")
            .insert_header(("X-HTTP-Method-Override", "DE LETE"))
            .status()
            .await,
        403,
        "an override that is not a method is refused, not ignored"
    );
    v.stop().await;
}

#[actix_web::test]
async fn readings_are_narrowed_only_where_the_operator_says() {
    let routes = BYPASS_ROUTES.replace(
        "name = \"public\"\npath = \"/public\"\naccess = \"public\"",
        "name = \"public\"\npath = \"/public\"\naccess = \"public\"\nreadings = [\"unresolved-dots\"]",
    );
    let v = start("", &format!("{DEMO_KEYS}{routes}")).await;
    // the public route's application strips no `;` parameters: that reading is not its
    assert_eq!(as_nginx(&v, "/public/..;/admin").status().await, 200);
    // but it does leave dot segments alone
    assert_eq!(as_nginx(&v, "/admin/../public").status().await, 403);
    v.stop().await;
}

#[actix_web::test]
async fn invalid_percent_escapes_were_decided_as_literal_text() {
    let v = bypass_verdict().await;
    for uri in ["/public%zz", "/public/%", "/public/%4", "/public?q=%zz"] {
        assert_eq!(as_nginx(&v, uri).status().await, 403, "{uri}");
    }
    v.stop().await;
}

#[actix_web::test]
async fn a_role_holding_the_separator_read_as_two_roles() {
    let keys = r#"
[authorizers.keys]
type = "static"
[[authorizers.keys.tokens]]
token = "comma-token"
user_id = "u-comma"
roles = ["reader,admin"]
[[authorizers.keys.tokens]]
token = "space-token"
user_id = "u-space"
amr = ["pwd mfa"]
"#;
    let v = start("", keys).await;
    for token in ["comma-token", "space-token"] {
        let r = auth_request(&v, "/page")
            .insert_header(("Authorization", format!("Bearer {token}")))
            .sent()
            .await;
        assert_eq!(r.status(), 503, "{token}");
        assert!(r.headers().get("x-authgear-user-roles").is_none());
        assert!(r.headers().get("x-authgear-user-id").is_none());
    }
    v.stop().await;
}

#[actix_web::test]
async fn a_malformed_header_reached_nginx_as_400() {
    let v = bypass_verdict().await;
    let request = b"GET /_resolver/auth-request HTTP/1.1\r\nHost: v\r\nX-Original-URI: /public\r\nX-Bad: a\x01b\r\n\r\n";
    let (bytes, _) = raw(v.addr, request, Duration::from_secs(2));
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("HTTP/1.1 403"), "{text}");
    v.stop().await;
}

#[actix_web::test]
async fn authgears_own_nginx_snippet_got_403_once_a_route_named_a_host() {
    // Authgear's nginx snippet sends the credential and no X-Original-* header at all.
    let routes = r#"
[[route]]
name = "api-host"
host = "api.example.com"
access = "authenticated"
[[route]]
name = "writes"
methods = ["POST"]
access = "authenticated"
roles = ["admin"]
"#;
    let v = start("", &format!("{DEMO_KEYS}{routes}")).await;
    let bare = |token: &str| {
        client()
            .get(v.url("/_resolver/resolve"))
            .insert_header(("Authorization", format!("Bearer {token}")))
    };
    assert_eq!(
        bare("admin-token").status().await,
        200,
        "every route that may apply allows an admin"
    );
    assert_eq!(
        bare("valid-token").status().await,
        403,
        "the writes route may apply, and a reader is not an admin there"
    );
    assert_eq!(bare("wrong-token").status().await, 401);
    v.stop().await;
}

#[actix_web::test]
async fn an_authgear_backend_saw_every_user_as_anonymous() {
    let backend = fake_backend(
        Reply::status(200)
            .header("x-authgear-session-valid", "true")
            .header("x-authgear-user-id", "u-cookie"),
    )
    .await;
    let body = format!(
        "[authorizers.upstream]\ntype = \"http\"\nprotocol = \"authgear\"\nurls = [\"{}\"]\n",
        backend.url("/resolve")
    );
    let v = start("", &body).await;
    for (cookie, auth) in [("session=alice", "Bearer a"), ("session=bob", "Bearer b")] {
        let r = auth_request(&v, "/page")
            .insert_header(("Cookie", cookie))
            .insert_header(("Authorization", auth))
            .status()
            .await;
        assert_eq!(r, 200);
    }
    let seen = backend.received();
    assert_eq!(seen.len(), 2, "two users, two cache entries");
    assert_eq!(seen[0].header("cookie"), Some("session=alice"));
    assert_eq!(seen[0].header("authorization"), Some("Bearer a"));
    assert_eq!(seen[1].header("cookie"), Some("session=bob"));
    v.stop().await;
    backend.stop().await;
}

#[actix_web::test]
async fn a_proxy_cache_could_keep_an_allow_past_the_tokens_expiry() {
    let v = start("", &format!("[cache]\nallow_ttl = \"60s\"\n{}", jwt_hs(""))).await;
    let token = hs_token(user_claims("u-short", &[], 20));
    let r = auth_request(&v, "/page")
        .insert_header(("Authorization", format!("Bearer {token}")))
        .sent()
        .await;
    assert_eq!(r.status(), 200);
    let expires: u64 = r
        .headers()
        .get("x-accel-expires")
        .and_then(|h| h.to_str().ok()?.parse().ok())
        .expect("an allow says how long it may be cached");
    assert!(
        (1..=20).contains(&expires),
        "{expires} must not outlive exp"
    );
    let deny = auth_request(&v, "/page")
        .insert_header(("Authorization", "Bearer nope.nope.nope"))
        .sent()
        .await;
    assert_eq!(deny.headers().get("cache-control").unwrap(), "no-store");
    v.stop().await;
}

fn jwks_authorizer(url: &str) -> String {
    format!(
        "[authorizers.idp]\ntype = \"jwt\"\njwks_url = \"{url}\"\njwks_algorithms = [\"RS256\"]\njwks_refresh = \"200ms\"\njwks_min_refetch = \"100ms\"\n"
    )
}

#[actix_web::test]
async fn an_empty_jwks_was_taken_as_a_rotation_to_no_keys() {
    let jwks = fake_jwks(jwks_with(&["k1"])).await;
    let (v, clock) = start_with_clock("", &jwks_authorizer(&jwks.url())).await;
    let token = rs_token("k1", user_claims("u", &[], 600));
    let ask = |token: String| {
        auth_request(&v, "/page").insert_header(("Authorization", format!("Bearer {token}")))
    };
    assert_eq!(ask(token.clone()).status().await, 200);
    let fetched = v
        .metric("verdict_jwks_refreshes_total{authorizer=\"idp\",result=\"error\"}")
        .await;
    // an error page that happens to be valid JSON
    *jwks.document.lock().expect("lock") = r#"{"keys": []}"#.into();
    // past jwks_refresh: the next request's keys are stale, and fetched again
    clock.advance(Duration::from_millis(200));
    let other = rs_token("k1", user_claims("u2", &[], 600));
    assert_eq!(
        ask(other).status().await,
        200,
        "the last good keys are kept"
    );
    assert!(
        v.metric("verdict_jwks_refreshes_total{authorizer=\"idp\",result=\"error\"}")
            .await
            > fetched,
        "and the empty set is counted as a failed fetch"
    );
    v.stop().await;
    jwks.stop().await;
}

#[actix_web::test]
async fn a_token_seen_before_its_key_was_published_stayed_401_for_deny_ttl() {
    let jwks = fake_jwks(jwks_with(&["k1"])).await;
    let (v, clock) = start_with_clock(
        "",
        &format!(
            "[cache]\nallow_ttl = \"60s\"\ndeny_ttl = \"30s\"\n{}",
            jwks_authorizer(&jwks.url())
        ),
    )
    .await;
    let early = rs_token("k2", user_claims("u-early", &[], 600));
    let ask =
        || auth_request(&v, "/page").insert_header(("Authorization", format!("Bearer {early}")));
    assert_eq!(ask().status().await, 401, "k2 is not published yet");
    *jwks.document.lock().expect("lock") = jwks_with(&["k1", "k2"]);
    // past jwks_min_refetch (100 ms), well within deny_ttl (30 s)
    clock.advance(Duration::from_millis(100));
    assert_eq!(
        ask().status().await,
        200,
        "accepted once the key is fetched"
    );
    v.stop().await;
    jwks.stop().await;
}

/// An `http` authorizer on `backend`, pooled wide enough for every test request at once.
fn slow_backend_config(backend: &FakeBackend) -> String {
    format!(
        "[authorizers.backend]\ntype = \"http\"\nprotocol = \"status\"\nurls = [\"{}\"]\nrequest_timeout = \"5s\"\npool_size = 64\n",
        backend.url("/check")
    )
}

#[actix_web::test]
async fn sigterm_dropped_every_decision_in_flight() {
    let backend = fake_backend(Reply::status(200).delay(Duration::from_millis(1500))).await;
    let mut v = start_logged("", &slow_backend_config(&backend)).await;
    let in_flight: Vec<_> = (0..40)
        .map(|i| {
            auth_request(&v, &format!("/stream/{i}"))
                .timeout(Duration::from_secs(20))
                .send()
        })
        .collect();
    let all = actix_web::rt::spawn(futures_util::future::join_all(in_flight));
    // every request has reached the backend before the signal
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while backend.hits() < 40 {
        assert!(
            std::time::Instant::now() < deadline,
            "requests did not arrive"
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    v.signal("TERM");
    // the stop has begun once it says so; from then on /readyz is 503
    v.log_with("stop: SIGTERM received").await;
    let ready = client()
        .get(format!("http://{}/readyz", v.admin))
        .sent()
        .await;
    assert_eq!(
        ready.status(),
        503,
        "not ready from the first moment of a stop"
    );
    let answers = all.await.expect("join");
    for (i, answer) in answers.into_iter().enumerate() {
        let answer = answer.unwrap_or_else(|e| panic!("decision {i} was dropped: {e}"));
        assert_eq!(answer.status(), 200, "decision {i}");
    }
    let status = v
        .wait_for_exit(Duration::from_secs(10))
        .expect("verdict exits after draining");
    assert_eq!(status.code(), Some(0), "{}", v.log());
    let log = v.log();
    let steps = [
        "stop: SIGTERM received",
        "stop: decision listener closed",
        "stop: every decision in flight answered",
        "stop: done",
    ];
    let mut at = 0;
    for step in steps {
        let found = log[at..]
            .find(step)
            .unwrap_or_else(|| panic!("{step:?} missing or out of order in:\n{log}"));
        at += found;
    }
    backend.stop().await;
}

/// Keys for the reload tests: one that a reload removes, one that stays.
const RELOAD_KEYS: &str = r#"
[authorizers.keys]
type = "static"
[[authorizers.keys.tokens]]
token = "steady-token"
user_id = "u-steady"
[[authorizers.keys.tokens]]
token = "revoked-token"
user_id = "u-revoked"
"#;

/// Rewrites a process instance's configuration, keeping its listeners.
fn rewrite_config(v: &Verdict, edit: impl Fn(String) -> String) {
    let path = v.config_path();
    let text = std::fs::read_to_string(&path).expect("read config");
    std::fs::write(&path, edit(text)).expect("write config");
}

async fn status_with(v: &Verdict, uri: &str, token: &str) -> u16 {
    auth_request(v, uri)
        .insert_header(("Authorization", format!("Bearer {token}")))
        .status()
        .await
}

#[actix_web::test]
async fn sighup_killed_the_process() {
    let mut v = start_logged("", RELOAD_KEYS).await;
    assert_eq!(status_with(&v, "/page", "revoked-token").await, 200);
    // continuous load across the reload: not one request may fail
    let url = v.url("/_resolver/auth-request");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load_started = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let load = {
        let stop = stop.clone();
        let started = load_started.clone();
        actix_web::rt::spawn(async move {
            let client = client();
            let mut statuses = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                started.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let r = client
                    .get(&url)
                    .insert_header(("X-Original-URI", "/page"))
                    .insert_header(("X-Original-Method", "GET"))
                    .insert_header(("Authorization", "Bearer steady-token"))
                    .send()
                    .await;
                statuses.push(r.map(|r| r.status().as_u16()).unwrap_or(0));
            }
            statuses
        })
    };
    // the load is running before the reload
    while load_started.load(std::sync::atomic::Ordering::SeqCst) < 10 {
        actix_web::rt::task::yield_now().await;
    }
    // the revoked token goes, an admin route comes
    rewrite_config(&v, |text| {
        text.replace(
            "[[authorizers.keys.tokens]]\ntoken = \"revoked-token\"\nuser_id = \"u-revoked\"\n",
            "",
        ) + "\n[[route]]\nname = \"closed\"\npath = \"/closed\"\naccess = \"deny\"\n"
    });
    v.signal("HUP");
    v.log_with("in force (generation 1").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let revoked = status_with(&v, "/page", "revoked-token").await;
        let closed = status_with(&v, "/closed", "steady-token").await;
        if revoked == 401 && closed == 403 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the new configuration was not in force: {revoked} {closed}\n{}",
            v.log()
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    // a broken configuration changes nothing and says why
    rewrite_config(&v, |text| {
        text.replace("access = \"deny\"", "access = \"sometimes\"")
    });
    v.signal("HUP");
    v.log_with("the previous configuration keeps serving").await;
    assert_eq!(status_with(&v, "/closed", "steady-token").await, 403);
    assert_eq!(status_with(&v, "/page", "steady-token").await, 200);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let statuses = load.await.expect("load");
    assert!(statuses.len() > 50, "the load ran ({})", statuses.len());
    assert!(
        statuses.iter().all(|s| *s == 200),
        "requests failed across the reloads: {:?}",
        statuses.iter().filter(|s| **s != 200).collect::<Vec<_>>()
    );
    let log = v.log();
    assert!(
        log.contains("reload: ") && log.contains("in force (generation 1"),
        "{log}"
    );
    assert!(
        log.lines().any(|l| l.contains(" ERROR ")
            && l.contains("reload: ")
            && l.contains("sometimes")
            && l.contains("the previous configuration keeps serving")),
        "{log}"
    );
    assert!(v.metric("verdict_reloads_total{result=\"ok\"}").await == 1);
    assert!(v.metric("verdict_reloads_total{result=\"error\"}").await == 1);
    assert!(
        v.wait_for_exit(Duration::from_millis(10)).is_none(),
        "still running"
    );
    v.stop().await;
}

#[actix_web::test]
async fn a_reload_reused_decisions_of_an_authorizer_whose_settings_changed() {
    // In one process: the same credential, cached as an allow, must be decided again
    // when its authorizer changes, and stay cached when it does not.
    let mut v = start_logged("", &format!("[cache]\nallow_ttl = \"60s\"\n{RELOAD_KEYS}")).await;
    assert_eq!(status_with(&v, "/page", "revoked-token").await, 200);
    assert_eq!(status_with(&v, "/page", "steady-token").await, 200);
    let misses = v.cache_misses().await;
    // only a setting outside the authorizer changes: its cached decisions stay
    rewrite_config(&v, |text| {
        text + "\n[[route]]\npath = \"/other\"\naccess = \"public\"\n"
    });
    v.signal("HUP");
    v.log_with("in force (generation 1").await;
    assert_eq!(status_with(&v, "/page", "steady-token").await, 200);
    assert_eq!(
        v.cache_misses().await,
        misses,
        "an unchanged authorizer keeps its cache"
    );
    // the authorizer changes: a revoked token is refused at once, not after allow_ttl
    rewrite_config(&v, |text| {
        text.replace(
            "[[authorizers.keys.tokens]]\ntoken = \"revoked-token\"\nuser_id = \"u-revoked\"\n",
            "",
        )
    });
    v.signal("HUP");
    v.log_with("in force (generation 2").await;
    assert_eq!(status_with(&v, "/page", "revoked-token").await, 401);
    // and a listener address that changed is reported, not silently ignored
    rewrite_config(&v, |text| text.replace("workers = 1", "workers = 2"));
    v.signal("HUP");
    v.log_with("server.workers changed; it takes effect at the next restart")
        .await;
    assert!(v.wait_for_exit(Duration::from_millis(10)).is_none());
    v.stop().await;
}

#[actix_web::test]
async fn a_second_request_head_could_be_trickled_forever() {
    let v = start("request_head_timeout = \"1s\"", DEMO_KEYS).await;
    let addr = v.addr;
    let closed_after = actix_web::rt::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        let first = b"GET /_resolver/auth-request HTTP/1.1\r\nHost: v\r\nX-Original-URI: /a\r\nX-Original-Method: GET\r\nAuthorization: Bearer valid-token\r\n\r\n";
        stream.write_all(first).expect("first request");
        let mut buf = [0u8; 4096];
        let n = stream.read(&mut buf).unwrap_or(0);
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        // the second head, one byte every 200 ms
        let started = std::time::Instant::now();
        for byte in b"GET /_resolver/auth-request HTTP/1.1\r\nX-Slow: ".iter().cycle() {
            if stream.write_all(&[*byte]).is_err() {
                return started.elapsed();
            }
            match stream.read(&mut buf) {
                Ok(0) => return started.elapsed(),
                Ok(n) if String::from_utf8_lossy(&buf[..n]).contains("408") => {
                    return started.elapsed();
                }
                _ => {}
            }
            std::thread::sleep(Duration::from_millis(100));
            assert!(started.elapsed() < Duration::from_secs(10), "still open after 10 s");
        }
        unreachable!()
    })
    .await
    .expect("join");
    assert!(
        closed_after < Duration::from_secs(3),
        "closed after {closed_after:?}"
    );
    v.stop().await;
}

#[actix_web::test]
async fn a_thousand_slow_clients_stopped_all_service() {
    // the test's own sockets need more than the usual 1,024 files too
    verdict::lifecycle::raise_open_file_limit();
    let v = start_logged_with_file_limit("request_head_timeout = \"30s\"", DEMO_KEYS, 1024).await;
    let addr = v.addr;
    let slow = actix_web::rt::task::spawn_blocking(move || {
        use std::io::Write;
        (0..1100)
            .map(|_| {
                let mut s = std::net::TcpStream::connect(addr).expect("connect a slow client");
                s.write_all(b"GET /_resolver/auth-request HTTP/1.1\r\nHo")
                    .expect("a first byte");
                s
            })
            .collect::<Vec<_>>()
    })
    .await
    .expect("slow clients");
    // the proxy's own request is still answered
    let r = auth_request(&v, "/page")
        .insert_header(("Authorization", "Bearer valid-token"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("answered while 1,100 clients trickle");
    assert_eq!(r.status(), 200);
    drop(slow);
    assert!(
        v.log_with("open files: at most")
            .await
            .lines()
            .any(|l| l.contains("open files: at most") && !l.contains("at most 1024")),
        "verdict raised its soft limit: {}",
        v.log()
    );
    v.stop().await;
}

#[actix_web::test]
async fn decision_lines_written_just_before_sigterm_were_lost() {
    let mut v = start_logged("", DEMO_KEYS).await;
    for i in 0..25 {
        let status = auth_request(&v, &format!("/last/{i}"))
            .insert_header(("Authorization", "Bearer valid-token"))
            .status()
            .await;
        assert_eq!(status, 200);
    }
    // at once: the lines are still in the batch the writer flushes every 100 ms
    v.signal("TERM");
    let status = v
        .wait_for_exit(Duration::from_secs(10))
        .expect("verdict exits");
    assert_eq!(status.code(), Some(0));
    let log = v.log();
    let lines = log
        .lines()
        .filter(|l| l.contains("outcome=allow") && l.contains("path=\"/last/"))
        .count();
    assert_eq!(lines, 25, "every decision line reaches the log:\n{log}");
    assert!(log.contains("stop: done"), "{log}");
}

#[actix_web::test]
async fn a_reload_adding_claims_from_reused_jwt_decisions_cached_without_claims() {
    // A jwt authorizer keeps a token's claims only when an http authorizer reads them,
    // so whether it keeps them is part of what its cached decisions mean.
    let backend = fake_backend(Reply::status(200)).await;
    let v = start_logged(
        "",
        &format!(
            "[cache]\nallow_ttl = \"60s\"\n{}\n[default_route]\nauthorizers = [\"jwt\"]\n",
            jwt_hs("")
        ),
    )
    .await;
    let token = hs_token(user_claims("u-claims", &[], 600));
    assert_eq!(status_with(&v, "/c", &token).await, 200);
    rewrite_config(&v, |text| {
        text.replace("authorizers = [\"jwt\"]", "authorizers = [\"backend\"]")
            + &format!(
                "\n[authorizers.backend]\ntype = \"http\"\nprotocol = \"status\"\nurls = [\"{}\"]\nclaims_from = \"jwt\"\n[authorizers.backend.headers]\nX-User = \"${{claim.sub}}\"\n",
                backend.url("/check")
            )
    });
    v.signal("HUP");
    v.log_with("in force (generation 1").await;
    assert_eq!(status_with(&v, "/c", &token).await, 200);
    assert_eq!(
        backend
            .received()
            .pop()
            .expect("the backend was asked")
            .header("x-user"),
        Some("u-claims"),
        "the backend is told the token's subject"
    );
    v.stop().await;
    backend.stop().await;
}

#[actix_web::test]
async fn a_json_field_sent_twice_was_read_as_its_last_copy() {
    let v = start("", BROKER).await;
    // bob's topic first, alice's last: a reader that keeps one copy decides on either
    for body in [
        r#"{"username": "alice", "topic": "sensors/bob/x", "topic": "sensors/alice/x", "action": "publish"}"#,
        r#"{"username": "bob", "username": "alice", "topic": "sensors/alice/x", "action": "publish"}"#,
    ] {
        assert_eq!(
            emqx_result(emqx_post(&v, body), body.to_string()).await,
            "deny",
            "{body}"
        );
    }
    // one copy of each is decided as usual
    let body = r#"{"username": "alice", "topic": "sensors/alice/x", "action": "publish"}"#;
    assert_eq!(
        emqx_result(emqx_post(&v, body), body.to_string()).await,
        "allow"
    );
    v.stop().await;
}

#[actix_web::test]
async fn a_second_or_encoded_method_parameter_escaped_the_override_reading() {
    // Rack, Laravel and PHP read the last `_method`, and every one decodes the name.
    let v = bypass_verdict().await;
    let post = |uri: &str| as_nginx(&v, uri).insert_header(("X-Original-Method", "POST"));
    for uri in [
        "/api/items?_method=POST&_method=DELETE",
        "/api/items?_method=DELETE&_method=POST",
        "/api/items?%5Fmethod=DELETE",
        "/api/items?_%6Dethod=DELETE",
    ] {
        assert_eq!(post(uri).status().await, 403, "{uri}");
    }
    assert_eq!(post("/api/items?_method=POST").status().await, 200);
    v.stop().await;
}

#[actix_web::test]
async fn a_backend_result_sent_twice_was_read_as_its_last_copy() {
    let backend = fake_backend(Reply::status(204)).await;
    let v = start(
        "",
        &http_authorizer(&[backend.url("/emqx")], "json", "retries = 0"),
    )
    .await;
    for (content_type, body) in [
        (
            "application/json",
            r#"{"result": "deny", "result": "allow"}"#,
        ),
        (
            "application/x-www-form-urlencoded",
            "result=deny&result=allow",
        ),
    ] {
        backend.push(
            Reply::status(200)
                .header("content-type", content_type)
                .body(body),
        );
        let status = auth_request(&v, "/twice")
            .insert_header(("X-Forwarded-Proto", "https"))
            .status()
            .await;
        assert_ne!(status, 200, "{body}");
    }
    backend.push(
        Reply::status(200)
            .header("content-type", "application/json")
            .body(r#"{"result": "allow"}"#),
    );
    assert_eq!(auth_request(&v, "/once").status().await, 200);
    v.stop().await;
    backend.stop().await;
}

/// A backend header sent twice was read as its first copy: `X-Session-Name: alice` then
/// `X-Session-Name: mallory` allowed alice, and a `Cache-Control: no-store` after a
/// `max-age=600` was ignored, so the allow was cached for ten minutes.
#[actix_web::test]
async fn a_backend_header_sent_twice_was_read_as_its_first_copy() {
    let backend = fake_backend(Reply::status(200)).await;
    let v = start(
        "",
        &http_authorizer(
            &[backend.url("/check")],
            "status",
            "retries = 0\nhonor_cache_control = true\ncopy_headers = [\"X-Tier\"]",
        ),
    )
    .await;
    let ask = |path: &'static str| {
        auth_request(&v, path)
            .insert_header(("X-Forwarded-Proto", "https"))
            .sent()
    };
    for (name, first, second) in [
        ("X-Session-Name", "alice", "mallory"),
        ("X-Tier", "bronze", "gold"),
    ] {
        backend.push(Reply::status(200).header(name, first).header(name, second));
        let r = ask(if name == "X-Tier" { "/tier" } else { "/name" }).await;
        assert_ne!(r.status(), 200, "{name} sent twice");
        assert!(r.headers().get("x-session-name").is_none());
        assert!(r.headers().get("x-tier").is_none());
    }
    // identical copies are one
    backend.push(
        Reply::status(200)
            .header("X-Session-Name", "alice")
            .header("X-Session-Name", "alice"),
    );
    let r = ask("/same").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers().get("x-session-name").expect("name"), "alice");
    // a list header's copies are one list: the no-store in the second copy counts
    backend.set_default(
        Reply::status(200)
            .header("Cache-Control", "max-age=600")
            .header("Cache-Control", "no-store"),
    );
    let before = backend.hits();
    assert_eq!(ask("/cached").await.status(), 200);
    assert_eq!(ask("/cached").await.status(), 200);
    assert_eq!(
        backend.hits(),
        before + 2,
        "no-store in the second copy is honoured"
    );
    v.stop().await;
    backend.stop().await;
}

/// A credential sent twice was read as its first copy: a valid `Authorization` header
/// followed by another one (or `?token=` twice, or the cookie twice) was allowed, though
/// the application behind could read the other copy.
#[actix_web::test]
async fn a_credential_sent_twice_was_read_as_its_first_copy() {
    let v = start(
        "",
        "[authorizers.keys]\ntype = \"static\"\ntoken_sources = [\"bearer\", \"query:token\", \"cookie:sid\"]\n[[authorizers.keys.tokens]]\ntoken = \"good-token\"\nuser_id = \"alice\"\n",
    )
    .await;
    let status = |uri: &'static str, headers: &'static [(&'static str, &'static str)]| {
        let mut request = auth_request(&v, uri);
        for header in headers {
            request = request.append_header(*header);
        }
        request.status()
    };
    // once, or twice alike: allowed
    for (uri, headers) in [
        ("/a", &[("Authorization", "Bearer good-token")][..]),
        (
            "/b",
            &[
                ("Authorization", "Bearer good-token"),
                ("Authorization", "Bearer good-token"),
            ][..],
        ),
        ("/c?token=good-token&token=good-token", &[][..]),
        (
            "/d",
            &[("Cookie", "sid=good-token"), ("Cookie", "sid=good-token")][..],
        ),
    ] {
        assert_eq!(status(uri, headers).await, 200, "{uri}");
    }
    // twice, differently: never the first copy
    for (uri, headers) in [
        (
            "/e",
            &[
                ("Authorization", "Bearer good-token"),
                ("Authorization", "Bearer someone-elses"),
            ][..],
        ),
        ("/f?token=good-token&token=someone-elses", &[][..]),
        ("/g", &[("Cookie", "sid=good-token; sid=someone-elses")][..]),
        (
            "/h",
            &[
                ("Cookie", "sid=good-token"),
                ("Cookie", "sid=someone-elses"),
            ][..],
        ),
    ] {
        assert_eq!(status(uri, headers).await, 401, "{uri}");
    }
    v.stop().await;
}

/// Tokens for the log-filter test: one allowed, one whose identity cannot be sent (an
/// error-level decision, used to know the log has caught up).
const FILTER_KEYS: &str = r#"
[authorizers.keys]
type = "static"
[[authorizers.keys.tokens]]
token = "valid-token"
user_id = "u-123"
[[authorizers.keys.tokens]]
token = "comma-token"
user_id = "u-comma"
roles = ["reader,admin"]
"#;

/// `RUST_LOG=verdict::decision=warn`, the filter the README and `--help` recommend, logged
/// nothing at all: the record asked whether its own module (`verdict::record`) logged, not
/// the decision target. Every filter the docs name, against the real binary.
#[actix_web::test]
async fn the_recommended_log_filter_logged_no_decision_at_all() {
    // (filter, whether an ordinary allow is logged, whether debug reasons are)
    let filters = [
        (None, true, false),
        (Some("info"), true, false),
        (Some("debug"), true, true),
        (Some("verdict::decision=warn"), false, false),
        (Some("warn"), false, false),
    ];
    for (filter, info, debug) in filters {
        let v = start_logged_filtered("", FILTER_KEYS, filter).await;
        let allowed = auth_request(&v, "/page")
            .insert_header(("Authorization", "Bearer valid-token"))
            .status()
            .await;
        assert_eq!(allowed, 200);
        let broken = auth_request(&v, "/page")
            .insert_header(("Authorization", "Bearer comma-token"))
            .status()
            .await;
        assert_eq!(broken, 503);
        // the error line comes after the allow: once it is written, the allow's is too
        let log = v.log_with("ERROR verdict::decision").await;
        let allow_line = log
            .lines()
            .find(|l| l.contains("decision dialect=auth-request") && l.contains("status=200"));
        assert_eq!(allow_line.is_some(), info, "{filter:?}: allow line\n{log}");
        if let Some(line) = allow_line {
            assert!(line.contains("user=u-123"), "{line}");
            assert!(line.contains("client_ip=127.0.0.1"), "{line}");
            assert!(!line.contains("valid-token"), "{line}");
        }
        assert_eq!(
            log.contains("DEBUG verdict::resolver] route default"),
            debug,
            "{filter:?}: debug reasons\n{log}"
        );
        v.stop().await;

        // a peer outside trusted_proxies is logged at warn under every filter
        let v =
            start_logged_filtered("trusted_proxies = [\"10.0.0.0/8\"]", FILTER_KEYS, filter).await;
        let refused = auth_request(&v, "/page").status().await;
        assert_eq!(refused, 403);
        let log = v.log_with("outcome=untrusted-peer").await;
        assert!(
            log.contains("WARN  verdict::decision]"),
            "{filter:?}\n{log}"
        );
        v.stop().await;
    }
}

/// Icecast's `listener_remove` (and every other notification) was logged and counted as
/// `outcome=bad-target`, a refusal that pages someone. A notification is its own outcome.
#[actix_web::test]
async fn an_icecast_notification_was_counted_as_a_bad_target() {
    let v = start_logged("", LISTENERS).await;
    let r = client()
        .post(v.url("/_resolver/icecast"))
        .insert_header(("content-type", "application/x-www-form-urlencoded"))
        .send_body("action=listener_remove&server=radio.example.com&port=8000&client=42&mount=%2flive%2eogg")
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("icecast-auth-user").is_none());
    let log = v.log_with("dialect=icecast").await;
    let line = log
        .lines()
        .find(|l| l.contains("decision dialect=icecast"))
        .expect("a decision line");
    assert!(line.contains("outcome=notification status=200"), "{line}");
    assert!(line.contains(" INFO "), "{line}");
    assert_eq!(
        v.metric("verdict_decisions_total{authorizer=\"-\",outcome=\"notification\",route=\"-\"}")
            .await,
        1
    );
    assert_eq!(
        v.metric("verdict_decisions_total{authorizer=\"-\",outcome=\"bad-target\"")
            .await,
        0
    );
    v.stop().await;
}

/// Topic rules for the broker regressions: per-user and per-client subtrees, a QoS cap,
/// a blocked client family.
const TOPIC_RULES: &str = r##"
[[route]]
name = "emqx"
dialects = ["emqx"]
access = "public"

[[topic_rule]]
permission = "deny"
clientid = "blocked-*"
topics = ["#"]

[[topic_rule]]
permission = "allow"
action = "publish"
topics = ["metrics/#"]
qos = [0, 1]

[[topic_rule]]
permission = "allow"
topics = ["sensors/${username}/#", "clients/${clientid}/#"]
"##;

async fn emqx_says(v: &Verdict, fields: serde_json::Value) -> String {
    let body = fields.to_string();
    emqx_result(emqx_post(v, &body), body).await
}

/// Topic rules expanded `${username}` and then looked for `${clientid}` in the result: a
/// client whose username was literally `${clientid}` got the subtree of whatever clientid
/// it picked. Every template is now rendered in one pass; a value is never read again.
#[actix_web::test]
async fn a_username_that_is_a_placeholder_was_expanded_again() {
    let v = start("", &format!("{DEMO_KEYS}{TOPIC_RULES}")).await;
    let hostile = serde_json::json!({
        "username": "${clientid}", "clientid": "c1", "topic": "sensors/c1/temp",
        "action": "publish", "qos": "0", "retain": "false"
    });
    assert_eq!(emqx_says(&v, hostile).await, "deny");
    let honest = serde_json::json!({
        "username": "c1", "clientid": "c1", "topic": "sensors/c1/temp",
        "action": "publish", "qos": "0", "retain": "false"
    });
    assert_eq!(emqx_says(&v, honest).await, "allow");
    v.stop().await;
}

/// A fact the broker did not send satisfied a topic rule: a publish without `qos` passed
/// `allow … qos = [0, 1]`, and a request without `clientid` slipped past
/// `deny … clientid = "blocked-*"`. A missing fact never makes an allow rule match, and
/// always lets a deny rule match.
#[actix_web::test]
async fn a_fact_the_broker_did_not_send_satisfied_a_topic_rule() {
    let v = start("", &format!("{DEMO_KEYS}{TOPIC_RULES}")).await;
    let publish = |fields: serde_json::Value| {
        let mut base = serde_json::json!({
            "username": "alice", "clientid": "c-alice", "topic": "metrics/cpu",
            "action": "publish", "qos": "1", "retain": "false"
        });
        for (k, val) in fields.as_object().expect("object") {
            match val {
                serde_json::Value::Null => {
                    base.as_object_mut().expect("object").remove(k);
                }
                other => base[k] = other.clone(),
            }
        }
        base
    };
    assert_eq!(emqx_says(&v, publish(serde_json::json!({}))).await, "allow");
    // no qos, an empty (unresolved) qos
    for missing in [
        serde_json::json!({"qos": null}),
        serde_json::json!({"qos": ""}),
    ] {
        assert_eq!(
            emqx_says(&v, publish(missing.clone())).await,
            "deny",
            "{missing}"
        );
    }
    // the deny rule on blocked clients holds when the clientid is missing or empty
    for missing in [
        serde_json::json!({"clientid": null}),
        serde_json::json!({"clientid": ""}),
    ] {
        let fields = publish(missing.clone());
        assert_eq!(emqx_says(&v, fields).await, "deny", "{missing}");
    }
    assert_eq!(
        emqx_says(&v, publish(serde_json::json!({"clientid": "blocked-7"}))).await,
        "deny"
    );
    v.stop().await;
}

/// Fields in the URL were ignored when a body was present: EMQX's own documentation puts
/// `clientid` in the URL and the rest in the JSON body, so a rule on `clientid` never
/// fired. Both parts are read, in every body-reading dialect; a field in both with
/// different values is refused.
#[actix_web::test]
async fn fields_in_the_url_were_ignored_when_a_body_was_present() {
    let v = start("", &format!("{DEMO_KEYS}{TOPIC_RULES}")).await;
    let body = serde_json::json!({
        "username": "alice", "topic": "clients/c9/x", "action": "publish",
        "qos": "0", "retain": "false"
    })
    .to_string();
    let ask = |query: &str| {
        client()
            .post(v.url(&format!("/_resolver/emqx?{query}")))
            .insert_header(("content-type", "application/json"))
    };
    let says = |r: awc::ClientRequest| emqx_result(r, body.clone());
    assert_eq!(says(ask("clientid=c9")).await, "allow");
    assert_eq!(says(ask("clientid=blocked-1")).await, "deny");
    // the same fact twice: agreeing counts once, disagreeing is refused
    assert_eq!(says(ask("clientid=c9&username=alice")).await, "allow");
    assert_eq!(says(ask("clientid=c9&username=mallory")).await, "deny");

    // the broker HTTP contract reads both parts too
    let broker = start(
        "",
        &format!(
            "{DEMO_KEYS}{}",
            TOPIC_RULES.replace("dialects = [\"emqx\"]", "dialects = [\"mqtt\"]")
        ),
    )
    .await;
    let acl_on = |query: &str| {
        client()
            .post(broker.url(&format!("/_resolver/mqtt/acl?{query}")))
            .insert_header(("content-type", "application/json"))
            .send_body(r#"{"username": "alice", "topic": "sensors/alice/t", "acc": 2}"#)
    };
    assert_eq!(acl_on("clientid=c1").await.expect("send").status(), 200);
    assert_eq!(
        acl_on("clientid=blocked-2").await.expect("send").status(),
        403
    );
    broker.stop().await;
    v.stop().await;
}

/// A normal web-application configuration: a catch-all `identify` route that names no
/// dialect, and a token that also works as an MQTT password.
const CATCH_ALL_IDENTIFY: &str = r#"
[mqtt]
answer = "json"

[authorizers.keys]
type = "static"
token_sources = ["bearer", "query:token", "query:password", "header:icecast-pass"]
[[authorizers.keys.tokens]]
token = "valid-token"
user_id = "u-123"

[default_route]
access = "identify"
"#;

/// An `identify` outcome reached callers that cannot tell anonymous from authenticated:
/// Astra played the stream for `?token=nope`, Icecast admitted a listener with a bad
/// token, and the broker's user check answered `{"ok": true}` to a wrong password. Every
/// dialect now declares whether its allow can carry "no identity".
#[actix_web::test]
async fn an_identify_allow_for_nobody_reached_callers_that_admit_on_any_allow() {
    let v = start("", CATCH_ALL_IDENTIFY).await;
    // Cesbo Astra: no token, a bad token, a good one
    for (query, expected) in [("", 403), ("token=nope", 403), ("token=valid-token", 200)] {
        let r = astra(&v, query, "/play/a001/index.m3u8").sent().await;
        assert_eq!(r.status(), expected, "astra ?{query}");
    }
    // Icecast
    let listener = |token: &str| {
        client()
            .post(v.url("/_resolver/icecast"))
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .send_body(format!(
                "action=listener_add&server=radio.example.com&port=8000&client=1&mount=%2flive.ogg%3ftoken%3d{token}&user=&pass=&ip=203.0.113.7&agent=VLC"
            ))
    };
    for (token, admitted) in [("nope", false), ("", false), ("valid-token", true)] {
        let r = listener(token).await.expect("send");
        assert_eq!(
            r.headers().get("icecast-auth-user").is_some(),
            admitted,
            "icecast token {token:?}"
        );
    }
    // the broker user check (json answers) and EMQX authentication
    let login = |password: &str| {
        client().post(v.url("/_resolver/mqtt/user")).send_json(
            &serde_json::json!({"username": "u-123", "password": password, "clientid": "c"}),
        )
    };
    for (password, ok) in [("wrong", false), ("", false), ("valid-token", true)] {
        let mut r = login(password).await.expect("send");
        let body: serde_json::Value =
            serde_json::from_slice(&r.body().await.expect("body")).expect("json");
        assert_eq!(body["ok"], ok, "mqtt password {password:?}");
    }
    let authn =
        serde_json::json!({"username": "u-123", "password": "wrong", "clientid": "c"}).to_string();
    let r = client()
        .post(v.url("/_resolver/emqx/authn"))
        .insert_header(("content-type", "application/json"));
    assert_eq!(emqx_result(r, authn).await, "deny");
    // the proxies keep Authgear's identify contract: 200, and the application decides
    let r = auth_request(&v, "/page")
        .insert_header(("Authorization", "Bearer nope-nope"))
        .sent()
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers().get("x-authgear-session-valid").unwrap(),
        "false"
    );
    v.stop().await;
}

/// A streamer's viewers and a web application in one configuration, the way the README
/// sets them up: the viewers' authorizer named by the Cesbo routes, the web application
/// under the default route.
const TWO_AUDIENCES: &str = r#"
[authorizers.viewers]
type = "static"
token_sources = ["query:token"]
[[authorizers.viewers.tokens]]
token = "viewer-token-1"
user_id = "viewer-1"
roles = ["a001"]

[authorizers.staff]
type = "static"
token_sources = ["bearer"]
[[authorizers.staff.tokens]]
token = "staff-token-1"
user_id = "staff-1"

[[route]]
name = "channel-a001"
dialects = ["cesbo"]
path_glob = "/play/a001/**"
access = "authenticated"
roles = ["a001"]

[[route]]
name = "viewers"
dialects = ["cesbo"]
access = "authenticated"
authorizers = ["viewers"]
"#;

/// A credential meant for one audience opened another by default: a route without
/// `authorizers` (the default route included) used every authorizer, so a Cesbo viewer's
/// `?token=` was accepted by the web application's routes. An authorizer that routes
/// scoped to dialects name now serves only their audience wherever a route names none.
#[actix_web::test]
async fn a_viewers_token_opened_the_web_applications_routes() {
    let v = start("", TWO_AUDIENCES).await;
    // the web application: the viewer's token is nobody here; staff's is someone
    let r = auth_request(&v, "/reports?token=viewer-token-1")
        .sent()
        .await;
    assert_eq!(r.status(), 401);
    let r = auth_request(&v, "/reports")
        .insert_header(("Authorization", "Bearer staff-token-1"))
        .sent()
        .await;
    assert_eq!(r.status(), 200);
    // the streamer: the viewer still plays the channel whose route names no authorizers
    let r = astra(&v, "token=viewer-token-1", "/play/a001/index.m3u8")
        .sent()
        .await;
    assert_eq!(r.status(), 200);
    v.stop().await;
}

async fn admin_methods(server_extra: &str) -> Verdict {
    start(server_extra, &format!("{DEMO_KEYS}{ADMIN_METHODS}")).await
}

/// nginx's view of one request by a non-admin user.
fn user_via_nginx(v: &Verdict, method: &str, uri: &str) -> awc::ClientRequest {
    as_nginx(v, uri).insert_header(("X-Original-Method", method.to_string()))
}

/// A `POST` with `_method=DELETE` in a form body was decided as a POST: no proxy sends the
/// body to verdict, so an application honouring `_method` ran its DELETE handler. A form
/// body verdict cannot see is now read as any method it could name.
#[actix_web::test]
async fn an_override_in_a_form_body_was_decided_as_a_post() {
    let v = admin_methods("").await;
    for content_type in [
        "application/x-www-form-urlencoded",
        "application/x-www-form-urlencoded; charset=UTF-8",
        "Multipart/Form-Data; boundary=----x",
    ] {
        let r = user_via_nginx(&v, "POST", "/public/x")
            .insert_header(("Content-Type", content_type))
            .status()
            .await;
        assert_eq!(r, 403, "{content_type}");
    }
    // a body no framework reads _method from: decided as the POST it is
    for content_type in ["application/json", "text/plain"] {
        let r = user_via_nginx(&v, "POST", "/public/x")
            .insert_header(("Content-Type", content_type))
            .status()
            .await;
        assert_eq!(r, 200, "{content_type}");
    }
    assert_eq!(user_via_nginx(&v, "POST", "/public/x").status().await, 200);
    // an admin may do anything there
    let r = user_via_nginx(&v, "POST", "/public/x")
        .insert_header(("Authorization", "Bearer admin-token"))
        .insert_header(("Content-Type", "application/x-www-form-urlencoded"))
        .status()
        .await;
    assert_eq!(r, 200);
    v.stop().await;

    // an application known not to honour _method in bodies: the reading left out
    let v = admin_methods(
        "readings = [\"unresolved-dots\", \"path-parameters\", \"backslash\", \"trailing-dots\", \"case\", \"method-override\", \"head-as-get\"]",
    )
    .await;
    let r = user_via_nginx(&v, "POST", "/public/x")
        .insert_header(("Content-Type", "application/x-www-form-urlencoded"))
        .status()
        .await;
    assert_eq!(r, 200);
    v.stop().await;
}

/// Where the proxy sends the body (Envoy's `with_request_body`, Traefik's `forwardBody`),
/// the override it holds is read from it: the form body's real `_method` decides, and a
/// form without one is the POST it says it is.
#[actix_web::test]
async fn an_override_in_a_body_the_proxy_sent_was_never_read() {
    let v = admin_methods("").await;
    let envoy = |body: &'static str| {
        client()
            .post(v.url("/_resolver/ext-authz/public/x"))
            .insert_header(("Host", "app.example.com"))
            .insert_header(("Authorization", "Bearer valid-token"))
            .insert_header(("Content-Type", "application/x-www-form-urlencoded"))
            .insert_header(("x-envoy-auth-partial-body", "false"))
            .send_body(body)
    };
    for (body, expected) in [
        ("title=x&_method=DELETE", 403),
        ("title=x&.method=PUT", 403),
        ("_method=patch", 403),
        ("title=x", 200),
        ("_method=POST", 200),
    ] {
        let r = envoy(body).await.expect("send");
        assert_eq!(r.status(), expected, "{body}");
    }
    // a compressed body is not what the application reads once it inflates it
    let r = client()
        .post(v.url("/_resolver/ext-authz/public/x"))
        .insert_header(("Host", "app.example.com"))
        .insert_header(("Authorization", "Bearer valid-token"))
        .insert_header(("Content-Type", "application/x-www-form-urlencoded"))
        .insert_header(("Content-Encoding", "gzip"))
        .insert_header(("x-envoy-auth-partial-body", "false"))
        .send_body("title=x")
        .await
        .expect("send");
    assert_eq!(r.status(), 403, "a compressed form body is unseen");
    // part of a body says nothing of the rest
    let r = client()
        .post(v.url("/_resolver/ext-authz/public/x"))
        .insert_header(("Host", "app.example.com"))
        .insert_header(("Authorization", "Bearer valid-token"))
        .insert_header(("Content-Type", "application/x-www-form-urlencoded"))
        .insert_header(("x-envoy-auth-partial-body", "true"))
        .send_body("title=x")
        .await
        .expect("send");
    assert_eq!(r.status(), 403);
    // Traefik with forwardBody: the forward-auth dialect reads the body too
    let traefik = |body: &'static str| {
        client()
            .get(v.url("/_resolver/forward-auth"))
            .insert_header(("X-Forwarded-Method", "POST"))
            .insert_header(("X-Forwarded-Proto", "https"))
            .insert_header(("X-Forwarded-Host", "app.example.com"))
            .insert_header(("X-Forwarded-Uri", "/public/x"))
            .insert_header(("Authorization", "Bearer valid-token"))
            .insert_header(("Content-Type", "application/x-www-form-urlencoded"))
            .send_body(body)
    };
    assert_eq!(traefik("_method=DELETE").await.expect("send").status(), 403);
    assert_eq!(traefik("title=x").await.expect("send").status(), 200);
    v.stop().await;
}

/// `HEAD /app/export` with a user's token was allowed under a `GET`-only admin rule, and
/// every framework but FastAPI runs the GET handler for it. A HEAD, and an override
/// naming HEAD, are also read as a GET.
#[actix_web::test]
async fn a_head_ran_the_get_handler_the_policy_reserved() {
    let v = admin_methods("").await;
    assert_eq!(
        user_via_nginx(&v, "HEAD", "/app/export").status().await,
        403
    );
    assert_eq!(user_via_nginx(&v, "GET", "/app/export").status().await, 403);
    let r = user_via_nginx(&v, "POST", "/app/export")
        .insert_header(("X-HTTP-Method-Override", "HEAD"))
        .status()
        .await;
    assert_eq!(r, 403);
    assert_eq!(
        user_via_nginx(&v, "POST", "/app/export?_method=head")
            .status()
            .await,
        403
    );
    // an admin exports, by GET or by HEAD
    let r = user_via_nginx(&v, "HEAD", "/app/export")
        .insert_header(("Authorization", "Bearer admin-token"))
        .status()
        .await;
    assert_eq!(r, 200);
    v.stop().await;
}

/// PHP turns `.` and spaces in a parameter name into `_`, drops leading spaces and cuts a
/// name at NUL, so `?.method=DELETE`, `?%20_method=DELETE`, `?+_method=DELETE` and
/// `?_method%00=DELETE` overrode the method where verdict saw no `_method`.
#[actix_web::test]
async fn a_parameter_name_php_folds_to_the_override_escaped_it() {
    let v = admin_methods("").await;
    for query in [
        ".method=DELETE",
        "%20_method=DELETE",
        "+_method=DELETE",
        "_method%00=DELETE",
        "_method%00x=PUT",
        "%2Emethod=PATCH",
        "%20%20.method=DELETE",
    ] {
        let r = user_via_nginx(&v, "POST", &format!("/public/x?{query}"))
            .status()
            .await;
        assert_eq!(r, 403, "{query}");
    }
    assert_eq!(
        user_via_nginx(&v, "POST", "/public/x?method=DELETE")
            .status()
            .await,
        200
    );
    v.stop().await;
}

/// `X.HTTP.Method.Override: DELETE` passes Envoy and PHP folds it into the override, but
/// verdict, sent `X_HTTP_Method_Override` or `X.HTTP.Method.Override` directly, allowed the
/// request as if the header were absent. An alias of an override header is read as the
/// override it folds to.
#[actix_web::test]
async fn an_alias_of_an_override_header_was_read_as_absent() {
    let v = admin_methods("").await;
    for name in [
        "X.HTTP.Method.Override",
        "X_HTTP_Method_Override",
        "x.http.method",
        "X_Method_Override",
    ] {
        let r = user_via_nginx(&v, "POST", "/public/x")
            .insert_header((name, "DELETE"))
            .status()
            .await;
        assert_eq!(r, 403, "{name}");
    }
    v.stop().await;
}

/// A stop that ran out of `drain_timeout` logged `stop: every decision in flight
/// answered` and exited 0 while a client got no answer; and a reload that changed
/// `drain_timeout` was silently not applied. A stop now says how many decisions it cut
/// off and exits non-zero, and it reads the drain timeout in force when it begins.
#[actix_web::test]
async fn a_stop_that_ran_out_of_time_said_every_decision_was_answered() {
    let backend = fake_backend(Reply::status(200).delay(Duration::from_secs(30))).await;
    let mut v = start_logged(
        "drain_timeout = \"10m\"",
        &slow_backend_config(&backend)
            .replace("request_timeout = \"5s\"", "request_timeout = \"60s\""),
    )
    .await;
    // the reload shortens the drain to one second, without a restart
    rewrite_config(&v, |text| {
        text.replace("drain_timeout = \"10m\"", "drain_timeout = \"1s\"")
    });
    v.signal("HUP");
    let log = v.log_with("reload: ").await;
    assert!(
        !log.contains("server.drain_timeout changed"),
        "a reloaded drain timeout needs no restart:\n{log}"
    );
    v.log_with("in force (generation 1").await;
    let waiting = actix_web::rt::spawn(
        auth_request(&v, "/slow")
            .timeout(Duration::from_secs(60))
            .send(),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while backend.hits() < 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the request did not arrive"
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    v.signal("TERM");
    let status = v
        .wait_for_exit(Duration::from_secs(20))
        .expect("verdict exits once the (reloaded) drain timeout runs out");
    assert_ne!(
        status.code(),
        Some(0),
        "a stop that cut off a decision exits non-zero"
    );
    let log = v.log_with("cut off").await;
    assert!(
        log.contains(
            "stop: server.drain_timeout (1s) ran out: 1 decision(s) in flight cut off unanswered"
        ),
        "{log}"
    );
    assert!(!log.contains("every decision in flight answered"), "{log}");
    assert!(
        waiting.await.expect("join").is_err(),
        "the client got no answer"
    );
    backend.stop().await;
}

/// What `verdict check` says of a configuration problem, run as an operator runs it:
/// (exit status, standard error). Only the given `VERDICT…` variables are set.
fn check_says(dir: &std::path::Path, file: &str, env: &[(&str, &str)]) -> (bool, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_verdict"));
    for (name, _) in std::env::vars() {
        if name.starts_with("VERDICT") {
            command.env_remove(name);
        }
    }
    command.envs(env.iter().copied()).current_dir(dir);
    let out = command
        .arg("check")
        .arg("--config")
        .arg(file)
        .output()
        .expect("run verdict check");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// Configuration errors a user could not act on: an ISO duration, a string for a list
/// (the key path stopped at `authorizers.keys`), YAML in a `.toml` file, a `.conf` file, a
/// folder, a garbled number from the environment, a variable with one underscore
/// (silently ignored) or with one underscore too few (which named an internal `demo`
/// key), and a README pointing at a `verdict.toml` that did not exist. Each now names the
/// key or variable and the fix, in one line.
#[test]
fn configuration_errors_a_user_could_not_act_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let write =
        |name: &str, text: &str| std::fs::write(dir.path().join(name), text).expect("write");
    let keys = "[authorizers.keys]\ntype = \"static\"\n[[authorizers.keys.tokens]]\ntoken = \"valid-token-1\"\nuser_id = \"u\"\n";
    write("ok.toml", keys);
    write(
        "iso.toml",
        &format!("{keys}[cache]\nallow_ttl = \"PT30S\"\n"),
    );
    write("list.toml", &format!("{keys}roles = \"admin\"\n"));
    write("yaml.toml", "server:\n  listen: 127.0.0.1:8080\n");
    write("toml.yaml", "[server]\nlisten = \"127.0.0.1:8080\"\n");
    write("site.conf", "server { listen 80; }\n");
    std::fs::create_dir(dir.path().join("folder")).expect("mkdir");
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 9] = [
        (
            "iso.toml",
            &[],
            "cache.allow_ttl: \"PT30S\" is not a duration: write one like \"30s\"",
        ),
        (
            "list.toml",
            &[],
            "authorizers.keys.tokens[0].roles: \"admin\" is one value where a list goes: write [\"admin\"]",
        ),
        (
            "yaml.toml",
            &[],
            "looks like YAML (\"server:\") but ends in .toml: rename it .yaml",
        ),
        (
            "toml.yaml",
            &[],
            "looks like TOML (\"[server]\") but ends in .yaml: rename it .toml",
        ),
        (
            "site.conf",
            &[],
            "verdict reads .toml, .yaml and .yml files",
        ),
        (
            "folder",
            &[],
            "is a folder: give the configuration file in it",
        ),
        (
            "ok.toml",
            &[("VERDICT__SERVER__WORKERS", "four")],
            "server.workers: \"four\" is not a whole number (set by the environment variable VERDICT__SERVER__WORKERS)",
        ),
        (
            "ok.toml",
            &[("VERDICT__SERVER_LISTEN", "0.0.0.0:1")],
            "environment variable VERDICT__SERVER_LISTEN: names no key (server_listen): sections and keys are separated by two underscores; did you mean VERDICT__SERVER__LISTEN?",
        ),
        (
            "missing.toml",
            &[],
            "missing.toml does not exist (`verdict init` writes a starting configuration)",
        ),
    ];
    for (file, env, expected) in cases {
        let (ok, said) = check_says(dir.path(), file, env);
        assert!(!ok, "{file} {env:?} passed the check");
        assert!(said.contains(expected), "{file} {env:?}: {said}");
        assert_eq!(said.trim().lines().count(), 1, "one line: {said}");
        assert!(!said.contains("`demo`"), "an internal key: {said}");
    }
    // a variable with one underscore is not read: valid, but warned of
    let (ok, said) = check_says(
        dir.path(),
        "ok.toml",
        &[("VERDICT_SERVER_LISTEN", "0.0.0.0:1")],
    );
    assert!(ok, "{said}");
    assert!(
        said.contains("warning: environment variable VERDICT_SERVER_LISTEN is not read: overrides are VERDICT__SECTION__KEY, two underscores each (did you mean VERDICT__SERVER__LISTEN?)"),
        "{said}"
    );
    // the README's starting point exists: `verdict init` writes it, once
    let init = |dir: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_verdict"))
            .arg("init")
            .current_dir(dir)
            .env_remove("VERDICT_CONFIG")
            .output()
            .expect("run verdict init")
    };
    let out = init(dir.path());
    assert!(out.status.success());
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    let token = said
        .lines()
        .find_map(|l| l.split(": ").nth(1).filter(|_| l.starts_with("its token")))
        .expect("the token, once")
        .to_string();
    let written = std::fs::read_to_string(dir.path().join("verdict.toml")).expect("verdict.toml");
    assert!(!written.contains(&token), "the file keeps only the digest");
    let (ok, said) = check_says(dir.path(), "verdict.toml", &[]);
    assert!(ok && !said.contains("warning"), "{said}");
    assert!(!init(dir.path()).status.success(), "never overwrites");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("verdict.toml")).expect("kept"),
        written
    );
}

/// `HEAD /healthz` answered 404: load balancers and `curl -I` probe with HEAD.
#[actix_web::test]
async fn a_head_health_check_got_404() {
    let v = start("", DEMO_KEYS).await;
    for path in ["/healthz", "/readyz", "/metrics"] {
        let r = client()
            .head(format!("http://{}{path}", v.admin))
            .sent()
            .await;
        assert_eq!(r.status(), 200, "HEAD {path}");
    }
    v.stop().await;
}

/// The `authgear` backend reader took an empty `x-authgear-session-valid` for an error
/// (a 503), where Authgear's own parser reads it as "no session": verdict could not use
/// another verdict (which sends every identity header, empty where it does not apply) as
/// its `authgear` backend. Verdict calling verdict now works.
#[actix_web::test]
async fn an_empty_session_valid_from_an_authgear_backend_was_an_error() {
    // the upstream verdict, in Authgear's resolver mode
    let upstream = start(
        "",
        &format!("{DEMO_KEYS}[default_route]\naccess = \"identify\"\n"),
    )
    .await;
    let v = start(
        "",
        &http_authorizer(&[upstream.url("/_resolver/resolve")], "authgear", ""),
    )
    .await;
    // no credential: the upstream says session-valid "" (no session), so nobody is here
    let r = auth_request(&v, "/page").sent().await;
    assert_eq!(r.status(), 401);
    // a credential the upstream does not know: session-valid false
    let r = auth_request(&v, "/page")
        .insert_header(("Authorization", "Bearer nope-nope"))
        .sent()
        .await;
    assert_eq!(r.status(), 401);
    // a known one: the upstream's identity, field for field
    let r = auth_request(&v, "/page")
        .insert_header(("Authorization", "Bearer valid-token"))
        .sent()
        .await;
    assert_eq!(r.status(), 200);
    let header = |name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().expect("text").to_string())
    };
    assert_eq!(header("x-authgear-session-valid").as_deref(), Some("true"));
    assert_eq!(header("x-authgear-user-id").as_deref(), Some("u-123"));
    assert_eq!(header("x-authgear-user-roles").as_deref(), Some("reader"));
    assert_eq!(header("x-authgear-session-amr").as_deref(), Some("pwd"));
    assert_eq!(header("x-authgear-user-verified").as_deref(), Some("true"));
    v.stop().await;
    upstream.stop().await;
}

/// `x-authgear-user-can-reauthenticate` was always `false` for a JWT identity: no claim
/// could feed it, and Authgear's own access tokens name their user facts under
/// `https://authgear.com/claims/user/…`. A `can_reauthenticate` claim mapping and an
/// `authgear` preset now read them.
#[actix_web::test]
async fn can_reauthenticate_was_always_false_for_a_jwt() {
    let v = start("", &jwt_hs("claims = \"authgear\"")).await;
    let token = hs_token(serde_json::json!({
        "sub": "u-ag", "iss": "https://idp.test", "aud": "api", "exp": now() + 600,
        "amr": ["pwd", "mfa"],
        "https://authgear.com/claims/user/roles": ["editor"],
        "https://authgear.com/claims/user/is_anonymous": false,
        "https://authgear.com/claims/user/is_verified": true,
        "https://authgear.com/claims/user/can_reauthenticate": true
    }));
    let r = auth_request(&v, "/page")
        .insert_header(("Authorization", format!("Bearer {token}")))
        .sent()
        .await;
    assert_eq!(r.status(), 200);
    let header = |name: &str| r.headers().get(name).map(|v| v.to_str().expect("text"));
    assert_eq!(header("x-authgear-user-can-reauthenticate"), Some("true"));
    assert_eq!(header("x-authgear-user-verified"), Some("true"));
    assert_eq!(header("x-authgear-user-anonymous"), Some("false"));
    assert_eq!(header("x-authgear-user-roles"), Some("editor"));
    // space-separated, as Authgear's resolver writes it
    assert_eq!(header("x-authgear-session-amr"), Some("pwd mfa"));
    v.stop().await;
}

/// A broker's malformed or oversized body was counted as `outcome=bad-target`, as if the
/// original target were at fault: body errors shared the target's error type. A caller's
/// body that cannot be read is `bad-body`; a target that cannot be read stays
/// `bad-target`.
#[actix_web::test]
async fn a_callers_unreadable_body_was_counted_as_a_bad_target() {
    let v = start_logged("", BROKER).await;
    let garbage = "{\"username\": \"u1\", \"topic\": ";
    assert_eq!(
        emqx_result(emqx_post(&v, garbage), garbage.to_string()).await,
        "deny"
    );
    let oversized = format!("{{\"username\": \"{}\"}}", "u".repeat(70 * 1024));
    assert_eq!(
        emqx_result(emqx_post(&v, &oversized), oversized).await,
        "deny"
    );
    let r = client()
        .get(v.url("/_resolver/auth-request"))
        .insert_header(("x-original-uri", "/%zz"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 403);
    let log = v.log_with("outcome=bad-target").await;
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("outcome=bad-body"))
            .count(),
        2,
        "{log}"
    );
    assert!(log.contains("the caller's body is over 64 KiB"), "{log}");
    assert_eq!(
        v.metric("verdict_decisions_total{authorizer=\"-\",outcome=\"bad-body\",route=\"-\"}")
            .await,
        2
    );
    assert_eq!(
        v.metric("verdict_decisions_total{authorizer=\"-\",outcome=\"bad-target\",route=\"-\"}")
            .await,
        1
    );
    v.stop().await;
}

/// Behind Cesbo Astra, the operator's backend got Astra's own `User-Agent` as the viewer's
/// `X-Real-UA` (and the default session id digested it): the header a server sends names
/// the server. The viewer's User-Agent is the one the streamer states, `X-Real-UA`.
#[actix_web::test]
async fn the_backend_got_the_streamers_user_agent_as_the_viewers() {
    let backend = fake_backend(Reply::status(200)).await;
    let body = format!(
        "[authorizers.tv]\ntype = \"http\"\nprotocol = \"status\"\nurls = [\"{}\"]\nforward_query = true\n",
        backend.url("/check")
    );
    let v = start("", &body).await;
    let r = astra(&v, "token=123", "/play/a001/index.m3u8")
        .insert_header(("User-Agent", "Astra/5.64"))
        .sent()
        .await;
    assert_eq!(r.status(), 200);
    let got = backend.received().pop().expect("one request");
    assert_eq!(got.header("x-real-ua"), Some("VLC/3.0.18 LibVLC/3.0.18"));
    // from a proxy, the client's own header is the client's
    let r = viewer_check(&v, "/play/a001/index.m3u8?token=123")
        .insert_header(("User-Agent", "Player/2"))
        .sent()
        .await;
    assert_eq!(r.status(), 200);
    let got = backend.received().pop().expect("one request");
    assert_eq!(got.header("x-real-ua"), Some("Player/2"));
    v.stop().await;
    backend.stop().await;
}

/// A backend that refused every attempt logged three events and more: a warning per
/// attempt from the transport, one from the chain, then the decision. A failure is one
/// event: the decision's own line, at warn, with the error; the attempts are detail at
/// debug.
#[actix_web::test]
async fn a_backend_failure_was_logged_as_several_events() {
    let closed = format!("http://127.0.0.1:{}/check", free_port());
    let v = start_logged_filtered(
        "",
        &http_authorizer(std::slice::from_ref(&closed), "status", "retries = 2"),
        Some("warn"),
    )
    .await;
    assert_eq!(viewer_check(&v, "/refused").status().await, 503);
    let log = v.log_with("outcome=unavailable").await;
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .collect();
    assert_eq!(warnings.len(), 1, "{log}");
    let line = warnings[0];
    assert!(line.contains("decision "), "{line}");
    assert!(
        line.contains("authorizer backend could not decide") && line.contains(&closed),
        "{line}"
    );
    v.stop().await;
}

/// The gRPC dialect gives authorizers the client certificate Envoy verified as
/// `header:x-envoy-peer-certificate`; over the HTTP dialects a client could send a header
/// of that name itself, and an authorizer reading it took the client's copy for Envoy's.
/// Only the gRPC dialect sets it now; a client's copy over HTTP is dropped.
#[actix_web::test]
async fn a_client_sent_peer_certificate_header_counted_over_http() {
    let v = start(
        "",
        r#"
[authorizers.certs]
type = "static"
token_sources = ["header:x-envoy-peer-certificate"]
[[authorizers.certs.tokens]]
token = "-----BEGIN%20CERTIFICATE-----forged"
user_id = "service-a"
"#,
    )
    .await;
    for dialect in [
        "/_resolver/auth-request",
        "/_resolver/forward-auth",
        "/_resolver/ext-authz/x",
    ] {
        let status = client()
            .get(v.url(dialect))
            .insert_header(("X-Original-URI", "/x"))
            .insert_header(("X-Original-Method", "GET"))
            .insert_header(("X-Forwarded-Uri", "/x"))
            .insert_header(("X-Forwarded-Method", "GET"))
            .insert_header(("X-Forwarded-Host", "app.example.com"))
            .insert_header(("X-Forwarded-Proto", "https"))
            .insert_header(("Host", "app.example.com"))
            .insert_header((
                "x-envoy-peer-certificate",
                "-----BEGIN%20CERTIFICATE-----forged",
            ))
            .status()
            .await;
        assert_eq!(
            status, 401,
            "{dialect}: a client's certificate header counted"
        );
    }
}

/// The optional nginx decision cache keyed on the request's headers but not on the client
/// certificate nginx forwards: with it on, a second client's request for the same URL
/// would have been answered with the first client's certificate decision.
#[test]
fn nginx_cache_key_left_out_the_client_certificate() {
    let conf = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("nginx/verdict.conf"),
    )
    .expect("nginx/verdict.conf");
    let forwarded: Vec<&str> = conf
        .lines()
        .map(str::trim)
        .filter_map(|l| l.strip_prefix("proxy_set_header X-SSL-Client-Cert"))
        .map(|rest| rest.trim().trim_end_matches(';'))
        .collect();
    assert_eq!(forwarded, vec!["$ssl_client_escaped_cert"]);
    let key = conf
        .lines()
        .find(|l| l.contains("proxy_cache_key"))
        .expect("the cache option");
    assert!(
        key.contains(forwarded[0]),
        "the cache key must hold the certificate verdict decides on: {key}"
    );
}

/// The answer memo kept the answer of every request the first time it was decided: a
/// fleet of one-off credentials (each presented once) filled it with answers never asked
/// for again, and the memory per cached decision grew by about 160 bytes (bench/memory.sh).
/// An answer is now kept only when its request is decided a second time.
#[actix_web::test]
async fn the_answer_memo_kept_requests_seen_only_once() {
    let v = start("", DEMO_KEYS).await;
    // a fixed Date: awc writes the current one otherwise, and the next second is another request
    let ask = || {
        auth_request(&v, "/once")
            .insert_header(("Authorization", "Bearer valid-token"))
            .insert_header(("Date", "Sun, 06 Dec 2026 12:00:00 GMT"))
    };
    assert_eq!(ask().send().await.unwrap().status(), 200);
    assert_eq!(ask().send().await.unwrap().status(), 200);
    assert_eq!(
        v.metric("verdict_answer_memo_hits_total").await,
        0,
        "the second request is decided: the first left only its hash"
    );
    assert_eq!(ask().send().await.unwrap().status(), 200);
    assert_eq!(v.metric("verdict_answer_memo_hits_total").await, 1);
    v.stop().await;
}
