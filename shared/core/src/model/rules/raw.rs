//! The rules file as written: its tables, the defaults every rule may override, and each
//! rule's optional fields before the defaults fill them in.

use serde::{Deserialize, Serialize};

use super::action::{Action, yes};
use super::alarm::AlarmSpec;
use super::rule::{Mode, ResourceSelector, Trigger};
use crate::model::layer::Layer;
use crate::model::limits::GroupGuard;

/// Defaults for every rule; a rule may override each of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// How long an OK must hold before the incident closes and attempts reset.
    #[serde(default = "Defaults::stable_period")]
    pub stable_period_seconds: u64,
    /// The longest wait between two attempts of one incident, however many failed.
    #[serde(default = "Defaults::backoff_max")]
    pub backoff_max_seconds: u64,
    /// How long a claim stays valid if the invocation holding it dies.
    #[serde(default = "Defaults::lease")]
    pub lease_seconds: u64,
    /// At most this many actions of one rule per `budget_window_seconds` (rolling).
    #[serde(default = "Defaults::max_actions_per_window")]
    pub max_actions_per_window: u32,
    #[serde(default = "Defaults::budget_window")]
    pub budget_window_seconds: u64,
    /// At most this share of a group in healing at once (at least one member).
    #[serde(default = "Defaults::max_healing_percent")]
    pub max_healing_percent: u8,
    /// No member of a group is healed while more than this share of it is unhealthy.
    #[serde(default = "Defaults::max_unhealthy_percent")]
    pub max_unhealthy_percent: u8,
    /// How long one incident waits for AWS's own healing (then acts if the resource is still
    /// impaired) or for a person's hold (then asks a person).
    #[serde(default = "Defaults::max_wait")]
    pub max_wait_seconds: u64,
}

impl Defaults {
    fn stable_period() -> u64 {
        900
    }
    fn backoff_max() -> u64 {
        3600
    }
    fn lease() -> u64 {
        900
    }
    fn max_actions_per_window() -> u32 {
        5
    }
    fn budget_window() -> u64 {
        900
    }
    fn max_healing_percent() -> u8 {
        GroupGuard::default().max_healing_percent
    }
    fn max_unhealthy_percent() -> u8 {
        GroupGuard::default().max_unhealthy_percent
    }
    fn max_wait() -> u64 {
        1800
    }
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            stable_period_seconds: Self::stable_period(),
            backoff_max_seconds: Self::backoff_max(),
            lease_seconds: Self::lease(),
            max_actions_per_window: Self::max_actions_per_window(),
            budget_window_seconds: Self::budget_window(),
            max_healing_percent: Self::max_healing_percent(),
            max_unhealthy_percent: Self::max_unhealthy_percent(),
            max_wait_seconds: Self::max_wait(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    #[serde(default)]
    pub(super) defaults: Option<Defaults>,
    #[serde(default)]
    pub(super) rule: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRule {
    pub(super) name: String,
    #[serde(default)]
    pub(super) description: String,
    pub(super) layer: Layer,
    #[serde(default = "yes")]
    pub(super) enabled: bool,
    #[serde(default)]
    pub(super) mode: Mode,
    pub(super) trigger: Trigger,
    pub(super) resource: ResourceSelector,
    pub(super) action: Action,
    #[serde(default)]
    pub(super) alarm: Option<AlarmSpec>,
    pub(super) cooldown_seconds: u64,
    pub(super) max_attempts: u32,
    #[serde(default)]
    pub(super) stable_period_seconds: Option<u64>,
    #[serde(default)]
    pub(super) backoff_max_seconds: Option<u64>,
    #[serde(default)]
    pub(super) lease_seconds: Option<u64>,
    #[serde(default)]
    pub(super) max_actions_per_window: Option<u32>,
    #[serde(default)]
    pub(super) budget_window_seconds: Option<u64>,
    #[serde(default)]
    pub(super) max_healing_percent: Option<u8>,
    #[serde(default)]
    pub(super) max_unhealthy_percent: Option<u8>,
    #[serde(default)]
    pub(super) max_wait_seconds: Option<u64>,
}
