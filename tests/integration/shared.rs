//! `[shared]` without a store: what the settings accept, and how an instance whose store
//! is not there behaves (fails closed by default, says so on `/readyz`, serves local
//! decisions under `on_stale = "local"`), and `POST /revoke`'s guards. The store itself
//! is exercised against a real `redis-server` in the end-to-end fleet tests.

use std::process::Command;

use verdict::config::Config;

use crate::support::*;

/// A folder holding a store secret and an admin token, as files.
fn secrets() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("secret"),
        "hermetic-secret-0123456789abcdef0123456789\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("admin"),
        "hermetic-admin-token-0123456789abcdef",
    )
    .unwrap();
    dir
}

/// `[shared]` naming a loopback port nothing listens on.
fn unreachable_store(dir: &tempfile::TempDir, extra: &str) -> String {
    let port = free_port();
    let dir = dir.path().display();
    format!(
        "[shared]\nurls = [\"redis://127.0.0.1:{port}/0\"]\nsecret_file = \"{dir}/secret\"\nadmin_token_file = \"{dir}/admin\"\nstale_after = \"1s\"\n{extra}\n"
    )
}

fn load(body: &str) -> Result<Config, String> {
    Config::from_toml(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n{DEMO_KEYS}\n{body}"
    ))
    .map_err(|e| e.to_string())
}

#[test]
fn shared_settings_refuse_what_would_be_unsafe_or_unclear() {
    let dir = secrets();
    let path = dir.path().display().to_string();
    let ok = format!(
        "[shared]\nurls = [\"redis://127.0.0.1:6379/0\"]\nsecret_file = \"{path}/secret\"\n"
    );
    assert!(load(&ok).is_ok(), "{:?}", load(&ok).err());
    std::fs::write(dir.path().join("short"), "too short").unwrap();
    for (body, expected) in [
        (
            "[shared]\nurls = [\"redis://127.0.0.1:6379/0\"]\n".to_string(),
            "needs a secret",
        ),
        (
            "[shared]\nurls = [\"redis://127.0.0.1:6379/0\"]\nsecret = \"inline-secrets-are-never-read-0123456789\"\n"
                .to_string(),
            "unknown field",
        ),
        (
            format!(
                "[shared]\nurls = [\"redis://127.0.0.1:6379/0\"]\nsecret_file = \"{path}/short\"\n"
            ),
            "at least 32 bytes",
        ),
        (
            format!(
                "[shared]\nurls = [\"redis://127.0.0.1:6379/0\"]\nsecret_file = \"{path}/secret\"\nsecret_env = \"X\"\n"
            ),
            "not both",
        ),
        (
            format!(
                "[shared]\nurls = [\"http://127.0.0.1:6379/0\"]\nsecret_file = \"{path}/secret\"\n"
            ),
            "redis:// or rediss://",
        ),
        (
            format!(
                "[shared]\nurls = [\"redis://a:1\", \"redis://b:1\"]\nsecret_file = \"{path}/secret\"\n"
            ),
            "cluster",
        ),
        (
            format!(
                "[shared]\nurls = [\"redis://a:26379\"]\ntopology = \"sentinel\"\nsecret_file = \"{path}/secret\"\n"
            ),
            "sentinel_master",
        ),
        (
            format!(
                "[shared]\nurls = [\"redis://a:1\"]\nsecret_file = \"{path}/secret\"\ncache_authorizers = [\"nope\"]\n"
            ),
            "not an authorizer",
        ),
        (
            format!(
                "[shared]\nurls = [\"redis://a:1\"]\nsecret_file = \"{path}/secret\"\nadmin_token_file = \"{path}/secret\"\n"
            ),
            "must differ",
        ),
        (
            format!(
                "[shared]\nurls = [\"redis://a:1\"]\nsecret_file = \"{path}/secret\"\non_stale = \"open\"\n"
            ),
            "on_stale",
        ),
        (
            format!(
                "[shared]\nurls = [\"redis://a:1\"]\nsecret_file = \"{path}/secret\"\nkey_prefix = \"{{tag}}\"\n"
            ),
            "braces",
        ),
    ] {
        let error = load(&body).expect_err(&body);
        assert!(error.contains(expected), "{expected:?} not in {error:?}");
    }
}

