//! The decision endpoints: one per dialect, each reading as normalize (the dialect reads
//! trusted facts) → decide (the [`Resolver`]) → answer (the dialect's) → record (one log
//! line and the metrics).
//!
//! Takes: requests on `server.listen` (any method; a body only where the dialect reads
//! one), the resolver in force, the worker's network clients and the drain state.
//! Returns: the dialect's answer. Must never: answer a health check on the decision port,
//! read a body the dialect does not, or log a credential.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, web};

use crate::authorizer::Fetcher;
use crate::clock::Clock;
use crate::decision::{Outcome, Refusal};
use crate::dialect::answer::{Answer, Original};
use crate::dialect::{self, Body, DIALECTS, Dialect};
use crate::memo::AnswerMemo;
use crate::record::{Record, record, record_again};
use crate::reload::Current;
use crate::request::{ForwardedRequest, ReadError};
use crate::resolver::{Decided, Resolver};

/// The Authgear-compatible endpoint, answered in `server.resolve_dialect`.
pub const RESOLVE_PATH: &str = "/_resolver/resolve";

/// One decision request, in the dialect its endpoint chose.
async fn handle(
    request: HttpRequest,
    payload: web::Payload,
    current: web::Data<Current>,
    worker: web::Data<WorkerFetcher>,
    memo: web::Data<AnswerMemo>,
    drain: web::Data<Drain>,
    (dialect, prefix): (&'static dyn Dialect, &'static str),
) -> HttpResponse {
    let started = Instant::now();
    // counted until answered (or dropped): a stop that runs out of time says how many it
    // cut off
    let in_flight = InFlight::start(&drain);
    // The whole decision runs on the configuration in force now, even if a reload swaps
    // in another while it waits on a backend.
    let resolver = current.get();
    let fetcher = worker.for_resolver(&resolver);
    let config = &resolver.config;
    // An answer this worker already gave to these exact bytes, while the cached allow it
    // stands for holds (crate::memo). Not with traces on: each decision is its own span.
    let memo_key = match (&resolver.tracing, request.peer_addr()) {
        (None, Some(peer)) => crate::memo::key_of(&request, dialect.name(), peer.ip()),
        _ => None,
    };
    let epoch = resolver.shared.as_ref().map_or(Some(0), |s| s.memo_epoch());
    if let Some(key) = &memo_key {
        let now = resolver.clock.now();
        let known = memo.answer(key, resolver.generation, epoch, now, |known| {
            // metrics and the log line stay per request
            for _ in 0..known.lookups {
                resolver.metrics.cache(true);
            }
            resolver.metrics.memo_hit();
            let decided = known.decided();
            record_again(
                &resolver.metrics,
                &Record {
                    dialect: dialect.name(),
                    decided: &decided,
                    status: known.status().as_u16(),
                    target: known.target.as_ref(),
                    client_ip: known.client_ip,
                    problem: None,
                    latency: started.elapsed(),
                    trace_id: None,
                },
                &known.line,
            );
        });
        if let Some(response) = known {
            drop(in_flight);
            return response;
        }
    }
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
            Err(Outcome::Refused(Refusal::Unreadable(*error)))
        }
        (Ok(peer), body) => {
            let whole = body.as_ref().and_then(|b| b.as_ref().ok()).map(|b| &b[..]);
            dialect::read(&request, dialect, prefix, peer, whole)
        }
    };
    // a span for the decision when traces are on; Trust decision: the caller's trace
    // context is read only from a trusted peer
    let traced = resolver.tracing.as_ref().map(|tracing| {
        let parent = match peer {
            Ok(_) => crate::tracing::extract(
                request
                    .headers()
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_bytes())),
            ),
            Err(_) => opentelemetry::Context::new(),
        };
        tracing.decision(&parent)
    });
    let answer = conclude(
        &resolver,
        &fetcher,
        dialect,
        &forwarded,
        traced.as_ref(),
        started,
        memo_key.map(|key| Keep {
            memo: &memo,
            key,
            epoch,
        }),
    )
    .await;
    drop(in_flight);
    answer.response
}

/// Where a decision's answer may be kept for the next identical request.
pub(crate) struct Keep<'m> {
    memo: &'m AnswerMemo,
    key: Vec<u8>,
    /// The revocation epoch read before the decision.
    epoch: Option<u64>,
}

