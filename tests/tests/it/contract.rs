//! One contract suite per port, run against both adapters: every check is written once as an
//! async fn over a [`Fixture`] and instantiated for the local backend and for the AWS backend
//! against a real moto_server.
//!
//! Where moto (5.2.5, pinned in `scripts/moto`) differs from real AWS, the suite checks only
//! what both real AWS and moto guarantee, and says so here:
//!
//! - KMS: moto accepts any `KmsMasterKeyId` on SQS and any `SSEKMSKeyId` on S3 without checking
//!   that the key exists, and encrypts nothing. The suite creates a real moto KMS key anyway
//!   and checks the attribute round-trips; it cannot check that KMS permissions are enforced.
//! - Redrive: moto enforces it like SQS (the receive after `maxReceiveCount` moves the message
//!   to the DLQ and returns nothing). moto reports the moved message with its receive count
//!   incremented once more; the suite does not assert the DLQ-side count.
//! - Stale receipts: real SQS answers a delete with an outdated receipt handle with success
//!   (and may not delete); moto succeeds and deletes. The local backend reports
//!   `ReceiptHandleIsInvalid` for it (stricter, so the runtime's per-entry handling is
//!   exercised). The shared checks therefore use a receipt that is invalid on every backend,
//!   and a stale-plus-current batch whose common ground is: the call succeeds, only the stale
//!   entry may fail, the message is gone; the local backend must also fail the stale entry.
//! - EventBridge envelopes delivered by moto have no `account` field; the suite checks
//!   `version`, `id`, `detail-type`, `source`, `time`, `region`, `resources` and `detail`.
//! - FIFO sequence numbers: moto draws a random 20-digit number per message; SQS (and the
//!   local backend) make them increase. Their order is asserted where the backend keeps it.
//! - Sizes: moto checks neither EventBridge's 256 KiB PutEvents limit (it accepts a 300 KB
//!   entry and 600 KB requests) nor attributes in SQS's message size (it counts the body only,
//!   against a 1 MiB default). The item 3 checks hold on both because the publisher keeps
//!   requests below the limit itself; the dead-letter copy's size is checked locally only.
//! - Visibility of a lapsed message: SQS answers `MessageNotInflight` (and the local backend
//!   does); moto changes it anyway, and counts the 12-hour limit from the send rather than the
//!   receive. Those rules are checked on the local backend (`fleet-local`'s item5 tests) and the
//!   runtime's handling of the codes in `fleet-runtime`'s `sqs_rules` tests.
//! - moto does not check the queue policy for EventBridge targets (real AWS drops deliveries
//!   without it); `Provisioner::put_rule_to_queue` writes the policy anyway.

use fleet_testkit::ProvisionExt as _;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use fleet_aws::AwsBackend;
use fleet_core::{
    AttributeValue, Backend, BusEvent, Condition, ConditionalPut, Destination, ErrorKind, EventBus,
    MessageQueue, Notification, ObjectStore, OutgoingMessage, PutOutcome, ReceivedMessage, Record,
    RecordStore, TransactOutcome,
};
use fleet_local::{LocalBackend, QueueSpec};
use fleet_runtime::{Begin, Claim, IdempotencyStore, Settled};
use fleet_testkit::provision::{Provisioner, QueueSetup};
use fleet_testkit::{aws_backend, local_backend, unique};
use tempfile::TempDir;

/// What a check asks of a queue.
#[derive(Debug, Clone, Copy)]
pub struct QSpec {
    pub fifo: bool,
    pub visibility: Duration,
}

impl QSpec {
    pub fn standard(visibility_secs: u64) -> Self {
        Self {
            fifo: false,
            visibility: Duration::from_secs(visibility_secs),
        }
    }
}

/// Creates fresh resources on one backend.
pub trait Fixture {
    /// Whether a delete with an outdated (but once valid) receipt is reported per entry.
    const REJECTS_STALE_RECEIPTS: bool;
    /// Whether FIFO sequence numbers increase (real SQS and local; moto draws them at random).
    const ORDERED_SEQUENCE_NUMBERS: bool;
    fn backend(&self) -> &dyn Backend;
    /// The same backend, shared, for a runtime to run on.
    fn shared_backend(&self) -> Arc<dyn Backend>;
    async fn queue(&self, spec: QSpec) -> Arc<dyn MessageQueue>;
    /// A queue whose redrive policy moves messages to the returned DLQ after `max_receives`.
    async fn queue_with_dlq(
        &self,
        spec: QSpec,
        max_receives: u32,
    ) -> (Arc<dyn MessageQueue>, Arc<dyn MessageQueue>);
    /// A bus and a queue that a rule with `pattern` on that bus feeds.
    async fn bus_with_rule_to_tap(
        &self,
        pattern: &str,
    ) -> (Arc<dyn EventBus>, Arc<dyn MessageQueue>);
    async fn records(&self) -> Arc<dyn RecordStore>;
    async fn objects(&self) -> Arc<dyn ObjectStore>;
    /// A fresh topic, and what was published to it so far (the outbox locally; an SQS
    /// subscription's SNS envelopes on aws).
    async fn topic(&self) -> Destination;
    async fn published(&self, topic: &Destination, expect: usize) -> Vec<Notification>;
    /// A topic that does not exist, in the backend's naming.
    fn missing_topic(&self) -> Destination;
}

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

pub struct LocalFixture {
    _dir: TempDir,
    backend: LocalBackend,
}

impl LocalFixture {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let backend = local_backend(dir.path());
        Self { _dir: dir, backend }
    }

    fn create(&self, spec: QSpec, redrive: Option<(String, u32)>) -> String {
        let name = if spec.fifo {
            format!("{}.fifo", unique("q"))
        } else {
            unique("q")
        };
        let qs = QueueSpec {
            fifo: spec.fifo,
            visibility_timeout: spec.visibility,
            redrive,
            ..QueueSpec::default()
        };
        self.backend
            .create_queue(&name, qs)
            .expect("create local queue");
        name
    }
}

impl Fixture for LocalFixture {
    const REJECTS_STALE_RECEIPTS: bool = true;
    const ORDERED_SEQUENCE_NUMBERS: bool = true;

    fn backend(&self) -> &dyn Backend {
        &self.backend
    }

    fn shared_backend(&self) -> Arc<dyn Backend> {
        Arc::new(self.backend.clone())
    }

    async fn queue(&self, spec: QSpec) -> Arc<dyn MessageQueue> {
        let name = self.create(spec, None);
        self.backend.queue(&name).await.expect("open local queue")
    }

