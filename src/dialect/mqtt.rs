//! The mqtt dialect: the HTTP backend contract of mosquitto-go-auth, amqtt and rmqtt, both
//! directions.
//!
//! Takes: `/_resolver/mqtt/user` (`username`, `password`, `clientid` or `client_id`),
//! `/_resolver/mqtt/superuser` (`username`) and `/_resolver/mqtt/acl` (`username`,
//! `clientid` or `client_id`, `topic`, `acc`: 1 read, 2 write, 3 read-write, 4
//! subscribe), as a JSON or form body (GET, POST or PUT) or the query. The check is the
//! target's path (`/user`, `/superuser`, `/acl`), so routes tell them apart; every field
//! is offered to token sources as a query parameter (`query:password`). Returns: a user
//! check decided by the route's authorizers (a token must name the username), an ACL
//! check by the topic rules. Answers by `[mqtt] answer`: `status` (`200` or `403`) or
//! `json` (`200` with `{"ok": true}` or `{"ok": false}`).
//! Must never: admit a request with an empty username, decide an ACL check without a
//! topic, or take an unknown `acc` for any action.

use actix_web::HttpResponse;

use super::answer::{Answer, AnswerSettings, Original, plain};
use super::{
    Body, Dialect, Facts, Incoming, Message, build_target, caller_fields, fields_as_query,
};
use crate::decision::Outcome;
use crate::fields::field;
use crate::request::{Action, Anonymous, Audience, Caller, MqttAccess, ReadError, TargetError};

/// mosquitto-go-auth, amqtt and rmqtt HTTP backends.
#[derive(Debug)]
pub struct Mqtt;

/// Which check the broker asks for: the path after the endpoint.
fn check(incoming: &Incoming<'_>) -> Result<&'static str, TargetError> {
    match incoming.path.strip_prefix(incoming.prefix) {
        Some("/user") => Ok("/user"),
        Some("/superuser") => Ok("/superuser"),
        Some("/acl") => Ok("/acl"),
        _ => Err(TargetError::NotOriginForm),
    }
}

impl Dialect for Mqtt {
    fn name(&self) -> &'static str {
        "mqtt"
    }
    fn reads(&self) -> &'static [&'static str] {
        &["content-type"]
    }
    fn path(&self) -> &'static str {
        "/_resolver/mqtt"
    }
    fn takes_path_tail(&self) -> bool {
        true
    }
    fn body(&self) -> Body {
        Body::Facts
    }
    fn read(&self, incoming: &Incoming<'_>) -> Result<Message, ReadError> {
        let path = check(incoming)?;
        let fields = caller_fields(incoming)?;
        let query = fields_as_query(&fields);
        let uri = format!("{path}?{query}");
        let target = build_target(Some(b"GET"), None, None, Some(uri.as_bytes()))?;
        let username = field(&fields, "username").unwrap_or_default().to_string();
        if username.is_empty() {
            return Err(ReadError::BadBody);
        }
        let clientid = field(&fields, "clientid")
            .or_else(|| field(&fields, "client_id"))
            .filter(|c| !c.is_empty())
            .map(str::to_string);
        let mqtt = if path == "/acl" {
            let topic = field(&fields, "topic").unwrap_or_default().to_string();
            let action = match field(&fields, "acc") {
                Some("1" | "4") => Action::Subscribe,
                Some("2") => Action::Publish,
                Some("3") => Action::ReadWrite,
                _ => return Err(ReadError::BadBody),
            };
            if topic.is_empty() {
                return Err(ReadError::BadBody);
            }
            Some(MqttAccess {
                username: username.clone(),
                clientid,
                action,
                topic,
                qos: None,
                retain: None,
            })
        } else {
            None
        };
        let caller = Caller {
            username: Some(username),
            mqtt,
            ..Caller::default()
        };
        Ok(Message::Question(Facts {
            caller,
            ..Facts::of(target, incoming.peer.ip())
        }))
    }
    fn audience(&self) -> Audience {
        Audience::MqttClients
    }
    fn anonymous(&self, caller: &Caller) -> Anonymous {
        match caller.mqtt {
            // the ACL check: the broker logged the client in; the topic rules decide
            Some(_) => Anonymous::ClientKnown,
            // the user and superuser checks: an allow logs the client in (or makes it a
            // superuser)
            None => Anonymous::Never,
        }
    }
    fn answer(
        &self,
        outcome: &Outcome,
        _original: Original<'_>,
        settings: &AnswerSettings,
    ) -> Answer {
        let ok = matches!(outcome, Outcome::Allow { .. });
        if settings.mqtt_json {
            Answer::of(
                HttpResponse::Ok()
                    .content_type("application/json")
                    .insert_header(("cache-control", "no-store"))
                    .body(if ok {
                        r#"{"ok": true}"#
                    } else {
                        r#"{"ok": false}"#
                    }),
            )
        } else if ok {
            Answer::of(
                HttpResponse::Ok()
                    .insert_header(("cache-control", "no-store"))
                    .finish(),
            )
        } else {
            Answer::of(plain(actix_web::http::StatusCode::FORBIDDEN))
        }
    }
}
