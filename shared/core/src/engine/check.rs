//! The check path: a follow-up reads its alarm back and resolves the incident, retries it or
//! waits; and the scheduling of follow-ups, which every other step uses.

use chrono::{DateTime, Utc};
use tracing::warn;

use super::error::EngineError;
use super::revert::PutBack;
use super::run::{Claim, Run, Step, log};
use super::settings::effective_mode;
use super::{Caller, Engine};
use crate::model::event::{AlarmEvent, AlarmState};
use crate::model::record::{RunPhase, SkipReason};
use crate::model::state::ResourceState;
use crate::policy::decision::Pending;
use crate::policy::followup::{CheckInput, FollowUp, FollowUpKind, decide_check, time_to_recover};
use crate::ports::{
    ClaimResult, Clock, FollowUpError, FollowUps, Healer, Notifier, ResourceKey, StateStore,
};
use crate::report::outcome::{Outcome, Verdict};

impl<S: StateStore, N: Notifier, H: Healer, C: Clock, F: FollowUps> Engine<S, N, H, C, F> {
    /// Runs one follow-up: reads the alarm back and resolves, retries, waits or escalates.
    pub(super) async fn check(
        &self,
        follow_up: FollowUp,
        caller: Caller<'_>,
    ) -> Result<Outcome, EngineError> {
        let run_id = caller.run_id;
        let event_id = follow_up.event_id();
        let event = AlarmEvent {
            id: event_id.clone(),
            ..follow_up.alarm.clone()
        };
        let mut outcome = Outcome::new(Some(self.layer), &event);
        if !self.settings.layer_enabled {
            return Ok(log(outcome.skipped(
                SkipReason::RuleDisabled,
                format!("the {} layer is disabled in this deployment", self.layer),
            )));
        }
        let rule = match follow_up.select(&self.rules, self.layer) {
            Ok(rule) => rule,
            Err(not_selected) => return Ok(log(outcome.not_selected(not_selected))),
        };
        outcome = outcome.with_rule(rule);
        outcome.resource_id = Some(follow_up.resource_id.clone());
        let mode = effective_mode(&self.settings, rule);
        outcome.mode = Some(mode);
        // A place no longer served (the stack's reach changed since) is not reached into.
        let place = match self.reached(&event) {
            Ok(place) => place,
            Err(why) => return Ok(log(outcome.skipped(SkipReason::OutOfReach, why.to_string()))),
        };
        let key = ResourceKey {
            rule: rule.name.clone(),
            resource_id: follow_up.resource_id.clone(),
            place,
        };
        if follow_up.kind == FollowUpKind::Revert {
            return self
                .retry_revert(&follow_up, rule, &key, mode, outcome, caller)
                .await;
        }
        let reading = self
            .follow_ups
            .read_alarm(&follow_up.alarm.alarm_name)
            .await?;
        // An alarm without data, or gone, may be one on a resource that is gone.
        let gone = match reading {
            Some(reading) if reading.state != AlarmState::InsufficientData => false,
            _ => self
                .healer
                .is_gone(rule, &follow_up.resource_id)
                .await
                .unwrap_or_else(|error| {
                    warn!(rule = %rule.name, resource = %follow_up.resource_id, %error, "could not tell whether the resource is gone");
                    false
                }),
        };
        // The healer sees the alarm as it is now: a step of an action under way skips what an
        // alarm back to OK no longer needs.
        let event = AlarmEvent {
            state: reading.map_or(event.state, |reading| reading.state),
            ..event
        };
        outcome.alarm_state = event.state;
        let run = Run {
            engine: self,
            rule,
            key: &key,
            event: &event,
            origin: &follow_up.alarm,
            run_id,
            role_session: caller.role_session,
            mode,
            alarm_now: std::sync::OnceLock::new(),
            scheduled: std::sync::Mutex::new(None),
        };
        let outcome = run
            .execute(outcome, false, |loaded, now| {
                decide_check(CheckInput {
                    policy: &rule.policy,
                    state: &loaded.state,
                    follow_up: &follow_up,
                    event_id: &event_id,
                    reading,
                    event_seen: loaded.event_seen,
                    gone,
                    run_id,
                    now,
                })
            })
            .await?;
        if outcome.decision == Verdict::Resolve && !gone {
            let resolution = "its incident's resolution";
            self.alarm_again(&follow_up.alarm, &event_id, resolution, caller)
                .await?;
        }
        Ok(outcome)
    }

    /// After a run that held the resource to resolve its incident or to put changes back
    /// (`during`), the alarm once more. An ALARM that arrived meanwhile found the lease and
    /// could only be skipped, and CloudWatch sends no other event while the alarm stays on:
    /// if it fires now, it is decided as the event it was (event `<after>#alarm-again`),
    /// under its own run. Deciding it again cannot act twice: an ALARM that did act left its
    /// cooldown and backoff, which this one meets.
    pub(super) async fn alarm_again(
        &self,
        origin: &AlarmEvent,
        after: &str,
        during: &str,
        caller: Caller<'_>,
    ) -> Result<(), EngineError> {
        let Some(reading) = self
            .follow_ups
            .read_alarm(&origin.alarm_name)
            .await?
            .filter(|reading| reading.state == AlarmState::Alarm)
        else {
            return Ok(());
        };
        let event = AlarmEvent {
            id: format!("{after}#alarm-again"),
            time: Some(reading.since),
            state: AlarmState::Alarm,
            previous_state: Some(AlarmState::Ok),
            state_reason: Some(format!(
                "in ALARM again since {}, during {during}",
                reading.since.to_rfc3339()
            )),
            ..origin.clone()
        };
        let run_id = format!("{}#again", caller.run_id);
        let again = Box::pin(self.alarm_event(
            event,
            Caller {
                run_id: &run_id,
                ..caller
            },
        ))
        .await?;
        tracing::info!(
            alarm = %origin.alarm_name,
            decision = ?again.decision,
            reason = again.reason.map(SkipReason::as_str),
            "the alarm fired again during {during}"
        );
        Ok(())
    }
}

