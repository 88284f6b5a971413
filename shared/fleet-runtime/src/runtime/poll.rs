//! Polling: each poller takes free handler slots first, then asks for exactly that many
//! messages, and hands a receive to one task per message (or per FIFO group).

use std::sync::Arc;
use std::time::Duration;

use fleet_core::{ReceivedMessage, trace_context};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use super::Ctx;
use super::message::process_group;
use crate::batcher;
use crate::fifo;
use crate::otel;
use crate::telemetry;

/// How long past its wait time an in-flight long poll may run once shutdown has begun.
const POLL_GRACE_AT_SHUTDOWN: Duration = Duration::from_secs(1);

pub(super) async fn poll_loop(ctx: Arc<Ctx>, slots: Arc<Semaphore>, tracker: TaskTracker) {
    let health = &ctx.telemetry.health;
    let mut error_backoff = Duration::from_millis(200);
    // The last receive came back full: the queue has a backlog.
    let mut backlog = false;
    let full_batch = batcher::MAX_BATCH.min(ctx.cfg.concurrency);
    loop {
        // Slots first: never receive a message no handler is free to take.
        health.waiting_for_slots(true);
        let acquired = tokio::select! {
            biased;
            _ = ctx.shutdown.cancelled() => None,
            p = slots.clone().acquire_owned() => p.ok(),
        };
        health.waiting_for_slots(false);
        let Some(mut permits) = acquired else { break };
        while permits.num_permits() < batcher::MAX_BATCH {
            match slots.clone().try_acquire_owned() {
                Ok(p) => permits.merge(p),
                Err(_) => break,
            }
        }
        // With a backlog, handlers tend to finish in bursts (a PutEvents batch answers ten at
        // once): a short wait for the rest of the burst turns several small receives into one
        // of ten. Without a backlog nothing waits, so a quiet queue keeps its latency.
        if backlog && permits.num_permits() < full_batch {
            let until = tokio::time::Instant::now() + ctx.cfg.receive_linger;
            while permits.num_permits() < full_batch {
                tokio::select! {
                    biased;
                    _ = ctx.shutdown.cancelled() => break,
                    p = slots.clone().acquire_owned() => match p {
                        Ok(p) => permits.merge(p),
                        Err(_) => break,
                    },
                    _ = tokio::time::sleep_until(until) => break,
                }
            }
        }
        // The linger (and the slots) may have been waited on past the shutdown signal: no
        // receive starts after it, since what it returned would only be handed back.
        if ctx.shutdown.is_cancelled() {
            break;
        }
        let max = u32::try_from(permits.num_permits()).unwrap_or(1);
        // An in-flight long poll is not dropped at shutdown: SQS may already have handed its
        // messages to the abandoned connection, leaving them invisible. The poll ends within
        // wait_time (at most 20 s); whatever it returns is processed within the drain.
        // A poll that outlives its own wait by a wide margin after shutdown (a hung connection)
        // is dropped after all, so shutdown stays bounded.
        let overdue = async {
            ctx.shutdown.cancelled().await;
            tokio::time::sleep(ctx.cfg.wait_time + POLL_GRACE_AT_SHUTDOWN).await;
        };
        // SQS counts a message's 12-hour visibility limit from its receipt of this request.
        let requested_at = Instant::now();
        let received = tokio::select! {
            r = ctx.queue.receive(max, ctx.cfg.wait_time, ctx.cfg.visibility_timeout) => r,
            _ = overdue => break,
        };
        match received {
            Ok(messages) => {
                error_backoff = Duration::from_millis(200);
                backlog = messages.len() >= max as usize;
                telemetry::ReceiveCompleted {
                    count: messages.len(),
                }
                .emit(&ctx.telemetry);
                if !messages.is_empty() {
                    dispatch(&ctx, messages, permits, &tracker, requested_at);
                }
            }
            Err(e) => {
                drop(permits);
                backlog = false;
                let wait = e
                    .retry_after
                    .unwrap_or(error_backoff)
                    .min(Duration::from_secs(20));
                telemetry::ReceiveFailed {
                    error: &e,
                    backoff: wait,
                }
                .emit(&ctx.telemetry);
                error_backoff = (error_backoff * 2).min(Duration::from_secs(20));
                tokio::select! {
                    _ = ctx.shutdown.cancelled() => break,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}

/// The receive's CLIENT span (`crate::otel`), closed at once: it links the batch's producers,
/// and each message's process span links back to it. Invalid when tracing is off.
fn receive_span(ctx: &Ctx, messages: &[ReceivedMessage]) -> opentelemetry::trace::SpanContext {
    if !otel::enabled() {
        return opentelemetry::trace::SpanContext::empty_context();
    }
    let span = otel::receive_span(
        &ctx.telemetry.queue,
        messages
            .iter()
            .map(|m| trace_context::extract(&m.attributes, m.trace_header.as_deref())),
        messages.len(),
    );
    otel::span_context(&span)
}

fn dispatch(
    ctx: &Arc<Ctx>,
    messages: Vec<ReceivedMessage>,
    mut permits: OwnedSemaphorePermit,
    tracker: &TaskTracker,
    received_at: Instant,
) {
    let receive = receive_span(ctx, &messages);
    let groups = if ctx.fifo {
        fifo::group_in_order(messages, |m| m.group_id.as_deref())
    } else {
        messages.into_iter().map(|m| vec![m]).collect()
    };
    for group in groups {
        // An adapter returning more than asked would leave some without a slot; they still run.
        let slots = permits.split(group.len());
        tracker.spawn(process_group(
            ctx.clone(),
            group,
            slots,
            received_at,
            receive.clone(),
        ));
    }
}
