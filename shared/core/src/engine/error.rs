//! Why an event could not be handled at all.

use crate::model::event::EventError;
use crate::ports::{FollowUpError, StoreError};

/// Why an event could not be handled at all. Nothing was acted on.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("invalid event: {0}")]
    InvalidEvent(#[from] EventError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    FollowUp(#[from] FollowUpError),
    /// The group of the resource could not be read: without it the group guard cannot tell
    /// whether acting is safe, so nothing was done.
    #[error("group guard: {0}")]
    Group(String),
    /// The resource could not be looked at before the claim: without that look autoheal
    /// cannot tell whether AWS or a person is already on it, so nothing was done.
    #[error("assessment: {0}")]
    Assessment(String),
    /// An operator's request that cannot be carried out as asked; nothing was changed.
    #[error("{0}")]
    Refused(String),
}

impl EngineError {
    /// Whether delivering the same event again could succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            EngineError::Store(_)
                | EngineError::FollowUp(_)
                | EngineError::Group(_)
                | EngineError::Assessment(_)
        )
    }
}
