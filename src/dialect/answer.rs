//! Encoding an [`Outcome`] as the HTTP answer a caller understands: the pieces every
//! dialect builds its answer from, and [`proxy`], the map the reverse-proxy dialects share.
//!
//! Takes: the outcome, what we know of the original request (for the login redirect)
//! and the answer settings. Returns: exactly `200` with every enabled identity header on
//! allow (empty values where they do not apply); `401` + `WWW-Authenticate` (and the
//! login redirect for browser navigations, in the style the dialect chooses); `403`;
//! `503`. Must never: send identity headers on a deny, send a 3xx to a caller that cannot
//! pass one on (nginx turns it into a 500), send a relative `Location`, exceed the
//! response-header budget, or put a control character into a header.

use std::time::Duration;

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use percent_encoding::utf8_percent_encode;

use crate::decision::Outcome;
use crate::identity::{
    HeaderSets, HeaderText, IDENTITY_HEADERS, Identity, ListRules, SessionState,
};
use crate::request::{Target, URL_COMPONENT};

/// Everything an answer needs from the configuration.
#[derive(Debug, Clone)]
pub struct AnswerSettings {
    /// Identity headers an application already reads (`[headers.custom]`): each name
    /// with the template of its value over the verified identity.
    pub custom: Vec<(
        actix_web::http::header::HeaderName,
        crate::template::IdentityTemplate,
    )>,
    /// `WWW-Authenticate` for the realm, written once.
    pub challenges: Challenges,
    pub login_url: Option<String>,
    pub login_redirect_param: String,
    pub headers: HeaderSets,
    /// How list items are checked for the enabled headers (from `headers`, once).
    pub lists: ListRules,
    /// The mqtt dialect answers `{"ok": …}` instead of a status (`[mqtt] answer = "json"`).
    pub mqtt_json: bool,
    pub max_header_bytes: usize,
}

/// The `WWW-Authenticate` values of `server.realm`: for a request without a credential
/// and for one whose credential is not valid.
#[derive(Debug, Clone)]
pub struct Challenges {
    missing: HeaderValue,
    invalid: HeaderValue,
}

impl Challenges {
    /// `None` when the realm cannot stand in a header value (the configuration also
    /// refuses a quote or a backslash, which would end the quoted realm early).
    pub fn for_realm(realm: &str) -> Option<Challenges> {
        Challenges::for_schemes(realm, false)
    }

    /// With `basic`, a `Basic` challenge too (RFC 7235: one header, several challenges),
    /// so a browser asks its user for a password where a `basic` authorizer is configured.
    pub fn for_schemes(realm: &str, basic: bool) -> Option<Challenges> {
        let basic = if basic {
            format!(", Basic realm=\"{realm}\", charset=\"UTF-8\"")
        } else {
            String::new()
        };
        Some(Challenges {
            missing: HeaderValue::try_from(format!("Bearer realm=\"{realm}\"{basic}")).ok()?,
            invalid: HeaderValue::try_from(format!(
                "Bearer realm=\"{realm}\", error=\"invalid_token\"{basic}"
            ))
            .ok()?,
        })
    }

    fn for_credential(&self, presented: bool) -> HeaderValue {
        if presented {
            self.invalid.clone()
        } else {
            self.missing.clone()
        }
    }
}

/// What an answer needs to know about the original request.
#[derive(Debug, Clone, Copy)]
pub struct Original<'a> {
    pub target: Option<&'a Target>,
    /// The original request's `Accept` header, for telling browsers from API clients.
    pub accept: Option<&'a str>,
}

/// An answer, and why it is not the one the outcome asked for (then it is a 503).
#[derive(Debug)]
pub struct Answer {
    pub response: HttpResponse,
    pub problem: Option<EncodeProblem>,
}

impl Answer {
    pub fn of(response: HttpResponse) -> Answer {
        Answer {
            response,
            problem: None,
        }
    }
}

/// How a caller is sent elsewhere (the login page, a backend's `X-Location`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redirects {
    /// `401` + `Location`: nginx cannot pass a 3xx from an auth subrequest, and the
    /// shipped config's `error_page 401` turns this into the redirect.
    UnauthorizedWithLocation,
    /// A plain `302`, which the proxy passes to the client.
    Found,
}

