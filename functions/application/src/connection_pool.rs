//! `reset-connection-pool`: reset an exhausted connection pool, grow it within what its
//! database can take, and put the growth back when the incident resolves.
//!
//! The application reads its pool settings from a Parameter Store parameter holding JSON
//! `{"max_connections": N, "timeout_seconds": T, "generation": G, "database": D, ...}`.
//! autoheal grows `max_connections` by the rule's `grow_by`, sets `timeout_seconds` to the
//! rule's value and increments `generation`; the application drops and re-opens its
//! connections when it sees the generation change.
//!
//! The growth is a stopgap, bounded and undone:
//! - the pool never grows past the rule's `max_connections_limit`;
//! - the connections autoheal has added, and not yet put back, to the pools of one database
//!   (the pools whose `database` field names it; a pool without one is its own database)
//!   never exceed [`MAX_GROWTH_PER_DATABASE`]: when every pool of a database is exhausted
//!   at once, the database is the bottleneck, and more connections would only load it more;
//! - what autoheal added is recorded in the document itself (`autoheal_growth`: the incident,
//!   the connections added, the size and timeout before, the version autoheal wrote), so that
//!   a later attempt grows from the same baseline and a person reading the parameter sees it;
//! - when the incident resolves, the size and timeout from before the incident come back,
//!   only if the parameter is still at the version autoheal wrote: a pool a person resized
//!   meanwhile stays as they set it (and their growth is no longer counted as autoheal's).
//!
//! Every write is checked against the version read; a person's change in between stays and
//! the run is `unsafe`. A pool a person holds (`hold`) is left to them.

use std::collections::BTreeMap;

use aws_sdk_ssm::Client as SsmClient;
use serde_json::{Map, Value};

use autoheal_core::{HealError, HealOutcome, HealRequest, Revert, SkipReason};

use crate::parameter::{self, Document, Parameters, Written};

/// The revert that puts a pool back to its size before the incident.
pub const RESTORE_CONNECTION_POOL: &str = "restore-connection-pool";

/// The most connections autoheal holds added, at once, to the pools of one database. The
/// rule does not set it yet; with the shipped `grow_by` of 10 it is one pool's four attempts.
pub const MAX_GROWTH_PER_DATABASE: u32 = 40;

/// The field that records which attempt made the last change, so that a retried attempt
/// (same idempotency token) does not grow the pool a second time.
const TOKEN_FIELD: &str = "change_token";

/// The field that records autoheal's growth of the pool while it stands.
pub const GROWTH_FIELD: &str = "autoheal_growth";

/// The field naming the database a pool connects to.
pub const DATABASE_FIELD: &str = "database";

/// How the rule resizes the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resize {
    pub grow_by: u32,
    pub timeout_seconds: u32,
    pub max_connections_limit: u32,
    pub max_growth_per_database: u32,
}

/// autoheal's growth of a pool, as recorded in its document.
#[derive(Debug, Clone, PartialEq)]
pub struct Growth {
    pub incident: String,
    /// Connections autoheal added since `max_connections_before`.
    pub added: u64,
    pub max_connections_before: u64,
    /// The `timeout_seconds` field before autoheal set it (`None`: there was none).
    pub timeout_seconds_before: Option<Value>,
    /// The version autoheal wrote the document in.
    pub version: i64,
}

impl Growth {
    /// autoheal's growth recorded in the document, while the document is still at the version
    /// autoheal wrote: once a person wrote it, its size is theirs.
    pub fn standing(document: &Document) -> Option<Growth> {
        let growth = document.fields.get(GROWTH_FIELD)?.as_object()?;
        let number = |key: &str| growth.get(key).and_then(Value::as_u64);
        let recorded = Growth {
            incident: growth.get("incident")?.as_str()?.to_owned(),
            added: number("added")?,
            max_connections_before: number("max_connections_before")?,
            timeout_seconds_before: growth
                .get("timeout_seconds_before")
                .filter(|value| !value.is_null())
                .cloned(),
            version: growth.get("version").and_then(Value::as_i64)?,
        };
        (recorded.version == document.version).then_some(recorded)
    }

    fn to_value(&self) -> Value {
        let mut growth = Map::new();
        growth.insert("incident".to_owned(), Value::from(self.incident.as_str()));
        growth.insert("added".to_owned(), Value::from(self.added));
        growth.insert(
            "max_connections_before".to_owned(),
            Value::from(self.max_connections_before),
        );
        growth.insert(
            "timeout_seconds_before".to_owned(),
            self.timeout_seconds_before.clone().unwrap_or(Value::Null),
        );
        growth.insert("version".to_owned(), Value::from(self.version));
        Value::Object(growth)
    }
}

