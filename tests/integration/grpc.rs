//! The gRPC listener (`server.grpc_listen`) with a gRPC client of the test's own, as
//! Envoy calls it: an allow sets the identity and removes every other identity header,
//! a deny carries its status, a check that cannot be read or comes from an untrusted
//! peer is refused, and a decision verdict cannot make is UNAVAILABLE.

use envoy_types::pb::envoy::config::core::v3::address::Address;
use envoy_types::pb::envoy::config::core::v3::{Address as CoreAddress, SocketAddress};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Peer, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest, CheckResponse};

use crate::support::*;

fn check(path: &str, headers: &[(&str, &str)]) -> CheckRequest {
    CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(Peer {
                address: Some(CoreAddress {
                    address: Some(Address::SocketAddress(SocketAddress {
                        address: "203.0.113.7".into(),
                        ..Default::default()
                    })),
                }),
                ..Default::default()
            }),
            request: Some(Request {
                http: Some(HttpRequest {
                    method: "GET".into(),
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

async fn ask(v: &Verdict, request: CheckRequest) -> Result<CheckResponse, tonic::Status> {
    let addr = v.grpc.expect("a gRPC listener");
    let mut client = AuthorizationClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");
    client.check(request).await.map(tonic::Response::into_inner)
}

const ROUTES: &str = "[[route]]\nname = \"admin\"\npath = \"/admin\"\naccess = \"authenticated\"\nroles = [\"admin\"]\n";

#[actix_web::test]
async fn the_grpc_check_allows_denies_and_refuses_as_the_http_dialects_do() {
    let v = start(
        "grpc_listen = \"127.0.0.1:0\"",
        &format!("{DEMO_KEYS}{ROUTES}"),
    )
    .await;
    // allow: verdict's identity set, every other identity header removed
    let answer = ask(
        &v,
        check(
            "/app?x=1",
            &[
                ("authorization", "Bearer valid-token"),
                (":path", "/app?x=1"),
            ],
        ),
    )
    .await
    .unwrap();
    assert_eq!(answer.status.unwrap().code, 0);
    let Some(HttpResponse::OkResponse(ok)) = answer.http_response else {
        panic!("an OK response");
    };
    let set = |name: &str| {
        ok.headers
            .iter()
            .filter_map(|h| h.header.as_ref())
            .find(|h| h.key == name)
            .map(|h| h.value.clone())
    };
    assert_eq!(set("x-authgear-user-id").as_deref(), Some("u-123"));
    assert_eq!(set("x-session-name").as_deref(), Some("alice"));
    assert!(ok.headers_to_remove.iter().any(|n| n == "remote-user"));
    assert!(
        !ok.headers_to_remove
            .iter()
            .any(|n| n == "x-authgear-user-id")
    );

    // no credential: 401 with the challenge; a reader on /admin: 403
    let answer = ask(&v, check("/app", &[])).await.unwrap();
    let Some(HttpResponse::DeniedResponse(denied)) = answer.http_response else {
        panic!("a denied response");
    };
    assert_eq!(denied.status.unwrap().code, 401);
    assert!(
        denied
            .headers
            .iter()
            .any(|h| h.header.as_ref().unwrap().key == "www-authenticate")
    );
    let answer = ask(
        &v,
        check("/admin/x", &[("authorization", "Bearer valid-token")]),
    )
    .await
    .unwrap();
    let Some(HttpResponse::DeniedResponse(denied)) = answer.http_response else {
        panic!("a denied response");
    };
    assert_eq!(denied.status.unwrap().code, 403);

    // every reading of the path counts, as over HTTP
    let answer = ask(
        &v,
        check(
            "/app/../admin/x",
            &[("authorization", "Bearer valid-token")],
        ),
    )
    .await
    .unwrap();
    assert!(matches!(
        answer.http_response,
        Some(HttpResponse::DeniedResponse(_))
    ));

    // an alias of an identity header, and a check without a request: refused
    for request in [
        check(
            "/app",
            &[
                ("authorization", "Bearer valid-token"),
                ("x_authgear_user_id", "root"),
            ],
        ),
        CheckRequest::default(),
    ] {
        let answer = ask(&v, request).await.unwrap();
        let Some(HttpResponse::DeniedResponse(denied)) = answer.http_response else {
            panic!("refused");
        };
        assert_eq!(denied.status.unwrap().code, 403);
    }
}

#[actix_web::test]
async fn an_untrusted_peer_is_refused_and_a_failure_is_unavailable() {
    let untrusted = start(
        "grpc_listen = \"127.0.0.1:0\"\ntrusted_proxies = [\"10.0.0.0/8\"]",
        DEMO_KEYS,
    )
    .await;
    let answer = ask(
        &untrusted,
        check("/app", &[("authorization", "Bearer valid-token")]),
    )
    .await
    .unwrap();
    let Some(HttpResponse::DeniedResponse(denied)) = answer.http_response else {
        panic!("an untrusted peer is refused");
    };
    assert_eq!(denied.status.unwrap().code, 403);

    // a backend that is down and a route that says deny: verdict cannot decide
    let port = free_port();
    let down = start(
        "grpc_listen = \"127.0.0.1:0\"",
        &http_authorizer(&[format!("http://127.0.0.1:{port}/check")], "status", ""),
    )
    .await;
    let failed = ask(&down, check("/app", &[("authorization", "Bearer t")]))
        .await
        .unwrap_err();
    assert_eq!(failed.code(), tonic::Code::Unavailable);
}
