//! The ports of the engine: the small traits it is generic over (state store, notifier,
//! healer, follow-ups, clock), the types that cross them, and their errors. Adapters implement them: the
//! AWS ones in `shared/aws` and the layer functions, in-memory ones in tests.

use std::collections::BTreeMap;
use std::future::Future;

use chrono::{DateTime, Utc};

use crate::budget::{Budget, Spend, Tripped, Usage};
use crate::decision::ResourceState;
use crate::event::AlarmEvent;
use crate::followup::{AlarmReading, FollowUp};
use crate::group::{GroupView, Hold, Slot};
use crate::layer::Layer;
use crate::notice::Notice;
use crate::record::{HealingRecord, SkipReason};
use crate::revert::Revert;
use crate::rules::{Action, Rule};

/// The state of one rule on one resource is stored under this key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourceKey {
    pub rule: String,
    pub resource_id: String,
}

/// A resource's state as read, and whether the current event was already claimed for it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Loaded {
    pub state: ResourceState,
    pub event_seen: bool,
}

/// What one run claims, in one atomic write (see [`StateStore::claim`]).
#[derive(Debug, Clone, Copy)]
pub struct ClaimRequest<'a> {
    pub key: &'a ResourceKey,
    pub event_id: &'a str,
    /// The state's version as read: the claim fails if it changed since.
    pub expected_version: u64,
    pub next: &'a ResourceState,
    /// The run's in-progress record.
    pub record: &'a HealingRecord,
    /// The event's earlier claim belongs to a run that died: this run takes it over.
    pub takeover: bool,
    pub spends: &'a [Spend],
    /// The slot of the resource's group this run takes (see [`crate::group`]).
    pub hold: Option<&'a Hold>,
}

/// How an attempt to claim a resource for a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimResult {
    /// This run holds the resource: it may act.
    Claimed,
    /// The event was claimed by another delivery of it.
    Duplicate,
    /// The state is not the version the claim expected: decide again, on `stored` when the
    /// refusal returned the state as it is (and whether the event was claimed), else on a
    /// new read.
    Conflict { stored: Option<Box<Loaded>> },
    /// A budget the claim spends was spent, or the group slot it takes was taken, by another
    /// run first: read the budgets again and decide again.
    OverBudget,
}

/// What a finished run leaves of its incident's current action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionEnd {
    /// The run was no heal (a revert, a resolution): the incident's action is as it was.
    Untouched,
    /// The action ended (done, failed or skipped): `Incident::unfinished` is cleared.
    Finished,
    /// The action continues in a follow-up: it stays unfinished, and with `check`, the
    /// incident's latest check is that follow-up's number.
    Continues { check: Option<u32> },
}

/// A failure of the state store. Retrying the whole event is safe.
#[derive(Debug, thiserror::Error)]
#[error("state store: {message}")]
pub struct StoreError {
    pub message: String,
}

/// A failure to schedule a follow-up or to read an alarm back. Retrying the whole event is
/// safe.
#[derive(Debug, thiserror::Error)]
#[error("follow-up: {message}")]
pub struct FollowUpError {
    pub message: String,
}

/// A failure to publish a notification.
#[derive(Debug, thiserror::Error)]
#[error("notifier: {message}")]
pub struct NotifyError {
    pub message: String,
}

/// Persistence of incident state and healing records. Every state write is conditional on
/// the version read, so concurrent invocations never both act.
pub trait StateStore {
    /// Reads the state (strongly consistent) and whether `event_id` was claimed for it.
    fn load(
        &self,
        key: &ResourceKey,
        event_id: &str,
    ) -> impl Future<Output = Result<Loaded, StoreError>> + Send;

