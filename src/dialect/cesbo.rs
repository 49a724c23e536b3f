//! The cesbo dialect: Cesbo Astra's "HTTP Request" backend and Alta's `auth.backend`, both
//! directions.
//!
//! Takes: `GET /_resolver/cesbo?<the viewer's query>` with `X-Real-Path` (the viewer's
//! path), `X-Real-Host` (Astra) or `X-Real-Origin` (Alta: scheme, host and port),
//! `X-Real-IP`, `X-Real-UA`, `X-Session-ID` and `X-Channel-ID` (header names in any case).
//! The credential is in the query the streamer appends (`?token=…`). Returns: the
//! viewer's target (method `GET`), its address, and the channel, session and the
//! viewer's User-Agent (`X-Real-UA`) as caller facts; answers exactly `200` with
//! `X-Session-Name` to allow, `403` with no `WWW-Authenticate` to deny (with `X-Location` when the viewer is sent elsewhere).
//! Must never: answer a 5xx (Astra lets the viewer in when its backend fails: an error
//! is the route's `on_error` answer, a 403 by default), send a 401 or a 3xx, or take the
//! host from two headers that disagree.

use std::net::IpAddr;

use actix_web::HttpResponse;
use actix_web::http::StatusCode;

use super::answer::{Answer, AnswerSettings, Original, plain};
use super::{Dialect, Facts, Incoming, Message, build_target, parse_hop};
use crate::decision::Outcome;
use crate::request::{
    Anonymous, Audience, Caller, ReadError, Target, TargetError, canonical_host, canonical_scheme,
};

/// Cesbo Astra and Alta.
#[derive(Debug)]
pub struct Cesbo;

impl Dialect for Cesbo {
    fn name(&self) -> &'static str {
        "cesbo"
    }
    fn reads(&self) -> &'static [&'static str] {
        &[
            "x-real-path",
            "x-real-host",
            "x-real-origin",
            "x-real-ip",
            "x-real-ua",
            "x-session-id",
            "x-channel-id",
        ]
    }
    fn path(&self) -> &'static str {
        "/_resolver/cesbo"
    }
    fn read(&self, incoming: &Incoming<'_>) -> Result<Message, ReadError> {
        let (target, client_ip) = read_target(incoming)?;
        let text = |name: &str| -> Result<Option<String>, TargetError> {
            incoming
                .headers
                .single(name)?
                .map(|raw| {
                    std::str::from_utf8(raw)
                        .map(|t| t.trim().to_string())
                        .map_err(|_| TargetError::BadPathBytes)
                })
                .transpose()
        };
        let caller = Caller {
            channel: text("x-channel-id")?.filter(|c| !c.is_empty()),
            session: text("x-session-id")?.filter(|s| !s.is_empty()),
            user_agent: text("x-real-ua")?,
            ..Caller::default()
        };
        Ok(Message::Question(Facts {
            caller,
            ..Facts::of(target, client_ip)
        }))
    }
    fn audience(&self) -> Audience {
        Audience::Viewers
    }
    fn anonymous(&self, _caller: &Caller) -> Anonymous {
        // Astra and Alta play the stream on any 200
        Anonymous::Never
    }
    fn answer(
        &self,
        outcome: &Outcome,
        _original: Original<'_>,
        settings: &AnswerSettings,
    ) -> Answer {
        answer(outcome, settings)
    }
}

/// The viewer's target and address, from the streamer's headers and its query.
fn read_target(incoming: &Incoming<'_>) -> Result<(Target, IpAddr), TargetError> {
    let view = &incoming.headers;
    let path = view.single("x-real-path")?;
    let real_host = view.single("x-real-host")?;
    let origin = view.single("x-real-origin")?;
    let (scheme, host): (Option<&[u8]>, Option<&[u8]>) = match origin {
        Some(origin) => {
            let text = std::str::from_utf8(origin).map_err(|_| TargetError::BadHost)?;
            let (scheme, rest) = text.split_once("://").ok_or(TargetError::BadHost)?;
            let host = rest.trim_end_matches('/');
            if host.contains(['/', '?', '#', '@']) {
                return Err(TargetError::BadHost);
            }
            // Trust decision: Astra's host and Alta's origin, when both are sent,
            // must name the same host; otherwise one of them is not the streamer's.
            if let Some(real_host) = real_host {
                let scheme = canonical_scheme(scheme)?;
                if canonical_host(real_host, &scheme)? != canonical_host(host.as_bytes(), &scheme)?
                {
                    return Err(TargetError::Conflicting);
                }
            }
            (Some(scheme.as_bytes()), Some(host.as_bytes()))
        }
        None => (None, real_host),
    };
    // The viewer's path, and the viewer's query that the streamer appended to ours.
    let uri = match path {
        Some(path) => {
            if path.contains(&b'?') {
                return Err(TargetError::NotOriginForm);
            }
            let mut uri = path.to_vec();
            if let Some(query) = incoming.query.filter(|q| !q.is_empty()) {
                uri.push(b'?');
                uri.extend_from_slice(query.as_bytes());
            }
            Some(uri)
        }
        None => None,
    };
    let target = build_target(Some(b"GET"), scheme, host, uri.as_deref())?;
    // A path-less request still carries the viewer's query (the token).
    let target = match (&target.query, incoming.query, path) {
        (None, Some(query), None) if !query.is_empty() => Target {
            query: Some(query.to_string()),
            ..target
        },
        _ => target,
    };
    let client_ip = match view.single("x-real-ip")? {
        Some(raw) => parse_hop(std::str::from_utf8(raw).map_err(|_| TargetError::BadClientIp)?)?,
        None => incoming.peer.ip(),
    };
    Ok((target, client_ip))
}

/// The outcome in Astra's and Alta's terms.
fn answer(outcome: &Outcome, settings: &AnswerSettings) -> Answer {
    match outcome {
        Outcome::Allow { identity, .. } => {
            let name = identity
                .as_ref()
                .map(|i| i.session_name())
                .unwrap_or_default();
            match actix_web::http::header::HeaderValue::from_str(name) {
                // exactly 200 and the session's name; nothing for the viewer to cache
                Ok(value) => Answer::of(
                    HttpResponse::Ok()
                        .insert_header(("x-session-name", value))
                        .insert_header(("cache-control", "no-store"))
                        .finish(),
                ),
                Err(_) => refuse(None, settings),
            }
        }
        Outcome::Redirect(location) => refuse(Some(location), settings),
        // Every refusal and every error is a 403: Astra lets a viewer in when its
        // backend answers anything else it does not understand, a 5xx included.
        Outcome::Unauthenticated { .. }
        | Outcome::Forbidden
        | Outcome::Refused(_)
        | Outcome::Unavailable
        | Outcome::Throttled { .. }
        | Outcome::Ignore
        | Outcome::Notified => refuse(None, settings),
    }
}

/// A 403, with the place to send the viewer when there is one.
fn refuse(location: Option<&str>, _settings: &AnswerSettings) -> Answer {
    match location {
        Some(location) => Answer::of(
            HttpResponse::Forbidden()
                .insert_header(("x-location", location))
                .insert_header(("cache-control", "no-store"))
                .finish(),
        ),
        None => Answer::of(plain(StatusCode::FORBIDDEN)),
    }
}
