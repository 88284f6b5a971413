//! `dlq-replay`: the on-call engineer's tool for the fleet's dead-letter queues.
//!
//! It lists DLQs, summarises and shows failures from the failure-metadata attribute the
//! runtime writes (`fleet.failure`), and replays or purges a chosen subset: send first,
//! delete only what was sent, only messages present when the run began, FIFO groups kept in
//! order. Bodies are printed only with `show --show-body`; every command writes an audit
//! record (who, when, which queue, which message ids), never a body. It runs on both backends
//! through the same options as the workers.

pub mod archive;
pub mod audit;
pub mod cli;
pub mod inspect;
pub mod message;
pub mod mover;
pub mod progress;
pub mod render;
pub mod scan;
pub mod select;

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::sync::Arc;

use fleet_core::{Backend, ErrorKind, MessageQueue, PortError};
use serde::Serialize;
use serde_json::json;

use crate::archive::ArchiveSpec;
use crate::audit::{Audit, AuditKey};
use crate::cli::{ChangeArgs, Cli, Command, FilterArgs, Output};
use crate::message::now_ms;
use crate::mover::{LineConfirm, MoveRequest};
use crate::progress::Progress;
use crate::select::Filter;

/// How a command ended; the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success = 0,
    /// The backend could not be reached or answered an error.
    Failure = 1,
    /// Bad arguments, an unknown queue, no confirmation.
    UserError = 2,
    /// Some selected messages were not moved.
    Partial = 3,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e as u8)
    }
}

/// An error with the exit code it maps to. Messages never contain bodies.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failed {
    pub exit: Exit,
    pub message: String,
}

fn user_error(message: impl Into<String>) -> Failed {
    Failed {
        exit: Exit::UserError,
        message: message.into(),
    }
}

impl From<PortError> for Failed {
    fn from(e: PortError) -> Self {
        let exit = match e.kind {
            ErrorKind::NotFound | ErrorKind::Invalid => Exit::UserError,
            _ => Exit::Failure,
        };
        Failed {
            exit,
            message: e.to_string(),
        }
    }
}

impl From<anyhow::Error> for Failed {
    fn from(e: anyhow::Error) -> Self {
        match e.downcast::<PortError>() {
            Ok(p) => p.into(),
            Err(e) => Failed {
                exit: Exit::Failure,
                message: format!("{e:#}"),
            },
        }
    }
}

impl From<std::io::Error> for Failed {
    fn from(e: std::io::Error) -> Self {
        Failed {
            exit: Exit::Failure,
            message: format!("i/o: {e}"),
        }
    }
}

/// The terminal: where output, prompts and progress go and where answers come from.
pub struct Io<'a> {
    pub out: &'a mut dyn Write,
    pub input: &'a mut dyn BufRead,
    /// Prompts and progress (standard error).
    pub err: Box<dyn Write + Send>,
    /// Whether standard error is a terminal (a progress bar instead of lines).
    pub terminal: bool,
}

