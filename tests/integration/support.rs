//! Test support: verdict in-process on port 0, fake backends on port 0, raw HTTP.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use verdict::authorizer::AuthorizerKind;
use verdict::config::Config;
use verdict::server::Running;

pub const HS_SECRET: &str = "integration-secret-of-32-bytes!!";
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

/// Runs an actix app factory on a free loopback port with one worker; gives its address
/// and handle.
macro_rules! serve_on_port_0 {
    ($factory:expr) => {{
        let server = HttpServer::new($factory)
            .workers(1)
            .disable_signals()
            .bind("127.0.0.1:0")
            .expect("bind a test server");
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        (addr, handle)
    }};
}

/// A running verdict with its addresses.
pub struct Verdict {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub resolver: web::Data<verdict::server::Resolver>,
    handles: (ServerHandle, ServerHandle),
}

impl Verdict {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    fn authorizer(&self, name: &str) -> &AuthorizerKind {
        let found = self
            .resolver
            .config
            .authorizers
            .iter()
            .find(|a| a.name == name);
        &found.unwrap_or_else(|| panic!("no authorizer {name}")).kind
    }

    /// Look-ups made by the static authorizer `name` (cache misses).
    pub fn static_lookups(&self, name: &str) -> u64 {
        match self.authorizer(name) {
            AuthorizerKind::Static(s) => s.lookups(),
            _ => panic!("{name} is not a static authorizer"),
        }
    }

    /// JWKS fetches made by the jwt authorizer `name`.
    pub fn jwks_fetches(&self, name: &str) -> u64 {
        match self.authorizer(name) {
            AuthorizerKind::Jwt(j) => j.jwks_fetches(),
            _ => panic!("{name} is not a jwt authorizer"),
        }
    }

    pub async fn stop(self) {
        self.handles.0.stop(false).await;
        self.handles.1.stop(false).await;
    }
}

/// Starts verdict with `body` appended to a loopback, one-worker, port-0 server section.
pub async fn start(server_extra: &str, body: &str) -> Verdict {
    verdict::init_crypto();
    capture_logs();
    let workers = if server_extra.contains("workers") {
        ""
    } else {
        "workers = 1"
    };
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n{workers}\n{server_extra}\n{body}"
    );
    let config = Config::from_toml(&text).unwrap_or_else(|e| panic!("test config: {e}\n{text}"));
    run(config).await
}

async fn run(config: Config) -> Verdict {
    let running: Running = verdict::server::bind(config, false).await.expect("bind");
    let addr = running.decision_addr;
    let admin = running.admin_addr;
    let resolver = running.resolver.clone();
    let handles = running.handles();
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
        resolver,
        handles,
    }
}

/// Every log line verdict wrote during this test binary's run.
static LOG_LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct CaptureLogger;

impl log::Log for CaptureLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Debug
    }
    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let line = format!("{} {} {}", record.level(), record.target(), record.args());
            LOG_LINES.lock().expect("log lock").push(line);
        }
    }
    fn flush(&self) {}
}

fn capture_logs() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        if log::set_logger(&CaptureLogger).is_ok() {
            log::set_max_level(log::LevelFilter::Debug);
        }
    });
}

/// A copy of the captured log lines.
pub fn log_lines() -> Vec<String> {
    LOG_LINES.lock().expect("log lock").clone()
}

/// A check in the auth-request dialect, as the shipped nginx config sends it (GET).
pub fn auth_request(v: &Verdict, uri: &str) -> awc::ClientRequest {
    client()
        .get(v.url("/_resolver/auth-request"))
        .insert_header(("X-Original-URI", uri.to_string()))
        .insert_header(("X-Original-Method", "GET"))
}

/// Sending without the `.send().await.expect(..)` ceremony: a request that cannot be
/// sent fails the test.
pub trait Sent {
    async fn sent(self) -> awc::ClientResponse;
    async fn status(self) -> u16;
}

impl Sent for awc::ClientRequest {
    async fn sent(self) -> awc::ClientResponse {
        self.send().await.expect("send")
    }
    async fn status(self) -> u16 {
        self.sent().await.status().as_u16()
    }
}

/// A plain awc client (plays the proxy).
pub fn client() -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .disable_redirects()
        .finish()
}

/// Sends raw bytes and reads until the peer closes or `wait` passes with no data.
pub fn raw(addr: SocketAddr, request: &[u8], wait: Duration) -> (Vec<u8>, bool) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(wait)).expect("timeout");
    stream.write_all(request).expect("write");
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    let closed = loop {
        match stream.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => break false,
        }
    };
    (out, closed)
}

