//! One integration-test binary for the crate (modules below).

mod runtime;
mod sizes;
