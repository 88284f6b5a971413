//! The gateway in-process on the local backend, poked at over raw TCP: framing, limits,
//! timeouts, routing, queue failures, drain and group commit, each as issue 17 demands.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use mllp_gateway::frame::{END_BLOCK, START_BLOCK, encode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::common::{ANSWER, Local, QUEUE, Recording, Running, adt, config, metric};

/// A frame written one byte per write is answered once, and queued once.
#[tokio::test]
async fn a_frame_split_into_single_bytes_is_answered_once() {
    let local = Local::new();
    let gw = Running::start(config(&[]), Arc::new(local.backend.clone())).await;
    let mut conn = gw.connect().await;
    let message = adt("SPLIT1", "NORTH");
    for byte in encode(message.as_bytes()) {
        conn.write(&[byte]).await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let ack = conn.ack().await;
    assert_eq!(
        (ack.code.as_str(), ack.control_id.as_str()),
        ("AA", "SPLIT1")
    );
    assert_eq!(
        conn.frame(Duration::from_millis(300)).await,
        Err(()),
        "one frame, one ACK"
    );
    let queued = local.queued();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].body, message);
    let report = gw.stop().await;
    assert_eq!((report.messages, report.queued), (1, 1), "{report:?}");
}

/// Two frames in one write: two ACKs, in the order of the frames.
#[tokio::test]
async fn two_frames_in_one_write_are_both_answered_in_order() {
    let local = Local::new();
    let gw = Running::start(config(&[]), Arc::new(local.backend.clone())).await;
    let mut conn = gw.connect().await;
    let (first, second) = (adt("PAIR1", "NORTH"), adt("PAIR2", "NORTH"));
    let mut bytes = encode(first.as_bytes());
    bytes.extend(encode(second.as_bytes()));
    conn.write(&bytes).await;
    let acks = [conn.ack().await, conn.ack().await];
    assert_eq!(
        acks.iter()
            .map(|a| (a.code.as_str(), a.control_id.as_str()))
            .collect::<Vec<_>>(),
        [("AA", "PAIR1"), ("AA", "PAIR2")]
    );
    let bodies: Vec<String> = local.queued().into_iter().map(|m| m.body).collect();
    assert_eq!(bodies, [first, second]);
    gw.stop().await;
}

/// `GET path` on the health endpoint (waiting for it to listen: the gateway opens it after
/// its queues); the response.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    let listening = Instant::now() + ANSWER;
    let mut stream = loop {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(s) => break s,
            Err(e) if Instant::now() > listening => panic!("the health endpoint: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(ANSWER, stream.read_to_string(&mut response))
        .await
        .expect("the health endpoint answers")
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
}

/// A free loopback port (bound and released: the gateway binds it next).
fn free_port() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Bytes before a start block are dropped, counted on /metrics, and the message after them is
/// answered and queued as it was sent.
#[tokio::test]
async fn junk_before_a_start_block_is_discarded_counted_and_the_message_answered() {
    let local = Local::new();
    let health = free_port();
    let health_flag = health.to_string();
    let gw = Running::start(
        config(&["--health-addr", &health_flag]),
        Arc::new(local.backend.clone()),
    )
    .await;
    let discarded = |text: &str| metric(text, "fleet_mllp_discarded_bytes_total", &[]);
    let before = discarded(&http_get(health, "/metrics").await);
    let mut conn = gw.connect().await;
    let junk = b"\r\n\x1c\rline noise from a broken sender\r\n";
    let message = adt("JUNK1", "NORTH");
    let mut bytes = junk.to_vec();
    bytes.extend(encode(message.as_bytes()));
    conn.write(&bytes).await;
    let ack = conn.ack().await;
    assert_eq!(
        (ack.code.as_str(), ack.control_id.as_str()),
        ("AA", "JUNK1")
    );
    let after = discarded(&http_get(health, "/metrics").await);
    assert_eq!(after - before, junk.len() as f64);
    let queued = local.queued();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].body, message);
    gw.stop().await;
}

