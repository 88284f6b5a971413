//! MLLP framing (filled in next).
