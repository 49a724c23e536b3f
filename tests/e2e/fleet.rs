//! A fleet on a real `redis-server`: several verdict instances sharing revocations, a
//! second cache level and one flight per backend key; the store down, killed, restarted
//! empty, slow, cut off, answering garbage or holding forged values; Cluster and
//! Sentinel. No test waits for time to pass: each polls for the state it expects, with a
//! deadline.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::store::{CUT, PASS, RedisServer, StoreProxy, connect, delay_ms, dump};
use crate::support::*;

/// A folder with the fleet's secret and admin token, as files.
struct Secrets {
    dir: tempfile::TempDir,
}

const ADMIN_TOKEN: &str = "admin-bearer-secret-of-at-least-32-bytes";

impl Secrets {
    fn new() -> Secrets {
        Self::with_secret("fleet-secret-0123456789abcdef0123456789abcdef")
    }

    fn with_secret(secret: &str) -> Secrets {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("secret"), format!("{secret}\n")).expect("secret");
        std::fs::write(dir.path().join("admin"), ADMIN_TOKEN).expect("admin");
        Secrets { dir }
    }

    /// A `[shared]` section for the store at `url`, with `extra` lines.
    fn shared(&self, url: &str, extra: &str) -> String {
        let dir = self.dir.path().display();
        format!(
            "[shared]\nurls = [\"{url}\"]\nsecret_file = \"{dir}/secret\"\nadmin_token_file = \"{dir}/admin\"\nstale_after = \"1s\"\n{extra}\n"
        )
    }
}

/// The static tokens, a JWT authorizer, and `[shared]`.
fn keys_and_jwt(shared: &str) -> String {
    format!("{DEMO_KEYS}\n{}\n{shared}", jwt_hs(""))
}

/// `/play/**` asks the backend; everything else the static tokens and the JWT.
const VIDEO_ROUTE: &str = "[default_route]\nauthorizers = [\"keys\", \"jwt\"]\n[[route]]\nname = \"video\"\npath_glob = \"/play/**\"\naccess = \"authenticated\"\nauthorizers = [\"backend\"]\n";

fn digest(token: &str) -> String {
    hex::encode(verdict::digest::sha256(token.as_bytes()))
}

async fn status_with(v: &Verdict, token: &str) -> u16 {
    auth_request(v, "/x")
        .insert_header(("Authorization", format!("Bearer {token}")))
        .status()
        .await
}

/// Polls until `check` holds, for at most 15 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    while !check().await {
        assert!(Instant::now() < deadline, "never: {what}");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn readyz(v: &Verdict) -> (u16, String) {
    let mut response = client()
        .get(format!("http://{}/readyz", v.admin))
        .sent()
        .await;
    let body = response.body().await.expect("body");
    (
        response.status().as_u16(),
        String::from_utf8_lossy(&body).to_string(),
    )
}

async fn until_ready(v: &Verdict) {
    eventually("the instance is ready", || async {
        readyz(v).await.0 == 200
    })
    .await;
}

async fn revoke(v: &Verdict, request: serde_json::Value) -> u16 {
    client()
        .post(format!("http://{}/revoke", v.admin))
        .insert_header(("Authorization", format!("Bearer {ADMIN_TOKEN}")))
        .send_body(request.to_string())
        .await
        .expect("send")
        .status()
        .as_u16()
}

fn jwt(sub: &str, jti: Option<&str>, iat: Option<u64>) -> String {
    let mut claims = user_claims(sub, &["reader"], 600);
    if let Some(jti) = jti {
        claims["jti"] = json!(jti);
    }
    if let Some(iat) = iat {
        claims["iat"] = json!(iat);
    }
    hs_token(claims)
}

#[actix_web::test]
async fn a_revocation_through_one_instance_is_refused_by_all_three_and_their_caches() {
    let Some(store) = RedisServer::start(&[]) else {
        return;
    };
    let secrets = Secrets::new();
    let body = keys_and_jwt(&secrets.shared(&store.url(), ""));
    let fleet = [
        start("", &body).await,
        start("", &body).await,
        start("", &body).await,
    ];
    let token = jwt("dave", Some("jti-dave-1"), Some(now()));
    for v in &fleet {
        until_ready(v).await;
        // each instance's own cache holds the allows
        for _ in 0..2 {
            assert_eq!(status_with(v, "valid-token").await, 200);
            assert_eq!(status_with(v, &token).await, 200);
        }
    }
    // by jti, on the admin listener of the first instance
    assert_eq!(
        revoke(&fleet[0], json!({"kind": "jti", "value": "jti-dave-1"})).await,
        200
    );
    // by the static token's digest, with the command an operator runs
    let config = secrets.dir.path().join("revoke.toml");
    std::fs::write(&config, &body).expect("config");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_verdict"))
        .args(["revoke", "token", &digest("valid-token"), "--config"])
        .arg(&config)
        .output()
        .expect("verdict revoke");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for v in &fleet {
        eventually("the jti is refused everywhere", || async {
            status_with(v, &token).await == 401
        })
        .await;
        eventually("the static token is refused everywhere", || async {
            status_with(v, "valid-token").await == 401
        })
        .await;
        assert_eq!(status_with(v, "admin-token").await, 200, "others unharmed");
        assert_eq!(
            status_with(v, &jwt("dave", Some("jti-dave-2"), Some(now()))).await,
            200
        );
        assert!(v.metric("verdict_revocations_applied_total").await >= 2);
    }
    // a revocation without the admin token is refused, and changes nothing
    let refused = client()
        .post(format!("http://{}/revoke", fleet[1].admin))
        .insert_header(("Authorization", "Bearer not-the-admin-token"))
        .send_body(json!({"kind": "subject", "value": "u-admin"}).to_string())
        .await
        .expect("send");
    assert_eq!(refused.status().as_u16(), 401);
    assert_eq!(status_with(&fleet[1], "admin-token").await, 200);
    // and never on the decision port
    let on_decisions = client()
        .post(fleet[1].url("/revoke"))
        .insert_header(("Authorization", format!("Bearer {ADMIN_TOKEN}")))
        .send_body(json!({"kind": "subject", "value": "u-admin"}).to_string())
        .await
        .expect("send");
    assert_eq!(on_decisions.status().as_u16(), 404);
}

