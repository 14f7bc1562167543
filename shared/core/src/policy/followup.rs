//! The closed loop. CloudWatch sends one event per state change, so a heal that fails or does
//! not fix the problem brings no new event. After every attempt autoheal therefore schedules
//! its own follow-up, which reads the alarm back and decides, purely, here:
//!
//! - OK for the rule's stable period → the incident is resolved (time to recover recorded);
//! - OK for less → check again when the stable period is over;
//! - still ALARM → the next attempt (the follow-up is due when its backoff is), or, with the
//!   attempts spent, one escalation;
//! - no data, or the alarm gone → check again a bounded number of times, then escalate.
//!
//! A follow-up names the check it is (`Incident::checks` when it was scheduled): a redelivery is
//! a duplicate (its event id is claimed like an alarm's), and a check that a newer one replaced,
//! or whose incident closed, does nothing.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::model::event::{AlarmEvent, AlarmKind, AlarmState, EventError};
use crate::model::layer::Layer;
use crate::model::record::SkipReason;
use crate::model::resource_id;
use crate::model::rules::{Policy, Rule, RuleSet};
use crate::model::state::{Incident, Lease, ResourceState};
use crate::model::time::after;
use crate::policy::decision::{
    Decision, DecisionInput, Pending, Transition, attempt_wait, claimed, decide, ignore,
    stable_hash,
};
use crate::policy::resolve::NotSelected;

/// The `detail-type` of a follow-up's payload.
pub const CHECK_DETAIL_TYPE: &str = "autoheal.check";
/// The `source` of a follow-up's payload.
pub const CHECK_SOURCE: &str = "autoheal";

/// Checks beyond one per attempt (waiting for data, for the backoff, for the stable period)
/// that an incident may use before autoheal stops waiting and asks a person.
pub const MAX_EXTRA_CHECKS: u32 = 10;

/// The follow-ups that may resume one attempt's action (its steps, or a run that died)
/// before autoheal asks a person: at two minutes a step, about eight hours of snapshots.
pub const MAX_ACTION_STEPS: u32 = 240;

/// The largest payload a follow-up's schedule may carry (EventBridge Scheduler's input limit).
pub const MAX_PAYLOAD_BYTES: usize = 8192;

/// How much of the alarm's free text (its state reason, a composite's rule, a metric-math
/// expression) a follow-up carries: the check reads the alarm back and needs none of it in
/// full; an action that quotes the reason quotes its start.
const KEPT_TEXT_CHARS: usize = 512;

/// The shortest wait before a check that found no data looks again.
const NO_DATA_RECHECK_SECONDS: u64 = 60;

/// What a follow-up is for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FollowUpKind {
    /// Verifies the incident's attempt: resolves, retries or escalates (this module).
    #[default]
    Check,
    /// Retries putting back the changes a failed revert left (`policy::revert`).
    Revert,
}

impl FollowUpKind {
    fn is_check(&self) -> bool {
        *self == FollowUpKind::Check
    }
}

/// A scheduled check of one incident, or retry of a revert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FollowUp {
    pub layer: Layer,
    pub rule: String,
    pub resource_id: String,
    pub incident_id: String,
    /// Which of the incident's checks this is (`Incident::checks` when it was scheduled); for
    /// a revert follow-up, which of the resource's (`ResourceState::revert_checks`).
    pub check: u32,
    /// A check of the incident, or a retry of putting back what heals changed.
    #[serde(default, skip_serializing_if = "FollowUpKind::is_check")]
    pub kind: FollowUpKind,
    /// The alarm event that drove the incident: its name is read back, and the healer sees it
    /// as it saw the original event.
    pub alarm: AlarmEvent,
}

impl FollowUp {
    /// The follow-up of check `check`, carrying the alarm `origin` within the schedule's
    /// limit: its free text shortened, and, should that not do, only autoheal's own tags (a
    /// composite alarm's rule and reason can be 10 KB on their own).
    pub fn new(
        layer: Layer,
        rule: String,
        resource_id: String,
        incident_id: String,
        check: u32,
        origin: &AlarmEvent,
    ) -> FollowUp {
        let mut alarm = origin.clone();
        alarm.state_reason = alarm.state_reason.map(|reason| shortened(&reason));
        match &mut alarm.kind {
            AlarmKind::Composite { alarm_rule } => *alarm_rule = shortened(alarm_rule),
            AlarmKind::MetricMath { expression, .. } => {
                *expression = expression.as_deref().map(shortened);
            }
            AlarmKind::Metric { .. } | AlarmKind::AnomalyDetection { .. } => {}
        }
        let mut follow_up = FollowUp {
            layer,
            rule,
            resource_id,
            incident_id,
            check,
            kind: FollowUpKind::Check,
            alarm,
        };
        if follow_up.payload_bytes() > MAX_PAYLOAD_BYTES {
            follow_up
                .alarm
                .alarm_tags
                .retain(|key, _| key.starts_with("autoheal:"));
        }
        follow_up
    }

