//! Error messages people can read: the service's own code and message, not the HTTP dump.

use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use autoheal_core::HealError;

/// `"<operation>: <code>: <message>"` for a service error; the full error chain otherwise
/// (timeouts, connection failures), where the detail is what helps.
pub fn describe<E>(operation: &str, error: &E) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match (error.code(), error.message()) {
        (Some(code), Some(message)) => format!("{operation}: {code}: {message}"),
        (Some(code), None) => format!("{operation}: {code}"),
        _ => format!("{operation}: {}", DisplayErrorContext(error)),
    }
}

/// A failed AWS call as the failure of the heal that made it: the operation, and the
/// service's own code and message.
pub fn api_error<E>(operation: &str, error: E) -> HealError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    HealError::new(describe(operation, &error))
}