/// The process's peak resident set, in bytes (VmHWM).
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status");
    kb * 1024
}

/// A 20 MiB frame against a 64 KiB limit: answered AE with ERR 207 once its end block arrives,
/// without the gateway ever holding it (the process's peak memory grows by far less than the
/// frame), nothing queued, and the connection goes on: the next message is AA.
#[tokio::test]
async fn a_frame_over_the_size_limit_is_answered_ae_without_being_held_whole() {
    let local = Local::new();
    let gw = Running::start(
        config(&["--max-message-bytes", "65536"]),
        Arc::new(local.backend.clone()),
    )
    .await;
    let mut conn = gw.connect().await;
    const FRAME: usize = 20 * 1024 * 1024;
    let peak_before = peak_rss();
    let head = format!("{}\rNTE|1||", adt("HUGE1", "NORTH"));
    conn.write(&[START_BLOCK]).await;
    conn.write(head.as_bytes()).await;
    let chunk = vec![b'x'; 64 * 1024];
    let mut sent = head.len();
    while sent < FRAME {
        conn.stream.write_all(&chunk).await.unwrap();
        sent += chunk.len();
    }
    conn.write(&[END_BLOCK, b'\r']).await;
    let ack = conn.ack().await;
    assert_eq!(
        (
            ack.code.as_str(),
            ack.control_id.as_str(),
            ack.error_code.as_deref()
        ),
        ("AE", "HUGE1", Some("207")),
        "{ack:?}"
    );
    let grew = peak_rss().saturating_sub(peak_before);
    assert!(
        grew < 8 * 1024 * 1024,
        "the process's peak memory grew by {grew} bytes while a {FRAME}-byte frame went through"
    );
    let next = conn.exchange(adt("AFTER1", "NORTH").as_bytes()).await;
    assert_eq!(
        (next.code.as_str(), next.control_id.as_str()),
        ("AA", "AFTER1")
    );
    let bodies: Vec<String> = local.queued().into_iter().map(|m| m.body).collect();
    assert_eq!(bodies, [adt("AFTER1", "NORTH")]);
    let report = gw.stop().await;
    assert_eq!(
        (report.frame_errors, report.content_errors, report.queued),
        (1, 1, 1),
        "{report:?}"
    );
}

/// Slow-loris: a start block and part of a message, then silence. With a long idle timeout,
/// the frame timeout (1 s from the start block) closes the connection, unanswered.
#[tokio::test]
async fn a_start_block_then_silence_is_closed_at_the_frame_timeout() {
    let local = Local::new();
    let health = free_port();
    let health_flag = health.to_string();
    let gw = Running::start(
        config(&[
            "--frame-timeout-secs",
            "1",
            "--idle-timeout-secs",
            "60",
            "--health-addr",
            &health_flag,
        ]),
        Arc::new(local.backend.clone()),
    )
    .await;
    let discarded = |text: &str| metric(text, "fleet_mllp_discarded_bytes_total", &[]);
    let before = discarded(&http_get(health, "/metrics").await);
    let mut conn = gw.connect().await;
    let partial = b"MSH|^~\\&|EPICADT|NORTH|";
    conn.write(&[START_BLOCK]).await;
    conn.write(partial).await;
    assert_eq!(
        conn.frame(Duration::from_millis(500)).await,
        Err(()),
        "still open (and unanswered) half-way through the frame timeout"
    );
    assert!(
        conn.closed_within(Duration::from_secs(3)).await,
        "closed once the frame timeout passed"
    );
    // The unfinished frame is counted as discarded when the connection is closed.
    let after = discarded(&http_get(health, "/metrics").await);
    assert_eq!(after - before, (1 + partial.len()) as f64);
    let report = gw.stop().await;
    assert_eq!((report.frame_errors, report.messages), (1, 0), "{report:?}");
    assert!(local.queued().is_empty());
}

