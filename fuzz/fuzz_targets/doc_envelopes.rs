//! Arbitrary bytes as a document-queue body (S3, S3 via SNS, EventBridge), as a Textract
//! completion notification, and as a document to sniff: none may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = fleet_docs::s3event::parse(&text);
    let _ = fleet_docs::completion::parse(&text);
    let _ = fleet_docs::MediaType::sniff(data, "upload.txt", Some("text/plain"));
});
