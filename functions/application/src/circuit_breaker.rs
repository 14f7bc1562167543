//! `reset-circuit-breaker`: half-open a tripped circuit breaker.
//!
//! The application reads its breaker from a Parameter Store parameter holding JSON
//! `{"state": "open" | "half-open" | "closed", ...}`. autoheal moves an open breaker to
//! `half-open` with the rule's trial traffic percentage; the application then lets that share
//! of requests through to the dependency and closes the breaker itself when they succeed (or
//! opens it again when they fail). autoheal never closes a breaker.
//!
//! A breaker a person holds open (its `hold` field says who and why, e.g. while the
//! dependency is under maintenance) is left to them. The write is checked against the version
//! read: a person's change in between stays and the run is `unsafe`.

use std::collections::BTreeMap;

use aws_sdk_ssm::Client as SsmClient;
use serde_json::Value;

use autoheal_core::{HealError, HealOutcome, HealRequest, SkipReason};

use crate::parameter::{self, Parameters, Written};

/// Half-opens circuit breakers kept in Parameter Store.
#[derive(Debug, Clone)]
pub struct CircuitBreakerReset {
    parameters: Parameters,
}

impl CircuitBreakerReset {
    pub fn new(ssm: SsmClient) -> Self {
        CircuitBreakerReset {
            parameters: Parameters::new(ssm),
        }
    }

    pub async fn half_open(
        &self,
        request: HealRequest<'_>,
        template: &str,
        trial_traffic_percent: u8,
    ) -> Result<HealOutcome, HealError> {
        let service = request.resource_id;
        let (name, document) = match self.parameters.open(template, service).await? {
            Ok(opened) => opened,
            Err(skip) => return Ok(skip),
        };
        if let Some(by) = document.hold() {
            return Ok(parameter::held(&name, &by));
        }
        let state = document
            .fields
            .get("state")
            .and_then(Value::as_str)
            .map(|state| state.trim().to_ascii_lowercase());
        match state.as_deref() {
            Some("open") => {}
            Some(state @ ("half-open" | "closed")) => {
                return Ok(HealOutcome::Skipped {
                    reason: SkipReason::NotNeeded,
                    summary: format!(
                        "the circuit breaker of {service} is already {state} ({name})"
                    ),
                });
            }
            Some(other) => {
                return Err(HealError::new(format!(
                    "{name}: `state` is `{other}`; expected `open`, `half-open` or `closed`"
                )));
            }
            None => {
                return Err(HealError::new(format!(
                    "{name}: the JSON value has no string field `state`"
                )));
            }
        }

        let mut fields = document.fields;
        fields.insert("state".to_owned(), Value::from("half-open"));
        fields.insert(
            "trial_traffic_percent".to_owned(),
            Value::from(trial_traffic_percent),
        );
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
                        "{name} was changed by someone else (version {theirs}) while autoheal half-opened the circuit breaker: their setting stays"
                    ),
                });
            }
        };
        Ok(HealOutcome::Healed {
            summary: format!(
                "half-opened the circuit breaker of {service} with {trial_traffic_percent} % trial traffic ({name}, version {version})"
            ),
            details: BTreeMap::from([
                ("parameter".to_owned(), name),
                ("parameter_version".to_owned(), version.to_string()),
                ("previous_version".to_owned(), document.version.to_string()),
                (
                    "trial_traffic_percent".to_owned(),
                    trial_traffic_percent.to_string(),
                ),
            ]),
            reverts: Vec::new(),
        })
    }
}