/// Run one command; on error, returns the message to print and the exit code.
pub async fn run(cli: &Cli, backend: Arc<dyn Backend>, io: Io<'_>) -> Result<Exit, Failed> {
    // The workers' rule for their override: honoured only where the backend allows it (local;
    // aws with every endpoint on loopback), checked before any request.
    if cli.allow_unencrypted && matches!(cli.command, Command::Replay { .. }) {
        backend.unencrypted_override().map_err(|reason| {
            user_error(format!(
                "refusing --allow-unencrypted ({}): {reason}",
                fleet_core::env::ALLOW_UNENCRYPTED
            ))
        })?;
    }
    let actor = backend
        .caller_identity()
        .await
        .map_err(|e| Failed::from(e).with_context("finding who is calling (for the audit log)"))?;
    let run_id = uuid::Uuid::new_v4().to_string();
    let audit = Audit::open(cli.audit_log.as_ref(), actor, backend.kind(), run_id)
        .map_err(|e| user_error(format!("opening the audit log: {e}")))?;
    let key = AuditKey::from_config(
        fleet_core::env::get(fleet_core::env::DLQ_AUDIT_KEY),
        cli.audit_key_file.as_deref(),
    )
    .map_err(user_error)?;
    let key = key.as_ref();
    let json = cli.output == Output::Json;
    let hold = cli.hold;
    let limit = cli.scan_limit.max(1);
    match &cli.command {
        Command::List { prefix } => {
            let dlqs = inspect::list(backend.as_ref(), prefix, hold, limit, now_ms()).await?;
            audit.record(
                "list",
                "finished",
                "",
                json!({"dlqs": dlqs.iter().map(|d| &d.queue).collect::<Vec<_>>()}),
            )?;
            emit(io.out, json, &dlqs, || render::list(&dlqs))?;
            Ok(Exit::Success)
        }
        Command::Summary { queue } => {
            let (q, fifo) = open(backend.as_ref(), queue).await?;
            let (messages, complete) = inspect::read_all(q.clone(), fifo, hold, limit).await?;
            let summary = inspect::summarise(q.id(), &messages, complete);
            audit.record(
                "summary",
                "finished",
                q.id(),
                json!({"messages": summary.total, "scan_complete": complete}),
            )?;
            emit(io.out, json, &summary, || render::summary(&summary))?;
            Ok(Exit::Success)
        }
        Command::Show {
            queue,
            filter,
            show_body,
        } => {
            let filter = filter_of(filter, key)?;
            let (q, fifo) = open(backend.as_ref(), queue).await?;
            let (messages, complete) = inspect::read_all(q.clone(), fifo, hold, limit).await?;
            let shown: Vec<inspect::Shown> = inspect::select(&messages, &filter, now_ms())
                .into_iter()
                .map(|m| inspect::Shown::of(m, *show_body))
                .collect();
            // Written before any body is printed, so a body never shows without its record.
            audit.record(
                "show",
                "finished",
                q.id(),
                json!({
                    "bodies_shown": show_body,
                    "filters": filter.audit_view(key).map_err(user_error)?,
                    "message_ids": shown.iter().map(|s| &s.message_id).collect::<Vec<_>>(),
                }),
            )?;
            #[derive(Serialize)]
            struct ShowOut<'a> {
                queue: &'a str,
                scan_complete: bool,
                messages: &'a [inspect::Shown],
            }
            let out = ShowOut {
                queue: q.id(),
                scan_complete: complete,
                messages: &shown,
            };
            emit(io.out, json, &out, || {
                render::show(q.id(), &shown, complete)
            })?;
            Ok(Exit::Success)
        }
        Command::Replay {
            queue,
            filter,
            to,
            change,
        } => {
            let mut req = move_request(false, to.clone(), filter, change, false, hold, limit, key)?;
            req.allow_unencrypted = cli.allow_unencrypted;
            move_command(backend.as_ref(), &audit, key, queue, &req, json, io).await
        }
        Command::Purge {
            queue,
            filter,
            change,
            no_archive,
        } => {
            let req = move_request(true, None, filter, change, *no_archive, hold, limit, key)?;
            move_command(backend.as_ref(), &audit, key, queue, &req, json, io).await
        }
    }
}

impl Failed {
    fn with_context(self, what: &str) -> Self {
        Failed {
            exit: self.exit,
            message: format!("{what}: {}", self.message),
        }
    }
}

async fn open(backend: &dyn Backend, queue: &str) -> Result<(Arc<dyn MessageQueue>, bool), Failed> {
    let q = backend.queue(queue).await.map_err(|e| match e.kind {
        ErrorKind::NotFound => user_error(format!("queue {queue} does not exist")),
        _ => e.into(),
    })?;
    let attrs = q.attributes().await.map_err(|e| match e.kind {
        ErrorKind::NotFound => user_error(format!("queue {queue} does not exist")),
        _ => e.into(),
    })?;
    Ok((q, attrs.fifo))
}

fn emit<T: Serialize>(
    out: &mut dyn Write,
    json: bool,
    value: &T,
    human: impl FnOnce() -> String,
) -> std::io::Result<()> {
    if json {
        let text = serde_json::to_string_pretty(value).map_err(std::io::Error::other)?;
        out.write_all(render::escape_json(&text).as_bytes())?;
        out.write_all(b"\n")?;
    } else {
        out.write_all(human().as_bytes())?;
    }
    out.flush()
}

/// The filters of a command; value filters need the audit key (they are recorded as its
/// keyed hash), so without one they are refused here, before anything is read.
fn filter_of(f: &FilterArgs, key: Option<&AuditKey>) -> Result<Filter, Failed> {
    let body_regex = f
        .body_regex
        .as_deref()
        .map(regex::Regex::new)
        .transpose()
        // The pattern is not echoed: it may be patient data.
        .map_err(|_| user_error("--body-regex is not a valid regular expression"))?;
    let filter = Filter {
        codes: f.codes.clone(),
        older_than: f.older_than,
        newer_than: f.newer_than,
        attributes: f.attributes.clone(),
        body_regex,
        max: f.max,
    };
    filter.audit_view(key).map_err(user_error)?;
    Ok(filter)
}

