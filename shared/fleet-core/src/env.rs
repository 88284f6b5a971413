//! The one registry of environment variable names the fleet reads. Binaries bind them through
//! clap's `env = ...` using these constants, so a name is spelled once.

/// `local` or `aws`. Unset: `aws` when an AWS region, profile or endpoint is configured,
/// otherwise `local`.
pub const BACKEND: &str = "FLEET_BACKEND";
/// Local backend: the SQLite file.
pub const LOCAL_DB: &str = "FLEET_LOCAL_DB";
/// Local backend: the object-store directory.
pub const LOCAL_OBJECTS: &str = "FLEET_LOCAL_OBJECTS";
/// KMS key id for SSE-KMS on object puts (aws backend).
pub const S3_KMS_KEY: &str = "FLEET_S3_KMS_KEY_ID";
/// Start even though the queue or its DLQ is not encrypted (local development only).
pub const ALLOW_UNENCRYPTED: &str = "FLEET_ALLOW_UNENCRYPTED";
/// Local backend: open the SQLite file even though group or others have access to it
/// (or to its -wal, -shm or -journal file); refused otherwise.
pub const ALLOW_SHARED_DB: &str = "FLEET_ALLOW_SHARED_DB";
/// Log filter (tracing EnvFilter syntax); default `info`.
pub const LOG: &str = "FLEET_LOG";
/// `json` (default) or `text`.
pub const LOG_FORMAT: &str = "FLEET_LOG_FORMAT";
/// Address of the health and metrics endpoint, e.g. `127.0.0.1:9464`. Unset: no endpoint.
pub const HEALTH_ADDR: &str = "FLEET_HEALTH_ADDR";
/// `fleet run`'s status page: when set, every route of the fleet health address but
/// `/health/live` requires `Authorization: Bearer <token>`. Required to bind a non-loopback
/// address. An environment variable only (a flag would show in `ps`).
pub const STATUS_TOKEN: &str = "FLEET_STATUS_TOKEN";
/// Metrics output: `prometheus` (default: `/metrics` on the health endpoint), `emf`
/// (CloudWatch Embedded Metric Format lines on stdout) or `both`.
pub const METRICS: &str = "FLEET_METRICS";
/// Key for hashing identifiers in log lines.
pub const LOG_HASH_KEY: &str = "FLEET_LOG_HASH_KEY";
/// Concurrent handlers per worker.
pub const CONCURRENCY: &str = "FLEET_CONCURRENCY";
/// Attempts before a retryable failure is dead-lettered (below the queue's maxReceiveCount).
pub const MAX_ATTEMPTS: &str = "FLEET_MAX_ATTEMPTS";
/// Seconds in-flight handlers get to finish after SIGTERM.
pub const DRAIN_DEADLINE_SECS: &str = "FLEET_DRAIN_DEADLINE_SECS";
/// Long-poll wait in seconds (0..=20).
pub const WAIT_TIME_SECS: &str = "FLEET_WAIT_TIME_SECS";
/// Milliseconds a partial PutEvents batch waits for companions (event latency against requests).
pub const PUBLISH_LINGER_MS: &str = "FLEET_PUBLISH_LINGER_MS";
/// Milliseconds a partial DeleteMessageBatch waits for companions (adds no event latency).
pub const DELETE_LINGER_MS: &str = "FLEET_DELETE_LINGER_MS";
/// `fleet run` / `fleet status`: the fleet.toml to read.
pub const FLEET_CONFIG: &str = "FLEET_CONFIG";
/// Event bus name.
pub const EVENT_BUS: &str = "FLEET_EVENT_BUS";
/// `minimal` (default) or `full`.
pub const PHI_POLICY: &str = "FLEET_PHI_POLICY";
/// hl7-ingest: identifier types (HL7 table 0203, comma-separated) that `minimal` events carry;
/// default `MR,PI,PN`. Personal numbers (SS, DL, PPN, NI, MC, MA, JHN, HC, ...) are refused.
pub const PHI_IDENTIFIER_TYPES: &str = "FLEET_PHI_IDENTIFIER_TYPES";
/// Buckets a claim-check pointer may name, comma-separated (every worker); unset or empty:
/// none, so every claim check is refused (`CLAIM_CHECK_BUCKET_NOT_ALLOWED`).
pub const CLAIM_CHECK_BUCKETS: &str = "FLEET_CLAIM_CHECK_BUCKETS";