#[actix_web::test]
async fn log_out_everywhere_refuses_older_tokens_of_the_subject_and_admits_newer_ones() {
    let Some(store) = RedisServer::start(&[]) else {
        return;
    };
    let secrets = Secrets::new();
    let body = keys_and_jwt(&secrets.shared(&store.url(), ""));
    let fleet = [
        start("", &body).await,
        start("", &body).await,
        start("", &body).await,
    ];
    let t = now();
    let old = jwt("erin", None, Some(t - 60));
    let no_iat = jwt("erin", None, None);
    let other_user = jwt("frank", None, Some(t - 60));
    for v in &fleet {
        until_ready(v).await;
        assert_eq!(status_with(v, &old).await, 200);
        assert_eq!(status_with(v, &no_iat).await, 200);
    }
    assert_eq!(
        revoke(
            &fleet[2],
            json!({"kind": "subject", "value": "erin", "before": t - 30})
        )
        .await,
        200
    );
    let newer = jwt("erin", None, Some(t - 10));
    for v in &fleet {
        eventually("older tokens of erin are refused", || async {
            status_with(v, &old).await == 401
        })
        .await;
        // a token that does not say when it was issued may be older: refused too
        assert_eq!(status_with(v, &no_iat).await, 401);
        assert_eq!(
            status_with(v, &newer).await,
            200,
            "issued after the log-out"
        );
        assert_eq!(status_with(v, &other_user).await, 200, "another user");
    }
}

/// An `http` authorizer whose backend answers slowly, with its timeout above the wait.
fn slow_backend_authorizer(url: &str) -> String {
    format!(
        "[authorizers.backend]\ntype = \"http\"\nprotocol = \"status\"\nurls = [\"{url}\"]\nrequest_timeout = \"5s\"\nconnect_timeout = \"1s\"\nforward_query = true\ncache_key = [\"${{query.token}}\"]\n"
    )
}

#[actix_web::test]
async fn a_fleet_asks_the_backend_once_for_a_new_key() {
    let Some(store) = RedisServer::start(&[]) else {
        return;
    };
    let backend = fake_backend(
        Reply::status(200)
            .header("X-Session-Name", "grace")
            .delay(Duration::from_millis(300)),
    )
    .await;
    let secrets = Secrets::new();
    let body = format!(
        "{}\n{}",
        slow_backend_authorizer(&backend.url("/check")),
        secrets.shared(&store.url(), "flight_wait = \"5s\"")
    );
    let fleet = [
        start("", &body).await,
        start("", &body).await,
        start("", &body).await,
    ];
    for v in &fleet {
        until_ready(v).await;
    }
    let asks = (0..50).map(|i| {
        let v = &fleet[i % 3];
        async move {
            viewer_check(v, "/play/a/index.m3u8?token=new-key")
                .status()
                .await
        }
    });
    let statuses = futures_util::future::join_all(asks).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(backend.hits(), 1, "one backend call for the whole fleet");
    // the shared level answered the others' first look-ups
    let mut shared_hits = 0;
    for v in &fleet {
        shared_hits += v
            .metric("verdict_shared_cache_requests_total{result=\"hit\"}")
            .await;
    }
    assert!(
        shared_hits >= 1,
        "the others read the answer from the store"
    );
}

#[actix_web::test]
async fn with_the_store_down_at_start_self_contained_allows_fail_closed_until_the_feed_is_read() {
    let port = free_port();
    if crate::support::store::redis_binary().is_none() {
        return;
    }
    let backend = fake_backend(Reply::status(200).header("X-Session-Name", "heidi")).await;
    let secrets = Secrets::new();
    let url = format!("redis://127.0.0.1:{port}/0");
    let body = format!(
        "{}\n{}",
        keys_and_jwt(&secrets.shared(&url, "")),
        http_authorizer(&[backend.url("/check")], "status", "forward_query = true")
    );
    let closed = start("", &format!("{body}\n{VIDEO_ROUTE}")).await;
    let local = start(
        "",
        &keys_and_jwt(&secrets.shared(&url, "on_stale = \"local\"")),
    )
    .await;
    // never read the revocation log: a static token's allow cannot be checked
    assert_eq!(status_with(&closed, "valid-token").await, 503);
    let (status, text) = readyz(&closed).await;
    assert_eq!(status, 503);
    assert!(text.contains("revocation feed stale"), "{text}");
    // the backend is asked afresh: it knows its own sessions
    assert_eq!(viewer_check(&closed, "/play/x?token=t").status().await, 200);
    // on_stale = "local" serves, and says so without leaving the Service
    assert_eq!(status_with(&local, "valid-token").await, 200);
    let (status, text) = readyz(&local).await;
    assert_eq!(status, 200);
    assert!(text.contains("degraded"), "{text}");

    let _store = RedisServer::start_on(port, &[]).expect("redis");
    until_ready(&closed).await;
    eventually("the feed is read: allows again", || async {
        status_with(&closed, "valid-token").await == 200
    })
    .await;
    assert_eq!(
        closed
            .metric("verdict_revocation_feed_transitions_total{to=\"fresh\"}")
            .await,
        1
    );
}

