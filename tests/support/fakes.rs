//! Fake services on port 0: a JWKS endpoint, an auth backend that answers from a script
//! and records every request, and an upstream that echoes what it received. Each counts
//! what it was asked, so tests count calls here rather than inside verdict.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

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

/// An `http` authorizer named `backend` asking `urls` in `protocol`, with short timeouts
/// and `extra` TOML lines of its own.
pub fn http_authorizer(urls: &[String], protocol: &str, extra: &str) -> String {
    let urls: Vec<String> = urls.iter().map(|u| format!("{u:?}")).collect();
    format!(
        "[authorizers.backend]\ntype = \"http\"\nprotocol = \"{protocol}\"\nurls = [{}]\nrequest_timeout = \"500ms\"\nconnect_timeout = \"300ms\"\nretry_backoff = \"20ms\"\n{extra}\n",
        urls.join(", ")
    )
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
                    // appended: a reply may send a header more than once
                    response.append_header((n.as_str(), v.as_str()));
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
