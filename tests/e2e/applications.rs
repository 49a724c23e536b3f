//! A real application behind every real proxy: PHP's own server running
//! `tests/apps/method_app.php`, which runs a request as the method a PHP framework would
//! (`_method` in a form body or the query under every name PHP folds to it, the override
//! headers and their aliases, HEAD as GET). What the application ran is the truth: no
//! request a user sends may run a handler the policy reserves for admins.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::proxies::{Kind, start_proxy, start_proxy_with};
use crate::support::*;

/// PHP's built-in server running the method application; stopped by its PID when dropped.
struct PhpApp {
    child: Child,
    addr: SocketAddr,
    runs: tempfile::NamedTempFile,
}

impl Drop for PhpApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl PhpApp {
    fn start() -> Option<PhpApp> {
        let php = require_binary("php", &["/usr/bin/php"])?;
        let runs = tempfile::NamedTempFile::new().expect("run log");
        let port = free_port();
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/apps/method_app.php");
        let child = Command::new(php)
            .arg("-S")
            .arg(format!("127.0.0.1:{port}"))
            .arg(&script)
            .env("APP_LOG", runs.path())
            // one worker per request in flight: a proxy may hold connections open
            .env("PHP_CLI_SERVER_WORKERS", "4")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start php");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "php did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(PhpApp { child, addr, runs })
    }

    /// Every handler the application ran: (method, path, the user verdict named).
    fn runs(&self) -> Vec<(String, String, String)> {
        std::fs::read_to_string(self.runs.path())
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .map(|run| {
                let field = |name: &str| run[name].as_str().unwrap_or_default().to_string();
                (field("method"), field("path"), field("user"))
            })
            .collect()
    }
}

/// Whether a handler run is one the policy reserves for admins.
fn reserved((method, path, _): &(String, String, String)) -> bool {
    ["DELETE", "PUT", "PATCH"].contains(&method.as_str())
        || (method == "GET" && (path == "/app/export" || path.starts_with("/app/export/")))
}

