//! The gRPC edge: Envoy's authorization service (`envoy.service.auth.v3.Authorization`)
//! on `server.grpc_listen`, for Envoy, Istio, Envoy Gateway and Contour (gRPC only).
//!
//! Takes: `Check` calls on an HTTP/2 listener served by tonic on a thread of its own; each
//! call is decided on one of verdict's own decision threads (the resolver's network
//! clients stay on the thread that made them), exactly as an HTTP dialect's request is:
//! trusted peer, read, decide, answer, record. Returns: `OkHttpResponse` with verdict's
//! identity headers set (overwriting) and every other identity header of every family
//! removed, so Envoy itself keeps a client's copy from the application;
//! `DeniedHttpResponse` with 401 (+ `WWW-Authenticate`) or the login 302, 403; and the
//! gRPC status UNAVAILABLE when verdict cannot decide, which Envoy turns into a refusal
//! (`failure_mode_allow: false`). Must never: serve a peer outside
//! `server.trusted_proxies`, answer OK for anything but an allow, or log a credential.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use actix_web::web;
use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::config::core::v3::{HeaderValue, HeaderValueOption};
use envoy_types::pb::envoy::service::auth::v3::authorization_server::{
    Authorization, AuthorizationServer,
};
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{
    CheckRequest, CheckResponse, DeniedHttpResponse, OkHttpResponse,
};
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::google::rpc;

use crate::decision::{Outcome, Refusal};
use crate::dialect;
use crate::dialect::ext_authz_grpc::{Checked, EXT_AUTHZ_GRPC, read_check};
use crate::identity::{HeaderFamily, family_names, is_identity_header};
use crate::reload::Current;
use crate::server::{Drain, InFlight, WorkerFetcher, conclude};

/// gRPC status codes used here.
const OK: i32 = 0;
const PERMISSION_DENIED: i32 = 7;

thread_local! {
    /// The network clients of the decision thread this runs on.
    static FETCHER: WorkerFetcher = WorkerFetcher::default();
}

/// The running gRPC listener: its address, and the switch that ends it.
#[derive(Debug, Clone)]
pub struct GrpcListener {
    pub addr: SocketAddr,
    pub stop: Arc<GrpcStop>,
}

/// Ends the gRPC listener: when the other listeners have stopped (it also stops as soon
/// as a graceful stop begins).
#[derive(Debug, Default)]
pub struct GrpcStop {
    asked: std::sync::atomic::AtomicBool,
    wake: tokio::sync::Notify,
    done: std::sync::atomic::AtomicBool,
    finished: tokio::sync::Notify,
}

