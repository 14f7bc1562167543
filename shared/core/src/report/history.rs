//! Incidents as timelines, from their healing records: detected → acted (each attempt) →
//! deferred / rechecked → resolved, escalated or reset. What `autoheal history` prints.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::model::record::{HealingRecord, HealingStatus, RunPhase, SkipReason};

/// One step of an incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    pub at: DateTime<Utc>,
    /// `acted`, `deferred`, `skipped`, `escalated`, `reverted`, `resolved`, `reset`,
    /// `in-progress`.
    pub stage: &'static str,
    pub attempt: u32,
    /// The run's status, and its skip reason when it has one.
    pub status: String,
    pub summary: String,
}

/// One incident of one rule on one resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Timeline {
    pub rule: String,
    pub resource_id: String,
    pub incident_id: String,
    /// Where the resource lives (an incident's id, EventBridge's event id, is unique across
    /// accounts: records of one incident share its place).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub alarm_name: String,
    pub detected_at: DateTime<Utc>,
    /// How it stands: `resolved`, `escalated`, `reset` or `open`.
    pub state: &'static str,
    pub steps: Vec<Step>,
}

/// What a record says about its incident.
fn stage(record: &HealingRecord) -> &'static str {
    if record.details.get("escalated").is_some_and(|v| v == "true") {
        return "escalated";
    }
    match (record.phase, record.status, record.skip_reason) {
        (RunPhase::Verify, _, _) => "resolved",
        (RunPhase::Reset, _, _) => "reset",
        (RunPhase::Revert, _, _) => "reverted",
        (_, HealingStatus::Pending | HealingStatus::InProgress, _) => "in-progress",
        (_, _, Some(reason)) if reason.is_deferral() => "deferred",
        (
            _,
            _,
            Some(SkipReason::MaxAttempts | SkipReason::Unverifiable | SkipReason::Unfinished),
        ) => "escalated",
        (_, HealingStatus::Skipped, _) => "skipped",
        (_, HealingStatus::Completed | HealingStatus::Failed, _) => "acted",
    }
}

/// The incidents in `records` (any order), oldest first, each with its steps in order.
/// Records without an incident (duplicates, events no rule selected) are left out.
pub fn timelines(records: &[HealingRecord]) -> Vec<Timeline> {
    let mut by_incident: BTreeMap<(String, String, String), Vec<&HealingRecord>> = BTreeMap::new();
    for record in records {
        let Some(incident) = record.incident_id.as_ref() else {
            continue;
        };
        by_incident
            .entry((
                record.rule.clone(),
                record.resource_id.clone(),
                incident.clone(),
            ))
            .or_default()
            .push(record);
    }
    let mut timelines: Vec<Timeline> = by_incident
        .into_iter()
        .map(|((rule, resource_id, incident_id), mut records)| {
            records.sort_by_key(|record| (record.started_at, record.id.clone()));
            let steps: Vec<Step> = records
                .iter()
                .map(|record| Step {
                    at: record.started_at,
                    stage: stage(record),
                    attempt: record.attempt,
                    status: match record.skip_reason {
                        Some(reason) => format!("{} ({reason})", record.status),
                        None => record.status.to_string(),
                    },
                    summary: record
                        .summary
                        .clone()
                        .or_else(|| record.error.clone())
                        .unwrap_or_default(),
                })
                .collect();
            let state = steps
                .iter()
                .rev()
                .find_map(|step| match step.stage {
                    "resolved" | "escalated" | "reset" => Some(step.stage),
                    _ => None,
                })
                .unwrap_or("open");
            let first = records.first().copied();
            let placed = records.iter().find(|record| record.account.is_some());
            Timeline {
                rule,
                resource_id,
                incident_id,
                account: placed.and_then(|record| record.account.clone()),
                region: placed.and_then(|record| record.region.clone()),
                alarm_name: first
                    .map(|record| record.alarm_name.clone())
                    .unwrap_or_default(),
                detected_at: first.map_or(DateTime::<Utc>::MIN_UTC, |record| record.started_at),
                state,
                steps,
            }
        })
        .collect();
    timelines.sort_by_key(|timeline| timeline.detected_at);
    timelines
}