#[actix_web::test]
async fn without_its_store_an_instance_refuses_self_contained_allows_and_says_why() {
    let dir = secrets();
    let backend = fake_backend(Reply::status(200).header("X-Session-Name", "alice")).await;
    let body = format!(
        "{DEMO_KEYS}\n{}\n{}\n[default_route]\nauthorizers = [\"keys\"]\n[[route]]\nname = \"video\"\npath_glob = \"/play/**\"\naccess = \"authenticated\"\nauthorizers = [\"backend\"]\n",
        http_authorizer(&[backend.url("/check")], "status", "forward_query = true"),
        unreachable_store(&dir, "")
    );
    let v = start("", &body).await;
    let r = auth_request(&v, "/x")
        .insert_header(("Authorization", "Bearer valid-token"))
        .sent()
        .await;
    assert_eq!(r.status(), 503, "a static token's allow cannot be checked");
    let (status, text) = get_text(format!("http://{}/readyz", v.admin)).await;
    assert_eq!(status, 503);
    assert!(text.contains("revocation feed stale"), "{text}");
    // an http backend is the authority of its own sessions: asked afresh
    assert_eq!(viewer_check(&v, "/play/a?token=t").status().await, 200);
    assert_eq!(backend.hits(), 1);
    let metrics = get_text(format!("http://{}/metrics", v.admin)).await.1;
    assert!(
        metrics.contains("verdict_revocation_feed_stale"),
        "{metrics}"
    );

    let local = start(
        "",
        &format!(
            "{DEMO_KEYS}\n{}",
            unreachable_store(&dir, "on_stale = \"local\"")
        ),
    )
    .await;
    let r = auth_request(&local, "/x")
        .insert_header(("Authorization", "Bearer valid-token"))
        .sent()
        .await;
    assert_eq!(
        r.status(),
        200,
        "on_stale = \"local\" serves local decisions"
    );
    let (status, text) = get_text(format!("http://{}/readyz", local.admin)).await;
    assert_eq!(status, 200);
    assert!(
        text.contains("degraded") && text.contains("stale"),
        "{text}"
    );
}

async fn get_text(url: String) -> (u16, String) {
    let mut r = client().get(url).sent().await;
    let body = r.body().await.expect("body");
    (
        r.status().as_u16(),
        String::from_utf8_lossy(&body).into_owned(),
    )
}

async fn post_revoke(v: &Verdict, bearer: Option<&str>, body: &str) -> (u16, String) {
    let mut request = client().post(format!("http://{}/revoke", v.admin));
    if let Some(bearer) = bearer {
        request = request.insert_header(("Authorization", format!("Bearer {bearer}")));
    }
    let mut r = request.send_body(body.to_string()).await.expect("send");
    let text = r.body().await.expect("body");
    (
        r.status().as_u16(),
        String::from_utf8_lossy(&text).into_owned(),
    )
}

