//! Every proxy, for real: nginx, Traefik, Caddy and Envoy run the shipped configs in
//! front of a recording app, with verdict deciding. Each gets the same client-side suite.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Nginx,
    Traefik,
    Caddy,
    Envoy,
    /// Envoy with `envoy/envoy-grpc.yaml`: ext_authz over gRPC.
    EnvoyGrpc,
    Haproxy,
}

/// A proxy we started; stopped by its PID when dropped.
pub struct Proxy {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // SIGTERM first: nginx's master then stops its workers, which a SIGKILL of the
        // master would leave behind
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proxy {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// Everything the proxy wrote to its standard output and error.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("proxy.log")).unwrap_or_default()
    }
}

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn shipped(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Replaces `from` with `to`, insisting that the shipped file still has `from`.
fn swap(text: String, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "the shipped config no longer contains {from:?}"
    );
    text.replace(from, to)
}

impl Kind {
    fn program(self) -> &'static str {
        match self {
            Kind::Nginx => "nginx",
            Kind::Traefik => "traefik",
            Kind::Caddy => "caddy",
            Kind::Envoy | Kind::EnvoyGrpc => "envoy",
            Kind::Haproxy => "haproxy",
        }
    }
}

/// The command the README's "Run a proxy" section gives for `kind`, as words: what a
/// user runs from the repository root, and what the suite runs.
pub fn readme_command(kind: Kind) -> Vec<String> {
    let readme = shipped("README.md");
    let section = &readme[readme
        .find("### Run a proxy")
        .expect("the README's run section")..];
    let block = &section[section.find("```sh").expect("its commands")..];
    let block = &block[..block[3..].find("```").expect("the block's end") + 3];
    let line = block
        .lines()
        .filter(|l| l.split_whitespace().next() == Some(kind.program()))
        .find(|l| (kind == Kind::EnvoyGrpc) == l.contains("envoy-grpc.yaml"))
        .unwrap_or_else(|| panic!("the README gives no command for {}", kind.program()));
    let command = line.split('#').next().unwrap_or_default();
    command.split_whitespace().map(str::to_string).collect()
}

fn proxy_binary(kind: Kind) -> Option<String> {
    let name = kind.program();
    let candidates: Vec<PathBuf> = match kind {
        Kind::Nginx => vec![PathBuf::from("/usr/sbin/nginx")],
        Kind::Haproxy => vec![PathBuf::from("/usr/sbin/haproxy")],
        Kind::Traefik | Kind::Caddy | Kind::Envoy | Kind::EnvoyGrpc => {
            let mut candidates = vec![repo("build/proxies/bin").join(name)];
            if let Ok(dir) = std::env::var("VERDICT_PROXY_BIN") {
                candidates.insert(0, Path::new(&dir).join(name));
            }
            candidates
        }
    };
    let candidates: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
    let refs: Vec<&str> = candidates.iter().map(String::as_str).collect();
    require_binary(name, &refs)
}

/// Starts a proxy of `kind` with its shipped configuration in front of `app`, asking
/// `verdict`. `None` only when the binary is missing and `VERDICT_E2E=skip` is set.
pub fn start_proxy(kind: Kind, verdict: SocketAddr, app: SocketAddr) -> Option<Proxy> {
    start_proxy_with(kind, verdict, app, |text| text)
}

/// nginx running the main config with `site` as its site file instead of the shipped
/// one (given the shipped one, which it may ignore): for the README's snippets. The
/// site's `listen 80;` is moved to a free loopback port like the shipped one's.
pub fn start_proxy_snippet(site: impl Fn(String) -> String) -> Option<Proxy> {
    let unused = SocketAddr::from(([127, 0, 0, 1], 9));
    start_proxy_with(Kind::Nginx, unused, unused, |shipped_site| {
        let port = shipped_site
            .lines()
            .find_map(|l| l.trim().strip_prefix("listen 127.0.0.1:"))
            .expect("the moved listen line")
            .trim_end_matches(';')
            .to_string();
        swap(
            site(shipped_site),
            "listen 80;",
            &format!("listen 127.0.0.1:{port};"),
        )
    })
}

