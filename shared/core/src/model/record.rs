//! The record of one healing run, and why a run did not act.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::layer::Layer;
use crate::model::rules::rule::Mode;

/// Where a healing run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealingStatus {
    Pending,
    InProgress,
    Completed,
    Failed,
    Skipped,
}

impl HealingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HealingStatus::Pending => "pending",
            HealingStatus::InProgress => "in_progress",
            HealingStatus::Completed => "completed",
            HealingStatus::Failed => "failed",
            HealingStatus::Skipped => "skipped",
        }
    }

    /// Still running (or crashed while running, until its lease expires).
    pub fn is_active(self) -> bool {
        matches!(self, HealingStatus::Pending | HealingStatus::InProgress)
    }
}

impl fmt::Display for HealingStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for HealingStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            HealingStatus::Pending,
            HealingStatus::InProgress,
            HealingStatus::Completed,
            HealingStatus::Failed,
            HealingStatus::Skipped,
        ]
        .into_iter()
        .find(|status| status.as_str() == s)
        .ok_or_else(|| format!("unknown healing status `{s}`"))
    }
}

/// What a run did to the resource: heal it, or put back what a heal changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunPhase {
    #[default]
    Heal,
    Revert,
    /// A follow-up found the alarm OK for the stable period: the incident is resolved.
    Verify,
    /// An operator closed the incident (`autoheal reset`).
    Reset,
}

impl RunPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            RunPhase::Heal => "heal",
            RunPhase::Revert => "revert",
            RunPhase::Verify => "verify",
            RunPhase::Reset => "reset",
        }
    }

    fn is_heal(&self) -> bool {
        *self == RunPhase::Heal
    }
}

/// Why autoheal did not act on an event. The names are stable: dashboards and subscription
/// filters use them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SkipReason {
    /// This exact event (same EventBridge id) was handled already.
    Duplicate,
    /// The resource was acted on less than the rule's cooldown ago.
    Cooldown,
    /// The incident's next attempt is not due yet (exponential backoff with jitter).
    Backoff,
    /// The incident used all its attempts; a human has been told.
    MaxAttempts,
    /// Another invocation holds the claim on this resource.
    InProgress,
    /// The rule or deployment is in shadow mode: the action was only recorded.
    ShadowMode,
    /// No rule matches the alarm.
    NoMatchingRule,
    /// The alarm belongs to another layer's rule.
    OtherLayer,
    /// The matching rule is disabled.
    RuleDisabled,
    /// The resource id resolved to an empty string.
    EmptyResourceId,
    /// The alarm names more than one resource.
    AmbiguousResource,
    /// The resource id does not have the id format of the service the action calls (or is
    /// an ARN of another partition, region or account): never sent to that service.
    InvalidResourceId,
    /// The alarm does not carry what the rule reads the resource id from.
    ResourceUnresolved,
    /// The alarm state is neither ALARM nor OK.
    NotActionable,
    /// CloudWatch holds the alarm's actions back (composite suppressor or mute rule).
    Suppressed,
    /// OK arrived with no open incident.
    NoOpenIncident,
    /// The resource opted out with the `autoheal:disabled=true` tag.
    OptedOut,
    /// A fresh look at the resource showed the heal is no longer needed.
    NotNeeded,
    /// A fresh look at the resource showed acting would be unsafe.
    Unsafe,
    /// This function does not implement the rule's action.
    UnsupportedAction,
    /// A follow-up that a newer one replaced, or whose incident moved on.
    Superseded,
    /// The incident is escalated: nothing more is done until it resolves or is reset.
    Escalated,
    /// The alarm could not be read back (deleted, or no data for too long): a human decides.
    Unverifiable,
    /// A budget of actions per window is spent: the heal is deferred until it reopens.
    Budget,
    /// As many members of the resource's group as may heal at once are in healing: the heal
    /// is deferred until one is done.
    GroupBusy,
    /// Too much of the resource's group is unhealthy to heal member by member: deferred.
    GroupStorm,
    /// A multi-step action did not finish within the steps it may take: a human is needed.
    Unfinished,
    /// Another rule's heal holds the resource (one heal per resource at a time, across rules
    /// and layers): deferred until it ends, then decided afresh.
    ResourceBusy,
    /// AWS's own healing is already under way on the resource (EC2 automatic recovery or a
    /// scheduled event, an ECS deployment rolling out or back, an instance refresh): deferred,
    /// bounded by the rule's `max_wait_seconds`, then acted on only if still impaired.
    AwsHealing,
    /// A person froze the resource (suspended Auto Scaling processes, protected members, a
    /// deployment they are shifting): deferred, bounded by the rule's `max_wait_seconds`,
    /// then left to a person.
    OperatorHold,
    /// The resource does not exist (terminated, deleted): nothing to heal, no budget spent.
    Gone,
    /// The alarm watches a part of the resource that the rule's action does not heal (a
    /// Lambda alarm on another alias, or on one version): nothing is done.
    OtherTarget,
    /// CloudWatch says the alarm is no longer in the state the event reports (an event
    /// delivered late, or out of order), or no longer in ALARM for an event that would act:
    /// nothing is done or written.
    Stale,
    /// CloudWatch does not hold the alarm the event describes (none of that name, or other
    /// metrics, dimensions or tags): the event was not sent by CloudWatch, and nothing is
    /// done or written.
    NotGenuine,
    /// The alarm fires the opposite way to the rule's trigger (`[rule.alarm]`): it does not
    /// mean what the rule heals, and nothing is done or written.
    OppositeDirection,
    /// The event comes from an account or region this deployment does not heal: nothing is
    /// read, done or written.
    OutOfReach,
}

