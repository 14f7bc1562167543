//! The pure decision: given an alarm state change, a rule's policy and the resource's incident
//! state, act or skip, and what the state becomes. No clock, no randomness, no I/O: `now` and
//! the ids come in, so every branch is a plain unit or property test.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::event::AlarmState;
use crate::record::SkipReason;
use crate::revert::Revert;
use crate::rules::Policy;

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
    /// (`crate::followup`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub checks: u32,
    /// How many of those checks were deferrals by the safety governor (a budget, a group
    /// guard): they wait for the governor, not for the alarm, so they do not count against
    /// the checks an incident may spend waiting for its alarm.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub deferrals: u32,
    /// The current attempt's action has not reported its end: it continues in a follow-up
    /// (a multi-step action), or its run died. A follow-up resumes it with the same attempt
    /// and idempotency token instead of starting a new attempt.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unfinished: bool,
    /// The follow-ups that resumed the current attempt's action (bounded by
    /// `crate::followup::MAX_ACTION_STEPS`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub steps: u32,
    /// Set when a follow-up verified the alarm OK for the stable period, or an operator reset
    /// the incident: it is closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<DateTime<Utc>>,
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
            resolved_at: None,
        }
    }

    /// Closed: resolved, or OK has held for the stable period.
    pub fn is_closed(&self, policy: &Policy, now: DateTime<Utc>) -> bool {
        self.resolved_at.is_some()
            || self
                .ok_since
                .is_some_and(|since| now - since >= seconds(policy.stable_period_seconds))
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
        reason: crate::followup::Pending,
    },
    /// An attempt a budget does not allow: recorded (`budget`), not counted as an attempt; the
    /// incident's next check is due `until` the budget reopens.
    Defer {
        incident_id: String,
        until: DateTime<Utc>,
        tripped: crate::budget::Tripped,
    },
    /// Nothing to do and nothing to record (e.g. OK with no open incident).
    Ignore { reason: SkipReason },
}

/// A decision and the state to store with it (`None`: store nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub decision: Decision,
    pub next: Option<ResourceState>,
}

/// `value` seconds, saturating at the longest `Duration` (`Duration::seconds` panics past it).
pub(crate) fn seconds(value: u64) -> Duration {
    i64::try_from(value)
        .ok()
        .and_then(Duration::try_seconds)
        .unwrap_or(Duration::MAX)
}

/// `value` seconds after `at`, saturating at the latest representable instant: a huge
/// cooldown or lease in the rules file means "never", not a panic.
pub(crate) fn after(at: DateTime<Utc>, value: u64) -> DateTime<Utc> {
    at.checked_add_signed(seconds(value))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
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