#[actix_web::test]
async fn revoke_on_the_admin_listener_needs_shared_its_token_and_a_readable_request() {
    let alone = start("", DEMO_KEYS).await;
    let (status, text) = post_revoke(&alone, Some("x"), "{}").await;
    assert_eq!(status, 404);
    assert!(text.contains("admin_token"), "{text}");

    let dir = secrets();
    let v = start("", &format!("{DEMO_KEYS}\n{}", unreachable_store(&dir, ""))).await;
    let good = "hermetic-admin-token-0123456789abcdef";
    let subject = r#"{"kind":"subject","value":"u-123"}"#;
    assert_eq!(post_revoke(&v, None, subject).await.0, 401);
    assert_eq!(
        post_revoke(&v, Some("hermetic-admin-token"), subject)
            .await
            .0,
        401
    );
    let (status, text) = post_revoke(&v, Some(good), "not json").await;
    assert_eq!(status, 400, "{text}");
    let (status, text) = post_revoke(&v, Some(good), r#"{"kind":"token","value":"abc"}"#).await;
    assert_eq!(status, 400);
    assert!(text.contains("64"), "{text}");
    let (status, _) = post_revoke(&v, Some(good), &"x".repeat(20_000)).await;
    assert_eq!(status, 413);
    // the store is not there: not revoked, and it says so
    let (status, text) = post_revoke(&v, Some(good), subject).await;
    assert_eq!(status, 503);
    assert!(text.contains("not revoked"), "{text}");
    // and the decision port has no such endpoint
    let on_decisions = client()
        .post(v.url("/revoke"))
        .insert_header(("Authorization", format!("Bearer {good}")))
        .send_body(subject)
        .await
        .expect("send");
    assert_eq!(on_decisions.status(), 404);
}

#[test]
fn verdict_revoke_needs_a_configuration_with_shared_and_a_usable_request() {
    let binary = env!("CARGO_BIN_EXE_verdict");
    let out = Command::new(binary)
        .args(["revoke", "subject", "u"])
        .env_remove("VERDICT_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--config"));

    let dir = tempfile::tempdir().unwrap();
    let alone = dir.path().join("alone.toml");
    std::fs::write(
        &alone,
        format!("[server]\nlisten = \"127.0.0.1:0\"\n{DEMO_KEYS}"),
    )
    .unwrap();
    let out = Command::new(binary)
        .args(["revoke", "subject", "u", "--config"])
        .arg(&alone)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no [shared]"));

    let secrets = secrets();
    let fleet = dir.path().join("fleet.toml");
    std::fs::write(
        &fleet,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n{DEMO_KEYS}\n{}",
            unreachable_store(&secrets, "connect_timeout = \"200ms\"")
        ),
    )
    .unwrap();
    let out = Command::new(binary)
        .args(["revoke", "token", "not-a-digest", "--config"])
        .arg(&fleet)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("64"));
    let out = Command::new(binary)
        .args(["revoke", "subject", "u", "--config"])
        .arg(&fleet)
        .output()
        .unwrap();
    assert!(!out.status.success(), "no store: not revoked");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("subject \"u\""), "{stderr}");
    assert!(!stderr.contains("hermetic-secret"), "{stderr}");
}

/// A "store" on port 0 that answers every connection with `reply`, whatever is asked.
fn lying_store(reply: &'static [u8]) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                use std::io::{Read, Write};
                let mut buffer = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buffer) {
                    if n == 0 || stream.write_all(reply).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

#[actix_web::test]
async fn a_store_that_answers_garbage_or_errors_is_no_store_and_admits_no_one() {
    let dir = secrets();
    let backend = fake_backend(Reply::status(200).header("X-Session-Name", "alice")).await;
    for reply in [
        &b"\x00\xff\xfegarbage that is not RESP\r\n"[..],
        b"-ERR nothing works here\r\n",
        b"$5\r\nhello\r\n",
        b"+OK\r\n",
    ] {
        let port = lying_store(reply);
        let path = dir.path().display();
        let shared = format!(
            "[shared]\nurls = [\"redis://127.0.0.1:{port}/0\"]\nsecret_file = \"{path}/secret\"\nstale_after = \"1s\"\ncache_authorizers = [\"keys\", \"backend\"]\n"
        );
        let body = format!(
            "{DEMO_KEYS}\n{}\n{shared}\n[default_route]\nauthorizers = [\"keys\"]\n[[route]]\nname = \"video\"\npath_glob = \"/play/**\"\naccess = \"authenticated\"\nauthorizers = [\"backend\"]\n",
            http_authorizer(&[backend.url("/check")], "status", "forward_query = true")
        );
        let v = start("", &body).await;
        for _ in 0..3 {
            let r = auth_request(&v, "/x")
                .insert_header(("Authorization", "Bearer valid-token"))
                .sent()
                .await;
            assert_eq!(
                r.status(),
                503,
                "{reply:?}: a self-contained allow, unchecked"
            );
            let r = auth_request(&v, "/x")
                .insert_header(("Authorization", "Bearer not-a-token"))
                .sent()
                .await;
            assert_eq!(r.status(), 401, "{reply:?}");
            assert_eq!(
                viewer_check(&v, "/play/a?token=t").status().await,
                200,
                "{reply:?}: the backend decides"
            );
        }
        let (status, text) = get_text(format!("http://{}/readyz", v.admin)).await;
        assert_eq!(status, 503, "{reply:?}");
        assert!(text.contains("stale"), "{text}");
    }
}
