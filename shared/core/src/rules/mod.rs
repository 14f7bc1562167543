//! Healing rules: a declarative TOML file, validated with the rule, field and line at fault.
//!
//! TOML because operators edit this file by hand: it has comments, no significant indentation,
//! and its parser reports the line of every error. README.md ("Healing rules") describes the format.
//!
//! - this module: the domain model (a rule, its trigger, resource, policy, mode) and the set;
//! - [`action`]: what a rule does, with its parameters, defaults and their checks;
//! - `load`: the file's own structure, defaults and the validation of every rule;
//! - `diagnostics`: problems with the line, rule and field at fault.

mod action;
mod diagnostics;
mod index;
mod load;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::layer::Layer;

pub(crate) use index::Position;
use index::RuleIndex;

pub use action::{Action, ECS_MAX_TASKS_PER_SERVICE, backup_window_minutes};
pub use diagnostics::{RuleProblem, RulesError};
pub use load::{Defaults, MAX_RULES_BYTES, placeholders};

/// The rules shipped inside every binary; `AUTOHEAL_RULES_PATH` replaces them at deploy time.
pub const SHIPPED_RULES: &str = include_str!("../../../../rules/autoheal-rules.toml");

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
    pub budget: crate::budget::Limit,
    /// How much of a group (Auto Scaling group, ECS service, target group) may heal at once.
    pub group_guard: crate::group::GroupGuard,
    /// How long one incident waits for AWS's own healing or a person's hold on the resource
    /// (see [`crate::ports::Assessment`]).
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
    pub policy: Policy,
}

/// The rules of one deployment, in file order (the first matching rule wins), with the index
/// of their selectors built when they are loaded.
#[derive(Debug, Clone)]
pub struct RuleSet {
    rules: Vec<Rule>,
    index: RuleIndex,
}

/// Two sets are equal when their rules are: the index follows from them.
impl PartialEq for RuleSet {
    fn eq(&self, other: &Self) -> bool {
        self.rules == other.rules
    }
}

impl RuleSet {
    /// A set of rules already validated, in file order.
    fn new(rules: Vec<Rule>) -> Self {
        let index = RuleIndex::new(&rules);
        RuleSet { rules, index }
    }

    /// The rules compiled into the binary. They are checked by the test suite, so failing to
    /// parse them here is a build defect and reported as such.
    pub fn shipped() -> Result<Self, RulesError> {
        Self::from_toml(SHIPPED_RULES)
    }

    /// Parses and validates a rules file.
    pub fn from_toml(text: &str) -> Result<Self, RulesError> {
        load::from_toml(text)
    }

    /// Validates rules built in code, with the checks of a rules file (problems carry no
    /// line). File order is the order given. Unlike a file, their number is not bounded by
    /// [`MAX_RULES_BYTES`].
    pub fn from_rules(rules: Vec<Rule>) -> Result<Self, RulesError> {
        load::from_rules(rules)
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The rule named `name`.
    pub fn get(&self, name: &str) -> Option<&Rule> {
        self.index
            .by_name(name)
            .and_then(|position| self.rules.get(position))
    }

    /// The index of the rules' selectors (see `index`).
    pub(crate) fn index(&self) -> &RuleIndex {
        &self.index
    }

    pub fn of_layer(&self, layer: Layer) -> impl Iterator<Item = &Rule> {
        self.rules.iter().filter(move |rule| rule.layer == layer)
    }

    /// Rules per layer, and how many of them are enabled.
    pub fn counts(&self) -> BTreeMap<Layer, (usize, usize)> {
        let mut counts = BTreeMap::new();
        for rule in &self.rules {
            let entry = counts.entry(rule.layer).or_insert((0, 0));
            entry.0 += 1;
            if rule.enabled {
                entry.1 += 1;
            }
        }
        counts
    }
}