    /// The follow-up that retries putting back what heals changed, number `check` of the
    /// resource's (`ResourceState::revert_checks`).
    #[must_use]
    pub fn retrying_revert(mut self) -> FollowUp {
        self.kind = FollowUpKind::Revert;
        self
    }

    /// The size of the payload its schedule carries.
    pub fn payload_bytes(&self) -> usize {
        self.to_payload().to_string().len()
    }

    /// The event id of this check: claimed like an alarm event's, so redeliveries and a
    /// schedule that fires twice are duplicates.
    pub fn event_id(&self) -> String {
        match self.kind {
            FollowUpKind::Check => format!("{}#check-{}", self.incident_id, self.check),
            FollowUpKind::Revert => format!("{}#revert-{}", self.incident_id, self.check),
        }
    }

    /// A schedule name unique per check (EventBridge Scheduler refuses a second schedule of
    /// the same name, which makes scheduling idempotent): at most 64 of `[0-9A-Za-z-_.]`.
    pub fn schedule_name(&self) -> String {
        let key = format!(
            "{}\u{1f}{}\u{1f}{}",
            self.rule, self.resource_id, self.incident_id
        );
        let hash = stable_hash(&key, 0);
        match self.kind {
            FollowUpKind::Check => format!("autoheal-{hash:016x}-{}", self.check),
            FollowUpKind::Revert => format!("autoheal-{hash:016x}-r{}", self.check),
        }
    }

    /// The payload the schedule delivers to the layer's function.
    pub fn to_payload(&self) -> Value {
        json!({
            "version": "0",
            "id": self.event_id(),
            "source": CHECK_SOURCE,
            "detail-type": CHECK_DETAIL_TYPE,
            "detail": self,
        })
    }

    /// The follow-up in `payload`, or `None` when the payload is something else (an alarm
    /// event); an error when it says it is a follow-up but is not a valid one.
    pub fn from_payload(payload: &Value) -> Result<Option<FollowUp>, EventError> {
        if payload.get("detail-type").and_then(Value::as_str) != Some(CHECK_DETAIL_TYPE) {
            return Ok(None);
        }
        if payload.get("source").and_then(Value::as_str) != Some(CHECK_SOURCE) {
            return Err(EventError::Source(
                payload
                    .get("source")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            ));
        }
        crate::model::event::check_size(payload)?;
        let detail = payload
            .get("detail")
            .ok_or(EventError::MissingField("detail"))?;
        let follow_up: FollowUp =
            serde_path_to_error::deserialize(detail).map_err(|e| EventError::Detail {
                path: e.path().to_string(),
                message: e.inner().to_string(),
            })?;
        // The alarm it carries is held to the limits of an alarm event.
        if follow_up.alarm.alarm_name.trim().is_empty() {
            return Err(EventError::MissingField("alarmName"));
        }
        crate::model::event::check_alarm_name(&follow_up.alarm.alarm_name)?;
        Ok(Some(follow_up))
    }

    /// The rule this check runs for `layer`'s function, or why it runs none: the rule is
    /// another layer's, disabled or gone, or the check's resource id is not of the format the
    /// rule's action needs (a payload can be forged like any event).
    pub fn select<'r>(
        &self,
        rules: &'r RuleSet,
        layer: Layer,
    ) -> Result<&'r Rule, NotSelected<'r>> {
        let not_selected = |rule, reason, detail| NotSelected {
            rule,
            reason,
            detail,
        };
        let rule = match rules.get(&self.rule) {
            Some(rule) if rule.layer != layer => {
                return Err(not_selected(
                    Some(rule),
                    SkipReason::OtherLayer,
                    format!("rule `{}` belongs to the {} layer", rule.name, rule.layer),
                ));
            }
            Some(rule) if rule.enabled => rule,
            Some(rule) => {
                return Err(not_selected(
                    Some(rule),
                    SkipReason::RuleDisabled,
                    format!(
                        "rule `{}` was disabled since the check was scheduled",
                        rule.name
                    ),
                ));
            }
            None => {
                return Err(not_selected(
                    None,
                    SkipReason::NoMatchingRule,
                    format!("rule `{}` is no longer deployed", self.rule),
                ));
            }
        };
        if self.resource_id.trim().is_empty() {
            return Err(not_selected(
                Some(rule),
                SkipReason::EmptyResourceId,
                "the check names an empty resource id".to_owned(),
            ));
        }
        resource_id::validate(rule.action.resource_kind(), &self.resource_id, &self.alarm)
            .map_err(|detail| not_selected(Some(rule), SkipReason::InvalidResourceId, detail))?;
        Ok(rule)
    }
}

