//! `rollback-lambda-alias`: point a Lambda alias back at the version that was live on it
//! before the current one.
//!
//! Before an attempt ([`AliasRollback::assess`]): a function that does not exist is `gone`;
//! an alias splitting traffic between two versions is a shift under way, waited for: CodeDeploy's
//! (`aws-healing`: its deployment rolls back on its own alarms) or a person's (`operator-hold`).
//!
//! The action changes nothing when the alarm does not speak for the alias (it watches another
//! alias, a version, or `ExecutedVersion`: see [`guard`]), when the function opted out, or
//! while the alias still splits traffic. The version to roll back to is the one that was live
//! on the alias before the current one, read from the alias's history in CloudTrail
//! ([`history`]): never a version that was only published. It refuses (`unsafe`, for a person)
//! when
//!
//! - CodeDeploy put the current version in place (any traffic shift, all at once included):
//!   the rollback belongs to CodeDeploy (a new deployment, or stopping one with rollback), and
//!   an alias moved behind its back fails its next deployment's check of the current version;
//! - the current version was itself put back over a newer one (a rollback): going "back" would
//!   roll forward to the version someone retired;
//! - an earlier attempt of this incident already rolled the alias back, or the alias is still
//!   on the version an earlier incident's rollback restored: autoheal rolls back one version
//!   per incident, never walks back further;
//! - the history does not say which version was live before (older than CloudTrail's 90
//!   days). A change too recent to be in CloudTrail yet is waited for, in follow-ups, for
//!   [`HISTORY_DELAY_SECONDS`] after the alarm.
//!
//! The rollback is recorded on the function (tag `autoheal:rollback:<alias>`) before the alias
//! moves, and the alias is moved with the `RevisionId` that was read, so a concurrent change
//! (a deployment moving the alias meanwhile) makes the update fail instead of being
//! overwritten.

pub mod guard;
pub mod history;

use std::collections::BTreeMap;

use aws_sdk_cloudtrail::Client as CloudTrailClient;
use aws_sdk_lambda::Client as LambdaClient;
use aws_sdk_lambda::operation::get_alias::GetAliasOutput;
use chrono::Utc;

use autoheal_aws::errors::api_error;
use autoheal_aws::tags::is_opted_out;
use autoheal_core::{Assessment, HealError, HealOutcome, HealRequest, SkipReason};

use guard::{Earlier, RollbackRecord, incident_mark, outside_scope, rollback_tag_key};
use history::{Previous, Writer};

/// How long after the alarm a change of the alias that CloudTrail has not recorded yet is
/// waited for (CloudTrail records an API call within minutes, 15 at most).
pub const HISTORY_DELAY_SECONDS: i64 = 900;
/// How often the action looks again for it meanwhile.
pub const HISTORY_POLL_SECONDS: u64 = 120;
/// How often a shift of the alias under way is looked at again.
const SHIFT_RECHECK_SECONDS: u64 = 60;
/// How often a person's split of the alias is looked at again.
const HOLD_RECHECK_SECONDS: u64 = 300;

/// The unqualified function ARN of an alias or version ARN
/// (`arn:<partition>:lambda:<region>:<account>:function:<name>[:<qualifier>]`).
pub fn unqualified_function_arn(arn: &str) -> Option<String> {
    let parts: Vec<&str> = arn.split(':').collect();
    (parts.len() >= 7 && parts[0] == "arn" && parts[5] == "function").then(|| parts[..7].join(":"))
}

/// The versions an alias sends a share of its traffic to, besides its own.
fn weighted(alias: &GetAliasOutput) -> Vec<(String, f64)> {
    alias
        .routing_config()
        .and_then(|routing| routing.additional_version_weights())
        .map(|weights| weights.iter().map(|(v, w)| (v.clone(), *w)).collect())
        .unwrap_or_default()
}

/// Whether `version` is a published version's number (not `$LATEST`).
fn numbered(version: &str) -> Option<u64> {
    version.parse().ok()
}

/// The alias, or why there is none to read.
enum Lookup {
    Found(Box<GetAliasOutput>),
    /// The function does not exist.
    NoFunction,
    /// The function exists without the alias.
    NoAlias,
}

/// Rolls Lambda aliases back.
#[derive(Debug, Clone)]
pub struct AliasRollback {
    lambda: LambdaClient,
    cloudtrail: CloudTrailClient,
}

impl AliasRollback {
    pub fn new(lambda: LambdaClient, cloudtrail: CloudTrailClient) -> Self {
        AliasRollback { lambda, cloudtrail }
    }

