//! The safety governor: a new attempt that a budget, the resource itself (see `wait`) or its
//! group's guard does not allow is deferred to when it reopens, recorded, and notified once
//! per window.

use chrono::{DateTime, Utc};

use super::error::EngineError;
use super::run::{Governed, Run, Step};
use super::wait::Weighed;
use crate::model::event::AlarmState;
use crate::model::limits::{BudgetScope, Limit};
use crate::model::record::{HealingStatus, SkipReason};
use crate::model::rules::Mode;
use crate::model::state::ResourceState;
use crate::model::time::after;
use crate::model::trip::{TripKind, Tripped};
use crate::policy::budget::{self, Budget, Usage};
use crate::policy::decision::{Decision, Transition, idempotency_token, ignore};
use crate::policy::deferral;
use crate::policy::genuine;
use crate::policy::group::{self, Hold, NOTICE_WINDOW_SECONDS, STORM_RECHECK_SECONDS};
use crate::ports::{
    AlarmNow, ClaimRequest, ClaimResult, Clock, FollowUps, Healer, Loaded, Notifier, StateStore,
};
use crate::report::notice::Notice;
use crate::report::outcome::Outcome;

impl<S: StateStore, N: Notifier, H: Healer, C: Clock, F: FollowUps> Run<'_, S, N, H, C, F> {
    /// The budgets this run's actions count against: the rule's, the layer's, the
    /// account's, the deployment's.
    pub(super) fn budgets(&self) -> Vec<Budget> {
        let settings = &self.engine.settings;
        let rule = Some(Budget {
            scope: BudgetScope::Rule(self.rule.name.clone()),
            limit: self.rule.policy.budget,
        });
        let layer = settings.layer_budget.map(|limit| Budget {
            scope: BudgetScope::Layer(self.rule.layer),
            limit,
        });
        let account = settings
            .account_budget
            .zip(self.event.account.as_ref())
            .map(|(limit, account)| Budget {
                scope: BudgetScope::Account(account.clone()),
                limit,
            });
        let global = settings.global_budget.map(|limit| Budget {
            scope: BudgetScope::Global,
            limit,
        });
        [rule, layer, account, global]
            .into_iter()
            .flatten()
            .collect()
    }

    /// The alarm as CloudWatch holds it now, read once per run.
    async fn alarm_now(&self) -> Result<Option<&AlarmNow>, EngineError> {
        if self.alarm_now.get().is_none() {
            let now = self
                .engine
                .follow_ups
                .describe_alarm(&self.event.alarm_name)
                .await?;
            let _ = self.alarm_now.set(now);
        }
        Ok(self.alarm_now.get().and_then(Option::as_ref))
    }

    /// Why an alarm event that would act, put changes back or start a recovery is not to be
    /// acted on, if it is not: judged against the alarm as CloudWatch holds it (one read).
    /// - `not-genuine`: CloudWatch has no such alarm, or one of another account or region, or
    ///   one that watches other metrics or dimensions, or lacks the event's tags: the event was
    ///   not CloudWatch's.
    /// - `stale`: the alarm is in the opposite state (delivered late, or after a newer
    ///   change), or no longer in ALARM for an event that would act.
    /// - `opposite-direction`: the alarm fires the other way to the rule's trigger.
    ///
    /// A follow-up reads the alarm itself.
    async fn judge(
        &self,
        transition: &Transition,
    ) -> Result<Option<(SkipReason, String)>, EngineError> {
        let on_alarm_path = self.event.id == self.origin.id;
        let acting = matches!(
            (&transition.decision, self.event.state),
            (
                Decision::Act { .. } | Decision::Defer { .. } | Decision::Recheck { .. },
                AlarmState::Alarm
            )
        );
        let reverting = matches!(
            (&transition.decision, self.event.state),
            (
                Decision::Revert { .. } | Decision::Recovering { .. },
                AlarmState::Ok
            )
        );
        if !on_alarm_path || !(acting || reverting) {
            return Ok(None);
        }
        let name = &self.event.alarm_name;
        let Some(alarm) = self.alarm_now().await? else {
            return Ok(Some((
                SkipReason::NotGenuine,
                format!(
                    "CloudWatch has no alarm named {name}: the event was not sent by CloudWatch, \
                     and nothing is done"
                ),
            )));
        };
        let not_genuine = |why: String| {
            Some((
                SkipReason::NotGenuine,
                format!(
                    "{why} ({name}): the event was not sent by CloudWatch, and nothing is done"
                ),
            ))
        };
        if let Some(why) = alarm.arn.as_deref().and_then(|held| {
            genuine::place_differs(
                self.event.account.as_deref(),
                self.event.region.as_deref(),
                self.event.alarm_arn.as_deref(),
                held,
            )
        }) {
            return Ok(not_genuine(why));
        }
        if let Some(why) = genuine::watch_differs(&self.event.kind, &alarm.definition.watches) {
            return Ok(not_genuine(why));
        }
        if !self.event.alarm_tags.is_empty() {
            let held = match alarm.arn.as_deref() {
                Some(arn) => self.engine.follow_ups.alarm_tags(arn).await?,
                None => Default::default(),
            };
            if let Some(why) = genuine::tags_differ(&self.event.alarm_tags, &held) {
                return Ok(not_genuine(why));
            }
        }
        let reading = alarm.reading;
        // An event that would act needs the alarm in ALARM now. An OK that puts changes back
        // is refused only by the opposite state: an alarm without data since says nothing
        // against it, and refusing then would leave its changes with nothing to put them back.
        let stale = match self.event.state {
            AlarmState::Alarm => reading.state != AlarmState::Alarm,
            AlarmState::Ok => reading.state == AlarmState::Alarm,
            AlarmState::InsufficientData => false,
        };
        if stale {
            return Ok(Some((
                SkipReason::Stale,
                format!(
                    "CloudWatch has {name} in {} since {}, not {} as this event says: the event \
                     is stale, and nothing is done",
                    reading.state.as_str(),
                    reading.since.to_rfc3339(),
                    self.event.state.as_str()
                ),
            )));
        }
        if acting
            && let Some(spec) = &self.rule.alarm
            && let Some(why) = genuine::contradicts(spec, &alarm.definition)
        {
            return Ok(Some((
                SkipReason::OppositeDirection,
                format!("{why} (rule {}); nothing is done", self.rule.name),
            )));
        }
        Ok(None)
    }

    /// The safety governor: a new attempt that a budget or its group's guard does not allow
    /// becomes a deferral; one they allow carries what it spends and the group slot it takes
    /// into its claim (checked there, atomically). A taken-over or resumed attempt continues
    /// one already counted.
    /// An alarm event is first judged against the alarm as CloudWatch holds it.
    pub(super) async fn govern(
        &self,
        loaded: &Loaded,
        transition: Transition,
        budgets: &[Budget],
        usages: &[Usage],
        now: DateTime<Utc>,
    ) -> Result<Governed, EngineError> {
        if let Some((reason, why)) = self.judge(&transition).await? {
            return Ok(Governed {
                summary: Some(why),
                ..Governed::free(ignore(reason))
            });
        }
        let (
            Decision::Act {
                takeover: false,
                resumed: false,
                attempt,
                incident_id,
                ..
            },
            Some(acted),
        ) = (&transition.decision, &transition.next)
        else {
            return Ok(Governed::free(transition));
        };
        if let Some(tripped) = budget::check(budgets, usages, now) {
            return Ok(self.deferred(loaded, transition, tripped, now));
        }
        let token = idempotency_token(
            &self.rule.name,
            &self.key.resource_id,
            incident_id,
            *attempt,
        );
        if self.rule.action.weighs_alarm_actions() {
            self.alarm_now().await?;
        }
        let request = self.request(*attempt, incident_id, &token);
        let assessment = self
            .engine
            .healer
            .assess(request)
            .await
            .map_err(|error| EngineError::Assessment(error.message))?;
        let details = match self.weigh(loaded, &transition, assessment, now) {
            Weighed::Proceed(details) => details,
            Weighed::Instead(governed) => return Ok(*governed),
        };
        let spends = budget::spends(budgets, usages, now);
        let group = self
            .engine
            .healer
            .group(self.request(*attempt, incident_id, &token))
            .await
            .map_err(|error| EngineError::Group(error.message))?;
        let Some(mut group) = group else {
            return Ok(Governed {
                spends,
                details,
                ..Governed::free(transition)
            });
        };
        // A group's id is unique in its account and region only.
        if let Some(place) = &self.key.place {
            group.id.push_str(&place.key_suffix());
        }
        let guard = self.rule.policy.group_guard;
        let notice_window = budget::Windows::at(now, NOTICE_WINDOW_SECONDS).current;
        let tripped = |kind, used, reopens_at| Tripped {
            scope: BudgetScope::Group(group.id.clone()),
            kind,
            limit: Limit {
                limit: guard.capacity(group.size),
                window_seconds: NOTICE_WINDOW_SECONDS,
            },
            used,
            reopens_at,
            window: notice_window,
            seen: None,
        };
        if guard.is_storm(group.size, group.unhealthy) {
            let kind = TripKind::GroupStorm {
                size: group.size,
                unhealthy: group.unhealthy,
                max_unhealthy_percent: guard.max_unhealthy_percent,
            };
            let recheck = now + chrono::Duration::seconds(STORM_RECHECK_SECONDS);
            let storm = tripped(kind, group.unhealthy, recheck);
            return Ok(self.deferred(loaded, transition, storm, now));
        }
        let capacity = guard.capacity(group.size);
        let slots = self.engine.store.group_slots(&group.id, capacity).await?;
        match group::choose_slot(&slots, capacity, &self.key.holder(), now) {
            Ok(slot) => {
                let until = acted
                    .incident
                    .as_ref()
                    .and_then(|incident| incident.next_attempt_at)
                    .unwrap_or_else(|| after(now, self.rule.policy.lease_seconds));
                let hold = Hold {
                    group: group.id.clone(),
                    slot,
                    holder: self.key.holder(),
                    until,
                    now,
                };
                Ok(Governed {
                    spends,
                    hold: Some(hold),
                    details,
                    ..Governed::free(transition)
                })
            }
            Err(frees_at) => {
                let held = slots
                    .iter()
                    .filter(|slot| slot.index < capacity && slot.until > now)
                    .count();
                let kind = TripKind::GroupBusy { size: group.size };
                let busy = tripped(kind, u32::try_from(held).unwrap_or(u32::MAX), frees_at);
                Ok(self.deferred(loaded, transition, busy, now))
            }
        }
    }

    /// The attempt `transition` would make, deferred by `tripped` to when it reopens (spread
    /// over a minute so that what was deferred together does not return together).
    pub(super) fn deferred(
        &self,
        loaded: &Loaded,
        transition: Transition,
        tripped: Tripped,
        now: DateTime<Utc>,
    ) -> Governed {
        let until = budget::spread(
            tripped.reopens_at.max(now),
            &format!("{}\u{1f}{}", self.rule.name, self.key.resource_id),
        );
        let deferred = transition
            .next
            .as_ref()
            .and_then(|acted| deferral::defer(&loaded.state, acted, tripped, until));
        Governed::free(deferred.unwrap_or(transition))
    }

    /// An attempt deferred by a spent budget or a group guard: recorded with the guard's
    /// reason, its check scheduled for when the guard reopens, and the guard's first deferral
    /// of the window notified.
    pub(super) async fn defer(
        &self,
        mut outcome: Outcome,
        expected: u64,
        next: Option<&ResourceState>,
        incident_id: &str,
        until: DateTime<Utc>,
        tripped: &Tripped,
    ) -> Result<Step, EngineError> {
        let incident = next.and_then(|next| next.incident.as_ref());
        if self.mode == Mode::Enforce {
            let check = incident.map_or(0, |incident| incident.checks);
            self.schedule(incident_id, check, until).await?;
        }
        let mut record = self.record(
            HealingStatus::Skipped,
            incident.map_or(0, |incident| incident.attempts),
            Some(incident_id),
        );
        let reason = tripped.reason();
        record.skip_reason = Some(reason);
        record.ended_at = Some(record.started_at);
        record.summary = Some(tripped.describe());
        match &tripped.scope {
            BudgetScope::Group(group) => record.details.insert("group".to_owned(), group.clone()),
            BudgetScope::Resource(resource) => record
                .details
                .insert("resource".to_owned(), resource.clone()),
            scope => record.details.insert("budget".to_owned(), scope.key()),
        };
        record
            .details
            .insert("deferred_until".to_owned(), until.to_rfc3339());
        // The deferral claims its event like an action does (state, event and record in one
        // write): a redelivery of a deferred event is a duplicate, not a second deferral.
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
        // Another rule's heal of the resource is autoheal at work, not news for a person.
        if tripped.kind != TripKind::ResourceBusy && self.engine.store.first_trip(tripped).await? {
            self.notify(&Notice::deferral(record.clone(), self.rule, tripped))
                .await;
        }
        outcome.reason = Some(reason);
        outcome.detail.clone_from(&record.summary);
        outcome.record = Some(record);
        Ok(Step::Done(outcome))
    }
}
