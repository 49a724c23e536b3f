//! Regression tests that need a real program (nginx, Traefik, Python): one per fixed
//! bug, named for the bug, each failing on the code before its fix. The hermetic ones are
//! in `tests/integration/regression.rs`.

use crate::support::*;

/// The compose demo app never read request bodies, so behind the shipped nginx (which
/// keeps its connections to the app alive) the request after any POST with a body was
/// read from the body's bytes and answered `501`. It reads every body now, by length or
/// chunked, whatever the method.
#[actix_web::test]
async fn the_demo_app_answered_501_after_any_post() {
    let Some(app) = run_python("deploy/echo_app.py") else {
        return;
    };
    let v = start("", DEMO_KEYS).await;
    let app_addr = std::net::SocketAddr::from(([127, 0, 0, 1], app.port));
    let Some(nginx) = crate::proxies::start_proxy(crate::proxies::Kind::Nginx, v.addr, app_addr)
    else {
        return;
    };
    let send = |method: &str, body: &str| {
        client()
            .request(
                awc::http::Method::from_bytes(method.as_bytes()).expect("method"),
                nginx.url("/app/echo"),
            )
            .insert_header(("Authorization", "Bearer valid-token"))
            .insert_header(("Content-Type", "application/json"))
            .send_body(body.to_string())
    };
    for (method, body) in [
        ("POST", "{\"title\": \"a body the app must read\"}"),
        ("GET", ""),
        ("PUT", "{\"x\": 1}"),
        ("GET", ""),
        ("DELETE", "{}"),
        ("PATCH", "{\"y\": 2}"),
        ("GET", ""),
    ] {
        let mut r = send(method, body).await.expect("send");
        assert_eq!(r.status(), 200, "{method} after a request with a body");
        let echo: serde_json::Value =
            serde_json::from_slice(&r.body().await.expect("body")).expect("json");
        assert_eq!(echo["method"], method);
        assert_eq!(echo["body_bytes"], body.len());
    }
    drop(nginx);
    v.stop().await;
}

/// The README's minimal nginx snippet sent every request to an `upstream app` it never
/// defined, with `Host: app`, and let client copies of every identity header but one
/// through. The snippet now runs as written (the suite runs it, from the README).
#[actix_web::test]
async fn the_readme_nginx_snippet_used_an_upstream_it_never_defined() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README");
    let block = &readme[readme.find("```nginx\n").expect("the nginx snippet") + 9..];
    let snippet = block[..block.find("```").expect("its end")].to_string();
    let v = start("", DEMO_KEYS).await;
    let app = fake_backend(Reply::status(200)).await;
    let site = |_: String| {
        let port = snippet.clone();
        port.replace("127.0.0.1:8080", &v.addr.to_string())
            .replace("127.0.0.1:9000", &app.addr.to_string())
    };
    // the snippet's listen line is the one thing the scratch copy moves
    let Some(nginx) = crate::proxies::start_proxy_snippet(site) else {
        return;
    };
    let r = client()
        .get(nginx.url("/page"))
        .insert_header(("Authorization", "Bearer valid-token"))
        .insert_header(("X-Session-Name", "root"))
        .insert_header(("x-authgear-user-roles", "admin"))
        .sent()
        .await;
    assert_eq!(r.status(), 200, "{}", nginx.log());
    let seen = app.received();
    let request = seen.last().expect("the app was asked");
    assert_eq!(request.header("x-authgear-user-id"), Some("u-123"));
    assert_eq!(
        request.header("host"),
        Some("127.0.0.1"),
        "the host nginx routed on ($host), not the upstream's name"
    );
    for forged in ["x-session-name", "x-authgear-user-roles"] {
        assert!(
            request.header(forged).is_none_or(str::is_empty),
            "a client's {forged} reached the app"
        );
    }
    assert_eq!(client().get(nginx.url("/page")).status().await, 401);
    drop(nginx);
    v.stop().await;
    app.stop().await;
}

/// `traefik/traefik.yml` pointed its file provider at `/etc/traefik`, so run as shipped
/// every request was a 404, and no proxy file or README section said how to run one.
/// The suite now runs the README's command for each proxy, from a copy of the
/// repository's folders.
#[actix_web::test]
async fn the_shipped_traefik_config_could_not_run_as_shipped() {
    let static_config =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/traefik/traefik.yml"))
            .expect("traefik.yml");
    assert!(!static_config.contains("/etc/traefik/dynamic.yml\n"));
    let command = crate::proxies::readme_command(crate::proxies::Kind::Traefik);
    assert_eq!(command, ["traefik", "--configFile=traefik/traefik.yml"]);
    let v = start("", DEMO_KEYS).await;
    let app = fake_backend(Reply::status(200)).await;
    let Some(traefik) =
        crate::proxies::start_proxy(crate::proxies::Kind::Traefik, v.addr, app.addr)
    else {
        return;
    };
    let r = client()
        .get(traefik.url("/page"))
        .insert_header(("Authorization", "Bearer valid-token"))
        .sent()
        .await;
    assert_eq!(r.status(), 200, "{}", traefik.log());
    drop(traefik);
    v.stop().await;
    app.stop().await;
}

/// The shipped `haproxy.cfg` once refused aliases with `req.hdr_names(,)`, which HAProxy
/// cannot parse: the file never started. HAProxy's own check must accept it as shipped.
#[test]
fn the_shipped_haproxy_config_passes_haproxys_own_check() {
    let Some(haproxy) = require_binary("haproxy", &["/usr/sbin/haproxy"]) else {
        return;
    };
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new(haproxy)
        .args(["-c", "-f", "haproxy/haproxy.cfg"])
        .current_dir(root)
        .output()
        .expect("haproxy -c");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
