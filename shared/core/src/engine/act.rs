//! Acting: the claimed attempt's follow-up is scheduled, the healer runs the action (or, in
//! shadow mode, it is only recorded), and the run ends, its next step scheduled when the
//! action continues, and the incident escalated when its last attempt failed.

use tracing::warn;

use super::error::EngineError;
use chrono::{DateTime, Utc};

use super::run::{Admitted, Claim, Run, Step};
use crate::model::record::{HealingRecord, HealingStatus, SkipReason};
use crate::model::revert::Revert;
use crate::model::rules::Mode;
use crate::model::state::ResourceState;
use crate::model::time::after;
use crate::policy::decision::idempotency_token;
use crate::ports::{
    ActionEnd, ClaimResult, Clock, FollowUps, HealOutcome, Healer, Notifier, StateStore,
};
use crate::report::notice::Notice;
use crate::report::outcome::{Outcome, Verdict};

impl<S: StateStore, N: Notifier, H: Healer, C: Clock, F: FollowUps> Run<'_, S, N, H, C, F> {
    /// Claims the resource for this run's attempt and, once claimed, runs the action.
    pub(super) async fn claim_and_act(
        &self,
        mut outcome: Outcome,
        claim: Claim<'_>,
        admitted: Admitted<'_>,
    ) -> Result<Step, EngineError> {
        let Admitted {
            spends,
            hold,
            details,
        } = admitted;
        let mut record = self.record(
            HealingStatus::InProgress,
            claim.attempt,
            Some(claim.incident_id),
        );
        if let Some(hold) = hold {
            record
                .details
                .insert("group".to_owned(), hold.group.clone());
        }
        record.details.extend(details);
        // The follow-up that verifies the attempt is scheduled before its claim, so that an
        // invocation that dies during the action is still followed up, and a scheduler that
        // cannot be reached is a retryable error with nothing done and nothing written. Should
        // the claim be refused, the check finds no incident of its own, or its number
        // superseded, and does nothing.
        let follow_up = match self.mode {
            Mode::Enforce => self.follow_up_of(claim.next, claim.resumed),
            Mode::Shadow => None,
        };
        if let Some((check, at)) = follow_up {
            self.schedule(claim.incident_id, check, at).await?;
            self.note_scheduled(claim.incident_id, check);
            record
                .details
                .insert("follow_up_at".to_owned(), at.to_rfc3339());
        }
        match self.claim(&claim, &record, spends, hold).await? {
            ClaimResult::Claimed => {
                let record = self.act(record, &claim).await?;
                // Shadow runs claim like real ones (so cooldowns and attempts show what
                // enforce mode would do) but report, like `explain`, that nothing was done.
                outcome.decision = if self.mode == Mode::Shadow {
                    Verdict::Skip
                } else {
                    Verdict::Act
                };
                outcome.escalated = self.spends_the_last_attempt(&record);
                Ok(Step::Done(outcome.with_record(record)))
            }
            ClaimResult::Busy { holder, until } => {
                self.wait_for_lock(outcome, &claim, &holder, until).await
            }
            refused => Ok(self.not_claimed(outcome, refused)),
        }
    }

    /// Runs the action (or only records it, in shadow mode), then stores and publishes the
    /// outcome. An action that continues schedules its next step; only its first and last
    /// steps are published.
    async fn act(
        &self,
        mut record: HealingRecord,
        claim: &Claim<'_>,
    ) -> Result<HealingRecord, EngineError> {
        let (incident_id, claimed) = (claim.incident_id, claim.next);
        let pending = &claimed.reverts;
        let mut reverts = None;
        let mut end = ActionEnd::Finished;
        // The resource's lease across rules ends with the action: released when it ends, held
        // through the steps of one that continues (until its next step's lease would end).
        let mut lock = self.lock(self.engine.clock.now());
        let token = idempotency_token(
            &self.rule.name,
            &self.key.resource_id,
            incident_id,
            record.attempt,
        );
        if self.mode == Mode::Shadow {
            record.status = HealingStatus::Skipped;
            record.skip_reason = Some(SkipReason::ShadowMode);
            record.summary = Some(format!(
                "shadow mode: would run `{}` on {}",
                self.rule.action.kind(),
                self.key.resource_id
            ));
        } else {
            let request = self.request(record.attempt, incident_id, &token);
            match Box::pin(self.engine.healer.heal(request)).await {
                Ok(HealOutcome::Healed {
                    summary,
                    details,
                    reverts: made,
                }) => {
                    record.status = HealingStatus::Completed;
                    record.summary = Some(summary);
                    record.details.extend(details);
                    if !made.is_empty() {
                        let attempt = record.attempt;
                        reverts = Some(
                            pending
                                .iter()
                                .cloned()
                                .chain(made.into_iter().map(|revert| Revert { attempt, ..revert }))
                                .collect::<Vec<_>>(),
                        );
                    }
                }
                Ok(HealOutcome::Skipped { reason, summary }) => {
                    record.status = HealingStatus::Skipped;
                    record.skip_reason = Some(reason);
                    record.summary = Some(summary);
                }
                Ok(HealOutcome::Continuing {
                    summary,
                    details,
                    resume_after_seconds,
                }) => {
                    record.status = HealingStatus::InProgress;
                    record.details.extend(details);
                    let resume_at = after(self.engine.clock.now(), resume_after_seconds.max(1));
                    end = self
                        .next_step(&mut record, incident_id, claimed, resume_at)
                        .await;
                    lock.until = after(resume_at, self.rule.policy.lease_seconds);
                    record.summary = Some(summary);
                }
                Err(error) => {
                    record.status = HealingStatus::Failed;
                    record.error = Some(error.message);
                }
            }
        }
        let now = self.engine.clock.now();
        record.ended_at = Some(now);
        let spent = self.spends_the_last_attempt(&record);
        if spent {
            // The record says so, for the incident's timeline.
            record
                .details
                .insert("escalated".to_owned(), "true".to_owned());
        }
        self.engine
            .store
            .finish(
                self.key,
                &record,
                spent.then_some(now),
                reverts.as_deref(),
                end,
                Some(&lock),
            )
            .await?;
        // A step in the middle of an action is recorded, not published.
        if !(claim.resumed && record.status == HealingStatus::InProgress) {
            self.notify(&Notice::healing(record.clone(), self.rule))
                .await;
        }
        if spent {
            self.escalate(&record, claimed.incident.as_ref()).await;
        }
        Ok(record)
    }

    /// Schedules the next step of an action that continues, as the incident's next check.
    /// Should that fail, the check the claim scheduled resumes the action later.
    async fn next_step(
        &self,
        record: &mut HealingRecord,
        incident_id: &str,
        claimed: &ResourceState,
        at: DateTime<Utc>,
    ) -> ActionEnd {
        let Some(incident) = claimed.incident.as_ref() else {
            return ActionEnd::Continues { check: None };
        };
        let check = incident.checks + 1;
        match self.schedule(incident_id, check, at).await {
            Ok(()) => {
                record
                    .details
                    .insert("next_step_at".to_owned(), at.to_rfc3339());
                ActionEnd::Continues { check: Some(check) }
            }
            Err(error) => {
                warn!(rule = %self.rule.name, resource = %self.key.resource_id, %error, "next step not scheduled");
                record.details.insert(
                    "next_step".to_owned(),
                    format!("not scheduled ({error}); resumed by the next check"),
                );
                ActionEnd::Continues { check: None }
            }
        }
    }

    /// A failed last attempt: the incident is escalated with it.
    pub(super) fn spends_the_last_attempt(&self, record: &HealingRecord) -> bool {
        record.status == HealingStatus::Failed && record.attempt >= self.rule.policy.max_attempts
    }
}