    /// Atomically: marks `event_id` claimed (it must be new, unless `takeover`), writes `next`
    /// if the stored version is still `expected_version` (0: no state is stored), stores the
    /// in-progress record, counts one action in each budget of `spends`, each only while its
    /// windows are within the spend's counts, and takes the group slot of `hold` while it is
    /// free. A claim refused for its state returns the state as stored when it can, so that
    /// the run decides again without another read.
    fn claim(
        &self,
        claim: &ClaimRequest<'_>,
    ) -> impl Future<Output = Result<ClaimResult, StoreError>> + Send;

    /// Writes `next` if the stored version is still `expected_version`; false if it was not.
    fn save(
        &self,
        key: &ResourceKey,
        expected_version: u64,
        next: &ResourceState,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Stores a record as it is (new or final).
    fn put_record(
        &self,
        record: &HealingRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Stores the final record of a run and releases the run's lease; with `escalated_at`,
    /// also marks the incident escalated; with `reverts`, replaces the changes waiting to be
    /// put back; `action` says what the run leaves of its attempt's action. The state changes
    /// only if this run still holds the lease (only a lease holder changes `reverts`, so the
    /// list it read is still the stored one).
    fn finish(
        &self,
        key: &ResourceKey,
        record: &HealingRecord,
        escalated_at: Option<DateTime<Utc>>,
        reverts: Option<&[Revert]>,
        action: ActionEnd,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The actions counted in each budget's previous and current window at `now`.
    fn budget_usage(
        &self,
        budgets: &[Budget],
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<Usage>, StoreError>> + Send;

    /// [`load`](Self::load) and [`budget_usage`](Self::budget_usage) in one read (DynamoDB:
    /// one `BatchGetItem`), so that an event costs one read whatever its decision.
    fn load_with_budgets(
        &self,
        key: &ResourceKey,
        event_id: &str,
        budgets: &[Budget],
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(Loaded, Vec<Usage>), StoreError>> + Send;

    /// The group's slots `0..capacity` that are stored (held or expired).
    fn group_slots(
        &self,
        group: &str,
        capacity: u32,
    ) -> impl Future<Output = Result<Vec<Slot>, StoreError>> + Send;

    /// Marks `tripped`'s window notified; `true` only for the first caller, so that a spent
    /// budget or a tripped group guard is announced once per window.
    fn first_trip(
        &self,
        tripped: &Tripped,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The records of one incident, oldest first, from `opened_at` until now: what an
    /// escalation tells a person.
    fn incident_history(
        &self,
        key: &ResourceKey,
        incident_id: &str,
        opened_at: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<HealingRecord>, StoreError>> + Send;
}

/// The closed loop's two halves: schedule a follow-up, and read an alarm back when it fires.
pub trait FollowUps {
    /// Schedules `follow_up` to be delivered to its layer's function at `at`. Scheduling the
    /// same check twice is not an error: the first schedule stands.
    fn schedule(
        &self,
        follow_up: &FollowUp,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), FollowUpError>> + Send;

    /// The alarm's state now; `None` when CloudWatch does not know it.
    fn read_alarm(
        &self,
        alarm_name: &str,
    ) -> impl Future<Output = Result<Option<AlarmReading>, FollowUpError>> + Send;
}

/// Where people hear about healing.
pub trait Notifier {
    fn notify(&self, notice: &Notice) -> impl Future<Output = Result<(), NotifyError>> + Send;
}

/// What a healer is asked to do.
#[derive(Debug, Clone, Copy)]
pub struct HealRequest<'a> {
    pub rule: &'a Rule,
    /// Never empty nor ambiguous: the resolver skips such alarms before any healer runs.
    pub resource_id: &'a str,
    pub attempt: u32,
    pub incident_id: &'a str,
    /// The same for every retry of this attempt: pass it where the API takes one.
    pub idempotency_token: &'a str,
    pub event: &'a AlarmEvent,
    /// The alarm's ALARM actions (their ARNs) as CloudWatch describes the alarm now, e.g. an
    /// `arn:aws:automate:<region>:ec2:recover` action that has AWS recover the instance
    /// itself; empty when autoheal has not read the alarm.
    pub alarm_actions: &'a [String],
}

/// What a healer did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealOutcome {
    /// The action ran; `details` names what it created or changed, `reverts` what to put
    /// back when the incident resolves (empty when nothing is to be undone).
    Healed {
        summary: String,
        details: BTreeMap<String, String>,
        reverts: Vec<Revert>,
    },
    /// A fresh look at the resource showed the action should not run.
    Skipped { reason: SkipReason, summary: String },
    /// The action is under way and its next step waits on AWS (a snapshot being taken, an
    /// instance being restored): autoheal calls `heal` again for the same attempt, with the
    /// same idempotency token, in a follow-up `resume_after_seconds` from now. Each step
    /// looks at what earlier ones left (by names derived from the token) and never repeats
    /// one, so no invocation waits long and a crash between steps resumes where it stopped.
    Continuing {
        summary: String,
        details: BTreeMap<String, String>,
        resume_after_seconds: u64,
    },
}

/// Why a healer asks autoheal to wait before it acts (see [`Healer::assess`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WaitReason {
    /// AWS's own healing is already under way (EC2 automatic recovery or a scheduled event,
    /// an ECS deployment rolling out or back, an instance refresh, an alarm's own EC2 recover
    /// action): acting now would race it. Once the incident has waited the rule's
    /// `max_wait_seconds`, the attempt goes ahead if the resource is still impaired.
    AwsHealing,
    /// A person froze the resource (suspended processes, protected members, traffic they are
    /// shifting): acting would override them. Once the incident has waited the rule's
    /// `max_wait_seconds`, a person is asked instead.
    OperatorHold,
    /// Another autoheal run is working on a resource this action also touches (an EBS
    /// repair that must stop the instance another rule is stopping and starting). Once the
    /// incident has waited the rule's `max_wait_seconds`, the attempt goes ahead.
    ResourceBusy,
}

impl WaitReason {
    /// The reason the deferred run records.
    pub fn skip_reason(self) -> SkipReason {
        match self {
            WaitReason::AwsHealing => SkipReason::AwsHealing,
            WaitReason::OperatorHold => SkipReason::OperatorHold,
            WaitReason::ResourceBusy => SkipReason::ResourceBusy,
        }
    }
}

/// Something else is healing the resource, or a person holds it: what was seen, and when to
/// look again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wait {
    pub reason: WaitReason,
    /// What was seen, in one sentence (recorded and shown by `explain` and `history`).
    pub summary: String,
    /// When to look again, from now.
    pub recheck_after_seconds: u64,
}

/// What a healer finds when it looks at the resource before autoheal claims it for a new
/// attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assessment {
    /// Nothing else is healing the resource and nobody holds it: the attempt may go ahead
    /// (the action still re-reads the resource and skips what is no longer needed).
    Proceed,
    /// Wait: the attempt is deferred, not counted.
    Wait(Wait),
    /// The resource does not exist: nothing to heal, no budget spent, no failure notice.
    Gone { summary: String },
}

impl Assessment {
    /// AWS's own healing is under way: look again after `recheck_after_seconds`.
    pub fn aws_healing(summary: impl Into<String>, recheck_after_seconds: u64) -> Self {
        Assessment::Wait(Wait {
            reason: WaitReason::AwsHealing,
            summary: summary.into(),
            recheck_after_seconds,
        })
    }

    /// A person holds the resource: look again after `recheck_after_seconds`.
    pub fn operator_hold(summary: impl Into<String>, recheck_after_seconds: u64) -> Self {
        Assessment::Wait(Wait {
            reason: WaitReason::OperatorHold,
            summary: summary.into(),
            recheck_after_seconds,
        })
    }

    /// Another autoheal run works on a resource this action touches: look again after
    /// `recheck_after_seconds`.
    pub fn resource_busy(summary: impl Into<String>, recheck_after_seconds: u64) -> Self {
        Assessment::Wait(Wait {
            reason: WaitReason::ResourceBusy,
            summary: summary.into(),
            recheck_after_seconds,
        })
    }

    /// The resource does not exist.
    pub fn gone(summary: impl Into<String>) -> Self {
        Assessment::Gone {
            summary: summary.into(),
        }
    }
}

/// An action that failed; the message is the service's own where there is one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct HealError {
    pub message: String,
}

impl HealError {
    pub fn new(message: impl Into<String>) -> Self {
        HealError {
            message: message.into(),
        }
    }

