//! Trusted peers and the canonical target: forwarded facts count only from trusted
//! proxies, and decisions are made on the canonical form.

use std::time::Duration;

use crate::support::*;

const ROUTES: &str = r#"
[[route]]
name = "admin"
path = "/admin"
access = "deny"
[[route]]
name = "admin-host"
host = "admin.example.com"
access = "deny"
[[route]]
name = "public"
path = "/public"
access = "public"
"#;

fn nginx(v: &Verdict, uri: &str) -> awc::ClientRequest {
    auth_request(v, uri)
        .insert_header(("X-Forwarded-Host", "app.example.com"))
        .insert_header(("Authorization", "Bearer valid-token"))
}

#[actix_web::test]
async fn untrusted_peers_are_refused() {
    let v = start("trusted_proxies = [\"10.0.0.0/8\"]", DEMO_KEYS).await;
    let r = nginx(&v, "/public").sent().await;
    assert_eq!(r.status(), 403, "127.0.0.1 is not a trusted proxy here");
    assert!(r.headers().get("x-authgear-user-id").is_none());
    assert_eq!(
        v.cache_misses().await,
        0,
        "nothing was decided for an untrusted peer"
    );
    v.stop().await;
    let trusted = start(
        "trusted_proxies = [\"10.0.0.0/8\", \"127.0.0.1\"]",
        DEMO_KEYS,
    )
    .await;
    assert_eq!(nginx(&trusted, "/public").status().await, 200);
    trusted.stop().await;
}

#[actix_web::test]
async fn decisions_use_the_canonical_path() {
    let v = start("", &format!("{DEMO_KEYS}{ROUTES}")).await;
    for uri in [
        "/admin",
        "/admin/",
        "/public/../admin",
        "/public/%2e%2e/admin",
        "//admin//x",
        "/./admin",
        "/public/..%2Fadmin",
        "/%61dmin",
    ] {
        let r = nginx(&v, uri).sent().await;
        assert_eq!(r.status(), 403, "{uri} is /admin");
    }
    for uri in ["/public/%252e%252e/admin", "/administrator"] {
        let r = nginx(&v, uri).sent().await;
        assert_eq!(r.status(), 200, "{uri} is not /admin");
    }
    // a case-insensitive application serves /ADMIN as /admin: refused by default…
    assert_eq!(nginx(&v, "/ADMIN").status().await, 403);
    v.stop().await;
    // …and decided on its own when the operator says the application minds case
    let v = start("readings = []", &format!("{DEMO_KEYS}{ROUTES}")).await;
    assert_eq!(
        nginx(&v, "/ADMIN").status().await,
        200,
        "/ADMIN is not /admin"
    );
    v.stop().await;
}

#[actix_web::test]
async fn decisions_use_the_canonical_host() {
    let v = start("", &format!("{DEMO_KEYS}{ROUTES}")).await;
    for host in [
        "admin.example.com",
        "ADMIN.Example.COM",
        "admin.example.com:443",
        "admin.example.com.",
    ] {
        let r = client()
            .get(v.url("/_resolver/forward-auth"))
            .insert_header(("X-Forwarded-Method", "GET"))
            .insert_header(("X-Forwarded-Proto", "https"))
            .insert_header(("X-Forwarded-Host", host))
            .insert_header(("X-Forwarded-Uri", "/x"))
            .insert_header(("Authorization", "Bearer valid-token"))
            .sent()
            .await;
        assert_eq!(r.status(), 403, "{host} is admin.example.com");
    }
    v.stop().await;
}