    /// Before an attempt: whether the function is there, and whether its alias is in the
    /// middle of a traffic shift (then autoheal waits for whoever shifts it).
    pub async fn assess(
        &self,
        request: HealRequest<'_>,
        alias: &str,
    ) -> Result<Assessment, HealError> {
        let function = plain_name(request.resource_id)?;
        let live = match self.lookup(function, alias).await? {
            Lookup::Found(live) => live,
            Lookup::NoFunction => {
                return Ok(Assessment::gone(format!(
                    "Lambda function {function} does not exist"
                )));
            }
            Lookup::NoAlias => return Ok(Assessment::Proceed),
        };
        let shares = weighted(&live);
        let Some((other, weight)) = shares.first() else {
            return Ok(Assessment::Proceed);
        };
        let current = live.function_version().unwrap_or_default();
        let split = format!(
            "alias {alias} of {function} sends {:.0} % of its traffic to version {other} and the rest to {current}",
            weight * 100.0
        );
        // Who shifts it: the newest recorded change of the alias. A history that cannot be
        // read names nobody, and a person's hold is the careful reading of that.
        let newest = history::read(&self.cloudtrail, function, alias, current, Utc::now())
            .await
            .ok()
            .and_then(|changes| changes.into_iter().max_by_key(|change| change.at));
        Ok(match newest.map(|change| change.by) {
            Some(Writer::CodeDeploy) => Assessment::aws_healing(
                format!("CodeDeploy is shifting it: {split}"),
                SHIFT_RECHECK_SECONDS,
            ),
            Some(Writer::Other(who)) => {
                Assessment::operator_hold(format!("{split}, as {who} set it"), HOLD_RECHECK_SECONDS)
            }
            None => Assessment::operator_hold(
                format!("{split}; CloudTrail does not say who set it"),
                HOLD_RECHECK_SECONDS,
            ),
        })
    }

    /// Whether the function no longer exists.
    pub async fn is_gone(&self, function: &str, alias: &str) -> Result<bool, HealError> {
        let function = plain_name(function)?;
        Ok(matches!(
            self.lookup(function, alias).await?,
            Lookup::NoFunction
        ))
    }

    pub async fn roll_back(
        &self,
        request: HealRequest<'_>,
        alias: &str,
    ) -> Result<HealOutcome, HealError> {
        let function = plain_name(request.resource_id)?;
        let skip = |reason, summary: String| Ok(HealOutcome::Skipped { reason, summary });
        if let Some(why) = outside_scope(request.event, function, alias) {
            return skip(SkipReason::Unsafe, why);
        }
        let live = match self.lookup(function, alias).await? {
            Lookup::Found(live) => live,
            Lookup::NoFunction => {
                return skip(
                    SkipReason::Gone,
                    format!("Lambda function {function} does not exist"),
                );
            }
            Lookup::NoAlias => {
                return skip(
                    SkipReason::NotNeeded,
                    format!("function {function} has no alias {alias}: nothing to roll back"),
                );
            }
        };
        let current = live.function_version().unwrap_or_default().to_owned();
        let function_arn = live
            .alias_arn()
            .and_then(unqualified_function_arn)
            .ok_or_else(|| HealError::new("GetAlias returned no usable alias ARN"))?;
        let tags = self.tags(&function_arn).await?;
        if is_opted_out(&tags) {
            return skip(
                SkipReason::OptedOut,
                format!(
                    "function {function} {}",
                    autoheal_aws::tags::opted_out_phrase()
                ),
            );
        }
        let shares = weighted(&live);
        if !shares.is_empty() {
            let shifting: Vec<&str> = shares.iter().map(|(v, _)| v.as_str()).collect();
            return skip(
                SkipReason::Unsafe,
                format!(
                    "alias {alias} of {function} is shifting traffic between version {current} and {}: its deployment owns the rollback",
                    shifting.join(", ")
                ),
            );
        }

        // One rollback per incident, never over a version autoheal restored.
        let key = rollback_tag_key(alias);
        let record = tags
            .get(&key)
            .and_then(|value| RollbackRecord::parse(value));
        let incident = incident_mark(request.incident_id);
        match guard::earlier(record.as_ref(), &incident, request.attempt, &current) {
            Earlier::None => {}
            Earlier::Done(done) => return Ok(rolled_back(function, alias, &done.from, &done.to)),
            Earlier::SecondInIncident(done) => {
                return skip(
                    SkipReason::Unsafe,
                    format!(
                        "autoheal already rolled alias {alias} of {function} back from version {} to {} in this incident, and it is on {current} now: a second rollback would walk back further, a person decides",
                        done.from, done.to
                    ),
                );
            }
            Earlier::OnRestoredVersion(done) => {
                return skip(
                    SkipReason::Unsafe,
                    format!(
                        "alias {alias} of {function} is on version {current}, which autoheal restored over {} (incident {}): rolling back further is for a person",
                        done.from, done.incident
                    ),
                );
            }
        }

        let changes =
            history::read(&self.cloudtrail, function, alias, &current, Utc::now()).await?;
        let previous = match history::previous_live(&changes, &current) {
            Previous::Version { version, since } => {
                if since.by == Writer::CodeDeploy {
                    return skip(
                        SkipReason::Unsafe,
                        format!(
                            "alias {alias} of {function} is deployed by CodeDeploy (it moved the alias to version {current} at {}): roll back through CodeDeploy, so that its next deployment finds the alias where it left it",
                            since.at
                        ),
                    );
                }
                match (numbered(&version), numbered(&current)) {
                    (Some(before), Some(now)) if before < now => version,
                    _ => {
                        return skip(
                            SkipReason::Unsafe,
                            format!(
                                "alias {alias} of {function} was moved from version {version} to {current} by {} at {}, a rollback itself: going back would roll forward to {version}, a person decides",
                                since.by.describe(),
                                since.at
                            ),
                        );
                    }
                }
            }
            Previous::Never { since } => {
                return skip(
                    SkipReason::NotNeeded,
                    format!(
                        "alias {alias} of {function} has pointed at version {current} since it was created ({}): no version was live on it before, nothing to roll back to",
                        since.at
                    ),
                );
            }
            Previous::Unrecorded { newest } => {
                return Ok(self.unrecorded(request, function, alias, &current, &newest));
            }
            Previous::BeforeHistory { .. } | Previous::Unknown => {
                return skip(
                    SkipReason::Unsafe,
                    format!(
                        "CloudTrail's history of alias {alias} of {function} ({} days) does not say which version was live on it before {current}: a person decides",
                        history::HISTORY_DAYS
                    ),
                );
            }
        };

        // The record goes first: a retry, or the next attempt, finds it whatever happens next.
        let record = RollbackRecord {
            from: current.clone(),
            to: previous.clone(),
            attempt: request.attempt,
            incident,
        };
        self.lambda
            .tag_resource()
            .resource(&function_arn)
            .tags(&key, record.render())
            .send()
            .await
            .map_err(|e| api_error("TagResource", e))?;
        self.lambda
            .update_alias()
            .function_name(function)
            .name(alias)
            .function_version(&previous)
            .set_revision_id(live.revision_id().map(str::to_owned))
            .send()
            .await
            .map_err(|e| api_error("UpdateAlias", e))?;
        Ok(rolled_back(function, alias, &current, &previous))
    }

