//! loadtest's integration tests, one binary: each runs the real `loadtest` binary against the
//! real `hl7-ingest` binary (`common`). `smoke`: the CI smoke scenario; `reliability`: the
//! reliability scenarios at CI size (the `aws_` ones on moto, `FLEET_MOTO_ENDPOINT`); `mllp`:
//! the MLLP load and gateway crash scenarios at CI size (the real `mllp-gateway` binary too).

mod common;
mod mllp;
mod reliability;
mod smoke;
