//! Issue 16 item 10: the unencrypted override (`FLEET_ALLOW_UNENCRYPTED`) on the aws backend is
//! honoured only against a local protocol server, every endpoint overridden to a loopback
//! address; against AWS itself it is refused with the reason.

use fleet_aws::{AwsBackend, is_loopback_url};
use fleet_core::Backend;

#[test]
fn item10_loopback_urls_are_told_apart_from_lookalikes() {
    for url in [
        "http://127.0.0.1:5000",
        "http://127.0.0.1",
        "https://127.8.9.10:4566/",
        "http://localhost:4566",
        "HTTP://LOCALHOST.:4566/path",
        "http://[::1]:5000",
        "http://[::ffff:127.0.0.1]:5000",
    ] {
        assert!(is_loopback_url(url), "{url} is loopback");
    }
    for url in [
        "https://sqs.us-east-1.amazonaws.com",
        "http://10.0.0.5:5000",
        "http://127.0.0.1@evil.example:5000",
        "http://user@127.0.0.1:5000",
        "http://127.0.0.1.nip.io:5000",
        "http://localhost.evil.example",
        "http://[::1]evil.example",
        "ftp://127.0.0.1",
        "127.0.0.1:5000",
        "",
    ] {
        assert!(!is_loopback_url(url), "{url} is not loopback");
    }
}

#[tokio::test]
async fn item10_override_is_refused_against_aws_and_allowed_against_loopback() {
    let aws = AwsBackend::with_endpoint("https://sqs.us-east-1.amazonaws.com", "us-east-1").await;
    let err = aws
        .unencrypted_override()
        .expect_err("the override against AWS itself");
    assert!(
        err.contains("FLEET_ALLOW_UNENCRYPTED")
            && err.contains("https://sqs.us-east-1.amazonaws.com, not a loopback address")
            && err.contains("encrypt the queue"),
        "{err}"
    );
    let sneaky = AwsBackend::with_endpoint("http://127.0.0.1@sqs.amazonaws.com", "us-east-1").await;
    assert!(sneaky.unencrypted_override().is_err());
    for url in [
        "http://127.0.0.1:5000",
        "http://localhost:4566",
        "http://[::1]:5000",
    ] {
        let local = AwsBackend::with_endpoint(url, "us-east-1").await;
        assert_eq!(local.unencrypted_override(), Ok(()), "{url}");
    }
}
