//! Rendering the backend request: URL, headers and body from templates, and the cache
//! material that names everything the backend's answer depends on.
//!
//! Takes: a [`ForwardedRequest`] and, with `claims_from`, the claims of its token.
//! Returns: a [`BackendRequest`] (one URL per backend), flagged unsafe when a value would
//! put a control byte into a header. Must never: let a request choose the host we call,
//! send a header holding CR, LF or NUL, or leave a cache key that ignores something sent.

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::web::Bytes;
use percent_encoding::utf8_percent_encode;
use serde_json::Value;

use super::HttpAuthorizer;
use crate::digest::sha256;
use crate::identity::Claims;
use crate::request::{ForwardedRequest, URL_COMPONENT};
use crate::template::RenderContext;

/// What will be sent to the backend; also the cache key's material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendRequest {
    /// One URL per configured backend, rendered.
    pub urls: Vec<String>,
    /// Ready to send: names built when the configuration was read, values checked here.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// JSON for POST; empty for GET (its body is in the URL).
    pub body: Option<Bytes>,
    /// Set when a value would have put CR, LF or NUL into a header: never sent.
    pub unsafe_value: bool,
    pub cache_material: String,
}

impl HttpAuthorizer {
    /// Renders what would be sent for this request.
    pub fn render(
        &self,
        request: &ForwardedRequest<'_>,
        claims: Option<&Claims>,
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
        // what every URL gets appended: the client's query, then the GET body fields
        let mut query_tail = String::new();
        if self.forward_query
            && let Some(query) = request.target().query.as_deref().filter(|q| !q.is_empty())
        {
            query_tail.push_str(query);
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
                if !query_tail.is_empty() {
                    query_tail.push('&');
                }
                query_tail.extend(utf8_percent_encode(field, URL_COMPONENT));
                query_tail.push('=');
                query_tail.extend(utf8_percent_encode(&template.render(&ctx), URL_COMPONENT));
            }
        }
        let urls: Vec<String> = self
            .urls
            .iter()
            .map(|template| {
                let mut url = template.render_url(&ctx);
                if !query_tail.is_empty() {
                    url.push(if url.contains('?') { '&' } else { '?' });
                    url.push_str(&query_tail);
                }
                url
            })
            .collect();
        // The cache material names everything sent, written as it is rendered: the
        // method, the first URL, every header (an unsafe value included: its deny is
        // keyed on it), the body. Or the operator's coarser `cache_key`.
        let mut material = match &self.cache_key {
            Some(_) => None,
            None => {
                let mut material = String::with_capacity(256);
                material.push_str(if self.post { "POST" } else { "GET" });
                material.push('\u{0}');
                material.push_str(urls.first().map_or("", String::as_str));
                Some(material)
            }
        };
        let mut unsafe_value = false;
        let mut headers = Vec::with_capacity(self.headers.len());
        for (name, template) in &self.headers {
            let value = template.render(&ctx);
            if value.is_empty() && self.omit_when_empty.iter().any(|n| n == name.as_str()) {
                continue;
            }
            if let Some(material) = &mut material {
                material.push('\u{0}');
                material.push_str(name.as_str());
                material.push(':');
                material.push_str(&value);
            }
            // Header injection guard: a CR/LF/NUL (or any other control byte) from a
            // placeholder refuses the whole request.
            // (HeaderValue refuses every control byte but tab, CR, LF and NUL among them.)
            match HeaderValue::try_from(value) {
                Ok(value) => headers.push((name.clone(), value)),
                Err(_) => unsafe_value = true,
            }
        }
        let cache_material = match (material, &self.cache_key) {
            (Some(mut material), _) => {
                material.push('\u{0}');
                material.push_str(body.as_deref().unwrap_or(""));
                material
            }
            (None, Some(templates)) => templates
                .iter()
                .map(|t| t.render(&ctx))
                .collect::<Vec<_>>()
                .join("\u{0}"),
            (None, None) => String::new(),
        };
        BackendRequest {
            urls,
            headers,
            // shared, not copied, by every attempt that sends it
            body: body.map(Bytes::from),
            unsafe_value,
            cache_material,
        }
    }
}

/// The default session id: the caller's own session id when it sends one, else a digest of client address and User-Agent, stable for one
/// viewer so the cache keeps working, and revealing neither.
fn default_session_id(request: &ForwardedRequest<'_>) -> String {
    // a streaming server names its session itself (Cesbo X-Session-ID)
    if let Some(session) = request
        .caller()
        .session
        .as_deref()
        .filter(|s| !s.is_empty())
    {
        return session.to_string();
    }
    let material = format!(
        "{}\u{0}{}",
        request.client_ip(),
        request.client_user_agent()
    );
    let digest = sha256(material.as_bytes());
    hex::encode(&digest[..8])
}
