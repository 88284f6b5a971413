//! `loadtest`: reproducible load against the real `hl7-ingest` binary, on the local backend or
//! on AWS (moto for local runs). A scenario file fixes the stream (seeded); the run provisions
//! its own queues, bus rule, tap queue and table, drives the worker as a separate process, and
//! reports throughput, end-to-end latency, worker CPU per message, backend requests per message
//! by API (the worker's own counts), dead letters, and lost messages, which must be zero.
//!
//! Reports never carry message bodies or any field of them: only counts, codes, timings.

pub mod chaos;
pub mod docload;
pub mod documents;
pub mod generate;
pub mod mllp;
pub mod proxy;
pub mod report;
pub mod run;
pub mod scenario;
pub mod stack;
pub mod worker;
