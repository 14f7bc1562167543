//! What a run leaves behind, and what is read back from it: the outcome of one event
//! (`outcome`), the notification (`notice`), the metric document (`metrics`), and, from the
//! records, incidents as timelines (`history`) and statistics (`stats`). Only formatting and
//! counting over the model; the ports carry the notice, the engine writes the rest.

pub mod history;
pub mod metrics;
pub mod notice;
pub mod outcome;
pub mod stats;
