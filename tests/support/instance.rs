//! verdict under test: in-process on port 0 (the usual way), or as its own process
//! ([`start_logged`]) when a test reads the log, so that it reads only the lines of the
//! instance under test. Counts come from the admin listener's `/metrics`, as an operator
//! would read them, never from probes inside verdict.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use verdict::clock::Clock;
use verdict::config::{Config, Source};
use verdict::lifecycle::Running;

use super::http::{Sent, client};
use super::programs::free_port;

pub const DEMO_KEYS: &str = r#"
[authorizers.keys]
type = "static"
token_sources = ["bearer", "header:x-api-key"]
[[authorizers.keys.tokens]]
token = "valid-token"
user_id = "u-123"
session_name = "alice"
roles = ["reader"]
amr = ["pwd"]
verified = true
[[authorizers.keys.tokens]]
token = "admin-token"
user_id = "u-admin"
session_name = "root"
roles = ["reader", "admin"]
"#;

/// A running verdict with its addresses.
pub struct Verdict {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    /// The gRPC authorization listener, when the configuration has one (in-process only).
    pub grpc: Option<SocketAddr>,
    instance: Instance,
}

enum Instance {
    InProcess(
        ServerHandle,
        ServerHandle,
        Option<std::sync::Arc<verdict::grpc::GrpcStop>>,
    ),
    /// The real binary, its log file, and the folder holding its config (removed on drop).
    Process {
        child: Child,
        log: PathBuf,
        _dir: tempfile::TempDir,
    },
}

