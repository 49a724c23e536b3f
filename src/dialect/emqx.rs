//! The emqx dialects: EMQX 5 HTTP authorization (`emqx`), EMQX 4's status-only form of it
//! (`emqx4`) and EMQX 5 HTTP authentication (`emqx-authn`), both directions.
//!
//! Takes: the fields EMQX renders from its placeholders (`username`, `clientid`,
//! `peerhost`, `topic`, `action` or EMQX 4's `access`, `qos`, `retain`, `mountpoint`, and
//! any token field) from a POST body (JSON or form, by `Content-Type`) or the GET query.
//! Every field is also offered to token sources as a query parameter (`query:password`,
//! `query:token`). Returns: a request with no HTTP target whose caller facts are the MQTT
//! access; answers always `200`, `Content-Type: application/json`, `{"result": "allow"}`,
//! `{"result": "deny"}`, or `{"result": "ignore"}` where a topic rule says so.
//! Must never: answer a 4xx or 5xx (EMQX reads those as "ignore", which older
//! installations turn into an allow), take `+` for a space, accept a field sent twice,
//! or admit an access with an empty username or topic (an unresolved placeholder).

use actix_web::HttpResponse;

use super::answer::{Answer, AnswerSettings, Original};
use super::{Body, Dialect, Facts, Incoming, Message, caller_fields, fields_as_query, parse_hop};
use crate::decision::Outcome;
use crate::fields::field;
use crate::request::{Action, Anonymous, Audience, Caller, MqttAccess, ReadError, Target};

/// EMQX authorization.
#[derive(Debug)]
pub struct Emqx;

impl Dialect for Emqx {
    fn name(&self) -> &'static str {
        "emqx"
    }
    fn reads(&self) -> &'static [&'static str] {
        &["content-type"]
    }
    fn path(&self) -> &'static str {
        "/_resolver/emqx"
    }
    fn body(&self) -> Body {
        Body::Facts
    }
    fn read(&self, incoming: &Incoming<'_>) -> Result<Message, ReadError> {
        let fields = caller_fields(incoming)?;
        Ok(Message::Question(Facts {
            caller: authorization_facts(&fields)?,
            ..read_target(incoming, &fields)?
        }))
    }
    fn audience(&self) -> Audience {
        Audience::MqttClients
    }
    fn anonymous(&self, _caller: &Caller) -> Anonymous {
        // authorization: EMQX authenticated the client; the topic rules decide
        Anonymous::ClientKnown
    }
    fn answer(
        &self,
        outcome: &Outcome,
        _original: Original<'_>,
        _settings: &AnswerSettings,
    ) -> Answer {
        let result = match outcome {
            Outcome::Allow { .. } => "allow",
            Outcome::Ignore => "ignore",
            // every refusal and every error is a deny: a 4xx/5xx would be "ignore"
            Outcome::Unauthenticated { .. }
            | Outcome::Forbidden
            | Outcome::Redirect(_)
            | Outcome::Refused(_)
            | Outcome::Unavailable
            | Outcome::Throttled { .. }
            | Outcome::Notified => "deny",
        };
        Answer::of(
            HttpResponse::Ok()
                .content_type("application/json")
                .insert_header(("cache-control", "no-store"))
                .body(format!("{{\"result\": \"{result}\"}}")),
        )
    }
}

/// The target EMQX's request stands for: no method, host or path (an MQTT access has
/// none), every field as a query parameter; and the client's address.
fn read_target(incoming: &Incoming<'_>, fields: &[(String, String)]) -> Result<Facts, ReadError> {
    // Every field as a query parameter, for the token sources of the route's
    // authorizers; percent-encoded, so `+` stays `+`.
    let query = fields_as_query(fields);
    let target = Target {
        scheme: "http".into(),
        query: Some(query),
        ..Target::default()
    };
    let client_ip = match field(fields, "peerhost") {
        Some(host) if !host.is_empty() => parse_hop(host)?,
        _ => incoming.peer.ip(),
    };
    Ok(Facts::of(target, client_ip))
}
/// The access EMQX asks about (EMQX 5 `action`, EMQX 4 `access`), as the caller's facts.
fn authorization_facts(fields: &[(String, String)]) -> Result<Caller, ReadError> {
    let text = |name: &str| field(fields, name).unwrap_or_default().to_string();
    let action = match (field(fields, "action"), field(fields, "access")) {
        (Some("publish"), _) => Action::Publish,
        (Some("subscribe"), _) => Action::Subscribe,
        // EMQX 4: access 1 is subscribe, 2 is publish
        (None, Some("1")) => Action::Subscribe,
        (None, Some("2")) => Action::Publish,
        _ => return Err(ReadError::BadBody),
    };
    let access = MqttAccess {
        username: text("username"),
        // an unresolved placeholder renders empty: the fact is missing
        clientid: field(fields, "clientid")
            .filter(|c| !c.is_empty())
            .map(str::to_string),
        action,
        topic: text("topic"),
        qos: match field(fields, "qos") {
            None | Some("") => None,
            Some(q) => Some(
                q.parse::<u8>()
                    .ok()
                    .filter(|q| *q <= 2)
                    .ok_or(ReadError::BadBody)?,
            ),
        },
        retain: match field(fields, "retain") {
            None | Some("") => None,
            Some("true" | "1") => Some(true),
            Some("false" | "0") => Some(false),
            Some(_) => return Err(ReadError::BadBody),
        },
    };
    // An unresolved placeholder renders empty: never decide on it.
    if access.username.is_empty() || access.topic.is_empty() {
        return Err(ReadError::BadBody);
    }
    Ok(Caller {
        username: Some(access.username.clone()),
        mqtt: Some(access),
        targetless: true,
        ..Caller::default()
    })
}

