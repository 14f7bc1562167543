//! One healing rule: which alarms select it, which resource it heals, what it does, and the
//! policy that governs its attempts.

use serde::{Deserialize, Serialize};

use crate::model::layer::Layer;
use crate::model::limits::{GroupGuard, Limit};
use crate::model::rules::action::Action;
use crate::model::rules::alarm::AlarmSpec;

/// Whether a rule acts, or only records what it would have done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    #[default]
    Enforce,
    Shadow,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Shadow => "shadow",
        }
    }
}

/// Which alarms select a rule. Any one selector is enough:
/// an alarm tag `autoheal:rule` naming the rule, an alarm-name prefix, or a metric match
/// (namespace, optionally metric names, and dimension names the metric must carry).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dimensions: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alarm_name_prefixes: Vec<String>,
}

/// How the id of the resource to heal is read from the alarm. Exactly one field is set.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceSelector {
    /// The value of this metric dimension (e.g. `InstanceId`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimension: Option<String>,
    /// A template over dimension names and `{aws.region}`, `{aws.account}`, `{aws.partition}`,
    /// e.g. `"{ClusterName}/{ServiceName}"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// The value of this alarm tag; the way composite alarms name their resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm_tag: Option<String>,
}

/// The timing and budget that govern one rule's attempts on one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Policy {
    pub cooldown_seconds: u64,
    pub max_attempts: u32,
    pub stable_period_seconds: u64,
    pub backoff_max_seconds: u64,
    pub lease_seconds: u64,
    /// At most this many actions of the rule (on all its resources) per rolling window.
    pub budget: Limit,
    /// How much of a group (Auto Scaling group, ECS service, target group) may heal at once.
    pub group_guard: GroupGuard,
    /// How long one incident waits for AWS's own healing or a person's hold on the resource
    /// (a healer's assessment before the claim).
    pub max_wait_seconds: u64,
}

/// One validated healing rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rule {
    pub name: String,
    pub description: String,
    pub layer: Layer,
    pub enabled: bool,
    pub mode: Mode,
    pub trigger: Trigger,
    pub resource: ResourceSelector,
    pub action: Action,
    /// The alarm that detects the trigger, which autoheal creates for every resource the
    /// rule protects (`[rule.alarm]`); none: autoheal creates no alarm for the rule.
    pub alarm: Option<AlarmSpec>,
    pub policy: Policy,
}

impl AlarmSpec {
    /// The dimension names the alarm's metric carries: as written, else the trigger's, else
    /// the resource's dimension (or the dimensions its template names).
    pub fn dimension_names_for(
        &self,
        trigger: &Trigger,
        resource: &ResourceSelector,
    ) -> Vec<String> {
        if !self.dimensions.is_empty() {
            return self.dimensions.clone();
        }
        if !trigger.dimensions.is_empty() {
            return trigger.dimensions.clone();
        }
        resource.dimension_names()
    }
}

impl ResourceSelector {
    /// The dimension names the resource id is read from.
    pub fn dimension_names(&self) -> Vec<String> {
        if let Some(dimension) = &self.dimension {
            return vec![dimension.clone()];
        }
        self.template
            .as_deref()
            .and_then(|template| placeholders(template).ok())
            .unwrap_or_default()
            .into_iter()
            .filter(|name| !name.starts_with("aws."))
            .map(str::to_owned)
            .collect()
    }
}

impl Rule {
    /// The dimension names of the rule's alarm, if it has one.
    pub fn alarm_dimensions(&self) -> Option<Vec<String>> {
        self.alarm
            .as_ref()
            .map(|alarm| alarm.dimension_names_for(&self.trigger, &self.resource))
    }
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
