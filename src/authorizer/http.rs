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
//! decides. Files: `request` (rendering the backend request and its cache material),
//! `transport` (clients, TLS, retries, failover), `protocol` (reading each protocol's
//! answer). Must never: follow a redirect, retry a deny, send a header value holding CR,
//! LF or NUL, read an unbounded body, or log a credential.

mod protocol;
mod request;
mod transport;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::http::header::HeaderName;
use serde::Deserialize;

pub use self::request::BackendRequest;

pub(crate) use self::transport::load_ca;
pub use self::transport::{build_clients, clients_for};
use crate::identity::is_reserved_for_identity;
use crate::settings::{ConfigError, HumanDuration, StringList, choices};
use crate::template::RequestTemplate as Template;

/// How the backend's answer is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Status,
    Json,
    Authgear,
}

choices!(Protocol {
    "status" => Status,
    "json" => Json,
    "authgear" => Authgear,
});

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
    /// Template for X-Channel-ID. Default `${channel}`: the caller's channel, else the
    /// second path segment (`/play/<channel>/…`).
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
    pub(super) protocol: Protocol,
    pub(super) post: bool,
    pub(super) urls: Vec<Template>,
    pub(super) url_texts: Vec<String>,
    pub(super) forward_query: bool,
    pub(super) headers: Vec<(HeaderName, Template)>,
    /// Default headers not sent at all when they render empty.
    pub(super) omit_when_empty: Vec<String>,
    pub(super) body: Vec<(String, Template)>,
    pub(super) session_id: Option<Template>,
    pub(super) copy_headers: Vec<String>,
    pub claims_from: Option<String>,
    pub transport: Transport,
    pub(super) retries: u32,
    pub(super) retry_backoff: Duration,
    pub(super) cooldown: Duration,
    pub(super) max_response_bytes: usize,
    pub(super) allow_ttl: Option<Duration>,
    pub(super) deny_ttl: Option<Duration>,
    pub(super) cache_key: Option<Vec<Template>>,
    pub(super) honor_cache_control: bool,
    pub(super) cooling_until: Mutex<Vec<Option<Instant>>>,
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
            let channel = settings.channel_id.as_deref().unwrap_or("${channel}");
            for (header, template) in [
                ("x-session-id", "${session_id}"),
                ("x-channel-id", channel),
                ("x-real-ip", "${client_ip}"),
                ("x-real-path", "${path}"),
                ("x-real-ua", "${user_agent}"),
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
        // An authgear resolver upstream decides from the client's session, which travels
        // in these two headers: send them unless the operator templated them, or every
        // user looks anonymous to it (and all share one cache entry). Left out when the
        // client sent none.
        let mut omit_when_empty = Vec::new();
        if settings.protocol == Protocol::Authgear {
            for (header, template) in [
                ("cookie", "${header.cookie}"),
                ("authorization", "${header.authorization}"),
            ] {
                if !headers.iter().any(|(n, _)| n == header) {
                    headers.push((header.to_string(), parse_template(&key, template)?));
                    omit_when_empty.push(header.to_string());
                }
            }
        }
        let headers = headers
            .into_iter()
            .map(
                |(name, template)| match HeaderName::from_bytes(name.as_bytes()) {
                    Ok(name) => Ok((name, template)),
                    Err(_) => Err(ConfigError::invalid(
                        format!("{key}.headers"),
                        format!("{name:?} is not a header name"),
                    )),
                },
            )
            .collect::<Result<Vec<_>, _>>()?;
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
            // Trust decision: identity headers come only from the identity; a backend
            // cannot set one raw, nor an alias of one, nor a name in an identity family.
            if is_reserved_for_identity(&lower)
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
            omit_when_empty,
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

    /// The client request headers this authorizer reads (lower-case): what a proxy must
    /// forward to verdict, and what a proxy-side cache of its answers must key on.
    pub fn request_headers(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .urls
            .iter()
            .chain(self.headers.iter().map(|(_, t)| t))
            .chain(self.body.iter().map(|(_, t)| t))
            .chain(self.session_id.iter())
            .chain(self.cache_key.iter().flatten())
            .flat_map(|t| t.request_headers())
            .map(str::to_owned)
            .collect();
        if self.session_id.is_none() {
            // the default session id digests the client address and User-Agent
            names.push("user-agent".into());
        }
        names.sort();
        names.dedup();
        names
    }

    /// Whether an operator chose a coarser cache key (`cache_key`).
    pub fn has_cache_key(&self) -> bool {
        self.cache_key.is_some()
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
}
