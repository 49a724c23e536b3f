//! Criterion benchmarks of the decision hot path: canonical target, routing, a cached
//! decision, token verification and encoding the answer. Timings are printed, never
//! asserted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use verdict::authorizer::Fetcher;
use verdict::config::Config;
use verdict::dialect::answer::Original;
use verdict::dialect::auth_request::AuthRequest;
use verdict::dialect::{Dialect, build_target};
use verdict::policy::RouteChoice;
use verdict::request::{
    FormBody, ForwardedRequest, Header as RequestHeader, canonical_path, readings,
};
use verdict::resolver::Resolver;

const SECRET: &str = "benchmark-secret-of-32-bytes-ok!";

fn config() -> Config {
    Config::from_toml(&config_text()).expect("bench config")
}

fn config_text() -> String {
    format!(
        r#"
[authorizers.keys]
type = "static"
[[authorizers.keys.tokens]]
token = "bench-token-123"
user_id = "u-1"
roles = ["reader"]
[authorizers.jwt]
type = "jwt"
[[authorizers.jwt.keys]]
kid = "hs"
algorithms = ["HS256"]
secret = "{SECRET}"
[[route]]
path = "/static/"
access = "public"
[[route]]
host = "*.example.com"
path_glob = "/admin/**"
access = "authenticated"
roles = ["admin"]
[[route]]
path = "/api"
methods = ["POST"]
access = "authenticated"
authorizers = ["jwt", "keys"]
"#
    )
}

fn request(token: &str) -> ForwardedRequest<'static> {
    request_read(token, false)
}

/// The bench request; with `with_readings`, as the read stage builds it (its dot segments
/// give another reading).
fn request_read(token: &str, with_readings: bool) -> ForwardedRequest<'static> {
    let mut target = build_target(
        Some(b"GET"),
        Some(b"https"),
        Some(b"app.example.com"),
        Some(b"/app/orders/42/../43?expand=items"),
    )
    .expect("target");
    let headers = vec![
        RequestHeader::owned("authorization", format!("Bearer {token}")),
        RequestHeader::owned("user-agent", b"Mozilla/5.0".to_vec()),
        RequestHeader::owned("accept", b"text/html".to_vec()),
    ];
    if with_readings {
        target.readings = readings(&target, &headers, FormBody::Absent).expect("readings");
    }
    ForwardedRequest::new(
        target,
        IpAddr::from([203, 0, 113, 7]),
        headers,
        Default::default(),
    )
}

