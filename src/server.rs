//! The HTTP edge: decision endpoints, the admin listener, and the listeners' lifecycle.
//!
//! Takes: requests on `server.listen` (any method; the proxy dialects never read a body)
//! and `server.admin_listen`. Returns: the dialect's answer. Each decision reads as
//! normalize (the dialect reads trusted facts) → decide (the [`Resolver`]) → encode (the
//! dialect's answer) → record (one log line and the metrics). Must never: answer a
//! decision request on the admin port or a health check on the decision port, or log a
//! credential.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix_web::dev::{Server, ServerHandle};
use actix_web::rt::signal::unix::{SignalKind, signal};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

use crate::authorizer::{AuthorizerKind, Fetcher};
use crate::clock::Clock;
use crate::config::{Config, Source};
use crate::decision::{Outcome, Refusal};
use crate::dialect::encode::Original;
use crate::dialect::{self, Body, DIALECTS, Dialect};
use crate::record::{Record, record};
use crate::reload::{Current, reload};
use crate::request::TargetError;
use crate::resolver::{Decided, Resolver};

/// The Authgear-compatible endpoint, answered in `server.resolve_dialect`.
pub const RESOLVE_PATH: &str = "/_resolver/resolve";

/// One decision request, in the dialect its endpoint chose.
async fn handle(
    request: HttpRequest,
    payload: web::Payload,
    current: web::Data<Current>,
    worker: web::Data<WorkerFetcher>,
    lifecycle: web::Data<Lifecycle>,
    dialect: &'static dyn Dialect,
    prefix: &'static str,
) -> HttpResponse {
    let started = Instant::now();
    // counted until answered (or dropped): a stop that runs out of time says how many it
    // cut off
    let in_flight = InFlight::start(&lifecycle);
    // The whole decision runs on the configuration in force now, even if a reload swaps
    // in another while it waits on a backend.
    let resolver = current.get();
    let fetcher = worker.for_resolver(&resolver);
    let config = &resolver.config;
    let trusted = &config.server.trusted_proxies;
    // One trust decision per request, and it gates everything after it: a peer outside
    // trusted_proxies is refused without a byte of its body read or a fact it sent
    // believed.
    let peer = dialect::trusted_peer(&request, trusted);
    // a body only for a dialect whose caller sends its facts in one, or a proxy that
    // sent the client's form body (for the `_method` it may hold)
    let body = match (peer, dialect.body()) {
        (Ok(_), Body::Facts) => Some(Box::pin(read_body(payload, &resolver.clock)).await),
        (Ok(_), Body::ClientMaySend) if dialect::carries_form_body(&request) => {
            // boxed: only the requests that read a body carry its state (a timer, a buffer)
            Some(Box::pin(read_body(payload, &resolver.clock)).await)
        }
        _ => None,
    };
    let forwarded = match (peer, &body) {
        (Err(refusal), _) => Err(Outcome::Refused(refusal)),
        // an unreadable body of facts is a refusal; a client's body verdict could not
        // read whole is only unseen (the readings then assume it may say anything)
        (Ok(_), Some(Err(error))) if dialect.body() == Body::Facts => {
            Err(Outcome::Refused(Refusal::BadTarget(*error)))
        }
        (Ok(peer), body) => {
            let whole = body.as_ref().and_then(|b| b.as_ref().ok()).map(|b| &b[..]);
            dialect::read(&request, dialect, prefix, peer, trusted, whole)
        }
    };
    let decided = match &forwarded {
        Ok(forwarded) => resolver.decide(forwarded, &fetcher).await,
        Err(outcome) => Decided::before_routing(outcome.clone()),
    };
    let target = forwarded.as_ref().ok().map(|f| &f.target);
    let original = Original {
        target,
        accept: forwarded.as_ref().ok().and_then(|f| f.header("accept")),
    };
    let answer = dialect.answer(&decided.outcome, original, &config.answer);
    record(
        &resolver.metrics,
        &Record {
            dialect: dialect.name(),
            decided: &decided,
            status: answer.response.status().as_u16(),
            target,
            client_ip: forwarded.as_ref().ok().map(|f| f.client_ip),
            problem: answer.problem.map(|p| format!("{p:?}")),
            latency: started.elapsed(),
        },
    );
    drop(in_flight);
    answer.response
}

/// The most a caller's body may hold: the facts of one access fit in far less.
const MAX_BODY: usize = 64 * 1024;

/// How long a caller may take to send its body.
const BODY_DEADLINE: Duration = Duration::from_secs(5);