    async fn queue_with_dlq(
        &self,
        spec: QSpec,
        max_receives: u32,
    ) -> (Arc<dyn MessageQueue>, Arc<dyn MessageQueue>) {
        let dlq = self.create(
            QSpec {
                visibility: Duration::from_secs(30),
                ..spec
            },
            None,
        );
        let src = self.create(spec, Some((dlq.clone(), max_receives)));
        (
            self.backend.queue(&src).await.expect("open local queue"),
            self.backend.queue(&dlq).await.expect("open local dlq"),
        )
    }

    async fn bus_with_rule_to_tap(
        &self,
        pattern: &str,
    ) -> (Arc<dyn EventBus>, Arc<dyn MessageQueue>) {
        let tap = self.create(QSpec::standard(30), None);
        let bus = unique("bus");
        self.backend
            .put_rule(&bus, "tap", pattern, &tap)
            .expect("put local rule");
        (
            self.backend.event_bus(&bus),
            self.backend.queue(&tap).await.expect("open tap"),
        )
    }

    async fn records(&self) -> Arc<dyn RecordStore> {
        self.backend.records(&unique("table"))
    }

    async fn objects(&self) -> Arc<dyn ObjectStore> {
        self.backend.objects(&unique("bucket"))
    }

    async fn topic(&self) -> Destination {
        let arn = self
            .backend
            .create_topic(&unique("topic"))
            .expect("create topic");
        Destination::Topic(arn)
    }

    async fn published(&self, topic: &Destination, _expect: usize) -> Vec<Notification> {
        let Destination::Topic(arn) = topic else {
            panic!("not a topic")
        };
        let name = arn
            .strip_prefix(fleet_local::TOPIC_ARN_PREFIX)
            .unwrap_or(arn);
        self.backend
            .outbox()
            .expect("outbox")
            .into_iter()
            .filter(|e| e.destination == Destination::Topic(name.to_string()))
            .map(|e| e.notification)
            .collect()
    }

    fn missing_topic(&self) -> Destination {
        Destination::Topic(unique("no-topic"))
    }
}

pub struct AwsFixture {
    backend: AwsBackend,
    provision: Provisioner,
    kms_key: String,
    taps: std::sync::Mutex<BTreeMap<String, Arc<dyn MessageQueue>>>,
}

impl AwsFixture {
    pub async fn new() -> Self {
        let backend = aws_backend().await;
        let provision = backend.provisioner();
        let kms_key = provision
            .create_kms_key("fleet contract tests")
            .await
            .expect("moto KMS key");
        let backend = backend.with_kms_key(Some(kms_key.clone()));
        Self {
            backend,
            provision,
            kms_key,
            taps: Default::default(),
        }
    }

    async fn create(&self, spec: QSpec, redrive: Option<(String, u32)>) -> String {
        let name = if spec.fifo {
            format!("{}.fifo", unique("q"))
        } else {
            unique("q")
        };
        let setup = QueueSetup {
            fifo: spec.fifo,
            content_based_dedup: false,
            visibility_timeout: spec.visibility,
            kms_key_id: Some(self.kms_key.clone()),
            sqs_managed_sse: false,
            redrive,
        };
        self.provision
            .create_queue(&name, setup)
            .await
            .expect("create queue on moto")
    }
}

impl Fixture for AwsFixture {
    const REJECTS_STALE_RECEIPTS: bool = false;
    const ORDERED_SEQUENCE_NUMBERS: bool = false;

    fn backend(&self) -> &dyn Backend {
        &self.backend
    }

    fn shared_backend(&self) -> Arc<dyn Backend> {
        Arc::new(self.backend.clone())
    }

    async fn queue(&self, spec: QSpec) -> Arc<dyn MessageQueue> {
        let url = self.create(spec, None).await;
        self.backend.queue(&url).await.expect("queue by url")
    }

    async fn queue_with_dlq(
        &self,
        spec: QSpec,
        max_receives: u32,
    ) -> (Arc<dyn MessageQueue>, Arc<dyn MessageQueue>) {
        let dlq_url = self
            .create(
                QSpec {
                    visibility: Duration::from_secs(30),
                    ..spec
                },
                None,
            )
            .await;
        let dlq_arn = self.provision.queue_arn(&dlq_url).await.expect("dlq arn");
        let src = self
            .create(spec, Some((dlq_arn.clone(), max_receives)))
            .await;
        (
            self.backend.queue(&src).await.expect("queue by url"),
            // Through the ARN, as the runtime finds a DLQ from a redrive policy.
            self.backend
                .queue_by_arn(&dlq_arn)
                .await
                .expect("dlq by arn"),
        )
    }

    async fn bus_with_rule_to_tap(
        &self,
        pattern: &str,
    ) -> (Arc<dyn EventBus>, Arc<dyn MessageQueue>) {
        let tap = self.create(QSpec::standard(30), None).await;
        let bus = unique("bus");
        self.provision.create_bus(&bus).await.expect("create bus");
        self.provision
            .put_rule_to_queue(&bus, "tap", pattern, &tap)
            .await
            .expect("put rule");
        (
            self.backend.event_bus(&bus),
            self.backend.queue(&tap).await.expect("tap queue"),
        )
    }

    async fn records(&self) -> Arc<dyn RecordStore> {
        let table = unique("table");
        self.provision
            .create_table(&table)
            .await
            .expect("create table");
        self.backend.records(&table)
    }

    async fn objects(&self) -> Arc<dyn ObjectStore> {
        let bucket = unique("bucket");
        self.provision
            .create_bucket(&bucket, Some(&self.kms_key))
            .await
            .expect("create bucket");
        self.backend.objects(&bucket)
    }

    async fn topic(&self) -> Destination {
        let arn = self
            .provision
            .create_topic(&unique("topic"))
            .await
            .expect("create topic");
        let tap = self.create(QSpec::standard(30), None).await;
        self.provision
            .subscribe_queue(&arn, &tap, false)
            .await
            .expect("subscribe the tap queue");
        let q = self.backend.queue(&tap).await.expect("tap queue");
        self.taps.lock().unwrap().insert(arn.clone(), q);
        Destination::Topic(arn)
    }