    /// `layer`'s healer was handed an action of another layer.
    pub fn unsupported(layer: Layer, action: &Action) -> Self {
        HealError::new(format!(
            "the {layer} function does not implement `{}`",
            action.kind()
        ))
    }

    /// `layer`'s healer was handed a revert it does not know (stored by another version).
    pub fn unknown_revert(layer: Layer, revert: &Revert) -> Self {
        HealError::new(format!(
            "the {layer} function has no revert `{}`",
            revert.kind
        ))
    }
}

impl HealOutcome {
    /// The action ran and left nothing to put back.
    pub fn healed(summary: impl Into<String>, details: BTreeMap<String, String>) -> Self {
        HealOutcome::Healed {
            summary: summary.into(),
            details,
            reverts: Vec::new(),
        }
    }
}

/// Runs a layer's actions against the workload.
pub trait Healer {
    /// The layer whose actions this healer runs.
    fn layer(&self) -> Layer;

    /// Whether this healer implements the action: every action of its layer.
    fn supports(&self, action: &Action) -> bool {
        action.layer() == self.layer()
    }

    /// The group the resource is a member of, read live (size and unhealthy members), when
    /// the action heals one member of a group; `None` when it is in none, or when the
    /// action guards a whole group itself. The safety governor asks before every new
    /// attempt (see [`crate::group`]).
    fn group(
        &self,
        request: HealRequest<'_>,
    ) -> impl Future<Output = Result<Option<GroupView>, HealError>> + Send {
        let _ = request;
        async { Ok(None) }
    }