/// hl7-ingest: source queue (name or URL).
pub const HL7_QUEUE: &str = "FLEET_HL7_QUEUE";
/// hl7-ingest: records table.
pub const HL7_TABLE: &str = "FLEET_HL7_TABLE";
/// hl7-ingest: IANA time zone for message times without an offset.
pub const HL7_TIMEZONE: &str = "FLEET_HL7_TIMEZONE";
/// hl7-ingest: `FACILITY=ZONE` pairs, comma-separated: the IANA zone for times without an
/// offset in messages from that sending facility (MSH-4.1); others use `FLEET_HL7_TIMEZONE`.
pub const HL7_FACILITY_TIMEZONES: &str = "FLEET_HL7_FACILITY_TIMEZONES";
/// hl7-ingest: largest HL7 message accepted, in bytes (larger ones are dead-lettered).
pub const HL7_MAX_MESSAGE_BYTES: &str = "FLEET_HL7_MAX_MESSAGE_BYTES";

/// mllp-gateway: listen address (`HOST:PORT`); default `127.0.0.1:2575`.
pub const MLLP_LISTEN: &str = "FLEET_MLLP_LISTEN";
/// mllp-gateway: routes `TYPE^TRIGGER=QUEUE` (comma-separated; `*` matches any part);
/// default `ADT^*=hl7-inbound`.
pub const MLLP_ROUTES: &str = "FLEET_MLLP_ROUTES";
/// mllp-gateway: PEM server certificate chain (TLS on when set). This and the next two take a
/// file path or the PEM text itself (a value starting with `-----BEGIN`: an ECS secret).
pub const MLLP_TLS_CERT: &str = "FLEET_MLLP_TLS_CERT";
/// mllp-gateway: PEM private key of the server certificate.
pub const MLLP_TLS_KEY: &str = "FLEET_MLLP_TLS_KEY";
/// mllp-gateway: PEM CA bundle client certificates must chain to (client auth on when set).
pub const MLLP_TLS_CLIENT_CA: &str = "FLEET_MLLP_TLS_CLIENT_CA";
/// mllp-gateway: `CN=FACILITY|FACILITY...` entries, comma-separated: the sending facilities
/// (MSH-4.1) a client certificate with that subject common name may send as.
pub const MLLP_CLIENT_FACILITIES: &str = "FLEET_MLLP_CLIENT_FACILITIES";
/// mllp-gateway: source addresses or CIDR blocks allowed to connect, comma-separated; unset: any.
pub const MLLP_ALLOW_SOURCES: &str = "FLEET_MLLP_ALLOW_SOURCES";
/// mllp-gateway: serve plain TCP on a non-loopback address (refused otherwise without TLS).
pub const MLLP_PLAIN_TCP: &str = "FLEET_MLLP_PLAIN_TCP";
/// mllp-gateway: bucket large messages are offloaded to (SQS Extended Client format).
pub const MLLP_CLAIM_CHECK_BUCKET: &str = "FLEET_MLLP_CLAIM_CHECK_BUCKET";
/// mllp-gateway: largest HL7 message accepted, in bytes.
pub const MLLP_MAX_MESSAGE_BYTES: &str = "FLEET_MLLP_MAX_MESSAGE_BYTES";
/// mllp-gateway: most open connections; more are refused and counted.
pub const MLLP_MAX_CONNECTIONS: &str = "FLEET_MLLP_MAX_CONNECTIONS";
/// mllp-gateway: milliseconds a partial SendMessageBatch waits for messages from other
/// connections (group commit).
pub const MLLP_BATCH_LINGER_MS: &str = "FLEET_MLLP_BATCH_LINGER_MS";
/// mllp-gateway: `facility` (default) or `facility-patient`: the FIFO MessageGroupId.
pub const MLLP_FIFO_GROUP: &str = "FLEET_MLLP_FIFO_GROUP";

/// Third-party corpora (tests, benchmarks); default `../shared/corpus` beside the checkout.
pub const CORPUS_DIR: &str = "FLEET_CORPUS_DIR";
/// Tests: the cargo that runs them (set by cargo), for `cargo metadata`.
pub const CARGO: &str = "CARGO";
/// moto_server endpoint for the AWS-side tests (set by `scripts/test`).
pub const MOTO_ENDPOINT: &str = "FLEET_MOTO_ENDPOINT";
/// Path of python-hl7's `mllp_send`, the independent MLLP client of the gateway's end-to-end
/// tests (set by `scripts/test` from `scripts/hl7-client path`).
pub const MLLP_SEND: &str = "FLEET_MLLP_SEND";
/// Path of Debian's `chromium`, the browser the health page's test loads the page in (set by
/// `scripts/test` from `scripts/browser path`).
pub const CHROMIUM: &str = "FLEET_CHROMIUM";
/// Tests: `1` makes the health page's test write its screenshot to `docs/health-page.png`, the
/// copy the README shows (otherwise it goes to the target directory only).
pub const UPDATE_SCREENSHOT: &str = "FLEET_UPDATE_SCREENSHOT";

