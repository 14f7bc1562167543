//! The application layer.
//!
//! This build implements none of the application actions yet. The engine skips a matching application rule
//! with reason `unsupported-action` before any claim or AWS call, so nothing is written or
//! changed, and the outcome and log line say why.

use autoheal_core::{Action, HealError, HealOutcome, HealRequest, Healer};

/// Runs the application layer's actions.
#[derive(Debug, Clone, Default)]
pub struct ApplicationHealer;

impl ApplicationHealer {
    /// Builds the layer's clients from one SDK configuration (once per container).
    pub fn new(_sdk: &aws_config::SdkConfig) -> Self {
        ApplicationHealer
    }
}

impl Healer for ApplicationHealer {
    fn supports(&self, _action: &Action) -> bool {
        false
    }

    async fn heal(&self, request: HealRequest<'_>) -> Result<HealOutcome, HealError> {
        Err(HealError::new(format!(
            "the application function does not implement `{}`",
            request.rule.action.kind()
        )))
    }
}
