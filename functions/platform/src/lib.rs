//! The platform layer.
//!
//! This build implements none of the platform actions yet. The engine skips a matching platform rule
//! with reason `unsupported-action` before any claim or AWS call, so nothing is written or
//! changed, and the outcome and log line say why.

use autoheal_core::{Action, HealError, HealOutcome, HealRequest, Healer};

/// Runs the platform layer's actions.
#[derive(Debug, Clone, Default)]
pub struct PlatformHealer;

impl PlatformHealer {
    /// Builds the layer's clients from one SDK configuration (once per container).
    pub fn new(_sdk: &aws_config::SdkConfig) -> Self {
        PlatformHealer
    }
}

impl Healer for PlatformHealer {
    fn supports(&self, _action: &Action) -> bool {
        false
    }

    async fn heal(&self, request: HealRequest<'_>) -> Result<HealOutcome, HealError> {
        Err(HealError::new(format!(
            "the platform function does not implement `{}`",
            request.rule.action.kind()
        )))
    }
}