/// An alarm's state as CloudWatch reports it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlarmReading {
    pub state: AlarmState,
    /// When the alarm entered this state.
    pub since: DateTime<Utc>,
}

/// The inputs of one check's decision.
#[derive(Debug, Clone, Copy)]
pub struct CheckInput<'a> {
    pub policy: &'a Policy,
    pub state: &'a ResourceState,
    pub follow_up: &'a FollowUp,
    pub event_id: &'a str,
    /// `None`: CloudWatch does not know the alarm (deleted).
    pub reading: Option<AlarmReading>,
    /// This check's event id was already claimed.
    pub event_seen: bool,
    /// The healer found the resource gone (terminated, deleted): asked only when the alarm
    /// has no data or is gone itself, as an alarm on a vanished resource does.
    pub gone: bool,
    pub run_id: &'a str,
    pub now: DateTime<Utc>,
}

/// Decides what one follow-up does.
pub fn decide_check(input: CheckInput<'_>) -> Transition {
    let CheckInput {
        policy,
        state,
        follow_up,
        event_id,
        reading,
        event_seen,
        now,
        ..
    } = input;
    let incident = state
        .incident
        .as_ref()
        .filter(|incident| incident.id == follow_up.incident_id);
    if event_seen {
        // A run of this very check claimed the resource and died: repeat what it claimed.
        if let (Some(lease), Some(incident)) = (&state.lease, incident)
            && lease.event_id == event_id
            && !lease.is_held(now)
        {
            return match incident.resolved_at {
                Some(_) => resolve(&input, incident, lease.attempt, true),
                None => {
                    let alarm = alarm_input(&input);
                    decide(DecisionInput {
                        event_seen: true,
                        ..alarm
                    })
                }
            };
        }
        return ignore(SkipReason::Duplicate);
    }
    let Some(incident) = incident.filter(|incident| incident.resolved_at.is_none()) else {
        return ignore(SkipReason::NoOpenIncident);
    };
    if incident.checks != follow_up.check {
        return ignore(SkipReason::Superseded);
    }
    if incident.escalated_at.is_some() {
        return ignore(SkipReason::Escalated);
    }
    // An action under way is carried to its end whatever the alarm says now (a step may
    // clean up what an earlier one made); the healer sees the alarm's state and skips what
    // is no longer needed.
    if incident.unfinished {
        return resume(&input, incident);
    }
    if input.gone && reading.is_none_or(|reading| reading.state == AlarmState::InsufficientData) {
        return resolve(&input, incident, incident.attempts, false);
    }
    let Some(reading) = reading else {
        return escalate(state, SkipReason::Unverifiable, now);
    };
    match reading.state {
        AlarmState::Ok => {
            let stable_at = after(reading.since, policy.stable_period_seconds);
            if now >= stable_at {
                resolve(&input, incident, incident.attempts, false)
            } else {
                recheck(
                    state,
                    incident,
                    policy,
                    stable_at,
                    Pending::Stabilizing,
                    now,
                )
            }
        }
        AlarmState::InsufficientData => {
            let wait = policy.cooldown_seconds.max(NO_DATA_RECHECK_SECONDS);
            recheck(
                state,
                incident,
                policy,
                after(now, wait),
                Pending::NoData,
                now,
            )
        }
        AlarmState::Alarm => {
            let transition = decide(alarm_input(&input));
            match transition.decision {
                Decision::Skip {
                    reason: SkipReason::Backoff | SkipReason::Cooldown,
                    ..
                } => {
                    let due = due_at(state, incident, policy).max(now);
                    recheck(state, incident, policy, due, Pending::NotDue, now)
                }
                Decision::Skip {
                    reason: SkipReason::InProgress,
                    ..
                } => {
                    let free = state
                        .lease
                        .as_ref()
                        .map_or(now, |lease| lease.expires_at)
                        .max(now);
                    recheck(state, incident, policy, free, Pending::InProgress, now)
                }
                _ => transition,
            }
        }
    }
}