/// A sender that keeps dripping bytes of a frame that never ends is cut off all the same: the
/// frame timeout runs from the start block, not from the last byte.
#[tokio::test]
async fn a_sender_dripping_a_frame_is_closed_at_the_frame_timeout() {
    let local = Local::new();
    let gw = Running::start(
        config(&["--frame-timeout-secs", "1", "--idle-timeout-secs", "60"]),
        Arc::new(local.backend.clone()),
    )
    .await;
    let mut conn = gw.connect().await;
    conn.write(&[START_BLOCK]).await;
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let mut drip = tokio::time::interval(Duration::from_millis(100));
    let closed_after = loop {
        tokio::select! {
            _ = drip.tick() => {
                // Fails once the gateway has closed: the read below sees it.
                let _ = conn.stream.write_all(b"x").await;
            }
            r = conn.stream.read(&mut buf) => match r {
                Ok(0) | Err(_) => break started.elapsed(),
                Ok(n) => panic!("the gateway answered an unfinished frame ({n} bytes)"),
            },
            () = tokio::time::sleep_until(started + Duration::from_secs(5)) => {
                panic!("a dripping sender was not cut off")
            }
        }
    };
    assert!(
        closed_after >= Duration::from_millis(900),
        "closed at {closed_after:?}, before the frame timeout"
    );
    gw.stop().await;
}

/// The frame timeout runs from each frame's own start block: a frame that starts in the same
/// read as the end of the one before is not cut off on the earlier frame's clock.
#[tokio::test]
async fn the_frame_timeout_runs_from_each_frames_own_start_block() {
    let local = Local::new();
    let gw = Running::start(
        config(&["--frame-timeout-secs", "1", "--idle-timeout-secs", "60"]),
        Arc::new(local.backend.clone()),
    )
    .await;
    let mut conn = gw.connect().await;
    let first = encode(adt("CLOCK1", "NORTH").as_bytes());
    let second = encode(adt("CLOCK2", "NORTH").as_bytes());
    let (first_head, first_tail) = first.split_at(first.len() / 2);
    let (second_head, second_tail) = second.split_at(second.len() / 2);
    conn.write(first_head).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    // The end of the first frame and the start of the second in one write.
    conn.write(&[first_tail, second_head].concat()).await;
    let ack = conn.ack().await;
    assert_eq!(
        (ack.code.as_str(), ack.control_id.as_str()),
        ("AA", "CLOCK1")
    );
    // 1.4 s after the first frame's start block, 0.7 s after the second's.
    tokio::time::sleep(Duration::from_millis(700)).await;
    conn.write(second_tail).await;
    let ack = conn.ack().await;
    assert_eq!(
        (ack.code.as_str(), ack.control_id.as_str()),
        ("AA", "CLOCK2")
    );
    let report = gw.stop().await;
    assert_eq!((report.frame_errors, report.queued), (0, 2), "{report:?}");
}

/// A connection with nothing to send is closed after the idle timeout (1 s).
#[tokio::test]
async fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let local = Local::new();
    let gw = Running::start(
        config(&["--idle-timeout-secs", "1", "--frame-timeout-secs", "60"]),
        Arc::new(local.backend.clone()),
    )
    .await;
    let mut conn = gw.connect().await;
    let ack = conn.exchange(adt("IDLE1", "NORTH").as_bytes()).await;
    assert_eq!(ack.code, "AA");
    assert_eq!(
        conn.frame(Duration::from_millis(500)).await,
        Err(()),
        "still open half-way through the idle timeout"
    );
    assert!(conn.closed_within(Duration::from_secs(3)).await);
    let report = gw.stop().await;
    assert_eq!(report.frame_errors, 0, "idling is not a frame error");
}

