//! The resource's own holds on an attempt, weighed before its claim: the resource is gone;
//! AWS's own healing, a person's hold, or another autoheal run on a resource the action
//! touches (what the healer saw, bounded by the rule's `max_wait_seconds`); and, at the
//! claim, another rule's heal holding the resource's lease.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::error::EngineError;
use super::run::{Claim, Governed, Run, Step};
use crate::model::limits::{BudgetScope, Limit};
use crate::model::record::{HealingStatus, SkipReason};
use crate::model::time::after;
use crate::model::trip::{TripKind, Tripped, WaitReason};
use crate::policy::budget::{self, Windows};
use crate::policy::decision::{Decision, Transition};
use crate::policy::deferral;
use crate::policy::group::NOTICE_WINDOW_SECONDS;
use crate::ports::{Assessment, Clock, FollowUps, Healer, Loaded, Notifier, StateStore, Wait};
use crate::report::outcome::Outcome;

/// The shortest wait before a resource that is held is looked at again.
const MIN_RECHECK_SECONDS: u64 = 60;

/// What the healer's assessment makes of an attempt.
pub(super) enum Weighed {
    /// It goes ahead; its record says what it waited for, if anything.
    Proceed(BTreeMap<String, String>),
    /// It becomes this instead (a deferral, the resource gone, a person asked).
    Instead(Box<Governed>),
}

impl<S: StateStore, N: Notifier, H: Healer, C: Clock, F: FollowUps> Run<'_, S, N, H, C, F> {
    /// Weighs what the healer saw before the claim of a new attempt (`transition`).
    pub(super) fn weigh(
        &self,
        loaded: &Loaded,
        transition: &Transition,
        assessment: Assessment,
        now: DateTime<Utc>,
    ) -> Weighed {
        let Some(acted) = transition.next.as_ref() else {
            return Weighed::Proceed(BTreeMap::new());
        };
        match assessment {
            Assessment::Proceed => Weighed::Proceed(BTreeMap::new()),
            Assessment::Gone { summary } => {
                match deferral::gone(&loaded.state, acted, summary, now) {
                    Some(gone) => Weighed::Instead(Box::new(Governed::free(gone))),
                    None => Weighed::Proceed(BTreeMap::new()),
                }
            }
            Assessment::Wait(wait) => self.wait(loaded, transition, wait, now),
        }
    }

    /// Waits for what holds the resource, until the incident has waited the rule's
    /// `max_wait_seconds`: then AWS's healing or another run has had its chance and the
    /// attempt goes ahead (the action still acts only on a resource that needs it), while a
    /// person's hold is never overridden: a person is asked.
    fn wait(
        &self,
        loaded: &Loaded,
        transition: &Transition,
        wait: Wait,
        now: DateTime<Utc>,
    ) -> Weighed {
        let incident_id = match &transition.decision {
            Decision::Act { incident_id, .. } => incident_id.as_str(),
            _ => "",
        };
        let since = loaded
            .state
            .incident
            .as_ref()
            .filter(|incident| incident.id == incident_id)
            .and_then(|incident| incident.waiting_since)
            .unwrap_or(now);
        let bound = after(since, self.rule.policy.max_wait_seconds);
        if now < bound {
            let until = after(now, wait.recheck_after_seconds.max(MIN_RECHECK_SECONDS)).min(bound);
            let tripped = Tripped {
                scope: BudgetScope::Resource(self.resource()),
                kind: TripKind::Waiting {
                    reason: wait.reason,
                },
                limit: Limit {
                    limit: 0,
                    window_seconds: NOTICE_WINDOW_SECONDS,
                },
                used: 0,
                reopens_at: until,
                // Announced once per incident and reason: from when the incident began to wait.
                window: since,
                seen: Some(wait.summary),
            };
            let mut governed = self.deferred(loaded, transition.clone(), tripped, now);
            if let Some(incident) = governed
                .transition
                .next
                .as_mut()
                .and_then(|next| next.incident.as_mut())
            {
                incident.waiting_since.get_or_insert(since);
            }
            return Weighed::Instead(Box::new(governed));
        }
        let waited = format!(
            "waited {} s (the rule's max_wait_seconds) for: {}",
            (now - since).num_seconds().max(0),
            wait.summary
        );
        match wait.reason {
            WaitReason::OperatorHold => {
                let held = transition
                    .next
                    .as_ref()
                    .and_then(|acted| deferral::hold_past_wait(&loaded.state, acted, now));
                match held {
                    Some(held) => Weighed::Instead(Box::new(Governed {
                        summary: Some(format!(
                            "{waited}; a person holds the resource, so autoheal does nothing \
                             and asks a person"
                        )),
                        ..Governed::free(held)
                    })),
                    None => Weighed::Proceed(BTreeMap::new()),
                }
            }
            WaitReason::AwsHealing | WaitReason::ResourceBusy => {
                Weighed::Proceed(BTreeMap::from([("waited_for".to_owned(), waited)]))
            }
        }
    }

    /// A claim refused because another rule's run (`holder`) holds the resource's lease until
    /// `until`: the run is deferred to then (not an attempt), and decided afresh by its
    /// follow-up, which reads the alarm as it is by then.
    pub(super) async fn wait_for_lock(
        &self,
        mut outcome: Outcome,
        claim: &Claim<'_>,
        holder: &str,
        until: DateTime<Utc>,
    ) -> Result<Step, EngineError> {
        let now = self.engine.clock.now();
        let resource = self.resource();
        let rule = holder.split('#').next().unwrap_or(holder);
        let tripped = Tripped {
            scope: BudgetScope::Resource(resource.clone()),
            kind: TripKind::ResourceBusy,
            limit: Limit {
                limit: 1,
                window_seconds: NOTICE_WINDOW_SECONDS,
            },
            used: 1,
            reopens_at: until.max(now),
            window: Windows::at(now, NOTICE_WINDOW_SECONDS).current,
            seen: Some(format!(
                "`{rule}` is healing {resource}: one heal per resource at a time"
            )),
        };
        let at = budget::spread(tripped.reopens_at, &self.key.holder());
        let deferred = deferral::defer(claim.stored, claim.next, tripped.clone(), at);
        if let Some(Transition {
            decision:
                Decision::Defer {
                    incident_id,
                    until,
                    tripped,
                },
            next,
        }) = deferred
        {
            let next = self.past_scheduled(&incident_id, next.as_ref());
            return self
                .defer(
                    outcome,
                    claim.expected,
                    next.as_ref(),
                    &incident_id,
                    until,
                    &tripped,
                )
                .await;
        }
        // Nothing to follow up (an OK with changes left from a closed incident): they wait
        // for the next OK.
        let mut record = self.record(
            HealingStatus::Skipped,
            claim.attempt,
            Some(claim.incident_id),
        );
        record.skip_reason = Some(SkipReason::ResourceBusy);
        record.ended_at = Some(record.started_at);
        record.summary = Some(tripped.describe());
        self.engine.store.put_record(&record).await?;
        outcome.reason = Some(SkipReason::ResourceBusy);
        outcome.detail.clone_from(&record.summary);
        outcome.record = Some(record);
        Ok(Step::Done(outcome))
    }
}