#[actix_web::test]
async fn unparsable_or_ambiguous_targets_are_denied() {
    let v = start("", &format!("{DEMO_KEYS}{ROUTES}")).await;
    for uri in ["relative/path", "/bad%FF", "/nul%00", "http://evil/admin"] {
        let r = nginx(&v, uri).sent().await;
        assert_eq!(r.status(), 403, "{uri}");
        assert!(r.headers().get("x-authgear-user-id").is_none());
    }
    let twice = nginx(&v, "/public")
        .append_header(("X-Original-URI", "/admin"))
        .sent()
        .await;
    assert_eq!(twice.status(), 403, "two X-Original-URI headers");
    let bad_host = client()
        .get(v.url("/_resolver/forward-auth"))
        .insert_header(("X-Forwarded-Method", "GET"))
        .insert_header(("X-Forwarded-Host", "evil.com/x"))
        .insert_header(("X-Forwarded-Uri", "/public"))
        .sent()
        .await;
    assert_eq!(bad_host.status(), 403);
    let bad_ip = nginx(&v, "/public")
        .insert_header(("X-Real-IP", "not-an-ip"))
        .sent()
        .await;
    assert_eq!(bad_ip.status(), 403);
    v.stop().await;
}

#[actix_web::test]
async fn missing_host_cannot_slip_past_host_rules() {
    let v = start("", &format!("{DEMO_KEYS}{ROUTES}")).await;
    let r = client()
        .get(v.url("/_resolver/auth-request"))
        .insert_header(("X-Original-URI", "/public"))
        .insert_header(("X-Original-Method", "GET"))
        .insert_header(("Authorization", "Bearer valid-token"))
        .sent()
        .await;
    assert_eq!(
        r.status(),
        403,
        "the host rule before /public cannot be evaluated without a host"
    );
    v.stop().await;
}

#[actix_web::test]
async fn missing_target_cannot_slip_past_path_rules() {
    let v = start("", &format!("{DEMO_KEYS}{ROUTES}")).await;
    let r = client()
        .get(v.url("/_resolver/auth-request"))
        .insert_header(("Authorization", "Bearer valid-token"))
        .sent()
        .await;
    assert_eq!(r.status(), 403, "no X-Original-URI while path rules exist");
    v.stop().await;
    let no_routes = start("", DEMO_KEYS).await;
    let r = client()
        .get(no_routes.url("/_resolver/resolve"))
        .insert_header(("Authorization", "Bearer valid-token"))
        .sent()
        .await;
    assert_eq!(
        r.status(),
        200,
        "with no path rules the default route needs no target (Authgear's resolver)"
    );
    no_routes.stop().await;
}

#[actix_web::test]
async fn other_header_families_are_ignored() {
    let v = start("", &format!("{DEMO_KEYS}{ROUTES}")).await;
    // nginx passes client headers through: X-Forwarded-Uri must not override X-Original-URI
    let r = nginx(&v, "/admin")
        .insert_header(("X-Forwarded-Uri", "/public"))
        .sent()
        .await;
    assert_eq!(r.status(), 403);
    // Caddy passes client headers through: X-Original-URI must not override X-Forwarded-Uri
    let r = client()
        .get(v.url("/_resolver/forward-auth"))
        .insert_header(("X-Forwarded-Method", "GET"))
        .insert_header(("X-Forwarded-Uri", "/admin"))
        .insert_header(("X-Original-URI", "/public"))
        .insert_header(("Authorization", "Bearer valid-token"))
        .sent()
        .await;
    assert_eq!(r.status(), 403);
    v.stop().await;
}

#[actix_web::test]
async fn credentials_never_reach_the_log() {
    credentials_never_reach_a_log_line("").await;
}

#[actix_web::test]
async fn credentials_never_reach_the_json_log_and_every_line_is_one_object() {
    let log = credentials_never_reach_a_log_line("[log]\nformat = \"json\"\n").await;
    let mut decisions = 0;
    for line in log.lines() {
        let value: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not one JSON object ({e}): {line}"));
        if value["msg"] == "decision" {
            decisions += 1;
            for field in [
                "dialect",
                "route",
                "authorizer",
                "outcome",
                "cache",
                "method",
                "host",
                "path",
            ] {
                assert!(value[field].is_string(), "{field} in {line}");
            }
            assert!(
                value["status"].is_u64() && value["latency_us"].is_u64(),
                "{line}"
            );
        }
    }
    assert_eq!(decisions, 6, "{log}");
}

