//! The core's `StateStore` port on DynamoDB: every request but the claim's transaction
//! (`claim`), with the items and keys of `items` and the batch reads of `reads`.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use chrono::{DateTime, Duration, Utc};

use autoheal_core::policy::group::Slot;
use autoheal_core::{
    ActionEnd, Budget, ClaimRequest, ClaimResult, HealingRecord, Loaded, ResourceKey, ResourceLock,
    ResourceState, Revert, StateStore, StoreError, Tripped, Usage,
};

use super::items::{
    HISTORY_MAX_DAYS, PARTITION_KEY, SORT_KEY, STATE_RETENTION_DAYS, STATE_SORT_KEY, TTL_ATTRIBUTE,
    budget_expiry, budget_key, consistent_keys, encode_error, expiry, group_pk, lease_key,
    resource_pk, s, state_and_claim_keys, store_error, written,
};
use super::reads::{Found, budget_windows};
use super::store::DynamoStateStore;

/// How often a run's final write is tried again after meeting another transaction.
const FINISH_CONFLICT_RETRIES: u64 = 3;

/// The write that ends a run's hold on the resource's lease across rules: released when its
/// action ended (or it was no heal), held until `lock.until` when the action continues; in
/// either case only while the lease is still this run's.
fn lease_release(
    table: &str,
    lock: &ResourceLock,
    action: ActionEnd,
) -> Result<TransactWriteItem, StoreError> {
    let built = |e: aws_sdk_dynamodb::error::BuildError| StoreError {
        message: format!("cannot build resource lease release: {e}"),
    };
    let item = match action {
        ActionEnd::Continues { .. } => {
            let until = lock.until.timestamp();
            let update = Update::builder()
                .table_name(table)
                .set_key(Some(lease_key(&lock.resource)))
                .update_expression("SET #until = :until, #expires = :expires")
                .condition_expression("#run_id = :run_id")
                .expression_attribute_names("#until", "until")
                .expression_attribute_names("#expires", TTL_ATTRIBUTE)
                .expression_attribute_names("#run_id", "run_id")
                .expression_attribute_values(":until", AttributeValue::N(until.to_string()))
                .expression_attribute_values(
                    ":expires",
                    AttributeValue::N(until.saturating_add(86_400).to_string()),
                )
                .expression_attribute_values(":run_id", s(&lock.run_id))
                .build()
                .map_err(built)?;
            TransactWriteItem::builder().update(update).build()
        }
        ActionEnd::Finished | ActionEnd::Untouched => {
            // Released by ending it (`until` 0: any claim finds it free), not by deleting it:
            // the functions' role deletes nothing in the state table.
            let ended = Update::builder()
                .table_name(table)
                .set_key(Some(lease_key(&lock.resource)))
                .update_expression("SET #until = :ended, #expires = :expires")
                .condition_expression("#run_id = :run_id")
                .expression_attribute_names("#until", "until")
                .expression_attribute_names("#expires", TTL_ATTRIBUTE)
                .expression_attribute_names("#run_id", "run_id")
                .expression_attribute_values(":ended", AttributeValue::N("0".to_owned()))
                .expression_attribute_values(
                    ":expires",
                    AttributeValue::N(lock.until.timestamp().saturating_add(86_400).to_string()),
                )
                .expression_attribute_values(":run_id", s(&lock.run_id))
                .build()
                .map_err(built)?;
            TransactWriteItem::builder().update(ended).build()
        }
    };
    Ok(item)
}

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

impl StateStore for DynamoStateStore {
    async fn load(&self, key: &ResourceKey, event_id: &str) -> Result<Loaded, StoreError> {
        let keys = consistent_keys(state_and_claim_keys(key, event_id))?;
        Ok(Found::read(self.batch_get(keys).await?)?.loaded)
    }

    async fn load_with_budgets(
        &self,
        key: &ResourceKey,
        event_id: &str,
        budgets: &[Budget],
        now: DateTime<Utc>,
    ) -> Result<(Loaded, Vec<Usage>), StoreError> {
        let (windows, budget_keys) = budget_windows(budgets, now);
        let keys = consistent_keys(
            state_and_claim_keys(key, event_id)
                .into_iter()
                .chain(budget_keys),
        )?;
        let found = Found::read(self.batch_get(keys).await?)?;
        let usages = found.usages(budgets, &windows);
        Ok((found.loaded, usages))
    }

    async fn claim(&self, request: &ClaimRequest<'_>) -> Result<ClaimResult, StoreError> {
        self.claim_transaction(request).await
    }