impl SkipReason {
    /// The heal was held back for later (a budget, a group guard, another rule's heal of the
    /// resource, AWS's own healing, a person's hold): the incident stays open and is looked
    /// at again.
    pub fn is_deferral(self) -> bool {
        matches!(
            self,
            SkipReason::Budget
                | SkipReason::GroupBusy
                | SkipReason::GroupStorm
                | SkipReason::ResourceBusy
                | SkipReason::AwsHealing
                | SkipReason::OperatorHold
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::OutOfReach => "out-of-reach",
            SkipReason::Duplicate => "duplicate",
            SkipReason::Cooldown => "cooldown",
            SkipReason::Backoff => "backoff",
            SkipReason::MaxAttempts => "max-attempts",
            SkipReason::InProgress => "in-progress",
            SkipReason::ShadowMode => "shadow-mode",
            SkipReason::NoMatchingRule => "no-matching-rule",
            SkipReason::OtherLayer => "other-layer",
            SkipReason::RuleDisabled => "rule-disabled",
            SkipReason::EmptyResourceId => "empty-resource-id",
            SkipReason::AmbiguousResource => "ambiguous-resource",
            SkipReason::InvalidResourceId => "invalid-resource-id",
            SkipReason::ResourceUnresolved => "resource-unresolved",
            SkipReason::NotActionable => "not-actionable",
            SkipReason::Suppressed => "suppressed",
            SkipReason::NoOpenIncident => "no-open-incident",
            SkipReason::OptedOut => "opted-out",
            SkipReason::NotNeeded => "not-needed",
            SkipReason::Unsafe => "unsafe",
            SkipReason::UnsupportedAction => "unsupported-action",
            SkipReason::Superseded => "superseded",
            SkipReason::Escalated => "escalated",
            SkipReason::Unverifiable => "unverifiable",
            SkipReason::Budget => "budget",
            SkipReason::GroupBusy => "group-busy",
            SkipReason::GroupStorm => "group-storm",
            SkipReason::Unfinished => "unfinished",
            SkipReason::ResourceBusy => "resource-busy",
            SkipReason::AwsHealing => "aws-healing",
            SkipReason::OperatorHold => "operator-hold",
            SkipReason::Gone => "gone",
            SkipReason::OtherTarget => "other-target",
            SkipReason::Stale => "stale",
            SkipReason::NotGenuine => "not-genuine",
            SkipReason::OppositeDirection => "opposite-direction",
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One healing run: what was decided and done for one event on one resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealingRecord {
    /// Unique per invocation (the Lambda request id).
    pub id: String,
    pub event_id: String,
    pub alarm_name: String,
    pub rule: String,
    pub layer: Layer,
    pub action: String,
    pub resource_id: String,
    /// The account and region of the alarm, and so of the resource, as the event names them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The role session a run in another account acted under (`autoheal-<run id>`, the run
    /// that assumed the role): CloudTrail names it with every change made there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_session: Option<String>,
    pub status: HealingStatus,
    /// `heal`; `revert` for a run that put back what earlier heals changed; `verify` for the
    /// follow-up that resolved the incident; `reset` for an operator's reset.
    #[serde(default, skip_serializing_if = "RunPhase::is_heal")]
    pub phase: RunPhase,
    pub mode: Mode,
    pub started_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime<Utc>>,
    /// The attempt within the incident (1-based); 0 when the run did not attempt anything.
    pub attempt: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_reason: Option<SkipReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What was done, in one sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Facts of the action (e.g. `replacement_instance_id`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, String>,
}

impl HealingRecord {
    pub fn duration_ms(&self) -> Option<i64> {
        self.ended_at
            .map(|end| (end - self.started_at).num_milliseconds())
    }
}
