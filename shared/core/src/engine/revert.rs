//! Reverting: what heals changed is put back, newest first, when the alarm returns to OK or
//! the incident resolves.

use super::error::EngineError;
use super::run::{Claim, Run, Step};
use crate::model::record::{HealingRecord, HealingStatus, RunPhase, SkipReason};
use crate::model::revert::Revert;
use crate::model::rules::Mode;
use crate::policy::decision::idempotency_token;
use crate::ports::{ClaimResult, Clock, FollowUps, HealOutcome, Healer, Notifier, StateStore};
use crate::report::outcome::{Outcome, Verdict};

impl<S: StateStore, N: Notifier, H: Healer, C: Clock, F: FollowUps> Run<'_, S, N, H, C, F> {
    /// Claims the resource for this run's revert and, once claimed, puts the changes back.
    pub(super) async fn claim_and_revert(
        &self,
        mut outcome: Outcome,
        claim: Claim<'_>,
    ) -> Result<Step, EngineError> {
        let record = self.in_progress(&claim, RunPhase::Revert);
        match self.claim(&claim, &record, &[], None).await? {
            ClaimResult::Claimed => {
                let record = self
                    .revert(record, claim.incident_id, &claim.next.reverts)
                    .await?;
                outcome.decision = Verdict::Revert;
                Ok(Step::Done(outcome.with_record(record)))
            }
            ClaimResult::Busy { holder, until } => {
                self.wait_for_lock(outcome, &claim, &holder, until).await
            }
            refused => Ok(self.not_claimed(outcome, refused)),
        }
    }

    /// Puts back the changes heals made (see [`Self::put_back`]), then records and publishes
    /// the run.
    async fn revert(
        &self,
        mut record: HealingRecord,
        incident_id: &str,
        pending: &[Revert],
    ) -> Result<HealingRecord, EngineError> {
        let (remaining, summaries) = self.put_back(&mut record, incident_id, pending).await;
        record.summary = (!summaries.is_empty()).then(|| summaries.join("; "));
        self.finish(record, None, &remaining).await
    }

    /// Puts back the changes heals made, newest first, and stops at the first that fails:
    /// an older change is only put back over the state the newer one left. Returns what is
    /// left to put back (what was put back, or found no longer autoheal's, leaves the list)
    /// and one sentence per change; the record's status and details say how it went.
    pub(super) async fn put_back(
        &self,
        record: &mut HealingRecord,
        incident_id: &str,
        pending: &[Revert],
    ) -> (Vec<Revert>, Vec<String>) {
        let mut remaining = pending.to_vec();
        let mut summaries = Vec::new();
        record.status = HealingStatus::Completed;
        if pending.is_empty() {
            return (remaining, summaries);
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
            return (remaining, summaries);
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
        if !remaining.is_empty() {
            summaries.push(format!(
                "{} change(s) left to put back at the next OK",
                remaining.len()
            ));
        }
        (remaining, summaries)
    }
}