/// dlq-replay: where audit records go (a file, appended; `-` or unset: standard error).
pub const DLQ_AUDIT_LOG: &str = "FLEET_DLQ_AUDIT_LOG";
/// dlq-replay: age recipient (public key, `age1...`) the archive of moved messages is
/// encrypted to.
pub const ARCHIVE_RECIPIENT: &str = "FLEET_ARCHIVE_RECIPIENT";
/// dlq-replay: key of the keyed hash (HMAC-SHA256) under which `--attribute` values and
/// `--body-regex` are recorded in the audit log (at least 32 bytes). Without it (or
/// `FLEET_DLQ_AUDIT_KEY_FILE`), commands with those filters are refused.
pub const DLQ_AUDIT_KEY: &str = "FLEET_DLQ_AUDIT_KEY";
/// dlq-replay: a file holding that key (readable by its owner only).
pub const DLQ_AUDIT_KEY_FILE: &str = "FLEET_DLQ_AUDIT_KEY_FILE";

/// doc-pipeline: upload queue (S3 event notifications; name or URL).
pub const DOC_QUEUE: &str = "FLEET_DOC_QUEUE";
/// doc-pipeline: Textract completion queue (SNS → SQS); unset: no asynchronous OCR.
pub const DOC_COMPLETION_QUEUE: &str = "FLEET_DOC_COMPLETION_QUEUE";
/// doc-pipeline: records table (documents, OCR jobs).
pub const DOC_TABLE: &str = "FLEET_DOC_TABLE";
/// doc-pipeline: upload buckets, comma-separated: an S3 event naming another bucket is
/// dead-lettered unread (`DOCUMENT_BUCKET_NOT_ALLOWED`). Required on aws; on the local backend
/// the default is `uploads` (the local stack's upload bucket).
pub const DOC_BUCKETS: &str = "FLEET_DOC_BUCKETS";
/// doc-pipeline: bucket the results JSON is written to.
pub const DOC_RESULTS_BUCKET: &str = "FLEET_DOC_RESULTS_BUCKET";
/// doc-pipeline: key prefix of results objects (default `results/`).
pub const DOC_RESULTS_PREFIX: &str = "FLEET_DOC_RESULTS_PREFIX";
/// doc-pipeline: largest document read, in bytes.
pub const DOC_MAX_BYTES: &str = "FLEET_DOC_MAX_BYTES";
/// doc-pipeline: age, in seconds, after which a started OCR job whose completion has not
/// arrived is looked up by the sweeper (default 900).
pub const DOC_OCR_SWEEP_AFTER: &str = "FLEET_DOC_OCR_SWEEP_AFTER_SECS";
/// doc-pipeline: seconds between two sweeps of started OCR jobs (default 60).
pub const DOC_OCR_SWEEP_INTERVAL: &str = "FLEET_DOC_OCR_SWEEP_INTERVAL_SECS";
/// Local OCR: documents with more pages are `DOCUMENT_TOO_LARGE` before any page is read
/// (default 200).
pub const DOC_MAX_PAGES: &str = "FLEET_DOC_MAX_PAGES";
/// Local OCR: a page or image larger than this many pixels (a PDF page at the rasterising
/// resolution) is `DOCUMENT_TOO_LARGE` before it is rasterised or read (default 50000000).
pub const DOC_MAX_PIXELS_PER_PAGE: &str = "FLEET_DOC_MAX_PIXELS_PER_PAGE";
/// Local OCR: wall-clock seconds one tool process (pdfinfo, pdftoppm, tesseract; pdftotext
/// gets this per page) may run before its process group is killed (default 120).
pub const DOC_OCR_PROCESS_TIMEOUT: &str = "FLEET_DOC_OCR_PROCESS_TIMEOUT_SECS";
/// OCR engine: `tesseract` or `textract` (default: `textract` on the aws backend).
pub const DOC_OCR: &str = "FLEET_DOC_OCR";
/// Entity extractor: `rules` or `comprehend-medical` (default: `comprehend-medical` on aws).
pub const DOC_EXTRACTOR: &str = "FLEET_DOC_EXTRACTOR";
/// Textract asynchronous jobs: SNS topic of the completion channel.
pub const TEXTRACT_SNS_TOPIC_ARN: &str = "FLEET_TEXTRACT_SNS_TOPIC_ARN";
/// Textract asynchronous jobs: IAM role Textract assumes to publish to that topic.
pub const TEXTRACT_ROLE_ARN: &str = "FLEET_TEXTRACT_ROLE_ARN";