    async fn published(&self, topic: &Destination, expect: usize) -> Vec<Notification> {
        let Destination::Topic(arn) = topic else {
            panic!("not a topic")
        };
        let q = self.taps.lock().unwrap()[arn].clone();
        receive_n(q.as_ref(), expect, Duration::from_secs(10))
            .await
            .into_iter()
            .map(|m| {
                let env: serde_json::Value =
                    serde_json::from_str(&m.body).expect("SNS envelope JSON");
                assert_eq!(env["Type"], "Notification");
                assert_eq!(env["TopicArn"], arn.as_str());
                let attributes = env["MessageAttributes"]
                    .as_object()
                    .map(|a| {
                        a.iter()
                            .map(|(k, v)| {
                                (k.clone(), v["Value"].as_str().unwrap_or("").to_string())
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                Notification {
                    subject: env["Subject"].as_str().map(str::to_string),
                    body: env["Message"].as_str().expect("Message").to_string(),
                    attributes,
                    ..Notification::default()
                }
            })
            .collect()
    }

    fn missing_topic(&self) -> Destination {
        Destination::Topic(format!(
            "arn:aws:sns:us-east-1:123456789012:{}",
            unique("no-topic")
        ))
    }
}

macro_rules! contract {
    ($($check:ident),* $(,)?) => {
        mod local {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    super::$check(&super::LocalFixture::new()).await;
                }
            )*
        }
        mod aws {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    super::$check(&super::AwsFixture::new().await).await;
                }
            )*
        }
    };
}

contract!(
    visibility_hides_then_reappears,
    receive_count_increments,
    redrive_moves_to_dlq_after_max_receives,
    batch_delete_reports_invalid_receipts_per_entry,
    attributes_round_trip,
    change_visibility_zero_releases,
    fifo_groups_stay_in_order,
    events_route_by_rule,
    item1_fifo_messages_reach_the_dlq_only_after_being_tried,
    item3_events_over_256kb_in_total_go_out_in_several_requests,
    item3_an_event_over_the_put_events_limit_is_refused_with_event_too_large,
    conditional_writes,
    transact_put_is_all_or_nothing,
    query_returns_partition_in_sort_order,
    item4_store_hides_expired_items,
    item4_a_stale_owner_cannot_complete_a_claim_taken_over,
    item4_expired_claim_can_be_taken_over,
    objects_put_get_head,
    backend_lists_queues_by_prefix_and_names_the_caller,
    notifications_publish_with_subject_and_attributes,
);

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const NO_WAIT: Duration = Duration::ZERO;

fn text(body: &str) -> OutgoingMessage {
    OutgoingMessage {
        body: body.to_string(),
        ..OutgoingMessage::default()
    }
}

/// Receive until `n` messages arrived or `within` passed.
async fn receive_n(q: &dyn MessageQueue, n: usize, within: Duration) -> Vec<ReceivedMessage> {
    let deadline = tokio::time::Instant::now() + within;
    let mut got = Vec::new();
    while got.len() < n {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            break;
        }
        let max = u32::try_from((n - got.len()).min(10)).unwrap_or(10);
        let wait = Duration::from_secs(left.as_secs().clamp(1, 20));
        got.extend(q.receive(max, wait, None).await.expect("receive"));
    }
    got
}

async fn receive_one(q: &dyn MessageQueue, within: Duration) -> ReceivedMessage {
    let mut got = receive_n(q, 1, within).await;
    assert_eq!(got.len(), 1, "expected exactly one message on {}", q.id());
    got.remove(0)
}

async fn assert_empty_now(q: &dyn MessageQueue) {
    let got = q.receive(10, NO_WAIT, None).await.expect("receive");
    assert!(
        got.is_empty(),
        "expected no receivable message, got {}",
        got.len()
    );
}

async fn release(q: &dyn MessageQueue, m: &ReceivedMessage) {
    let r = q
        .change_visibility_batch(&[(m.receipt.clone(), Duration::ZERO)])
        .await
        .expect("change visibility");
    assert!(r.all_ok(), "release failed: {r:?}");
}

fn record(pk: &str, sk: &str, order: i64, data: serde_json::Value) -> Record {
    Record {
        pk: pk.into(),
        sk: sk.into(),
        order,
        expires_at: None,
        data,
    }
}

fn put(r: Record, condition: Condition) -> ConditionalPut {
    ConditionalPut {
        record: r,
        condition,
    }
}

// ---------------------------------------------------------------------------------------------
// Queue checks
// ---------------------------------------------------------------------------------------------

async fn visibility_hides_then_reappears(f: &impl Fixture) {
    let q = f.queue(QSpec::standard(1)).await;
    let id = q.send(text("visibility")).await.expect("send");

    let first = receive_one(q.as_ref(), Duration::from_secs(5)).await;
    assert_eq!(first.message_id, id);
    assert_eq!(first.body, "visibility");
    assert_eq!(first.receive_count, 1);
    assert!(first.sent_timestamp_ms > 0);

    // Invisible while the timeout runs, and counted as in flight.
    assert_empty_now(q.as_ref()).await;
    let attrs = q.attributes().await.expect("attributes");
    assert_eq!(
        (attrs.approximate_visible, attrs.approximate_in_flight),
        (0, 1)
    );
    assert_eq!(attrs.visibility_timeout, Duration::from_secs(1));

    // Back after the timeout, with the same id and a new receipt.
    let again = receive_one(q.as_ref(), Duration::from_secs(5)).await;
    assert_eq!(again.message_id, id);
    assert_eq!(again.receive_count, 2);
    assert_ne!(again.receipt, first.receipt);

    // A receive-time override replaces the queue's timeout for that receive.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let long = q
        .receive(1, Duration::from_secs(2), Some(Duration::from_secs(30)))
        .await
        .expect("receive");
    assert_eq!(long.len(), 1);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_empty_now(q.as_ref()).await;
}

async fn receive_count_increments(f: &impl Fixture) {
    let q = f.queue(QSpec::standard(30)).await;
    q.send(text("count")).await.expect("send");
    let mut sent_at = None;
    for expected in 1..=3 {
        let m = receive_one(q.as_ref(), Duration::from_secs(5)).await;
        assert_eq!(m.receive_count, expected);
        // SentTimestamp is the original send time, not the receive time.
        assert_eq!(
            *sent_at.get_or_insert(m.sent_timestamp_ms),
            m.sent_timestamp_ms
        );
        release(q.as_ref(), &m).await;
    }
}

async fn change_visibility_zero_releases(f: &impl Fixture) {
    let q = f.queue(QSpec::standard(30)).await;
    q.send(text("release")).await.expect("send");
    let m = receive_one(q.as_ref(), Duration::from_secs(5)).await;
    assert_empty_now(q.as_ref()).await;

    // One valid entry and one that is not a receipt at all: the bad one fails alone.
    let r = q
        .change_visibility_batch(&[
            ("not-a-receipt".to_string(), Duration::ZERO),
            (m.receipt.clone(), Duration::ZERO),
        ])
        .await
        .expect("change visibility");
    assert_eq!(r.failed.len(), 1, "{r:?}");
    assert_eq!(r.failed[0].index, 0);
    assert_eq!(r.failed[0].code, "ReceiptHandleIsInvalid");

    let back = q.receive(1, NO_WAIT, None).await.expect("receive");
    assert_eq!(back.len(), 1, "released message is receivable at once");
    assert_eq!(back[0].message_id, m.message_id);
}

