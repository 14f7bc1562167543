//! The run's final write: its record and the release of its lease in one transaction, retried
//! briefly after meeting another transaction; the record kept when the lease was lost.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use chrono::{DateTime, Utc};

use autoheal_core::{ActionEnd, HealingRecord, ResourceKey, Revert, StateStore, StoreError};

use super::items::{
    PARTITION_KEY, SORT_KEY, STATE_SORT_KEY, encode_error, resource_pk, s, store_error,
};
use super::store::DynamoStateStore;

/// How often a run's final write is tried again after meeting another transaction.
const FINISH_CONFLICT_RETRIES: u64 = 3;

/// The reason code of each item of a cancelled transaction, in order (`""` for none).
fn cancellation_codes<R>(error: &SdkError<TransactWriteItemsError, R>) -> Vec<&str> {
    match error.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => cancelled
            .cancellation_reasons()
            .iter()
            .map(|reason| reason.code().unwrap_or_default())
            .collect(),
        _ => Vec::new(),
    }
}

impl DynamoStateStore {
    /// Ends a run (see `StateStore::finish`).
    pub(super) async fn finish_transaction(
        &self,
        key: &ResourceKey,
        record: &HealingRecord,
        escalated_at: Option<DateTime<Utc>>,
        reverts: Option<&[Revert]>,
        action: ActionEnd,
    ) -> Result<(), StoreError> {
        let mut update = Update::builder()
            .table_name(&self.table)
            .key(PARTITION_KEY, s(resource_pk(key)))
            .key(SORT_KEY, s(STATE_SORT_KEY))
            .condition_expression("#lease.#run_id = :run_id")
            .expression_attribute_names("#lease", "lease")
            .expression_attribute_names("#run_id", "run_id")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":run_id", s(&record.id))
            .expression_attribute_values(":one", AttributeValue::N("1".to_owned()));
        let mut remove = vec!["#lease"];
        let mut set = vec!["#version = #version + :one"];
        if let Some(at) = escalated_at {
            set.push("#incident.#escalated_at = :at");
            update = update
                .expression_attribute_names("#incident", "incident")
                .expression_attribute_names("#escalated_at", "escalated_at")
                .expression_attribute_values(":at", s(at.to_rfc3339()));
        }
        // Only a heal's run finishes or continues an action, and a heal's state always has its
        // incident, so the paths below exist.
        match action {
            ActionEnd::Untouched | ActionEnd::Continues { check: None } => {}
            ActionEnd::Finished => {
                remove.push("#incident.#unfinished");
                update = update
                    .expression_attribute_names("#incident", "incident")
                    .expression_attribute_names("#unfinished", "unfinished");
            }
            ActionEnd::Continues { check: Some(check) } => {
                set.push("#incident.#checks = :check");
                update = update
                    .expression_attribute_names("#incident", "incident")
                    .expression_attribute_names("#checks", "checks")
                    .expression_attribute_values(":check", AttributeValue::N(check.to_string()));
            }
        }
        match reverts {
            None => {}
            Some([]) => {
                remove.push("#reverts");
                update = update.expression_attribute_names("#reverts", "reverts");
            }
            Some(reverts) => {
                let value = serde_dynamo::to_attribute_value(reverts)
                    .map_err(|e| encode_error("reverts", e))?;
                set.push("#reverts = :reverts");
                update = update
                    .expression_attribute_names("#reverts", "reverts")
                    .expression_attribute_values(":reverts", value);
            }
        }
        let update = update
            .update_expression(format!(
                "REMOVE {} SET {}",
                remove.join(", "),
                set.join(", ")
            ))
            .build()
            .map_err(|e| StoreError {
                message: format!("cannot build state update: {e}"),
            })?;
        let record_put = self.record_put(record)?;
        // The record and the lease's release in one request; the record is written whatever
        // becomes of the lease. A transaction that met another on the same item is cancelled
        // with `TransactionConflict`, which the SDK does not retry: this does, briefly.
        let mut conflicts = 0;
        let error = loop {
            let result = self
                .client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().put(record_put.clone()).build())
                .transact_items(TransactWriteItem::builder().update(update.clone()).build())
                .send()
                .await;
            let Err(error) = result else {
                return Ok(());
            };
            let conflicted = cancellation_codes(&error).contains(&"TransactionConflict");
            if conflicted && conflicts < FINISH_CONFLICT_RETRIES {
                conflicts += 1;
                tokio::time::sleep(std::time::Duration::from_millis(50 * conflicts)).await;
                continue;
            }
            break error;
        };
        let lease_lost = cancellation_codes(&error).get(1) == Some(&"ConditionalCheckFailed");
        if !lease_lost {
            return Err(store_error("TransactWriteItems", error));
        }
        // The lease expired and another run took the resource over: it owns the state now,
        // and this run's record is still kept.
        tracing::warn!(rule = %key.rule, resource = %key.resource_id, run_id = %record.id, "lease was taken over before this run finished");
        self.put_record(record).await
    }
}
