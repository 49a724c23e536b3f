//! Debian's `redis-server`, started by the tests on free loopback ports: a standalone
//! server (killed and restarted empty at will), a Cluster of three, a primary with a
//! replica and a sentinel; and a loopback TCP proxy that can slow the store down or cut
//! it off, as a slow network or a partition would.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::programs::{free_port, require_binary};

/// The `redis-server` binary, or `None` when the skip was asked for.
pub fn redis_binary() -> Option<String> {
    require_binary("redis-server", &["/usr/bin/redis-server"])
}

/// One `redis-server` we started; stopped by its PID when dropped.
pub struct RedisServer {
    binary: String,
    pub port: u16,
    args: Vec<String>,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// A server on a free port, persisting nothing, with `extra` arguments.
    pub fn start(extra: &[&str]) -> Option<RedisServer> {
        Self::start_on(free_port(), extra)
    }

    /// A server on `port`.
    pub fn start_on(port: u16, extra: &[&str]) -> Option<RedisServer> {
        let binary = redis_binary()?;
        let dir = tempfile::tempdir().expect("tempdir");
        let mut server = RedisServer {
            binary,
            port,
            args: extra.iter().map(|a| a.to_string()).collect(),
            child: None,
            dir,
        };
        server.run();
        Some(server)
    }

    fn run(&mut self) {
        let child = Command::new(&self.binary)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--dir", &self.dir.path().display().to_string()])
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        wait_for_port(self.port);
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Kills the server (SIGKILL, by its PID): everything it held is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, empty.
    pub fn restart_empty(&mut self) {
        self.kill();
        self.run();
    }

    /// A plain connection for the test's own reads and writes.
    pub fn connection(&self) -> redis::Connection {
        connect(self.port)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A connection to the server on `port`, retried for a few seconds.
pub fn connect(port: u16) -> redis::Connection {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match redis::Client::open(format!("redis://127.0.0.1:{port}/0"))
            .and_then(|c| c.get_connection())
        {
            Ok(connection) => return connection,
            Err(e) => {
                assert!(Instant::now() < deadline, "redis on {port}: {e}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Waits until something accepts connections on `port`.
pub fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Every key and value in the server (strings and streams), as text, to look for what
/// must never be there.
pub fn dump(connection: &mut redis::Connection) -> String {
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(connection).expect("KEYS");
    let mut text = String::new();
    for key in keys {
        text.push_str(&key);
        text.push('\n');
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query(connection)
            .expect("TYPE");
        match kind.as_str() {
            "string" => {
                let value: Vec<u8> = redis::cmd("GET").arg(&key).query(connection).expect("GET");
                text.push_str(&String::from_utf8_lossy(&value));
            }
            "stream" => {
                let value: redis::Value = redis::cmd("XRANGE")
                    .arg(&key)
                    .arg("-")
                    .arg("+")
                    .query(connection)
                    .expect("XRANGE");
                text.push_str(&format!("{value:?}"));
            }
            _ => {}
        }
        text.push('\n');
    }
    text
}

/// What the proxy does with the bytes it carries.
pub const PASS: u64 = 0;
/// Holds every chunk this many milliseconds (any value from 1 up).
pub fn delay_ms(ms: u64) -> u64 {
    ms
}
/// Stops carrying bytes (TCP holds them, as a partition would): nothing arrives.
pub const CUT: u64 = u64::MAX;

/// A loopback TCP proxy in front of one port: passes, delays or cuts what it carries.
pub struct StoreProxy {
    pub port: u16,
    mode: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl StoreProxy {
    pub fn start(upstream: u16) -> StoreProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let mode = Arc::new(AtomicU64::new(PASS));
        let stop = Arc::new(AtomicBool::new(false));
        let (m, s) = (mode.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                            continue;
                        };
                        for (from, to) in [
                            (
                                client.try_clone().expect("clone"),
                                server.try_clone().expect("clone"),
                            ),
                            (server, client),
                        ] {
                            let (m, s) = (m.clone(), s.clone());
                            std::thread::spawn(move || carry(from, to, &m, &s));
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        StoreProxy { port, mode, stop }
    }

    pub fn set(&self, mode: u64) {
        self.mode.store(mode, Ordering::SeqCst);
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

impl Drop for StoreProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.mode.store(PASS, Ordering::SeqCst);
    }
}

fn carry(mut from: TcpStream, mut to: TcpStream, mode: &AtomicU64, stop: &AtomicBool) {
    let _ = from.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buffer = [0u8; 16 * 1024];
    loop {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        // cut: read nothing, so the bytes wait in the kernel as on a dead link
        if mode.load(Ordering::SeqCst) == CUT {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        let n = match from.read(&mut buffer) {
            Ok(0) => {
                let _ = to.shutdown(std::net::Shutdown::Write);
                return;
            }
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(_) => return,
        };
        // the mode as it is when the bytes arrived
        loop {
            match mode.load(Ordering::SeqCst) {
                PASS => break,
                CUT => std::thread::sleep(Duration::from_millis(10)),
                ms => {
                    std::thread::sleep(Duration::from_millis(ms));
                    break;
                }
            }
            if stop.load(Ordering::Relaxed) {
                return;
            }
        }
        if to.write_all(&buffer[..n]).is_err() {
            return;
        }
    }
}
