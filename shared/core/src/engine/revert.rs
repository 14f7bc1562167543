//! Reverting: what heals changed is put back, newest first, when the alarm returns to OK or
//! the incident resolves; a revert that fails is tried again by its own follow-up, with a
//! growing wait, until it is done or a person is asked to finish it by hand.

use chrono::{DateTime, Utc};

use super::error::EngineError;
use super::run::{Claim, Run, Step};
use super::{Caller, Engine};
use crate::model::event::{AlarmEvent, AlarmState};
use crate::model::record::{HealingRecord, HealingStatus, RunPhase, SkipReason};
use crate::model::revert::{MAX_REVERT_TRIES, Revert};
use crate::model::rules::{Mode, Rule};
use crate::model::state::ResourceState;
use crate::policy::decision::idempotency_token;
use crate::policy::followup::FollowUp;
use crate::policy::revert::{RevertCheckInput, decide_revert_check, retry_of};
use crate::ports::{
    ClaimResult, Clock, FollowUpError, FollowUps, HealOutcome, Healer, Notifier, ResourceKey,
    StateStore,
};
use crate::report::outcome::{Outcome, Verdict};

/// What a put-back left: the changes still to put back, one sentence per change put back (or
/// not), and whether a change just used its last try, so that a person is asked.
pub(super) struct PutBack {
    pub(super) remaining: Vec<Revert>,
    pub(super) summaries: Vec<String>,
    pub(super) exhausted: bool,
}

impl<S: StateStore, N: Notifier, H: Healer, C: Clock, F: FollowUps> Engine<S, N, H, C, F> {
    /// Runs a follow-up that retries putting back what a failed revert left: it puts the
    /// changes back while the alarm is not in ALARM again, and does nothing when another run
    /// put them back first or a later retry replaced it. An alarm that fires again keeps
    /// the changes (they are needed again) and is decided at once, as an ALARM that met the
    /// failed revert's run could only be skipped.
    pub(super) async fn retry_revert(
        &self,
        follow_up: &FollowUp,
        rule: &Rule,
        key: &ResourceKey,
        mode: Mode,
        mut outcome: Outcome,
        caller: Caller<'_>,
    ) -> Result<Outcome, EngineError> {
        let run_id = caller.run_id;
        let event_id = follow_up.event_id();
        let reading = self
            .follow_ups
            .read_alarm(&follow_up.alarm.alarm_name)
            .await?;
        let event = AlarmEvent {
            id: event_id.clone(),
            state: reading.map_or(AlarmState::Ok, |reading| reading.state),
            ..follow_up.alarm.clone()
        };
        outcome.alarm_state = event.state;
        let run = Run {
            engine: self,
            rule,
            key,
            event: &event,
            origin: &follow_up.alarm,
            run_id,
            role_session: caller.role_session,
            mode,
            alarm_now: std::sync::OnceLock::new(),
            scheduled: std::sync::Mutex::new(None),
        };
        let mut outcome = run
            .execute(outcome, false, |loaded, now| {
                decide_revert_check(RevertCheckInput {
                    policy: &rule.policy,
                    state: &loaded.state,
                    follow_up,
                    event_id: &event_id,
                    reading,
                    event_seen: loaded.event_seen,
                    run_id,
                    now,
                })
            })
            .await?;
        let fires = outcome.reason == Some(SkipReason::Stale);
        if let Some(reading) = reading.filter(|_| fires) {
            outcome.detail = Some(format!(
                "{} is in ALARM again since {}: what heals changed is needed again and is put \
                 back at the next OK",
                follow_up.alarm.alarm_name,
                reading.since.to_rfc3339()
            ));
        }
        if fires || outcome.decision == Verdict::Revert {
            self.alarm_again(&follow_up.alarm, &event_id, "a revert", caller)
                .await?;
        }
        Ok(outcome)
    }
}

