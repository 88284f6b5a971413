//! One integration-test binary for the crate (modules below).

mod decorated;
mod runtime;
mod sizes;
mod sqs_rules;
