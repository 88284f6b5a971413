//! Traces (issue 20): the spans a message's path makes, their trace context across queues, the
//! bus and topics ([`fleet_core::trace_context`]), and their export over OTLP.
//!
//! Span names and attributes follow the OpenTelemetry messaging semantic conventions:
//!
//! | span | kind | made by |
//! | --- | --- | --- |
//! | `receive <queue>` | CLIENT | a poller, once per non-empty receive; linked to each message's producer |
//! | `process <queue>` | CONSUMER | the runtime, per message; child of the message's producer span |
//! | `send <queue>` | PRODUCER | the gateway (and anything sending through [`producer_span`]) |
//! | `send <bus>` | PRODUCER | the event publisher, per event |
//! | `send <topic>` | PRODUCER | notify, per notification |
//!
//! Attributes are identifiers only (`messaging.system`, `messaging.destination.name`,
//! `messaging.message.id`, `messaging.operation.*`, the worker): never a body or an attribute
//! value, as for logs.
//!
//! Tracing is on unless `OTEL_SDK_DISABLED=true`. On, every process makes these spans and sends
//! their context on; they are exported only when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set: OTLP over HTTP/protobuf, batched on the SDK's
//! own thread. Without an endpoint the provider has no processor and a closed span is dropped.
//! Only spans that declare `otel.kind` reach OpenTelemetry, and log events never do.

use std::sync::OnceLock;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;

use fleet_core::env;
use opentelemetry::trace::{SpanContext, TraceContextExt as _, TracerProvider as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing::Subscriber;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::registry::LookupSpan;

/// `messaging.system` of a queue. The local backend implements SQS's semantics and is named
/// as such; the destination name tells the two apart.
pub const SYSTEM_SQS: &str = "aws_sqs";
/// `messaging.system` of the event bus (EventBridge is not among the convention's values).
pub const SYSTEM_EVENTBRIDGE: &str = "aws_eventbridge";
/// `messaging.system` of a notification topic.
pub const SYSTEM_SNS: &str = "aws_sns";
/// `messaging.system` of the MLLP gateway's inbound messages.
pub const SYSTEM_MLLP: &str = "mllp";

/// How this process traces, from the standard OpenTelemetry variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceSettings {
    /// `OTEL_SDK_DISABLED` is not `true`.
    pub enabled: bool,
    /// An OTLP endpoint is configured (the exporter reads the variables itself).
    pub export: bool,
    pub service: String,
}

impl TraceSettings {
    pub fn from_env() -> Self {
        let disabled =
            env::get(env::OTEL_SDK_DISABLED).is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let export = env::get(env::OTEL_EXPORTER_OTLP_ENDPOINT).is_some()
            || env::get(env::OTEL_EXPORTER_OTLP_TRACES_ENDPOINT).is_some();
        let service = env::get(env::OTEL_SERVICE_NAME).unwrap_or_else(default_service);
        Self {
            enabled: !disabled,
            export,
            service,
        }
    }
}

/// The binary's file name (`hl7-ingest`, `fleet`, …).
fn default_service() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "fleet".to_string())
}

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Whether a layer was installed: without one no span has a context, so the runtime skips
/// reading producers' contexts and making receive spans.
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether this process traces (an OpenTelemetry layer is installed).
pub fn enabled() -> bool {
    ENABLED.load(Relaxed)
}

/// Flushes and stops the exporter when dropped: binaries hold it for the life of `main`.
#[must_use = "dropping the guard stops trace export: hold it until main returns"]
#[derive(Debug)]
pub struct TracesGuard(());

impl Drop for TracesGuard {
    fn drop(&mut self) {
        if let Some(p) = PROVIDER.get() {
            // Exports what the batch still holds; an unreachable collector is not fatal.
            if let Err(e) = p.shutdown() {
                tracing::warn!(error = %e, "trace export did not finish at shutdown");
            }
        }
    }
}

