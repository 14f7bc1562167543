//! A limit of the safety governor that holds an action back: a spent budget or a group
//! guard, what it allowed, and when it reopens. Decided by the budget and group policies,
//! recorded as a deferral, notified once per window.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::model::limits::{BudgetScope, Limit, storm_summary};
use crate::model::record::SkipReason;

/// Why an action waits for something outside autoheal's own limits (see the healer's
/// assessment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WaitReason {
    /// AWS's own healing is already under way (EC2 automatic recovery or a scheduled event,
    /// an ECS deployment rolling out or back, an instance refresh, an alarm's own EC2 recover
    /// action): acting now would race it. Once the incident has waited the rule's
    /// `max_wait_seconds`, the attempt goes ahead if the resource is still impaired.
    AwsHealing,
    /// A person froze the resource (suspended processes, protected members, traffic they are
    /// shifting): acting would override them. Once the incident has waited the rule's
    /// `max_wait_seconds`, a person is asked instead.
    OperatorHold,
    /// Another autoheal run is working on a resource this action also touches (an EBS
    /// repair that must stop the instance another rule is stopping and starting). Once the
    /// incident has waited the rule's `max_wait_seconds`, the attempt goes ahead.
    ResourceBusy,
}

impl WaitReason {
    /// The reason the deferred run records.
    pub fn skip_reason(self) -> SkipReason {
        match self {
            WaitReason::AwsHealing => SkipReason::AwsHealing,
            WaitReason::OperatorHold => SkipReason::OperatorHold,
            WaitReason::ResourceBusy => SkipReason::ResourceBusy,
        }
    }
}

/// Which limit of the safety governor tripped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TripKind {
    /// A budget of actions per window is spent.
    Budget,
    /// Every healing slot of a group of `size` is held (`used` of `limit.limit`).
    GroupBusy { size: u32 },
    /// Too much of a group is unhealthy (see [`GroupGuard`](crate::model::limits::GroupGuard)).
    GroupStorm {
        size: u32,
        unhealthy: u32,
        max_unhealthy_percent: u8,
    },
    /// Another rule's heal holds the resource's lease (one heal per resource at a time).
    ResourceBusy,
    /// The healer saw something that heals or holds the resource already.
    Waiting { reason: WaitReason },
}

/// What holds an action back: a spent budget, a group guard, another rule's heal of the
/// resource, or what the healer saw healing or holding it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tripped {
    pub scope: BudgetScope,
    pub kind: TripKind,
    pub limit: Limit,
    pub used: u32,
    /// When an action fits again (the budget's windows permitting, not its other budgets').
    pub reopens_at: DateTime<Utc>,
    /// The window whose notification this trip sends (one per window and limit).
    pub window: DateTime<Utc>,
    /// What was seen, in one sentence, when the holder is not a limit of autoheal's own
    /// (another rule's heal, AWS's own healing, a person's hold).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen: Option<String>,
}

impl Tripped {
    pub fn describe(&self) -> String {
        let until = self.reopens_at.to_rfc3339();
        let seen = self.seen.as_deref().unwrap_or("");
        match self.kind {
            TripKind::Budget => format!(
                "{} started {} of its {} actions per {} s: deferred until {until}",
                self.scope, self.used, self.limit.limit, self.limit.window_seconds,
            ),
            TripKind::GroupBusy { size } => format!(
                "{} of the {size} members of {} are in healing, as many as may be at once: \
                 deferred until {until}",
                self.used, self.scope
            ),
            TripKind::GroupStorm {
                size,
                unhealthy,
                max_unhealthy_percent,
            } => format!(
                "{}; looked at again at {until}",
                storm_summary(
                    &self.scope.to_string(),
                    size,
                    unhealthy,
                    max_unhealthy_percent
                )
            ),
            TripKind::ResourceBusy | TripKind::Waiting { .. } => {
                format!("{seen}: deferred until {until}")
            }
        }
    }

    /// The reason the deferred run records.
    pub fn reason(&self) -> SkipReason {
        match self.kind {
            TripKind::Budget => SkipReason::Budget,
            TripKind::GroupBusy { .. } => SkipReason::GroupBusy,
            TripKind::GroupStorm { .. } => SkipReason::GroupStorm,
            TripKind::ResourceBusy => SkipReason::ResourceBusy,
            TripKind::Waiting { reason } => reason.skip_reason(),
        }
    }

    /// What a trip is announced once per window under: its scope, and for a group, which
    /// guard.
    pub fn notice_key(&self) -> String {
        match self.kind {
            TripKind::Budget => self.scope.key(),
            TripKind::GroupBusy { .. } => format!("{}#busy", self.scope.key()),
            TripKind::GroupStorm { .. } => format!("{}#storm", self.scope.key()),
            TripKind::ResourceBusy => format!("{}#lease", self.scope.key()),
            TripKind::Waiting { reason } => {
                format!("{}#{}", self.scope.key(), reason.skip_reason())
            }
        }
    }
}