impl<S: StateStore, N: Notifier, H: Healer, C: Clock, F: FollowUps> Run<'_, S, N, H, C, F> {
    /// Claims the resource to close the incident as resolved: what heals changed is put back,
    /// and the time to recover recorded.
    pub(super) async fn claim_and_resolve(
        &self,
        outcome: Outcome,
        claim: Claim<'_>,
        recovered_at: DateTime<Utc>,
        gone: bool,
    ) -> Result<Step, EngineError> {
        // What it puts back is retried by its own follow-up, scheduled before the claim.
        let retry_at = self
            .schedule_revert_retry(claim.incident_id, claim.next)
            .await?;
        let mut record = self.in_progress(&claim, RunPhase::Verify);
        match self.claim(&claim, &record, &[], None).await? {
            ClaimResult::Claimed => {
                let recovered = claim
                    .next
                    .incident
                    .as_ref()
                    .map_or(0, |incident| time_to_recover(incident, recovered_at));
                record
                    .details
                    .insert("time_to_recover_seconds".to_owned(), recovered.to_string());
                record
                    .details
                    .insert("recovered_at".to_owned(), recovered_at.to_rfc3339());
                let PutBack {
                    remaining,
                    mut summaries,
                    exhausted,
                } = self
                    .put_back(
                        &mut record,
                        claim.incident_id,
                        &claim.next.reverts,
                        retry_at,
                    )
                    .await;
                let resolution = if gone {
                    record
                        .details
                        .insert("resolution".to_owned(), "gone".to_owned());
                    format!(
                        "{} no longer exists (replaced or deleted) and {} has no data since {}: \
                         incident resolved after {} attempt(s), {} s to recover",
                        self.key.resource_id,
                        self.event.alarm_name,
                        recovered_at.to_rfc3339(),
                        claim.attempt,
                        recovered
                    )
                } else {
                    format!(
                        "{} OK since {}: incident resolved after {} attempt(s), {} s to recover",
                        self.event.alarm_name,
                        recovered_at.to_rfc3339(),
                        claim.attempt,
                        recovered
                    )
                };
                summaries.insert(0, resolution);
                record.summary = Some(summaries.join("; "));
                let record = self.finish(record, None, &remaining).await?;
                if exhausted {
                    self.escalate_revert(&record, &claim).await;
                }
                let mut outcome = outcome.with_record(record);
                outcome.decision = Verdict::Resolve;
                outcome.escalated = exhausted;
                Ok(Step::Done(outcome))
            }
            ClaimResult::Busy { holder, until } => {
                self.wait_for_lock(outcome, &claim, &holder, until).await
            }
            refused => Ok(self.not_claimed(outcome, refused)),
        }
    }

    /// A follow-up that cannot conclude yet: the next check is scheduled, then counted (a
    /// check scheduled twice for one number is one schedule).
    pub(super) async fn recheck(
        &self,
        mut outcome: Outcome,
        expected: u64,
        next: Option<&ResourceState>,
        incident_id: &str,
        at: DateTime<Utc>,
        reason: Pending,
    ) -> Result<Step, EngineError> {
        let checks = next
            .and_then(|next| next.incident.as_ref())
            .map_or(0, |incident| incident.checks);
        self.schedule(incident_id, checks, at).await?;
        if !self.save(expected, next).await? {
            return Ok(Step::Again(None));
        }
        outcome.decision = Verdict::Recheck;
        outcome.detail = Some(format!(
            "incident {incident_id}: {}; next check at {}",
            reason.as_str(),
            at.to_rfc3339()
        ));
        Ok(Step::Done(outcome))
    }

    /// The check that verifies the attempt `next` claims, and when it is due: when its
    /// backoff ends. A step of an action under way is checked as soon as its lease ends
    /// instead, so that a run that dies mid-step is resumed without waiting for the backoff
    /// (a check that finds the step done waits for the backoff, or resolves an alarm back to
    /// OK).
    pub(super) fn follow_up_of(
        &self,
        next: &ResourceState,
        resumed: bool,
    ) -> Option<(u32, DateTime<Utc>)> {
        let incident = next.incident.as_ref()?;
        let due = incident.next_attempt_at?;
        let at = match next.lease.as_ref() {
            Some(lease) if resumed => lease.expires_at.min(due),
            _ => due,
        };
        Some((incident.checks, at))
    }

    /// Schedules check number `check` of `incident_id` at `at`.
    pub(super) async fn schedule(
        &self,
        incident_id: &str,
        check: u32,
        at: DateTime<Utc>,
    ) -> Result<(), FollowUpError> {
        let follow_up = FollowUp::new(
            self.rule.layer,
            self.rule.name.clone(),
            self.key.resource_id.clone(),
            incident_id.to_owned(),
            check,
            self.origin,
        );
        self.engine.follow_ups.schedule(&follow_up, at).await
    }
}
