//! The hl7-ingest worker: HL7 v2 ADT messages to records and Patient events.
