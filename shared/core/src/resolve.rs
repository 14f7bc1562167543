//! Which rule an alarm event selects, and which resource that rule heals.

use std::collections::BTreeSet;

use crate::event::{AlarmEvent, MetricRef};
use crate::layer::Layer;
use crate::record::SkipReason;
use crate::rules::{ResourceSelector, Rule, RuleSet, Trigger};

/// The alarm tag that names a rule explicitly, overriding metric and name matching.
pub const RULE_TAG: &str = "autoheal:rule";

/// What the rules say about one event, for one layer's function.
#[derive(Debug, Clone, PartialEq)]
pub enum Selection<'r> {
    /// A rule of this layer applies, and its resource is known.
    Matched { rule: &'r Rule, resource_id: String },
    /// A rule of this layer applies but its resource cannot be named safely.
    Unresolved {
        rule: &'r Rule,
        reason: SkipReason,
        detail: String,
    },
    /// Only disabled rules of this layer apply.
    Disabled { rule: &'r Rule },
    /// The event belongs to a rule of another layer: never acted on here.
    OtherLayer { rule: &'r Rule },
    /// No rule applies.
    NoMatch { detail: String },
}

/// Why an event leads to no decision, and the rule it concerns, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct NotSelected<'r> {
    pub rule: Option<&'r Rule>,
    pub reason: SkipReason,
    pub detail: String,
}

impl<'r> Selection<'r> {
    /// The rule and resource to decide on, or why there are none.
    pub fn into_match(self) -> Result<(&'r Rule, String), NotSelected<'r>> {
        let (rule, reason, detail) = match self {
            Selection::Matched { rule, resource_id } => return Ok((rule, resource_id)),
            Selection::Unresolved {
                rule,
                reason,
                detail,
            } => (Some(rule), reason, detail),
            Selection::Disabled { rule } => (
                Some(rule),
                SkipReason::RuleDisabled,
                format!("rule `{}` is disabled", rule.name),
            ),
            Selection::OtherLayer { rule } => (
                Some(rule),
                SkipReason::OtherLayer,
                format!("rule `{}` belongs to the {} layer", rule.name, rule.layer),
            ),
            Selection::NoMatch { detail } => (None, SkipReason::NoMatchingRule, detail),
        };
        Err(NotSelected {
            rule,
            reason,
            detail,
        })
    }
}

impl Selection<'_> {
    pub fn rule(&self) -> Option<&Rule> {
        match self {
            Selection::Matched { rule, .. }
            | Selection::Unresolved { rule, .. }
            | Selection::Disabled { rule }
            | Selection::OtherLayer { rule } => Some(rule),
            Selection::NoMatch { .. } => None,
        }
    }
}

/// Selects the rule for `event` as seen by `layer`'s function. Rules are tried in file order
/// and the first enabled rule of this layer wins, so overlapping rules stay predictable.
pub fn select<'r>(rules: &'r RuleSet, event: &AlarmEvent, layer: Layer) -> Selection<'r> {
    let candidates: Vec<&Rule> = match event.alarm_tags.get(RULE_TAG) {
        Some(name) => match rules.get(name) {
            Some(rule) => vec![rule],
            None => {
                return Selection::NoMatch {
                    detail: format!("the alarm's `{RULE_TAG}` tag names unknown rule `{name}`"),
                };
            }
        },
        None => rules
            .rules()
            .iter()
            .filter(|rule| triggers(&rule.trigger, event))
            .collect(),
    };
    let mut disabled = None;
    for rule in candidates
        .iter()
        .copied()
        .filter(|rule| rule.layer == layer)
    {
        if !rule.enabled {
            disabled.get_or_insert(rule);
            continue;
        }
        return match resolve_resource(rule, event) {
            Ok(resource_id) => Selection::Matched { rule, resource_id },
            Err((reason, detail)) => Selection::Unresolved {
                rule,
                reason,
                detail,
            },
        };
    }
    if let Some(rule) = disabled {
        return Selection::Disabled { rule };
    }
    if let Some(rule) = candidates.first() {
        return Selection::OtherLayer { rule };
    }
    Selection::NoMatch {
        detail: format!(
            "no rule matches {} alarm `{}`{}",
            event.kind.label(),
            event.alarm_name,
            describe_metrics(event.kind.metrics())
        ),
    }
}

/// Selects the rule for `event` in whichever layer it belongs to (for `explain` and `invoke`).
pub fn select_any<'r>(rules: &'r RuleSet, event: &AlarmEvent) -> (Option<Layer>, Selection<'r>) {
    let mut disabled = None;
    let mut no_match = None;
    for layer in Layer::ALL {
        match select(rules, event, layer) {
            selection @ (Selection::Matched { .. } | Selection::Unresolved { .. }) => {
                return (Some(layer), selection);
            }
            selection @ Selection::Disabled { .. } => {
                disabled.get_or_insert((Some(layer), selection));
            }
            Selection::OtherLayer { .. } => {}
            selection @ Selection::NoMatch { .. } => {
                no_match.get_or_insert((None, selection));
            }
        }
    }
    // A disabled rule only speaks for the event when no enabled rule of any layer does.
    disabled.or(no_match).unwrap_or((
        None,
        Selection::NoMatch {
            detail: "no rule matches".to_owned(),
        },
    ))
}

