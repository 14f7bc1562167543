//! Where people hear about healing.

use std::future::Future;

use crate::report::notice::Notice;

/// A failure to publish a notification.
#[derive(Debug, thiserror::Error)]
#[error("notifier: {message}")]
pub struct NotifyError {
    pub message: String,
}

/// Where people hear about healing.
pub trait Notifier {
    fn notify(&self, notice: &Notice) -> impl Future<Output = Result<(), NotifyError>> + Send;
}
