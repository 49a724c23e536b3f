//! The answer memo seen from outside: an answer given again only for the exact bytes of
//! an earlier request, never past what it rests on, with the log line and the metrics of
//! every request.

use std::time::Duration;

use crate::support::*;

/// The same bytes every time: awc writes a `Date` header of its own unless one is set, and
/// a request sent in the next second would be another request.
fn request(v: &Verdict, uri: &str, token: &str) -> awc::ClientRequest {
    auth_request(v, uri)
        .insert_header(("Authorization", format!("Bearer {token}")))
        .insert_header(("Date", "Sun, 06 Dec 2026 12:00:00 GMT"))
}

async fn memo_hits(v: &Verdict) -> u64 {
    v.metric("verdict_answer_memo_hits_total").await
}

#[actix_web::test]
async fn the_same_request_is_answered_again_with_its_metrics() {
    let v = start("", DEMO_KEYS).await;
    for _ in 0..4 {
        let r = request(&v, "/a", "valid-token").sent().await;
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers().get("x-authgear-user-id").map(|h| h.as_bytes()),
            Some(&b"u-123"[..])
        );
    }
    assert_eq!(
        memo_hits(&v).await,
        2,
        "the 3rd and 4th from the memo: the first decision only leaves a hash, the second's answer is kept"
    );
    assert_eq!(v.decisions().await, 4, "every request counted");
    assert_eq!(
        v.metric("verdict_cache_requests_total{result=\"hit\"}")
            .await,
        3
    );
    assert_eq!(v.cache_misses().await, 1);
    v.stop().await;
}

#[actix_web::test]
async fn any_other_byte_is_another_request() {
    let v = start("", DEMO_KEYS).await;
    assert_eq!(request(&v, "/a", "valid-token").status().await, 200);
    // one more header, another path, another token, a declared (empty) body: decided anew
    let other = request(&v, "/a", "valid-token")
        .insert_header(("x-request-id", "1"))
        .status()
        .await;
    assert_eq!(other, 200);
    assert_eq!(request(&v, "/b", "valid-token").status().await, 200);
    assert_eq!(request(&v, "/a", "invalid").status().await, 401);
    assert_eq!(memo_hits(&v).await, 0);
    // a request with a body is decided on what it holds, every time
    let with_body = b"GET /_resolver/auth-request HTTP/1.1\r\nHost: verdict\r\nX-Original-URI: /a\r\nX-Original-Method: GET\r\nAuthorization: Bearer valid-token\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";
    for _ in 0..3 {
        let (answer, _) = raw(v.addr, with_body, Duration::from_secs(5));
        assert!(
            answer.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&answer)
        );
    }
    assert_eq!(memo_hits(&v).await, 0);
    v.stop().await;
}

#[actix_web::test]
async fn a_denial_is_decided_every_time() {
    let v = start("", DEMO_KEYS).await;
    for _ in 0..3 {
        assert_eq!(request(&v, "/a", "wrong").status().await, 401);
    }
    assert_eq!(memo_hits(&v).await, 0);
    v.stop().await;
}

#[actix_web::test]
async fn an_answer_ends_with_the_cached_allow_and_counts_its_lifetime_down() {
    let (v, clock) =
        start_with_clock("", &format!("[cache]\nallow_ttl = \"30s\"\n{DEMO_KEYS}")).await;
    let first = request(&v, "/a", "valid-token").sent().await;
    assert_eq!(
        first.headers().get("x-accel-expires").map(|h| h.as_bytes()),
        Some(&b"29"[..])
    );
    // the second time it is decided, its answer is kept
    assert_eq!(request(&v, "/a", "valid-token").status().await, 200);
    assert_eq!(memo_hits(&v).await, 0);
    clock.advance(Duration::from_secs(10));
    let again = request(&v, "/a", "valid-token").sent().await;
    assert_eq!(memo_hits(&v).await, 1);
    assert_eq!(
        again.headers().get("x-accel-expires").map(|h| h.as_bytes()),
        Some(&b"19"[..]),
        "what is left, never the lifetime it was given"
    );
    clock.advance(Duration::from_millis(19_500));
    let last = request(&v, "/a", "valid-token").sent().await;
    assert_eq!(memo_hits(&v).await, 2);
    assert!(last.headers().get("x-accel-expires").is_none());
    assert_eq!(
        last.headers().get("cache-control").map(|h| h.as_bytes()),
        Some(&b"no-store"[..])
    );
    clock.advance(Duration::from_millis(500));
    assert_eq!(request(&v, "/a", "valid-token").status().await, 200);
    assert_eq!(memo_hits(&v).await, 2, "the allow expired: decided anew");
    assert_eq!(v.cache_misses().await, 2);
    v.stop().await;
}

