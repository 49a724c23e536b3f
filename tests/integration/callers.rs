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

fn access(user: &str, topic: &str, action: &str) -> String {
    serde_json::json!({
        "username": user, "clientid": format!("c-{user}"), "peerhost": "10.1.2.3",
        "topic": topic, "action": action, "qos": "1", "retain": "false", "mountpoint": ""
    })
    .to_string()
}

#[actix_web::test]
async fn emqx_authorization_follows_the_topic_rules() {
    let v = start("", BROKER).await;
    for (user, topic, action, expected) in [
        ("alice", "sensors/alice/temp", "publish", "allow"),
        ("alice", "sensors/alice/+", "subscribe", "allow"),
        ("alice", "sensors/bob/temp", "publish", "deny"),
        ("alice", "sensors/+/temp", "subscribe", "deny"),
        ("#", "sensors/#", "subscribe", "deny"),
        ("alice", "cmd/restart", "publish", "deny"),
        ("alice", "$SYS/brokers", "subscribe", "deny"),
    ] {
        let body = access(user, topic, action);
        assert_eq!(
            emqx_result(emqx_post(&v, &body), body.clone()).await,
            expected,
            "{user} {action} {topic}"
        );
    }
    v.stop().await;
}

#[actix_web::test]
async fn emqx_tokens_bring_roles_and_must_name_the_username() {
    let v = start("", BROKER).await;
    let with_token = |user: &str| {
        let mut value: serde_json::Value =
            serde_json::from_str(&access(user, "cmd/restart", "publish")).unwrap();
        value["password"] = "alice-device-token".into();
        value.to_string()
    };
    let body = with_token("alice");
    assert_eq!(
        emqx_result(emqx_post(&v, &body), body.clone()).await,
        "allow",
        "an operator's token"
    );
    let body = with_token("mallory");
    assert_eq!(
        emqx_result(emqx_post(&v, &body), body.clone()).await,
        "deny",
        "alice's token, mallory's login"
    );
    // the same access asked again (EMQX retries) gets the same answer; another topic
    // never shares it
    let body = access("alice", "sensors/alice/t", "publish");
    assert_eq!(
        emqx_result(emqx_post(&v, &body), body.clone()).await,
        "allow"
    );
    let other = access("alice", "sensors/bob/t", "publish");
    assert_eq!(
        emqx_result(emqx_post(&v, &other), other.clone()).await,
        "deny"
    );
    assert_eq!(
        emqx_result(emqx_post(&v, &body), body.clone()).await,
        "allow"
    );
    v.stop().await;
}

#[actix_web::test]
async fn emqx_get_form_and_emqx4_requests_read_the_same_facts() {
    let v = start("", BROKER).await;
    // GET: the body map as query parameters; %2B is a plus, never a space
    let mut r = client()
        .get(v.url("/_resolver/emqx?username=alice&clientid=c1&topic=sensors%2Falice%2Fa%2Bb&action=publish"))
        .sent()
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.body().await.unwrap(), r#"{"result": "allow"}"#.as_bytes());
    // a form body
    let form = "username=alice&clientid=c1&topic=sensors%2Falice%2Fx&action=subscribe";
    let mut r = client()
        .post(v.url("/_resolver/emqx"))
        .insert_header(("content-type", "application/x-www-form-urlencoded"))
        .send_body(form)
        .await
        .expect("send");
    assert_eq!(r.body().await.unwrap(), r#"{"result": "allow"}"#.as_bytes());
    // EMQX 4: access 1 is subscribe, 2 is publish
    for (access_code, topic, expected) in [
        ("2", "sensors%2Falice%2Fx", "allow"),
        ("1", "cmd%2Fx", "deny"),
    ] {
        let mut r = client()
            .get(v.url(&format!(
                "/_resolver/emqx?username=alice&clientid=c1&topic={topic}&access={access_code}"
            )))
            .sent()
            .await;
        let text = String::from_utf8(r.body().await.unwrap().to_vec()).unwrap();
        assert!(text.contains(expected), "access {access_code}: {text}");
    }
    v.stop().await;
}

#[actix_web::test]
async fn malformed_emqx_requests_are_denied_never_4xx() {
    let v = start("", BROKER).await;
    let big = format!(
        "{{\"username\":\"alice\",\"topic\":\"sensors/alice/x\",\"action\":\"publish\",\"pad\":\"{}\"}}",
        "x".repeat(70 * 1024)
    );
    for body in [
        access("", "sensors//x", "publish"), // an unresolved ${username}
        access("alice", "", "publish"),      // no topic
        access("alice", "sensors/alice/x", "delete"), // no such action
        "{\"username\": \"alice\", \"topic\": [1]}".to_string(),
        "not json".to_string(),
        big,
    ] {
        assert_eq!(
            emqx_result(emqx_post(&v, &body), body.clone()).await,
            "deny",
            "{}",
            &body[..body.len().min(60)]
        );
    }
    // a field sent twice is ambiguous
    let mut r = client()
        .get(v.url("/_resolver/emqx?username=alice&topic=sensors%2Fbob%2Fx&topic=sensors%2Falice%2Fx&action=publish"))
        .sent()
        .await;
    assert_eq!(r.body().await.unwrap(), r#"{"result": "deny"}"#.as_bytes());
    v.stop().await;
    // an untrusted peer gets a deny, and its body is never read
    let v = start("trusted_proxies = [\"10.0.0.0/8\"]", BROKER).await;
    let body = access("alice", "sensors/alice/x", "publish");
    assert_eq!(
        emqx_result(emqx_post(&v, &body), body.clone()).await,
        "deny"
    );
    v.stop().await;
}

#[actix_web::test]
async fn a_slow_emqx_body_is_denied_at_the_deadline() {
    let (v, clock) = start_with_clock("", BROKER).await;
    let addr = v.addr;
    let answer = actix_web::rt::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(std::time::Duration::from_millis(50)))
            .expect("timeout");
        s.write_all(b"POST /_resolver/emqx HTTP/1.1\r\nHost: v\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"user").expect("write");
        let mut buf = [0u8; 1024];
        // the 5 s body deadline passes on verdict's clock, not while this waits
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            clock.advance(std::time::Duration::from_secs(5));
            match s.read(&mut buf) {
                Ok(n) if n > 0 => return String::from_utf8_lossy(&buf[..n]).to_string(),
                _ => assert!(std::time::Instant::now() < deadline, "no answer"),
            }
        }
    })
    .await
    .expect("join");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(r#"{"result": "deny"}"#), "{answer}");
    v.stop().await;
}

