//! The admin listener: /healthz, /readyz and /metrics, never on the decision port.

use std::sync::atomic::Ordering;

use crate::support::*;

async fn get_text(url: String) -> (u16, String) {
    let mut r = client().get(url).sent().await;
    let body = r.body().await.expect("body");
    (
        r.status().as_u16(),
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[actix_web::test]
async fn metrics_count_decisions_cache_backends_and_jwks() {
    let jwks = fake_jwks(jwks_with(&["k1"])).await;
    let backend = fake_backend(Reply::status(200)).await;
    let body = format!(
        "[authorizers.idp]\ntype = \"jwt\"\njwks_url = \"{}\"\njwks_algorithms = [\"RS256\"]\n[authorizers.astra]\ntype = \"http\"\nprotocol = \"status\"\nurls = [\"{}\"]\n[[route]]\nname = \"tv\"\npath = \"/play\"\naccess = \"authenticated\"\nauthorizers = [\"astra\"]\n[default_route]\nauthorizers = [\"idp\"]\n",
        jwks.url(),
        backend.url("/check")
    );
    let v = start("", &body).await;
    let token = rs_token("k1", serde_json::json!({"sub": "u", "exp": now() + 600}));
    for _ in 0..2 {
        let r = client()
            .get(v.url("/_resolver/auth-request"))
            .insert_header(("X-Original-URI", "/app"))
            .insert_header(("X-Original-Method", "GET"))
            .insert_header(("Authorization", format!("Bearer {token}")))
            .sent()
            .await;
        assert_eq!(r.status(), 200);
    }
    let r = client()
        .get(v.url("/_resolver/auth-request"))
        .insert_header(("X-Original-URI", "/play/a1"))
        .insert_header(("X-Original-Method", "GET"))
        .sent()
        .await;
    assert_eq!(r.status(), 200);
    let bad = client()
        .get(v.url("/_resolver/auth-request"))
        .insert_header(("X-Original-URI", "relative"))
        .sent()
        .await;
    assert_eq!(bad.status(), 403);
    let (status, text) = get_text(format!("http://{}/metrics", v.admin)).await;
    assert_eq!(status, 200);
    for needle in [
        "verdict_decisions_total{authorizer=\"idp\",outcome=\"allow\",route=\"default\"} 2",
        "verdict_decisions_total{authorizer=\"astra\",outcome=\"allow\",route=\"tv\"} 1",
        "verdict_cache_requests_total{result=\"hit\"} 1",
        "verdict_cache_requests_total{result=\"miss\"} 2",
        "verdict_jwks_refreshes_total{authorizer=\"idp\",result=\"ok\"} 1",
        "verdict_backend_request_duration_seconds_count{authorizer=\"astra\"",
        "verdict_cache_entries",
        "verdict_decisions_total{authorizer=\"-\",outcome=\"bad-target\",route=\"-\"} 1",
        "verdict_decision_duration_seconds_count{dialect=\"auth-request\",outcome=\"allow\"} 3",
        "verdict_decision_duration_seconds_bucket{dialect=\"auth-request\",outcome=\"bad-target\",le=",
        "verdict_open_connections ",
        "verdict_build_info{commit=\"",
        "verdict_config_info{fingerprint=\"",
        "verdict_last_reload_success_timestamp_seconds ",
        "process_cpu_seconds_total ",
        "process_resident_memory_bytes ",
        "process_open_fds ",
        "process_max_fds ",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    assert!(!text.contains(&token), "no credential in metrics");
    let (status, _) = get_text(v.url("/metrics")).await;
    assert_eq!(status, 404, "metrics live on the admin port only");
    v.stop().await;
    jwks.stop().await;
    backend.stop().await;
}

#[actix_web::test]
async fn readiness_follows_jwks_and_backends() {
    let jwks = fake_jwks(jwks_with(&["k1"])).await;
    jwks.status.store(500, Ordering::SeqCst);
    let dead = format!("http://127.0.0.1:{}/check", free_port());
    let body = format!(
        "[authorizers.idp]\ntype = \"jwt\"\njwks_url = \"{}\"\njwks_algorithms = [\"RS256\"]\njwks_min_refetch = \"100ms\"\n[authorizers.astra]\ntype = \"http\"\nprotocol = \"status\"\nurls = [\"{dead}\"]\n",
        jwks.url()
    );
    let v = start("", &body).await;
    let (status, text) = get_text(format!("http://{}/readyz", v.admin)).await;
    assert_eq!(status, 503);
    assert!(text.contains("idp: JWKS not fetched yet"), "{text}");
    assert!(text.contains("astra: no backend URL reachable"), "{text}");
    let (status, _) = get_text(format!("http://{}/healthz", v.admin)).await;
    assert_eq!(status, 200, "alive even when not ready");
    v.stop().await;

    jwks.status.store(200, Ordering::SeqCst);
    let backend = fake_backend(Reply::status(200)).await;
    let body = format!(
        "[authorizers.idp]\ntype = \"jwt\"\njwks_url = \"{}\"\njwks_algorithms = [\"RS256\"]\n[authorizers.astra]\ntype = \"http\"\nprotocol = \"status\"\nurls = [\"{dead}\", \"{}\"]\n",
        jwks.url(),
        backend.url("/check")
    );
    let v = start("", &body).await;
    let (status, text) = get_text(format!("http://{}/readyz", v.admin)).await;
    assert_eq!(status, 200, "{text}");
    v.stop().await;
    jwks.stop().await;
    backend.stop().await;
}

#[actix_web::test]
async fn open_connections_are_counted_while_they_live() {
    let v = start("", DEMO_KEYS).await;
    let before = v.metric("verdict_open_connections ").await;
    let held: Vec<std::net::TcpStream> = (0..3)
        .map(|_| std::net::TcpStream::connect(v.addr).expect("connect"))
        .collect();
    // the server sees an accept or a close a little later, more so under a loaded machine
    let settles_at = |expected: u64| {
        let v = &v;
        async move {
            let mut seen = 0;
            for _ in 0..100 {
                seen = v.metric("verdict_open_connections ").await;
                if seen == expected {
                    break;
                }
                actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            seen
        }
    };
    assert_eq!(settles_at(before + 3).await, before + 3);
    drop(held);
    assert_eq!(settles_at(before).await, before);
    v.stop().await;
}