/// Sends raw bytes to the proxy and returns the status it answered.
fn status_of(proxy: u16, request: &str) -> u16 {
    let (bytes, _) = raw(
        SocketAddr::from(([127, 0, 0, 1], proxy)),
        request.as_bytes(),
        Duration::from_secs(5),
    );
    String::from_utf8_lossy(&bytes)
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// One request of a user (a reader, no admin role) through the proxy, by raw bytes so
/// that nothing on our side tidies a header name or a body.
fn user_request(proxy: u16, method: &str, uri: &str, headers: &[(&str, &str)], body: &str) -> u16 {
    let mut request = format!(
        "{method} {uri} HTTP/1.1\r\nHost: 127.0.0.1:{proxy}\r\nAuthorization: Bearer valid-token\r\nConnection: close\r\n"
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    request.push_str(body);
    status_of(proxy, &request)
}

const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");
const MULTIPART_TYPE: (&str, &str) = ("Content-Type", "multipart/form-data; boundary=XyZ");
const MULTIPART: &str =
    "--XyZ\r\nContent-Disposition: form-data; name=\"_method\"\r\n\r\nDELETE\r\n--XyZ--\r\n";

/// Every way a user's request could be run as a method the policy keeps for admins.
fn tricks(proxy: u16) -> Vec<(String, u16)> {
    let mut out = Vec::new();
    let mut send = |what: &str, status: u16| out.push((what.to_string(), status));
    send(
        "DELETE",
        user_request(proxy, "DELETE", "/app/items/1", &[], ""),
    );
    send(
        "form _method",
        user_request(
            proxy,
            "POST",
            "/app/items/1",
            &[FORM],
            "title=x&_method=DELETE",
        ),
    );
    send(
        "form .method",
        user_request(
            proxy,
            "POST",
            "/app/items/1",
            &[FORM],
            "title=x&.method=PUT",
        ),
    );
    send(
        "multipart _method",
        user_request(proxy, "POST", "/app/items/1", &[MULTIPART_TYPE], MULTIPART),
    );
    for query in [
        "_method=DELETE",
        ".method=DELETE",
        "%20_method=DELETE",
        "+_method=DELETE",
        "_method%00=DELETE",
        "_method%00x=PATCH",
    ] {
        send(
            &format!("query {query}"),
            user_request(proxy, "POST", &format!("/app/items/1?{query}"), &[], ""),
        );
    }
    for name in [
        "X-HTTP-Method-Override",
        "X-HTTP-Method",
        "X-Method-Override",
        "X.HTTP.Method.Override",
        "X_HTTP_Method_Override",
        "X.Method.Override",
    ] {
        send(
            &format!("header {name}"),
            user_request(proxy, "POST", "/app/items/1", &[(name, "DELETE")], ""),
        );
    }
    send(
        "HEAD export",
        user_request(proxy, "HEAD", "/app/export", &[], ""),
    );
    send(
        "GET export",
        user_request(proxy, "GET", "/app/export", &[], ""),
    );
    send(
        "override HEAD export",
        user_request(
            proxy,
            "POST",
            "/app/export",
            &[("X-HTTP-Method-Override", "HEAD")],
            "",
        ),
    );
    send(
        "form HEAD export",
        user_request(proxy, "POST", "/app/export", &[FORM], "_method=HEAD"),
    );
    send(
        "query HEAD export",
        user_request(proxy, "POST", "/app/export?_method=head", &[], ""),
    );
    out
}

async fn no_reserved_handler_runs(kind: Kind, traefik_forward_body: bool) {
    let Some(app) = PhpApp::start() else {
        return;
    };
    // writes and the export are the admins'; the rest needs any user
    let grpc = if kind == Kind::EnvoyGrpc {
        "grpc_listen = \"127.0.0.1:0\""
    } else {
        ""
    };
    let v = start(grpc, &format!("{DEMO_KEYS}{}", ADMIN_METHODS)).await;
    let asked = v.grpc.unwrap_or(v.addr);
    let proxy = if traefik_forward_body {
        start_proxy_with(kind, asked, app.addr, |text| {
            text.replace(
                "        trustForwardHeader: false\n",
                "        trustForwardHeader: false\n        forwardBody: true\n        maxBodySize: 65536\n",
            )
        })
    } else {
        start_proxy(kind, asked, app.addr)
    };
    let Some(proxy) = proxy else {
        return;
    };
    // the application works: a user's GET and an admin's DELETE are run as such
    assert_eq!(
        user_request(proxy.port, "GET", "/app/items/1", &[], ""),
        200,
        "{kind:?}"
    );
    let admin = format!(
        "DELETE /app/items/1 HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer admin-token\r\nConnection: close\r\n\r\n",
        proxy.port
    );
    assert_eq!(
        status_of(proxy.port, &admin),
        200,
        "{kind:?}: an admin deletes"
    );
    let before = app.runs().len();
    let tried = tricks(proxy.port);
    let runs = app.runs();
    let ran: Vec<_> = runs[before..].iter().filter(|run| reserved(run)).collect();
    assert!(
        ran.is_empty(),
        "{kind:?}: a user's request ran a handler the policy keeps for admins: {ran:?}\nanswers: {tried:?}"
    );
    // (a proxy may also drop a trick on its way: nginx, Traefik and Caddy drop the
    // aliases of a header themselves, and the application then runs the POST it was)
    // where the proxy sends the body, a form without _method is the POST it says it is
    if matches!(kind, Kind::Envoy | Kind::EnvoyGrpc) || traefik_forward_body {
        let status = user_request(proxy.port, "POST", "/app/items/1", &[FORM], "title=x");
        assert_eq!(status, 200, "{kind:?}: a plain form POST");
        assert!(
            app.runs()
                .iter()
                .any(|(m, p, u)| m == "POST" && p == "/app/items/1" && u == "u-123")
        );
    }
    drop(proxy);
    v.stop().await;
}

#[actix_web::test]
async fn behind_nginx_no_user_request_runs_an_admin_handler() {
    no_reserved_handler_runs(Kind::Nginx, false).await;
}

#[actix_web::test]
async fn behind_traefik_no_user_request_runs_an_admin_handler() {
    no_reserved_handler_runs(Kind::Traefik, false).await;
}

#[actix_web::test]
async fn behind_traefik_with_forward_body_no_user_request_runs_an_admin_handler() {
    no_reserved_handler_runs(Kind::Traefik, true).await;
}

#[actix_web::test]
async fn behind_caddy_no_user_request_runs_an_admin_handler() {
    no_reserved_handler_runs(Kind::Caddy, false).await;
}

#[actix_web::test]
async fn behind_envoy_no_user_request_runs_an_admin_handler() {
    no_reserved_handler_runs(Kind::Envoy, false).await;
}

#[actix_web::test]
async fn behind_haproxy_no_user_request_runs_an_admin_handler() {
    no_reserved_handler_runs(Kind::Haproxy, false).await;
}

#[actix_web::test]
async fn behind_envoy_over_grpc_no_user_request_runs_an_admin_handler() {
    no_reserved_handler_runs(Kind::EnvoyGrpc, false).await;
}
