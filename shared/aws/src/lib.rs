//! AWS adapters shared by every layer: the DynamoDB state store, the SNS notifier, the
//! configuration and SDK set-up, bootstrap of local resources, and the Lambda wiring.

pub mod bootstrap;
pub mod config;
pub mod errors;
pub mod function;
pub mod notify;
pub mod state;
pub mod tags;

pub use config::{ConfigError, FunctionConfig, sdk_config};
pub use function::{HandlerError, LayerEngine, build_engine, run};
pub use notify::SnsNotifier;
pub use state::DynamoStateStore;
