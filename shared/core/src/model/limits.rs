//! The limits a rule and a deployment set on healing: actions per rolling window, per scope
//! (a rule, a layer, the deployment, a group's slots), and how much of one group may heal at
//! once. The safety governor's policies (`budget`, `group`) apply them.

use serde::{Deserialize, Serialize};

use crate::model::layer::Layer;
use crate::model::place::Place;

/// What a budget limits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "scope", content = "name", rename_all = "kebab-case")]
pub enum BudgetScope {
    /// Every action of the deployment, all layers together.
    Global,
    Layer(Layer),
    /// Every action in one account (by its id), all layers together: one account's storm
    /// does not spend the whole organization's budget.
    Account(String),
    Rule(String),
    /// A group's healing slots (a group guard's), by the group's id.
    Group(String),
    /// One resource, whatever rule heals it (see [`resource_key`]): what waits for another
    /// rule's heal of it, for AWS's own healing or for a person's hold.
    Resource(String),
}

impl BudgetScope {
    /// A stable key for storage: `global`, `layer#<layer>`, `rule#<name>`.
    pub fn key(&self) -> String {
        match self {
            BudgetScope::Global => "global".to_owned(),
            BudgetScope::Layer(layer) => format!("layer#{layer}"),
            BudgetScope::Account(account) => format!("account#{account}"),
            BudgetScope::Rule(rule) => format!("rule#{rule}"),
            BudgetScope::Group(group) => format!("group#{group}"),
            BudgetScope::Resource(resource) => format!("resource#{resource}"),
        }
    }
}

impl std::fmt::Display for BudgetScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BudgetScope::Global => f.write_str("the deployment"),
            BudgetScope::Layer(layer) => write!(f, "the {layer} layer"),
            BudgetScope::Account(account) => write!(f, "account {account}"),
            BudgetScope::Rule(rule) => write!(f, "rule `{rule}`"),
            BudgetScope::Group(group) => f.write_str(group),
            BudgetScope::Resource(resource) => f.write_str(resource),
        }
    }
}

/// At most `limit` actions in any `window_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limit {
    pub limit: u32,
    pub window_seconds: u64,
}

/// The rule's limits on one group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupGuard {
    /// At most this share of a group in healing at once (at least one member).
    pub max_healing_percent: u8,
    /// Nothing is healed while more than this share of the group is unhealthy.
    pub max_unhealthy_percent: u8,
}

impl Default for GroupGuard {
    fn default() -> Self {
        GroupGuard {
            max_healing_percent: 20,
            max_unhealthy_percent: 50,
        }
    }
}

/// What a run that heals several members of a group at once may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowance {
    /// Too much of the group is unhealthy: heal none.
    Storm,
    /// Heal at most this many members now.
    Heal(u32),
}

impl GroupGuard {
    /// How many members of a group of `size` may be in healing at once: the percentage,
    /// rounded down, and at least one.
    pub fn capacity(&self, size: u32) -> u32 {
        let share = u64::from(size) * u64::from(self.max_healing_percent) / 100;
        u32::try_from(share).unwrap_or(u32::MAX).max(1)
    }

    /// Whether `unhealthy` members of `size` are a storm.
    pub fn is_storm(&self, size: u32, unhealthy: u32) -> bool {
        unhealthy > 1
            && u64::from(unhealthy) * 100 > u64::from(size) * u64::from(self.max_unhealthy_percent)
    }

    /// How many of `unhealthy` members of a group of `size` one run may heal.
    pub fn allowance(&self, size: u32, unhealthy: u32) -> Allowance {
        if self.is_storm(size, unhealthy) {
            Allowance::Storm
        } else {
            Allowance::Heal(self.capacity(size).min(unhealthy))
        }
    }

    /// A sentence for records and notifications.
    pub fn describe_storm(&self, group: &str, size: u32, unhealthy: u32) -> String {
        storm_summary(group, size, unhealthy, self.max_unhealthy_percent)
    }
}

/// Why a storm holds healing back, for records and notifications.
pub fn storm_summary(group: &str, size: u32, unhealthy: u32, max_unhealthy_percent: u8) -> String {
    format!(
        "{unhealthy} of the {size} members of {group} are unhealthy, more than \
         {max_unhealthy_percent} %: a fault shared by the group is not healed member by member"
    )
}

/// The one key of a resource across rules and layers: its kind and its id, e.g.
/// `ec2-instance#i-0123456789abcdef0`. Two rules whose actions touch the same resource (a
/// status-check recovery and a process restart on one instance; a reboot, a restore and a
/// backup verification of one database) share it, and so one lease: one heal at a time.
///
/// A resource in another account or region than the deployment's own is set apart by its
/// place (`ec2-instance#i-0123456789abcdef0@222222222222/eu-west-1`): the same id there is
/// another resource.
pub fn resource_key(
    kind: crate::model::resource_id::ResourceKind,
    resource_id: &str,
    place: Option<&Place>,
) -> String {
    let suffix = place.map(Place::key_suffix).unwrap_or_default();
    format!("{}#{resource_id}{suffix}", kind.key())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifth_of_a_group_heals_at_once_and_never_less_than_one_member() {
        let guard = GroupGuard::default();
        assert_eq!(guard.capacity(10), 2);
        assert_eq!(guard.capacity(14), 2);
        assert_eq!(guard.capacity(4), 1);
        assert_eq!(guard.capacity(1), 1);
        assert_eq!(guard.capacity(0), 1);
        assert_eq!(guard.capacity(u32::MAX), u32::MAX / 5);
    }

    #[test]
    fn more_than_half_unhealthy_is_a_storm_but_one_member_never_is() {
        let guard = GroupGuard::default();
        assert!(guard.is_storm(10, 6));
        assert!(!guard.is_storm(10, 5));
        assert!(!guard.is_storm(10, 2));
        assert!(!guard.is_storm(1, 1));
        assert!(!guard.is_storm(2, 1));
        assert!(guard.is_storm(2, 2));
        assert_eq!(guard.allowance(10, 6), Allowance::Storm);
        assert_eq!(guard.allowance(10, 3), Allowance::Heal(2));
        assert_eq!(guard.allowance(10, 1), Allowance::Heal(1));
        assert_eq!(guard.allowance(10, 0), Allowance::Heal(0));
    }
}
