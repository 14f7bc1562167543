//! Lookups more than one layer makes, each behind the cargo feature of its service so that a
//! function links only the SDKs it uses.

#[cfg(feature = "ec2")]
pub use ec2::{describe_instance, instance_is_gone};
#[cfg(feature = "autoscaling")]
pub use groups::auto_scaling_group_of;
#[cfg(feature = "rds")]
pub use rds::{describe_db_instance, describe_db_snapshot};

#[cfg(feature = "rds")]
mod rds {
    use aws_sdk_rds::Client;
    use aws_sdk_rds::types::{DbInstance, DbSnapshot};

    use autoheal_core::HealError;

    use crate::errors::api_error;

    /// One DB instance by id, read through the paginator (one page for one id); `None` when
    /// RDS does not know it.
    pub async fn describe_db_instance(
        rds: &Client,
        id: &str,
    ) -> Result<Option<DbInstance>, HealError> {
        let mut pages = rds
            .describe_db_instances()
            .db_instance_identifier(id)
            .into_paginator()
            .items()
            .send();
        while let Some(instance) = pages.next().await {
            match instance {
                Ok(instance) if instance.db_instance_identifier() == Some(id) => {
                    return Ok(Some(instance));
                }
                Ok(_) => {}
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_db_instance_not_found_fault()) =>
                {
                    return Ok(None);
                }
                Err(e) => return Err(api_error("DescribeDBInstances", e)),
            }
        }
        Ok(None)
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

    /// Whether the instance is terminated (or shutting down), or unknown to EC2: replaced by
    /// its Auto Scaling group, or terminated by someone.
    pub async fn instance_is_gone(ec2: &Client, instance_id: &str) -> Result<bool, HealError> {
        let output = match ec2
            .describe_instances()
            .instance_ids(instance_id)
            .send()
            .await
        {
            Ok(output) => output,
            Err(e) if e.code() == Some("InvalidInstanceID.NotFound") => return Ok(true),
            Err(e) => return Err(api_error("DescribeInstances", e)),
        };
        let state = output
            .reservations()
            .iter()
            .flat_map(|reservation| reservation.instances())
            .find(|instance| instance.instance_id() == Some(instance_id))
            .and_then(|instance| instance.state())
            .and_then(|state| state.name());
        Ok(matches!(
            state,
            None | Some(InstanceStateName::Terminated | InstanceStateName::ShuttingDown)
        ))
    }

    /// One instance by id, as `DescribeInstances` reports it; an error names the id when the
    /// service does not know it.
    pub async fn describe_instance(ec2: &Client, instance_id: &str) -> Result<Instance, HealError> {
        ec2.describe_instances()
            .instance_ids(instance_id)
            .send()
            .await
            .map_err(|e| api_error("DescribeInstances", e))?
            .reservations()
            .iter()
            .flat_map(|reservation| reservation.instances())
            .find(|instance| instance.instance_id() == Some(instance_id))
            .cloned()
            .ok_or_else(|| HealError::new(format!("DescribeInstances: no instance {instance_id}")))
    }
}

#[cfg(feature = "autoscaling")]
mod groups {
    use std::collections::BTreeSet;

    use aws_sdk_autoscaling::Client as AutoScalingClient;
    use aws_sdk_autoscaling::types::LifecycleState;
    use aws_sdk_ec2::Client as Ec2Client;
    use aws_sdk_ec2::types::SummaryStatus;

    use autoheal_core::{GroupView, HealError};

    use crate::errors::api_error;

    /// `DescribeInstanceStatus` takes at most this many instance ids per call.
    const DESCRIBE_STATUS_BATCH: usize = 100;

    /// The Auto Scaling group `instance_id` is a member of, read live for the group guard
    /// (`None` when it is in none): its size (its desired capacity, or its members if more)
    /// and how many members are unhealthy now: marked so by the group or not in service,
    /// failing a status check, desired but missing, and the alarmed instance itself.
    pub async fn auto_scaling_group_of(
        ec2: &Ec2Client,
        autoscaling: &AutoScalingClient,
        instance_id: &str,
    ) -> Result<Option<GroupView>, HealError> {
        let mut memberships = autoscaling
            .describe_auto_scaling_instances()
            .instance_ids(instance_id)
            .into_paginator()
            .items()
            .send();
        let mut name = None;
        while let Some(member) = memberships.next().await {
            let member = member.map_err(|e| api_error("DescribeAutoScalingInstances", e))?;
            if member.instance_id() == Some(instance_id) {
                name = member.auto_scaling_group_name().map(str::to_owned);
            }
        }
        let Some(name) = name else {
            return Ok(None);
        };
        let mut groups = autoscaling
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(&name)
            .into_paginator()
            .items()
            .send();
        let mut found = None;
        while let Some(group) = groups.next().await {
            let group = group.map_err(|e| api_error("DescribeAutoScalingGroups", e))?;
            if group.auto_scaling_group_name() == Some(name.as_str()) {
                found = Some(group);
            }
        }
        let Some(group) = found else {
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
            let mut statuses = ec2
                .describe_instance_status()
                .set_instance_ids(Some(batch.iter().map(|id| (*id).to_owned()).collect()))
                .into_paginator()
                .items()
                .send();
            while let Some(status) = statuses.next().await {
                let status = status.map_err(|e| api_error("DescribeInstanceStatus", e))?;
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
