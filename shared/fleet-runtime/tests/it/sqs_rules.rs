//! Issue 15, items 1, 2 and 5: the runtime under SQS's rules on receive counts, leases and
//! shutdown, against the real local backend. The decorators below only add latency to real
//! calls (a slow network, a slow DLQ) or count them; every answer comes from the local queue.
//! The FIFO receive-count check runs on moto too, in the workspace's contract suite.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use fleet_core::{Backend, ErrorCode};
use fleet_runtime::{Delivery, Handler, Outcome};

use crate::decorated::{Faults, decorated};
use crate::runtime::{QueueOpts, config, env, failure_of, start, wait_until};

/// A handler deciding from the delivery after an optional sleep, recording (body, receive
/// count, attempt) of every call.
struct Scripted<F> {
    decide: F,
    calls: Mutex<Vec<(String, u32, u32)>>,
}

impl<F> Scripted<F> {
    fn calls(&self) -> Vec<(String, u32, u32)> {
        self.calls.lock().unwrap().clone()
    }
}

fn scripted<F>(decide: F) -> Arc<Scripted<F>>
where
    F: Fn(&Delivery) -> (Duration, Outcome) + Send + Sync + 'static,
{
    Arc::new(Scripted {
        decide,
        calls: Mutex::new(Vec::new()),
    })
}

#[async_trait]
impl<F> Handler for Scripted<F>
where
    F: Fn(&Delivery) -> (Duration, Outcome) + Send + Sync + 'static,
{
    async fn handle(&self, d: &Delivery) -> Outcome {
        self.calls
            .lock()
            .unwrap()
            .push((d.body.clone(), d.receive_count, d.attempt));
        let (sleep, outcome) = (self.decide)(d);
        tokio::time::sleep(sleep).await;
        outcome
    }
}

fn wall_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Item 1: receive counts
// ---------------------------------------------------------------------------------------------

/// Messages received before or during a drain are processed, not handed back: each hand-back
/// spends one of the message's receives. Before the fix the four unstarted were released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item1_a_drain_processes_what_was_received_and_counts_what_it_gives_back() {
    let env = env();
    let q = env.queue(
        "drain",
        QueueOpts {
            fifo: true,
            ..QueueOpts::default()
        },
    );
    for i in 0..5 {
        env.send(&q, &format!("g-{i}"), &[], Some("patient-1"))
            .await;
    }
    let h = scripted(|_| (Duration::from_millis(300), Outcome::Done));
    let run = start(config(&q), Arc::new(env.local.clone()), h.clone());
    wait_until("first handler started", Duration::from_secs(10), || {
        !h.calls().is_empty()
    })
    .await;
    let report = run.stop().await;
    assert_eq!(
        (
            report.succeeded,
            report.released_on_shutdown,
            report.abandoned
        ),
        (5, 0, 0),
        "{report:?}"
    );
    assert!(env.snapshot(&q).is_empty(), "everything received was done");
    assert!(h.calls().iter().all(|(_, count, _)| *count == 1));

    // A drain deadline shorter than the group: the running one is abandoned at the deadline,
    // the unstarted are handed back and counted.
    for i in 0..5 {
        env.send(&q, &format!("h-{i}"), &[], Some("patient-2"))
            .await;
    }
    let h = scripted(|_| (Duration::from_millis(400), Outcome::Done));
    let mut cfg = config(&q);
    cfg.drain_deadline = Duration::from_millis(600);
    let run = start(cfg, Arc::new(env.local.clone()), h.clone());
    wait_until("first handler started", Duration::from_secs(10), || {
        !h.calls().is_empty()
    })
    .await;
    let report = run.stop().await;
    assert_eq!(
        (
            report.succeeded,
            report.abandoned,
            report.released_on_shutdown
        ),
        (1, 1, 3),
        "{report:?}"
    );
}

