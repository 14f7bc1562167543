//! A limit of the safety governor that holds an action back: a spent budget or a group
//! guard, what it allowed, and when it reopens. Decided by the budget and group policies,
//! recorded as a deferral, notified once per window.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::model::limits::{BudgetScope, Limit, storm_summary};
use crate::model::record::SkipReason;

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
}

/// A limit of the safety governor that holds an action back: a spent budget, or a group
/// guard.
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
}

impl Tripped {
    pub fn describe(&self) -> String {
        let until = self.reopens_at.to_rfc3339();
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
        }
    }

    /// The reason the deferred run records.
    pub fn reason(&self) -> SkipReason {
        match self.kind {
            TripKind::Budget => SkipReason::Budget,
            TripKind::GroupBusy { .. } => SkipReason::GroupBusy,
            TripKind::GroupStorm { .. } => SkipReason::GroupStorm,
        }
    }

    /// What a trip is announced once per window under: its scope, and for a group, which
    /// guard.
    pub fn notice_key(&self) -> String {
        match self.kind {
            TripKind::Budget => self.scope.key(),
            TripKind::GroupBusy { .. } => format!("{}#busy", self.scope.key()),
            TripKind::GroupStorm { .. } => format!("{}#storm", self.scope.key()),
        }
    }
}