/// With --max-connections 2, a third connection is closed at once and counted (report and
/// /metrics); the two open ones are still served.
#[tokio::test]
async fn a_connection_beyond_the_limit_is_closed_at_once_and_counted() {
    let local = Local::new();
    let gw = Running::start(
        config(&["--max-connections", "2"]),
        Arc::new(local.backend.clone()),
    )
    .await;
    let refused_limit = || {
        metric(
            &fleet_runtime::telemetry::metrics::render(),
            "fleet_mllp_connections_total",
            &[("outcome", "refused_limit")],
        )
    };
    let before = refused_limit();
    let mut first = gw.connect().await;
    let mut second = gw.connect().await;
    assert_eq!(
        first.exchange(adt("LIM1", "NORTH").as_bytes()).await.code,
        "AA"
    );
    assert_eq!(
        second.exchange(adt("LIM2", "NORTH").as_bytes()).await.code,
        "AA"
    );
    let mut third = gw.connect().await;
    assert!(
        third.closed_within(Duration::from_secs(1)).await,
        "the third connection is closed at accept"
    );
    assert_eq!(
        first.exchange(adt("LIM3", "NORTH").as_bytes()).await.code,
        "AA"
    );
    assert_eq!(refused_limit() - before, 1.0);
    let report = gw.stop().await;
    assert_eq!(
        (
            report.connections,
            report.refused_connections,
            report.queued
        ),
        (2, 1, 3),
        "{report:?}"
    );
}

/// --allow-source 10.0.0.0/8: a loopback client is closed at accept and counted; with
/// 127.0.0.0/8 allowed it is served.
#[tokio::test]
async fn a_source_outside_the_allow_list_is_closed_at_once() {
    let local = Local::new();
    let gw = Running::start(
        config(&["--allow-source", "10.0.0.0/8"]),
        Arc::new(local.backend.clone()),
    )
    .await;
    let mut conn = gw.connect().await;
    // Written before the gateway closes or after: either way no ACK comes.
    let _ = conn
        .stream
        .write_all(&encode(adt("SRC1", "NORTH").as_bytes()))
        .await;
    assert!(conn.closed_within(Duration::from_secs(1)).await);
    let report = gw.stop().await;
    assert_eq!(
        (
            report.connections,
            report.refused_connections,
            report.messages
        ),
        (0, 1, 0),
        "{report:?}"
    );
    assert!(local.queued().is_empty());

    let gw = Running::start(
        config(&["--allow-source", "10.0.0.0/8,127.0.0.0/8"]),
        Arc::new(local.backend.clone()),
    )
    .await;
    let mut conn = gw.connect().await;
    assert_eq!(
        conn.exchange(adt("SRC2", "NORTH").as_bytes()).await.code,
        "AA"
    );
    gw.stop().await;
}

/// A message type no route names is refused with AR, ERR 200, and not queued.
#[tokio::test]
async fn an_unrouted_message_type_is_answered_ar_200_and_not_queued() {
    let local = Local::new();
    let gw = Running::start(config(&[]), Arc::new(local.backend.clone())).await;
    let mut conn = gw.connect().await;
    let oru = "MSH|^~\\&|LAB|NORTH|FLEET|FLEET|20260315101500||ORU^R01^ORU_R01|ORU1|P|2.5.1\r\
               PID|1||MRN4821736^^^NORTH^MR||Quillfeather^Rosalind\r\
               OBX|1|NM|GLU^Glucose||5.4|mmol/L";
    let ack = conn.exchange(oru.as_bytes()).await;
    assert_eq!(
        (
            ack.code.as_str(),
            ack.control_id.as_str(),
            ack.error_code.as_deref()
        ),
        ("AR", "ORU1", Some("200")),
        "{ack:?}"
    );
    assert!(local.queued().is_empty());
    let report = gw.stop().await;
    assert_eq!((report.rejected, report.queued), (1, 0), "{report:?}");
}

