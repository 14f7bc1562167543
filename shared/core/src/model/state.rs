//! What autoheal remembers about one rule's work on one resource: the open incident, the
//! lease of the run working on it, and the changes to put back. The policies decide over it;
//! the state store keeps it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::revert::Revert;
use crate::model::rules::rule::Policy;
use crate::model::time::seconds;

/// Everything autoheal remembers about one rule's work on one resource.
/// `version` makes every write conditional: a writer that read version N writes N + 1 only if
/// the stored version is still N.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceState {
    /// 0 means "never stored".
    pub version: u64,
    /// When the rule last acted on this resource, across incidents (cooldown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_action_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<Incident>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<Lease>,
    /// Changes made by heals, oldest first, to put back when the alarm returns to OK.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reverts: Vec<Revert>,
    /// How many follow-ups that retry putting `reverts` back were scheduled on this resource,
    /// ever: the number of the latest, which alone acts (an older one is superseded). Counted
    /// by every run that claims the resource to put changes back.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub revert_checks: u32,
}

impl ResourceState {
    /// Counts the follow-up that retries putting back `reverts`, which the run that claims
    /// the resource to put them back schedules (when there are any).
    pub fn count_revert_check(&mut self) {
        if !self.reverts.is_empty() {
            self.revert_checks = self.revert_checks.saturating_add(1);
        }
    }
}
/// A run of ALARM (with OKs shorter than the stable period inside it) on one resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    /// The id of the event that opened it.
    pub id: String,
    pub opened_at: DateTime<Utc>,
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// Not before this instant may the next attempt start (cooldown and backoff).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Set while the alarm is OK; the incident closes once this has held the stable period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ok_since: Option<DateTime<Utc>>,
    /// Set once the "human needed" notification went out for this incident.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalated_at: Option<DateTime<Utc>>,
    /// How many follow-ups were scheduled for this incident; only the latest one counts
    /// (the follow-up policy).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub checks: u32,
    /// How many of those checks were deferrals by the safety governor (a budget, a group
    /// guard): they wait for the governor, not for the alarm, so they do not count against
    /// the checks an incident may spend waiting for its alarm. A number a deferral (or a
    /// recheck) passed over, scheduled before an attempt's claim that was refused, counts
    /// here too.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub deferrals: u32,
    /// The current attempt's action has not reported its end: it continues in a follow-up
    /// (a multi-step action), or its run died. A follow-up resumes it with the same attempt
    /// and idempotency token instead of starting a new attempt.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unfinished: bool,
    /// The follow-ups that resumed the current attempt's action (bounded by the follow-up
    /// policy's `MAX_ACTION_STEPS`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub steps: u32,
    /// Every step of every attempt's action (`steps` over the incident): each took a check
    /// number, and none of them counts against the checks the incident may use, so that a
    /// long action (a database snapshot of many steps) does not use up its verification.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub step_checks: u32,
    /// Set when a follow-up verified the alarm OK for the stable period, or an operator reset
    /// the incident: it is closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<DateTime<Utc>>,
    /// When the incident first waited for AWS's own healing or a person's hold on the
    /// resource: the rule's `max_wait_seconds` counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_since: Option<DateTime<Utc>>,
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}

impl Incident {
    /// A new incident opened by `event_id` at `now`.
    pub fn open(event_id: &str, now: DateTime<Utc>) -> Self {
        Incident {
            id: event_id.to_owned(),
            opened_at: now,
            attempts: 0,
            last_attempt_at: None,
            next_attempt_at: None,
            ok_since: None,
            escalated_at: None,
            checks: 0,
            deferrals: 0,
            unfinished: false,
            steps: 0,
            step_checks: 0,
            resolved_at: None,
            waiting_since: None,
        }
    }

    /// Closed: resolved, or OK has held for the stable period with no action under way. An
    /// action that continues in follow-ups keeps its incident open however long the alarm is
    /// OK: its steps (and what it puts back at the end) are carried to their end first.
    pub fn is_closed(&self, policy: &Policy, now: DateTime<Utc>) -> bool {
        self.resolved_at.is_some()
            || (!self.unfinished
                && self
                    .ok_since
                    .is_some_and(|since| now - since >= seconds(policy.stable_period_seconds)))
    }
}

/// A claim on a resource by one invocation; it expires so that a crashed invocation cannot
/// block healing forever.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub run_id: String,
    pub event_id: String,
    pub attempt: u32,
    pub expires_at: DateTime<Utc>,
}

impl Lease {
    pub fn is_held(&self, now: DateTime<Utc>) -> bool {
        self.expires_at > now
    }
}