/// [`start_proxy`] with `tweak` applied to the proxy's site file (nginx's verdict.conf,
/// Traefik's dynamic.yml, the Caddyfile, envoy.yaml). The shipped files are copied into
/// a scratch folder laid out like the repository, their addresses swapped for free
/// loopback ports, and the README's command runs there.
pub fn start_proxy_with(
    kind: Kind,
    verdict: SocketAddr,
    app: SocketAddr,
    tweak: impl Fn(String) -> String,
) -> Option<Proxy> {
    let binary = proxy_binary(kind)?;
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().to_path_buf();
    let port = free_port();
    let log = std::fs::File::create(root.join("proxy.log")).expect("log file");
    let place = |path: &str, text: String| {
        let full = root.join(path);
        std::fs::create_dir_all(full.parent().expect("a folder")).expect("mkdir");
        std::fs::write(full, text).expect("write");
    };
    let scratch = root.join("scratch");
    std::fs::create_dir_all(&scratch).expect("scratch");
    match kind {
        Kind::Nginx => {
            let site = shipped("nginx/verdict.conf");
            let site = swap(site, "127.0.0.1:8080", &verdict.to_string());
            let site = swap(site, "127.0.0.1:9000", &app.to_string());
            let site = swap(site, "listen 80;", &format!("listen 127.0.0.1:{port};"));
            let site = site.replace(
                "/var/cache/nginx/verdict",
                &scratch.join("cache").display().to_string(),
            );
            place("nginx/verdict.conf", tweak(site));
            // its own pid file and scratch folders, so that instances never share them
            let mut main = shipped("nginx/nginx.conf");
            for path in [
                "/tmp/verdict-nginx.pid",
                "/tmp/verdict-nginx-body",
                "/tmp/verdict-nginx-proxy",
                "/tmp/verdict-nginx-fastcgi",
                "/tmp/verdict-nginx-uwsgi",
                "/tmp/verdict-nginx-scgi",
            ] {
                let own = scratch.join(path.trim_start_matches("/tmp/"));
                main = swap(main, path, &own.display().to_string());
            }
            let main = swap(main, "worker_processes auto;", "worker_processes 1;");
            let main = swap(main, "error_log stderr warn;", "error_log stderr info;");
            place("nginx/nginx.conf", main);
        }
        Kind::Traefik => {
            let dynamic = shipped("traefik/dynamic.yml");
            let dynamic = swap(dynamic, "127.0.0.1:8080", &verdict.to_string());
            let dynamic = swap(dynamic, "127.0.0.1:9000", &app.to_string());
            place("traefik/dynamic.yml", tweak(dynamic));
            let static_config = shipped("traefik/traefik.yml");
            let static_config = swap(
                static_config,
                "address: \":80\"",
                &format!("address: \"127.0.0.1:{port}\""),
            );
            place("traefik/traefik.yml", static_config);
        }
        Kind::Caddy => {
            let caddyfile = shipped("caddy/Caddyfile");
            let caddyfile = swap(caddyfile, "127.0.0.1:8080", &verdict.to_string());
            let caddyfile = swap(caddyfile, "127.0.0.1:9000", &app.to_string());
            let caddyfile = swap(caddyfile, ":80 {", &format!(":{port} {{\n\tbind 127.0.0.1"));
            place("caddy/Caddyfile", tweak(caddyfile));
        }
        Kind::Envoy => {
            let yaml = shipped("envoy/envoy.yaml");
            let yaml = swap(yaml, "port_value: 10000", &format!("port_value: {port}"));
            let yaml = swap(yaml, "address: 0.0.0.0", "address: 127.0.0.1");
            let yaml = swap(
                yaml,
                "port_value: 9901",
                &format!("port_value: {}", free_port()),
            );
            let yaml = swap(
                yaml,
                "port_value: 8080",
                &format!("port_value: {}", verdict.port()),
            );
            let yaml = swap(
                yaml,
                "port_value: 9000",
                &format!("port_value: {}", app.port()),
            );
            place("envoy/envoy.yaml", tweak(yaml));
        }
        Kind::EnvoyGrpc => {
            let yaml = shipped("envoy/envoy-grpc.yaml");
            let yaml = swap(yaml, "port_value: 10000", &format!("port_value: {port}"));
            let yaml = swap(yaml, "address: 0.0.0.0", "address: 127.0.0.1");
            let yaml = swap(
                yaml,
                "port_value: 9901",
                &format!("port_value: {}", free_port()),
            );
            // `verdict` is the gRPC listener here
            let yaml = swap(
                yaml,
                "port_value: 9191",
                &format!("port_value: {}", verdict.port()),
            );
            let yaml = swap(
                yaml,
                "port_value: 9000",
                &format!("port_value: {}", app.port()),
            );
            place("envoy/envoy-grpc.yaml", tweak(yaml));
        }
        Kind::Haproxy => {
            let cfg = shipped("haproxy/haproxy.cfg");
            let cfg = swap(cfg, "127.0.0.1:8080", &verdict.to_string());
            let cfg = swap(cfg, "127.0.0.1:9000", &app.to_string());
            let cfg = swap(cfg, "bind :80", &format!("bind 127.0.0.1:{port}"));
            place("haproxy/haproxy.cfg", tweak(cfg));
            place("haproxy/verdict.lua", shipped("haproxy/verdict.lua"));
        }
    }
    // exactly the README's command, run where the repository's files would be
    let words = readme_command(kind);
    let mut command = Command::new(&binary);
    command
        .args(&words[1..])
        .current_dir(&root)
        .env("HOME", &scratch)
        .env("XDG_DATA_HOME", scratch.join("data"))
        .env("XDG_CONFIG_HOME", scratch.join("config"));
    let child = command
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start {binary}: {e}"));
    let proxy = Proxy { child, port, dir };
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{kind:?} did not start listening:\n{}",
            proxy.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Traefik listens before its file provider has loaded the routers: wait until a
    // request is routed (anything but 404) before the suite starts.
    if kind == Kind::Traefik {
        loop {
            let (bytes, _) = raw(
                SocketAddr::from(([127, 0, 0, 1], port)),
                b"GET /public/probe HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                Duration::from_secs(2),
            );
            if !bytes.starts_with(b"HTTP/1.1 404") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "Traefik never loaded its routers:\n{}",
                proxy.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Some(proxy)
}

pub const SUITE_ROUTES: &str = r#"
[[route]]
name = "admin-host"
host = "admin.example.com"
access = "deny"
[[route]]
name = "no-deletes"
path = "/app"
methods = ["DELETE"]
access = "deny"
[[route]]
name = "items-write"
path = "/api/items"
methods = ["POST"]
access = "authenticated"
roles = ["admin"]
[[route]]
name = "admin"
path = "/admin"
access = "authenticated"
roles = ["admin"]
[[route]]
name = "public"
path = "/public"
access = "public"
"#;

fn identity_seen(app: &FakeBackend, path_prefix: &str, header: &str) -> Vec<String> {
    app.received()
        .iter()
        .filter(|r| r.uri.starts_with(path_prefix))
        .flat_map(|r| {
            r.headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(header))
                .map(|(_, v)| v.clone())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The client-side suite every proxy must pass.
async fn suite(kind: Kind) {
    let grpc = if kind == Kind::EnvoyGrpc {
        "\ngrpc_listen = \"127.0.0.1:0\""
    } else {
        ""
    };
    let v = start(
        &format!("login_url = \"https://auth.example.com/login\"{grpc}"),
        &format!("{DEMO_KEYS}{SUITE_ROUTES}"),
    )
    .await;
    let app = fake_backend(Reply::status(200).body("from the app")).await;
    let asked = match kind {
        Kind::EnvoyGrpc => v.grpc.expect("the gRPC listener"),
        _ => v.addr,
    };
    let Some(proxy) = start_proxy(kind, asked, app.addr) else {
        return;
    };

    // allowed: reaches the app with verdict's identity; client copies never count
    let r = client()
        .get(proxy.url("/app/page?x=1"))
        .insert_header(("Authorization", "Bearer valid-token"))
        .insert_header(("x-authgear-user-id", "admin"))
        .insert_header(("X-Session-Name", "root"))
        .sent()
        .await;
    assert_eq!(r.status(), 200, "{kind:?}: allowed\n{}", proxy.log());
    assert_eq!(
        identity_seen(&app, "/app/page", "x-authgear-user-id"),
        vec!["u-123"],
        "{kind:?}"
    );
    assert_eq!(
        identity_seen(&app, "/app/page", "x-session-name"),
        vec!["alice"],
        "{kind:?}"
    );
    assert_eq!(
        identity_seen(&app, "/app/page", "x-authgear-user-roles"),
        vec!["reader"],
        "{kind:?}"
    );

    // a public page: the client's identity headers never reach the app as identity
    let r = client()
        .get(proxy.url("/public/x"))
        .insert_header(("x-authgear-user-id", "admin"))
        .insert_header(("X-Session-Name", "root"))
        .sent()
        .await;
    assert_eq!(r.status(), 200, "{kind:?}: public");
    for header in ["x-authgear-user-id", "x-session-name"] {
        let seen = identity_seen(&app, "/public/x", header);
        assert!(
            seen.iter().all(|v| v.is_empty()),
            "{kind:?}: {header} reached the app as {seen:?}"
        );
    }

    bypass_classes(kind, &proxy, &app).await;

    // aliases of identity headers (CGI-style apps read X_Authgear_User_Id as the real one)
    for (alias, value) in [("X_Authgear_User_Id", "admin"), ("X.Session.Name", "root")] {
        let r = client()
            .get(proxy.url("/app/alias"))
            .insert_header(("Authorization", "Bearer valid-token"))
            .insert_header((alias, value))
            .sent()
            .await;
        let cgi = |name: &str| {
            name.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_uppercase()
                    } else {
                        '_'
                    }
                })
                .collect::<String>()
        };
        let leaked = app
            .received()
            .iter()
            .filter(|req| req.uri.starts_with("/app/alias"))
            .flat_map(|req| req.headers.clone())
            .any(|(name, v)| cgi(&name) == cgi(alias) && v == value);
        assert!(
            !leaked,
            "{kind:?}: {alias} reached the app (status {})",
            r.status()
        );
    }

    // no token: 401 for an API client, a 302 to the login page for a browser
    let r = client()
        .get(proxy.url("/app/page"))
        .insert_header(("Accept", "application/json"))
        .sent()
        .await;
    assert_eq!(r.status(), 401, "{kind:?}: no token");
    let r = client()
        .get(proxy.url("/app/page?x=1"))
        .insert_header(("Accept", "text/html,application/xhtml+xml"))
        .sent()
        .await;
    assert_eq!(r.status(), 302, "{kind:?}: browser without a token");
    let expected = format!(
        "https://auth.example.com/login?rd=http%3A%2F%2F127.0.0.1%3A{}%2Fapp%2Fpage%3Fx%3D1",
        proxy.port
    );
    assert_eq!(
        r.headers()
            .get("location")
            .map(|l| l.to_str().expect("ascii")),
        Some(expected.as_str()),
        "{kind:?}"
    );
    assert!(
        r.headers().get("x-authgear-user-id").is_none(),
        "{kind:?}: a deny carries no identity"
    );

    // forbidden route
    let r = client()
        .get(proxy.url("/admin/panel"))
        .insert_header(("Authorization", "Bearer valid-token"))
        .sent()
        .await;
    assert_eq!(r.status(), 403, "{kind:?}: forbidden");

    // the original method, path and query reach verdict
    let r = client()
        .post(proxy.url("/api/items?id=7"))
        .insert_header(("Authorization", "Bearer valid-token"))
        .sent()
        .await;
    assert_eq!(
        r.status(),
        403,
        "{kind:?}: POST /api/items is the POST rule"
    );
    let r = client()
        .post(proxy.url("/api/items?id=7"))
        .insert_header(("Authorization", "Bearer admin-token"))
        .send_body("{}")
        .await
        .expect("send");
    assert_eq!(r.status(), 200, "{kind:?}: admin may POST");
    let r = client()
        .get(proxy.url("/api/items?id=7"))
        .insert_header(("Authorization", "Bearer valid-token"))
        .sent()
        .await;
    assert_eq!(r.status(), 200, "{kind:?}: GET is not the POST rule");
    assert!(
        app.received()
            .iter()
            .any(|r| r.method == "POST" && r.uri == "/api/items?id=7"),
        "{kind:?}"
    );

    // a WebSocket upgrade is authorised like any other request
    let before = app.hits();
    let r = client()
        .get(proxy.url("/ws/no-token"))
        .insert_header(("Connection", "Upgrade"))
        .insert_header(("Upgrade", "websocket"))
        .insert_header(("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="))
        .insert_header(("Sec-WebSocket-Version", "13"))
        .send()
        .await;
    if let Ok(r) = r {
        assert_eq!(r.status(), 401, "{kind:?}: WebSocket without a token");
    }
    assert_eq!(
        app.hits(),
        before,
        "{kind:?}: an unauthorised upgrade never reaches the app"
    );
    let upgraded = client()
        .get(proxy.url("/ws/token"))
        .insert_header(("Connection", "Upgrade"))
        .insert_header(("Upgrade", "websocket"))
        .insert_header(("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="))
        .insert_header(("Sec-WebSocket-Version", "13"))
        .insert_header(("Authorization", "Bearer valid-token"))
        .send()
        .await
        .map(|r| r.status().as_u16());
    assert_eq!(
        identity_seen(&app, "/ws/token", "x-authgear-user-id"),
        vec!["u-123"],
        "{kind:?}: the upgrade reached the app with the identity (client got {upgraded:?})\n{}",
        proxy.log()
    );

    // verdict down: the client gets a failure, never the app's page
    v.stop().await;
    let before = app.hits();
    let r = client()
        .get(proxy.url("/app/after"))
        .insert_header(("Authorization", "Bearer valid-token"))
        .send()
        .await;
    if let Ok(mut r) = r {
        assert_ne!(r.status(), 200, "{kind:?}: verdict down");
        let body = r.body().await.unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&body).contains("from the app"),
            "{kind:?}"
        );
    }
    assert_eq!(
        app.hits(),
        before,
        "{kind:?}: nothing reached the app while verdict was down"
    );
    drop(proxy);
    app.stop().await;
}

