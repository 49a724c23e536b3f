//! What verdict would decide, without serving: `verdict explain` (one request) and
//! `verdict test` (a file of requests with the outcomes expected of them, for an
//! operator's CI), through the resolver itself, offline.
//!
//! Takes: a configuration and requests described by method, URL, headers and client
//! address, read as the auth-request dialect reads a trusted proxy's request. Returns:
//! for each, the readings of its target, the route each picks, the decision (outcome,
//! route, authorizer, reason) and, for `test`, whether it is the one expected. Must never:
//! call a backend, fetch a key or touch a shared store (authorizers that would are
//! reported as unable to decide offline), or print a credential.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::authorizer::Fetcher;
use crate::config::Config;
use crate::decision::Outcome;
use crate::dialect::auth_request::AuthRequest;
use crate::dialect::{self, Dialect};
use crate::request::ForwardedRequest;
use crate::resolver::Resolver;

/// One request to explain or test.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    #[serde(default)]
    pub name: Option<String>,
    /// `https://app.example.com/path?query`: scheme, host and target.
    pub url: String,
    #[serde(default = "get")]
    pub method: String,
    /// Header name → value (a credential here is never printed).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub client_ip: Option<IpAddr>,
    /// For `verdict test`: the outcome expected (`allow`, `unauthenticated`,
    /// `forbidden`, …, as the log line names them).
    #[serde(default)]
    pub expect: Option<String>,
    /// For `verdict test`: the route expected to decide.
    #[serde(default)]
    pub route: Option<String>,
    /// A caller dialect's own request instead of a proxy's (`cesbo`, `emqx`, `mqtt`,
    /// `icecast`, …): `url` is then the path and query sent to verdict, `headers` and
    /// `body` the caller's.
    #[serde(default)]
    pub dialect: Option<String>,
    #[serde(default)]
    pub body: Option<String>,
}

fn get() -> String {
    "GET".to_string()
}

/// A file of cases for `verdict test`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cases {
    #[serde(rename = "case")]
    pub cases: Vec<Case>,
}

/// What verdict would decide for one case.
#[derive(Debug)]
pub struct Explained {
    pub lines: Vec<String>,
    pub outcome: String,
    pub route: Option<String>,
}

/// The resolver for dry runs: the configuration without its shared store or traces, and
/// a fetcher that reaches nothing.
pub fn offline_resolver(mut config: Config) -> std::io::Result<Resolver> {
    config.shared = None;
    config.tracing = None;
    Resolver::new(Arc::new(config))
}

/// Decides `case` offline and says how.
pub async fn explain(resolver: &Resolver, case: &Case) -> Result<Explained, String> {
    if let Some(name) = &case.dialect {
        return explain_caller(resolver, case, name).await;
    }
    let url = url::Url::parse(&case.url).map_err(|e| format!("{}: {e}", case.url))?;
    let host = url.host_str().ok_or("the URL has no host")?;
    let host = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    };
    // the target as written: a URL parser would resolve dot segments and encodings the
    // readings are there to weigh
    let after_scheme = case
        .url
        .split_once("://")
        .map_or(case.url.as_str(), |(_, rest)| rest);
    let target = match after_scheme.find(['/', '?']) {
        Some(at) if after_scheme[at..].starts_with('/') => after_scheme[at..].to_string(),
        Some(at) => format!("/{}", &after_scheme[at..]),
        None => "/".to_string(),
    };
    let target = target.split('#').next().unwrap_or("/").to_string();
    let config = &resolver.config;
    // the request as a trusted proxy would send it in the auth-request dialect
    let peer_ip = config
        .server
        .trusted_proxies
        .first()
        .map(|net| net.addr())
        .ok_or("server.trusted_proxies is empty: every request would be refused")?;
    let client_ip = case.client_ip.unwrap_or(peer_ip);
    let mut request = actix_web::test::TestRequest::get()
        .uri(AuthRequest.path())
        .peer_addr(std::net::SocketAddr::new(peer_ip, 1))
        .insert_header(("x-original-uri", target.clone()))
        .insert_header(("x-original-method", case.method.clone()))
        .insert_header(("x-forwarded-host", host.clone()))
        .insert_header(("x-forwarded-proto", url.scheme().to_string()))
        .insert_header(("x-real-ip", client_ip.to_string()));
    for (name, value) in &case.headers {
        request = request.insert_header((name.as_str(), value.as_str()));
    }
    let request = request.to_http_request();
    let peer = dialect::trusted_peer(&request, &config.server.trusted_proxies)
        .map_err(|_| "the proxy's address is not trusted".to_string())?;
    let mut lines = vec![format!(
        "{} {}{}",
        case.method,
        url.origin().ascii_serialization(),
        target
    )];
    let forwarded: Result<ForwardedRequest<'_>, Outcome> =
        dialect::read(&request, &AuthRequest, AuthRequest.path(), peer, None);
    let forwarded = match forwarded {
        Ok(forwarded) => forwarded,
        Err(outcome) => return Ok(refused_before_routing(lines, &outcome)),
    };
    let readings = &forwarded.target().readings;
    if readings.is_empty() {
        lines.push("readings: the canonical one only".into());
    }
    for reading in readings {
        lines.push(format!(
            "reading {}: {} {}",
            reading.describe(),
            reading.method.as_deref().unwrap_or("(any method)"),
            reading.path.as_deref().unwrap_or("-")
        ));
    }
    let routing = config.policy.route_readings(&forwarded);
    lines.push(format!(
        "route {} ({}) for the canonical reading",
        routing.route.name,
        routing.route.describe_rules()
    ));
    for (other, why) in &routing.others {
        lines.push(format!("route {} must allow too: {why}", other.name));
    }
    // a fetcher with no backend clients and no network: what needs one cannot decide
    let mut fetcher = Fetcher::new(Duration::from_millis(1));
    fetcher.offline = true;
    let decided = resolver.decide(&forwarded, &fetcher).await;
    let outcome = decided.outcome.name().to_string();
    lines.push(format!(
        "decision: {outcome} (route {}, authorizer {}, cache {})",
        decided.route.unwrap_or("-"),
        decided.authorizer.unwrap_or("-"),
        decided.cache.map_or("-", |c| c.as_str())
    ));
    if let Some(identity) = &decided.identity {
        lines.push(format!("user: {}", identity.user_id));
    }
    if let Some(reason) = &decided.reason {
        lines.push(format!("reason: {reason}"));
    }
    if let Some(error) = &decided.error {
        lines.push(format!("could not decide offline: {error}"));
    }
    Ok(Explained {
        lines,
        outcome,
        route: decided.route.map(str::to_string),
    })
}

