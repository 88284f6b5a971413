//! The launcher crate's one integration-test binary: the real binaries it builds (`fleet`,
//! `hl7-ingest`, `doc-pipeline`, `notify`) run as child processes.

mod demo;
mod doc_extract;
mod doctor;
mod fleet_run;
mod hl7_inspect;
mod notify_check;
mod shared_db;
mod status_aws;
mod status_page;
mod unencrypted_override;
