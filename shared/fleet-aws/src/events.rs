//! [`EventBus`] on EventBridge.

use async_trait::async_trait;
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::primitives::{DateTime, DateTimeFormat};
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use fleet_core::{BatchResult, BusEvent, EntryFailure, EventBus, PortError};

use crate::error::{classify, sanitize_code};

/// One EventBridge bus, addressed by name (or ARN).
#[derive(Debug, Clone)]
pub struct EventBridgeBus {
    client: Client,
    name: String,
}

impl EventBridgeBus {
    pub(crate) fn new(client: Client, name: String) -> Self {
        Self { client, name }
    }
}

/// Entry codes that say "try again" rather than "this entry is wrong".
fn retryable_entry_code(code: &str) -> bool {
    matches!(
        code,
        "InternalFailure" | "InternalException" | "ThrottlingException"
    )
}

#[async_trait]
impl EventBus for EventBridgeBus {
    fn id(&self) -> &str {
        &self.name
    }

    async fn put_events(&self, events: &[BusEvent]) -> Result<BatchResult, PortError> {
        const OP: &str = "events.PutEvents";
        if events.len() > 10 {
            return Err(PortError::invalid(
                OP,
                format!("{} events exceed 10 per call", events.len()),
            ));
        }
        if events.is_empty() {
            return Ok(BatchResult::default());
        }
        let mut entries = Vec::with_capacity(events.len());
        for e in events {
            let time = match &e.time {
                Some(t) => Some(
                    DateTime::from_str(t, DateTimeFormat::DateTimeWithOffset)
                        .map_err(|_| PortError::invalid(OP, "event time is not RFC 3339"))?,
                ),
                None => None,
            };
            entries.push(
                PutEventsRequestEntry::builder()
                    .event_bus_name(&self.name)
                    .source(&e.source)
                    .detail_type(&e.detail_type)
                    .detail(&e.detail)
                    .set_resources((!e.resources.is_empty()).then(|| e.resources.clone()))
                    .set_time(time)
                    .set_trace_header(e.trace_header.clone())
                    .build(),
            );
        }
        let out = self
            .client
            .put_events()
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| classify(OP, &e))?;
        let mut failed = out
            .entries()
            .iter()
            .enumerate()
            .filter_map(|(index, entry)| {
                let code = entry.error_code()?;
                Some(EntryFailure {
                    index,
                    code: sanitize_code(code),
                    sender_fault: !retryable_entry_code(code),
                })
            })
            .collect::<Vec<_>>();
        // The response lists entries in request order; if it is short, the missing ones are
        // unaccounted for and must be treated as failed rather than silently dropped.
        for index in out.entries().len()..events.len() {
            failed.push(EntryFailure {
                index,
                code: "MissingEntry".into(),
                sender_fault: false,
            });
        }
        Ok(BatchResult { failed })
    }
}
