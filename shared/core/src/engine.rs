//! The path of one event through a layer's function: parse, select, decide, claim, act,
//! record, notify. The engine is generic over the ports of [`crate::ports`]; the AWS adapters
//! implement them for the Lambda functions, and in-memory ones stand in for them in unit tests.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use tracing::{info, warn};

use crate::decision::{Decision, DecisionInput, ResourceState, decide, idempotency_token};
use crate::event::{AlarmEvent, AlarmState, EventError};
use crate::layer::Layer;
use crate::notice::Notice;
use crate::ports::{
    ClaimResult, Clock, HealOutcome, HealRequest, Healer, Notifier, ResourceKey, StateStore,
    StoreError,
};
use crate::record::{HealingRecord, HealingStatus, RunPhase, SkipReason};
use crate::resolve::{NotSelected, select, select_any};
use crate::revert::Revert;
use crate::rules::{Mode, Rule, RuleSet};

/// Deployment-wide switches, read from the environment by the function's `main`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// `Shadow` forces every rule into shadow mode; `Enforce` leaves each rule's own mode.
    pub mode: Mode,
    /// A disabled layer records nothing and acts on nothing.
    pub layer_enabled: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            mode: Mode::Enforce,
            layer_enabled: true,
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
}

impl EngineError {
    /// Whether delivering the same event again could succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, EngineError::Store(_))
    }
}

/// What the engine did with an event, as the outcome reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The rule's action ran (or, in shadow mode, would have: see the reason).
    Act,
    /// Nothing was done, for the reason given (recorded when the event got that far).
    Skip,
    /// OK on an open incident: it closes once OK holds for the stable period.
    Recovering,
    /// OK, and the changes earlier heals made were put back (or tried).
    Revert,
    /// Nothing to do and nothing recorded (OK without an incident, INSUFFICIENT_DATA, a
    /// duplicate OK).
    Ignore,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Act => "act",
            Verdict::Skip => "skip",
            Verdict::Recovering => "recovering",
            Verdict::Revert => "revert",
            Verdict::Ignore => "ignore",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened to one event: printed by the CLI, returned by the Lambda function.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    pub layer: Option<Layer>,
    pub event_id: String,
    pub alarm_name: String,
    pub alarm_state: AlarmState,
    pub decision: Verdict,
    pub rule: Option<String>,
    pub resource_id: Option<String>,
    pub action: Option<String>,
    pub mode: Option<Mode>,
    pub reason: Option<SkipReason>,
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<HealingRecord>,
}

impl Outcome {
    fn new(layer: Option<Layer>, event: &AlarmEvent) -> Self {
        Outcome {
            layer,
            event_id: event.id.clone(),
            alarm_name: event.alarm_name.clone(),
            alarm_state: event.state,
            decision: Verdict::Skip,
            rule: None,
            resource_id: None,
            action: None,
            mode: None,
            reason: None,
            detail: None,
            record: None,
        }
    }

    fn with_rule(mut self, rule: &Rule) -> Self {
        self.rule = Some(rule.name.clone());
        self.action = Some(rule.action.kind().to_owned());
        self.mode = Some(rule.mode);
        self
    }

    fn not_selected(self, not_selected: NotSelected<'_>) -> Self {
        let outcome = match not_selected.rule {
            Some(rule) => self.with_rule(rule),
            None => self,
        };
        outcome.skipped(not_selected.reason, not_selected.detail)
    }

    fn skipped(mut self, reason: SkipReason, detail: impl Into<String>) -> Self {
        self.decision = Verdict::Skip;
        self.reason = Some(reason);
        self.detail = Some(detail.into());
        self
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
        Decision::Recovering { .. } | Decision::Revert { .. } => {
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
pub struct Engine<S, N, H, C> {
    pub layer: Layer,
    pub rules: RuleSet,
    pub settings: Settings,
    pub store: S,
    pub notifier: N,
    pub healer: H,
    pub clock: C,
}

impl<S, N, H, C> Engine<S, N, H, C>
where
    S: StateStore,
    N: Notifier,
    H: Healer,
    C: Clock,
{
    /// Handles one event delivered to this layer's function. `run_id` must be unique per
    /// invocation (the Lambda request id).
    pub async fn handle(&self, payload: Value, run_id: &str) -> Result<Outcome, EngineError> {
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
            run_id,
            mode,
        };
        run.execute(outcome).await
    }
}

/// One event on one resource, once its rule is known.
struct Run<'a, S, N, H, C> {
    engine: &'a Engine<S, N, H, C>,
    rule: &'a Rule,
    key: &'a ResourceKey,
    event: &'a AlarmEvent,
    run_id: &'a str,
    mode: Mode,
}

impl<S, N, H, C> Run<'_, S, N, H, C>
where
    S: StateStore,
    N: Notifier,
    H: Healer,
    C: Clock,
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

