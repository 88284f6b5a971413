//! The message handler: event → matching rules → render (allow-listed fields only) → PHI
//! check → deduplicate (event id + rule) → rate limit → publish.
//!
//! Deduplication uses the runtime's idempotency store on the records port: the claim is a
//! conditional "not exists" write keyed by the event's stable id and the rule name, so a
//! redelivered or republished event (same `detail.event_id`) is published once. A publish
//! that fails abandons the claim so the retry can take it; a crash between the publish and
//! the completion leaves an in-progress claim that expires after [`CLAIM_TTL`], after which
//! the notification is sent again (at least once across a crash, never twice otherwise).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use fleet_core::trace_context;
use fleet_core::{ErrorCode, ErrorKind, Notification, Notifier, PortError, RecordStore};
use fleet_runtime::otel;
use fleet_runtime::{Begin, Delivery, Failure, Handler, IdempotencyStore, Outcome, Settled};
use serde_json::Value;
use tracing::Instrument as _;

use crate::event;
use crate::ratelimit::{RateLimiter, Slot};
use crate::rules::{RenderError, Rule, Rules};

/// How long a claim protects a notification being sent.
pub const CLAIM_TTL: Duration = Duration::from_secs(120);
/// How long a delivery record is kept (redeliveries and DLQ replays within this are absorbed).
pub const DONE_TTL: Duration = Duration::from_secs(14 * 24 * 3600);

/// What the handler did for one rule (tests, the demo, `--print`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub rule: String,
    pub destination: fleet_core::Destination,
    pub notification: Notification,
    pub message_id: String,
}

/// The result of handling one event, before it becomes an [`Outcome`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handled {
    pub sent: Vec<Sent>,
    /// Rules whose notification had been sent before (a redelivery).
    pub duplicates: Vec<String>,
}

pub struct NotifyHandler {
    rules: Arc<Rules>,
    notifier: Arc<dyn Notifier>,
    dedup: IdempotencyStore,
    limiter: Arc<RateLimiter>,
    print: bool,
}

impl NotifyHandler {
    pub fn new(
        rules: Arc<Rules>,
        notifier: Arc<dyn Notifier>,
        records: Arc<dyn RecordStore>,
        limiter: Arc<RateLimiter>,
    ) -> Self {
        Self {
            rules,
            notifier,
            dedup: IdempotencyStore::new(records),
            limiter,
            print: false,
        }
    }

    /// Print each published notification as a JSON line on stdout (local development).
    pub fn print_to_stdout(mut self, print: bool) -> Self {
        self.print = print;
        self
    }

    /// Handle one body.
    pub async fn handle_body(&self, body: &str) -> Result<Handled, Failure> {
        let ev = event::parse(body)
            .map_err(|why| Failure::permanent(ErrorCode::NotifyEventInvalid, why))?;
        let mut handled = Handled {
            sent: Vec::new(),
            duplicates: Vec::new(),
        };
        let phi = event::phi_values(&ev.value);
        for rule in self.rules.matching(&ev.value) {
            let rendered = self
                .rules
                .render_checked(rule, &ev.value, &phi)
                .map_err(|e| render_failure(&rule.name, &e))?;
            // The exact texts that are published, checked once more.
            let texts = [
                rendered.subject.as_deref().unwrap_or(""),
                rendered.body.as_str(),
            ];
            if texts.iter().any(|t| event::leaks(t, &phi)) {
                return Err(render_failure(&rule.name, &RenderError::PhiInText("text")));
            }
            let notification = notification_for(rule, &ev, rendered);
            match self.send_once(rule, &ev.dedup_key, notification).await? {
                Some(sent) => handled.sent.push(sent),
                None => handled.duplicates.push(rule.name.clone()),
            }
        }
        Ok(handled)
    }

