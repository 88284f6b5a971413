//! The one integration-test binary: contract suite, end-to-end tests, architecture checks.

mod arch;
mod e2e_local;
