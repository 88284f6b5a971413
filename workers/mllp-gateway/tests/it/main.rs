//! One integration-test binary for the crate (modules below).

mod common;
mod payloads;
mod server;
mod tls;