/// A route naming a queue that does not exist stops the gateway at start, naming the queue.
#[tokio::test]
async fn a_route_to_a_missing_queue_stops_the_gateway_at_start() {
    let local = Local::new();
    let gw = Running::start(
        config(&["--route", "ORU^*=no-such-queue"]),
        Arc::new(local.backend.clone()),
    )
    .await;
    let err = tokio::time::timeout(ANSWER, gw.task)
        .await
        .expect("the gateway gives up at once")
        .unwrap()
        .expect_err("a missing queue is fatal at start");
    assert!(format!("{err:#}").contains("no-such-queue"), "{err:#}");
}

/// A queue that is down: the message is answered AR (after --enqueue-timeout-secs, the
/// sender's cue to resend), not sent afterwards behind the sender's back, and its resend once
/// the queue is back is AA and queued exactly once.
#[tokio::test]
async fn a_queue_outage_is_answered_ar_and_the_resend_is_queued_once() {
    let local = Local::new();
    let backend = Recording::new(local.backend.clone());
    backend.failing.store(true, Ordering::SeqCst);
    let gw = Running::start(
        config(&["--enqueue-timeout-secs", "1"]),
        Arc::new(backend.clone()),
    )
    .await;
    let mut conn = gw.connect().await;
    let message = adt("DOWN1", "NORTH");
    let ack = conn.exchange(message.as_bytes()).await;
    assert_eq!(
        (
            ack.code.as_str(),
            ack.control_id.as_str(),
            ack.error_code.as_deref()
        ),
        ("AR", "DOWN1", Some("207")),
        "{ack:?}"
    );
    backend.failing.store(false, Ordering::SeqCst);
    // Longer than the batcher's backoff: a retry of the abandoned entry would land by now.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(
        local.queued().is_empty(),
        "a message answered AR is not queued after all"
    );
    let ack = conn.exchange(message.as_bytes()).await;
    assert_eq!(
        (ack.code.as_str(), ack.control_id.as_str()),
        ("AA", "DOWN1")
    );
    let bodies: Vec<String> = local.queued().into_iter().map(|m| m.body).collect();
    assert_eq!(bodies, [message]);
    let report = gw.stop().await;
    assert_eq!((report.rejected, report.queued), (1, 1), "{report:?}");
}

/// The queue deleted under a running gateway (SQS: NonExistentQueue, not retryable): AR at
/// once; once the queue is back the resend is AA and queued.
#[tokio::test]
async fn a_queue_deleted_under_the_gateway_gets_ar_and_the_resend_is_queued_once_it_is_back() {
    let local = Local::new();
    let gw = Running::start(config(&[]), Arc::new(local.backend.clone())).await;
    let mut conn = gw.connect().await;
    assert_eq!(
        conn.exchange(adt("DEL0", "NORTH").as_bytes()).await.code,
        "AA"
    );
    local.backend.delete_queue(QUEUE).unwrap();
    let message = adt("DEL1", "NORTH");
    let ack = conn.exchange(message.as_bytes()).await;
    assert_eq!(
        (ack.code.as_str(), ack.error_code.as_deref()),
        ("AR", Some("207")),
        "{ack:?}"
    );
    local
        .backend
        .create_queue(QUEUE, fleet_local::QueueSpec::default())
        .unwrap();
    let ack = conn.exchange(message.as_bytes()).await;
    assert_eq!((ack.code.as_str(), ack.control_id.as_str()), ("AA", "DEL1"));
    let bodies: Vec<String> = local.queued().into_iter().map(|m| m.body).collect();
    assert_eq!(bodies, [message]);
    gw.stop().await;
}