/// Why an outcome could not be encoded as it stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodeProblem {
    /// An identity value holds a control character (e.g. a newline in a claim).
    UnsafeValue,
    /// The identity headers exceed the response-header budget.
    TooLarge,
    /// A role or `amr` value holds its header's separator or whitespace, so the
    /// application would read it as several.
    AmbiguousList,
}

/// The reverse-proxy map: one status per outcome, the redirect in the dialect's style.
/// On allow, an identity that cannot be sent safely turns into a 503: dropping or
/// truncating a header would change who the upstream thinks the user is.
pub fn proxy(
    outcome: &Outcome,
    original: Original<'_>,
    settings: &AnswerSettings,
    redirects: Redirects,
) -> Answer {
    match outcome {
        Outcome::Allow {
            identity,
            session,
            cache_for,
        } => allow(identity.as_deref(), *session, *cache_for, settings),
        Outcome::Unauthenticated {
            credential_presented,
        } => Answer::of(unauthenticated(
            *credential_presented,
            original,
            settings,
            redirects,
        )),
        // a proxy never notifies; were one to, nothing was allowed
        Outcome::Forbidden | Outcome::Refused(_) | Outcome::Ignore | Outcome::Notified => {
            Answer::of(plain(StatusCode::FORBIDDEN))
        }
        Outcome::Redirect(location) => Answer::of(redirect(location, settings, redirects)),
        Outcome::Unavailable => Answer::of(plain(StatusCode::SERVICE_UNAVAILABLE)),
        // nginx and HAProxy's auth-request read only 401 and 403 as a refusal (anything
        // else is an error there): a 401 that says when to try again; the others pass a
        // 429 on to the client
        Outcome::Throttled { retry_after } => {
            let status = match redirects {
                Redirects::UnauthorizedWithLocation => StatusCode::UNAUTHORIZED,
                Redirects::Found => StatusCode::TOO_MANY_REQUESTS,
            };
            let mut response = plain(status);
            if let Ok(value) =
                actix_web::http::header::HeaderValue::from_str(&retry_after.to_string())
            {
                response
                    .headers_mut()
                    .insert(actix_web::http::header::RETRY_AFTER, value);
            }
            Answer::of(response)
        }
    }
}

/// Exactly `200` with every enabled identity header (and `copy_headers` extras), or a
/// 503 saying why the identity cannot be sent. `cache_for` is how long a caller's own
/// cache may keep it: `X-Accel-Expires` (nginx) when above a second, else `no-store`.
pub fn allow(
    identity: Option<&Identity>,
    session: SessionState,
    cache_for: Duration,
    settings: &AnswerSettings,
) -> Answer {
    if identity.is_some_and(|id| !settings.lists.allow(id)) {
        return Answer {
            response: plain(StatusCode::SERVICE_UNAVAILABLE),
            problem: Some(EncodeProblem::AmbiguousList),
        };
    }
    let extra: &[(Box<str>, Box<str>)] = identity.map_or(&[], |i| &i.extra_headers);
    match allow_response(
        identity,
        session,
        settings.headers,
        extra,
        settings.max_header_bytes,
    ) {
        Ok(mut response) => {
            // Whole seconds, rounded down, less one: nginx's cache clock ticks in whole
            // seconds and keeps an answer until the end of the second its lifetime ends
            // in, so `N` can mean up to N+1 seconds. Never past verdict's own entry.
            let seconds = cache_for.as_secs().saturating_sub(1);
            let lifetime = if seconds > 0 {
                (X_ACCEL_EXPIRES, HeaderValue::from(seconds))
            } else {
                (CACHE_CONTROL, HeaderValue::from_static(NO_STORE))
            };
            response.headers_mut().insert(lifetime.0, lifetime.1);
            if let Some(identity) = identity {
                for (name, template) in &settings.custom {
                    // a value it names that the identity lacks: the header is not sent
                    let Some(text) = template.render_identity(identity) else {
                        continue;
                    };
                    // Trust decision: a value that could end the header (a line break, a
                    // control character) is never sent: the answer becomes a 503
                    let safe = text
                        .bytes()
                        .all(|b| b == b'\t' || (0x20..0x7f).contains(&b) || b >= 0x80);
                    match HeaderValue::from_str(&text) {
                        Ok(value) if safe => {
                            response.headers_mut().insert(name.clone(), value);
                        }
                        _ => {
                            return Answer {
                                response: plain(StatusCode::SERVICE_UNAVAILABLE),
                                problem: Some(EncodeProblem::UnsafeValue),
                            };
                        }
                    }
                }
            }
            Answer::of(response)
        }
        Err(problem) => Answer {
            response: plain(StatusCode::SERVICE_UNAVAILABLE),
            problem: Some(problem),
        },
    }
}

