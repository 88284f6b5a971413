//! One integration-test binary for the crate (modules below).

mod body_encoding;
mod facility_timezones;
mod handler;
mod item7;
