//! Regression tests: one test per fixed bug, named for the bug, each failing on the code
//! before its fix. A bug fix adds its test here, whatever part of verdict it touches.

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
    let log = v.log();
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
