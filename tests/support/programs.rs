//! Real programs the tests start: proxies and Python scripts. A missing program fails
//! the test unless `VERDICT_E2E=skip` asks for the skip explicitly.

use std::net::TcpStream;
use std::time::Duration;

/// The variable that asks for end-to-end tests to be skipped when a program is missing.
pub const SKIP_VARIABLE: &str = "VERDICT_E2E";

/// The path of a real program the test needs. A missing one fails the test, in CI and
/// out, unless `VERDICT_E2E=skip` is set: then the test prints why and returns early.
pub fn require_binary(name: &str, candidates: &[&str]) -> Option<String> {
    for candidate in candidates {
        if std::path::Path::new(candidate).exists() {
            return Some(candidate.to_string());
        }
    }
    if let Ok(path) = which(name) {
        return Some(path);
    }
    if std::env::var(SKIP_VARIABLE).is_ok_and(|v| v == "skip") {
        eprintln!("SKIPPED ({SKIP_VARIABLE}=skip): {name} is not installed");
        return None;
    }
    panic!(
        "{name} is required but was not found: run the README's test command (scripts/test), \
         which installs it, or set {SKIP_VARIABLE}=skip to skip the end-to-end tests explicitly"
    );
}

fn which(name: &str) -> Result<String, ()> {
    let path = std::env::var("PATH").map_err(|_| ())?;
    for dir in path.split(':') {
        let candidate = std::path::Path::new(dir).join(name);
        if candidate.exists() {
            return Ok(candidate.display().to_string());
        }
    }
    Err(())
}

/// A free loopback port (bound and released; the caller binds it right after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A shipped Python script serving on a free loopback port; stopped by its PID when dropped.
pub struct PythonServer {
    child: std::process::Child,
    pub port: u16,
}

impl Drop for PythonServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `script` (relative to the repository) with `--port N`. `None` when python3 is
/// missing and `VERDICT_E2E=skip` is set.
pub fn run_python(script: &str) -> Option<PythonServer> {
    let python = require_binary("python3", &[])?;
    let port = free_port();
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(script);
    let child = std::process::Command::new(python)
        .arg(path)
        .arg("--port")
        .arg(port.to_string())
        .env("PROMO", "http://promo.example.com/play/promo")
        .spawn()
        .expect("start python server");
    let server = PythonServer { child, port };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "{script} did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(server)
}