/// Drain (what SIGTERM does): new connections are refused, an idle connection is closed at
/// once, and a connection in the middle of a frame gets to finish it: the gateway waits,
/// queues it, ACKs it, and only then exits.
#[tokio::test]
async fn draining_finishes_the_frame_in_progress_closes_idle_connections_then_exits() {
    let local = Local::new();
    let gw = Running::start(config(&[]), Arc::new(local.backend.clone())).await;
    let addr = gw.addr;
    let mut busy = gw.connect().await;
    let mut idle = gw.connect().await;
    let message = encode(adt("DRAIN1", "NORTH").as_bytes());
    let (head, tail) = message.split_at(message.len() / 2);
    busy.write(head).await;
    // Both connections accepted and the first half read before the drain starts.
    tokio::time::sleep(Duration::from_millis(300)).await;
    gw.shutdown.cancel();
    assert!(
        idle.closed_within(Duration::from_secs(2)).await,
        "an idle connection is closed at drain"
    );
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "a draining gateway accepts no connection"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !gw.task.is_finished(),
        "the gateway waits for the frame in progress"
    );
    assert!(local.queued().is_empty());
    busy.write(tail).await;
    let ack = busy.ack().await;
    assert_eq!(
        (ack.code.as_str(), ack.control_id.as_str()),
        ("AA", "DRAIN1")
    );
    assert!(
        busy.closed_within(Duration::from_secs(2)).await,
        "closed once its message is answered"
    );
    let report = tokio::time::timeout(Duration::from_secs(5), gw.task)
        .await
        .expect("the gateway exits once the frame is answered")
        .unwrap()
        .unwrap();
    assert_eq!((report.messages, report.queued), (1, 1), "{report:?}");
    assert_eq!(local.queued().len(), 1);
}

/// A frame still unfinished at the drain deadline does not hold the gateway: it exits at the
/// deadline (well before the frame timeout) without answering it, and nothing is queued (the
/// sender, unanswered, resends).
#[tokio::test]
async fn a_frame_unfinished_at_the_drain_deadline_is_dropped_unanswered() {
    let local = Local::new();
    let gw = Running::start(
        config(&["--drain-deadline-secs", "1", "--frame-timeout-secs", "60"]),
        Arc::new(local.backend.clone()),
    )
    .await;
    let mut conn = gw.connect().await;
    let message = encode(adt("LATE1", "NORTH").as_bytes());
    conn.write(&message[..message.len() / 2]).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    gw.shutdown.cancel();
    let report = tokio::time::timeout(Duration::from_secs(5), gw.task)
        .await
        .expect("the gateway exits at the drain deadline")
        .unwrap()
        .unwrap();
    assert!(
        conn.closed_within(Duration::from_secs(1)).await,
        "the connection is closed, without an ACK"
    );
    assert_eq!((report.messages, report.queued), (0, 0), "{report:?}");
    assert!(local.queued().is_empty());
}

/// Group commit: 20 connections sending one message each at the same moment go out in fewer
/// than 20 SendMessageBatch calls of at most 10 entries, and every sender gets AA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_from_twenty_connections_at_once_share_send_message_batch_calls() {
    const SENDERS: usize = 20;
    let local = Local::new();
    let backend = Recording::new(local.backend.clone());
    let gw = Running::start(
        config(&["--batch-linger-ms", "20"]),
        Arc::new(backend.clone()),
    )
    .await;
    let start = Arc::new(tokio::sync::Barrier::new(SENDERS));
    let mut senders = tokio::task::JoinSet::new();
    for i in 0..SENDERS {
        let mut conn = gw.connect().await;
        let start = start.clone();
        senders.spawn(async move {
            let framed = encode(adt(&format!("GROUP{i:02}"), "NORTH").as_bytes());
            start.wait().await;
            conn.write(&framed).await;
            let ack = conn.ack().await;
            (ack.code, ack.control_id)
        });
    }
    let mut acks = senders.join_all().await;
    acks.sort();
    let want: Vec<(String, String)> = (0..SENDERS)
        .map(|i| ("AA".to_string(), format!("GROUP{i:02}")))
        .collect();
    assert_eq!(acks, want);
    let batches = backend.batches();
    assert_eq!(batches.iter().sum::<usize>(), SENDERS, "{batches:?}");
    assert!(
        batches.len() < SENDERS && batches.iter().all(|&n| n <= 10),
        "SendMessageBatch entry counts: {batches:?}"
    );
    assert_eq!(local.queued().len(), SENDERS);
    gw.stop().await;
}