/// The database a pool connects to: its `database` field, or the pool itself.
pub fn database_of<'a>(name: &'a str, document: &'a Document) -> &'a str {
    document.text(DATABASE_FIELD).unwrap_or(name)
}

/// What the pool's document and its database's other pools say to do.
#[derive(Debug, Clone, PartialEq)]
pub enum PoolPlan {
    /// Grow the pool to `size`, recording `growth`.
    Grow { size: u64, growth: Growth },
    /// The pool is at the rule's limit.
    AtLimit { size: u64, limit: u64 },
    /// autoheal already holds the database's cap of added connections.
    DatabaseFull { held: u64, cap: u64 },
}

/// Decides the growth of a pool of `size` connections whose document is `document`, when
/// autoheal holds `elsewhere` connections added to the other pools of its database, and the
/// write will be version `next_version`.
pub fn plan(
    size: u64,
    document: &Document,
    resize: Resize,
    elsewhere: u64,
    incident: &str,
    next_version: i64,
) -> PoolPlan {
    let standing = Growth::standing(document);
    let (before, added, timeout_before) = match &standing {
        Some(growth) => (
            growth.max_connections_before,
            growth.added,
            growth.timeout_seconds_before.clone(),
        ),
        None => (size, 0, document.fields.get("timeout_seconds").cloned()),
    };
    let limit = u64::from(resize.max_connections_limit);
    if size >= limit {
        return PoolPlan::AtLimit { size, limit };
    }
    let cap = u64::from(resize.max_growth_per_database);
    let held = elsewhere.saturating_add(added);
    let room = cap.saturating_sub(held);
    if room == 0 {
        return PoolPlan::DatabaseFull { held, cap };
    }
    let grow = u64::from(resize.grow_by).min(room).min(limit - size);
    PoolPlan::Grow {
        size: size + grow,
        growth: Growth {
            incident: incident.to_owned(),
            added: added + grow,
            max_connections_before: before,
            timeout_seconds_before: timeout_before,
            version: next_version,
        },
    }
}

/// Resets connection pools kept in Parameter Store.
#[derive(Debug, Clone)]
pub struct ConnectionPoolReset {
    parameters: Parameters,
}

impl ConnectionPoolReset {
    pub fn new(ssm: SsmClient) -> Self {
        ConnectionPoolReset {
            parameters: Parameters::new(ssm),
        }
    }

    pub async fn reset(
        &self,
        request: HealRequest<'_>,
        template: &str,
        resize: Resize,
    ) -> Result<HealOutcome, HealError> {
        let service = request.resource_id;
        let (name, document) = match self.parameters.open(template, service).await? {
            Ok(opened) => opened,
            Err(skip) => return Ok(skip),
        };
        if let Some(by) = document.hold() {
            return Ok(parameter::held(&name, &by));
        }
        let fields = &document.fields;
        let generation = match fields.get("generation") {
            None => 0,
            Some(value) => value.as_u64().ok_or_else(|| {
                HealError::new(format!(
                    "{name}: `generation` must be a non-negative integer"
                ))
            })?,
        };
        if fields.get(TOKEN_FIELD).and_then(Value::as_str) == Some(request.idempotency_token) {
            return Ok(HealOutcome::Skipped {
                reason: SkipReason::NotNeeded,
                summary: format!(
                    "this attempt already reset the connection pool of {service} (generation {generation}, {name})"
                ),
            });
        }
        let old_size = fields
            .get("max_connections")
            .and_then(Value::as_u64)
            .ok_or_else(|| {
                HealError::new(format!(
                    "{name}: the JSON value has no non-negative integer `max_connections`"
                ))
            })?;
        let database = database_of(&name, &document).to_owned();
        let (elsewhere, holders) = self.held_elsewhere(template, &name, &document).await?;
        let next_version = document.version + 1;
        let (new_size, growth) = match plan(
            old_size,
            &document,
            resize,
            elsewhere,
            request.incident_id,
            next_version,
        ) {
            PoolPlan::Grow { size, growth } => (size, growth),
            PoolPlan::AtLimit { size, limit } => {
                return Ok(HealOutcome::Skipped {
                    reason: SkipReason::Unsafe,
                    summary: format!(
                        "the connection pool of {service} already has {size} connections, the rule's limit is {limit}: growing it further could overload its database"
                    ),
                });
            }
            PoolPlan::DatabaseFull { held, cap } => {
                let pools = if holders.is_empty() {
                    String::new()
                } else {
                    format!(" (also on {})", holders.join(", "))
                };
                return Ok(HealOutcome::Skipped {
                    reason: SkipReason::Unsafe,
                    summary: format!(
                        "autoheal already holds {held} connections added to the pools of database {database}{pools}, its cap is {cap}: more would load the database every pool is waiting on"
                    ),
                });
            }
        };
        let new_generation = generation.saturating_add(1);

        let mut fields = document.fields;
        fields.insert("max_connections".to_owned(), Value::from(new_size));
        fields.insert(
            "timeout_seconds".to_owned(),
            Value::from(resize.timeout_seconds),
        );
        fields.insert("generation".to_owned(), Value::from(new_generation));
        fields.insert(
            TOKEN_FIELD.to_owned(),
            Value::from(request.idempotency_token),
        );
        fields.insert(GROWTH_FIELD.to_owned(), growth.to_value());
        parameter::stamp(&mut fields, &request);
        let version = match self
            .parameters
            .write_after(&name, document.version, fields)
            .await?
        {
            Written::Done { version } => version,
            Written::Conflict { theirs } => {
                return Ok(HealOutcome::Skipped {
                    reason: SkipReason::Unsafe,
                    summary: format!(
                        "{name} was changed by someone else (version {theirs}) while autoheal reset the connection pool: their setting stays"
                    ),
                });
            }
        };
        Ok(HealOutcome::Healed {
            summary: format!(
                "reset the connection pool of {service}: {old_size} → {new_size} connections, {} s timeout, generation {new_generation} ({name}, version {version}); {} connection(s) added to database {database} go back to {} when the alarm returns to OK",
                resize.timeout_seconds, growth.added, growth.max_connections_before
            ),
            details: BTreeMap::from([
                ("parameter".to_owned(), name.clone()),
                ("parameter_version".to_owned(), version.to_string()),
                ("old_max_connections".to_owned(), old_size.to_string()),
                ("new_max_connections".to_owned(), new_size.to_string()),
                (
                    "timeout_seconds".to_owned(),
                    resize.timeout_seconds.to_string(),
                ),
                ("generation".to_owned(), new_generation.to_string()),
                ("database".to_owned(), database),
                ("added_connections".to_owned(), growth.added.to_string()),
            ]),
            reverts: vec![
                Revert::new(RESTORE_CONNECTION_POOL)
                    .with("parameter", name)
                    .with("version", version),
            ],
        })
    }