    async fn execute(&self, mut outcome: Outcome) -> Result<Outcome, EngineError> {
        let store = &self.engine.store;
        for _ in 0..MAX_CONFLICT_RETRIES {
            let now = self.engine.clock.now();
            let loaded = store.load(self.key, &self.event.id).await?;
            let transition = decide(DecisionInput {
                policy: &self.rule.policy,
                state: &loaded.state,
                alarm: self.event.state,
                event_id: &self.event.id,
                event_seen: loaded.event_seen,
                run_id: self.run_id,
                now,
            });
            let expected = loaded.state.version;
            match transition.decision {
                Decision::Ignore { reason } => {
                    outcome.decision = Verdict::Ignore;
                    outcome.reason = Some(reason);
                    outcome.detail = Some(match reason {
                        SkipReason::NoOpenIncident => "OK with no open incident".to_owned(),
                        _ => format!("alarm state {} needs no action", self.event.state.as_str()),
                    });
                    return Ok(log(outcome));
                }
                Decision::Recovering { incident_id } => {
                    if let Some(next) = &transition.next
                        && !store.save(self.key, expected, next).await?
                    {
                        continue;
                    }
                    outcome.decision = Verdict::Recovering;
                    outcome.detail = Some(format!(
                        "incident {incident_id} closes if OK holds for {} s",
                        self.rule.policy.stable_period_seconds
                    ));
                    return Ok(log(outcome));
                }
                Decision::Skip { reason, escalate } => {
                    if let Some(next) = &transition.next
                        && !store.save(self.key, expected, next).await?
                    {
                        continue;
                    }
                    let incident = transition
                        .next
                        .as_ref()
                        .unwrap_or(&loaded.state)
                        .incident
                        .as_ref();
                    let mut record = self.record(
                        HealingStatus::Skipped,
                        incident.map_or(0, |i| i.attempts),
                        incident.map(|i| i.id.as_str()),
                    );
                    record.skip_reason = Some(reason);
                    record.ended_at = Some(record.started_at);
                    record.summary = Some(skip_summary(reason, self.rule));
                    store.put_record(&record).await?;
                    if escalate {
                        self.notify(&Notice::escalation(record.clone(), self.rule))
                            .await;
                    }
                    outcome.detail.clone_from(&record.summary);
                    outcome.reason = Some(reason);
                    outcome.record = Some(record);
                    return Ok(log(outcome));
                }
                Decision::Revert {
                    incident_id,
                    attempt,
                    takeover,
                } => {
                    let Some(next) = &transition.next else {
                        continue;
                    };
                    let mut record =
                        self.record(HealingStatus::InProgress, attempt, Some(&incident_id));
                    record.phase = RunPhase::Revert;
                    match store
                        .claim(self.key, &self.event.id, expected, next, &record, takeover)
                        .await?
                    {
                        ClaimResult::Conflict => continue,
                        ClaimResult::Duplicate => {
                            outcome.decision = Verdict::Ignore;
                            outcome.reason = Some(SkipReason::Duplicate);
                            outcome.detail = Some(skip_summary(SkipReason::Duplicate, self.rule));
                            return Ok(log(outcome));
                        }
                        ClaimResult::Claimed => {
                            let record = self.revert(record, &incident_id, &next.reverts).await?;
                            outcome.decision = Verdict::Revert;
                            outcome.reason = record.skip_reason;
                            outcome.detail = record.summary.clone().or(record.error.clone());
                            outcome.record = Some(record);
                            return Ok(log(outcome));
                        }
                    }
                }
                Decision::Act {
                    attempt,
                    incident_id,
                    takeover,
                    ..
                } => {
                    let Some(next) = &transition.next else {
                        continue;
                    };
                    let record =
                        self.record(HealingStatus::InProgress, attempt, Some(&incident_id));
                    match store
                        .claim(self.key, &self.event.id, expected, next, &record, takeover)
                        .await?
                    {
                        ClaimResult::Conflict => continue,
                        ClaimResult::Duplicate => {
                            let mut record = self.record(HealingStatus::Skipped, 0, None);
                            record.skip_reason = Some(SkipReason::Duplicate);
                            record.ended_at = Some(record.started_at);
                            record.summary = Some(skip_summary(SkipReason::Duplicate, self.rule));
                            store.put_record(&record).await?;
                            outcome.reason = Some(SkipReason::Duplicate);
                            outcome.detail.clone_from(&record.summary);
                            outcome.record = Some(record);
                            return Ok(log(outcome));
                        }
                        ClaimResult::Claimed => {
                            let record = self.act(record, &incident_id, &next.reverts).await?;
                            // Shadow runs claim like real ones (so cooldowns and attempts
                            // show what enforce mode would do) but report, like `explain`,
                            // that nothing was done.
                            outcome.decision = if self.mode == Mode::Shadow {
                                Verdict::Skip
                            } else {
                                Verdict::Act
                            };
                            outcome.reason = record.skip_reason;
                            outcome.detail = record.summary.clone().or(record.error.clone());
                            outcome.record = Some(record);
                            return Ok(log(outcome));
                        }
                    }
                }
            }
        }
        warn!(rule = %self.rule.name, resource = %self.key.resource_id, "state kept changing under this run; leaving the resource to the run that holds it");
        Ok(log(outcome.skipped(
            SkipReason::InProgress,
            "the resource's state kept changing under this run",
        )))
    }

