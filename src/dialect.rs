//! Dialects: how each caller describes the original request, and how it reads our answer.
//! One file per dialect owns both directions; [`DIALECTS`] registers them.
//!
//! Takes: an actix request on a decision endpoint and the dialect its path chose.
//! Returns: a [`ForwardedRequest`] built only from the header family that dialect's caller
//! sets ([`read`]), or the [`Refusal`] that stops it; later the dialect's
//! [`Dialect::answer`] puts the outcome into its caller's terms.
//! Must never: pick a dialect from request headers, read a forwarded header from a peer
//! outside `server.trusted_proxies`, fall back from one header family to another, or read
//! a body unless the dialect says its caller sends its facts in one.

pub mod auth_request;
pub mod cesbo;
pub mod emqx;
pub mod answer;
pub mod ext_authz;
pub mod ext_authz_grpc;
pub mod forward_auth;
pub mod icecast;
pub mod mqtt;

use std::borrow::Cow;
use std::net::IpAddr;

use actix_web::HttpRequest;
use ipnet::IpNet;
use percent_encoding::utf8_percent_encode;

use self::answer::{Answer, AnswerSettings, Original};
use crate::decision::{Outcome, Refusal};
use crate::fields::{self, FieldsError};
use crate::identity::is_identity_alias;
use crate::request::readings::FormKind;
use crate::request::{
    Anonymous, Audience, Caller, FormBody, ForwardedRequest, Header, ReadError, Target,
    TargetError, URL_COMPONENT, canonical_host, canonical_method, canonical_scheme, readings,
    split_uri,
};

/// A caller family: where it sends its checks, how it describes the original request,
/// and how it reads the answer. Adding one is a new file and a line in [`DIALECTS`].
pub trait Dialect: Sync + std::fmt::Debug {
    /// The name in configuration, logs and metrics (`auth-request`).
    fn name(&self) -> &'static str;
    /// The endpoint path it is served on.
    fn path(&self) -> &'static str;
    /// The headers it reads the original request's facts from (lower-case). Each must be
    /// set by the shipped proxy config, never passed through from the client.
    fn reads(&self) -> &'static [&'static str];
    /// Whether the caller appends the original path to the endpoint path (Envoy).
    fn takes_path_tail(&self) -> bool {
        false
    }
    /// Reads, once, everything the caller said about the original request: the target,
    /// the client's address, the caller's own facts and any credentials it sends as
    /// facts; or that it only told verdict something ([`Message::Notification`]). Runs
    /// only for a [`TrustedPeer`], on headers with no identity alias among them.
    fn read(&self, incoming: &Incoming<'_>) -> Result<Message, ReadError>;
    /// Whose clients this caller asks about: a credential meant for one audience does not
    /// open another's routes by default (see `config`'s implicit chains).
    fn audience(&self) -> Audience;
    /// What an allow without a verified identity means to this caller, for the request
    /// the dialect read (a broker's login and its topic check differ). No default: a new
    /// dialect must say.
    fn anonymous(&self, caller: &Caller) -> Anonymous;
    /// What the body of a request from this caller is, and whether verdict reads it.
    fn body(&self) -> Body {
        Body::None
    }
    /// Puts an outcome into the caller's terms.
    fn answer(
        &self,
        outcome: &Outcome,
        original: Original<'_>,
        settings: &AnswerSettings,
    ) -> Answer;
}

/// What the body of a caller's request is to verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// Nothing verdict reads; the headers are the caller's own, not a client's (Cesbo).
    None,
    /// The caller's own facts (brokers, Icecast): always read, at most 64 KiB, with a
    /// deadline, from trusted peers only; an unreadable one is a refusal.
    Facts,
    /// A proxy forwarding the client's headers but never its body (nginx, HAProxy): a
    /// form body the client sent is unseen, and may name any method (`_method`).
    ClientNeverSent,
    /// A proxy that may forward the client's body (Envoy `with_request_body`, Traefik
    /// `forwardBody`, APISIX in POST mode): a form body is read, bounded like the facts,
    /// when the request declares one; one verdict cannot read whole is unseen.
    ClientMaySend,
}

/// What a caller's request says, read once by [`Dialect::read`].
// made once per request and taken apart at once: boxing the facts would cost an
// allocation on every decision to save stack space for a notification
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Message {
    /// A question about a client: route it and decide.
    Question(Facts),
    /// The caller only tells verdict something (Icecast's `listener_remove`): nothing is
    /// asked, so nothing is routed or decided; the dialect acknowledges it.
    Notification,
}

