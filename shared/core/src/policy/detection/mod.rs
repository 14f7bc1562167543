//! Detection: which resources each rule protects, the alarm each needs, what protects them
//! now, and what must change. Pure: the detection adapters list the resources and alarms and
//! write the changes.
//!
//! - `target`: the scope (`tagged`, `all`, `off`) and the resources in it, per rule;
//! - `desired`: the alarm a rule needs on one resource;
//! - `event`: an alarm as its state-change event carries it, for selection;
//! - `coverage`: whether an alarm selects each rule for each resource, by the selection
//!   `explain` uses;
//! - `plan`: what to create, update and delete so that every resource has its alarm.

pub mod coverage;
pub mod desired;
pub mod event;
pub mod plan;
pub mod target;
