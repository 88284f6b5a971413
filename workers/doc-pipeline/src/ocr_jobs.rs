//! Asynchronous OCR jobs after their start (issue 15 item 10): the job record, the claim that
//! lets one finisher at a time finish a job, and the sweeper that finishes jobs whose
//! completion notification never arrived.
//!
//! - **Job record** `JOB#<token>`/`OCRJOB`: document id, job id, source, correlation id,
//!   `started_at_ms` and a state (`started` → `finishing` → `finished` | `failed` with the
//!   code and detail). Its `order` is the owner token every change is conditional on.
//! - **Started-jobs index** `OCRJOBS#STARTED`/`<started_at_ms, 20 digits>#<token>`: written
//!   with the job id (one TransactWriteItems with the job record), deleted when the job is
//!   settled, so the partition holds only the jobs still open and one Query lists them oldest
//!   first on both stores.
//! - **Finishing** (a completion or the sweeper): claim the job record (`finishing` until a
//!   claim expiry, conditional on the order read), then the document record or the stored
//!   event (a finisher that crashed), or GetDocumentTextDetection and the same `finish` as the
//!   synchronous path; settle the record (`finished`, or `failed` with the first permanent
//!   failure: the job's verdict) and delete the index entry. Whoever comes second sees
//!   `finished` and publishes nothing; a second finisher during a live claim waits.
//! - **Expiry**: a job id is valid for 7 days. Textract answering `InvalidJobIdException`
//!   (`OCR_JOB_UNKNOWN` from the adapter) for a recorded job, or a job still running after 7
//!   days, is `OCR_TIMED_OUT`.

use std::sync::Arc;
use std::time::Duration;

use fleet_core::ErrorCode;
use fleet_core::ports::{Condition, ConditionalPut, PutOutcome, Record, TransactOutcome};
use fleet_docs::OcrJob;
use fleet_docs::completion::JobStatus;
use fleet_runtime::Failure;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::handler::{Pipeline, Processed, Source};

pub(crate) const SK_JOB: &str = "OCRJOB";
/// The partition of the started-jobs index.
const PENDING_PK: &str = "OCRJOBS#STARTED";
/// How long Textract knows a job: "A JobId value is only valid for 7 days" (API reference,
/// StartDocumentTextDetection).
pub const JOB_VALIDITY: Duration = Duration::from_secs(7 * 24 * 3600);
/// The job record and its index entry outlive the job by a day, so the sweeper still finds a
/// job Textract has forgotten and a replayed completion still finds the verdict.
const JOB_RECORD_TTL: Duration = Duration::from_secs(8 * 24 * 3600);
/// How long a finisher owns a job before another may take it over (above the longest
/// collect + extract + write of one document).
const CLAIM_TTL: Duration = Duration::from_secs(15 * 60);