async fn redrive_moves_to_dlq_after_max_receives(f: &impl Fixture) {
    let (q, dlq) = f.queue_with_dlq(QSpec::standard(30), 2).await;
    let mut attrs = BTreeMap::new();
    attrs.insert("trace".to_string(), AttributeValue::string("t-1"));
    q.send(OutgoingMessage {
        body: "poison".into(),
        attributes: attrs.clone(),
        ..Default::default()
    })
    .await
    .expect("send");

    for expected in 1..=2 {
        let m = receive_one(q.as_ref(), Duration::from_secs(5)).await;
        assert_eq!(m.receive_count, expected);
        release(q.as_ref(), &m).await;
    }
    // The receive after maxReceiveCount moves the message instead of delivering it.
    assert_empty_now(q.as_ref()).await;
    let dead = receive_one(dlq.as_ref(), Duration::from_secs(5)).await;
    assert_eq!(dead.body, "poison");
    assert_eq!(dead.attributes, attrs);

    let policy = q
        .attributes()
        .await
        .expect("attributes")
        .redrive_policy
        .expect("redrive policy");
    assert_eq!(policy.max_receive_count, 2);
    // The policy names the DLQ in the form the backend resolves (an ARN on AWS, a name locally).
    let resolved = f
        .backend()
        .queue_by_arn(&policy.dead_letter_target)
        .await
        .expect("resolve dlq");
    assert_eq!(resolved.id(), dlq.id());
}

async fn batch_delete_reports_invalid_receipts_per_entry<F: Fixture>(f: &F) {
    let q = f.queue(QSpec::standard(1)).await;
    for body in ["a", "b"] {
        q.send(text(body)).await.expect("send");
    }
    let got = receive_n(q.as_ref(), 2, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 2);

    let r = q
        .delete_batch(&[
            got[0].receipt.clone(),
            "not-a-receipt".to_string(),
            got[1].receipt.clone(),
        ])
        .await
        .expect("delete batch");
    assert_eq!(r.failed.len(), 1, "{r:?}");
    assert_eq!(
        (r.failed[0].index, r.failed[0].code.as_str()),
        (1, "ReceiptHandleIsInvalid")
    );
    assert!(r.failed[0].sender_fault);

    // The valid entries were deleted: nothing comes back after the 1 s timeout.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_empty_now(q.as_ref()).await;
    let attrs = q.attributes().await.expect("attributes");
    assert_eq!(
        (attrs.approximate_visible, attrs.approximate_in_flight),
        (0, 0)
    );

    stale_receipt_in_a_batch(f).await;
}

/// A batch holding a stale receipt (from an earlier receive of the same message) and the
/// current one: on every backend the call succeeds, only the stale entry may fail, and the
/// message is gone. Where the backend rejects stale receipts (local), the stale entry must fail.
async fn stale_receipt_in_a_batch<F: Fixture>(f: &F) {
    let q = f.queue(QSpec::standard(1)).await;
    q.send(text("stale")).await.expect("send");
    let old = receive_one(q.as_ref(), Duration::from_secs(5)).await;
    let new = receive_one(q.as_ref(), Duration::from_secs(5)).await;
    assert_eq!(new.receive_count, old.receive_count + 1);
    let r = q
        .delete_batch(&[old.receipt.clone(), new.receipt.clone()])
        .await
        .expect("a stale receipt must not fail the whole call");
    let failed: Vec<usize> = r.failed.iter().map(|e| e.index).collect();
    if F::REJECTS_STALE_RECEIPTS {
        assert_eq!(failed, vec![0], "{r:?}");
    } else {
        assert!(failed.is_empty() || failed == vec![0], "{r:?}");
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_empty_now(q.as_ref()).await;
}

async fn attributes_round_trip(f: &impl Fixture) {
    let q = f.queue(QSpec::standard(30)).await;
    let mut attrs = BTreeMap::new();
    attrs.insert("s".to_string(), AttributeValue::string("text ✓"));
    attrs.insert("n".to_string(), AttributeValue::number(42));
    attrs.insert(
        "b".to_string(),
        AttributeValue::binary(vec![0, 1, 254, 255]),
    );
    attrs.insert(
        "fleet.failure".to_string(),
        AttributeValue {
            data_type: "String.json".into(),
            string_value: Some(r#"{"code":"x"}"#.into()),
            binary_value: None,
        },
    );
    q.send(OutgoingMessage {
        body: "one".into(),
        attributes: attrs.clone(),
        ..Default::default()
    })
    .await
    .expect("send");
    let m = receive_one(q.as_ref(), Duration::from_secs(5)).await;
    assert_eq!(m.attributes, attrs);
    assert_eq!(
        (m.group_id.as_deref(), m.sequence_number.as_deref()),
        (None, None)
    );

    // Batch send keeps per-message attributes too.
    let batch: Vec<OutgoingMessage> = (0..3)
        .map(|i| {
            let mut a = BTreeMap::new();
            a.insert("i".to_string(), AttributeValue::number(i));
            OutgoingMessage {
                body: format!("batch-{i}"),
                attributes: a,
                ..Default::default()
            }
        })
        .collect();
    let r = q.send_batch(&batch).await.expect("send batch");
    assert!(r.all_ok(), "{r:?}");
    let mut got = receive_n(q.as_ref(), 3, Duration::from_secs(5)).await;
    got.sort_by(|a, b| a.body.cmp(&b.body));
    let seen: Vec<(String, Option<String>)> = got
        .iter()
        .map(|m| {
            (
                m.body.clone(),
                m.attributes
                    .get("i")
                    .and_then(|v| v.as_str())
                    .map(str::to_string),
            )
        })
        .collect();
    assert_eq!(
        seen,
        (0..3)
            .map(|i| (format!("batch-{i}"), Some(i.to_string())))
            .collect::<Vec<_>>()
    );
}

async fn fifo_groups_stay_in_order<F: Fixture>(f: &F) {
    let q = f
        .queue(QSpec {
            fifo: true,
            visibility: Duration::from_secs(30),
        })
        .await;
    let msg = |group: &str, i: usize| OutgoingMessage {
        body: format!("{group}-{i}"),
        group_id: Some(group.to_string()),
        dedup_id: Some(format!("{group}-{i}")),
        ..Default::default()
    };
    for i in 0..3 {
        q.send(msg("g1", i)).await.expect("send");
        q.send(msg("g2", i)).await.expect("send");
    }
    // Same deduplication id within the window: accepted, but not delivered twice.
    q.send(msg("g1", 0)).await.expect("duplicate send");

    // Take the head of g1 only and hold it: no later g1 message may be delivered meanwhile.
    let head = q
        .receive(1, Duration::from_secs(2), None)
        .await
        .expect("receive");
    assert_eq!(head.len(), 1);
    assert_eq!(head[0].body, "g1-0");
    assert_eq!(head[0].group_id.as_deref(), Some("g1"));
    assert_eq!(head[0].dedup_id.as_deref(), Some("g1-0"));
    assert!(head[0].sequence_number.is_some());

    let others = receive_n(q.as_ref(), 3, Duration::from_secs(3)).await;
    let bodies: Vec<&str> = others.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["g2-0", "g2-1", "g2-2"]);
    assert_empty_now(q.as_ref()).await;

    // Finishing g1's head unblocks the rest of g1, in order, and the duplicate never shows.
    let mut receipts: Vec<String> = others.iter().map(|m| m.receipt.clone()).collect();
    receipts.push(head[0].receipt.clone());
    assert!(q.delete_batch(&receipts).await.expect("delete").all_ok());
    let rest = receive_n(q.as_ref(), 2, Duration::from_secs(3)).await;
    let bodies: Vec<&str> = rest.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["g1-1", "g1-2"]);
    let seq: Vec<u128> = rest
        .iter()
        .filter_map(|m| m.sequence_number.as_deref()?.parse().ok())
        .collect();
    assert_eq!(seq.len(), 2, "FIFO messages carry numeric sequence numbers");
    if F::ORDERED_SEQUENCE_NUMBERS {
        assert!(seq[0] < seq[1], "sequence numbers increase within a group");
    }
    assert!(
        q.delete_batch(&rest.iter().map(|m| m.receipt.clone()).collect::<Vec<_>>())
            .await
            .expect("delete")
            .all_ok()
    );
    assert_empty_now(q.as_ref()).await;
}

