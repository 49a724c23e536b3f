//! Callers for real: the amqtt broker asks verdict for logins and topics, Debian's
//! icecast2 asks it for listeners, each with the configuration the README shows.

use crate::support::*;

/// A Python script of `tests/callers/`, run with the test environment's Python (where
/// amqtt is installed); `None` only when it is missing and `VERDICT_E2E=skip` is set.
fn amqtt_python() -> Option<String> {
    let venv = std::env::var("VERDICT_PROXY_BIN")
        .map(|d| format!("{d}/python"))
        .unwrap_or_else(|_| format!("{}/build/proxies/bin/python", env!("CARGO_MANIFEST_DIR")));
    let python = require_binary("python (with amqtt)", &[&venv])?;
    let has_amqtt = std::process::Command::new(&python)
        .args(["-c", "import amqtt.contrib.http"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        has_amqtt,
        "{python} has no amqtt: run scripts/test, which installs it"
    );
    Some(python)
}

fn amqtt_client(python: &str, port: u16, args: &[&str]) -> serde_json::Value {
    let script = format!(
        "{}/tests/callers/amqtt_client.py",
        env!("CARGO_MANIFEST_DIR")
    );
    let out = std::process::Command::new(python)
        .arg(script)
        .arg("--port")
        .arg(port.to_string())
        .args(args)
        .output()
        .expect("run the MQTT client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|_| {
        panic!(
            "client said {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[actix_web::test]
async fn a_real_amqtt_broker_asks_verdict_for_logins_and_topics() {
    let Some(python) = amqtt_python() else {
        return;
    };
    let v = start("", BROKER_BACKEND).await;
    let port = free_port();
    let script = format!(
        "{}/tests/callers/amqtt_broker.py",
        env!("CARGO_MANIFEST_DIR")
    );
    let broker = std::process::Command::new(&python)
        .arg(script)
        .arg("--port")
        .arg(port.to_string())
        .arg("--verdict-port")
        .arg(v.addr.port().to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start amqtt");
    // stopped by its PID however the test ends
    let _broker = KillOnDrop(broker);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "amqtt did not start");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let (python_a, python_b) = (python.clone(), python.clone());
    let alice = actix_web::rt::task::spawn_blocking(move || {
        amqtt_client(
            &python_a,
            port,
            &[
                "--user",
                "alice",
                "--password",
                "alice-device-token",
                "--subscribe",
                "sensors/alice/#",
                "--subscribe",
                "sensors/bob/#",
                "--publish",
                "sensors/alice/t",
                "--publish",
                "sensors/bob/t",
            ],
        )
    })
    .await
    .expect("client");
    assert_eq!(alice["connected"], true, "{alice}");
    assert_eq!(
        alice["granted"],
        serde_json::json!([0, 128]),
        "bob's topics refused: {alice}"
    );
    assert_eq!(
        alice["received"],
        serde_json::json!(["sensors/alice/t"]),
        "{alice}"
    );
    let intruder = actix_web::rt::task::spawn_blocking(move || {
        amqtt_client(
            &python_b,
            port,
            &["--user", "alice", "--password", "not-the-token"],
        )
    })
    .await
    .expect("client");
    assert_eq!(intruder["connected"], false, "{intruder}");
    v.stop().await;
}

#[actix_web::test]
async fn a_real_icecast_admits_the_listeners_verdict_allows() {
    let Some(icecast) = require_binary("icecast2", &["/usr/bin/icecast2"]) else {
        return;
    };
    let v = start("", LISTENERS).await;
    let dir = tempfile::tempdir().expect("tempdir");
    // icecast drops to `nobody` (it will not run as root) and writes its logs here
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let port = free_port();
    let template = std::fs::read_to_string(format!(
        "{}/tests/callers/icecast.xml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("config");
    // the README's mount block, as written, pointed at this verdict
    let blocks = readme_blocks("xml");
    let [(_, mount)] = &blocks[..] else {
        panic!("one <mount> block in the README, not {}", blocks.len());
    };
    assert!(
        mount.contains("127.0.0.1:8080"),
        "the README's mount names verdict"
    );
    let config = template
        .replace(
            "@MOUNT@",
            &mount.replace("127.0.0.1:8080", &v.addr.to_string()),
        )
        .replace("@PORT@", &port.to_string())
        .replace("@LOGDIR@", &dir.path().display().to_string());
    let file = dir.path().join("icecast.xml");
    std::fs::write(&file, config).expect("write");
    let server = std::process::Command::new(icecast)
        .arg("-c")
        .arg(&file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start icecast2");
    let _server = KillOnDrop(server);
    let log = dir.path().join("error.log");
    let answers = actix_web::rt::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        let mut source = loop {
            match std::net::TcpStream::connect(("127.0.0.1", port)) {
                Ok(s) => break s,
                Err(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Err(e) => panic!("icecast did not start: {e}\n{}", std::fs::read_to_string(&log).unwrap_or_default()),
            }
        };
        // a source, streaming to the mount (base64 of source:source-secret)
        source
            .write_all(b"PUT /live.ogg HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic c291cmNlOnNvdXJjZS1zZWNyZXQ=\r\nContent-Type: audio/mpeg\r\nIce-Public: 0\r\n\r\n")
            .expect("source");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let feeding = {
            let stop = stop.clone();
            let mut source = source.try_clone().expect("clone");
            std::thread::spawn(move || {
                let frame = [&[0xffu8, 0xfb, 0x90, 0x00][..], &[0u8; 1000][..]].concat();
                while !stop.load(std::sync::atomic::Ordering::SeqCst) && source.write_all(&frame).is_ok() {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(500));
        let mut answers = Vec::new();
        for token in ["good-listener-token", "not-a-listener-token"] {
            let mut listener = std::net::TcpStream::connect(("127.0.0.1", port)).expect("listener");
            listener.set_read_timeout(Some(std::time::Duration::from_secs(5))).expect("timeout");
            listener
                .write_all(format!("GET /live.ogg?token={token} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
                .expect("listener");
            let mut buf = [0u8; 64];
            let n = listener.read(&mut buf).unwrap_or(0);
            answers.push(String::from_utf8_lossy(&buf[..n]).to_string());
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = feeding.join();
        answers
    })
    .await
    .expect("join");
    assert!(
        answers[0].starts_with("HTTP/1.0 200"),
        "admitted: {:?}",
        answers[0]
    );
    assert!(
        !answers[1].starts_with("HTTP/1.0 200"),
        "refused: {:?}",
        answers[1]
    );
    v.stop().await;
}