#[actix_web::test]
async fn nginx_runs_the_suite() {
    suite(Kind::Nginx).await;
}

#[actix_web::test]
async fn traefik_runs_the_suite() {
    suite(Kind::Traefik).await;
}

#[actix_web::test]
async fn caddy_runs_the_suite() {
    suite(Kind::Caddy).await;
}

#[actix_web::test]
async fn envoy_over_grpc_runs_the_suite() {
    suite(Kind::EnvoyGrpc).await;
}

#[actix_web::test]
async fn haproxy_runs_the_suite() {
    suite(Kind::Haproxy).await;
}

/// Whether a path the application received reads, under any reading an application could
/// make of it, as the `/admin` area.
fn reads_as_admin(uri: &str) -> bool {
    let Ok((path, query, raw_uri)) = verdict::request::split_uri(uri.as_bytes()) else {
        return false;
    };
    let target = verdict::request::Target {
        path: Some(path.clone()),
        query,
        raw_uri: Some(raw_uri),
        ..Default::default()
    };
    let readings = verdict::request::readings(&target, &[], verdict::request::FormBody::Absent)
        .unwrap_or_default();
    std::iter::once(path)
        .chain(readings.into_iter().filter_map(|r| r.path))
        .any(|p| {
            let p = p.to_ascii_lowercase();
            p == "/admin" || p.starts_with("/admin/")
        })
}

