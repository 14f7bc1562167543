//! The time, injected.

use chrono::{DateTime, Utc};

/// The time, injected so that tests can move it.
pub trait Clock {
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}
