//! The path of one event through a layer's function: parse, select, decide, claim, act,
//! schedule the follow-up, record, notify; and of a follow-up: read the alarm back, then
//! resolve, retry or escalate. The engine is generic over the ports of [`crate::ports`]; the
//! AWS adapters implement them for the Lambda functions, and in-memory ones stand in for them
//! in unit tests.
//!
//! One file per step:
//!
//! - `alarm`: an alarm state change selects its rule and resource, then runs;
//! - `check`: a follow-up reads its alarm back, then runs; follow-ups are scheduled here;
//! - `run`: one event on one resource: decide, govern, carry out, decide again on a race;
//! - `govern`: the safety governor's budgets and group guard, and the deferrals they make;
//! - `wait`: the resource's own holds: gone, healed by AWS or held by a person (what the
//!   healer saw), or healed by another rule (its lease across rules);
//! - `act`: the action (or its shadow), its next step, the escalation of a last attempt;
//! - `revert`: what heals changed, put back, and a failed revert retried by its own follow-ups;
//! - `finish`: recoveries, skips, the final record and the lease released, escalations;
//! - `reset`: an operator closes an incident;
//! - `explain`: what an event would do, without I/O;
//! - `settings`, `error`: the deployment's switches, and why an event was not handled.

mod act;
mod alarm;
mod check;
mod error;
mod explain;
mod finish;
mod govern;
mod reset;
mod revert;
mod run;
mod settings;
mod wait;

use std::sync::Arc;

use serde_json::Value;

use crate::model::layer::Layer;
use crate::model::rules::RuleSet;
use crate::policy::followup::FollowUp;
use crate::ports::{Clock, FollowUps, Healer, Notifier, StateStore};
use crate::report::metrics;
use crate::report::outcome::Outcome;

pub use error::EngineError;
pub use explain::explain;
pub use settings::{DEFAULT_GLOBAL_BUDGET, DEFAULT_LAYER_BUDGET, Settings};

/// One layer's healing engine, built once per container.
#[derive(Debug)]
pub struct Engine<S, N, H, C, F> {
    pub layer: Layer,
    /// Shared with the engines of the other places a function heals in: read, never changed.
    pub rules: Arc<RuleSet>,
    pub settings: Settings,
    pub store: S,
    pub notifier: N,
    pub healer: H,
    pub clock: C,
    pub follow_ups: F,
}

/// Who runs: the invocation (its id, unique per invocation: the Lambda request id) and the
/// role session it acts under in another account.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caller<'a> {
    pub(crate) run_id: &'a str,
    pub(crate) role_session: Option<&'a str>,
}

impl<S: StateStore, N: Notifier, H: Healer, C: Clock, F: FollowUps> Engine<S, N, H, C, F> {
    /// Handles one event delivered to this layer's function: a CloudWatch alarm state change,
    /// or one of autoheal's own follow-ups. `run_id` must be unique per invocation (the Lambda
    /// request id).
    pub async fn handle(&self, payload: Value, run_id: &str) -> Result<Outcome, EngineError> {
        self.handle_acting_as(payload, run_id, None).await
    }

    /// [`Engine::handle`] in another account, under the role session `role_session` (its
    /// name in CloudTrail): every record of the run names it, so that a change CloudTrail
    /// shows leads to the record of the run that made it.
    pub async fn handle_acting_as(
        &self,
        payload: Value,
        run_id: &str,
        role_session: Option<&str>,
    ) -> Result<Outcome, EngineError> {
        let caller = Caller {
            run_id,
            role_session,
        };
        // Boxed: a run's future nests the healer's and the SDK's, which unoptimised builds
        // lay out in full wherever it is awaited; on the heap, the caller's stays small.
        let outcome = match FollowUp::from_payload(&payload)? {
            Some(follow_up) => Box::pin(self.check(follow_up, caller)).await?,
            None => Box::pin(self.alarm(payload, caller)).await?,
        };
        if self.settings.emit_metrics
            && let Some(document) = metrics::document(&outcome, self.clock.now())
        {
            println!("{document}");
        }
        Ok(outcome)
    }
}