/// The bypass classes through a real proxy: the application never serves a request the
/// policy refuses, whatever the proxy does with it first.
async fn bypass_classes(kind: Kind, proxy: &Proxy, app: &FakeBackend) {
    let addr: SocketAddr = ([127, 0, 0, 1], proxy.port).into();
    let answer = |request: String| {
        let (bytes, _) = raw(addr, request.as_bytes(), Duration::from_secs(3));
        String::from_utf8_lossy(&bytes).to_string()
    };
    let status = |text: &str| -> u16 {
        text.split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    };
    let served = |marker: &str| -> Vec<String> {
        app.received()
            .iter()
            .filter(|r| r.uri.contains(marker))
            .map(|r| r.uri.clone())
            .collect()
    };

    // a port, a trailing dot or case on the host never escapes an exact-host rule
    for host in [
        format!("admin.example.com:{}", proxy.port),
        format!("ADMIN.example.com.:{}", proxy.port),
    ] {
        let text = answer(format!(
            "GET /public/host-probe HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer valid-token\r\nConnection: close\r\n\r\n"
        ));
        assert_eq!(status(&text), 403, "{kind:?}: {host}\n{text}");
    }
    // an absolute request line names the host the proxy routes on, whatever Host says,
    // and a client's X-Original-URL never names another
    let text = answer(format!(
        "GET http://admin.example.com:{}/public/absolute-probe HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer valid-token\r\nConnection: close\r\n\r\n",
        proxy.port, proxy.port
    ));
    assert!(
        status(&text) != 200 && served("absolute-probe").is_empty(),
        "{kind:?}: absolute-form request line\n{text}"
    );
    let text = answer(format!(
        "GET /public/url-probe HTTP/1.1\r\nHost: admin.example.com:{}\r\nX-Original-URL: http://127.0.0.1:{}/public/url-probe\r\nAuthorization: Bearer valid-token\r\nConnection: close\r\n\r\n",
        proxy.port, proxy.port
    ));
    assert_eq!(
        status(&text),
        403,
        "{kind:?}: client X-Original-URL\n{text}"
    );
    assert!(served("host-probe").is_empty() && served("url-probe").is_empty());

    // every reading an application could make: a reader never reaches /admin
    for (n, uri) in [
        "/admin/../public/r",
        "/admin/%2e%2e/public/r",
        "/admin%2f..%2fpublic/r",
        "/admin/..%2fpublic/r",
        "/public/..;/admin/r",
        "/admin;x/r",
        "/admin\\panel",
        "/public\\..\\admin/r",
        "/admin./r",
        "/admin%20/r",
        "/ADMIN/r",
        "/Admin/r",
    ]
    .iter()
    .enumerate()
    {
        let marker = format!("reading-probe-{n}");
        let sep = if uri.contains('?') { '&' } else { '?' };
        let text = answer(format!(
            "GET {uri}{sep}{marker} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer valid-token\r\nConnection: close\r\n\r\n",
            proxy.port
        ));
        for received in served(&marker) {
            assert!(
                !reads_as_admin(&received),
                "{kind:?}: {uri} was served as {received} (status {})",
                status(&text)
            );
        }
    }

    // a method override the application may obey reaches a route the method does not
    let r = client()
        .get(proxy.url("/app/override-probe"))
        .insert_header(("Authorization", "Bearer valid-token"))
        .insert_header(("X-HTTP-Method-Override", "DELETE"))
        .sent()
        .await;
    assert_eq!(r.status(), 403, "{kind:?}: method override");
    assert!(served("override-probe").is_empty());

    // every credential source verdict reads reaches it
    let r = client()
        .get(proxy.url("/app/api-key-probe"))
        .insert_header(("X-Api-Key", "valid-token"))
        .sent()
        .await;
    assert_eq!(r.status(), 200, "{kind:?}: X-Api-Key\n{}", proxy.log());

    // every identity header of every family, and every alias of one, from the client
    for header in verdict::identity::IDENTITY_HEADERS {
        let name = header.name;
        for sent in [
            name.to_string(),
            name.replacen('-', ".", 1),
            name.replace('-', "_"),
        ] {
            let marker = format!("identity-probe-{sent}");
            let _ = client()
                .get(proxy.url(&format!("/public/x?{marker}")))
                .insert_header((sent.as_str(), "forged"))
                .sent()
                .await;
            let folded = |n: &str| n.to_ascii_lowercase().replace(['_', '.'], "-");
            let leaked = app
                .received()
                .iter()
                .filter(|r| r.uri.contains(&marker))
                .flat_map(|r| r.headers.clone())
                .any(|(n, v)| folded(&n) == name && v == "forged");
            assert!(!leaked, "{kind:?}: a client's {sent} reached the app");
        }
    }
}

#[actix_web::test]
async fn envoy_runs_the_suite() {
    suite(Kind::Envoy).await;
}

#[actix_web::test]
async fn nginx_decision_cache_option() {
    let v = start("", &format!("{DEMO_KEYS}{SUITE_ROUTES}")).await;
    let app = fake_backend(Reply::status(200)).await;
    let enable_cache = |text: String| {
        assert!(
            text.contains("#cache: "),
            "the shipped config lost its cache option"
        );
        text.replace("#cache: ", "")
    };
    let Some(proxy) = start_proxy_with(Kind::Nginx, v.addr, app.addr, enable_cache) else {
        return;
    };
    let send = |token: &'static str, path: &'static str| {
        client()
            .get(proxy.url(path))
            .insert_header(("Authorization", format!("Bearer {token}")))
            .send()
    };
    assert_eq!(
        send("valid-token", "/app/one")
            .await
            .expect("send")
            .status(),
        200
    );
    let after_first = v.decisions().await;
    assert_eq!(
        send("valid-token", "/app/one")
            .await
            .expect("send")
            .status(),
        200
    );
    assert_eq!(
        v.decisions().await,
        after_first,
        "the second check came from nginx's cache"
    );
    assert_eq!(
        send("admin-token", "/app/one")
            .await
            .expect("send")
            .status(),
        200
    );
    assert_eq!(
        v.decisions().await,
        after_first + 1,
        "another credential is another key"
    );
    assert_eq!(
        send("valid-token", "/admin/x")
            .await
            .expect("send")
            .status(),
        403,
        "another URI is another key"
    );
    assert_eq!(
        send("wrong-token", "/app/one")
            .await
            .expect("send")
            .status(),
        401
    );
    let seen = identity_seen(&app, "/app/one", "x-authgear-user-id");
    assert_eq!(
        seen,
        vec!["u-123", "u-123", "u-admin"],
        "cached answers still carry the identity"
    );
    // an admin's X-Api-Key answer is never served to the next request without one
    let with_key = client()
        .get(proxy.url("/admin/keyed"))
        .insert_header(("X-Api-Key", "admin-token"))
        .sent()
        .await;
    assert_eq!(with_key.status(), 200);
    let without = client().get(proxy.url("/admin/keyed")).sent().await;
    assert_eq!(
        without.status(),
        401,
        "the API key is part of the cache key"
    );
    drop(proxy);
    v.stop().await;
    app.stop().await;
}

#[actix_web::test]
async fn nginx_cache_keeps_an_answer_no_longer_than_verdict_says() {
    let v = start(
        "",
        &format!("[cache]\nallow_ttl = \"2s\"\ndeny_ttl = \"1s\"\n{DEMO_KEYS}{SUITE_ROUTES}"),
    )
    .await;
    let app = fake_backend(Reply::status(200)).await;
    let Some(proxy) = start_proxy_with(Kind::Nginx, v.addr, app.addr, |text| {
        text.replace("#cache: ", "")
    }) else {
        return;
    };
    let send = || {
        client()
            .get(proxy.url("/app/ttl"))
            .insert_header(("Authorization", "Bearer valid-token"))
    };
    assert_eq!(send().status().await, 200);
    let first = v.decisions().await;
    assert_eq!(send().status().await, 200);
    assert_eq!(v.decisions().await, first, "kept while verdict keeps it");
    actix_web::rt::time::sleep(Duration::from_millis(2600)).await;
    assert_eq!(send().status().await, 200);
    assert_eq!(
        v.decisions().await,
        first + 1,
        "nginx asked again once verdict's entry had expired"
    );
    // a deny is never kept: each one is decided again
    let denied = || {
        client()
            .get(proxy.url("/admin/ttl"))
            .insert_header(("Authorization", "Bearer valid-token"))
    };
    assert_eq!(denied().status().await, 403);
    let before = v.decisions().await;
    assert_eq!(denied().status().await, 403);
    assert_eq!(v.decisions().await, before + 1, "no-store");
    drop(proxy);
    v.stop().await;
    app.stop().await;
}

