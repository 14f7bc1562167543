//! The alarm path: a CloudWatch alarm state change selects its rule and resource, and the run
//! decides on the resource's state (see `run`).

use serde_json::Value;

use super::error::EngineError;
use super::run::{Run, log};
use super::settings::effective_mode;
use super::{Caller, Engine};
use crate::model::event::{AlarmEvent, AlarmState};
use crate::model::place::Place;
use crate::model::record::SkipReason;
use crate::policy::decision::{DecisionInput, decide};
use crate::policy::reach::{OutOfReach, Reached};
use crate::policy::resolve::select;
use crate::ports::{Clock, FollowUps, Healer, Notifier, ResourceKey, StateStore};
use crate::report::outcome::{Outcome, Verdict};

impl<S: StateStore, N: Notifier, H: Healer, C: Clock, F: FollowUps> Engine<S, N, H, C, F> {
    /// Handles one CloudWatch alarm state change.
    pub(super) async fn alarm(
        &self,
        payload: Value,
        caller: Caller<'_>,
    ) -> Result<Outcome, EngineError> {
        let event = AlarmEvent::from_value(payload)?;
        self.alarm_event(event, caller).await
    }

    /// Handles one alarm state change, parsed.
    pub(super) async fn alarm_event(
        &self,
        event: AlarmEvent,
        caller: Caller<'_>,
    ) -> Result<Outcome, EngineError> {
        let run_id = caller.run_id;
        let outcome = Outcome::new(Some(self.layer), &event);
        if !self.settings.layer_enabled {
            return Ok(log(outcome.skipped(
                SkipReason::RuleDisabled,
                format!("the {} layer is disabled in this deployment", self.layer),
            )));
        }
        let (rule, resource_id) = match select(&self.rules, &event, self.layer).into_match() {
            Ok(found) => found,
            Err(not_selected) => return Ok(log(outcome.not_selected(not_selected))),
        };
        let mut outcome = outcome.with_rule(rule);
        outcome.resource_id = Some(resource_id.clone());
        let mode = effective_mode(&self.settings, rule);
        outcome.mode = Some(mode);
        // Before anything is read: an account or region not served is not even asked.
        let place = match self.reached(&event) {
            Ok(place) => place,
            Err(why) => return Ok(log(outcome.skipped(SkipReason::OutOfReach, why.to_string()))),
        };
        if let Some(why) = event
            .suppressed_by
            .as_deref()
            .filter(|_| event.state == AlarmState::Alarm)
        {
            return Ok(log(outcome.skipped(SkipReason::Suppressed, why)));
        }
        if !self.healer.supports(&rule.action) {
            return Ok(log(outcome.skipped(
                SkipReason::UnsupportedAction,
                format!(
                    "the {} function does not implement `{}`",
                    self.layer,
                    rule.action.kind()
                ),
            )));
        }
        let key = ResourceKey {
            rule: rule.name.clone(),
            resource_id: resource_id.clone(),
            place,
        };
        let run = Run {
            engine: self,
            rule,
            key: &key,
            event: &event,
            origin: &event,
            run_id,
            role_session: caller.role_session,
            mode,
            alarm_now: std::sync::OnceLock::new(),
            scheduled: std::sync::Mutex::new(None),
        };
        // Only an ALARM is decided on a presumption: an OK's decision depends on what is
        // stored (a revert, a recovery) even when it would write nothing.
        let presume = event.state == AlarmState::Alarm;
        let outcome = run
            .execute(outcome, presume, |loaded, now| {
                decide(DecisionInput {
                    policy: &rule.policy,
                    state: &loaded.state,
                    alarm: event.state,
                    event_id: &event.id,
                    event_seen: loaded.event_seen,
                    run_id,
                    now,
                })
            })
            .await?;
        // An ALARM that met this OK's revert found the lease and was skipped: decided now.
        if outcome.decision == Verdict::Revert {
            self.alarm_again(&event, &event.id, "a revert", caller)
                .await?;
        }
        Ok(outcome)
    }

    /// Where `event` is healed: `None` at home, its place elsewhere; why not, when the
    /// deployment does not heal there.
    pub(super) fn reached(&self, event: &AlarmEvent) -> Result<Option<Place>, OutOfReach> {
        let reached = self
            .settings
            .reach
            .judge(event.account.as_deref(), event.region.as_deref())?;
        Ok(match reached {
            Reached::Home => None,
            Reached::Elsewhere(place) => Some(place),
        })
    }
}