#[allow(clippy::too_many_arguments)]
fn move_request(
    purge: bool,
    to: Option<String>,
    filter: &FilterArgs,
    change: &ChangeArgs,
    no_archive: bool,
    hold: std::time::Duration,
    scan_limit: usize,
    key: Option<&AuditKey>,
) -> Result<MoveRequest, Failed> {
    if change.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
        return Err(user_error(
            "--rate must be a positive number of messages per second",
        ));
    }
    let dir = match (&change.archive, purge && !no_archive) {
        (Some(dir), _) => Some(dir.clone()),
        (None, true) => Some(std::path::PathBuf::from("dlq-archive")),
        (None, false) => None,
    };
    let archive = match dir.filter(|_| !change.dry_run) {
        None => None,
        Some(dir) => {
            let recipient = change.archive_recipient.as_deref().ok_or_else(|| {
                user_error(format!(
                    "archiving needs a recipient: --archive-recipient age1... or {} (purge \
                     without an archive needs --no-archive)",
                    fleet_core::env::ARCHIVE_RECIPIENT
                ))
            })?;
            Some(ArchiveSpec::new(dir, recipient).map_err(user_error)?)
        }
    };
    Ok(MoveRequest {
        purge,
        to,
        filter: filter_of(filter, key)?,
        dry_run: change.dry_run,
        yes: change.yes,
        rate: change.rate,
        archive,
        hold,
        scan_limit,
        allow_unencrypted: false,
    })
}

async fn move_command(
    backend: &dyn Backend,
    audit: &Audit,
    key: Option<&AuditKey>,
    queue: &str,
    req: &MoveRequest,
    json: bool,
    io: Io<'_>,
) -> Result<Exit, Failed> {
    let (q, _) = open(backend, queue).await?;
    if let Some(to) = &req.to {
        // Fail before holding anything when the destination is wrong: missing, or unencrypted
        // without the override (the mover checks every destination again).
        let (dest, _) = open(backend, to).await?;
        if !dest.attributes().await?.encrypted() && !req.allow_unencrypted {
            return Err(user_error(format!(
                "destination queue {} is not encrypted: enable SSE-KMS or SSE-SQS on it, or pass \
                 --allow-unencrypted (or set {}=1; local development only)",
                render::escape(to),
                fleet_core::env::ALLOW_UNENCRYPTED
            )));
        }
    }
    let operation = if req.purge { "purge" } else { "replay" };
    let Io {
        out,
        input,
        err,
        terminal,
    } = io;
    let mut progress = if json || req.dry_run {
        Progress::Hidden
    } else {
        let verb = if req.purge { "deleted" } else { "replayed" };
        Progress::new(terminal, verb, Box::new(std::io::stderr()))
    };
    let mut confirm = LineConfirm {
        input,
        prompt_to: err,
    };
    let filters = req.filter.audit_view(key).map_err(user_error)?;
    let dlq_id = q.id().to_string();
    let mut on_start = |_: &mover::MoveReport, count: usize| {
        audit.record(
            operation,
            "started",
            &dlq_id,
            json!({"selected": count, "to": req.to, "filters": filters, "archive": req.archive.as_ref().map(|a| a.dir.display().to_string())}),
        )
    };
    let report = mover::run(
        backend,
        q.clone(),
        req,
        &audit.run_id,
        &mut confirm,
        &mut progress,
        &mut on_start,
    )
    .await?;
    audit.record(
        operation,
        "finished",
        q.id(),
        json!({
            "dry_run": report.dry_run,
            "declined": report.declined,
            "filters": filters,
            "scanned": report.scanned,
            "selected": report.selected,
            "moved": report.moved,
            "destinations": report.destinations,
            "message_ids": report.moved_ids,
            "not_moved": report.not_moved,
            "sent_not_deleted": report.sent_not_deleted,
            "archives": report.archives,
            "aborted": report.aborted,
        }),
    )?;
    emit(out, json, &report, || render::moved(&report))?;
    Ok(if report.declined {
        Exit::UserError
    } else if report.complete() {
        Exit::Success
    } else {
        Exit::Partial
    })
}
