//! What the wire may look like: the proxy contract cases D1–D10 (named in a comment above
//! each test) and lenient input.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::support::*;

fn auth_request(extra: &str) -> String {
    format!(
        "GET /_resolver/auth-request HTTP/1.1\r\nHost: resolver\r\nX-Original-URI: /app\r\nX-Original-Method: GET\r\nAuthorization: Bearer valid-token\r\n{extra}\r\n"
    )
}

fn one_answer(bytes: &[u8]) -> (u16, Vec<(String, String)>) {
    let mut all = responses(bytes);
    assert_eq!(all.len(), 1, "{}", String::from_utf8_lossy(bytes));
    all.remove(0)
}

// Proxy contract case D1.
#[actix_web::test]
async fn expect_continue_without_a_body_is_answered() {
    let v = start("", DEMO_KEYS).await;
    let request =
        auth_request("Expect: 100-continue\r\nContent-Length: 10\r\nConnection: close\r\n");
    let (bytes, _) = raw(v.addr, request.as_bytes(), Duration::from_secs(3));
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("HTTP/1.1 200"), "{text}");
    v.stop().await;
}

// Proxy contract case D2.
#[actix_web::test]
async fn websocket_upgrade_headers_get_a_normal_answer() {
    let v = start("", DEMO_KEYS).await;
    let request = auth_request(
        "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
    );
    let (bytes, _) = raw(v.addr, request.as_bytes(), Duration::from_millis(800));
    let (status, headers) = one_answer(&bytes);
    assert_eq!(status, 200, "never 101 or 426");
    assert_eq!(header(&headers, "x-authgear-user-id"), Some("u-123"));
    assert!(header(&headers, "upgrade").is_none());
    v.stop().await;
}

// Proxy contract case D3.
#[actix_web::test]
async fn thousand_checks_share_one_keep_alive_connection() {
    let v = start("", DEMO_KEYS).await;
    let mut stream = TcpStream::connect(v.addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let request = auth_request("");
    let mut buf = vec![0u8; 8192];
    for i in 0..1000 {
        stream.write_all(request.as_bytes()).expect("write");
        let mut got = Vec::new();
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).expect("read");
            assert!(n > 0, "connection closed at request {i}");
            got.extend_from_slice(&buf[..n]);
        }
        assert!(got.starts_with(b"HTTP/1.1 200"), "request {i}");
    }
    v.stop().await;
}

// Proxy contract case D5.
#[actix_web::test]
async fn hundred_pipelined_requests_are_answered_in_order() {
    let v = start("", DEMO_KEYS).await;
    let mut batch = String::new();
    for i in 0..100 {
        let token = if i % 2 == 0 {
            "valid-token"
        } else {
            "wrong-token"
        };
        batch.push_str(&format!(
            "GET /_resolver/auth-request HTTP/1.1\r\nHost: resolver\r\nX-Original-URI: /app/{i}\r\nX-Original-Method: GET\r\nAuthorization: Bearer {token}\r\n\r\n"
        ));
    }
    let (bytes, _) = raw(v.addr, batch.as_bytes(), Duration::from_secs(2));
    let answers = responses(&bytes);
    assert_eq!(answers.len(), 100);
    for (i, (status, _)) in answers.iter().enumerate() {
        assert_eq!(*status, if i % 2 == 0 { 200 } else { 401 }, "answer {i}");
    }
    v.stop().await;
}

// Proxy contract case D8, D9, D10.
#[actix_web::test]
async fn answers_have_small_single_uncompressed_headers() {
    let v = start(
        "[headers]\nremote_user = true\nauth_request = true",
        DEMO_KEYS,
    )
    .await;
    let (bytes, _) = raw(
        v.addr,
        auth_request("Accept-Encoding: gzip\r\nConnection: close\r\n").as_bytes(),
        Duration::from_secs(3),
    );
    let head_len = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("head")
        + 4;
    assert!(head_len < 4096, "response head is {head_len} bytes");
    let (status, headers) = one_answer(&bytes);
    assert_eq!(status, 200);
    assert!(header(&headers, "content-encoding").is_none());
    for name in [
        "x-authgear-user-id",
        "x-session-name",
        "remote-user",
        "x-auth-request-user",
    ] {
        assert_eq!(
            headers.iter().filter(|(n, _)| n == name).count(),
            1,
            "{name}"
        );
    }
    assert_eq!(header(&headers, "remote-groups"), Some("reader"));
    v.stop().await;
}

