//! The DynamoDB state store: one table, every state change a conditional write.
//!
//! | item            | pk                              | sk                          | expires |
//! |-----------------|---------------------------------|-----------------------------|---------|
//! | resource state  | `RESOURCE#<rule>#<resource id>` | `STATE`                     | 90 days after its last change; never while it holds changes to put back |
//! | event claim     | `RESOURCE#<rule>#<resource id>` | `EVENT#<event id>`          | 7 days  |
//! | healing record  | `RUNS#<yyyy-mm-dd>`             | `<started at>#<run id>`     | 90 days |
//! | budget window   | `BUDGET#<scope>`                | `WINDOW#<start, epoch s>`   | 2 windows and a day after its start |
//! | group slot      | `GROUP#<group id>`              | `SLOT#<index>`              | a day after it frees |
//! | resource lease  | `LEASE#<kind>#<resource id>`    | `LEASE`                     | a day after it ends |
//!
//! A resource in another account or region than the deployment's own has its place after its
//! id (`<resource id>@<account>/<region>`, in the state, claim, lease and group keys): the
//! same id there is another resource. Budgets gain `account#<id>` scopes.
//!
//! Claims and state share a partition so that one transaction covers both. The resource lease
//! is one per resource whatever rule heals it (one heal per resource at a time): the claim
//! takes it in its transaction, the run's final write releases it. Records are
//! partitioned by day so history and statistics are a `Query` per day, never a `Scan`.
//! `expires_at` is the table's TTL attribute (epoch seconds); DynamoDB deletes expired items
//! lazily, so readers never rely on it.

mod claim;
mod items;
mod port;
mod reads;
mod store;

pub use items::{PARTITION_KEY, SORT_KEY, TTL_ATTRIBUTE};
pub use store::DynamoStateStore;