/// The stages every edge shares once a request is read (or refused): decide (in the
/// decision's span, when traced), answer in `dialect`'s terms, record (the log line, the
/// metrics, the span's attributes and end).
pub(crate) async fn conclude(
    resolver: &Resolver,
    fetcher: &Fetcher,
    dialect: &dyn Dialect,
    forwarded: &Result<ForwardedRequest<'_>, Outcome>,
    traced: Option<&opentelemetry::Context>,
    started: Instant,
    keep: Option<Keep<'_>>,
) -> Answer {
    let decided = match (forwarded, traced) {
        (Ok(forwarded), None) => resolver.decide(forwarded, fetcher).await,
        (Ok(forwarded), Some(context)) => {
            use opentelemetry::context::FutureExt as _;
            resolver
                .decide(forwarded, fetcher)
                .with_context(context.clone())
                .await
        }
        (Err(outcome), _) => Decided::before_routing(outcome.clone()),
    };
    let target = forwarded.as_ref().ok().map(|f| f.target());
    let original = Original {
        target,
        accept: forwarded.as_ref().ok().and_then(|f| f.header("accept")),
    };
    let answer = dialect.answer(&decided.outcome, original, &resolver.config.answer);
    let entry = Record {
        dialect: dialect.name(),
        decided: &decided,
        status: answer.response.status().as_u16(),
        target,
        client_ip: forwarded.as_ref().ok().map(|f| f.client_ip()),
        problem: answer.problem.map(|p| format!("{p:?}")),
        latency: started.elapsed(),
        trace_id: traced.and_then(crate::tracing::trace_id),
    };
    record(&resolver.metrics, &entry);
    if let Some(context) = traced {
        crate::tracing::finish(
            context,
            crate::record::span_attributes(&entry),
            entry.status >= 500,
        );
    }
    match (keep, forwarded, answer.problem) {
        (Some(keep), Ok(forwarded), None) => Answer {
            response: keep.memo.keep(
                keep.key,
                resolver.generation,
                keep.epoch,
                resolver.clock.now(),
                &decided,
                target,
                Some(forwarded.client_ip()),
                answer.response,
            ),
            problem: None,
        },
        _ => answer,
    }
}

/// The most a caller's body may hold: the facts of one access fit in far less.
const MAX_BODY: usize = 64 * 1024;

/// How long a caller may take to send its body.
const BODY_DEADLINE: Duration = Duration::from_secs(5);

/// A caller's body, bounded in size and in time (on the resolver's clock).
async fn read_body(mut payload: web::Payload, clock: &Clock) -> Result<web::Bytes, ReadError> {
    use futures_util::StreamExt as _;
    let read = async {
        let mut body = web::BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|_| ReadError::BadBody)?;
            if body.len() + chunk.len() > MAX_BODY {
                return Err(ReadError::BodyTooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    };
    let deadline = clock.sleep(BODY_DEADLINE);
    match futures_util::future::select(Box::pin(read), Box::pin(deadline)).await {
        futures_util::future::Either::Left((read, _)) => read,
        futures_util::future::Either::Right(_) => Err(ReadError::SlowBody),
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
                      memo: web::Data<AnswerMemo>,
                      drain: web::Data<Drain>| {
                    handle(
                        req,
                        payload,
                        current,
                        worker,
                        memo,
                        drain,
                        (dialect, prefix),
                    )
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

/// One worker's network clients (awc clients are `!Send`: each worker builds its own),
/// rebuilt when a reload brings another configuration.
#[derive(Default)]
pub struct WorkerFetcher {
    built: RefCell<Option<(u64, Rc<Fetcher>)>>,
}

impl WorkerFetcher {
    pub(crate) fn for_resolver(&self, resolver: &Resolver) -> Rc<Fetcher> {
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

/// The decision listener's drain: whether a stop has begun (from its first moment,
/// `/readyz` answers 503 so load balancers take verdict out before its listener closes),
/// and how many decisions are in flight (a stop that runs out of time says how many it
/// cut off).
#[derive(Debug, Default)]
pub struct Drain {
    stopping: AtomicBool,
    in_flight: AtomicU64,
}

impl Drain {
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// From now on, the process is stopping.
    pub fn begin_stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// Decisions started and not yet answered.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::SeqCst)
    }
}

/// One decision in flight, counted while its handler lives: answered, or dropped because
/// its client went away. What is still counted when a drain runs out is cut off.
pub(crate) struct InFlight<'a>(&'a Drain);

impl<'a> InFlight<'a> {
    pub(crate) fn start(drain: &'a Drain) -> InFlight<'a> {
        drain.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(drain)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}