#[actix_web::test]
async fn lenient_input_is_accepted() {
    let v = start("", DEMO_KEYS).await;
    // raw UTF-8 bytes in a header value (nginx's $request_uri is raw)
    let mut utf8 = b"GET /_resolver/auth-request HTTP/1.1\r\nHost: r\r\nX-Original-URI: /caf\xc3\xa9/../menu\r\nX-Original-Method: GET\r\nAuthorization: Bearer valid-token\r\nConnection: close\r\n\r\n".to_vec();
    let (bytes, _) = raw(v.addr, &utf8, Duration::from_secs(3));
    assert_eq!(one_answer(&bytes).0, 200);
    // more than 100 headers
    let many: String = (0..150).map(|i| format!("X-Filler-{i}: {i}\r\n")).collect();
    let (bytes, _) = raw(
        v.addr,
        auth_request(&format!("{many}Connection: close\r\n")).as_bytes(),
        Duration::from_secs(3),
    );
    assert_eq!(one_answer(&bytes).0, 200, "150 headers");
    // a 16 KiB cookie
    let cookie = format!(
        "Cookie: big={}\r\nConnection: close\r\n",
        "c".repeat(16 * 1024)
    );
    let (bytes, _) = raw(
        v.addr,
        auth_request(&cookie).as_bytes(),
        Duration::from_secs(3),
    );
    assert_eq!(one_answer(&bytes).0, 200, "16 KiB cookie");
    // an 8 KiB original URI, and an 8 KiB request-target (Envoy puts the path there)
    let long = format!("/{}", "p".repeat(8 * 1024));
    let request = format!(
        "GET /_resolver/auth-request HTTP/1.1\r\nHost: r\r\nX-Original-URI: {long}\r\nX-Original-Method: GET\r\nAuthorization: Bearer valid-token\r\nConnection: close\r\n\r\n"
    );
    let (bytes, _) = raw(v.addr, request.as_bytes(), Duration::from_secs(3));
    assert_eq!(one_answer(&bytes).0, 200, "8 KiB X-Original-URI");
    let request = format!(
        "GET /_resolver/ext-authz{long}?q=1 HTTP/1.1\r\nHost: app.example.com\r\nAuthorization: Bearer valid-token\r\nConnection: close\r\n\r\n"
    );
    let (bytes, _) = raw(v.addr, request.as_bytes(), Duration::from_secs(3));
    assert_eq!(one_answer(&bytes).0, 200, "8 KiB request-target");
    // HTTP/1.0 without Host
    let (bytes, _) = raw(v.addr, b"GET /_resolver/auth-request HTTP/1.0\r\nX-Original-URI: /a\r\nX-Original-Method: GET\r\nAuthorization: Bearer valid-token\r\n\r\n", Duration::from_secs(3));
    assert_eq!(one_answer(&bytes).0, 200, "HTTP/1.0");
    // Caddy copies the client's raw query, braces and all, onto our request line
    let request = b"GET /_resolver/forward-auth?q={a}|b^`c HTTP/1.1\r\nHost: app.example.com\r\nX-Forwarded-Method: GET\r\nX-Forwarded-Uri: /x?q={a}\r\nAuthorization: Bearer valid-token\r\nConnection: close\r\n\r\n";
    let (bytes, _) = raw(v.addr, request, Duration::from_secs(3));
    assert_eq!(
        one_answer(&bytes).0,
        200,
        "raw braces in the request-target"
    );
    // raw UTF-8 in the request-target (Envoy / EMQX style)
    utf8 = b"GET /_resolver/ext-authz/caf\xc3\xa9 HTTP/1.1\r\nHost: app.example.com\r\nAuthorization: Bearer valid-token\r\nConnection: close\r\n\r\n".to_vec();
    let (bytes, _) = raw(v.addr, &utf8, Duration::from_secs(3));
    assert_eq!(one_answer(&bytes).0, 200, "raw UTF-8 request-target");
    v.stop().await;
}

#[actix_web::test]
async fn malformed_http_is_refused_and_changes_nothing() {
    let v = start("", DEMO_KEYS).await;
    // a request line the parser refuses: a 403 (never a 400 nginx would turn into a 500),
    // and the connection closed
    let (bytes, closed) = raw(v.addr, b"GARBAGE\r\n\r\n", Duration::from_secs(2));
    let (status, _) = one_answer(&bytes);
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&bytes));
    assert!(closed, "the connection is closed after the refusal");
    let lookups_before = v.cache_misses().await;
    let r = client()
        .get(v.url("/_resolver/auth-request"))
        .insert_header(("X-Original-URI", "/a"))
        .insert_header(("X-Original-Method", "GET"))
        .insert_header(("Authorization", "Bearer valid-token"))
        .sent()
        .await;
    assert_eq!(r.status(), 200, "the service still answers");
    assert_eq!(v.cache_misses().await, lookups_before + 1);
    let unknown = client().get(v.url("/healthz")).sent().await;
    assert_eq!(unknown.status(), 404, "health lives on the admin port only");
    let health = client()
        .get(format!("http://{}/healthz", v.admin))
        .sent()
        .await;
    assert_eq!(health.status(), 200);
    let decision_on_admin = client()
        .get(format!("http://{}/_resolver/resolve", v.admin))
        .sent()
        .await;
    assert_eq!(decision_on_admin.status(), 404);
    v.stop().await;
}
