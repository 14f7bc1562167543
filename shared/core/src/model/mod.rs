//! The model: what every floor above speaks. A CloudWatch alarm's configuration, the alarm event, the layers, the rules, resource
//! ids, where they live (accounts and regions), the record of a run and why it did not act, a resource's incident state, the limits
//! of the safety governor and a limit that tripped, and the changes to put back. Nothing here
//! decides, reads a clock or does I/O; nothing here imports from a floor above.

pub mod alarm;
pub mod event;
pub mod layer;
pub mod limits;
pub mod place;
pub mod record;
pub mod resource_id;
pub mod revert;
pub mod rules;
pub mod state;
pub(crate) mod time;
pub mod trip;
