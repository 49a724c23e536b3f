//! Reaching the backends: per-worker clients (pool, timeouts, TLS), one exchange under one
//! deadline, retries with backoff, and failover with a cool-down.
//!
//! Takes: a rendered [`BackendRequest`] and the worker's clients. Returns: the first
//! usable answer, read by the protocol, or the last [`AuthError`]. Must never: follow a
//! redirect, retry a deny, read an unbounded body, or send a request flagged unsafe.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::header::HeaderMap;
use actix_web::web::Bytes;

use super::{BackendRequest, HttpAuthorizer, Protocol};
use crate::authorizer::Fetcher;
use crate::decision::{AuthError, Decision, Denial};
use crate::settings::ConfigError;

impl HttpAuthorizer {
    /// URL indexes in the order to try: healthy ones first (configured order), then the
    /// ones cooling down (a last resort beats failing without asking anyone).
    fn url_order(&self, now: Instant) -> Vec<usize> {
        let cooling = self
            .cooling_until
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default();
        let (mut healthy, mut resting): (Vec<usize>, Vec<usize>) =
            (0..self.urls.len()).partition(|&i| {
                cooling
                    .get(i)
                    .copied()
                    .flatten()
                    .is_none_or(|until| until <= now)
            });
        healthy.append(&mut resting);
        healthy
    }

    fn cool(&self, index: usize, now: Instant) {
        if let Ok(mut cooling) = self.cooling_until.lock()
            && let Some(slot) = cooling.get_mut(index)
        {
            *slot = Some(now + self.cooldown);
        }
    }

    fn recover(&self, index: usize) {
        if let Ok(mut cooling) = self.cooling_until.lock()
            && let Some(slot) = cooling.get_mut(index)
        {
            *slot = None;
        }
    }

    /// Asks the backends, with retries and failover, and reads the answer.
    pub async fn decide(
        &self,
        prepared: &BackendRequest,
        name: &str,
        fetcher: &Fetcher,
    ) -> Result<Decision, AuthError> {
        if fetcher.offline {
            return Err(AuthError::Internal("a dry run asks no backend".into()));
        }
        let clients = fetcher.backend_clients(name);
        if prepared.unsafe_value {
            // Never sent: a placeholder tried to smuggle a line break into a header.
            return Ok(Decision::deny(Denial::Forbidden(
                "unsafe value for a backend header",
            )));
        }
        let mut last_error = AuthError::Internal("no backend URL".into());
        for index in self.url_order(fetcher.clock.now()) {
            let Some(client) = clients.get(index) else {
                continue;
            };
            let url = &prepared.urls[index];
            let mut attempt = 0;
            loop {
                let started = Instant::now();
                // a span per attempt when the decision is traced; its context goes to
                // the backend as `traceparent`
                let span = fetcher.tracing.as_ref().and_then(|t| {
                    t.child("verdict backend", opentelemetry::trace::SpanKind::Client)
                });
                let outcome = self.once(client, url, prepared, span.as_ref()).await;
                if let Some(span) = &span {
                    crate::tracing::finish(
                        span,
                        vec![
                            // the configured URL: a rendered one may carry a credential
                            opentelemetry::KeyValue::new(
                                "verdict.backend",
                                self.url_texts[index].clone(),
                            ),
                            opentelemetry::KeyValue::new("verdict.authorizer", name.to_string()),
                        ],
                        outcome.is_err(),
                    );
                }
                let interpreted = outcome.as_ref().ok().map(|answer| self.interpret(answer));
                if let Some(metrics) = &fetcher.metrics {
                    let failed = !matches!(interpreted, Some(Ok(_)));
                    metrics.backend(
                        name,
                        &self.url_texts[index],
                        started.elapsed().as_secs_f64(),
                        failed,
                    );
                }
                match outcome {
                    Ok(_) => match interpreted.unwrap_or_else(|| Err("no answer".into())) {
                        Ok(mut decision) => {
                            self.recover(index);
                            // the backend is the authority of its sessions: what it allows
                            // now was issued now, for a "log out everywhere" to compare
                            if let crate::decision::Verdict::Allow(identity) = &mut decision.verdict
                            {
                                std::sync::Arc::make_mut(identity).issued_at =
                                    std::num::NonZeroU64::new(fetcher.clock.unix_ms());
                            }
                            return Ok(decision);
                        }
                        Err(message) => {
                            // the decision's log line carries the error; this is its detail
                            log::debug!(
                                "http authorizer: backend {} answered something unusable: {message}",
                                self.url_texts[index]
                            );
                            last_error = AuthError::Upstream {
                                url: self.url_texts[index].clone(),
                                message,
                            };
                            break;
                        }
                    },
                    Err(failure) => {
                        // one line per attempt, at debug: the decision's line is the event
                        log::debug!(
                            "http authorizer: backend {}: {}",
                            self.url_texts[index],
                            failure.message
                        );
                        last_error = AuthError::Upstream {
                            url: self.url_texts[index].clone(),
                            message: failure.message,
                        };
                        if failure.retryable && attempt < self.retries {
                            attempt += 1;
                            let backoff = self.retry_backoff.saturating_mul(1 << (attempt - 1));
                            actix_web::rt::time::sleep(backoff).await;
                            continue;
                        }
                        break;
                    }
                }
            }
            self.cool(index, fetcher.clock.now());
        }
        Err(last_error)
    }