#[actix_web::test]
async fn an_answer_never_outlives_the_token() {
    let (v, clock) = start_with_clock("", &jwt_hs("leeway = \"0s\"")).await;
    let token = hs_token(user_claims("short", &[], 30));
    assert_eq!(request(&v, "/a", &token).status().await, 200);
    assert_eq!(request(&v, "/a", &token).status().await, 200);
    // a second clear of the token's exp either way (its exp is in whole seconds, the
    // clock is not)
    clock.advance(Duration::from_secs(28));
    assert_eq!(request(&v, "/a", &token).status().await, 200);
    assert_eq!(memo_hits(&v).await, 1);
    clock.advance(Duration::from_secs(3));
    assert_eq!(request(&v, "/a", &token).status().await, 200);
    assert_eq!(memo_hits(&v).await, 1, "the token's exp ended it");
    v.stop().await;
}

#[actix_web::test]
async fn every_request_has_its_log_line() {
    let lines = five_logged_lines("").await;
    assert!(
        lines[1..]
            .iter()
            .all(|l| l.contains("cache=hit") && l.contains("user=u-123"))
    );
    // an answer given again logs the line a decision would: the same fields, its own
    // time and latency
    let shape = regex::Regex::new(
        r#"^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z INFO  verdict::decision\] decision dialect=auth-request route=default authorizer=keys outcome=allow status=200 cache=hit latency_us=\d+ method=GET host=- path="/logged" user=u-123 client_ip=127\.0\.0\.1$"#,
    )
    .unwrap();
    for line in &lines[1..] {
        assert!(shape.is_match(line), "{line}");
    }
}

#[actix_web::test]
async fn every_request_has_its_json_log_line() {
    let lines = five_logged_lines("[log]\nformat = \"json\"\n").await;
    let parsed: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let without_time = |v: &serde_json::Value| {
        let mut v = v.clone();
        let object = v.as_object_mut().unwrap();
        assert!(object.remove("ts").unwrap().is_string());
        assert!(object.remove("latency_us").unwrap().is_u64());
        v
    };
    for value in &parsed[1..] {
        assert_eq!(value["cache"], "hit");
        assert_eq!(value["user"], "u-123");
        assert_eq!(without_time(value), without_time(&parsed[1]));
    }
}

/// Five identical requests (the third to the fifth from the memo) and their log lines.
async fn five_logged_lines(extra: &str) -> Vec<String> {
    let v = start_logged("", &format!("{extra}{DEMO_KEYS}")).await;
    for _ in 0..5 {
        assert_eq!(request(&v, "/logged", "valid-token").status().await, 200);
    }
    let hits = memo_hits(&v).await;
    assert_eq!(hits, 3, "the 3rd to the 5th:\n{}", v.log());
    // the writer thread writes every 100 ms: wait for the lines, not for time to pass
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let decisions = |log: &str| -> Vec<String> {
        log.lines()
            .filter(|l| l.contains("/logged") && l.contains("verdict::decision"))
            .map(str::to_string)
            .collect()
    };
    let mut log = v.log();
    while decisions(&log).len() < 5 && std::time::Instant::now() < deadline {
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        log = v.log();
    }
    v.stop().await;
    let lines = decisions(&log);
    assert_eq!(lines.len(), 5, "{log}");
    lines
}

#[actix_web::test]
async fn a_reload_drops_every_answer() {
    let v = start_logged("", DEMO_KEYS).await;
    for _ in 0..3 {
        assert_eq!(request(&v, "/a", "admin-token").status().await, 200);
    }
    assert_eq!(memo_hits(&v).await, 1, "the third from the memo");
    let path = v.config_path();
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace("token = \"admin-token\"", "token = \"other-token\""),
    )
    .unwrap();
    v.signal("HUP");
    v.log_with("in force (generation 1").await;
    assert_eq!(
        request(&v, "/a", "admin-token").status().await,
        401,
        "a removed token is nobody at once"
    );
    v.stop().await;
}