/// EMQX 4 authorization: the same request, answered by status only (`200` allow, `403`
/// deny), as EMQX 4 read its HTTP ACL.
#[derive(Debug)]
pub struct Emqx4;

impl Dialect for Emqx4 {
    fn name(&self) -> &'static str {
        "emqx4"
    }
    fn reads(&self) -> &'static [&'static str] {
        Emqx.reads()
    }
    fn path(&self) -> &'static str {
        "/_resolver/emqx4"
    }
    fn body(&self) -> Body {
        Body::Facts
    }
    fn read(&self, incoming: &Incoming<'_>) -> Result<Message, ReadError> {
        Emqx.read(incoming)
    }
    fn audience(&self) -> Audience {
        Audience::MqttClients
    }
    fn anonymous(&self, caller: &Caller) -> Anonymous {
        Emqx.anonymous(caller)
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
                    .insert_header(("cache-control", "no-store"))
                    .finish(),
            ),
            _ => Answer::of(super::answer::plain(actix_web::http::StatusCode::FORBIDDEN)),
        }
    }
}

/// EMQX 5 HTTP authentication: the MQTT password (or a token field) is the credential.
///
/// Takes: `username`, `password`, `clientid`, `peerhost` (and any token field) like the
/// authorization request; the route's authorizers read them as query parameters
/// (`query:password`). Returns: `200` JSON `{"result": "allow", "is_superuser": …,
/// "client_attrs": {"roles": …}, "expire_at": …}` (`expire_at` is the token's `exp`, so
/// EMQX disconnects the client when its token expires; `is_superuser` is the role
/// `superuser`), or `{"result": "deny"}`. A token must name the username.
#[derive(Debug)]
pub struct EmqxAuthn;

impl Dialect for EmqxAuthn {
    fn name(&self) -> &'static str {
        "emqx-authn"
    }
    fn reads(&self) -> &'static [&'static str] {
        Emqx.reads()
    }
    fn path(&self) -> &'static str {
        "/_resolver/emqx/authn"
    }
    fn body(&self) -> Body {
        Body::Facts
    }
    fn read(&self, incoming: &Incoming<'_>) -> Result<Message, ReadError> {
        let fields = caller_fields(incoming)?;
        let username = field(&fields, "username").unwrap_or_default();
        // an unresolved ${username} renders empty: never authenticate it
        if username.is_empty() {
            return Err(ReadError::BadBody);
        }
        let caller = Caller {
            username: Some(username.to_string()),
            targetless: true,
            ..Caller::default()
        };
        Ok(Message::Question(Facts {
            caller,
            ..read_target(incoming, &fields)?
        }))
    }
    fn audience(&self) -> Audience {
        Audience::MqttClients
    }
    fn anonymous(&self, _caller: &Caller) -> Anonymous {
        // authentication: an allow logs the client in
        Anonymous::Never
    }
    fn answer(
        &self,
        outcome: &Outcome,
        _original: Original<'_>,
        _settings: &AnswerSettings,
    ) -> Answer {
        let body = match outcome {
            Outcome::Allow {
                identity: Some(identity),
                ..
            } => {
                let mut answer = serde_json::json!({
                    "result": "allow",
                    "is_superuser": identity.roles.iter().any(|r| &**r == "superuser"),
                    "client_attrs": { "roles": identity.roles.join(",") },
                });
                if let Some(exp) = identity.expires_at {
                    answer["expire_at"] = exp.get().into();
                }
                answer
            }
            // no identity: only a public route (or on_error = "allow") gets here, since
            // policy never hands this caller an identify route's allow for nobody
            Outcome::Allow { identity: None, .. } => {
                serde_json::json!({"result": "allow", "is_superuser": false})
            }
            Outcome::Ignore => serde_json::json!({"result": "ignore"}),
            _ => serde_json::json!({"result": "deny"}),
        };
        Answer::of(
            HttpResponse::Ok()
                .content_type("application/json")
                .insert_header(("cache-control", "no-store"))
                .body(body.to_string()),
        )
    }
}