    async fn send_once(
        &self,
        rule: &Rule,
        event_key: &str,
        notification: Notification,
    ) -> Result<Option<Sent>, Failure> {
        let key = format!("notify#{event_key}#{}", rule.name);
        let claim = match self
            .dedup
            .begin(&key, CLAIM_TTL)
            .await
            .map_err(Failure::from)?
        {
            Begin::Completed => {
                tracing::info!(rule = %rule.name, "already notified; redelivery skipped");
                return Ok(None);
            }
            Begin::InProgress => {
                return Err(
                    Failure::retry("notification in progress elsewhere").after(CLAIM_TTL / 4)
                );
            }
            Begin::Started(claim) => claim,
        };
        let dest_key = match &rule.destination {
            fleet_core::Destination::Topic(t) => format!("topic:{t}"),
            fleet_core::Destination::Sms(n) => format!("sms:{n}"),
        };
        match self.limiter.slot(&dest_key) {
            Slot::After(wait) => {
                if !wait.is_zero() {
                    tracing::debug!(rule = %rule.name, wait_ms = wait.as_millis() as u64, "rate limited; waiting");
                    tokio::time::sleep(wait).await;
                }
            }
            Slot::Defer(wait) => {
                let _ = self.dedup.abandon(&claim).await;
                tracing::info!(rule = %rule.name, defer_ms = wait.as_millis() as u64, "rate limited; deferred");
                return Err(Failure::retry("destination rate limit").after(wait));
            }
        }
        // The PRODUCER span `send <topic>`; a topic's subscribers get its context as the
        // `traceparent` attribute when the notification has room for one (SNS, like SQS,
        // takes 10). An SMS carries none.
        let send = otel::producer_span(otel::SYSTEM_SNS, &rule.destination.redacted());
        let mut notification = notification;
        if otel::enabled()
            && matches!(rule.destination, fleet_core::Destination::Topic(_))
            && notification.attributes.len() < trace_context::MAX_MESSAGE_ATTRIBUTES
            && let Some(header) = trace_context::traceparent(&otel::span_context(&send))
        {
            notification
                .attributes
                .insert(trace_context::TRACEPARENT_ATTRIBUTE.to_string(), header);
        }
        match self
            .notifier
            .publish(&rule.destination, &notification)
            .instrument(send)
            .await
        {
            Ok(message_id) => {
                match self.dedup.complete(&claim, DONE_TTL).await {
                    Ok(Settled::Recorded) => {}
                    // Published after the claim expired and another delivery took it over:
                    // that one may send a second copy (at least once, never lost).
                    Ok(Settled::NotOwner) => {
                        tracing::warn!(rule = %rule.name, "claim taken over before the delivery record was completed");
                    }
                    // Published. The claim stays in progress until it expires, so a redelivery
                    // within CLAIM_TTL retries rather than sends; only after it could a
                    // second copy go out.
                    Err(e) => {
                        tracing::warn!(rule = %rule.name, op = e.op, kind = e.kind.as_str(), "delivery record not completed");
                    }
                }
                tracing::info!(rule = %rule.name, destination = %rule.destination.redacted(), "notification published");
                let sent = Sent {
                    rule: rule.name.clone(),
                    destination: rule.destination.clone(),
                    notification,
                    message_id,
                };
                if self.print {
                    println!(
                        "{}",
                        serde_json::json!({
                            "rule": sent.rule,
                            "destination": sent.destination,
                            "subject": sent.notification.subject,
                            "body": sent.notification.body,
                        })
                    );
                }
                Ok(Some(sent))
            }
            Err(e) => {
                self.limiter.release(&dest_key);
                let _ = self.dedup.abandon(&claim).await;
                Err(publish_failure(&rule.name, &e))
            }
        }
    }
}

/// A refused rendering: `NOTIFY_PHI_IN_TEXT` or `NOTIFY_TEMPLATE_INVALID`, naming the rule and
/// where, never the text or the value.
fn render_failure(rule: &str, e: &RenderError) -> Failure {
    match e {
        RenderError::PhiInText(_) => {
            tracing::warn!(rule = %rule, "a PHI value of the event reached the notification; refused");
            Failure::permanent(ErrorCode::NotifyPhiInText, format!("rule {rule}: {e}"))
        }
        RenderError::Template(_) => Failure::permanent(
            ErrorCode::NotifyTemplateInvalid,
            format!("rule {rule}: {e}"),
        ),
    }
}

fn notification_for(
    rule: &Rule,
    ev: &event::Event,
    rendered: crate::rules::Rendered,
) -> Notification {
    let mut attributes = rule.attributes.clone();
    attributes.insert("fleet.rule".into(), rule.name.clone());
    attributes.insert("fleet.event_id".into(), ev.dedup_key.clone());
    if let Some(dt) = ev.value.get("detail-type").and_then(Value::as_str) {
        attributes.insert("fleet.event_type".into(), dt.to_string());
    }
    let dedup: String = {
        use sha2::{Digest, Sha256};
        hex::encode(&Sha256::digest(format!("{}#{}", ev.dedup_key, rule.name))[..16])
    };
    Notification {
        subject: rendered.subject,
        body: rendered.body,
        attributes,
        dedup_id: Some(dedup),
        group_id: Some(rule.name.clone()),
    }
}

/// A failed publish: the fleet's mapping ([`Failure::from_port`]) with one documented
/// override. The destination is named by a rule, and SNS answers a topic that does not exist
/// (`NotFound`), a number or ARN it refuses (`Invalid`) and a publish it does not authorise
/// for that topic or number (`AccessDenied`: a topic policy, an SMS sandbox) for that one
/// destination only; the other rules and events go on. So the event is dead-lettered as
/// `NOTIFY_DESTINATION_INVALID` naming the rule: the operator fixes the rule or the topic and
/// replays, and the delivery records send only what is missing. Throttling and outages retry.
pub fn publish_failure(rule: &str, e: &PortError) -> Failure {
    match e.kind {
        ErrorKind::NotFound | ErrorKind::Invalid | ErrorKind::AccessDenied => Failure::permanent(
            ErrorCode::NotifyDestinationInvalid,
            format!("rule {rule}: {}: {}", e.op, e.message),
        ),
        _ => Failure::from_port(e),
    }
}

#[async_trait]
impl Handler for NotifyHandler {
    async fn handle(&self, delivery: &Delivery) -> Outcome {
        match self.handle_body(&delivery.body).await {
            Ok(h) => {
                if h.sent.is_empty() && h.duplicates.is_empty() {
                    tracing::debug!("no rule matched");
                }
                Outcome::Done
            }
            Err(failure) => failure.into(),
        }
    }
}
