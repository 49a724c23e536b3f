//! The icecast dialect: Icecast 2's URL listener authentication, both directions.
//!
//! Takes: a form body (`application/x-www-form-urlencoded`) with `action`, `mount` (the
//! listener's path and query: the token is usually in it), `server`, `port`, `client`,
//! `user`, `pass`, `ip`, `agent`. Returns, for `action=listener_add`: the listener's
//! target (`GET`, host `server:port`, the mount's path and query), its address from `ip`,
//! and its Basic credentials as the headers `icecast-user` and `icecast-pass` (token
//! sources `header:icecast-pass`); other actions are notifications, acknowledged with a
//! `200`. Answers `200` with `icecast-auth-user: 1` to admit, and `403` without it to
//! refuse. Must never: admit without the header Icecast looks for, or decide a
//! `listener_remove` (nothing is asked).

use actix_web::HttpResponse;
use actix_web::http::StatusCode;

use super::answer::{Answer, AnswerSettings, Original, plain};
use super::{Body, Dialect, Facts, Incoming, Message, build_target, caller_fields, parse_hop};
use crate::decision::Outcome;
use crate::fields::field;
use crate::request::{Anonymous, Audience, Caller, ReadError};

/// Icecast 2 URL listener authentication.
#[derive(Debug)]
pub struct Icecast;

/// The header Icecast's `auth_header` option names (its default).
pub const AUTH_HEADER: &str = "icecast-auth-user";

impl Dialect for Icecast {
    fn name(&self) -> &'static str {
        "icecast"
    }
    fn reads(&self) -> &'static [&'static str] {
        &["content-type"]
    }
    fn path(&self) -> &'static str {
        "/_resolver/icecast"
    }
    fn body(&self) -> Body {
        Body::Facts
    }
    fn read(&self, incoming: &Incoming<'_>) -> Result<Message, ReadError> {
        let fields = caller_fields(incoming)?;
        // listener_remove, mount_add, … are notifications: there is nothing to decide
        if field(&fields, "action") != Some("listener_add") {
            return Ok(Message::Notification);
        }
        let mount = field(&fields, "mount").ok_or(ReadError::BadBody)?;
        let host = match (field(&fields, "server"), field(&fields, "port")) {
            (Some(server), Some(port)) if !server.is_empty() && !port.is_empty() => {
                Some(format!("{server}:{port}"))
            }
            (Some(server), _) if !server.is_empty() => Some(server.to_string()),
            _ => None,
        };
        let target = build_target(
            Some(b"GET"),
            None,
            host.as_deref().map(str::as_bytes),
            Some(mount.as_bytes()),
        )?;
        let client_ip = match field(&fields, "ip") {
            Some(ip) if !ip.is_empty() => parse_hop(ip)?,
            _ => incoming.peer.ip(),
        };
        let caller = Caller {
            user_agent: field(&fields, "agent").map(str::to_string),
            ..Caller::default()
        };
        Ok(Message::Question(Facts {
            caller,
            credentials: credentials(&fields),
            ..Facts::of(target, client_ip)
        }))
    }
    fn audience(&self) -> Audience {
        Audience::Listeners
    }
    fn anonymous(&self, _caller: &Caller) -> Anonymous {
        // Icecast admits the listener on icecast-auth-user: 1, whoever it is
        Anonymous::Never
    }
    fn answer(
        &self,
        outcome: &Outcome,
        _original: Original<'_>,
        _settings: &AnswerSettings,
    ) -> Answer {
        match outcome {
            Outcome::Allow { .. } => Answer::of(
                HttpResponse::Ok()
                    .insert_header((AUTH_HEADER, "1"))
                    .insert_header(("cache-control", "no-store"))
                    .finish(),
            ),
            // a notification is acknowledged; nothing was admitted
            Outcome::Notified => Answer::of(plain(StatusCode::OK)),
            _ => Answer::of(plain(StatusCode::FORBIDDEN)),
        }
    }
}

/// The listener's Basic credentials, as headers the token sources can read.
fn credentials(fields: &[(String, String)]) -> Vec<(String, String)> {
    ["user", "pass"]
        .iter()
        .filter_map(|name| {
            field(fields, name)
                .filter(|v| !v.is_empty())
                .map(|v| (format!("icecast-{name}"), v.to_string()))
        })
        .collect()
}
