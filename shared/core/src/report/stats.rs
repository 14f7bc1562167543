//! Statistics over healing records, as operators read them back.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::layer::Layer;
use crate::model::record::{HealingRecord, HealingStatus, SkipReason};
use crate::model::rules::RuleSet;

/// Counts for one layer (or one account).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LayerCounts {
    pub total: u64,
    pub completed: u64,
    pub failed: u64,
    pub skipped: u64,
    pub active: u64,
}

impl LayerCounts {
    fn count(&mut self, status: HealingStatus) {
        self.total += 1;
        match status {
            HealingStatus::Completed => self.completed += 1,
            HealingStatus::Failed => self.failed += 1,
            HealingStatus::Skipped => self.skipped += 1,
            HealingStatus::Pending | HealingStatus::InProgress => self.active += 1,
        }
    }
}

/// Statistics over a set of healing records.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Statistics {
    pub total: u64,
    pub completed: u64,
    pub failed: u64,
    pub skipped: u64,
    /// Pending or in progress.
    pub active: u64,
    /// completed / (completed + failed); `None` before anything finished.
    pub success_rate: Option<f64>,
    pub per_layer: BTreeMap<Layer, LayerCounts>,
    /// The same counts per account, for the records that name theirs (an organization's
    /// deployment heals many); empty when none does.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub per_account: BTreeMap<String, LayerCounts>,
    pub skipped_by_reason: BTreeMap<SkipReason, u64>,
    pub rules_registered: u64,
    pub rules_enabled: u64,
}

impl Statistics {
    pub fn compute<'a>(
        records: impl IntoIterator<Item = &'a HealingRecord>,
        rules: &RuleSet,
    ) -> Self {
        let mut stats = Statistics {
            rules_registered: rules.rules().len() as u64,
            rules_enabled: rules.rules().iter().filter(|rule| rule.enabled).count() as u64,
            per_layer: Layer::ALL
                .into_iter()
                .map(|layer| (layer, LayerCounts::default()))
                .collect(),
            ..Statistics::default()
        };
        let mut totals = LayerCounts::default();
        for record in records {
            if let Some(reason) = record
                .skip_reason
                .filter(|_| record.status == HealingStatus::Skipped)
            {
                *stats.skipped_by_reason.entry(reason).or_default() += 1;
            }
            totals.count(record.status);
            stats
                .per_layer
                .entry(record.layer)
                .or_default()
                .count(record.status);
            if let Some(account) = &record.account {
                stats
                    .per_account
                    .entry(account.clone())
                    .or_default()
                    .count(record.status);
            }
        }
        stats.total = totals.total;
        stats.completed = totals.completed;
        stats.failed = totals.failed;
        stats.skipped = totals.skipped;
        stats.active = totals.active;
        let finished = stats.completed + stats.failed;
        stats.success_rate = (finished > 0).then(|| stats.completed as f64 / finished as f64);
        stats
    }
}