/// The facts a caller gave about the original request, before the read stage adds the
/// readings and the dialect's declarations (its name, audience and anonymous meaning).
#[derive(Debug)]
pub struct Facts {
    /// The original target (its `readings` are filled by [`read`]).
    pub target: Target,
    /// The client's address.
    pub client_ip: IpAddr,
    /// The caller's own facts about its client (channel, session, MQTT access); a proxy
    /// sends none.
    pub caller: Caller,
    /// Credentials the caller sends as facts rather than headers (Icecast's `user` and
    /// `pass`), offered to token sources as headers of these names.
    pub credentials: Vec<(String, String)>,
}

impl Facts {
    /// A proxy's facts: a target and a client, nothing of the caller's own.
    pub fn of(target: Target, client_ip: IpAddr) -> Facts {
        Facts {
            target,
            client_ip,
            caller: Caller::default(),
            credentials: Vec::new(),
        }
    }
}

/// Whether a request from a proxy carries the client's whole form body for verdict to
/// read `_method` from: a declared `application/x-www-form-urlencoded` body with a
/// length, not compressed, not marked partial by Envoy (`x-envoy-auth-partial-body`).
pub fn carries_form_body(request: &HttpRequest) -> bool {
    let headers = request.headers();
    form_body_declared(&|name| headers.get_all(name).map(|v| v.as_bytes()).collect())
}

/// [`carries_form_body`] over headers read some other way (a gRPC `CheckRequest`'s).
pub fn form_body_declared<'h>(values: &dyn Fn(&str) -> Vec<&'h [u8]>) -> bool {
    // Trust decision: a compressed body is not what the application reads once its
    // middleware inflates it; verdict does not inflate, so such a body counts as unseen.
    let encoded = values("content-encoding")
        .iter()
        .any(|v| !v.trim_ascii().eq_ignore_ascii_case(b"identity"));
    if encoded {
        return false;
    }
    let urlencoded = values("content-type").iter().any(|v| {
        v.split(|&b| b == b';')
            .next()
            .unwrap_or_default()
            .trim_ascii()
            .eq_ignore_ascii_case(b"application/x-www-form-urlencoded")
    });
    let sized = values("content-length")
        .first()
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|n| n > 0)
        || !values("transfer-encoding").is_empty();
    let partial = values("x-envoy-auth-partial-body")
        .first()
        .is_some_and(|v| v.eq_ignore_ascii_case(b"true"));
    urlencoded && sized && !partial
}

/// Every dialect, in the order their endpoints are registered.
pub static DIALECTS: [&dyn Dialect; 9] = [
    &auth_request::AuthRequest,
    &forward_auth::ForwardAuth,
    &ext_authz::ExtAuthz,
    &cesbo::Cesbo,
    &emqx::Emqx,
    &emqx::EmqxAuthn,
    &emqx::Emqx4,
    &mqtt::Mqtt,
    &icecast::Icecast,
];

/// The dialect of a configured name.
pub fn by_name(name: &str) -> Option<&'static dyn Dialect> {
    DIALECTS.iter().copied().find(|d| d.name() == name)
}

/// The names of every dialect, for configuration errors.
pub fn names() -> String {
    DIALECTS
        .iter()
        .map(|d| d.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a dialect may read: the copied headers, our own request line and the body, from a
/// peer that [`trusted_peer`] let through.
#[derive(Debug)]
pub struct Incoming<'a> {
    pub headers: HeaderView<'a>,
    /// The method of the request to verdict (Envoy sends the original one).
    pub method: &'a str,
    /// The path of the request to verdict, and the endpoint prefix it came through.
    pub path: &'a str,
    pub prefix: &'a str,
    /// The query of the request to verdict (a streamer appends its viewer's query here).
    pub query: Option<&'a str>,
    /// The proxy or server that sent the request, and the networks trusted to forward.
    pub peer: TrustedPeer<'a>,
    /// The bounded body, for dialects whose callers send their facts in one; `None` for
    /// the proxy dialects (whose client body, when read, serves only the readings).
    pub body: Option<&'a [u8]>,
}

/// A TCP peer inside `server.trusted_proxies`: the only thing that lets a dialect read a
/// forwarded fact. Only [`trusted_peer`] makes one.
#[derive(Debug, Clone, Copy)]
pub struct TrustedPeer<'a> {
    ip: IpAddr,
    trusted: &'a [IpNet],
}

