//! The HTTP edge: decision endpoints, the admin listener, and the [`Resolver`] that runs
//! one decision from a normalised request to an [`Outcome`].
//!
//! Takes: requests on `server.listen` (any method, any body, which is never read) and
//! `server.admin_listen`. Returns: the dialect's answer, and one log line per decision
//! (route, authorizer, outcome, cache status, latency). Must never: read a body, answer a
//! decision request on the admin port or a health check on the decision port, or log a
//! credential (the query string is left out of the log line for that reason).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

use crate::authorizer::{AuthorizerKind, Fetcher, Verdict};
use crate::cache::{CacheStatus, DecisionCache};
use crate::config::Config;
use crate::dialect::encode::{AnswerSettings, Original};
use crate::dialect::{self, Dialect, NormalizeError};
use crate::metrics::Metrics;
use crate::policy::{self, Access, ChainResult, OnError, Outcome, RouteChoice};
use crate::request::ForwardedRequest;

/// Timeout for JWKS fetches made through a worker's [`Fetcher`] (each source also has
/// its own, shorter or equal, deadline).
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// One decision, with what the log line needs.
#[derive(Debug, Clone)]
pub struct Decided {
    pub outcome: Outcome,
    pub route: String,
    /// The authorizer whose verdict ended the chain (or that failed).
    pub authorizer: Option<String>,
    pub cache: Option<CacheStatus>,
    /// A short reason for denies that are not an authorizer's verdict.
    pub reason: Option<&'static str>,
}

/// Shared by every worker: the configuration, the decision cache and the metrics.
pub struct Resolver {
    pub config: Arc<Config>,
    pub cache: DecisionCache,
    pub answer: AnswerSettings,
    pub metrics: Metrics,
}

impl Resolver {
    pub fn new(config: Arc<Config>) -> std::io::Result<Resolver> {
        let metrics = Metrics::new().map_err(|e| std::io::Error::other(format!("metrics: {e}")))?;
        let answer = AnswerSettings {
            realm: config.server.realm.clone(),
            login_url: config.server.login_url.clone(),
            login_redirect_param: config.server.login_redirect_param.clone(),
            headers: config.headers,
            max_header_bytes: config.server.max_response_header_bytes,
        };
        Ok(Resolver {
            cache: DecisionCache::new(config.cache),
            config,
            answer,
            metrics,
        })
    }

    /// Routes the request, runs the route's authorizer chain through the cache, and
    /// applies the route's access rules to the result.
    pub async fn decide(&self, request: &ForwardedRequest, fetcher: &Fetcher) -> Decided {
        let route = match self.config.policy.route(&request.target) {
            RouteChoice::Matched(route) => route,
            RouteChoice::Undecidable { route, missing } => {
                // Fail closed: a rule we cannot evaluate might have been the one that denies.
                return Decided {
                    outcome: Outcome::BadTarget,
                    route: route.to_string(),
                    authorizer: None,
                    cache: None,
                    reason: Some(missing),
                };
            }
        };
        let mut decided = Decided {
            outcome: Outcome::Forbidden,
            route: route.name.clone(),
            authorizer: None,
            cache: None,
            reason: None,
        };
        if matches!(route.access, Access::Public | Access::Deny) {
            decided.outcome = policy::apply(
                route,
                ChainResult::NoneApplied {
                    credential_presented: false,
                },
            );
            return decided;
        }
        let mut credential_presented = false;
        let mut result = None;
        for &index in &route.chain {
            let authorizer = &self.config.authorizers[index];
            let claims = match authorizer.claims_source {
                Some(source) => {
                    self.claims_of(&self.config.authorizers[source], request, fetcher)
                        .await
                }
                None => None,
            };
            let Some(question) = authorizer.prepare(request, claims.as_deref()) else {
                continue;
            };
            credential_presented = true;
            let key = DecisionCache::key(&authorizer.name, question.cache_material());
            let (answer, status) = self
                .cache
                .get_or_decide(key, authorizer.decide(&question, fetcher))
                .await;
            self.metrics.cache(status == CacheStatus::Hit);
            decided.cache = Some(status);
            decided.authorizer = Some(authorizer.name.clone());
            match answer {
                Ok(decision) => {
                    if let Some(end) = policy::chain_step(&decision.verdict) {
                        result = Some(end);
                        break;
                    }
                }
                Err(error) => {
                    log::warn!("authorizer {} could not decide: {error}", authorizer.name);
                    match route.on_error {
                        OnError::Deny => {
                            result = Some(ChainResult::Failed);
                            break;
                        }
                        OnError::Allow => {
                            // The operator chose availability over safety for this route.
                            log::warn!(
                                "route {}: on_error = \"allow\": letting the request through unauthenticated",
                                route.name
                            );
                            result = Some(ChainResult::FailedOpen);
                            break;
                        }
                        OnError::Abstain => continue,
                    }
                }
            }
        }
        let chain = result.unwrap_or(ChainResult::NoneApplied {
            credential_presented,
        });
        // The reason goes to the log line: operators need to see why, clients never do.
        decided.reason = match &chain {
            ChainResult::Allowed(identity)
                if route.access == Access::Authenticated
                    && route.missing_role(identity).is_some() =>
            {
                Some("missing required role")
            }
            ChainResult::Denied(denial) => Some(denial.reason()),
            ChainResult::NoneApplied {
                credential_presented: true,
            } => Some("no authorizer recognised the credential"),
            ChainResult::Failed => Some("authorizer could not decide"),
            ChainResult::FailedOpen => Some("authorizer could not decide; on_error = allow"),
            _ => None,
        };
        decided.outcome = policy::apply(route, chain);
        decided
    }

