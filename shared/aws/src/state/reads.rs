//! What the store reads: the state with its event's claim and the budgets' windows in one
//! batch, a group's slots, and the healing records of a day, of recent days and of an
//! incident.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use chrono::{DateTime, Duration, NaiveDate, Utc};

use autoheal_core::policy::budget::Windows;
use autoheal_core::policy::group::Slot;
use autoheal_core::{Budget, HealingRecord, Loaded, ResourceKey, ResourceState, StoreError, Usage};

use super::items::{
    HISTORY_MAX_DAYS, PARTITION_KEY, RecordItem, SORT_KEY, STATE_SORT_KEY, budget_key,
    decode_state, group_pk, record_pk, resource_pk, s, store_error,
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

    /// The group's slots `0..capacity` that are stored (held or expired).
    pub(super) async fn read_group_slots(
        &self,
        group: &str,
        capacity: u32,
    ) -> Result<Vec<Slot>, StoreError> {
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

    /// The records of one incident, oldest first, from `opened_at` until now (at most
    /// `HISTORY_MAX_DAYS` of them).
    pub(super) async fn records_of_incident(
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