pub(crate) fn job_pk(token: &str) -> String {
    format!("JOB#{token}")
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn expires_at(started_at_ms: i64) -> Option<i64> {
    Some(started_at_ms.saturating_add(ms(JOB_RECORD_TTL)) / 1000)
}

fn pending_sk(started_at_ms: i64, token: &str) -> String {
    format!("{:020}#{token}", started_at_ms.max(0))
}

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum JobState {
    /// Started (or being started): waiting for its completion or the sweeper.
    #[default]
    Started,
    /// A finisher owns it until the record's `order` (ms since the epoch).
    Finishing,
    Finished,
    Failed,
}

/// The job record's data.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct JobRecord {
    pub document_id: String,
    pub job_id: Option<String>,
    pub source: Source,
    pub correlation_id: String,
    #[serde(default)]
    pub started_at_ms: i64,
    #[serde(default)]
    pub state: JobState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<ErrorCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl JobRecord {
    pub(crate) fn new(document_id: &str, source: Source, correlation_id: &str) -> Self {
        Self {
            document_id: document_id.to_string(),
            job_id: None,
            source,
            correlation_id: correlation_id.to_string(),
            started_at_ms: now_ms(),
            state: JobState::Started,
            code: None,
            detail: None,
        }
    }

    pub(crate) fn read(record: &Record) -> Result<Self, Failure> {
        serde_json::from_value(record.data.clone()).map_err(|_| {
            Failure::permanent(
                ErrorCode::OcrCompletionInvalid,
                "the job record is not readable",
            )
        })
    }

    fn record(&self, token: &str, order: i64) -> Record {
        Record {
            pk: job_pk(token),
            sk: SK_JOB.into(),
            order,
            expires_at: expires_at(self.started_at_ms),
            data: serde_json::to_value(self).expect("job record serialises"),
        }
    }

    fn verdict(&self) -> Failure {
        Failure::permanent(
            self.code.unwrap_or(ErrorCode::OcrFailed),
            self.detail.as_deref().unwrap_or("the OCR job failed"),
        )
    }

    fn age(&self, now_ms: i64) -> Duration {
        Duration::from_millis(u64::try_from(now_ms - self.started_at_ms).unwrap_or(0))
    }
}

/// The job's entry in the started-jobs index.
pub(crate) fn pending_entry(token: &str, job: &JobRecord) -> Record {
    Record {
        pk: PENDING_PK.into(),
        sk: pending_sk(job.started_at_ms, token),
        order: job.started_at_ms,
        expires_at: expires_at(job.started_at_ms),
        data: serde_json::json!({ "token": token, "started_at_ms": job.started_at_ms }),
    }
}

/// Who is finishing a job.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Trigger {
    /// Its completion notification, with the status it reported.
    Completion(JobStatus),
    /// The sweeper, which knows nothing but the job id.
    Sweep,
}

/// What finishing a job did (failures are the `Err` side).
#[derive(Debug)]
pub(crate) enum JobOutcome {
    Finished(Processed),
    /// Settled before: nothing done, nothing published.
    AlreadyFinished,
    /// Textract still reports IN_PROGRESS.
    StillRunning,
    /// Another finisher holds a live claim.
    Busy,
}

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Started jobs old enough to be looked at.
    pub looked_at: usize,
    /// Finished now (results, record, event), or found finished by a finisher that crashed.
    pub finished: usize,
    /// Failed now, with their code (`OCR_FAILED`, `OCR_TIMED_OUT`, ...).
    pub failed: Vec<ErrorCode>,
    /// Still running at Textract, or being finished by someone else.
    pub open: usize,
    /// Index entries of jobs already settled or superseded, removed.
    pub removed: usize,
    /// Jobs whose look-up failed for a reason that may pass (throttling, an outage).
    pub retry_later: usize,
}

impl Pipeline {
    /// Write the job record (before the start: no job id; after it: with the job id and, in
    /// the same transaction, its entry in the started-jobs index).
    pub(crate) async fn put_job(
        &self,
        token: &str,
        job: &JobRecord,
        pending: Option<Record>,
    ) -> Result<(), Failure> {
        let record = ConditionalPut {
            record: job.record(token, job.started_at_ms),
            condition: Condition::None,
        };
        match pending {
            None => {
                self.records.put(record).await?;
            }
            Some(entry) => {
                let entry = ConditionalPut {
                    record: entry,
                    condition: Condition::None,
                };
                if let TransactOutcome::ConditionFailed(_) =
                    self.records.transact_put(&[record, entry]).await?
                {
                    return Err(Failure::retryable("transient", "job record write refused"));
                }
            }
        }
        Ok(())
    }

