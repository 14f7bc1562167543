//! autoheal's core: everything between an alarm event and a healing decision, with no AWS SDK
//! and no I/O of its own.
//!
//! # Floors
//!
//! The modules stand on floors, and a module imports only from its own floor or the floors
//! below it: no import runs up, and no two modules import each other, even round a circle.
//! The table of floors is [`floors::FLOORS`]; the test `tests/floors.rs` reads every import
//! of this crate and holds the line. From the bottom:
//!
//! 1. [`model`]: what everything speaks: the alarm event, the layers, the rules, resource
//!    ids and where they live, the record of a run and its skip reasons, a resource's incident state, the limits
//!    of the safety governor and a limit that tripped, the changes to put back;
//! 2. [`policy`]: the pure decisions over the model: selection, act or skip, the budgets, the
//!    group guard, what a follow-up decides, snapshot retention;
//! 3. [`report`]: what a run leaves behind and what is read back: the outcome of an event,
//!    the notification, the metric document, incidents as timelines, statistics;
//! 4. [`ports`]: the traits the engine is generic over (state store, healer, follow-ups,
//!    notifier, clock), the types that cross them and their errors;
//! 5. [`engine`]: the path of one event through those ports, one file per step.
//!
//! The types other crates use are also exported here, at the root.

pub mod engine;
pub mod floors;
pub mod model;
pub mod policy;
pub mod ports;
pub mod report;

pub use engine::{
    DEFAULT_GLOBAL_BUDGET, DEFAULT_LAYER_BUDGET, Engine, EngineError, Settings, explain,
};
pub use model::event::{AlarmEvent, AlarmKind, AlarmState, EventError, MetricRef};
pub use model::layer::Layer;
pub use model::limits::{Allowance, BudgetScope, GroupGuard, Limit};
pub use model::place::{MemberAccounts, Place, Reach};
pub use model::record::{HealingRecord, HealingStatus, RunPhase, SkipReason};
pub use model::resource_id::ResourceKind;
pub use model::revert::{MAX_REVERT_TRIES, Revert};
pub use model::rules::{
    Action, ECS_MAX_TASKS_PER_SERVICE, FUNCTION_TIMEOUT_SECONDS, Mode, Policy, Retention, Rule,
    RuleSet, RulesError, SHIPPED_RULES, backup_window_minutes,
};
pub use model::state::{Incident, Lease, ResourceState};
pub use model::trip::{TripKind, Tripped};
pub use policy::budget::{Budget, Spend, Usage};
pub use policy::decision::{Decision, Pending, idempotency_token};
pub use policy::followup::{AlarmReading, FollowUp, FollowUpKind};
pub use policy::genuine::AlarmDefinition;
pub use policy::group::GroupView;
pub use policy::reach::{OutOfReach, Reached};
pub use ports::{
    ActionEnd, AlarmNow, Assessment, ClaimRequest, ClaimResult, Clock, FollowUpError, FollowUps,
    HealError, HealOutcome, HealRequest, Healer, Loaded, Notifier, NotifyError, ResourceKey,
    ResourceLock, StateStore, StoreError, SystemClock, Wait, WaitReason,
};
pub use report::notice::{Notice, NoticeKind};
pub use report::outcome::{Outcome, Verdict};
pub use report::stats::Statistics;
