//! The core's `StateStore` port on DynamoDB: the short requests here, the claim, the final
//! write and the longer reads in the files beside this one.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use autoheal_core::policy::group::Slot;
use autoheal_core::{
    ActionEnd, Budget, ClaimRequest, ClaimResult, HealingRecord, Loaded, ResourceKey,
    ResourceState, Revert, StateStore, StoreError, Tripped, Usage,
};

use super::items::{
    TTL_ATTRIBUTE, budget_expiry, budget_key, consistent_keys, state_and_claim_keys, store_error,
    written,
};
use super::reads::{Found, budget_windows};
use super::store::DynamoStateStore;

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
    ) -> Result<(), StoreError> {
        self.finish_transaction(key, record, escalated_at, reverts, action)
            .await
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
        self.read_group_slots(group, capacity).await
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
        self.records_of_incident(key, incident_id, opened_at).await
    }
}
