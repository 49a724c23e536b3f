//! The listeners' lifecycle: binding the decision and admin listeners, the connection
//! cap from the open-file limit, counting open connections, SIGHUP reloads, and the
//! graceful stop (readiness off, drain within `server.drain_timeout`, then the admin
//! listener).
//!
//! Takes: a validated configuration and a [`Launch`] (signals, clock, open files).
//! Returns: [`Running`] listeners, and, from [`Running::run`], how they ended: an error
//! when a stop cut decisions off. Must never: stop the admin listener before the drain
//! ends, say every decision was answered when one was not, or ignore a reloaded
//! `drain_timeout`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::rt::signal::unix::{SignalKind, signal};
use actix_web::{App, HttpResponse, HttpServer, web};

use crate::admin::admin_routes;
use crate::clock::Clock;
use crate::config::{Config, Source};
use crate::reload::{Current, Trigger, Watched, reload, reload_for};
use crate::resolver::Resolver;
use crate::server::{Drain, WorkerFetcher, decision_routes};

/// Runs every JWKS refresh loop of `resolver` in the background (see
/// [`Resolver::key_refreshers`]).
fn spawn_jwks_refreshers(resolver: &Arc<Resolver>) {
    for refresher in Resolver::key_refreshers(resolver) {
        actix_web::rt::spawn(refresher);
    }
}

/// How long a watch waits after a change for the next one before it reloads: a
/// ConfigMap update or an editor's save is several events.
const WATCH_QUIET: Duration = Duration::from_millis(250);

/// Reloads when the configuration file or a file it names changes (`server.watch`),
/// through the SIGHUP path; watches the files of each configuration that comes into force.
fn watch(current: web::Data<Current>, source: Source, file: std::path::PathBuf) {
    let (changes, mut changed) = tokio::sync::mpsc::unbounded_channel::<()>();
    let start = move |watched: &Watched| {
        let changes = changes.clone();
        match watched.start(move || {
            let _ = changes.send(());
        }) {
            Ok(watcher) => Some(watcher),
            Err(e) => {
                log::error!("watch: {e}; the configuration reloads on SIGHUP only");
                None
            }
        }
    };
    actix_web::rt::spawn(async move {
        let mut watched = Watched::of(&file, &current.get().config);
        let mut watcher = start(&watched);
        if watcher.is_some() {
            log::info!(
                "watch: reloading when {} or a file it names changes",
                file.display()
            );
        }
        while changed.recv().await.is_some() {
            // the rest of this change: quiet for WATCH_QUIET, then one reload
            while let Ok(Some(())) = actix_web::rt::time::timeout(WATCH_QUIET, changed.recv()).await
            {
            }
            if let Some(fresh) = reload_for(&current, &source, Trigger::FileChange).await {
                spawn_jwks_refreshers(&fresh);
                let now = Watched::of(&file, &fresh.config);
                if now != watched {
                    watched = now;
                    drop(watcher.take());
                    watcher = start(&watched);
                }
            }
        }
        drop(watcher);
    });
}

/// Longer than any `server.drain_timeout` (at most 10 minutes): the listener's own bound
/// on a graceful stop, behind the Stopper's.
const DRAIN_BOUND: Duration = Duration::from_secs(3600);

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

/// A bound (not yet running) pair of servers.
pub struct Running {
    pub decision_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// Envoy's gRPC authorization service, when `server.grpc_listen` is set.
    pub grpc_addr: Option<SocketAddr>,
    grpc: Option<crate::grpc::GrpcListener>,
    pub current: web::Data<Current>,
    drain: web::Data<Drain>,
    decision: Server,
    admin: Server,
    /// Where a reload reads the configuration from; `None`: signals are not handled.
    signals: Option<Source>,
}

impl Running {
    pub fn handles(&self) -> (ServerHandle, ServerHandle) {
        (self.decision.handle(), self.admin.handle())
    }

    /// What stops the gRPC listener, when there is one.
    pub fn grpc_stop(&self) -> Option<Arc<crate::grpc::GrpcStop>> {
        self.grpc.as_ref().map(|g| g.stop.clone())
    }

    /// Runs both servers until both stop. With signals handled, SIGTERM and SIGINT stop
    /// gracefully (readiness off, drain, admin listener last) and SIGHUP reloads the configuration. A stop whose
    /// drain runs out of time with decisions in flight is an error that says how many.
    pub async fn run(self) -> std::io::Result<()> {
        // however the listeners end, the gRPC one ends with them
        let _grpc = self.grpc.as_ref().map(|g| StopOnDrop(g.stop.clone()));
        // however the listeners end, the spans still queued are sent
        let _traces = FlushOnDrop(self.current.get().tracing.clone());
        let (cut_off, was_cut_off) = tokio::sync::oneshot::channel::<u64>();
        let mut cut_off = Some(cut_off);
        if let Some(source) = self.signals.clone() {
            if let Some(file) = source.file.clone()
                && self.current.get().config.server.watch
            {
                watch(self.current.clone(), source.clone(), file);
            }
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
                drain: self.drain.clone(),
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
        let drain = self.drain.clone();
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
        if drain.is_stopping() {
            log::info!("stop: done");
        }
        a.and(b)
    }
}

/// Stops the gRPC listener when dropped.
struct StopOnDrop(Arc<crate::grpc::GrpcStop>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.ask();
    }
}

