//! `repair-cache`: hand an ElastiCache cluster whose hit rate collapsed to the operator's
//! cache-repair hook.
//!
//! Only the application knows which keys are hot, which are stale and how to rebuild them, so
//! the repair itself (warm, evict, set the TTL) is the operator's Lambda function
//! (`hook_function`). autoheal checks the cluster first (it exists, is `available`, has not
//! opted out), then invokes the hook synchronously with
//! `{"action": "repair-cache", "cache_cluster_id", "ttl_seconds", "incident", "attempt",
//! "idempotency_token"}`. A hook that reports an error (`FunctionError`) fails the run with the
//! hook's own error payload.

use std::collections::BTreeMap;

use aws_sdk_elasticache::Client as ElastiCacheClient;
use aws_sdk_elasticache::types::CacheCluster;
use aws_sdk_lambda::Client as LambdaClient;
use aws_sdk_lambda::types::InvocationType;
use aws_smithy_types::Blob;
use serde_json::json;

use autoheal_aws::tags::{OPT_OUT_TAG, is_opted_out};
use autoheal_core::{HealError, HealOutcome, HealRequest, SkipReason};

use crate::tag_map;
use autoheal_aws::errors::api_error;

/// How much of the hook's reply the record keeps.
const REPLY_LIMIT: usize = 512;

/// Repairs caches through the operator's hook.
#[derive(Debug, Clone)]
pub struct CacheRepairer {
    elasticache: ElastiCacheClient,
    lambda: LambdaClient,
}

impl CacheRepairer {
    pub fn new(elasticache: ElastiCacheClient, lambda: LambdaClient) -> Self {
        CacheRepairer {
            elasticache,
            lambda,
        }
    }

    pub async fn repair(
        &self,
        request: HealRequest<'_>,
        hook_function: &str,
        ttl_seconds: Option<u32>,
    ) -> Result<HealOutcome, HealError> {
        let cluster_id = request.resource_id;
        let cluster = self.describe(cluster_id).await?;
        if self.opted_out(&cluster).await? {
            return Ok(HealOutcome::Skipped {
                reason: SkipReason::OptedOut,
                summary: format!("cache cluster {cluster_id} is tagged {OPT_OUT_TAG}=true"),
            });
        }
        let status = cluster.cache_cluster_status().unwrap_or("unknown");
        if status != "available" {
            return Ok(HealOutcome::Skipped {
                reason: SkipReason::Unsafe,
                summary: format!(
                    "cache cluster {cluster_id} is {status}, not available: the hook could not \
                     repair it now"
                ),
            });
        }

        let payload = json!({
            "action": "repair-cache",
            "cache_cluster_id": cluster_id,
            "ttl_seconds": ttl_seconds,
            "incident": request.incident_id,
            "attempt": request.attempt,
            "idempotency_token": request.idempotency_token,
        });
        let reply = self
            .lambda
            .invoke()
            .function_name(hook_function)
            .invocation_type(InvocationType::RequestResponse)
            .payload(Blob::new(payload.to_string()))
            .send()
            .await
            .map_err(|e| api_error("Invoke", e))?;
        let body = reply
            .payload()
            .map(|blob| String::from_utf8_lossy(blob.as_ref()).into_owned())
            .unwrap_or_default();
        let details = hook_reply(
            hook_function,
            reply.status_code(),
            reply.function_error(),
            &body,
        )?;
        let ttl = ttl_seconds.map_or(String::new(), |ttl| format!(" (TTL {ttl} s)"));
        Ok(HealOutcome::Healed {
            summary: format!(
                "cache-repair hook {hook_function} repaired cache cluster {cluster_id}{ttl}"
            ),
            details,
            reverts: Vec::new(),
        })
    }

    async fn describe(&self, cluster_id: &str) -> Result<CacheCluster, HealError> {
        self.elasticache
            .describe_cache_clusters()
            .cache_cluster_id(cluster_id)
            .send()
            .await
            .map_err(|e| api_error("DescribeCacheClusters", e))?
            .cache_clusters()
            .iter()
            .find(|c| c.cache_cluster_id() == Some(cluster_id))
            .cloned()
            .ok_or_else(|| {
                HealError::new(format!(
                    "DescribeCacheClusters: no cache cluster {cluster_id}"
                ))
            })
    }

    /// The cluster, or the replication group it belongs to, is tagged `autoheal:disabled=true`.
    async fn opted_out(&self, cluster: &CacheCluster) -> Result<bool, HealError> {
        let id = cluster.cache_cluster_id().unwrap_or_default();
        let arn = cluster.arn().ok_or_else(|| {
            HealError::new(format!(
                "DescribeCacheClusters returned no ARN for {id}: cannot read its tags"
            ))
        })?;
        let mut arns = vec![arn.to_owned()];
        if let (Some(group), Some((prefix, _))) =
            (cluster.replication_group_id(), arn.split_once(":cluster:"))
        {
            arns.push(format!("{prefix}:replicationgroup:{group}"));
        }
        for arn in arns {
            let output = self
                .elasticache
                .list_tags_for_resource()
                .resource_name(&arn)
                .send()
                .await
                .map_err(|e| api_error("ListTagsForResource", e))?;
            let tags = tag_map(output.tag_list().iter().map(|t| (t.key(), t.value())));
            if is_opted_out(&tags) {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// The record's details for the hook's reply, or the hook's error.
fn hook_reply(
    hook: &str,
    status_code: i32,
    function_error: Option<&str>,
    body: &str,
) -> Result<BTreeMap<String, String>, HealError> {
    let reply = truncate(body.trim(), REPLY_LIMIT);
    if let Some(kind) = function_error {
        return Err(HealError::new(format!(
            "cache-repair hook {hook} failed ({kind}): {reply}"
        )));
    }
    if !(200..300).contains(&status_code) {
        return Err(HealError::new(format!(
            "cache-repair hook {hook} answered status {status_code}: {reply}"
        )));
    }
    let mut details = BTreeMap::from([
        ("hook_function".to_owned(), hook.to_owned()),
        ("hook_status_code".to_owned(), status_code.to_string()),
    ]);
    if !reply.is_empty() {
        details.insert("hook_reply".to_owned(), reply);
    }
    Ok(details)
}

fn truncate(text: &str, limit: usize) -> String {
    match text.char_indices().nth(limit) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn a_function_error_fails_with_the_hooks_payload() {
        let error = hook_reply(
            "hook",
            200,
            Some("Unhandled"),
            r#"{"errorMessage":"redis timeout","errorType":"TimeoutError"}"#,
        )
        .expect_err("the hook failed");
        assert!(error.message.contains("Unhandled"), "{error}");
        assert!(error.message.contains("redis timeout"), "{error}");
    }

    #[test]
    fn a_successful_reply_is_recorded() {
        let details = hook_reply("hook", 200, None, r#"{"evicted": 12}"#).expect("ok");
        assert_eq!(details["hook_function"], "hook");
        assert_eq!(details["hook_status_code"], "200");
        assert_eq!(details["hook_reply"], r#"{"evicted": 12}"#);
    }

    #[test]
    fn long_replies_are_cut() {
        let details = hook_reply("hook", 200, None, &"x".repeat(2000)).expect("ok");
        assert_eq!(details["hook_reply"].chars().count(), REPLY_LIMIT + 1);
        assert!(hook_reply("hook", 500, None, "").is_err());
    }
}