    /// The alias moved to `current` by a change CloudTrail has not recorded yet: looked for
    /// again for a while after the alarm, then left to a person.
    fn unrecorded(
        &self,
        request: HealRequest<'_>,
        function: &str,
        alias: &str,
        current: &str,
        newest: &str,
    ) -> HealOutcome {
        let waited = request
            .event
            .time
            .map(|alarm| (Utc::now() - alarm).num_seconds());
        let what = format!(
            "CloudTrail has no record yet of how alias {alias} of {function} came to version {current} (its newest record puts it on {newest})"
        );
        match waited {
            Some(seconds) if seconds < HISTORY_DELAY_SECONDS => HealOutcome::Continuing {
                summary: format!("{what}: looking again in {HISTORY_POLL_SECONDS} s"),
                details: BTreeMap::from([("version".to_owned(), current.to_owned())]),
                resume_after_seconds: HISTORY_POLL_SECONDS,
            },
            _ => HealOutcome::Skipped {
                reason: SkipReason::Unsafe,
                summary: format!(
                    "{what}, {} minutes after the alarm: which version was live before is not known, a person decides",
                    HISTORY_DELAY_SECONDS / 60
                ),
            },
        }
    }

    /// The alias, or which of the function and the alias is missing.
    async fn lookup(&self, function: &str, alias: &str) -> Result<Lookup, HealError> {
        match self
            .lambda
            .get_alias()
            .function_name(function)
            .name(alias)
            .send()
            .await
        {
            Ok(live) => Ok(Lookup::Found(Box::new(live))),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                match self
                    .lambda
                    .get_function_configuration()
                    .function_name(function)
                    .send()
                    .await
                {
                    Ok(_) => Ok(Lookup::NoAlias),
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|e| e.is_resource_not_found_exception()) =>
                    {
                        Ok(Lookup::NoFunction)
                    }
                    Err(e) => Err(api_error("GetFunctionConfiguration", e)),
                }
            }
            Err(e) => Err(api_error("GetAlias", e)),
        }
    }

    /// The function's tags.
    async fn tags(&self, function_arn: &str) -> Result<BTreeMap<String, String>, HealError> {
        let tags = self
            .lambda
            .list_tags()
            .resource(function_arn)
            .send()
            .await
            .map_err(|e| api_error("ListTags", e))?;
        Ok(tags
            .tags()
            .into_iter()
            .flatten()
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect())
    }
}

/// The resource id as a plain function name (no ARN, no qualifier).
fn plain_name(resource_id: &str) -> Result<&str, HealError> {
    if resource_id.contains(':') {
        return Err(HealError::new(format!(
            "resource id `{resource_id}` is not a plain function name: nothing was changed"
        )));
    }
    Ok(resource_id)
}

/// The outcome of a rollback from `from` to `to`.
fn rolled_back(function: &str, alias: &str, from: &str, to: &str) -> HealOutcome {
    HealOutcome::Healed {
        summary: format!(
            "rolled alias {alias} of {function} back from version {from} to {to}, the version live on it before"
        ),
        details: BTreeMap::from([
            ("from_version".to_owned(), from.to_owned()),
            ("to_version".to_owned(), to.to_owned()),
        ]),
        reverts: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn only_plain_function_names_are_acted_on() {
        assert!(plain_name("orders").is_ok());
        assert!(plain_name("orders:live").is_err());
        assert!(plain_name("arn:aws:lambda:us-east-1:1:function:orders").is_err());
    }
}
