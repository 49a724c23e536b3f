//! The `http` authorizer: asks the operator's own auth backend.
//!
//! Takes: a [`BackendRequest`] rendered from the request (method, URL with the client's
//! query appended when `forward_query`, the Cesbo headers and templated headers, a JSON
//! body or query-encoded GET body). Returns, by `protocol`:
//! - `status` (Cesbo Astra/Alta, EMQX 4): 200 allow; 401, 403 and other 4xx deny;
//! - `json` (EMQX 5): 204 allow; 200 with `result` allow/deny/ignore; other statuses abstain;
//! - `authgear`: 200 with `x-authgear-session-valid` true (allow), false (deny), absent
//!   (abstain).
//!
//! 3xx, 5xx (after retries), timeouts, refused connections, bodies over
//! `max_response_bytes` and unparsable answers are errors, and the route's `on_error`
//! decides. Must never: follow a redirect, retry a deny, send a header value holding CR,
//! LF or NUL, read an unbounded body, or log a credential.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::http::header::{HeaderName, HeaderValue};
use percent_encoding::utf8_percent_encode;
use serde::Deserialize;
use serde_json::Value;

use super::template::{RenderContext, Template, URL_COMPONENT};
use super::{AuthError, Decision, Denial, Identity};
use crate::config::{ConfigError, HumanDuration, StringList};
use crate::request::ForwardedRequest;

/// How the backend's answer is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    Status,
    Json,
    Authgear,
}

/// `[authorizers.NAME]` with `type = "http"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    pub protocol: Protocol,
    /// `GET` (default) or `POST`.
    #[serde(default)]
    pub method: Option<String>,
    /// Backend URLs, tried in order (failover). Placeholders may appear in the path and
    /// query, never in the scheme or host.
    pub urls: StringList,
    /// Append the client's query string to the backend URL (the Cesbo behaviour).
    #[serde(default)]
    pub forward_query: bool,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// POST: a JSON object; GET: appended to the query string.
    #[serde(default)]
    pub body: BTreeMap<String, String>,
    /// Send X-Session-ID, X-Channel-ID, X-Real-IP, X-Real-Path, X-Real-UA, X-Real-Host,
    /// X-Real-Origin. Default true.
    #[serde(default)]
    pub cesbo_headers: Option<bool>,
    /// Template for X-Channel-ID. Default `${path.2}` (`/play/<channel>/…`).
    #[serde(default)]
    pub channel_id: Option<String>,
    /// Template for the session id. Default: a digest of client IP and User-Agent.
    #[serde(default)]
    pub session_id: Option<String>,
    /// Backend response headers copied into the answer on allow.
    #[serde(default)]
    pub copy_headers: Option<StringList>,
    /// A `jwt` authorizer whose allowed token's claims feed `${claim.NAME}`.
    #[serde(default)]
    pub claims_from: Option<String>,
    #[serde(default)]
    pub connect_timeout: Option<HumanDuration>,
    #[serde(default)]
    pub request_timeout: Option<HumanDuration>,
    #[serde(default)]
    pub retries: Option<u32>,
    #[serde(default)]
    pub retry_backoff: Option<HumanDuration>,
    #[serde(default)]
    pub pool_size: Option<usize>,
    #[serde(default)]
    pub cooldown: Option<HumanDuration>,
    #[serde(default)]
    pub max_response_bytes: Option<usize>,
    /// PEM file of CA certificates for `https://` backends; default: the system's roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub allow_ttl: Option<HumanDuration>,
    #[serde(default)]
    pub deny_ttl: Option<HumanDuration>,
    /// Templates whose rendered values make the cache key, instead of the whole request.
    #[serde(default)]
    pub cache_key: Option<StringList>,
    #[serde(default)]
    pub honor_cache_control: bool,
}

