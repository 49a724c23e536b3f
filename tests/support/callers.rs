//! What the hermetic tests and the end-to-end tests both send and configure: callers'
//! requests as Astra and EMQX send them, broker, listener and admin-method policies, the
//! README's fenced blocks, and a child process stopped with the test.

use super::http::client;
use super::instance::Verdict;

/// Astra's request: its headers in its spelling, the viewer's query appended to ours.
pub fn astra(v: &Verdict, query: &str, path: &str) -> awc::ClientRequest {
    client()
        .get(v.url(&format!("/_resolver/cesbo?{query}")))
        .insert_header(("X-Session-ID", "1234"))
        .insert_header(("X-Channel-ID", "a001"))
        .insert_header(("X-Real-IP", "203.0.113.7"))
        .insert_header(("X-Real-Path", path.to_string()))
        .insert_header(("X-Real-UA", "VLC/3.0.18 LibVLC/3.0.18"))
        .insert_header(("X-Real-Host", "live.example.com"))
}

/// The devices both broker configurations know: alice's device token, as the MQTT
/// password.
macro_rules! devices {
    () => {
        r##"
[authorizers.devices]
type = "static"
token_sources = ["query:password"]
[[authorizers.devices.tokens]]
token = "alice-device-token"
user_id = "alice"
roles = ["operator"]
"##
    };
}

/// A broker's clients: the broker authenticated them; topic rules decide.
pub const BROKER: &str = concat!(
    devices!(),
    r##"
[[route]]
name = "broker"
dialects = ["emqx"]
access = "identify"
authorizers = ["devices"]

[[topic_rule]]
permission = "allow"
topics = ["sensors/${username}/#"]

[[topic_rule]]
permission = "allow"
action = "publish"
topics = ["cmd/#"]
roles = ["operator"]

[[topic_rule]]
permission = "deny"
topics = ["#"]
"##
);

/// EMQX 5's POST, as its HTTP authorization source sends it by default.
pub fn emqx_post(v: &Verdict, body: &str) -> awc::ClientRequest {
    client()
        .post(v.url("/_resolver/emqx"))
        .insert_header(("accept", "application/json"))
        .insert_header(("cache-control", "no-cache"))
        .insert_header(("keep-alive", "timeout=30, max=1000"))
        .insert_header(("content-type", "application/json"))
        .insert_header(("content-length", body.len().to_string()))
}

pub async fn emqx_result(request: awc::ClientRequest, body: String) -> String {
    let mut r = request.send_body(body).await.expect("send");
    assert_eq!(r.status(), 200, "EMQX reads any other status as ignore");
    assert_eq!(r.headers().get("content-type").unwrap(), "application/json");
    let value: serde_json::Value =
        serde_json::from_slice(&r.body().await.expect("body")).expect("json");
    value["result"].as_str().expect("result").to_string()
}

/// A broker's HTTP backend (mosquitto-go-auth, amqtt, rmqtt): devices log in with a token
/// as the MQTT password; topic rules decide publishes and subscriptions.
pub const BROKER_BACKEND: &str = concat!(
    devices!(),
    r##"
[[route]]
name = "logins"
dialects = ["mqtt"]
path = "/user"
access = "authenticated"
authorizers = ["devices"]

[[route]]
name = "acl"
dialects = ["mqtt"]
path = "/acl"
access = "public"

[[route]]
name = "superusers"
dialects = ["mqtt"]
path = "/superuser"
access = "deny"

[[topic_rule]]
permission = "allow"
topics = ["sensors/${username}/#"]

[[topic_rule]]
permission = "deny"
topics = ["#"]
"##
);

/// Listeners' tokens, in the query of the mount they ask for.
pub const LISTENERS: &str = r#"
[authorizers.listeners]
type = "static"
token_sources = ["query:token", "header:icecast-pass"]
[[authorizers.listeners.tokens]]
token = "good-listener-token"
user_id = "l-1"

[[route]]
name = "listeners"
dialects = ["icecast"]
access = "authenticated"
authorizers = ["listeners"]
"#;

/// A policy that reserves writes and the export for admins, beside a public area.
pub const ADMIN_METHODS: &str = r#"
[[route]]
name = "public"
path = "/public"
methods = ["GET", "POST"]
access = "public"

[[route]]
name = "admin-writes"
path = "/"
methods = ["DELETE", "PUT", "PATCH"]
access = "authenticated"
roles = ["admin"]

[[route]]
name = "export"
path = "/app/export"
methods = ["GET"]
access = "authenticated"
roles = ["admin"]

[default_route]
access = "authenticated"
"#;

/// Every fenced block of `language` in the README, with the line it starts on.
pub fn readme_blocks(language: &str) -> Vec<(usize, String)> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README");
    let fence = format!("```{language}");
    let mut blocks = Vec::new();
    let mut open: Option<(usize, String)> = None;
    for (n, line) in readme.lines().enumerate() {
        match &mut open {
            None if line.trim_end() == fence => open = Some((n + 1, String::new())),
            None => {}
            Some(_) if line.starts_with("```") => blocks.extend(open.take()),
            Some((_, text)) => {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    blocks
}

/// A child process of the test, stopped by its PID when dropped.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