#[actix_web::test]
async fn the_compose_stack_configs_work_end_to_end() {
    // docker-compose.yml mounts exactly these files; no engine runs here, so the same
    // files run under real nginx and verdict instead.
    let compose = shipped("docker-compose.yml");
    for mount in [
        "./nginx/verdict.conf:",
        "./deploy/verdict.toml:",
        "./examples/backends/status_backend.py:",
        "./deploy/echo_app.py:",
    ] {
        assert!(
            compose.contains(mount),
            "docker-compose.yml no longer mounts {mount}"
        );
    }
    let Some(backend) = run_python("examples/backends/status_backend.py") else {
        return;
    };
    let Some(app) = run_python("deploy/echo_app.py") else {
        return;
    };
    // the variables the image and the compose file set, as they set them (the listeners
    // are then moved to free loopback ports)
    let mut env: Vec<(&str, String)> = Vec::new();
    let dockerfile = shipped("Dockerfile");
    for line in dockerfile.lines().chain(compose.lines()) {
        let line = line
            .trim()
            .trim_start_matches("ENV ")
            .trim_end_matches(" \\");
        let pair = line
            .split_once('=')
            .filter(|(k, _)| k.starts_with("VERDICT__"))
            .or_else(|| {
                line.split_once(": ")
                    .filter(|(k, _)| k.starts_with("VERDICT__"))
            });
        if let Some((key, value)) = pair {
            let key: &'static str = Box::leak(key.trim().to_string().into_boxed_str());
            env.push((key, value.trim().trim_matches('"').to_string()));
        }
    }
    let names: Vec<&str> = env.iter().map(|(k, _)| *k).collect();
    for expected in [
        "VERDICT__SERVER__LISTEN",
        "VERDICT__SERVER__ADMIN_LISTEN",
        "VERDICT__SERVER__TRUSTED_PROXIES",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} is set in the image or compose file"
        );
    }
    assert!(env.contains(&("VERDICT__SERVER__LISTEN", "0.0.0.0:8080".into())));
    env.push((
        "VERDICT__AUTHORIZERS__TV__URLS",
        format!("http://127.0.0.1:{}/check", backend.port),
    ));
    // the fleet's store, as the compose file names it, on a free port; its secrets from
    // the environment, as the compose file takes them
    assert!(env.contains(&(
        "VERDICT__SHARED__SECRET_ENV",
        "VERDICT_SHARED_SECRET".into()
    )));
    assert!(env.contains(&(
        "VERDICT__SHARED__ADMIN_TOKEN_ENV",
        "VERDICT_ADMIN_TOKEN".into()
    )));
    let Some(store) = crate::support::store::RedisServer::start(&[]) else {
        return;
    };
    env.retain(|(k, _)| *k != "VERDICT__SHARED__URLS");
    env.push(("VERDICT__SHARED__URLS", store.url()));
    let admin_token = "compose-admin-token-0123456789abcdef0123";
    env.push((
        "VERDICT_SHARED_SECRET",
        "compose-secret-0123456789abcdef0123456789".into(),
    ));
    env.push(("VERDICT_ADMIN_TOKEN", admin_token.into()));
    let v = start_file("deploy/verdict.toml", &env).await;
    let second = start_file("deploy/verdict.toml", &env).await;
    let app_addr = std::net::SocketAddr::from(([127, 0, 0, 1], app.port));
    let Some(nginx) = start_proxy(Kind::Nginx, v.addr, app_addr) else {
        return;
    };

    assert_eq!(client().get(nginx.url("/")).status().await, 401);
    let mut r = client()
        .get(nginx.url("/"))
        .insert_header(("Authorization", "Bearer demo-token-123"))
        .sent()
        .await;
    assert_eq!(r.status(), 200);
    let body: serde_json::Value =
        serde_json::from_slice(&r.body().await.expect("body")).expect("json");
    let headers = body["headers"].as_object().expect("headers");
    let user = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("x-authgear-user-id"))
        .map(|(_, v)| v.clone());
    assert_eq!(user, Some(serde_json::json!("demo")));

    let mut r = client()
        .get(nginx.url("/play/a001/index.m3u8?token=123"))
        .sent()
        .await;
    assert_eq!(r.status(), 200);
    let body: serde_json::Value =
        serde_json::from_slice(&r.body().await.expect("body")).expect("json");
    let name = body["headers"]
        .as_object()
        .expect("headers")
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("x-session-name"))
        .map(|(_, v)| v.clone());
    assert_eq!(name, Some(serde_json::json!("alice")));
    let r = client()
        .get(nginx.url("/play/a001/index.m3u8?token=999"))
        .sent()
        .await;
    assert_eq!(
        r.status(),
        302,
        "the demo backend sends unknown tokens to its promo stream"
    );
    // the README's fleet demo: revoked on the second instance, refused through nginx
    let revoked = client()
        .post(format!("http://{}/revoke", second.admin))
        .insert_header(("Authorization", format!("Bearer {admin_token}")))
        .send_body(r#"{"kind":"subject","value":"demo"}"#)
        .await
        .expect("revoke");
    assert_eq!(revoked.status(), 200);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let status = client()
            .get(nginx.url("/"))
            .insert_header(("Authorization", "Bearer demo-token-123"))
            .status()
            .await;
        if status == 401 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never refused: {status}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    drop(nginx);
    v.stop().await;
    second.stop().await;
}