#[actix_web::test]
async fn a_store_killed_under_load_and_restarted_empty_never_admits_a_revoked_token() {
    let Some(mut store) = RedisServer::start(&[]) else {
        return;
    };
    let secrets = Secrets::new();
    let body = keys_and_jwt(&secrets.shared(&store.url(), ""));
    // on clocks the test moves: the feed goes stale when the test says time has passed
    let (a, clock_a) = start_with_clock("", &body).await;
    let (b, clock_b) = start_with_clock("", &body).await;
    let (c, clock_c) = start_with_clock("", &body).await;
    let clocks = [clock_a, clock_b, clock_c];
    let fleet = Arc::new([a, b, c]);
    for v in fleet.iter() {
        until_ready(v).await;
        assert_eq!(status_with(v, "valid-token").await, 200);
    }
    assert_eq!(
        revoke(
            &fleet[0],
            json!({"kind": "token", "value": digest("valid-token")})
        )
        .await,
        200
    );
    for v in fleet.iter() {
        eventually("revoked everywhere", || async {
            status_with(v, "valid-token").await == 401
        })
        .await;
    }
    // load: the revoked token and a good one, on every instance, all along
    let wrong_allows = Arc::new(AtomicUsize::new(0));
    let statuses = Arc::new(std::sync::Mutex::new(Vec::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (fleet, wrong, statuses, stop) = (
            fleet.clone(),
            wrong_allows.clone(),
            statuses.clone(),
            stop.clone(),
        );
        actix_web::rt::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let v = &fleet[i % 3];
                if status_with(v, "valid-token").await == 200 {
                    wrong.fetch_add(1, Ordering::SeqCst);
                }
                let good = status_with(v, "admin-token").await;
                statuses.lock().unwrap().push(good);
                i += 1;
            }
        })
    };
    store.kill();
    // past stale_after (1 s) without a read
    for clock in &clocks {
        clock.advance(Duration::from_secs(2));
    }
    for v in fleet.iter() {
        eventually("stale is reported", || async {
            readyz(v).await.1.contains("revocation feed stale")
        })
        .await;
    }
    // closed by default: a static token's allow is not given while stale
    eventually("the good token is refused while stale", || async {
        statuses.lock().unwrap().last() == Some(&503)
    })
    .await;
    store.restart_empty();
    for v in fleet.iter() {
        until_ready(v).await;
    }
    eventually("allows again once the feed is read", || async {
        statuses.lock().unwrap().last() == Some(&200)
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    load.await.expect("load");
    assert_eq!(
        wrong_allows.load(Ordering::SeqCst),
        0,
        "a revoked token got in"
    );
    // the instances put the revocation back into the emptied store: a new instance
    // learns it there
    let late = start("", &body).await;
    until_ready(&late).await;
    assert_eq!(status_with(&late, "valid-token").await, 401);
    assert_eq!(status_with(&late, "admin-token").await, 200);
}

#[actix_web::test]
async fn a_slow_or_cut_off_store_only_slows_or_stales_one_instance_and_admits_no_one() {
    let Some(store) = RedisServer::start(&[]) else {
        return;
    };
    let proxy = StoreProxy::start(store.port);
    let backend = fake_backend(Reply::status(200).header("X-Session-Name", "ivan")).await;
    let secrets = Secrets::new();
    let authorizers = format!(
        "{DEMO_KEYS}\n{}\n{}\n{VIDEO_ROUTE}",
        jwt_hs(""),
        http_authorizer(
            &[backend.url("/check")],
            "status",
            "forward_query = true\ncache_key = [\"${query.token}\"]"
        )
    );
    // its clock moves only when the test says time has passed
    let (behind, behind_clock) = start_with_clock(
        "",
        &format!("{authorizers}\n{}", secrets.shared(&proxy.url(), "")),
    )
    .await;
    let direct = start(
        "",
        &format!("{authorizers}\n{}", secrets.shared(&store.url(), "")),
    )
    .await;
    until_ready(&behind).await;
    until_ready(&direct).await;

    // slow: store reads time out (50 ms); decisions go on without the shared level
    proxy.set(delay_ms(200));
    for i in 0..5 {
        assert_eq!(
            viewer_check(&behind, &format!("/play/x?token=slow-{i}"))
                .status()
                .await,
            200
        );
    }
    assert!(
        behind
            .metric("verdict_shared_store_errors_total{command=\"get\"}")
            .await
            > 0
    );

    // cut off: the instance behind the proxy goes stale; the other goes on
    proxy.set(CUT);
    behind_clock.advance(Duration::from_secs(2));
    eventually("the cut-off instance reports stale", || async {
        readyz(&behind).await.0 == 503
    })
    .await;
    assert_eq!(readyz(&direct).await.0, 200);
    assert_eq!(status_with(&behind, "valid-token").await, 503);
    assert_eq!(status_with(&direct, "valid-token").await, 200);
    assert_eq!(
        revoke(
            &direct,
            json!({"kind": "token", "value": digest("admin-token")})
        )
        .await,
        200
    );
    assert_eq!(status_with(&behind, "admin-token").await, 503);

    // healed: the feed reads again, from where it stopped
    proxy.set(PASS);
    until_ready(&behind).await;
    eventually("the revocation made meanwhile reaches it", || async {
        status_with(&behind, "admin-token").await == 401
    })
    .await;
    assert_eq!(status_with(&behind, "valid-token").await, 200);
}

#[actix_web::test]
async fn forged_moved_rekeyed_or_garbage_values_in_the_store_admit_no_one() {
    let Some(store) = RedisServer::start(&[]) else {
        return;
    };
    let backend = fake_backend(Reply::status(403)).await;
    let secrets = Secrets::new();
    let authorizer = http_authorizer(
        &[backend.url("/check")],
        "status",
        "forward_query = true\ncache_key = [\"${query.token}\"]",
    );
    let body = format!("{authorizer}\n{}", secrets.shared(&store.url(), ""));
    let writer = start("", &body).await;
    until_ready(&writer).await;
    let mut redis = store.connection();
    let keys = |redis: &mut redis::Connection| -> Vec<String> {
        let mut keys: Vec<String> = redis::cmd("KEYS")
            .arg("verdict:d:*")
            .query(redis)
            .expect("KEYS");
        keys.sort();
        keys
    };
    let written = |redis: &mut redis::Connection, before: &[String]| -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(new) = keys(redis).into_iter().find(|k| !before.contains(k)) {
                return new;
            }
            assert!(Instant::now() < deadline, "no shared decision written");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    // "bad" is denied by the backend; "good" allowed
    let before = keys(&mut redis);
    assert_eq!(viewer_check(&writer, "/p?token=bad").status().await, 403);
    let bad_key = written(&mut redis, &before);
    backend.push(Reply::status(200).header("X-Session-Name", "mallory"));
    let before = keys(&mut redis);
    assert_eq!(viewer_check(&writer, "/p?token=good").status().await, 200);
    let good_key = written(&mut redis, &before);
    let allow: Vec<u8> = redis::cmd("GET").arg(&good_key).query(&mut redis).unwrap();

    // a fleet under another secret, on the same store and prefix
    let rekeyed_secrets = Secrets::with_secret("another-fleet-secret-0123456789abcdef0123");
    let rekeyed = start(
        "",
        &format!("{authorizer}\n{}", rekeyed_secrets.shared(&store.url(), "")),
    )
    .await;
    until_ready(&rekeyed).await;
    backend.push(Reply::status(200).header("X-Session-Name", "mallory"));
    let before = keys(&mut redis);
    assert_eq!(viewer_check(&rekeyed, "/p?token=bad").status().await, 200);
    let rekeyed_key = written(&mut redis, &before);
    let rekeyed_allow: Vec<u8> = redis::cmd("GET")
        .arg(&rekeyed_key)
        .query(&mut redis)
        .unwrap();

    let mut edited = allow.clone();
    let text = String::from_utf8_lossy(&edited[32..]).replace("mallory", "root");
    edited.truncate(32);
    edited.extend_from_slice(text.as_bytes());
    let forgeries: Vec<(&str, Vec<u8>)> = vec![
        ("an allow moved from another key", allow.clone()),
        ("an allow sealed under another secret", rekeyed_allow),
        ("an allow edited after sealing", edited),
        ("garbage", b"\x00\xffnot a decision at all".to_vec()),
        (
            "an unsealed record",
            br#"{"x":99999999999999,"d":1,"v":{"a":{"u":"root"}}}"#.to_vec(),
        ),
        ("nothing", Vec::new()),
    ];
    for (what, value) in forgeries {
        let _: () = redis::cmd("SET")
            .arg(&bad_key)
            .arg(value)
            .arg("PX")
            .arg(60_000)
            .query(&mut redis)
            .unwrap();
        // a fresh instance: nothing in its own cache, so it reads the store
        let reader = start("", &body).await;
        until_ready(&reader).await;
        let hits = backend.hits();
        assert_eq!(
            viewer_check(&reader, "/p?token=bad").status().await,
            403,
            "{what} admitted someone"
        );
        assert_eq!(backend.hits(), hits + 1, "{what}: the backend decided");
        assert!(
            reader
                .metric("verdict_shared_cache_requests_total{result=\"rejected\"}")
                .await
                + reader
                    .metric("verdict_shared_cache_requests_total{result=\"miss\"}")
                    .await
                >= 1
        );
        reader.stop().await;
    }
    // a forged revocation entry is ignored: it cannot even deny
    let _: String = redis::cmd("XADD")
        .arg("verdict:revocations")
        .arg("*")
        .arg("e")
        .arg(r#"{"k":"subject","v":"u-123","b":99999999999999,"x":99999999999999,"t":1}"#)
        .arg("m")
        .arg("00".repeat(32))
        .query(&mut redis)
        .unwrap();
    let keys_instance = start(
        "",
        &format!("{DEMO_KEYS}\n{}", secrets.shared(&store.url(), "")),
    )
    .await;
    until_ready(&keys_instance).await;
    assert_eq!(status_with(&keys_instance, "valid-token").await, 200);
}

#[actix_web::test]
async fn credentials_never_reach_the_store_its_keys_or_a_log() {
    let Some(store) = RedisServer::start(&[]) else {
        return;
    };
    let backend = fake_backend(Reply::status(200).header("X-Session-Name", "judy")).await;
    let secrets = Secrets::new();
    let body = format!(
        "{}\n{}\n{VIDEO_ROUTE}",
        keys_and_jwt(&secrets.shared(
            &store.url(),
            "cache_authorizers = [\"keys\", \"jwt\", \"backend\"]"
        )),
        http_authorizer(
            &[backend.url("/check")],
            "status",
            "forward_query = true\n[authorizers.backend.headers]\nX-Token = \"${query.token}\""
        )
    );
    let v = start_logged("", &body).await;
    until_ready(&v).await;
    let token = jwt("judy", Some("jti-judy"), Some(now()));
    let backend_token = "backend-token-judy-0123456789";
    assert_eq!(status_with(&v, "valid-token").await, 200);
    assert_eq!(status_with(&v, &token).await, 200);
    assert_eq!(
        viewer_check(&v, &format!("/play/x?token={backend_token}"))
            .status()
            .await,
        200
    );
    assert_eq!(
        revoke(&v, json!({"kind": "jwt", "token": token})).await,
        200
    );
    eventually("the store holds the three decisions", || async {
        let mut redis = store.connection();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("verdict:d:*")
            .query(&mut redis)
            .unwrap();
        keys.len() >= 3
    })
    .await;
    let text = dump(&mut connect(store.port));
    let log = v.log_with("revoke: jti").await;
    let secret = std::fs::read_to_string(secrets.dir.path().join("secret")).unwrap();
    for (what, haystack) in [("the store", &text), ("the log", &log)] {
        for needle in [
            "valid-token",
            token.as_str(),
            backend_token,
            secret.trim(),
            ADMIN_TOKEN,
        ] {
            assert!(
                !haystack.contains(needle),
                "{what} holds a credential or secret: {needle}"
            );
        }
    }
    v.stop().await;
}

/// Three cluster nodes with every slot assigned, joined, and serving.
fn start_cluster() -> Option<Vec<RedisServer>> {
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(RedisServer::start(&[
            "--cluster-enabled",
            "yes",
            "--cluster-node-timeout",
            "2000",
        ])?);
    }
    let ranges = [(0, 5460), (5461, 10922), (10923, 16383)];
    for (node, (low, high)) in nodes.iter().zip(ranges) {
        let mut redis = node.connection();
        let _: () = redis::cmd("CLUSTER")
            .arg("ADDSLOTSRANGE")
            .arg(low)
            .arg(high)
            .query(&mut redis)
            .expect("ADDSLOTSRANGE");
    }
    let mut first = nodes[0].connection();
    for node in &nodes[1..] {
        let _: () = redis::cmd("CLUSTER")
            .arg("MEET")
            .arg("127.0.0.1")
            .arg(node.port)
            .query(&mut first)
            .expect("MEET");
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    for node in &nodes {
        let mut redis = node.connection();
        loop {
            let info: String = redis::cmd("CLUSTER").arg("INFO").query(&mut redis).unwrap();
            let known: String = redis::cmd("CLUSTER")
                .arg("NODES")
                .query(&mut redis)
                .unwrap();
            if info.contains("cluster_state:ok") && known.lines().count() == 3 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster never formed: {info}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Some(nodes)
}

#[actix_web::test]
async fn a_fleet_on_a_redis_cluster_shares_revocations_and_decisions() {
    let Some(nodes) = start_cluster() else {
        return;
    };
    let backend = fake_backend(Reply::status(200).header("X-Session-Name", "kim")).await;
    let secrets = Secrets::new();
    let urls: Vec<String> = nodes.iter().map(|n| format!("\"{}\"", n.url())).collect();
    let shared = secrets
        .shared(&nodes[0].url(), "topology = \"cluster\"")
        .replace(
            &format!("[\"{}\"]", nodes[0].url()),
            &format!("[{}]", urls.join(", ")),
        );
    let body = format!(
        "{}\n{}\n{VIDEO_ROUTE}",
        keys_and_jwt(&shared),
        http_authorizer(
            &[backend.url("/check")],
            "status",
            "forward_query = true\ncache_key = [\"${query.token}\"]"
        )
    );
    let fleet = [start("", &body).await, start("", &body).await];
    for v in &fleet {
        until_ready(v).await;
        assert_eq!(status_with(v, "valid-token").await, 200);
    }
    // decisions for many keys land on every node, and are shared
    for i in 0..12 {
        assert_eq!(
            viewer_check(&fleet[0], &format!("/play/x?token=k{i}"))
                .status()
                .await,
            200
        );
    }
    let asked = backend.hits();
    for i in 0..12 {
        let status = viewer_check(&fleet[1], &format!("/play/x?token=k{i}"))
            .status()
            .await;
        assert_eq!(status, 200);
    }
    assert!(
        backend.hits() < asked + 12,
        "the second instance read shared decisions from the cluster"
    );
    assert_eq!(
        revoke(
            &fleet[1],
            json!({"kind": "token", "value": digest("valid-token")})
        )
        .await,
        200
    );
    for v in &fleet {
        eventually("revoked through the cluster", || async {
            status_with(v, "valid-token").await == 401
        })
        .await;
    }
}

#[actix_web::test]
async fn a_fleet_behind_sentinel_follows_a_failover_under_load() {
    let Some(primary) = RedisServer::start(&[]) else {
        return;
    };
    let replica = RedisServer::start(&["--replicaof", "127.0.0.1", &primary.port.to_string()])
        .expect("replica");
    let sentinel_port = free_port();
    let sentinel_dir = tempfile::tempdir().unwrap();
    let sentinel_conf = sentinel_dir.path().join("sentinel.conf");
    std::fs::write(
        &sentinel_conf,
        format!(
            "port {sentinel_port}\nbind 127.0.0.1\ndir {}\nsentinel monitor verdict 127.0.0.1 {} 1\nsentinel down-after-milliseconds verdict 1000\nsentinel failover-timeout verdict 5000\n",
            sentinel_dir.path().display(),
            primary.port
        ),
    )
    .unwrap();
    let binary = crate::support::store::redis_binary().expect("redis-server");
    let _sentinel = KillOnDrop(
        std::process::Command::new(binary)
            .arg(&sentinel_conf)
            .arg("--sentinel")
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("sentinel"),
    );
    crate::support::store::wait_for_port(sentinel_port);
    // the replica has caught up before anything depends on it
    let mut replica_connection = replica.connection();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut replica_connection)
            .unwrap();
        if info.contains("master_link_status:up") {
            break;
        }
        assert!(Instant::now() < deadline, "the replica never synced");
        std::thread::sleep(Duration::from_millis(50));
    }
    let secrets = Secrets::new();
    let shared = secrets.shared(
        &format!("redis://127.0.0.1:{sentinel_port}/0"),
        "topology = \"sentinel\"\nsentinel_master = \"verdict\"",
    );
    let body = keys_and_jwt(&shared);
    let fleet = Arc::new([start("", &body).await, start("", &body).await]);
    for v in fleet.iter() {
        until_ready(v).await;
    }
    assert_eq!(
        revoke(
            &fleet[0],
            json!({"kind": "jti", "value": "before-failover"})
        )
        .await,
        200
    );
    let before = jwt("lee", Some("before-failover"), Some(now()));
    let after = jwt("lee", Some("after-failover"), Some(now()));
    for v in fleet.iter() {
        eventually("revoked before the failover", || async {
            status_with(v, &before).await == 401
        })
        .await;
    }
    let wrong = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (fleet, wrong, stop, before) =
            (fleet.clone(), wrong.clone(), stop.clone(), before.clone());
        actix_web::rt::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                if status_with(&fleet[i % 2], &before).await == 200 {
                    wrong.fetch_add(1, Ordering::SeqCst);
                }
                i += 1;
            }
        })
    };
    let mut sentinel = connect(sentinel_port);
    let _: () = redis::cmd("SENTINEL")
        .arg("FAILOVER")
        .arg("verdict")
        .query(&mut sentinel)
        .expect("SENTINEL FAILOVER");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, port): (String, String) = redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg("verdict")
            .query(&mut sentinel)
            .unwrap();
        if port == replica.port.to_string() {
            break;
        }
        assert!(Instant::now() < deadline, "no failover");
        std::thread::sleep(Duration::from_millis(50));
    }
    // a revocation after the failover is written to the new primary and reaches both
    eventually("a revocation is accepted after the failover", || async {
        revoke(&fleet[1], json!({"kind": "jti", "value": "after-failover"})).await == 200
    })
    .await;
    for v in fleet.iter() {
        eventually("revoked after the failover", || async {
            status_with(v, &after).await == 401
        })
        .await;
    }
    stop.store(true, Ordering::SeqCst);
    load.await.unwrap();
    assert_eq!(wrong.load(Ordering::SeqCst), 0, "a revoked token got in");
}

