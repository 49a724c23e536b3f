//! The admin listener's endpoints, never on the decision port: `/healthz` (alive),
//! `/readyz` (configuration loaded, keys fetched, a backend reachable, the revocation
//! feed read, not stopping) and `/metrics` (Prometheus text), each for GET and HEAD; and
//! `POST /revoke` (a revocation for the whole fleet) behind `shared.admin_token`.
//!
//! Takes: the resolver in force and the decision listener's drain state. Returns: plain
//! text (or JSON) answers. Must never: answer a decision, say ready while a stop has
//! begun, accept a revocation without the admin bearer secret, or log a credential.

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};

use crate::authorizer::AuthorizerKind;
use crate::reload::Current;
use crate::server::Drain;
use crate::shared::Readiness;
use crate::shared::revocation::RevocationRequest;

/// Registers the admin endpoints. HEAD too: load balancers and `curl -I` probe with it.
pub fn admin_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/healthz")
            .route(web::get().to(healthz))
            .route(web::head().to(healthz)),
    )
    .service(
        web::resource("/readyz")
            .route(web::get().to(readyz))
            .route(web::head().to(readyz)),
    )
    .service(
        web::resource("/metrics")
            .route(web::get().to(metrics))
            .route(web::head().to(metrics)),
    )
    .service(web::resource("/revoke").route(web::post().to(revoke)));
}

/// The largest revocation request read (a JWT fits many times over).
const REVOKE_BODY_LIMIT: usize = 16 * 1024;

/// `POST /revoke`: a JSON [`RevocationRequest`], applied here at once and appended to the
/// fleet's log, with `Authorization: Bearer` the `shared.admin_token`. Off (404) without
/// `[shared]` or without an admin token.
async fn revoke(
    current: web::Data<Current>,
    request: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let resolver = current.get();
    let Some(shared) = resolver
        .shared
        .as_ref()
        .filter(|s| s.settings.admin_token.is_some())
    else {
        return HttpResponse::NotFound()
            .content_type("text/plain")
            .body("revocation over the admin listener is off: set [shared] and shared.admin_token_file (or _env)\n");
    };
    let presented = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .unwrap_or("");
    // Trust decision: only the holder of the admin secret may revoke, compared in
    // constant time; the decision port has no such endpoint at all
    if !shared.admin_token_matches(presented.trim().as_bytes()) {
        return HttpResponse::Unauthorized()
            .insert_header(("www-authenticate", "Bearer realm=\"verdict-admin\""))
            .content_type("text/plain")
            .body("a valid admin bearer token is needed\n");
    }
    if body.len() > REVOKE_BODY_LIMIT {
        return HttpResponse::PayloadTooLarge()
            .content_type("text/plain")
            .body("at most 16 KiB\n");
    }
    let asked: RevocationRequest = match serde_json::from_slice(&body) {
        Ok(asked) => asked,
        Err(e) => {
            return HttpResponse::BadRequest()
                .content_type("text/plain")
                .body(format!("not a revocation: {e}\n"));
        }
    };
    let entry = match asked.entry(shared.clock().unix_ms(), shared.settings.revocation_ttl) {
        Ok(entry) => entry,
        Err(problem) => {
            return HttpResponse::BadRequest()
                .content_type("text/plain")
                .body(format!("{problem}\n"));
        }
    };
    let description = entry.describe();
    match shared.revoke(entry).await {
        Ok(id) => {
            log::info!("revoke: {description} appended to the fleet's log as {id}");
            HttpResponse::Ok()
                .content_type("application/json")
                .body(serde_json::json!({"revoked": description, "id": id}).to_string())
        }
        Err(e) => {
            log::error!("revoke: {description}: {e}");
            HttpResponse::ServiceUnavailable()
                .content_type("text/plain")
                .body(format!("not revoked: {e}\n"))
        }
    }
}

/// How long /readyz waits for one backend's TCP connect.
const READY_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok\n")
}

/// Ready when every JWKS has been fetched at least once and every `http` authorizer has
/// at least one backend URL that accepts a TCP connection.
async fn readyz(current: web::Data<Current>, drain: web::Data<Drain>) -> HttpResponse {
    let resolver = current.get();
    let mut problems = Vec::new();
    if drain.is_stopping() {
        problems.push("stopping".to_string());
    }
    for authorizer in &resolver.config.authorizers {
        match &authorizer.kind {
            AuthorizerKind::Jwt(jwt) if !jwt.jwks_ready() => {
                problems.push(format!("{}: JWKS not fetched yet", authorizer.name));
            }
            AuthorizerKind::Http(http) => {
                let mut reachable = false;
                for address in http.backend_addresses() {
                    let connect = actix_web::rt::net::TcpStream::connect(address.clone());
                    if let Ok(Ok(_)) =
                        actix_web::rt::time::timeout(READY_PROBE_TIMEOUT, connect).await
                    {
                        reachable = true;
                        break;
                    }
                }
                if !reachable {
                    problems.push(format!("{}: no backend URL reachable", authorizer.name));
                }
            }
            _ => {}
        }
    }
    let mut fleet = None;
    let mut degraded = false;
    if let Some(shared) = &resolver.shared {
        let (line, readiness) = shared.readiness();
        match readiness {
            Readiness::Unready => problems.push(line),
            Readiness::Degraded => {
                degraded = true;
                fleet = Some(line);
            }
            Readiness::Ready => fleet = Some(line),
        }
    }
    if problems.is_empty() {
        if let Some(line) = fleet {
            let head = if degraded {
                "ready, degraded:"
            } else {
                "ready"
            };
            return HttpResponse::Ok()
                .content_type("text/plain")
                .body(format!("{head}\n{line}\n"));
        }
        HttpResponse::Ok()
            .content_type("text/plain")
            .body("ready\n")
    } else {
        HttpResponse::ServiceUnavailable()
            .content_type("text/plain")
            .body(format!("not ready:\n{}\n", problems.join("\n")))
    }
}

async fn metrics(current: web::Data<Current>) -> HttpResponse {
    let resolver = current.get();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(resolver.metrics.render(resolver.cache.entry_count()))
}
