//! Lookups more than one layer makes, each behind the cargo feature of its service so that a
//! function links only the SDKs it uses.

#[cfg(feature = "ec2")]
pub use ec2::{find_instance, instance_is_gone};
#[cfg(feature = "autoscaling")]
pub use groups::{auto_scaling_group_of, find_group, group_name_of};
#[cfg(feature = "rds")]
pub use rds::{describe_db_instance, describe_db_snapshot};

#[cfg(feature = "rds")]
mod rds {
    use aws_sdk_rds::Client;
    use aws_sdk_rds::types::{DbInstance, DbSnapshot};

    use autoheal_core::HealError;

    use crate::errors::api_error;

    /// One DB instance by id (one id, one answer: no page to follow); `None` when RDS does
    /// not know it.
    pub async fn describe_db_instance(
        rds: &Client,
        id: &str,
    ) -> Result<Option<DbInstance>, HealError> {
        match rds
            .describe_db_instances()
            .db_instance_identifier(id)
            .send()
            .await
        {
            Ok(output) => Ok(output
                .db_instances
                .unwrap_or_default()
                .into_iter()
                .find(|instance| instance.db_instance_identifier() == Some(id))),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_db_instance_not_found_fault()) =>
            {
                Ok(None)
            }
            Err(e) => Err(api_error("DescribeDBInstances", e)),
        }
    }

    /// One DB snapshot by id; `None` when RDS does not know it (yet).
    pub async fn describe_db_snapshot(
        rds: &Client,
        snapshot_id: &str,
    ) -> Result<Option<DbSnapshot>, HealError> {
        match rds
            .describe_db_snapshots()
            .db_snapshot_identifier(snapshot_id)
            .send()
            .await
        {
            Ok(output) => Ok(output.db_snapshots().first().cloned()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_db_snapshot_not_found_fault()) =>
            {
                Ok(None)
            }
            Err(e) => Err(api_error("DescribeDBSnapshots", e)),
        }
    }
}

#[cfg(feature = "ec2")]
mod ec2 {
    use aws_sdk_ec2::Client;
    use aws_sdk_ec2::types::{Instance, InstanceStateName};
    use aws_smithy_types::error::metadata::ProvideErrorMetadata;

    use autoheal_core::HealError;

    use crate::errors::api_error;

    /// One instance by id, as `DescribeInstances` reports it (one id, one answer: no page to
    /// follow); `None` when EC2 does not know it.
    pub async fn find_instance(
        ec2: &Client,
        instance_id: &str,
    ) -> Result<Option<Instance>, HealError> {
        let output = match ec2
            .describe_instances()
            .instance_ids(instance_id)
            .send()
            .await
        {
            Ok(output) => output,
            Err(e) if e.code() == Some("InvalidInstanceID.NotFound") => return Ok(None),
            Err(e) => return Err(api_error("DescribeInstances", e)),
        };
        Ok(output
            .reservations
            .unwrap_or_default()
            .into_iter()
            .flat_map(|reservation| reservation.instances.unwrap_or_default())
            .find(|instance| instance.instance_id() == Some(instance_id)))
    }

    /// Whether the instance is terminated (or shutting down), or unknown to EC2: replaced by
    /// its Auto Scaling group, or terminated by someone.
    pub async fn instance_is_gone(ec2: &Client, instance_id: &str) -> Result<bool, HealError> {
        let instance = find_instance(ec2, instance_id).await?;
        let state = instance
            .as_ref()
            .and_then(|instance| instance.state())
            .and_then(|state| state.name());
        Ok(matches!(
            state,
            None | Some(InstanceStateName::Terminated | InstanceStateName::ShuttingDown)
        ))
    }
}

#[cfg(feature = "autoscaling")]
mod groups {
    use std::collections::BTreeSet;

    use aws_sdk_autoscaling::Client as AutoScalingClient;
    use aws_sdk_autoscaling::types::{AutoScalingGroup, LifecycleState};
    use aws_sdk_ec2::Client as Ec2Client;
    use aws_sdk_ec2::types::SummaryStatus;

    use autoheal_core::{GroupView, HealError};

