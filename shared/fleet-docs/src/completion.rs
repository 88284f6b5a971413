//! Textract's completion notification: what an asynchronous job publishes to the SNS topic of
//! its `NotificationChannel` when it ends, as it arrives on the completion queue (wrapped in
//! an SNS envelope, or raw when the subscription has raw message delivery).
//!
//! The message (Textract developer guide, "Calling Amazon Textract asynchronous operations"):
//! `{"JobId": "...", "Status": "SUCCEEDED", "API": "StartDocumentTextDetection",
//!   "JobTag": "...", "Timestamp": 1700000000000,
//!   "DocumentLocation": {"S3ObjectName": "...", "S3Bucket": "..."}}`.
//! `Status` is `SUCCEEDED`, `FAILED`, `ERROR` or `PARTIAL_SUCCESS`.

use serde_json::{Map, Value};

/// How a job ended, as the notification says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    Succeeded,
    PartialSuccess,
    Failed,
    Error,
}

/// One parsed completion notification. The document location is not kept: it holds the
/// object key (PHI), and the worker's own job record says which document it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub job_id: String,
    pub status: JobStatus,
    /// The `JobTag` the job was started with: the worker's token for the document.
    pub job_tag: Option<String>,
    /// `StartDocumentTextDetection`, `StartDocumentAnalysis`, ...
    pub api: String,
}

/// Why a body is not a usable completion notification; names fields, never values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompletionError {
    #[error("the {0} is not a JSON object")]
    NotJson(&'static str),
    #[error("{0} is missing or not a string")]
    MissingField(&'static str),
    #[error("Status is not one of SUCCEEDED, PARTIAL_SUCCESS, FAILED, ERROR")]
    UnknownStatus,
}

/// Parse a completion queue body.
pub fn parse(body: &str) -> Result<Completion, CompletionError> {
    let body = body.strip_prefix('\u{feff}').unwrap_or(body);
    let outer = object(body, "body")?;
    let msg = if outer.get("Type").and_then(Value::as_str) == Some("Notification") {
        let inner = outer
            .get("Message")
            .and_then(Value::as_str)
            .ok_or(CompletionError::MissingField("Message"))?;
        object(inner, "SNS Message")?
    } else {
        outer
    };
    let field = |name: &'static str| {
        msg.get(name)
            .and_then(Value::as_str)
            .ok_or(CompletionError::MissingField(name))
    };
    let status = match field("Status")? {
        "SUCCEEDED" => JobStatus::Succeeded,
        "PARTIAL_SUCCESS" => JobStatus::PartialSuccess,
        "FAILED" => JobStatus::Failed,
        "ERROR" => JobStatus::Error,
        _ => return Err(CompletionError::UnknownStatus),
    };
    Ok(Completion {
        job_id: field("JobId")?.to_string(),
        status,
        job_tag: msg
            .get("JobTag")
            .and_then(Value::as_str)
            .map(str::to_string),
        api: field("API")?.to_string(),
    })
}

fn object(text: &str, what: &'static str) -> Result<Map<String, Value>, CompletionError> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(CompletionError::NotJson(what)),
    }
}

/// The notification a job publishes, for tests and local tools: exactly the fields Textract
/// sends.
pub fn notification_json(
    job_id: &str,
    status: &str,
    job_tag: &str,
    bucket: &str,
    key: &str,
) -> String {
    serde_json::json!({
        "JobId": job_id,
        "Status": status,
        "API": "StartDocumentTextDetection",
        "JobTag": job_tag,
        "Timestamp": 1_700_000_000_000_i64,
        "DocumentLocation": {"S3ObjectName": key, "S3Bucket": bucket},
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_and_sns_wrapped_notifications_parse_alike() {
        let raw = notification_json("job-1", "SUCCEEDED", "tok", "b", "scan 1.pdf");
        let sns = serde_json::json!({
            "Type": "Notification",
            "MessageId": "m",
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:textract",
            "Message": raw,
        })
        .to_string();
        let want = Completion {
            job_id: "job-1".into(),
            status: JobStatus::Succeeded,
            job_tag: Some("tok".into()),
            api: "StartDocumentTextDetection".into(),
        };
        assert_eq!(parse(&raw).unwrap(), want);
        assert_eq!(parse(&sns).unwrap(), want);
    }

    #[test]
    fn every_status_is_read() {
        for (s, want) in [
            ("SUCCEEDED", JobStatus::Succeeded),
            ("PARTIAL_SUCCESS", JobStatus::PartialSuccess),
            ("FAILED", JobStatus::Failed),
            ("ERROR", JobStatus::Error),
        ] {
            let c = parse(&notification_json("j", s, "t", "b", "k")).unwrap();
            assert_eq!(c.status, want);
        }
    }

    #[test]
    fn bad_bodies_name_what_is_wrong() {
        assert_eq!(parse("nope"), Err(CompletionError::NotJson("body")));
        assert_eq!(
            parse(r#"{"Type":"Notification","Message":"x"}"#),
            Err(CompletionError::NotJson("SNS Message"))
        );
        assert_eq!(
            parse(r#"{"Status":"SUCCEEDED","API":"StartDocumentTextDetection"}"#),
            Err(CompletionError::MissingField("JobId"))
        );
        assert_eq!(
            parse(r#"{"JobId":"j","Status":"DONE","API":"x"}"#),
            Err(CompletionError::UnknownStatus)
        );
        assert_eq!(parse("[]"), Err(CompletionError::NotJson("body")));
    }

    proptest::proptest! {
        #[test]
        fn no_body_panics(body in ".{0,400}") {
            let _ = parse(&body);
            let wrapped = serde_json::json!({"Type": "Notification", "Message": body}).to_string();
            let _ = parse(&wrapped);
        }
    }

    #[test]
    fn errors_do_not_echo_values() {
        let e = parse(r#"{"JobId":"j","Status":"Jane Doe","API":"x"}"#).unwrap_err();
        assert!(!e.to_string().contains("Jane"));
    }
}
