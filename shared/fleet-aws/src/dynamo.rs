//! [`RecordStore`] on DynamoDB.
//!
//! Item layout: `pk` (S, hash key), `sk` (S, range key), `order` (N), `expires_at` (N, the
//! table's TTL attribute, absent when the record does not expire), `data` (S, JSON text).
//!
//! An item whose `expires_at` is at or before the current epoch second is expired: reads leave
//! it out and conditions treat it as absent, as the local backend does. DynamoDB's TTL deletes
//! such items lazily (often days later), so without this a lapsed record would still be read
//! and would still block "not exists".

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use fleet_core::{
    Condition, ConditionalPut, ErrorKind, PortError, PutOutcome, Record, RecordStore,
    TransactOutcome,
};

use crate::error::{classify, sanitize_code};

type Item = HashMap<String, AttributeValue>;

/// The attribute holding a record's expiry (epoch seconds): the table's TTL attribute.
pub const TTL_ATTRIBUTE: &str = "expires_at";

/// One DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoTable {
    client: Client,
    table: String,
}

impl DynamoTable {
    pub(crate) fn new(client: Client, table: String) -> Self {
        Self { client, table }
    }
}

fn to_item(op: &'static str, r: &Record) -> Result<Item, PortError> {
    let data = serde_json::to_string(&r.data)
        .map_err(|_| PortError::invalid(op, "record data cannot be serialised"))?;
    let mut item = Item::with_capacity(5);
    item.insert("pk".into(), AttributeValue::S(r.pk.clone()));
    item.insert("sk".into(), AttributeValue::S(r.sk.clone()));
    item.insert("order".into(), AttributeValue::N(r.order.to_string()));
    if let Some(t) = r.expires_at {
        item.insert(TTL_ATTRIBUTE.into(), AttributeValue::N(t.to_string()));
    }
    item.insert("data".into(), AttributeValue::S(data));
    Ok(item)
}

fn from_item(op: &'static str, item: &Item) -> Result<Record, PortError> {
    let bad = |field: &str| {
        PortError::new(
            ErrorKind::Invalid,
            op,
            format!("stored item has a malformed `{field}`"),
        )
    };
    let s = |k: &str| match item.get(k) {
        Some(AttributeValue::S(v)) => Ok(v.clone()),
        _ => Err(bad(k)),
    };
    let n = |k: &str| match item.get(k) {
        Some(AttributeValue::N(v)) => v.parse::<i64>().map(Some).map_err(|_| bad(k)),
        None => Ok(None),
        _ => Err(bad(k)),
    };
    let data = match item.get("data") {
        Some(AttributeValue::S(v)) => serde_json::from_str(v).map_err(|_| bad("data"))?,
        None => serde_json::Value::Null,
        _ => return Err(bad("data")),
    };
    Ok(Record {
        pk: s("pk")?,
        sk: s("sk")?,
        order: n("order")?.unwrap_or(0),
        expires_at: n(TTL_ATTRIBUTE)?,
        data,
    })
}

/// The current epoch second: an item whose `expires_at` is at or before it is expired.
fn now_secs() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
}

/// Whether a read record is live (not past its TTL) at `now` (epoch seconds).
fn live(r: &Record, now: i64) -> bool {
    r.expires_at.is_none_or(|t| t > now)
}

/// Condition expression, names and values of one conditional put.
type ConditionParts = (
    Option<&'static str>,
    Option<HashMap<String, String>>,
    Option<Item>,
);

/// The expression of `c` at `now` (epoch seconds); an expired item counts as absent.
fn condition_parts(c: Condition, now: i64) -> ConditionParts {
    // `order` is a DynamoDB reserved word, hence the name placeholders.
    let names = |with_order: bool| {
        let mut names = HashMap::from([("#e".to_string(), "expires_at".to_string())]);
        if with_order {
            names.insert("#o".to_string(), "order".to_string());
        }
        Some(names)
    };
    let values = |order: Option<i64>| {
        let mut values = Item::from([(":now".to_string(), AttributeValue::N(now.to_string()))]);
        if let Some(o) = order {
            values.insert(":o".to_string(), AttributeValue::N(o.to_string()));
        }
        Some(values)
    };
    match c {
        Condition::None => (None, None, None),
        Condition::NotExists => (
            Some("attribute_not_exists(pk) OR #e <= :now"),
            names(false),
            values(None),
        ),
        Condition::OrderBelow(o) => (
            Some("attribute_not_exists(pk) OR #e <= :now OR #o < :o"),
            names(true),
            values(Some(o)),
        ),
        Condition::OrderEquals(o) => (
            Some("#o = :o AND (attribute_not_exists(#e) OR #e > :now)"),
            names(true),
            values(Some(o)),
        ),
    }
}