#[actix_web::test]
async fn pipelined_emqx_requests_are_answered_in_order() {
    let v = start("", BROKER).await;
    let mut request = Vec::new();
    for topic in ["sensors/alice/1", "sensors/bob/2", "sensors/alice/3"] {
        let body = access("alice", topic, "publish");
        request.extend_from_slice(
            format!("POST /_resolver/emqx HTTP/1.1\r\nHost: v\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).as_bytes(),
        );
    }
    let (bytes, _) = raw(v.addr, &request, std::time::Duration::from_secs(2));
    let text = String::from_utf8_lossy(&bytes);
    let results: Vec<&str> = text
        .match_indices("\"result\": \"")
        .map(|(i, _)| &text[i + 11..i + 15])
        .collect();
    assert_eq!(results, ["allo", "deny", "allo"], "{text}");
    v.stop().await;
}

async fn mqtt_status(v: &Verdict, check: &str, body: serde_json::Value) -> u16 {
    client()
        .post(v.url(&format!("/_resolver/mqtt/{check}")))
        .send_json(&body)
        .await
        .expect("send")
        .status()
        .as_u16()
}

#[actix_web::test]
async fn the_broker_contract_checks_logins_superusers_and_acls() {
    let v = start("", BROKER_BACKEND).await;
    let login = |user: &str, password: &str| serde_json::json!({"username": user, "password": password, "client_id": "c-1"});
    assert_eq!(
        mqtt_status(&v, "user", login("alice", "alice-device-token")).await,
        200
    );
    assert_eq!(
        mqtt_status(&v, "user", login("alice", "wrong-token-xyz")).await,
        403
    );
    assert_eq!(
        mqtt_status(&v, "user", login("mallory", "alice-device-token")).await,
        403,
        "the token names alice"
    );
    assert_eq!(
        mqtt_status(&v, "user", login("", "alice-device-token")).await,
        403
    );
    assert_eq!(
        mqtt_status(&v, "superuser", serde_json::json!({"username": "alice"})).await,
        403
    );
    let acl = |topic: &str, acc: u8| serde_json::json!({"username": "alice", "clientid": "c-1", "topic": topic, "acc": acc});
    for (topic, acc, expected) in [
        ("sensors/alice/t", 2, 200),
        ("sensors/alice/t", 1, 200),
        ("sensors/alice/+", 4, 200),
        ("sensors/alice/t", 3, 200),
        ("sensors/bob/t", 2, 403),
        ("sensors/+/t", 4, 403),
        ("sensors/alice/t", 9, 403),
    ] {
        assert_eq!(
            mqtt_status(&v, "acl", acl(topic, acc)).await,
            expected,
            "{topic} acc {acc}"
        );
    }
    // GET with the query, as mosquitto-go-auth can send it
    let r =
        client()
            .get(v.url(
                "/_resolver/mqtt/acl?username=alice&clientid=c-1&topic=sensors%2Falice%2Fx&acc=2",
            ))
            .status()
            .await;
    assert_eq!(r, 200);
    v.stop().await;
    // the JSON answer mode: always 200, {"ok": …}
    let v = start(
        "",
        &format!("{BROKER_BACKEND}\n[mqtt]\nanswer = \"json\"\n"),
    )
    .await;
    for (body, expected) in [
        (login("alice", "alice-device-token"), r#"{"ok": true}"#),
        (login("alice", "nope-nope-nope"), r#"{"ok": false}"#),
    ] {
        let mut r = client()
            .post(v.url("/_resolver/mqtt/user"))
            .send_json(&body)
            .await
            .expect("send");
        assert_eq!(r.status(), 200);
        assert_eq!(r.body().await.unwrap(), expected.as_bytes());
    }
    v.stop().await;
}

#[actix_web::test]
async fn icecast_listener_requests_are_answered_as_icecast_reads_them() {
    let v = start("", LISTENERS).await;
    let form = |fields: &str| {
        client()
            .post(v.url("/_resolver/icecast"))
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .send_body(fields.to_string())
    };
    let add = "action=listener_add&server=radio.example.com&port=8000&client=42&mount=%2flive%2eogg%3ftoken%3dgood-listener-token&user=&pass=&ip=203.0.113.7&agent=VLC";
    let r = form(add).await.expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers().get("icecast-auth-user").unwrap(), "1");
    // Basic credentials arrive as user/pass
    let basic = "action=listener_add&server=radio.example.com&port=8000&client=43&mount=%2flive%2eogg&user=l-1&pass=good-listener-token&ip=203.0.113.8&agent=VLC";
    let r = form(basic).await.expect("send");
    assert_eq!(r.headers().get("icecast-auth-user").unwrap(), "1");
    let bad = "action=listener_add&server=radio.example.com&port=8000&client=44&mount=%2flive%2eogg%3ftoken%3dnope-nope&user=&pass=&ip=203.0.113.9&agent=VLC";
    let r = form(bad).await.expect("send");
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("icecast-auth-user").is_none());
    // a notification is acknowledged, and admits nobody
    let r = form(
        "action=listener_remove&server=radio.example.com&port=8000&client=42&mount=%2flive%2eogg",
    )
    .await
    .expect("send");
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("icecast-auth-user").is_none());
    v.stop().await;
}