/// Resumes the incident's unfinished action: the same attempt and idempotency token, a new
/// lease, and the next check (a safety net should this run die too, and the verification
/// once the action ends) after the attempt's backoff.
fn resume(input: &CheckInput<'_>, incident: &Incident) -> Transition {
    let CheckInput {
        policy, state, now, ..
    } = *input;
    if let Some(lease) = state.lease.as_ref().filter(|lease| lease.is_held(now)) {
        let free = lease.expires_at.max(now);
        return recheck(state, incident, policy, free, Pending::InProgress, now);
    }
    if incident.steps >= MAX_ACTION_STEPS {
        return escalate(state, SkipReason::Unfinished, now);
    }
    let attempt = incident.attempts;
    let wait = attempt_wait(policy, &incident.id, attempt);
    let mut next = claimed(&alarm_input(input), attempt);
    next.incident = Some(Incident {
        next_attempt_at: Some(after(now, wait)),
        checks: incident.checks.saturating_add(1),
        steps: incident.steps.saturating_add(1),
        step_checks: incident.step_checks.saturating_add(1),
        ..incident.clone()
    });
    Transition {
        decision: Decision::Act {
            attempt,
            incident_id: incident.id.clone(),
            new_incident: false,
            takeover: false,
            resumed: true,
        },
        next: Some(next),
    }
}

/// The check as the ALARM it stands for.
fn alarm_input<'a>(input: &CheckInput<'a>) -> DecisionInput<'a> {
    DecisionInput {
        policy: input.policy,
        state: input.state,
        alarm: AlarmState::Alarm,
        event_id: input.event_id,
        event_seen: input.event_seen,
        run_id: input.run_id,
        now: input.now,
    }
}

/// When the incident's next attempt may start: after its backoff and the rule's cooldown.
fn due_at(state: &ResourceState, incident: &Incident, policy: &Policy) -> DateTime<Utc> {
    let cooldown_over = state
        .last_action_at
        .map(|last| after(last, policy.cooldown_seconds));
    incident
        .next_attempt_at
        .into_iter()
        .chain(cooldown_over)
        .max()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// `text` cut to its first `KEPT_TEXT_CHARS` characters, saying so.
fn shortened(text: &str) -> String {
    match text.char_indices().nth(KEPT_TEXT_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// The next check, or, once the incident used all the checks it may, an escalation.
fn recheck(
    state: &ResourceState,
    incident: &Incident,
    policy: &Policy,
    at: DateTime<Utc>,
    reason: Pending,
    now: DateTime<Utc>,
) -> Transition {
    // Deferrals and the steps of long actions each took a check number without verifying.
    let allowed = policy
        .max_attempts
        .saturating_add(MAX_EXTRA_CHECKS)
        .saturating_add(incident.deferrals)
        .saturating_add(incident.step_checks);
    if incident.checks >= allowed {
        return escalate(state, SkipReason::Unverifiable, now);
    }
    let mut next = state.clone();
    next.version += 1;
    if let Some(open) = next.incident.as_mut() {
        open.checks += 1;
    }
    Transition {
        decision: Decision::Recheck {
            incident_id: incident.id.clone(),
            at,
            reason,
        },
        next: Some(next),
    }
}

/// Gives up on the incident: one escalation, then nothing until it resolves or is reset.
fn escalate(state: &ResourceState, reason: SkipReason, now: DateTime<Utc>) -> Transition {
    let mut next = state.clone();
    next.version += 1;
    if let Some(open) = next.incident.as_mut() {
        open.escalated_at = Some(now);
    }
    Transition {
        decision: Decision::Skip {
            reason,
            escalate: true,
        },
        next: Some(next),
    }
}

/// Claims the resource to close the incident as resolved (and put back what heals changed).
fn resolve(
    input: &CheckInput<'_>,
    incident: &Incident,
    attempt: u32,
    takeover: bool,
) -> Transition {
    let now = input.now;
    let recovered_at = match (takeover, input.reading) {
        (true, _) | (false, None) => incident.ok_since.unwrap_or(now),
        (false, Some(reading)) => reading.since.min(now),
    };
    let mut next = input.state.clone();
    next.version += 1;
    next.count_revert_check();
    next.lease = Some(Lease {
        run_id: input.run_id.to_owned(),
        event_id: input.event_id.to_owned(),
        attempt,
        expires_at: after(now, input.policy.lease_seconds),
    });
    if let Some(open) = next.incident.as_mut() {
        open.ok_since = Some(recovered_at);
        open.resolved_at.get_or_insert(now);
    }
    Transition {
        decision: Decision::Resolve {
            incident_id: incident.id.clone(),
            attempt,
            recovered_at,
            takeover,
            gone: input.gone,
        },
        next: Some(next),
    }
}

/// Seconds from the incident's first ALARM to the alarm's return to OK.
pub fn time_to_recover(incident: &Incident, recovered_at: DateTime<Utc>) -> i64 {
    (recovered_at - incident.opened_at).num_seconds().max(0)
}
