//! AWS adapters shared by every layer: the DynamoDB state store, the SNS notifier, the
//! configuration and SDK set-up, bootstrap of local resources, the Lambda wiring, and the
//! snapshot adapters of the actions that take snapshots.

pub mod bootstrap;
pub mod config;
pub mod errors;
pub mod function;
pub mod notify;
pub mod snapshots;
pub mod state;
pub mod tags;

pub use config::{ConfigError, FunctionConfig, sdk_config};
pub use function::{HandlerError, LayerEngine, build_engine, build_engine_with_clock, run};
pub use notify::SnsNotifier;
pub use state::DynamoStateStore;
