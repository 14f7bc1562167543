//! The validation that turns the rules file as written into rules, or into every problem
//! found, each with its line.

use std::collections::HashSet;

use super::diagnostics::{RuleHeaders, RuleProblem, RulesError, parameter_line, parse_raw};
use super::raw::RawFile;
use super::rule::{Policy, ResourceSelector, Rule, Trigger, placeholders};
use crate::model::limits::{GroupGuard, Limit};

/// The largest rules file read. The shipped file is about 10 KiB; a file many times that is
/// not a rules file anyone maintains, and refusing it bounds the work of parsing it.
pub const MAX_RULES_BYTES: usize = 256 * 1024;

/// The functions' timeout (`template.yaml`, `Globals.Function.Timeout`). A rule's lease must
/// last at least this long, so that a claim never ends under a live invocation.
pub const FUNCTION_TIMEOUT_SECONDS: u64 = 300;

/// Parses and validates a rules file.
pub(super) fn from_toml(text: &str) -> Result<Vec<Rule>, RulesError> {
    if text.len() > MAX_RULES_BYTES {
        return Err(RulesError {
            problems: vec![RuleProblem {
                line: None,
                rule: None,
                field: None,
                message: format!(
                    "the rules file has {} bytes, more than the {MAX_RULES_BYTES} a rules file may have",
                    text.len()
                ),
            }],
        });
    }
    let headers = RuleHeaders::scan(text);
    let raw: RawFile = parse_raw(text, &headers)?;
    let defaults = raw.defaults.unwrap_or_default();
    let mut problems = Vec::new();
    let mut seen = HashSet::new();
    let mut rules = Vec::with_capacity(raw.rule.len());
    for (index, raw_rule) in raw.rule.into_iter().enumerate() {
        let line = headers.line_of(index);
        let label = if raw_rule.name.trim().is_empty() {
            format!("rule #{}", index + 1)
        } else {
            raw_rule.name.clone()
        };
        let rule = Rule {
            name: raw_rule.name,
            description: raw_rule.description,
            layer: raw_rule.layer,
            enabled: raw_rule.enabled,
            mode: raw_rule.mode,
            trigger: raw_rule.trigger,
            resource: raw_rule.resource,
            action: raw_rule.action,
            alarm: raw_rule.alarm,
            policy: Policy {
                cooldown_seconds: raw_rule.cooldown_seconds,
                max_attempts: raw_rule.max_attempts,
                stable_period_seconds: raw_rule
                    .stable_period_seconds
                    .unwrap_or(defaults.stable_period_seconds),
                backoff_max_seconds: raw_rule
                    .backoff_max_seconds
                    .unwrap_or(defaults.backoff_max_seconds),
                lease_seconds: raw_rule.lease_seconds.unwrap_or(defaults.lease_seconds),
                budget: Limit {
                    limit: raw_rule
                        .max_actions_per_window
                        .unwrap_or(defaults.max_actions_per_window),
                    window_seconds: raw_rule
                        .budget_window_seconds
                        .unwrap_or(defaults.budget_window_seconds),
                },
                group_guard: GroupGuard {
                    max_healing_percent: raw_rule
                        .max_healing_percent
                        .unwrap_or(defaults.max_healing_percent),
                    max_unhealthy_percent: raw_rule
                        .max_unhealthy_percent
                        .unwrap_or(defaults.max_unhealthy_percent),
                },
                max_wait_seconds: raw_rule
                    .max_wait_seconds
                    .unwrap_or(defaults.max_wait_seconds),
            },
        };
        problems.extend(
            rule_problems(&rule, &mut seen)
                .into_iter()
                .map(|(field, message)| RuleProblem {
                    // A wrong action parameter (`action.grow_by`) is named on its own line
                    // when the file writes it; everything else on the rule's header.
                    line: field
                        .split_once('.')
                        .filter(|(table, _)| matches!(*table, "action" | "alarm"))
                        .and_then(|(table, key)| parameter_line(text, &headers, index, table, key))
                        .or(line),
                    rule: Some(label.clone()),
                    field: Some(field.to_owned()),
                    message,
                }),
        );
        rules.push(rule);
    }
    if problems.is_empty() {
        Ok(rules)
    } else {
        Err(RulesError { problems })
    }
}

/// Validates rules built in code, as a rules file's are (without lines), in the given order.
/// Unlike a file, their number is not bounded.
pub(super) fn from_rules(rules: Vec<Rule>) -> Result<Vec<Rule>, RulesError> {
    let mut problems = Vec::new();
    let mut seen = HashSet::new();
    for (index, rule) in rules.iter().enumerate() {
        let label = if rule.name.trim().is_empty() {
            format!("rule #{}", index + 1)
        } else {
            rule.name.clone()
        };
        problems.extend(
            rule_problems(rule, &mut seen)
                .into_iter()
                .map(|(field, message)| RuleProblem {
                    line: None,
                    rule: Some(label.clone()),
                    field: Some(field.to_owned()),
                    message,
                }),
        );
    }
    if problems.is_empty() {
        Ok(rules)
    } else {
        Err(RulesError { problems })
    }
}

