//! Producer text in the runtime's logs (issue 16 item 4): a `correlation_id` attribute is
//! producer-supplied and goes into every log line of its message's span, into the delivery and
//! from there into the events a worker publishes.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fleet_core::ErrorCode;
use fleet_runtime::{Delivery, Outcome};
use tracing_subscriber::layer::SubscriberExt as _;

use crate::runtime::{QueueOpts, config, env, failure_of, start, wait_until};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Records each delivery's correlation id and logs one line inside the message span.
struct Recording(Mutex<Vec<(String, String)>>);

#[async_trait::async_trait]
impl fleet_runtime::Handler for Recording {
    async fn handle(&self, d: &Delivery) -> Outcome {
        tracing::info!("handled");
        self.0
            .lock()
            .unwrap()
            .push((d.body.clone(), d.correlation_id.clone()));
        if d.body == "fails" {
            return Outcome::fail(ErrorCode::Hl7NotAdt, "fixed detail");
        }
        Outcome::Done
    }
}

// One thread: the subscriber set with `set_default` sees the runtime's tasks too.
#[tokio::test(flavor = "current_thread")]
async fn item4_free_text_correlation_id_is_hashed_in_the_span_the_delivery_and_the_log() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::registry().with(
        tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(move || writer.clone()),
    );
    let _guard = tracing::subscriber::set_default(subscriber);

    let env = env();
    let q = env.queue("corr", QueueOpts::default());
    let patient = "BRZEZINSKI^ZBIGNIEW 1961-03-04";
    env.send(&q, "free-text", &[("correlation_id", patient)], None)
        .await;
    env.send(
        &q,
        "control",
        &[("correlation_id", "corr\r\nforged: line")],
        None,
    )
    .await;
    env.send(
        &q,
        "plain",
        &[("correlation_id", "0f8fad5b-d9cb-469f")],
        None,
    )
    .await;
    let long = "a".repeat(129);
    env.send(&q, "long", &[("correlation_id", long.as_str())], None)
        .await;
    env.send(&q, "fails", &[("correlation_id", patient)], None)
        .await;
    let h = Arc::new(Recording(Mutex::new(Vec::new())));
    let run = start(config(&q), Arc::new(env.local.clone()), h.clone());
    wait_until("all handled", Duration::from_secs(10), || {
        h.0.lock().unwrap().len() == 5
    })
    .await;
    let dlq = format!("{q}-dlq");
    wait_until("dead-lettered", Duration::from_secs(10), || {
        env.snapshot(&dlq).len() == 1
    })
    .await;
    run.stop().await;

    let seen: std::collections::BTreeMap<String, String> =
        h.0.lock().unwrap().iter().cloned().collect();
    let hashed = fleet_runtime::correlation_id(Some(patient), "ignored");
    assert!(hashed.starts_with("sha256:"), "{hashed}");
    assert_eq!(seen["free-text"], hashed);
    assert_eq!(
        seen["fails"], hashed,
        "one value, one hash: it still correlates"
    );
    assert!(
        seen["control"].starts_with("sha256:"),
        "{}",
        seen["control"]
    );
    assert!(seen["long"].starts_with("sha256:"), "{}", seen["long"]);
    assert_eq!(seen["plain"], "0f8fad5b-d9cb-469f");

    let log = captured.text();
    assert!(
        log.contains(&hashed) && log.contains("0f8fad5b-d9cb-469f"),
        "the span does not carry the correlation ids: the scan would prove nothing"
    );
    for needle in ["BRZEZINSKI", "ZBIGNIEW", "1961-03-04", "forged", &long] {
        assert!(
            !log.contains(needle),
            "producer text from a correlation_id reached the log"
        );
    }
    // The DLQ copy keeps the producer's attribute as it was (it is the message), and the
    // failure metadata holds the fixed detail only.
    let dead = &env.snapshot(&dlq)[0];
    assert_eq!(failure_of(dead).detail, "fixed detail");
}