/// A caller dialect's own request (a streaming server's, a broker's), decided offline.
async fn explain_caller(resolver: &Resolver, case: &Case, name: &str) -> Result<Explained, String> {
    let dialect = dialect::by_name(name)
        .ok_or_else(|| format!("{name:?} is not one of {}", dialect::names()))?;
    let config = &resolver.config;
    let peer_ip = config
        .server
        .trusted_proxies
        .first()
        .map(|net| net.addr())
        .ok_or("server.trusted_proxies is empty: every request would be refused")?;
    let target = if case.url.starts_with('/') {
        case.url.clone()
    } else {
        format!("{}{}", dialect.path(), case.url)
    };
    let mut request = match case.body {
        Some(_) => actix_web::test::TestRequest::post(),
        None => actix_web::test::TestRequest::get(),
    }
    .uri(&target)
    .peer_addr(std::net::SocketAddr::new(peer_ip, 1));
    for (header, value) in &case.headers {
        request = request.insert_header((header.as_str(), value.as_str()));
    }
    let request = request.to_http_request();
    let peer = dialect::trusted_peer(&request, &config.server.trusted_proxies)
        .map_err(|_| "the caller's address is not trusted".to_string())?;
    let body = case.body.as_deref().map(str::as_bytes);
    let mut lines = vec![format!(
        "{} {target} ({name})",
        if body.is_some() { "POST" } else { "GET" }
    )];
    let forwarded = match dialect::read(&request, dialect, dialect.path(), peer, body) {
        Ok(forwarded) => forwarded,
        Err(outcome) => return Ok(refused_before_routing(lines, &outcome)),
    };
    let mut fetcher = Fetcher::new(Duration::from_millis(1));
    fetcher.offline = true;
    let decided = resolver.decide(&forwarded, &fetcher).await;
    let outcome = decided.outcome.name().to_string();
    lines.push(format!(
        "decision: {outcome} (route {}, authorizer {})",
        decided.route.unwrap_or("-"),
        decided.authorizer.unwrap_or("-")
    ));
    if let Some(reason) = &decided.reason {
        lines.push(format!("reason: {reason}"));
    }
    Ok(Explained {
        lines,
        outcome,
        route: decided.route.map(str::to_string),
    })
}

/// Runs every case; returns the report lines and how many did not meet what they expect.
pub async fn test(resolver: &Resolver, cases: &Cases) -> (Vec<String>, usize) {
    let mut report = Vec::new();
    let mut failed = 0;
    for (index, case) in cases.cases.iter().enumerate() {
        let name = case
            .name
            .clone()
            .unwrap_or_else(|| format!("case {}", index + 1));
        match explain(resolver, case).await {
            Err(problem) => {
                failed += 1;
                report.push(format!("FAIL {name}: {problem}"));
            }
            Ok(explained) => {
                let outcome_ok = case.expect.as_ref().is_none_or(|e| *e == explained.outcome);
                let route_ok = case
                    .route
                    .as_ref()
                    .is_none_or(|r| Some(r) == explained.route.as_ref());
                if outcome_ok && route_ok {
                    report.push(format!("ok   {name}: {}", explained.outcome));
                } else {
                    failed += 1;
                    report.push(format!(
                        "FAIL {name}: expected {} on route {}, got {} on route {}",
                        case.expect.as_deref().unwrap_or("any outcome"),
                        case.route.as_deref().unwrap_or("any"),
                        explained.outcome,
                        explained.route.as_deref().unwrap_or("-")
                    ));
                    report.extend(explained.lines.iter().map(|l| format!("       {l}")));
                }
            }
        }
    }
    (report, failed)
}

/// What a request refused by its read (before any route) explains: the refusal and why.
fn refused_before_routing(mut lines: Vec<String>, outcome: &Outcome) -> Explained {
    let reason = outcome.refusal_reason().unwrap_or_default();
    lines.push(format!(
        "refused before routing: {} ({reason})",
        outcome.name()
    ));
    Explained {
        lines,
        outcome: outcome.name().to_string(),
        route: None,
    }
}
