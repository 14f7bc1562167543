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

use aws_sdk_elasticache::Client as ElastiCacheClient;
use aws_sdk_elasticache::types::CacheCluster;
use aws_sdk_lambda::Client as LambdaClient;
use serde_json::json;

use autoheal_aws::tags::{OPT_OUT_TAG, is_opted_out};
use autoheal_core::{HealError, HealOutcome, HealRequest, SkipReason};

use crate::{hook, tag_map};
use autoheal_aws::errors::api_error;

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
        let reply =
            hook::invoke(&self.lambda, "cache-repair hook", hook_function, &payload).await?;
        let details = hook::details(hook_function, &reply);
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
