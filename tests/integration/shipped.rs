//! The shipped proxy configs held against what verdict reads and sends, so that no edit
//! can reintroduce a bypass: every credential source and method override is forwarded to
//! verdict, every fact header a dialect reads is set by the proxy (never passed through
//! from the client), every identity header of every family is stripped from the client's
//! request and every alias of one is stripped or refused, and the optional nginx cache
//! keys on every credential source. It reads the configs as text, for every proxy we ship
//! (the untested APISIX and HAProxy files included); the real-proxy suite runs the rest.

use std::collections::BTreeSet;
use std::path::PathBuf;

use regex::Regex;
use verdict::config::{Config, Source};
use verdict::dialect;
use verdict::identity::IDENTITY_HEADERS;
use verdict::request::readings::METHOD_OVERRIDE_HEADERS;

fn shipped(path: &str) -> String {
    let full = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every request header a shipped verdict config reads a credential (or a template value)
/// from, plus the method overrides an application may obey.
fn headers_verdict_reads() -> BTreeSet<String> {
    verdict::init_crypto();
    let mut names = BTreeSet::new();
    for file in [
        None,
        Some("verdict.example.toml"),
        Some("deploy/verdict.toml"),
    ] {
        let config = Config::load(&Source {
            file: file.map(|f| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(f)),
            env: Some(Default::default()),
        })
        .unwrap_or_else(|e| panic!("{file:?}: {e}"));
        for authorizer in &config.authorizers {
            names.extend(authorizer.request_headers());
        }
    }
    assert!(names.contains("authorization") && names.contains("x-api-key"));
    names.extend(METHOD_OVERRIDE_HEADERS.iter().map(|h| h.to_string()));
    // a form body may hold _method: verdict reads the client's content type
    names.insert("content-type".to_string());
    names
}

/// The shipped credential and override headers, without `user-agent` (read only for the
/// default session id, which a proxy forwards anyway).
fn credentials() -> Vec<String> {
    headers_verdict_reads()
        .into_iter()
        .filter(|h| h != "user-agent")
        .collect()
}

fn facts_of(name: &str) -> &'static [&'static str] {
    dialect::by_name(name)
        .unwrap_or_else(|| panic!("no dialect {name}"))
        .reads()
}

/// Names that fold (case-insensitively, over `-`, `_` and `.`) to an identity header
/// without being one: what CGI, PHP and WSGI applications read as the real header.
fn aliases() -> Vec<String> {
    aliases_of(IDENTITY_HEADERS.iter().map(|h| h.name))
}

/// Names that fold to a method-override header: PHP reads `X.HTTP.Method.Override` as the
/// override itself, so every proxy must forward them to verdict (which reads them as the
/// override) or refuse them.
fn override_aliases() -> Vec<String> {
    aliases_of(METHOD_OVERRIDE_HEADERS.iter().copied())
}

fn aliases_of<'a>(names: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut out = Vec::new();
    for name in names {
        out.push(name.replace('-', "_"));
        out.push(name.replace('-', "."));
        out.push(name.replacen('-', "_", 1));
        out.push(name.replacen('-', ".", 1).to_ascii_uppercase());
        out.push(name.replace('-', "_").to_ascii_uppercase());
    }
    out
}

fn identity_names() -> Vec<&'static str> {
    IDENTITY_HEADERS.iter().map(|h| h.name).collect()
}

fn has_line(text: &str, line: &Regex) -> bool {
    text.lines().any(|l| line.is_match(l.trim()))
}

fn escaped(name: &str) -> String {
    regex::escape(name)
}

