//! The resolver's table test: access levels × chain results × `on_error` × readings ×
//! missing facts, with scripted authorizers, in-process, on a manual clock.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::authorizer::scripted::ScriptedAuthorizer;
use crate::decision::{AuthError, Decision, Denial};
use crate::dialect::build_target;
use crate::identity::{Identity, SessionState};
use crate::policy::{
    COULD_NOT_DECIDE, FAILED_OPEN, MISSING_ROLE, NO_IDENTITY, NOT_THE_USERNAME, UNRECOGNISED,
};
use crate::request::{Action, Anonymous, Caller, FormBody, Header, MqttAccess, readings};

/// Two authorizers (`first`, then `second` in every chain) and a route per rule.
const POLICY: &str = r##"
[authorizers.first]
type = "static"
[[authorizers.first.tokens]]
token = "placeholder-1"
user_id = "p"
[authorizers.second]
type = "static"
[[authorizers.second.tokens]]
token = "placeholder-2"
user_id = "p"

[[route]]
name = "public"
path = "/public"
access = "public"
[[route]]
name = "closed"
path = "/closed"
access = "deny"
[[route]]
name = "identify"
path = "/identify"
access = "identify"
[[route]]
name = "admin"
path = "/admin"
access = "authenticated"
roles = ["admin"]
[[route]]
name = "fail-open"
path = "/soft"
access = "authenticated"
on_error = "allow"
[[route]]
name = "fail-over"
path = "/lenient"
access = "authenticated"
on_error = "abstain"
[[route]]
name = "deletes"
path = "/api"
methods = ["DELETE"]
access = "authenticated"
roles = ["admin"]

[[topic_rule]]
permission = "allow"
topics = ["sensors/${username}/#"]
[[topic_rule]]
permission = "deny"
topics = ["#"]
"##;

/// What a scripted authorizer says.
#[derive(Debug, Clone, Copy)]
enum Says {
    Reader,
    Admin,
    Invalid,
    Forbidden,
    Abstains,
    Fails,
}

impl Says {
    fn answer(self) -> Result<Decision, AuthError> {
        let user = |roles: &[&str]| {
            Decision::allow(
                Identity {
                    user_id: "alice".into(),
                    roles: roles.iter().map(|r| Arc::from(*r)).collect(),
                    ..Identity::default()
                },
                Some(Duration::from_secs(30)),
            )
        };
        match self {
            Says::Reader => Ok(user(&["reader"])),
            Says::Admin => Ok(user(&["admin"])),
            Says::Invalid => Ok(Decision::deny(Denial::InvalidCredential("bad"))),
            Says::Forbidden => Ok(Decision::deny(Denial::Forbidden("no"))),
            Says::Abstains => Ok(Decision::abstain()),
            Says::Fails => Err(AuthError::Internal("down".into())),
        }
    }
}

/// A resolver whose two authorizers say `first` and `second`, on a manual clock.
fn scripted(first: Says, second: Says) -> (Resolver, Clock) {
    crate::init_crypto();
    let mut config = Config::from_toml(POLICY).expect("policy");
    for (authorizer, says) in config.authorizers.iter_mut().zip([first, second]) {
        authorizer.kind =
            crate::authorizer::AuthorizerKind::Scripted(ScriptedAuthorizer::new(vec![
                says.answer(),
            ]));
    }
    let clock = Clock::manual();
    let resolver = Resolver::with_clock(Arc::new(config), clock.clone()).expect("resolver");
    (resolver, clock)
}

fn asked(resolver: &Resolver) -> [usize; 2] {
    let count = |index: usize| match &resolver.config.authorizers[index].kind {
        crate::authorizer::AuthorizerKind::Scripted(s) => s.asked(),
        _ => 0,
    };
    [count(0), count(1)]
}

/// A proxy's request (`method` on `uri`), with a bearer credential when `credential`.
fn request(method: Option<&str>, uri: &str, credential: bool) -> ForwardedRequest<'static> {
    let mut target = build_target(
        method.map(str::as_bytes),
        Some(b"https"),
        Some(b"app.example.com"),
        Some(uri.as_bytes()),
    )
    .expect("target");
    let headers: Vec<Header<'static>> = if credential {
        vec![Header::owned(
            "authorization",
            b"Bearer some-token".to_vec(),
        )]
    } else {
        Vec::new()
    };
    target.readings = readings(&target, &headers, FormBody::Absent).expect("readings");
    ForwardedRequest::new(
        target,
        "203.0.113.7".parse().expect("ip"),
        headers,
        Caller {
            dialect: "auth-request",
            ..Caller::default()
        },
    )
}