/// Transport settings, for building the per-worker clients.
#[derive(Debug, Clone)]
pub struct Transport {
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub pool_size: usize,
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// A ready `http` authorizer.
#[derive(Debug)]
pub struct HttpAuthorizer {
    protocol: Protocol,
    post: bool,
    urls: Vec<Template>,
    url_texts: Vec<String>,
    forward_query: bool,
    headers: Vec<(String, Template)>,
    body: Vec<(String, Template)>,
    session_id: Option<Template>,
    copy_headers: Vec<String>,
    pub claims_from: Option<String>,
    pub transport: Transport,
    retries: u32,
    retry_backoff: Duration,
    cooldown: Duration,
    max_response_bytes: usize,
    allow_ttl: Option<Duration>,
    deny_ttl: Option<Duration>,
    cache_key: Option<Vec<Template>>,
    honor_cache_control: bool,
    cooling_until: Mutex<Vec<Option<Instant>>>,
}

/// What will be sent to the backend; also the cache key's material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendRequest {
    /// One URL per configured backend, rendered.
    pub urls: Vec<String>,
    pub headers: Vec<(String, String)>,
    /// JSON for POST; empty for GET (its body is in the URL).
    pub body: Option<String>,
    /// Set when a value would have put CR, LF or NUL into a header: never sent.
    pub unsafe_value: bool,
    pub cache_material: String,
}

fn parse_template(key: &str, text: &str) -> Result<Template, ConfigError> {
    Template::parse(text).map_err(|e| ConfigError::invalid(key, e))
}

