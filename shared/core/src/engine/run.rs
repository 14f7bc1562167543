//! One event on one resource, once its rule is known: decide on the state as loaded, let the
//! safety governor through, carry the decision out (each step in its own file), and decide
//! again when another run moved first. What the steps share: the run, its claim, and how a
//! step ends.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use super::Engine;
use super::error::EngineError;
use crate::model::event::AlarmEvent;
use crate::model::layer::Layer;
use crate::model::limits::resource_key;
use crate::model::record::{HealingRecord, HealingStatus, RunPhase, SkipReason};
use crate::model::rules::{Mode, Rule};
use crate::model::state::ResourceState;
use crate::policy::budget::{Spend, Usage};
use crate::policy::decision::{Decision, Transition};
use crate::policy::followup::MAX_ACTION_STEPS;
use crate::policy::group::Hold;
use crate::ports::{
    AlarmNow, ClaimRequest, ClaimResult, Clock, FollowUps, HealRequest, Healer, Loaded, Notifier,
    ResourceKey, ResourceLock, StateStore, StoreError,
};
use crate::report::notice::Notice;
use crate::report::outcome::{Outcome, Verdict};

/// How many times the engine re-reads and re-decides after losing a race on the state.
pub(super) const MAX_CONFLICT_RETRIES: usize = 5;

/// What a run claims: the state it read (`stored`, at version `expected`), the state it
/// writes, and its attempt.
pub(super) struct Claim<'a> {
    pub(super) stored: &'a ResourceState,
    pub(super) expected: u64,
    pub(super) next: &'a ResourceState,
    pub(super) attempt: u32,
    pub(super) incident_id: &'a str,
    pub(super) takeover: bool,
    /// A follow-up resuming the attempt's unfinished action.
    pub(super) resumed: bool,
}

