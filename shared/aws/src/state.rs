//! The DynamoDB state store: one table, every state change a conditional write.
//!
//! | item            | pk                              | sk                          | expires |
//! |-----------------|---------------------------------|-----------------------------|---------|
//! | resource state  | `RESOURCE#<rule>#<resource id>` | `STATE`                     | 90 days after its last change |
//! | event claim     | `RESOURCE#<rule>#<resource id>` | `EVENT#<event id>`          | 7 days  |
//! | healing record  | `RUNS#<yyyy-mm-dd>`             | `<started at>#<run id>`     | 90 days |
//! | budget window   | `BUDGET#<scope>`                | `WINDOW#<start, epoch s>`   | 2 windows and a day after its start |
//! | group slot      | `GROUP#<group id>`              | `SLOT#<index>`              | a day after it frees |
//!
//! Claims and state share a partition so that one transaction covers both. Records are
//! partitioned by day so history and statistics are a `Query` per day, never a `Scan`.
//! `expires_at` is the table's TTL attribute (epoch seconds); DynamoDB deletes expired items
//! lazily, so readers never rely on it.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, KeysAndAttributes, Put, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update,
};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

use autoheal_core::policy::budget::Windows;
use autoheal_core::policy::group::Slot;
use autoheal_core::{
    ActionEnd, Budget, ClaimRequest, ClaimResult, HealingRecord, Loaded, ResourceKey,
    ResourceState, Revert, StateStore, StoreError, Tripped, Usage,
};

/// The table's partition and sort key attribute names, and its TTL attribute.
pub const PARTITION_KEY: &str = "pk";
pub const SORT_KEY: &str = "sk";
pub const TTL_ATTRIBUTE: &str = "expires_at";

const STATE_SORT_KEY: &str = "STATE";
const STATE_RETENTION_DAYS: i64 = 90;
const CLAIM_RETENTION_DAYS: i64 = 7;
const RECORD_RETENTION_DAYS: i64 = 90;
/// How many days of records an escalation's history reads at most.
const HISTORY_MAX_DAYS: i64 = 7;

/// Incident state and healing records in one DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoStateStore {
    client: Client,
    table: String,
}

fn store_error<E, R>(operation: &str, error: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    StoreError {
        message: crate::errors::describe(operation, &error),
    }
}

/// Whether a conditional write was made: `false` when its condition did not hold.
fn written<T, E, R>(
    result: Result<T, SdkError<E, R>>,
    operation: &str,
    condition_failed: impl Fn(&E) -> bool,
) -> Result<bool, StoreError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(true),
        Err(error) if error.as_service_error().is_some_and(&condition_failed) => Ok(false),
        Err(error) => Err(store_error(operation, error)),
    }
}

fn encode_error(what: &str, error: serde_dynamo::Error) -> StoreError {
    StoreError {
        message: format!("cannot encode {what}: {error}"),
    }
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn expiry(now: DateTime<Utc>, days: i64) -> AttributeValue {
    AttributeValue::N((now + Duration::days(days)).timestamp().to_string())
}

fn resource_pk(key: &ResourceKey) -> String {
    format!("RESOURCE#{}#{}", key.rule, key.resource_id)
}

fn claim_sk(event_id: &str) -> String {
    format!("EVENT#{event_id}")
}

fn budget_key(scope: &str, window: DateTime<Utc>) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (PARTITION_KEY.to_owned(), s(format!("BUDGET#{scope}"))),
        (
            SORT_KEY.to_owned(),
            s(format!("WINDOW#{}", window.timestamp())),
        ),
    ])
}

/// A budget window's count is kept until no rolling window can include it any more.
fn budget_expiry(window: DateTime<Utc>, window_seconds: u64) -> AttributeValue {
    let length = i64::try_from(window_seconds).unwrap_or(i64::MAX / 4);
    let end = window
        .timestamp()
        .saturating_add(length.saturating_mul(2))
        .saturating_add(86_400);
    AttributeValue::N(end.to_string())
}

fn group_pk(group: &str) -> String {
    format!("GROUP#{group}")
}

fn slot_sk(index: u32) -> String {
    format!("SLOT#{index}")
}

fn record_pk(day: NaiveDate) -> String {
    format!("RUNS#{}", day.format("%Y-%m-%d"))
}

/// The stored form of a resource's state: the core's state plus what identifies it.
#[derive(Debug, Serialize, Deserialize)]
struct StateItem {
    pk: String,
    sk: String,
    item_type: String,
    rule: String,
    resource_id: String,
    #[serde(flatten)]
    state: ResourceState,
    updated_at: DateTime<Utc>,
}

/// The stored form of a healing record.
#[derive(Debug, Serialize, Deserialize)]
struct RecordItem {
    pk: String,
    sk: String,
    item_type: String,
    #[serde(flatten)]
    record: HealingRecord,
}