#[async_trait]
impl RecordStore for DynamoTable {
    fn id(&self) -> &str {
        &self.table
    }

    async fn put(&self, put: ConditionalPut) -> Result<PutOutcome, PortError> {
        const OP: &str = "dynamodb.PutItem";
        let (expr, names, values) = condition_parts(put.condition, now_secs());
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(OP, &put.record)?))
            .set_condition_expression(expr.map(str::to_string))
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values)
            .send()
            .await;
        match result {
            Ok(_) => Ok(PutOutcome::Written),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(PutOutcome::ConditionFailed)
            }
            Err(e) => Err(classify(OP, &e)),
        }
    }

    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Record>, PortError> {
        const OP: &str = "dynamodb.GetItem";
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk.to_string()))
            .key("sk", AttributeValue::S(sk.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify(OP, &e))?;
        let record = out.item().map(|i| from_item(OP, i)).transpose()?;
        Ok(record.filter(|r| live(r, now_secs())))
    }

    async fn transact_put(&self, puts: &[ConditionalPut]) -> Result<TransactOutcome, PortError> {
        const OP: &str = "dynamodb.TransactWriteItems";
        if puts.len() > 100 {
            return Err(PortError::invalid(
                OP,
                format!("{} items exceed 100 per transaction", puts.len()),
            ));
        }
        if puts.is_empty() {
            return Ok(TransactOutcome::Written);
        }
        let mut items = Vec::with_capacity(puts.len());
        let now = now_secs();
        for p in puts {
            let (expr, names, values) = condition_parts(p.condition, now);
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(to_item(OP, &p.record)?))
                .set_condition_expression(expr.map(str::to_string))
                .set_expression_attribute_names(names)
                .set_expression_attribute_values(values)
                .build()
                .map_err(|_| PortError::invalid(OP, "incomplete transaction item"))?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        let err = match result {
            Ok(_) => return Ok(TransactOutcome::Written),
            Err(e) => e,
        };
        let Some(cancelled) = err.as_service_error().and_then(|s| match s {
            aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c) => Some(c),
            _ => None,
        }) else {
            return Err(classify(OP, &err));
        };
        let reasons = cancelled.cancellation_reasons();
        let failed: Vec<usize> = reasons
            .iter()
            .enumerate()
            .filter(|(_, r)| r.code() == Some("ConditionalCheckFailed"))
            .map(|(i, _)| i)
            .collect();
        if !failed.is_empty() {
            return Ok(TransactOutcome::ConditionFailed(failed));
        }
        // Cancelled for another reason (conflict, throttling): nothing was written; retry later.
        let codes: Vec<String> = reasons
            .iter()
            .filter_map(|r| r.code())
            .filter(|c| *c != "None")
            .map(sanitize_code)
            .collect();
        let kind = if codes
            .iter()
            .any(|c| c.contains("Throttl") || c.contains("ProvisionedThroughput"))
        {
            ErrorKind::Throttled
        } else {
            ErrorKind::Transient
        };
        Err(PortError::new(
            kind,
            OP,
            format!("transaction cancelled: {}", codes.join(",")),
        ))
    }

    async fn query(&self, pk: &str) -> Result<Vec<Record>, PortError> {
        const OP: &str = "dynamodb.Query";
        let mut records = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", AttributeValue::S(pk.to_string()))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify(OP, &e))?;
            let now = now_secs();
            for item in out.items() {
                let record = from_item(OP, item)?;
                if live(&record, now) {
                    records.push(record);
                }
            }
            match out.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        Ok(records)
    }

    async fn delete(&self, pk: &str, sk: &str) -> Result<(), PortError> {
        const OP: &str = "dynamodb.DeleteItem";
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk.to_string()))
            .key("sk", AttributeValue::S(sk.to_string()))
            .send()
            .await
            .map_err(|e| classify(OP, &e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_items() {
        let r = Record {
            pk: "p".into(),
            sk: "s".into(),
            order: -3,
            expires_at: Some(1_800_000_000),
            data: serde_json::json!({"a": [1, 2]}),
        };
        let item = to_item("t", &r).unwrap();
        assert_eq!(item.get("order"), Some(&AttributeValue::N("-3".into())));
        assert_eq!(from_item("t", &item).unwrap(), r);

        let mut broken = item.clone();
        broken.insert("order".into(), AttributeValue::S("x".into()));
        let e = from_item("t", &broken).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Invalid);
    }
}
