//! What the store reads in batches and by day: the state with its event's claim and the
//! budgets' windows in one batch read, and the healing records of a day and of recent days.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use chrono::{DateTime, Duration, NaiveDate, Utc};

use autoheal_core::policy::budget::Windows;
use autoheal_core::{Budget, HealingRecord, Loaded, ResourceKey, ResourceState, StoreError, Usage};

use super::items::{
    PARTITION_KEY, RecordItem, SORT_KEY, STATE_SORT_KEY, budget_key, decode_state, record_pk,
    resource_pk, s, store_error,
};
use super::store::DynamoStateStore;

/// Each budget's windows at `now`, and the keys of their counters.
pub(super) fn budget_windows(
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
pub(super) struct Found {
    pub(super) loaded: Loaded,
    counters: HashMap<(String, String), u32>,
}

impl Found {
    pub(super) fn read(items: Vec<HashMap<String, AttributeValue>>) -> Result<Self, StoreError> {
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

    pub(super) fn usages(&self, budgets: &[Budget], windows: &[Windows]) -> Vec<Usage> {
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

impl DynamoStateStore {
    /// The items of `keys` (strongly consistent). BatchGetItem may leave some keys
    /// unprocessed under load: they are asked for again.
    pub(super) async fn batch_get(
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
