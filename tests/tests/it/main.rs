//! The one integration-test binary of the workspace's `tests` crate: the contract suite for
//! both backends, AWS adapter checks, end-to-end runs of the real worker binaries, and the
//! architecture checks.

mod arch;
mod aws_adapter;
mod contract;
mod deploy_stack;
mod dlq_replay;
mod e2e_aws;
mod e2e_docs_aws;
mod e2e_docs_textract;
mod e2e_local;
mod e2e_logs;
mod e2e_mllp;
mod e2e_notify_aws;
mod e2e_traces;
mod health_page;
mod ocr_jobs;
mod sources;
