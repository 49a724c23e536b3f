//! The admin listener's endpoints, never on the decision port: `/healthz` (alive),
//! `/readyz` (configuration loaded, keys fetched, a backend reachable, not stopping) and
//! `/metrics` (Prometheus text), each for GET and HEAD.
//!
//! Takes: the resolver in force and the decision listener's drain state. Returns: plain
//! text answers. Must never: answer a decision, or say ready while a stop has begun.

use std::time::Duration;

use actix_web::{HttpResponse, web};

use crate::authorizer::AuthorizerKind;
use crate::reload::Current;
use crate::server::Drain;

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
    );
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
    if problems.is_empty() {
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
