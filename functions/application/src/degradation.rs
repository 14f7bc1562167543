//! `enable-graceful-degradation`: switch a struggling service to degraded mode, and back.
//!
//! The application reads a Parameter Store parameter holding JSON
//! `{"degraded": false, "shed": [...], ...}`; while `degraded` is true it skips the optional
//! work named in `shed` (recommendations, non-critical writes, expensive queries) and keeps
//! serving the essential path. When the service's latency or error alarm fires, autoheal sets
//! `degraded` to true with the rule's `shed` list, stamped with who set it and why; when the
//! incident resolves it puts the previous values back.
//!
//! A person may take over at any time: every write is checked against the version autoheal
//! read, and the switch back happens only while the parameter is still at the version
//! autoheal wrote. A flag a person set meanwhile is never overwritten, and a document a
//! person holds (its `hold` field) is left to them.

use std::collections::BTreeMap;

use aws_sdk_ssm::Client as SsmClient;
use serde_json::{Map, Value};

use autoheal_core::{HealError, HealOutcome, HealRequest, Revert, SkipReason};

use crate::parameter::{self, Document, Parameters, Written};

/// The revert that switches degradation back off.
pub const DISABLE_GRACEFUL_DEGRADATION: &str = "disable-graceful-degradation";

/// How much of the alarm's state reason goes into the parameter.
const REASON_LIMIT: usize = 256;

/// Switches applications' degradation flags kept in Parameter Store.
#[derive(Debug, Clone)]
pub struct GracefulDegradation {
    parameters: Parameters,
}

impl GracefulDegradation {
    pub fn new(ssm: SsmClient) -> Self {
        GracefulDegradation {
            parameters: Parameters::new(ssm),
        }
    }

    pub async fn enable(
        &self,
        request: HealRequest<'_>,
        template: &str,
        shed: &[String],
    ) -> Result<HealOutcome, HealError> {
        let service = request.resource_id;
        let (name, document) = match self.parameters.open(template, service).await? {
            Ok(opened) => opened,
            Err(skip) => return Ok(skip),
        };
        if let Some(by) = document.hold() {
            return Ok(parameter::held(&name, &by));
        }
        if degraded(&name, &document)? {
            let by = document
                .fields
                .get("changed_by")
                .and_then(Value::as_str)
                .unwrap_or("the application");
            return Ok(HealOutcome::Skipped {
                reason: SkipReason::NotNeeded,
                summary: format!("{service} is already degraded ({name}, set by {by})"),
            });
        }

        let mut fields = document.fields.clone();
        fields.insert("degraded".to_owned(), Value::Bool(true));
        fields.insert(
            "shed".to_owned(),
            Value::from(
                shed.iter()
                    .map(|work| Value::from(work.as_str()))
                    .collect::<Vec<_>>(),
            ),
        );
        fields.insert("reason".to_owned(), Value::from(reason(&request)));
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
                        "{name} was changed by someone else (version {theirs}) while autoheal switched degradation on: their setting stays"
                    ),
                });
            }
        };
        let previous_shed = document
            .fields
            .get("shed")
            .map_or_else(|| "null".to_owned(), Value::to_string);
        Ok(HealOutcome::Healed {
            summary: format!(
                "switched {service} to degraded mode, shedding {} ({name}, version {version}); it goes back when the alarm returns to OK",
                shed.join(", ")
            ),
            details: BTreeMap::from([
                ("parameter".to_owned(), name.clone()),
                ("parameter_version".to_owned(), version.to_string()),
                ("previous_version".to_owned(), document.version.to_string()),
                ("shed".to_owned(), shed.join(",")),
            ]),
            reverts: vec![
                Revert::new(DISABLE_GRACEFUL_DEGRADATION)
                    .with("parameter", name)
                    .with("version", version)
                    .with("previous_shed", previous_shed),
            ],
        })
    }

    /// Switches degradation off again if the parameter is still as autoheal left it.
    pub async fn disable(
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
        let previous_shed: Option<Value> = match revert.param("previous_shed") {
            Ok("null") | Err(_) => None,
            Ok(text) => Some(serde_json::from_str(text).map_err(|e| {
                HealError::new(format!(
                    "revert `{}`: `previous_shed` is not JSON: {e}",
                    revert.kind
                ))
            })?),
        };
        let (name, document) = match self.parameters.open(template, service).await? {
            Ok(opened) => opened,
            Err(skip) => return Ok(skip),
        };
        if document.version != written {
            return Ok(HealOutcome::Skipped {
                reason: SkipReason::NotNeeded,
                summary: format!(
                    "{name} is at version {}, not the {written} autoheal wrote: someone changed it since, and it stays as they set it",
                    document.version
                ),
            });
        }

        let mut fields: Map<String, Value> = document.fields;
        fields.insert("degraded".to_owned(), Value::Bool(false));
        match previous_shed {
            Some(shed) => fields.insert("shed".to_owned(), shed),
            None => fields.remove("shed"),
        };
        fields.insert(
            "reason".to_owned(),
            Value::from(format!("incident {} resolved", request.incident_id)),
        );
        parameter::stamp(&mut fields, &request);
        match self.parameters.write_after(&name, written, fields).await? {
            Written::Done { version } => Ok(HealOutcome::healed(
                format!("switched {service} back to normal mode ({name}, version {version})"),
                BTreeMap::from([
                    ("parameter".to_owned(), name),
                    ("parameter_version".to_owned(), version.to_string()),
                ]),
            )),
            Written::Conflict { theirs } => Ok(HealOutcome::Skipped {
                reason: SkipReason::NotNeeded,
                summary: format!(
                    "{name} was changed by someone else (version {theirs}) while autoheal switched degradation off: their setting stays"
                ),
            }),
        }
    }
}

/// Whether the document says the service is degraded (a missing field: it is not).
fn degraded(name: &str, document: &Document) -> Result<bool, HealError> {
    match document.fields.get("degraded") {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(degraded)) => Ok(*degraded),
        Some(other) => Err(HealError::new(format!(
            "{name}: `degraded` is {other}; expected true or false"
        ))),
    }
}

/// Why the flag was set, for whoever reads the parameter: the alarm and its reason.
fn reason(request: &HealRequest<'_>) -> String {
    let event = request.event;
    let text = match &event.state_reason {
        Some(why) => format!("{}: {why}", event.alarm_name),
        None => event.alarm_name.clone(),
    };
    match text.char_indices().nth(REASON_LIMIT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}