impl GrpcStop {
    /// Asks the listener to stop, without waiting.
    pub fn ask(&self) {
        self.asked.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// Asks the listener to stop and waits (at most 5 s) until it has: no call is
    /// answered after this returns.
    pub async fn stop(&self) {
        self.ask();
        let wait = async {
            loop {
                let finished = self.finished.notified();
                if self.done.load(Ordering::SeqCst) {
                    return;
                }
                finished.await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), wait).await;
    }
}

/// One decision asked over gRPC, handed to a decision thread.
struct Job {
    check: CheckRequest,
    peer: Option<SocketAddr>,
    reply: tokio::sync::oneshot::Sender<Result<CheckResponse, tonic::Status>>,
}

/// The service tonic calls: hands each check to a decision thread, round robin.
struct Service {
    threads: Arc<Vec<actix_rt::Arbiter>>,
    next: AtomicUsize,
    current: web::Data<Current>,
    drain: web::Data<Drain>,
}

#[tonic::async_trait]
impl Authorization for Service {
    async fn check(
        &self,
        request: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        let peer = request.remote_addr();
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = Job {
            check: request.into_inner(),
            peer,
            reply,
        };
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.threads.len().max(1);
        let Some(thread) = self.threads.get(index) else {
            return Err(tonic::Status::unavailable("no decision thread"));
        };
        let (current, drain) = (self.current.clone(), self.drain.clone());
        let handed = thread.spawn_fn(move || {
            // on the decision thread: the decision may hold its thread's own clients
            actix_web::rt::spawn(async move {
                let answer = decide(&current, &drain, &job.check, job.peer).await;
                let _ = job.reply.send(answer);
            });
        });
        if !handed {
            return Err(tonic::Status::unavailable("verdict is stopping"));
        }
        match answer.await {
            Ok(answer) => answer.map(tonic::Response::new),
            Err(_) => Err(tonic::Status::unavailable("the decision was dropped")),
        }
    }
}

/// One check, decided as an HTTP dialect's request is.
async fn decide(
    current: &Current,
    drain: &Drain,
    check: &CheckRequest,
    peer: Option<SocketAddr>,
) -> Result<CheckResponse, tonic::Status> {
    let started = Instant::now();
    let in_flight = InFlight::start(drain);
    let resolver = current.get();
    let fetcher = FETCHER.with(|fetcher| fetcher.for_resolver(&resolver));
    let config = &resolver.config;
    // Trust decision: only a configured proxy's connection may tell us about a request;
    // the gRPC peer is the TCP peer of this connection
    let trusted = dialect::trusted_peer_at(peer.map(|p| p.ip()), &config.server.trusted_proxies);
    let checked = match trusted {
        Err(refusal) => Err(Outcome::Refused(refusal)),
        Ok(_) => read_check(check).map_err(|e| Outcome::Refused(Refusal::Unreadable(e))),
    };
    let body: Option<Vec<u8>> = checked.as_ref().ok().and_then(|c| c.body.clone());
    let forwarded = checked.and_then(|Checked { facts, headers, .. }| {
        dialect::refuse_aliases(&headers)?;
        dialect::finish(&EXT_AUTHZ_GRPC, facts, headers, body.as_deref())
    });
    // Trust decision: the caller's trace context is read only from a trusted peer
    let traced = resolver.tracing.as_ref().map(|tracing| {
        let parent = match (trusted, check.attributes.as_ref()) {
            (Ok(_), Some(attributes)) => crate::tracing::extract(
                attributes
                    .request
                    .iter()
                    .flat_map(|r| r.http.iter())
                    .flat_map(|h| h.headers.iter())
                    .map(|(n, v)| (n.as_str(), v.as_bytes())),
            ),
            _ => opentelemetry::Context::new(),
        };
        tracing.decision(&parent)
    });
    let answer = conclude(
        &resolver,
        &fetcher,
        &EXT_AUTHZ_GRPC,
        &forwarded,
        traced.as_ref(),
        started,
        None,
    )
    .await;
    let status = answer.response.status().as_u16();
    drop(in_flight);
    let headers: Vec<(String, String)> = answer
        .response
        .headers()
        .iter()
        .filter_map(|(name, value)| {
            Some((name.as_str().to_string(), value.to_str().ok()?.to_string()))
        })
        .collect();
    let custom: Vec<&str> = config
        .answer
        .custom
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    check_response(status, &headers, &custom)
}

/// The `CheckResponse` for verdict's answer: its status and headers.
fn check_response(
    status: u16,
    headers: &[(String, String)],
    custom: &[&str],
) -> Result<CheckResponse, tonic::Status> {
    let option = |name: &str, value: &str| HeaderValueOption {
        header: Some(HeaderValue {
            key: name.to_string(),
            value: value.to_string(),
            ..Default::default()
        }),
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        ..Default::default()
    };
    match status {
        200 => {
            let set: Vec<&(String, String)> = headers
                .iter()
                .filter(|(name, _)| {
                    is_identity_header(name) || custom.iter().any(|c| c.eq_ignore_ascii_case(name))
                })
                .collect();
            // Trust decision: every identity header verdict does not set is removed, of
            // every family, switched on or not: Envoy itself keeps a client's copy from
            // the application (a name verdict sets is overwritten instead)
            let headers_to_remove = [
                HeaderFamily::Authgear,
                HeaderFamily::SessionName,
                HeaderFamily::RemoteUser,
                HeaderFamily::AuthRequest,
            ]
            .into_iter()
            .flat_map(family_names)
            .map(str::to_string)
            .chain(custom.iter().map(|name| name.to_string()))
            .filter(|name| !set.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)))
            .collect();
            Ok(CheckResponse {
                status: Some(rpc::Status {
                    code: OK,
                    ..Default::default()
                }),
                http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
                    headers: set.iter().map(|(n, v)| option(n, v)).collect(),
                    headers_to_remove,
                    ..Default::default()
                })),
                ..Default::default()
            })
        }
        // could not decide (a backend down and the route says deny, an answer too large
        // to send): an error, which Envoy refuses with `failure_mode_allow: false`
        500..=599 => Err(tonic::Status::unavailable("verdict could not decide")),
        code => {
            let kept: Vec<HeaderValueOption> = headers
                .iter()
                .filter(|(name, _)| {
                    name.eq_ignore_ascii_case("www-authenticate")
                        || name.eq_ignore_ascii_case("location")
                })
                .map(|(n, v)| option(n, v))
                .collect();
            Ok(CheckResponse {
                status: Some(rpc::Status {
                    code: PERMISSION_DENIED,
                    ..Default::default()
                }),
                http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
                    status: Some(HttpStatus {
                        code: i32::from(code),
                    }),
                    headers: kept,
                    ..Default::default()
                })),
                ..Default::default()
            })
        }
    }
}