/// No Docker engine runs here, so the Traefik Docker labels cannot be run; instead they
/// must say exactly what the dynamic file the suite runs says.
#[test]
fn traefik_docker_labels_match_the_tested_dynamic_file() {
    let labels = shipped("traefik/docker-labels.yml");
    let label = |key: &str| -> String {
        let prefix = format!("traefik.http.middlewares.verdict.forwardauth.{key}=");
        labels
            .lines()
            .filter_map(|l| {
                l.trim()
                    .trim_start_matches("- ")
                    .trim_matches('"')
                    .strip_prefix(&prefix)
                    .map(str::to_owned)
            })
            .next()
            .unwrap_or_else(|| panic!("label {key} missing"))
    };
    let dynamic = shipped("traefik/dynamic.yml");
    let field = |key: &str| -> String {
        dynamic
            .lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix(&format!("{key}:"))
                    .map(|v| v.trim().trim_matches('"').to_string())
            })
            .unwrap_or_else(|| panic!("{key} missing in dynamic.yml"))
    };
    let path_of = |url: &str| {
        url.split_once("://")
            .and_then(|(_, rest)| rest.split_once('/'))
            .map(|(_, p)| p.to_string())
    };
    assert_eq!(path_of(&label("address")), path_of(&field("address")));
    assert_eq!(label("trustForwardHeader"), field("trustForwardHeader"));
    assert_eq!(
        label("preserveLocationHeader"),
        field("preserveLocationHeader")
    );
    let mut from_labels: Vec<String> = label("authResponseHeaders")
        .split(',')
        .map(|h| h.to_ascii_lowercase())
        .collect();
    let mut from_file: Vec<String> = dynamic
        .lines()
        .skip_while(|l| !l.contains("authResponseHeaders:"))
        .skip(1)
        .take_while(|l| l.trim().starts_with("- "))
        .map(|l| {
            l.trim()
                .trim_start_matches("- ")
                .trim_matches('"')
                .to_ascii_lowercase()
        })
        .collect();
    from_labels.sort();
    from_file.sort();
    assert_eq!(from_labels, from_file);
    assert!(labels.contains("traefik.http.routers.app.middlewares=strip-certificates,verdict"));
    for name in [
        "X-Forwarded-Client-Cert",
        "X-SSL-Client-Cert",
        "X-Forwarded-Tls-Client-Cert",
        "X-Client-Cert",
    ] {
        assert!(labels.contains(&format!(
            "traefik.http.middlewares.strip-certificates.headers.customrequestheaders.{name}="
        )));
    }
}

#[actix_web::test]
async fn a_reload_under_load_through_nginx_causes_no_5xx() {
    let mut v = start_logged("", DEMO_KEYS).await;
    let app = fake_backend(Reply::status(200)).await;
    let Some(proxy) = start_proxy(Kind::Nginx, v.addr, app.addr) else {
        return;
    };
    let url = proxy.url("/app/load");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        actix_web::rt::spawn(async move {
            let client = client();
            let mut statuses = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let r = client
                    .get(&url)
                    .insert_header(("Authorization", "Bearer valid-token"))
                    .send()
                    .await;
                statuses.push(r.map(|r| r.status().as_u16()).unwrap_or(0));
            }
            statuses
        })
    };
    actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    for round in 0..3 {
        let path = v.config_path();
        let text = std::fs::read_to_string(&path).expect("config");
        std::fs::write(
            &path,
            format!(
                "{text}\n[[route]]\nname = \"r{round}\"\npath = \"/r{round}\"\naccess = \"deny\"\n"
            ),
        )
        .expect("write");
        v.signal("HUP");
        actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let statuses = load.await.expect("load");
    assert!(statuses.len() > 50, "{}", statuses.len());
    let failed: Vec<&u16> = statuses.iter().filter(|s| **s != 200).collect();
    assert!(
        failed.is_empty(),
        "through nginx: {failed:?}\n{}",
        proxy.log()
    );
    assert!(v.log().contains("in force (generation 3"), "{}", v.log());
    assert!(v.wait_for_exit(Duration::from_millis(10)).is_none());
    drop(proxy);
    v.stop().await;
    app.stop().await;
}

/// Any-of roles, scopes and claim matchers, through a real proxy: what the app sees is
/// what the rules say.
async fn claim_rules_through(kind: Kind) {
    let routes = "[[route]]\nname = \"editors\"\npath = \"/edit\"\naccess = \"authenticated\"\nroles_any = [\"editor\", \"admin\"]\n[[route]]\nname = \"org\"\npath = \"/org\"\naccess = \"authenticated\"\nscopes = [\"org:read\"]\nclaims = { \"org.id\" = \"42\" }\n";
    let v = start("", &format!("{}{routes}", jwt_hs(""))).await;
    let app = fake_backend(Reply::status(200).body("from the app")).await;
    let Some(proxy) = start_proxy(kind, v.addr, app.addr) else {
        return;
    };
    let with = |claims: serde_json::Value| {
        let mut all = user_claims("u7", &["reader"], 600);
        for (k, value) in claims.as_object().unwrap() {
            all[k] = value.clone();
        }
        hs_token(all)
    };
    for (path, token, expected) in [
        (
            "/edit/a",
            with(serde_json::json!({"roles": ["editor"]})),
            200,
        ),
        (
            "/edit/b",
            with(serde_json::json!({"roles": ["reader"]})),
            403,
        ),
        (
            "/org/c",
            with(serde_json::json!({"scope": "org:read", "org": {"id": "42"}})),
            200,
        ),
        (
            "/org/d",
            with(serde_json::json!({"scope": "org:read", "org": {"id": "7"}})),
            403,
        ),
        (
            "/org/e",
            with(serde_json::json!({"org": {"id": "42"}})),
            403,
        ),
    ] {
        let status = client()
            .get(proxy.url(path))
            .insert_header(("Authorization", format!("Bearer {token}")))
            .status()
            .await;
        assert_eq!(status, expected, "{kind:?} {path}");
        let reached = app.received().iter().any(|r| r.uri == path);
        assert_eq!(reached, expected == 200, "{kind:?}: {path} reached the app");
    }
    drop(proxy);
    v.stop().await;
}

#[actix_web::test]
async fn claim_rules_through_nginx() {
    claim_rules_through(Kind::Nginx).await;
}

#[actix_web::test]
async fn claim_rules_through_caddy() {
    claim_rules_through(Kind::Caddy).await;
}

/// An opaque token checked by introspection, through a real proxy.
async fn introspection_through(kind: Kind) {
    let issuer = fake_backend(Reply::status(200).body(r#"{"active": false}"#)).await;
    let body = format!(
        "[authorizers.opaque]\ntype = \"introspect\"\nurl = \"{}\"\nclient_id = \"verdict\"\nclient_secret_env = \"VERDICT_E2E_INTROSPECT_SECRET\"\n",
        issuer.url("/introspect")
    );
    let (v, _clock) =
        start_with_clock_env("", &body, &[("VERDICT_E2E_INTROSPECT_SECRET", "s3cret")]).await;
    let app = fake_backend(Reply::status(200).body("from the app")).await;
    let Some(proxy) = start_proxy(kind, v.addr, app.addr) else {
        return;
    };
    issuer.push(
        Reply::status(200)
            .header("content-type", "application/json")
            .body(format!(
                r#"{{"active": true, "sub": "opaque-user", "exp": {}}}"#,
                now() + 600
            )),
    );
    let status = client()
        .get(proxy.url("/app/in"))
        .insert_header(("Authorization", "Bearer opaque-token-1"))
        .status()
        .await;
    assert_eq!(status, 200, "{kind:?}: an active token");
    assert_eq!(
        identity_seen(&app, "/app/in", "x-authgear-user-id"),
        vec!["opaque-user"],
        "{kind:?}"
    );
    let status = client()
        .get(proxy.url("/app/out"))
        .insert_header(("Authorization", "Bearer opaque-token-2"))
        .status()
        .await;
    assert_eq!(status, 401, "{kind:?}: an inactive token");
    assert!(identity_seen(&app, "/app/out", "x-authgear-user-id").is_empty());
    drop(proxy);
    v.stop().await;
}

#[actix_web::test]
async fn introspection_through_nginx() {
    introspection_through(Kind::Nginx).await;
}

#[actix_web::test]
async fn introspection_through_traefik() {
    introspection_through(Kind::Traefik).await;
}

/// Basic credentials against an htpasswd file, through a real proxy.
async fn basic_through(kind: Kind) {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let hash = bcrypt::hash("correct horse", 4).unwrap();
    std::fs::write(dir.path().join("users.htpasswd"), format!("alice:{hash}\n")).unwrap();
    let v = start(
        "",
        &format!(
            "[authorizers.users]\ntype = \"basic\"\nhtpasswd_file = \"{}/users.htpasswd\"\n",
            dir.path().display()
        ),
    )
    .await;
    let app = fake_backend(Reply::status(200).body("from the app")).await;
    let Some(proxy) = start_proxy(kind, v.addr, app.addr) else {
        return;
    };
    let basic = |password: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("alice:{password}"))
        )
    };
    let status = client()
        .get(proxy.url("/app/in"))
        .insert_header(("Authorization", basic("correct horse")))
        .status()
        .await;
    assert_eq!(status, 200, "{kind:?}");
    assert_eq!(
        identity_seen(&app, "/app/in", "x-authgear-user-id"),
        vec!["alice"],
        "{kind:?}"
    );
    let status = client()
        .get(proxy.url("/app/out"))
        .insert_header(("Authorization", basic("wrong")))
        .status()
        .await;
    assert_eq!(status, 401, "{kind:?}");
    drop(proxy);
    v.stop().await;
}