    /// Looks at the resource, read-only, before autoheal claims it for a new attempt (not for
    /// a resumed step or a takeover): whether it still exists, and whether AWS's own healing
    /// or a person's hold is on it (see [`Assessment`]). Asked after the budgets and before
    /// the group guard. Healers with nothing to wait for keep this default.
    fn assess(
        &self,
        request: HealRequest<'_>,
    ) -> impl Future<Output = Result<Assessment, HealError>> + Send {
        let _ = request;
        async { Ok(Assessment::Proceed) }
    }

    /// Whether the resource no longer exists (terminated, deleted, replaced by its group).
    /// Asked when a follow-up finds the alarm without data or gone, as an alarm on a vanished
    /// resource is: a resource that is gone has nothing left to heal, and its incident
    /// resolves instead of waiting for data that never comes. Healers that cannot tell keep
    /// this default.
    fn is_gone(
        &self,
        rule: &Rule,
        resource_id: &str,
    ) -> impl Future<Output = Result<bool, HealError>> + Send {
        let _ = (rule, resource_id);
        async { Ok(false) }
    }

    /// Re-reads the resource's live state and, if healing is still needed and safe, acts.
    fn heal(
        &self,
        request: HealRequest<'_>,
    ) -> impl Future<Output = Result<HealOutcome, HealError>> + Send;

    /// Puts back one change an earlier heal reported in `HealOutcome::Healed::reverts`, after
    /// checking that it is still autoheal's to put back (nobody changed it since); `Skipped`
    /// when it is not. Healers whose actions change nothing reversible keep this default.
    fn revert(
        &self,
        request: HealRequest<'_>,
        revert: &Revert,
    ) -> impl Future<Output = Result<HealOutcome, HealError>> + Send {
        let message = format!(
            "the {} action has no revert `{}`",
            request.rule.action.kind(),
            revert.kind
        );
        async move { Err(HealError::new(message)) }
    }
}

/// The time, injected so that tests can move it.
pub trait Clock {
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}