    /// The claims of the token that `jwt` authorizer `authorizer` allows for this
    /// request, through the cache like any other decision. `None` when it does not allow.
    async fn claims_of(
        &self,
        authorizer: &crate::authorizer::Authorizer,
        request: &ForwardedRequest,
        fetcher: &Fetcher,
    ) -> Option<Arc<serde_json::Map<String, serde_json::Value>>> {
        let question = authorizer.prepare(request, None)?;
        let key = DecisionCache::key(&authorizer.name, question.cache_material());
        let (answer, _) = self
            .cache
            .get_or_decide(key, authorizer.decide(&question, fetcher))
            .await;
        match answer.ok()?.verdict {
            Verdict::Allow(identity) => identity.claims.clone(),
            _ => None,
        }
    }

    /// Fetches every JWKS once, so the first requests do not wait (or fail) for keys.
    pub async fn prefetch_keys(&self) {
        let mut fetcher = Fetcher::new(FETCH_TIMEOUT);
        fetcher.metrics = Some(self.metrics.clone());
        for authorizer in &self.config.authorizers {
            if let AuthorizerKind::Jwt(jwt) = &authorizer.kind
                && let Err(e) = jwt.prefetch(&fetcher).await
            {
                log::error!(
                    "authorizer {}: initial JWKS fetch failed: {e}",
                    authorizer.name
                );
            }
        }
    }
}

fn outcome_name(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Allow { .. } => "allow",
        Outcome::Unauthenticated { .. } => "unauthenticated",
        Outcome::Forbidden => "forbidden",
        Outcome::Redirect(_) => "redirect",
        Outcome::BadTarget => "bad-target",
        Outcome::Unavailable => "unavailable",
    }
}

