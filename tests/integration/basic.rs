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
    assert_eq!(status("Bearer alice:correct horse".into()).await, 401);
}
