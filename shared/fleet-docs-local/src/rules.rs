//! The dictionary-and-rules entity extractor (being written).
