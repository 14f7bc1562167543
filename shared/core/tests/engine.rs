//! The path of one event through `Engine::handle`, over in-memory fakes of the store, the
//! notifier, the healer and the clock.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use autoheal_core::policy::budget::Windows;
use autoheal_core::policy::decision::idempotency_token;
use autoheal_core::policy::group::{GroupView, Slot};
use autoheal_core::{
    Action, ActionEnd, AlarmDefinition, AlarmEvent, AlarmKind, AlarmNow, AlarmReading, AlarmState,
    Assessment, Budget, ClaimRequest, ClaimResult, Clock, Engine, EngineError, FollowUp,
    FollowUpError, FollowUps, HealError, HealOutcome, HealRequest, Healer, HealingRecord,
    HealingStatus, Incident, Layer, Lease, Limit, Loaded, MemberAccounts, Mode, Notice, NoticeKind,
    Notifier, NotifyError, Outcome, Place, Reach, ResourceKey, ResourceLock, ResourceState, Revert,
    RuleSet, RunPhase, Settings, SkipReason, StateStore, StoreError, Tripped, Usage, Verdict,
};
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{Value, json};

use common::*;

// ------------------------------------------------------------------ fakes

/// An in-memory store with the versioned, conditional semantics of the `StateStore` docs.
#[derive(Debug, Default)]
struct MemoryStore {
    inner: Mutex<StoreInner>,
    /// The next claim finds the state moved on (a concurrent writer), once.
    conflict_once: AtomicBool,
    /// Every call fails, as a store outage would.
    down: AtomicBool,
}

#[derive(Debug, Default)]
struct StoreInner {
    states: HashMap<ResourceKey, ResourceState>,
    claims: HashSet<(ResourceKey, String)>,
    /// The latest version of each record, by run id.
    records: BTreeMap<String, HealingRecord>,
    /// How many writes (of any kind) were made.
    writes: usize,
    /// How many reads of a resource's state were made.
    reads: usize,
    /// Actions counted per budget and window, and whether the window's trip was announced.
    budgets: HashMap<(String, i64), (u32, bool)>,
    /// Group slots, by group and index.
    slots: HashMap<(String, u32), Slot>,
    /// Resources' leases across rules: holder and until, by resource.
    locks: HashMap<String, (String, DateTime<Utc>)>,
}

impl MemoryStore {
    fn lock(&self) -> MutexGuard<'_, StoreInner> {
        self.inner
            .lock()
            .unwrap_or_else(|e| panic!("store lock: {e}"))
    }

    fn check_up(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError {
                message: "the table is unavailable".to_owned(),
            })
        } else {
            Ok(())
        }
    }

    fn writes(&self) -> usize {
        self.lock().writes
    }

    fn reads(&self) -> usize {
        self.lock().reads
    }

    fn put_budget(&self, scope: &str, window: DateTime<Utc>, actions: u32) {
        self.lock()
            .budgets
            .insert((scope.to_owned(), window.timestamp()), (actions, false));
    }

    fn budget(&self, scope: &str, window: DateTime<Utc>) -> u32 {
        self.lock()
            .budgets
            .get(&(scope.to_owned(), window.timestamp()))
            .map_or(0, |(actions, _)| *actions)
    }

    fn records(&self) -> Vec<HealingRecord> {
        self.lock().records.values().cloned().collect()
    }

    fn record(&self, run_id: &str) -> HealingRecord {
        self.lock()
            .records
            .get(run_id)
            .cloned()
            .unwrap_or_else(|| panic!("no record for run {run_id}"))
    }

    fn state(&self, key: &ResourceKey) -> ResourceState {
        self.lock().states.get(key).cloned().unwrap_or_default()
    }

    fn put_state(&self, key: &ResourceKey, state: ResourceState) {
        self.lock().states.insert(key.clone(), state);
    }

    fn put_claim(&self, key: &ResourceKey, event_id: &str) {
        self.lock()
            .claims
            .insert((key.clone(), event_id.to_owned()));
    }
}

impl StateStore for MemoryStore {
    async fn load(&self, key: &ResourceKey, event_id: &str) -> Result<Loaded, StoreError> {
        self.check_up()?;
        let mut inner = self.lock();
        inner.reads += 1;
        Ok(Loaded {
            state: inner.states.get(key).cloned().unwrap_or_default(),
            event_seen: inner.claims.contains(&(key.clone(), event_id.to_owned())),
        })
    }

    async fn claim(&self, request: &ClaimRequest<'_>) -> Result<ClaimResult, StoreError> {
        let ClaimRequest {
            key,
            event_id,
            expected_version,
            next,
            record,
            takeover,
            spends,
            hold,
            lock,
        } = *request;
        self.check_up()?;
        let mut inner = self.lock();
        if self.conflict_once.swap(false, Ordering::SeqCst) {
            let state = inner.states.entry(key.clone()).or_default();
            state.version += 1;
        }
        let claim = (key.clone(), event_id.to_owned());
        let seen = inner.claims.contains(&claim);
        // As DynamoDB does with `ALL_OLD`: a refused state comes back as it is stored.
        let stored = inner.states.get(key);
        if stored.map_or(0, |state| state.version) != expected_version {
            return Ok(ClaimResult::Conflict {
                stored: stored.map(|state| {
                    Box::new(Loaded {
                        state: state.clone(),
                        event_seen: seen,
                    })
                }),
            });
        }
        if !takeover && seen {
            return Ok(ClaimResult::Duplicate);
        }
        let count = |scope: String, window: DateTime<Utc>| {
            inner
                .budgets
                .get(&(scope, window.timestamp()))
                .map_or(0, |(n, _)| *n)
        };
        let over = spends.iter().any(|spend| {
            count(spend.scope.key(), spend.window) >= spend.cap
                || count(spend.scope.key(), spend.previous_window) > spend.previous
        });
        let taken = hold.is_some_and(|hold| {
            inner
                .slots
                .get(&(hold.group.clone(), hold.slot))
                .is_some_and(|slot| slot.until > hold.now && slot.holder != hold.holder)
        });
        let busy = lock.and_then(|lock| {
            inner
                .locks
                .get(&lock.resource)
                .filter(|(holder, until)| *until > lock.now && *holder != lock.holder)
                .cloned()
        });
        if let Some((holder, until)) = busy {
            return Ok(ClaimResult::Busy { holder, until });
        }
        if over || taken {
            return Ok(ClaimResult::OverBudget);
        }
        if let Some(lock) = lock {
            inner
                .locks
                .insert(lock.resource.clone(), (lock.holder.clone(), lock.until));
        }
        if let Some(hold) = hold {
            inner.slots.insert(
                (hold.group.clone(), hold.slot),
                Slot {
                    index: hold.slot,
                    holder: hold.holder.clone(),
                    until: hold.until,
                },
            );
        }
        for spend in spends {
            let key = (spend.scope.key(), spend.window.timestamp());
            inner.budgets.entry(key).or_default().0 += 1;
        }
        inner.claims.insert(claim);
        inner.states.insert(key.clone(), next.clone());
        inner.records.insert(record.id.clone(), record.clone());
        inner.writes += 1;
        Ok(ClaimResult::Claimed)
    }

    async fn save(
        &self,
        key: &ResourceKey,
        expected_version: u64,
        next: &ResourceState,
    ) -> Result<bool, StoreError> {
        self.check_up()?;
        let mut inner = self.lock();
        let stored = inner.states.get(key).map_or(0, |state| state.version);
        if stored != expected_version {
            return Ok(false);
        }
        inner.states.insert(key.clone(), next.clone());
        inner.writes += 1;
        Ok(true)
    }

    async fn put_record(&self, record: &HealingRecord) -> Result<(), StoreError> {
        self.check_up()?;
        let mut inner = self.lock();
        inner.records.insert(record.id.clone(), record.clone());
        inner.writes += 1;
        Ok(())
    }

    async fn finish(
        &self,
        key: &ResourceKey,
        record: &HealingRecord,
        escalated_at: Option<DateTime<Utc>>,
        reverts: Option<&[Revert]>,
        action: ActionEnd,
        lock: Option<&ResourceLock>,
    ) -> Result<(), StoreError> {
        self.check_up()?;
        let mut inner = self.lock();
        inner.records.insert(record.id.clone(), record.clone());
        inner.writes += 1;
        if let Some(lock) = lock
            && inner
                .locks
                .get(&lock.resource)
                .is_some_and(|(holder, _)| *holder == lock.holder)
        {
            match action {
                ActionEnd::Continues { .. } => {
                    inner
                        .locks
                        .insert(lock.resource.clone(), (lock.holder.clone(), lock.until));
                }
                ActionEnd::Untouched | ActionEnd::Finished => {
                    inner.locks.remove(&lock.resource);
                }
            }
        }
        if let Some(state) = inner.states.get_mut(key)
            && state
                .lease
                .as_ref()
                .is_some_and(|lease| lease.run_id == record.id)
        {
            state.lease = None;
            state.version += 1;
            if let Some(reverts) = reverts {
                state.reverts = reverts.to_vec();
            }
            if let (Some(at), Some(incident)) = (escalated_at, state.incident.as_mut()) {
                incident.escalated_at = Some(at);
            }
            if let Some(incident) = state.incident.as_mut() {
                match action {
                    ActionEnd::Untouched | ActionEnd::Continues { check: None } => {}
                    ActionEnd::Finished => incident.unfinished = false,
                    ActionEnd::Continues { check: Some(check) } => {
                        incident.checks = check;
                        incident.step_checks += 1;
                    }
                }
            }
        }
        Ok(())
    }

    async fn load_with_budgets(
        &self,
        key: &ResourceKey,
        event_id: &str,
        budgets: &[Budget],
        now: DateTime<Utc>,
    ) -> Result<(Loaded, Vec<Usage>), StoreError> {
        let loaded = self.load(key, event_id).await?;
        Ok((loaded, self.budget_usage(budgets, now).await?))
    }

    async fn budget_usage(
        &self,
        budgets: &[Budget],
        now: DateTime<Utc>,
    ) -> Result<Vec<Usage>, StoreError> {
        self.check_up()?;
        let inner = self.lock();
        let count = |scope: &str, window: DateTime<Utc>| {
            inner
                .budgets
                .get(&(scope.to_owned(), window.timestamp()))
                .map_or(0, |(n, _)| *n)
        };
        Ok(budgets
            .iter()
            .map(|budget| {
                let windows = Windows::at(now, budget.limit.window_seconds);
                let scope = budget.scope.key();
                Usage {
                    previous: count(&scope, windows.previous),
                    current: count(&scope, windows.current),
                }
            })
            .collect())
    }

    async fn group_slots(&self, group: &str, capacity: u32) -> Result<Vec<Slot>, StoreError> {
        self.check_up()?;
        Ok(self
            .lock()
            .slots
            .iter()
            .filter(|((of, index), _)| of == group && *index < capacity)
            .map(|(_, slot)| slot.clone())
            .collect())
    }

    async fn first_trip(&self, tripped: &Tripped) -> Result<bool, StoreError> {
        self.check_up()?;
        let mut inner = self.lock();
        let entry = inner
            .budgets
            .entry((tripped.notice_key(), tripped.window.timestamp()))
            .or_default();
        let first = !entry.1;
        entry.1 = true;
        Ok(first)
    }

    async fn incident_history(
        &self,
        key: &ResourceKey,
        incident_id: &str,
        _opened_at: DateTime<Utc>,
    ) -> Result<Vec<HealingRecord>, StoreError> {
        self.check_up()?;
        let mut history: Vec<HealingRecord> = self
            .lock()
            .records
            .values()
            .filter(|r| {
                r.rule == key.rule
                    && r.resource_id == key.resource_id
                    && r.incident_id.as_deref() == Some(incident_id)
            })
            .cloned()
            .collect();
        history.sort_by_key(|r| r.started_at);
        Ok(history)
    }
}

/// An alarm's definition and tags, as CloudWatch holds them.
type HeldAlarm = (AlarmDefinition, BTreeMap<String, String>);

/// Keeps the follow-ups scheduled; reads alarms from a map the test sets.
#[derive(Debug, Default)]
struct ManualLoop {
    scheduled: Mutex<Vec<(FollowUp, DateTime<Utc>)>>,
    alarms: Mutex<HashMap<String, AlarmReading>>,
    /// An alarm that changes once it has been read this many more times: (reads left, name,
    /// what it reads as then).
    changes: Mutex<Option<(usize, String, AlarmReading)>>,
    /// Each alarm's own actions, and how many times they were read.
    actions: Mutex<HashMap<String, Vec<String>>>,
    actions_read: AtomicUsize,
    /// Scheduling fails, as a Scheduler outage would.
    scheduler_down: AtomicBool,
    /// Each alarm's definition and tags, as CloudWatch holds them.
    definitions: Mutex<HashMap<String, HeldAlarm>>,
    /// The alarms whose definition the test set: the events handled leave them as they are.
    defined_by_test: Mutex<HashSet<String>>,
    /// The alarms the events handled through [`handle`] describe, as CloudWatch would hold
    /// them had it sent those events: what an alarm not set by the test reads as when the
    /// engine judges an event (follow-ups read only the alarms the test sets).
    fired: Mutex<HashMap<String, AlarmReading>>,
}

impl ManualLoop {
    fn scheduled(&self) -> Vec<(FollowUp, DateTime<Utc>)> {
        self.scheduled
            .lock()
            .unwrap_or_else(|e| panic!("loop lock: {e}"))
            .clone()
    }

    /// The latest follow-up scheduled, as its schedule would deliver it.
    fn latest(&self) -> (Value, DateTime<Utc>) {
        let (follow_up, at) = self.scheduled().pop().expect("a follow-up was scheduled");
        (follow_up.to_payload(), at)
    }

    /// `name` reads as `state` since `since` once it has been read `reads` more times: a
    /// state change that lands between two reads of one run.
    fn change_alarm_after(
        &self,
        reads: usize,
        name: &str,
        state: AlarmState,
        since: DateTime<Utc>,
    ) {
        *self
            .changes
            .lock()
            .unwrap_or_else(|e| panic!("loop lock: {e}")) =
            Some((reads, name.to_owned(), AlarmReading { state, since }));
    }

    fn set_alarm_actions(&self, name: &str, actions: &[&str]) {
        self.actions
            .lock()
            .unwrap_or_else(|e| panic!("loop lock: {e}"))
            .insert(
                name.to_owned(),
                actions.iter().map(|a| (*a).to_owned()).collect(),
            );
    }

    /// Holds `name` as watching `watches` with `comparison`, and carrying `tags`.
    fn define_alarm(
        &self,
        name: &str,
        watches: AlarmKind,
        comparison: Option<&str>,
        tags: &[(&str, &str)],
    ) {
        self.defined_by_test
            .lock()
            .unwrap_or_else(|e| panic!("loop lock: {e}"))
            .insert(name.to_owned());
        self.hold_alarm(name, watches, comparison, tags);
    }

    fn hold_alarm(
        &self,
        name: &str,
        watches: AlarmKind,
        comparison: Option<&str>,
        tags: &[(&str, &str)],
    ) {
        let definition = AlarmDefinition {
            watches,
            comparison: comparison.map(str::to_owned),
        };
        let tags = tags
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.definitions
            .lock()
            .unwrap_or_else(|e| panic!("loop lock: {e}"))
            .insert(name.to_owned(), (definition, tags));
    }

    /// CloudWatch holds the alarm `payload` describes, as CloudWatch would if it had just sent
    /// the event: defined as the event says (unless the test defined it), in the event's state
    /// (an alarm the test set reads as the test set it).
    fn fired(&self, payload: &Value, now: DateTime<Utc>) {
        let Ok(event) = AlarmEvent::from_value(payload.clone()) else {
            return;
        };
        let tags: Vec<(&str, &str)> = event
            .alarm_tags
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let defined = self
            .defined_by_test
            .lock()
            .unwrap_or_else(|e| panic!("loop lock: {e}"))
            .contains(&event.alarm_name);
        if !defined {
            self.hold_alarm(&event.alarm_name, event.kind.clone(), None, &tags);
        }
        self.fired
            .lock()
            .unwrap_or_else(|e| panic!("loop lock: {e}"))
            .entry(event.alarm_name.clone())
            .and_modify(|reading| {
                if reading.state != event.state {
                    *reading = AlarmReading {
                        state: event.state,
                        since: now,
                    };
                }
            })
            .or_insert(AlarmReading {
                state: event.state,
                since: now,
            });
    }

    fn set_alarm(&self, name: &str, state: AlarmState, since: DateTime<Utc>) {
        self.alarms
            .lock()
            .unwrap_or_else(|e| panic!("loop lock: {e}"))
            .insert(name.to_owned(), AlarmReading { state, since });
    }
}

impl FollowUps for ManualLoop {
    async fn schedule(&self, follow_up: &FollowUp, at: DateTime<Utc>) -> Result<(), FollowUpError> {
        if self.scheduler_down.load(Ordering::SeqCst) {
            return Err(FollowUpError {
                message: "scheduler unavailable".to_owned(),
            });
        }
        let mut scheduled = self
            .scheduled
            .lock()
            .unwrap_or_else(|e| panic!("loop lock: {e}"));
        // One schedule per name, as EventBridge Scheduler keeps it.
        if !scheduled
            .iter()
            .any(|(known, _)| known.schedule_name() == follow_up.schedule_name())
        {
            scheduled.push((follow_up.clone(), at));
        }
        Ok(())
    }

    async fn read_alarm(&self, alarm_name: &str) -> Result<Option<AlarmReading>, FollowUpError> {
        {
            let mut changes = self
                .changes
                .lock()
                .unwrap_or_else(|e| panic!("loop lock: {e}"));
            match changes.take() {
                Some((0, name, reading)) => {
                    self.alarms
                        .lock()
                        .unwrap_or_else(|e| panic!("loop lock: {e}"))
                        .insert(name, reading);
                }
                Some((left, name, reading)) => *changes = Some((left - 1, name, reading)),
                None => {}
            }
        }
        Ok(self
            .alarms
            .lock()
            .unwrap_or_else(|e| panic!("loop lock: {e}"))
            .get(alarm_name)
            .copied())
    }

    async fn describe_alarm(&self, alarm_name: &str) -> Result<Option<AlarmNow>, FollowUpError> {
        self.actions_read.fetch_add(1, Ordering::SeqCst);
        let fired = self
            .fired
            .lock()
            .unwrap_or_else(|e| panic!("loop lock: {e}"))
            .get(alarm_name)
            .copied();
        let Some(reading) = self.read_alarm(alarm_name).await?.or(fired) else {
            return Ok(None);
        };
        let Some((definition, _)) = self
            .definitions
            .lock()
            .unwrap_or_else(|e| panic!("loop lock: {e}"))
            .get(alarm_name)
            .cloned()
        else {
            return Ok(None);
        };
        let actions = self
            .actions
            .lock()
            .unwrap_or_else(|e| panic!("loop lock: {e}"))
            .get(alarm_name)
            .cloned()
            .unwrap_or_default();
        Ok(Some(AlarmNow {
            reading,
            actions,
            definition,
            arn: Some(alarm_name.to_owned()),
        }))
    }

    async fn alarm_tags(&self, alarm_arn: &str) -> Result<BTreeMap<String, String>, FollowUpError> {
        Ok(self
            .definitions
            .lock()
            .unwrap_or_else(|e| panic!("loop lock: {e}"))
            .get(alarm_arn)
            .map(|(_, tags)| tags.clone())
            .unwrap_or_default())
    }
}