/// A retryable failure in a FIFO group with messages behind it is retried in place: the later
/// messages are not handed back (each hand-back would spend a receive), and order holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item1_fifo_failure_retries_in_place_without_releasing_the_group() {
    let env = env();
    let q = env.queue(
        "order",
        QueueOpts {
            fifo: true,
            ..QueueOpts::default()
        },
    );
    for i in 1..=4 {
        env.send(&q, &format!("a{i}"), &[], Some("A")).await;
    }
    for i in 1..=2 {
        env.send(&q, &format!("b{i}"), &[], Some("B")).await;
    }
    // a2 fails on its first attempt only.
    let h = scripted(|d| {
        if d.body == "a2" && d.attempt == 1 {
            (Duration::ZERO, Outcome::retry("transient"))
        } else {
            (Duration::ZERO, Outcome::Done)
        }
    });
    let run = start(config(&q), Arc::new(env.local.clone()), h.clone());
    wait_until("all handled", Duration::from_secs(10), || {
        env.snapshot(&q).is_empty()
    })
    .await;
    let report = run.stop().await;
    let calls = h.calls();
    let group = |p: char| -> Vec<(String, u32, u32)> {
        calls
            .iter()
            .filter(|(b, _, _)| b.starts_with(p))
            .cloned()
            .collect()
    };
    let a = |b: &str, count: u32, attempt: u32| (b.to_string(), count, attempt);
    assert_eq!(
        group('a'),
        vec![
            a("a1", 1, 1),
            a("a2", 1, 1),
            a("a2", 1, 2),
            a("a3", 1, 1),
            a("a4", 1, 1)
        ]
    );
    assert_eq!(group('b'), vec![a("b1", 1, 1), a("b2", 1, 1)]);
    assert_eq!(report.retried, 1);
    assert_eq!(report.succeeded, 6);
    assert_eq!(report.released_fifo_hold, 0, "{report:?}");
}

// ---------------------------------------------------------------------------------------------
// Item 2: lost leases, the 12-hour limit, extending while the worker still holds a message
// ---------------------------------------------------------------------------------------------

/// The first heartbeat arrives after the visibility lapsed: the queue answers
/// `MessageNotInflight`. The lease is lost: the heartbeat stops, and the handler's permanent
/// failure is not dead-lettered (the message's next receive owns it, and succeeds). Before the
/// fix the code was taken for a transient error and the failure went to the DLQ.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item2_a_lapsed_visibility_is_a_lost_lease() {
    let env = env();
    let q = env.queue(
        "lost",
        QueueOpts {
            visibility: Duration::from_secs(1),
            ..QueueOpts::default()
        },
    );
    env.send(&q, "m", &[], None).await;
    let h = scripted(|d| {
        if d.receive_count == 1 {
            (
                Duration::from_millis(2500),
                Outcome::fail(ErrorCode::Hl7ParseError, "decided on a stale lease"),
            )
        } else {
            (Duration::ZERO, Outcome::Done)
        }
    });
    let (backend, _) = decorated(
        &env.local,
        Faults {
            first_visibility_change: Some(Duration::from_millis(1500)),
            ..Faults::default()
        },
    );
    let mut cfg = config(&q);
    cfg.concurrency = 1;
    cfg.heartbeat.extend_by = Duration::from_secs(1);
    let run = start(cfg, backend, h.clone());
    wait_until("handled twice", Duration::from_secs(15), || {
        h.calls().len() == 2 && env.snapshot(&q).is_empty()
    })
    .await;
    let report = run.stop().await;
    assert_eq!(report.leases_lost, 1, "{report:?}");
    assert_eq!(report.dead_lettered, 0, "{report:?}");
    assert!(env.snapshot(&format!("{q}-dlq")).is_empty());
    assert_eq!(report.succeeded, 1, "{report:?}");
}

/// No extension reaches past the lease's lifetime counted from the receive (SQS: 12 hours from
/// the ReceiveMessage request; here a 3.5 s lifetime). Before the fix the lifetime counted from
/// when the receive answered and the last extension, computed before the batcher's linger,
/// landed past it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item2_extensions_stay_within_the_lifetime_counted_from_the_receive() {
    let env = env();
    let visibility = Duration::from_secs(1);
    let q = env.queue(
        "cap",
        QueueOpts {
            visibility,
            ..QueueOpts::default()
        },
    );
    env.send(&q, "long", &[], None).await;
    let h = scripted(|_| (Duration::from_millis(3000), Outcome::Done));
    let lifetime = Duration::from_millis(3500);
    let mut cfg = config(&q);
    cfg.concurrency = 1;
    cfg.delete_linger = Duration::from_millis(200);
    cfg.heartbeat.extend_by = Duration::from_secs(2);
    cfg.heartbeat.max_lifetime = lifetime;
    let run = start(cfg, Arc::new(env.local.clone()), h.clone());
    let mut first_visible_at = None;
    let mut highest = 0i64;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(15) && h.calls().len() < 2 {
        if let Some(m) = env.snapshot(&q).first()
            && m.receive_count == 1
        {
            first_visible_at.get_or_insert(m.visible_at_ms);
            highest = highest.max(m.visible_at_ms);
        }
        if !h.calls().is_empty() && env.snapshot(&q).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let report = run.stop().await;
    let received_ms = first_visible_at.expect("seen in flight") - visibility.as_millis() as i64;
    let limit = received_ms + lifetime.as_millis() as i64;
    assert!(
        highest <= limit,
        "an extension reached {} ms past the lifetime",
        highest - limit
    );
    assert!(report.heartbeat_extensions >= 1, "{report:?}");
}

