//! One integration-test binary for the crate (modules below).

mod facility_timezones;
mod handler;
mod item7;
