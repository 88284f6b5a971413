//! Process-wide logging setup for worker binaries.

use fleet_core::env;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

/// Third-party crates whose debug/trace output can contain payloads. Each entry is a prefix of
/// the event's target, as `tracing_subscriber::filter::Targets` matches it: `aws_` covers every
/// SDK crate (`aws_smithy_runtime::client::orchestrator` traces whole requests and responses),
/// `hyper` covers `hyper_util` and `hyper_rustls`, `tower` covers `tower_http`.
const PHI_CAPPED_TARGETS: &[&str] = &[
    "aws_",
    "hyper",
    "h2",
    "http",
    "reqwest",
    "rustls",
    "tokio_rustls",
    "tower",
    "axum",
    "rusqlite",
];

/// The most a capped target may log.
const CAP: LevelFilter = LevelFilter::INFO;

/// The caps as a filter of their own, applied after (and whatever) the user's `FLEET_LOG`
/// directives say: inside one `EnvFilter` a more specific user directive
/// (`aws_smithy_runtime::client::orchestrator=trace`) or a span directive (`[invoke]=trace`)
/// outranks a cap, so the caps cannot live there. Everything else passes to the `EnvFilter`.
fn library_caps() -> Targets {
    Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_targets(PHI_CAPPED_TARGETS.iter().map(|t| (*t, CAP)))
}

/// The process's subscriber: the library caps, then the formatter behind the user's filter,
/// and beside it the OpenTelemetry layer (`crate::otel`) when tracing is on.
/// Libraries never log below info, whatever the filter asks: at debug and trace the SDK and
/// HTTP stacks print requests and responses, which carry message bodies and records. The caps
/// are a filter layer of their own, so no directive of the user's can outrank them. The user's
/// filter is the formatter's alone: `FLEET_LOG=warn` quiets the logs, not the traces.
fn subscriber<W>(
    filter: EnvFilter,
    json: bool,
    ansi: bool,
    writer: W,
    traces: Option<&crate::otel::TraceSettings>,
) -> impl tracing::Subscriber + Send + Sync + 'static
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(writer);
    let fmt = if json {
        fmt.json()
            .with_current_span(true)
            .with_span_list(false)
            .flatten_event(true)
            .boxed()
    } else {
        fmt.boxed()
    };
    tracing_subscriber::registry()
        .with(library_caps())
        .with(fmt.with_filter(filter))
        .with(traces.and_then(crate::otel::layer))
}

/// JSON (or human-readable) logs to stderr, filtered by `FLEET_LOG`, else `RUST_LOG`, else
/// `info`, and traces as the OpenTelemetry variables say (`crate::otel`). Also replaces the
/// panic hook: the default one prints the panic message, which may quote message data, so ours
/// logs only the location. Calling it twice is harmless. Hold the guard until `main` returns:
/// dropping it flushes the trace exporter.
pub fn init_logging(json: bool) -> crate::otel::TracesGuard {
    init_logging_with_default(json, "info")
}

/// As [`init_logging`], with `default` as the filter when neither variable is set (the demo
/// keeps its own output readable with `warn`).
pub fn init_logging_with_default(json: bool, default: &str) -> crate::otel::TracesGuard {
    let filter = env::get(env::LOG)
        .or_else(|| env::get(env::RUST_LOG))
        .and_then(|spec| EnvFilter::try_new(spec).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let traces = crate::otel::TraceSettings::from_env();
    let installed = subscriber(filter, json, ansi, std::io::stderr, Some(&traces))
        .try_init()
        .is_ok();
    if installed {
        std::panic::set_hook(Box::new(|info| {
            let location = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_default();
            tracing::error!(%location, "panic (message withheld: it may contain message data)");
        }));
    }
    crate::otel::guard()
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What the process's subscriber writes for `FLEET_LOG=spec` when the SDK's orchestrator,
    /// hyper and our own code log at every level.
    fn logged(spec: &str) -> String {
        let buf = Buf::default();
        let writer = buf.clone();
        let filter = EnvFilter::try_new(spec).unwrap();
        let sub = subscriber(filter, true, false, move || writer.clone(), None);
        tracing::subscriber::with_default(sub, || {
            let span =
                tracing::trace_span!(target: "aws_smithy_runtime::client::orchestrator", "invoke");
            let _e = span.enter();
            tracing::trace!(target: "aws_smithy_runtime::client::orchestrator", body = "BODY-TRACE", "received response from service");
            tracing::debug!(target: "aws_smithy_runtime_api::client::http", body = "BODY-DEBUG", "request");
            tracing::trace!(target: "hyper_util::client::legacy", body = "BODY-HYPER", "wrote");
            tracing::trace!(target: "aws_sdk_textract::operation", body = "BODY-TEXTRACT", "output");
            tracing::info!(target: "aws_smithy_runtime::client::orchestrator", "INFO-KEPT");
            tracing::trace!(target: "fleet_runtime::runtime", "OURS-KEPT");
        });
        String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn item5_no_directive_lifts_a_library_above_info() {
        for spec in [
            "trace",
            "aws_smithy_runtime=trace,aws_smithy_runtime_api=trace,hyper=trace",
            "trace,aws_smithy_runtime::client::orchestrator=trace,hyper_util::client=trace,aws_sdk_textract=trace",
            "[invoke]=trace,aws_smithy_runtime_api[{body}]=trace",
            "aws_smithy_runtime::client::orchestrator[invoke]=trace,trace",
        ] {
            let log = logged(spec);
            for body in ["BODY-TRACE", "BODY-DEBUG", "BODY-HYPER", "BODY-TEXTRACT"] {
                assert!(!log.contains(body), "{spec}: {body} was logged:\n{log}");
            }
            // (The span-only spec enables nothing outside its span, which the caps disable.)
            assert!(
                spec.starts_with('[') || log.contains("INFO-KEPT"),
                "{spec}: the cap is info, not off:\n{log}"
            );
        }
        assert!(
            logged("trace").contains("OURS-KEPT"),
            "our own trace passes"
        );
        assert!(
            !logged("info").contains("OURS-KEPT"),
            "the user's filter still applies"
        );
    }
}