/// The allow's response: every enabled identity header (names built once, constants
/// never copied, the identity's own text copied once into its header value) and the
/// backend's `copy_headers`, within the header budget.
fn allow_response(
    identity: Option<&Identity>,
    session: SessionState,
    sets: HeaderSets,
    extra: &[(Box<str>, Box<str>)],
    budget: usize,
) -> Result<HttpResponse, EncodeProblem> {
    let mut used = 0;
    let mut spend = |name: &str, value: &str| {
        used += name.len() + value.len() + 4;
        if used > budget {
            Err(EncodeProblem::TooLarge)
        } else {
            Ok(())
        }
    };
    let mut response = HttpResponse::Ok().finish();
    let map = response.headers_mut();
    map.reserve(IDENTITY_HEADERS.len() + extra.len() + 1);
    for (header, name) in IDENTITY_HEADERS.iter().zip(&IDENTITY_HEADER_NAMES) {
        if !sets.has(header.family) {
            continue;
        }
        let text = header.text(identity, session);
        spend(header.name, text.as_str())?;
        // obs-text (raw UTF-8) is allowed, control characters are not
        let value = match text {
            // the constants are `true`, `false` and the empty value: valid by construction
            HeaderText::Constant(text) => Ok(HeaderValue::from_static(text)),
            HeaderText::Held(text) => HeaderValue::from_str(text),
            HeaderText::Made(text) => HeaderValue::try_from(text),
        }
        .map_err(|_| EncodeProblem::UnsafeValue)?;
        map.insert(name.clone(), value);
    }
    for (name, value) in extra {
        spend(name, value)?;
        let value =
            HeaderValue::from_bytes(value.as_bytes()).map_err(|_| EncodeProblem::UnsafeValue)?;
        let name =
            HeaderName::from_bytes(name.as_bytes()).map_err(|_| EncodeProblem::UnsafeValue)?;
        map.insert(name, value);
    }
    Ok(response)
}

/// The identity headers' names, built once, in [`IDENTITY_HEADERS`] order.
static IDENTITY_HEADER_NAMES: [HeaderName; IDENTITY_HEADERS.len()] = {
    const fn name(index: usize) -> HeaderName {
        HeaderName::from_static(IDENTITY_HEADERS[index].name)
    }
    [
        name(0),
        name(1),
        name(2),
        name(3),
        name(4),
        name(5),
        name(6),
        name(7),
        name(8),
        name(9),
        name(10),
        name(11),
        name(12),
        name(13),
        name(14),
        name(15),
    ]
};

/// A backend-chosen redirect, in the dialect's style.
fn redirect(location: &str, settings: &AnswerSettings, redirects: Redirects) -> HttpResponse {
    match redirects {
        Redirects::UnauthorizedWithLocation => no_store(HttpResponse::Unauthorized())
            .insert_header((WWW_AUTHENTICATE, settings.challenges.for_credential(false)))
            .insert_header(("location", location))
            .finish(),
        Redirects::Found => no_store(HttpResponse::Found())
            .insert_header(("location", location))
            .finish(),
    }
}

/// A bare status that no cache may keep.
pub fn plain(status: StatusCode) -> HttpResponse {
    no_store(HttpResponse::build(status)).finish()
}

/// nginx's own cache lifetime header (it wins over `proxy_cache_valid`).
const X_ACCEL_EXPIRES: HeaderName = HeaderName::from_static("x-accel-expires");
const CACHE_CONTROL: HeaderName = actix_web::http::header::CACHE_CONTROL;
const WWW_AUTHENTICATE: HeaderName = actix_web::http::header::WWW_AUTHENTICATE;
const NO_STORE: &str = "no-store";

