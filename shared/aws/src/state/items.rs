//! The table's keys and items: how each kind of item is keyed, when it expires, how the
//! core's state and records are encoded, and the errors of a request.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, Put, ReturnValuesOnConditionCheckFailure,
};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use autoheal_core::{HealingRecord, ResourceKey, ResourceState, StoreError};

use super::store::DynamoStateStore;

/// The table's partition and sort key attribute names, and its TTL attribute.
pub const PARTITION_KEY: &str = "pk";
pub const SORT_KEY: &str = "sk";
pub const TTL_ATTRIBUTE: &str = "expires_at";

pub(super) const STATE_SORT_KEY: &str = "STATE";
pub(super) const STATE_RETENTION_DAYS: i64 = 90;
pub(super) const CLAIM_RETENTION_DAYS: i64 = 7;
pub(super) const RECORD_RETENTION_DAYS: i64 = 90;
/// How many days of records an escalation's history reads at most.
pub(super) const HISTORY_MAX_DAYS: i64 = 7;

pub(super) fn store_error<E, R>(operation: &str, error: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    StoreError {
        message: crate::errors::describe(operation, &error),
    }
}

/// Whether a conditional write was made: `false` when its condition did not hold.
pub(super) fn written<T, E, R>(
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

pub(super) fn encode_error(what: &str, error: serde_dynamo::Error) -> StoreError {
    StoreError {
        message: format!("cannot encode {what}: {error}"),
    }
}

pub(super) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(super) fn expiry(now: DateTime<Utc>, days: i64) -> AttributeValue {
    AttributeValue::N((now + Duration::days(days)).timestamp().to_string())
}

pub(super) fn resource_pk(key: &ResourceKey) -> String {
    format!("RESOURCE#{}#{}", key.rule, key.placed_id())
}

pub(super) fn claim_sk(event_id: &str) -> String {
    format!("EVENT#{event_id}")
}

pub(super) fn budget_key(scope: &str, window: DateTime<Utc>) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (PARTITION_KEY.to_owned(), s(format!("BUDGET#{scope}"))),
        (
            SORT_KEY.to_owned(),
            s(format!("WINDOW#{}", window.timestamp())),
        ),
    ])
}

/// A budget window's count is kept until no rolling window can include it any more.
pub(super) fn budget_expiry(window: DateTime<Utc>, window_seconds: u64) -> AttributeValue {
    let length = i64::try_from(window_seconds).unwrap_or(i64::MAX / 4);
    let end = window
        .timestamp()
        .saturating_add(length.saturating_mul(2))
        .saturating_add(86_400);
    AttributeValue::N(end.to_string())
}

pub(super) fn group_pk(group: &str) -> String {
    format!("GROUP#{group}")
}

pub(super) fn slot_sk(index: u32) -> String {
    format!("SLOT#{index}")
}

/// The lease of one resource across rules (`autoheal_core::model::limits::resource_key`).
pub(super) fn lease_key(resource: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (PARTITION_KEY.to_owned(), s(format!("LEASE#{resource}"))),
        (SORT_KEY.to_owned(), s(LEASE_SORT_KEY)),
    ])
}

pub(super) const LEASE_SORT_KEY: &str = "LEASE";

pub(super) fn record_pk(day: NaiveDate) -> String {
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
pub(super) struct RecordItem {
    pk: String,
    sk: String,
    item_type: String,
    #[serde(flatten)]
    pub(super) record: HealingRecord,
}

/// A resource's state from its stored item.
pub(super) fn decode_state(
    item: HashMap<String, AttributeValue>,
) -> Result<ResourceState, StoreError> {
    serde_dynamo::from_item::<_, StateItem>(item)
        .map(|decoded| decoded.state)
        .map_err(|e| StoreError {
            message: format!("cannot decode resource state: {e}"),
        })
}

/// The keys of a resource's state and of the claim of `event_id` on it.
pub(super) fn state_and_claim_keys(
    key: &ResourceKey,
    event_id: &str,
) -> [HashMap<String, AttributeValue>; 2] {
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

/// A strongly consistent batch read of `keys`.
pub(super) fn consistent_keys(
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

impl DynamoStateStore {
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
        // Changes left to put back keep the state: it expires only once none is left.
        if state.reverts.is_empty() {
            attributes.insert(TTL_ATTRIBUTE.to_owned(), expiry(now, STATE_RETENTION_DAYS));
        }
        Ok(attributes)
    }

    pub(super) fn record_item(
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
    pub(super) fn state_put(
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
    pub(super) fn record_put(&self, record: &HealingRecord) -> Result<Put, StoreError> {
        Put::builder()
            .table_name(&self.table)
            .set_item(Some(self.record_item(record)?))
            .build()
            .map_err(|e| StoreError {
                message: format!("cannot build record write: {e}"),
            })
    }
}
