//! The path of one event through a layer's function: parse, select, decide, claim, act,
//! schedule the follow-up, record, notify; and of a follow-up: read the alarm back, then
//! resolve, retry or escalate. The engine is generic over the ports of [`crate::ports`]; the AWS adapters
//! implement them for the Lambda functions, and in-memory ones stand in for them in unit tests.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tracing::{info, warn};

use crate::model::event::{AlarmEvent, AlarmState, EventError};
use crate::model::layer::Layer;
use crate::model::limits::{BudgetScope, Limit};
use crate::model::record::{HealingRecord, HealingStatus, RunPhase, SkipReason};
use crate::model::revert::Revert;
use crate::model::rules::{Mode, Rule, RuleSet};
use crate::model::state::{Incident, ResourceState};
use crate::model::time::after;
use crate::model::trip::{TripKind, Tripped};
use crate::policy::budget::{self, Budget, Spend, Usage};
use crate::policy::decision::{
    Decision, DecisionInput, Pending, Transition, decide, idempotency_token,
};
use crate::policy::followup::{
    CheckInput, FollowUp, MAX_ACTION_STEPS, decide_check, time_to_recover,
};
use crate::policy::group::{self, Hold, NOTICE_WINDOW_SECONDS, STORM_RECHECK_SECONDS};
use crate::policy::resolve::{select, select_any};
use crate::ports::clock::Clock;
use crate::ports::follow_ups::{FollowUpError, FollowUps};
use crate::ports::healer::{HealOutcome, HealRequest, Healer};
use crate::ports::notifier::Notifier;
use crate::ports::store::{
    ActionEnd, ClaimRequest, ClaimResult, Loaded, ResourceKey, StateStore, StoreError,
};
use crate::report::metrics;
use crate::report::notice::Notice;
use crate::report::outcome::{Outcome, Verdict};

/// Deployment-wide switches, read from the environment by the function's `main`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// `Shadow` forces every rule into shadow mode; `Enforce` leaves each rule's own mode.
    pub mode: Mode,
    /// A disabled layer records nothing and acts on nothing.
    pub layer_enabled: bool,
    /// Write each outcome's metrics to stdout in CloudWatch's embedded metric format (the
    /// Lambda functions do; the command line does not).
    pub emit_metrics: bool,
    /// At most this many actions of this layer per rolling window (`None`: no layer budget).
    pub layer_budget: Option<Limit>,
    /// At most this many actions of the whole deployment per rolling window.
    pub global_budget: Option<Limit>,
}

/// The shipped layer budget: 10 actions per 15 minutes.
pub const DEFAULT_LAYER_BUDGET: Limit = Limit {
    limit: 10,
    window_seconds: 900,
};
/// The shipped global budget: 20 actions per 15 minutes, all layers together.
pub const DEFAULT_GLOBAL_BUDGET: Limit = Limit {
    limit: 20,
    window_seconds: 900,
};

impl Default for Settings {
    fn default() -> Self {
        Settings {
            mode: Mode::Enforce,
            layer_enabled: true,
            emit_metrics: false,
            layer_budget: Some(DEFAULT_LAYER_BUDGET),
            global_budget: Some(DEFAULT_GLOBAL_BUDGET),
        }
    }
}

/// Why an event could not be handled at all. Nothing was acted on.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("invalid event: {0}")]
    InvalidEvent(#[from] EventError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    FollowUp(#[from] FollowUpError),
    /// The group of the resource could not be read: without it the group guard cannot tell
    /// whether acting is safe, so nothing was done.
    #[error("group guard: {0}")]
    Group(String),
    /// An operator's request that cannot be carried out as asked; nothing was changed.
    #[error("{0}")]
    Refused(String),
}

impl EngineError {
    /// Whether delivering the same event again could succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            EngineError::Store(_) | EngineError::FollowUp(_) | EngineError::Group(_)
        )
    }
}