/// notify: source queue (EventBridge rule → SQS, or SNS → SQS; name or URL).
pub const NOTIFY_QUEUE: &str = "FLEET_NOTIFY_QUEUE";
/// notify: records table (delivery records keyed by event id + rule).
pub const NOTIFY_TABLE: &str = "FLEET_NOTIFY_TABLE";
/// notify: the rules file (TOML).
pub const NOTIFY_RULES: &str = "FLEET_NOTIFY_RULES";
/// notify: notifications per second per destination (default 1).
pub const NOTIFY_RATE_PER_SEC: &str = "FLEET_NOTIFY_RATE_PER_SEC";
/// notify: burst per destination (default 5).
pub const NOTIFY_BURST: &str = "FLEET_NOTIFY_BURST";
/// notify: longest a handler waits in process for its destination's rate limit before
/// deferring the message with a visibility change (default 5 s).
pub const NOTIFY_MAX_WAIT_SECS: &str = "FLEET_NOTIFY_MAX_WAIT_SECS";
/// The local user name for audit records (POSIX login variables).
pub const USER: &str = "USER";
pub const LOGNAME: &str = "LOGNAME";

/// Local backend: also print every notification to standard output (`1`).
pub const NOTIFY_STDOUT: &str = "FLEET_NOTIFY_STDOUT";
/// Log filter read when `FLEET_LOG` is unset (the tracing ecosystem's convention).
pub const RUST_LOG: &str = "RUST_LOG";
/// Tests: write a worker's whole log to the test output (debugging a failing end-to-end test).
pub const E2E_DUMP_LOG: &str = "FLEET_E2E_DUMP_LOG";

/// OpenTelemetry's standard variables (issue 20). The exporter itself also reads the rest of
/// the `OTEL_EXPORTER_OTLP_*` family (headers, timeout, compression).
/// Base URL of an OTLP/HTTP collector (`http://127.0.0.1:4318`): spans go to `{it}/v1/traces`.
/// Unset (and no traces endpoint): no exporter, nothing is sent.
pub const OTEL_EXPORTER_OTLP_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
/// The full traces URL, which wins over the base URL.
pub const OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
/// `true`: no trace context at all (no spans for OpenTelemetry, no `traceparent` sent).
pub const OTEL_SDK_DISABLED: &str = "OTEL_SDK_DISABLED";
/// The resource's `service.name` (default: the binary's name, `fleet` for `fleet run`).
pub const OTEL_SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
/// Tests: the Python interpreter of `.venv-otlp` (`scripts/otlp-receiver python`), which runs
/// the OTLP receiver of the trace test (set by `scripts/test`).
pub const OTLP_PYTHON: &str = "FLEET_OTLP_PYTHON";

/// The AWS SDK's own variables. The fleet reads them only to pick its default backend and the
/// S3 addressing style; the SDK's configuration chain reads them itself.
pub const AWS_REGION: &str = "AWS_REGION";
pub const AWS_DEFAULT_REGION: &str = "AWS_DEFAULT_REGION";
pub const AWS_PROFILE: &str = "AWS_PROFILE";
pub const AWS_ENDPOINT_URL: &str = "AWS_ENDPOINT_URL";
pub const AWS_ENDPOINT_URL_S3: &str = "AWS_ENDPOINT_URL_S3";
/// Static credentials (set only for moto-backed tests and the load tool's children).
pub const AWS_ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
pub const AWS_SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
/// Any of these set (non-empty) means "AWS is configured": the default backend is then `aws`.
pub const AWS_CONFIGURED_BY: [&str; 4] = [
    AWS_REGION,
    AWS_DEFAULT_REGION,
    AWS_PROFILE,
    AWS_ENDPOINT_URL,
];

/// The value of `name`, trimmed; `None` when unset, empty or not Unicode. The one place the
/// fleet reads its environment (clippy's `disallowed-methods` forbids `std::env::var`
/// elsewhere), so every name it reads is a constant above.
#[allow(clippy::disallowed_methods)]
pub fn get(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Whether `name` is set to something non-empty (Unicode or not).
#[allow(clippy::disallowed_methods)]
pub fn is_set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty())
}

/// The third-party corpora: `FLEET_CORPUS_DIR`, or `../shared/corpus` beside the checkout
/// (every crate sits two levels below the repository root, as this one does).
pub fn corpus_dir() -> std::path::PathBuf {
    get(CORPUS_DIR).map(Into::into).unwrap_or_else(|| {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus")
    })
}

/// Whether the environment configures AWS (region, profile or endpoint).
pub fn aws_configured() -> bool {
    AWS_CONFIGURED_BY.iter().any(|k| is_set(k))
}
