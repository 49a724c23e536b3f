//! Traces (optional, `[tracing]`): one span per decision, child spans for backend calls,
//! key fetches and the shared store, exported over OTLP/HTTP (protobuf) by the
//! OpenTelemetry SDK's batch processor on a thread of its own.
//!
//! Takes: the caller's W3C `traceparent`/`tracestate` (only a trusted peer's: an
//! untrusted one's are never read), and what the decision found (route, authorizer,
//! outcome, cache status, HTTP status). Returns: the decision's trace id for its log line,
//! and the `traceparent` a backend request carries. Must never: put a credential in a
//! span, let the export run on the request's path, or grow without bound when the
//! collector is down (the queue is bounded; what does not fit is dropped).

use std::time::Duration;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracer, SdkTracerProvider,
};
use serde::Deserialize;

use crate::settings::{ConfigError, HumanDuration};

/// `[tracing]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTracing {
    endpoint: String,
    #[serde(default)]
    service_name: Option<String>,
    #[serde(default)]
    max_queue: Option<usize>,
    #[serde(default)]
    export_timeout: Option<HumanDuration>,
}

/// `[tracing]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracingSettings {
    /// The collector's OTLP/HTTP traces URL (`http://collector:4318/v1/traces`).
    pub endpoint: String,
    pub service_name: String,
    /// Spans waiting for export at most; past it new ones are dropped.
    pub max_queue: usize,
    pub export_timeout: Duration,
}

impl TracingSettings {
    pub fn build(raw: RawTracing) -> Result<TracingSettings, ConfigError> {
        let url = url::Url::parse(&raw.endpoint)
            .map_err(|e| ConfigError::invalid("tracing.endpoint", format!("{e}")))?;
        if url.scheme() != "http" {
            return Err(ConfigError::invalid(
                "tracing.endpoint",
                "an http:// OTLP/HTTP traces URL (a collector beside verdict; https is not built in)",
            ));
        }
        let max_queue = raw.max_queue.unwrap_or(4096);
        if !(64..=1_000_000).contains(&max_queue) {
            return Err(ConfigError::invalid(
                "tracing.max_queue",
                "64 to 1000000 spans",
            ));
        }
        Ok(TracingSettings {
            endpoint: raw.endpoint,
            service_name: raw.service_name.unwrap_or_else(|| "verdict".to_string()),
            max_queue,
            export_timeout: raw.export_timeout.map_or(Duration::from_secs(2), |d| d.0),
        })
    }
}

/// The tracer and what exports its spans.
#[derive(Clone)]
pub struct Tracing {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    pub settings: TracingSettings,
}

impl std::fmt::Debug for Tracing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracing")
            .field("endpoint", &self.settings.endpoint)
            .finish()
    }
}

impl Tracing {
    /// The exporter and its batch processor (on a thread of their own: the HTTP client
    /// they use must not be made on an async runtime's thread).
    pub fn start(settings: TracingSettings) -> std::io::Result<Tracing> {
        let made = settings.clone();
        std::thread::spawn(move || -> Result<Tracing, String> {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(made.endpoint.clone())
                .with_timeout(made.export_timeout)
                .build()
                .map_err(|e| e.to_string())?;
            let processor = BatchSpanProcessor::builder(exporter)
                .with_batch_config(
                    BatchConfigBuilder::default()
                        .with_max_queue_size(made.max_queue)
                        .with_scheduled_delay(Duration::from_millis(500))
                        .build(),
                )
                .build();
            let provider = SdkTracerProvider::builder()
                .with_span_processor(processor)
                .with_resource(
                    Resource::builder()
                        .with_service_name(made.service_name.clone())
                        .build(),
                )
                .build();
            let tracer = provider.tracer("verdict");
            Ok(Tracing {
                provider,
                tracer,
                settings: made,
            })
        })
        .join()
        .map_err(|_| std::io::Error::other("tracing: the exporter could not be built"))?
        .map_err(|e| std::io::Error::other(format!("tracing: {e}")))
    }