/// Keeps every notice; can be told to fail.
#[derive(Debug, Default)]
struct RecordingNotifier {
    notices: Mutex<Vec<Notice>>,
    fail: AtomicBool,
}

impl RecordingNotifier {
    fn notices(&self) -> Vec<Notice> {
        self.notices
            .lock()
            .unwrap_or_else(|e| panic!("notifier lock: {e}"))
            .clone()
    }

    fn kinds(&self) -> Vec<(NoticeKind, HealingStatus)> {
        self.notices()
            .iter()
            .map(|n| (n.kind, n.record.status))
            .collect()
    }
}

impl Notifier for RecordingNotifier {
    async fn notify(&self, notice: &Notice) -> Result<(), NotifyError> {
        self.notices
            .lock()
            .unwrap_or_else(|e| panic!("notifier lock: {e}"))
            .push(notice.clone());
        if self.fail.load(Ordering::SeqCst) {
            return Err(NotifyError {
                message: "topic unavailable".to_owned(),
            });
        }
        Ok(())
    }
}

/// What the fake healer was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Call {
    rule: String,
    resource_id: String,
    attempt: u32,
    incident_id: String,
    token: String,
}

/// Counts its calls; heals, fails or finds the heal not needed, as told.
#[derive(Debug, Default)]
struct FakeHealer {
    calls: Mutex<Vec<Call>>,
    count: AtomicUsize,
    fail: AtomicBool,
    not_needed: AtomicBool,
    unsupported: AtomicBool,
    /// Heals report a change to put back (the attempt's number as its `n`).
    reversible: AtomicBool,
    /// Reverts fail.
    revert_fails: AtomicBool,
    /// The `n` of every revert asked for, in order.
    reverted: Mutex<Vec<String>>,
    /// The group every resource is in, as `group` reports it.
    group: Mutex<Option<GroupView>>,
    /// Heals answer `Continuing` this many more times before they are done.
    steps_left: AtomicUsize,
    /// The resource no longer exists.
    gone: AtomicBool,
    /// What `assess` answers (`Proceed` when unset), and how often it was asked.
    assessment: Mutex<Option<Assessment>>,
    assessed: AtomicUsize,
    /// The alarm actions each `assess` was given.
    assessed_actions: Mutex<Vec<Vec<String>>>,
}

impl FakeHealer {
    fn calls(&self) -> Vec<Call> {
        self.calls
            .lock()
            .unwrap_or_else(|e| panic!("healer lock: {e}"))
            .clone()
    }

    fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    fn reverted(&self) -> Vec<String> {
        self.reverted
            .lock()
            .unwrap_or_else(|e| panic!("healer lock: {e}"))
            .clone()
    }
}

impl Healer for FakeHealer {
    fn layer(&self) -> Layer {
        Layer::Infrastructure
    }

    fn supports(&self, _action: &Action) -> bool {
        !self.unsupported.load(Ordering::SeqCst)
    }

    async fn is_gone(
        &self,
        _rule: &autoheal_core::Rule,
        _resource: &str,
    ) -> Result<bool, HealError> {
        Ok(self.gone.load(Ordering::SeqCst))
    }

    async fn assess(&self, request: HealRequest<'_>) -> Result<Assessment, HealError> {
        self.assessed.fetch_add(1, Ordering::SeqCst);
        self.assessed_actions
            .lock()
            .unwrap_or_else(|e| panic!("healer lock: {e}"))
            .push(request.alarm_actions.to_vec());
        Ok(self
            .assessment
            .lock()
            .unwrap_or_else(|e| panic!("healer lock: {e}"))
            .clone()
            .unwrap_or(Assessment::Proceed))
    }

    async fn group(&self, _request: HealRequest<'_>) -> Result<Option<GroupView>, HealError> {
        Ok(self
            .group
            .lock()
            .unwrap_or_else(|e| panic!("healer lock: {e}"))
            .clone())
    }

    async fn heal(&self, request: HealRequest<'_>) -> Result<HealOutcome, HealError> {
        self.count.fetch_add(1, Ordering::SeqCst);
        self.calls
            .lock()
            .unwrap_or_else(|e| panic!("healer lock: {e}"))
            .push(Call {
                rule: request.rule.name.clone(),
                resource_id: request.resource_id.to_owned(),
                attempt: request.attempt,
                incident_id: request.incident_id.to_owned(),
                token: request.idempotency_token.to_owned(),
            });
        // Let other tasks run in the middle of the heal.
        tokio::task::yield_now().await;
        if self.fail.load(Ordering::SeqCst) {
            return Err(HealError::new("InsufficientInstanceCapacity"));
        }
        if self.not_needed.load(Ordering::SeqCst) {
            return Ok(HealOutcome::Skipped {
                reason: SkipReason::NotNeeded,
                summary: "the instance passes its status checks again".to_owned(),
            });
        }
        let left = self.steps_left.load(Ordering::SeqCst);
        if left > 0 {
            self.steps_left.store(left - 1, Ordering::SeqCst);
            return Ok(HealOutcome::Continuing {
                summary: format!("snapshot of {} is being taken", request.resource_id),
                details: BTreeMap::from([("snapshot_id".to_owned(), "snap-1".to_owned())]),
                resume_after_seconds: 120,
            });
        }
        let reverts = if self.reversible.load(Ordering::SeqCst) {
            vec![Revert::new("undo-fake").with("n", request.attempt)]
        } else {
            Vec::new()
        };
        Ok(HealOutcome::Healed {
            summary: format!("replaced {}", request.resource_id),
            details: BTreeMap::from([("replacement_instance_id".to_owned(), "i-new".to_owned())]),
            reverts,
        })
    }

    async fn revert(
        &self,
        _request: HealRequest<'_>,
        revert: &Revert,
    ) -> Result<HealOutcome, HealError> {
        let n = revert.param("n").map_err(HealError::new)?.to_owned();
        self.reverted
            .lock()
            .unwrap_or_else(|e| panic!("healer lock: {e}"))
            .push(n.clone());
        tokio::task::yield_now().await;
        if self.revert_fails.load(Ordering::SeqCst) {
            return Err(HealError::new(format!("cannot undo {n}")));
        }
        Ok(HealOutcome::healed(
            format!("undid {n}"),
            BTreeMap::from([("undone".to_owned(), n)]),
        ))
    }
}

/// A clock the test moves.
#[derive(Debug)]
struct TestClock(Mutex<DateTime<Utc>>);

impl TestClock {
    fn set(&self, now: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|e| panic!("clock lock: {e}")) = now;
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|e| panic!("clock lock: {e}"))
    }
}

type TestEngine = Engine<MemoryStore, RecordingNotifier, FakeHealer, TestClock, ManualLoop>;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap()
}

fn at(seconds: i64) -> DateTime<Utc> {
    t0() + Duration::seconds(seconds)
}

fn shipped() -> RuleSet {
    RuleSet::shipped().unwrap_or_else(|e| panic!("the shipped rules must parse:\n{e}"))
}

fn engine_with(layer: Layer, rules: RuleSet, settings: Settings) -> TestEngine {
    Engine {
        layer,
        rules: rules.into(),
        settings,
        store: MemoryStore::default(),
        notifier: RecordingNotifier::default(),
        healer: FakeHealer::default(),
        clock: TestClock(Mutex::new(t0())),
        follow_ups: ManualLoop::default(),
    }
}

fn infrastructure() -> TestEngine {
    engine_with(Layer::Infrastructure, shipped(), Settings::default())
}

fn ec2_key(instance: &str) -> ResourceKey {
    ResourceKey::new("ec2-instance-healing", instance)
}

/// Handles `payload` as CloudWatch would have sent it: its alarm exists as it describes it.
async fn handle(engine: &TestEngine, payload: Value, run_id: &str) -> Outcome {
    engine.follow_ups.fired(&payload, engine.clock.now());
    engine
        .handle(payload, run_id)
        .await
        .unwrap_or_else(|e| panic!("run {run_id}: {e}"))
}

fn record_of(outcome: &Outcome) -> &HealingRecord {
    outcome
        .record
        .as_ref()
        .unwrap_or_else(|| panic!("the outcome has no record: {outcome:?}"))
}

// ------------------------------------------------------------------ acting

#[tokio::test]
async fn given_an_ec2_alarm_when_handled_then_the_instance_is_healed_recorded_and_notified_once() {
    let engine = infrastructure();

    let outcome = handle(
        &engine,
        ec2_status_check("e1", "ALARM", "i-00000000000000001"),
        "run-1",
    )
    .await;

    assert_eq!(outcome.decision, Verdict::Act);
    assert_eq!(outcome.layer, Some(Layer::Infrastructure));
    assert_eq!(outcome.event_id, "e1");
    assert_eq!(outcome.alarm_state, AlarmState::Alarm);
    assert_eq!(outcome.rule.as_deref(), Some("ec2-instance-healing"));
    assert_eq!(outcome.resource_id.as_deref(), Some("i-00000000000000001"));
    assert_eq!(outcome.action.as_deref(), Some("recover-ec2-instance"));
    assert_eq!(outcome.mode, Some(Mode::Enforce));
    // The first incident on a resource is claimed without a read of its state.
    assert_eq!(engine.store.reads(), 0);
    assert_eq!(engine.store.writes(), 2, "the claim, then the final record");
    assert_eq!(outcome.reason, None);

    let record = record_of(&outcome);
    assert_eq!(record.status, HealingStatus::Completed);
    assert_eq!(record.id, "run-1");
    assert_eq!(record.attempt, 1);
    assert_eq!(record.incident_id.as_deref(), Some("e1"));
    assert_eq!(record.ended_at, Some(t0()));
    assert_eq!(
        record.summary.as_deref(),
        Some("replaced i-00000000000000001")
    );
    assert_eq!(
        record
            .details
            .get("replacement_instance_id")
            .map(String::as_str),
        Some("i-new")
    );
    assert_eq!(&engine.store.record("run-1"), record);

    assert_eq!(
        engine.healer.calls(),
        [Call {
            rule: "ec2-instance-healing".to_owned(),
            resource_id: "i-00000000000000001".to_owned(),
            attempt: 1,
            incident_id: "e1".to_owned(),
            token: idempotency_token("ec2-instance-healing", "i-00000000000000001", "e1", 1),
        }]
    );

    let notices = engine.notifier.notices();
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert_eq!(notices[0].kind, NoticeKind::Healing);
    assert_eq!(notices[0].record.status, HealingStatus::Completed);
    assert_eq!(notices[0].max_attempts, 3);
    assert!(
        notices[0].subject().contains("completed"),
        "{}",
        notices[0].subject()
    );

    let state = engine.store.state(&ec2_key("i-00000000000000001"));
    assert_eq!(state.lease, None, "the finished run released its lease");
    assert_eq!(state.version, 2, "claimed, then finished");
    assert_eq!(state.incident.map(|i| i.attempts), Some(1));
}

#[tokio::test]
async fn given_a_handled_event_when_it_is_delivered_again_then_it_is_an_ignored_duplicate() {
    let engine = infrastructure();
    handle(
        &engine,
        ec2_status_check("e1", "ALARM", "i-00000000000000001"),
        "run-1",
    )
    .await;
    engine.clock.set(at(30));
    let writes = engine.store.writes();

    let outcome = handle(
        &engine,
        ec2_status_check("e1", "ALARM", "i-00000000000000001"),
        "run-2",
    )
    .await;

    assert_eq!(outcome.decision, Verdict::Ignore);
    assert_eq!(outcome.reason, Some(SkipReason::Duplicate));
    assert_eq!(
        outcome.record, None,
        "the event's run has its record already"
    );
    assert_eq!(engine.store.records().len(), 1);
    assert_eq!(engine.store.writes(), writes, "a redelivery writes nothing");
    assert_eq!(
        engine.store.reads(),
        0,
        "the refused claim returned the state that showed the event claimed"
    );
    assert_eq!(engine.healer.count(), 1, "the healer is not called again");
    assert_eq!(engine.notifier.notices().len(), 1);
}

#[tokio::test]
async fn given_a_resource_in_its_cooldown_when_it_alarms_then_the_refused_claim_decides_the_skip_without_reading()
 {
    let engine = infrastructure();
    let instance = "i-00000000000000001";
    handle(&engine, ec2_status_check("e1", "ALARM", instance), "run-1").await;
    let stored = engine.store.state(&ec2_key(instance));
    engine.clock.set(at(30));

    let outcome = handle(&engine, ec2_status_check("e2", "ALARM", instance), "run-2").await;

    assert_eq!(outcome.decision, Verdict::Skip, "{outcome:?}");
    assert_eq!(outcome.reason, Some(SkipReason::Cooldown), "{outcome:?}");
    assert_eq!(engine.store.record("run-2").status, HealingStatus::Skipped);
    assert_eq!(engine.store.state(&ec2_key(instance)), stored);
    assert_eq!(engine.store.reads(), 0);
    assert_eq!(engine.healer.count(), 1);
}

#[tokio::test]
async fn given_actions_in_the_budgets_previous_window_when_a_new_resource_alarms_then_the_presumed_claim_is_refused_and_the_run_reads_and_defers()
 {
    let engine = infrastructure();
    // The shipped rule's budget: 5 actions per 15 minutes, all spent in the previous window.
    let previous = Windows::at(t0(), 900).previous;
    engine
        .store
        .put_budget("rule#ec2-instance-healing", previous, 5);

    let outcome = handle(
        &engine,
        ec2_status_check("e1", "ALARM", "i-00000000000000001"),
        "run-1",
    )
    .await;

    assert_eq!(outcome.reason, Some(SkipReason::Budget), "{outcome:?}");
    assert_eq!(engine.healer.count(), 0);
    assert_eq!(
        engine.store.reads(),
        1,
        "the refusal sends the run to read the counts"
    );
    assert_eq!(
        engine
            .store
            .budget("rule#ec2-instance-healing", Windows::at(t0(), 900).current),
        0,
        "nothing was counted"
    );
}

#[tokio::test]
async fn given_an_invalid_event_when_handled_then_it_is_an_error_and_nothing_is_written_or_healed()
{
    let engine = infrastructure();
    let mut wrong_source = ec2_status_check("e1", "ALARM", "i-00000000000000001");
    wrong_source["source"] = json!("my.app");

    for payload in [
        json!({"hello": "world"}),
        json!(null),
        wrong_source,
        ec2_status_check("e1", "SOMETIMES", "i-00000000000000001"),
        ec2_status_check("", "ALARM", "i-00000000000000001"),
    ] {
        let result = engine.handle(payload.clone(), "run-1").await;
        match result {
            Err(error @ EngineError::InvalidEvent(_)) => {
                assert!(!error.is_retryable(), "{error}");
                assert!(error.to_string().starts_with("invalid event"), "{error}");
            }
            other => panic!("expected an invalid event for {payload}, got {other:?}"),
        }
    }
    assert_eq!(engine.store.writes(), 0);
    assert_eq!(engine.healer.count(), 0);
    assert!(engine.notifier.notices().is_empty());
}

#[tokio::test]
async fn given_an_event_of_another_layer_when_handled_then_it_is_skipped_without_any_write() {
    let engine = infrastructure();
    let lambda_errors = metric_alarm(
        "e1",
        "checkout-errors",
        "ALARM",
        "AWS/Lambda",
        "Errors",
        &[("FunctionName", "checkout")],
    );

    let outcome = handle(&engine, lambda_errors, "run-1").await;

    assert_eq!(outcome.decision, Verdict::Skip);
    assert_eq!(outcome.reason, Some(SkipReason::OtherLayer));
    assert_eq!(outcome.rule.as_deref(), Some("lambda-function-healing"));
    assert!(outcome.record.is_none());
    assert_eq!(engine.store.writes(), 0);
    assert_eq!(engine.healer.count(), 0);
    assert!(engine.notifier.notices().is_empty());
}

#[tokio::test]
async fn given_an_event_no_rule_matches_when_handled_then_it_is_skipped_without_any_write() {
    let engine = infrastructure();

    for sample in [
        metric_math_sample(),
        composite_sample(),
        single_metric_sample(),
    ] {
        let outcome = handle(&engine, sample, "run-1").await;
        assert_eq!(
            outcome.reason,
            Some(SkipReason::NoMatchingRule),
            "{outcome:?}"
        );
        assert_eq!(outcome.rule, None);
    }
    assert_eq!(engine.store.writes(), 0);
    assert_eq!(engine.healer.count(), 0);
}

#[tokio::test]
async fn given_an_alarm_with_an_empty_instance_id_when_handled_then_nothing_is_touched() {
    let engine = infrastructure();

    let outcome = handle(&engine, ec2_status_check("e1", "ALARM", " "), "run-1").await;

    assert_eq!(outcome.reason, Some(SkipReason::EmptyResourceId));
    assert_eq!(outcome.rule.as_deref(), Some("ec2-instance-healing"));
    assert_eq!(engine.store.writes(), 0);
    assert_eq!(engine.healer.count(), 0);
}

#[tokio::test]
async fn given_shadow_mode_when_an_alarm_is_handled_then_the_healer_is_not_called_and_the_run_is_recorded()
 {
    let engine = engine_with(
        Layer::Infrastructure,
        shipped(),
        Settings {
            mode: Mode::Shadow,
            ..Settings::default()
        },
    );

    let outcome = handle(
        &engine,
        ec2_status_check("e1", "ALARM", "i-00000000000000001"),
        "run-1",
    )
    .await;

    assert_eq!(engine.healer.count(), 0);
    assert_eq!(outcome.mode, Some(Mode::Shadow));
    assert_eq!(
        outcome.decision,
        Verdict::Skip,
        "reported as explain reports it"
    );
    assert_eq!(outcome.reason, Some(SkipReason::ShadowMode));
    let record = record_of(&outcome);
    assert_eq!(record.status, HealingStatus::Skipped);
    assert_eq!(record.skip_reason, Some(SkipReason::ShadowMode));
    assert_eq!(record.mode, Mode::Shadow);
    assert_eq!(
        engine.store.record("run-1").skip_reason,
        Some(SkipReason::ShadowMode)
    );
    assert_eq!(
        engine.notifier.kinds(),
        [(NoticeKind::Healing, HealingStatus::Skipped)]
    );
}

#[tokio::test]
async fn given_a_rule_in_shadow_mode_when_an_alarm_is_handled_then_the_healer_is_not_called() {
    let text = autoheal_core::SHIPPED_RULES.replacen(
        "name = \"ec2-instance-healing\"\n",
        "name = \"ec2-instance-healing\"\nmode = \"shadow\"\n",
        1,
    );
    let rules = RuleSet::from_toml(&text).unwrap_or_else(|e| panic!("{e}"));
    let engine = engine_with(Layer::Infrastructure, rules, Settings::default());

    let outcome = handle(
        &engine,
        ec2_status_check("e1", "ALARM", "i-00000000000000001"),
        "run-1",
    )
    .await;

    assert_eq!(engine.healer.count(), 0);
    assert_eq!(
        record_of(&outcome).skip_reason,
        Some(SkipReason::ShadowMode)
    );
}

#[tokio::test]
async fn given_a_disabled_layer_when_an_alarm_is_handled_then_nothing_is_written_or_healed() {
    let engine = engine_with(
        Layer::Infrastructure,
        shipped(),
        Settings {
            layer_enabled: false,
            ..Settings::default()
        },
    );

    let outcome = handle(
        &engine,
        ec2_status_check("e1", "ALARM", "i-00000000000000001"),
        "run-1",
    )
    .await;

    assert_eq!(outcome.reason, Some(SkipReason::RuleDisabled));
    assert_eq!(engine.store.writes(), 0);
    assert_eq!(engine.healer.count(), 0);
}

