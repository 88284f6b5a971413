//! Tesseract and poppler OCR (being written).
