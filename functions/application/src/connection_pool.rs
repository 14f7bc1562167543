//! `reset-connection-pool`: reset an exhausted connection pool and grow it.
//!
//! The application reads its pool settings from a Parameter Store parameter holding JSON
//! `{"max_connections": N, "timeout_seconds": T, "generation": G, ...}`. autoheal grows
//! `max_connections` by the rule's `grow_by` (never past `max_connections_limit`), sets
//! `timeout_seconds` to the rule's value and increments `generation`; the application drops
//! and re-opens its connections when it sees the generation change.

use std::collections::BTreeMap;

use aws_sdk_ssm::Client as SsmClient;
use serde_json::Value;

use autoheal_core::{HealError, HealOutcome, HealRequest, SkipReason};

use crate::parameter::{self, Parameters};

/// The field that records which attempt made the last change, so that a retried attempt
/// (same idempotency token) does not grow the pool a second time.
const TOKEN_FIELD: &str = "change_token";

/// How the rule resizes the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resize {
    pub grow_by: u32,
    pub timeout_seconds: u32,
    pub max_connections_limit: u32,
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
        let limit = u64::from(resize.max_connections_limit);
        if old_size >= limit {
            return Ok(HealOutcome::Skipped {
                reason: SkipReason::Unsafe,
                summary: format!(
                    "the connection pool of {service} already has {old_size} connections, the rule's limit is {limit}: growing it further could overload its database"
                ),
            });
        }
        let new_size = old_size
            .saturating_add(u64::from(resize.grow_by))
            .min(limit);
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
        parameter::stamp(&mut fields, &request);
        let version = self.parameters.write(&name, fields).await?;
        Ok(HealOutcome::Healed {
            summary: format!(
                "reset the connection pool of {service}: {old_size} → {new_size} connections, {} s timeout, generation {new_generation} ({name}, version {version})",
                resize.timeout_seconds
            ),
            details: BTreeMap::from([
                ("parameter".to_owned(), name),
                ("parameter_version".to_owned(), version.to_string()),
                ("old_max_connections".to_owned(), old_size.to_string()),
                ("new_max_connections".to_owned(), new_size.to_string()),
                (
                    "timeout_seconds".to_owned(),
                    resize.timeout_seconds.to_string(),
                ),
                ("generation".to_owned(), new_generation.to_string()),
            ]),
            reverts: Vec::new(),
        })
    }
}
