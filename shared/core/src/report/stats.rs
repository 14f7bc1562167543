//! Statistics over healing records, as operators read them back.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::layer::Layer;
use crate::model::record::{HealingRecord, HealingStatus, SkipReason};
use crate::model::rules::RuleSet;

/// Counts for one layer.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LayerCounts {
    pub total: u64,
    pub completed: u64,
    pub failed: u64,
    pub skipped: u64,
    pub active: u64,
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
        for record in records {
            let layer = stats.per_layer.entry(record.layer).or_default();
            stats.total += 1;
            layer.total += 1;
            match record.status {
                HealingStatus::Completed => {
                    stats.completed += 1;
                    layer.completed += 1;
                }
                HealingStatus::Failed => {
                    stats.failed += 1;
                    layer.failed += 1;
                }
                HealingStatus::Skipped => {
                    stats.skipped += 1;
                    layer.skipped += 1;
                    if let Some(reason) = record.skip_reason {
                        *stats.skipped_by_reason.entry(reason).or_default() += 1;
                    }
                }
                HealingStatus::Pending | HealingStatus::InProgress => {
                    stats.active += 1;
                    layer.active += 1;
                }
            }
        }
        let finished = stats.completed + stats.failed;
        stats.success_rate = (finished > 0).then(|| stats.completed as f64 / finished as f64);
        stats
    }
}