/// Everything wrong with one rule, as (field, message) pairs; `seen` holds the names of the
/// rules before it.
fn rule_problems(rule: &Rule, seen: &mut HashSet<String>) -> Vec<(&'static str, String)> {
    let mut problems = Vec::new();
    if !is_rule_name(&rule.name) {
        problems.push((
            "name",
            "must be lower-case letters, digits and dashes, starting with a letter".to_owned(),
        ));
    } else if !seen.insert(rule.name.clone()) {
        problems.push(("name", "duplicate rule name".to_owned()));
    }
    let policy = &rule.policy;
    if policy.max_attempts == 0 {
        problems.push(("max_attempts", "must be at least 1".to_owned()));
    }
    if rule.action.layer() != rule.layer {
        problems.push((
            "action.type",
            format!(
                "`{}` is a {} action, but the rule is in the {} layer",
                rule.action.kind(),
                rule.action.layer(),
                rule.layer
            ),
        ));
    }
    problems.extend(rule.action.problems());
    problems.extend(trigger_problems(&rule.trigger));
    problems.extend(resource_problems(&rule.resource));
    if let Some(alarm) = &rule.alarm {
        problems.extend(alarm.problems(&rule.name, &rule.trigger, &rule.resource));
    }
    if policy.lease_seconds < FUNCTION_TIMEOUT_SECONDS {
        problems.push((
            "lease_seconds",
            format!(
                "must be at least {FUNCTION_TIMEOUT_SECONDS} (the functions' timeout): a shorter \
                 lease could end under a live invocation, and a redelivered event would take \
                 over an action under way"
            ),
        ));
    }
    if policy.budget.limit == 0 {
        problems.push((
            "max_actions_per_window",
            "must be at least 1 (a rule that must never act is `enabled = false`)".to_owned(),
        ));
    }
    if policy.budget.window_seconds == 0 {
        problems.push(("budget_window_seconds", "must be at least 1".to_owned()));
    }
    for (field, percent) in [
        (
            "max_healing_percent",
            policy.group_guard.max_healing_percent,
        ),
        (
            "max_unhealthy_percent",
            policy.group_guard.max_unhealthy_percent,
        ),
    ] {
        if !(1..=100).contains(&percent) {
            problems.push((
                field,
                format!("must be a percentage from 1 to 100, not {percent}"),
            ));
        }
    }
    problems
}

fn is_rule_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn trigger_problems(trigger: &Trigger) -> Vec<(&'static str, String)> {
    let mut problems = Vec::new();
    if trigger.namespace.is_none() && trigger.alarm_name_prefixes.is_empty() {
        problems.push((
            "trigger",
            "needs a `namespace` or at least one of `alarm_name_prefixes`".to_owned(),
        ));
    }
    if trigger
        .namespace
        .as_deref()
        .is_some_and(|ns| ns.trim().is_empty())
    {
        problems.push(("trigger.namespace", "must not be empty".to_owned()));
    }
    if trigger.namespace.is_none()
        && (!trigger.metrics.is_empty() || !trigger.dimensions.is_empty())
    {
        problems.push((
            "trigger.namespace",
            "is required when `metrics` or `dimensions` are given".to_owned(),
        ));
    }
    for (field, values) in [
        ("trigger.metrics", &trigger.metrics),
        ("trigger.dimensions", &trigger.dimensions),
        ("trigger.alarm_name_prefixes", &trigger.alarm_name_prefixes),
    ] {
        if values.iter().any(|value| value.trim().is_empty()) {
            problems.push((field, "must not contain an empty string".to_owned()));
        }
    }
    problems
}

fn resource_problems(resource: &ResourceSelector) -> Vec<(&'static str, String)> {
    let set = [
        resource.dimension.is_some(),
        resource.template.is_some(),
        resource.alarm_tag.is_some(),
    ]
    .into_iter()
    .filter(|set| *set)
    .count();
    let mut problems = Vec::new();
    if set != 1 {
        problems.push((
            "resource",
            "needs exactly one of `dimension`, `template` or `alarm_tag`".to_owned(),
        ));
    }
    for (field, value) in [
        ("resource.dimension", &resource.dimension),
        ("resource.alarm_tag", &resource.alarm_tag),
    ] {
        if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
            problems.push((field, "must not be empty".to_owned()));
        }
    }
    if let Some(template) = &resource.template {
        match placeholders(template) {
            Ok(names) if names.is_empty() => problems.push((
                "resource.template",
                "must name at least one `{placeholder}`".to_owned(),
            )),
            Ok(_) => {}
            Err(message) => problems.push(("resource.template", message)),
        }
    }
    problems
}
