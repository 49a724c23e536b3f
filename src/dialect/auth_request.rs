//! The auth-request dialect (nginx `auth_request`, HAProxy `auth-request`), both
//! directions.
//!
//! Takes: the headers the proxy config sets: `X-Original-URI` (raw `$request_uri`) or
//! `X-Original-URL` (absolute), `X-Original-Method`, `X-Forwarded-Proto`,
//! `X-Forwarded-Host`, and `X-Real-IP` for the client. Returns: the original target and
//! client IP; answers as the shared proxy map with redirects as `401` + `Location`.
//! Must never: read `X-Forwarded-Uri`/`-Method` (another family, which nginx passes
//! through from the client untouched), use `Host`, which is the resolver's own address
//! here, or answer a 3xx (nginx turns it into a 500).

use std::net::IpAddr;

use super::answer::{self, Answer, AnswerSettings, Original, Redirects};
use super::{Body, Dialect, Facts, HeaderView, Incoming, Message, build_target, parse_hop};
use crate::decision::Outcome;
use crate::request::{
    Anonymous, Audience, Caller, ReadError, Target, TargetError, canonical_host, canonical_scheme,
};

/// nginx `auth_request`, HAProxy.
#[derive(Debug)]
pub struct AuthRequest;

impl Dialect for AuthRequest {
    fn name(&self) -> &'static str {
        "auth-request"
    }
    fn reads(&self) -> &'static [&'static str] {
        &[
            "x-original-uri",
            "x-original-method",
            "x-original-url",
            "x-forwarded-proto",
            "x-forwarded-host",
            "x-real-ip",
        ]
    }
    fn path(&self) -> &'static str {
        "/_resolver/auth-request"
    }
    fn read(&self, incoming: &Incoming<'_>) -> Result<Message, ReadError> {
        let (target, client_ip) = read(&incoming.headers, incoming.peer.ip())?;
        Ok(Message::Question(Facts::of(target, client_ip)))
    }
    fn body(&self) -> Body {
        // nginx and HAProxy subrequests never carry the body (nginx may even announce one it does not send)
        Body::ClientNeverSent
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
        answer::proxy(
            outcome,
            original,
            settings,
            Redirects::UnauthorizedWithLocation,
        )
    }
}

/// Reads the original request the auth-request way.
fn read(view: &HeaderView<'_>, peer: IpAddr) -> Result<(Target, IpAddr), TargetError> {
    let method = view.single("x-original-method")?;
    let original_uri = view.single("x-original-uri")?;
    let original_url = view.single("x-original-url")?;
    let mut scheme = view.single("x-forwarded-proto")?;
    let mut host = view.single("x-forwarded-host")?;
    let mut uri = original_uri;
    if let Some(url) = original_url {
        let (url_scheme, url_host, url_uri) = split_absolute(url)?;
        // Trust decision: two descriptions of one request must agree on every fact they
        // both carry (path and query, scheme, host); if they do not, somebody other than
        // the proxy wrote one of them. The shipped nginx config clears X-Original-URL, so
        // a client's copy can only ever agree or be refused.
        let same_host = || -> Result<bool, TargetError> {
            let Some(forwarded) = host else {
                return Ok(true);
            };
            let scheme_text =
                std::str::from_utf8(url_scheme).map_err(|_| TargetError::BadScheme)?;
            let scheme = canonical_scheme(scheme_text)?;
            Ok(canonical_host(forwarded, &scheme)? == canonical_host(url_host, &scheme)?)
        };
        if original_uri.is_some_and(|u| u != url_uri)
            || scheme.is_some_and(|s| !s.eq_ignore_ascii_case(url_scheme))
            || !same_host()?
        {
            return Err(TargetError::Conflicting);
        }
        scheme = Some(url_scheme);
        host = Some(url_host);
        uri = Some(url_uri);
    }
    let target = build_target(method, scheme, host, uri)?;
    // nginx sets X-Real-IP to $remote_addr; it is a single address, not a chain.
    let client_ip = match view.single("x-real-ip")? {
        Some(raw) => parse_hop(std::str::from_utf8(raw).map_err(|_| TargetError::BadClientIp)?)?,
        None => peer,
    };
    Ok((target, client_ip))
}

/// The parts of an absolute URL: scheme, host, path-and-query.
type UrlParts<'a> = (&'a [u8], &'a [u8], &'a [u8]);

