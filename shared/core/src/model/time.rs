//! Time arithmetic that saturates: a huge number of seconds in a rules file means "never",
//! not a panic.

use chrono::{DateTime, Duration, Utc};

/// `value` seconds, saturating at the longest `Duration` (`Duration::seconds` panics past it).
pub(crate) fn seconds(value: u64) -> Duration {
    i64::try_from(value)
        .ok()
        .and_then(Duration::try_seconds)
        .unwrap_or(Duration::MAX)
}

/// `value` seconds after `at`, saturating at the latest representable instant: a huge
/// cooldown or lease in the rules file means "never", not a panic.
pub(crate) fn after(at: DateTime<Utc>, value: u64) -> DateTime<Utc> {
    at.checked_add_signed(seconds(value))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}