/// How often the gRPC listener looks whether a stop has begun.
const STOP_POLL: Duration = Duration::from_millis(100);

/// Binds `addr` and serves the authorization service there, on a thread of its own,
/// with `threads` decision threads, until a stop begins (the calls in flight are
/// answered first).
pub fn start(
    addr: SocketAddr,
    threads: usize,
    current: web::Data<Current>,
    drain: web::Data<Drain>,
) -> std::io::Result<GrpcListener> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    let stop = Arc::new(GrpcStop::default());
    let stopped = stop.clone();
    let deciders: Vec<actix_rt::Arbiter> = (0..threads.max(1))
        .map(|_| actix_rt::Arbiter::new())
        .collect();
    let service = Service {
        threads: Arc::new(deciders),
        next: AtomicUsize::new(0),
        current,
        drain: drain.clone(),
    };
    std::thread::Builder::new()
        .name("verdict-grpc".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    log::error!("grpc: no runtime: {e}");
                    return;
                }
            };
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => listener,
                    Err(e) => {
                        log::error!("grpc: {e}");
                        return;
                    }
                };
                let incoming = tonic::transport::server::TcpIncoming::from(listener);
                let stopper = stopped.clone();
                let stopping = async move {
                    while !drain.is_stopping() && !stopper.asked.load(Ordering::SeqCst) {
                        let _ = tokio::time::timeout(STOP_POLL, stopper.wake.notified()).await;
                    }
                };
                let served = tonic::transport::Server::builder()
                    .add_service(AuthorizationServer::new(service))
                    .serve_with_incoming_shutdown(incoming, stopping)
                    .await;
                if let Err(e) = served {
                    log::error!("grpc: {e}");
                }
                stopped.done.store(true, Ordering::SeqCst);
                stopped.finished.notify_waiters();
            });
        })?;
    Ok(GrpcListener { addr: bound, stop })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_allow_sets_verdicts_identity_and_removes_every_other_identity_header() {
        let answer = check_response(
            200,
            &[
                ("x-authgear-user-id".into(), "u-1".into()),
                ("x-authgear-session-valid".into(), "true".into()),
                ("cache-control".into(), "no-store".into()),
            ],
            &[],
        )
        .unwrap();
        let Some(HttpResponse::OkResponse(ok)) = answer.http_response else {
            panic!("an OK response");
        };
        let set: Vec<&str> = ok
            .headers
            .iter()
            .map(|h| h.header.as_ref().unwrap().key.as_str())
            .collect();
        assert_eq!(set, ["x-authgear-user-id", "x-authgear-session-valid"]);
        assert!(
            ok.headers
                .iter()
                .all(|h| h.append_action == HeaderAppendAction::OverwriteIfExistsOrAdd as i32)
        );
        for removed in ["x-session-name", "remote-user", "x-auth-request-email"] {
            assert!(
                ok.headers_to_remove.iter().any(|n| n == removed),
                "{removed}"
            );
        }
        assert!(
            !ok.headers_to_remove
                .iter()
                .any(|n| n == "x-authgear-user-id")
        );
    }

    #[test]
    fn a_deny_carries_its_status_and_challenge_and_a_failure_is_an_error() {
        let answer = check_response(
            401,
            &[
                ("www-authenticate".into(), "Bearer realm=\"verdict\"".into()),
                ("x-authgear-user-id".into(), "never".into()),
            ],
            &[],
        )
        .unwrap();
        assert_eq!(answer.status.unwrap().code, PERMISSION_DENIED);
        let Some(HttpResponse::DeniedResponse(denied)) = answer.http_response else {
            panic!("a denied response");
        };
        assert_eq!(denied.status.unwrap().code, 401);
        assert_eq!(denied.headers.len(), 1);
        assert_eq!(
            check_response(503, &[], &[]).unwrap_err().code(),
            tonic::Code::Unavailable
        );
    }
}
