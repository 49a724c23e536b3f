//! The ext-authz-grpc dialect: Envoy's gRPC authorization service
//! (`envoy.service.auth.v3.Authorization/Check`), and the gateways built on it (Istio,
//! Envoy Gateway, Contour).
//!
//! Takes: a `CheckRequest` from a trusted peer (the TCP peer of the gRPC connection): the
//! original request's method, scheme, `:authority`, raw path with its query and headers,
//! and the downstream address Envoy saw, all Envoy's own view. Returns: the facts and the
//! client's headers, for the same caller-neutral request every dialect builds; answers are
//! the proxy map's, which the gRPC edge turns into a `CheckResponse`. Must never: read a
//! fact from a client header (`Host`, `X-Forwarded-*`: Envoy's attributes say it), or
//! pass a pseudo-header on as a client header.

use std::net::IpAddr;

use envoy_types::pb::envoy::config::core::v3::address::Address;
use envoy_types::pb::envoy::service::auth::v3::CheckRequest;

use super::answer::{self, Answer, AnswerSettings, Original, Redirects};
use super::{Body, Dialect, Facts, Incoming, Message, build_target, form_body_declared};
use crate::decision::Outcome;
use crate::request::{Anonymous, Audience, Caller, Header, ReadError, TargetError};

/// Where the client certificate Envoy verified is put for authorizers: a name only this
/// dialect sets (a client's header of that name is dropped).
pub const PEER_CERTIFICATE: &str = "x-envoy-peer-certificate";

/// Envoy's gRPC `ext_authz` service.
#[derive(Debug)]
pub struct ExtAuthzGrpc;

/// The one instance the gRPC edge speaks.
pub static EXT_AUTHZ_GRPC: ExtAuthzGrpc = ExtAuthzGrpc;

