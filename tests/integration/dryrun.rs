//! `verdict explain` and `verdict test`: what verdict would decide, offline, through the
//! resolver itself; an operator's policy tests fail the command when a case does not get
//! what it expects. No backend is asked and no credential printed.

use std::process::Command;

use crate::support::*;

const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
[authorizers.keys]
type = "static"
[[authorizers.keys.tokens]]
token = "token-of-a-reader"
user_id = "reader-1"
roles = ["reader"]
[[route]]
name = "admin"
path = "/admin"
access = "authenticated"
roles = ["admin"]
authorizers = ["keys"]
[[route]]
name = "video"
path = "/play"
access = "authenticated"
authorizers = ["backend"]
[default_route]
authorizers = ["keys"]
"#;

fn files(backend_url: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("verdict.toml"),
        format!(
            "{CONFIG}[authorizers.backend]\ntype = \"http\"\nprotocol = \"status\"\nurls = [\"{backend_url}\"]\n"
        ),
    )
    .unwrap();
    dir
}

fn verdict(dir: &tempfile::TempDir, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_verdict"))
        .args(args)
        .arg("--config")
        .arg(dir.path().join("verdict.toml"))
        .env_remove("VERDICT_CONFIG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[actix_web::test]
async fn explain_shows_the_readings_the_routes_and_the_decision_and_asks_no_backend() {
    let backend = fake_backend(Reply::status(200)).await;
    let dir = files(&backend.url("/check"));
    let (code, out, err) = verdict(
        &dir,
        &[
            "explain",
            "-H",
            "Authorization: Bearer token-of-a-reader",
            "https://app.example.com/docs/..;/admin/x",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("reading path-parameters: GET /admin/x"),
        "{out}"
    );
    assert!(out.contains("route admin must allow too"), "{out}");
    assert!(out.contains("decision: forbidden"), "{out}");
    assert!(out.contains("user: reader-1"), "{out}");
    assert!(
        !out.contains("token-of-a-reader"),
        "a credential printed:\n{out}"
    );
    // an authorizer that needs its backend cannot decide offline, and says so
    let (_, out, _) = verdict(&dir, &["explain", "https://app.example.com/play/a?token=t"]);
    assert!(out.contains("decision: unavailable"), "{out}");
    assert!(out.contains("a dry run asks no backend"), "{out}");
    assert_eq!(backend.hits(), 0, "no backend asked");
}

#[test]
fn verdict_test_exits_non_zero_when_a_case_does_not_get_what_it_expects() {
    let dir = files("http://127.0.0.1:1/check");
    let cases = dir.path().join("cases.toml");
    std::fs::write(
        &cases,
        r#"
[[case]]
name = "a reader reads"
url = "https://app.example.com/docs"
headers = { Authorization = "Bearer token-of-a-reader" }
expect = "allow"
[[case]]
name = "a reader never reaches admin, whatever the path says"
url = "https://app.example.com/docs/%2e%2e/admin/x"
headers = { Authorization = "Bearer token-of-a-reader" }
expect = "forbidden"
[[case]]
name = "no token"
url = "https://app.example.com/docs"
expect = "unauthenticated"
route = "default"
[[case]]
name = "an Icecast listener leaving is only a notification"
dialect = "icecast"
url = ""
headers = { "Content-Type" = "application/x-www-form-urlencoded" }
body = "action=listener_remove&server=radio.example.com&port=8000&client=1&mount=%2flive"
expect = "notification"
[[case]]
name = "an Icecast listener without a credential"
dialect = "icecast"
url = ""
headers = { "Content-Type" = "application/x-www-form-urlencoded" }
body = "action=listener_add&server=radio.example.com&port=8000&client=1&mount=%2flive&ip=203.0.113.7"
expect = "unauthenticated"
"#,
    )
    .unwrap();
    let (code, out, err) = verdict(&dir, &["test", cases.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("5 case(s), 0 failed"), "{out}");
    std::fs::write(
        &cases,
        "[[case]]\nname = \"wrong on purpose\"\nurl = \"https://app.example.com/admin\"\nheaders = { Authorization = \"Bearer token-of-a-reader\" }\nexpect = \"allow\"\n",
    )
    .unwrap();
    let (code, out, _) = verdict(&dir, &["test", cases.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAIL wrong on purpose: expected allow"),
        "{out}"
    );
    assert!(!out.contains("token-of-a-reader"), "{out}");
}