fn describe_metrics(metrics: &[MetricRef]) -> String {
    if metrics.is_empty() {
        return String::new();
    }
    let names: Vec<String> = metrics
        .iter()
        .map(|m| {
            let dims: Vec<&str> = m.dimensions.keys().map(String::as_str).collect();
            format!("{}/{} [{}]", m.namespace, m.name, dims.join(","))
        })
        .collect();
    format!(" on {}", names.join("; "))
}

/// Whether a metric satisfies the trigger's metric selector.
fn metric_matches(trigger: &Trigger, metric: &MetricRef) -> bool {
    trigger.namespace.as_deref() == Some(metric.namespace.as_str())
        && (trigger.metrics.is_empty() || trigger.metrics.contains(&metric.name))
        && trigger
            .dimensions
            .iter()
            .all(|d| metric.dimensions.contains_key(d))
}

fn triggers(trigger: &Trigger, event: &AlarmEvent) -> bool {
    trigger
        .alarm_name_prefixes
        .iter()
        .any(|prefix| event.alarm_name.starts_with(prefix.as_str()))
        || event
            .kind
            .metrics()
            .iter()
            .any(|metric| metric_matches(trigger, metric))
}

/// The metrics a rule reads dimensions from: those it matched on, or all when it matched by
/// name or tag.
fn relevant_metrics<'e>(rule: &Rule, event: &'e AlarmEvent) -> Vec<&'e MetricRef> {
    let matched: Vec<&MetricRef> = event
        .kind
        .metrics()
        .iter()
        .filter(|metric| metric_matches(&rule.trigger, metric))
        .collect();
    if matched.is_empty() {
        event.kind.metrics().iter().collect()
    } else {
        matched
    }
}

fn dimension_value(name: &str, metrics: &[&MetricRef]) -> Result<String, (SkipReason, String)> {
    let values: BTreeSet<&str> = metrics
        .iter()
        .filter_map(|metric| metric.dimensions.get(name))
        .map(|value| value.trim())
        .collect();
    let mut values = values.into_iter();
    match (values.next(), values.next()) {
        (None, _) => Err((
            SkipReason::ResourceUnresolved,
            format!("the alarm's metrics have no `{name}` dimension"),
        )),
        (Some(""), None) => Err((
            SkipReason::EmptyResourceId,
            format!("the `{name}` dimension is empty"),
        )),
        (Some(value), None) => Ok(value.to_owned()),
        (Some(first), Some(second)) => Err((
            SkipReason::AmbiguousResource,
            format!("the `{name}` dimension has several values (`{first}`, `{second}`)"),
        )),
    }
}

/// Names the resource a rule heals, or says why it cannot be named safely.
pub fn resolve_resource(rule: &Rule, event: &AlarmEvent) -> Result<String, (SkipReason, String)> {
    let metrics = relevant_metrics(rule, event);
    let ResourceSelector {
        dimension,
        template,
        alarm_tag,
    } = &rule.resource;
    let id = if let Some(name) = dimension {
        dimension_value(name, &metrics)?
    } else if let Some(tag) = alarm_tag {
        match event.alarm_tags.get(tag).map(|value| value.trim()) {
            None => {
                return Err((
                    SkipReason::ResourceUnresolved,
                    format!("the alarm has no `{tag}` tag"),
                ));
            }
            Some("") => {
                return Err((
                    SkipReason::EmptyResourceId,
                    format!("the alarm's `{tag}` tag is empty"),
                ));
            }
            Some(value) => value.to_owned(),
        }
    } else if let Some(template) = template {
        render_template(template, event, &metrics)?
    } else {
        return Err((
            SkipReason::ResourceUnresolved,
            "the rule names no resource selector".to_owned(),
        ));
    };
    if id.is_empty() {
        return Err((
            SkipReason::EmptyResourceId,
            "the resource id is empty".to_owned(),
        ));
    }
    Ok(id)
}

fn render_template(
    template: &str,
    event: &AlarmEvent,
    metrics: &[&MetricRef],
) -> Result<String, (SkipReason, String)> {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after.find('}').ok_or((
            SkipReason::ResourceUnresolved,
            "unclosed `{` in the resource template".to_owned(),
        ))?;
        let name = &after[..close];
        let value = match name {
            "aws.region" => event.region.clone().unwrap_or_default(),
            "aws.account" => event.account.clone().unwrap_or_default(),
            dimension => dimension_value(dimension, metrics)?,
        };
        if value.trim().is_empty() {
            return Err((
                SkipReason::EmptyResourceId,
                format!("`{{{name}}}` in the resource template is empty"),
            ));
        }
        out.push_str(&value);
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The placeholder names of a resource template, or what is wrong with it.
pub fn placeholders(template: &str) -> Result<Vec<&str>, String> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| "has an unclosed `{`".to_owned())?;
        let name = &after[..close];
        if name.is_empty() || name.contains('{') {
            return Err(format!("has an invalid placeholder `{{{name}}}`"));
        }
        names.push(name);
        rest = &after[close + 1..];
    }
    if rest.contains('}') {
        return Err("has an unmatched `}`".to_owned());
    }
    Ok(names)
}