impl DynamoStateStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoStateStore {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn state_item(
        &self,
        key: &ResourceKey,
        state: &ResourceState,
    ) -> Result<HashMap<String, AttributeValue>, StoreError> {
        let now = Utc::now();
        let item = StateItem {
            pk: resource_pk(key),
            sk: STATE_SORT_KEY.to_owned(),
            item_type: "resource-state".to_owned(),
            rule: key.rule.clone(),
            resource_id: key.resource_id.clone(),
            state: state.clone(),
            updated_at: now,
        };
        let mut attributes: HashMap<String, AttributeValue> =
            serde_dynamo::to_item(item).map_err(|e| encode_error("resource state", e))?;
        attributes.insert(TTL_ATTRIBUTE.to_owned(), expiry(now, STATE_RETENTION_DAYS));
        Ok(attributes)
    }

    fn record_item(
        &self,
        record: &HealingRecord,
    ) -> Result<HashMap<String, AttributeValue>, StoreError> {
        let item = RecordItem {
            pk: record_pk(record.started_at.date_naive()),
            sk: format!("{}#{}", record.started_at.to_rfc3339(), record.id),
            item_type: "healing-record".to_owned(),
            record: record.clone(),
        };
        let mut attributes: HashMap<String, AttributeValue> =
            serde_dynamo::to_item(item).map_err(|e| encode_error("healing record", e))?;
        attributes.insert(
            TTL_ATTRIBUTE.to_owned(),
            expiry(record.started_at, RECORD_RETENTION_DAYS),
        );
        Ok(attributes)
    }

    /// A conditional put of the state: only over the version that was read (0: none stored).
    /// In a transaction, a refusal returns the state as stored.
    fn state_put(
        &self,
        key: &ResourceKey,
        expected_version: u64,
        next: &ResourceState,
    ) -> Result<Put, StoreError> {
        let builder = Put::builder()
            .table_name(&self.table)
            .set_item(Some(self.state_item(key, next)?))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        let builder = if expected_version == 0 {
            builder.condition_expression("attribute_not_exists(pk)")
        } else {
            builder
                .condition_expression("#version = :expected")
                .expression_attribute_names("#version", "version")
                .expression_attribute_values(
                    ":expected",
                    AttributeValue::N(expected_version.to_string()),
                )
        };
        builder.build().map_err(|e| StoreError {
            message: format!("cannot build state write: {e}"),
        })
    }

    /// A record's write, for a transaction.
    fn record_put(&self, record: &HealingRecord) -> Result<Put, StoreError> {
        Put::builder()
            .table_name(&self.table)
            .set_item(Some(self.record_item(record)?))
            .build()
            .map_err(|e| StoreError {
                message: format!("cannot build record write: {e}"),
            })
    }

    /// The items of `keys` (strongly consistent). BatchGetItem may leave some keys
    /// unprocessed under load: they are asked for again.
    async fn batch_get(
        &self,
        keys: KeysAndAttributes,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        let mut request = HashMap::from([(self.table.clone(), keys)]);
        let mut items = Vec::new();
        for _ in 0..5 {
            let output = self
                .client
                .batch_get_item()
                .set_request_items(Some(request))
                .send()
                .await
                .map_err(|e| store_error("BatchGetItem", e))?;
            items.extend(
                output
                    .responses
                    .unwrap_or_default()
                    .remove(&self.table)
                    .unwrap_or_default(),
            );
            match output.unprocessed_keys {
                Some(unprocessed) if !unprocessed.is_empty() => request = unprocessed,
                _ => return Ok(items),
            }
        }
        Err(StoreError {
            message: "BatchGetItem kept leaving keys unprocessed".to_owned(),
        })
    }

    /// The healing records of one UTC day, oldest first.
    pub async fn records_of_day(&self, day: NaiveDate) -> Result<Vec<HealingRecord>, StoreError> {
        let mut records = Vec::new();
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(record_pk(day)))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        while let Some(item) = pages.next().await {
            let item = item.map_err(|e| store_error("Query", e))?;
            let decoded: RecordItem = serde_dynamo::from_item(item).map_err(|e| StoreError {
                message: format!("cannot decode a healing record: {e}"),
            })?;
            records.push(decoded.record);
        }
        Ok(records)
    }

    /// The healing records of the last `days` UTC days (today included), oldest first.
    pub async fn recent_records(
        &self,
        days: u32,
        now: DateTime<Utc>,
    ) -> Result<Vec<HealingRecord>, StoreError> {
        let mut records = Vec::new();
        for back in (0..i64::from(days.max(1))).rev() {
            let day = (now - Duration::days(back)).date_naive();
            records.extend(self.records_of_day(day).await?);
        }
        Ok(records)
    }

    /// The stored state of one rule on one resource, if any.
    pub async fn state(&self, key: &ResourceKey) -> Result<Option<ResourceState>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PARTITION_KEY, s(resource_pk(key)))
            .key(SORT_KEY, s(STATE_SORT_KEY))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("GetItem", e))?;
        output.item.map(decode_state).transpose()
    }
}

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