/// `scheme://host[:port]/path?query` → (scheme, host, path-and-query).
fn split_absolute(url: &[u8]) -> Result<UrlParts<'_>, TargetError> {
    let sep = url
        .windows(3)
        .position(|w| w == b"://")
        .ok_or(TargetError::NotOriginForm)?;
    let scheme = &url[..sep];
    let rest = &url[sep + 3..];
    let path_start = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(rest.len());
    let host = &rest[..path_start];
    if host.contains(&b'@') {
        // userinfo in the original URL is never legitimate here and hides the real host
        return Err(TargetError::BadHost);
    }
    let uri = &rest[path_start..];
    let uri: &[u8] = if uri.is_empty() { b"/" } else { uri };
    if uri.first() == Some(&b'?') {
        return Err(TargetError::NotOriginForm);
    }
    Ok((scheme, host, uri))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Header;

    fn read_with(pairs: &[(&str, &str)]) -> Result<(Target, IpAddr), TargetError> {
        let headers: Vec<Header<'_>> = pairs
            .iter()
            .map(|(n, v)| Header::owned(n.to_ascii_lowercase(), v.as_bytes().to_vec()))
            .collect();
        read(
            &HeaderView { headers: &headers },
            "127.0.0.1".parse().unwrap(),
        )
    }

    #[test]
    fn reads_the_nginx_headers() {
        let (t, ip) = read_with(&[
            ("X-Original-URI", "/app/page?x=1&y=%2F"),
            ("X-Original-Method", "GET"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "App.Example.com:443"),
            ("X-Real-IP", "203.0.113.7"),
        ])
        .unwrap();
        assert_eq!(t.path.as_deref(), Some("/app/page"));
        assert_eq!(t.query.as_deref(), Some("x=1&y=%2F"));
        assert_eq!(t.host.as_deref(), Some("app.example.com"));
        assert_eq!(t.method.as_deref(), Some("GET"));
        assert_eq!(ip, "203.0.113.7".parse::<IpAddr>().unwrap());
        assert_eq!(
            t.original_url().as_deref(),
            Some("https://app.example.com/app/page?x=1&y=%2F")
        );
    }

    #[test]
    fn forwarded_family_is_ignored() {
        let (t, ip) = read_with(&[
            ("X-Forwarded-Uri", "/public"),
            ("X-Forwarded-Method", "GET"),
            ("X-Forwarded-For", "6.6.6.6"),
        ])
        .unwrap();
        assert_eq!(t.path, None);
        assert_eq!(t.method, None);
        assert_eq!(ip, "127.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn original_url_is_understood_and_must_agree() {
        let (t, _) =
            read_with(&[("X-Original-URL", "https://App.example.com/a/../b?q=1")]).unwrap();
        assert_eq!(t.host.as_deref(), Some("app.example.com"));
        assert_eq!(t.path.as_deref(), Some("/b"));
        assert_eq!(t.scheme, "https");
        let (t, _) = read_with(&[("X-Original-URL", "http://h.example")]).unwrap();
        assert_eq!(t.path.as_deref(), Some("/"));
        assert_eq!(
            read_with(&[("X-Original-URL", "https://h/a"), ("X-Original-URI", "/b")]).unwrap_err(),
            TargetError::Conflicting
        );
        assert_eq!(
            read_with(&[("X-Original-URL", "https://user@evil/a")]).unwrap_err(),
            TargetError::BadHost
        );
        // the host too: a client's X-Original-URL never chooses another virtual host
        assert_eq!(
            read_with(&[
                ("X-Original-URL", "https://admin.example.com/a"),
                ("X-Forwarded-Host", "app.example.com"),
            ])
            .unwrap_err(),
            TargetError::Conflicting
        );
        let (t, _) = read_with(&[
            ("X-Original-URL", "https://App.example.com:443/a"),
            ("X-Forwarded-Host", "app.example.com"),
        ])
        .unwrap();
        assert_eq!(t.host.as_deref(), Some("app.example.com"));
        assert_eq!(
            read_with(&[("X-Original-URL", "/no-scheme")]).unwrap_err(),
            TargetError::NotOriginForm
        );
    }

    #[test]
    fn bad_real_ip_is_an_error() {
        assert_eq!(
            read_with(&[("X-Real-IP", "nope")]).unwrap_err(),
            TargetError::BadClientIp
        );
    }
}