#[tokio::test]
async fn given_a_healer_without_the_action_when_an_alarm_is_handled_then_it_is_skipped_as_unsupported()
 {
    let engine = infrastructure();
    engine.healer.unsupported.store(true, Ordering::SeqCst);

    let outcome = handle(
        &engine,
        ec2_status_check("e1", "ALARM", "i-00000000000000001"),
        "run-1",
    )
    .await;

    assert_eq!(outcome.reason, Some(SkipReason::UnsupportedAction));
    assert_eq!(engine.store.writes(), 0);
    assert_eq!(engine.healer.count(), 0);
}

#[tokio::test]
async fn given_a_heal_that_is_no_longer_needed_when_handled_then_the_record_says_not_needed() {
    let engine = infrastructure();
    engine.healer.not_needed.store(true, Ordering::SeqCst);

    let outcome = handle(
        &engine,
        ec2_status_check("e1", "ALARM", "i-00000000000000001"),
        "run-1",
    )
    .await;

    assert_eq!(outcome.reason, Some(SkipReason::NotNeeded));
    let record = record_of(&outcome);
    assert_eq!(record.status, HealingStatus::Skipped);
    assert_eq!(record.skip_reason, Some(SkipReason::NotNeeded));
    assert_eq!(engine.healer.count(), 1);
}

// ------------------------------------------------------------------ failures and escalation

#[tokio::test]
async fn given_a_failing_healer_before_the_last_attempt_when_handled_then_the_run_fails_without_escalation()
 {
    let engine = infrastructure();
    engine.healer.fail.store(true, Ordering::SeqCst);

    let outcome = handle(
        &engine,
        ec2_status_check("e1", "ALARM", "i-00000000000000001"),
        "run-1",
    )
    .await;

    assert_eq!(outcome.decision, Verdict::Act);
    let record = record_of(&outcome);
    assert_eq!(record.status, HealingStatus::Failed);
    assert_eq!(
        record.error.as_deref(),
        Some("InsufficientInstanceCapacity")
    );
    assert_eq!(
        outcome.detail.as_deref(),
        Some("InsufficientInstanceCapacity")
    );
    assert_eq!(
        engine.notifier.kinds(),
        [(NoticeKind::Healing, HealingStatus::Failed)]
    );
    let state = engine.store.state(&ec2_key("i-00000000000000001"));
    assert_eq!(state.incident.and_then(|i| i.escalated_at), None);
}

#[tokio::test]
async fn given_a_failing_healer_at_the_last_attempt_when_handled_then_the_run_fails_and_escalates()
{
    let engine = infrastructure();
    engine.healer.fail.store(true, Ordering::SeqCst);
    // ec2-instance-healing: 3 attempts; two hours apart clears cooldown and backoff.
    for (index, seconds) in [0, 7200, 14_400].into_iter().enumerate() {
        engine.clock.set(at(seconds));
        let outcome = handle(
            &engine,
            ec2_status_check(&format!("e{index}"), "ALARM", "i-00000000000000001"),
            &format!("run-{index}"),
        )
        .await;
        assert_eq!(
            record_of(&outcome).attempt,
            u32::try_from(index + 1).expect("small")
        );
        assert_eq!(record_of(&outcome).status, HealingStatus::Failed);
    }

    assert_eq!(
        engine.notifier.kinds(),
        [
            (NoticeKind::Healing, HealingStatus::Failed),
            (NoticeKind::Healing, HealingStatus::Failed),
            (NoticeKind::Healing, HealingStatus::Failed),
            (NoticeKind::Escalation, HealingStatus::Failed),
        ]
    );
    let escalation = engine.notifier.notices().pop().expect("an escalation");
    assert!(
        escalation.subject().contains("ESCALATION"),
        "{}",
        escalation.subject()
    );
    assert_eq!(escalation.record.attempt, 3);
    let state = engine.store.state(&ec2_key("i-00000000000000001"));
    assert_eq!(
        state.incident.as_ref().and_then(|i| i.escalated_at),
        Some(at(14_400))
    );
    assert_eq!(engine.healer.count(), 3);

    // The alarm is still on: skipped for max attempts, without a second escalation.
    engine.clock.set(at(21_600));
    let outcome = handle(
        &engine,
        ec2_status_check("e9", "ALARM", "i-00000000000000001"),
        "run-9",
    )
    .await;
    assert_eq!(outcome.reason, Some(SkipReason::MaxAttempts));
    assert_eq!(record_of(&outcome).status, HealingStatus::Skipped);
    assert_eq!(engine.notifier.notices().len(), 4);
    assert_eq!(engine.healer.count(), 3);
}

#[tokio::test]
async fn given_spent_attempts_that_succeeded_when_the_alarm_persists_then_one_escalation_is_sent() {
    let engine = infrastructure();
    for (index, seconds) in [0, 7200, 14_400].into_iter().enumerate() {
        engine.clock.set(at(seconds));
        handle(
            &engine,
            ec2_status_check(&format!("e{index}"), "ALARM", "i-00000000000000001"),
            &format!("run-{index}"),
        )
        .await;
    }

    engine.clock.set(at(21_600));
    let outcome = handle(
        &engine,
        ec2_status_check("e3", "ALARM", "i-00000000000000001"),
        "run-3",
    )
    .await;
    engine.clock.set(at(28_800));
    let again = handle(
        &engine,
        ec2_status_check("e4", "ALARM", "i-00000000000000001"),
        "run-4",
    )
    .await;

    assert_eq!(outcome.reason, Some(SkipReason::MaxAttempts));
    assert_eq!(again.reason, Some(SkipReason::MaxAttempts));
    let escalations: Vec<Notice> = engine
        .notifier
        .notices()
        .into_iter()
        .filter(|n| n.kind == NoticeKind::Escalation)
        .collect();
    assert_eq!(escalations.len(), 1, "{escalations:?}");
    assert_eq!(escalations[0].record.id, "run-3");
    assert_eq!(
        escalations[0].record.skip_reason,
        Some(SkipReason::MaxAttempts)
    );
}

#[tokio::test]
async fn given_a_notifier_that_fails_when_an_alarm_is_handled_then_the_heal_still_completes() {
    let engine = infrastructure();
    engine.notifier.fail.store(true, Ordering::SeqCst);

    let outcome = handle(
        &engine,
        ec2_status_check("e1", "ALARM", "i-00000000000000001"),
        "run-1",
    )
    .await;

    assert_eq!(record_of(&outcome).status, HealingStatus::Completed);
    assert_eq!(engine.healer.count(), 1);
}

#[tokio::test]
async fn given_a_store_outage_when_an_alarm_is_handled_then_a_retryable_error_and_no_heal() {
    let engine = infrastructure();
    engine.store.down.store(true, Ordering::SeqCst);
    let event = ec2_status_check("e1", "ALARM", "i-00000000000000001");
    engine.follow_ups.fired(&event, t0());

    let result = engine.handle(event, "run-1").await;

    match result {
        Err(error @ EngineError::Store(_)) => assert!(error.is_retryable(), "{error}"),
        other => panic!("expected a store error, got {other:?}"),
    }
    assert_eq!(engine.healer.count(), 0);
}

// ------------------------------------------------------------------ state over several events

#[tokio::test]
async fn given_an_alarm_inside_the_cooldown_when_handled_then_it_is_skipped_and_recorded() {
    let engine = infrastructure();
    handle(
        &engine,
        ec2_status_check("e1", "ALARM", "i-00000000000000001"),
        "run-1",
    )
    .await;
    engine.clock.set(at(60));

    let outcome = handle(
        &engine,
        ec2_status_check("e2", "ALARM", "i-00000000000000001"),
        "run-2",
    )
    .await;

    assert_eq!(outcome.reason, Some(SkipReason::Cooldown));
    let record = record_of(&outcome);
    assert_eq!(record.skip_reason, Some(SkipReason::Cooldown));
    assert_eq!(record.incident_id.as_deref(), Some("e1"));
    assert_eq!(record.attempt, 1);
    assert_eq!(engine.healer.count(), 1);
}

#[tokio::test]
async fn given_ok_after_a_heal_when_handled_then_the_incident_recovers_and_insufficient_data_is_ignored()
 {
    let engine = infrastructure();
    handle(
        &engine,
        ec2_status_check("e1", "ALARM", "i-00000000000000001"),
        "run-1",
    )
    .await;
    engine.clock.set(at(120));

    let ok = handle(
        &engine,
        ec2_status_check("e2", "OK", "i-00000000000000001"),
        "run-2",
    )
    .await;
    assert_eq!(ok.decision, Verdict::Recovering);
    let state = engine.store.state(&ec2_key("i-00000000000000001"));
    assert_eq!(state.incident.and_then(|i| i.ok_since), Some(at(120)));

    let writes = engine.store.writes();
    let unknown = handle(
        &engine,
        ec2_status_check("e3", "INSUFFICIENT_DATA", "i-00000000000000001"),
        "run-3",
    )
    .await;
    assert_eq!(unknown.decision, Verdict::Ignore);
    assert_eq!(unknown.reason, Some(SkipReason::NotActionable));
    assert_eq!(engine.store.writes(), writes, "ignoring writes nothing");
}

#[tokio::test]
async fn given_ok_with_no_incident_when_handled_then_it_is_ignored_without_writes() {
    let engine = infrastructure();

    let outcome = handle(
        &engine,
        ec2_status_check("e1", "OK", "i-00000000000000001"),
        "run-1",
    )
    .await;

    assert_eq!(outcome.decision, Verdict::Ignore);
    assert_eq!(outcome.reason, Some(SkipReason::NoOpenIncident));
    assert_eq!(engine.store.writes(), 0);
}

#[tokio::test]
async fn given_a_recovering_incident_when_a_skipped_alarm_arrives_then_the_recovery_is_interrupted()
{
    let engine = infrastructure();
    handle(
        &engine,
        ec2_status_check("e1", "ALARM", "i-00000000000000001"),
        "run-1",
    )
    .await;
    engine.clock.set(at(100));
    handle(
        &engine,
        ec2_status_check("e2", "OK", "i-00000000000000001"),
        "run-2",
    )
    .await;
    engine.clock.set(at(200));

    let outcome = handle(
        &engine,
        ec2_status_check("e3", "ALARM", "i-00000000000000001"),
        "run-3",
    )
    .await;

    assert_eq!(outcome.reason, Some(SkipReason::Cooldown));
    let state = engine.store.state(&ec2_key("i-00000000000000001"));
    let incident = state.incident.expect("still open");
    assert_eq!(incident.ok_since, None);
    assert_eq!(incident.id, "e1");

    // OK never held for the stable period, so after the cooldown it is attempt 2.
    engine.clock.set(at(1100));
    let outcome = handle(
        &engine,
        ec2_status_check("e4", "ALARM", "i-00000000000000001"),
        "run-4",
    )
    .await;
    assert_eq!(record_of(&outcome).attempt, 2);
    assert_eq!(record_of(&outcome).incident_id.as_deref(), Some("e1"));
}

#[tokio::test]
async fn given_a_run_that_died_holding_its_claim_when_the_event_is_redelivered_then_the_attempt_is_taken_over()
 {
    let engine = infrastructure();
    let key = ec2_key("i-00000000000000001");
    engine.store.put_claim(&key, "e1");
    engine.store.put_state(
        &key,
        ResourceState {
            version: 1,
            last_action_at: Some(t0()),
            incident: Some(Incident {
                id: "e1".to_owned(),
                opened_at: t0(),
                attempts: 1,
                last_attempt_at: Some(t0()),
                next_attempt_at: Some(at(600)),
                ok_since: None,
                escalated_at: None,
                checks: 1,
                deferrals: 0,
                unfinished: true,
                steps: 0,
                step_checks: 0,
                resolved_at: None,
                waiting_since: None,
            }),
            reverts: Vec::new(),
            lease: Some(Lease {
                run_id: "dead-run".to_owned(),
                event_id: "e1".to_owned(),
                attempt: 1,
                expires_at: at(900),
            }),
            revert_checks: 0,
        },
    );

    engine.clock.set(at(300));
    let early = handle(
        &engine,
        ec2_status_check("e1", "ALARM", "i-00000000000000001"),
        "run-early",
    )
    .await;
    assert_eq!(early.reason, Some(SkipReason::Duplicate));
    assert_eq!(engine.healer.count(), 0);

    engine.clock.set(at(1000));
    let outcome = handle(
        &engine,
        ec2_status_check("e1", "ALARM", "i-00000000000000001"),
        "run-2",
    )
    .await;

    assert_eq!(record_of(&outcome).status, HealingStatus::Completed);
    assert_eq!(
        engine.healer.calls(),
        [Call {
            rule: "ec2-instance-healing".to_owned(),
            resource_id: "i-00000000000000001".to_owned(),
            attempt: 1,
            incident_id: "e1".to_owned(),
            token: idempotency_token("ec2-instance-healing", "i-00000000000000001", "e1", 1),
        }],
        "the same attempt, with the dead run's token"
    );
    let state = engine.store.state(&key);
    assert_eq!(state.lease, None);
    assert_eq!(state.incident.map(|i| i.attempts), Some(1));
}