/// The keys of a resource's state and of the claim of `event_id` on it.
fn state_and_claim_keys(key: &ResourceKey, event_id: &str) -> [HashMap<String, AttributeValue>; 2] {
    let pk = resource_pk(key);
    [
        HashMap::from([
            (PARTITION_KEY.to_owned(), s(pk.clone())),
            (SORT_KEY.to_owned(), s(STATE_SORT_KEY)),
        ]),
        HashMap::from([
            (PARTITION_KEY.to_owned(), s(pk)),
            (SORT_KEY.to_owned(), s(claim_sk(event_id))),
        ]),
    ]
}

/// Each budget's windows at `now`, and the keys of their counters.
fn budget_windows(
    budgets: &[Budget],
    now: DateTime<Utc>,
) -> (Vec<Windows>, Vec<HashMap<String, AttributeValue>>) {
    let windows: Vec<Windows> = budgets
        .iter()
        .map(|budget| Windows::at(now, budget.limit.window_seconds))
        .collect();
    let keys = budgets
        .iter()
        .zip(&windows)
        .flat_map(|(budget, windows)| {
            let scope = budget.scope.key();
            [
                budget_key(&scope, windows.previous),
                budget_key(&scope, windows.current),
            ]
        })
        .collect();
    (windows, keys)
}

/// What a batch read found: the state, whether the event was claimed, and the budget
/// counters by (pk, sk).
#[derive(Default)]
struct Found {
    loaded: Loaded,
    counters: HashMap<(String, String), u32>,
}

impl Found {
    fn read(items: Vec<HashMap<String, AttributeValue>>) -> Result<Self, StoreError> {
        let mut found = Found::default();
        for item in items {
            let text = |name: &str| match item.get(name) {
                Some(AttributeValue::S(value)) => value.clone(),
                _ => String::new(),
            };
            let (pk, sk) = (text(PARTITION_KEY), text(SORT_KEY));
            if pk.starts_with("BUDGET#") {
                let actions = match item.get("actions") {
                    Some(AttributeValue::N(n)) => n.parse().unwrap_or(u32::MAX),
                    _ => 0,
                };
                found.counters.insert((pk, sk), actions);
            } else if sk == STATE_SORT_KEY {
                found.loaded.state = decode_state(item)?;
            } else if !sk.is_empty() {
                found.loaded.event_seen = true;
            }
        }
        Ok(found)
    }

    fn usages(&self, budgets: &[Budget], windows: &[Windows]) -> Vec<Usage> {
        let count = |scope: &str, window: DateTime<Utc>| {
            self.counters
                .get(&(
                    format!("BUDGET#{scope}"),
                    format!("WINDOW#{}", window.timestamp()),
                ))
                .copied()
                .unwrap_or(0)
        };
        budgets
            .iter()
            .zip(windows)
            .map(|(budget, windows)| {
                let scope = budget.scope.key();
                Usage {
                    previous: count(&scope, windows.previous),
                    current: count(&scope, windows.current),
                }
            })
            .collect()
    }
}

/// A resource's state from its stored item.
fn decode_state(item: HashMap<String, AttributeValue>) -> Result<ResourceState, StoreError> {
    serde_dynamo::from_item::<_, StateItem>(item)
        .map(|decoded| decoded.state)
        .map_err(|e| StoreError {
            message: format!("cannot decode resource state: {e}"),
        })
}

/// A strongly consistent batch read of `keys`.
fn consistent_keys(
    keys: impl IntoIterator<Item = HashMap<String, AttributeValue>>,
) -> Result<KeysAndAttributes, StoreError> {
    keys.into_iter()
        .fold(
            KeysAndAttributes::builder().consistent_read(true),
            |read, key| read.keys(key),
        )
        .build()
        .map_err(|e| StoreError {
            message: format!("cannot build state read: {e}"),
        })
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
        let ClaimRequest {
            key,
            event_id,
            expected_version,
            next,
            record,
            takeover,
            spends,
            hold,
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
                // per budget (its current and previous windows), then the group slot.
                let reasons = cancelled.cancellation_reasons();
                let refused = |index: usize| {
                    reasons
                        .get(index)
                        .and_then(|reason| reason.code())
                        .is_some_and(|code| code == "ConditionalCheckFailed")
                };
                let governed = 3..3 + 2 * spends.len() + usize::from(hold.is_some());
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
                } else if governed.into_iter().any(refused) {
                    Ok(ClaimResult::OverBudget)
                } else {
                    // Another transaction touched the same items: read again and decide again.
                    Ok(ClaimResult::Conflict { stored: None })
                }
            }
        }
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