impl<'a> TrustedPeer<'a> {
    /// The peer's address (canonical form: a v4 peer on a v6 listener is v4).
    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    /// The networks trusted to forward, for walking an `X-Forwarded-For` chain.
    pub fn trusted(&self) -> &'a [IpNet] {
        self.trusted
    }

    /// A peer taken as trusted without a connection, for tests of the readers.
    #[cfg(test)]
    pub fn assumed(ip: IpAddr, trusted: &'a [IpNet]) -> TrustedPeer<'a> {
        TrustedPeer {
            ip: ip.to_canonical(),
            trusted,
        }
    }
}

/// Whether a TCP peer may speak for a client. Everything a dialect reads depends on this.
pub fn is_trusted(peer: IpAddr, trusted: &[IpNet]) -> bool {
    // A v4 client reaching a `[::]` listener shows up as ::ffff:a.b.c.d; ipnet would not
    // match that against a v4 network, so compare the canonical form.
    let peer = peer.to_canonical();
    trusted.iter().any(|net| net.contains(&peer))
}

/// The TCP peer of a decision request when it is a configured proxy.
pub fn trusted_peer<'t>(
    request: &HttpRequest,
    trusted: &'t [IpNet],
) -> Result<TrustedPeer<'t>, Refusal> {
    trusted_peer_at(request.peer_addr().map(|a| a.ip()), trusted)
}

/// [`trusted_peer`] for a connection of another listener (the gRPC one): its TCP peer.
pub fn trusted_peer_at(
    peer: Option<IpAddr>,
    trusted: &[IpNet],
) -> Result<TrustedPeer<'_>, Refusal> {
    let peer = peer
        .map(|ip| ip.to_canonical())
        .ok_or(Refusal::UntrustedPeer(IpAddr::from([0, 0, 0, 0])))?;
    // Trust decision: only a configured proxy may tell us what the client asked for.
    // A direct client could otherwise claim any path, host or address.
    if is_trusted(peer, trusted) {
        Ok(TrustedPeer { ip: peer, trusted })
    } else {
        Err(Refusal::UntrustedPeer(peer))
    }
}

/// Builds the caller-neutral request from a request from a [`TrustedPeer`], or gives the
/// outcome that ends it before routing: a refusal ([`Outcome::Refused`]), or a
/// notification that asks nothing ([`Outcome::Notified`]). `prefix` is the endpoint path
/// the request came through; `body` the body verdict read for the dialect
/// ([`Dialect::body`]), whole.
pub fn read<'r>(
    request: &'r HttpRequest,
    dialect: &dyn Dialect,
    prefix: &str,
    peer: TrustedPeer<'_>,
    body: Option<&[u8]>,
) -> Result<ForwardedRequest<'r>, Outcome> {
    let refuse = |error: ReadError| Outcome::Refused(Refusal::Unreadable(error));
    let headers: Vec<Header<'_>> = request
        .headers()
        .iter()
        // Trust decision: the peer certificate's name is set only by the gRPC dialect
        // from Envoy's own attributes; a client's copy over HTTP never counts
        .filter(|(name, _)| {
            !name
                .as_str()
                .eq_ignore_ascii_case(ext_authz_grpc::PEER_CERTIFICATE)
        })
        .map(|(name, value)| Header {
            name: Cow::Borrowed(name.as_str()),
            value: Cow::Borrowed(value.as_bytes()),
        })
        .collect();
    refuse_aliases(&headers)?;
    let incoming = Incoming {
        headers: HeaderView { headers: &headers },
        method: request.method().as_str(),
        path: request.uri().path(),
        prefix,
        query: request.uri().query(),
        peer,
        body: (dialect.body() == Body::Facts).then_some(body).flatten(),
    };
    let facts = match dialect.read(&incoming).map_err(refuse)? {
        Message::Question(facts) => facts,
        Message::Notification => return Err(Outcome::Notified),
    };
    finish(dialect, facts, headers, body)
}