async fn handle(
    request: HttpRequest,
    resolver: web::Data<Resolver>,
    fetcher: web::Data<Fetcher>,
    dialect: Dialect,
    prefix: &'static str,
) -> HttpResponse {
    let started = Instant::now();
    let normalized = dialect::normalize(
        &request,
        dialect,
        prefix,
        &resolver.config.server.trusted_proxies,
    );
    let forwarded = match normalized {
        Ok(forwarded) => forwarded,
        Err(NormalizeError::UntrustedPeer(peer)) => {
            log::warn!(
                "refused {}: peer {peer} is not in server.trusted_proxies",
                dialect.name()
            );
            resolver.metrics.decision("-", "-", "untrusted-peer");
            return HttpResponse::Forbidden().finish();
        }
        Err(NormalizeError::BadTarget(error)) => {
            resolver.metrics.decision("-", "-", "bad-target");
            log::info!(
                "decision dialect={} route=- authorizer=- outcome=bad-target status=403 cache=- latency_us={} reason=\"{error}\"",
                dialect.name(),
                started.elapsed().as_micros()
            );
            return HttpResponse::Forbidden().finish();
        }
    };
    let decided = resolver.decide(&forwarded, &fetcher).await;
    let original = Original {
        target: Some(&forwarded.target),
        accept: forwarded.header("accept"),
    };
    let (response, problem) =
        dialect::encode(&decided.outcome, dialect, original, &resolver.answer);
    if let Some(problem) = problem {
        log::error!(
            "route {}: identity cannot be sent as headers ({problem:?}); answering 503",
            decided.route
        );
    }
    let target = &forwarded.target;
    resolver.metrics.decision(
        &decided.route,
        decided.authorizer.as_deref().unwrap_or("-"),
        outcome_name(&decided.outcome),
    );
    log::info!(
        "decision dialect={} route={} authorizer={} outcome={} status={} cache={} latency_us={} method={} host={} path={:?}{}",
        dialect.name(),
        decided.route,
        decided.authorizer.as_deref().unwrap_or("-"),
        outcome_name(&decided.outcome),
        response.status().as_u16(),
        decided.cache.map_or("-", CacheStatus::as_str),
        started.elapsed().as_micros(),
        target.method.as_deref().unwrap_or("-"),
        target.host.as_deref().unwrap_or("-"),
        target.path.as_deref().unwrap_or("-"),
        decided
            .reason
            .map(|r| format!(" reason=\"{r}\""))
            .unwrap_or_default(),
    );
    response
}

/// The path prefixes of the decision endpoints.
pub const RESOLVE_PATH: &str = "/_resolver/resolve";
pub const AUTH_REQUEST_PATH: &str = "/_resolver/auth-request";
pub const FORWARD_AUTH_PATH: &str = "/_resolver/forward-auth";
pub const EXT_AUTHZ_PATH: &str = "/_resolver/ext-authz";

/// Registers the decision endpoints. Any method is accepted on each.
pub fn decision_routes(resolve_dialect: Dialect) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg: &mut web::ServiceConfig| {
        let endpoint = |dialect: Dialect, prefix: &'static str| {
            web::route().to(
                move |req: HttpRequest,
                      resolver: web::Data<Resolver>,
                      fetcher: web::Data<Fetcher>| {
                    handle(req, resolver, fetcher, dialect, prefix)
                },
            )
        };
        cfg.service(web::resource(RESOLVE_PATH).route(endpoint(resolve_dialect, RESOLVE_PATH)));
        if resolve_dialect == Dialect::ExtAuthz {
            // Envoy appends the original path to its path_prefix.
            cfg.service(
                web::resource(format!("{RESOLVE_PATH}/{{tail:.*}}"))
                    .route(endpoint(Dialect::ExtAuthz, RESOLVE_PATH)),
            );
        }
        cfg.service(
            web::resource(AUTH_REQUEST_PATH)
                .route(endpoint(Dialect::AuthRequest, AUTH_REQUEST_PATH)),
        );
        cfg.service(
            web::resource(FORWARD_AUTH_PATH)
                .route(endpoint(Dialect::ForwardAuth, FORWARD_AUTH_PATH)),
        );
        cfg.service(
            web::resource(EXT_AUTHZ_PATH).route(endpoint(Dialect::ExtAuthz, EXT_AUTHZ_PATH)),
        );
        cfg.service(
            web::resource(format!("{EXT_AUTHZ_PATH}/{{tail:.*}}"))
                .route(endpoint(Dialect::ExtAuthz, EXT_AUTHZ_PATH)),
        );
    }
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok\n")
}

