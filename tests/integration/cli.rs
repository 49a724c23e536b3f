//! The `verdict` command: `check` validates files and explains the first problem.

use std::path::PathBuf;
use std::process::Command;

fn verdict() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_verdict"));
    // the suite's own variables (VERDICT_PROXY_BIN, VERDICT_E2E) are not verdict's: it
    // would warn of them
    for (name, _) in std::env::vars() {
        if name.starts_with("VERDICT") {
            command.env_remove(name);
        }
    }
    command
}

fn example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("verdict.example.toml")
}

#[test]
fn the_example_configuration_is_valid() {
    let out = verdict()
        .arg("check")
        .arg("--config")
        .arg(example())
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok"));
}

#[test]
fn check_prints_the_first_problem_in_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[server]\nlisten = \"not-an-address\"\n").expect("write");
    let out = verdict()
        .arg("check")
        .arg("--config")
        .arg(&bad)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("server.listen"), "{stderr}");

    let missing = verdict()
        .arg("check")
        .arg("--config")
        .arg(dir.path().join("nope.toml"))
        .output()
        .expect("run");
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("does not exist"));

    let no_file = verdict().arg("check").output().expect("run");
    assert!(!no_file.status.success());
}

#[test]
fn environment_overrides_are_strict_but_ignore_single_underscore_names() {
    let stray = verdict()
        .arg("check")
        .arg("--config")
        .arg(example())
        .env("VERDICT_SOMETHING_ELSE", "1")
        .env("VERDICT__CACHE__ALLOW_TTL", "90s")
        .output()
        .expect("run");
    assert!(
        stray.status.success(),
        "{}",
        String::from_utf8_lossy(&stray.stderr)
    );
    let typo = verdict()
        .arg("check")
        .arg("--config")
        .arg(example())
        .env("VERDICT__CACHE__ALOW_TTL", "90s")
        .output()
        .expect("run");
    assert!(!typo.status.success());
    assert!(String::from_utf8_lossy(&typo.stderr).contains("alow_ttl"));
}

fn digest_of(stdin: &[u8]) -> std::process::Output {
    use std::io::Write;
    let mut child = verdict()
        .args(["token", "digest"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write");
    child.wait_with_output().expect("output")
}

#[test]
fn token_digest_reads_standard_input_and_makes_the_example_digest() {
    let out = digest_of(b"example-api-key-0001\n");
    assert!(out.status.success());
    let digest = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(digest.len(), 64);
    let example = std::fs::read_to_string(example()).expect("example");
    assert!(
        example.contains(&format!("sha256 = \"{digest}\"")),
        "the example's key is the one its comment's command makes"
    );
    let short = digest_of(b"short\n");
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 8"));
}

/// `verdict check` on a configuration `text` that is valid: its standard error, with
/// every warning.
fn warnings_of(text: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("verdict.toml");
    std::fs::write(&file, text).expect("write");
    let out = verdict()
        .arg("check")
        .arg("--config")
        .arg(&file)
        .output()
        .expect("run");
    assert!(out.status.success(), "warnings do not fail the check");
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn check_warns_of_what_is_valid_but_probably_not_meant() {
    let routes = warnings_of(
        "[authorizers.idp]\ntype = \"jwt\"\njwks_url = \"http://idp.example/jwks\"\njwks_algorithms = [\"RS256\"]\n\
         [[route]]\nname = \"api\"\npath = \"/api\"\naccess = \"authenticated\"\n\
         [[route]]\nname = \"writes\"\npath = \"/api/items\"\nmethods = [\"PSOT\"]\naccess = \"authenticated\"\non_error = \"allow\"\n\
         [[route]]\nname = \"api\"\npath = \"/x\"\naccess = \"public\"\n",
    );
    // one credential, two audiences; an identify route a streamer can reach; a route the
    // form-body reading decides form POSTs under
    let audiences = warnings_of(
        "[authorizers.viewers]\ntype = \"static\"\ntoken_sources = [\"query:token\"]\n\
         [[authorizers.viewers.tokens]]\ntoken = \"viewer-token-1\"\nuser_id = \"v\"\n\
         [[route]]\nname = \"viewers\"\ndialects = [\"cesbo\"]\naccess = \"authenticated\"\nauthorizers = [\"viewers\"]\n\
         [[route]]\nname = \"reports\"\npath = \"/reports\"\naccess = \"authenticated\"\nauthorizers = [\"viewers\"]\n\
         [[route]]\nname = \"app\"\npath = \"/\"\naccess = \"identify\"\n\
         [[route]]\nname = \"deletes\"\nmethods = [\"DELETE\"]\naccess = \"deny\"\n",
    );
    for (stderr, needle) in [
        (
            &routes,
            "warning: authorizers.idp: neither issuers nor audiences",
        ),
        (&routes, "warning: authorizers.idp.jwks_url: plain http"),
        (&routes, "warning: route writes: method \"PSOT\""),
        (
            &routes,
            "warning: route writes: never matches; route api before it",
        ),
        (&routes, "warning: route api: the name is used twice"),
        (&routes, "warning: route writes: on_error = \"allow\""),
        (
            &audiences,
            "warning: authorizers.viewers: one credential opens routes of two audiences: routes for stream viewers name it, and so does route reports (every caller)",
        ),
        (
            &audiences,
            "warning: route app: access = \"identify\" also answers cesbo, emqx-authn, mqtt, icecast",
        ),
        (
            &audiences,
            "warning: route deletes: a form POST to its paths must be allowed by it too (reading form-method-override: the body may name DELETE through _method",
        ),
    ] {
        assert!(stderr.contains(needle), "missing {needle:?} in\n{stderr}");
    }
    let example = verdict()
        .arg("check")
        .arg("--config")
        .arg(example())
        .output()
        .expect("run");
    assert!(
        !String::from_utf8_lossy(&example.stderr).contains("warning"),
        "the example configuration is clean"
    );
}

#[test]
fn a_bind_failure_names_the_listener_and_its_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = taken.local_addr().expect("addr");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("verdict.toml");
    std::fs::write(
        &file,
        "[authorizers.keys]\ntype = \"static\"\n[[authorizers.keys.tokens]]\ntoken = \"abcdefghij\"\nuser_id = \"u\"\n",
    )
    .expect("write");
    let out = verdict()
        .arg("--config")
        .arg(&file)
        .env("VERDICT__SERVER__LISTEN", address.to_string())
        .env("VERDICT__SERVER__ADMIN_LISTEN", "127.0.0.1:0")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("server.listen {address}")),
        "{stderr}"
    );
    drop(taken);
}