/// Marks an answer that no cache may keep: every deny, refusal and error.
fn no_store(mut builder: actix_web::HttpResponseBuilder) -> actix_web::HttpResponseBuilder {
    builder.insert_header((CACHE_CONTROL, NO_STORE));
    builder
}

pub fn is_browser_navigation(original: Original<'_>) -> bool {
    let method_ok = original
        .target
        .and_then(|t| t.method.as_deref())
        .is_some_and(|m| m == "GET" || m == "HEAD");
    let wants_html = original
        .accept
        .is_some_and(|a| a.to_ascii_lowercase().contains("text/html"));
    method_ok && wants_html
}

/// The login URL with the original URL in the configured parameter, if it fits.
pub fn login_location(
    login_url: &str,
    param: &str,
    original_url: Option<&str>,
    budget: usize,
) -> String {
    let Some(original) = original_url else {
        return login_url.to_string();
    };
    let separator = if login_url.contains('?') { '&' } else { '?' };
    let location = format!(
        "{login_url}{separator}{param}={}",
        utf8_percent_encode(original, URL_COMPONENT)
    );
    // Keep well inside the header budget (nginx: 4 KiB for the whole block); a login
    // page without the return address is better than a 500.
    if location.len() > budget / 2 {
        login_url.to_string()
    } else {
        location
    }
}

