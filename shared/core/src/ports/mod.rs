//! The ports of the engine: the small traits it is generic over, the types that cross them,
//! and their errors. Adapters implement them: the AWS ones in `shared/aws` and the layer
//! functions, in-memory ones in tests. A port mentions the model, the policies and the reports
//! below it, never the engine.
//!
//! - [`store`]: incident state, claims, budgets, group slots and records;
//! - [`healer`]: a layer's actions;
//! - [`follow_ups`]: scheduling a follow-up and reading an alarm back;
//! - [`notifier`]: where people hear about healing;
//! - [`clock`]: the time, injected.

pub mod clock;
pub mod follow_ups;
pub mod healer;
pub mod notifier;
pub mod store;

pub use clock::{Clock, SystemClock};
pub use follow_ups::{AlarmNow, FollowUpError, FollowUps};
pub use healer::{Assessment, HealError, HealOutcome, HealRequest, Healer, Wait, WaitReason};
pub use notifier::{Notifier, NotifyError};
pub use store::{
    ActionEnd, ClaimRequest, ClaimResult, Loaded, ResourceKey, ResourceLock, StateStore, StoreError,
};