impl Dialect for ExtAuthzGrpc {
    fn name(&self) -> &'static str {
        "ext-authz-grpc"
    }
    fn reads(&self) -> &'static [&'static str] {
        // every fact is an attribute of the CheckRequest, none a header
        &[]
    }
    fn path(&self) -> &'static str {
        // served on server.grpc_listen, never on the decision port
        "/envoy.service.auth.v3.Authorization/Check"
    }
    fn read(&self, _incoming: &Incoming<'_>) -> Result<Message, ReadError> {
        // a CheckRequest is read by [`read_check`]; an HTTP request is not one
        Err(ReadError::Target(TargetError::NotOriginForm))
    }
    fn body(&self) -> Body {
        // Envoy's `with_request_body` puts the client's body in the CheckRequest
        Body::ClientMaySend
    }
    fn audience(&self) -> Audience {
        Audience::Web
    }
    fn anonymous(&self, _caller: &Caller) -> Anonymous {
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

/// What a `CheckRequest` says: the facts, the client's headers (pseudo-headers left out),
/// and the client's body when Envoy sent it whole.
#[derive(Debug)]
pub struct Checked {
    pub facts: Facts,
    pub headers: Vec<Header<'static>>,
    pub body: Option<Vec<u8>>,
}

/// Reads a `CheckRequest`.
pub fn read_check(check: &CheckRequest) -> Result<Checked, ReadError> {
    let attributes = check
        .attributes
        .as_ref()
        .ok_or(ReadError::Target(TargetError::NotOriginForm))?;
    let http = attributes
        .request
        .as_ref()
        .and_then(|r| r.http.as_ref())
        .ok_or(ReadError::Target(TargetError::NotOriginForm))?;
    let target = build_target(
        Some(http.method.as_bytes()),
        (!http.scheme.is_empty()).then_some(http.scheme.as_bytes()),
        (!http.host.is_empty()).then_some(http.host.as_bytes()),
        Some(http.path.as_bytes()),
    )?;
    // Trust decision: the client is the downstream peer Envoy itself saw (after its own
    // X-Forwarded-For handling), never a header the client sent
    let client_ip = attributes
        .source
        .as_ref()
        .and_then(|peer| peer.address.as_ref())
        .and_then(|address| address.address.as_ref())
        .and_then(|address| match address {
            Address::SocketAddress(socket) => socket.address.parse::<IpAddr>().ok(),
            _ => None,
        })
        .ok_or(ReadError::Target(TargetError::BadClientIp))?;
    let mut headers: Vec<Header<'static>> = Vec::with_capacity(http.headers.len());
    for (name, value) in &http.headers {
        // pseudo-headers are the attributes above; `host` too (HTTP/1's :authority);
        // Trust decision: a client's header of the peer certificate's name never counts
        if name.starts_with(':')
            || name.eq_ignore_ascii_case("host")
            || name.eq_ignore_ascii_case(PEER_CERTIFICATE)
            // the proxies' certificate headers: over gRPC the check carries Envoy's own
            // (its sanitized X-Forwarded-Client-Cert stays)
            || ["x-ssl-client-cert", "x-forwarded-tls-client-cert", "x-client-cert"]
                .iter()
                .any(|c| name.eq_ignore_ascii_case(c))
        {
            continue;
        }
        headers.push(Header::owned(
            name.to_ascii_lowercase(),
            value.as_bytes().to_vec(),
        ));
    }
    // the client certificate Envoy verified (`include_peer_certificate`), URL-encoded PEM,
    // for authorizers to read as `header:x-envoy-peer-certificate`
    let mut facts = Facts::of(target, client_ip);
    if let Some(certificate) = attributes
        .source
        .as_ref()
        .map(|peer| peer.certificate.as_str())
        .filter(|c| !c.is_empty())
    {
        facts
            .credentials
            .push((PEER_CERTIFICATE.to_string(), certificate.to_string()));
    }
    // the client's body only when Envoy sent it whole, uncompressed, as a form: the same
    // rule as the HTTP dialects'
    let declared = form_body_declared(&|name| {
        headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| &*h.value)
            .collect()
    });
    let body = if !declared {
        None
    } else if !http.raw_body.is_empty() {
        Some(http.raw_body.clone())
    } else if !http.body.is_empty() {
        Some(http.body.clone().into_bytes())
    } else {
        None
    };
    Ok(Checked {
        facts,
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3::{Address as CoreAddress, SocketAddress};
    use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
    use envoy_types::pb::envoy::service::auth::v3::attribute_context::{
        HttpRequest, Peer, Request,
    };

    fn check(path: &str, headers: &[(&str, &str)], source: &str) -> CheckRequest {
        CheckRequest {
            attributes: Some(AttributeContext {
                source: Some(Peer {
                    address: Some(CoreAddress {
                        address: Some(Address::SocketAddress(SocketAddress {
                            address: source.into(),
                            ..Default::default()
                        })),
                    }),
                    ..Default::default()
                }),
                request: Some(Request {
                    http: Some(HttpRequest {
                        method: "POST".into(),
                        scheme: "https".into(),
                        host: "app.example.com".into(),
                        path: path.into(),
                        headers: headers
                            .iter()
                            .map(|(n, v)| (n.to_string(), v.to_string()))
                            .collect(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn the_target_and_client_are_envoys_attributes_never_a_header() {
        let checked = read_check(&check(
            "/api/items?id=7",
            &[
                (":authority", "app.example.com"),
                (":path", "/api/items?id=7"),
                ("host", "evil.example.com"),
                ("x-forwarded-for", "10.9.9.9"),
                ("authorization", "Bearer t"),
            ],
            "203.0.113.7",
        ))
        .unwrap();
        let target = &checked.facts.target;
        assert_eq!(target.method.as_deref(), Some("POST"));
        assert_eq!(target.host.as_deref(), Some("app.example.com"));
        assert_eq!(target.path.as_deref(), Some("/api/items"));
        assert_eq!(target.query.as_deref(), Some("id=7"));
        assert_eq!(checked.facts.client_ip.to_string(), "203.0.113.7");
        let names: Vec<&str> = checked.headers.iter().map(|h| &*h.name).collect();
        assert!(names.contains(&"authorization"));
        assert!(!names.iter().any(|n| n.starts_with(':') || *n == "host"));
    }

    #[test]
    fn the_peer_certificate_is_envoys_never_the_clients() {
        let mut with = check(
            "/x",
            &[(PEER_CERTIFICATE, "-----BEGIN%20CERTIFICATE-----forged")],
            "127.0.0.1",
        );
        let checked = read_check(&with).unwrap();
        assert!(checked.headers.iter().all(|h| h.name != PEER_CERTIFICATE));
        assert!(
            checked.facts.credentials.is_empty(),
            "no certificate from Envoy"
        );
        if let Some(peer) = with.attributes.as_mut().and_then(|a| a.source.as_mut()) {
            peer.certificate = "-----BEGIN%20CERTIFICATE-----verified".into();
        }
        let checked = read_check(&with).unwrap();
        assert_eq!(
            checked.facts.credentials,
            vec![(
                PEER_CERTIFICATE.to_string(),
                "-----BEGIN%20CERTIFICATE-----verified".to_string()
            )]
        );
    }

    #[test]
    fn a_check_without_a_request_or_a_client_is_refused() {
        assert!(read_check(&CheckRequest::default()).is_err());
        assert!(read_check(&check("/x", &[], "not an address")).is_err());
        assert!(read_check(&check("no-slash", &[], "127.0.0.1")).is_err());
    }
}