#[actix_web::test]
async fn emqx_authentication_checks_the_password_and_says_when_it_expires() {
    let body = format!(
        "{}{}\n[[route]]\nname = \"logins\"\ndialects = [\"emqx-authn\"]\naccess = \"authenticated\"\n",
        jwt_hs("").replace(
            "token_sources = [\"bearer\", \"cookie:sess\"]",
            "token_sources = [\"query:password\"]"
        ),
        BROKER.split("[[route]]").next().unwrap_or_default()
    );
    let v = start("", &body).await;
    let login = |user: &str, password: &str| {
        serde_json::json!({"username": user, "password": password, "clientid": "c-1", "peerhost": "10.1.2.3"}).to_string()
    };
    let claims = serde_json::json!({"sub": "alice", "iss": "https://idp.test", "aud": "api",
        "exp": now() + 600, "roles": ["operator", "superuser"]});
    let token = hs_token(claims);
    let answer = |body: String| {
        let v = &v;
        async move {
            let mut r = client()
                .post(v.url("/_resolver/emqx/authn"))
                .insert_header(("content-type", "application/json"))
                .send_body(body)
                .await
                .expect("send");
            assert_eq!(r.status(), 200);
            serde_json::from_slice::<serde_json::Value>(&r.body().await.unwrap()).unwrap()
        }
    };
    let allowed = answer(login("alice", &token)).await;
    assert_eq!(allowed["result"], "allow", "{allowed}");
    assert_eq!(allowed["is_superuser"], true);
    assert_eq!(allowed["client_attrs"]["roles"], "operator,superuser");
    let expire_at = allowed["expire_at"].as_u64().expect("expire_at");
    assert!(
        expire_at > now() && expire_at <= now() + 600,
        "the token's exp"
    );
    assert_eq!(
        answer(login("mallory", &token)).await["result"],
        "deny",
        "alice's token"
    );
    assert_eq!(
        answer(login("alice", "not.a.token")).await["result"],
        "deny"
    );
    assert_eq!(
        answer(login("", &token)).await["result"],
        "deny",
        "an unresolved ${{username}}"
    );
    v.stop().await;
}

