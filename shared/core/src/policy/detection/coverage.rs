//! Whether each resource a rule protects has an alarm that reaches the rule: decided by
//! selection (`resolve`, the code `explain` and every function use) on the alarm as its
//! state-change event carries it.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::model::alarm::{ExistingAlarm, is_ec2_healing_action};
use crate::model::resource_id::ResourceKind;
use crate::model::rules::{Rule, RuleSet};
use crate::policy::genuine::{AlarmDefinition, contradicts};
use crate::policy::resolve::{Selection, select_any};

use super::event::as_event;
use super::target::Target;

/// What protects one resource from one rule's trigger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Protection {
    /// An alarm selects the rule for the resource: autoheal heals it.
    Protected { alarm: String, managed: bool },
    /// An alarm with EC2's own recover or reboot action: AWS heals it, not autoheal.
    ProtectedByAws { alarm: String },
    /// An alarm watches the resource's metric but never reaches the rule.
    Unreached { alarm: String, why: String },
    /// No alarm.
    Missing,
}

impl Protection {
    /// Whether something heals the resource.
    pub fn is_protected(&self) -> bool {
        matches!(
            self,
            Protection::Protected { .. } | Protection::ProtectedByAws { .. }
        )
    }

    pub fn label(&self) -> &'static str {
        match self {
            Protection::Protected { .. } => "protected",
            Protection::ProtectedByAws { .. } => "protected by AWS",
            Protection::Unreached { .. } => "alarm never reaches its rule",
            Protection::Missing => "missing",
        }
    }
}

/// One rule on one resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Covered {
    pub rule: String,
    pub resource: String,
    #[serde(flatten)]
    pub protection: Protection,
}

/// The coverage of every target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Coverage {
    pub entries: Vec<Covered>,
    /// Resources whose every rule is protected.
    pub protected: usize,
    /// Resources in the scope.
    pub resources: usize,
}

impl Coverage {
    /// The last line of `autoheal coverage`.
    pub fn summary(&self) -> String {
        format!(
            "{} of {} resources protected",
            self.protected, self.resources
        )
    }
}

/// The rule and resource an alarm reaches: selection on its event without tags (what every
/// event carries), and, apart, with its tags (what an event carries only when the alarm
/// propagates them).
#[derive(Debug, Default)]
struct Reached {
    /// (rule, resource) → the alarms that reach them without tags, managed or not.
    by_metric_or_name: BTreeMap<(String, String), Vec<(String, bool)>>,
    /// (rule, resource) → the alarms that reach them only through their tags.
    by_tag_only: BTreeMap<(String, String), Vec<String>>,
    /// Instance id → alarms with an EC2 healing action on its metrics.
    by_aws: BTreeMap<String, Vec<String>>,
    /// Alarm index → why it reaches no rule (or another one), without tags.
    why_not: Vec<String>,
}

/// What each existing alarm reaches.
fn reached(rules: &RuleSet, existing: &[ExistingAlarm]) -> Reached {
    let mut reached = Reached::default();
    for alarm in existing {
        let composite = alarm.composite_rule.as_deref();
        let plain = as_event(&alarm.alarm, &alarm.arn, composite, None)
            .map(|event| select_any(rules, &event).1);
        // An alarm that fires the opposite way to the rule's trigger is refused when it fires
        // (`opposite-direction`): it protects nothing.
        let contradiction = match &plain {
            Some(Selection::Matched { rule, .. }) => opposite(rule, alarm, composite),
            _ => None,
        };
        let why = match (&plain, contradiction) {
            (_, Some(contradiction)) => contradiction,
            (Some(Selection::Matched { rule, resource_id }), None) => {
                reached
                    .by_metric_or_name
                    .entry((rule.name.clone(), resource_id.clone()))
                    .or_default()
                    .push((alarm.alarm.name.clone(), alarm.is_managed()));
                format!("it selects rule `{}` for `{resource_id}`", rule.name)
            }
            (Some(other), None) => match other.clone().into_match() {
                Err(not) => not.detail,
                Ok(_) => String::new(),
            },
            (None, None) => "CloudWatch could not send an event for it".to_owned(),
        };
        reached.why_not.push(why);
        if !matches!(plain, Some(Selection::Matched { .. }))
            && let Some(event) = as_event(&alarm.alarm, &alarm.arn, composite, Some(&alarm.tags))
            && let Selection::Matched { rule, resource_id } = select_any(rules, &event).1
        {
            reached
                .by_tag_only
                .entry((rule.name.clone(), resource_id))
                .or_default()
                .push(alarm.alarm.name.clone());
        }
        if alarm.alarm.actions.iter().any(|a| is_ec2_healing_action(a)) {
            for metric in &alarm.alarm.metrics {
                if metric.namespace == "AWS/EC2"
                    && let Some(instance) = metric.dimensions.get("InstanceId")
                {
                    reached
                        .by_aws
                        .entry(instance.clone())
                        .or_default()
                        .push(alarm.alarm.name.clone());
                }
            }
        }
    }
    reached
}

