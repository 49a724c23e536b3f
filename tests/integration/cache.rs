//! The decision cache seen from outside: hits, TTLs, coalescing, and policy re-checks.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::support::*;

fn request(v: &Verdict, uri: &str, token: &str) -> awc::ClientRequest {
    auth_request(v, uri).insert_header(("Authorization", format!("Bearer {token}")))
}

#[actix_web::test]
async fn hit_miss_and_ttl_expiry() {
    let (v, clock) = start_with_clock(
        "",
        &format!("[cache]\nallow_ttl = \"400ms\"\ndeny_ttl = \"100ms\"\n{DEMO_KEYS}"),
    )
    .await;
    assert_eq!(request(&v, "/a", "valid-token").status().await, 200);
    assert_eq!(request(&v, "/b", "valid-token").status().await, 200);
    assert_eq!(v.cache_misses().await, 1, "second request was a hit");
    clock.advance(Duration::from_millis(399));
    assert_eq!(request(&v, "/b", "valid-token").status().await, 200);
    assert_eq!(v.cache_misses().await, 1, "1 ms left: still a hit");
    clock.advance(Duration::from_millis(1));
    assert_eq!(request(&v, "/c", "valid-token").status().await, 200);
    assert_eq!(v.cache_misses().await, 2, "the allow expired");
    v.stop().await;
}

#[actix_web::test]
async fn route_checks_run_on_every_hit() {
    let routes = "[[route]]\npath = \"/admin\"\naccess = \"authenticated\"\nroles = [\"admin\"]\n";
    let v = start("", &format!("{DEMO_KEYS}{routes}")).await;
    assert_eq!(request(&v, "/page", "valid-token").status().await, 200);
    assert_eq!(
        request(&v, "/admin", "valid-token").status().await,
        403,
        "cached allow, still no role"
    );
    assert_eq!(request(&v, "/page", "valid-token").status().await, 200);
    assert_eq!(v.cache_misses().await, 1);
    v.stop().await;
}

#[actix_web::test]
async fn allow_never_outlives_the_token() {
    let (v, clock) = start_with_clock("", &jwt_hs("leeway = \"0s\"")).await;
    let token = hs_token(user_claims("short", &[], 30));
    assert_eq!(request(&v, "/a", &token).status().await, 200);
    clock.advance(Duration::from_secs(29));
    assert_eq!(request(&v, "/a", &token).status().await, 200);
    assert_eq!(v.cache_misses().await, 1, "a hit before exp");
    // allow_ttl is 60 s; the token's exp (30 s) ends the entry. (The token itself is
    // checked against the wall clock, which this test does not move.)
    clock.advance(Duration::from_secs(2));
    assert_eq!(request(&v, "/a", &token).status().await, 200);
    assert_eq!(v.cache_misses().await, 2, "the entry ended with the token");
    v.stop().await;
}

fn jwks_config(url: &str, refresh: &str) -> String {
    format!(
        "[authorizers.idp]\ntype = \"jwt\"\njwks_url = \"{url}\"\njwks_algorithms = [\"RS256\"]\njwks_min_refetch = \"300ms\"\njwks_refresh = \"{refresh}\"\nissuers = [\"https://idp.test\"]\naudiences = [\"api\"]\n"
    )
}