#[actix_web::test]
async fn basic_credentials_through_nginx() {
    basic_through(Kind::Nginx).await;
}

#[actix_web::test]
async fn basic_credentials_through_haproxy() {
    basic_through(Kind::Haproxy).await;
}

/// A configured identity header through a real proxy: the app reads verdict's value, and
/// a client's copy never reaches it.
async fn custom_header_through(kind: Kind) {
    let grpc = if kind == Kind::EnvoyGrpc {
        "grpc_listen = \"127.0.0.1:0\""
    } else {
        ""
    };
    let v = start(
        grpc,
        &format!(
            "{}[headers.custom]\n\"X-User\" = \"${{identity.user_id}}\"\n",
            jwt_hs("")
        ),
    )
    .await;
    let app = fake_backend(Reply::status(200).body("from the app")).await;
    let asked = v.grpc.unwrap_or(v.addr);
    // what the README tells an operator to add to the shipped nginx file
    let proxy = start_proxy_with(kind, asked, app.addr, |text| {
        if kind != Kind::Nginx {
            return text;
        }
        text.replacen(
            "        auth_request_set $verdict_user_id        $upstream_http_x_authgear_user_id;\n",
            "        auth_request_set $verdict_user_id        $upstream_http_x_authgear_user_id;\n        auth_request_set $verdict_x_user         $upstream_http_x_user;\n",
            1,
        )
        .replacen(
            "        proxy_set_header x-authgear-user-id                   $verdict_user_id;\n",
            "        proxy_set_header x-authgear-user-id                   $verdict_user_id;\n        proxy_set_header X-User                               $verdict_x_user;\n",
            1,
        )
    });
    let Some(proxy) = proxy else {
        return;
    };
    let token = hs_token(user_claims("u-9", &["reader"], 600));
    let status = client()
        .get(proxy.url("/app/in"))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .status()
        .await;
    assert_eq!(status, 200, "{kind:?}");
    assert_eq!(
        identity_seen(&app, "/app/in", "x-user"),
        vec!["u-9"],
        "{kind:?}"
    );
    let status = client()
        .get(proxy.url("/app/copy"))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .insert_header(("X-User", "admin"))
        .status()
        .await;
    assert_ne!(status, 200, "{kind:?}: a client's copy");
    assert!(
        identity_seen(&app, "/app/copy", "x-user").is_empty(),
        "{kind:?}: a client's X-User reached the app"
    );
    drop(proxy);
    v.stop().await;
}

#[actix_web::test]
async fn a_custom_identity_header_through_nginx() {
    custom_header_through(Kind::Nginx).await;
}

#[actix_web::test]
async fn a_custom_identity_header_through_envoy_over_grpc() {
    custom_header_through(Kind::EnvoyGrpc).await;
}

/// A client's own certificate header never authenticates through a shipped proxy: each
/// sets or strips every certificate header name a certificate authorizer reads.
async fn client_certificate_headers_through(kind: Kind) {
    let pem = std::fs::read_to_string(repo("tests/fixtures/backend.cert.pem")).unwrap();
    let escaped =
        percent_encoding::utf8_percent_encode(&pem, percent_encoding::NON_ALPHANUMERIC).to_string();
    let grpc = if kind == Kind::EnvoyGrpc {
        "grpc_listen = \"127.0.0.1:0\""
    } else {
        ""
    };
    let v = start(
        grpc,
        "[authorizers.xfcc]\ntype = \"certificate\"\n[authorizers.pem]\ntype = \"certificate\"\nformat = \"pem-url\"\ntoken_sources = [\"header:x-ssl-client-cert\", \"header:x-client-cert\"]\n",
    )
    .await;
    // sent straight to verdict by a trusted peer, these are certificates
    let direct = auth_request(&v, "/x")
        .insert_header(("X-SSL-Client-Cert", escaped.clone()))
        .status()
        .await;
    assert_eq!(direct, 200, "the certificate itself is good");
    let app = fake_backend(Reply::status(200).body("from the app")).await;
    let Some(proxy) = start_proxy(kind, v.grpc.unwrap_or(v.addr), app.addr) else {
        return;
    };
    for (name, value) in [
        ("X-SSL-Client-Cert", escaped.clone()),
        ("X-Client-Cert", escaped.clone()),
        (
            "X-Forwarded-Client-Cert",
            format!("By=spiffe://x;Hash=1;Cert=\"{escaped}\";Subject=\"CN=localhost\""),
        ),
    ] {
        let status = client()
            .get(proxy.url("/app/cert"))
            .insert_header((name, value))
            .status()
            .await;
        assert_eq!(status, 401, "{kind:?}: a client's {name} counted");
    }
    assert!(app.received().iter().all(|r| r.uri != "/app/cert"));
    drop(proxy);
    v.stop().await;
}