/// Rewrites a process instance's configuration file.
fn rewrite(v: &Verdict, edit: impl FnOnce(String) -> String) {
    let path = v.config_path();
    let text = std::fs::read_to_string(&path).expect("read config");
    std::fs::write(&path, edit(text)).expect("write config");
}

#[actix_web::test]
async fn a_reload_keeps_the_revocation_feed_reading_and_can_move_the_fleet_to_another_store() {
    let Some(first) = RedisServer::start(&[]) else {
        return;
    };
    let second = RedisServer::start(&[]).expect("redis");
    let secrets = Secrets::new();
    let on_first = keys_and_jwt(&secrets.shared(&first.url(), ""));
    let v = start_logged("", &on_first).await;
    until_ready(&v).await;
    let peer = start("", &on_first).await;
    until_ready(&peer).await;
    let token = |jti: &str| jwt("mia", Some(jti), Some(now()));

    // a reload that changes nothing in [shared]: the feed goes on reading
    v.signal("HUP");
    v.log_with("in force (generation 1").await;
    assert_eq!(
        revoke(&peer, json!({"kind": "jti", "value": "after-reload"})).await,
        200
    );
    eventually("revoked after a reload", || async {
        status_with(&v, &token("after-reload")).await == 401
    })
    .await;

    // a policy setting changes: the same store, no stale moment, the feed goes on
    rewrite(&v, |text| {
        text.replace(
            "stale_after = \"1s\"",
            "stale_after = \"1s\"\non_stale = \"local\"",
        )
    });
    v.signal("HUP");
    v.log_with("in force (generation 2").await;
    assert_eq!(readyz(&v).await.0, 200);
    assert_eq!(
        revoke(&peer, json!({"kind": "jti", "value": "after-policy"})).await,
        200
    );
    eventually("revoked after a policy change", || async {
        status_with(&v, &token("after-policy")).await == 401
    })
    .await;

    // another store: the revocations in force are kept, and the new store's log is read
    rewrite(&v, |text| text.replace(&first.url(), &second.url()));
    v.signal("HUP");
    v.log_with("in force (generation 3").await;
    let on_second = keys_and_jwt(&secrets.shared(&second.url(), ""));
    let other_peer = start("", &on_second).await;
    until_ready(&other_peer).await;
    until_ready(&v).await;
    assert_eq!(
        revoke(
            &other_peer,
            json!({"kind": "jti", "value": "on-the-second"})
        )
        .await,
        200
    );
    eventually("revoked through the second store", || async {
        status_with(&v, &token("on-the-second")).await == 401
    })
    .await;
    assert_eq!(status_with(&v, &token("after-reload")).await, 401, "kept");
    assert_eq!(status_with(&v, &token("fresh")).await, 200);
    v.stop().await;
}