/// Trust decision: a client header like `x_authgear_user_id` or `x.session.name` is an
/// alias that CGI/PHP/WSGI apps read as the identity header the proxy sets. No honest
/// client sends one; refuse rather than let it ride past the proxy's header rules.
pub fn refuse_aliases(headers: &[Header<'_>]) -> Result<(), Outcome> {
    if headers.iter().any(|h| is_identity_alias(&h.name)) {
        return Err(Outcome::Refused(Refusal::Unreadable(
            ReadError::IdentityHeaderAlias,
        )));
    }
    Ok(())
}

/// The caller-neutral request from the facts a dialect read and the client's headers:
/// the caller's own fields, its credentials in place of any client header of their
/// names, and every reading of the target.
pub fn finish<'r>(
    dialect: &dyn Dialect,
    facts: Facts,
    mut headers: Vec<Header<'r>>,
    body: Option<&[u8]>,
) -> Result<ForwardedRequest<'r>, Outcome> {
    let refuse = |error: ReadError| Outcome::Refused(Refusal::Unreadable(error));
    let Facts {
        mut target,
        client_ip,
        mut caller,
        credentials,
    } = facts;
    caller.dialect = dialect.name();
    caller.anonymous = dialect.anonymous(&caller);
    caller.audience = dialect.audience();
    for (name, value) in credentials {
        // Trust decision: these names carry the caller's facts, never a client's header.
        headers.retain(|h| h.name != name);
        headers.push(Header::owned(name, value));
    }
    // Every other way an application could read this method and path; the resolver
    // allows only when each of them is allowed.
    let form = match (dialect.body(), FormBody::declared(&headers)) {
        // a caller's own body and Content-Type say nothing of a client's
        (Body::None | Body::Facts, _) | (_, None) => FormBody::Absent,
        (Body::ClientMaySend, Some(FormKind::UrlEncoded)) => match body {
            Some(body) => FormBody::Seen(body),
            None => FormBody::Unseen,
        },
        (Body::ClientNeverSent | Body::ClientMaySend, Some(_)) => FormBody::Unseen,
    };
    target.readings = readings(&target, &headers, form).map_err(|e| refuse(e.into()))?;
    Ok(ForwardedRequest::new(target, client_ip, headers, caller))
}

/// Read-only access to the copied headers, for the dialect readers.
#[derive(Debug, Clone, Copy)]
pub struct HeaderView<'a> {
    pub headers: &'a [Header<'a>],
}

impl<'a> HeaderView<'a> {
    /// The single value of a header. A header sent more than once is ambiguous: two
    /// parsers could pick different copies, so it counts as malformed.
    pub fn single(&self, name: &str) -> Result<Option<&'a [u8]>, TargetError> {
        let mut values = self
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| &*h.value);
        let first = values.next();
        if values.next().is_some() {
            return Err(TargetError::Conflicting);
        }
        Ok(first)
    }

    /// All values of a header, in order.
    pub fn all(&self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| &*h.value)
    }
}

/// The client address from an `X-Forwarded-For` chain: the right-most hop that is not a
/// trusted proxy. Hops to its left were written by the client and prove nothing.
/// With no header, the TCP peer is the client.
pub fn client_ip_from_xff(
    view: &HeaderView<'_>,
    peer: TrustedPeer<'_>,
) -> Result<IpAddr, TargetError> {
    let mut hops: Vec<&str> = Vec::new();
    for value in view.all("x-forwarded-for") {
        let text = std::str::from_utf8(value).map_err(|_| TargetError::BadClientIp)?;
        hops.extend(text.split(',').map(str::trim).filter(|h| !h.is_empty()));
    }
    let mut leftmost = None;
    for hop in hops.iter().rev() {
        let ip = parse_hop(hop)?;
        if !is_trusted(ip, peer.trusted()) {
            return Ok(ip);
        }
        leftmost = Some(ip);
    }
    Ok(leftmost.unwrap_or(peer.ip()))
}

/// One `X-Forwarded-For` / `X-Real-IP` entry: an address, possibly with a port or brackets.
pub fn parse_hop(hop: &str) -> Result<IpAddr, TargetError> {
    let hop = hop.trim();
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Ok(ip.to_canonical());
    }
    if let Ok(sock) = hop.parse::<std::net::SocketAddr>() {
        return Ok(sock.ip().to_canonical());
    }
    hop.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .and_then(|h| h.parse::<IpAddr>().ok())
        .map(|ip| ip.to_canonical())
        .ok_or(TargetError::BadClientIp)
}