#[test]
fn nginx_sets_every_fact_strips_every_identity_and_keys_its_cache_on_every_credential() {
    let conf = shipped("nginx/verdict.conf");
    let auth_location = &conf[conf.find("location = /_verdict").expect("auth location")..];
    for fact in facts_of("auth-request") {
        let set = Regex::new(&format!("(?i)^proxy_set_header\\s+{}\\s", escaped(fact))).unwrap();
        assert!(has_line(auth_location, &set), "nginx must set {fact}");
    }
    for forbidden in [
        "proxy_pass_request_headers off",
        "underscores_in_headers on",
        "ignore_invalid_headers off",
    ] {
        assert!(!conf.contains(forbidden), "nginx: {forbidden}");
    }
    let app_location = &conf[conf.find("location / {").expect("app location")..];
    for name in identity_names() {
        let var = format!("$upstream_http_{}", name.replace('-', "_"));
        let set = Regex::new(&format!(
            "(?i)^proxy_set_header\\s+{}\\s+\\$",
            escaped(name)
        ))
        .unwrap();
        assert!(has_line(app_location, &set), "nginx must overwrite {name}");
        assert!(
            app_location.contains(&var),
            "nginx must take {name} from verdict"
        );
    }
    let key = conf
        .lines()
        .find(|l| l.contains("proxy_cache_key"))
        .expect("the cache option");
    for header in credentials() {
        let var = format!("$http_{}", header.replace('-', "_"));
        assert!(key.contains(&var), "the nginx cache key must hold {var}");
    }
    assert!(key.contains("$request_uri"), "query credentials");
    // the certificate nginx forwards is a credential: two clients' decisions never share
    assert!(
        key.contains("$ssl_client_escaped_cert"),
        "the nginx cache key must hold the client certificate it forwards"
    );
    assert!(!conf.contains("proxy_cache_valid"), "verdict says how long");
    assert!(
        !conf.contains("proxy_ignore_headers"),
        "X-Accel-Expires and no-store count"
    );
}

#[test]
fn haproxy_sets_every_fact_and_strips_or_refuses_every_identity() {
    let conf = shipped("haproxy/haproxy.cfg");
    let lua = shipped("haproxy/verdict.lua");
    // the Lua action sets every fact from HAProxy's own view, and never forwards the
    // client's copy of one
    for fact in facts_of("auth-request") {
        assert!(
            lua.contains(&format!("[\"{fact}\"] = true")),
            "verdict.lua must not forward the client's {fact}"
        );
    }
    for fact in [
        "x-original-uri",
        "x-original-method",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-real-ip",
    ] {
        assert!(
            facts_of("auth-request").contains(&fact),
            "the dialect no longer reads {fact}"
        );
        assert!(
            lua.contains(&format!("sent[\"{fact}\"] = ")),
            "verdict.lua must set {fact}"
        );
    }
    // ... and the other names a client could pass a target or a peer in
    for name in [
        "x-original-url",
        "x-forwarded-for",
        "x-forwarded-uri",
        "forwarded",
    ] {
        assert!(
            lua.contains(&format!("[\"{name}\"] = true")),
            "verdict.lua forwards the client's {name}"
        );
    }
    for name in identity_names() {
        let del = Regex::new(&format!(
            "(?i)^http-request\\s+del-header\\s+{}$",
            escaped(name)
        ))
        .unwrap();
        assert!(has_line(&conf, &del), "HAProxy must delete {name}");
        assert!(
            lua.contains(&format!("\"{}\"", name.to_ascii_lowercase())),
            "verdict.lua must copy {name} from verdict (and delete the client's)"
        );
    }
    let deny = conf
        .lines()
        .find(|l| l.contains("req.hdr_names"))
        .expect("the alias refusal");
    let pattern =
        &deny[deny.find("-m reg -i ").expect("a regex") + 10..deny.rfind(" }").expect("end")];
    let names = Regex::new(&format!("(?i){pattern}")).expect("HAProxy regex");
    for alias in aliases() {
        assert!(
            names.is_match(&format!("host,{alias},accept")),
            "HAProxy lets {alias} through"
        );
    }
    // every other client header goes to verdict (the credential may be in any of them;
    // the content type and the aliases of an override reach it as they reach the app)
    assert!(
        lua.contains("for name, list in pairs(txn.http:req_get_headers())"),
        "verdict.lua sends every client header"
    );
    assert!(!names.is_match("host,x-real-ip,accept,remote_addr,x_auth_request_id"));
    // anything but verdict's own answer is a refusal
    assert!(
        conf.contains("deny_status 503 unless { var(txn.verdict_status) -m int 200 }"),
        "HAProxy must refuse when verdict cannot be asked"
    );
}

