//! The pure decision: given an alarm state change, a rule's policy and the resource's incident
//! state, act or skip, and what the state becomes. No clock, no randomness, no I/O: `now` and
//! the ids come in, so every branch is a plain unit or property test.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::model::event::AlarmState;
use crate::model::record::SkipReason;
use crate::model::rules::rule::Policy;
use crate::model::state::{Incident, Lease, ResourceState};
use crate::model::time::after;
use crate::model::trip::Tripped;

/// The inputs of one decision.
#[derive(Debug, Clone, Copy)]
pub struct DecisionInput<'a> {
    pub policy: &'a Policy,
    pub state: &'a ResourceState,
    pub alarm: AlarmState,
    pub event_id: &'a str,
    /// This event id was already recorded for this resource.
    pub event_seen: bool,
    /// The id of this invocation's run (for the lease).
    pub run_id: &'a str,
    pub now: DateTime<Utc>,
}

/// What to do with the event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "kebab-case")]
pub enum Decision {
    /// Heal: run the action as this attempt of this incident.
    Act {
        attempt: u32,
        incident_id: String,
        new_incident: bool,
        /// The previous holder of this event's claim died; this run repeats its attempt with
        /// the same idempotency token.
        takeover: bool,
        /// A follow-up resumes the attempt's unfinished action (its next step, or what a run
        /// that died left), with the same idempotency token; not a new attempt.
        resumed: bool,
    },
    /// Do nothing but record why. `escalate` is set once per incident when its attempts are
    /// spent and the alarm is still on.
    Skip { reason: SkipReason, escalate: bool },
    /// OK: the incident is recovering; it closes once OK holds for the stable period.
    Recovering { incident_id: String },
    /// OK while heals' changes wait to be put back: claim the resource and revert them,
    /// newest first. `takeover`: the run that claimed this OK event died; repeat its revert.
    Revert {
        incident_id: String,
        attempt: u32,
        takeover: bool,
    },
    /// A follow-up found the alarm OK for the stable period: claim the resource, put back
    /// what heals changed, and close the incident as resolved.
    Resolve {
        incident_id: String,
        attempt: u32,
        /// When the alarm returned to OK (the end of the time to recover).
        recovered_at: DateTime<Utc>,
        takeover: bool,
        /// The resource no longer exists (replaced by its group, deleted): nothing is left to
        /// heal, whatever its alarm says.
        gone: bool,
    },
    /// A follow-up that cannot conclude yet: schedule the next check at `at` (the state's
    /// `checks` already counts it).
    Recheck {
        incident_id: String,
        at: DateTime<Utc>,
        reason: Pending,
    },
    /// An attempt a budget does not allow: recorded (`budget`), not counted as an attempt; the
    /// incident's next check is due `until` the budget reopens.
    Defer {
        incident_id: String,
        until: DateTime<Utc>,
        tripped: Tripped,
    },
    /// The resource does not exist: the incident closes, recorded (`gone`), with no attempt,
    /// no budget spent and no failure notice.
    Gone {
        incident_id: String,
        summary: String,
    },
    /// Nothing to do and nothing to record (e.g. OK with no open incident).
    Ignore { reason: SkipReason },
}

/// Why a check could not conclude and looks again later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pending {
    /// OK, but not yet for the stable period.
    Stabilizing,
    /// The alarm has no data (INSUFFICIENT_DATA), e.g. while an instance restarts.
    NoData,
    /// Still ALARM, but the next attempt is not due yet (backoff or cooldown).
    NotDue,
    /// Another run holds the resource.
    InProgress,
}

impl Pending {
    pub fn as_str(self) -> &'static str {
        match self {
            Pending::Stabilizing => "stabilizing",
            Pending::NoData => "no-data",
            Pending::NotDue => "not-due",
            Pending::InProgress => "in-progress",
        }
    }
}

/// A decision and the state to store with it (`None`: store nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub decision: Decision,
    pub next: Option<ResourceState>,
}

