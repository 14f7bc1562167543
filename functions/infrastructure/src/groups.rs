//! Reads of Auto Scaling groups that the layer's actions share: a group, the group an instance
//! belongs to, what a person suspended on it, and an instance refresh under way.

use std::collections::BTreeSet;

use aws_sdk_autoscaling::Client as AutoScalingClient;
use aws_sdk_autoscaling::types::{AutoScalingGroup, InstanceRefreshStatus};

use autoheal_aws::errors::api_error;
use autoheal_core::HealError;

pub use autoheal_aws::lookups::group_name_of as group_of;

/// One group by name; `None` when Auto Scaling does not know it, or is deleting it.
pub async fn describe(
    autoscaling: &AutoScalingClient,
    name: &str,
) -> Result<Option<AutoScalingGroup>, HealError> {
    let found = autoheal_aws::lookups::find_group(autoscaling, name).await?;
    // A group being deleted terminates its instances itself.
    Ok(found.filter(|group| {
        !group
            .status()
            .is_some_and(|status| status.starts_with("Delete"))
    }))
}

/// The processes suspended on the group (`SuspendProcesses`: a person's freeze).
pub fn suspended(group: &AutoScalingGroup) -> BTreeSet<String> {
    group
        .suspended_processes()
        .iter()
        .filter_map(|process| process.process_name().map(str::to_owned))
        .collect()
}

/// Which of `needed` are suspended on the group, in the order named.
pub fn suspended_of<'a>(group: &AutoScalingGroup, needed: &[&'a str]) -> Vec<&'a str> {
    let suspended = suspended(group);
    needed
        .iter()
        .copied()
        .filter(|process| suspended.contains(*process))
        .collect()
}

/// An instance refresh under way on a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refresh {
    pub id: String,
    pub status: String,
    pub percentage_complete: Option<i32>,
}

impl Refresh {
    pub fn describe(&self) -> String {
        match self.percentage_complete {
            Some(done) => format!(
                "instance refresh {} is {} ({done} % done)",
                self.id, self.status
            ),
            None => format!("instance refresh {} is {}", self.id, self.status),
        }
    }
}

/// The group's instance refresh that is under way (pending, in progress, baking, being
/// cancelled or rolled back), if any: it replaces the group's instances itself.
pub async fn refresh_under_way(
    autoscaling: &AutoScalingClient,
    name: &str,
) -> Result<Option<Refresh>, HealError> {
    let mut pages = autoscaling
        .describe_instance_refreshes()
        .auto_scaling_group_name(name)
        .into_paginator()
        .send();
    let mut found = None;
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| api_error("DescribeInstanceRefreshes", e))?;
        for refresh in page.instance_refreshes() {
            let active = matches!(
                refresh.status(),
                Some(
                    InstanceRefreshStatus::Pending
                        | InstanceRefreshStatus::InProgress
                        | InstanceRefreshStatus::Baking
                        | InstanceRefreshStatus::Cancelling
                        | InstanceRefreshStatus::RollbackInProgress
                )
            );
            if active && found.is_none() {
                found = Some(Refresh {
                    id: refresh.instance_refresh_id().unwrap_or_default().to_owned(),
                    status: refresh
                        .status()
                        .map_or_else(String::new, |s| s.as_str().to_owned()),
                    percentage_complete: refresh.percentage_complete(),
                });
            }
        }
    }
    Ok(found)
}