    use crate::errors::api_error;

    /// `DescribeInstanceStatus` takes at most this many instance ids per call.
    const DESCRIBE_STATUS_BATCH: usize = 100;

    /// The name of the Auto Scaling group `instance_id` is a member of, if any (one id, one
    /// answer: no page to follow).
    pub async fn group_name_of(
        autoscaling: &AutoScalingClient,
        instance_id: &str,
    ) -> Result<Option<String>, HealError> {
        Ok(autoscaling
            .describe_auto_scaling_instances()
            .instance_ids(instance_id)
            .send()
            .await
            .map_err(|e| api_error("DescribeAutoScalingInstances", e))?
            .auto_scaling_instances
            .unwrap_or_default()
            .into_iter()
            .find(|member| member.instance_id() == Some(instance_id))
            .and_then(|member| member.auto_scaling_group_name))
    }

    /// One group by name, as Auto Scaling describes it (one name, one answer: no page to
    /// follow); `None` when Auto Scaling does not know it.
    pub async fn find_group(
        autoscaling: &AutoScalingClient,
        name: &str,
    ) -> Result<Option<AutoScalingGroup>, HealError> {
        Ok(autoscaling
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(name)
            .send()
            .await
            .map_err(|e| api_error("DescribeAutoScalingGroups", e))?
            .auto_scaling_groups
            .unwrap_or_default()
            .into_iter()
            .find(|group| group.auto_scaling_group_name() == Some(name)))
    }

    /// The Auto Scaling group `instance_id` is a member of, read live for the group guard
    /// (`None` when it is in none): its size (its desired capacity, or its members if more)
    /// and how many members are unhealthy now: marked so by the group or not in service,
    /// failing a status check, desired but missing, and the alarmed instance itself.
    pub async fn auto_scaling_group_of(
        ec2: &Ec2Client,
        autoscaling: &AutoScalingClient,
        instance_id: &str,
    ) -> Result<Option<GroupView>, HealError> {
        let Some(name) = group_name_of(autoscaling, instance_id).await? else {
            return Ok(None);
        };
        let Some(group) = find_group(autoscaling, &name).await? else {
            return Ok(None);
        };
        let members: Vec<&str> = group
            .instances()
            .iter()
            .filter_map(|member| member.instance_id())
            .collect();
        let mut unhealthy: BTreeSet<&str> = group
            .instances()
            .iter()
            .filter(|member| {
                member.health_status() != Some("Healthy")
                    || member.lifecycle_state() != Some(&LifecycleState::InService)
            })
            .filter_map(|member| member.instance_id())
            .collect();
        for batch in members.chunks(DESCRIBE_STATUS_BATCH) {
            // Named ids are answered in one page (EC2 pages this call only when none are
            // named); a page that says more follows is refused rather than counted short.
            let page = ec2
                .describe_instance_status()
                .set_instance_ids(Some(batch.iter().map(|id| (*id).to_owned()).collect()))
                .send()
                .await
                .map_err(|e| api_error("DescribeInstanceStatus", e))?;
            if page.next_token().is_some_and(|token| !token.is_empty()) {
                return Err(HealError::new(
                    "DescribeInstanceStatus: the answer for named instances was paged",
                ));
            }
            for status in page.instance_statuses() {
                let impaired = [
                    status.system_status().and_then(|s| s.status()),
                    status.instance_status().and_then(|s| s.status()),
                ]
                .contains(&Some(&SummaryStatus::Impaired));
                if let Some(member) = status.instance_id().filter(|_| impaired)
                    && let Some(known) = members.iter().find(|m| **m == member)
                {
                    unhealthy.insert(known);
                }
            }
        }
        unhealthy.insert(instance_id);
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let desired = group
            .desired_capacity()
            .map_or(0, |d| u32::try_from(d).unwrap_or(0));
        let missing = desired.saturating_sub(count(members.len()));
        Ok(Some(GroupView {
            id: format!("auto-scaling-group/{name}"),
            size: count(members.len()).max(desired),
            unhealthy: count(unhealthy.len()).saturating_add(missing),
        }))
    }
}
