//! DynamoDB-like tables on one SQLite table keyed by (table, pk, sk).
//!
//! An expired record (`expires_at` at or before the current epoch second) counts as absent for
//! reads *and* for conditions. DynamoDB deletes expired items lazily; the AWS adapter applies
//! the same rule to what it reads and to its condition expressions, so both backends agree.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use fleet_core::PortError;
use fleet_core::ports::{
    Condition, ConditionalPut, PutOutcome, Record, RecordStore, TransactOutcome,
};
use fleet_core::requests::count;
use rusqlite::{OptionalExtension, Transaction, params};

use crate::db::{Cached, Db, json_err, sql_err};
use crate::now_ms;

const MAX_TRANSACT_ITEMS: usize = 100;

fn now_secs() -> i64 {
    now_ms() / 1000
}

fn row_to_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Record, String)> {
    Ok((
        Record {
            pk: r.get(0)?,
            sk: r.get(1)?,
            order: r.get(2)?,
            expires_at: r.get(3)?,
            data: serde_json::Value::Null,
        },
        r.get(4)?,
    ))
}

fn collect(
    rows: impl Iterator<Item = rusqlite::Result<(Record, String)>>,
    op: &'static str,
) -> Result<Vec<Record>, PortError> {
    let mut out = Vec::new();
    for row in rows {
        let (mut rec, data) = row.map_err(sql_err(op))?;
        rec.data = serde_json::from_str(&data).map_err(json_err(op))?;
        out.push(rec);
    }
    Ok(out)
}

pub(crate) fn all(db: &Db, table: &str) -> Result<Vec<Record>, PortError> {
    const OP: &str = "local.table_records";
    let table = table.to_owned();
    db.run_sync(OP, move |tx| {
        let mut st = tx
            .prepare(
                "SELECT pk, sk, ord, expires_at, data FROM records WHERE tbl = ?1 ORDER BY pk, sk",
            )
            .map_err(sql_err(OP))?;
        let rows = st.query_map([&table], row_to_record).map_err(sql_err(OP))?;
        collect(rows, OP)
    })
}

/// Whether `put`'s condition holds against the live record with its key.
fn condition_holds(
    tx: &Transaction<'_>,
    table: &str,
    put: &ConditionalPut,
    op: &'static str,
) -> Result<bool, PortError> {
    if put.condition == Condition::None {
        return Ok(true);
    }
    let existing: Option<i64> = tx
        .row(
            "SELECT ord FROM records WHERE tbl = ?1 AND pk = ?2 AND sk = ?3 AND (expires_at IS NULL OR expires_at > ?4)",
            params![table, put.record.pk, put.record.sk, now_secs()],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql_err(op))?;
    Ok(match (put.condition, existing) {
        (Condition::OrderEquals(token), existing) => existing == Some(token),
        (Condition::None, _) | (_, None) => true,
        (Condition::NotExists, Some(_)) => false,
        (Condition::OrderBelow(limit), Some(order)) => order < limit,
    })
}

fn write(tx: &Transaction<'_>, table: &str, r: &Record, op: &'static str) -> Result<(), PortError> {
    let data = serde_json::to_string(&r.data).map_err(json_err(op))?;
    tx.exec(
        "INSERT OR REPLACE INTO records (tbl, pk, sk, ord, expires_at, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![table, r.pk, r.sk, r.order, r.expires_at, data],
    )
    .map_err(sql_err(op))?;
    Ok(())
}

fn validate_key(r: &Record, op: &'static str) -> Result<(), PortError> {
    // DynamoDB rejects empty key attributes.
    if r.pk.is_empty() || r.sk.is_empty() {
        return Err(PortError::invalid(
            op,
            "ValidationException: key attributes must not be empty",
        ));
    }
    Ok(())
}

/// A record store bound to one table name.
pub(crate) struct LocalTable {
    db: Arc<Db>,
    name: Arc<str>,
}

impl LocalTable {
    pub(crate) fn new(db: Arc<Db>, name: String) -> Self {
        Self {
            db,
            name: name.into(),
        }
    }
}