    /// Finish, fail or leave one recorded job, as `trigger` asks. Exactly one finisher at a
    /// time (the claim); a settled job is never finished or published again.
    pub(crate) async fn settle_job(
        &self,
        token: &str,
        record: Record,
        job: JobRecord,
        trigger: Trigger,
    ) -> Result<JobOutcome, Failure> {
        let now = now_ms();
        match job.state {
            JobState::Finished => {
                self.forget_pending(token, &job).await?;
                return Ok(JobOutcome::AlreadyFinished);
            }
            JobState::Failed => {
                self.forget_pending(token, &job).await?;
                return Err(job.verdict());
            }
            JobState::Finishing if record.order > now => return Ok(JobOutcome::Busy),
            JobState::Started | JobState::Finishing => {}
        }
        let Some(job_id) = job.job_id.clone() else {
            // Not started yet (the upload handler is between its two writes).
            return Ok(JobOutcome::StillRunning);
        };
        let claim = now.saturating_add(ms(CLAIM_TTL)).max(record.order + 1);
        let mut claimed = job.clone();
        claimed.state = JobState::Finishing;
        let put = ConditionalPut {
            record: claimed.record(token, claim),
            condition: Condition::OrderEquals(record.order),
        };
        if self.records.put(put).await? == PutOutcome::ConditionFailed {
            return Ok(JobOutcome::Busy);
        }
        match self.run_job(&job, &job_id, trigger).await {
            Ok(Some(processed)) => {
                self.close(token, claim, &job, JobState::Finished, None)
                    .await?;
                Ok(JobOutcome::Finished(processed))
            }
            Ok(None) => {
                self.reopen(token, claim, &job).await;
                Ok(JobOutcome::StillRunning)
            }
            Err(Failure::Permanent { code, detail }) => {
                self.close(token, claim, &job, JobState::Failed, Some((code, &detail)))
                    .await?;
                Err(Failure::Permanent { code, detail })
            }
            Err(retry) => {
                self.reopen(token, claim, &job).await;
                Err(retry)
            }
        }
    }

    /// The claimed job's work: `Some` when the document is finished, `None` while Textract
    /// still runs it.
    async fn run_job(
        &self,
        job: &JobRecord,
        job_id: &str,
        trigger: Trigger,
    ) -> Result<Option<Processed>, Failure> {
        let document_id = &job.document_id;
        // A finisher that wrote the document record and stopped before settling the job.
        if self.republish_if_done(document_id).await? {
            return Ok(Some(Processed::Republished {
                document_id: document_id.clone(),
            }));
        }
        if let Trigger::Completion(status @ (JobStatus::Failed | JobStatus::Error)) = trigger {
            return Err(Failure::permanent(
                ErrorCode::OcrFailed,
                format!("the OCR job ended {status:?}"),
            ));
        }
        match self.ocr.collect(job_id).await {
            Ok(OcrJob::InProgress) if job.age(now_ms()) >= JOB_VALIDITY => Err(Failure::permanent(
                ErrorCode::OcrTimedOut,
                "the OCR job still ran 7 days after it started; replay the upload to read the document again",
            )),
            Ok(OcrJob::InProgress) => Ok(None),
            Ok(OcrJob::Done(ocr)) => {
                let engine = self.ocr.name();
                self.finish(document_id, &job.source, ocr, engine, &job.correlation_id)
                    .await
                    .map(Some)
            }
            Err(Failure::Permanent {
                code: ErrorCode::OcrJobUnknown,
                ..
            }) => Err(Failure::permanent(
                ErrorCode::OcrTimedOut,
                "the OCR service no longer knows the job (a job id is valid for 7 days); replay the upload to read the document again",
            )),
            Err(e) => Err(e),
        }
    }

    /// Settle a claimed job and drop it from the started-jobs index.
    async fn close(
        &self,
        token: &str,
        claim: i64,
        job: &JobRecord,
        state: JobState,
        failure: Option<(ErrorCode, &str)>,
    ) -> Result<(), Failure> {
        let mut settled = job.clone();
        settled.state = state;
        settled.code = failure.map(|(c, _)| c);
        settled.detail = failure.map(|(_, d)| d.to_string());
        let put = ConditionalPut {
            record: settled.record(token, now_ms().max(claim + 1)),
            condition: Condition::OrderEquals(claim),
        };
        if self.records.put(put).await? == PutOutcome::ConditionFailed {
            // The claim lapsed and another finisher took the job over; it settles it.
            tracing::warn!(document_id = %job.document_id, "OCR job claim was taken over");
            return Ok(());
        }
        match failure {
            None => tracing::info!(document_id = %job.document_id, "OCR job settled: finished"),
            Some((code, _)) => {
                tracing::warn!(document_id = %job.document_id, code = %code, "OCR job settled: failed");
            }
        }
        self.forget_pending(token, job).await
    }