/// Parsed status and headers of every response in a byte stream of bodiless responses.
pub fn responses(bytes: &[u8]) -> Vec<(u16, Vec<(String, String)>)> {
    let text = String::from_utf8_lossy(bytes);
    let mut out = Vec::new();
    for block in text.split("\r\n\r\n").filter(|b| b.starts_with("HTTP/")) {
        let mut lines = block.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .expect("status line");
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        out.push((status, headers));
    }
    out
}

pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// An HS256 token for the `jwt` authorizer of [`JWT_HS`].
pub fn hs_token(claims: Value) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("hs".into());
    encode(
        &header,
        &claims,
        &EncodingKey::from_secret(HS_SECRET.as_bytes()),
    )
    .expect("sign")
}

pub fn user_claims(sub: &str, roles: &[&str], ttl: i64) -> Value {
    json!({"sub": sub, "iss": "https://idp.test", "aud": "api", "exp": (now() as i64 + ttl),
           "roles": roles, "preferred_username": format!("{sub}-name"), "amr": ["pwd"]})
}

/// A `jwt` authorizer with an inline HMAC key, reading the bearer token or cookie `sess`.
pub fn jwt_hs(extra: &str) -> String {
    format!(
        "[authorizers.jwt]\ntype = \"jwt\"\ntoken_sources = [\"bearer\", \"cookie:sess\"]\nissuers = [\"https://idp.test\"]\naudiences = [\"api\"]\n{extra}\n[[authorizers.jwt.keys]]\nkid = \"hs\"\nalgorithms = [\"HS256\"]\nsecret = \"{HS_SECRET}\"\n"
    )
}

pub const RSA_PRIVATE: &str = include_str!("../fixtures/rsa.key.pem");

pub fn rs_token(kid: &str, claims: Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.into());
    encode(
        &header,
        &claims,
        &EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).expect("rsa key"),
    )
    .expect("sign")
}

pub fn jwks_with(kids: &[&str]) -> String {
    let key = EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).expect("rsa key");
    let keys: Vec<Jwk> = kids
        .iter()
        .map(|kid| {
            let mut jwk = Jwk::from_encoding_key(&key, Algorithm::RS256).expect("jwk");
            jwk.common.key_id = Some(kid.to_string());
            jwk
        })
        .collect();
    serde_json::to_string(&JwkSet { keys }).expect("jwks json")
}

/// A fake JWKS endpoint: serves whatever document is set, counts requests, can be slow
/// or fail.
#[derive(Clone)]
pub struct FakeJwks {
    pub addr: SocketAddr,
    pub document: Arc<Mutex<String>>,
    pub hits: Arc<AtomicUsize>,
    pub delay_ms: Arc<AtomicU64>,
    pub status: Arc<AtomicU64>,
    handle: ServerHandle,
}

impl FakeJwks {
    pub fn url(&self) -> String {
        format!("http://{}/jwks.json", self.addr)
    }
    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}

pub async fn fake_jwks(document: String) -> FakeJwks {
    let document = Arc::new(Mutex::new(document));
    let hits = Arc::new(AtomicUsize::new(0));
    let delay_ms = Arc::new(AtomicU64::new(0));
    let status = Arc::new(AtomicU64::new(200));
    let state = (
        document.clone(),
        hits.clone(),
        delay_ms.clone(),
        status.clone(),
    );
    let (addr, handle) = serve_on_port_0!(move || {
        let state = state.clone();
        App::new().route(
            "/jwks.json",
            web::get().to(move || {
                let (document, hits, delay, status) = state.clone();
                async move {
                    hits.fetch_add(1, Ordering::SeqCst);
                    let wait = delay.load(Ordering::SeqCst);
                    if wait > 0 {
                        actix_web::rt::time::sleep(Duration::from_millis(wait)).await;
                    }
                    let code = status.load(Ordering::SeqCst) as u16;
                    let body = document.lock().expect("lock").clone();
                    HttpResponse::build(
                        actix_web::http::StatusCode::from_u16(code).expect("status"),
                    )
                    .content_type("application/json")
                    .body(body)
                }
            }),
        )
    });
    FakeJwks {
        addr,
        document,
        hits,
        delay_ms,
        status,
        handle,
    }
}

/// An upstream application that echoes the headers it received as JSON.
pub struct Echo {
    pub addr: SocketAddr,
    handle: ServerHandle,
}

impl Echo {
    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}

pub async fn echo_upstream() -> Echo {
    let (addr, handle) = serve_on_port_0!(|| {
        App::new().default_service(web::to(|req: HttpRequest| async move {
            let headers: Vec<(String, String)> = req
                .headers()
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            HttpResponse::Ok().json(json!({
                "method": req.method().as_str(),
                "uri": req.uri().to_string(),
                "headers": headers,
            }))
        }))
    });
    Echo { addr, handle }
}