// ---------------------------------------------------------------------------------------------
// Event bus
// ---------------------------------------------------------------------------------------------

async fn events_route_by_rule(f: &impl Fixture) {
    let pattern = r#"{"source":["fleet.contract"],"detail-type":["PatientAdmitted"]}"#;
    let (bus, tap) = f.bus_with_rule_to_tap(pattern).await;
    let event = |detail_type: &str| BusEvent {
        source: "fleet.contract".into(),
        detail_type: detail_type.into(),
        detail: r#"{"event_id":"e-1","payload":{"n":1}}"#.into(),
        resources: vec!["urn:fleet:test".into()],
        time: Some("2026-01-02T03:04:05Z".into()),
        trace_header: None,
    };
    let r = bus
        .put_events(&[event("PatientAdmitted"), event("PatientDischarged")])
        .await
        .expect("put events");
    assert!(r.all_ok(), "{r:?}");

    let m = receive_one(tap.as_ref(), Duration::from_secs(5)).await;
    let env: serde_json::Value = serde_json::from_str(&m.body).expect("envelope is JSON");
    assert_eq!(env["version"], "0");
    assert!(env["id"].as_str().is_some_and(|s| !s.is_empty()), "{env}");
    assert_eq!(env["detail-type"], "PatientAdmitted");
    assert_eq!(env["source"], "fleet.contract");
    assert!(
        env["time"]
            .as_str()
            .is_some_and(|t| t.starts_with("2026-01-02T03:04:05")),
        "{env}"
    );
    assert!(env["region"].is_string(), "{env}");
    assert_eq!(env["resources"], serde_json::json!(["urn:fleet:test"]));
    assert_eq!(
        env["detail"],
        serde_json::json!({"event_id": "e-1", "payload": {"n": 1}})
    );

    // The non-matching event was accepted by the bus but not routed.
    let more = tap
        .receive(10, Duration::from_secs(1), None)
        .await
        .expect("receive");
    assert!(more.is_empty(), "non-matching event was routed");

    // A malformed entry fails alone.
    let bad = BusEvent {
        detail: "not json".into(),
        ..event("PatientAdmitted")
    };
    let r = bus
        .put_events(&[event("Other"), bad])
        .await
        .expect("put events");
    assert_eq!(
        r.failed
            .iter()
            .map(|e| (e.index, e.code.as_str()))
            .collect::<Vec<_>>(),
        vec![(1, "MalformedDetail")]
    );
}

// ---------------------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------------------

async fn conditional_writes(f: &impl Fixture) {
    let t = f.records().await;
    let first = record("p", "s", 10, serde_json::json!({"v": 1}));
    assert_eq!(
        t.put(put(first.clone(), Condition::NotExists))
            .await
            .expect("put"),
        PutOutcome::Written
    );
    let second = record("p", "s", 11, serde_json::json!({"v": 2}));
    assert_eq!(
        t.put(put(second, Condition::NotExists)).await.expect("put"),
        PutOutcome::ConditionFailed
    );
    assert_eq!(t.get("p", "s").await.expect("get"), Some(first));

    // OrderBelow: no regression, strict.
    let older = record("p", "s", 5, serde_json::json!({"v": "old"}));
    assert_eq!(
        t.put(put(older, Condition::OrderBelow(5)))
            .await
            .expect("put"),
        PutOutcome::ConditionFailed
    );
    let same = record("p", "s", 10, serde_json::json!({"v": "same"}));
    assert_eq!(
        t.put(put(same, Condition::OrderBelow(10)))
            .await
            .expect("put"),
        PutOutcome::ConditionFailed
    );
    let newer = Record {
        expires_at: Some(4_000_000_000),
        ..record("p", "s", 20, serde_json::json!({"v": "new"}))
    };
    assert_eq!(
        t.put(put(newer.clone(), Condition::OrderBelow(20)))
            .await
            .expect("put"),
        PutOutcome::Written
    );
    assert_eq!(t.get("p", "s").await.expect("get"), Some(newer));
    // Absent records pass OrderBelow.
    let fresh = record("p", "other", 1, serde_json::json!(null));
    assert_eq!(
        t.put(put(fresh.clone(), Condition::OrderBelow(1)))
            .await
            .expect("put"),
        PutOutcome::Written
    );
    // Unconditional overwrites.
    let over = record("p", "other", 0, serde_json::json!([1, 2]));
    assert_eq!(
        t.put(put(over.clone(), Condition::None))
            .await
            .expect("put"),
        PutOutcome::Written
    );
    assert_eq!(t.get("p", "other").await.expect("get"), Some(over));
    assert_eq!(t.get("p", "missing").await.expect("get"), None);
}