    async fn once(
        &self,
        client: &awc::Client,
        url: &str,
        prepared: &BackendRequest,
        trace: Option<&opentelemetry::Context>,
    ) -> Result<Answer, Failure> {
        let deadline = self.transport.request_timeout;
        let exchange = async {
            let mut request = if self.post {
                client.post(url)
            } else {
                client.get(url)
            };
            for (name, value) in &prepared.headers {
                // checked when rendered; a clone shares the bytes
                request = request.insert_header((name.clone(), value.clone()));
            }
            if self.protocol == Protocol::Json {
                request = request.insert_header(("accept", "application/json"));
            }
            for (name, value) in trace.map(crate::tracing::inject).unwrap_or_default() {
                request = request.insert_header((name, value));
            }
            let sent = match &prepared.body {
                Some(body) => {
                    request
                        .insert_header(("content-type", "application/json"))
                        .send_body(body.clone())
                        .await
                }
                None => request.send().await,
            };
            let mut response = sent.map_err(|e| {
                let retryable = matches!(e, awc::error::SendRequestError::Connect(_));
                Failure {
                    retryable,
                    message: format!("request failed: {e}"),
                }
            })?;
            let status = response.status().as_u16();
            if (500..600).contains(&status) {
                return Err(Failure {
                    retryable: true,
                    message: format!("answered {status}"),
                });
            }
            if (300..400).contains(&status) || status < 200 {
                return Err(Failure {
                    retryable: false,
                    message: format!("answered {status}, which is neither allow nor deny"),
                });
            }
            // the map as received: its names and values are shared, not copied
            let headers = response.headers().clone();
            let body = response
                .body()
                .limit(self.max_response_bytes)
                .await
                .map_err(|e| Failure {
                    retryable: false,
                    message: format!("body: {e}"),
                })?;
            Ok(Answer {
                status,
                headers,
                body,
            })
        };
        // One deadline for connect, send, head and body (awc's own timeout stops at the head).
        match actix_web::rt::time::timeout(deadline, exchange).await {
            Ok(result) => result,
            Err(_) => Err(Failure {
                retryable: false,
                message: format!("no answer within {deadline:?}"),
            }),
        }
    }
}

/// A backend's answer, read within bounds.
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) headers: HeaderMap,
    pub(super) body: Bytes,
}

struct Failure {
    retryable: bool,
    message: String,
}

pub(crate) fn load_ca(key: &str, path: &Path) -> Result<Arc<rustls::ClientConfig>, ConfigError> {
    let roots = crate::load_roots(key, path)?;
    Ok(Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

/// One client per backend URL (awc's pool limit is per client, so per host this way).
pub fn build_clients(authorizer: &HttpAuthorizer) -> Vec<awc::Client> {
    clients_for(&authorizer.transport, authorizer.url_count())
}

/// `count` clients for `t`'s settings (one per backend URL).
pub fn clients_for(t: &super::Transport, count: usize) -> Vec<awc::Client> {
    (0..count)
        .map(|_| {
            let mut connector = awc::Connector::new()
                .timeout(t.connect_timeout)
                .handshake_timeout(t.connect_timeout)
                .limit(t.pool_size)
                .conn_keep_alive(Duration::from_secs(15))
                .conn_lifetime(Duration::from_secs(75));
            if let Some(tls) = &t.tls {
                connector = connector.rustls_0_23(tls.clone());
            }
            awc::Client::builder()
                .connector(connector)
                .timeout(t.request_timeout)
                .disable_redirects()
                .no_default_headers()
                .finish()
        })
        .collect()
}
