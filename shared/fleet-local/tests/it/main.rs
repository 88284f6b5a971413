//! One integration-test binary for the crate (modules below).

mod group_commit;
mod local;
mod private_files;
mod put_events_limit;
mod trace_header;