    /// Runs the action (or only records it, in shadow mode), then stores and publishes the
    /// outcome.
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
        }
    }

    async fn act(
        &self,
        mut record: HealingRecord,
        incident_id: &str,
        pending: &[Revert],
    ) -> Result<HealingRecord, EngineError> {
        let mut reverts = None;
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
            match self.engine.healer.heal(request).await {
                Ok(HealOutcome::Healed {
                    summary,
                    details,
                    reverts: made,
                }) => {
                    record.status = HealingStatus::Completed;
                    record.summary = Some(summary);
                    record.details = details;
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
                Err(error) => {
                    record.status = HealingStatus::Failed;
                    record.error = Some(error.message);
                }
            }
        }
        let now = self.engine.clock.now();
        record.ended_at = Some(now);
        let spent = record.status == HealingStatus::Failed
            && record.attempt >= self.rule.policy.max_attempts;
        self.engine
            .store
            .finish(self.key, &record, spent.then_some(now), reverts.as_deref())
            .await?;
        self.notify(&Notice::healing(record.clone(), self.rule))
            .await;
        if spent {
            self.notify(&Notice::escalation(record.clone(), self.rule))
                .await;
        }
        Ok(record)
    }

    /// Puts back the changes heals made, newest first, and stops at the first that fails:
    /// an older change is only put back over the state the newer one left. What was put back
    /// (or found no longer autoheal's) leaves the pending list; the rest stays for the next OK.
    async fn revert(
        &self,
        mut record: HealingRecord,
        incident_id: &str,
        pending: &[Revert],
    ) -> Result<HealingRecord, EngineError> {
        let token = idempotency_token(
            &self.rule.name,
            &self.key.resource_id,
            &format!("{incident_id}#revert"),
            record.attempt,
        );
        let mut remaining = pending.to_vec();
        if self.mode == Mode::Shadow {
            record.status = HealingStatus::Skipped;
            record.skip_reason = Some(SkipReason::ShadowMode);
            record.summary = Some(format!(
                "shadow mode: would put back {} change(s) of `{}` on {}",
                pending.len(),
                self.rule.action.kind(),
                self.key.resource_id
            ));
        } else {
            let request = self.request(record.attempt, incident_id, &token);
            let numbered = pending.len() > 1;
            let mut summaries = Vec::new();
            record.status = HealingStatus::Completed;
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
            record.summary = (!summaries.is_empty()).then(|| summaries.join("; "));
        }
        record.ended_at = Some(self.engine.clock.now());
        self.engine
            .store
            .finish(self.key, &record, None, Some(&remaining))
            .await?;
        self.notify(&Notice::healing(record.clone(), self.rule))
            .await;
        Ok(record)
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