/// An awc client that trusts the test CA and presents `identity` (a certificate and its
/// key), if any.
fn tls_client(identity: Option<(&str, &str)>) -> awc::Client {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    verdict::init_crypto();
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(repo("tests/fixtures/test-ca.pem")).unwrap() {
        roots.add(ca.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let tls = match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_file(repo(cert)).unwrap()],
                PrivateKeyDer::from_pem_file(repo(key)).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    awc::Client::builder()
        .connector(awc::Connector::new().rustls_0_23(std::sync::Arc::new(tls)))
        .timeout(Duration::from_secs(10))
        .disable_redirects()
        .finish()
}

fn mtls_client(cert: &str, key: &str) -> awc::Client {
    tls_client(Some((cert, key)))
}

/// The client CA's own certificate, over mTLS through `proxy`: admitted, and the app sees
/// `user` as the identity.
async fn admits_the_client_ca_certificate(proxy: &Proxy, app: &FakeBackend, user: &str) {
    let url = proxy.url("/app/mtls").replacen("http://", "https://", 1);
    let client_of_ca = mtls_client(
        "tests/fixtures/client.cert.pem",
        "tests/fixtures/client.key.pem",
    );
    let status = client_of_ca.get(url).send().await.unwrap().status();
    assert_eq!(status, 200, "{}", proxy.log());
    assert_eq!(
        identity_seen(app, "/app/mtls", "x-authgear-user-id"),
        vec![user]
    );
}

/// nginx asks for a client certificate without checking it (`optional_no_ca`) and
/// forwards it as the shipped file does; verdict's own CA bundle decides.
#[actix_web::test]
async fn a_client_certificate_through_nginx_is_verified_against_the_ca_file() {
    let ca = repo("tests/fixtures/client-ca.pem");
    let v = start(
        "",
        &format!(
            "[authorizers.services]\ntype = \"certificate\"\nformat = \"pem-url\"\ntoken_sources = [\"header:x-ssl-client-cert\"]\nuser_id = \"san.uri\"\nallow = [\"spiffe://example.org/ns/*/sa/*\"]\nca_file = \"{}\"\n",
            ca.display()
        ),
    )
    .await;
    let app = fake_backend(Reply::status(200).body("from the app")).await;
    let server_cert = repo("tests/fixtures/backend.cert.pem");
    let server_key = repo("tests/fixtures/backend.key.pem");
    let proxy = start_proxy_with(Kind::Nginx, v.addr, app.addr, |text| {
        let at = text.find("    listen 127.0.0.1:").expect("the listen line");
        let end = at + text[at..].find(';').expect("its end");
        format!(
            "{} ssl;\n    ssl_certificate {};\n    ssl_certificate_key {};\n    ssl_verify_client optional_no_ca;{}",
            &text[..end],
            server_cert.display(),
            server_key.display(),
            &text[end + 1..]
        )
    });
    let Some(proxy) = proxy else {
        return;
    };
    let url = |path: &str| proxy.url(path).replacen("http://", "https://", 1);
    admits_the_client_ca_certificate(&proxy, &app, "spiffe://example.org/ns/default/sa/app").await;
    // a certificate nginx took that names an allowed SPIFFE ID under an issuer of the
    // same name, signed by another key: not the client CA's
    let other = mtls_client(
        "tests/fixtures/rogue-client.cert.pem",
        "tests/fixtures/rogue-client.key.pem",
    );
    let status = other.get(url("/app/other")).send().await.unwrap().status();
    assert_eq!(status, 401);
    // no certificate at all, and a client's own header on top
    let pem = std::fs::read_to_string(repo("tests/fixtures/client.cert.pem")).unwrap();
    let escaped =
        percent_encoding::utf8_percent_encode(&pem, percent_encoding::NON_ALPHANUMERIC).to_string();
    let status = tls_client(None)
        .get(url("/app/none"))
        .insert_header(("X-SSL-Client-Cert", escaped))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 401);
    assert!(
        app.received()
            .iter()
            .all(|r| r.uri != "/app/other" && r.uri != "/app/none")
    );
    drop(proxy);
    v.stop().await;
}

/// Caddy verifies the client certificate against the client CA itself (`trust_pool`) and
/// forwards it the way the shipped Caddyfile's comment says; verdict maps it.
#[actix_web::test]
async fn a_client_certificate_caddy_verified_through_caddy() {
    let v = start(
        "",
        "[authorizers.services]\ntype = \"certificate\"\nformat = \"der-base64\"\ntoken_sources = [\"header:x-client-cert\"]\nuser_id = \"san.email\"\n",
    )
    .await;
    let app = fake_backend(Reply::status(200).body("from the app")).await;
    let (cert, key, ca) = (
        repo("tests/fixtures/backend.cert.pem"),
        repo("tests/fixtures/backend.key.pem"),
        repo("tests/fixtures/client-ca.pem"),
    );
    let proxy = start_proxy_with(Kind::Caddy, v.addr, app.addr, |text| {
        let site = text.find("\tbind 127.0.0.1").expect("the site");
        let opening = text[..site].rfind(':').expect("its port");
        let text = format!(
            "{}https://127.0.0.1{}\ttls {} {} {{\n\t\tclient_auth {{\n\t\t\tmode verify_if_given\n\t\t\ttrust_pool file {}\n\t\t}}\n\t}}\n{}",
            &text[..opening],
            &text[opening..site],
            cert.display(),
            key.display(),
            ca.display(),
            &text[site..]
        );
        // one site, asked by IP: a client sends no SNI, so Caddy must take the handshake
        // as the site's (`default_sni`) or it applies no client_auth at all; and nothing
        // for SNI-Host enforcement to compare
        let text = text.replacen(
            "\tauto_https off\n",
            "\tauto_https off\n\tdefault_sni 127.0.0.1\n\tservers {\n\t\tstrict_sni_host insecure_off\n\t}\n",
            1,
        );
        // what the Caddyfile's comment tells an operator to add
        text.replacen(
            "\t\trequest_header -X-Client-Cert\n",
            "\t\trequest_header -X-Client-Cert\n\t\trequest_header X-Client-Cert {http.request.tls.client.certificate_der_base64}\n",
            1,
        )
    });
    let Some(proxy) = proxy else {
        return;
    };
    let url = |path: &str| proxy.url(path).replacen("http://", "https://", 1);
    admits_the_client_ca_certificate(&proxy, &app, "app@example.org").await;
    // no certificate, and a client's own header: Caddy's placeholder is empty, so the
    // header verdict reads is too
    let pem = std::fs::read_to_string(repo("tests/fixtures/client.cert.pem")).unwrap();
    let der = {
        use base64::Engine as _;
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let der = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        base64::engine::general_purpose::STANDARD.encode(der.as_ref())
    };
    let status = tls_client(None)
        .get(url("/app/none"))
        .insert_header(("X-Client-Cert", der))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 401);
    // a look-alike Caddy does not take at all
    let rogue = mtls_client(
        "tests/fixtures/rogue-client.cert.pem",
        "tests/fixtures/rogue-client.key.pem",
    );
    let admitted = rogue
        .get(url("/app/rogue"))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200);
    assert!(!admitted, "a certificate of another CA got through Caddy");
    assert!(
        app.received()
            .iter()
            .all(|r| r.uri != "/app/none" && r.uri != "/app/rogue")
    );
    drop(proxy);
    v.stop().await;
}

#[actix_web::test]
async fn client_certificate_headers_never_count_through_any_shipped_proxy() {
    for kind in [
        Kind::Nginx,
        Kind::Traefik,
        Kind::Caddy,
        Kind::Envoy,
        Kind::EnvoyGrpc,
        Kind::Haproxy,
    ] {
        client_certificate_headers_through(kind).await;
    }
}