/// Fills the target from raw parts that a dialect has picked from its own headers.
pub fn build_target(
    method: Option<&[u8]>,
    scheme: Option<&[u8]>,
    host: Option<&[u8]>,
    uri: Option<&[u8]>,
) -> Result<Target, TargetError> {
    let scheme = match scheme {
        Some(raw) => {
            canonical_scheme(std::str::from_utf8(raw).map_err(|_| TargetError::BadScheme)?)?
        }
        None => "http".to_string(),
    };
    let method = method.map(canonical_method).transpose()?;
    let host = host.map(|raw| canonical_host(raw, &scheme)).transpose()?;
    let (path, query, raw_uri) = match uri {
        Some(raw) => {
            let (path, query, raw_uri) = split_uri(raw)?;
            (Some(path), query, Some(raw_uri))
        }
        None => (None, None, None),
    };
    Ok(Target {
        method,
        scheme,
        host,
        path,
        query,
        raw_uri,
        readings: Vec::new(),
    })
}

/// A caller's fields as a query string, for the token sources of the route's authorizers
/// (`query:password`): percent-encoded, so `+` stays `+` and `&` cannot split a value.
pub fn fields_as_query(fields: &[(String, String)]) -> String {
    let mut query = String::new();
    for (name, value) in fields {
        if !query.is_empty() {
            query.push('&');
        }
        query.extend(utf8_percent_encode(name, URL_COMPONENT));
        query.push('=');
        query.extend(utf8_percent_encode(value, URL_COMPONENT));
    }
    query
}

