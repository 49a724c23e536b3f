//! Reading a backend's answer by protocol: `status`, `json` (EMQX) and `authgear`.
//!
//! Takes: an answer read within bounds (status, headers, body). Returns: a [`Decision`]
//! with per-authorizer TTLs and `Cache-Control` applied, or a message saying why the
//! answer is unusable (an error: the route's `on_error` decides). Must never: treat an
//! unknown result or status as an allow, or take a relative or unclean `X-Location`.

use std::sync::Arc;
use std::time::Duration;

use super::transport::Answer;
use super::{HttpAuthorizer, Protocol};
use crate::decision::{Decision, Denial, Verdict};
use crate::fields::{self, FieldsError, field};
use crate::identity::{HeaderFamily, IDENTITY_HEADERS, Identity, IdentityField};

impl HttpAuthorizer {
    pub(super) fn interpret(&self, answer: &Answer) -> Result<Decision, String> {
        let header = |name: &str| answer.single(name);
        let session_name = header("x-session-name")?.unwrap_or_default();
        let mut decision = match self.protocol {
            Protocol::Status => match answer.status {
                200 => Decision::allow(self.identity(answer, session_name)?, None),
                401 => Decision::deny(redirect_or(
                    header("x-location")?,
                    Denial::InvalidCredential("backend refused the credential"),
                )),
                400..=499 => Decision::deny(redirect_or(
                    header("x-location")?,
                    Denial::Forbidden("backend refused access"),
                )),
                other => return Err(format!("status {other} is neither 200 nor 4xx")),
            },
            Protocol::Json => match answer.status {
                204 => Decision::allow(self.identity(answer, session_name)?, None),
                200 => match read_result(header("content-type")?, &answer.body)?.as_str() {
                    "allow" => Decision::allow(self.identity(answer, session_name)?, None),
                    "deny" => Decision::deny(redirect_or(
                        header("x-location")?,
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
                let field_header = |field: IdentityField| {
                    IDENTITY_HEADERS
                        .iter()
                        .find(|h| h.family == HeaderFamily::Authgear && h.field == field)
                };
                let session_valid = match field_header(IdentityField::SessionValid) {
                    Some(h) => header(h.name)?,
                    None => None,
                };
                match session_valid {
                    Some("true") => {
                        let user_id = match field_header(IdentityField::UserId) {
                            Some(h) => header(h.name)?.unwrap_or_default(),
                            None => "",
                        };
                        if user_id.is_empty() {
                            return Err("valid session without x-authgear-user-id".into());
                        }
                        let mut identity = self.identity(answer, session_name)?;
                        // Read back exactly what our own encoder writes: one table.
                        for h in IDENTITY_HEADERS
                            .iter()
                            .filter(|h| h.family == HeaderFamily::Authgear)
                        {
                            h.read_into(&mut identity, header(h.name)?.unwrap_or_default());
                        }
                        if !session_name.is_empty() {
                            identity.set_session_name(session_name);
                        }
                        Decision::allow(identity, None)
                    }
                    Some("false") => Decision::deny(Denial::InvalidCredential(
                        "backend says the session is invalid",
                    )),
                    Some(other) if !other.is_empty() => {
                        return Err(format!("x-authgear-session-valid is {other:?}"));
                    }
                    // Absent, or sent empty (as verdict itself sends it when no credential
                    // was presented): no session, as Authgear's own parser reads it.
                    _ => Decision::abstain(),
                }
            }
        };
        decision.ttl = match decision.verdict {
            Verdict::Allow(_) => self.allow_ttl,
            _ => self.deny_ttl,
        };
        if self.honor_cache_control
            && let Some(control) = answer.list("cache-control")
        {
            decision.valid_for = cache_control_limit(&control);
        }
        Ok(decision)
    }

    /// The identity of a status or JSON answer, whose user is the session name it gives.
    fn identity(&self, answer: &Answer, session_name: &str) -> Result<Identity, String> {
        let mut extra_headers = Vec::new();
        for name in &self.copy_headers {
            if let Some(value) = answer.single(name)? {
                extra_headers.push((Box::from(name.as_str()), Box::from(value)));
            }
        }
        Ok(Identity {
            user_id: session_name.into(),
            extra_headers: extra_headers.into(),
            ..Identity::default()
        })
    }
}

impl Answer {
    /// The value of a header the backend states once (an identity field, a session name,
    /// a location, a content type). Trust decision: copies with different values are
    /// two answers in one, and which one counts would be the reader's guess, so the
    /// answer is refused (an error: the route's `on_error` decides), as a result field
    /// sent twice is. Identical copies are one. A value that is not visible ASCII reads
    /// as absent, as before.
    fn single(&self, name: &str) -> Result<Option<&str>, String> {
        let mut copies = self
            .headers
            .iter()
            .filter(|(n, _)| n.as_str().eq_ignore_ascii_case(name))
            .map(|(_, v)| v);
        let Some(first) = copies.next() else {
            return Ok(None);
        };
        if copies.any(|other| other != first) {
            return Err(format!("{name} sent more than once, with different values"));
        }
        Ok(first.to_str().ok())
    }

    /// Every readable copy of a list header (`Cache-Control`), joined as the one list
    /// HTTP says they are: no directive in a later copy is ignored.
    fn list(&self, name: &str) -> Option<String> {
        let copies: Vec<&str> = self
            .headers
            .iter()
            .filter(|(n, _)| n.as_str().eq_ignore_ascii_case(name))
            .filter_map(|(_, v)| v.to_str().ok())
            .collect();
        (!copies.is_empty()).then(|| copies.join(", "))
    }
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
    let fields = match kind.as_str() {
        "application/json" => fields::json(body),
        "application/x-www-form-urlencoded" => std::str::from_utf8(body)
            .map_err(|_| FieldsError::BadEncoding)
            .and_then(fields::form),
        other => return Err(format!("content type {other:?} is neither JSON nor a form")),
    }
    // a `result` sent twice could be read as either: an error, never a guess
    .map_err(|e| e.to_string())?;
    field(&fields, "result")
        .filter(|result| !result.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| "answer has no \"result\"".to_string())
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
            // the shortest lifetime stated wins
            let stated = Duration::from_secs(seconds);
            limit = Some(limit.map_or(stated, |l: Duration| l.min(stated)));
        }
    }
    limit
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
        assert_eq!(
            cache_control_limit("max-age=600, max-age=5"),
            Some(Duration::from_secs(5))
        );
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