#[test]
fn traefik_trusts_no_client_forwarded_header_and_copies_every_identity() {
    let dynamic = shipped("traefik/dynamic.yml");
    let static_conf: String = shipped("traefik/traefik.yml")
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        dynamic.contains("trustForwardHeader: false"),
        "Traefik sets X-Forwarded-* itself"
    );
    assert!(!static_conf.contains("trustedIPs") && !static_conf.contains("insecure: true"));
    assert!(
        !dynamic.contains("authRequestHeaders"),
        "every client header (credentials, overrides, aliases) must reach verdict"
    );
    assert!(static_conf.contains("aliasHeadersStrategy: delete"));
    for name in identity_names() {
        assert!(
            dynamic
                .to_ascii_lowercase()
                .contains(&format!("- \"{name}\"")),
            "Traefik must copy {name}"
        );
    }
    let labels = shipped("traefik/docker-labels.yml");
    let list = labels
        .lines()
        .find(|l| l.contains("authResponseHeaders="))
        .expect("labels");
    for name in identity_names() {
        assert!(
            list.to_ascii_lowercase().contains(name),
            "labels must copy {name}"
        );
    }
}

#[test]
fn caddy_strips_every_identity_and_forwards_everything_else() {
    let conf = shipped("caddy/Caddyfile");
    assert!(
        !conf.contains("trusted_proxies"),
        "Caddy then sets X-Forwarded-* itself"
    );
    assert!(
        !conf.contains("header_up -"),
        "credentials and aliases must reach verdict"
    );
    let copy = conf
        .lines()
        .find(|l| l.trim().starts_with("copy_headers"))
        .expect("copy_headers");
    for name in identity_names() {
        let strip = Regex::new(&format!("(?i)^request_header\\s+-{}$", escaped(name))).unwrap();
        assert!(has_line(&conf, &strip), "Caddy must drop a client's {name}");
        assert!(
            copy.split_whitespace()
                .any(|h| h.eq_ignore_ascii_case(name)),
            "Caddy must copy {name}"
        );
    }
}

#[test]
fn envoy_forwards_every_credential_and_alias_and_strips_every_identity() {
    let conf = shipped("envoy/envoy.yaml");
    assert!(
        conf.contains("use_remote_address: true"),
        "Envoy sets X-Forwarded-For/-Proto"
    );
    assert!(conf.contains("headers_with_underscores_action: REJECT_REQUEST"));
    let allowed = &conf[conf.find("allowed_headers:").expect("allowed_headers")
        ..conf.find("http_service:").expect("http_service")];
    let exact: Vec<&str> = allowed
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- exact: "))
        .collect();
    let regexes: Vec<Regex> = allowed
        .lines()
        .filter_map(|l| l.trim().strip_prefix("regex: "))
        .map(|r| Regex::new(&format!("^(?:{})$", r.trim_matches('"'))).expect("RE2 subset"))
        .collect();
    let forwarded = |name: &str| {
        // Envoy always sends these; header names reach it lower-cased
        ["authorization", "host"].contains(&name)
            || exact.contains(&name)
            || regexes.iter().any(|r| r.is_match(name))
    };
    for header in credentials() {
        assert!(forwarded(&header), "Envoy must send {header} to verdict");
    }
    for fact in facts_of("ext-authz") {
        assert!(forwarded(fact), "Envoy must send {fact}");
    }
    for alias in aliases().into_iter().chain(override_aliases()) {
        let lower = alias.to_ascii_lowercase();
        assert!(forwarded(&lower), "Envoy lets {lower} past verdict");
    }
    assert!(
        conf.contains("with_request_body:") && conf.contains("allow_partial_message: true"),
        "Envoy sends the form body verdict reads _method from, in part past its limit"
    );
    for name in identity_names() {
        let lower = name.to_ascii_lowercase();
        assert!(
            conf.contains(&format!("- remove: {lower}")),
            "Envoy must strip {lower}"
        );
        let upstream = &conf[conf.find("allowed_upstream_headers").expect("upstream")..];
        assert!(
            upstream.contains(&format!("- exact: {lower}")),
            "Envoy must copy {lower}"
        );
    }
}

