//! The data layer.
//!
//! This build implements none of the data actions yet. The engine skips a matching data rule
//! with reason `unsupported-action` before any claim or AWS call, so nothing is written or
//! changed, and the outcome and log line say why.

use autoheal_core::{Action, HealError, HealOutcome, HealRequest, Healer};

/// Runs the data layer's actions.
#[derive(Debug, Clone, Default)]
pub struct DataHealer;

impl DataHealer {
    /// Builds the layer's clients from one SDK configuration (once per container).
    pub fn new(_sdk: &aws_config::SdkConfig) -> Self {
        DataHealer
    }
}

impl Healer for DataHealer {
    fn supports(&self, _action: &Action) -> bool {
        false
    }

    async fn heal(&self, request: HealRequest<'_>) -> Result<HealOutcome, HealError> {
        Err(HealError::new(format!(
            "the data function does not implement `{}`",
            request.rule.action.kind()
        )))
    }
}
