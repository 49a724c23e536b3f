//! Servers that ask verdict as their auth backend, by their documented request shapes:
//! Cesbo Astra and Alta (which cannot be installed here, so their requests are reproduced
//! header for header).

use crate::support::*;

/// Viewers' keys: the token comes in the query the streamer appends.
const VIEWERS: &str = r#"
[authorizers.viewers]
type = "static"
token_sources = ["query:token"]
[[authorizers.viewers.tokens]]
token = "good-viewer-token"
user_id = "u-viewer"
session_name = "alice"
roles = ["a001"]
[[authorizers.viewers.tokens]]
token = "other-viewer-token"
user_id = "u-other"
session_name = "bob"
roles = ["b002"]

[[route]]
name = "a001"
dialects = ["cesbo"]
path_glob = "/play/a001/**"
access = "authenticated"
roles = ["a001"]
deny_location = "http://promo.example.com/play/promo/index.m3u8"

[[route]]
name = "streams"
dialects = ["cesbo"]
access = "authenticated"
authorizers = ["viewers"]
"#;

/// Astra's request: its headers in its spelling, the viewer's query appended to ours.
fn astra(v: &Verdict, query: &str, path: &str) -> awc::ClientRequest {
    client()
        .get(v.url(&format!("/_resolver/cesbo?{query}")))
        .insert_header(("X-Session-ID", "1234"))
        .insert_header(("X-Channel-ID", "a001"))
        .insert_header(("X-Real-IP", "203.0.113.7"))
        .insert_header(("X-Real-Path", path.to_string()))
        .insert_header(("X-Real-UA", "VLC/3.0.18 LibVLC/3.0.18"))
        .insert_header(("X-Real-Host", "live.example.com"))
}

/// Alta's request: `X-Session-Id`, `X-Real-Ip`, `X-Real-Origin`, `X-Real-Ua`.
fn alta(v: &Verdict, query: &str, path: &str) -> awc::ClientRequest {
    client()
        .get(v.url(&format!("/_resolver/cesbo?{query}")))
        .insert_header(("X-Session-Id", "5678"))
        .insert_header(("X-Real-Ip", "198.51.100.9"))
        .insert_header(("X-Real-Path", path.to_string()))
        .insert_header(("X-Real-Origin", "https://live.example.com:8443"))
        .insert_header(("X-Real-Ua", "Lavf/60.3.100"))
}

#[actix_web::test]
async fn astra_and_alta_viewers_are_admitted_with_their_session_name() {
    let v = start("", VIEWERS).await;
    for request in [
        astra(&v, "token=good-viewer-token", "/play/a001/index.m3u8"),
        alta(&v, "token=good-viewer-token&x=1", "/play/a001/index.m3u8"),
    ] {
        let r = request.sent().await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers().get("x-session-name").unwrap(), "alice");
        assert!(
            r.headers().get("x-authgear-user-id").is_none(),
            "only X-Session-Name"
        );
    }
    v.stop().await;
}

#[actix_web::test]
async fn refused_viewers_get_403_never_401_and_the_promo_location() {
    let v = start("", VIEWERS).await;
    // no token, a wrong token, the token of another channel
    for query in ["x=1", "token=nope-nope-nope", "token=other-viewer-token"] {
        let r = astra(&v, query, "/play/a001/index.m3u8").sent().await;
        assert_eq!(r.status(), 403, "{query}");
        assert!(r.headers().get("www-authenticate").is_none());
        assert_eq!(
            r.headers().get("x-location").unwrap(),
            "http://promo.example.com/play/promo/index.m3u8",
            "{query}"
        );
        assert!(r.headers().get("x-session-name").is_none());
    }
    // another channel's viewer on their own channel: admitted
    let r = astra(&v, "token=other-viewer-token", "/play/b002/index.m3u8")
        .sent()
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers().get("x-session-name").unwrap(), "bob");
    // a refusal on a route without a promo: a bare 403
    let r = astra(&v, "token=nope-nope-nope", "/play/b002/index.m3u8")
        .sent()
        .await;
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("x-location").is_none());
    v.stop().await;
}

#[actix_web::test]
async fn an_unreachable_backend_is_a_403_for_astra_never_a_5xx() {
    let dead = format!("http://127.0.0.1:{}/check", free_port());
    for (on_error, expected) in [("deny", 403), ("allow", 200)] {
        let body = format!(
            "[authorizers.tv]\ntype = \"http\"\nprotocol = \"status\"\nurls = [\"{dead}\"]\nforward_query = true\n[default_route]\non_error = \"{on_error}\"\n"
        );
        let v = start("", &body).await;
        let r = astra(&v, "token=123", "/play/a001/index.m3u8").sent().await;
        assert_eq!(r.status(), expected, "on_error = {on_error}");
        v.stop().await;
    }
}

#[actix_web::test]
async fn the_channel_and_session_reach_an_http_backend_as_astra_sent_them() {
    let backend = fake_backend(Reply::status(200).header("X-Session-Name", "from-backend")).await;
    let body = format!(
        "[authorizers.tv]\ntype = \"http\"\nprotocol = \"status\"\nurls = [\"{}\"]\nforward_query = true\n",
        backend.url("/check")
    );
    let v = start("", &body).await;
    let r = astra(&v, "token=123", "/live/stream.m3u8").sent().await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers().get("x-session-name").unwrap(), "from-backend");
    let seen = backend.received();
    let request = &seen[0];
    assert!(request.uri.ends_with("?token=123"), "{}", request.uri);
    assert_eq!(
        request.header("x-channel-id"),
        Some("a001"),
        "the streamer's channel"
    );
    assert_eq!(
        request.header("x-session-id"),
        Some("1234"),
        "the streamer's session"
    );
    assert_eq!(request.header("x-real-ip"), Some("203.0.113.7"));
    assert_eq!(request.header("x-real-path"), Some("/live/stream.m3u8"));
    assert_eq!(request.header("x-real-host"), Some("live.example.com"));
    v.stop().await;
    backend.stop().await;
}

#[actix_web::test]
async fn cesbo_requests_are_refused_from_untrusted_peers_and_when_hosts_disagree() {
    let v = start("trusted_proxies = [\"10.0.0.0/8\"]", VIEWERS).await;
    let r = astra(&v, "token=good-viewer-token", "/play/a001/index.m3u8")
        .sent()
        .await;
    assert_eq!(r.status(), 403, "127.0.0.1 is not a trusted streamer here");
    v.stop().await;
    let v = start("", VIEWERS).await;
    let r = astra(&v, "token=good-viewer-token", "/play/a001/index.m3u8")
        .insert_header(("X-Real-Origin", "https://evil.example.com"))
        .sent()
        .await;
    assert_eq!(r.status(), 403, "X-Real-Host and X-Real-Origin disagree");
    let r = astra(&v, "token=good-viewer-token", "/play/a001/index.m3u8")
        .append_header(("X-Channel-ID", "b002"))
        .sent()
        .await;
    assert_eq!(r.status(), 403, "a duplicated channel header is ambiguous");
    v.stop().await;
}