/// `401` + `WWW-Authenticate`, or the login redirect for a browser navigation.
pub fn unauthenticated(
    credential_presented: bool,
    original: Original<'_>,
    settings: &AnswerSettings,
    redirects: Redirects,
) -> HttpResponse {
    let challenge = settings.challenges.for_credential(credential_presented);
    let location = settings.login_url.as_deref().map(|login| {
        let original_url = original.target.and_then(Target::original_url);
        login_location(
            login,
            &settings.login_redirect_param,
            original_url.as_deref(),
            settings.max_header_bytes,
        )
    });
    // Only browser navigations are sent to the login page; an API client gets a plain 401
    // it can act on, in every dialect.
    let location = location.filter(|_| is_browser_navigation(original));
    match (redirects, location) {
        // nginx cannot pass a 3xx from an auth subrequest: 401 + Location, and the
        // shipped config's `error_page 401 = @login` turns it into the redirect.
        (Redirects::UnauthorizedWithLocation, Some(location)) => {
            no_store(HttpResponse::Unauthorized())
                .insert_header((WWW_AUTHENTICATE, challenge))
                .insert_header(("location", location))
                .finish()
        }
        (_, Some(location)) => no_store(HttpResponse::Found())
            .insert_header(("location", location))
            .finish(),
        _ => no_store(HttpResponse::Unauthorized())
            .insert_header((WWW_AUTHENTICATE, challenge))
            .finish(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::Dialect;
    use crate::dialect::auth_request::AuthRequest;
    use crate::dialect::ext_authz::ExtAuthz;
    use crate::dialect::forward_auth::ForwardAuth;
    use std::num::NonZeroU64;

    #[test]
    fn header_names_built_once_match_the_table() {
        for (header, name) in IDENTITY_HEADERS.iter().zip(&IDENTITY_HEADER_NAMES) {
            assert_eq!(name.as_str(), header.name);
        }
    }
    use std::sync::Arc;

    fn encode(
        outcome: &Outcome,
        dialect: &dyn Dialect,
        original: Original<'_>,
        settings: &AnswerSettings,
    ) -> (HttpResponse, Option<EncodeProblem>) {
        let answer = dialect.answer(outcome, original, settings);
        (answer.response, answer.problem)
    }

    /// The answer without login settings, knowing nothing of the original request.
    fn encode_unknown(
        outcome: &Outcome,
        dialect: &dyn Dialect,
    ) -> (HttpResponse, Option<EncodeProblem>) {
        let original = Original {
            target: None,
            accept: None,
        };
        encode(outcome, dialect, original, &settings(None))
    }

    fn settings(login: Option<&str>) -> AnswerSettings {
        AnswerSettings {
            challenges: Challenges::for_realm("verdict").expect("realm"),
            custom: Vec::new(),
            login_url: login.map(str::to_owned),
            login_redirect_param: "rd".into(),
            headers: HeaderSets {
                authgear: true,
                session_name: true,
                remote_user: false,
                auth_request: false,
            },
            mqtt_json: false,
            lists: ListRules::for_sets(HeaderSets {
                authgear: true,
                session_name: true,
                remote_user: false,
                auth_request: false,
            }),
            max_header_bytes: 4096,
        }
    }

    fn target() -> Target {
        Target {
            method: Some("GET".into()),
            scheme: "https".into(),
            host: Some("app.example.com".into()),
            path: Some("/page".into()),
            query: Some("x=1".into()),
            raw_uri: Some("/page?x=1".into()),
            readings: Vec::new(),
        }
    }

    fn header<'a>(r: &'a HttpResponse, name: &str) -> Option<&'a str> {
        r.headers().get(name).map(|v| v.to_str().unwrap())
    }

    #[test]
    fn allow_carries_every_identity_header() {
        let id = Identity {
            user_id: "u-123".into(),
            session_name: Some("alice".into()),
            roles: vec!["a".into(), "b".into()].into(),
            amr: vec!["pwd".into(), "mfa".into()].into(),
            authenticated_at: NonZeroU64::new(1136171045),
            verified: true,
            ..Identity::default()
        };
        let outcome = Outcome::allow(Some(Arc::new(id)), SessionState::Valid);
        let (r, problem) = encode_unknown(&outcome, &AuthRequest);
        assert!(problem.is_none());
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "x-authgear-session-valid"), Some("true"));
        assert_eq!(header(&r, "x-authgear-user-id"), Some("u-123"));
        assert_eq!(header(&r, "x-authgear-user-anonymous"), Some("false"));
        assert_eq!(header(&r, "x-authgear-user-verified"), Some("true"));
        assert_eq!(
            header(&r, "x-authgear-user-can-reauthenticate"),
            Some("false")
        );
        assert_eq!(header(&r, "x-authgear-user-roles"), Some("a,b"));
        assert_eq!(header(&r, "x-authgear-session-amr"), Some("pwd mfa"));
        assert_eq!(
            header(&r, "x-authgear-session-authenticated-at"),
            Some("1136171045")
        );
        assert_eq!(header(&r, "x-session-name"), Some("alice"));
    }

    #[test]
    fn anonymous_allow_sends_empty_headers() {
        let outcome = Outcome::allow(None, SessionState::Absent);
        let (r, _) = encode_unknown(&outcome, &ForwardAuth);
        assert_eq!(r.status(), 200);
        for name in [
            "x-authgear-session-valid",
            "x-authgear-user-id",
            "x-authgear-user-roles",
            "x-session-name",
        ] {
            assert_eq!(header(&r, name), Some(""), "{name}");
        }
        assert_eq!(header(&r, "cache-control"), Some("no-store"));
        assert_eq!(r.headers().len(), 10, "nine identity headers and no-store");
    }

    #[test]
    fn unsafe_or_oversized_identity_is_refused() {
        let evil = Identity {
            user_id: "u\r\nx-authgear-user-id: admin".into(),
            ..Identity::default()
        };
        let outcome = Outcome::allow(Some(Arc::new(evil)), SessionState::Valid);
        let (r, problem) = encode_unknown(&outcome, &AuthRequest);
        assert_eq!(r.status(), 503);
        assert_eq!(problem, Some(EncodeProblem::UnsafeValue));
        let big = Identity {
            user_id: "u".into(),
            roles: vec!["r".repeat(100).into(); 60].into(),
            ..Identity::default()
        };
        let outcome = Outcome::allow(Some(Arc::new(big)), SessionState::Valid);
        let (r, problem) = encode_unknown(&outcome, &AuthRequest);
        assert_eq!(r.status(), 503);
        assert_eq!(problem, Some(EncodeProblem::TooLarge));
        assert!(r.headers().get("x-authgear-user-id").is_none());
    }

    #[test]
    fn auth_request_login_is_401_with_absolute_location() {
        let t = target();
        let (r, _) = encode(
            &Outcome::Unauthenticated {
                credential_presented: false,
            },
            &AuthRequest,
            Original {
                target: Some(&t),
                accept: Some("text/html"),
            },
            &settings(Some("https://auth.example.com/login")),
        );
        assert_eq!(r.status(), 401);
        assert_eq!(
            header(&r, "location"),
            Some("https://auth.example.com/login?rd=https%3A%2F%2Fapp.example.com%2Fpage%3Fx%3D1")
        );
        assert_eq!(
            header(&r, "www-authenticate"),
            Some("Bearer realm=\"verdict\"")
        );
        assert!(r.headers().get("x-authgear-user-id").is_none());
    }

    #[test]
    fn forward_auth_redirects_browsers_only() {
        let t = target();
        let s = settings(Some("https://auth.example.com/login?app=1"));
        let (r, _) = encode(
            &Outcome::Unauthenticated {
                credential_presented: false,
            },
            &ForwardAuth,
            Original {
                target: Some(&t),
                accept: Some("text/html,application/xhtml+xml"),
            },
            &s,
        );
        assert_eq!(r.status(), 302);
        assert!(
            header(&r, "location")
                .unwrap()
                .starts_with("https://auth.example.com/login?app=1&rd=https%3A%2F%2F")
        );
        let (r, _) = encode(
            &Outcome::Unauthenticated {
                credential_presented: true,
            },
            &ForwardAuth,
            Original {
                target: Some(&t),
                accept: Some("application/json"),
            },
            &s,
        );
        assert_eq!(r.status(), 401);
        assert_eq!(
            header(&r, "www-authenticate"),
            Some("Bearer realm=\"verdict\", error=\"invalid_token\"")
        );
        let post = Target {
            method: Some("POST".into()),
            ..target()
        };
        let (r, _) = encode(
            &Outcome::Unauthenticated {
                credential_presented: false,
            },
            &ExtAuthz,
            Original {
                target: Some(&post),
                accept: Some("text/html"),
            },
            &s,
        );
        assert_eq!(r.status(), 401);
    }

    #[test]
    fn an_allow_may_be_cached_no_longer_than_verdict_keeps_it() {
        let identity = Some(Arc::new(Identity {
            user_id: "u".into(),
            ..Identity::default()
        }));
        let outcome = |cache_for| Outcome::Allow {
            identity: identity.clone(),
            session: SessionState::Valid,
            cache_for,
        };
        let original = Original {
            target: None,
            accept: None,
        };
        let (r, _) = encode(
            &outcome(Duration::from_millis(42_900)),
            &AuthRequest,
            original,
            &settings(None),
        );
        assert_eq!(
            header(&r, "x-accel-expires"),
            Some("41"),
            "rounded down, less the second nginx may add"
        );
        assert!(r.headers().get("cache-control").is_none());
        let (r, _) = encode(
            &outcome(Duration::from_millis(1900)),
            &AuthRequest,
            original,
            &settings(None),
        );
        assert_eq!(header(&r, "cache-control"), Some("no-store"));
        assert!(r.headers().get("x-accel-expires").is_none());
    }

    #[test]
    fn roles_that_would_read_as_several_are_never_sent() {
        let outcome = Outcome::allow(
            Some(Arc::new(Identity {
                user_id: "u".into(),
                roles: vec!["reader,admin".into()].into(),
                ..Identity::default()
            })),
            SessionState::Valid,
        );
        let (r, problem) = encode_unknown(&outcome, &ForwardAuth);
        assert_eq!(r.status(), 503);
        assert_eq!(problem, Some(EncodeProblem::AmbiguousList));
        assert!(r.headers().get("x-authgear-user-roles").is_none());
    }

    #[test]
    fn long_original_urls_are_dropped_from_the_redirect() {
        let long = format!("https://app.example.com/{}", "a".repeat(8000));
        let location = login_location("https://auth/login", "rd", Some(&long), 4096);
        assert_eq!(location, "https://auth/login");
    }

    #[test]
    fn denials_carry_no_identity() {
        for outcome in [
            Outcome::Forbidden,
            Outcome::Refused(crate::decision::Refusal::Unreadable(
                crate::request::TargetError::Conflicting.into(),
            )),
            Outcome::Unavailable,
        ] {
            let (r, _) = encode_unknown(&outcome, &ForwardAuth);
            assert!(
                r.headers()
                    .iter()
                    .all(|(n, _)| !n.as_str().starts_with("x-authgear")),
                "{outcome:?}"
            );
            assert!([403, 503].contains(&r.status().as_u16()));
            assert_eq!(header(&r, "cache-control"), Some("no-store"), "{outcome:?}");
        }
    }
}