#[actix_web::test]
async fn hundred_concurrent_misses_make_one_jwks_refetch() {
    let jwks = fake_jwks(jwks_with(&["k1"])).await;
    let (v, clock) = start_with_clock("workers = 2", &jwks_config(&jwks.url(), "5m")).await;
    assert_eq!(jwks.hits.load(Ordering::SeqCst), 1, "fetched once at start");
    let old = rs_token("k1", user_claims("u-old", &[], 600));
    assert_eq!(request(&v, "/", &old).status().await, 200);
    assert_eq!(jwks.hits.load(Ordering::SeqCst), 1, "known kid: no fetch");

    // Past jwks_min_refetch since the start-up fetch, the issuer rotates in k2; 100 clients arrive at once with k2 tokens (same token:
    // one cache key; and distinct tokens: one refetch for all of them).
    clock.advance(Duration::from_millis(300));
    *jwks.document.lock().expect("lock") = jwks_with(&["k1", "k2"]);
    jwks.delay_ms.store(200, Ordering::SeqCst);
    let same = rs_token("k2", user_claims("u-new", &[], 600));
    let futures = (0..100).map(|i| {
        let token = if i % 2 == 0 {
            same.clone()
        } else {
            rs_token("k2", user_claims(&format!("u-{i}"), &[], 600))
        };
        let req = request(&v, "/", &token);
        async move { req.status().await }
    });
    let statuses = futures_util::future::join_all(futures).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(
        jwks.hits.load(Ordering::SeqCst),
        2,
        "one refetch for 100 concurrent misses"
    );

    // Unknown kids do not hammer the issuer: at most one refetch per jwks_min_refetch.
    jwks.delay_ms.store(0, Ordering::SeqCst);
    for _ in 0..20 {
        let r = request(&v, "/", &rs_token("k-random", user_claims("x", &[], 600)))
            .sent()
            .await;
        assert_eq!(r.status(), 401);
    }
    assert!(
        jwks.hits.load(Ordering::SeqCst) <= 3,
        "hits: {}",
        jwks.hits.load(Ordering::SeqCst)
    );
    v.stop().await;
    jwks.stop().await;
}

#[actix_web::test]
async fn jwks_errors_are_not_cached() {
    let jwks = fake_jwks(jwks_with(&["k1"])).await;
    jwks.status.store(500, Ordering::SeqCst);
    let (v, clock) = start_with_clock("", &jwks_config(&jwks.url(), "300ms")).await;
    let token = rs_token("k1", user_claims("u", &[], 600));
    assert_eq!(request(&v, "/", &token).status().await, 503, "no keys yet");
    jwks.status.store(200, Ordering::SeqCst);
    assert_eq!(
        request(&v, "/", &token).status().await,
        503,
        "the failure holds back the next fetch for jwks_min_refetch"
    );
    clock.advance(Duration::from_millis(300));
    assert_eq!(
        request(&v, "/", &token).status().await,
        200,
        "the error was not cached"
    );
    assert!(jwks.hits.load(Ordering::SeqCst) >= 2);
    // garbage from the issuer is an error too, and the last good keys stay in use
    *jwks.document.lock().expect("lock") = "not json".into();
    clock.advance(Duration::from_millis(300));
    let other = rs_token("k1", user_claims("u2", &[], 600));
    assert_eq!(request(&v, "/", &other).status().await, 200);
    v.stop().await;
    jwks.stop().await;
}

#[actix_web::test]
async fn jwks_is_refreshed_in_the_background() {
    let jwks = fake_jwks(jwks_with(&["k1"])).await;
    let body = format!(
        "[authorizers.idp]\ntype = \"jwt\"\njwks_url = \"{}\"\njwks_algorithms = [\"RS256\"]\njwks_refresh = \"300ms\"\njwks_min_refetch = \"100ms\"\n",
        jwks.url()
    );
    let (v, clock) = start_with_clock("", &body).await;
    assert_eq!(jwks.hits.load(Ordering::SeqCst), 1);
    // The issuer rotates to k2 and retires k1; no request arrives meanwhile. Each
    // jwks_refresh on the clock, the background loop fetches again by itself.
    *jwks.document.lock().expect("lock") = jwks_with(&["k2"]);
    // (a refresh counts once its keys are in: the next one is timed from there)
    let refreshed = "verdict_jwks_refreshes_total{authorizer=\"idp\",result=\"ok\"}";
    for refreshes in 2..=3 {
        clock.advance(Duration::from_millis(300));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while v.metric(refreshed).await < refreshes {
            assert!(
                std::time::Instant::now() < deadline,
                "no background refresh {refreshes}"
            );
        }
    }
    assert_eq!(jwks.hits.load(Ordering::SeqCst), 3);
    let token = rs_token("k2", serde_json::json!({"sub": "u", "exp": now() + 600}));
    assert_eq!(request(&v, "/", &token).status().await, 200);
    v.stop().await;
    jwks.stop().await;
}