/// A network namespace of the test's own, reached from the host through two veth pairs:
/// one carries the clients' requests, the other the store's traffic, so the store can be
/// cut off (the link down: packets dropped, nothing refused) while clients still reach
/// the instance. Removed when dropped.
struct Namespace {
    name: String,
    client_link: String,
    store_link: String,
    /// The host's and the namespace's addresses on the client link, then on the store link.
    client_host: String,
    client_inside: String,
    store_host: String,
}

fn ip(args: &[&str]) -> bool {
    std::process::Command::new("ip")
        .args(args)
        .status()
        .is_ok_and(|s| s.success())
}

impl Namespace {
    /// `None` when the skip was asked for and namespaces cannot be made here (not root,
    /// or no `ip`); otherwise a namespace, or a failed test.
    fn make() -> Option<Namespace> {
        require_binary("ip", &["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip"])?;
        let n = std::process::id() % 200 + 20;
        let store_inside = format!("10.232.{n}.2");
        let name = format!("verdict-part-{}", std::process::id());
        let namespace = Namespace {
            client_link: format!("vdc{n}"),
            store_link: format!("vds{n}"),
            client_host: format!("10.231.{n}.1"),
            client_inside: format!("10.231.{n}.2"),
            store_host: format!("10.232.{n}.1"),
            name,
        };
        let inside = |link: &str| format!("{link}i");
        let ok = ip(&["netns", "add", &namespace.name])
            && ip(&[
                "netns",
                "exec",
                &namespace.name,
                "ip",
                "link",
                "set",
                "lo",
                "up",
            ])
            && [
                (
                    &namespace.client_link,
                    &namespace.client_host,
                    &namespace.client_inside,
                ),
                (&namespace.store_link, &namespace.store_host, &store_inside),
            ]
            .iter()
            .all(|(link, host, there)| {
                ip(&[
                    "link",
                    "add",
                    link,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    &inside(link),
                ]) && ip(&["link", "set", &inside(link), "netns", &namespace.name])
                    && ip(&["addr", "add", &format!("{host}/30"), "dev", link])
                    && ip(&["link", "set", link, "up"])
                    && ip(&[
                        "netns",
                        "exec",
                        &namespace.name,
                        "ip",
                        "addr",
                        "add",
                        &format!("{there}/30"),
                        "dev",
                        &inside(link),
                    ])
                    && ip(&[
                        "netns",
                        "exec",
                        &namespace.name,
                        "ip",
                        "link",
                        "set",
                        &inside(link),
                        "up",
                    ])
            });
        if !ok {
            if std::env::var(SKIP_VARIABLE).is_ok_and(|v| v == "skip") {
                eprintln!("SKIPPED ({SKIP_VARIABLE}=skip): cannot make network namespaces here");
                return None;
            }
            panic!(
                "cannot make a network namespace (root and iproute2 are needed), or set {SKIP_VARIABLE}=skip"
            );
        }
        Some(namespace)
    }