/// Decides what one alarm state change does to one resource.
pub fn decide(input: DecisionInput<'_>) -> Transition {
    let DecisionInput {
        policy,
        state,
        alarm,
        event_id,
        event_seen,
        now,
        ..
    } = input;
    let open = state
        .incident
        .as_ref()
        .filter(|incident| !incident.is_closed(policy, now));

    match alarm {
        AlarmState::InsufficientData => ignore(SkipReason::NotActionable),
        AlarmState::Ok => {
            if let Some(revert) = revert_on_ok(&input, open) {
                return revert;
            }
            if event_seen {
                return ignore(SkipReason::Duplicate);
            }
            recover(state, open, now)
        }
        AlarmState::Alarm => {
            if event_seen {
                // The claim of this very event was taken by an invocation that died before
                // releasing it: repeat that attempt (same token), rather than lose the heal.
                if let (Some(lease), Some(incident)) = (&state.lease, open)
                    && lease.event_id == event_id
                    && !lease.is_held(now)
                {
                    let next = claimed(&input, lease.attempt);
                    return Transition {
                        decision: Decision::Act {
                            attempt: lease.attempt,
                            incident_id: incident.id.clone(),
                            new_incident: false,
                            takeover: true,
                            resumed: false,
                        },
                        next: Some(next),
                    };
                }
                return ignore(SkipReason::Duplicate);
            }
            // An ALARM that does not act still interrupts the incident's recovery: without
            // this, OK-ALARM flapping would close the incident after the stable period counted
            // from the first OK, and reset its attempts while the alarm keeps firing.
            let skip = |reason: SkipReason| match open {
                Some(incident) if incident.ok_since.is_some() => {
                    let mut next = state.clone();
                    next.version += 1;
                    if let Some(open) = next.incident.as_mut() {
                        open.ok_since = None;
                    }
                    Transition {
                        decision: Decision::Skip {
                            reason,
                            escalate: false,
                        },
                        next: Some(next),
                    }
                }
                _ => skip(reason),
            };
            if state.lease.as_ref().is_some_and(|lease| lease.is_held(now)) {
                return skip(SkipReason::InProgress);
            }
            let (incident, new_incident) = match open {
                Some(incident) => (incident.clone(), false),
                None => (Incident::open(event_id, now), true),
            };
            if incident.attempts >= policy.max_attempts {
                if incident.escalated_at.is_some() {
                    return skip(SkipReason::MaxAttempts);
                }
                let mut next = state.clone();
                next.version += 1;
                next.incident = Some(Incident {
                    escalated_at: Some(now),
                    ok_since: None,
                    ..incident
                });
                return Transition {
                    decision: Decision::Skip {
                        reason: SkipReason::MaxAttempts,
                        escalate: true,
                    },
                    next: Some(next),
                };
            }
            if state
                .last_action_at
                .is_some_and(|last| now < after(last, policy.cooldown_seconds))
            {
                return skip(SkipReason::Cooldown);
            }
            if incident.next_attempt_at.is_some_and(|due| now < due) {
                return skip(SkipReason::Backoff);
            }
            let attempt = incident.attempts + 1;
            let wait = attempt_wait(policy, &incident.id, attempt);
            let mut next = claimed(&input, attempt);
            let incident_id = incident.id.clone();
            // Every attempt schedules its follow-up: the check that verifies it.
            next.incident = Some(Incident {
                attempts: attempt,
                last_attempt_at: Some(now),
                next_attempt_at: Some(after(now, wait)),
                ok_since: None,
                checks: incident.checks + 1,
                unfinished: true,
                steps: 0,
                ..incident
            });
            Transition {
                decision: Decision::Act {
                    attempt,
                    incident_id,
                    new_incident,
                    takeover: false,
                    resumed: false,
                },
                next: Some(next),
            }
        }
    }
}

/// OK on a resource with nothing to put back: the open incident starts (or keeps) recovering.
fn recover(state: &ResourceState, open: Option<&Incident>, now: DateTime<Utc>) -> Transition {
    match open {
        Some(incident) if incident.ok_since.is_some() => Transition {
            decision: Decision::Recovering {
                incident_id: incident.id.clone(),
            },
            next: None,
        },
        Some(incident) => {
            let mut next = state.clone();
            next.version += 1;
            if let Some(open) = next.incident.as_mut() {
                open.ok_since = Some(now);
            }
            Transition {
                decision: Decision::Recovering {
                    incident_id: incident.id.clone(),
                },
                next: Some(next),
            }
        }
        None => ignore(SkipReason::NoOpenIncident),
    }
}

