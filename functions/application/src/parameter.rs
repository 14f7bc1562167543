//! The Parameter Store documents an application reads its healing settings from.
//!
//! One parameter per resource, named by the rule's template with `{resource}` replaced by
//! the resource id. Its value is a JSON object; autoheal changes only the fields the action
//! owns and keeps every other field as the application wrote it.
//!
//! People edit these parameters too, so autoheal writes only over what it read: every write
//! is checked to be the very next version after the one read ([`Parameters::write_after`]),
//! and a person's write in between wins. A person who wants autoheal to keep its hands off a
//! document for a while sets its `hold` field (who and why, e.g. `"alice: dependency
//! maintenance until 14:00"`): autoheal then waits (`operator-hold`) instead of acting.

use aws_sdk_ssm::Client as SsmClient;
use aws_sdk_ssm::types::{ParameterType, ResourceTypeForTagging};
use serde_json::{Map, Value};

use autoheal_aws::errors::{api_error, describe};
use autoheal_aws::tags::pairs_opt_out;
use autoheal_core::{HealError, HealOutcome, HealRequest, SkipReason};

/// The parameter name for `resource`, or why the resource id cannot name one.
///
/// The id comes from an alarm dimension: it must be one path segment of a parameter name
/// (letters, digits, `_.-`), so that no alarm can point autoheal at another parameter.
pub fn name_for(template: &str, resource: &str) -> Result<String, String> {
    let usable = !resource.is_empty()
        && resource != "."
        && resource != ".."
        && resource
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if usable {
        Ok(template.replace("{resource}", resource))
    } else {
        Err(format!(
            "resource id `{resource}` cannot name a parameter (letters, digits and `_.-` only)"
        ))
    }
}

/// A parameter's JSON document as read.
#[derive(Debug, Clone)]
pub struct Document {
    pub version: i64,
    pub fields: Map<String, Value>,
}

/// The field in which a person asks autoheal to keep its hands off a document.
pub const HOLD_FIELD: &str = "hold";

impl Document {
    /// Who holds the document and why, when a person set its `hold` field (a non-empty
    /// string, or `true`); `None` when nobody does.
    pub fn hold(&self) -> Option<String> {
        match self.fields.get(HOLD_FIELD)? {
            Value::String(why) if !why.trim().is_empty() => Some(why.trim().to_owned()),
            Value::Bool(true) => Some("a person".to_owned()),
            _ => None,
        }
    }

    /// A string field, trimmed; `None` when absent, empty or not a string.
    pub fn text(&self, field: &str) -> Option<&str> {
        self.fields
            .get(field)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|text| !text.is_empty())
    }
}

/// The skip of an action whose document a person holds.
pub fn held(name: &str, by: &str) -> HealOutcome {
    HealOutcome::Skipped {
        reason: SkipReason::OperatorHold,
        summary: format!(
            "{name} is held by a person (`{HOLD_FIELD}`: {by}): autoheal leaves it to them"
        ),
    }
}

/// What a write checked against the version read found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// The write is the version after the one read.
    Done { version: i64 },
    /// Someone else wrote version `theirs` in between; their value was put back.
    Conflict { theirs: i64 },
}

/// Reads and writes the application's parameters.
#[derive(Debug, Clone)]
pub struct Parameters {
    ssm: SsmClient,
}

impl Parameters {
    pub fn new(ssm: SsmClient) -> Self {
        Parameters { ssm }
    }

