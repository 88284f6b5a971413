//! An SNS-like notifier: an outbox. Every publish is one row of the `notifications` table and
//! one JSON line appended to `outbox.jsonl` beside the SQLite file, so a developer can `tail`
//! what care teams would have received. Topics must be created first (`create_topic`), as on
//! SNS: a publish to an unknown topic is `NotFound`. SMS numbers need no setup.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use fleet_core::ports::{Destination, Notification, Notifier};
use fleet_core::requests::count;
use fleet_core::{ErrorKind, PortError};
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::db::{Cached, Db, json_err, sql_err};
use crate::now_ms;

/// Prefix of local topic pseudo-ARNs.
pub const TOPIC_ARN_PREFIX: &str = "arn:local:sns:local:000000000000:";
/// SNS limits the backend enforces locally.
const MAX_SUBJECT: usize = 100;
const MAX_BODY_BYTES: usize = 256 * 1024;
const MAX_ATTRIBUTES: usize = 10;

/// One published notification, as the outbox keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub message_id: String,
    pub destination: Destination,
    pub notification: Notification,
    pub published_ms: i64,
}

pub(crate) fn topic_name(name_or_arn: &str) -> &str {
    name_or_arn
        .strip_prefix(TOPIC_ARN_PREFIX)
        .unwrap_or(name_or_arn)
}

pub(crate) fn create_topic(db: &Db, name: &str) -> Result<String, PortError> {
    const OP: &str = "local.create_topic";
    let name = topic_name(name);
    if Destination::parse(name).is_none_or(|d| !matches!(d, Destination::Topic(_))) {
        return Err(PortError::invalid(OP, "invalid topic name"));
    }
    let owned = name.to_owned();
    db.run_sync(OP, move |tx| {
        tx.exec(
            "INSERT OR IGNORE INTO topics (name) VALUES (?1)",
            params![owned],
        )
        .map_err(sql_err(OP))?;
        Ok(())
    })?;
    Ok(format!("{TOPIC_ARN_PREFIX}{name}"))
}

pub(crate) fn list(db: &Db) -> Result<Vec<OutboxEntry>, PortError> {
    const OP: &str = "local.outbox";
    db.run_sync(OP, |tx| {
        let mut st = tx
            .prepare("SELECT message_id, destination, notification, published_ms FROM notifications ORDER BY seq")
            .map_err(sql_err(OP))?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })
            .map_err(sql_err(OP))?;
        let mut out = Vec::new();
        for row in rows {
            let (message_id, dest, n, published_ms) = row.map_err(sql_err(OP))?;
            out.push(OutboxEntry {
                message_id,
                destination: serde_json::from_str(&dest).map_err(json_err(OP))?,
                notification: serde_json::from_str(&n).map_err(json_err(OP))?,
                published_ms,
            });
        }
        Ok(out)
    })
}

fn validate(destination: &Destination, n: &Notification) -> Result<(), PortError> {
    const OP: &str = "sns.Publish";
    if n.body.is_empty() || n.body.len() > MAX_BODY_BYTES {
        return Err(PortError::invalid(OP, "message is empty or above 256 KiB"));
    }
    if let Some(s) = &n.subject {
        // SNS: ASCII, no line breaks, at most 100 characters, not empty.
        if s.is_empty()
            || s.chars().count() > MAX_SUBJECT
            || s.chars().any(|c| c.is_control() || !c.is_ascii())
        {
            return Err(PortError::invalid(OP, "invalid subject"));
        }
    }
    if n.attributes.len() > MAX_ATTRIBUTES {
        return Err(PortError::invalid(OP, "more than 10 message attributes"));
    }
    if let Destination::Sms(num) = destination
        && Destination::parse(num) != Some(destination.clone())
    {
        return Err(PortError::invalid(OP, "invalid phone number"));
    }
    Ok(())
}

pub(crate) struct LocalNotifier {
    db: Arc<Db>,
    outbox_file: Arc<PathBuf>,
}

impl LocalNotifier {
    pub(crate) fn new(db: Arc<Db>, outbox_file: PathBuf) -> Self {
        Self {
            db,
            outbox_file: Arc::new(outbox_file),
        }
    }
}

#[async_trait]
impl Notifier for LocalNotifier {
    async fn publish(
        &self,
        destination: &Destination,
        notification: &Notification,
    ) -> Result<String, PortError> {
        const OP: &str = "sns.Publish";
        count(OP);
        validate(destination, notification)?;
        let entry = OutboxEntry {
            message_id: uuid::Uuid::new_v4().to_string(),
            destination: match destination {
                Destination::Topic(t) => Destination::Topic(topic_name(t).to_string()),
                sms => sms.clone(),
            },
            notification: notification.clone(),
            published_ms: now_ms(),
        };
        let file = self.outbox_file.clone();
        self.db
            .run(OP, move |tx| {
                if let Destination::Topic(name) = &entry.destination {
                    let known: Option<String> = tx
                        .row(
                            "SELECT name FROM topics WHERE name = ?1",
                            params![name],
                            |r| r.get(0),
                        )
                        .optional()
                        .map_err(sql_err(OP))?;
                    if known.is_none() {
                        return Err(PortError::not_found(OP, "topic does not exist"));
                    }
                }
                let dest = serde_json::to_string(&entry.destination).map_err(json_err(OP))?;
                let n = serde_json::to_string(&entry.notification).map_err(json_err(OP))?;
                tx.exec(
                    "INSERT INTO notifications (message_id, destination, notification, published_ms) VALUES (?1, ?2, ?3, ?4)",
                    params![entry.message_id, dest, n, entry.published_ms],
                )
                .map_err(sql_err(OP))?;
                // Appended inside the transaction: a failed append rolls the row back, so the
                // table and the file agree (a crash between the two leaves a line, no row).
                let line = serde_json::to_string(&entry).map_err(json_err(OP))?;
                let mut f = fleet_core::files::open_append(file.as_path())
                    .map_err(|e| {
                        PortError::new(ErrorKind::Transient, OP, format!("outbox file: {}", e.kind()))
                    })?;
                writeln!(f, "{line}").map_err(|e| {
                    PortError::new(ErrorKind::Transient, OP, format!("outbox file: {}", e.kind()))
                })?;
                Ok(entry.message_id)
            })
            .await
    }
}
