//! What can stop a detection run. A listing that fails stops the run before any change, so
//! that a resource that could not be listed is never taken for gone.

use aws_smithy_types::error::display::DisplayErrorContext;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DetectionError {
    /// A listing failed: nothing was changed.
    #[error("could not list {what}: {message}")]
    Listing { what: &'static str, message: String },
    /// A change failed after its retries; the changes before it were made, the ones after
    /// it were not (the next run makes them).
    #[error("could not {change} alarm `{alarm}` ({done} of {planned} changes made): {message}")]
    Writing {
        change: &'static str,
        alarm: String,
        done: usize,
        planned: usize,
        message: String,
    },
    #[error("{0}")]
    Config(String),
}

/// The SDK error's full context (its `Display` says only "service error").
pub(crate) fn describe(error: &impl std::error::Error) -> String {
    DisplayErrorContext(error).to_string()
}