    /// The connections autoheal holds added to the other pools of this pool's database, and
    /// those pools. Only a pool that names its database shares it with others.
    async fn held_elsewhere(
        &self,
        template: &str,
        name: &str,
        document: &Document,
    ) -> Result<(u64, Vec<String>), HealError> {
        let Some(database) = document.text(DATABASE_FIELD) else {
            return Ok((0, Vec::new()));
        };
        let mut held = 0u64;
        let mut holders = Vec::new();
        for (other, pool) in self.parameters.all_of(template).await? {
            if other == name || pool.text(DATABASE_FIELD) != Some(database) {
                continue;
            }
            if let Some(growth) = Growth::standing(&pool) {
                held = held.saturating_add(growth.added);
                holders.push(format!("{other}: {}", growth.added));
            }
        }
        Ok((held, holders))
    }

    /// Puts the pool back to its size and timeout from before the incident, if the parameter
    /// is still at the version autoheal wrote.
    pub async fn restore(
        &self,
        request: HealRequest<'_>,
        template: &str,
        revert: &Revert,
    ) -> Result<HealOutcome, HealError> {
        let service = request.resource_id;
        let recorded = revert.param("version").map_err(HealError::new)?;
        let written: i64 = recorded.parse().map_err(|_| {
            HealError::new(format!(
                "revert `{}`: `version` is not a number: {recorded}",
                revert.kind
            ))
        })?;
        let (name, document) = match self.parameters.open(template, service).await? {
            Ok(opened) => opened,
            Err(skip) => return Ok(skip),
        };
        if document.version != written {
            let put_back_already = document.fields.get(GROWTH_FIELD).is_none()
                && document.text("changed_by") == Some("autoheal")
                && document.text("incident") == Some(request.incident_id);
            let summary = if put_back_already {
                format!(
                    "the connection pool of {service} is already back to its size before the incident ({name}, version {})",
                    document.version
                )
            } else {
                format!(
                    "{name} is at version {}, not the {written} autoheal wrote: someone changed it since, and it stays as they set it",
                    document.version
                )
            };
            return Ok(HealOutcome::Skipped {
                reason: SkipReason::NotNeeded,
                summary,
            });
        }
        let Some(growth) = Growth::standing(&document) else {
            return Err(HealError::new(format!(
                "{name} is at the version autoheal wrote ({written}) but has no `{GROWTH_FIELD}` to put back"
            )));
        };
        let size = document
            .fields
            .get("max_connections")
            .and_then(Value::as_u64)
            .unwrap_or_default();
        let mut fields = document.fields;
        fields.insert(
            "max_connections".to_owned(),
            Value::from(growth.max_connections_before),
        );
        match &growth.timeout_seconds_before {
            Some(timeout) => fields.insert("timeout_seconds".to_owned(), timeout.clone()),
            None => fields.remove("timeout_seconds"),
        };
        fields.remove(GROWTH_FIELD);
        parameter::stamp(&mut fields, &request);
        match self.parameters.write_after(&name, written, fields).await? {
            Written::Done { version } => Ok(HealOutcome::healed(
                format!(
                    "put the connection pool of {service} back: {size} → {} connections ({name}, version {version})",
                    growth.max_connections_before
                ),
                BTreeMap::from([
                    ("parameter".to_owned(), name),
                    ("parameter_version".to_owned(), version.to_string()),
                    (
                        "restored_max_connections".to_owned(),
                        growth.max_connections_before.to_string(),
                    ),
                ]),
            )),
            Written::Conflict { theirs } => Ok(HealOutcome::Skipped {
                reason: SkipReason::Unsafe,
                summary: format!(
                    "{name} was changed by someone else (version {theirs}) while autoheal put the pool back: their setting stays"
                ),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const RESIZE: Resize = Resize {
        grow_by: 10,
        timeout_seconds: 30,
        max_connections_limit: 1000,
        max_growth_per_database: 40,
    };

    fn document(version: i64, value: Value) -> Document {
        let Value::Object(fields) = value else {
            panic!("an object");
        };
        Document { version, fields }
    }

    #[test]
    fn a_first_attempt_grows_from_the_size_a_person_set() {
        let pool = document(3, json!({"max_connections": 50, "timeout_seconds": 5}));
        let PoolPlan::Grow { size, growth } = plan(50, &pool, RESIZE, 0, "inc-1", 4) else {
            panic!("a growth");
        };
        assert_eq!(size, 60);
        assert_eq!(
            growth,
            Growth {
                incident: "inc-1".to_owned(),
                added: 10,
                max_connections_before: 50,
                timeout_seconds_before: Some(json!(5)),
                version: 4,
            }
        );
        assert_eq!(
            Growth::standing(&document(
                4,
                json!({"max_connections": 60, GROWTH_FIELD: growth.to_value()})
            )),
            Some(growth)
        );
    }

    #[test]
    fn a_later_attempt_grows_from_the_same_baseline_until_the_database_cap() {
        let growth = json!({"incident": "inc-1", "added": 30, "max_connections_before": 50,
                            "timeout_seconds_before": null, "version": 7});
        let pool = document(7, json!({"max_connections": 80, GROWTH_FIELD: growth}));
        let PoolPlan::Grow { size, growth } = plan(80, &pool, RESIZE, 0, "inc-1", 8) else {
            panic!("a growth");
        };
        assert_eq!(
            (size, growth.added, growth.max_connections_before),
            (90, 40, 50)
        );
        assert_eq!(growth.timeout_seconds_before, None);
        let full = document(
            8,
            json!({"max_connections": 90, GROWTH_FIELD: growth.to_value()}),
        );
        assert_eq!(
            plan(90, &full, RESIZE, 0, "inc-1", 9),
            PoolPlan::DatabaseFull { held: 40, cap: 40 }
        );
    }

    #[test]
    fn other_pools_of_the_database_share_its_cap() {
        let pool = document(1, json!({"max_connections": 50, "database": "orders"}));
        let PoolPlan::Grow { size, growth } = plan(50, &pool, RESIZE, 35, "inc-1", 2) else {
            panic!("a growth");
        };
        assert_eq!((size, growth.added), (55, 5), "only what the cap leaves");
        assert_eq!(
            plan(50, &pool, RESIZE, 40, "inc-1", 2),
            PoolPlan::DatabaseFull { held: 40, cap: 40 }
        );
    }

    #[test]
    fn a_growth_a_person_wrote_over_is_theirs() {
        let growth = json!({"incident": "inc-1", "added": 10, "max_connections_before": 50,
                            "timeout_seconds_before": 5, "version": 2});
        // A person edited the value (version 3) and kept the field.
        let pool = document(3, json!({"max_connections": 70, GROWTH_FIELD: growth}));
        assert_eq!(Growth::standing(&pool), None);
        let PoolPlan::Grow { growth, .. } = plan(70, &pool, RESIZE, 0, "inc-2", 4) else {
            panic!("a growth");
        };
        assert_eq!((growth.max_connections_before, growth.added), (70, 10));
    }

    #[test]
    fn the_rules_limit_bounds_the_size() {
        let pool = document(1, json!({"max_connections": 995}));
        let PoolPlan::Grow { size, .. } = plan(995, &pool, RESIZE, 0, "inc-1", 2) else {
            panic!("a growth");
        };
        assert_eq!(size, 1000);
        assert_eq!(
            plan(1000, &pool, RESIZE, 0, "inc-1", 2),
            PoolPlan::AtLimit {
                size: 1000,
                limit: 1000
            }
        );
    }
}