/// The provider: X-Ray-compatible ids (so the same context is a valid `AWSTraceHeader`), a
/// parent-based sampler that samples roots, and the OTLP exporter when one is configured.
fn provider(settings: &TraceSettings) -> Result<SdkTracerProvider, String> {
    let mut builder = SdkTracerProvider::builder()
        .with_id_generator(opentelemetry_aws::trace::XrayIdGenerator::default())
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
        .with_resource(
            Resource::builder()
                .with_service_name(settings.service.clone())
                .build(),
        );
    if settings.export {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
            .map_err(|e| e.to_string())?;
        builder = builder.with_batch_exporter(exporter);
    }
    Ok(builder.build())
}

/// The OpenTelemetry layer for the process's subscriber, or `None` when tracing is disabled.
/// It sees spans that declare `otel.kind` and nothing else (no log events, whatever the log
/// filter). Installing a second one (a second `init_logging`) reuses the first provider.
pub(crate) fn layer<S>(settings: &TraceSettings) -> Option<impl Layer<S> + Send + Sync + use<S>>
where
    S: Subscriber + for<'span> LookupSpan<'span> + Send + Sync,
{
    if !settings.enabled {
        return None;
    }
    let provider = match PROVIDER.get() {
        Some(p) => p.clone(),
        None => match provider(settings) {
            Ok(p) => PROVIDER.get_or_init(|| p).clone(),
            Err(e) => {
                // No logger exists yet: this is the one place the fleet writes to stderr
                // itself. The variables' names and the error are all it prints.
                eprintln!(
                    "traces: the OTLP exporter could not be built ({e}); spans are not exported"
                );
                let fallback = TraceSettings {
                    export: false,
                    ..settings.clone()
                };
                PROVIDER
                    .get_or_init(|| provider(&fallback).expect("a provider without exporter"))
                    .clone()
            }
        },
    };
    Some(layer_for(&provider))
}

/// The layer over `provider`'s tracer (what [`layer`] installs; tests give it an in-memory
/// exporter).
pub fn layer_for<S>(provider: &SdkTracerProvider) -> impl Layer<S> + Send + Sync + use<S>
where
    S: Subscriber + for<'span> LookupSpan<'span> + Send + Sync,
{
    ENABLED.store(true, Relaxed);
    let tracer = provider.tracer("fleet");
    tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_level(false)
        .with_filter(filter_fn(|meta| {
            meta.is_span() && meta.fields().field("otel.kind").is_some()
        }))
}

/// A guard for [`layer`]'s provider.
pub(crate) fn guard() -> TracesGuard {
    TracesGuard(())
}

/// The span's own context (invalid when tracing is off or the span is disabled).
pub fn span_context(span: &tracing::Span) -> SpanContext {
    span.context().span().span_context().clone()
}

/// Makes `span` a child of the producer context `parent`.
pub fn set_remote_parent(span: &tracing::Span, parent: SpanContext) {
    // Fails only for a span OpenTelemetry does not see (tracing off), where there is nothing
    // to parent.
    let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(parent));
}

/// Links `span` to `other` (a batch's messages' producers).
pub fn link(span: &tracing::Span, other: SpanContext) {
    if other.is_valid() {
        span.add_link(other);
    }
}

/// A PRODUCER span `send <destination>` for one message, event or notification.
pub fn producer_span(system: &'static str, destination: &str) -> tracing::Span {
    tracing::info_span!(
        "send",
        otel.name = %format_args!("send {destination}"),
        otel.kind = "producer",
        messaging.system = system,
        messaging.destination.name = %destination,
        messaging.operation.type = "send",
        messaging.operation.name = "send",
    )
}

/// The CLIENT span `receive <queue>` of one non-empty receive, linked to each message's
/// producer. It marks the batch's arrival: the long poll's wait is not part of it, and an empty
/// poll makes no span.
pub fn receive_span(
    queue: &str,
    producers: impl Iterator<Item = Option<SpanContext>>,
    count: usize,
) -> tracing::Span {
    let span = tracing::info_span!(
        "receive",
        otel.name = %format_args!("receive {queue}"),
        otel.kind = "client",
        messaging.system = SYSTEM_SQS,
        messaging.destination.name = %queue,
        messaging.operation.type = "receive",
        messaging.operation.name = "receive",
        messaging.batch.message_count = count,
    );
    for p in producers.flatten() {
        link(&span, p);
    }
    span
}
