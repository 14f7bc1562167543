//! The network layer.
//!
//! This build implements none of the network actions yet. The engine skips a matching network rule
//! with reason `unsupported-action` before any claim or AWS call, so nothing is written or
//! changed, and the outcome and log line say why.

use autoheal_core::{Action, HealError, HealOutcome, HealRequest, Healer};

/// Runs the network layer's actions.
#[derive(Debug, Clone, Default)]
pub struct NetworkHealer;

impl NetworkHealer {
    /// Builds the layer's clients from one SDK configuration (once per container).
    pub fn new(_sdk: &aws_config::SdkConfig) -> Self {
        NetworkHealer
    }
}

impl Healer for NetworkHealer {
    fn supports(&self, _action: &Action) -> bool {
        false
    }

    async fn heal(&self, request: HealRequest<'_>) -> Result<HealOutcome, HealError> {
        Err(HealError::new(format!(
            "the network function does not implement `{}`",
            request.rule.action.kind()
        )))
    }
}
