//! End-to-end and contract tests for the fleet: real binaries against moto and the local backend.