async fn transact_put_is_all_or_nothing(f: &impl Fixture) {
    let t = f.records().await;
    let existing = record("k", "1", 7, serde_json::json!({"v": "existing"}));
    t.put(put(existing.clone(), Condition::None))
        .await
        .expect("put");

    let a = record("k", "2", 1, serde_json::json!({"v": "a"}));
    let clash = record("k", "1", 8, serde_json::json!({"v": "clash"}));
    let b = record("k", "3", 1, serde_json::json!({"v": "b"}));
    let out = t
        .transact_put(&[
            put(a.clone(), Condition::NotExists),
            put(clash, Condition::NotExists),
            put(b.clone(), Condition::OrderBelow(1)),
        ])
        .await
        .expect("transact");
    assert_eq!(out, TransactOutcome::ConditionFailed(vec![1]));
    assert_eq!(
        t.get("k", "2").await.expect("get"),
        None,
        "nothing written when one fails"
    );
    assert_eq!(t.get("k", "1").await.expect("get"), Some(existing));

    let newer = record("k", "1", 9, serde_json::json!({"v": "newer"}));
    let out = t
        .transact_put(&[
            put(a.clone(), Condition::NotExists),
            put(newer.clone(), Condition::OrderBelow(9)),
            put(b.clone(), Condition::None),
        ])
        .await
        .expect("transact");
    assert_eq!(out, TransactOutcome::Written);
    assert_eq!(t.query("k").await.expect("query"), vec![newer, a, b]);
}

async fn query_returns_partition_in_sort_order(f: &impl Fixture) {
    let t = f.records().await;
    for sk in ["b", "a", "c"] {
        t.put(put(
            record("q", sk, 0, serde_json::json!(sk)),
            Condition::None,
        ))
        .await
        .expect("put");
    }
    t.put(put(
        record("other", "a", 0, serde_json::json!(0)),
        Condition::None,
    ))
    .await
    .expect("put");
    let sks: Vec<String> = t
        .query("q")
        .await
        .expect("query")
        .into_iter()
        .map(|r| r.sk)
        .collect();
    assert_eq!(sks, ["a", "b", "c"]);
    assert!(t.query("nobody").await.expect("query").is_empty());
}

// ---------------------------------------------------------------------------------------------
// Issue 15, item 4: expiry and claim ownership (the idempotency store over each backend)
// ---------------------------------------------------------------------------------------------

/// A claim that expires within a test; the gaps around it leave room for moto's latency.
const SHORT_CLAIM: Duration = Duration::from_secs(1);
const LONG_CLAIM: Duration = Duration::from_secs(60);

fn epoch_secs() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    i64::try_from(since.as_secs()).expect("seconds fit")
}

/// A record past its TTL is absent for reads and for conditions on every backend (DynamoDB
/// deletes expired items lazily, so the adapter must not show what TTL has not removed yet).
async fn item4_store_hides_expired_items(f: &impl Fixture) {
    let t = f.records().await;
    let expired = Record {
        expires_at: Some(epoch_secs() - 10),
        ..record("x", "a", 1, serde_json::json!("expired"))
    };
    let live = Record {
        expires_at: Some(epoch_secs() + 3600),
        ..record("x", "b", 1, serde_json::json!("live"))
    };
    for r in [&expired, &live] {
        t.put(put(r.clone(), Condition::None)).await.expect("put");
    }
    assert_eq!(
        t.get("x", "a").await.expect("get"),
        None,
        "get returned an expired record"
    );
    assert_eq!(
        t.query("x").await.expect("query"),
        vec![live.clone()],
        "query returned an expired record"
    );
    let again = record("x", "a", 2, serde_json::json!("again"));
    assert_eq!(
        t.put(put(again.clone(), Condition::NotExists))
            .await
            .expect("put"),
        PutOutcome::Written,
        "an expired record blocked a \"not exists\" write"
    );
    assert_eq!(t.get("x", "a").await.expect("get"), Some(again));
}

/// A worker whose claim expired and was taken over must not complete the new owner's claim.
async fn item4_a_stale_owner_cannot_complete_a_claim_taken_over(f: &impl Fixture) {
    let store = IdempotencyStore::new(f.records().await);
    let key = unique("claim");
    let a = started(store.begin(&key, SHORT_CLAIM).await.expect("begin a"));
    // Worker A stalls past its claim's expiry; worker B takes the message over.
    tokio::time::sleep(SHORT_CLAIM + Duration::from_millis(200)).await;
    let b = started(store.begin(&key, LONG_CLAIM).await.expect("begin b"));
    // A wakes up and completes: it owns nothing any more.
    assert_eq!(
        store
            .complete(&a, LONG_CLAIM)
            .await
            .expect("stale complete"),
        Settled::NotOwner
    );
    assert_eq!(
        store.begin(&key, LONG_CLAIM).await.expect("begin c"),
        Begin::InProgress,
        "a stale owner's complete overwrote the claim that took it over"
    );
    // B, the owner, completes.
    assert_eq!(
        store.complete(&b, LONG_CLAIM).await.expect("complete b"),
        Settled::Recorded
    );
    assert_eq!(
        store.begin(&key, LONG_CLAIM).await.expect("begin d"),
        Begin::Completed
    );
}

/// An in-progress claim is taken over once past its expiry, and the new owner keeps it: the
/// previous owner's abandon does not release it.
async fn item4_expired_claim_can_be_taken_over(f: &impl Fixture) {
    let store = IdempotencyStore::new(f.records().await);
    let key = unique("claim");
    let a = started(store.begin(&key, SHORT_CLAIM).await.expect("begin a"));
    assert_eq!(
        store
            .begin(&key, LONG_CLAIM)
            .await
            .expect("begin before expiry"),
        Begin::InProgress
    );
    tokio::time::sleep(SHORT_CLAIM + Duration::from_millis(200)).await;
    let b = started(store.begin(&key, LONG_CLAIM).await.expect("begin b"));
    // A's late abandon must leave B's claim in place.
    assert_eq!(
        store.abandon(&a).await.expect("stale abandon"),
        Settled::NotOwner
    );
    assert_eq!(
        store.begin(&key, LONG_CLAIM).await.expect("begin c"),
        Begin::InProgress,
        "a stale owner's abandon released the claim that took it over"
    );
    // B's own abandon frees the key at once.
    assert_eq!(
        store.abandon(&b).await.expect("abandon b"),
        Settled::Recorded
    );
    started(store.begin(&key, LONG_CLAIM).await.expect("begin d"));
}

