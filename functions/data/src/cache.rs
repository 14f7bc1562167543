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
//!
//! Before an attempt ([`CacheRepairer::assess`]): a cluster that does not exist or is being
//! deleted is `gone`; one ElastiCache is working on (its nodes rebooting, a snapshot, being
//! created) is waited for (`aws-healing`), and one a person is modifying is theirs
//! (`operator-hold`): the hook could not repair it meanwhile.

use aws_sdk_elasticache::Client as ElastiCacheClient;
use aws_sdk_elasticache::types::CacheCluster;
use aws_sdk_lambda::Client as LambdaClient;
use serde_json::json;

use autoheal_aws::errors::api_error;
use autoheal_aws::tags::is_opted_out;
use autoheal_core::{Assessment, HealError, HealOutcome, HealRequest, SkipReason};

use crate::{hook, tag_map};

/// How long to wait before looking again at a cluster ElastiCache is working on.
const AWS_WORK_RECHECK_SECONDS: u64 = 120;
/// How long to wait before looking again at a cluster a person is modifying.
const PERSON_WORK_RECHECK_SECONDS: u64 = 300;

/// What a cluster's status (`CacheClusterStatus`) says before an attempt, when it says to
/// wait or that the cluster is going away.
pub fn status_assessment(cluster_id: &str, status: &str) -> Option<Assessment> {
    let summary = |what: &str| format!("cache cluster {cluster_id} is {status}: {what}");
    match status {
        "deleting" | "deleted" => Some(Assessment::gone(summary("it is being deleted"))),
        "rebooting cluster nodes" => Some(Assessment::aws_healing(
            summary("its nodes are rebooting"),
            AWS_WORK_RECHECK_SECONDS,
        )),
        "snapshotting" => Some(Assessment::aws_healing(
            summary("ElastiCache is taking a snapshot of it"),
            AWS_WORK_RECHECK_SECONDS,
        )),
        "creating" => Some(Assessment::aws_healing(
            summary("it is being created"),
            AWS_WORK_RECHECK_SECONDS,
        )),
        "modifying" => Some(Assessment::operator_hold(
            summary("a modification is being applied"),
            PERSON_WORK_RECHECK_SECONDS,
        )),
        _ => None,
    }
}

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

    /// Before an attempt: whether the cluster is there, and whether someone is working on it.
    pub async fn assess(&self, request: HealRequest<'_>) -> Result<Assessment, HealError> {
        let cluster_id = request.resource_id;
        let Some(cluster) = self.describe(cluster_id).await? else {
            return Ok(Assessment::gone(format!(
                "cache cluster {cluster_id} does not exist"
            )));
        };
        let status = cluster.cache_cluster_status().unwrap_or("unknown");
        Ok(status_assessment(cluster_id, status).unwrap_or(Assessment::Proceed))
    }

    /// Whether the cluster no longer exists (or is being deleted).
    pub async fn is_gone(&self, cluster_id: &str) -> Result<bool, HealError> {
        Ok(match self.describe(cluster_id).await? {
            None => true,
            Some(cluster) => matches!(cluster.cache_cluster_status(), Some("deleting" | "deleted")),
        })
    }

    pub async fn repair(
        &self,
        request: HealRequest<'_>,
        hook_function: &str,
        ttl_seconds: Option<u32>,
    ) -> Result<HealOutcome, HealError> {
        let cluster_id = request.resource_id;
        let Some(cluster) = self.describe(cluster_id).await? else {
            return Ok(HealOutcome::Skipped {
                reason: SkipReason::Gone,
                summary: format!("cache cluster {cluster_id} does not exist"),
            });
        };
        if self.opted_out(&cluster).await? {
            return Ok(HealOutcome::Skipped {
                reason: SkipReason::OptedOut,
                summary: format!(
                    "cache cluster {cluster_id} {}",
                    autoheal_aws::tags::opted_out_phrase()
                ),
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

    /// The cluster (every page of the answer), or `None` when ElastiCache does not know it.
    async fn describe(&self, cluster_id: &str) -> Result<Option<CacheCluster>, HealError> {
        let mut pages = self
            .elasticache
            .describe_cache_clusters()
            .cache_cluster_id(cluster_id)
            .into_paginator()
            .items()
            .send();
        while let Some(cluster) = pages.next().await {
            match cluster {
                Ok(cluster) if cluster.cache_cluster_id() == Some(cluster_id) => {
                    return Ok(Some(cluster));
                }
                Ok(_) => {}
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_cache_cluster_not_found_fault()) =>
                {
                    return Ok(None);
                }
                Err(e) => return Err(api_error("DescribeCacheClusters", e)),
            }
        }
        Ok(None)
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

#[cfg(test)]
mod tests {
    use super::*;
    use autoheal_core::WaitReason;

    #[test]
    fn a_cluster_being_worked_on_is_waited_for_and_one_being_deleted_is_gone() {
        let reason = |status| match status_assessment("sessions", status) {
            Some(Assessment::Wait(wait)) => Some(wait.reason),
            _ => None,
        };
        assert_eq!(
            reason("rebooting cluster nodes"),
            Some(WaitReason::AwsHealing)
        );
        assert_eq!(reason("snapshotting"), Some(WaitReason::AwsHealing));
        assert_eq!(reason("modifying"), Some(WaitReason::OperatorHold));
        assert!(matches!(
            status_assessment("sessions", "deleting"),
            Some(Assessment::Gone { .. })
        ));
        assert_eq!(status_assessment("sessions", "available"), None);
        assert_eq!(status_assessment("sessions", "incompatible-network"), None);
    }
}