    /// Reads the document. A missing parameter is an error: the application creates it.
    pub async fn read(&self, name: &str) -> Result<Document, HealError> {
        let output = self
            .ssm
            .get_parameter()
            .name(name)
            .send()
            .await
            .map_err(|e| {
                let missing = e
                    .as_service_error()
                    .is_some_and(|service| service.is_parameter_not_found());
                let mut message = describe("GetParameter", &e);
                if missing {
                    message.push_str(&format!(
                        " ({name}: the application must create this parameter)"
                    ));
                }
                HealError::new(message)
            })?;
        let parameter = output
            .parameter()
            .ok_or_else(|| HealError::new(format!("GetParameter returned no parameter {name}")))?;
        if parameter.r#type() == Some(&ParameterType::SecureString) {
            return Err(HealError::new(format!(
                "{name} is a SecureString; autoheal reads and writes a String parameter"
            )));
        }
        Ok(Document {
            version: parameter.version(),
            fields: object(name, parameter.value().unwrap_or_default())?,
        })
    }

    /// The document of `resource` when its parameter exists, for a look before acting;
    /// `None` when it is missing or cannot be read (the action then says why).
    pub async fn peek(&self, template: &str, resource: &str) -> Option<(String, Document)> {
        let name = name_for(template, resource).ok()?;
        let document = self.read(&name).await.ok()?;
        Some((name, document))
    }

    /// The String parameters whose names the template gives for some resource, with their
    /// documents, every page of them (`GetParametersByPath` under the template's path). A
    /// value that is not a JSON object is left out: it is not a document autoheal reads.
    pub async fn all_of(&self, template: &str) -> Result<Vec<(String, Document)>, HealError> {
        let Some((prefix, suffix)) = template.split_once("{resource}") else {
            return Ok(Vec::new());
        };
        let path = match prefix.rfind('/') {
            Some(0) | None => "/",
            Some(end) => &prefix[..end],
        };
        let mut found = Vec::new();
        let mut pages = self
            .ssm
            .get_parameters_by_path()
            .path(path)
            .recursive(true)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| api_error("GetParametersByPath", e))?;
            for parameter in page.parameters() {
                let Some(name) = parameter.name() else {
                    continue;
                };
                let resource = name
                    .strip_prefix(prefix)
                    .and_then(|rest| rest.strip_suffix(suffix));
                let names_a_resource =
                    resource.is_some_and(|resource| name_for(template, resource).is_ok());
                if !names_a_resource || parameter.r#type() == Some(&ParameterType::SecureString) {
                    continue;
                }
                if let Ok(fields) = object(name, parameter.value().unwrap_or_default()) {
                    found.push((
                        name.to_owned(),
                        Document {
                            version: parameter.version(),
                            fields,
                        },
                    ));
                }
            }
        }
        Ok(found)
    }

    /// Whether the parameter is tagged `autoheal:disabled=true`.
    pub async fn opted_out(&self, name: &str) -> Result<bool, HealError> {
        let output = self
            .ssm
            .list_tags_for_resource()
            .resource_type(ResourceTypeForTagging::Parameter)
            .resource_id(name)
            .send()
            .await
            .map_err(|e| api_error("ListTagsForResource", e))?;
        Ok(pairs_opt_out(
            output.tag_list().iter().map(|tag| (tag.key(), tag.value())),
        ))
    }

    /// The parameter of `resource` and its document, or why it must not be touched: a
    /// resource id that cannot name a parameter (`unsafe`) or an opted-out parameter.
    pub async fn open(
        &self,
        template: &str,
        resource: &str,
    ) -> Result<Result<(String, Document), HealOutcome>, HealError> {
        let name = match name_for(template, resource) {
            Ok(name) => name,
            Err(why) => {
                return Ok(Err(HealOutcome::Skipped {
                    reason: SkipReason::Unsafe,
                    summary: why,
                }));
            }
        };
        let document = self.read(&name).await?;
        if self.opted_out(&name).await? {
            return Ok(Err(HealOutcome::Skipped {
                reason: SkipReason::OptedOut,
                summary: format!("{name} {}", autoheal_aws::tags::opted_out_phrase()),
            }));
        }
        Ok(Ok((name, document)))
    }

    /// Overwrites the parameter with `fields`, the document read at `read_version`, unless
    /// someone else wrote in between. Parameter Store has no conditional put, so the check
    /// is after the fact: a write that is not the very next version landed on someone
    /// else's, whose value is then put back (theirs wins) and reported as a conflict.
    pub async fn write_after(
        &self,
        name: &str,
        read_version: i64,
        fields: Map<String, Value>,
    ) -> Result<Written, HealError> {
        let version = self.write(name, fields).await?;
        if version == read_version + 1 {
            return Ok(Written::Done { version });
        }
        let theirs = version - 1;
        let value = self.value_at(name, theirs).await?;
        self.put(name, value).await.map_err(|mut error| {
            error.message = format!(
                "{name} was changed by someone else (version {theirs}) while autoheal wrote version {version}, and putting theirs back failed: {}",
                error.message
            );
            error
        })?;
        Ok(Written::Conflict { theirs })
    }

    /// The value of version `version` of the parameter.
    async fn value_at(&self, name: &str, version: i64) -> Result<String, HealError> {
        let output = self
            .ssm
            .get_parameter()
            .name(format!("{name}:{version}"))
            .send()
            .await
            .map_err(|e| api_error("GetParameter", e))?;
        output
            .parameter()
            .and_then(|parameter| parameter.value())
            .map(str::to_owned)
            .ok_or_else(|| {
                HealError::new(format!(
                    "GetParameter returned no value for {name}:{version}"
                ))
            })
    }

    /// Overwrites the parameter with `fields`; returns the new version. Only through
    /// [`Self::write_after`]: a person's document is never written blind.
    async fn write(&self, name: &str, fields: Map<String, Value>) -> Result<i64, HealError> {
        self.put(name, Value::Object(fields).to_string()).await
    }

    async fn put(&self, name: &str, value: String) -> Result<i64, HealError> {
        let output = self
            .ssm
            .put_parameter()
            .name(name)
            .value(value)
            .overwrite(true)
            .send()
            .await
            .map_err(|e| api_error("PutParameter", e))?;
        Ok(output.version())
    }
}

/// A parameter's value as a JSON object.
fn object(name: &str, text: &str) -> Result<Map<String, Value>, HealError> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(fields)) => Ok(fields),
        Ok(_) => Err(HealError::new(format!(
            "the value of {name} is not a JSON object"
        ))),
        Err(error) => Err(HealError::new(format!(
            "the value of {name} is not JSON: {error}"
        ))),
    }
}

/// The fields every change by autoheal carries: who, why and when.
pub fn stamp(fields: &mut Map<String, Value>, request: &HealRequest<'_>) {
    fields.insert("changed_by".to_owned(), Value::from("autoheal"));
    fields.insert("incident".to_owned(), Value::from(request.incident_id));
    fields.insert(
        "changed_at".to_owned(),
        Value::from(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
    );
}
