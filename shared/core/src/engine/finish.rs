//! Finishing: what a run writes last. A recovery noted, a skip recorded (with its
//! escalation when it is the one that gives up), a claimed run's final record with its lease
//! released, and the escalation with the incident's history.

use chrono::{DateTime, Utc};
use tracing::warn;

use super::error::EngineError;
use super::run::{Run, Skipped, Step, skip_summary};
use crate::model::record::{HealingRecord, HealingStatus, SkipReason};
use crate::model::revert::Revert;
use crate::model::state::{Incident, ResourceState};
use crate::ports::{
    ActionEnd, ClaimRequest, ClaimResult, Clock, FollowUps, Healer, Notifier, StateStore,
};
use crate::report::notice::Notice;
use crate::report::outcome::{Outcome, Verdict};

impl<S: StateStore, N: Notifier, H: Healer, C: Clock, F: FollowUps> Run<'_, S, N, H, C, F> {
    /// OK on an open incident: the state notes it; the incident closes once OK holds.
    pub(super) async fn recovering(
        &self,
        mut outcome: Outcome,
        expected: u64,
        next: Option<&ResourceState>,
        incident_id: &str,
    ) -> Result<Step, EngineError> {
        if !self.save(expected, next).await? {
            return Ok(Step::Again(None));
        }
        outcome.decision = Verdict::Recovering;
        outcome.detail = Some(format!(
            "incident {incident_id} closes if OK holds for {} s",
            self.rule.policy.stable_period_seconds
        ));
        Ok(Step::Done(outcome))
    }

    /// A skip the policy decided (cooldown, backoff, attempts spent…): recorded, and the
    /// escalation sent when this skip is the one that gives up.
    pub(super) async fn skip(
        &self,
        mut outcome: Outcome,
        expected: u64,
        next: Option<&ResourceState>,
        state: &ResourceState,
        skipped: Skipped,
    ) -> Result<Step, EngineError> {
        let Skipped {
            reason,
            escalate,
            summary,
        } = skipped;
        if !self.save(expected, next).await? {
            return Ok(Step::Again(None));
        }
        let incident = state.incident.as_ref();
        let mut record = self.record(
            HealingStatus::Skipped,
            incident.map_or(0, |i| i.attempts),
            incident.map(|i| i.id.as_str()),
        );
        record.skip_reason = Some(reason);
        record.ended_at = Some(record.started_at);
        record.summary = Some(summary.unwrap_or_else(|| skip_summary(reason, self.rule)));
        self.engine.store.put_record(&record).await?;
        if escalate {
            self.escalate(&record, incident).await;
            outcome.escalated = true;
        }
        outcome.detail.clone_from(&record.summary);
        outcome.reason = Some(reason);
        outcome.record = Some(record);
        Ok(Step::Done(outcome))
    }

    /// The resource does not exist: its incident closes and the run is recorded (`gone`), in
    /// one write with the event's claim, so that a redelivery is a duplicate, and published as
    /// a skip: no attempt, no budget, nothing failed and nothing was done, but its alarm
    /// watches something that is no longer there.
    pub(super) async fn gone(
        &self,
        mut outcome: Outcome,
        expected: u64,
        next: Option<&ResourceState>,
        incident_id: &str,
        summary: String,
    ) -> Result<Step, EngineError> {
        let incident = next.and_then(|next| next.incident.as_ref());
        let mut record = self.record(
            HealingStatus::Skipped,
            incident.map_or(0, |incident| incident.attempts),
            Some(incident_id),
        );
        record.skip_reason = Some(SkipReason::Gone);
        record.ended_at = Some(record.started_at);
        record.summary = Some(summary);
        match next {
            Some(next) => {
                let request = ClaimRequest {
                    key: self.key,
                    event_id: &self.event.id,
                    expected_version: expected,
                    next,
                    record: &record,
                    takeover: false,
                    spends: &[],
                    hold: None,
                    lock: None,
                };
                match self.engine.store.claim(&request).await? {
                    ClaimResult::Claimed => {}
                    refused => return Ok(self.not_claimed(outcome, refused)),
                }
            }
            None => self.engine.store.put_record(&record).await?,
        }
        self.notify(&Notice::healing(record.clone(), self.rule))
            .await;
        outcome.reason = Some(SkipReason::Gone);
        outcome.detail.clone_from(&record.summary);
        outcome.record = Some(record);
        Ok(Step::Done(outcome))
    }

    /// Ends a claimed run that is no heal (a revert, a resolution): the final record, the
    /// leases released, what is left to put back; then the notification.
    pub(super) async fn finish(
        &self,
        mut record: HealingRecord,
        escalated_at: Option<DateTime<Utc>>,
        remaining: &[Revert],
    ) -> Result<HealingRecord, EngineError> {
        let now = self.engine.clock.now();
        record.ended_at = Some(now);
        let lock = self.lock(now);
        self.engine
            .store
            .finish(
                self.key,
                &record,
                escalated_at,
                Some(remaining),
                ActionEnd::Untouched,
                Some(&lock),
            )
            .await?;
        self.notify(&Notice::healing(record.clone(), self.rule))
            .await;
        Ok(record)
    }

    /// The escalation of this run's incident, with every record the incident has so far.
    pub(super) async fn escalate(&self, record: &HealingRecord, incident: Option<&Incident>) {
        let history = match incident {
            Some(incident) => self
                .engine
                .store
                .incident_history(self.key, &incident.id, incident.opened_at)
                .await
                .unwrap_or_else(|error| {
                    warn!(rule = %self.rule.name, resource = %self.key.resource_id, %error, "incident history not read");
                    Vec::new()
                }),
            None => Vec::new(),
        };
        self.notify(&Notice::escalation(record.clone(), self.rule).with_history(history))
            .await;
    }
}
