//! autoheal's core: everything between an alarm event and a healing decision, with no AWS SDK
//! and no I/O of its own.
//!
//! - [`event`]: tolerant parsing of EventBridge "CloudWatch Alarm State Change" events;
//! - [`rules`]: the declarative rules file and its validation;
//! - [`resolve`]: which rule an event selects and which resource it heals;
//! - [`resource_id`]: resource ids checked against their service's id format;
//! - [`decision`]: the pure act/skip decision over a resource's incident state;
//! - [`budget`]: the safety governor's budgets (actions per rolling window);
//! - [`group`]: the safety governor's group guard (how much of a group heals at once);
//! - [`revert`]: changes a heal made that are put back when the incident resolves;
//! - [`followup`]: the closed loop: every attempt's scheduled check, and what it decides;
//! - [`ports`]: the traits the engine is generic over (store, notifier, healer, follow-ups,
//!   clock);
//! - [`engine`]: the path of one event through those ports;
//! - [`record`], [`notice`], [`stats`], [`history`], [`metrics`]: what is recorded,
//!   published, read back and measured;
//! - [`retention`]: which of autoheal's own snapshots go once it has taken a new one.

pub mod budget;
pub mod decision;
pub mod engine;
pub mod event;
pub mod followup;
pub mod group;
pub mod history;
pub mod layer;
pub mod metrics;
pub mod notice;
pub mod ports;
pub mod record;
pub mod resolve;
pub mod resource_id;
pub mod retention;
pub mod revert;
pub mod rules;
pub mod stats;

pub use budget::{Budget, BudgetScope, Limit, Spend, TripKind, Tripped, Usage};
pub use decision::{Decision, Incident, Lease, ResourceState};
pub use engine::{Engine, EngineError, Outcome, Settings, Verdict};
pub use event::{AlarmEvent, AlarmKind, AlarmState, EventError};
pub use followup::{AlarmReading, FollowUp, Pending};
pub use group::{Allowance, GroupGuard, GroupView};
pub use layer::Layer;
pub use notice::{Notice, NoticeKind};
pub use ports::{
    ActionEnd, Assessment, ClaimRequest, ClaimResult, Clock, FollowUpError, FollowUps, HealError,
    HealOutcome, HealRequest, Healer, Loaded, Notifier, NotifyError, ResourceKey, StateStore,
    StoreError, SystemClock, Wait, WaitReason,
};
pub use record::{HealingRecord, HealingStatus, RunPhase, SkipReason};
pub use resource_id::ResourceKind;
pub use revert::Revert;
pub use rules::{
    Action, ECS_MAX_TASKS_PER_SERVICE, Mode, Policy, Rule, RuleSet, RulesError,
    backup_window_minutes,
};
pub use stats::Statistics;
