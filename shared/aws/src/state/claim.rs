//! The claim: one transaction that marks the event claimed, writes the state over the version
//! read, stores the in-progress record, counts the action in each budget and takes the
//! group's slot; and what a refusal of it means.

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
    Update,
};
use chrono::{DateTime, Utc};

use autoheal_core::{ClaimRequest, ClaimResult, Loaded, StoreError};

use super::items::{
    CLAIM_RETENTION_DAYS, PARTITION_KEY, SORT_KEY, TTL_ATTRIBUTE, budget_expiry, budget_key,
    claim_sk, decode_state, expiry, group_pk, lease_key, resource_pk, s, slot_sk, store_error,
};
use super::store::DynamoStateStore;

impl DynamoStateStore {
    /// Claims the resource for a run (see `StateStore::claim`).
    pub(super) async fn claim_transaction(
        &self,
        request: &ClaimRequest<'_>,
    ) -> Result<ClaimResult, StoreError> {
        let ClaimRequest {
            key,
            event_id,
            expected_version,
            next,
            record,
            takeover,
            spends,
            hold,
            lock,
        } = *request;
        let now = Utc::now();
        let marker = Put::builder()
            .table_name(&self.table)
            .item(PARTITION_KEY, s(resource_pk(key)))
            .item(SORT_KEY, s(claim_sk(event_id)))
            .item("item_type", s("event-claim"))
            .item("run_id", s(&record.id))
            .item("claimed_at", s(now.to_rfc3339()))
            .item(TTL_ATTRIBUTE, expiry(now, CLAIM_RETENTION_DAYS));
        let marker = if takeover {
            marker
        } else {
            marker
                .condition_expression("attribute_not_exists(pk)")
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
        }
        .build()
        .map_err(|e| StoreError {
            message: format!("cannot build event claim: {e}"),
        })?;
        let record_put = self.record_put(record)?;
        let mut transaction = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(marker).build())
            .transact_items(
                TransactWriteItem::builder()
                    .put(self.state_put(key, expected_version, next)?)
                    .build(),
            )
            .transact_items(TransactWriteItem::builder().put(record_put).build());
        // Each budget counts the action only while its current window is below the cap and its
        // previous window holds no more than the cap was computed from: the governor's check
        // and the claim are one transaction, whether the counts were read or presumed.
        for spend in spends {
            let update = Update::builder()
                .table_name(&self.table)
                .set_key(Some(budget_key(&spend.scope.key(), spend.window)))
                .update_expression("ADD #n :one SET #expires = :expires")
                .condition_expression("attribute_not_exists(#n) OR #n < :cap")
                .expression_attribute_names("#n", "actions")
                .expression_attribute_names("#expires", TTL_ATTRIBUTE)
                .expression_attribute_values(":one", AttributeValue::N("1".to_owned()))
                .expression_attribute_values(":cap", AttributeValue::N(spend.cap.to_string()))
                .expression_attribute_values(
                    ":expires",
                    budget_expiry(spend.window, spend.window_seconds),
                )
                .build()
                .map_err(|e| StoreError {
                    message: format!("cannot build budget write: {e}"),
                })?;
            let previous = ConditionCheck::builder()
                .table_name(&self.table)
                .set_key(Some(budget_key(&spend.scope.key(), spend.previous_window)))
                .condition_expression("attribute_not_exists(#n) OR #n <= :previous")
                .expression_attribute_names("#n", "actions")
                .expression_attribute_values(
                    ":previous",
                    AttributeValue::N(spend.previous.to_string()),
                )
                .build()
                .map_err(|e| StoreError {
                    message: format!("cannot build budget check: {e}"),
                })?;
            transaction = transaction
                .transact_items(TransactWriteItem::builder().update(update).build())
                .transact_items(
                    TransactWriteItem::builder()
                        .condition_check(previous)
                        .build(),
                );
        }
        // The group slot is taken only while it is free (never held, expired) or already the
        // resource's own: the guard's check and the claim are one transaction too.
        if let Some(hold) = hold {
            let until = hold.until.timestamp();
            let slot = Put::builder()
                .table_name(&self.table)
                .item(PARTITION_KEY, s(group_pk(&hold.group)))
                .item(SORT_KEY, s(slot_sk(hold.slot)))
                .item("item_type", s("group-slot"))
                .item("holder", s(&hold.holder))
                .item("until", AttributeValue::N(until.to_string()))
                .item(
                    TTL_ATTRIBUTE,
                    AttributeValue::N(until.saturating_add(86_400).to_string()),
                )
                .condition_expression(
                    "attribute_not_exists(pk) OR #until <= :now OR #holder = :holder",
                )
                .expression_attribute_names("#until", "until")
                .expression_attribute_names("#holder", "holder")
                .expression_attribute_values(
                    ":now",
                    AttributeValue::N(hold.now.timestamp().to_string()),
                )
                .expression_attribute_values(":holder", s(&hold.holder))
                .build()
                .map_err(|e| StoreError {
                    message: format!("cannot build group slot write: {e}"),
                })?;
            transaction =
                transaction.transact_items(TransactWriteItem::builder().put(slot).build());
        }
        // The resource's lease across rules is taken only while it is free (never held, ended)
        // or already this state's: one heal per resource at a time, whichever rule's.
        if let Some(lock) = lock {
            let until = lock.until.timestamp();
            let lease = Put::builder()
                .table_name(&self.table)
                .set_item(Some(lease_key(&lock.resource)))
                .item("item_type", s("resource-lease"))
                .item("holder", s(&lock.holder))
                .item("run_id", s(&lock.run_id))
                .item("until", AttributeValue::N(until.to_string()))
                .item(
                    TTL_ATTRIBUTE,
                    AttributeValue::N(until.saturating_add(86_400).to_string()),
                )
                .condition_expression(
                    "attribute_not_exists(pk) OR #until <= :now OR #holder = :holder",
                )
                .expression_attribute_names("#until", "until")
                .expression_attribute_names("#holder", "holder")
                .expression_attribute_values(
                    ":now",
                    AttributeValue::N(lock.now.timestamp().to_string()),
                )
                .expression_attribute_values(":holder", s(&lock.holder))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .map_err(|e| StoreError {
                    message: format!("cannot build resource lease write: {e}"),
                })?;
            transaction =
                transaction.transact_items(TransactWriteItem::builder().put(lease).build());
        }
        let result = transaction.send().await;
        match result {
            Ok(_) => Ok(ClaimResult::Claimed),
            Err(error) => {
                let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
                    error.as_service_error()
                else {
                    return Err(store_error("TransactWriteItems", error));
                };
                // One reason per item, in order: the event claim, the state, the record, two
                // per budget (its current and previous windows), the group slot, then the
                // resource's lease.
                let reasons = cancelled.cancellation_reasons();
                let refused = |index: usize| {
                    reasons
                        .get(index)
                        .and_then(|reason| reason.code())
                        .is_some_and(|code| code == "ConditionalCheckFailed")
                };
                let governed = 3..3 + 2 * spends.len() + usize::from(hold.is_some());
                let lease = governed.end;
                if refused(1) {
                    // The state is not the version expected: it came back as it is stored,
                    // and the run decides again on it without a read.
                    let stored = reasons
                        .get(1)
                        .and_then(|reason| reason.item())
                        .map(|item| decode_state(item.clone()))
                        .transpose()?
                        .map(|state| {
                            Box::new(Loaded {
                                state,
                                // A takeover's claim exists: it is why the run took over.
                                event_seen: takeover || refused(0),
                            })
                        });
                    Ok(ClaimResult::Conflict { stored })
                } else if refused(0) {
                    Ok(ClaimResult::Duplicate)
                } else if lock.is_some() && refused(lease) {
                    // Another rule's run holds the resource: it came back, with until when.
                    let held = reasons.get(lease).and_then(|reason| reason.item());
                    let holder = held
                        .and_then(|item| item.get("holder"))
                        .and_then(|value| value.as_s().ok())
                        .cloned()
                        .unwrap_or_default();
                    let until = held
                        .and_then(|item| item.get("until"))
                        .and_then(|value| value.as_n().ok())
                        .and_then(|n| n.parse().ok())
                        .and_then(|t| DateTime::from_timestamp(t, 0))
                        .unwrap_or(now);
                    Ok(ClaimResult::Busy { holder, until })
                } else if governed.into_iter().any(refused) {
                    Ok(ClaimResult::OverBudget)
                } else {
                    // Another transaction touched the same items: read again and decide again.
                    Ok(ClaimResult::Conflict { stored: None })
                }
            }
        }
    }
}
