//! `[tracing]`: one span per decision under the caller's `traceparent` (a trusted
//! peer's only), a child span per backend call whose context the backend receives, the
//! trace id in the decision's log line, exported over OTLP/HTTP to a receiver on port 0.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpServer, web};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;

use crate::support::*;

/// An OTLP/HTTP receiver on port 0: every span it was sent.
struct Receiver {
    url: String,
    spans: Arc<Mutex<Vec<Span>>>,
}

async fn receiver() -> Receiver {
    let spans: Arc<Mutex<Vec<Span>>> = Arc::default();
    let kept = spans.clone();
    let server = HttpServer::new(move || {
        let kept = kept.clone();
        App::new().route(
            "/v1/traces",
            web::post().to(move |body: web::Bytes| {
                let kept = kept.clone();
                async move {
                    if let Ok(request) = ExportTraceServiceRequest::decode(&body[..]) {
                        for resource in request.resource_spans {
                            for scope in resource.scope_spans {
                                kept.lock().unwrap().extend(scope.spans);
                            }
                        }
                    }
                    actix_web::HttpResponse::Ok()
                        .content_type("application/x-protobuf")
                        .finish()
                }
            }),
        )
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let addr = server.addrs()[0];
    actix_web::rt::spawn(server.run());
    Receiver {
        url: format!("http://{addr}/v1/traces"),
        spans,
    }
}

impl Receiver {
    /// The spans named `name` once there are some (polled, for at most 15 s).
    async fn named(&self, name: &str) -> Vec<Span> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let found: Vec<Span> = self
                .spans
                .lock()
                .unwrap()
                .iter()
                .filter(|s| s.name == name)
                .cloned()
                .collect();
            if !found.is_empty() {
                return found;
            }
            assert!(Instant::now() < deadline, "no span named {name:?} arrived");
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    span.attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref()?.value.as_ref())
        .map(|v| match v {
            Value::StringValue(s) => s.clone(),
            Value::IntValue(i) => i.to_string(),
            other => format!("{other:?}"),
        })
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

#[actix_web::test]
async fn a_decision_is_a_span_under_the_callers_trace_and_its_backend_call_a_child() {
    let otlp = receiver().await;
    let backend = fake_backend(Reply::status(200).header("X-Session-Name", "alice")).await;
    let body = format!(
        "{}\n[tracing]\nendpoint = \"{}\"\n",
        http_authorizer(&[backend.url("/check")], "status", "forward_query = true"),
        otlp.url
    );
    let v = start_logged("", &body).await;
    let r = viewer_check(&v, "/play/a?token=secret-viewer-token")
        .insert_header(("traceparent", format!("00-{TRACE}-{PARENT}-01")))
        .sent()
        .await;
    assert_eq!(r.status(), 200);

    let decision = otlp.named("verdict decision").await.remove(0);
    assert_eq!(hex::encode(&decision.trace_id), TRACE, "the caller's trace");
    assert_eq!(
        hex::encode(&decision.parent_span_id),
        PARENT,
        "the caller's span"
    );
    assert_eq!(
        attribute(&decision, "verdict.outcome").as_deref(),
        Some("allow")
    );
    assert_eq!(
        attribute(&decision, "verdict.route").as_deref(),
        Some("default")
    );
    assert_eq!(
        attribute(&decision, "verdict.authorizer").as_deref(),
        Some("backend")
    );
    assert_eq!(
        attribute(&decision, "verdict.cache").as_deref(),
        Some("miss")
    );

    let call = otlp.named("verdict backend").await.remove(0);
    assert_eq!(call.trace_id, decision.trace_id);
    assert_eq!(
        call.parent_span_id, decision.span_id,
        "a child of the decision"
    );
    // the backend was asked in the same trace, as the child span
    let sent = backend.received()[0]
        .header("traceparent")
        .unwrap()
        .to_string();
    assert_eq!(
        sent,
        format!("00-{TRACE}-{}-01", hex::encode(&call.span_id)),
        "the backend's traceparent"
    );
    // never a credential in a span
    for span in otlp.spans.lock().unwrap().iter() {
        for a in &span.attributes {
            assert!(!format!("{a:?}").contains("secret-viewer-token"), "{a:?}");
        }
    }
    let log = v.log_with(&format!("trace_id={TRACE}")).await;
    assert!(!log.contains("secret-viewer-token"));
    v.stop().await;
}

#[actix_web::test]
async fn an_untrusted_peers_trace_is_not_followed_and_a_dead_collector_stops_nothing() {
    let otlp = receiver().await;
    let body = format!("{DEMO_KEYS}\n[tracing]\nendpoint = \"{}\"\n", otlp.url);
    let v = start("trusted_proxies = [\"10.0.0.0/8\"]", &body).await;
    let r = auth_request(&v, "/x")
        .insert_header(("traceparent", format!("00-{TRACE}-{PARENT}-01")))
        .sent()
        .await;
    assert_eq!(r.status(), 403, "an untrusted peer");
    let decision = otlp.named("verdict decision").await.remove(0);
    assert_ne!(
        hex::encode(&decision.trace_id),
        TRACE,
        "its trace context is not read"
    );
    assert!(decision.parent_span_id.is_empty());

    // no collector at all: decisions go on
    let port = free_port();
    let dead = start(
        "",
        &format!("{DEMO_KEYS}\n[tracing]\nendpoint = \"http://127.0.0.1:{port}/v1/traces\"\nmax_queue = 64\n"),
    )
    .await;
    for _ in 0..200 {
        let r = auth_request(&dead, "/x")
            .insert_header(("Authorization", "Bearer valid-token"))
            .sent()
            .await;
        assert_eq!(r.status(), 200);
    }
}
