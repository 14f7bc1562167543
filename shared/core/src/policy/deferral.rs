//! What becomes of a run that may not act now: it is deferred (a budget, a group guard,
//! another rule's heal of the resource, AWS's own healing, a person's hold) and looked at
//! again by a follow-up; it ends because the resource is gone; or, having waited for a
//! person's hold as long as the rule allows, it asks a person. None of these is an attempt:
//! no attempt is counted, no cooldown starts, no budget is spent.

use chrono::{DateTime, Utc};

use crate::model::record::SkipReason;
use crate::model::state::{Incident, ResourceState};
use crate::model::trip::Tripped;
use crate::policy::decision::{Decision, Transition};

/// The incident as `acted` would write it, with nothing of an attempt in it: the attempts,
/// backoff, action under way and resolution as they were stored before.
fn without_attempt(state: &ResourceState, acted: &ResourceState) -> Option<Incident> {
    let mut incident = acted.incident.clone()?;
    let before = state
        .incident
        .as_ref()
        .filter(|before| before.id == incident.id);
    incident.attempts = before.map_or(0, |before| before.attempts);
    incident.last_attempt_at = before.and_then(|before| before.last_attempt_at);
    incident.next_attempt_at = before.and_then(|before| before.next_attempt_at);
    // Nothing was started: no action is under way, and nothing was resolved.
    incident.unfinished = before.is_some_and(|before| before.unfinished);
    incident.steps = before.map_or(0, |before| before.steps);
    incident.step_checks = before.map_or(0, |before| before.step_checks);
    incident.resolved_at = before.and_then(|before| before.resolved_at);
    Some(incident)
}

/// Turns a run the governor or the resource does not allow now into a deferral: the incident
/// is opened (or kept) without counting an attempt or starting a cooldown, and its next
/// check, a new number, is due `until`. `acted` is the state the run would have written (an
/// attempt's, a revert's or a resolution's).
pub fn defer(
    state: &ResourceState,
    acted: &ResourceState,
    tripped: Tripped,
    until: DateTime<Utc>,
) -> Option<Transition> {
    let mut incident = without_attempt(state, acted)?;
    let before = state
        .incident
        .as_ref()
        .filter(|before| before.id == incident.id);
    incident.deferrals = before
        .map_or(0, |before| before.deferrals)
        .saturating_add(1);
    // An attempt's state already counts its check; a revert's or resolution's does not.
    incident.checks = incident
        .checks
        .max(before.map_or(0, |before| before.checks).saturating_add(1));
    let mut next = state.clone();
    next.version = acted.version;
    let incident_id = incident.id.clone();
    next.incident = Some(incident);
    Some(Transition {
        decision: Decision::Defer {
            incident_id,
            until,
            tripped,
        },
        next: Some(next),
    })
}

/// The attempt `acted` would make, on a resource that does not exist: the incident is
/// closed as resolved, and nothing else changes.
pub fn gone(
    state: &ResourceState,
    acted: &ResourceState,
    summary: String,
    now: DateTime<Utc>,
) -> Option<Transition> {
    let mut incident = without_attempt(state, acted)?;
    incident.resolved_at = Some(now);
    let mut next = state.clone();
    next.version = acted.version;
    let incident_id = incident.id.clone();
    next.incident = Some(incident);
    Some(Transition {
        decision: Decision::Gone {
            incident_id,
            summary,
        },
        next: Some(next),
    })
}

/// The attempt `acted` would make, on a resource a person has held as long as the rule
/// waits: a person is asked, once per incident, and nothing is done.
pub fn hold_past_wait(
    state: &ResourceState,
    acted: &ResourceState,
    now: DateTime<Utc>,
) -> Option<Transition> {
    let mut incident = without_attempt(state, acted)?;
    let escalate = incident.escalated_at.is_none();
    incident.escalated_at.get_or_insert(now);
    incident.ok_since = None;
    let mut next = state.clone();
    next.version = acted.version;
    next.incident = Some(incident);
    Some(Transition {
        decision: Decision::Skip {
            reason: SkipReason::OperatorHold,
            escalate,
        },
        next: Some(next),
    })
}