/// The outcome's name, its reason, and which authorizers were asked.
async fn decide(
    resolver: &Resolver,
    request: &ForwardedRequest<'_>,
) -> (&'static str, Option<String>, Outcome) {
    let fetcher = Fetcher::new(Duration::from_secs(1));
    let decided = resolver.decide(request, &fetcher).await;
    (
        decided.outcome.name(),
        decided.reason.map(|r| r.into_owned()),
        decided.outcome,
    )
}

#[actix_web::test]
async fn every_access_level_meets_every_chain_result() {
    use Says::*;
    // (method, uri, credential, first, second, outcome, reason, asked [first, second])
    type Row<'a> = (
        &'a str,
        &'a str,
        bool,
        Says,
        Says,
        &'a str,
        Option<&'a str>,
        [usize; 2],
    );
    let table: &[Row] = &[
        ("GET", "/page", true, Reader, Admin, "allow", None, [1, 0]),
        (
            "GET",
            "/page",
            true,
            Abstains,
            Reader,
            "allow",
            None,
            [1, 1],
        ),
        (
            "GET",
            "/page",
            true,
            Abstains,
            Abstains,
            "unauthenticated",
            Some(UNRECOGNISED),
            [1, 1],
        ),
        (
            "GET",
            "/page",
            false,
            Reader,
            Reader,
            "unauthenticated",
            None,
            [0, 0],
        ),
        (
            "GET",
            "/page",
            true,
            Invalid,
            Reader,
            "unauthenticated",
            Some("bad"),
            [1, 0],
        ),
        (
            "GET",
            "/page",
            true,
            Forbidden,
            Reader,
            "forbidden",
            Some("no"),
            [1, 0],
        ),
        (
            "GET",
            "/page",
            true,
            Fails,
            Reader,
            "unavailable",
            Some(COULD_NOT_DECIDE),
            [1, 0],
        ),
        (
            "GET",
            "/soft",
            true,
            Fails,
            Reader,
            "allow",
            Some(FAILED_OPEN),
            [1, 0],
        ),
        (
            "GET",
            "/lenient",
            true,
            Fails,
            Reader,
            "allow",
            None,
            [1, 1],
        ),
        (
            "GET",
            "/admin",
            true,
            Reader,
            Admin,
            "forbidden",
            Some(MISSING_ROLE),
            [1, 0],
        ),
        ("GET", "/admin", true, Admin, Reader, "allow", None, [1, 0]),
        ("GET", "/public", true, Fails, Fails, "allow", None, [0, 0]),
        (
            "GET",
            "/closed",
            true,
            Admin,
            Admin,
            "forbidden",
            None,
            [0, 0],
        ),
        (
            "GET",
            "/identify",
            true,
            Invalid,
            Reader,
            "allow",
            Some("bad"),
            [1, 0],
        ),
        (
            "GET",
            "/identify",
            false,
            Reader,
            Reader,
            "allow",
            None,
            [0, 0],
        ),
        (
            "GET",
            "/identify",
            true,
            Fails,
            Reader,
            "unavailable",
            Some(COULD_NOT_DECIDE),
            [1, 0],
        ),
        // readings: an override or a HEAD puts the request under another route
        (
            "POST",
            "/api/items?_method=DELETE",
            true,
            Reader,
            Reader,
            "forbidden",
            None,
            [1, 0],
        ),
        (
            "POST",
            "/api/items?_method=DELETE",
            true,
            Admin,
            Admin,
            "allow",
            None,
            [1, 0],
        ),
        (
            "HEAD",
            "/api/items",
            true,
            Reader,
            Reader,
            "allow",
            None,
            [1, 0],
        ),
    ];
    for (method, uri, credential, first, second, outcome, reason, expected_asks) in table {
        let (resolver, _clock) = scripted(*first, *second);
        let (name, why, _) = decide(&resolver, &request(Some(method), uri, *credential)).await;
        let case = format!("{method} {uri} {first:?}/{second:?}");
        assert_eq!(name, *outcome, "{case}: {why:?}");
        if let Some(reason) = reason {
            let why = why.unwrap_or_default();
            assert!(why.contains(reason), "{case}: {why}");
        }
        assert_eq!(asked(&resolver), *expected_asks, "{case}: who was asked");
    }
}