#[test]
fn apisix_forwards_every_credential_and_refuses_every_alias() {
    let route: serde_json::Value =
        serde_json::from_str(&shipped("apisix/route.json")).expect("route.json");
    let list = |path: &[&str]| -> Vec<String> {
        let mut value = &route;
        for key in path {
            value = &value[*key];
        }
        value
            .as_array()
            .unwrap_or_else(|| panic!("{path:?}"))
            .iter()
            .map(|v| v.as_str().expect("a name").to_ascii_lowercase())
            .collect()
    };
    let sent = list(&["plugins", "forward-auth", "request_headers"]);
    for header in credentials() {
        assert!(sent.contains(&header), "APISIX must send {header}");
    }
    for fact in facts_of("forward-auth") {
        assert!(
            !sent.contains(&fact.to_string()),
            "APISIX sets {fact} itself; never copy it"
        );
    }
    let removed = list(&["plugins", "proxy-rewrite", "headers", "remove"]);
    let copied = list(&["plugins", "forward-auth", "upstream_headers"]);
    for name in identity_names() {
        assert!(
            removed.contains(&name.to_string()),
            "APISIX must strip {name}"
        );
        assert!(
            copied.contains(&name.to_string()),
            "APISIX must copy {name}"
        );
    }
    let lua = route["plugins"]["serverless-pre-function"]["functions"][0]
        .as_str()
        .expect("the alias refusal");
    for header in IDENTITY_HEADERS.iter().filter(|h| !h.family.owns_prefix()) {
        assert!(
            lua.contains(&format!("['{}']", header.name)),
            "APISIX alias of {}",
            header.name
        );
    }
    assert!(lua.contains("^x%-authgear%-") && lua.contains("return 403"));
    // APISIX sends verdict only the headers it lists: it must refuse an override alias
    for name in METHOD_OVERRIDE_HEADERS {
        assert!(
            lua.contains(&format!("['{name}']")),
            "APISIX alias of {name}"
        );
    }
}

#[test]
fn every_shipped_proxy_sets_or_strips_every_certificate_header() {
    let names = [
        "x-forwarded-client-cert",
        "x-ssl-client-cert",
        "x-forwarded-tls-client-cert",
        "x-client-cert",
    ];
    let lower = |path: &str| shipped(path).to_ascii_lowercase();
    let (nginx, caddy, traefik, envoy, envoy_grpc, lua) = (
        lower("nginx/verdict.conf"),
        lower("caddy/Caddyfile"),
        lower("traefik/dynamic.yml"),
        lower("envoy/envoy.yaml"),
        lower("envoy/envoy-grpc.yaml"),
        lower("haproxy/verdict.lua"),
    );
    for name in names {
        assert!(
            nginx.contains(&format!("proxy_set_header {name} ")),
            "nginx must set or clear {name}"
        );
        assert!(
            caddy.contains(&format!("request_header -{name}\n")),
            "Caddy must strip {name}"
        );
        assert!(
            traefik.contains(&format!("{name}: \"\"")),
            "Traefik must strip {name}"
        );
        assert!(
            lua.contains(&format!("[\"{name}\"] = true")),
            "verdict.lua must not forward a client's {name}"
        );
        if name != "x-forwarded-client-cert" {
            assert!(
                envoy.contains(&format!("- remove: {name}\n")),
                "Envoy must strip {name}"
            );
        }
    }
    for conf in [&envoy, &envoy_grpc] {
        assert!(conf.contains("forward_client_cert_details: sanitize"));
    }
    // Traefik strips before it asks verdict
    assert!(traefik.contains("middlewares: [\"strip-certificates\", \"verdict\"]"));
}