/// Why `alarm` fires the opposite way to `rule`'s trigger, if it does (see
/// `genuine::contradicts`).
fn opposite(rule: &Rule, alarm: &ExistingAlarm, composite: Option<&str>) -> Option<String> {
    if composite.is_some() {
        return None;
    }
    let spec = rule.alarm.as_ref()?;
    let watches = as_event(&alarm.alarm, &alarm.arn, None, None)?.kind;
    let held = AlarmDefinition {
        watches,
        comparison: Some(alarm.alarm.comparison.clone()),
    };
    contradicts(spec, &held)
}

/// The coverage of `targets` by `existing` alarms.
pub fn coverage(rules: &RuleSet, targets: &[Target], existing: &[ExistingAlarm]) -> Coverage {
    let reached = reached(rules, existing);
    // Alarms by the metric they watch: (namespace, metric) → alarm indexes.
    let mut by_metric: BTreeMap<(&str, &str), BTreeSet<usize>> = BTreeMap::new();
    for (index, alarm) in existing.iter().enumerate() {
        for metric in &alarm.alarm.metrics {
            by_metric
                .entry((metric.namespace.as_str(), metric.name.as_str()))
                .or_default()
                .insert(index);
        }
    }
    let mut entries = Vec::with_capacity(targets.len());
    let mut resources: BTreeMap<(Option<ResourceKind>, String), bool> = BTreeMap::new();
    for target in targets {
        let rule = rules.get(&target.rule);
        let key = (target.rule.clone(), target.resource.clone());
        // EC2's own action first: that resource is healed by AWS, and autoheal stays out.
        let protection = if let Some(alarm) = rule
            .filter(|rule| rule.action.resource_kind() == ResourceKind::Ec2Instance)
            .filter(|_| target.namespace == "AWS/EC2")
            .and_then(|_| reached.by_aws.get(&target.resource))
            .and_then(|alarms| alarms.first())
        {
            Protection::ProtectedByAws {
                alarm: alarm.clone(),
            }
        } else if let Some(alarms) = reached.by_metric_or_name.get(&key) {
            // A person's alarm first: it is the one that makes autoheal's own redundant.
            let (alarm, managed) = alarms
                .iter()
                .find(|(_, managed)| !managed)
                .unwrap_or(&alarms[0]);
            Protection::Protected {
                alarm: alarm.clone(),
                managed: *managed,
            }
        } else if let Some(alarm) = reached.by_tag_only.get(&key).and_then(|a| a.first()) {
            Protection::Unreached {
                alarm: alarm.clone(),
                why: "only its `autoheal:rule` tag selects the rule, and its state-change events carry tags only when the alarm propagates them".to_owned(),
            }
        } else {
            unreached(rules, target, existing, &by_metric, &reached.why_not)
                .unwrap_or(Protection::Missing)
        };
        let kind = rule.map(|rule| rule.action.resource_kind());
        let protected = resources
            .entry((kind, target.resource.clone()))
            .or_insert(true);
        *protected &= protection.is_protected();
        entries.push(Covered {
            rule: target.rule.clone(),
            resource: target.resource.clone(),
            protection,
        });
    }
    Coverage {
        entries,
        protected: resources.values().filter(|protected| **protected).count(),
        resources: resources.len(),
    }
}

/// An alarm on the target's metric (the rule's alarm metric or one of its trigger's, with
/// the resource's dimensions) that does not reach the rule, and why.
fn unreached(
    rules: &RuleSet,
    target: &Target,
    existing: &[ExistingAlarm],
    by_metric: &BTreeMap<(&str, &str), BTreeSet<usize>>,
    why_not: &[String],
) -> Option<Protection> {
    let rule = rules.get(&target.rule)?;
    let identifying: Vec<(&String, &String)> = rule
        .resource
        .dimension_names()
        .iter()
        .filter_map(|name| target.dimensions.get_key_value(name))
        .collect();
    if identifying.is_empty() {
        return None;
    }
    let mut names: Vec<&str> = rule.trigger.metrics.iter().map(String::as_str).collect();
    if let Some(alarm) = &rule.alarm {
        names.push(&alarm.metric);
    }
    let index = names
        .into_iter()
        .filter_map(|name| by_metric.get(&(target.namespace.as_str(), name)))
        .flatten()
        .copied()
        .find(|&index| {
            existing[index].alarm.metrics.iter().any(|metric| {
                metric.namespace == target.namespace
                    && identifying
                        .iter()
                        .all(|(name, value)| metric.dimensions.get(*name) == Some(value))
            })
        })?;
    Some(Protection::Unreached {
        alarm: existing[index].alarm.name.clone(),
        why: why_not.get(index).cloned().unwrap_or_default(),
    })
}
