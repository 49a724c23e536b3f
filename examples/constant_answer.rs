//! The floor of the cached path in this stack: actix-web alone (the same patched
//! actix-http, one worker, the same request-head timeout) answering the auth-request
//! allow verdict gives, its identity headers from constants. `bench/load.sh` runs it
//! beside verdict so the distance from actix's own cost to verdict's is measured, not
//! guessed. Usage: `constant_answer PORT`.

use actix_web::{App, HttpResponse, HttpServer, web};

async fn answer() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("x-authgear-session-valid", "true"))
        .insert_header(("x-authgear-user-id", "load"))
        .insert_header(("x-authgear-user-anonymous", "false"))
        .insert_header(("x-authgear-user-verified", "false"))
        .insert_header(("x-authgear-user-can-reauthenticate", "false"))
        .insert_header(("x-authgear-user-roles", ""))
        .insert_header(("x-authgear-session-amr", ""))
        .insert_header(("x-authgear-session-authenticated-at", "0"))
        .insert_header(("x-session-name", "load"))
        .insert_header(("x-accel-expires", "59"))
        .finish()
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(18090);
    HttpServer::new(|| App::new().route("/_resolver/auth-request", web::to(answer)))
        .workers(1)
        .client_request_timeout(std::time::Duration::from_secs(5))
        .bind(("127.0.0.1", port))?
        .run()
        .await
}
