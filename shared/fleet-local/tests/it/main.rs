//! One integration-test binary for the crate (modules below).

mod local;
mod put_events_limit;