    async fn save(
        &self,
        key: &ResourceKey,
        expected_version: u64,
        next: &ResourceState,
    ) -> Result<bool, StoreError> {
        let put = self.state_put(key, expected_version, next)?;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(put.item().clone()))
            .set_condition_expression(put.condition_expression().map(str::to_owned))
            .set_expression_attribute_names(put.expression_attribute_names().cloned())
            .set_expression_attribute_values(put.expression_attribute_values().cloned())
            .send()
            .await;
        written(result, "PutItem", |e| {
            e.is_conditional_check_failed_exception()
        })
    }

    async fn put_record(&self, record: &HealingRecord) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(self.record_item(record)?))
            .send()
            .await
            .map_err(|e| store_error("PutItem", e))?;
        Ok(())
    }

    async fn finish(
        &self,
        key: &ResourceKey,
        record: &HealingRecord,
        escalated_at: Option<DateTime<Utc>>,
        reverts: Option<&[Revert]>,
        action: ActionEnd,
        lock: Option<&ResourceLock>,
    ) -> Result<(), StoreError> {
        let lease = lock
            .map(|lock| lease_release(&self.table, lock, action))
            .transpose()?;
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
                // The next step's check number is one of the action's steps (`step_checks`).
                set.push("#incident.#checks = :check");
                set.push(
                    "#incident.#step_checks = if_not_exists(#incident.#step_checks, :zero) + :one",
                );
                update = update
                    .expression_attribute_names("#incident", "incident")
                    .expression_attribute_names("#checks", "checks")
                    .expression_attribute_names("#step_checks", "step_checks")
                    .expression_attribute_values(":check", AttributeValue::N(check.to_string()))
                    .expression_attribute_values(":zero", AttributeValue::N("0".to_owned()));
            }
        }
        // A state with changes left to put back never expires: the next OK, however late,
        // still puts them back. Once none is left it expires as any other state.
        let finished_at = record.ended_at.unwrap_or(record.started_at);
        match reverts {
            None => {}
            Some([]) => {
                remove.push("#reverts");
                set.push("#expires = :expires");
                update = update
                    .expression_attribute_names("#reverts", "reverts")
                    .expression_attribute_names("#expires", TTL_ATTRIBUTE)
                    .expression_attribute_values(
                        ":expires",
                        expiry(finished_at, STATE_RETENTION_DAYS),
                    );
            }
            Some(reverts) => {
                let value = serde_dynamo::to_attribute_value(reverts)
                    .map_err(|e| encode_error("reverts", e))?;
                set.push("#reverts = :reverts");
                remove.push("#expires");
                update = update
                    .expression_attribute_names("#reverts", "reverts")
                    .expression_attribute_names("#expires", TTL_ATTRIBUTE)
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
        // The record and the leases' release in one request; the record is written whatever
        // becomes of the leases. A transaction that met another on the same item is cancelled
        // with `TransactionConflict`, which the SDK does not retry: this does, briefly.
        let mut conflicts = 0;
        let mut lease = lease;
        let error = loop {
            let mut transaction = self
                .client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().put(record_put.clone()).build())
                .transact_items(TransactWriteItem::builder().update(update.clone()).build());
            if let Some(lease) = &lease {
                transaction = transaction.transact_items(lease.clone());
            }
            let Err(error) = transaction.send().await else {
                return Ok(());
            };
            let codes = cancellation_codes(&error);
            if codes.get(2) == Some(&"ConditionalCheckFailed") {
                // The resource's lease is no longer this run's (it ended, and another run took
                // it): it is theirs to release.
                lease = None;
                continue;
            }
            let conflicted = codes.contains(&"TransactionConflict");
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

    async fn budget_usage(
        &self,
        budgets: &[Budget],
        now: DateTime<Utc>,
    ) -> Result<Vec<Usage>, StoreError> {
        if budgets.is_empty() {
            return Ok(Vec::new());
        }
        let (windows, keys) = budget_windows(budgets, now);
        let found = Found::read(self.batch_get(consistent_keys(keys)?).await?)?;
        Ok(found.usages(budgets, &windows))
    }

    async fn group_slots(&self, group: &str, capacity: u32) -> Result<Vec<Slot>, StoreError> {
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :slot)")
            .expression_attribute_values(":pk", s(group_pk(group)))
            .expression_attribute_values(":slot", s("SLOT#"))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        let mut slots = Vec::new();
        while let Some(item) = pages.next().await {
            let item = item.map_err(|e| store_error("Query", e))?;
            let index = match item.get(SORT_KEY) {
                Some(AttributeValue::S(sk)) => {
                    sk.strip_prefix("SLOT#").and_then(|i| i.parse().ok())
                }
                _ => None,
            };
            let holder = match item.get("holder") {
                Some(AttributeValue::S(holder)) => Some(holder.clone()),
                _ => None,
            };
            let until = match item.get("until") {
                Some(AttributeValue::N(n)) => {
                    n.parse().ok().and_then(|t| DateTime::from_timestamp(t, 0))
                }
                _ => None,
            };
            match (index, holder, until) {
                (Some(index), Some(holder), Some(until)) if index < capacity => {
                    slots.push(Slot {
                        index,
                        holder,
                        until,
                    });
                }
                (Some(_), Some(_), Some(_)) => {}
                _ => {
                    return Err(StoreError {
                        message: format!("a slot of group {group} is not readable: {item:?}"),
                    });
                }
            }
        }
        Ok(slots)
    }

    async fn first_trip(&self, tripped: &Tripped) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(budget_key(&tripped.notice_key(), tripped.window)))
            .update_expression("SET #tripped = :yes, #expires = if_not_exists(#expires, :expires)")
            .condition_expression("attribute_not_exists(#tripped)")
            .expression_attribute_names("#tripped", "tripped")
            .expression_attribute_names("#expires", TTL_ATTRIBUTE)
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .expression_attribute_values(
                ":expires",
                budget_expiry(tripped.window, tripped.limit.window_seconds),
            )
            .send()
            .await;
        written(result, "UpdateItem", |e| {
            e.is_conditional_check_failed_exception()
        })
    }

    async fn incident_history(
        &self,
        key: &ResourceKey,
        incident_id: &str,
        opened_at: DateTime<Utc>,
    ) -> Result<Vec<HealingRecord>, StoreError> {
        let now = Utc::now();
        // Records are kept by day; an incident older than the history kept is cut to it.
        let days = (now.date_naive() - opened_at.date_naive())
            .num_days()
            .clamp(0, HISTORY_MAX_DAYS);
        let mut history = Vec::new();
        for back in (0..=days).rev() {
            let day = (now - Duration::days(back)).date_naive();
            history.extend(
                self.records_of_day(day)
                    .await?
                    .into_iter()
                    .filter(|record| {
                        record.rule == key.rule
                            && record.resource_id == key.resource_id
                            && record.incident_id.as_deref() == Some(incident_id)
                    }),
            );
        }
        Ok(history)
    }
}