/// Explains, without any I/O, what `event` would do on a resource with no history.
pub fn explain(
    rules: &RuleSet,
    event: &AlarmEvent,
    settings: Settings,
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

fn effective_mode(settings: Settings, rule: &Rule) -> Mode {
    if settings.mode == Mode::Shadow {
        Mode::Shadow
    } else {
        rule.mode
    }
}

/// How many times the engine re-reads and re-decides after losing a race on the state.
const MAX_CONFLICT_RETRIES: usize = 5;

/// One layer's healing engine, built once per container.
#[derive(Debug)]
pub struct Engine<S, N, H, C, F> {
    pub layer: Layer,
    pub rules: RuleSet,
    pub settings: Settings,
    pub store: S,
    pub notifier: N,
    pub healer: H,
    pub clock: C,
    pub follow_ups: F,
}

impl<S, N, H, C, F> Engine<S, N, H, C, F>
where
    S: StateStore,
    N: Notifier,
    H: Healer,
    C: Clock,
    F: FollowUps,
{
    /// Handles one event delivered to this layer's function: a CloudWatch alarm state change,
    /// or one of autoheal's own follow-ups. `run_id` must be unique per invocation (the Lambda
    /// request id).
    pub async fn handle(&self, payload: Value, run_id: &str) -> Result<Outcome, EngineError> {
        // Boxed: a run's future nests the healer's and the SDK's, which unoptimised builds
        // lay out in full wherever it is awaited; on the heap, the caller's stays small.
        let outcome = match FollowUp::from_payload(&payload)? {
            Some(follow_up) => Box::pin(self.check(follow_up, run_id)).await?,
            None => Box::pin(self.alarm(payload, run_id)).await?,
        };
        if self.settings.emit_metrics
            && let Some(document) = metrics::document(&outcome, self.clock.now())
        {
            println!("{document}");
        }
        Ok(outcome)
    }

    /// Handles one CloudWatch alarm state change.
    async fn alarm(&self, payload: Value, run_id: &str) -> Result<Outcome, EngineError> {
        let event = AlarmEvent::from_value(payload)?;
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
        let mode = effective_mode(self.settings, rule);
        outcome.mode = Some(mode);
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
        };
        let run = Run {
            engine: self,
            rule,
            key: &key,
            event: &event,
            origin: &event,
            run_id,
            mode,
        };
        // Only an ALARM is decided on a presumption: an OK's decision depends on what is
        // stored (a revert, a recovery) even when it would write nothing.
        let presume = event.state == AlarmState::Alarm;
        run.execute(outcome, presume, |loaded, now| {
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
        .await
    }

    /// An operator closes the open incident of `rule` on `resource_id` (typically an escalated
    /// one): autoheal acts on the resource again at its next ALARM. Recorded and notified.
    pub async fn reset(
        &self,
        rule: &str,
        resource_id: &str,
        run_id: &str,
    ) -> Result<HealingRecord, EngineError> {
        let rule = self
            .rules
            .get(rule)
            .filter(|rule| rule.layer == self.layer)
            .ok_or_else(|| {
                EngineError::Refused(format!("the {} layer has no rule `{rule}`", self.layer))
            })?;
        let key = ResourceKey {
            rule: rule.name.clone(),
            resource_id: resource_id.to_owned(),
        };
        for _ in 0..MAX_CONFLICT_RETRIES {
            let now = self.clock.now();
            let loaded = self.store.load(&key, run_id).await?;
            let state = &loaded.state;
            let Some(incident) = state
                .incident
                .as_ref()
                .filter(|incident| incident.resolved_at.is_none())
            else {
                return Err(EngineError::Refused(format!(
                    "`{}` has no open incident on {resource_id}",
                    rule.name
                )));
            };
            if state.lease.as_ref().is_some_and(|lease| lease.is_held(now)) {
                return Err(EngineError::Refused(format!(
                    "a run of `{}` is working on {resource_id}: reset once it ends",
                    rule.name
                )));
            }
            let mut next = state.clone();
            next.version += 1;
            next.lease = None;
            if let Some(open) = next.incident.as_mut() {
                open.resolved_at = Some(now);
            }
            if !self.store.save(&key, state.version, &next).await? {
                continue;
            }
            let record = HealingRecord {
                id: run_id.to_owned(),
                event_id: format!("reset:{run_id}"),
                alarm_name: String::new(),
                rule: rule.name.clone(),
                layer: rule.layer,
                action: rule.action.kind().to_owned(),
                resource_id: resource_id.to_owned(),
                status: HealingStatus::Completed,
                phase: RunPhase::Reset,
                mode: effective_mode(self.settings, rule),
                started_at: now,
                ended_at: Some(now),
                attempt: incident.attempts,
                incident_id: Some(incident.id.clone()),
                skip_reason: None,
                error: None,
                summary: Some(match incident.escalated_at {
                    Some(at) => format!(
                        "incident {} closed by an operator after {} attempt(s) (escalated at {})",
                        incident.id,
                        incident.attempts,
                        at.to_rfc3339()
                    ),
                    None => format!(
                        "incident {} closed by an operator after {} attempt(s)",
                        incident.id, incident.attempts
                    ),
                }),
                details: BTreeMap::new(),
            };
            self.store.put_record(&record).await?;
            if let Err(error) = self
                .notifier
                .notify(&Notice::healing(record.clone(), rule))
                .await
            {
                warn!(rule = %rule.name, resource = %resource_id, %error, "notification not sent");
            }
            return Ok(record);
        }
        Err(EngineError::Refused(format!(
            "the state of `{}` on {resource_id} kept changing: try again",
            rule.name
        )))
    }

    /// Runs one follow-up: reads the alarm back and resolves, retries, waits or escalates.
    async fn check(&self, follow_up: FollowUp, run_id: &str) -> Result<Outcome, EngineError> {
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
        let mode = effective_mode(self.settings, rule);
        outcome.mode = Some(mode);
        let key = ResourceKey {
            rule: rule.name.clone(),
            resource_id: follow_up.resource_id.clone(),
        };
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
            mode,
        };
        run.execute(outcome, false, |loaded, now| {
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
        .await
    }
}

/// What a run claims: the state it read (`expected`), the state it writes, and its attempt.
struct Claim<'a> {
    expected: u64,
    next: &'a ResourceState,
    attempt: u32,
    incident_id: &'a str,
    takeover: bool,
    /// A follow-up resuming the attempt's unfinished action.
    resumed: bool,
}

impl<'a> Claim<'a> {
    /// The claim of a decision that writes `next` (none: the decision wrote nothing to claim).
    fn of(
        expected: u64,
        next: Option<&'a ResourceState>,
        attempt: u32,
        incident_id: &'a str,
        takeover: bool,
    ) -> Option<Self> {
        Some(Claim {
            expected,
            next: next?,
            attempt,
            incident_id,
            takeover,
            resumed: false,
        })
    }

    /// The claim of a follow-up that resumes the attempt's unfinished action.
    fn resuming(mut self, resumed: bool) -> Self {
        self.resumed = resumed;
        self
    }
}

/// What the safety governor let through: the decision (possibly turned into a deferral), the
/// budgets its action spends and the group slot it takes.
struct Governed {
    transition: Transition,
    spends: Vec<Spend>,
    hold: Option<Hold>,
}

impl Governed {
    /// A decision the governor has nothing to add to.
    fn free(transition: Transition) -> Self {
        Governed {
            transition,
            spends: Vec::new(),
            hold: None,
        }
    }
}

/// How a decision's write ended.
enum Step {
    /// The run is over.
    Done(Outcome),
    /// Another run changed the state, spent a budget or took a group's slot first: decide
    /// again, on the state the refused write returned when it did, else on a new read.
    Again(Option<Loaded>),
}

/// One event on one resource, once its rule is known.
struct Run<'a, S, N, H, C, F> {
    engine: &'a Engine<S, N, H, C, F>,
    rule: &'a Rule,
    key: &'a ResourceKey,
    /// The event this run handles: an alarm's, or a follow-up's (its own id, the alarm's
    /// content).
    event: &'a AlarmEvent,
    /// The alarm event that drove the incident: what the next follow-up carries.
    origin: &'a AlarmEvent,
    run_id: &'a str,
    mode: Mode,
}

impl<S, N, H, C, F> Run<'_, S, N, H, C, F>
where
    S: StateStore,
    N: Notifier,
    H: Healer,
    C: Clock,
    F: FollowUps,
{
    fn record(
        &self,
        status: HealingStatus,
        attempt: u32,
        incident_id: Option<&str>,
    ) -> HealingRecord {
        HealingRecord {
            id: self.run_id.to_owned(),
            event_id: self.event.id.clone(),
            alarm_name: self.event.alarm_name.clone(),
            rule: self.rule.name.clone(),
            layer: self.rule.layer,
            action: self.rule.action.kind().to_owned(),
            resource_id: self.key.resource_id.clone(),
            status,
            phase: RunPhase::Heal,
            mode: self.mode,
            started_at: self.engine.clock.now(),
            ended_at: None,
            attempt,
            incident_id: incident_id.map(str::to_owned),
            skip_reason: None,
            error: None,
            summary: None,
            details: BTreeMap::new(),
        }
    }

    /// Decides on the state as loaded and carries the decision out; a decision whose write
    /// lost a race to another run is made again on the state that run left.
    ///
    /// With `presume`, the first decision is made without a read, on nothing stored (no
    /// state, the event unclaimed, no budget spent): the common first ALARM on a resource.
    /// That is safe because the decision's write is conditioned on exactly that (the state's
    /// absence, the event's, the budgets' counts), and a refused write returns what is
    /// stored; a decision that would write nothing is not trusted on a presumption, and reads.
    async fn execute(
        &self,
        outcome: Outcome,
        presume: bool,
        decide: impl Fn(&Loaded, DateTime<Utc>) -> Transition,
    ) -> Result<Outcome, EngineError> {
        let budgets = self.budgets();
        let mut known = presume.then(|| (Loaded::default(), vec![Usage::default(); budgets.len()]));
        for round in 0..MAX_CONFLICT_RETRIES {
            let presumed = presume && round == 0;
            let now = self.engine.clock.now();
            let (loaded, usages) = match known.take() {
                Some(known) => known,
                // The state, the event's claim and the budgets' windows in one read: the
                // budgets matter only to a new attempt, but reading them with the state costs
                // no request.
                None => {
                    self.engine
                        .store
                        .load_with_budgets(self.key, &self.event.id, &budgets, now)
                        .await?
                }
            };
            let decided = decide(&loaded, now);
            if presumed && decided.next.is_none() {
                continue;
            }
            let Governed {
                transition,
                spends,
                hold,
            } = self
                .govern(&loaded, decided, &budgets, &usages, now)
                .await?;
            let expected = loaded.state.version;
            let next = transition.next.as_ref();
            let done = match transition.decision {
                Decision::Ignore { reason } => Step::Done(self.ignore(outcome.clone(), reason)),
                Decision::Recovering { incident_id } => {
                    self.recovering(outcome.clone(), expected, next, &incident_id)
                        .await?
                }
                Decision::Skip { reason, escalate } => {
                    let state = next.unwrap_or(&loaded.state);
                    self.skip(outcome.clone(), expected, next, state, reason, escalate)
                        .await?
                }
                Decision::Revert {
                    incident_id,
                    attempt,
                    takeover,
                } => match Claim::of(expected, next, attempt, &incident_id, takeover) {
                    Some(claim) => self.claim_and_revert(outcome.clone(), claim).await?,
                    None => Step::Again(None),
                },
                Decision::Act {
                    attempt,
                    incident_id,
                    takeover,
                    resumed,
                    ..
                } => match Claim::of(expected, next, attempt, &incident_id, takeover) {
                    Some(claim) => {
                        let claim = claim.resuming(resumed);
                        self.claim_and_act(outcome.clone(), claim, &spends, hold.as_ref())
                            .await?
                    }
                    None => Step::Again(None),
                },
                Decision::Resolve {
                    incident_id,
                    attempt,
                    recovered_at,
                    takeover,
                    gone,
                } => match Claim::of(expected, next, attempt, &incident_id, takeover) {
                    Some(claim) => {
                        self.claim_and_resolve(outcome.clone(), claim, recovered_at, gone)
                            .await?
                    }
                    None => Step::Again(None),
                },
                Decision::Defer {
                    incident_id,
                    until,
                    tripped,
                } => {
                    self.defer(
                        outcome.clone(),
                        expected,
                        next,
                        &incident_id,
                        until,
                        &tripped,
                    )
                    .await?
                }
                Decision::Recheck {
                    incident_id,
                    at,
                    reason,
                } => {
                    self.recheck(outcome.clone(), expected, next, &incident_id, at, reason)
                        .await?
                }
            };
            match done {
                Step::Done(outcome) => return Ok(log(outcome)),
                // A refused claim that returned the state is decided on again as it is; the
                // counts of the budgets stay those read or presumed, which the next claim's
                // conditions check again.
                Step::Again(Some(stored)) => known = Some((stored, usages)),
                Step::Again(None) => known = None,
            }
        }
        warn!(rule = %self.rule.name, resource = %self.key.resource_id, "state kept changing under this run; leaving the resource to the run that holds it");
        Ok(log(outcome.skipped(
            SkipReason::InProgress,
            "the resource's state kept changing under this run",
        )))
    }

    /// Nothing to do and nothing to record.
    fn ignore(&self, mut outcome: Outcome, reason: SkipReason) -> Outcome {
        outcome.decision = Verdict::Ignore;
        outcome.reason = Some(reason);
        outcome.detail = Some(match reason {
            SkipReason::NoOpenIncident => "OK with no open incident".to_owned(),
            SkipReason::Duplicate => skip_summary(reason, self.rule),
            _ => format!("alarm state {} needs no action", self.event.state.as_str()),
        });
        outcome
    }

    /// Writes `next` over the state at version `expected`; `false` when another run changed
    /// the state first. Nothing to write is a write that cannot lose.
    async fn save(&self, expected: u64, next: Option<&ResourceState>) -> Result<bool, StoreError> {
        match next {
            Some(next) => self.engine.store.save(self.key, expected, next).await,
            None => Ok(true),
        }
    }

    /// OK on an open incident: the state notes it; the incident closes once OK holds.
    async fn recovering(
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
    async fn skip(
        &self,
        mut outcome: Outcome,
        expected: u64,
        next: Option<&ResourceState>,
        state: &ResourceState,
        reason: SkipReason,
        escalate: bool,
    ) -> Result<Step, EngineError> {
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
        record.summary = Some(skip_summary(reason, self.rule));
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

    /// A failed last attempt: the incident is escalated with it.
    fn spends_the_last_attempt(&self, record: &HealingRecord) -> bool {
        record.status == HealingStatus::Failed && record.attempt >= self.rule.policy.max_attempts
    }

    /// The in-progress record a claim writes.
    fn in_progress(&self, claim: &Claim<'_>, phase: RunPhase) -> HealingRecord {
        let mut record = self.record(
            HealingStatus::InProgress,
            claim.attempt,
            Some(claim.incident_id),
        );
        record.phase = phase;
        record
    }

    /// Claims the resource for this run's revert and, once claimed, puts the changes back.
    async fn claim_and_revert(
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
            refused => Ok(self.not_claimed(outcome, refused)),
        }
    }

    /// Claims the resource for this run's attempt and, once claimed, runs the action.
    async fn claim_and_act(
        &self,
        mut outcome: Outcome,
        claim: Claim<'_>,
        spends: &[Spend],
        hold: Option<&Hold>,
    ) -> Result<Step, EngineError> {
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
        match self.claim(&claim, &record, spends, hold).await? {
            ClaimResult::Claimed => {
                // The follow-up is scheduled before the action, so that an invocation that
                // dies during it is still followed up; the check waits for the backoff.
                let mut record = record;
                if self.mode == Mode::Enforce
                    && let Some((check, at)) = self.follow_up_of(claim.next, claim.resumed)
                {
                    match self.schedule(claim.incident_id, check, at).await {
                        Ok(()) => {
                            record
                                .details
                                .insert("follow_up_at".to_owned(), at.to_rfc3339());
                        }
                        Err(error) => {
                            warn!(rule = %self.rule.name, resource = %self.key.resource_id, %error, "follow-up not scheduled");
                            record
                                .details
                                .insert("follow_up".to_owned(), format!("not scheduled: {error}"));
                        }
                    }
                }
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
            refused => Ok(self.not_claimed(outcome, refused)),
        }
    }

    /// Claims the resource to close the incident as resolved: what heals changed is put back,
    /// and the time to recover recorded.
    async fn claim_and_resolve(
        &self,
        outcome: Outcome,
        claim: Claim<'_>,
        recovered_at: DateTime<Utc>,
        gone: bool,
    ) -> Result<Step, EngineError> {
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
                let (remaining, mut summaries) = self
                    .put_back(&mut record, claim.incident_id, &claim.next.reverts)
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
                let mut outcome = outcome.with_record(record);
                outcome.decision = Verdict::Resolve;
                Ok(Step::Done(outcome))
            }
            refused => Ok(self.not_claimed(outcome, refused)),
        }
    }

    /// A follow-up that cannot conclude yet: the next check is scheduled, then counted (a
    /// check scheduled twice for one number is one schedule).
    async fn recheck(
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
    fn follow_up_of(&self, next: &ResourceState, resumed: bool) -> Option<(u32, DateTime<Utc>)> {
        let incident = next.incident.as_ref()?;
        let due = incident.next_attempt_at?;
        let at = match next.lease.as_ref() {
            Some(lease) if resumed => lease.expires_at.min(due),
            _ => due,
        };
        Some((incident.checks, at))
    }

    /// Schedules check number `check` of `incident_id` at `at`.
    async fn schedule(
        &self,
        incident_id: &str,
        check: u32,
        at: DateTime<Utc>,
    ) -> Result<(), FollowUpError> {
        let follow_up = FollowUp {
            layer: self.rule.layer,
            rule: self.rule.name.clone(),
            resource_id: self.key.resource_id.clone(),
            incident_id: incident_id.to_owned(),
            check,
            alarm: self.origin.clone(),
        };
        self.engine.follow_ups.schedule(&follow_up, at).await
    }

    /// A claim that did not go through. Another delivery of this event claimed it: the
    /// redelivery is ignored (the event's run has its record; the log line and the skip
    /// metric count the redelivery). Otherwise another run moved first: decide again.
    fn not_claimed(&self, outcome: Outcome, refused: ClaimResult) -> Step {
        match refused {
            ClaimResult::Duplicate => Step::Done(self.ignore(outcome, SkipReason::Duplicate)),
            ClaimResult::Conflict { stored } => Step::Again(stored.map(|stored| *stored)),
            ClaimResult::OverBudget | ClaimResult::Claimed => Step::Again(None),
        }
    }

    async fn claim(
        &self,
        claim: &Claim<'_>,
        record: &HealingRecord,
        spends: &[Spend],
        hold: Option<&Hold>,
    ) -> Result<ClaimResult, StoreError> {
        self.engine
            .store
            .claim(&ClaimRequest {
                key: self.key,
                event_id: &self.event.id,
                expected_version: claim.expected,
                next: claim.next,
                record,
                takeover: claim.takeover,
                spends,
                hold,
            })
            .await
    }

    /// The budgets this run's actions count against: the rule's, the layer's, the
    /// deployment's.
    fn budgets(&self) -> Vec<Budget> {
        let settings = self.engine.settings;
        let rule = Some(Budget {
            scope: BudgetScope::Rule(self.rule.name.clone()),
            limit: self.rule.policy.budget,
        });
        let layer = settings.layer_budget.map(|limit| Budget {
            scope: BudgetScope::Layer(self.rule.layer),
            limit,
        });
        let global = settings.global_budget.map(|limit| Budget {
            scope: BudgetScope::Global,
            limit,
        });
        [rule, layer, global].into_iter().flatten().collect()
    }

    /// The safety governor: a new attempt that a budget or its group's guard does not allow
    /// becomes a deferral; one they allow carries what it spends and the group slot it takes
    /// into its claim (checked there, atomically). A taken-over or resumed attempt continues
    /// one already counted.
    async fn govern(
        &self,
        loaded: &Loaded,
        transition: Transition,
        budgets: &[Budget],
        usages: &[Usage],
        now: DateTime<Utc>,
    ) -> Result<Governed, EngineError> {
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
        let spends = budget::spends(budgets, usages, now);
        let token = idempotency_token(
            &self.rule.name,
            &self.key.resource_id,
            incident_id,
            *attempt,
        );
        let group = self
            .engine
            .healer
            .group(self.request(*attempt, incident_id, &token))
            .await
            .map_err(|error| EngineError::Group(error.message))?;
        let Some(group) = group else {
            return Ok(Governed {
                transition,
                spends,
                hold: None,
            });
        };
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
        match group::choose_slot(&slots, capacity, &self.key.resource_id, now) {
            Ok(slot) => {
                let until = acted
                    .incident
                    .as_ref()
                    .and_then(|incident| incident.next_attempt_at)
                    .unwrap_or_else(|| after(now, self.rule.policy.lease_seconds));
                let hold = Hold {
                    group: group.id.clone(),
                    slot,
                    holder: self.key.resource_id.clone(),
                    until,
                    now,
                };
                Ok(Governed {
                    transition,
                    spends,
                    hold: Some(hold),
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
    fn deferred(
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
            .and_then(|acted| budget::defer(&loaded.state, acted, tripped, until));
        Governed::free(deferred.unwrap_or(transition))
    }

    /// An attempt deferred by a spent budget or a group guard: recorded with the guard's
    /// reason, its check scheduled for when the guard reopens, and the guard's first deferral
    /// of the window notified.
    async fn defer(
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
                };
                match self.engine.store.claim(&request).await? {
                    ClaimResult::Claimed => {}
                    refused => return Ok(self.not_claimed(outcome, refused)),
                }
            }
            None => self.engine.store.put_record(&record).await?,
        }
        if self.engine.store.first_trip(tripped).await? {
            self.notify(&Notice::deferral(record.clone(), self.rule, tripped))
                .await;
        }
        outcome.reason = Some(reason);
        outcome.detail.clone_from(&record.summary);
        outcome.record = Some(record);
        Ok(Step::Done(outcome))
    }

    /// What the healer is asked, for this run's attempt.
    fn request<'r>(
        &'r self,
        attempt: u32,
        incident_id: &'r str,
        token: &'r str,
    ) -> HealRequest<'r> {
        HealRequest {
            rule: self.rule,
            resource_id: &self.key.resource_id,
            attempt,
            incident_id,
            idempotency_token: token,
            event: self.event,
            alarm_actions: &[],
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
                    end = self
                        .next_step(&mut record, incident_id, claimed, resume_after_seconds)
                        .await;
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
        resume_after_seconds: u64,
    ) -> ActionEnd {
        let Some(incident) = claimed.incident.as_ref() else {
            return ActionEnd::Continues { check: None };
        };
        let check = incident.checks + 1;
        let at = after(self.engine.clock.now(), resume_after_seconds.max(1));
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
    async fn put_back(
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

    /// Ends a claimed run: the final record, the lease released, what is left to put back;
    /// then the notification.
    async fn finish(
        &self,
        mut record: HealingRecord,
        escalated_at: Option<DateTime<Utc>>,
        remaining: &[Revert],
    ) -> Result<HealingRecord, EngineError> {
        record.ended_at = Some(self.engine.clock.now());
        self.engine
            .store
            .finish(
                self.key,
                &record,
                escalated_at,
                Some(remaining),
                ActionEnd::Untouched,
            )
            .await?;
        self.notify(&Notice::healing(record.clone(), self.rule))
            .await;
        Ok(record)
    }

    /// The escalation of this run's incident, with every record the incident has so far.
    async fn escalate(&self, record: &HealingRecord, incident: Option<&Incident>) {
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

    /// A notification that cannot be sent must not undo or repeat a heal: it is logged.
    async fn notify(&self, notice: &Notice) {
        if let Err(error) = self.engine.notifier.notify(notice).await {
            warn!(rule = %self.rule.name, resource = %self.key.resource_id, %error, "notification not sent");
        }
    }
}

fn skip_summary(reason: SkipReason, rule: &Rule) -> String {
    let policy = &rule.policy;
    match reason {
        SkipReason::Duplicate => "this event was already handled by another delivery".to_owned(),
        SkipReason::Cooldown => format!(
            "acted on this resource less than {} s ago",
            policy.cooldown_seconds
        ),
        SkipReason::Backoff => "the incident's next attempt is not due yet".to_owned(),
        SkipReason::MaxAttempts => format!(
            "all {} attempts of this incident are spent: a human is needed",
            policy.max_attempts
        ),
        SkipReason::InProgress => "another run holds this resource".to_owned(),
        SkipReason::Unverifiable => {
            "the alarm could not be read back or had no data for too long: a human is needed"
                .to_owned()
        }
        SkipReason::Unfinished => format!(
            "the action did not finish within {} steps: a human is needed",
            MAX_ACTION_STEPS
        ),
        SkipReason::Escalated => {
            "the incident is escalated: nothing more is done until it resolves or is reset"
                .to_owned()
        }
        other => other.as_str().to_owned(),
    }
}

fn log(outcome: Outcome) -> Outcome {
    info!(
        layer = outcome.layer.map(Layer::as_str),
        event_id = %outcome.event_id,
        alarm = %outcome.alarm_name,
        state = outcome.alarm_state.as_str(),
        rule = outcome.rule.as_deref(),
        resource = outcome.resource_id.as_deref(),
        action = outcome.action.as_deref(),
        decision = outcome.decision.as_str(),
        reason = outcome.reason.map(SkipReason::as_str),
        status = outcome.record.as_ref().map(|r| r.status.as_str()),
        "{}",
        outcome.detail.as_deref().unwrap_or("")
    );
    outcome
}