/// A caller's body, bounded in size and in time (on the resolver's clock).
async fn read_body(mut payload: web::Payload, clock: &Clock) -> Result<web::Bytes, TargetError> {
    use futures_util::StreamExt as _;
    let read = async {
        let mut body = web::BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|_| TargetError::BadBody)?;
            if body.len() + chunk.len() > MAX_BODY {
                return Err(TargetError::BodyTooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    };
    let deadline = clock.sleep(BODY_DEADLINE);
    match futures_util::future::select(Box::pin(read), Box::pin(deadline)).await {
        futures_util::future::Either::Left((read, _)) => read,
        futures_util::future::Either::Right(_) => Err(TargetError::SlowBody),
    }
}

/// Registers the decision endpoints: every dialect's path (and its path tail, for a
/// dialect whose caller appends the original path), plus the resolve path in
/// `resolve_dialect`. Any method is accepted on each.
pub fn decision_routes(
    resolve_dialect: &'static dyn Dialect,
) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg: &mut web::ServiceConfig| {
        let endpoint = |dialect: &'static dyn Dialect, prefix: &'static str| {
            web::route().to(
                move |req: HttpRequest,
                      payload: web::Payload,
                      current: web::Data<Current>,
                      worker: web::Data<WorkerFetcher>,
                      lifecycle: web::Data<Lifecycle>| {
                    handle(req, payload, current, worker, lifecycle, dialect, prefix)
                },
            )
        };
        let mut serve = |dialect: &'static dyn Dialect, prefix: &'static str| {
            cfg.service(web::resource(prefix).route(endpoint(dialect, prefix)));
            if dialect.takes_path_tail() {
                cfg.service(
                    web::resource(format!("{prefix}/{{tail:.*}}")).route(endpoint(dialect, prefix)),
                );
            }
        };
        serve(resolve_dialect, RESOLVE_PATH);
        for dialect in DIALECTS {
            serve(dialect, dialect.path());
        }
    }
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok\n")
}

/// Ready when every JWKS has been fetched at least once and every `http` authorizer has
/// at least one backend URL that accepts a TCP connection.
async fn readyz(current: web::Data<Current>, lifecycle: web::Data<Lifecycle>) -> HttpResponse {
    let resolver = current.get();
    let mut problems = Vec::new();
    if lifecycle.is_stopping() {
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

/// Runs every JWKS refresh loop of `resolver` in the background (see
/// [`Resolver::key_refreshers`]).
fn spawn_jwks_refreshers(resolver: &Arc<Resolver>) {
    for refresher in Resolver::key_refreshers(resolver) {
        actix_web::rt::spawn(refresher);
    }
}

/// Longer than any `server.drain_timeout` (at most 10 minutes): the listener's own bound
/// on a graceful stop, behind the Stopper's.
const DRAIN_BOUND: Duration = Duration::from_secs(3600);

/// How long /readyz waits for one backend's TCP connect.
const READY_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// One worker's network clients (awc clients are `!Send`: each worker builds its own),
/// rebuilt when a reload brings another configuration.
pub struct WorkerFetcher {
    built: RefCell<Option<(u64, Rc<Fetcher>)>>,
}

impl WorkerFetcher {
    fn new() -> WorkerFetcher {
        WorkerFetcher {
            built: RefCell::new(None),
        }
    }

    fn for_resolver(&self, resolver: &Resolver) -> Rc<Fetcher> {
        let mut built = self.built.borrow_mut();
        if let Some((generation, fetcher)) = built.as_ref()
            && *generation == resolver.generation
        {
            return fetcher.clone();
        }
        let fetcher = Rc::new(resolver.fetcher());
        *built = Some((resolver.generation, fetcher.clone()));
        fetcher
    }
}

/// One open decision connection, counted while it lives.
struct OpenConnection(crate::metrics::Metrics);

impl OpenConnection {
    fn new(metrics: crate::metrics::Metrics) -> OpenConnection {
        metrics.connection(1);
        OpenConnection(metrics)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.connection(-1);
    }
}

/// Whether the process is stopping: from the first moment of a stop, `/readyz` answers 503
/// so load balancers take verdict out before its listener closes. And how many decisions
/// are in flight, so that a stop that runs out of time can say how many it cut off.
#[derive(Debug, Default)]
pub struct Lifecycle {
    stopping: AtomicBool,
    in_flight: AtomicU64,
}

impl Lifecycle {
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Decisions started and not yet answered.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::SeqCst)
    }
}

/// One decision in flight, counted while its handler lives: answered, or dropped because
/// its client went away. What is still counted when a drain runs out is cut off.
struct InFlight<'a>(&'a Lifecycle);