#[tokio::test]
async fn given_a_concurrent_writer_when_the_claim_conflicts_then_the_engine_decides_again_and_heals_once()
 {
    let engine = infrastructure();
    engine.store.conflict_once.store(true, Ordering::SeqCst);

    let outcome = handle(
        &engine,
        ec2_status_check("e1", "ALARM", "i-00000000000000001"),
        "run-1",
    )
    .await;

    assert_eq!(record_of(&outcome).status, HealingStatus::Completed);
    assert_eq!(engine.healer.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn given_ten_concurrent_deliveries_of_one_event_when_handled_then_exactly_one_heals() {
    let engine = Arc::new(infrastructure());
    engine.follow_ups.fired(
        &ec2_status_check("e1", "ALARM", "i-00000000000000001"),
        t0(),
    );

    let tasks: Vec<_> = (0..10)
        .map(|index| {
            let engine = Arc::clone(&engine);
            tokio::spawn(async move {
                engine
                    .handle(
                        ec2_status_check("e1", "ALARM", "i-00000000000000001"),
                        &format!("run-{index}"),
                    )
                    .await
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        let outcome = task
            .await
            .unwrap_or_else(|e| panic!("task panicked: {e}"))
            .unwrap_or_else(|e| panic!("handle failed: {e}"));
        outcomes.push(outcome);
    }

    assert_eq!(engine.healer.count(), 1);
    let completed = outcomes
        .iter()
        .filter(|o| {
            o.record
                .as_ref()
                .is_some_and(|r| r.status == HealingStatus::Completed)
        })
        .count();
    let duplicates = outcomes
        .iter()
        .filter(|o| o.reason == Some(SkipReason::Duplicate))
        .count();
    assert_eq!((completed, duplicates), (1, 9), "{outcomes:#?}");

    let records = engine.store.records();
    assert_eq!(
        records.len(),
        1,
        "the redeliveries record nothing: {records:#?}"
    );
    assert_eq!(records[0].status, HealingStatus::Completed);
    assert_eq!(engine.notifier.notices().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn given_ten_concurrent_alarms_of_different_events_on_one_instance_when_handled_then_exactly_one_heals()
 {
    let engine = Arc::new(infrastructure());
    engine.follow_ups.fired(
        &ec2_status_check("e0", "ALARM", "i-00000000000000001"),
        t0(),
    );

    let tasks: Vec<_> = (0..10)
        .map(|index| {
            let engine = Arc::clone(&engine);
            tokio::spawn(async move {
                engine
                    .handle(
                        ec2_status_check(&format!("e{index}"), "ALARM", "i-00000000000000001"),
                        &format!("run-{index}"),
                    )
                    .await
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(
            task.await
                .unwrap_or_else(|e| panic!("task panicked: {e}"))
                .unwrap_or_else(|e| panic!("handle failed: {e}")),
        );
    }

    assert_eq!(engine.healer.count(), 1, "{outcomes:#?}");
    assert!(
        outcomes
            .iter()
            .filter(|o| o.decision != Verdict::Act)
            .all(|o| matches!(
                o.reason,
                Some(SkipReason::InProgress | SkipReason::Cooldown)
            )),
        "{outcomes:#?}"
    );
}

// ------------------------------------------------------------------ explain (no I/O)

fn explain(payload: Value, settings: Settings) -> Outcome {
    let event = autoheal_core::AlarmEvent::from_value(payload).unwrap_or_else(|e| panic!("{e}"));
    autoheal_core::explain(&shipped(), &event, &settings, t0())
}

#[test]
fn given_an_ec2_alarm_when_explained_then_it_would_act_at_attempt_one_in_its_layer() {
    let outcome = explain(
        ec2_status_check("e1", "ALARM", "i-00000000000000001"),
        Settings::default(),
    );

    assert_eq!(outcome.decision, Verdict::Act);
    assert_eq!(outcome.layer, Some(Layer::Infrastructure));
    assert_eq!(outcome.rule.as_deref(), Some("ec2-instance-healing"));
    assert_eq!(outcome.resource_id.as_deref(), Some("i-00000000000000001"));
    let detail = outcome.detail.unwrap_or_default();
    assert!(detail.contains("attempt 1 of at most 3"), "{detail}");
}

#[test]
fn given_a_lambda_alarm_when_explained_then_the_platform_layer_is_named() {
    let outcome = explain(
        metric_alarm(
            "e1",
            "checkout-errors",
            "ALARM",
            "AWS/Lambda",
            "Errors",
            &[("FunctionName", "checkout")],
        ),
        Settings::default(),
    );

    assert_eq!(outcome.layer, Some(Layer::Platform));
    assert_eq!(outcome.rule.as_deref(), Some("lambda-function-healing"));
}

#[test]
fn given_shadow_mode_when_explained_then_it_would_only_record() {
    let outcome = explain(
        ec2_status_check("e1", "ALARM", "i-00000000000000001"),
        Settings {
            mode: Mode::Shadow,
            ..Settings::default()
        },
    );

    assert_eq!(outcome.decision, Verdict::Skip);
    assert_eq!(outcome.reason, Some(SkipReason::ShadowMode));
    assert_eq!(outcome.mode, Some(Mode::Shadow));
}

#[test]
fn given_ok_or_insufficient_data_when_explained_then_nothing_would_be_done() {
    let ok = explain(
        ec2_status_check("e1", "OK", "i-00000000000000001"),
        Settings::default(),
    );
    assert_eq!(ok.reason, Some(SkipReason::NoOpenIncident));

    let unknown = explain(
        ec2_status_check("e1", "INSUFFICIENT_DATA", "i-00000000000000001"),
        Settings::default(),
    );
    assert_eq!(unknown.reason, Some(SkipReason::NotActionable));
}

#[test]
fn given_an_alarm_no_rule_matches_when_explained_then_no_layer_and_no_matching_rule() {
    let outcome = explain(composite_sample(), Settings::default());

    assert_eq!(outcome.layer, None);
    assert_eq!(outcome.rule, None);
    assert_eq!(outcome.reason, Some(SkipReason::NoMatchingRule));
}

// ------------------------------------------------------------------ suppression

#[tokio::test]
async fn given_an_alarm_whose_actions_cloudwatch_suppresses_when_handled_then_nothing_is_written_or_healed()
 {
    let engine = infrastructure();
    let mut suppressed = ec2_status_check("e1", "ALARM", "i-00000000000000001");
    suppressed["detail"]["state"]["actionsSuppressedBy"] = json!("Alarm");
    let mut muted = ec2_status_check("e2", "ALARM", "i-00000000000000001");
    muted["detail"]["muteDetail"] = json!({
        "mutedByArn": "arn:aws:cloudwatch:us-east-1:123456789012:alarm-mute-rule:maintenance",
        "muteWindowStart": "2026-11-24T06:00:00.000+0000",
        "muteWindowEnd": "2026-11-24T08:00:00.000+0000"
    });

    for (event, expected) in [(suppressed, "suppressed by Alarm"), (muted, "maintenance")] {
        let outcome = handle(&engine, event.clone(), "run").await;
        assert_eq!(outcome.reason, Some(SkipReason::Suppressed), "{outcome:?}");
        assert!(
            outcome
                .detail
                .as_deref()
                .is_some_and(|d| d.contains(expected)),
            "{outcome:?}"
        );
        let explained = explain(event, Settings::default());
        assert_eq!(explained.reason, Some(SkipReason::Suppressed));
    }
    assert_eq!(engine.healer.count(), 0);
    assert_eq!(engine.store.lock().writes, 0);
}

#[test]
fn given_a_disabled_rule_in_one_layer_and_an_enabled_one_in_another_when_explained_then_the_enabled_one_speaks()
 {
    // Both rules match the same EC2 status-check alarm; the infrastructure one is disabled.
    let text = format!(
        "{}\n{}",
        autoheal_core::SHIPPED_RULES.replacen(
            "name = \"ec2-instance-healing\"\n",
            "name = \"ec2-instance-healing\"\nenabled = false\n",
            1,
        ),
        r#"
[[rule]]
name = "status-check-process-restart"
layer = "application"
cooldown_seconds = 60
max_attempts = 1
[rule.trigger]
namespace = "AWS/EC2"
dimensions = ["InstanceId"]
[rule.resource]
dimension = "InstanceId"
[rule.action]
type = "restart-process"
service = "app"
"#
    );
    let rules = RuleSet::from_toml(&text).unwrap_or_else(|e| panic!("{e}"));
    let event = autoheal_core::AlarmEvent::from_value(ec2_status_check(
        "e1",
        "ALARM",
        "i-00000000000000001",
    ))
    .unwrap_or_else(|e| panic!("{e}"));

    let (layer, selection) = autoheal_core::policy::resolve::select_any(&rules, &event);

    assert_eq!(layer, Some(Layer::Application));
    assert_eq!(
        selection.rule().map(|r| r.name.as_str()),
        Some("status-check-process-restart")
    );
}

// ------------------------------------------------------------------ putting changes back

/// An engine whose heals report a change to put back.
fn reversible() -> TestEngine {
    let engine = infrastructure();
    engine.healer.reversible.store(true, Ordering::SeqCst);
    engine
}

#[tokio::test]
async fn given_a_heal_that_made_a_change_when_the_alarm_turns_ok_then_the_change_is_put_back_once()
{
    let engine = reversible();
    handle(
        &engine,
        ec2_status_check("e1", "ALARM", "i-00000000000000001"),
        "run-1",
    )
    .await;
    let state = engine.store.state(&ec2_key("i-00000000000000001"));
    assert_eq!(
        state.reverts,
        [Revert {
            attempt: 1,
            ..Revert::new("undo-fake").with("n", 1)
        }],
        "the finished heal stored what to put back"
    );

    engine.clock.set(at(60));
    let outcome = handle(
        &engine,
        ec2_status_check("ok1", "OK", "i-00000000000000001"),
        "run-2",
    )
    .await;

    assert_eq!(outcome.decision, Verdict::Revert);
    let record = record_of(&outcome);
    assert_eq!(record.phase, RunPhase::Revert);
    assert_eq!(record.status, HealingStatus::Completed);
    assert_eq!(record.attempt, 1);
    assert_eq!(record.incident_id.as_deref(), Some("e1"));
    assert_eq!(record.summary.as_deref(), Some("undid 1"));
    assert_eq!(record.details.get("undone").map(String::as_str), Some("1"));
    assert_eq!(&engine.store.record("run-2"), record);
    assert_eq!(engine.healer.reverted(), ["1"]);

    let state = engine.store.state(&ec2_key("i-00000000000000001"));
    assert!(state.reverts.is_empty(), "nothing is left to put back");
    assert_eq!(state.lease, None, "the revert released its claim");
    let incident = state
        .incident
        .expect("the incident stays open until stable");
    assert_eq!(
        incident.ok_since,
        Some(at(60)),
        "the revert also starts recovery"
    );

    let notices = engine.notifier.notices();
    assert_eq!(notices.len(), 2, "{notices:?}");
    assert!(
        notices[1].subject().contains("revert of"),
        "{}",
        notices[1].subject()
    );
    assert_eq!(notices[1].attributes()["phase"], "revert");

    // The same OK delivered again, and a later OK, put nothing back twice.
    let again = handle(
        &engine,
        ec2_status_check("ok1", "OK", "i-00000000000000001"),
        "run-3",
    )
    .await;
    assert_eq!(again.decision, Verdict::Ignore);
    assert_eq!(again.reason, Some(SkipReason::Duplicate));
    let later = handle(
        &engine,
        ec2_status_check("ok2", "OK", "i-00000000000000001"),
        "run-4",
    )
    .await;
    assert_eq!(later.decision, Verdict::Recovering);
    assert_eq!(engine.healer.reverted(), ["1"]);
}

#[tokio::test]
async fn given_two_attempts_that_made_changes_when_the_alarm_turns_ok_then_the_newest_is_put_back_first()
 {
    let engine = reversible();
    handle(
        &engine,
        ec2_status_check("e1", "ALARM", "i-00000000000000001"),
        "run-1",
    )
    .await;
    engine.clock.set(at(86_400));
    let second = handle(
        &engine,
        ec2_status_check("e2", "ALARM", "i-00000000000000001"),
        "run-2",
    )
    .await;
    assert_eq!(second.decision, Verdict::Act);
    assert_eq!(record_of(&second).attempt, 2);

    engine.clock.set(at(86_460));
    let outcome = handle(
        &engine,
        ec2_status_check("ok1", "OK", "i-00000000000000001"),
        "run-3",
    )
    .await;

    assert_eq!(engine.healer.reverted(), ["2", "1"]);
    let record = record_of(&outcome);
    assert_eq!(record.summary.as_deref(), Some("undid 2; undid 1"));
    assert_eq!(
        record.details.get("revert2.undone").map(String::as_str),
        Some("2")
    );
    assert_eq!(
        record.details.get("revert1.undone").map(String::as_str),
        Some("1")
    );
    assert!(
        engine
            .store
            .state(&ec2_key("i-00000000000000001"))
            .reverts
            .is_empty()
    );
}

#[tokio::test]
async fn given_a_revert_that_fails_when_the_alarm_turns_ok_then_it_stops_there_and_the_next_ok_tries_again()
 {
    let engine = reversible();
    handle(
        &engine,
        ec2_status_check("e1", "ALARM", "i-00000000000000001"),
        "run-1",
    )
    .await;
    engine.clock.set(at(86_400));
    handle(
        &engine,
        ec2_status_check("e2", "ALARM", "i-00000000000000001"),
        "run-2",
    )
    .await;
    engine.healer.revert_fails.store(true, Ordering::SeqCst);

    engine.clock.set(at(86_460));
    let outcome = handle(
        &engine,
        ec2_status_check("ok1", "OK", "i-00000000000000001"),
        "run-3",
    )
    .await;

    let record = record_of(&outcome);
    assert_eq!(record.status, HealingStatus::Failed);
    assert_eq!(record.error.as_deref(), Some("cannot undo 2"));
    assert_eq!(
        engine.healer.reverted(),
        ["2"],
        "an older change is never put back over a newer one that is still in place"
    );
    assert_eq!(
        engine
            .store
            .state(&ec2_key("i-00000000000000001"))
            .reverts
            .len(),
        2
    );
    assert_eq!(
        engine.notifier.kinds().last(),
        Some(&(NoticeKind::Healing, HealingStatus::Failed))
    );

    // The alarm flaps: ALARM inside the cooldown acts on nothing, and the next OK retries.
    engine.clock.set(at(86_500));
    handle(
        &engine,
        ec2_status_check("e3", "ALARM", "i-00000000000000001"),
        "run-4",
    )
    .await;
    engine.healer.revert_fails.store(false, Ordering::SeqCst);
    engine.clock.set(at(86_560));
    let retried = handle(
        &engine,
        ec2_status_check("ok2", "OK", "i-00000000000000001"),
        "run-5",
    )
    .await;
    assert_eq!(record_of(&retried).status, HealingStatus::Completed);
    assert_eq!(engine.healer.reverted(), ["2", "2", "1"]);
    assert!(
        engine
            .store
            .state(&ec2_key("i-00000000000000001"))
            .reverts
            .is_empty()
    );
}

#[tokio::test]
async fn given_a_revert_in_progress_when_an_alarm_arrives_then_it_does_not_heal_over_it() {
    let engine = reversible();
    handle(
        &engine,
        ec2_status_check("e1", "ALARM", "i-00000000000000001"),
        "run-1",
    )
    .await;
    let key = ec2_key("i-00000000000000001");
    let mut state = engine.store.state(&key);
    // A revert run claimed the resource (and an OK event) and is still running.
    state.version += 1;
    state.lease = Some(Lease {
        run_id: "reverting".to_owned(),
        event_id: "ok1".to_owned(),
        attempt: 1,
        expires_at: at(86_400 + 900),
    });
    engine.store.put_state(&key, state);
    engine.store.put_claim(&key, "ok1");

    engine.clock.set(at(86_400));
    let alarm = handle(
        &engine,
        ec2_status_check("e2", "ALARM", "i-00000000000000001"),
        "run-2",
    )
    .await;
    assert_eq!(alarm.reason, Some(SkipReason::InProgress));
    let ok = handle(
        &engine,
        ec2_status_check("ok2", "OK", "i-00000000000000001"),
        "run-3",
    )
    .await;
    assert_eq!(
        ok.decision,
        Verdict::Recovering,
        "a second OK does not revert beside it"
    );
    assert_eq!(engine.healer.count(), 1);
    assert!(engine.healer.reverted().is_empty());

    // The revert run died: its OK, delivered again after the lease, puts the change back.
    engine.clock.set(at(86_400 + 901));
    let retried = handle(
        &engine,
        ec2_status_check("ok1", "OK", "i-00000000000000001"),
        "run-4",
    )
    .await;
    assert_eq!(retried.decision, Verdict::Revert);
    assert_eq!(engine.healer.reverted(), ["1"]);
    assert!(engine.store.state(&key).reverts.is_empty());
}

#[tokio::test]
async fn given_shadow_mode_when_a_heal_would_change_something_then_nothing_is_kept_to_put_back() {
    let engine = engine_with(
        Layer::Infrastructure,
        shipped(),
        Settings {
            mode: Mode::Shadow,
            layer_enabled: true,
            ..Settings::default()
        },
    );
    engine.healer.reversible.store(true, Ordering::SeqCst);
    handle(
        &engine,
        ec2_status_check("e1", "ALARM", "i-00000000000000001"),
        "run-1",
    )
    .await;
    assert!(
        engine
            .store
            .state(&ec2_key("i-00000000000000001"))
            .reverts
            .is_empty()
    );
    let ok = handle(
        &engine,
        ec2_status_check("ok1", "OK", "i-00000000000000001"),
        "run-2",
    )
    .await;
    assert_eq!(ok.decision, Verdict::Recovering);
    assert!(engine.healer.reverted().is_empty());
}

// ------------------------------------------------------------------ the closed loop

/// The alarm of `ec2_status_check`.
const ALARM_NAME: &str = "web-1-status-check";

/// Fires the latest scheduled follow-up at its due time.
async fn fire_latest(engine: &TestEngine, run_id: &str) -> Outcome {
    let (payload, due) = engine.follow_ups.latest();
    engine.clock.set(due);
    handle(engine, payload, run_id).await
}

#[tokio::test]
async fn given_a_heal_when_it_runs_then_its_follow_up_is_scheduled_when_the_backoff_ends() {
    let engine = infrastructure();

    let outcome = handle(
        &engine,
        ec2_status_check("e1", "ALARM", "i-00000000000000001"),
        "run-1",
    )
    .await;

    let scheduled = engine.follow_ups.scheduled();
    assert_eq!(scheduled.len(), 1, "{scheduled:?}");
    let (follow_up, due) = &scheduled[0];
    let state = engine.store.state(&ec2_key("i-00000000000000001"));
    let incident = state.incident.expect("an open incident");
    assert_eq!(Some(*due), incident.next_attempt_at);
    assert_eq!(follow_up.check, 1);
    assert_eq!(incident.checks, 1);
    assert_eq!(follow_up.incident_id, "e1");
    assert_eq!(follow_up.rule, "ec2-instance-healing");
    assert_eq!(follow_up.resource_id, "i-00000000000000001");
    assert_eq!(follow_up.alarm.id, "e1");
    assert_eq!(
        record_of(&outcome).details.get("follow_up_at"),
        Some(&due.to_rfc3339())
    );
}

#[tokio::test]
async fn given_an_alarm_that_stays_on_when_follow_ups_fire_then_each_retries_until_one_escalation()
{
    let engine = infrastructure();
    engine
        .follow_ups
        .set_alarm(ALARM_NAME, AlarmState::Alarm, t0());
    handle(
        &engine,
        ec2_status_check("e1", "ALARM", "i-00000000000000001"),
        "run-1",
    )
    .await;
    let mut dues = vec![engine.follow_ups.latest().1];

    let second = fire_latest(&engine, "check-1").await;
    dues.push(engine.follow_ups.latest().1);
    let third = fire_latest(&engine, "check-2").await;
    dues.push(engine.follow_ups.latest().1);
    let spent = fire_latest(&engine, "check-3").await;

    assert_eq!(second.decision, Verdict::Act);
    assert_eq!(third.decision, Verdict::Act);
    assert_eq!(
        engine
            .healer
            .calls()
            .iter()
            .map(|c| c.attempt)
            .collect::<Vec<_>>(),
        [1, 2, 3],
        "every attempt came from a follow-up, with no new alarm event"
    );
    assert!(
        dues[1] - dues[0] > dues[0] - t0(),
        "the delays grow: {dues:?}"
    );
    assert_eq!(spent.reason, Some(SkipReason::MaxAttempts));
    let escalations: Vec<Notice> = engine
        .notifier
        .notices()
        .into_iter()
        .filter(|n| n.kind == NoticeKind::Escalation)
        .collect();
    assert_eq!(escalations.len(), 1, "{escalations:?}");
    assert_eq!(
        escalations[0]
            .history
            .iter()
            .filter(|r| r.status == HealingStatus::Completed)
            .map(|r| r.attempt)
            .collect::<Vec<_>>(),
        [1, 2, 3],
        "the escalation carries the incident's history"
    );
    assert_eq!(
        engine.follow_ups.scheduled().len(),
        3,
        "the escalation schedules nothing more"
    );

    // Nothing more happens until the incident resolves or is reset: a later ALARM event and
    // the last check delivered again do nothing.
    engine.clock.set(at(86_400));
    let again = handle(
        &engine,
        ec2_status_check("e2", "ALARM", "i-00000000000000001"),
        "run-9",
    )
    .await;
    assert_eq!(again.reason, Some(SkipReason::MaxAttempts));
    let (last_check, _) = engine
        .follow_ups
        .scheduled()
        .into_iter()
        .find(|(follow_up, _)| follow_up.incident_id == "e1" && follow_up.check == 3)
        .expect("the last check");
    let duplicate = handle(&engine, last_check.to_payload(), "check-3-again").await;
    assert_eq!(duplicate.reason, Some(SkipReason::Escalated));
    assert_eq!(engine.healer.count(), 3);
    assert_eq!(
        engine
            .notifier
            .notices()
            .iter()
            .filter(|n| n.kind == NoticeKind::Escalation)
            .count(),
        1
    );
}

#[tokio::test]
async fn given_an_alarm_back_to_ok_when_the_follow_up_fires_then_the_incident_is_resolved_once() {
    let engine = infrastructure();
    handle(
        &engine,
        ec2_status_check("e1", "ALARM", "i-00000000000000001"),
        "run-1",
    )
    .await;
    engine
        .follow_ups
        .set_alarm(ALARM_NAME, AlarmState::Ok, at(120));

    // The first check (at the 600 s cooldown) finds OK for less than the 900 s stable period;
    // the one it schedules finds it stable.
    let stabilizing = fire_latest(&engine, "check-1").await;
    let resolved = fire_latest(&engine, "check-2").await;

    assert_eq!(stabilizing.decision, Verdict::Recheck);
    assert_eq!(resolved.decision, Verdict::Resolve);
    let record = record_of(&resolved);
    assert_eq!(record.phase, RunPhase::Verify);
    assert_eq!(record.status, HealingStatus::Completed);
    assert_eq!(
        record
            .details
            .get("time_to_recover_seconds")
            .map(String::as_str),
        Some("120"),
        "first ALARM to OK"
    );
    let state = engine.store.state(&ec2_key("i-00000000000000001"));
    assert!(
        state
            .incident
            .as_ref()
            .is_some_and(|i| i.resolved_at.is_some())
    );
    assert_eq!(state.lease, None);
    let notices = engine.notifier.notices();
    assert_eq!(
        notices.len(),
        2,
        "the heal, then the resolution: {notices:?}"
    );
    assert!(
        notices[1].subject().contains("resolved"),
        "{}",
        notices[1].subject()
    );

    // The late OK event and the same check again change nothing.
    let writes = engine.store.writes();
    let late_ok = handle(
        &engine,
        ec2_status_check("e2", "OK", "i-00000000000000001"),
        "run-2",
    )
    .await;
    assert_eq!(late_ok.decision, Verdict::Ignore);
    let (payload, _) = engine.follow_ups.latest();
    let again = handle(&engine, payload, "check-2-again").await;
    assert_eq!(again.reason, Some(SkipReason::Duplicate));
    assert_eq!(engine.store.writes(), writes);
    assert_eq!(engine.notifier.notices().len(), 2);
    assert_eq!(engine.healer.count(), 1);

    // The alarm fires again: its ALARM opens a new incident.
    engine.clock.set(at(7200));
    engine
        .follow_ups
        .set_alarm(ALARM_NAME, AlarmState::Alarm, at(7200));
    let next = handle(
        &engine,
        ec2_status_check("e3", "ALARM", "i-00000000000000001"),
        "run-3",
    )
    .await;
    assert_eq!(next.decision, Verdict::Act);
    assert_eq!(record_of(&next).incident_id.as_deref(), Some("e3"));
}

#[tokio::test]
async fn given_an_alarm_ok_for_less_than_the_stable_period_when_checked_then_it_checks_again() {
    let engine = infrastructure();
    handle(
        &engine,
        ec2_status_check("e1", "ALARM", "i-00000000000000001"),
        "run-1",
    )
    .await;
    let (_, due) = engine.follow_ups.latest();
    engine.follow_ups.set_alarm(ALARM_NAME, AlarmState::Ok, due);

    let waiting = fire_latest(&engine, "check-1").await;

    assert_eq!(waiting.decision, Verdict::Recheck);
    let (next, next_due) = engine.follow_ups.latest();
    let stable = i64::try_from(
        shipped()
            .get("ec2-instance-healing")
            .unwrap()
            .policy
            .stable_period_seconds,
    )
    .unwrap();
    assert_eq!(next_due, due + Duration::seconds(stable));
    assert_eq!(next["detail"]["check"], 2);
    let resolved = fire_latest(&engine, "check-2").await;
    assert_eq!(resolved.decision, Verdict::Resolve);
}

#[tokio::test]
async fn given_a_follow_up_that_a_newer_one_replaced_when_it_fires_then_it_does_nothing() {
    let engine = infrastructure();
    engine
        .follow_ups
        .set_alarm(ALARM_NAME, AlarmState::Alarm, t0());
    handle(
        &engine,
        ec2_status_check("e1", "ALARM", "i-00000000000000001"),
        "run-1",
    )
    .await;
    let (first, _) = engine.follow_ups.latest();
    fire_latest(&engine, "check-1").await;
    let writes = engine.store.writes();

    // The first check's schedule fires again under another event id (a second schedule of the
    // same check would be refused; this is a check an older version scheduled).
    let mut stale = first.clone();
    stale["detail"]["check"] = json!(0);
    let outcome = handle(&engine, stale, "stale").await;

    assert_eq!(outcome.reason, Some(SkipReason::Superseded));
    assert_eq!(engine.store.writes(), writes);
    assert_eq!(engine.healer.count(), 2);
}

#[tokio::test]
async fn given_a_deleted_alarm_when_its_follow_up_fires_then_a_person_is_asked_once() {
    let engine = infrastructure();
    handle(
        &engine,
        ec2_status_check("e1", "ALARM", "i-00000000000000001"),
        "run-1",
    )
    .await;

    let outcome = fire_latest(&engine, "check-1").await;

    assert_eq!(outcome.reason, Some(SkipReason::Unverifiable));
    assert_eq!(engine.healer.count(), 1);
    let kinds: Vec<NoticeKind> = engine.notifier.notices().iter().map(|n| n.kind).collect();
    assert_eq!(kinds, [NoticeKind::Healing, NoticeKind::Escalation]);
}

/// The check that verifies an attempt is scheduled before the attempt's claim: a scheduler
/// that cannot be reached is a retryable error with nothing done and nothing written, and the
/// event delivered again once it is back heals, followed up.
#[tokio::test]
async fn given_a_scheduler_outage_when_an_alarm_would_heal_then_nothing_is_done_and_the_error_is_retryable()
 {
    let engine = infrastructure();
    let instance = "i-00000000000000001";
    engine
        .follow_ups
        .scheduler_down
        .store(true, Ordering::SeqCst);

    let event = ec2_status_check("e1", "ALARM", instance);
    engine.follow_ups.fired(&event, t0());
    let error = engine
        .handle(event, "run-1")
        .await
        .expect_err("a follow-up that cannot be scheduled fails the event");

    assert!(error.is_retryable(), "{error}");
    assert_eq!(engine.healer.count(), 0, "nothing is done");
    assert_eq!(engine.store.writes(), 0, "nothing is written");
    assert_eq!(
        engine.store.state(&ec2_key(instance)),
        ResourceState::default()
    );

    // Lambda delivers the event again once the scheduler is back: it heals, followed up.
    engine
        .follow_ups
        .scheduler_down
        .store(false, Ordering::SeqCst);
    engine.clock.set(at(60));
    let retried = handle(&engine, ec2_status_check("e1", "ALARM", instance), "run-2").await;
    assert_eq!(retried.decision, Verdict::Act, "{retried:?}");
    assert_eq!(engine.healer.count(), 1);
    let (check, due) = engine.follow_ups.scheduled().pop().expect("its check");
    assert_eq!((check.incident_id.as_str(), check.check), ("e1", 1));
    assert_eq!(
        record_of(&retried).details.get("follow_up_at"),
        Some(&due.to_rfc3339())
    );
}

/// A deferral's check is scheduled before the deferral is written: a scheduler that cannot be
/// reached leaves the deferred event unwritten, to be delivered again.
#[tokio::test]
async fn given_a_scheduler_outage_when_an_alarm_is_deferred_then_nothing_is_written_and_the_error_is_retryable()
 {
    let engine = infrastructure();
    let instance = "i-00000000000000001";
    engine
        .store
        .put_budget("rule#ec2-instance-healing", at_window(0), 5);
    engine
        .follow_ups
        .scheduler_down
        .store(true, Ordering::SeqCst);

    let event = ec2_status_check("e1", "ALARM", instance);
    engine.follow_ups.fired(&event, t0());
    let error = engine
        .handle(event, "run-1")
        .await
        .expect_err("a deferral whose check cannot be scheduled fails the event");

    assert!(error.is_retryable(), "{error}");
    assert_eq!(engine.healer.count(), 0);
    assert_eq!(engine.store.writes(), 0);
    assert_eq!(
        engine.store.state(&ec2_key(instance)),
        ResourceState::default()
    );
}

/// A check scheduled before a claim that was then refused (a presumed claim on a resource
/// whose incident is open, another delivery of the event) does nothing when it fires.
#[tokio::test]
async fn given_a_check_scheduled_for_a_refused_claim_when_it_fires_then_it_does_nothing() {
    let engine = infrastructure();
    let instance = "i-00000000000000001";
    engine
        .follow_ups
        .set_alarm(ALARM_NAME, AlarmState::Alarm, t0());
    handle(&engine, ec2_status_check("e1", "ALARM", instance), "run-1").await;
    engine.clock.set(at(30));
    // A second ALARM in the incident's backoff: its presumed claim (a new incident) is
    // refused, and it is skipped on the state as stored.
    let skipped = handle(&engine, ec2_status_check("e2", "ALARM", instance), "run-2").await;
    assert_eq!(skipped.reason, Some(SkipReason::Cooldown), "{skipped:?}");
    let refused: Vec<FollowUp> = engine
        .follow_ups
        .scheduled()
        .into_iter()
        .map(|(follow_up, _)| follow_up)
        .filter(|follow_up| follow_up.incident_id == "e2")
        .collect();
    assert_eq!(refused.len(), 1, "the presumed attempt's check");
    let state = engine.store.state(&ec2_key(instance));
    let writes = engine.store.writes();

    engine.clock.set(at(3600));
    let fired = handle(&engine, refused[0].to_payload(), "stray").await;

    assert_eq!(fired.decision, Verdict::Ignore, "{fired:?}");
    assert_eq!(fired.reason, Some(SkipReason::NoOpenIncident));
    assert_eq!(engine.healer.count(), 1);
    assert_eq!(engine.store.state(&ec2_key(instance)), state);
    assert_eq!(engine.store.writes(), writes, "nothing is written");
}

#[tokio::test]
async fn given_shadow_mode_when_acting_then_no_follow_up_is_scheduled() {
    let engine = engine_with(
        Layer::Infrastructure,
        shipped(),
        Settings {
            mode: Mode::Shadow,
            layer_enabled: true,
            ..Settings::default()
        },
    );

    handle(
        &engine,
        ec2_status_check("e1", "ALARM", "i-00000000000000001"),
        "run-1",
    )
    .await;

    assert!(engine.follow_ups.scheduled().is_empty());
}

#[tokio::test]
async fn given_a_follow_up_fired_early_when_the_backoff_is_not_over_then_it_waits_for_it() {
    let engine = infrastructure();
    engine
        .follow_ups
        .set_alarm(ALARM_NAME, AlarmState::Alarm, t0());
    handle(
        &engine,
        ec2_status_check("e1", "ALARM", "i-00000000000000001"),
        "run-1",
    )
    .await;
    let (payload, due) = engine.follow_ups.latest();
    engine.clock.set(due - Duration::seconds(5));

    let early = handle(&engine, payload, "early").await;

    assert_eq!(early.decision, Verdict::Recheck);
    assert_eq!(engine.follow_ups.latest().1, due);
    assert_eq!(engine.healer.count(), 1);
}

#[tokio::test]
async fn given_an_escalated_incident_when_an_operator_resets_it_then_the_next_alarm_heals_again() {
    let engine = infrastructure();
    engine.healer.fail.store(true, Ordering::SeqCst);
    engine
        .follow_ups
        .set_alarm(ALARM_NAME, AlarmState::Alarm, t0());
    handle(
        &engine,
        ec2_status_check("e1", "ALARM", "i-00000000000000001"),
        "run-1",
    )
    .await;
    fire_latest(&engine, "check-1").await;
    fire_latest(&engine, "check-2").await;
    assert!(
        engine
            .store
            .state(&ec2_key("i-00000000000000001"))
            .incident
            .is_some_and(|i| i.escalated_at.is_some())
    );
    engine.healer.fail.store(false, Ordering::SeqCst);

    let record = engine
        .reset("ec2-instance-healing", "i-00000000000000001", "reset-1")
        .await
        .expect("reset");

    assert_eq!(record.phase, RunPhase::Reset);
    assert_eq!(record.incident_id.as_deref(), Some("e1"));
    assert_eq!(&engine.store.record("reset-1"), &record);
    let again = engine
        .reset("ec2-instance-healing", "i-00000000000000001", "reset-2")
        .await;
    assert!(matches!(again, Err(EngineError::Refused(_))), "{again:?}");
    engine.clock.set(at(86_400));
    let healed = handle(
        &engine,
        ec2_status_check("e2", "ALARM", "i-00000000000000001"),
        "run-2",
    )
    .await;
    assert_eq!(healed.decision, Verdict::Act);
    assert_eq!(record_of(&healed).attempt, 1);
}

// ------------------------------------------------------------------ the safety governor

#[tokio::test]
async fn given_a_burst_of_fifty_alarms_when_handled_then_the_budget_acts_on_five_and_defers_the_rest_once()
 {
    let engine = infrastructure();
    let instances: Vec<String> = (0..50).map(|i| format!("i-{i:017x}")).collect();

    let mut outcomes = Vec::new();
    for (i, instance) in instances.iter().enumerate() {
        let event = ec2_status_check(&format!("e{i}"), "ALARM", instance);
        outcomes.push(handle(&engine, event, &format!("run-{i}")).await);
    }

    let acted = outcomes
        .iter()
        .filter(|o| o.decision == Verdict::Act)
        .count();
    let deferred: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.reason == Some(SkipReason::Budget))
        .collect();
    assert_eq!(acted, 5, "the rule's shipped budget: 5 per 15 minutes");
    assert_eq!(engine.healer.count(), 5);
    assert_eq!(deferred.len(), 45);
    let record = record_of(deferred[0]);
    assert_eq!(record.status, HealingStatus::Skipped);
    assert_eq!(record.attempt, 0, "a deferral is not an attempt");
    assert_eq!(
        record.details.get("budget").map(String::as_str),
        Some("rule#ec2-instance-healing")
    );
    let budget_notices: Vec<Notice> = engine
        .notifier
        .notices()
        .into_iter()
        .filter(|n| n.kind == NoticeKind::Budget)
        .collect();
    assert_eq!(budget_notices.len(), 1, "one notice per budget and window");
    // Every resource has its check; a deferred one's is the deferral's, the check its
    // presumed attempt scheduled before the refused claim being passed over.
    let live = |engine: &TestEngine| -> Vec<(FollowUp, DateTime<Utc>)> {
        engine
            .follow_ups
            .scheduled()
            .into_iter()
            .filter(|(follow_up, _)| {
                engine
                    .store
                    .state(&ec2_key(&follow_up.resource_id))
                    .incident
                    .is_some_and(|i| i.checks == follow_up.check)
            })
            .collect()
    };
    assert_eq!(live(&engine).len(), 50);
    assert_eq!(engine.follow_ups.scheduled().len(), 50 + 45);
    // A deferred event delivered again is a duplicate: no second deferral is counted.
    let last = &instances[49];
    let deferred_state = engine.store.state(&ec2_key(last));
    let again = handle(
        &engine,
        ec2_status_check("e49", "ALARM", last),
        "run-49-again",
    )
    .await;
    assert_eq!(again.reason, Some(SkipReason::Duplicate), "{again:?}");
    assert_eq!(engine.store.state(&ec2_key(last)), deferred_state);

    // The deferred are picked up when the budget reopens: five more, the rest deferred again.
    engine
        .follow_ups
        .set_alarm(ALARM_NAME, AlarmState::Alarm, t0());
    let deferred_checks: Vec<(FollowUp, DateTime<Utc>)> = live(&engine)
        .into_iter()
        .filter(|(follow_up, _)| {
            engine
                .store
                .state(&ec2_key(&follow_up.resource_id))
                .incident
                .is_some_and(|i| i.attempts == 0)
        })
        .collect();
    assert_eq!(deferred_checks.len(), 45);
    let reopen = deferred_checks.iter().map(|(_, at)| *at).max().expect("45");
    assert!(
        deferred_checks.iter().all(|(_, at)| *at >= at_window(1800)),
        "5 actions fill the window: it reopens once they leave the rolling window"
    );
    engine.clock.set(reopen);
    let mut second = 0;
    for (i, (follow_up, _)) in deferred_checks.iter().enumerate() {
        let outcome = handle(&engine, follow_up.to_payload(), &format!("again-{i}")).await;
        if outcome.decision == Verdict::Act {
            second += 1;
        }
    }
    assert_eq!(second, 5);
    assert_eq!(engine.healer.count(), 10);
}

/// `seconds` after the start of the 15-minute window `t0` falls in.
fn at_window(seconds: i64) -> DateTime<Utc> {
    let start = t0().timestamp().div_euclid(900) * 900;
    DateTime::from_timestamp(start + seconds, 0).expect("a time")
}

#[tokio::test]
async fn given_shadow_mode_when_the_budget_is_spent_then_deferrals_are_recorded_and_nothing_scheduled()
 {
    let engine = engine_with(
        Layer::Infrastructure,
        shipped(),
        Settings {
            mode: Mode::Shadow,
            ..Settings::default()
        },
    );
    for i in 0..7 {
        let event = ec2_status_check(&format!("e{i}"), "ALARM", &format!("i-{i:017x}"));
        handle(&engine, event, &format!("run-{i}")).await;
    }
    let reasons: Vec<Option<SkipReason>> = engine
        .store
        .records()
        .iter()
        .map(|r| r.skip_reason)
        .collect();
    assert_eq!(
        reasons
            .iter()
            .filter(|r| **r == Some(SkipReason::ShadowMode))
            .count(),
        5
    );
    assert_eq!(
        reasons
            .iter()
            .filter(|r| **r == Some(SkipReason::Budget))
            .count(),
        2
    );
    assert_eq!(engine.healer.count(), 0);
    assert!(engine.follow_ups.scheduled().is_empty());
}

fn put_in_group(engine: &TestEngine, size: u32, unhealthy: u32) {
    *engine
        .healer
        .group
        .lock()
        .unwrap_or_else(|e| panic!("healer lock: {e}")) = Some(GroupView {
        id: "auto-scaling-group/web".to_owned(),
        size,
        unhealthy,
    });
}

#[tokio::test]
async fn given_six_of_ten_members_unhealthy_when_their_alarms_fire_then_none_is_healed_and_one_notice_says_why()
 {
    let engine = infrastructure();
    put_in_group(&engine, 10, 6);

    let mut outcomes = Vec::new();
    for i in 0..6 {
        let event = ec2_status_check(&format!("e{i}"), "ALARM", &format!("i-{i:017x}"));
        outcomes.push(handle(&engine, event, &format!("run-{i}")).await);
    }

    assert_eq!(engine.healer.count(), 0);
    assert!(
        outcomes
            .iter()
            .all(|o| o.reason == Some(SkipReason::GroupStorm)),
        "{outcomes:#?}"
    );
    let record = record_of(&outcomes[0]);
    assert_eq!(
        record.details.get("group").map(String::as_str),
        Some("auto-scaling-group/web")
    );
    assert!(
        record
            .summary
            .as_deref()
            .is_some_and(|s| s.contains("6 of the 10 members")),
        "{record:?}"
    );
    let guard_notices: Vec<Notice> = engine
        .notifier
        .notices()
        .into_iter()
        .filter(|n| n.kind == NoticeKind::GroupGuard)
        .collect();
    assert_eq!(guard_notices.len(), 1, "one notice per group and window");
    assert_eq!(engine.notifier.notices().len(), 1);
    let checks = engine.follow_ups.scheduled();
    assert_eq!(checks.len(), 6, "the storm is looked at again");
    assert!(
        checks
            .iter()
            .all(|(_, due)| *due >= at(300) && *due < at(360))
    );

    // The storm passes (one member left unhealthy): the next check heals it.
    put_in_group(&engine, 10, 1);
    engine
        .follow_ups
        .set_alarm(ALARM_NAME, AlarmState::Alarm, t0());
    let (follow_up, due) = checks[0].clone();
    engine.clock.set(due);
    let healed = handle(&engine, follow_up.to_payload(), "after-storm").await;
    assert_eq!(healed.decision, Verdict::Act, "{healed:#?}");
    assert_eq!(engine.healer.count(), 1);
}

#[tokio::test]
async fn given_three_of_ten_members_unhealthy_when_their_alarms_fire_then_two_heal_at_once_and_the_third_waits_for_a_slot()
 {
    let engine = infrastructure();
    put_in_group(&engine, 10, 3);

    let mut outcomes = Vec::new();
    for i in 0..3 {
        let event = ec2_status_check(&format!("e{i}"), "ALARM", &format!("i-{i:017x}"));
        outcomes.push(handle(&engine, event, &format!("run-{i}")).await);
    }

    let verdicts: Vec<(Verdict, Option<SkipReason>)> =
        outcomes.iter().map(|o| (o.decision, o.reason)).collect();
    assert_eq!(
        verdicts,
        [
            (Verdict::Act, None),
            (Verdict::Act, None),
            (Verdict::Skip, Some(SkipReason::GroupBusy))
        ]
    );
    assert_eq!(engine.healer.count(), 2, "20 % of 10 at once");
    let notices = engine.notifier.notices();
    assert_eq!(
        notices
            .iter()
            .filter(|n| n.kind == NoticeKind::GroupGuard)
            .count(),
        1
    );
    // The third is due when the first slot frees: at the first heal's follow-up.
    let scheduled = engine.follow_ups.scheduled();
    let first_check = scheduled
        .iter()
        .find(|(f, _)| f.resource_id == "i-00000000000000000")
        .map(|(_, due)| *due)
        .expect("i-0 is followed up");
    let (waiting, waiting_due) = scheduled
        .iter()
        .find(|(f, _)| f.resource_id == "i-00000000000000002")
        .cloned()
        .expect("i-2 is followed up");
    assert!(waiting_due >= first_check && waiting_due < first_check + Duration::seconds(60));

    // Before then, a retry of the waiting member still finds no slot.
    engine
        .follow_ups
        .set_alarm(ALARM_NAME, AlarmState::Alarm, t0());
    engine.clock.set(first_check - Duration::seconds(1));
    let early = handle(&engine, waiting.to_payload(), "early").await;
    assert_eq!(early.reason, Some(SkipReason::GroupBusy));
    assert_eq!(engine.healer.count(), 2);

    // Once the first heal's slot is free, the waiting member heals.
    let (waiting, _) = engine
        .follow_ups
        .scheduled()
        .into_iter()
        .rfind(|(f, _)| f.resource_id == "i-00000000000000002")
        .expect("rescheduled");
    engine.clock.set(waiting_due);
    let healed = handle(&engine, waiting.to_payload(), "later").await;
    assert_eq!(healed.decision, Verdict::Act, "{healed:#?}");
    assert_eq!(engine.healer.count(), 3);
}

#[tokio::test]
async fn given_a_long_storm_when_it_passes_then_the_deferrals_left_the_incident_its_checks() {
    let engine = infrastructure();
    put_in_group(&engine, 10, 8);
    engine
        .follow_ups
        .set_alarm(ALARM_NAME, AlarmState::Alarm, t0());
    handle(
        &engine,
        ec2_status_check("e1", "ALARM", "i-00000000000000001"),
        "run-1",
    )
    .await;
    for i in 0..15 {
        let deferred = fire_latest(&engine, &format!("storm-{i}")).await;
        assert_eq!(
            deferred.reason,
            Some(SkipReason::GroupStorm),
            "{deferred:#?}"
        );
    }
    put_in_group(&engine, 10, 1);
    let healed = fire_latest(&engine, "healed").await;
    assert_eq!(healed.decision, Verdict::Act, "{healed:#?}");

    // OK, but not yet for the stable period: the check looks again rather than give up.
    let (payload, due) = engine.follow_ups.latest();
    engine.clock.set(due);
    engine.follow_ups.set_alarm(ALARM_NAME, AlarmState::Ok, due);
    let check = handle(&engine, payload, "check").await;
    assert_eq!(check.decision, Verdict::Recheck, "{check:#?}");
    assert!(!check.escalated);
}

#[tokio::test]
async fn given_one_member_retried_when_it_holds_a_slot_then_its_retry_keeps_it() {
    let engine = infrastructure();
    put_in_group(&engine, 4, 1);
    engine.healer.fail.store(true, Ordering::SeqCst);
    engine
        .follow_ups
        .set_alarm(ALARM_NAME, AlarmState::Alarm, t0());
    handle(
        &engine,
        ec2_status_check("e1", "ALARM", "i-00000000000000001"),
        "run-1",
    )
    .await;

    let retried = fire_latest(&engine, "check-1").await;

    assert_eq!(retried.decision, Verdict::Act, "{retried:#?}");
    assert_eq!(engine.healer.count(), 2);
}

#[tokio::test]
async fn given_a_healed_instance_that_is_gone_when_its_alarm_has_no_data_then_the_incident_resolves()
 {
    let engine = infrastructure();
    engine
        .follow_ups
        .set_alarm(ALARM_NAME, AlarmState::Alarm, t0());
    handle(
        &engine,
        ec2_status_check("e1", "ALARM", "i-00000000000000001"),
        "run-1",
    )
    .await;
    engine
        .follow_ups
        .set_alarm(ALARM_NAME, AlarmState::InsufficientData, at(60));

    // Still there: no data is waited for.
    let (payload, due) = engine.follow_ups.latest();
    engine.clock.set(due);
    let waiting = handle(&engine, payload, "check-1").await;
    assert_eq!(waiting.decision, Verdict::Recheck, "{waiting:#?}");

    // Replaced by its group: nothing is left to heal.
    engine.healer.gone.store(true, Ordering::SeqCst);
    let resolved = fire_latest(&engine, "check-2").await;
    assert_eq!(resolved.decision, Verdict::Resolve, "{resolved:#?}");
    let record = record_of(&resolved);
    assert_eq!(
        record.details.get("resolution").map(String::as_str),
        Some("gone")
    );
    assert_eq!(
        record
            .details
            .get("time_to_recover_seconds")
            .map(String::as_str),
        Some("60")
    );
    assert!(!resolved.escalated);
    assert_eq!(engine.healer.count(), 1);
}

/// The healer weighs the alarm's own actions (an EC2 `recover` action heals the instance
/// itself): they are read from CloudWatch once, before an action that weighs them.
#[tokio::test]
async fn given_an_alarm_with_its_own_recover_action_when_it_fires_then_the_healer_is_told() {
    let engine = infrastructure();
    let recover = "arn:aws:automate:us-east-1:ec2:recover";
    engine
        .follow_ups
        .set_alarm(ALARM_NAME, AlarmState::Alarm, t0());
    engine.follow_ups.set_alarm_actions(ALARM_NAME, &[recover]);

    let first = handle(
        &engine,
        ec2_status_check("e1", "ALARM", "i-00000000000000001"),
        "run-1",
    )
    .await;
    assert_eq!(first.decision, Verdict::Act);
    assert_eq!(
        *engine
            .healer
            .assessed_actions
            .lock()
            .unwrap_or_else(|e| panic!("healer lock: {e}")),
        [vec![recover.to_owned()]]
    );
    assert_eq!(engine.follow_ups.actions_read.load(Ordering::SeqCst), 1);
}

/// An ALARM that arrives while a check holds the resource to resolve its incident can only be
/// skipped, and CloudWatch sends nothing more while the alarm stays on: the check reads the
/// alarm once more after the resolution and decides it, a new incident, then.
#[tokio::test]
async fn given_an_alarm_that_fires_again_as_its_incident_is_resolved_then_it_is_decided_at_once() {
    let engine = infrastructure();
    engine
        .follow_ups
        .set_alarm(ALARM_NAME, AlarmState::Alarm, t0());
    let first = handle(
        &engine,
        ec2_status_check("e1", "ALARM", "i-00000000000000001"),
        "run-1",
    )
    .await;
    assert_eq!(first.decision, Verdict::Act);
    let (payload, due) = engine.follow_ups.latest();
    engine
        .follow_ups
        .set_alarm(ALARM_NAME, AlarmState::Ok, at(60));
    engine.clock.set(due.max(at(60 + 900)));
    // The check reads OK; by its second read, after the resolution, the alarm fires again.
    engine
        .follow_ups
        .change_alarm_after(1, ALARM_NAME, AlarmState::Alarm, engine.clock.now());

    let resolved = handle(&engine, payload, "verify").await;

    assert_eq!(resolved.decision, Verdict::Resolve, "{resolved:#?}");
    assert_eq!(engine.healer.count(), 2, "the new incident's first attempt");
    let incident = engine
        .store
        .state(&ec2_key("i-00000000000000001"))
        .incident
        .expect("an incident");
    assert!(incident.resolved_at.is_none(), "{incident:?}");
    assert_ne!(incident.id, "e1");
    assert_eq!(incident.attempts, 1);
}

/// An event CloudWatch has moved past is stale: an ALARM delivered after its alarm is OK again
/// does not act (a late ALARM for an old release must not roll a fixed one back), and an OK
/// delivered after its alarm fired again does not put back what the heal changed. Nothing is
/// written either way.
#[tokio::test]
async fn given_events_delivered_after_their_alarm_moved_on_when_handled_then_nothing_is_done() {
    let engine = infrastructure();
    engine
        .follow_ups
        .set_alarm(ALARM_NAME, AlarmState::Ok, at(30));
    let late_alarm = handle(
        &engine,
        ec2_status_check("e1", "ALARM", "i-00000000000000001"),
        "run-1",
    )
    .await;
    assert_eq!(late_alarm.decision, Verdict::Ignore, "{late_alarm:#?}");
    assert_eq!(late_alarm.reason, Some(SkipReason::Stale));
    assert!(
        late_alarm
            .detail
            .as_deref()
            .is_some_and(|detail| detail.contains("stale")),
        "{late_alarm:#?}"
    );
    assert_eq!(engine.healer.count(), 0);
    assert_eq!(engine.store.writes(), 0);

    // Healed while it fired; its OK arrives after it fired again.
    engine.healer.reversible.store(true, Ordering::SeqCst);
    engine
        .follow_ups
        .set_alarm(ALARM_NAME, AlarmState::Alarm, at(60));
    engine.clock.set(at(60));
    let acted = handle(
        &engine,
        ec2_status_check("e2", "ALARM", "i-00000000000000001"),
        "run-2",
    )
    .await;
    assert_eq!(acted.decision, Verdict::Act, "{acted:#?}");
    let writes = engine.store.writes();
    engine.clock.set(at(120));
    let late_ok = handle(
        &engine,
        ec2_status_check("e3", "OK", "i-00000000000000001"),
        "run-3",
    )
    .await;
    assert_eq!(late_ok.reason, Some(SkipReason::Stale), "{late_ok:#?}");
    assert!(engine.healer.reverted().is_empty());
    assert_eq!(engine.store.writes(), writes);

    // An alarm without data since says nothing against an OK: its changes are put back.
    engine
        .follow_ups
        .set_alarm(ALARM_NAME, AlarmState::InsufficientData, at(150));
    engine.clock.set(at(180));
    let ok = handle(
        &engine,
        ec2_status_check("e4", "OK", "i-00000000000000001"),
        "run-4",
    )
    .await;
    assert_eq!(ok.decision, Verdict::Revert, "{ok:#?}");
    assert_eq!(engine.healer.reverted().len(), 1);
}

/// Only CloudWatch's own alarm moves autoheal: an event for an alarm CloudWatch does not hold,
/// for one that watches another instance, or with tags the alarm does not carry is refused
/// `not-genuine` after one read of the alarm, and nothing is assessed, done, written,
/// scheduled or notified.
#[tokio::test]
async fn given_events_that_cloudwatch_did_not_send_when_handled_then_nothing_is_done() {
    let engine = infrastructure();
    let assert_refused = |outcome: &Outcome, why: &str| {
        assert_eq!(outcome.decision, Verdict::Ignore, "{outcome:#?}");
        assert_eq!(outcome.reason, Some(SkipReason::NotGenuine), "{outcome:#?}");
        assert!(
            outcome.detail.as_deref().is_some_and(|d| d.contains(why)),
            "{outcome:#?}"
        );
        assert!(outcome.record.is_none(), "{outcome:#?}");
    };

    // No such alarm: a made-up event, straight to the function.
    let made_up = engine
        .handle(
            ec2_status_check("e1", "ALARM", "i-00000000000000001"),
            "run-1",
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_refused(&made_up, "no alarm named");

    // The alarm exists, in ALARM, on another instance.
    engine.follow_ups.define_alarm(
        ALARM_NAME,
        AlarmKind::Metric {
            metric: autoheal_core::MetricRef {
                namespace: "AWS/EC2".to_owned(),
                name: "StatusCheckFailed_System".to_owned(),
                dimensions: [("InstanceId".to_owned(), "i-0000000000000000f".to_owned())].into(),
            },
        },
        Some("GreaterThanOrEqualToThreshold"),
        &[("team", "web")],
    );
    engine
        .follow_ups
        .set_alarm(ALARM_NAME, AlarmState::Alarm, t0());
    let other_instance = engine
        .handle(
            ec2_status_check("e2", "ALARM", "i-00000000000000001"),
            "run-2",
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_refused(&other_instance, "i-0000000000000000f");

    // The right instance, with a tag the alarm does not carry.
    let forged_tag = engine
        .handle(
            with_tags(
                ec2_status_check("e3", "ALARM", "i-0000000000000000f"),
                json!({"team": "web", "autoheal:rule": "ec2-instance-healing"}),
            ),
            "run-3",
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_refused(&forged_tag, "autoheal:rule=ec2-instance-healing");

    assert_eq!(engine.healer.count(), 0);
    assert_eq!(engine.healer.assessed.load(Ordering::SeqCst), 0);
    assert_eq!(engine.store.writes(), 0);
    assert!(engine.follow_ups.scheduled().is_empty());
    assert!(engine.notifier.notices().is_empty());

    // The alarm's own event, with the tags it carries: healed.
    let genuine = engine
        .handle(
            with_tags(
                ec2_status_check("e4", "ALARM", "i-0000000000000000f"),
                json!({"team": "web"}),
            ),
            "run-4",
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(genuine.decision, Verdict::Act, "{genuine:#?}");
    assert_eq!(engine.healer.count(), 1);
}

/// An event that would act needs its alarm in ALARM now: one without data since its event
/// (the instance stopped reporting, or the event is old) does not act.
#[tokio::test]
async fn given_an_alarm_without_data_now_when_its_alarm_event_arrives_then_nothing_is_done() {
    let engine = infrastructure();
    let event = ec2_status_check("e1", "ALARM", "i-00000000000000001");
    engine.follow_ups.fired(&event, t0());
    engine
        .follow_ups
        .set_alarm(ALARM_NAME, AlarmState::InsufficientData, at(30));
    engine.clock.set(at(60));
    let outcome = engine
        .handle(event, "run-1")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(outcome.reason, Some(SkipReason::Stale), "{outcome:#?}");
    assert_eq!(engine.healer.count(), 0);
    assert_eq!(engine.store.writes(), 0);
}

/// A rule states the direction its trigger means (`[rule.alarm]`): `rds-instance-healing`
/// heals a database nobody can connect to (`DatabaseConnections` below its threshold). The
/// usual "too many connections" alarm fires the other way and does not select it: no
/// snapshot and reboot at peak load. The rule's own kind of alarm does.
#[tokio::test]
async fn given_a_too_many_connections_alarm_when_it_fires_then_the_database_is_not_rebooted() {
    let engine = engine_with(Layer::Platform, shipped(), Settings::default());
    let connections = |id: &str| {
        metric_alarm(
            id,
            "orders-db-connections",
            "ALARM",
            "AWS/RDS",
            "DatabaseConnections",
            &[("DBInstanceIdentifier", "orders-db")],
        )
    };
    let watches = AlarmEvent::from_value(connections("e0"))
        .unwrap_or_else(|e| panic!("{e}"))
        .kind;
    engine.follow_ups.define_alarm(
        "orders-db-connections",
        watches.clone(),
        Some("GreaterThanThreshold"),
        &[],
    );
    engine
        .follow_ups
        .set_alarm("orders-db-connections", AlarmState::Alarm, t0());

    let too_many = engine
        .handle(connections("e1"), "run-1")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(too_many.rule.as_deref(), Some("rds-instance-healing"));
    assert_eq!(too_many.decision, Verdict::Ignore, "{too_many:#?}");
    assert_eq!(too_many.reason, Some(SkipReason::OppositeDirection));
    assert!(
        too_many
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("GreaterThanThreshold")),
        "{too_many:#?}"
    );
    assert_eq!(engine.healer.count(), 0);
    assert_eq!(engine.store.writes(), 0);

    engine.follow_ups.define_alarm(
        "orders-db-connections",
        watches,
        Some("LessThanThreshold"),
        &[],
    );
    let unreachable = engine
        .handle(connections("e2"), "run-2")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(unreachable.decision, Verdict::Act, "{unreachable:#?}");
}

// ------------------------------------------------------------------ resumable actions

#[tokio::test]
async fn given_an_action_that_takes_three_steps_when_followed_up_then_each_step_resumes_the_same_attempt()
 {
    let engine = infrastructure();
    engine.healer.steps_left.store(2, Ordering::SeqCst);
    engine
        .follow_ups
        .set_alarm(ALARM_NAME, AlarmState::Alarm, t0());

    let first = handle(
        &engine,
        ec2_status_check("e1", "ALARM", "i-00000000000000001"),
        "run-1",
    )
    .await;

    assert_eq!(first.decision, Verdict::Act);
    let record = record_of(&first);
    assert_eq!(record.status, HealingStatus::InProgress);
    assert_eq!(
        record.details.get("next_step_at").map(String::as_str),
        Some(at(120).to_rfc3339().as_str())
    );
    assert!(
        engine
            .store
            .state(&ec2_key("i-00000000000000001"))
            .incident
            .is_some_and(|i| i.unfinished && i.checks == 2),
        "the next step is the incident's latest check"
    );
    let (_, due) = engine.follow_ups.latest();
    assert_eq!(due, at(120));

    let second = fire_latest(&engine, "step-2").await;
    assert_eq!(record_of(&second).status, HealingStatus::InProgress);
    let last = fire_latest(&engine, "step-3").await;
    assert_eq!(record_of(&last).status, HealingStatus::Completed);

    let token = idempotency_token("ec2-instance-healing", "i-00000000000000001", "e1", 1);
    let calls = engine.healer.calls();
    assert_eq!(calls.len(), 3);
    assert!(
        calls.iter().all(|c| c.attempt == 1 && c.token == token),
        "{calls:?}"
    );
    let state = engine.store.state(&ec2_key("i-00000000000000001"));
    let incident = state.incident.expect("open");
    assert!(!incident.unfinished);
    assert_eq!((incident.attempts, incident.steps), (1, 2));
    // Published: the action's start and its end, not the step in between.
    let statuses: Vec<HealingStatus> = engine
        .notifier
        .notices()
        .iter()
        .map(|n| n.record.status)
        .collect();
    assert_eq!(
        statuses,
        [HealingStatus::InProgress, HealingStatus::Completed]
    );

    // The last step's check verifies the heal: OK for the stable period resolves it.
    let (payload, due) = engine.follow_ups.latest();
    engine
        .follow_ups
        .set_alarm(ALARM_NAME, AlarmState::Ok, at(130));
    engine.clock.set(due.max(at(130 + 900)));
    let resolved = handle(&engine, payload, "verify").await;
    assert_eq!(resolved.decision, Verdict::Resolve, "{resolved:#?}");
    assert_eq!(engine.healer.count(), 3);
}

/// A long action's steps each take a check number; they do not count against the checks an
/// incident may use, so a second long attempt still runs, ends and is verified.
#[tokio::test]
async fn given_long_actions_on_two_attempts_when_followed_up_then_their_steps_do_not_use_up_the_checks()
 {
    let engine = infrastructure();
    engine
        .follow_ups
        .set_alarm(ALARM_NAME, AlarmState::Alarm, t0());
    // Seven steps after the first call, as a 14-minute database snapshot taken every 2 minutes.
    engine.healer.steps_left.store(7, Ordering::SeqCst);
    let first = handle(
        &engine,
        ec2_status_check("e1", "ALARM", "i-00000000000000001"),
        "run-1",
    )
    .await;
    assert_eq!(first.decision, Verdict::Act);
    let mut fired = 0;
    let mut attempt_two = None;
    while attempt_two.is_none() {
        fired += 1;
        assert!(fired < 20, "attempt 2 never ran");
        let outcome = fire_latest(&engine, &format!("check-{fired}")).await;
        assert!(!outcome.escalated, "{outcome:#?}");
        if outcome.record.as_ref().is_some_and(|r| r.attempt == 2) {
            attempt_two = Some(outcome);
        } else if record_of(&outcome).status == HealingStatus::Completed {
            // Attempt 1 ended; the alarm stays on, so its check starts attempt 2, as long.
            engine.healer.steps_left.store(7, Ordering::SeqCst);
        }
    }
    let mut last = attempt_two.expect("attempt 2");
    while record_of(&last).status == HealingStatus::InProgress {
        fired += 1;
        assert!(fired < 40, "attempt 2 never ended");
        last = fire_latest(&engine, &format!("check-{fired}")).await;
        assert!(!last.escalated, "{last:#?}");
    }
    assert_eq!(
        record_of(&last).status,
        HealingStatus::Completed,
        "{last:#?}"
    );
    assert_eq!(engine.healer.count(), 16);
    let incident = engine
        .store
        .state(&ec2_key("i-00000000000000001"))
        .incident
        .expect("open");
    // Each step took two: its own claim's, and the one the step before scheduled it with.
    assert!(incident.step_checks >= 14, "{incident:?}");
    assert!(incident.checks > 3 + autoheal_core::policy::followup::MAX_EXTRA_CHECKS);

    // Its verification still comes: the alarm OK, a check waits for the stable period (a
    // check like any other), and then resolves the incident.
    let (_, due) = engine.follow_ups.latest();
    engine.follow_ups.set_alarm(ALARM_NAME, AlarmState::Ok, due);
    let waiting = fire_latest(&engine, "verify-1").await;
    assert_eq!(waiting.decision, Verdict::Recheck, "{waiting:#?}");
    let resolved = fire_latest(&engine, "verify-2").await;
    assert_eq!(resolved.decision, Verdict::Resolve, "{resolved:#?}");
}

#[tokio::test]
async fn given_a_run_that_died_during_its_action_when_its_check_fires_then_the_same_attempt_resumes()
 {
    let engine = infrastructure();
    engine
        .follow_ups
        .set_alarm(ALARM_NAME, AlarmState::Alarm, t0());
    handle(
        &engine,
        ec2_status_check("e1", "ALARM", "i-00000000000000001"),
        "run-1",
    )
    .await;
    // Make it look as if run-1 died after its claim: its lease never released, its action
    // never reported.
    let key = ec2_key("i-00000000000000001");
    let mut state = engine.store.state(&key);
    state.lease = Some(Lease {
        run_id: "run-1".to_owned(),
        event_id: "e1".to_owned(),
        attempt: 1,
        expires_at: at(900),
    });
    if let Some(incident) = state.incident.as_mut() {
        incident.unfinished = true;
    }
    engine.store.put_state(&key, state);
    let (payload, due) = engine.follow_ups.latest();

    engine.clock.set(due.min(at(899)));
    let waiting = handle(&engine, payload, "too-early").await;
    assert_eq!(waiting.decision, Verdict::Recheck, "the lease still holds");

    let resumed = fire_latest(&engine, "resumed").await;
    assert_eq!(resumed.decision, Verdict::Act, "{resumed:#?}");
    let calls = engine.healer.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1].attempt, 1, "not a new attempt");
    assert_eq!(calls[1].token, calls[0].token);
}

#[tokio::test]
async fn given_an_action_that_never_finishes_when_its_steps_are_spent_then_it_escalates_once() {
    let engine = infrastructure();
    engine.healer.steps_left.store(usize::MAX, Ordering::SeqCst);
    engine
        .follow_ups
        .set_alarm(ALARM_NAME, AlarmState::Alarm, t0());
    handle(
        &engine,
        ec2_status_check("e1", "ALARM", "i-00000000000000001"),
        "run-1",
    )
    .await;
    let mut last = None;
    for step in 0..=autoheal_core::policy::followup::MAX_ACTION_STEPS {
        last = Some(fire_latest(&engine, &format!("step-{step}")).await);
    }
    let last = last.expect("fired");
    assert_eq!(last.reason, Some(SkipReason::Unfinished), "{last:#?}");
    assert!(last.escalated);
    assert_eq!(
        engine.healer.count(),
        1 + usize::try_from(autoheal_core::policy::followup::MAX_ACTION_STEPS).expect("small")
    );
    let escalations = engine
        .notifier
        .notices()
        .iter()
        .filter(|n| n.kind == NoticeKind::Escalation)
        .count();
    assert_eq!(escalations, 1);
}

// ------------------------------------------------------------------ metrics

#[tokio::test]
async fn given_outcomes_when_measured_then_actions_escalations_deferrals_and_recovery_are_counted()
{
    use autoheal_core::report::metrics::document;
    let engine = infrastructure();
    engine.healer.fail.store(true, Ordering::SeqCst);
    engine
        .follow_ups
        .set_alarm(ALARM_NAME, AlarmState::Alarm, t0());

    let first = handle(
        &engine,
        ec2_status_check("e1", "ALARM", "i-00000000000000001"),
        "run-1",
    )
    .await;
    fire_latest(&engine, "check-1").await;
    let last = fire_latest(&engine, "check-2").await;

    let acted = document(&first, t0()).expect("an action is measured");
    assert_eq!(acted["Actions"], 1);
    assert_eq!(acted["Status"], "failed");
    assert_eq!(acted["Layer"], "infrastructure");
    assert_eq!(acted["Rule"], "ec2-instance-healing");
    assert_eq!(
        acted["_aws"]["CloudWatchMetrics"][0]["Namespace"],
        "autoheal"
    );
    assert_eq!(
        acted["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
        json!([["Layer", "Rule", "Status"]])
    );
    assert!(acted.get("Escalations").is_none());
    assert!(last.escalated, "the failed last attempt escalates");
    assert_eq!(document(&last, t0()).expect("measured")["Escalations"], 1);

    // A resolved incident reports its time to recover.
    let healthy = infrastructure();
    handle(
        &healthy,
        ec2_status_check("e1", "ALARM", "i-00000000000000001"),
        "run-1",
    )
    .await;
    healthy
        .follow_ups
        .set_alarm(ALARM_NAME, AlarmState::Ok, at(120));
    fire_latest(&healthy, "check-1").await;
    let resolved = fire_latest(&healthy, "check-2").await;
    let measured = document(&resolved, t0()).expect("measured");
    assert_eq!(measured["TimeToRecover"], 120);
    assert_eq!(
        measured["_aws"]["CloudWatchMetrics"][0]["Metrics"][0],
        json!({"Name": "TimeToRecover", "Unit": "Seconds"})
    );

    // An event no rule selects counts nothing here.
    let unmatched = handle(
        &healthy,
        common::metric_alarm("x", "disk", "ALARM", "Custom/Disk", "Used", &[]),
        "run-x",
    )
    .await;
    assert_eq!(document(&unmatched, t0()), None);
}

// ------------------------------------------------------------------ the resource's own holds

fn assess_as(engine: &TestEngine, assessment: Assessment) {
    *engine
        .healer
        .assessment
        .lock()
        .unwrap_or_else(|e| panic!("healer lock: {e}")) = Some(assessment);
}

/// The shipped rules and a second infrastructure rule on the same instances, selected by its
/// alarm name: two rules, one resource.
fn two_rules_on_one_instance() -> TestEngine {
    let text = format!(
        "{}\n{}",
        autoheal_core::SHIPPED_RULES,
        r#"
[[rule]]
name = "instance-restart-healing"
layer = "infrastructure"
cooldown_seconds = 60
max_attempts = 2
[rule.trigger]
alarm_name_prefixes = ["instance-restart-healing-"]
[rule.resource]
dimension = "InstanceId"
[rule.action]
type = "recover-ec2-instance"
"#
    );
    let rules = RuleSet::from_toml(&text).unwrap_or_else(|e| panic!("rules: {e}"));
    engine_with(Layer::Infrastructure, rules, Settings::default())
}

fn restart_alarm(id: &str, state: &str, instance_id: &str) -> Value {
    metric_alarm(
        id,
        "instance-restart-healing-web-1",
        state,
        "CWAgent",
        "mem_used_percent",
        &[("InstanceId", instance_id)],
    )
}

#[tokio::test]
async fn given_one_rule_healing_an_instance_when_another_rules_alarm_arrives_then_it_waits_for_the_heal_and_acts_after()
 {
    let engine = two_rules_on_one_instance();
    let instance = "i-00000000000000001";
    // The first rule's action takes a step more: it holds the instance between its steps.
    engine.healer.steps_left.store(1, Ordering::SeqCst);
    let first = handle(&engine, ec2_status_check("e1", "ALARM", instance), "run-1").await;
    assert_eq!(first.decision, Verdict::Act, "{first:?}");
    assert_eq!(record_of(&first).status, HealingStatus::InProgress);

    engine.clock.set(at(10));
    let second = handle(&engine, restart_alarm("e2", "ALARM", instance), "run-2").await;

    assert_eq!(second.reason, Some(SkipReason::ResourceBusy), "{second:?}");
    assert_eq!(engine.healer.count(), 1, "the second rule did not act");
    let record = record_of(&second);
    assert_eq!(record.status, HealingStatus::Skipped);
    assert_eq!(record.attempt, 0, "a deferral is no attempt");
    assert!(
        record
            .summary
            .as_deref()
            .unwrap_or_default()
            .contains("ec2-instance-healing"),
        "{record:?}"
    );
    let key = ResourceKey::new("instance-restart-healing", instance);
    let deferred = engine.store.state(&key).incident.expect("an open incident");
    // The deferral's check, and the one its refused attempt scheduled first, passed over.
    assert_eq!(
        (deferred.attempts, deferred.checks, deferred.deferrals),
        (0, 2, 2)
    );
    // A redelivery of the deferred event is a duplicate.
    let again = handle(&engine, restart_alarm("e2", "ALARM", instance), "run-2b").await;
    assert_eq!(again.reason, Some(SkipReason::Duplicate));

    // The first rule's next step ends its action and releases the instance.
    let scheduled = engine.follow_ups.scheduled();
    let (step, step_at) = scheduled
        .iter()
        .find(|(follow_up, _)| follow_up.rule == "ec2-instance-healing" && follow_up.check == 2)
        .cloned()
        .expect("the first rule's next step");
    engine.clock.set(step_at);
    engine
        .follow_ups
        .set_alarm("web-1-status-check", AlarmState::Alarm, at(0));
    let done = handle(&engine, step.to_payload(), "run-3").await;
    assert_eq!(
        record_of(&done).status,
        HealingStatus::Completed,
        "{done:?}"
    );

    // The second rule's check, when its wait is over, decides afresh: still ALARM, it acts.
    let (check, check_at) = engine
        .follow_ups
        .scheduled()
        .into_iter()
        .rfind(|(follow_up, _)| follow_up.rule == "instance-restart-healing")
        .expect("the deferred rule's check");
    engine
        .follow_ups
        .set_alarm("instance-restart-healing-web-1", AlarmState::Alarm, at(10));
    engine.clock.set(check_at.max(step_at));
    let acted = handle(&engine, check.to_payload(), "run-4").await;
    assert_eq!(acted.decision, Verdict::Act, "{acted:?}");
    assert_eq!(record_of(&acted).status, HealingStatus::Completed);
    assert_eq!(engine.healer.count(), 3);
}

#[tokio::test]
async fn given_one_rule_healing_an_instance_when_the_other_rules_alarm_clears_meanwhile_then_its_check_resolves_without_acting()
 {
    let engine = two_rules_on_one_instance();
    let instance = "i-00000000000000001";
    engine.healer.steps_left.store(1, Ordering::SeqCst);
    handle(&engine, ec2_status_check("e1", "ALARM", instance), "run-1").await;
    let second = handle(&engine, restart_alarm("e2", "ALARM", instance), "run-2").await;
    assert_eq!(second.reason, Some(SkipReason::ResourceBusy), "{second:?}");

    let (check, check_at) = engine
        .follow_ups
        .scheduled()
        .into_iter()
        .rfind(|(follow_up, _)| follow_up.rule == "instance-restart-healing")
        .expect("the deferred rule's check");
    // Its alarm went back to OK long enough ago while it waited.
    engine.follow_ups.set_alarm(
        "instance-restart-healing-web-1",
        AlarmState::Ok,
        check_at - Duration::seconds(3600),
    );
    engine.clock.set(check_at);
    let resolved = handle(&engine, check.to_payload(), "run-3").await;

    assert_eq!(resolved.decision, Verdict::Resolve, "{resolved:?}");
    assert_eq!(engine.healer.count(), 1, "only the first rule acted");
}

#[tokio::test]
async fn given_two_rules_alarming_on_one_instance_at_once_when_handled_concurrently_then_exactly_one_acts()
 {
    let engine = two_rules_on_one_instance();
    let instance = "i-00000000000000001";
    engine.healer.steps_left.store(1, Ordering::SeqCst);
    let (a, b) = tokio::join!(
        handle(&engine, ec2_status_check("e1", "ALARM", instance), "run-1"),
        handle(&engine, restart_alarm("e2", "ALARM", instance), "run-2"),
    );

    assert_eq!(engine.healer.count(), 1, "{a:?}\n{b:?}");
    let verdicts = [a.reason, b.reason];
    assert!(
        verdicts.contains(&Some(SkipReason::ResourceBusy)),
        "{a:?}\n{b:?}"
    );
}

#[tokio::test]
async fn given_aws_healing_the_instance_when_its_alarm_fires_then_autoheal_waits_then_acts_once_the_wait_is_over()
 {
    let engine = infrastructure();
    let instance = "i-00000000000000001";
    assess_as(
        &engine,
        Assessment::aws_healing("EC2 automatic recovery is recovering the instance", 300),
    );

    let first = handle(&engine, ec2_status_check("e1", "ALARM", instance), "run-1").await;

    assert_eq!(first.reason, Some(SkipReason::AwsHealing), "{first:?}");
    assert_eq!(engine.healer.count(), 0);
    let record = record_of(&first);
    assert_eq!(record.attempt, 0);
    assert!(
        record
            .summary
            .as_deref()
            .unwrap_or_default()
            .contains("automatic recovery"),
        "{record:?}"
    );
    let incident = engine
        .store
        .state(&ec2_key(instance))
        .incident
        .expect("open");
    assert_eq!(incident.waiting_since, Some(t0()));
    assert_eq!(
        engine.notifier.kinds(),
        vec![(NoticeKind::Waiting, HealingStatus::Skipped)],
        "a person hears once that autoheal waits"
    );

    // Still recovering at each check, until the rule's 1800 s of waiting are over.
    engine
        .follow_ups
        .set_alarm("web-1-status-check", AlarmState::Alarm, t0());
    let mut checks = 0;
    loop {
        let outcome = fire_latest(&engine, &format!("check-{checks}")).await;
        checks += 1;
        if outcome.decision == Verdict::Act {
            let record = record_of(&outcome);
            assert_eq!(record.attempt, 1);
            assert!(record.details.contains_key("waited_for"), "{record:?}");
            assert!(
                engine.clock.now() >= at(1800),
                "not before the wait is over"
            );
            break;
        }
        assert_eq!(outcome.reason, Some(SkipReason::AwsHealing), "{outcome:?}");
        assert!(checks < 10, "waits are bounded");
    }
    assert_eq!(engine.healer.count(), 1);
    assert_eq!(
        engine
            .notifier
            .kinds()
            .iter()
            .filter(|(kind, _)| *kind == NoticeKind::Waiting)
            .count(),
        1,
        "the wait is announced once, not at every check"
    );
}

#[tokio::test]
async fn given_a_person_holding_the_resource_when_the_wait_is_over_then_autoheal_asks_a_person_once_and_never_acts()
 {
    let engine = infrastructure();
    let instance = "i-00000000000000001";
    assess_as(
        &engine,
        Assessment::operator_hold("the instance has stop protection (DisableApiStop)", 600),
    );
    engine
        .follow_ups
        .set_alarm("web-1-status-check", AlarmState::Alarm, t0());

    let first = handle(&engine, ec2_status_check("e1", "ALARM", instance), "run-1").await;
    assert_eq!(first.reason, Some(SkipReason::OperatorHold), "{first:?}");
    let mut last = first;
    for n in 0..5 {
        if engine.follow_ups.scheduled().is_empty() || last.escalated {
            break;
        }
        last = fire_latest(&engine, &format!("check-{n}")).await;
    }

    assert!(last.escalated, "{last:?}");
    assert_eq!(last.reason, Some(SkipReason::OperatorHold));
    assert_eq!(
        engine.healer.count(),
        0,
        "a person's hold is never overridden"
    );
    let escalations = engine
        .notifier
        .kinds()
        .iter()
        .filter(|(kind, _)| *kind == NoticeKind::Escalation)
        .count();
    assert_eq!(escalations, 1);
    // Another ALARM on the same incident asks nobody again.
    engine.clock.set(engine.clock.now() + Duration::seconds(60));
    let again = handle(&engine, ec2_status_check("e9", "ALARM", instance), "run-9").await;
    assert_eq!(engine.healer.count(), 0, "{again:?}");
    assert_eq!(
        engine
            .notifier
            .kinds()
            .iter()
            .filter(|(kind, _)| *kind == NoticeKind::Escalation)
            .count(),
        1
    );
}

#[tokio::test]
async fn given_a_resource_that_is_gone_when_its_alarm_fires_then_it_is_recorded_gone_with_no_budget_and_no_notice()
 {
    let engine = infrastructure();
    let instance = "i-00000000000000001";
    assess_as(
        &engine,
        Assessment::gone("instance i-00000000000000001 does not exist"),
    );

    let outcome = handle(&engine, ec2_status_check("e1", "ALARM", instance), "run-1").await;

    assert_eq!(outcome.reason, Some(SkipReason::Gone), "{outcome:?}");
    assert_eq!(engine.healer.count(), 0);
    let record = record_of(&outcome);
    assert_eq!((record.status, record.attempt), (HealingStatus::Skipped, 0));
    assert_eq!(
        engine.notifier.kinds(),
        vec![(NoticeKind::Healing, HealingStatus::Skipped)],
        "published as a skip, never as a failure"
    );
    let window = Windows::at(t0(), 900).current;
    assert_eq!(engine.store.budget("rule#ec2-instance-healing", window), 0);
    assert_eq!(engine.store.budget("global", window), 0);
    let incident = engine
        .store
        .state(&ec2_key(instance))
        .incident
        .expect("kept");
    assert!(incident.resolved_at.is_some(), "the incident is closed");
    assert!(
        engine.follow_ups.scheduled().is_empty(),
        "nothing to follow up"
    );
    let again = handle(&engine, ec2_status_check("e1", "ALARM", instance), "run-2").await;
    assert_eq!(again.reason, Some(SkipReason::Duplicate));
}

#[tokio::test]
async fn given_a_resource_that_cannot_be_assessed_when_its_alarm_fires_then_nothing_is_done_and_the_error_is_retryable()
 {
    #[derive(Debug)]
    struct Blind;
    impl Healer for Blind {
        fn layer(&self) -> Layer {
            Layer::Infrastructure
        }
        async fn assess(&self, _request: HealRequest<'_>) -> Result<Assessment, HealError> {
            Err(HealError::new("DescribeInstances: throttled"))
        }
        async fn heal(&self, _request: HealRequest<'_>) -> Result<HealOutcome, HealError> {
            panic!("never acts unassessed")
        }
    }
    let engine = Engine {
        layer: Layer::Infrastructure,
        rules: shipped().into(),
        settings: Settings::default(),
        store: MemoryStore::default(),
        notifier: RecordingNotifier::default(),
        healer: Blind,
        clock: TestClock(Mutex::new(t0())),
        follow_ups: ManualLoop::default(),
    };
    let event = ec2_status_check("e1", "ALARM", "i-00000000000000001");
    engine.follow_ups.fired(&event, t0());

    let error = engine.handle(event, "run-1").await.expect_err("an error");

    assert!(error.is_retryable(), "{error}");
    assert!(matches!(error, EngineError::Assessment(_)), "{error}");
    assert_eq!(engine.store.writes(), 0);
}

// ------------------------------------------------------------------ reverts retried, and an ALARM during one

/// The follow-ups scheduled to retry putting changes back, in the order scheduled.
fn revert_retries(engine: &TestEngine) -> Vec<(FollowUp, DateTime<Utc>)> {
    engine
        .follow_ups
        .scheduled()
        .into_iter()
        .filter(|(follow_up, _)| follow_up.event_id().contains("#revert-"))
        .collect()
}

/// An engine whose heal of `i-00000000000000001` at t0 made a change to put back; its alarm
/// is OK from a minute later.
async fn healed_with_a_change() -> TestEngine {
    let engine = reversible();
    engine
        .follow_ups
        .set_alarm(ALARM_NAME, AlarmState::Alarm, t0());
    let acted = handle(
        &engine,
        ec2_status_check("e1", "ALARM", "i-00000000000000001"),
        "run-1",
    )
    .await;
    assert_eq!(acted.decision, Verdict::Act, "{acted:?}");
    engine
        .follow_ups
        .set_alarm(ALARM_NAME, AlarmState::Ok, at(60));
    engine.clock.set(at(60));
    engine
}

/// A revert that fails is tried again by its own follow-up, with a growing wait, until it is
/// done; a retry that finds it done (delivered again, or one more scheduled by the run that
/// put it back) does nothing.
#[tokio::test]
async fn given_a_revert_that_fails_twice_when_its_follow_ups_fire_then_it_succeeds_on_its_own() {
    let engine = healed_with_a_change().await;
    let key = ec2_key("i-00000000000000001");
    engine.healer.revert_fails.store(true, Ordering::SeqCst);

    let ok = handle(
        &engine,
        ec2_status_check("ok1", "OK", "i-00000000000000001"),
        "run-2",
    )
    .await;
    assert_eq!(ok.decision, Verdict::Revert);
    assert_eq!(record_of(&ok).status, HealingStatus::Failed);
    let retries = revert_retries(&engine);
    assert_eq!(
        retries.len(),
        1,
        "the retry, scheduled before the revert's claim"
    );
    let (first, first_at) = retries[0].clone();
    assert!(
        first_at >= at(60 + 900),
        "never before the revert's lease ends: {first_at}"
    );
    assert_eq!(
        record_of(&ok).details.get("revert_retry_at"),
        Some(&first_at.to_rfc3339())
    );
    assert_eq!(
        engine.store.state(&key).reverts.len(),
        1,
        "still to put back"
    );

    // The first retry fails too: the next one waits longer.
    engine.clock.set(first_at);
    let second = handle(&engine, first.to_payload(), "retry-1").await;
    assert_eq!(second.decision, Verdict::Revert, "{second:?}");
    assert_eq!(record_of(&second).status, HealingStatus::Failed);
    let retries = revert_retries(&engine);
    assert_eq!(retries.len(), 2);
    let (next, next_at) = retries[1].clone();
    assert!(next_at > first_at, "{next_at} after {first_at}");

    // The second retry succeeds.
    engine.healer.revert_fails.store(false, Ordering::SeqCst);
    engine.clock.set(next_at);
    let done = handle(&engine, next.to_payload(), "retry-2").await;
    assert_eq!(done.decision, Verdict::Revert, "{done:?}");
    assert_eq!(record_of(&done).status, HealingStatus::Completed);
    assert_eq!(record_of(&done).summary.as_deref(), Some("undid 1"));
    assert_eq!(engine.healer.reverted(), ["1", "1", "1"]);
    assert!(engine.store.state(&key).reverts.is_empty());

    // Nothing is done twice: the first retry delivered again, and the retry the successful run
    // scheduled, find nothing to put back.
    let writes = engine.store.writes();
    let again = handle(&engine, first.to_payload(), "retry-1-again").await;
    assert_eq!(again.reason, Some(SkipReason::Duplicate), "{again:?}");
    let (last, last_at) = revert_retries(&engine).pop().expect("the last retry");
    assert_ne!(last.event_id(), next.event_id());
    engine.clock.set(last_at);
    let noop = handle(&engine, last.to_payload(), "retry-3").await;
    assert_eq!(noop.decision, Verdict::Ignore, "{noop:?}");
    assert_eq!(noop.reason, Some(SkipReason::Duplicate));
    assert_eq!(engine.store.writes(), writes, "nothing is written");
    assert_eq!(engine.healer.reverted().len(), 3);
}

/// A revert that never succeeds is tried a bounded number of times; then a person is asked,
/// once, told what is left and how to put it back by hand. The change stays to put back: a
/// later OK still tries.
#[tokio::test]
async fn given_a_revert_that_always_fails_when_its_tries_are_spent_then_a_person_is_asked_once() {
    let engine = healed_with_a_change().await;
    let key = ec2_key("i-00000000000000001");
    engine.healer.revert_fails.store(true, Ordering::SeqCst);
    handle(
        &engine,
        ec2_status_check("ok1", "OK", "i-00000000000000001"),
        "run-2",
    )
    .await;

    let mut fired = HashSet::new();
    let mut waits = Vec::new();
    while let Some((retry, due)) = revert_retries(&engine)
        .into_iter()
        .find(|(follow_up, _)| !fired.contains(&follow_up.event_id()))
    {
        assert!(fired.len() < 20, "the retries never end");
        fired.insert(retry.event_id());
        waits.push(due - engine.clock.now());
        engine.clock.set(due);
        handle(
            &engine,
            retry.to_payload(),
            &format!("retry-{}", fired.len()),
        )
        .await;
    }

    assert_eq!(
        engine.healer.reverted().len(),
        6,
        "the OK's try and five retries"
    );
    assert!(waits.windows(2).all(|w| w[1] >= w[0]), "{waits:?}");
    let escalations: Vec<Notice> = engine
        .notifier
        .notices()
        .into_iter()
        .filter(|n| n.kind == NoticeKind::Escalation)
        .collect();
    assert_eq!(escalations.len(), 1, "{escalations:?}");
    let notice = &escalations[0];
    assert!(
        notice.subject().contains("could not put back"),
        "{}",
        notice.subject()
    );
    assert_eq!(notice.record.status, HealingStatus::Failed);
    let summary = notice.record.summary.as_deref().unwrap_or_default();
    assert!(
        summary.contains("by hand") && summary.contains("`undo-fake` of attempt 1 (n=1)"),
        "{summary}"
    );
    assert_eq!(
        notice
            .record
            .details
            .get("left_to_put_back")
            .map(String::as_str),
        Some("`undo-fake` of attempt 1 (n=1)")
    );
    let state = engine.store.state(&key);
    assert_eq!(state.reverts.len(), 1, "never lost: still to put back");
    assert_eq!(state.reverts[0].failures, 6);

    // A later OK still tries, and asks no one again.
    engine.healer.revert_fails.store(false, Ordering::SeqCst);
    engine.clock.set(engine.clock.now() + Duration::days(1));
    engine
        .follow_ups
        .set_alarm(ALARM_NAME, AlarmState::Ok, engine.clock.now());
    let later = handle(
        &engine,
        ec2_status_check("ok2", "OK", "i-00000000000000001"),
        "run-later",
    )
    .await;
    assert_eq!(record_of(&later).status, HealingStatus::Completed);
    assert!(engine.store.state(&key).reverts.is_empty());
}

/// A retry that finds the alarm in ALARM again keeps the change (it is needed again) for the
/// next OK, and the ALARM is decided at once: an ALARM that arrived while the failed revert
/// held the resource could only be skipped.
#[tokio::test]
async fn given_a_revert_retry_when_the_alarm_fires_again_then_the_change_stays_and_the_alarm_is_decided()
 {
    let engine = healed_with_a_change().await;
    let key = ec2_key("i-00000000000000001");
    engine.healer.revert_fails.store(true, Ordering::SeqCst);
    handle(
        &engine,
        ec2_status_check("ok1", "OK", "i-00000000000000001"),
        "run-2",
    )
    .await;
    let (retry, due) = revert_retries(&engine).pop().expect("a retry");
    engine.healer.revert_fails.store(false, Ordering::SeqCst);
    engine
        .follow_ups
        .set_alarm(ALARM_NAME, AlarmState::Alarm, due - Duration::seconds(30));
    engine.clock.set(due);

    let outcome = handle(&engine, retry.to_payload(), "retry-1").await;

    assert_eq!(outcome.reason, Some(SkipReason::Stale), "{outcome:?}");
    assert!(
        outcome
            .detail
            .as_deref()
            .is_some_and(|detail| detail.contains("needed again")),
        "{outcome:?}"
    );
    assert_eq!(engine.healer.reverted(), ["1"], "only the OK's try");
    assert_eq!(
        engine.healer.count(),
        2,
        "the ALARM, decided at once, heals"
    );
    let state = engine.store.state(&key);
    let incident = state.incident.clone().expect("an incident");
    assert_eq!(
        (incident.id.as_str(), incident.attempts),
        ("e1#revert-1#alarm-again", 1),
        "the first incident closed while OK held: a new one"
    );
    let kept: Vec<(String, u32)> = state
        .reverts
        .iter()
        .map(|revert| {
            (
                revert.param("n").unwrap_or_default().to_owned(),
                revert.failures,
            )
        })
        .collect();
    assert_eq!(
        kept,
        [("1".to_owned(), 1), ("1".to_owned(), 0)],
        "the change kept for the next OK, and the new incident's first heal's after it"
    );
}

/// An ALARM that arrives while an OK puts changes back finds the resource held and is
/// skipped, and CloudWatch sends nothing more while the alarm stays on: the revert reads the
/// alarm once more when it ends and decides the ALARM then, acting once.
#[tokio::test]
async fn given_an_alarm_during_a_revert_when_the_revert_ends_then_the_alarm_is_healed_once() {
    let engine = reversible();
    let instance = "i-00000000000000001";
    engine
        .follow_ups
        .set_alarm(ALARM_NAME, AlarmState::Alarm, t0());
    handle(&engine, ec2_status_check("e1", "ALARM", instance), "run-1").await;
    engine.clock.set(at(86_400));
    engine
        .follow_ups
        .set_alarm(ALARM_NAME, AlarmState::Ok, at(86_390));
    // The OK reads the alarm OK; by the ALARM's read, it fires again.
    engine
        .follow_ups
        .change_alarm_after(1, ALARM_NAME, AlarmState::Alarm, at(86_400));

    let (ok, alarm) = tokio::join!(
        handle(&engine, ec2_status_check("ok1", "OK", instance), "run-ok"),
        handle(
            &engine,
            ec2_status_check("e2", "ALARM", instance),
            "run-alarm"
        ),
    );

    assert_eq!(ok.decision, Verdict::Revert, "{ok:?}");
    assert_eq!(alarm.reason, Some(SkipReason::InProgress), "{alarm:?}");
    assert_eq!(engine.healer.reverted(), ["1"]);
    assert_eq!(
        engine.healer.count(),
        2,
        "the ALARM is healed after the revert"
    );
    let state = engine.store.state(&ec2_key(instance));
    assert_eq!(state.incident.as_ref().map(|i| i.attempts), Some(2));
    assert_eq!(state.lease, None);

    // Never twice: the ALARM delivered again meets the heal's cooldown.
    let again = handle(
        &engine,
        ec2_status_check("e2", "ALARM", instance),
        "run-again",
    )
    .await;
    assert_eq!(again.reason, Some(SkipReason::Cooldown), "{again:?}");
    assert_eq!(engine.healer.count(), 2);
}

// ------------------------------------------------------------------ accounts and regions

const HOME_ACCOUNT: &str = "123456789012";
const MEMBER_ACCOUNT: &str = "222222222222";

/// A deployment at home in `HOME_ACCOUNT`/us-east-1 that heals `MEMBER_ACCOUNT` too, and
/// eu-west-1 besides its own region.
fn organization() -> Settings {
    Settings {
        reach: Reach {
            home: Some(Place::new(HOME_ACCOUNT, "us-east-1")),
            members: MemberAccounts::Listed(BTreeSet::from([MEMBER_ACCOUNT.to_owned()])),
            regions: BTreeSet::from(["eu-west-1".to_owned()]),
        },
        ..Settings::default()
    }
}

/// `payload` as CloudWatch in `account` and `region` sends it, from its alarm `alarm`.
fn sent_from(mut payload: Value, account: &str, region: &str, alarm: &str) -> Value {
    payload["account"] = json!(account);
    payload["region"] = json!(region);
    payload["detail"]["alarmName"] = json!(alarm);
    payload["resources"] = json!([format!(
        "arn:aws:cloudwatch:{region}:{account}:alarm:{alarm}"
    )]);
    payload
}

/// Handles `payload` as the function does in another account, under `session`.
async fn handle_as(engine: &TestEngine, payload: Value, run_id: &str, session: &str) -> Outcome {
    engine.follow_ups.fired(&payload, engine.clock.now());
    engine
        .handle_acting_as(payload, run_id, Some(session))
        .await
        .unwrap_or_else(|e| panic!("run {run_id}: {e}"))
}

fn member_key(instance: &str) -> ResourceKey {
    ResourceKey {
        place: Some(Place::new(MEMBER_ACCOUNT, "us-east-1")),
        ..ec2_key(instance)
    }
}

#[tokio::test]
async fn given_an_event_from_an_account_or_region_not_served_when_handled_then_nothing_is_read_written_or_done()
 {
    let engine = engine_with(Layer::Infrastructure, shipped(), organization());
    let alarm = ec2_status_check("e1", "ALARM", "i-00000000000000001");

    for (account, region, says) in [
        (
            "333333333333",
            "us-east-1",
            "account 333333333333 is not one this deployment heals",
        ),
        (
            MEMBER_ACCOUNT,
            "ap-south-1",
            "region ap-south-1 is not one this deployment heals",
        ),
    ] {
        let event = sent_from(alarm.clone(), account, region, "web-1-status-check");
        let outcome = engine
            .handle(event.clone(), "run-1")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(outcome.reason, Some(SkipReason::OutOfReach), "{outcome:?}");
        assert!(
            outcome
                .detail
                .as_deref()
                .is_some_and(|d| d.starts_with(says)),
            "{outcome:?}"
        );
        assert_eq!(outcome.record, None);
        let explained = explain(event, organization());
        assert_eq!(explained.reason, Some(SkipReason::OutOfReach));
    }
    assert_eq!((engine.store.reads(), engine.store.writes()), (0, 0));
    assert_eq!(engine.healer.count(), 0);
    assert!(engine.notifier.notices().is_empty());
    assert!(engine.follow_ups.scheduled().is_empty());
    assert_eq!(
        engine.follow_ups.actions_read.load(Ordering::SeqCst),
        0,
        "CloudWatch is not asked"
    );
}

#[tokio::test]
async fn given_one_instance_id_in_two_accounts_when_both_alarm_then_each_is_healed_as_its_own_resource()
 {
    let engine = engine_with(Layer::Infrastructure, shipped(), organization());
    let instance = "i-00000000000000001";
    let alarm = ec2_status_check("e1", "ALARM", instance);

    let home = handle(
        &engine,
        sent_from(alarm.clone(), HOME_ACCOUNT, "us-east-1", "home-web-1"),
        "run-1",
    )
    .await;
    let mut member_alarm = sent_from(alarm, MEMBER_ACCOUNT, "us-east-1", "member-web-1");
    member_alarm["id"] = json!("e2");
    let member = handle_as(&engine, member_alarm, "run-2", "autoheal-run-2").await;

    assert_eq!(
        (home.decision, member.decision),
        (Verdict::Act, Verdict::Act)
    );
    assert_eq!(engine.healer.count(), 2);
    let incident = |key: &ResourceKey| engine.store.state(key).incident.map(|i| i.id);
    assert_eq!(incident(&ec2_key(instance)).as_deref(), Some("e1"));
    assert_eq!(incident(&member_key(instance)).as_deref(), Some("e2"));
    let (home, member) = (record_of(&home), record_of(&member));
    assert_eq!(
        (home.account.as_deref(), home.role_session.as_deref()),
        (Some(HOME_ACCOUNT), None)
    );
    assert_eq!(
        (
            member.account.as_deref(),
            member.region.as_deref(),
            member.role_session.as_deref()
        ),
        (
            Some(MEMBER_ACCOUNT),
            Some("us-east-1"),
            Some("autoheal-run-2")
        )
    );
    assert_eq!(&engine.store.record("run-2"), member);
    let notices = engine.notifier.notices();
    let accounts: Vec<String> = notices
        .iter()
        .map(|notice| notice.attributes()["account"].clone())
        .collect();
    assert_eq!(
        accounts,
        [HOME_ACCOUNT, MEMBER_ACCOUNT],
        "routable per account"
    );
}

#[tokio::test]
async fn given_an_accounts_budget_spent_when_more_of_it_alarms_then_only_that_account_waits() {
    let engine = engine_with(
        Layer::Infrastructure,
        shipped(),
        Settings {
            account_budget: Some(Limit {
                limit: 1,
                window_seconds: 900,
            }),
            ..organization()
        },
    );
    let member = |id: &str, instance: &str| {
        let mut event = sent_from(
            ec2_status_check(id, "ALARM", instance),
            MEMBER_ACCOUNT,
            "us-east-1",
            &format!("member-{instance}"),
        );
        event["id"] = json!(id);
        event
    };

    let first = handle_as(&engine, member("e1", "i-00000000000000001"), "run-1", "s1").await;
    let second = handle_as(&engine, member("e2", "i-00000000000000002"), "run-2", "s2").await;
    let home = handle(
        &engine,
        sent_from(
            ec2_status_check("e3", "ALARM", "i-00000000000000003"),
            HOME_ACCOUNT,
            "us-east-1",
            "home-i-3",
        ),
        "run-3",
    )
    .await;

    assert_eq!(first.decision, Verdict::Act);
    assert_eq!(second.reason, Some(SkipReason::Budget), "{second:?}");
    assert!(
        second
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("account 222222222222")),
        "{second:?}"
    );
    assert_eq!(
        home.decision,
        Verdict::Act,
        "another account's budget is its own"
    );
    let window = Windows::at(t0(), 900).current;
    assert_eq!(engine.store.budget("account#222222222222", window), 1);
    assert_eq!(engine.store.budget("account#123456789012", window), 1);
}

#[tokio::test]
async fn given_an_incident_in_a_member_account_when_its_follow_up_fires_then_it_resolves_there_only()
 {
    let engine = engine_with(Layer::Infrastructure, shipped(), organization());
    let instance = "i-00000000000000001";
    handle(
        &engine,
        sent_from(
            ec2_status_check("e1", "ALARM", instance),
            HOME_ACCOUNT,
            "us-east-1",
            "home-web-1",
        ),
        "run-1",
    )
    .await;
    let mut member_alarm = sent_from(
        ec2_status_check("e2", "ALARM", instance),
        MEMBER_ACCOUNT,
        "us-east-1",
        "member-web-1",
    );
    member_alarm["id"] = json!("e2");
    handle_as(&engine, member_alarm, "run-2", "s2").await;
    engine
        .follow_ups
        .set_alarm("member-web-1", AlarmState::Ok, at(60));

    let (payload, due) = engine.follow_ups.latest();
    assert_eq!(
        organization().reach.route(&payload),
        Some(Place::new(MEMBER_ACCOUNT, "us-east-1")),
        "the follow-up goes to the member's clients"
    );
    engine.clock.set(due);
    let stabilizing = handle(&engine, payload, "check-1").await;
    let resolved = fire_latest(&engine, "check-2").await;

    assert_eq!(stabilizing.decision, Verdict::Recheck, "{stabilizing:?}");
    assert_eq!(resolved.decision, Verdict::Resolve, "{resolved:?}");
    let resolved_at = |key: &ResourceKey| {
        engine
            .store
            .state(key)
            .incident
            .and_then(|incident| incident.resolved_at)
    };
    assert!(resolved_at(&member_key(instance)).is_some());
    assert_eq!(resolved_at(&ec2_key(instance)), None, "home's stays open");
}
