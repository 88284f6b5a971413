//! The MLLP gateway: the fleet's entry point for EHR feeds. Interface engines open a TCP (or
//! TLS) connection, send one HL7 v2 message in an MLLP frame and wait for its acknowledgement;
//! the gateway routes it by MSH-9 to a queue and answers only once the queue accepted it.
//! See DESIGN.md in this crate.

pub mod ack;
pub mod frame;
