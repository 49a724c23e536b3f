//! The ext-authz dialect (Envoy `ext_authz`, HTTP service), both directions.
//!
//! Takes: our request line (`<prefix><original path>?<query>`), its method (Envoy sends
//! the original one), `Host` (Envoy sends the original `:authority`), an optional
//! `X-Forwarded-Proto` and the `X-Forwarded-For` chain. Returns: the original target and
//! client IP; answers as the shared proxy map, with redirects as a `302`. Must never: read `X-Original-*` or `X-Forwarded-Uri`/`-Method`, which Envoy
//! would only pass along from the client.

use std::net::IpAddr;

use super::answer::{self, Answer, AnswerSettings, Original, Redirects};
use super::{
    Body, Dialect, Facts, HeaderView, Incoming, Message, TrustedPeer, build_target,
    client_ip_from_xff,
};
use crate::decision::Outcome;
use crate::request::{Anonymous, Audience, Caller, ReadError, Target, TargetError};

/// Envoy `ext_authz` (HTTP service).
#[derive(Debug)]
pub struct ExtAuthz;

impl Dialect for ExtAuthz {
    fn name(&self) -> &'static str {
        "ext-authz"
    }
    fn reads(&self) -> &'static [&'static str] {
        &["host", "x-forwarded-proto", "x-forwarded-for"]
    }
    fn path(&self) -> &'static str {
        "/_resolver/ext-authz"
    }
    fn takes_path_tail(&self) -> bool {
        true
    }
    fn read(&self, incoming: &Incoming<'_>) -> Result<Message, ReadError> {
        let (target, client_ip) = read(
            &incoming.headers,
            incoming.method,
            incoming.path,
            incoming.query,
            incoming.prefix,
            incoming.peer,
        )?;
        Ok(Message::Question(Facts::of(target, client_ip)))
    }
    fn body(&self) -> Body {
        // Envoy's `with_request_body` sends it
        Body::ClientMaySend
    }
    fn audience(&self) -> Audience {
        Audience::Web
    }
    fn anonymous(&self, _caller: &Caller) -> Anonymous {
        // x-authgear-session-valid tells the application whether anyone is there
        Anonymous::Expressible
    }
    fn answer(
        &self,
        outcome: &Outcome,
        original: Original<'_>,
        settings: &AnswerSettings,
    ) -> Answer {
        answer::proxy(outcome, original, settings, Redirects::Found)
    }
}

/// Reads the original request the ext-authz way.
fn read(
    view: &HeaderView<'_>,
    method: &str,
    path: &str,
    query: Option<&str>,
    prefix: &str,
    peer: TrustedPeer<'_>,
) -> Result<(Target, IpAddr), TargetError> {
    let original_path = path
        .strip_prefix(prefix)
        .ok_or(TargetError::NotOriginForm)?;
    let original_path = if original_path.is_empty() {
        "/"
    } else {
        original_path
    };
    if !original_path.starts_with('/') {
        return Err(TargetError::NotOriginForm);
    }
    let uri = match query {
        Some(q) => format!("{original_path}?{q}"),
        None => original_path.to_string(),
    };
    let target = build_target(
        Some(method.as_bytes()),
        view.single("x-forwarded-proto")?,
        view.single("host")?,
        Some(uri.as_bytes()),
    )?;
    let client_ip = client_ip_from_xff(view, peer)?;
    Ok((target, client_ip))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Header;

    fn read_path(path: &str, query: Option<&str>) -> Result<Target, TargetError> {
        let headers = vec![Header::owned("host", b"app.example.com".to_vec())];
        read(
            &HeaderView { headers: &headers },
            "POST",
            path,
            query,
            "/_resolver/ext-authz",
            TrustedPeer::assumed("127.0.0.1".parse().unwrap(), &[]),
        )
        .map(|(t, _)| t)
    }

    #[test]
    fn original_path_is_what_follows_the_prefix() {
        let t = read_path("/_resolver/ext-authz/api/items", Some("x=1")).unwrap();
        assert_eq!(t.path.as_deref(), Some("/api/items"));
        assert_eq!(t.query.as_deref(), Some("x=1"));
        assert_eq!(t.method.as_deref(), Some("POST"));
        assert_eq!(t.host.as_deref(), Some("app.example.com"));
    }

    #[test]
    fn bare_prefix_and_trailing_slash_mean_root() {
        assert_eq!(
            read_path("/_resolver/ext-authz", None)
                .unwrap()
                .path
                .as_deref(),
            Some("/")
        );
        assert_eq!(
            read_path("/_resolver/ext-authz/", None)
                .unwrap()
                .path
                .as_deref(),
            Some("/")
        );
    }

    #[test]
    fn a_path_glued_to_the_prefix_is_refused() {
        assert_eq!(
            read_path("/_resolver/ext-authzadmin", None).unwrap_err(),
            TargetError::NotOriginForm
        );
    }
}
