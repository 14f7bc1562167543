//! Which rule an alarm event selects, and which resource that rule heals.

use std::collections::BTreeSet;

use crate::model::event::{AlarmEvent, MetricRef};
use crate::model::layer::Layer;
use crate::model::record::SkipReason;
use crate::model::resource_id;
use crate::model::rules::index::Position;
use crate::model::rules::{ResourceSelector, Rule, RuleSet, Trigger};

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

impl<'r> Selection<'r> {
    pub fn rule(&self) -> Option<&'r Rule> {
        match self {
            Selection::Matched { rule, .. }
            | Selection::Unresolved { rule, .. }
            | Selection::Disabled { rule }
            | Selection::OtherLayer { rule } => Some(rule),
            Selection::NoMatch { .. } => None,
        }
    }
}

/// How an alarm selected its rule, from the most explicit to the least.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SelectedBy {
    /// The alarm's `autoheal:rule` tag names the rule.
    Tag,
    /// The alarm's name starts with one of the rule's `alarm_name_prefixes`.
    AlarmName,
    /// One of the alarm's metrics matches the rule's namespace, metrics and dimensions.
    Metric,
}

/// Selects the one rule `event` belongs to, whichever function receives it: every layer's
/// function computes the same answer, so an alarm routed to two functions is acted on by one.
///
/// The most explicit selector that matches any rule decides: the `autoheal:rule` tag, then an
/// alarm-name prefix (an operator's naming choice), then the metric. Within that tier rules
/// are tried in file order and the first enabled one wins; when all of them are disabled the
/// event is the disabled rule's, and no less explicit rule takes it over.
pub fn select_any<'r>(rules: &'r RuleSet, event: &AlarmEvent) -> (Option<Layer>, Selection<'r>) {
    let selection = select_global(rules, event);
    (selection.rule().map(|rule| rule.layer), selection)
}

/// Selects the rule for `event` as `layer`'s function sees it: the global selection, and
/// `OtherLayer` when that rule belongs to another layer (which is never acted on here).
pub fn select<'r>(rules: &'r RuleSet, event: &AlarmEvent, layer: Layer) -> Selection<'r> {
    match select_global(rules, event) {
        selection @ Selection::NoMatch { .. } => selection,
        selection => match selection.rule() {
            Some(rule) if rule.layer != layer => Selection::OtherLayer { rule },
            _ => selection,
        },
    }
}

/// The rules `event` selects, in file order, and how: only the most explicit tier that
/// matches anything.
///
/// The rule set's index (built when it was loaded) finds the rules that may match without
/// trying every rule; each is still checked against its own trigger here.
pub fn candidates<'r>(
    rules: &'r RuleSet,
    event: &AlarmEvent,
) -> (Option<SelectedBy>, Vec<&'r Rule>) {
    if let Some(name) = event.alarm_tags.get(RULE_TAG) {
        return (
            Some(SelectedBy::Tag),
            rules.get(name.trim()).into_iter().collect(),
        );
    }
    let mut found = Vec::new();
    rules.index().by_alarm_name(&event.alarm_name, &mut found);
    let by_name = in_file_order(rules, found, |rule| {
        name_matches(&rule.trigger, &event.alarm_name)
    });
    if !by_name.is_empty() {
        return (Some(SelectedBy::AlarmName), by_name);
    }
    let metrics = event.kind.metrics();
    let mut found = Vec::new();
    for metric in metrics {
        rules
            .index()
            .by_metric(&metric.namespace, &metric.name, &mut found);
    }
    let by_metric = in_file_order(rules, found, |rule| {
        metrics.iter().any(|metric| selects(rule, metric))
    });
    if by_metric.is_empty() {
        (None, by_metric)
    } else {
        (Some(SelectedBy::Metric), by_metric)
    }
}

/// The rules at `positions` (in any order, possibly repeated) that satisfy `matches`, once
/// each, in file order.
fn in_file_order(
    rules: &RuleSet,
    mut positions: Vec<Position>,
    matches: impl Fn(&Rule) -> bool,
) -> Vec<&Rule> {
    positions.sort_unstable();
    positions.dedup();
    positions
        .into_iter()
        .filter_map(|position| rules.rules().get(position))
        .filter(|rule| matches(rule))
        .collect()
}

fn select_global<'r>(rules: &'r RuleSet, event: &AlarmEvent) -> Selection<'r> {
    let (by, candidates) = candidates(rules, event);
    if by == Some(SelectedBy::Tag) && candidates.is_empty() {
        let name = event
            .alarm_tags
            .get(RULE_TAG)
            .map_or("", |name| name.trim());
        return Selection::NoMatch {
            detail: format!("the alarm's `{RULE_TAG}` tag names unknown rule `{name}`"),
        };
    }
    let Some(first) = candidates.first().copied() else {
        return Selection::NoMatch {
            detail: format!(
                "no rule matches {} alarm `{}`{}",
                event.kind.label(),
                event.alarm_name,
                describe_metrics(event.kind.metrics())
            ),
        };
    };
    match candidates.into_iter().find(|rule| rule.enabled) {
        Some(rule) => match resolve_resource(rule, event) {
            Ok(resource_id) => Selection::Matched { rule, resource_id },
            Err((reason, detail)) => Selection::Unresolved {
                rule,
                reason,
                detail,
            },
        },
        None => Selection::Disabled { rule: first },
    }
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

