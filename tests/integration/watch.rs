//! `server.watch`: the configuration reloads when its file, or a file it names, changes,
//! including the symlink swap a Kubernetes ConfigMap update makes, through the SIGHUP
//! path: validated completely, swapped at once, the old one kept on an error.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::support::*;

const BASE: &str = "[[route]]\nname = \"open\"\npath = \"/open\"\naccess = \"authenticated\"\n";
const CLOSED: &str = "[[route]]\nname = \"closed\"\npath = \"/closed\"\naccess = \"deny\"\n";

/// A configuration on free loopback ports, watching its files.
fn config(port: u16, admin: u16, tokens_file: &str, routes: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:{admin}\"\nworkers = 1\nwatch = true\n[authorizers.keys]\ntype = \"static\"\ntokens_file = \"{tokens_file}\"\n{routes}"
    )
}

const TOKENS: &str = "[[tokens]]\ntoken = \"valid-token\"\nuser_id = \"u-123\"\n";

/// A ConfigMap as the kubelet lays it out: the files in a timestamped folder, `..data`
/// pointing at it, and each file a symlink through `..data`.
fn configmap_version(dir: &Path, version: &str, files: &[(&str, String)]) {
    let folder = dir.join(version);
    std::fs::create_dir_all(&folder).unwrap();
    for (name, text) in files {
        std::fs::write(folder.join(name), text).unwrap();
    }
    // the kubelet's atomic swap: a new symlink renamed over ..data
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(version, &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    for (name, _) in files {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{name}"), &link).unwrap();
        }
    }
}

async fn status(port: u16, path: &str) -> u16 {
    client()
        .get(format!("http://127.0.0.1:{port}/_resolver/auth-request"))
        .insert_header(("X-Original-URI", path))
        .insert_header(("X-Original-Method", "GET"))
        .insert_header(("Authorization", "Bearer valid-token"))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

async fn until(what: &str, log: &Path, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "never: {what}; the log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix_web::test]
async fn a_configmap_swap_under_load_reloads_with_no_failed_request() {
    let dir = tempfile::tempdir().unwrap();
    let (port, admin) = (free_port(), free_port());
    configmap_version(
        dir.path(),
        "..2026_12_06_10_00_00.1",
        &[
            ("verdict.toml", config(port, admin, "tokens.toml", BASE)),
            ("tokens.toml", TOKENS.to_string()),
        ],
    );
    let log = dir.path().join("verdict.log");
    let _verdict = KillOnDrop(
        std::process::Command::new(env!("CARGO_BIN_EXE_verdict"))
            .arg("--config")
            .arg(dir.path().join("verdict.toml"))
            .env("RUST_LOG", "info")
            .env_remove("VERDICT_CONFIG")
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    until("verdict serves", &log, async || {
        status(port, "/open").await == 200
    })
    .await;
    assert_eq!(status(port, "/closed").await, 200);

    // load all along: every request an allow
    let failed = Arc::new(AtomicUsize::new(0));
    let sent = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (failed, sent, stop) = (failed.clone(), sent.clone(), stop.clone());
        actix_web::rt::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                if status(port, "/open").await != 200 {
                    failed.fetch_add(1, Ordering::SeqCst);
                }
                sent.fetch_add(1, Ordering::SeqCst);
            }
        })
    };

    // a new version of the ConfigMap: a route closes
    configmap_version(
        dir.path(),
        "..2026_12_06_10_05_00.2",
        &[
            (
                "verdict.toml",
                config(port, admin, "tokens.toml", &format!("{BASE}{CLOSED}")),
            ),
            ("tokens.toml", TOKENS.to_string()),
        ],
    );
    until("the new rule applies", &log, async || {
        status(port, "/closed").await == 403
    })
    .await;

    // a broken version changes nothing, and says so
    configmap_version(
        dir.path(),
        "..2026_12_06_10_10_00.3",
        &[
            ("verdict.toml", "[server\nbroken".to_string()),
            ("tokens.toml", TOKENS.to_string()),
        ],
    );
    until("the broken version is refused", &log, async || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("the previous configuration keeps serving")
    })
    .await;
    assert_eq!(status(port, "/closed").await, 403);

    // a named file changes: a token revoked by removing it from the tokens file
    configmap_version(
        dir.path(),
        "..2026_12_06_10_15_00.4",
        &[
            (
                "verdict.toml",
                config(port, admin, "tokens.toml", &format!("{BASE}{CLOSED}")),
            ),
            (
                "tokens.toml",
                "[[tokens]]\ntoken = \"other-token\"\nuser_id = \"u-9\"\n".to_string(),
            ),
        ],
    );
    stop.store(true, Ordering::SeqCst);
    load.await.unwrap();
    until("the tokens file's change applies", &log, async || {
        status(port, "/open").await == 401
    })
    .await;
    assert!(sent.load(Ordering::SeqCst) > 20, "the load ran");
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "requests failed during the swaps"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("watch: reloading when"), "{text}");
    assert!(text.contains("reload: a watched file changed"), "{text}");
}

#[actix_web::test]
async fn an_edit_in_place_reloads_and_an_unrelated_file_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let (port, admin) = (free_port(), free_port());
    let file = dir.path().join("verdict.toml");
    std::fs::write(dir.path().join("tokens.toml"), TOKENS).unwrap();
    std::fs::write(&file, config(port, admin, "tokens.toml", BASE)).unwrap();
    let log = dir.path().join("verdict.log");
    let _verdict = KillOnDrop(
        std::process::Command::new(env!("CARGO_BIN_EXE_verdict"))
            .arg("--config")
            .arg(&file)
            .env("RUST_LOG", "debug")
            .env_remove("VERDICT_CONFIG")
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    until("verdict serves", &log, async || {
        status(port, "/open").await == 200
    })
    .await;
    // an editor's scratch file in the same folder: no reload
    std::fs::write(dir.path().join(".verdict.toml.swp"), "scratch").unwrap();
    // an editor's save: a new file renamed over the old one
    let scratch = dir.path().join("verdict.toml.new");
    std::fs::write(
        &scratch,
        config(port, admin, "tokens.toml", &format!("{BASE}{CLOSED}")),
    )
    .unwrap();
    std::fs::rename(&scratch, &file).unwrap();
    until("the edit applies", &log, async || {
        status(port, "/closed").await == 403
    })
    .await;
    // one reload for the save; the scratch file none (a change that changes nothing is
    // not a reload either)
    let mut metrics = client()
        .get(format!("http://127.0.0.1:{admin}/metrics"))
        .send()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&metrics.body().await.unwrap()).to_string();
    assert!(
        text.contains("verdict_reloads_total{result=\"ok\"} 1\n"),
        "one reload for one save:\n{text}"
    );
}
