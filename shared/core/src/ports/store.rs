//! The state store: where incident state, event claims, budget counts, group slots and
//! healing records are kept, every state change a conditional write.

use std::future::Future;

use chrono::{DateTime, Utc};

use crate::model::place::Place;
use crate::model::record::HealingRecord;
use crate::model::revert::Revert;
use crate::model::state::ResourceState;
use crate::model::trip::Tripped;
use crate::policy::budget::{Budget, Spend, Usage};
use crate::policy::group::{Hold, Slot};

/// The state of one rule on one resource is stored under this key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourceKey {
    pub rule: String,
    pub resource_id: String,
    /// Where the resource lives when that is not the deployment's own account and region
    /// (see [`Reach`](crate::model::place::Reach)): the same id there is another resource.
    pub place: Option<Place>,
}

impl ResourceKey {
    /// The key of `rule` on `resource_id` at home.
    pub fn new(rule: impl Into<String>, resource_id: impl Into<String>) -> Self {
        ResourceKey {
            rule: rule.into(),
            resource_id: resource_id.into(),
            place: None,
        }
    }

    /// The resource id as stored: set apart by its place when it is not at home.
    pub fn placed_id(&self) -> String {
        let suffix = self
            .place
            .as_ref()
            .map(Place::key_suffix)
            .unwrap_or_default();
        format!("{}{suffix}", self.resource_id)
    }

    /// Who holds a resource's lease or a group's slot: the rule and the resource it heals.
    pub fn holder(&self) -> String {
        format!("{}#{}", self.rule, self.placed_id())
    }
}

/// The lease of one resource across rules and layers (see
/// [`resource_key`](crate::model::limits::resource_key)): while one rule's run holds it, no
/// other rule's run acts on the resource. Taken in the claim's own write, held through an
/// action's steps, released by the run's final write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceLock {
    /// The resource's key across rules.
    pub resource: String,
    /// [`ResourceKey::holder`] of the run's state.
    pub holder: String,
    pub run_id: String,
    /// Held until then at most, should the run die.
    pub until: DateTime<Utc>,
    /// When it is taken: a lease that ended before is free.
    pub now: DateTime<Utc>,
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
    /// The slot of the resource's group this run takes (see [`crate::policy::group`]).
    pub hold: Option<&'a Hold>,
    /// The resource's lease across rules, taken while it is free or already this state's.
    pub lock: Option<&'a ResourceLock>,
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
    /// Another rule's run holds the resource's lease (`holder`, see [`ResourceKey::holder`])
    /// until `until`: this run waits for it to end.
    Busy {
        holder: String,
        until: DateTime<Utc>,
    },
}

/// What a finished run leaves of its incident's current action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionEnd {
    /// The run was no heal (a revert, a resolution): the incident's action is as it was.
    Untouched,
    /// The action ended (done, failed or skipped): `Incident::unfinished` is cleared.
    Finished,
    /// The action continues in a follow-up: it stays unfinished, and with `check`, the
    /// incident's latest check is that follow-up's number, counted as one of the action's
    /// steps (`Incident::step_checks`).
    Continues { check: Option<u32> },
}

/// A failure of the state store. Retrying the whole event is safe.
#[derive(Debug, thiserror::Error)]
#[error("state store: {message}")]
pub struct StoreError {
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
    /// list it read is still the stored one). `lock`, the resource's lease across rules that
    /// the run took, is released, or, for an action that continues, held until its `until`
    /// (only while it is still this state's).
    fn finish(
        &self,
        key: &ResourceKey,
        record: &HealingRecord,
        escalated_at: Option<DateTime<Utc>>,
        reverts: Option<&[Revert]>,
        action: ActionEnd,
        lock: Option<&ResourceLock>,
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
