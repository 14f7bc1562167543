//! Putting back what heals changed, when it fails. Every run that puts changes back (an OK's,
//! a resolution's, a retry's) schedules, before its claim, the follow-up that retries them:
//! a failed revert is then tried again by its own follow-up, and a run that dies mid-revert
//! is taken over by it; a run that put everything back leaves its follow-up nothing to do.
//! Each change is tried at most `MAX_REVERT_TRIES` times, a minute apart and doubling, and
//! then a person is asked to put it back by hand.

use chrono::{DateTime, Utc};

use crate::model::event::AlarmState;
use crate::model::record::SkipReason;
use crate::model::revert::Revert;
use crate::model::rules::Policy;
use crate::model::state::{Lease, ResourceState};
use crate::model::time::after;
use crate::policy::decision::{Decision, Transition, ignore};
use crate::policy::followup::{AlarmReading, FollowUp};

/// The wait before the first retry of a change.
pub const FIRST_RETRY_SECONDS: u64 = 60;
/// The longest wait between two retries.
pub const MAX_RETRY_SECONDS: u64 = 3600;

/// Seconds before the retry that follows `failures` failed tries of a change: a minute,
/// doubling, capped at an hour.
pub fn retry_wait(failures: u32) -> u64 {
    FIRST_RETRY_SECONDS
        .saturating_mul(1u64 << failures.min(32))
        .min(MAX_RETRY_SECONDS)
}

/// The follow-up that the run claiming `next` (to put back `next.reverts`) schedules before
/// its claim: its number, and when it is due. Never before the run's lease ends, so that it
/// finds the resource free, and takes over a run that died. `None`: nothing to put back, or
/// no change with a try left.
pub fn retry_of(next: &ResourceState, now: DateTime<Utc>) -> Option<(u32, DateTime<Utc>)> {
    let newest = next.reverts.last()?;
    if !next.reverts.iter().any(Revert::has_tries_left) {
        return None;
    }
    let due = after(now, retry_wait(newest.failures));
    let at = next
        .lease
        .as_ref()
        .map_or(due, |lease| lease.expires_at.max(due));
    Some((next.revert_checks, at))
}

/// The inputs of one revert follow-up's decision.
#[derive(Debug, Clone, Copy)]
pub struct RevertCheckInput<'a> {
    pub policy: &'a Policy,
    pub state: &'a ResourceState,
    pub follow_up: &'a FollowUp,
    pub event_id: &'a str,
    /// The alarm now; `None`: CloudWatch does not know it.
    pub reading: Option<AlarmReading>,
    /// This follow-up's event id was already claimed.
    pub event_seen: bool,
    pub run_id: &'a str,
    pub now: DateTime<Utc>,
}

/// Decides what a follow-up that retries putting changes back does.
pub fn decide_revert_check(input: RevertCheckInput<'_>) -> Transition {
    let RevertCheckInput {
        state,
        follow_up,
        event_id,
        reading,
        event_seen,
        now,
        ..
    } = input;
    let lease = state.lease.as_ref();
    if event_seen {
        // A run of this very follow-up claimed the resource and died: repeat its revert.
        return match lease {
            Some(lease)
                if lease.event_id == event_id
                    && !lease.is_held(now)
                    && !state.reverts.is_empty() =>
            {
                put_back(&input, lease.attempt, true)
            }
            _ => ignore(SkipReason::Duplicate),
        };
    }
    // Another run (an OK, a resolution) put everything back: nothing is done twice.
    if state.reverts.is_empty() {
        return ignore(SkipReason::Duplicate);
    }
    // A later run that puts changes back scheduled its own retry: only the latest acts.
    if state.revert_checks != follow_up.check {
        return ignore(SkipReason::Superseded);
    }
    // A heal holds the resource: its incident puts the changes back when it resolves.
    if lease.is_some_and(|lease| lease.is_held(now)) {
        return ignore(SkipReason::InProgress);
    }
    // The alarm fires again: the change is needed again, and waits for the next OK.
    if reading.is_some_and(|reading| reading.state == AlarmState::Alarm) {
        return ignore(SkipReason::Stale);
    }
    // An older change is never put back over a newer one left in place.
    if !state.reverts.last().is_some_and(Revert::has_tries_left) {
        return ignore(SkipReason::Escalated);
    }
    let attempt = state
        .incident
        .as_ref()
        .map_or(0, |incident| incident.attempts);
    put_back(&input, attempt, false)
}

/// Claims the resource to put the changes back, counting the retry this run schedules.
fn put_back(input: &RevertCheckInput<'_>, attempt: u32, takeover: bool) -> Transition {
    let mut next = input.state.clone();
    next.version += 1;
    next.count_revert_check();
    next.lease = Some(Lease {
        run_id: input.run_id.to_owned(),
        event_id: input.event_id.to_owned(),
        attempt,
        expires_at: after(input.now, input.policy.lease_seconds),
    });
    Transition {
        decision: Decision::Revert {
            incident_id: input.follow_up.incident_id.clone(),
            attempt,
            takeover,
        },
        next: Some(next),
    }
}