impl HttpAuthorizer {
    pub fn build(
        name: &str,
        settings: HttpSettings,
        base_dir: &Path,
    ) -> Result<HttpAuthorizer, ConfigError> {
        let key = format!("authorizers.{name}");
        let post = match settings
            .method
            .as_deref()
            .map(str::to_ascii_uppercase)
            .as_deref()
        {
            None | Some("GET") => false,
            Some("POST") => true,
            Some(other) => {
                return Err(ConfigError::invalid(
                    format!("{key}.method"),
                    format!("{other:?} is not GET or POST"),
                ));
            }
        };
        if settings.urls.0.is_empty() {
            return Err(ConfigError::invalid(
                format!("{key}.urls"),
                "needs at least one backend URL",
            ));
        }
        let mut urls = Vec::new();
        for text in &settings.urls.0 {
            let lower = text.to_ascii_lowercase();
            let rest = lower
                .strip_prefix("http://")
                .or_else(|| lower.strip_prefix("https://"))
                .ok_or_else(|| {
                    ConfigError::invalid(
                        format!("{key}.urls"),
                        format!("{text:?} is not an http(s) URL"),
                    )
                })?;
            let authority = rest.split(['/', '?']).next().unwrap_or_default();
            // The request must never choose which host we call: no placeholder before the path.
            if authority.is_empty() || authority.contains("${") || text.contains('#') {
                return Err(ConfigError::invalid(
                    format!("{key}.urls"),
                    format!("{text:?}: the scheme and host must be literal, and no fragment"),
                ));
            }
            urls.push(parse_template(&format!("{key}.urls"), text)?);
        }
        let mut headers: Vec<(String, Template)> = Vec::new();
        if settings.cesbo_headers.unwrap_or(true) {
            let channel = settings.channel_id.as_deref().unwrap_or("${path.2}");
            for (header, template) in [
                ("x-session-id", "${session_id}"),
                ("x-channel-id", channel),
                ("x-real-ip", "${client_ip}"),
                ("x-real-path", "${path}"),
                ("x-real-ua", "${header.user-agent}"),
                ("x-real-host", "${host}"),
                ("x-real-origin", "${scheme}://${host}"),
            ] {
                headers.push((
                    header.to_string(),
                    parse_template(&format!("{key}.channel_id"), template)?,
                ));
            }
        }
        for (header, text) in &settings.headers {
            let lower = header.to_ascii_lowercase();
            HeaderName::from_bytes(lower.as_bytes()).map_err(|_| {
                ConfigError::invalid(
                    format!("{key}.headers"),
                    format!("{header:?} is not a header name"),
                )
            })?;
            if ["host", "content-length", "transfer-encoding", "connection"]
                .contains(&lower.as_str())
            {
                return Err(ConfigError::invalid(
                    format!("{key}.headers"),
                    format!("{header} is set by the transport"),
                ));
            }
            let template = parse_template(&format!("{key}.headers.{header}"), text)?;
            headers.retain(|(n, _)| n != &lower);
            headers.push((lower, template));
        }
        let mut body = Vec::new();
        for (field, text) in &settings.body {
            body.push((
                field.clone(),
                parse_template(&format!("{key}.body.{field}"), text)?,
            ));
        }
        let session_id = settings
            .session_id
            .as_deref()
            .map(|t| parse_template(&format!("{key}.session_id"), t))
            .transpose()?;
        let mut copy_headers = Vec::new();
        for header in settings.copy_headers.map(|l| l.0).unwrap_or_default() {
            let lower = header.to_ascii_lowercase();
            HeaderName::from_bytes(lower.as_bytes()).map_err(|_| {
                ConfigError::invalid(
                    format!("{key}.copy_headers"),
                    format!("{header:?} is not a header name"),
                )
            })?;
            // Identity headers come only from the identity; a backend cannot set them raw.
            if lower.starts_with("x-authgear-")
                || lower == "x-session-name"
                || lower.starts_with("remote-")
                || lower.starts_with("x-auth-request-")
                || [
                    "location",
                    "set-cookie",
                    "content-length",
                    "transfer-encoding",
                    "connection",
                    "www-authenticate",
                ]
                .contains(&lower.as_str())
            {
                return Err(ConfigError::invalid(
                    format!("{key}.copy_headers"),
                    format!("{header} cannot be copied"),
                ));
            }
            copy_headers.push(lower);
        }
        let cache_key = match &settings.cache_key {
            None => None,
            Some(list) if list.0.is_empty() => {
                return Err(ConfigError::invalid(
                    format!("{key}.cache_key"),
                    "must name at least one placeholder",
                ));
            }
            Some(list) => Some(
                list.0
                    .iter()
                    .map(|t| parse_template(&format!("{key}.cache_key"), t))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        let uses_claims = urls.iter().any(Template::uses_claims)
            || headers.iter().any(|(_, t)| t.uses_claims())
            || body.iter().any(|(_, t)| t.uses_claims());
        if uses_claims && settings.claims_from.is_none() {
            return Err(ConfigError::invalid(
                format!("{key}.claims_from"),
                "${claim.…} needs claims_from = \"<jwt authorizer>\"",
            ));
        }
        let tls = match &settings.ca_file {
            None => None,
            Some(file) => Some(load_ca(&format!("{key}.ca_file"), &base_dir.join(file))?),
        };
        let request_timeout = settings
            .request_timeout
            .map_or(Duration::from_secs(5), |d| d.0);
        let connect_timeout = settings
            .connect_timeout
            .map_or(Duration::from_secs(2), |d| d.0);
        if request_timeout.is_zero() || connect_timeout.is_zero() {
            return Err(ConfigError::invalid(key, "timeouts must be above zero"));
        }
        let retries = settings.retries.unwrap_or(1);
        if retries > 5 {
            return Err(ConfigError::invalid(
                format!("{key}.retries"),
                "must be at most 5",
            ));
        }
        let max_response_bytes = settings.max_response_bytes.unwrap_or(64 * 1024);
        if max_response_bytes == 0 || max_response_bytes > 16 * 1024 * 1024 {
            return Err(ConfigError::invalid(
                format!("{key}.max_response_bytes"),
                "must be between 1 and 16 MiB",
            ));
        }
        let url_count = urls.len();
        Ok(HttpAuthorizer {
            protocol: settings.protocol,
            post,
            url_texts: settings.urls.0.clone(),
            urls,
            forward_query: settings.forward_query,
            headers,
            body,
            session_id,
            copy_headers,
            claims_from: settings.claims_from,
            transport: Transport {
                connect_timeout,
                request_timeout,
                pool_size: settings.pool_size.unwrap_or(32).max(1),
                tls,
            },
            retries,
            retry_backoff: settings
                .retry_backoff
                .map_or(Duration::from_millis(100), |d| d.0),
            cooldown: settings.cooldown.map_or(Duration::from_secs(10), |d| d.0),
            max_response_bytes,
            allow_ttl: settings.allow_ttl.map(|d| d.0),
            deny_ttl: settings.deny_ttl.map(|d| d.0),
            cache_key,
            honor_cache_control: settings.honor_cache_control,
            cooling_until: Mutex::new(vec![None; url_count]),
        })
    }

    /// `host:port` of every backend URL (they are literal up to the path), for /readyz.
    pub fn backend_addresses(&self) -> Vec<String> {
        self.url_texts
            .iter()
            .filter_map(|url| {
                let (scheme, rest) = url.split_once("://")?;
                let authority = rest.split(['/', '?']).next()?;
                let authority = authority
                    .rsplit_once('@')
                    .map_or(authority, |(_, host)| host);
                let has_port = authority
                    .rsplit_once(':')
                    .is_some_and(|(_, p)| p.chars().all(|c| c.is_ascii_digit()))
                    && !authority.ends_with(']');
                Some(if has_port {
                    authority.to_string()
                } else if scheme.eq_ignore_ascii_case("https") {
                    format!("{authority}:443")
                } else {
                    format!("{authority}:80")
                })
            })
            .collect()
    }

    pub fn url_count(&self) -> usize {
        self.urls.len()
    }

    /// Renders what would be sent for this request.
    pub fn render(
        &self,
        request: &ForwardedRequest,
        claims: Option<&serde_json::Map<String, Value>>,
    ) -> BackendRequest {
        let session_id = match &self.session_id {
            Some(template) => template.render(&RenderContext {
                request,
                session_id: "",
                claims,
            }),
            None => default_session_id(request),
        };
        let ctx = RenderContext {
            request,
            session_id: &session_id,
            claims,
        };
        let mut query_tail: Vec<String> = Vec::new();
        if self.forward_query
            && let Some(query) = request.target.query.as_deref().filter(|q| !q.is_empty())
        {
            query_tail.push(query.to_string());
        }
        let mut body = None;
        if self.post {
            let object: serde_json::Map<String, Value> = self
                .body
                .iter()
                .map(|(field, template)| (field.clone(), Value::String(template.render(&ctx))))
                .collect();
            body = Some(Value::Object(object).to_string());
        } else {
            for (field, template) in &self.body {
                query_tail.push(format!(
                    "{}={}",
                    utf8_percent_encode(field, URL_COMPONENT),
                    utf8_percent_encode(&template.render(&ctx), URL_COMPONENT)
                ));
            }
        }
        let urls: Vec<String> = self
            .urls
            .iter()
            .map(|template| {
                let mut url = template.render_url(&ctx);
                if !query_tail.is_empty() {
                    url.push(if url.contains('?') { '&' } else { '?' });
                    url.push_str(&query_tail.join("&"));
                }
                url
            })
            .collect();
        let mut unsafe_value = false;
        let mut headers = Vec::with_capacity(self.headers.len());
        for (name, template) in &self.headers {
            let value = template.render(&ctx);
            // Header injection guard: a CR/LF/NUL (or any other control byte) from a
            // placeholder refuses the whole request.
            // (HeaderValue refuses every control byte but tab, CR, LF and NUL among them.)
            if HeaderValue::from_bytes(value.as_bytes()).is_err() {
                unsafe_value = true;
            }
            headers.push((name.clone(), value));
        }
        let cache_material = match &self.cache_key {
            Some(templates) => templates
                .iter()
                .map(|t| t.render(&ctx))
                .collect::<Vec<_>>()
                .join("\u{0}"),
            None => {
                let mut material = format!(
                    "{}\u{0}{}",
                    if self.post { "POST" } else { "GET" },
                    urls.first().cloned().unwrap_or_default()
                );
                for (name, value) in &headers {
                    material.push('\u{0}');
                    material.push_str(name);
                    material.push(':');
                    material.push_str(value);
                }
                material.push('\u{0}');
                material.push_str(body.as_deref().unwrap_or(""));
                material
            }
        };
        BackendRequest {
            urls,
            headers,
            body,
            unsafe_value,
            cache_material,
        }
    }

    /// URL indexes in the order to try: healthy ones first (configured order), then the
    /// ones cooling down (a last resort beats failing without asking anyone).
    fn url_order(&self) -> Vec<usize> {
        let now = Instant::now();
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

    fn cool(&self, index: usize) {
        if let Ok(mut cooling) = self.cooling_until.lock()
            && let Some(slot) = cooling.get_mut(index)
        {
            *slot = Some(Instant::now() + self.cooldown);
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
        fetcher: &super::Fetcher,
    ) -> Result<Decision, AuthError> {
        let clients = fetcher.backend_clients(name);
        if prepared.unsafe_value {
            // Never sent: a placeholder tried to smuggle a line break into a header.
            return Ok(Decision::deny(Denial::Forbidden(
                "unsafe value for a backend header",
            )));
        }
        let mut last_error = AuthError::Internal("no backend URL".into());
        for index in self.url_order() {
            let Some(client) = clients.get(index) else {
                continue;
            };
            let url = &prepared.urls[index];
            let mut attempt = 0;
            loop {
                let started = Instant::now();
                let outcome = self.once(client, url, prepared).await;
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
                        Ok(decision) => {
                            self.recover(index);
                            return Ok(decision);
                        }
                        Err(message) => {
                            log::error!(
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
                        log::warn!(
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
            self.cool(index);
        }
        Err(last_error)
    }

    async fn once(
        &self,
        client: &awc::Client,
        url: &str,
        prepared: &BackendRequest,
    ) -> Result<Answer, Failure> {
        let deadline = self.transport.request_timeout;
        let exchange = async {
            let mut request = if self.post {
                client.post(url)
            } else {
                client.get(url)
            };
            for (name, value) in &prepared.headers {
                // from_bytes keeps raw UTF-8 (a User-Agent may hold it); render() has
                // already refused control bytes, so both conversions succeed here.
                if let (Ok(name), Ok(value)) = (
                    HeaderName::from_bytes(name.as_bytes()),
                    HeaderValue::from_bytes(value.as_bytes()),
                ) {
                    request = request.insert_header((name, value));
                }
            }
            if self.protocol == Protocol::Json {
                request = request.insert_header(("accept", "application/json"));
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
            let headers: Vec<(String, String)> = response
                .headers()
                .iter()
                .filter_map(|(n, v)| {
                    v.to_str()
                        .ok()
                        .map(|v| (n.as_str().to_string(), v.to_string()))
                })
                .collect();
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
                body: body.to_vec(),
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

    fn interpret(&self, answer: &Answer) -> Result<Decision, String> {
        let header = |name: &str| {
            answer
                .headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        let session_name = header("x-session-name").unwrap_or_default().to_string();
        let mut decision = match self.protocol {
            Protocol::Status => match answer.status {
                200 => Decision::allow(self.identity(answer, session_name), None),
                401 => Decision::deny(redirect_or(
                    header("x-location"),
                    Denial::InvalidCredential("backend refused the credential"),
                )),
                400..=499 => Decision::deny(redirect_or(
                    header("x-location"),
                    Denial::Forbidden("backend refused access"),
                )),
                other => return Err(format!("status {other} is neither 200 nor 4xx")),
            },
            Protocol::Json => match answer.status {
                204 => Decision::allow(self.identity(answer, session_name), None),
                200 => match read_result(header("content-type"), &answer.body)?.as_str() {
                    "allow" => Decision::allow(self.identity(answer, session_name), None),
                    "deny" => Decision::deny(redirect_or(
                        header("x-location"),
                        Denial::Forbidden("backend denied"),
                    )),
                    "ignore" => Decision::abstain(),
                    other => return Err(format!("unknown result {other:?}")),
                },
                _ => Decision::abstain(),
            },
            Protocol::Authgear => {
                if answer.status != 200 {
                    return Err(format!(
                        "status {} from an authgear resolver",
                        answer.status
                    ));
                }
                match header("x-authgear-session-valid") {
                    Some("true") => {
                        let flag = |name: &str| header(name) == Some("true");
                        let split = |name: &str, sep: char| -> Vec<String> {
                            header(name)
                                .unwrap_or_default()
                                .split(sep)
                                .map(str::trim)
                                .filter(|s| !s.is_empty())
                                .map(str::to_owned)
                                .collect()
                        };
                        let user_id = header("x-authgear-user-id").unwrap_or_default().to_string();
                        if user_id.is_empty() {
                            return Err("valid session without x-authgear-user-id".into());
                        }
                        let mut identity = self.identity(answer, session_name);
                        identity.user_id = user_id;
                        identity.anonymous = flag("x-authgear-user-anonymous");
                        identity.verified = flag("x-authgear-user-verified");
                        identity.can_reauthenticate = flag("x-authgear-user-can-reauthenticate");
                        identity.roles = split("x-authgear-user-roles", ',');
                        identity.amr = split("x-authgear-session-amr", ' ');
                        identity.authenticated_at = header("x-authgear-session-authenticated-at")
                            .and_then(|t| t.parse().ok());
                        if identity.session_name.is_empty() {
                            identity.session_name = identity.user_id.clone();
                        }
                        Decision::allow(identity, None)
                    }
                    Some("false") => Decision::deny(Denial::InvalidCredential(
                        "backend says the session is invalid",
                    )),
                    Some(other) => return Err(format!("x-authgear-session-valid is {other:?}")),
                    None => Decision::abstain(),
                }
            }
        };
        decision.ttl = match decision.verdict {
            super::Verdict::Allow(_) => self.allow_ttl,
            _ => self.deny_ttl,
        };
        if self.honor_cache_control
            && let Some(control) = header("cache-control")
        {
            decision.valid_for = cache_control_limit(control);
        }
        Ok(decision)
    }

    fn identity(&self, answer: &Answer, session_name: String) -> Identity {
        let extra_headers = self
            .copy_headers
            .iter()
            .filter_map(|name| {
                answer
                    .headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| (name.clone(), v.clone()))
            })
            .collect();
        Identity {
            user_id: session_name.clone(),
            session_name,
            extra_headers,
            ..Identity::default()
        }
    }
}

/// A backend's answer, read within bounds.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

struct Failure {
    retryable: bool,
    message: String,
}

/// A deny that carries the backend's `X-Location`, when it is a usable absolute URL.
fn redirect_or(location: Option<&str>, fallback: Denial) -> Denial {
    match location {
        Some(url)
            if (url.starts_with("http://") || url.starts_with("https://"))
                && url.len() <= 2048
                && url.bytes().all(|b| b > 0x20 && b < 0x7f) =>
        {
            Denial::Redirect(Arc::from(url))
        }
        _ => fallback,
    }
}

/// The `result` of an EMQX-style answer, JSON or form-encoded. A missing content type
/// is read as JSON.
fn read_result(content_type: Option<&str>, body: &[u8]) -> Result<String, String> {
    let kind = content_type
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match kind.as_str() {
        "application/json" => {
            let value: Value =
                serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
            value
                .get("result")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| "JSON body has no string \"result\"".to_string())
        }
        "application/x-www-form-urlencoded" => {
            let text =
                std::str::from_utf8(body).map_err(|_| "form body is not UTF-8".to_string())?;
            crate::request::query_param(text, "result")
                .ok_or_else(|| "form body has no result".to_string())
        }
        other => Err(format!("content type {other:?} is neither JSON nor a form")),
    }
}

/// How long `Cache-Control` lets a decision live: `no-store`/`no-cache` → zero,
/// `max-age=N` → N seconds; anything else leaves the configured TTL.
fn cache_control_limit(control: &str) -> Option<Duration> {
    let mut limit = None;
    for directive in control.split(',').map(|d| d.trim().to_ascii_lowercase()) {
        if directive == "no-store" || directive == "no-cache" || directive == "private" {
            return Some(Duration::ZERO);
        }
        if let Some(seconds) = directive
            .strip_prefix("max-age=")
            .and_then(|s| s.trim_matches('"').parse::<u64>().ok())
        {
            limit = Some(Duration::from_secs(seconds));
        }
    }
    limit
}

/// The default session id: a digest of client address and User-Agent, stable for one
/// viewer so the cache keeps working, and revealing neither.
fn default_session_id(request: &ForwardedRequest) -> String {
    let material = format!(
        "{}\u{0}{}",
        request.client_ip,
        request.header("user-agent").unwrap_or_default()
    );
    let digest = super::static_tokens::sha256(material.as_bytes());
    hex::encode(&digest[..8])
}

fn load_ca(key: &str, path: &Path) -> Result<Arc<rustls::ClientConfig>, ConfigError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| ConfigError::invalid(key, format!("{}: {e}", path.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| ConfigError::invalid(key, format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(ConfigError::invalid(
            key,
            format!("{} holds no certificate", path.display()),
        ));
    }
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| ConfigError::invalid(key, format!("{}: {e}", path.display())))?;
    }
    crate::init_crypto();
    Ok(Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

/// One client per backend URL (awc's pool limit is per client, so per host this way).
pub fn build_clients(authorizer: &HttpAuthorizer) -> Vec<awc::Client> {
    (0..authorizer.url_count())
        .map(|_| {
            let t = &authorizer.transport;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_is_read() {
        assert_eq!(cache_control_limit("no-store"), Some(Duration::ZERO));
        assert_eq!(
            cache_control_limit("public, max-age=30"),
            Some(Duration::from_secs(30))
        );
        assert_eq!(cache_control_limit("public"), None);
    }

    #[test]
    fn results_are_read_from_json_and_forms() {
        assert_eq!(
            read_result(None, br#"{"result":"allow"}"#).unwrap(),
            "allow"
        );
        assert_eq!(
            read_result(
                Some("application/json; charset=utf-8"),
                br#"{"result":"deny"}"#
            )
            .unwrap(),
            "deny"
        );
        assert_eq!(
            read_result(
                Some("application/x-www-form-urlencoded"),
                b"result=ignore&x=1"
            )
            .unwrap(),
            "ignore"
        );
        assert!(read_result(None, b"{not json").is_err());
        assert!(read_result(None, br#"{"other":1}"#).is_err());
        assert!(read_result(Some("text/plain"), b"allow").is_err());
    }

    #[test]
    fn redirects_must_be_absolute_and_clean() {
        assert!(matches!(
            redirect_or(
                Some("http://promo.example.com/play"),
                Denial::Forbidden("x")
            ),
            Denial::Redirect(_)
        ));
        assert_eq!(
            redirect_or(Some("/relative"), Denial::Forbidden("x")),
            Denial::Forbidden("x")
        );
        assert_eq!(
            redirect_or(Some("http://a b"), Denial::Forbidden("x")),
            Denial::Forbidden("x")
        );
        assert_eq!(
            redirect_or(None, Denial::Forbidden("x")),
            Denial::Forbidden("x")
        );
    }
}