/// The claim of a `Begin::Started`, or a panic naming what came instead.
fn started(b: Begin) -> Claim {
    match b {
        Begin::Started(claim) => claim,
        other => panic!("expected a claim (an expired one is taken over), got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Objects
// ---------------------------------------------------------------------------------------------

async fn objects_put_get_head(f: &impl Fixture) {
    let o = f.objects().await;
    let bytes = b"%PDF-1.4 not really".to_vec();
    let meta = o
        .put("docs/2026/a.pdf", bytes.clone(), "application/pdf")
        .await
        .expect("put");
    assert_eq!(meta.size, bytes.len() as u64);

    let (got, got_meta) = o
        .get("docs/2026/a.pdf")
        .await
        .expect("get")
        .expect("present");
    assert_eq!(got, bytes);
    assert_eq!(got_meta.size, bytes.len() as u64);
    assert_eq!(got_meta.content_type.as_deref(), Some("application/pdf"));
    assert_eq!(got_meta.etag, meta.etag);

    let head = o
        .head("docs/2026/a.pdf")
        .await
        .expect("head")
        .expect("present");
    assert_eq!(
        (head.size, head.content_type.as_deref()),
        (bytes.len() as u64, Some("application/pdf"))
    );

    assert_eq!(o.get("docs/2026/missing.pdf").await.expect("get"), None);
    assert_eq!(o.head("docs/2026/missing.pdf").await.expect("head"), None);

    // Overwrite replaces content.
    o.put("docs/2026/a.pdf", b"v2".to_vec(), "text/plain")
        .await
        .expect("put");
    let (got, _) = o
        .get("docs/2026/a.pdf")
        .await
        .expect("get")
        .expect("present");
    assert_eq!(got, b"v2");
}

// ---------------------------------------------------------------------------------------------
// Backend
// ---------------------------------------------------------------------------------------------

async fn backend_lists_queues_by_prefix_and_names_the_caller(f: &impl Fixture) {
    // Fixture queues are named `q-<pid>-...`: the prefix is this test process's alone.
    let prefix = format!("q-{}-", std::process::id());
    let a = f.queue(QSpec::standard(30)).await;
    let b = f.queue(QSpec::standard(30)).await;
    let mut expected = vec![a.id().to_string(), b.id().to_string()];
    expected.sort();
    assert_eq!(f.backend().list_queues(&prefix).await.unwrap(), expected);
    let none = format!("{prefix}no-such-queue");
    assert!(f.backend().list_queues(&none).await.unwrap().is_empty());
    let everything = f.backend().list_queues("").await.unwrap();
    assert!(expected.iter().all(|q| everything.contains(q)));
    let caller = f.backend().caller_identity().await.unwrap();
    match f.backend().kind() {
        "local" => assert!(caller.starts_with("local:") && caller.len() > 6, "{caller}"),
        _ => assert!(caller.starts_with("arn:aws:"), "{caller}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Notifications
// ---------------------------------------------------------------------------------------------

async fn notifications_publish_with_subject_and_attributes(f: &impl Fixture) {
    let topic = f.topic().await;
    let notifier = f.backend().notifier();
    let n = Notification {
        subject: Some("Admission to WARD3".into()),
        body: "A patient was admitted to WARD3.".into(),
        attributes: BTreeMap::from([
            ("fleet.rule".to_string(), "admissions".to_string()),
            ("team".to_string(), "ward-3".to_string()),
        ]),
        ..Notification::default()
    };
    let id = notifier.publish(&topic, &n).await.expect("publish");
    assert!(!id.is_empty());
    let plain = Notification {
        body: "second".into(),
        ..Notification::default()
    };
    notifier.publish(&topic, &plain).await.expect("publish");
    let got = f.published(&topic, 2).await;
    assert_eq!(got.len(), 2, "{got:?}");
    let first = got
        .iter()
        .find(|g| g.body == n.body)
        .expect("first notification");
    assert_eq!(first.subject, n.subject);
    assert_eq!(first.attributes, n.attributes);
    let second = got.iter().find(|g| g.body == "second").expect("second");
    assert_eq!(second.subject, None);

    // A topic that does not exist is a permanent NotFound, not a retry.
    let err = notifier
        .publish(&f.missing_topic(), &plain)
        .await
        .expect_err("publish to a missing topic");
    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
    assert!(!err.is_retryable());
}

// ---------------------------------------------------------------------------------------------
// Issue 15, item 3: PutEvents sizes through the runtime's publisher, on both buses
// ---------------------------------------------------------------------------------------------

/// An event whose EventBridge entry size (Source + DetailType + Detail, no Time or Resources)
/// is `bytes`.
fn item3_event(n: usize, bytes: usize) -> BusEvent {
    let (source, detail_type) = ("fleet.sizes", "Sized");
    let head = format!("{{\"n\":{n},\"pad\":\"");
    let pad = "p".repeat(bytes - source.len() - detail_type.len() - head.len() - 2);
    BusEvent {
        source: source.into(),
        detail_type: detail_type.into(),
        detail: format!("{head}{pad}\"}}"),
        resources: vec![],
        time: None,
        trace_header: None,
    }
}

/// Forwards to the fixture's bus and records each request's (entries, entry size).
struct Item3RecordingBus {
    inner: Arc<dyn EventBus>,
    requests: std::sync::Mutex<Vec<(usize, usize)>>,
}

impl EventBus for Item3RecordingBus {
    fn id(&self) -> &str {
        self.inner.id()
    }
    // What `#[async_trait]` would write (the tests crate does not depend on it).
    fn put_events<'s, 'e, 'f>(
        &'s self,
        events: &'e [BusEvent],
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<fleet_core::BatchResult, fleet_core::PortError>>
                + Send
                + 'f,
        >,
    >
    where
        's: 'f,
        'e: 'f,
        Self: 'f,
    {
        let size = events.iter().map(BusEvent::entry_size).sum();
        self.requests.lock().unwrap().push((events.len(), size));
        self.inner.put_events(events)
    }
}

async fn item3_events_over_256kb_in_total_go_out_in_several_requests(f: &impl Fixture) {
    let (bus, tap) = f
        .bus_with_rule_to_tap(r#"{"source":["fleet.sizes"]}"#)
        .await;
    let bus = Arc::new(Item3RecordingBus {
        inner: bus,
        requests: Default::default(),
    });
    let publisher = Arc::new(fleet_runtime::EventPublisher::new(
        bus.clone(),
        Duration::from_millis(100),
    ));
    // Twelve events of 60,000 bytes: ten (one count-full request) would be 600,000.
    let tasks: Vec<_> = (0..12)
        .map(|n| {
            let p = publisher.clone();
            tokio::spawn(async move { p.publish(item3_event(n, 60_000)).await })
        })
        .collect();
    for t in tasks {
        t.await.expect("task").expect("every event is accepted");
    }
    let requests = bus.requests.lock().unwrap().clone();
    assert!(
        requests.iter().all(|&(_, size)| size < 256 * 1024),
        "a PutEvents request not below 256 KiB: (entries, size) {requests:?}"
    );
    assert_eq!(requests.iter().map(|&(n, _)| n).sum::<usize>(), 12);
    assert!(requests.iter().any(|&(n, _)| n > 1), "{requests:?}");
    let got = receive_n(tap.as_ref(), 12, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 12, "every event is delivered");
}

async fn item3_an_event_over_the_put_events_limit_is_refused_with_event_too_large(
    f: &impl Fixture,
) {
    use fleet_core::{ErrorCode, Failure};
    let (bus, tap) = f
        .bus_with_rule_to_tap(r#"{"source":["fleet.sizes"]}"#)
        .await;
    let publisher = fleet_runtime::EventPublisher::new(bus, Duration::from_millis(50));
    let (big, small) = tokio::join!(
        publisher.publish(item3_event(1, 300 * 1024)),
        publisher.publish(item3_event(2, 100))
    );
    let err = big.expect_err("an event over the PutEvents limit is refused");
    assert_eq!(
        Failure::from_port(&err).code(),
        Some(ErrorCode::EventTooLarge),
        "{err}"
    );
    small.expect("the small event of the same batch goes on");
    let got = receive_n(tap.as_ref(), 2, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 1, "only the small event is delivered");
}

// ---------------------------------------------------------------------------------------------
// Issue 15, item 1: FIFO receive counts through the runtime, on both queues
// ---------------------------------------------------------------------------------------------

/// Records every delivery; `slow-*` messages take 300 ms and `slow-1` fails its first attempt.
#[derive(Default)]
struct Item1Handler {
    calls: std::sync::Mutex<Vec<(String, u32)>>,
}

#[async_trait::async_trait]
impl fleet_runtime::Handler for Item1Handler {
    async fn handle(&self, d: &fleet_runtime::Delivery) -> fleet_runtime::Outcome {
        self.calls
            .lock()
            .unwrap()
            .push((d.body.clone(), d.receive_count));
        if d.body.starts_with("slow-") {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if d.body == "slow-1" && d.attempt == 1 {
                return fleet_runtime::Outcome::retry("transient");
            }
        }
        fleet_runtime::Outcome::Done
    }
}

impl Item1Handler {
    fn handled(&self, body: &str) -> bool {
        self.calls.lock().unwrap().iter().any(|(b, _)| b == body)
    }
}

/// `maxReceiveCount` 2, one slow group whose head fails once, many fast groups, and a drain in
/// the middle: every message is handled and none reaches the DLQ (SQS's redrive would move a
/// message handed back twice untried). Before the fix the failure handed back the slow group's
/// tail and the drain handed it back again.
async fn item1_fifo_messages_reach_the_dlq_only_after_being_tried(f: &impl Fixture) {
    let spec = QSpec {
        fifo: true,
        visibility: Duration::from_secs(30),
    };
    let (q, dlq) = f.queue_with_dlq(spec, 2).await;
    let mut bodies = Vec::new();
    let mut out = Vec::new();
    for i in 1..=6 {
        bodies.push(format!("slow-{i}"));
        out.push(("slow".to_string(), format!("slow-{i}")));
    }
    for g in 0..12 {
        for i in 0..2 {
            bodies.push(format!("fast-{g}-{i}"));
            out.push((format!("fast-{g}"), format!("fast-{g}-{i}")));
        }
    }
    for chunk in out.chunks(10) {
        let batch: Vec<OutgoingMessage> = chunk
            .iter()
            .map(|(group, body)| OutgoingMessage {
                group_id: Some(group.clone()),
                dedup_id: Some(body.clone()),
                ..text(body)
            })
            .collect();
        assert!(q.send_batch(&batch).await.unwrap().all_ok());
    }
    let mut cfg = fleet_runtime::RuntimeConfig::new("item1", q.id());
    cfg.wait_time = Duration::from_millis(500);
    cfg.backoff = fleet_runtime::BackoffPolicy::FAST_TESTS;
    cfg.delete_linger = Duration::from_millis(5);
    cfg.drain_deadline = Duration::from_secs(10);
    cfg.concurrency = 10;
    cfg.max_attempts = 2;
    // The local fixture's queues have no KMS key; the redrive policy is still honoured.
    cfg.allow_unencrypted = true;
    let h = Arc::new(Item1Handler::default());
    let run = |cfg: fleet_runtime::RuntimeConfig| {
        let stop = tokio_util::sync::CancellationToken::new();
        let task = tokio::spawn(fleet_runtime::run(
            cfg,
            f.shared_backend(),
            h.clone(),
            stop.clone(),
        ));
        (stop, task)
    };
    let (stop, task) = run(cfg.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !h.handled("slow-2") {
        assert!(tokio::time::Instant::now() < deadline, "slow-2 never ran");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.cancel();
    task.await.unwrap().expect("first run");
    let (stop, task) = run(cfg);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let attrs = q.attributes().await.unwrap();
        let all = bodies.iter().all(|b| h.handled(b));
        if all && attrs.approximate_visible + attrs.approximate_in_flight == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not every message was handled: {:?}",
            bodies.iter().filter(|b| !h.handled(b)).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.cancel();
    task.await.unwrap().expect("second run");
    let dead = receive_n(dlq.as_ref(), 1, Duration::from_secs(2)).await;
    assert!(
        dead.is_empty(),
        "reached the DLQ: {:?}",
        dead.iter().map(|m| &m.body).collect::<Vec<_>>()
    );
    // The slow group ran in order, its head twice (attempts 1 and 2 of one receive).
    let slow: Vec<String> = h
        .calls
        .lock()
        .unwrap()
        .iter()
        .filter(|(b, _)| b.starts_with("slow-"))
        .map(|(b, _)| b.clone())
        .collect();
    let mut expected = vec!["slow-1".to_string()];
    expected.extend((1..=6).map(|i| format!("slow-{i}")));
    assert_eq!(slow, expected);
}