impl<'a> InFlight<'a> {
    fn start(lifecycle: &'a Lifecycle) -> InFlight<'a> {
        lifecycle.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(lifecycle)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A bound (not yet running) pair of servers.
pub struct Running {
    pub decision_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub current: web::Data<Current>,
    lifecycle: web::Data<Lifecycle>,
    decision: Server,
    admin: Server,
    /// Where a reload reads the configuration from; `None`: signals are not handled.
    signals: Option<Source>,
}

impl Running {
    pub fn handles(&self) -> (ServerHandle, ServerHandle) {
        (self.decision.handle(), self.admin.handle())
    }

    /// Runs both servers until both stop. With signals handled, SIGTERM and SIGINT stop
    /// gracefully ([`Stopper::stop`]) and SIGHUP reloads the configuration. A stop whose
    /// drain runs out of time with decisions in flight is an error that says how many.
    pub async fn run(self) -> std::io::Result<()> {
        let (cut_off, was_cut_off) = tokio::sync::oneshot::channel::<u64>();
        let mut cut_off = Some(cut_off);
        if let Some(source) = self.signals.clone() {
            let mut hangup = signal(SignalKind::hangup())?;
            let current = self.current.clone();
            actix_web::rt::spawn(async move {
                while hangup.recv().await.is_some() {
                    log::info!("reload: SIGHUP received");
                    if let Some(fresh) = reload(&current, &source).await {
                        spawn_jwks_refreshers(&fresh);
                    }
                }
            });
            let stop = Stopper {
                lifecycle: self.lifecycle.clone(),
                decision: self.decision.handle(),
                admin: self.admin.handle(),
                current: self.current.clone(),
                cut_off: cut_off.take(),
            };
            let mut terminate = signal(SignalKind::terminate())?;
            let mut interrupt = signal(SignalKind::interrupt())?;
            actix_web::rt::spawn(async move {
                let which = match futures_util::future::select(
                    Box::pin(terminate.recv()),
                    Box::pin(interrupt.recv()),
                )
                .await
                {
                    futures_util::future::Either::Left(_) => "SIGTERM",
                    futures_util::future::Either::Right(_) => "SIGINT",
                };
                stop.stop(which).await;
            });
        }
        drop(cut_off);
        let lifecycle = self.lifecycle.clone();
        let servers = Box::pin(futures_util::future::join(self.decision, self.admin));
        let (a, b) = match futures_util::future::select(servers, was_cut_off).await {
            futures_util::future::Either::Left((done, _)) => done,
            // the drain ran out with nothing in flight (connections idle): done
            futures_util::future::Either::Right((Ok(0), _)) => {
                log::info!("stop: done");
                return Ok(());
            }
            // the drain ran out: the decisions still in flight are cut off when the
            // process exits, and the exit status says so
            futures_util::future::Either::Right((Ok(cut), _)) => {
                return Err(std::io::Error::other(format!(
                    "stop: {cut} decision(s) in flight cut off unanswered when server.drain_timeout ran out"
                )));
            }
            futures_util::future::Either::Right((Err(_), servers)) => servers.await,
        };
        if lifecycle.is_stopping() {
            log::info!("stop: done");
        }
        a.and(b)
    }
}

/// What a stop needs: the two listeners, in order.
struct Stopper {
    lifecycle: web::Data<Lifecycle>,
    decision: ServerHandle,
    admin: ServerHandle,
    current: web::Data<Current>,
    /// Told how many decisions were cut off, when the drain runs out of time.
    cut_off: Option<tokio::sync::oneshot::Sender<u64>>,
}

impl Stopper {
    /// Readiness off at once; the decision listener closed and every decision in flight
    /// answered (for at most the drain timeout in force now, a reloaded one included);
    /// only then the admin listener. The admin listener must outlive the drain: stopping
    /// it first used to end the runtime under the decisions still being answered.
    async fn stop(mut self, signal: &str) {
        self.lifecycle.stopping.store(true, Ordering::SeqCst);
        let drain = self.current.get().config.server.drain_timeout;
        log::info!("stop: {signal} received; /readyz answers 503 from now on");
        log::info!(
            "stop: decision listener closed; answering the decisions in flight (at most {drain:?})"
        );
        let drained = actix_web::rt::time::timeout(drain, self.decision.stop(true)).await;
        if drained.is_err() {
            // the listener's own graceful stop goes on past our deadline: end here, and
            // say what that cuts off
            let cut = self.lifecycle.in_flight();
            if cut > 0 {
                log::error!(
                    "stop: server.drain_timeout ({drain:?}) ran out: {cut} decision(s) in flight cut off unanswered"
                );
            } else {
                log::info!(
                    "stop: server.drain_timeout ({drain:?}) ran out with no decision in flight; closing idle connections"
                );
            }
            self.admin.stop(false).await;
            if let Some(cut_off) = self.cut_off.take() {
                let _ = cut_off.send(cut);
            }
            return;
        }
        log::info!("stop: every decision in flight answered; stopping the admin listener");
        self.admin.stop(true).await;
    }
}

/// Builds the resolver, fetches keys, and binds both listeners. With `signals` (the
/// configuration's source), SIGTERM/SIGINT stop gracefully and SIGHUP reloads from it;
/// without (tests), the servers stop only through their handles.
pub async fn bind(config: Config, signals: Option<Source>) -> std::io::Result<Running> {
    bind_with_clock(config, signals, Clock::system()).await
}

/// [`bind`], with every deadline read from `clock` (a manual one in tests: TTLs, key
/// refreshes and cool-downs then pass when the test moves it, not when time does).
pub async fn bind_with_clock(
    config: Config,
    signals: Option<Source>,
    clock: Clock,
) -> std::io::Result<Running> {
    let resolver = Arc::new(Resolver::with_clock(Arc::new(config), clock)?);
    resolver.prefetch_keys().await;
    let config = resolver.config.clone();
    let current = web::Data::new(Current::new(resolver.clone()));
    let lifecycle = web::Data::new(Lifecycle::default());
    let workers = match config.server.workers {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let resolve_dialect = config.server.resolve_dialect;
    let decision_current = current.clone();
    let connection_metrics = resolver.metrics.clone();
    let decision_lifecycle = lifecycle.clone();
    let decision = HttpServer::new(move || {
        App::new()
            .app_data(decision_current.clone())
            .app_data(decision_lifecycle.clone())
            .app_data(web::Data::new(WorkerFetcher::new()))
            .configure(decision_routes(resolve_dialect))
            .default_service(web::to(HttpResponse::NotFound))
    })
    .workers(workers)
    // Counts open connections: the guard lives in the connection's extensions and is
    // dropped with them when the connection closes.
    .on_connect(move |_, extensions| {
        extensions.insert(OpenConnection::new(connection_metrics.clone()));
    })
    // Every request head of a connection, not only the first, must arrive in time (see
    // vendor/actix-http/PATCHED.md): a peer cannot hold a connection by trickling bytes.
    .client_request_timeout(config.server.request_head_timeout)
    .keep_alive(config.server.keep_alive)
    .max_connections(per_worker_connections(
        config.server.max_connections,
        workers,
    ))
    // verdict handles the signals itself, so the two listeners stop in order
    .disable_signals()
    // the drain's deadline is the Stopper's, read from the configuration in force when
    // the stop begins (so a reloaded drain_timeout applies); this one only bounds it
    .shutdown_timeout(DRAIN_BOUND.as_secs())
    .bind(config.server.listen)
    .map_err(|e| bind_error("server.listen", config.server.listen, e))?;
    let decision_addr = decision
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| std::io::Error::other("no decision address"))?;

    let admin_current = current.clone();
    let admin_lifecycle = lifecycle.clone();
    let admin = HttpServer::new(move || {
        App::new()
            .app_data(admin_current.clone())
            .app_data(admin_lifecycle.clone())
            // HEAD too: load balancers and `curl -I` probe with it
            .service(
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
            .default_service(web::to(HttpResponse::NotFound))
    })
    .workers(1)
    .disable_signals()
    .bind(config.server.admin_listen)
    .map_err(|e| bind_error("server.admin_listen", config.server.admin_listen, e))?;
    let admin_addr = admin
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| std::io::Error::other("no admin address"))?;

    spawn_jwks_refreshers(&resolver);

    Ok(Running {
        decision_addr,
        admin_addr,
        current,
        lifecycle,
        decision: decision.run(),
        admin: admin.run(),
        signals,
    })
}

/// Open files this process may use: the soft limit raised to the hard one, so slow or idle
/// clients run out of connection slots (`server.max_connections`) before the process
/// runs out of file descriptors for its backends and its admin listener.
pub fn raise_open_file_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed by pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit.rlim_cur = limit.rlim_max;
            }
        }
    }
    limit.rlim_cur
}

/// Open files kept for what is not a decision connection: backend pools, key fetches,
/// the admin listener, logs.
const RESERVED_FILES: u64 = 512;

/// The decision connections one worker may hold: the configured total, or, with 0, what
/// the open-file limit leaves after the reserve; split across workers.
fn per_worker_connections(configured: usize, workers: usize) -> usize {
    let total = if configured > 0 {
        configured
    } else {
        let files = OPEN_FILES.load(Ordering::Relaxed);
        let files = if files == 0 { 1024 } else { files };
        usize::try_from(files.saturating_sub(RESERVED_FILES).max(64)).unwrap_or(usize::MAX)
    };
    (total / workers.max(1)).max(1)
}

/// The open-file limit in force, as [`raise_open_file_limit`] left it.
pub static OPEN_FILES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A bind failure that says which listener and which address.
fn bind_error(key: &str, address: SocketAddr, error: std::io::Error) -> std::io::Error {
    std::io::Error::new(error.kind(), format!("{key} {address}: {error}"))
}
