//! The forward-auth dialect (Traefik `forwardAuth`, Caddy `forward_auth`, APISIX
//! `forward-auth`), both directions.
//!
//! Takes: `X-Forwarded-Method`, `-Proto`, `-Host`, `-Uri` (path and query) and the
//! `X-Forwarded-For` chain. Returns: the original target and client IP; answers as the
//! shared proxy map, with redirects as a `302` the proxy passes on. Must never: read
//! the query of our own request line (Caddy copies the client's query there), `X-Original-*`
//! (which Caddy passes through from the client untouched), or `Host`.

use std::net::IpAddr;

use super::answer::{self, Answer, AnswerSettings, Original, Redirects};
use super::{
    Body, Dialect, Facts, HeaderView, Incoming, Message, TrustedPeer, build_target,
    client_ip_from_xff,
};
use crate::decision::Outcome;
use crate::request::{Anonymous, Audience, Caller, ReadError, Target, TargetError};

/// Traefik, Caddy, APISIX.
#[derive(Debug)]
pub struct ForwardAuth;

impl Dialect for ForwardAuth {
    fn name(&self) -> &'static str {
        "forward-auth"
    }
    fn reads(&self) -> &'static [&'static str] {
        &[
            "x-forwarded-method",
            "x-forwarded-proto",
            "x-forwarded-host",
            "x-forwarded-uri",
            "x-forwarded-for",
        ]
    }
    fn path(&self) -> &'static str {
        "/_resolver/forward-auth"
    }
    fn read(&self, incoming: &Incoming<'_>) -> Result<Message, ReadError> {
        let (target, client_ip) = read(&incoming.headers, incoming.peer)?;
        Ok(Message::Question(Facts::of(target, client_ip)))
    }
    fn body(&self) -> Body {
        // Traefik's `forwardBody` and APISIX in POST mode send it
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

/// Reads the original request the forward-auth way.
fn read(view: &HeaderView<'_>, peer: TrustedPeer<'_>) -> Result<(Target, IpAddr), TargetError> {
    let target = build_target(
        view.single("x-forwarded-method")?,
        view.single("x-forwarded-proto")?,
        view.single("x-forwarded-host")?,
        view.single("x-forwarded-uri")?,
    )?;
    let client_ip = client_ip_from_xff(view, peer)?;
    Ok((target, client_ip))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Header;

    #[test]
    fn reads_the_traefik_headers() {
        let headers: Vec<Header<'_>> = [
            ("x-forwarded-method", "POST"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "app.example.com:8443"),
            ("x-forwarded-port", "8443"),
            ("x-forwarded-uri", "/api/items?id=7"),
            ("x-forwarded-for", "203.0.113.7"),
            ("x-original-uri", "/spoofed"),
        ]
        .iter()
        .map(|(n, v)| Header::owned(n.to_string(), v.as_bytes().to_vec()))
        .collect();
        let trusted: Vec<ipnet::IpNet> = vec!["127.0.0.0/8".parse().unwrap()];
        let (t, ip) = read(
            &HeaderView { headers: &headers },
            TrustedPeer::assumed("127.0.0.1".parse().unwrap(), &trusted),
        )
        .unwrap();
        assert_eq!(t.method.as_deref(), Some("POST"));
        assert_eq!(t.host.as_deref(), Some("app.example.com:8443"));
        assert_eq!(t.path.as_deref(), Some("/api/items"));
        assert_eq!(t.query.as_deref(), Some("id=7"));
        assert_eq!(ip, "203.0.113.7".parse::<IpAddr>().unwrap());
    }
}
