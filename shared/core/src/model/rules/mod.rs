//! Healing rules: a declarative TOML file, validated with the rule, field and line at fault.
//!
//! TOML because operators edit this file by hand: it has comments, no significant indentation,
//! and its parser reports the line of every error. README.md ("Healing rules") describes the format.
//!
//! - this module: the set of a deployment's rules, in file order, with the index of their
//!   selectors;
//! - [`rule`]: one rule (its trigger, resource, policy and mode);
//! - [`alarm`]: the alarm that detects a rule's trigger, which autoheal creates and keeps;
//! - [`action`]: what a rule does, with its parameters and their defaults; `checks`: the
//!   checks of those parameters;
//! - `raw`: the file as written, with its defaults; `load`: the validation of every rule;
//! - `diagnostics`: problems with the line, rule and field at fault;
//! - `index`: the selectors' index that selection searches.

pub mod action;
pub mod alarm;
mod alarm_checks;
mod checks;
mod diagnostics;
pub(crate) mod index;
mod load;
mod raw;
pub mod rule;

use std::collections::BTreeMap;

use crate::model::layer::Layer;

use index::RuleIndex;

pub use action::{Action, DEFAULT_KEEP, ECS_MAX_TASKS_PER_SERVICE, Retention};
pub use alarm::{AlarmSpec, Comparison, MissingData};
pub use checks::{HEAP_DUMP_COMMANDS, backup_window_minutes, heap_dump_tool};
pub use diagnostics::{RuleProblem, RulesError};
pub use load::{FUNCTION_TIMEOUT_SECONDS, MAX_RULES_BYTES};
pub use raw::Defaults;
pub use rule::{Mode, Policy, ResourceSelector, Rule, Trigger, placeholders};

/// The rules shipped inside every binary; `AUTOHEAL_RULES_PATH` replaces them at deploy time.
pub const SHIPPED_RULES: &str = include_str!("../../../../../rules/autoheal-rules.toml");

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
        load::from_toml(text).map(RuleSet::new)
    }

    /// Validates rules built in code, with the checks of a rules file (problems carry no
    /// line). File order is the order given. Unlike a file, their number is not bounded by
    /// [`MAX_RULES_BYTES`].
    pub fn from_rules(rules: Vec<Rule>) -> Result<Self, RulesError> {
        load::from_rules(rules).map(RuleSet::new)
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
