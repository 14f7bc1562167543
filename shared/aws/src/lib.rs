//! AWS adapters shared by every layer: the DynamoDB state store, the SNS notifier, the
//! follow-ups (EventBridge Scheduler and CloudWatch alarms), the
//! configuration and SDK set-up, bootstrap of local resources, the Lambda wiring, and the
//! snapshot adapters of the actions that take snapshots, the lookups several layers make, the
//! healers' parts built on first use, and the access to an organization's member accounts.

pub mod bootstrap;
pub mod config;
pub mod dispatch;
pub mod errors;
pub mod followups;
pub mod function;
pub mod logging;
pub mod lookups;
pub mod members;
pub mod notify;
pub mod on_first_use;
pub mod rds_status;
pub mod snapshots;
pub mod state;
pub mod tags;

pub use config::{ConfigError, FollowUpTarget, FunctionConfig, sdk_config};
pub use dispatch::{Dispatcher, PlaceEngine};
pub use followups::AwsFollowUps;
pub use function::{
    HandlerError, LayerEngine, build_engine, build_engine_in, build_engine_with_clock, run,
};
pub use notify::SnsNotifier;
pub use on_first_use::OnFirstUse;
pub use state::DynamoStateStore;