/// The fields of a caller that sends its facts as a JSON or form body and in the query of
/// its URL (EMQX's documentation puts `clientid` in the URL and the rest in the body);
/// a field sent twice with different values, in one part or across both, is ambiguous
/// and refused. A dialect reads them once, in its [`Dialect::read`].
pub fn caller_fields(incoming: &Incoming<'_>) -> Result<Vec<(String, String)>, ReadError> {
    let body = incoming.body.unwrap_or_default();
    let kind = incoming
        .headers
        .single("content-type")?
        .and_then(|v| std::str::from_utf8(v).ok())
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let query = fields::form(incoming.query.unwrap_or_default());
    let read = if body.is_empty() {
        query
    } else {
        let body = if kind == "application/x-www-form-urlencoded" {
            std::str::from_utf8(body)
                .map_err(|_| FieldsError::BadEncoding)
                .and_then(fields::form)
        } else {
            // JSON by default, as EMQX sends it
            fields::json(body)
        };
        // Trust decision: a fact in the URL counts as much as one in the body; never
        // decide on one part while a rule's fact sits unread in the other.
        body.and_then(|body| fields::merge(body, query?))
    };
    read.map_err(|_| ReadError::BadBody)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loopback() -> Vec<IpNet> {
        vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()]
    }

    fn view_of(pairs: &[(&str, &str)]) -> Vec<Header<'static>> {
        pairs
            .iter()
            .map(|(n, v)| Header::owned(n.to_ascii_lowercase(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn trusted_peers_include_v4_mapped_v6() {
        let trusted = loopback();
        assert!(is_trusted("127.0.0.1".parse().unwrap(), &trusted));
        assert!(is_trusted("::ffff:127.0.0.1".parse().unwrap(), &trusted));
        assert!(is_trusted("::1".parse().unwrap(), &trusted));
        assert!(!is_trusted("203.0.113.7".parse().unwrap(), &trusted));
        assert!(!is_trusted("::ffff:203.0.113.7".parse().unwrap(), &trusted));
    }

    #[test]
    fn client_ip_is_rightmost_untrusted_hop() {
        let trusted: Vec<IpNet> = vec![
            "127.0.0.0/8".parse().unwrap(),
            "10.0.0.0/8".parse().unwrap(),
        ];
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        let headers = view_of(&[("X-Forwarded-For", "6.6.6.6, 203.0.113.7, 10.1.2.3")]);
        let view = HeaderView { headers: &headers };
        assert_eq!(
            client_ip_from_xff(&view, TrustedPeer::assumed(peer, &trusted)).unwrap(),
            "203.0.113.7".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn client_ip_spans_repeated_headers_and_ignores_spoofed_left_hops() {
        let trusted = loopback();
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        let headers = view_of(&[
            ("X-Forwarded-For", "1.1.1.1"),
            ("x-forwarded-for", "garbage, 198.51.100.9"),
        ]);
        let view = HeaderView { headers: &headers };
        assert_eq!(
            client_ip_from_xff(&view, TrustedPeer::assumed(peer, &trusted)).unwrap(),
            "198.51.100.9".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn client_ip_falls_back_to_peer_or_leftmost_trusted() {
        let trusted = loopback();
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        let none = view_of(&[]);
        assert_eq!(
            client_ip_from_xff(
                &HeaderView { headers: &none },
                TrustedPeer::assumed(peer, &trusted)
            )
            .unwrap(),
            peer
        );
        let all_trusted = view_of(&[("X-Forwarded-For", "127.0.0.5, 127.0.0.9")]);
        assert_eq!(
            client_ip_from_xff(
                &HeaderView {
                    headers: &all_trusted
                },
                TrustedPeer::assumed(peer, &trusted)
            )
            .unwrap(),
            "127.0.0.5".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn malformed_hop_at_the_decision_point_is_an_error() {
        let trusted = loopback();
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        let headers = view_of(&[("X-Forwarded-For", "not-an-ip")]);
        assert_eq!(
            client_ip_from_xff(
                &HeaderView { headers: &headers },
                TrustedPeer::assumed(peer, &trusted)
            ),
            Err(TargetError::BadClientIp)
        );
    }

    #[test]
    fn hops_with_ports_and_brackets_parse() {
        assert_eq!(
            parse_hop("203.0.113.7:5555").unwrap(),
            "203.0.113.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            parse_hop("[2001:db8::1]:443").unwrap(),
            "2001:db8::1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            parse_hop("[2001:db8::1]").unwrap(),
            "2001:db8::1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn duplicated_single_headers_are_conflicting() {
        let headers = view_of(&[("X-Original-URI", "/a"), ("x-original-uri", "/b")]);
        assert_eq!(
            HeaderView { headers: &headers }.single("x-original-uri"),
            Err(TargetError::Conflicting)
        );
    }

    /// A caller's request for one dialect, as its caller sends it.
    struct Sample {
        dialect: &'static dyn Dialect,
        path: &'static str,
        query: Option<&'static str>,
        headers: Vec<(&'static str, &'static str)>,
        body: Option<&'static str>,
    }

    fn samples() -> Vec<Sample> {
        let json = Some(("content-type", "application/json"));
        let sample = |name: &str,
                      path: &'static str,
                      query: Option<&'static str>,
                      headers: Vec<(&'static str, &'static str)>,
                      body: Option<&'static str>| Sample {
            dialect: by_name(name).expect("dialect"),
            path,
            query,
            headers,
            body,
        };
        vec![
            sample(
                "auth-request",
                "/_resolver/auth-request",
                None,
                vec![
                    ("x-original-uri", "/app?x=1"),
                    ("x-original-method", "GET"),
                    ("x-original-url", "https://app.example.com/app?x=1"),
                    ("x-forwarded-proto", "https"),
                    ("x-forwarded-host", "app.example.com"),
                    ("x-real-ip", "203.0.113.7"),
                ],
                None,
            ),
            sample(
                "forward-auth",
                "/_resolver/forward-auth",
                None,
                vec![
                    ("x-forwarded-method", "GET"),
                    ("x-forwarded-proto", "https"),
                    ("x-forwarded-host", "app.example.com"),
                    ("x-forwarded-uri", "/app?x=1"),
                    ("x-forwarded-for", "203.0.113.7"),
                ],
                None,
            ),
            sample(
                "ext-authz",
                "/_resolver/ext-authz/app",
                Some("x=1"),
                vec![
                    ("host", "app.example.com"),
                    ("x-forwarded-proto", "https"),
                    ("x-forwarded-for", "203.0.113.7"),
                ],
                None,
            ),
            sample(
                "cesbo",
                "/_resolver/cesbo",
                Some("token=t"),
                vec![
                    ("x-real-path", "/play/a001/index.m3u8"),
                    ("x-real-host", "live.example.com"),
                    ("x-real-origin", "https://live.example.com"),
                    ("x-real-ip", "203.0.113.7"),
                    ("x-real-ua", "VLC/3.0"),
                    ("x-session-id", "17"),
                    ("x-channel-id", "a001"),
                ],
                None,
            ),
            sample(
                "emqx",
                "/_resolver/emqx",
                None,
                json.into_iter().collect(),
                Some(
                    r#"{"username":"u1","clientid":"c1","topic":"t/1","action":"publish","peerhost":"203.0.113.7"}"#,
                ),
            ),
            sample(
                "emqx-authn",
                "/_resolver/emqx/authn",
                None,
                json.into_iter().collect(),
                Some(
                    r#"{"username":"u1","password":"p","clientid":"c1","peerhost":"203.0.113.7"}"#,
                ),
            ),
            sample(
                "emqx4",
                "/_resolver/emqx4",
                None,
                json.into_iter().collect(),
                Some(
                    r#"{"username":"u1","clientid":"c1","topic":"t/1","access":"2","ipaddr":"203.0.113.7"}"#,
                ),
            ),
            sample(
                "mqtt",
                "/_resolver/mqtt/acl",
                None,
                json.into_iter().collect(),
                Some(r#"{"username":"u1","clientid":"c1","topic":"t/1","acc":"2"}"#),
            ),
            sample(
                "icecast",
                "/_resolver/icecast",
                None,
                vec![("content-type", "application/x-www-form-urlencoded")],
                Some(
                    "action=listener_add&server=radio.example.com&port=8000&mount=%2Flive.ogg%3Ftoken%3Dt&ip=203.0.113.7&agent=VLC&user=u&pass=p",
                ),
            ),
        ]
    }

    /// What `sample`'s dialect reads from it with `headers` instead of its own, as text.
    fn read_as(sample: &Sample, headers: &[(String, String)]) -> String {
        let trusted = loopback();
        let headers: Vec<Header<'_>> = headers
            .iter()
            .map(|(n, v)| Header::owned(n.clone(), v.as_bytes().to_vec()))
            .collect();
        let incoming = Incoming {
            headers: HeaderView { headers: &headers },
            method: "POST",
            path: sample.path,
            prefix: sample.dialect.path(),
            query: sample.query,
            peer: TrustedPeer::assumed("127.0.0.1".parse().unwrap(), &trusted),
            body: sample.body.map(str::as_bytes),
        };
        format!("{:?}", sample.dialect.read(&incoming))
    }

    fn own(sample: &Sample) -> Vec<(String, String)> {
        sample
            .headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    /// Every header a dialect declares (what the shipped configs must set) changes what it
    /// reads, and no other forwarded-looking header does: the declaration is the read.
    #[test]
    fn a_dialect_reads_exactly_the_headers_it_declares() {
        let forwarded = [
            "forwarded",
            "host",
            "x-forwarded-host",
            "x-forwarded-proto",
            "x-forwarded-uri",
            "x-forwarded-method",
            "x-forwarded-for",
            "x-forwarded-prefix",
            "x-forwarded-port",
            "x-forwarded-server",
            "x-original-uri",
            "x-original-url",
            "x-original-method",
            "x-original-host",
            "x-rewrite-url",
            "x-real-ip",
            "x-real-path",
            "x-real-host",
            "x-real-origin",
            "x-real-ua",
            "x-client-ip",
            "true-client-ip",
            "cf-connecting-ip",
            "x-envoy-original-path",
            "x-envoy-external-address",
            "x-session-id",
            "x-channel-id",
            "content-type",
            "user-agent",
            "x-http-method-override",
        ];
        let samples = samples();
        assert_eq!(samples.len(), DIALECTS.len(), "a sample for every dialect");
        for sample in &samples {
            let name = sample.dialect.name();
            let baseline = read_as(sample, &own(sample));
            assert!(baseline.starts_with("Ok(Question("), "{name}: {baseline}");
            for declared in sample.dialect.reads() {
                // a second, different copy: a header read once is ambiguous now, one
                // read as a list (a forwarding chain) has another hop
                let mut headers = own(sample);
                headers.push((declared.to_string(), "198.51.100.99".to_string()));
                assert_ne!(
                    read_as(sample, &headers),
                    baseline,
                    "{name} declares {declared} but does not read it"
                );
            }
            for name_read in forwarded
                .iter()
                .filter(|h| !sample.dialect.reads().contains(h))
            {
                let mut headers = own(sample);
                headers.push((
                    name_read.to_string(),
                    "https://evil.example/x?token=e".into(),
                ));
                headers.push((name_read.to_string(), "198.51.100.99".into()));
                assert_eq!(
                    read_as(sample, &headers),
                    baseline,
                    "{name} reads {name_read} without declaring it"
                );
            }
        }
    }
}
