//! The alarm a rule needs on one resource, as autoheal creates it: named `<rule>-<resource>`,
//! tagged as autoheal's own, watching the rule's metric with the resource's dimensions.

use std::collections::BTreeMap;

use crate::model::alarm::{MANAGED_TAG, MetricAlarm, RESOURCE_TAG, WatchedMetric};
use crate::model::event::MAX_ALARM_NAME_CHARS;
use crate::model::rules::Rule;
use crate::policy::resolve::RULE_TAG;

use super::target::Target;

/// An alarm autoheal wants to exist, with the tags it creates it with.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DesiredAlarm {
    pub rule: String,
    pub resource: String,
    pub alarm: MetricAlarm,
    pub tags: BTreeMap<String, String>,
}

/// The name of the alarm a rule needs on a resource: `<rule>-<resource>` (an ARN by its last
/// part), then the values of any other dimension the metric is published with (an
/// application's `Dependency`, say), so that each series has its own alarm. At most the 255
/// characters CloudWatch allows.
pub fn alarm_name(rule: &Rule, target: &Target) -> String {
    let resource = target
        .resource
        .rsplit_once(':')
        .map_or(target.resource.as_str(), |(_, last)| last);
    let mut name = format!("{}-{resource}", rule.name);
    let own = rule.alarm_dimensions().unwrap_or_default();
    for (dimension, value) in &target.dimensions {
        if !own.contains(dimension) {
            name.push('-');
            name.push_str(value);
        }
    }
    let name: String = name.chars().filter(|c| !c.is_control()).collect();
    name.chars().take(MAX_ALARM_NAME_CHARS).collect()
}

/// The alarm `rule` needs on `target`, notifying `actions` (the stack's topic, or none).
/// `None` when the rule has no alarm.
pub fn desired_alarm(rule: &Rule, target: &Target, actions: &[String]) -> Option<DesiredAlarm> {
    let spec = rule.alarm.as_ref()?;
    let metric = |id: &str, name: &str| WatchedMetric {
        id: id.to_owned(),
        namespace: target.namespace.clone(),
        name: name.to_owned(),
        dimensions: target.dimensions.clone(),
        statistic: spec.statistic.clone(),
        period_seconds: spec.period_seconds,
    };
    let (metrics, expression) = match (&spec.minus, &spec.divided_by) {
        (Some(minus), _) => (
            vec![metric("m1", &spec.metric), metric("m2", minus)],
            Some("m1 - m2".to_owned()),
        ),
        (None, Some(divisor)) => (
            vec![metric("m1", &spec.metric), metric("m2", divisor)],
            Some("100 * m1 / m2".to_owned()),
        ),
        (None, None) => (vec![metric("m1", &spec.metric)], None),
    };
    let tags = BTreeMap::from([
        (RULE_TAG.to_owned(), rule.name.clone()),
        (MANAGED_TAG.to_owned(), "true".to_owned()),
        (RESOURCE_TAG.to_owned(), target.resource.clone()),
    ]);
    Some(DesiredAlarm {
        rule: rule.name.clone(),
        resource: target.resource.clone(),
        alarm: MetricAlarm {
            name: alarm_name(rule, target),
            description: description(rule, &target.resource),
            metrics,
            expression,
            evaluation_periods: spec.evaluation_periods,
            datapoints_to_alarm: spec.datapoints(),
            threshold: spec.threshold,
            comparison: spec.comparison.as_str().to_owned(),
            missing_data: spec.missing_data.as_str().to_owned(),
            actions: actions.to_vec(),
        },
        tags,
    })
}

/// What the alarm is for, and that autoheal keeps it (CloudWatch allows 1024 characters).
fn description(rule: &Rule, resource: &str) -> String {
    let text = format!(
        "autoheal ({}): detects the trigger of rule {} on {resource}. Created and kept by autoheal (autoheal alarms apply): a change is put back; opt the resource out with the tag autoheal:disabled=true.",
        rule.layer, rule.name
    );
    text.chars().take(1024).collect()
}

/// What differs between the alarm autoheal wants and the one that exists, field by field
/// (`threshold 1 -> 5`); empty when they are the same. Actions are compared as sets.
pub fn differences(desired: &MetricAlarm, existing: &MetricAlarm) -> Vec<String> {
    let mut found = Vec::new();
    let mut compare = |field: &str, want: String, have: String| {
        if want != have {
            found.push(format!("{field} {have} -> {want}"));
        }
    };
    compare(
        "metrics",
        describe_metrics(&desired.metrics),
        describe_metrics(&existing.metrics),
    );
    compare(
        "expression",
        desired.expression.clone().unwrap_or_default(),
        existing.expression.clone().unwrap_or_default(),
    );
    compare(
        "evaluation_periods",
        desired.evaluation_periods.to_string(),
        existing.evaluation_periods.to_string(),
    );
    compare(
        "datapoints_to_alarm",
        desired.datapoints_to_alarm.to_string(),
        existing.datapoints_to_alarm.to_string(),
    );
    compare(
        "threshold",
        desired.threshold.to_string(),
        existing.threshold.to_string(),
    );
    compare(
        "comparison",
        desired.comparison.clone(),
        existing.comparison.clone(),
    );
    compare(
        "missing_data",
        desired.missing_data.clone(),
        existing.missing_data.clone(),
    );
    let sorted = |actions: &[String]| {
        let mut actions = actions.to_vec();
        actions.sort();
        actions.dedup();
        format!("[{}]", actions.join(", "))
    };
    compare(
        "actions",
        sorted(&desired.actions),
        sorted(&existing.actions),
    );
    compare(
        "description",
        desired.description.clone(),
        existing.description.clone(),
    );
    found
}

fn describe_metrics(metrics: &[WatchedMetric]) -> String {
    let mut described: Vec<String> = metrics
        .iter()
        .map(|metric| {
            let dimensions: Vec<String> = metric
                .dimensions
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect();
            format!(
                "{}:{}/{}[{}]{}@{}s",
                metric.id,
                metric.namespace,
                metric.name,
                dimensions.join(","),
                metric.statistic,
                metric.period_seconds
            )
        })
        .collect();
    described.sort();
    described.join(" ")
}
