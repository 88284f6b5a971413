//! ACKs (filled in next).