#[async_trait]
impl RecordStore for LocalTable {
    fn id(&self) -> &str {
        &self.name
    }

    async fn put(&self, put: ConditionalPut) -> Result<PutOutcome, PortError> {
        const OP: &str = "dynamodb.PutItem";
        count(OP);
        validate_key(&put.record, OP)?;
        let table = self.name.clone();
        self.db
            .run(OP, move |tx| {
                if !condition_holds(tx, &table, &put, OP)? {
                    return Ok(PutOutcome::ConditionFailed);
                }
                write(tx, &table, &put.record, OP)?;
                Ok(PutOutcome::Written)
            })
            .await
    }

    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Record>, PortError> {
        const OP: &str = "dynamodb.GetItem";
        count(OP);
        let (table, pk, sk) = (self.name.clone(), pk.to_string(), sk.to_string());
        self.db
            .read(OP, move |tx| {
                let mut st = tx
                    .prepare_cached(
                        "SELECT pk, sk, ord, expires_at, data FROM records
                         WHERE tbl = ?1 AND pk = ?2 AND sk = ?3 AND (expires_at IS NULL OR expires_at > ?4)",
                    )
                    .map_err(sql_err(OP))?;
                let rows = st.query_map(params![&*table, pk, sk, now_secs()], row_to_record).map_err(sql_err(OP))?;
                Ok(collect(rows, OP)?.into_iter().next())
            })
            .await
    }

    async fn transact_put(&self, puts: &[ConditionalPut]) -> Result<TransactOutcome, PortError> {
        const OP: &str = "dynamodb.TransactWriteItems";
        count(OP);
        if puts.is_empty() || puts.len() > MAX_TRANSACT_ITEMS {
            return Err(PortError::invalid(
                OP,
                format!("ValidationException: 1 to 100 items, got {}", puts.len()),
            ));
        }
        let mut keys = HashSet::new();
        for p in puts {
            validate_key(&p.record, OP)?;
            if !keys.insert((p.record.pk.as_str(), p.record.sk.as_str())) {
                return Err(PortError::invalid(
                    OP,
                    "ValidationException: two operations on one item",
                ));
            }
        }
        let table = self.name.clone();
        let puts = puts.to_vec();
        self.db
            .run(OP, move |tx| {
                // All conditions are evaluated against the state before any write, as DynamoDB does.
                let mut failed = Vec::new();
                for (i, p) in puts.iter().enumerate() {
                    if !condition_holds(tx, &table, p, OP)? {
                        failed.push(i);
                    }
                }
                if !failed.is_empty() {
                    return Ok(TransactOutcome::ConditionFailed(failed));
                }
                for p in &puts {
                    write(tx, &table, &p.record, OP)?;
                }
                Ok(TransactOutcome::Written)
            })
            .await
    }

    async fn query(&self, pk: &str) -> Result<Vec<Record>, PortError> {
        const OP: &str = "dynamodb.Query";
        count(OP);
        let (table, pk) = (self.name.clone(), pk.to_string());
        self.db
            .read(OP, move |tx| {
                let mut st = tx
                    .prepare_cached(
                        "SELECT pk, sk, ord, expires_at, data FROM records
                         WHERE tbl = ?1 AND pk = ?2 AND (expires_at IS NULL OR expires_at > ?3) ORDER BY sk",
                    )
                    .map_err(sql_err(OP))?;
                let rows = st.query_map(params![&*table, pk, now_secs()], row_to_record).map_err(sql_err(OP))?;
                collect(rows, OP)
            })
            .await
    }

    async fn delete(&self, pk: &str, sk: &str) -> Result<(), PortError> {
        const OP: &str = "dynamodb.DeleteItem";
        count(OP);
        let (table, pk, sk) = (self.name.clone(), pk.to_string(), sk.to_string());
        self.db
            .run(OP, move |tx| {
                tx.execute(
                    "DELETE FROM records WHERE tbl = ?1 AND pk = ?2 AND sk = ?3",
                    params![&*table, pk, sk],
                )
                .map_err(sql_err(OP))?;
                Ok(())
            })
            .await
    }
}