#[actix_web::test]
async fn emqx4_reads_the_same_request_and_answers_by_status() {
    let v = start(
        "",
        &BROKER.replace("dialects = [\"emqx\"]", "dialects = [\"emqx\", \"emqx4\"]"),
    )
    .await;
    for (topic, expected) in [("sensors%2Falice%2Fx", 200), ("sensors%2Fbob%2Fx", 403)] {
        let r = client()
            .get(v.url(&format!(
                "/_resolver/emqx4?username=alice&clientid=c1&topic={topic}&access=2"
            )))
            .status()
            .await;
        assert_eq!(r, expected, "{topic}");
    }
    v.stop().await;
}

#[actix_web::test]
async fn every_body_reading_dialect_refuses_oversized_duplicated_and_untrusted_requests() {
    // (endpoint, a well-formed form body, what "refused" looks like)
    let cases: [(&str, &str, &str); 3] = [
        (
            "/_resolver/emqx",
            "username=alice&clientid=c1&topic=sensors%2Falice%2Fx&action=publish",
            "deny",
        ),
        (
            "/_resolver/mqtt/acl",
            "username=alice&clientid=c1&topic=sensors%2Falice%2Fx&acc=2",
            "403",
        ),
        (
            "/_resolver/icecast",
            "action=listener_add&server=r&port=8000&mount=%2flive%2eogg%3ftoken%3dgood-listener-token&ip=203.0.113.7",
            "403",
        ),
    ];
    let config = format!(
        "{BROKER}\n{}",
        LISTENERS.replace(
            "[[route]]\nname = \"listeners\"",
            "[[route]]\nname = \"listeners\"\n"
        )
    );
    let config = config.replace("dialects = [\"emqx\"]", "dialects = [\"emqx\", \"mqtt\"]");
    let send = |v: &Verdict, path: &str, body: String| {
        client()
            .post(v.url(path))
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .send_body(body)
    };
    let refused = |status: u16, body: &[u8], expect: &str| match expect {
        "deny" => status == 200 && body == br#"{"result": "deny"}"#,
        _ => status == 403,
    };
    let v = start("", &config).await;
    for (path, good, expect) in cases {
        let mut ok = send(&v, path, good.to_string()).await.expect("send");
        let status = ok.status().as_u16();
        let body = ok.body().await.unwrap();
        assert!(
            !refused(status, &body, expect),
            "{path}: the good request is admitted"
        );
        let oversized = format!("{good}&pad={}", "x".repeat(70 * 1024));
        let duplicated = format!("{good}&username=mallory&action=listener_add");
        for (what, body) in [("oversized", oversized), ("duplicated", duplicated)] {
            let mut r = send(&v, path, body).await.expect("send");
            let status = r.status().as_u16();
            let body = r.body().await.unwrap();
            assert!(refused(status, &body, expect), "{path}: {what} ({status})");
        }
    }
    v.stop().await;
    let v = start("trusted_proxies = [\"10.0.0.0/8\"]", &config).await;
    for (path, good, expect) in cases {
        let mut r = send(&v, path, good.to_string()).await.expect("send");
        let status = r.status().as_u16();
        let body = r.body().await.unwrap();
        assert!(refused(status, &body, expect), "{path}: an untrusted peer");
    }
    v.stop().await;
}

#[actix_web::test]
async fn emqx_raw_utf8_in_the_request_line_is_read_as_sent() {
    // EMQX does not percent-encode non-ASCII in a GET's query
    let v = start(
        "",
        &BROKER.replace("sensors/${username}/#", "sensors/${username}/#\", \"télé/#"),
    )
    .await;
    let request = "GET /_resolver/emqx?username=alice&clientid=c1&topic=télé/ch1&action=publish HTTP/1.1\r\nHost: v\r\nConnection: close\r\n\r\n";
    let (bytes, _) = raw(
        v.addr,
        request.as_bytes(),
        std::time::Duration::from_secs(2),
    );
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains(r#"{"result": "allow"}"#), "{text}");
    v.stop().await;
}

/// A free channel is legitimate: a `public` route stays an allow for every caller.
#[actix_web::test]
async fn a_public_route_admits_every_caller() {
    let v = start("", "[default_route]\naccess = \"public\"\n").await;
    let r = astra(&v, "", "/play/free/index.m3u8").sent().await;
    assert_eq!(r.status(), 200);
    let r = client()
        .post(v.url("/_resolver/icecast"))
        .insert_header(("content-type", "application/x-www-form-urlencoded"))
        .send_body(
            "action=listener_add&server=r&port=8000&client=1&mount=%2ffree.ogg&ip=203.0.113.7",
        )
        .await
        .expect("send");
    assert_eq!(r.headers().get("icecast-auth-user").unwrap(), "1");
    v.stop().await;
}