/// OK with heals' changes to put back and no other run holding the resource: a revert, which
/// also starts the incident's recovery. The claim of the OK event makes its redeliveries
/// duplicates; if the run that claimed it died, a redelivery repeats the revert.
fn revert_on_ok(input: &DecisionInput<'_>, open: Option<&Incident>) -> Option<Transition> {
    let state = input.state;
    if state.reverts.is_empty() {
        return None;
    }
    let lease = state.lease.as_ref();
    let takeover = match lease {
        Some(lease) if lease.is_held(input.now) => return None,
        // This very OK event's revert run died (its claim and lease were written together).
        Some(lease) if lease.event_id == input.event_id => true,
        _ if input.event_seen => return None,
        _ => false,
    };
    let attempt = match (takeover, lease) {
        (true, Some(lease)) => lease.attempt,
        _ => state
            .incident
            .as_ref()
            .map_or(0, |incident| incident.attempts),
    };
    let mut next = state.clone();
    next.version += 1;
    next.count_revert_check();
    next.lease = Some(Lease {
        run_id: input.run_id.to_owned(),
        event_id: input.event_id.to_owned(),
        attempt,
        expires_at: after(input.now, input.policy.lease_seconds),
    });
    if open.is_some()
        && let Some(incident) = next.incident.as_mut()
    {
        incident.ok_since.get_or_insert(input.now);
    }
    let incident_id = state
        .incident
        .as_ref()
        .map_or_else(|| input.event_id.to_owned(), |incident| incident.id.clone());
    Some(Transition {
        decision: Decision::Revert {
            incident_id,
            attempt,
            takeover,
        },
        next: Some(next),
    })
}

/// The state once this run claims the resource for `attempt`: a new version, the action
/// time (cooldown), and this run's lease.
pub(crate) fn claimed(input: &DecisionInput<'_>, attempt: u32) -> ResourceState {
    let mut next = input.state.clone();
    next.version += 1;
    next.last_action_at = Some(input.now);
    next.lease = Some(Lease {
        run_id: input.run_id.to_owned(),
        event_id: input.event_id.to_owned(),
        attempt,
        expires_at: after(input.now, input.policy.lease_seconds),
    });
    next
}

pub(crate) fn ignore(reason: SkipReason) -> Transition {
    Transition {
        decision: Decision::Ignore { reason },
        next: None,
    }
}

fn skip(reason: SkipReason) -> Transition {
    Transition {
        decision: Decision::Skip {
            reason,
            escalate: false,
        },
        next: None,
    }
}

/// Seconds to wait after `attempt` before the next one: exponential in the attempt, capped,
/// with "equal jitter" (half fixed, half spread) so a fleet of resources that failed together
/// does not retry in lockstep. Never shorter than the cooldown.
pub fn attempt_wait(policy: &Policy, incident_id: &str, attempt: u32) -> u64 {
    let exponent = attempt.saturating_sub(1).min(32);
    let base = policy
        .cooldown_seconds
        .saturating_mul(1u64 << exponent)
        .min(policy.backoff_max_seconds.max(policy.cooldown_seconds));
    let half = base / 2;
    let jitter = stable_hash(incident_id, attempt) % (half + 1);
    (half + jitter).max(policy.cooldown_seconds)
}

/// The idempotency token of one attempt: the same for every delivery and retry of that
/// attempt, different for the next one. Fits EC2's 64-character `ClientToken`.
pub fn idempotency_token(rule: &str, resource_id: &str, incident_id: &str, attempt: u32) -> String {
    let key = format!("{rule}\u{1f}{resource_id}\u{1f}{incident_id}");
    format!(
        "autoheal-{:016x}{:08x}",
        stable_hash(&key, attempt),
        attempt
    )
}

/// FNV-1a: stable across builds and platforms (unlike `std`'s `DefaultHasher`).
pub(crate) fn stable_hash(text: &str, salt: u32) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes().chain(salt.to_le_bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}