/// Ready when every JWKS has been fetched at least once and every `http` authorizer has
/// at least one backend URL that accepts a TCP connection.
async fn readyz(resolver: web::Data<Resolver>) -> HttpResponse {
    let mut problems = Vec::new();
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

async fn metrics(resolver: web::Data<Resolver>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(resolver.metrics.render(resolver.cache.entry_count()))
}

/// Refreshes every JWKS in the background on its `jwks_refresh` interval, so keys stay
/// current without a request paying for the fetch. Each loop ends once the resolver is
/// gone (the servers stopped).
fn spawn_jwks_refreshers(resolver: &web::Data<Resolver>) {
    for (index, authorizer) in resolver.config.authorizers.iter().enumerate() {
        let AuthorizerKind::Jwt(jwt) = &authorizer.kind else {
            continue;
        };
        let Some(interval) = jwt.jwks_refresh_interval() else {
            continue;
        };
        let weak = Arc::downgrade(&resolver.clone().into_inner());
        actix_web::rt::spawn(async move {
            let mut fetcher = Fetcher::new(FETCH_TIMEOUT);
            loop {
                actix_web::rt::time::sleep(interval).await;
                let Some(resolver) = weak.upgrade() else {
                    break;
                };
                fetcher.metrics = Some(resolver.metrics.clone());
                if let AuthorizerKind::Jwt(jwt) = &resolver.config.authorizers[index].kind
                    && let Err(e) = jwt.prefetch(&fetcher).await
                {
                    log::warn!(
                        "authorizer {}: JWKS refresh failed, keeping the last keys: {e}",
                        resolver.config.authorizers[index].name
                    );
                }
            }
        });
    }
}

/// How long /readyz waits for one backend's TCP connect.
const READY_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// A bound (not yet running) pair of servers.
pub struct Running {
    pub decision_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub resolver: web::Data<Resolver>,
    decision: Server,
    admin: Server,
}

impl Running {
    pub fn handles(&self) -> (ServerHandle, ServerHandle) {
        (self.decision.handle(), self.admin.handle())
    }

    /// Runs both servers until both stop.
    pub async fn run(self) -> std::io::Result<()> {
        let (a, b) = futures_util::future::join(self.decision, self.admin).await;
        a.and(b)
    }
}

/// Builds the resolver, fetches keys, and binds both listeners. With `handle_signals`
/// false (tests), the servers stop only through their handles.
pub async fn bind(config: Config, handle_signals: bool) -> std::io::Result<Running> {
    let config = Arc::new(config);
    let resolver = web::Data::new(Resolver::new(config.clone())?);
    resolver.prefetch_keys().await;
    let workers = match config.server.workers {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let resolve_dialect = config.server.resolve_dialect;
    let decision_resolver = resolver.clone();
    let decision = HttpServer::new(move || {
        App::new()
            .app_data(decision_resolver.clone())
            // awc clients are !Send: one per worker, built here.
            .app_data(web::Data::new(Fetcher::for_authorizers(
                FETCH_TIMEOUT,
                &decision_resolver.config.authorizers,
                Some(decision_resolver.metrics.clone()),
            )))
            .configure(decision_routes(resolve_dialect))
            .default_service(web::to(HttpResponse::NotFound))
    })
    .workers(workers)
    .client_request_timeout(Duration::from_secs(10))
    .keep_alive(Duration::from_secs(75))
    .bind(config.server.listen)?;
    let decision_addr = decision
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| std::io::Error::other("no decision address"))?;

    let admin_resolver = resolver.clone();
    let admin = HttpServer::new(move || {
        App::new()
            .app_data(admin_resolver.clone())
            .route("/healthz", web::get().to(healthz))
            .route("/readyz", web::get().to(readyz))
            .route("/metrics", web::get().to(metrics))
            .default_service(web::to(HttpResponse::NotFound))
    })
    .workers(1)
    .bind(config.server.admin_listen)?;
    let admin_addr = admin
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| std::io::Error::other("no admin address"))?;

    spawn_jwks_refreshers(&resolver);

    let (decision, admin) = if handle_signals {
        (decision.run(), admin.run())
    } else {
        (
            decision.disable_signals().run(),
            admin.disable_signals().run(),
        )
    };
    Ok(Running {
        decision_addr,
        admin_addr,
        resolver,
        decision,
        admin,
    })
}