/// A slow claim-check fetch and a slow dead-letter send both outlast the 1 s visibility: the
/// heartbeat keeps the message invisible through them, so it is neither received again nor
/// dead-lettered twice. Before the fix the heartbeat ran only around the handler.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item2_the_lease_is_extended_during_the_claim_check_fetch_and_the_dlq_send() {
    let env = env();
    let q = env.queue(
        "held",
        QueueOpts {
            visibility: Duration::from_secs(1),
            ..QueueOpts::default()
        },
    );
    env.local
        .objects("offload")
        .put("big/1", b"MSH|payload".to_vec(), "text/plain")
        .await
        .unwrap();
    let pointer = r#"["software.amazon.payloadoffloading.PayloadS3Pointer",{"s3BucketName":"offload","s3Key":"big/1"}]"#;
    env.send(&q, pointer, &[("ExtendedPayloadSize", "11")], None)
        .await;
    let h = scripted(|_| {
        (
            Duration::ZERO,
            Outcome::fail(ErrorCode::Hl7ParseError, "refused"),
        )
    });
    let (backend, _) = decorated(
        &env.local,
        Faults {
            object_get: Some(Duration::from_millis(2000)),
            dlq_send: Some(Duration::from_millis(2000)),
            ..Faults::default()
        },
    );
    let mut cfg = config(&q);
    cfg.heartbeat.extend_by = Duration::from_secs(1);
    cfg.claim_check_buckets = vec!["offload".into()];
    let run = start(cfg, backend, h.clone());
    let dlq = format!("{q}-dlq");
    let t0 = Instant::now();
    let mut lapsed = false;
    while env.snapshot(&dlq).is_empty() && t0.elapsed() < Duration::from_secs(15) {
        // Once received (count 1), it must stay invisible and never be received again.
        if let Some(m) = env.snapshot(&q).first()
            && m.receive_count > 0
        {
            lapsed |= m.receive_count > 1 || m.visible_at_ms <= wall_ms();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_until("source deleted", Duration::from_secs(5), || {
        env.snapshot(&q).is_empty()
    })
    .await;
    let report = run.stop().await;
    assert!(!lapsed, "the message became visible while still held");
    let dead = env.snapshot(&dlq);
    assert_eq!(dead.len(), 1, "one DLQ copy");
    assert_eq!(failure_of(&dead[0]).code, ErrorCode::Hl7ParseError);
    assert_eq!(h.calls().len(), 1);
    assert!(report.heartbeat_extensions >= 2, "{report:?}");
}

// ---------------------------------------------------------------------------------------------
// Item 5: no receive after the shutdown signal
// ---------------------------------------------------------------------------------------------

/// With a backlog the poller lingers for a full batch of free slots; a shutdown signal during
/// that linger must not be followed by a receive. Before the fix the linger ended and the
/// receive went out anyway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item5_no_receive_starts_after_the_shutdown_signal() {
    let env = env();
    let q = env.queue("stop", QueueOpts::default());
    env.send(&q, "slow", &[], None).await;
    for i in 0..29 {
        env.send(&q, &format!("fast-{i}"), &[], None).await;
    }
    let h = scripted(|d| {
        let sleep = if d.body == "slow" {
            Duration::from_millis(1500)
        } else {
            Duration::ZERO
        };
        (sleep, Outcome::Done)
    });
    let (backend, seen) = decorated(&env.local, Faults::default());
    let mut cfg = config(&q);
    cfg.concurrency = 10;
    cfg.pollers = 1;
    cfg.receive_linger = Duration::from_secs(3);
    let run = start(cfg, backend, h.clone());
    // The first receive takes ten (a backlog); nine finish at once and the poller lingers for
    // the tenth slot, which the slow handler holds.
    wait_until("nine fast handled", Duration::from_secs(10), || {
        h.calls().len() >= 10 && env.snapshot(&q).len() == 21
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = seen.receive_calls.load(Ordering::SeqCst);
    let report = run.stop().await;
    assert_eq!(
        seen.receive_calls.load(Ordering::SeqCst),
        before,
        "a receive started after the shutdown signal"
    );
    assert_eq!(report.succeeded, 10, "{report:?}");
    let left: BTreeMap<String, bool> = env
        .snapshot(&q)
        .into_iter()
        .map(|m| (m.body, m.in_flight))
        .collect();
    assert_eq!(left.len(), 20);
    assert!(left.values().all(|in_flight| !in_flight), "{left:?}");
}
