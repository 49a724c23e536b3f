//! `basic` authorizers: `Authorization: Basic` against an htpasswd file; a verified
//! credential is kept by its digest, so its hash is computed once per TTL.

use base64::Engine as _;

use crate::support::*;

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

#[actix_web::test]
async fn an_htpasswd_user_is_checked_once_per_ttl_and_a_wrong_password_refused() {
    let dir = tempfile::tempdir().unwrap();
    let hash = bcrypt::hash("correct horse", 4).unwrap();
    std::fs::write(
        dir.path().join("users.htpasswd"),
        format!("# users\nalice:{hash}\n"),
    )
    .unwrap();
    let v = start(
        "",
        &format!(
            "[authorizers.users]\ntype = \"basic\"\nhtpasswd_file = \"{}/users.htpasswd\"\n",
            dir.path().display()
        ),
    )
    .await;
    let status = |auth: String| {
        let v = &v;
        async move {
            auth_request(v, "/x")
                .insert_header(("Authorization", auth))
                .status()
                .await
        }
    };
    let misses = v.cache_misses().await;
    for _ in 0..5 {
        assert_eq!(status(basic("alice", "correct horse")).await, 200);
    }
    assert_eq!(
        v.cache_misses().await,
        misses + 1,
        "one hash for five requests"
    );
    assert_eq!(status(basic("alice", "wrong")).await, 401);
    assert_eq!(status(basic("mallory", "correct horse")).await, 401);
    assert_eq!(status("Basic !!!not-base64".into()).await, 401);
    // a browser is asked for a password: the challenge offers Basic beside Bearer
    let r = auth_request(&v, "/x").sent().await;
    assert_eq!(r.status(), 401);
    let challenge = r
        .headers()
        .get("www-authenticate")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(challenge.contains("Basic realm="), "{challenge}");
    assert_eq!(status("Bearer alice:correct horse".into()).await, 401);
}

#[actix_web::test]
async fn a_lockout_holds_through_every_endpoint_and_says_when_to_retry() {
    let hash = bcrypt::hash("correct horse", 4).unwrap();
    let v = start(
        "",
        &format!(
            "[authorizers.users]\ntype = \"basic\"\nmax_failures = 3\nfailure_window = \"10m\"\nusers = [{{ username = \"alice\", hash = \"{hash}\" }}]\n"
        ),
    )
    .await;
    // guesses through nginx's endpoint
    for n in 0..3 {
        let status = auth_request(&v, "/x")
            .insert_header(("Authorization", basic("alice", &format!("guess-{n}"))))
            .status()
            .await;
        assert_eq!(status, 401);
    }
    // the right password through Traefik's endpoint is refused too, with Retry-After
    let r = client()
        .get(v.url("/_resolver/forward-auth"))
        .insert_header(("X-Forwarded-Method", "GET"))
        .insert_header(("X-Forwarded-Proto", "https"))
        .insert_header(("X-Forwarded-Host", "app.example.com"))
        .insert_header(("X-Forwarded-Uri", "/x"))
        .insert_header(("Authorization", basic("alice", "correct horse")))
        .sent()
        .await;
    assert_eq!(r.status(), 429, "forward-auth is no way around the lockout");
    let retry: u64 = r
        .headers()
        .get("retry-after")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 0 && retry <= 600);
    // nginx's endpoint answers 401 (the only refusal auth_request passes on), with it too
    let r = auth_request(&v, "/x")
        .insert_header(("Authorization", basic("alice", "correct horse")))
        .sent()
        .await;
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("retry-after").is_some());
    assert!(
        v.metric("verdict_decisions_total{authorizer=\"users\",outcome=\"throttled\"")
            .await
            >= 2
    );
}

#[actix_web::test]
async fn the_same_users_serve_icecast_listeners_and_mqtt_clients_but_no_proxy_client() {
    let hash = bcrypt::hash("correct horse", 4).unwrap();
    let v = start(
        "",
        &format!(
            "[authorizers.users]\ntype = \"basic\"\nusers = [{{ username = \"alice\", hash = \"{hash}\" }}]\n"
        ),
    )
    .await;
    // Icecast: user/pass in the listener_add form
    let form = |user: &str, pass: &str| {
        client()
            .post(v.url("/_resolver/icecast"))
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .send_body(format!(
                "action=listener_add&server=radio.example.com&port=8000&client=1&mount=%2flive&user={user}&pass={pass}&ip=203.0.113.7&agent=VLC"
            ))
    };
    let r = form("alice", "correct%20horse").await.unwrap();
    assert_eq!(
        r.headers()
            .get("icecast-auth-user")
            .map(|v| v.to_str().unwrap()),
        Some("1")
    );
    let r = form("alice", "wrong").await.unwrap();
    assert_eq!(r.status(), 403);
    // EMQX 5 HTTP authentication: username/password in the JSON body
    let authn = |body: &'static str| {
        client()
            .post(v.url("/_resolver/emqx/authn"))
            .insert_header(("content-type", "application/json"))
            .send_body(body)
    };
    let mut r = authn(r#"{"username":"alice","password":"correct horse","clientid":"c1","peerhost":"203.0.113.7"}"#)
        .await
        .unwrap();
    let answer = String::from_utf8_lossy(&r.body().await.unwrap()).to_string();
    assert!(answer.contains("\"allow\""), "{answer}");
    let mut r =
        authn(r#"{"username":"alice","password":"nope","clientid":"c1","peerhost":"203.0.113.7"}"#)
            .await
            .unwrap();
    let answer = String::from_utf8_lossy(&r.body().await.unwrap()).to_string();
    assert!(answer.contains("\"deny\""), "{answer}");
    // through a proxy, a client's icecast-user/-pass headers or ?username=&password= are
    // not a credential
    let status = auth_request(&v, "/x?username=alice&password=correct%20horse")
        .insert_header(("icecast-user", "alice"))
        .insert_header(("icecast-pass", "correct horse"))
        .status()
        .await;
    assert_eq!(status, 401);
}
