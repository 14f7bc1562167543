//! `scale-out-auto-scaling-group`: add capacity to a group whose instances fail, and replace
//! the unhealthy ones.
//!
//! Desired capacity only ever grows, and never past the group's maximum; unhealthy members are
//! terminated with `ShouldDecrementDesiredCapacity = false`, so the group launches their
//! replacements. A group whose `Launch` process is suspended is left alone: it could not
//! replace anything.

use std::collections::BTreeMap;

use aws_sdk_autoscaling::Client as AutoScalingClient;
use aws_sdk_autoscaling::types::AutoScalingGroup;

use autoheal_aws::errors::describe;
use autoheal_aws::tags::{OPT_OUT_TAG, pairs_opt_out};
use autoheal_core::{HealError, HealOutcome, HealRequest, SkipReason};

/// Scales Auto Scaling groups out.
#[derive(Debug, Clone)]
pub struct GroupScaler {
    autoscaling: AutoScalingClient,
}

impl GroupScaler {
    pub fn new(autoscaling: AutoScalingClient) -> Self {
        GroupScaler { autoscaling }
    }

    async fn describe(&self, name: &str) -> Result<AutoScalingGroup, HealError> {
        self.autoscaling
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(name)
            .send()
            .await
            .map_err(|e| HealError::new(describe("DescribeAutoScalingGroups", &e)))?
            .auto_scaling_groups()
            .iter()
            .find(|group| group.auto_scaling_group_name() == Some(name))
            .cloned()
            .ok_or_else(|| {
                HealError::new(format!(
                    "DescribeAutoScalingGroups: no Auto Scaling group named {name}"
                ))
            })
    }

    pub async fn scale_out(
        &self,
        request: HealRequest<'_>,
        increment: u32,
        replace_unhealthy: bool,
    ) -> Result<HealOutcome, HealError> {
        let name = request.resource_id;
        let group = self.describe(name).await?;
        let opted_out = pairs_opt_out(
            group
                .tags()
                .iter()
                .filter_map(|tag| tag.key().zip(tag.value())),
        );
        if opted_out {
            return Ok(HealOutcome::Skipped {
                reason: SkipReason::OptedOut,
                summary: format!("Auto Scaling group {name} is tagged {OPT_OUT_TAG}=true"),
            });
        }
        if group
            .suspended_processes()
            .iter()
            .any(|process| process.process_name() == Some("Launch"))
        {
            return Ok(HealOutcome::Skipped {
                reason: SkipReason::Unsafe,
                summary: format!(
                    "Auto Scaling group {name} has its Launch process suspended: it could not replace anything"
                ),
            });
        }
        let desired = group.desired_capacity().unwrap_or_default();
        let max = group.max_size().unwrap_or(desired);
        let increment = i32::try_from(increment).unwrap_or(i32::MAX);
        let target = desired.saturating_add(increment).min(max);
        let unhealthy: Vec<String> = if replace_unhealthy {
            group
                .instances()
                .iter()
                .filter(|member| {
                    member
                        .health_status()
                        .is_some_and(|status| status.eq_ignore_ascii_case("unhealthy"))
                })
                .filter_map(|member| member.instance_id().map(str::to_owned))
                .collect()
        } else {
            Vec::new()
        };
        if target <= desired && unhealthy.is_empty() {
            return Ok(HealOutcome::Skipped {
                reason: SkipReason::NotNeeded,
                summary: format!(
                    "Auto Scaling group {name} is at its maximum ({max}) and has no unhealthy instance to replace"
                ),
            });
        }

        if target > desired {
            self.autoscaling
                .set_desired_capacity()
                .auto_scaling_group_name(name)
                .desired_capacity(target)
                .honor_cooldown(false)
                .send()
                .await
                .map_err(|e| HealError::new(describe("SetDesiredCapacity", &e)))?;
        }
        let mut replaced = Vec::new();
        for instance in &unhealthy {
            self.autoscaling
                .terminate_instance_in_auto_scaling_group()
                .instance_id(instance)
                .should_decrement_desired_capacity(false)
                .send()
                .await
                .map_err(|e| {
                    HealError::new(format!(
                        "desired capacity is {target}, but {}",
                        describe("TerminateInstanceInAutoScalingGroup", &e)
                    ))
                })?;
            replaced.push(instance.clone());
        }

        let mut summary = if target > desired {
            format!("scaled Auto Scaling group {name} out from {desired} to {target} instances")
        } else {
            format!("Auto Scaling group {name} is at its maximum ({max})")
        };
        if !replaced.is_empty() {
            summary.push_str(&format!("; replacing unhealthy {}", replaced.join(", ")));
        }
        let mut details = BTreeMap::from([
            ("desired_before".to_owned(), desired.to_string()),
            ("desired_after".to_owned(), target.to_string()),
        ]);
        if !replaced.is_empty() {
            details.insert("replaced_instances".to_owned(), replaced.join(","));
        }
        Ok(HealOutcome::Healed { summary, details })
    }
}
