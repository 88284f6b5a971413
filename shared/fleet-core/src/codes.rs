//! The closed list of permanent-failure codes. Every dead-lettered message carries one of
//! these in its failure metadata; `dlq-replay` groups by them. Add a code here, never a
//! free-form string at a call site.

use serde::{Deserialize, Serialize};

macro_rules! codes {
    ($( $(#[$m:meta])* $variant:ident = $s:literal ),+ $(,)?) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum ErrorCode {
            $( $(#[$m])* #[serde(rename = $s)] $variant ),+
        }
        impl ErrorCode {
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $s),+ }
            }
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($s => Some(ErrorCode::$variant),)+ _ => None }
            }
        }
    };
}

codes! {
    /// The body is empty or only whitespace / framing bytes.
    Hl7Empty = "HL7_EMPTY",
    /// The body does not start with an MSH (or FHS/BHS) segment.
    Hl7NoMsh = "HL7_NO_MSH",
    /// MSH-1/MSH-2 encoding characters are missing or invalid.
    Hl7BadEncodingChars = "HL7_BAD_ENCODING_CHARS",
    /// MSH-18 names a character set we cannot decode, or the bytes are not valid in it.
    Hl7BadCharset = "HL7_BAD_CHARSET",
    /// The parser refused the message or consumed only a prefix of it.
    Hl7ParseError = "HL7_PARSE_ERROR",
    /// A segment id is malformed (not three upper-case letters or digits).
    Hl7BadSegment = "HL7_BAD_SEGMENT",
    /// MSH-9 is not an ADT message (ORU, ORM, SIU, ...).
    Hl7NotAdt = "HL7_NOT_ADT",
    /// An ADT trigger this worker does not map.
    Hl7UnsupportedTrigger = "HL7_UNSUPPORTED_TRIGGER",
    /// A required field is missing (MSH-10, PID-3, MSH-7, ...).
    Hl7MissingField = "HL7_MISSING_FIELD",
    /// A field has an invalid value (bad timestamp, bad date).
    Hl7InvalidField = "HL7_INVALID_FIELD",
    /// A merge (A34/A40/...) without an MRG segment.
    Hl7MissingMrg = "HL7_MISSING_MRG",
    /// A batch file held more messages than allowed or a malformed batch envelope.
    Hl7BadBatch = "HL7_BAD_BATCH",
    /// A message whose sending facility and control id (MSH-4 + MSH-10) are already recorded
    /// for different content (another SHA-256 of the message bytes): not a redelivery, so
    /// nothing is written or published for it. The detail names both hashes' first 12 hex
    /// digits, never the content.
    Hl7ControlIdReused = "HL7_CONTROL_ID_REUSED",
    /// The body exceeds the configured maximum size.
    BodyTooLarge = "BODY_TOO_LARGE",
    /// A claim-check pointer that cannot be parsed or whose object is missing.
    ClaimCheckInvalid = "CLAIM_CHECK_INVALID",
    /// A claim-check pointer naming a bucket outside the worker's allow-list; nothing was read.
    ClaimCheckBucketNotAllowed = "CLAIM_CHECK_BUCKET_NOT_ALLOWED",
    /// A claim-check object whose size (from HEAD, before any read) is above the body limit.
    ClaimCheckTooLarge = "CLAIM_CHECK_TOO_LARGE",
    /// The body is not valid UTF-8 / not decodable.
    BodyEncoding = "BODY_ENCODING",
    /// The handler failed on every attempt the worker allows (retryable failures exhausted).
    RetriesExhausted = "RETRIES_EXHAUSTED",
    /// A downstream resource rejected the write permanently (validation, missing table).
    DownstreamRejected = "DOWNSTREAM_REJECTED",
    /// An event whose PutEvents entry size (UTF-8 bytes of Source, DetailType, Detail and each
    /// Resources entry, plus 14 for a Time) is not below EventBridge's 256 KiB request limit,
    /// so no request can carry it.
    EventTooLarge = "EVENT_TOO_LARGE",
    /// The handler panicked on every attempt.
    HandlerPanicked = "HANDLER_PANICKED",
    /// A document-queue body that is not a usable S3 event notification: not JSON, not one of
    /// the accepted envelopes (S3, S3 via SNS, S3 via EventBridge), a record from another
    /// service, or a required field missing.
    S3EventInvalid = "S3_EVENT_INVALID",
    /// An S3 event whose object key cannot be decoded: a malformed percent escape, or bytes
    /// that are not UTF-8 once decoded.
    S3KeyInvalid = "S3_KEY_INVALID",
    /// A document whose content is none of the accepted types (PDF, PNG, JPEG, TIFF, plain
    /// text), judged by its first bytes, not its name.
    DocumentUnsupportedType = "DOCUMENT_UNSUPPORTED_TYPE",
    /// A zero-byte document.
    DocumentEmpty = "DOCUMENT_EMPTY",
    /// A document of an accepted type that cannot be read: a damaged PDF or image, text that
    /// is not UTF-8, or one OCR refuses as malformed (Textract `BadDocumentException`).
    DocumentCorrupt = "DOCUMENT_CORRUPT",
    /// Above the configured size or page limit, or the service's (`DocumentTooLargeException`).
    DocumentTooLarge = "DOCUMENT_TOO_LARGE",
    /// An S3 event naming a bucket outside the upload allow-list (`FLEET_DOC_BUCKETS`); the
    /// object was not read.
    DocumentBucketNotAllowed = "DOCUMENT_BUCKET_NOT_ALLOWED",
    /// The object named by the event no longer exists (deleted, or that version removed,
    /// before the worker read it).
    DocumentNotFound = "DOCUMENT_NOT_FOUND",
    /// OCR failed permanently: an asynchronous job ended FAILED, or the service refused the
    /// request (`InvalidParameterException`, `InvalidS3ObjectException`, ...).
    OcrFailed = "OCR_FAILED",
    /// An OCR completion notification that cannot be used: not the expected JSON, or naming a
    /// job this deployment did not start.
    OcrCompletionInvalid = "OCR_COMPLETION_INVALID",
    /// An OCR job id nobody can vouch for: a completion whose JobTag names no job record, or
    /// whose JobId is not the job recorded for that document (a forged, foreign or stale
    /// notification; nothing is read or written for it); or a job id Textract does not know
    /// (`InvalidJobIdException`).
    OcrJobUnknown = "OCR_JOB_UNKNOWN",
    /// A recorded OCR job that outlived its results: Textract no longer knows the job id (a job
    /// id is valid for 7 days) or it still ran after 7 days. The document was never finished;
    /// replay its upload to start it again.
    OcrTimedOut = "OCR_TIMED_OUT",
    /// The entity extractor refused the text permanently (`InvalidRequestException`,
    /// `InvalidEncodingException`, `TextSizeLimitExceededException`).
    EntitiesRejected = "ENTITIES_REJECTED",
    /// A notify-queue body that is not an EventBridge event (directly or inside an SNS
    /// notification): not JSON, or `id`, `source`, `detail-type` or `detail` missing.
    NotifyEventInvalid = "NOTIFY_EVENT_INVALID",
    /// A rule's template failed to render for this event (undefined filter, type error).
    NotifyTemplateInvalid = "NOTIFY_TEMPLATE_INVALID",
    /// A rendered subject or body contained one of the event's PHI values (name, birth date,
    /// identifier, address, document text); nothing was sent.
    NotifyPhiInText = "NOTIFY_PHI_IN_TEXT",
    /// The destination refused the notification permanently: the topic does not exist, the
    /// number or topic ARN is invalid, or the publish was not authorised.
    NotifyDestinationInvalid = "NOTIFY_DESTINATION_INVALID",
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_its_string_and_serde() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(*code));
            let json = serde_json::to_string(code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
        assert_eq!(ErrorCode::parse("nope"), None);
    }
}