fn benches(c: &mut Criterion) {
    verdict::init_crypto();
    c.bench_function("canonical_path", |b| {
        b.iter(|| canonical_path(black_box(b"/app//orders/%34%32/../43/./items")))
    });
    c.bench_function("build_target", |b| {
        b.iter(|| {
            build_target(
                Some(b"GET"),
                Some(b"https"),
                Some(black_box(b"App.Example.com:443")),
                Some(black_box(b"/app/orders/42?x=1")),
            )
        })
    });
    let config = Arc::new(config());
    let routed = request("x");
    let target = routed.target();
    c.bench_function("route", |b| {
        b.iter(|| chain_length(config.policy.route(black_box(target))))
    });

    // Readings: one byte scan for a canonical target; the variants only when it could differ.
    let canonical = build_target(
        Some(b"GET"),
        Some(b"https"),
        Some(b"app.example.com"),
        Some(b"/app/orders/43?expand=items"),
    )
    .expect("target");
    c.bench_function("readings_canonical", |b| {
        b.iter(|| readings(black_box(&canonical), &[], FormBody::Absent))
    });
    let dotted = request("x");
    c.bench_function("readings_dot_segments", |b| {
        b.iter(|| readings(black_box(dotted.target()), &[], FormBody::Absent))
    });

    let runtime = actix_web::rt::Runtime::new().expect("runtime");
    let resolver = Resolver::new(config.clone()).expect("resolver");
    let fetcher = runtime.block_on(async { Fetcher::new(Duration::from_secs(1)) });
    let cached = request("bench-token-123");
    runtime.block_on(resolver.decide(&cached, &fetcher));
    c.bench_function("decide_cached_static", |b| {
        b.iter(|| runtime.block_on(resolver.decide(black_box(&cached), &fetcher)))
    });
    // the same cached decision with [shared] on: the denylist holds an entry, so every
    // allow is looked up in it (the store is not reached: a local hit never waits on it)
    let secrets = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        secrets.path().join("secret"),
        "bench-shared-secret-0123456789abcdef0123",
    )
    .expect("secret");
    let shared_config = Config::from_toml(&format!(
        "{}\n[shared]\nurls = [\"redis://127.0.0.1:1/0\"]\nsecret_file = \"{}/secret\"\non_stale = \"local\"\n",
        config_text(),
        secrets.path().display()
    ))
    .expect("shared config");
    let shared_resolver = runtime
        .block_on(async { Resolver::new(Arc::new(shared_config)) })
        .expect("resolver");
    let shared = shared_resolver.shared.as_ref().expect("shared");
    let someone_else = verdict::shared::revocation::RevocationRequest {
        kind: "subject".into(),
        value: Some("someone-else".into()),
        token: None,
        authorizer: None,
        before: None,
        until: None,
    };
    shared.denylist.apply(
        someone_else
            .entry(shared.clock().unix_ms(), Duration::from_secs(3600))
            .expect("entry"),
    );
    runtime.block_on(shared_resolver.decide(&cached, &fetcher));
    c.bench_function("decide_cached_static_shared_on", |b| {
        b.iter(|| runtime.block_on(shared_resolver.decide(black_box(&cached), &fetcher)))
    });
    // the same request as a dialect builds it: its dot segments give another reading,
    // which falls under the same route (one route match more, no authorizer call)
    let with_readings = request_read("bench-token-123", true);
    assert!(!with_readings.target().readings.is_empty());
    c.bench_function("decide_cached_static_with_readings", |b| {
        b.iter(|| runtime.block_on(resolver.decide(black_box(&with_readings), &fetcher)))
    });

    let claims = serde_json::json!({"sub": "u-1", "exp": 4_000_000_000u64, "roles": ["reader"]});
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("hs".into());
    let token = encode(
        &header,
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("sign");
    let jwt = config
        .authorizers
        .iter()
        .find(|a| a.name == "jwt")
        .expect("jwt");
    let with_jwt = request(&token);
    let question = jwt.prepare(&with_jwt, None).expect("a bearer token");
    c.bench_function("verify_hs256_uncached", |b| {
        b.iter(|| runtime.block_on(black_box(&question).decide(&fetcher)))
    });

    // A static-token miss costs the same with 10 or 100,000 configured tokens.
    for count in [10usize, 100_000] {
        let mut text = String::from("[authorizers.keys]\ntype = \"static\"\n");
        for i in 0..count {
            text.push_str(&format!(
                "[[authorizers.keys.tokens]]\ntoken = \"configured-token-{i:06}\"\nuser_id = \"u{i}\"\n"
            ));
        }
        let many = Config::from_toml(&text).expect("tokens");
        let keys = &many.authorizers[0];
        let unknown = request("an-unknown-token-of-some-length");
        let question = keys.prepare(&unknown, None).expect("a bearer token");
        c.bench_function(&format!("static_miss_{count}_tokens"), |b| {
            b.iter(|| runtime.block_on(black_box(&question).decide(&fetcher)))
        });
    }

    let decided = runtime.block_on(resolver.decide(&cached, &fetcher));
    c.bench_function("encode_allow", |b| {
        b.iter(|| {
            AuthRequest.answer(
                black_box(&decided.outcome),
                Original {
                    target: Some(cached.target()),
                    accept: None,
                },
                &config.answer,
            )
        })
    });
}

/// Something of the chosen route, so the match is not optimised away.
fn chain_length(choice: RouteChoice<'_>) -> usize {
    match choice {
        RouteChoice::Matched(route) => route.chain.len(),
        RouteChoice::Undecidable { .. } => 0,
    }
}

criterion_group!(hot_path, benches);
criterion_main!(hot_path);