/// Sends the spans still queued when dropped.
struct FlushOnDrop(Option<crate::tracing::Tracing>);

impl Drop for FlushOnDrop {
    fn drop(&mut self) {
        if let Some(tracing) = &self.0 {
            tracing.shutdown();
        }
    }
}

/// What a stop needs: the two listeners, in order.
struct Stopper {
    drain: web::Data<Drain>,
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
        self.drain.begin_stop();
        let drain = self.current.get().config.server.drain_timeout;
        log::info!("stop: {signal} received; /readyz answers 503 from now on");
        log::info!(
            "stop: decision listener closed; answering the decisions in flight (at most {drain:?})"
        );
        let drained = actix_web::rt::time::timeout(drain, self.decision.stop(true)).await;
        if drained.is_err() {
            // the listener's own graceful stop goes on past our deadline: end here, and
            // say what that cuts off
            let cut = self.drain.in_flight();
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

/// How the listeners are started: where a reload reads the configuration from (with it,
/// SIGTERM/SIGINT stop gracefully and SIGHUP reloads; without, as in tests, the servers
/// stop only through their handles), the clock every deadline reads, and the open-file
/// limit the connection cap is worked out from.
#[derive(Debug, Clone, Default)]
pub struct Launch {
    pub signals: Option<Source>,
    pub clock: Clock,
    /// The open-file limit in force (see [`raise_open_file_limit`]); `None`: 1,024.
    pub open_files: Option<u64>,
}

/// Builds the resolver, fetches keys, and binds both listeners.
pub async fn bind(config: Config, launch: Launch) -> std::io::Result<Running> {
    let resolver = Arc::new(Resolver::with_clock(Arc::new(config), launch.clock)?);
    resolver.prefetch_keys().await;
    let config = resolver.config.clone();
    let current = web::Data::new(Current::new(resolver.clone()));
    let drain = web::Data::new(Drain::default());
    let workers = match config.server.workers {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let resolve_dialect = config.server.resolve_dialect;
    let decision_current = current.clone();
    let connection_metrics = resolver.metrics.clone();
    let decision_drain = drain.clone();
    let decision = HttpServer::new(move || {
        App::new()
            .app_data(decision_current.clone())
            .app_data(decision_drain.clone())
            .app_data(web::Data::new(WorkerFetcher::default()))
            .app_data(web::Data::new(crate::memo::AnswerMemo::default()))
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
        launch.open_files,
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
    let admin_drain = drain.clone();
    let admin = HttpServer::new(move || {
        App::new()
            .app_data(admin_current.clone())
            .app_data(admin_drain.clone())
            .configure(admin_routes)
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

    let grpc = match config.server.grpc_listen {
        Some(addr) => Some(
            crate::grpc::start(addr, workers, current.clone(), drain.clone())
                .map_err(|e| bind_error("server.grpc_listen", addr, e))?,
        ),
        None => None,
    };
    let grpc_addr = grpc.as_ref().map(|g| g.addr);

    spawn_jwks_refreshers(&resolver);

    Ok(Running {
        decision_addr,
        admin_addr,
        grpc_addr,
        grpc,
        current,
        drain,
        decision: decision.run(),
        admin: admin.run(),
        signals: launch.signals,
    })
}

/// Open files this process may use: the soft limit raised to the hard one, so slow or idle
/// clients run out of connection slots (`server.max_connections`) before the process
/// runs out of file descriptors for its backends and its admin listener. The usual 1,024
/// when the limit cannot be read.
pub fn raise_open_file_limit() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024)
}

/// Open files kept for what is not a decision connection: backend pools, key fetches,
/// the admin listener, logs.
const RESERVED_FILES: u64 = 512;

/// The decision connections one worker may hold: the configured total, or, with 0, what
/// the open-file limit leaves after the reserve; split across workers.
fn per_worker_connections(configured: usize, workers: usize, open_files: Option<u64>) -> usize {
    let total = if configured > 0 {
        configured
    } else {
        let files = open_files.unwrap_or(1024);
        usize::try_from(files.saturating_sub(RESERVED_FILES).max(64)).unwrap_or(usize::MAX)
    };
    (total / workers.max(1)).max(1)
}

/// A bind failure that says which listener and which address.
fn bind_error(key: &str, address: SocketAddr, error: std::io::Error) -> std::io::Error {
    std::io::Error::new(error.kind(), format!("{key} {address}: {error}"))
}
