//! `rollback-lambda-alias`: point a Lambda alias back at the previously published version.
//!
//! The alias the rule names (e.g. `live`) is read; the previous version is the largest
//! published version below the one it points at. The alias is moved with the `RevisionId`
//! that was read, so a concurrent change (a deployment moving the alias meanwhile) makes the
//! update fail instead of being overwritten. An alias shifting traffic between two versions
//! (a weighted, e.g. CodeDeploy, deployment) is left to that deployment.

use std::collections::BTreeMap;

use aws_sdk_lambda::Client as LambdaClient;
use aws_sdk_lambda::operation::get_alias::GetAliasOutput;

use autoheal_aws::tags::{OPT_OUT_TAG, is_opted_out};
use autoheal_core::{HealError, HealOutcome, HealRequest, SkipReason};

use autoheal_aws::errors::api_error;

/// The largest published (numeric) version below `current`, if `current` is one.
pub fn previous_version<'a>(
    current: &str,
    versions: impl IntoIterator<Item = &'a str>,
) -> Option<u64> {
    let current: u64 = current.parse().ok()?;
    versions
        .into_iter()
        .filter_map(|version| version.parse::<u64>().ok())
        .filter(|version| *version < current)
        .max()
}

/// The unqualified function ARN of an alias or version ARN
/// (`arn:<partition>:lambda:<region>:<account>:function:<name>[:<qualifier>]`).
pub fn unqualified_function_arn(arn: &str) -> Option<String> {
    let parts: Vec<&str> = arn.split(':').collect();
    (parts.len() >= 7 && parts[0] == "arn" && parts[5] == "function").then(|| parts[..7].join(":"))
}

/// Rolls Lambda aliases back.
#[derive(Debug, Clone)]
pub struct AliasRollback {
    lambda: LambdaClient,
}

impl AliasRollback {
    pub fn new(lambda: LambdaClient) -> Self {
        AliasRollback { lambda }
    }

    pub async fn roll_back(
        &self,
        request: HealRequest<'_>,
        alias: &str,
    ) -> Result<HealOutcome, HealError> {
        let function = request.resource_id;
        if function.contains(':') {
            return Err(HealError::new(format!(
                "resource id `{function}` is not a plain function name: nothing was changed"
            )));
        }
        let live = self
            .lambda
            .get_alias()
            .function_name(function)
            .name(alias)
            .send()
            .await
            .map_err(|e| api_error("GetAlias", e))?;
        let current = live.function_version().unwrap_or_default().to_owned();

        if self.opted_out(&live).await? {
            return Ok(HealOutcome::Skipped {
                reason: SkipReason::OptedOut,
                summary: format!("function {function} is tagged {OPT_OUT_TAG}=true"),
            });
        }
        if let Some(weights) = live
            .routing_config()
            .and_then(|routing| routing.additional_version_weights())
            .filter(|weights| !weights.is_empty())
        {
            let shifting: Vec<&str> = weights.keys().map(String::as_str).collect();
            return Ok(HealOutcome::Skipped {
                reason: SkipReason::Unsafe,
                summary: format!(
                    "alias {alias} of {function} is shifting traffic between version {current} and {}: its deployment owns the rollback",
                    shifting.join(", ")
                ),
            });
        }

        let mut versions = Vec::new();
        let mut pages = self
            .lambda
            .list_versions_by_function()
            .function_name(function)
            .into_paginator()
            .items()
            .send();
        while let Some(version) = pages.next().await {
            let version = version.map_err(|e| api_error("ListVersionsByFunction", e))?;
            if let Some(number) = version.version() {
                versions.push(number.to_owned());
            }
        }
        let Some(previous) = previous_version(&current, versions.iter().map(String::as_str)) else {
            return Ok(HealOutcome::Skipped {
                reason: SkipReason::NotNeeded,
                summary: format!(
                    "alias {alias} of {function} points at version {current}, and no published version precedes it: nothing to roll back to"
                ),
            });
        };
        let previous = previous.to_string();

        self.lambda
            .update_alias()
            .function_name(function)
            .name(alias)
            .function_version(&previous)
            .set_revision_id(live.revision_id().map(str::to_owned))
            .send()
            .await
            .map_err(|e| api_error("UpdateAlias", e))?;
        Ok(HealOutcome::Healed {
            summary: format!(
                "rolled alias {alias} of {function} back from version {current} to {previous}"
            ),
            details: BTreeMap::from([
                ("from_version".to_owned(), current),
                ("to_version".to_owned(), previous),
            ]),
            reverts: Vec::new(),
        })
    }

    /// Whether the function's tags opt it out.
    async fn opted_out(&self, alias: &GetAliasOutput) -> Result<bool, HealError> {
        let arn = alias
            .alias_arn()
            .and_then(unqualified_function_arn)
            .ok_or_else(|| HealError::new("GetAlias returned no usable alias ARN"))?;
        let tags = self
            .lambda
            .list_tags()
            .resource(&arn)
            .send()
            .await
            .map_err(|e| api_error("ListTags", e))?;
        let tags: BTreeMap<String, String> = tags
            .tags()
            .into_iter()
            .flatten()
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        Ok(is_opted_out(&tags))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_previous_version_is_the_largest_published_one_below_the_current() {
        let versions = ["$LATEST", "1", "2", "3", "10", "11"];
        assert_eq!(previous_version("11", versions), Some(10));
        assert_eq!(previous_version("10", versions), Some(3));
        assert_eq!(previous_version("3", ["$LATEST", "3", "1"]), Some(1));
        assert_eq!(previous_version("1", versions), None);
        assert_eq!(previous_version("$LATEST", versions), None);
    }

    #[test]
    fn alias_arns_lose_their_qualifier() {
        assert_eq!(
            unqualified_function_arn("arn:aws:lambda:us-east-1:123456789012:function:orders:live")
                .as_deref(),
            Some("arn:aws:lambda:us-east-1:123456789012:function:orders")
        );
        assert_eq!(
            unqualified_function_arn("arn:aws:lambda:us-east-1:123456789012:function:orders")
                .as_deref(),
            Some("arn:aws:lambda:us-east-1:123456789012:function:orders")
        );
        assert_eq!(unqualified_function_arn("orders:live"), None);
    }
}