/// Whether a metric selects the rule: it satisfies the trigger, and it watches what the
/// rule's action heals (see [`Action::foreign_target`](crate::model::rules::Action::foreign_target)).
fn selects(rule: &Rule, metric: &MetricRef) -> bool {
    metric_matches(&rule.trigger, metric) && rule.action.foreign_target(metric).is_none()
}

fn name_matches(trigger: &Trigger, alarm_name: &str) -> bool {
    trigger
        .alarm_name_prefixes
        .iter()
        .any(|prefix| alarm_name.starts_with(prefix.as_str()))
}

/// The metrics a rule reads dimensions from: those it matched on, or all when it matched by
/// name or tag; never one that watches a part of the resource the rule's action does not
/// heal (then the alarm names nothing the rule heals).
fn relevant_metrics<'e>(
    rule: &Rule,
    event: &'e AlarmEvent,
) -> Result<Vec<&'e MetricRef>, (SkipReason, String)> {
    let metrics = event.kind.metrics();
    let matched: Vec<&MetricRef> = metrics
        .iter()
        .filter(|metric| selects(rule, metric))
        .collect();
    if !matched.is_empty() {
        return Ok(matched);
    }
    let own: Vec<&MetricRef> = metrics
        .iter()
        .filter(|metric| rule.action.foreign_target(metric).is_none())
        .collect();
    match metrics
        .iter()
        .find_map(|metric| rule.action.foreign_target(metric))
    {
        Some(foreign) if own.is_empty() => Err((SkipReason::OtherTarget, foreign)),
        _ => Ok(own),
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

/// Names the resource a rule heals, or says why it cannot be named safely: an id that is
/// missing, empty, ambiguous or not of the format the rule's action needs.
pub fn resolve_resource(rule: &Rule, event: &AlarmEvent) -> Result<String, (SkipReason, String)> {
    let metrics = relevant_metrics(rule, event)?;
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
    resource_id::validate(rule.action.resource_kind(), &id, event)
        .map_err(|detail| (SkipReason::InvalidResourceId, detail))?;
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
            // The partition of the alarm's own ARN (or its region): `aws`, `aws-cn`, …
            "aws.partition" => crate::model::resource_id::event_partition(event)
                .unwrap_or_default()
                .to_owned(),
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

/// A way of selecting a rule that can never win, because an earlier enabled rule always wins
/// it first (`autoheal validate` warns about each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shadowed {
    pub rule: String,
    pub by: String,
    pub selector: SelectedBy,
    pub detail: String,
}

impl std::fmt::Display for Shadowed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "rule `{}`: {}", self.rule, self.detail)
    }
}

/// The alarm-name prefixes and metric triggers of enabled rules that an earlier enabled rule
/// always takes first. Such a rule is still reached through its `autoheal:rule` tag.
pub fn shadowed(rules: &RuleSet) -> Vec<Shadowed> {
    let mut found = Vec::new();
    let enabled: Vec<&Rule> = rules.rules().iter().filter(|rule| rule.enabled).collect();
    for (index, rule) in enabled.iter().enumerate() {
        let earlier = &enabled[..index];
        let prefixes = &rule.trigger.alarm_name_prefixes;
        if !prefixes.is_empty() {
            let winner = earlier.iter().find(|other| {
                prefixes.iter().all(|prefix| {
                    other
                        .trigger
                        .alarm_name_prefixes
                        .iter()
                        .any(|theirs| prefix.starts_with(theirs.as_str()))
                })
            });
            if let Some(winner) = winner {
                found.push(Shadowed {
                    rule: rule.name.clone(),
                    by: winner.name.clone(),
                    selector: SelectedBy::AlarmName,
                    detail: format!(
                        "its alarm-name prefixes can never select it: every such alarm name also starts with a prefix of `{}`, earlier in the file",
                        winner.name
                    ),
                });
            }
        }
        if rule.trigger.namespace.is_some() {
            let winner = earlier
                .iter()
                .find(|other| metric_trigger_covers(&other.trigger, &rule.trigger));
            if let Some(winner) = winner {
                found.push(Shadowed {
                    rule: rule.name.clone(),
                    by: winner.name.clone(),
                    selector: SelectedBy::Metric,
                    detail: format!(
                        "its metric trigger can never select it: `{}`, earlier in the file, matches every metric it matches",
                        winner.name
                    ),
                });
            }
        }
    }
    found
}

/// Whether every metric `inner` matches is also matched by `outer`.
fn metric_trigger_covers(outer: &Trigger, inner: &Trigger) -> bool {
    outer.namespace.is_some()
        && outer.namespace == inner.namespace
        && (outer.metrics.is_empty()
            || (!inner.metrics.is_empty()
                && inner.metrics.iter().all(|m| outer.metrics.contains(m))))
        && outer
            .dimensions
            .iter()
            .all(|d| inner.dimensions.contains(d))
}
