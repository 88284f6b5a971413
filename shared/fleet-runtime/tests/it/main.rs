//! One integration-test binary for the crate (modules below).

mod decorated;
mod producer_text;
mod runtime;
mod sizes;
mod sqs_rules;
mod traces;