    /// Starts a decision's span under the caller's context (an empty one when the caller
    /// sent none or is not trusted), and returns the context holding it.
    pub fn decision(&self, parent: &Context) -> Context {
        let span = self
            .tracer
            .span_builder("verdict decision")
            .with_kind(SpanKind::Server)
            .start_with_context(&self.tracer, parent);
        parent.with_span(span)
    }

    /// Starts a child span of the context current in this task (the decision's), named
    /// `name`; `None` outside a traced decision.
    pub fn child(&self, name: &'static str, kind: SpanKind) -> Option<Context> {
        let current = Context::current();
        if !current.span().span_context().is_valid() {
            return None;
        }
        let span = self
            .tracer
            .span_builder(name)
            .with_kind(kind)
            .start_with_context(&self.tracer, &current);
        Some(current.with_span(span))
    }

    /// Flushes what is queued and stops the exporter (on a thread of its own, like its
    /// start).
    pub fn shutdown(&self) {
        let provider = self.provider.clone();
        let _ = std::thread::spawn(move || provider.shutdown()).join();
    }
}

/// Sets the attributes of a finished span and ends it.
pub fn finish(context: &Context, attributes: Vec<KeyValue>, failed: bool) {
    let span = context.span();
    span.set_attributes(attributes);
    if failed {
        span.set_status(Status::error(""));
    }
    span.end();
}

/// The trace id of the span in `context`, for the log line.
pub fn trace_id(context: &Context) -> Option<String> {
    let span = context.span();
    let ids = span.span_context();
    ids.is_valid().then(|| ids.trace_id().to_string())
}

/// The caller's trace context from its `traceparent` and `tracestate` headers.
pub fn extract<'a>(headers: impl Iterator<Item = (&'a str, &'a [u8])>) -> Context {
    struct Headers(Vec<(String, String)>);
    impl Extractor for Headers {
        fn get(&self, key: &str) -> Option<&str> {
            self.0
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(key))
                .map(|(_, v)| v.as_str())
        }
        fn keys(&self) -> Vec<&str> {
            self.0.iter().map(|(n, _)| n.as_str()).collect()
        }
    }
    let wanted: Vec<(String, String)> = headers
        .filter(|(name, _)| {
            name.eq_ignore_ascii_case("traceparent") || name.eq_ignore_ascii_case("tracestate")
        })
        .filter_map(|(name, value)| {
            Some((
                name.to_ascii_lowercase(),
                std::str::from_utf8(value).ok()?.to_string(),
            ))
        })
        .collect();
    if wanted.is_empty() {
        return Context::new();
    }
    TraceContextPropagator::new().extract(&Headers(wanted))
}

/// The `traceparent` (and `tracestate`) a request made under `context` carries.
pub fn inject(context: &Context) -> Vec<(String, String)> {
    struct Out(Vec<(String, String)>);
    impl Injector for Out {
        fn set(&mut self, key: &str, value: String) {
            self.0.push((key.to_string(), value));
        }
    }
    let mut out = Out(Vec::new());
    TraceContextPropagator::new().inject_context(context, &mut out);
    out.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_is_read_and_written_back_with_the_same_trace() {
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let context = extract([("TraceParent", parent.as_bytes())].into_iter());
        assert_eq!(
            trace_id(&context).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        let written = inject(&context);
        assert!(
            written
                .iter()
                .any(|(k, v)| k == "traceparent" && v == parent)
        );
        assert!(trace_id(&extract([("traceparent", &b"garbage"[..])].into_iter())).is_none());
        assert!(trace_id(&extract(std::iter::empty())).is_none());
    }

    #[test]
    fn settings_refuse_what_cannot_work() {
        let raw = |endpoint: &str| RawTracing {
            endpoint: endpoint.into(),
            service_name: None,
            max_queue: None,
            export_timeout: None,
        };
        assert!(TracingSettings::build(raw("http://127.0.0.1:4318/v1/traces")).is_ok());
        assert!(TracingSettings::build(raw("https://collector/v1/traces")).is_err());
        assert!(TracingSettings::build(raw("not a url")).is_err());
    }
}