impl<'a> Claim<'a> {
    /// The claim of a decision that writes `next` (none: the decision wrote nothing to claim).
    fn of(
        stored: &'a ResourceState,
        next: Option<&'a ResourceState>,
        attempt: u32,
        incident_id: &'a str,
        takeover: bool,
    ) -> Option<Self> {
        Some(Claim {
            stored,
            expected: stored.version,
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
pub(super) struct Governed {
    pub(super) transition: Transition,
    pub(super) spends: Vec<Spend>,
    pub(super) hold: Option<Hold>,
    /// What the governor saw that the run's record says (what an attempt waited for).
    pub(super) details: BTreeMap<String, String>,
    /// The sentence a skip it decided records, instead of its reason's.
    pub(super) summary: Option<String>,
}

impl Governed {
    /// A decision the governor has nothing to add to.
    pub(super) fn free(transition: Transition) -> Self {
        Governed {
            transition,
            spends: Vec::new(),
            hold: None,
            details: BTreeMap::new(),
            summary: None,
        }
    }
}

/// What the governor admitted an attempt with: the budgets it spends, the group slot it
/// takes, and what its record says the governor saw.
pub(super) struct Admitted<'a> {
    pub(super) spends: &'a [Spend],
    pub(super) hold: Option<&'a Hold>,
    pub(super) details: BTreeMap<String, String>,
}

/// A skip to record: why, whether it is the one that asks a person, and its sentence when
/// the reason's own does not say enough.
pub(super) struct Skipped {
    pub(super) reason: SkipReason,
    pub(super) escalate: bool,
    pub(super) summary: Option<String>,
}

/// How a decision's write ended.
// Both variants carry a run's worth of state, and a step lives for one decision: boxing
// either would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub(super) enum Step {
    /// The run is over.
    Done(Outcome),
    /// Another run changed the state, spent a budget or took a group's slot first: decide
    /// again, on the state the refused write returned when it did, else on a new read.
    Again(Option<Loaded>),
}

/// One event on one resource, once its rule is known.
pub(super) struct Run<'a, S, N, H, C, F> {
    pub(super) engine: &'a Engine<S, N, H, C, F>,
    pub(super) rule: &'a Rule,
    pub(super) key: &'a ResourceKey,
    /// The event this run handles: an alarm's, or a follow-up's (its own id, the alarm's
    /// content).
    pub(super) event: &'a AlarmEvent,
    /// The alarm event that drove the incident: what the next follow-up carries.
    pub(super) origin: &'a AlarmEvent,
    pub(super) run_id: &'a str,
    /// The role session the run acts under in another account (see
    /// [`Engine::handle_acting_as`]).
    pub(super) role_session: Option<&'a str>,
    pub(super) mode: Mode,
    /// The alarm as CloudWatch holds it now, read once (on the alarm path, before a run
    /// acts, reverts or starts a recovery).
    pub(super) alarm_now: std::sync::OnceLock<Option<AlarmNow>>,
    /// The check this run scheduled before a claim (incident id and number): should the
    /// claim be refused and the run decide again, that number is passed over.
    pub(super) scheduled: std::sync::Mutex<Option<(String, u32)>>,
}

impl<S: StateStore, N: Notifier, H: Healer, C: Clock, F: FollowUps> Run<'_, S, N, H, C, F> {
    pub(super) fn record(
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
            account: self.event.account.clone(),
            region: self.event.region.clone(),
            role_session: self.role_session.map(str::to_owned),
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
    pub(super) async fn execute(
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
                details,
                summary,
            } = self
                .govern(&loaded, decided, &budgets, &usages, now)
                .await?;
            let stored = &loaded.state;
            let expected = stored.version;
            let next = transition.next.as_ref();
            let done = match transition.decision {
                Decision::Ignore { reason } => {
                    let mut ignored = self.ignore(outcome.clone(), reason);
                    if summary.is_some() {
                        ignored.detail = summary;
                    }
                    Step::Done(ignored)
                }
                Decision::Gone {
                    incident_id,
                    summary,
                } => {
                    self.gone(outcome.clone(), expected, next, &incident_id, summary)
                        .await?
                }
                Decision::Recovering { incident_id } => {
                    self.recovering(outcome.clone(), expected, next, &incident_id)
                        .await?
                }
                Decision::Skip { reason, escalate } => {
                    let state = next.unwrap_or(&loaded.state);
                    let skip = Skipped {
                        reason,
                        escalate,
                        summary,
                    };
                    self.skip(outcome.clone(), expected, next, state, skip)
                        .await?
                }
                Decision::Revert {
                    incident_id,
                    attempt,
                    takeover,
                } => match Claim::of(stored, next, attempt, &incident_id, takeover) {
                    Some(claim) => self.claim_and_revert(outcome.clone(), claim).await?,
                    None => Step::Again(None),
                },
                Decision::Act {
                    attempt,
                    incident_id,
                    takeover,
                    resumed,
                    ..
                } => match Claim::of(stored, next, attempt, &incident_id, takeover) {
                    Some(claim) => {
                        let claim = claim.resuming(resumed);
                        let governed = Admitted {
                            spends: &spends,
                            hold: hold.as_ref(),
                            details,
                        };
                        self.claim_and_act(outcome.clone(), claim, governed).await?
                    }
                    None => Step::Again(None),
                },
                Decision::Resolve {
                    incident_id,
                    attempt,
                    recovered_at,
                    takeover,
                    gone,
                } => match Claim::of(stored, next, attempt, &incident_id, takeover) {
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
                    let next = self.past_scheduled(&incident_id, next);
                    self.defer(
                        outcome.clone(),
                        expected,
                        next.as_ref(),
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
                    let next = self.past_scheduled(&incident_id, next);
                    self.recheck(
                        outcome.clone(),
                        expected,
                        next.as_ref(),
                        &incident_id,
                        at,
                        reason,
                    )
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

    /// Notes the check this run scheduled before its claim.
    pub(super) fn note_scheduled(&self, incident_id: &str, check: u32) {
        if let Ok(mut scheduled) = self.scheduled.lock() {
            *scheduled = Some((incident_id.to_owned(), check));
        }
    }

    /// `next`, the state of a deferral or a recheck, past the check this run scheduled for a
    /// claim that was then refused, when it would take the same number: that schedule stands
    /// (a schedule's name is its number) and is due when the refused attempt's would have
    /// been, so this one takes the next number, and the one passed over counts with the
    /// governor's deferrals, not against the checks the incident may use. The schedule passed
    /// over finds its number superseded and does nothing.
    pub(super) fn past_scheduled(
        &self,
        incident_id: &str,
        next: Option<&ResourceState>,
    ) -> Option<ResourceState> {
        let mut next = next?.clone();
        let scheduled = self
            .scheduled
            .lock()
            .ok()
            .and_then(|scheduled| scheduled.clone());
        if let (Some((scheduled_for, number)), Some(incident)) = (scheduled, next.incident.as_mut())
            && scheduled_for == incident_id
            && incident.id == incident_id
            && incident.checks == number
        {
            incident.checks = incident.checks.saturating_add(1);
            incident.deferrals = incident.deferrals.saturating_add(1);
        }
        Some(next)
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
    pub(super) async fn save(
        &self,
        expected: u64,
        next: Option<&ResourceState>,
    ) -> Result<bool, StoreError> {
        match next {
            Some(next) => self.engine.store.save(self.key, expected, next).await,
            None => Ok(true),
        }
    }

    /// A claim that did not go through. Another delivery of this event claimed it: the
    /// redelivery is ignored (the event's run has its record; the log line and the skip
    /// metric count the redelivery). Otherwise another run moved first: decide again.
    pub(super) fn not_claimed(&self, outcome: Outcome, refused: ClaimResult) -> Step {
        match refused {
            ClaimResult::Duplicate => Step::Done(self.ignore(outcome, SkipReason::Duplicate)),
            ClaimResult::Conflict { stored } => Step::Again(stored.map(|stored| *stored)),
            // A claim refused for the resource's lease is deferred by the step that made it
            // (see `wait_for_lock`); anything else that reaches here decides again.
            ClaimResult::OverBudget | ClaimResult::Claimed | ClaimResult::Busy { .. } => {
                Step::Again(None)
            }
        }
    }

    /// The resource's lease across rules, held by this run until `until`.
    pub(super) fn lock(&self, until: DateTime<Utc>) -> ResourceLock {
        ResourceLock {
            resource: self.resource(),
            holder: self.key.holder(),
            run_id: self.run_id.to_owned(),
            until,
            now: self.engine.clock.now(),
        }
    }

    /// The resource's key across rules and layers.
    pub(super) fn resource(&self) -> String {
        resource_key(
            self.rule.action.resource_kind(),
            &self.key.resource_id,
            self.key.place.as_ref(),
        )
    }

    /// Claims the resource for `claim`'s run, with its lease across rules held until the
    /// run's own lease ends.
    pub(super) async fn claim(
        &self,
        claim: &Claim<'_>,
        record: &HealingRecord,
        spends: &[Spend],
        hold: Option<&Hold>,
    ) -> Result<ClaimResult, StoreError> {
        let until = claim
            .next
            .lease
            .as_ref()
            .map_or_else(|| self.engine.clock.now(), |lease| lease.expires_at);
        let lock = self.lock(until);
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
                lock: Some(&lock),
            })
            .await
    }

    /// What the healer is asked, for this run's attempt.
    pub(super) fn request<'r>(
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
            alarm_actions: self
                .alarm_now
                .get()
                .and_then(Option::as_ref)
                .map_or(&[], |alarm| alarm.actions.as_slice()),
        }
    }

    /// The in-progress record a claim writes.
    pub(super) fn in_progress(&self, claim: &Claim<'_>, phase: RunPhase) -> HealingRecord {
        let mut record = self.record(
            HealingStatus::InProgress,
            claim.attempt,
            Some(claim.incident_id),
        );
        record.phase = phase;
        record
    }

    /// A notification that cannot be sent must not undo or repeat a heal: it is logged.
    pub(super) async fn notify(&self, notice: &Notice) {
        if let Err(error) = self.engine.notifier.notify(notice).await {
            warn!(rule = %self.rule.name, resource = %self.key.resource_id, %error, "notification not sent");
        }
    }
}

pub(super) fn skip_summary(reason: SkipReason, rule: &Rule) -> String {
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

pub(super) fn log(outcome: Outcome) -> Outcome {
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