impl Verdict {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The sum of a metric's samples whose line starts with `series` (a name, or a name
    /// with the start of its labels), read from `/metrics`.
    pub async fn metric(&self, series: &str) -> u64 {
        let mut response = client()
            .get(format!("http://{}/metrics", self.admin))
            .sent()
            .await;
        let body = response.body().await.expect("metrics body");
        String::from_utf8_lossy(&body)
            .lines()
            .filter(|l| l.starts_with(series))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    /// Decision-cache misses so far: how often an authorizer was really asked.
    pub async fn cache_misses(&self) -> u64 {
        self.metric("verdict_cache_requests_total{result=\"miss\"}")
            .await
    }

    /// Decisions made so far, every outcome included.
    pub async fn decisions(&self) -> u64 {
        self.metric("verdict_decisions_total{").await
    }

    /// Every line this instance has logged so far (verdict writes its log in batches:
    /// to wait for a line, use [`Verdict::log_with`]). Only for [`start_logged`] instances.
    pub fn log(&self) -> String {
        match &self.instance {
            Instance::Process { log, .. } => std::fs::read_to_string(log).expect("read the log"),
            Instance::InProcess(..) => {
                panic!("the log is read only from an instance started with start_logged")
            }
        }
    }

    /// The log once a line holding `needle` has been written (polled, for at most 10 s):
    /// verdict writes its log in batches, so a line appears some time after its decision.
    /// Panics with the log so far when the line never comes.
    pub async fn log_with(&self, needle: &str) -> String {
        let Instance::Process { log, .. } = &self.instance else {
            panic!("the log is read only from an instance started with start_logged");
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(log).expect("read the log");
            if text.contains(needle) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "no line with {needle:?} in the log:\n{text}"
            );
            // polls without blocking the test's runtime: its other tasks go on
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The configuration file of a process instance (to edit before a SIGHUP).
    pub fn config_path(&self) -> PathBuf {
        match &self.instance {
            Instance::Process { log, .. } => log.with_file_name("verdict.toml"),
            Instance::InProcess(..) => panic!("only a process instance has a config file"),
        }
    }

    /// Sends a signal (`TERM`, `HUP`, …) to this instance's process, by its PID.
    pub fn signal(&self, name: &str) {
        let Instance::Process { child, .. } = &self.instance else {
            panic!("only a process instance (start_logged) receives signals");
        };
        let status = Command::new("kill")
            .arg("-s")
            .arg(name)
            .arg(child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -s {name}");
    }

    /// Waits for this instance's process to exit by itself; `None` if it has not within
    /// `within`.
    pub fn wait_for_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let Instance::Process { child, .. } = &mut self.instance else {
            panic!("only a process instance (start_logged) exits by itself");
        };
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub async fn stop(mut self) {
        match &mut self.instance {
            Instance::InProcess(decision, admin, grpc) => {
                if let Some(grpc) = grpc {
                    grpc.stop().await;
                }
                decision.stop(false).await;
                admin.stop(false).await;
            }
            Instance::Process { child, .. } => {
                // Our own child, by its PID.
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl Drop for Verdict {
    fn drop(&mut self) {
        if let Instance::Process { child, .. } = &mut self.instance {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn config_text(server_extra: &str, body: &str, listen: &str, admin: &str) -> String {
    let workers = if server_extra.contains("workers") {
        ""
    } else {
        "workers = 1"
    };
    format!(
        "[server]\nlisten = \"{listen}\"\nadmin_listen = \"{admin}\"\n{workers}\n{server_extra}\n{body}"
    )
}

/// Starts verdict with `body` appended to a loopback, one-worker, port-0 server section.
pub async fn start(server_extra: &str, body: &str) -> Verdict {
    start_on(server_extra, body, Clock::system()).await
}

/// [`start`] on a manual clock: cache TTLs, key refreshes and backend cool-downs pass
/// when the test moves the clock, never while it waits.
pub async fn start_with_clock(server_extra: &str, body: &str) -> (Verdict, Clock) {
    let clock = Clock::manual();
    (start_on(server_extra, body, clock.clone()).await, clock)
}

/// [`start_with_clock`] with environment variables the configuration reads (a secret's
/// `*_env`), as a deployment would set them; the process environment is not touched.
pub async fn start_with_clock_env(
    server_extra: &str,
    body: &str,
    env: &[(&str, &str)],
) -> (Verdict, Clock) {
    verdict::init_crypto();
    let clock = Clock::manual();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("verdict.toml");
    let text = config_text(server_extra, body, "127.0.0.1:0", "127.0.0.1:0");
    std::fs::write(&file, &text).expect("write the config");
    let config = Config::load(&Source {
        file: Some(file),
        env: Some(
            env.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
    })
    .unwrap_or_else(|e| panic!("test config: {e}\n{text}"));
    (run(config, clock.clone()).await, clock)
}

async fn start_on(server_extra: &str, body: &str, clock: Clock) -> Verdict {
    verdict::init_crypto();
    let text = config_text(server_extra, body, "127.0.0.1:0", "127.0.0.1:0");
    let config = Config::from_toml(&text).unwrap_or_else(|e| panic!("test config: {e}\n{text}"));
    run(config, clock).await
}

/// Starts the real `verdict` binary with the same configuration as [`start`], its log
/// (at `debug`) in a file of its own, on free loopback ports.
pub async fn start_logged(server_extra: &str, body: &str) -> Verdict {
    start_process(server_extra, body, None, Some("debug")).await
}

/// [`start_logged`] with `RUST_LOG` set to `filter` (`None`: not set at all, verdict's
/// default), as an operator following the README would run it.
pub async fn start_logged_filtered(
    server_extra: &str,
    body: &str,
    filter: Option<&str>,
) -> Verdict {
    start_process(server_extra, body, None, filter).await
}

/// [`start_logged`], under a soft open-file limit (the usual 1,024, say) that verdict
/// starts with, as a service manager would leave it.
pub async fn start_logged_with_file_limit(server_extra: &str, body: &str, soft: u64) -> Verdict {
    start_process(server_extra, body, Some(soft), Some("debug")).await
}

async fn start_process(
    server_extra: &str,
    body: &str,
    soft_files: Option<u64>,
    rust_log: Option<&str>,
) -> Verdict {
    // A free port is only free until someone else binds it: another test may take it
    // between our look and verdict's bind. A start that exits (a bind failure) is tried
    // again on other ports, a few times.
    for _ in 0..5 {
        if let Some(v) = try_start_process(server_extra, body, soft_files, rust_log) {
            return v;
        }
    }
    panic!("verdict exited at start five times in a row (its logs are above)");
}

fn try_start_process(
    server_extra: &str,
    body: &str,
    soft_files: Option<u64>,
    rust_log: Option<&str>,
) -> Option<Verdict> {
    let dir = tempfile::tempdir().expect("tempdir");
    let (port, admin_port) = (free_port(), free_port());
    let text = config_text(
        server_extra,
        body,
        &format!("127.0.0.1:{port}"),
        &format!("127.0.0.1:{admin_port}"),
    );
    let config = dir.path().join("verdict.toml");
    std::fs::write(&config, &text).expect("write the config");
    let log = dir.path().join("verdict.log");
    let binary = env!("CARGO_BIN_EXE_verdict");
    let mut command = match soft_files {
        None => Command::new(binary),
        Some(soft) => {
            let mut sh = Command::new("sh");
            sh.arg("-c")
                .arg(format!("ulimit -Sn {soft} && exec \"$0\" \"$@\""))
                .arg(binary);
            sh
        }
    };
    command
        .arg("--config")
        .arg(&config)
        .env_remove("RUST_LOG_STYLE");
    // the suite's own variables (VERDICT_PROXY_BIN, VERDICT_E2E) are not verdict's
    for (name, _) in std::env::vars() {
        if name.starts_with("VERDICT") {
            command.env_remove(name);
        }
    }
    match rust_log {
        Some(filter) => command.env("RUST_LOG", filter),
        None => command.env_remove("RUST_LOG"),
    };
    let child = command
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("start verdict");
    let mut v = Verdict {
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        admin: SocketAddr::from(([127, 0, 0, 1], admin_port)),
        grpc: None,
        instance: Instance::Process {
            child,
            log,
            _dir: dir,
        },
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(v.admin).is_err() || TcpStream::connect(v.addr).is_err() {
        if let Instance::Process { child, log, .. } = &mut v.instance
            && child.try_wait().expect("try_wait").is_some()
        {
            // (a filter like verdict::decision=warn hides the bind error itself)
            eprintln!(
                "verdict exited at start, tried again; its log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            return None;
        }
        assert!(
            Instant::now() < deadline,
            "verdict did not start; its log:\n{}",
            v.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(v)
}

async fn run(config: Config, clock: Clock) -> Verdict {
    let launch = verdict::lifecycle::Launch {
        clock,
        ..Default::default()
    };
    let running: Running = verdict::lifecycle::bind(config, launch)
        .await
        .expect("bind");
    let addr = running.decision_addr;
    let admin = running.admin_addr;
    let grpc = running.grpc_addr;
    let (decision, admin_handle) = running.handles();
    let grpc_stop = running.grpc_stop();
    actix_web::rt::spawn(running.run());
    // Let both servers start before a test blocks its own thread on raw socket I/O.
    for url in [
        format!("http://{addr}/_ready_probe"),
        format!("http://{admin}/healthz"),
    ] {
        client().get(url).send().await.expect("server starts");
    }
    Verdict {
        addr,
        admin,
        grpc,
        instance: Instance::InProcess(decision, admin_handle, grpc_stop),
    }
}

/// Starts verdict from a configuration file, with environment overrides (as a deployment
/// would set them).
pub async fn start_file(path: &str, env: &[(&str, String)]) -> Verdict {
    verdict::init_crypto();
    let mut overrides: std::collections::HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    overrides.insert("VERDICT__SERVER__LISTEN".into(), "127.0.0.1:0".into());
    overrides.insert("VERDICT__SERVER__ADMIN_LISTEN".into(), "127.0.0.1:0".into());
    overrides.insert("VERDICT__SERVER__WORKERS".into(), "1".into());
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path);
    let config = Config::load(&Source {
        file: Some(file),
        env: Some(overrides),
    })
    .unwrap_or_else(|e| panic!("{path}: {e}"));
    run(config, Clock::system()).await
}