#[actix_web::test]
async fn a_missing_fact_is_one_more_route_the_request_must_pass() {
    // no method: the DELETE-only admin route may apply to /api, so a reader is refused
    let (resolver, _clock) = scripted(Says::Reader, Says::Reader);
    let (name, why, _) = decide(&resolver, &request(None, "/api/items", true)).await;
    assert_eq!(name, "forbidden", "{why:?}");
    assert!(why.unwrap_or_default().contains("route deletes refuses"));
    // an admin passes both
    let (resolver, _clock) = scripted(Says::Admin, Says::Admin);
    let (name, _, _) = decide(&resolver, &request(None, "/api/items", true)).await;
    assert_eq!(name, "allow");
}

#[actix_web::test]
async fn callers_that_cannot_say_nobody_get_no_identify_allow_for_nobody() {
    let (resolver, _clock) = scripted(Says::Invalid, Says::Reader);
    let mut viewer = request(Some("GET"), "/identify", false);
    viewer.caller_mut().anonymous = Anonymous::Never;
    let (name, why, _) = decide(&resolver, &viewer).await;
    assert_eq!(name, "unauthenticated");
    assert_eq!(why.as_deref(), Some(NO_IDENTITY));
    let mut with_token = request(Some("GET"), "/identify", true);
    with_token.caller_mut().anonymous = Anonymous::Never;
    let (name, _, _) = decide(&resolver, &with_token).await;
    assert_eq!(name, "unauthenticated", "an invalid credential is a deny");
}

#[actix_web::test]
async fn a_broker_caller_is_bound_to_its_username_and_the_topic_rules() {
    let access = |user: &str, topic: &str| MqttAccess {
        username: user.into(),
        clientid: Some("c-1".into()),
        action: Action::Publish,
        topic: topic.into(),
        qos: Some(0),
        retain: Some(false),
    };
    let broker = |user: &str, topic: &str| {
        let mut r = request(Some("GET"), "/page", true);
        r.caller_mut().username = Some(user.into());
        r.caller_mut().mqtt = Some(access(user, topic));
        r
    };
    let (resolver, _clock) = scripted(Says::Reader, Says::Reader);
    let (name, _, _) = decide(&resolver, &broker("alice", "sensors/alice/t")).await;
    assert_eq!(name, "allow");
    let (name, why, _) = decide(&resolver, &broker("alice", "sensors/bob/t")).await;
    assert_eq!(name, "forbidden");
    assert_eq!(why.as_deref(), Some("topic_rule[1] denies"));
    let (name, why, _) = decide(&resolver, &broker("mallory", "sensors/mallory/t")).await;
    assert_eq!(name, "forbidden", "the token names alice");
    assert_eq!(why.as_deref(), Some(NOT_THE_USERNAME));
}

#[actix_web::test]
async fn an_allow_says_how_long_it_may_be_kept_and_expires_on_the_clock() {
    let (resolver, clock) = scripted(Says::Reader, Says::Reader);
    let page = request(Some("GET"), "/page", true);
    let (_, _, outcome) = decide(&resolver, &page).await;
    let Outcome::Allow {
        cache_for, session, ..
    } = outcome
    else {
        panic!("allowed");
    };
    assert_eq!(session, SessionState::Valid);
    assert_eq!(
        cache_for,
        Duration::from_secs(30),
        "the decision's own limit"
    );
    clock.advance(Duration::from_secs(20));
    let (_, _, outcome) = decide(&resolver, &page).await;
    assert!(
        matches!(outcome, Outcome::Allow { cache_for, .. } if cache_for == Duration::from_secs(10))
    );
    assert_eq!(asked(&resolver), [1, 0], "a hit");
    clock.advance(Duration::from_secs(10));
    decide(&resolver, &page).await;
    assert_eq!(
        asked(&resolver),
        [2, 0],
        "expired on the clock: asked again"
    );
    // an anonymous allow is kept by no caller
    let (_, _, outcome) = decide(&resolver, &request(Some("GET"), "/public", false)).await;
    assert!(matches!(outcome, Outcome::Allow { cache_for, .. } if cache_for.is_zero()));
}
