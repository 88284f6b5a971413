//! dlq-replayer's integration-test binary (its other tests are unit tests beside the code).

mod private_files;
