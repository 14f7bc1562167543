//! Metrics in CloudWatch's embedded metric format: one JSON document per handled event,
//! written to the function's log, from which CloudWatch extracts the metrics (no API call, no
//! client, nothing to fail in the event's path).
//!
//! In namespace `autoheal`: `Actions` (dimensions layer, rule, status), `Skips` (layer,
//! reason), `Deferrals` (layer, rule), `Escalations` (layer, rule) and `TimeToRecover`
//! (seconds; layer, rule). `Deferrals` and `Escalations` are also published without
//! dimensions, for the stack's alarms on them.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::model::record::{HealingStatus, RunPhase};
use crate::report::outcome::{Outcome, Verdict};

pub const NAMESPACE: &str = "autoheal";

/// The embedded-metric document of `outcome`, or `None` when it counts nothing (an event
/// ignored before any rule was selected is counted by Lambda's own metrics).
pub fn document(outcome: &Outcome, at: DateTime<Utc>) -> Option<Value> {
    let layer = outcome.layer?.as_str();
    let rule = outcome.rule.clone()?;
    let mut values = Map::new();
    let mut metrics: Vec<(&str, &str, Vec<&str>)> = Vec::new();
    let record = outcome.record.as_ref();
    if outcome.decision == Verdict::Act
        // An action that continues is counted once, by the step that ends it.
        && let Some(record) = record
            .filter(|r| r.phase == RunPhase::Heal && r.status != HealingStatus::InProgress)
    {
        values.insert("Status".to_owned(), json!(record.status.as_str()));
        values.insert("Actions".to_owned(), json!(1));
        metrics.push(("Actions", "Count", vec!["Layer", "Rule", "Status"]));
    }
    if let Some(reason) = outcome.reason {
        values.insert("Reason".to_owned(), json!(reason.as_str()));
        values.insert("Skips".to_owned(), json!(1));
        metrics.push(("Skips", "Count", vec!["Layer", "Reason"]));
        if reason.is_deferral() {
            values.insert("Deferrals".to_owned(), json!(1));
            metrics.push(("Deferrals", "Count", vec!["Layer", "Rule"]));
            metrics.push(("Deferrals", "Count", vec![]));
        }
    }
    if outcome.escalated {
        values.insert("Escalations".to_owned(), json!(1));
        metrics.push(("Escalations", "Count", vec!["Layer", "Rule"]));
        metrics.push(("Escalations", "Count", vec![]));
    }
    if outcome.decision == Verdict::Resolve
        && let Some(seconds) = record
            .and_then(|r| r.details.get("time_to_recover_seconds"))
            .and_then(|s| s.parse::<i64>().ok())
    {
        values.insert("TimeToRecover".to_owned(), json!(seconds));
        metrics.push(("TimeToRecover", "Seconds", vec!["Layer", "Rule"]));
    }
    if metrics.is_empty() {
        return None;
    }
    let directives: Vec<Value> = metrics
        .iter()
        .map(|(name, unit, dimensions)| {
            json!({
                "Namespace": NAMESPACE,
                "Dimensions": [dimensions],
                "Metrics": [{ "Name": name, "Unit": unit }],
            })
        })
        .collect();
    values.insert("Layer".to_owned(), json!(layer));
    values.insert("Rule".to_owned(), json!(rule));
    values.insert(
        "_aws".to_owned(),
        json!({
            "Timestamp": at.timestamp_millis(),
            "CloudWatchMetrics": directives,
        }),
    );
    Some(Value::Object(values))
}