/// Sends credentials every way a token source reads them and checks that none reaches
/// the log of the instance (at debug, so the lines that explain decisions count too).
/// Returns the log.
async fn credentials_never_reach_a_log_line(extra: &str) -> String {
    let v = start_logged(
        "",
        &format!(
            "{}{DEMO_KEYS}{extra}",
            jwt_hs("token_sources = [\"bearer\", \"cookie:sess\", \"query:access_token\"]")
                .replace("token_sources = [\"bearer\", \"cookie:sess\"]\n", "")
        ),
    )
    .await;
    let jwt = hs_token(user_claims("u-log", &[], 600));
    let expired = hs_token(user_claims("u-log", &[], -600));
    let requests = [
        ("/a".to_string(), ("Authorization", format!("Bearer {jwt}"))),
        (
            "/b".to_string(),
            ("Authorization", format!("Bearer {expired}")),
        ),
        ("/c".to_string(), ("Cookie", format!("sess={jwt}"))),
        (
            format!("/d?access_token={jwt}"),
            ("X-Other", "x".to_string()),
        ),
        (
            "/e".to_string(),
            ("Authorization", "Bearer valid-token".to_string()),
        ),
        (
            "/f".to_string(),
            ("Authorization", "Bearer not-a-known-key-42".to_string()),
        ),
    ];
    for (uri, (name, value)) in requests {
        let r = client()
            .get(v.url("/_resolver/auth-request"))
            .insert_header(("X-Original-URI", uri.clone()))
            .insert_header(("X-Original-Method", "GET"))
            .insert_header((name, value))
            .sent()
            .await;
        assert!([200, 401].contains(&r.status().as_u16()), "{uri}");
    }
    // the last request's line: every earlier one is written by then
    let log = v.log_with("\"/f\"").await;
    let lines: Vec<&str> = log.lines().collect();
    // one decision line for each of the six requests, in either format
    for path in ["/a", "/b", "/c", "/d", "/e", "/f"] {
        let logged = lines
            .iter()
            .filter(|l| {
                l.contains("outcome")
                    && (l.contains(&format!(" path=\"{path}\" "))
                        || l.contains(&format!("\"path\":\"{path}\"")))
            })
            .count();
        assert_eq!(logged, 1, "the decision for {path}: {log}");
    }
    let signature = jwt.rsplit('.').next().expect("signature");
    for line in &lines {
        for secret in [
            jwt.as_str(),
            expired.as_str(),
            signature,
            "valid-token",
            "not-a-known-key-42",
            "access_token=",
        ] {
            assert!(!line.contains(secret), "credential in log line: {line}");
        }
    }
    v.stop().await;
    log
}

#[actix_web::test]
async fn identity_header_aliases_are_refused() {
    let v = start("", DEMO_KEYS).await;
    for alias in ["x_authgear_user_id", "X.Session.Name", "remote_user"] {
        let r = nginx(&v, "/app")
            .insert_header((alias, "admin"))
            .sent()
            .await;
        assert_eq!(r.status(), 403, "{alias}");
        assert!(r.headers().get("x-authgear-user-id").is_none());
    }
    assert_eq!(
        nginx(&v, "/app")
            .insert_header(("x_custom_header", "1"))
            .status()
            .await,
        200,
        "other underscores are fine"
    );
    v.stop().await;
}

#[actix_web::test]
async fn raw_non_utf8_bytes_in_the_target_are_refused_deterministically() {
    let v = start("", &format!("{DEMO_KEYS}{ROUTES}")).await;
    let request = b"GET /_resolver/auth-request HTTP/1.1\r\nHost: v\r\nX-Original-URI: /public/\xff\xfe\r\nX-Original-Method: GET\r\nX-Forwarded-Host: app.example.com\r\nAuthorization: Bearer valid-token\r\nConnection: close\r\n\r\n";
    for _ in 0..3 {
        let (bytes, _) = raw(v.addr, request, Duration::from_secs(2));
        let answers = responses(&bytes);
        assert_eq!(answers.len(), 1);
        assert_eq!(answers[0].0, 403);
    }
    v.stop().await;
}
