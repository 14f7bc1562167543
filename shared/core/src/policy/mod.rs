//! The policies: pure functions over the model that decide. Where an event is healed, if
//! anywhere (`reach`), which rule an alarm selects and which resource it heals (`resolve`),
//! act or skip (`decision`), the budgets and the group guard of the safety governor
//! (`budget`, `group`), what becomes of a run that may not act now (`deferral`), whether an
//! event is CloudWatch's own and means what its rule heals (`genuine`), what a follow-up
//! decides (`followup`), how a failed revert is retried (`revert`), which of autoheal's
//! snapshots go (`retention`), and which alarms detection needs (`detection`: the resources
//! each rule protects, their alarms, coverage, the plan). Each takes `now` and the facts in
//! and returns what to do; none reads a clock or does I/O (`retention::apply` only drives its
//! own narrow port). A policy imports the model and the policies below it: `resolve` and
//! `decision` import only the model, `budget`, `deferral` and `followup` also `decision`,
//! `followup` and `detection` also `resolve`, `detection` also `genuine`, and `revert` and
//! `reach` also `followup`.
pub mod budget;
pub mod decision;
pub mod deferral;
pub mod detection;
pub mod followup;
pub mod genuine;
pub mod group;
pub mod reach;
pub mod resolve;
pub mod retention;
pub mod revert;
