//! What must change so that every resource in the scope has its rule's alarm: create the
//! missing ones, put back the ones autoheal created that drifted, and delete the ones it
//! created whose resource is gone, out of scope or protected by a person's own alarm. An
//! alarm autoheal did not create is never changed.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::model::alarm::ExistingAlarm;
use crate::model::rules::RuleSet;
use crate::policy::resolve::RULE_TAG;

use super::coverage::{Protection, coverage};
use super::desired::{DesiredAlarm, desired_alarm, differences};
use super::target::Target;

/// One change to the account's alarms.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "change", rename_all = "lowercase")]
pub enum Change {
    /// `+`: a resource without its alarm.
    Create { desired: DesiredAlarm },
    /// `~`: an alarm autoheal created that no longer matches its definition.
    Update {
        desired: DesiredAlarm,
        differences: Vec<String>,
        /// Its tags are wrong too (tags are written apart from the alarm).
        retag: bool,
    },
    /// `-`: an alarm autoheal created that no resource needs any more.
    Delete { name: String, why: String },
}

impl Change {
    pub fn name(&self) -> &str {
        match self {
            Change::Create { desired } | Change::Update { desired, .. } => &desired.alarm.name,
            Change::Delete { name, .. } => name,
        }
    }

    /// `+`, `~` or `-`.
    pub fn sign(&self) -> char {
        match self {
            Change::Create { .. } => '+',
            Change::Update { .. } => '~',
            Change::Delete { .. } => '-',
        }
    }
}

/// A resource autoheal creates no alarm for, though the rule protects it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Left {
    pub rule: String,
    pub resource: String,
    pub why: String,
}

/// The changes, by alarm name, and what is left as it is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub changes: Vec<Change>,
    /// Alarms autoheal created that are as they should be.
    pub unchanged: usize,
    pub left: Vec<Left>,
}

impl Plan {
    /// How many of each change: (create, update, delete).
    pub fn counts(&self) -> (usize, usize, usize) {
        self.changes
            .iter()
            .fold((0, 0, 0), |(c, u, d), change| match change {
                Change::Create { .. } => (c + 1, u, d),
                Change::Update { .. } => (c, u + 1, d),
                Change::Delete { .. } => (c, u, d + 1),
            })
    }

    /// The plan's last line: `2 to create, 1 to update, 0 to delete`.
    pub fn summary(&self) -> String {
        let (create, update, delete) = self.counts();
        format!("{create} to create, {update} to update, {delete} to delete")
    }
}

/// What must change so that every target has its alarm, given the alarms that exist.
/// `actions` are the alarm actions autoheal's alarms notify (the stack's topic, or none).
pub fn plan(
    rules: &RuleSet,
    targets: &[Target],
    existing: &[ExistingAlarm],
    actions: &[String],
) -> Plan {
    let covered = coverage(rules, targets, existing);
    let by_name: BTreeMap<&str, &ExistingAlarm> = existing
        .iter()
        .map(|alarm| (alarm.alarm.name.as_str(), alarm))
        .collect();
    let mut changes = Vec::new();
    let mut unchanged = 0;
    let mut left = Vec::new();
    let mut wanted = BTreeSet::new();
    // Alarm name → why a person's alarm makes autoheal's redundant.
    let mut redundant: BTreeMap<String, String> = BTreeMap::new();
    for (target, entry) in targets.iter().zip(&covered.entries) {
        let Some(desired) = rules
            .get(&target.rule)
            .and_then(|rule| desired_alarm(rule, target, actions))
        else {
            continue;
        };
        let protected_by = match &entry.protection {
            Protection::Protected {
                alarm,
                managed: false,
            }
            | Protection::ProtectedByAws { alarm } => Some(alarm.clone()),
            _ => None,
        };
        if let Some(alarm) = protected_by {
            let why = format!("alarm `{alarm}`, not autoheal's, already protects it");
            redundant.insert(desired.alarm.name.clone(), why.clone());
            left.push(Left {
                rule: target.rule.clone(),
                resource: target.resource.clone(),
                why,
            });
            continue;
        }
        if !wanted.insert(desired.alarm.name.clone()) {
            continue;
        }
        match by_name.get(desired.alarm.name.as_str()) {
            Some(found) if found.is_managed() => {
                let differences = differences(&desired.alarm, &found.alarm);
                let retag = desired
                    .tags
                    .iter()
                    .any(|(key, value)| found.tags.get(key) != Some(value));
                if differences.is_empty() && !retag {
                    unchanged += 1;
                } else {
                    changes.push(Change::Update {
                        desired,
                        differences,
                        retag,
                    });
                }
            }
            Some(_) => left.push(Left {
                rule: target.rule.clone(),
                resource: target.resource.clone(),
                why: format!(
                    "an alarm autoheal did not create is named `{}`",
                    desired.alarm.name
                ),
            }),
            None => changes.push(Change::Create { desired }),
        }
    }
    for alarm in existing {
        let name = &alarm.alarm.name;
        if !alarm.is_managed() || wanted.contains(name) {
            continue;
        }
        let rule = alarm.tags.get(RULE_TAG).and_then(|rule| rules.get(rule));
        let why = if let Some(why) = redundant.get(name) {
            why.clone()
        } else {
            match rule {
                None => "its rule is not in the rules any more".to_owned(),
                Some(rule) if !rule.enabled => format!("rule `{}` is disabled", rule.name),
                Some(rule) if rule.alarm.is_none() => {
                    format!("rule `{}` has no alarm any more", rule.name)
                }
                Some(_) => "its resource is gone or out of the scope".to_owned(),
            }
        };
        changes.push(Change::Delete {
            name: name.clone(),
            why,
        });
    }
    changes.sort_by(|a, b| a.name().cmp(b.name()));
    Plan {
        changes,
        unchanged,
        left,
    }
}
