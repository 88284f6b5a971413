//! HL7 v2 guard layer around hl7-parser and the typed ADT mapping.
