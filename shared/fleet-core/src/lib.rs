//! Fleet core: the narrow ports every worker talks to (message queue, event bus, records,
//! object store), the types that cross them, the closed list of error codes, the failure
//! metadata attribute, the event envelope and PHI-safe display wrappers.
//!
//! Nothing here knows about AWS or SQLite: adapters live in `fleet-aws` and `fleet-local`.

pub mod backend;
pub mod codes;
pub mod env;
pub mod envelope;
pub mod error;
pub mod failure;
pub mod files;
pub mod phi;
pub mod ports;
pub mod requests;
pub mod retry;
pub mod trace_context;

pub use backend::Backend;
pub use codes::ErrorCode;
pub use envelope::{EventEnvelope, EventFacts, PhiPolicy};
pub use error::{ErrorKind, PortError};
pub use failure::FailureMetadata;
pub use ports::*;
pub use retry::Failure;