    /// Give the claim back (the job still runs, or a failure that may pass).
    async fn reopen(&self, token: &str, claim: i64, job: &JobRecord) {
        let put = ConditionalPut {
            record: job.record(token, claim + 1),
            condition: Condition::OrderEquals(claim),
        };
        // On failure the claim simply lapses after CLAIM_TTL.
        if let Err(e) = self.records.put(put).await {
            tracing::warn!(document_id = %job.document_id, error = %e, "OCR job claim not released");
        }
    }

    async fn forget_pending(&self, token: &str, job: &JobRecord) -> Result<(), Failure> {
        self.records
            .delete(PENDING_PK, &pending_sk(job.started_at_ms, token))
            .await?;
        Ok(())
    }

    /// Look at every started job at least `older_than` old, oldest first, and finish, fail or
    /// leave it exactly as its completion would. Stops between jobs once `shutdown` is
    /// cancelled.
    pub async fn sweep_ocr_jobs(
        &self,
        older_than: Duration,
        shutdown: &CancellationToken,
    ) -> Result<SweepReport, Failure> {
        let cutoff = now_ms().saturating_sub(ms(older_than));
        let mut report = SweepReport::default();
        for entry in self.records.query(PENDING_PK).await? {
            if entry.order > cutoff || shutdown.is_cancelled() {
                break;
            }
            report.looked_at += 1;
            match self.sweep_one(&entry).await {
                Ok(None) => report.removed += 1,
                Ok(Some(JobOutcome::Finished(_))) => report.finished += 1,
                Ok(Some(JobOutcome::AlreadyFinished)) => report.removed += 1,
                Ok(Some(JobOutcome::StillRunning | JobOutcome::Busy)) => report.open += 1,
                Err(Failure::Permanent { code, .. }) => report.failed.push(code),
                Err(e) => {
                    tracing::warn!(error = %e, "OCR job sweep: look-up failed, next sweep retries");
                    report.retry_later += 1;
                }
            }
        }
        Ok(report)
    }

    /// `None`: the entry named no live job (settled and expired, or superseded by a later
    /// start of the same document) and was removed.
    async fn sweep_one(&self, entry: &Record) -> Result<Option<JobOutcome>, Failure> {
        let token = entry.data["token"].as_str().unwrap_or_default();
        let record = match self.records.get(&job_pk(token), SK_JOB).await? {
            Some(r) if !token.is_empty() => r,
            _ => {
                self.records.delete(&entry.pk, &entry.sk).await?;
                return Ok(None);
            }
        };
        let job = JobRecord::read(&record)?;
        if job.started_at_ms != entry.order {
            self.records.delete(&entry.pk, &entry.sk).await?;
            return Ok(None);
        }
        let outcome = self.settle_job(token, record, job, Trigger::Sweep).await;
        if let Ok(JobOutcome::Finished(p)) = &outcome {
            tracing::info!(processed = ?p, "OCR job finished by the sweeper (its completion never came)");
        }
        outcome.map(Some)
    }
}

/// Sweep every `every` (the first at once) until `shutdown`; a sweep under way gets
/// `drain_deadline` to end after it.
pub async fn run_sweeper(
    pipeline: Arc<Pipeline>,
    every: Duration,
    older_than: Duration,
    drain_deadline: Duration,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tracing::info!(
        every_secs = every.as_secs(),
        older_than_secs = older_than.as_secs(),
        "OCR job sweeper started"
    );
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let sweep = pipeline.sweep_ocr_jobs(older_than, &shutdown);
        let deadline = async {
            shutdown.cancelled().await;
            tokio::time::sleep(drain_deadline).await;
        };
        tokio::select! {
            r = sweep => match r {
                Ok(report) if report.looked_at > 0 => tracing::info!(
                    looked_at = report.looked_at,
                    finished = report.finished,
                    failed = report.failed.len(),
                    open = report.open,
                    removed = report.removed,
                    retry_later = report.retry_later,
                    "OCR job sweep"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "OCR job sweep failed; the next one retries"),
            },
            () = deadline => break,
        }
    }
}
