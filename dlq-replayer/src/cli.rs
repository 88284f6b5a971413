//! Command-line interface.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use fleet_backends::BackendArgs;
use fleet_core::env;

use crate::select::parse_attribute;

/// Inspect and replay the fleet's dead-letter queues without exposing patient data.
///
/// Queues are named by URL or by name. Bodies are never printed unless `show --show-body`
/// is given, and every command writes an audit record.
///
/// Exit codes: 0 success; 1 failure (the backend could not be reached or answered an error);
/// 2 user error (bad arguments, unknown queue, not confirmed); 3 partial failure (some selected
/// messages were not moved: the report lists them).
#[derive(Debug, Parser)]
#[command(name = "dlq-replay", version)]
pub struct Cli {
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "human", global = true)]
    pub output: Output,
    /// Audit log (JSON lines, appended). `-` or unset: standard error.
    #[arg(long, env = env::DLQ_AUDIT_LOG, global = true)]
    pub audit_log: Option<PathBuf>,
    /// How long a scanned message stays invisible while a command holds it (extended while
    /// the command runs; released when it ends), e.g. `2m`.
    #[arg(long, default_value = "2m", value_parser = humantime::parse_duration, global = true)]
    pub hold: Duration,
    /// Most messages one command reads from a queue (they are held in memory).
    #[arg(long, default_value_t = 10_000, global = true)]
    pub scan_limit: usize,
    /// File holding the key (at least 32 bytes, readable by its owner only) under which
    /// `--attribute` values and `--body-regex` are recorded in the audit log, as HMAC-SHA256.
    /// The key can also be given in `FLEET_DLQ_AUDIT_KEY` (not as a flag, which `ps` shows).
    /// Without a key, commands with those filters are refused.
    #[arg(long, env = env::DLQ_AUDIT_KEY_FILE, global = true)]
    pub audit_key_file: Option<PathBuf>,
    /// Replay to destination queues that are not encrypted (the workers' override; local
    /// development only).
    #[arg(long, env = env::ALLOW_UNENCRYPTED, action = clap::ArgAction::SetTrue,
          value_parser = clap::builder::BoolishValueParser::new(), global = true)]
    pub allow_unencrypted: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Every DLQ (a queue some redrive policy names): its sources, depth and oldest message.
    List {
        /// Only queues whose name starts with this (DLQs and sources alike).
        #[arg(long, default_value = "")]
        prefix: String,
    },
    /// Failures of a DLQ grouped by error code, worker and source queue. Shows no bodies.
    Summary {
        /// The DLQ (URL or name).
        queue: String,
    },
    /// Per-message metadata: id, code, sanitised detail, receive count, times, attribute names.
    Show {
        queue: String,
        #[command(flatten)]
        filter: FilterArgs,
        /// Also print each message body (patient data). Written to the audit log.
        #[arg(long)]
        show_body: bool,
    },
    /// Move messages back to their source queue (from the failure attribute, and only if that
    /// queue's redrive policy names this DLQ), send first, delete only what was sent. Every
    /// destination must be encrypted (or --allow-unencrypted).
    Replay {
        queue: String,
        #[command(flatten)]
        filter: FilterArgs,
        /// Send to this queue instead of each message's source queue (it need not have a redrive
        /// policy naming this DLQ; it must be encrypted).
        #[arg(long)]
        to: Option<String>,
        #[command(flatten)]
        change: ChangeArgs,
    },
    /// Delete messages from a DLQ, archiving them first (unless --no-archive).
    Purge {
        queue: String,
        #[command(flatten)]
        filter: FilterArgs,
        #[command(flatten)]
        change: ChangeArgs,
        /// Delete without archiving.
        #[arg(long)]
        no_archive: bool,
    },
}

#[derive(Debug, Clone, Args)]
pub struct FilterArgs {
    /// Only this failure code (repeatable).
    #[arg(long = "code")]
    pub codes: Vec<String>,
    /// Only messages that failed longer ago than this (e.g. `2h`, `30m`, `7d`).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub older_than: Option<Duration>,
    /// Only messages that failed more recently than this.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub newer_than: Option<Duration>,
    /// Only messages with this attribute value, `NAME=VALUE` (repeatable, all must match).
    /// The value is recorded in the audit log as a keyed hash only (needs the audit key).
    #[arg(long = "attribute", value_parser = parse_attribute)]
    pub attributes: Vec<(String, String)>,
    /// Only messages whose body matches this regular expression (recorded in the audit log as
    /// a keyed hash only; needs the audit key).
    #[arg(long)]
    pub body_regex: Option<String>,
    /// At most this many messages.
    #[arg(long)]
    pub max: Option<usize>,
}

#[derive(Debug, Clone, Args)]
pub struct ChangeArgs {
    /// Show what would move and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// At most this many messages per second.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Directory for the encrypted archive of every moved message, written before it is deleted
    /// (purge default: `dlq-archive`).
    #[arg(long)]
    pub archive: Option<PathBuf>,
    /// age X25519 public key (`age1...`) the archive is encrypted to.
    #[arg(long, env = env::ARCHIVE_RECIPIENT)]
    pub archive_recipient: Option<String>,
}
