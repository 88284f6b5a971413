//! Process-wide logging setup for worker binaries.

use fleet_core::env;
use tracing_subscriber::EnvFilter;

/// Third-party crates whose debug/trace output can contain payloads.
const PHI_CAPPED_TARGETS: &[&str] = &[
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_http",
    "aws_smithy_http_client",
    "aws_smithy_types",
    "aws_smithy_json",
    "aws_smithy_xml",
    "aws_smithy_query",
    "aws_smithy_checksums",
    "aws_runtime",
    "aws_config",
    "aws_sigv4",
    "aws_sdk_sqs",
    "aws_sdk_sns",
    "aws_sdk_eventbridge",
    "aws_sdk_dynamodb",
    "aws_sdk_s3",
    "aws_sdk_kms",
    "aws_sdk_sts",
    "aws_sdk_sso",
    "aws_sdk_ssooidc",
    "hyper",
    "hyper_util",
    "h2",
    "rustls",
    "tower",
    "axum",
    "rusqlite",
];

/// JSON (or human-readable) logs to stderr, filtered by `FLEET_LOG`, else `RUST_LOG`, else
/// `info`. Also replaces the panic hook: the default one prints the panic message, which may
/// quote message data, so ours logs only the location. Calling it twice is harmless.
pub fn init_logging(json: bool) {
    init_logging_with_default(json, "info");
}

/// As [`init_logging`], with `default` as the filter when neither variable is set (the demo
/// keeps its own output readable with `warn`).
pub fn init_logging_with_default(json: bool, default: &str) {
    let filter = env::get(env::LOG)
        .or_else(|| env::get(env::RUST_LOG))
        .and_then(|spec| EnvFilter::try_new(spec).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    // Libraries never log below info, whatever the filter asks: at debug and trace the SDK and
    // HTTP stacks print requests and responses, which carry message bodies and records.
    let filter = PHI_CAPPED_TARGETS.iter().fold(filter, |f, target| {
        match format!("{target}=info").parse() {
            Ok(d) => f.add_directive(d),
            Err(_) => f,
        }
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let installed = if json {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .flatten_event(true)
            .try_init()
            .is_ok()
    } else {
        builder.try_init().is_ok()
    };
    if installed {
        std::panic::set_hook(Box::new(|info| {
            let location = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_default();
            tracing::error!(%location, "panic (message withheld: it may contain message data)");
        }));
    }
}