impl<S: StateStore, N: Notifier, H: Healer, C: Clock, F: FollowUps> Run<'_, S, N, H, C, F> {
    /// Claims the resource for this run's revert and, once claimed, puts the changes back.
    /// The follow-up that retries them is scheduled first: a scheduler that cannot be reached
    /// leaves nothing done and nothing written, and the event is retried.
    pub(super) async fn claim_and_revert(
        &self,
        mut outcome: Outcome,
        claim: Claim<'_>,
    ) -> Result<Step, EngineError> {
        let retry_at = self
            .schedule_revert_retry(claim.incident_id, claim.next)
            .await?;
        let record = self.in_progress(&claim, RunPhase::Revert);
        match self.claim(&claim, &record, &[], None).await? {
            ClaimResult::Claimed => {
                let record = self.revert(record, &claim, retry_at).await?;
                outcome.decision = Verdict::Revert;
                outcome.escalated = is_escalated(&record);
                Ok(Step::Done(outcome.with_record(record)))
            }
            ClaimResult::Busy { holder, until } => {
                self.wait_for_lock(outcome, &claim, &holder, until).await
            }
            refused => Ok(self.not_claimed(outcome, refused)),
        }
    }

    /// Puts back the changes heals made (see [`Self::put_back`]), then records and publishes
    /// the run, and asks a person when a change used its last try.
    async fn revert(
        &self,
        mut record: HealingRecord,
        claim: &Claim<'_>,
        retry_at: Option<DateTime<Utc>>,
    ) -> Result<HealingRecord, EngineError> {
        let PutBack {
            remaining,
            summaries,
            exhausted,
        } = self
            .put_back(
                &mut record,
                claim.incident_id,
                &claim.next.reverts,
                retry_at,
            )
            .await;
        record.summary = (!summaries.is_empty()).then(|| summaries.join("; "));
        let record = self.finish(record, None, &remaining).await?;
        if exhausted {
            self.escalate_revert(&record, claim).await;
        }
        Ok(record)
    }

    /// A change that used its last try: a person is asked, with the incident's history when
    /// the changes are its own.
    pub(super) async fn escalate_revert(&self, record: &HealingRecord, claim: &Claim<'_>) {
        let incident = claim
            .next
            .incident
            .as_ref()
            .filter(|incident| incident.id == claim.incident_id);
        self.escalate(record, incident).await;
    }

    /// Schedules, before the claim of a run that puts back `next.reverts`, the follow-up that
    /// tries again should this run fail or die; when it is due, or `None` when none is (shadow
    /// mode, nothing to put back, no change with a try left).
    pub(super) async fn schedule_revert_retry(
        &self,
        incident_id: &str,
        next: &ResourceState,
    ) -> Result<Option<DateTime<Utc>>, FollowUpError> {
        if self.mode != Mode::Enforce {
            return Ok(None);
        }
        let Some((number, at)) = retry_of(next, self.engine.clock.now()) else {
            return Ok(None);
        };
        let follow_up = FollowUp::new(
            self.rule.layer,
            self.rule.name.clone(),
            self.key.resource_id.clone(),
            incident_id.to_owned(),
            number,
            self.origin,
        )
        .retrying_revert();
        self.engine.follow_ups.schedule(&follow_up, at).await?;
        Ok(Some(at))
    }

    /// Puts back the changes heals made, newest first, and stops at the first that fails:
    /// an older change is only put back over the state the newer one left. What was put back,
    /// or found no longer autoheal's, leaves the list; the change that failed counts the
    /// failure. The record's status and details say how it went: what is left, and when it
    /// is tried again (`retry_at`, the follow-up scheduled before the claim).
    pub(super) async fn put_back(
        &self,
        record: &mut HealingRecord,
        incident_id: &str,
        pending: &[Revert],
        retry_at: Option<DateTime<Utc>>,
    ) -> PutBack {
        let mut remaining = pending.to_vec();
        let mut summaries = Vec::new();
        record.status = HealingStatus::Completed;
        if pending.is_empty() {
            return PutBack {
                remaining,
                summaries,
                exhausted: false,
            };
        }
        if self.mode == Mode::Shadow {
            record.status = HealingStatus::Skipped;
            record.skip_reason = Some(SkipReason::ShadowMode);
            summaries.push(format!(
                "shadow mode: would put back {} change(s) of `{}` on {}",
                pending.len(),
                self.rule.action.kind(),
                self.key.resource_id
            ));
            return PutBack {
                remaining,
                summaries,
                exhausted: false,
            };
        }
        let token = idempotency_token(
            &self.rule.name,
            &self.key.resource_id,
            &format!("{incident_id}#revert"),
            record.attempt,
        );
        let request = self.request(record.attempt, incident_id, &token);
        let numbered = pending.len() > 1;
        while let Some(revert) = remaining.last() {
            let label = format!("revert{}.", remaining.len());
            match self.engine.healer.revert(request, revert).await {
                Ok(HealOutcome::Healed {
                    summary, details, ..
                }) => {
                    summaries.push(summary);
                    for (key, value) in details {
                        let key = if numbered {
                            format!("{label}{key}")
                        } else {
                            key
                        };
                        record.details.insert(key, value);
                    }
                }
                Ok(HealOutcome::Skipped { summary, .. }) => summaries.push(summary),
                Ok(HealOutcome::Continuing { summary, .. }) => {
                    record.status = HealingStatus::Failed;
                    record.error = Some(format!(
                        "a revert must end in one run, but `{}` continues: {summary}",
                        revert.kind
                    ));
                    break;
                }
                Err(error) => {
                    record.status = HealingStatus::Failed;
                    record.error = Some(error.message);
                    break;
                }
            }
            remaining.pop();
        }
        // Only a failure leaves changes in the list.
        let Some(failed) = remaining.last_mut() else {
            return PutBack {
                remaining,
                summaries,
                exhausted: false,
            };
        };
        failed.failures = failed.failures.saturating_add(1);
        let exhausted = failed.failures == MAX_REVERT_TRIES;
        let retried = retry_at.filter(|_| failed.has_tries_left());
        let failures = failed.failures;
        let left: Vec<String> = remaining.iter().rev().map(Revert::describe).collect();
        record
            .details
            .insert("left_to_put_back".to_owned(), left.join("; "));
        summaries.push(match retried {
            Some(at) => {
                record
                    .details
                    .insert("revert_retry_at".to_owned(), at.to_rfc3339());
                format!(
                    "{} change(s) left to put back: tried again at {} (try {} of {MAX_REVERT_TRIES} failed)",
                    remaining.len(),
                    at.to_rfc3339(),
                    failures
                )
            }
            None if exhausted => {
                record
                    .details
                    .insert("escalated".to_owned(), "true".to_owned());
                format!(
                    "putting back failed {MAX_REVERT_TRIES} times: a person is needed to put \
                     back by hand, newest first: {} (the next OK then finds them put back and \
                     lets them go; or fix what makes the revert fail, and the next OK tries \
                     again)",
                    left.join("; ")
                )
            }
            None => format!(
                "{} change(s) left to put back at the next OK",
                remaining.len()
            ),
        });
        PutBack {
            remaining,
            summaries,
            exhausted,
        }
    }
}

/// Whether the run's record says it asked a person.
pub(super) fn is_escalated(record: &HealingRecord) -> bool {
    record.details.get("escalated").map(String::as_str) == Some("true")
}