/// Header values of a given name that the echo upstream saw.
pub fn echoed<'a>(body: &'a Value, name: &str) -> Vec<&'a str> {
    body["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .filter(|pair| {
            pair[0]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        })
        .filter_map(|pair| pair[1].as_str())
        .collect()
}

/// Whether a real proxy binary is there. In CI its absence fails the test; elsewhere the
/// test is skipped with a printed reason.
pub fn require_binary(name: &str, candidates: &[&str]) -> Option<String> {
    for candidate in candidates {
        if std::path::Path::new(candidate).exists() {
            return Some(candidate.to_string());
        }
    }
    if let Ok(path) = which(name) {
        return Some(path);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "{name} is required in CI but was not found (the README's test command installs it)"
        );
    }
    eprintln!("SKIPPED: {name} is not installed; install it to run the end-to-end tests");
    None
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

/// One scripted answer of the fake auth backend.
#[derive(Clone, Debug, Default)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            ..Reply::default()
        }
    }
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Reply {
        self.body = body.into();
        self
    }
    pub fn delay(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

/// What the fake backend received.
#[derive(Clone, Debug)]
pub struct Received {
    pub method: String,
    pub uri: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// An auth backend on port 0 that answers from a script (then a default) and records
/// every request.
#[derive(Clone)]
pub struct FakeBackend {
    pub addr: SocketAddr,
    script: Arc<Mutex<std::collections::VecDeque<Reply>>>,
    default: Arc<Mutex<Reply>>,
    received: Arc<Mutex<Vec<Received>>>,
    handle: ServerHandle,
}

impl FakeBackend {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
    pub fn set_default(&self, reply: Reply) {
        *self.default.lock().expect("lock") = reply;
    }
    pub fn push(&self, reply: Reply) {
        self.script.lock().expect("lock").push_back(reply);
    }
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("lock").clone()
    }
    pub fn hits(&self) -> usize {
        self.received.lock().expect("lock").len()
    }
    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}

pub async fn fake_backend(default: Reply) -> FakeBackend {
    let script = Arc::new(Mutex::new(std::collections::VecDeque::new()));
    let default = Arc::new(Mutex::new(default));
    let received = Arc::new(Mutex::new(Vec::new()));
    let state = (script.clone(), default.clone(), received.clone());
    let (addr, handle) = serve_on_port_0!(move || {
        let state = state.clone();
        App::new().default_service(web::to(move |req: HttpRequest, payload: web::Payload| {
            let (script, default, received) = state.clone();
            async move {
                // An upgrade request's "body" is the rest of the connection: never wait for it.
                let body = if req.headers().contains_key("upgrade") {
                    web::Bytes::new()
                } else {
                    payload.to_bytes().await.unwrap_or_default()
                };
                received.lock().expect("lock").push(Received {
                    method: req.method().to_string(),
                    uri: req.uri().to_string(),
                    headers: req
                        .headers()
                        .iter()
                        .map(|(n, v)| {
                            (
                                n.as_str().to_string(),
                                String::from_utf8_lossy(v.as_bytes()).into_owned(),
                            )
                        })
                        .collect(),
                    body: body.to_vec(),
                });
                let reply = script
                    .lock()
                    .expect("lock")
                    .pop_front()
                    .unwrap_or_else(|| default.lock().expect("lock").clone());
                if !reply.delay.is_zero() {
                    actix_web::rt::time::sleep(reply.delay).await;
                }
                let mut response = HttpResponse::build(
                    actix_web::http::StatusCode::from_u16(reply.status).expect("status"),
                );
                for (n, v) in &reply.headers {
                    response.insert_header((n.as_str(), v.as_str()));
                }
                response.body(reply.body)
            }
        }))
    });
    FakeBackend {
        addr,
        script,
        default,
        received,
        handle,
    }
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
/// missing outside CI.
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

/// Starts verdict from a configuration file, with environment overrides (as a deployment
/// would set them).
pub async fn start_file(path: &str, env: &[(&str, String)]) -> Verdict {
    verdict::init_crypto();
    capture_logs();
    let mut overrides: std::collections::HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    overrides.insert("VERDICT__SERVER__LISTEN".into(), "127.0.0.1:0".into());
    overrides.insert("VERDICT__SERVER__ADMIN_LISTEN".into(), "127.0.0.1:0".into());
    overrides.insert("VERDICT__SERVER__WORKERS".into(), "1".into());
    let file = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path);
    let config = Config::load(&verdict::config::Source {
        file: Some(file),
        env: Some(overrides),
    })
    .unwrap_or_else(|e| panic!("{path}: {e}"));
    run(config).await
}
