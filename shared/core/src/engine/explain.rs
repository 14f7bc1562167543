//! `autoheal explain`: what an event would do, decided as the alarm path decides it, on a
//! resource with no history and without any I/O.

use chrono::{DateTime, Utc};

use super::settings::{Settings, effective_mode};
use crate::model::event::{AlarmEvent, AlarmState};
use crate::model::record::SkipReason;
use crate::model::rules::{Mode, RuleSet};
use crate::model::state::ResourceState;
use crate::policy::decision::{Decision, DecisionInput, decide};
use crate::policy::resolve::select_any;
use crate::report::outcome::{Outcome, Verdict};

/// Explains, without any I/O, what `event` would do on a resource with no history.
pub fn explain(
    rules: &RuleSet,
    event: &AlarmEvent,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Outcome {
    let (layer, selection) = select_any(rules, event);
    let outcome = Outcome::new(layer, event);
    let (rule, resource_id) = match selection.into_match() {
        Ok(found) => found,
        Err(not_selected) => return outcome.not_selected(not_selected),
    };
    let mut outcome = outcome.with_rule(rule);
    outcome.resource_id = Some(resource_id);
    let mode = effective_mode(settings, rule);
    outcome.mode = Some(mode);
    if let Err(why) = settings
        .reach
        .judge(event.account.as_deref(), event.region.as_deref())
    {
        return outcome.skipped(SkipReason::OutOfReach, why.to_string());
    }
    if let Some(why) = event
        .suppressed_by
        .as_deref()
        .filter(|_| event.state == AlarmState::Alarm)
    {
        return outcome.skipped(SkipReason::Suppressed, why);
    }
    let state = ResourceState::default();
    let transition = decide(DecisionInput {
        policy: &rule.policy,
        state: &state,
        alarm: event.state,
        event_id: &event.id,
        event_seen: false,
        run_id: "explain",
        now,
    });
    match transition.decision {
        Decision::Act { attempt, .. } if mode == Mode::Shadow => outcome.skipped(
            SkipReason::ShadowMode,
            format!(
                "would run `{}` (attempt {attempt}), but the rule is in shadow mode",
                rule.action.kind()
            ),
        ),
        Decision::Act { attempt, .. } => {
            outcome.decision = Verdict::Act;
            outcome.detail = Some(format!(
                "runs `{}` as attempt {attempt} of at most {} (cooldown {} s)",
                rule.action.kind(),
                rule.policy.max_attempts,
                rule.policy.cooldown_seconds
            ));
            outcome
        }
        Decision::Gone { .. } => outcome.skipped(SkipReason::Gone, "the resource does not exist"),
        Decision::Skip { reason, .. } | Decision::Ignore { reason } => {
            let detail = match event.state {
                AlarmState::Ok => {
                    "OK starts closing the open incident of this rule on this resource, if any"
                        .to_owned()
                }
                _ => format!("skipped: {reason}"),
            };
            outcome.skipped(reason, detail)
        }
        Decision::Recovering { .. }
        | Decision::Revert { .. }
        | Decision::Defer { .. }
        | Decision::Resolve { .. }
        | Decision::Recheck { .. } => {
            outcome.decision = Verdict::Recovering;
            outcome
        }
    }
}