    fn store_link(&self, up: bool) {
        assert!(ip(&[
            "link",
            "set",
            &self.store_link,
            if up { "up" } else { "down" }
        ]));
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        ip(&["link", "del", &self.client_link]);
        ip(&["link", "del", &self.store_link]);
        ip(&["netns", "del", &self.name]);
    }
}

#[actix_web::test]
async fn an_instance_partitioned_from_the_store_goes_stale_alone_and_catches_up_when_healed() {
    let Some(namespace) = Namespace::make() else {
        return;
    };
    // reached from outside loopback: protected by a password, as a store should be
    let password = "store-password-of-the-partition-test";
    let Some(store) = RedisServer::start(&[
        "--bind",
        "127.0.0.1",
        &namespace.store_host,
        "--requirepass",
        password,
    ]) else {
        return;
    };
    let secrets = Secrets::new();
    // the partitioned instance: the real binary, inside the namespace
    let dir = tempfile::tempdir().unwrap();
    let (port, admin) = (free_port(), free_port());
    let inside_url = format!(
        "redis://:{password}@{}:{}/0",
        namespace.store_host, store.port
    );
    let config = dir.path().join("verdict.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"{0}:{port}\"\nadmin_listen = \"{0}:{admin}\"\nworkers = 1\ntrusted_proxies = [\"{1}/32\"]\n{2}",
            namespace.client_inside,
            namespace.client_host,
            keys_and_jwt(&secrets.shared(&inside_url, ""))
        ),
    )
    .unwrap();
    let log = dir.path().join("verdict.log");
    let _partitioned = KillOnDrop(
        std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &namespace.name,
                env!("CARGO_BIN_EXE_verdict"),
                "--config",
            ])
            .arg(&config)
            .env("RUST_LOG", "info")
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("verdict in the namespace"),
    );
    let inside = format!("{}:{port}", namespace.client_inside);
    let inside_admin = format!("{}:{admin}", namespace.client_inside);
    let check = |token: String| {
        let url = format!("http://{inside}/_resolver/auth-request");
        async move {
            client()
                .get(url)
                .insert_header(("X-Original-URI", "/x"))
                .insert_header(("X-Original-Method", "GET"))
                .insert_header(("Authorization", format!("Bearer {token}")))
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }
    };
    let ready = || {
        let url = format!("http://{inside_admin}/readyz");
        async move {
            client()
                .get(url)
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while ready().await != 200 {
        assert!(
            Instant::now() < deadline,
            "the partitioned instance never became ready; its log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    let outside_url = format!("redis://:{password}@127.0.0.1:{}/0", store.port);
    let outside = start("", &keys_and_jwt(&secrets.shared(&outside_url, ""))).await;
    until_ready(&outside).await;
    assert_eq!(check("admin-token".into()).await, 200);

    namespace.store_link(false);
    assert_eq!(
        revoke(
            &outside,
            json!({"kind": "token", "value": digest("admin-token")})
        )
        .await,
        200
    );
    eventually("the partitioned instance reports stale", || async {
        ready().await == 503
    })
    .await;
    // it admits no one it cannot check, the revoked token least of all
    assert_eq!(check("admin-token".into()).await, 503);
    assert_eq!(check("valid-token".into()).await, 503);
    // the others go on
    assert_eq!(readyz(&outside).await.0, 200);
    assert_eq!(status_with(&outside, "admin-token").await, 401);
    assert_eq!(status_with(&outside, "valid-token").await, 200);

    namespace.store_link(true);
    eventually("healed: the feed is read again", || async {
        ready().await == 200
    })
    .await;
    eventually("the revocation made meanwhile reaches it", || async {
        check("admin-token".into()).await == 401
    })
    .await;
    assert_eq!(check("valid-token".into()).await, 200);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("revocation feed stale"), "{text}");
    assert!(text.contains("revocation feed read"), "{text}");
    assert!(
        !text.contains(password),
        "the store's password in the log:\n{text}"
    );
}

#[actix_web::test]
async fn failed_passwords_on_one_instance_lock_the_user_out_on_another() {
    let Some(store) = RedisServer::start(&[]) else {
        return;
    };
    let secrets = Secrets::new();
    let hash = bcrypt::hash("correct horse", 4).unwrap();
    let body = format!(
        "[authorizers.users]\ntype = \"basic\"\nmax_failures = 3\nfailure_window = \"10m\"\nusers = [{{ username = \"alice\", hash = \"{hash}\" }}]\n{}",
        secrets.shared(&store.url(), "")
    );
    let a = start("", &body).await;
    let b = start("", &body).await;
    until_ready(&a).await;
    until_ready(&b).await;
    use base64::Engine as _;
    let basic = |password: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("alice:{password}"))
        )
    };
    for n in 0..3 {
        let status = auth_request(&a, "/x")
            .insert_header(("Authorization", basic(&format!("guess-{n}"))))
            .status()
            .await;
        assert_eq!(status, 401);
    }
    // the other instance has seen no failure itself; the fleet's count refuses
    let r = auth_request(&b, "/x")
        .insert_header(("Authorization", basic("correct horse")))
        .sent()
        .await;
    assert_eq!(r.status(), 401);
    assert!(
        r.headers().get("retry-after").is_some(),
        "locked across the fleet"
    );
    // the counts are keyed digests: no user name, password or address in the store
    let text = dump(&mut connect(store.port));
    for needle in ["alice", "guess-", "correct horse", "127.0.0"] {
        assert!(!text.contains(needle), "{needle} in the store");
    }
}
