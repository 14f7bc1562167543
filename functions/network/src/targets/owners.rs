//! Who heals a target group's failing targets, read live: the ECS service the group belongs
//! to, the Auto Scaling groups of its instances, and autoheal's own stop and start.

use aws_sdk_autoscaling::Client as AutoScalingClient;
use aws_sdk_autoscaling::types::AutoScalingGroup;
use aws_sdk_ec2::Client as Ec2Client;
use aws_sdk_ec2::types::{Filter, InstanceStateName};
use aws_sdk_ecs::Client as EcsClient;
use aws_sdk_elasticloadbalancingv2::types::TargetDescription;

use autoheal_aws::errors::api_error;
use autoheal_aws::tags::pairs_opt_out;
use autoheal_core::HealError;

use super::plan::{Claim, Claims};

/// The tag autoheal's EC2 healing puts on an instance it is stopping and starting.
pub const STOP_START_TAG: &str = "autoheal:stop-start";

/// The Auto Scaling processes a group replaces an unhealthy member with: suspended, it does
/// not, and a person suspended them.
const REPLACING_PROCESSES: [&str; 4] = ["HealthCheck", "ReplaceUnhealthy", "Launch", "Terminate"];

/// Ids per `DescribeInstances` filter and per `DescribeAutoScalingInstances` call.
const INSTANCE_BATCH: usize = 50;
/// Services per `DescribeServices` call.
const SERVICE_BATCH: usize = 10;

/// The clients the look needs.
#[derive(Debug, Clone)]
pub struct Owners {
    pub ec2: Ec2Client,
    pub autoscaling: AutoScalingClient,
    pub ecs: EcsClient,
}

impl Owners {
    /// The claims on `failing`, the failing targets of `target_group_arn`: targets nobody
    /// else heals have none.
    pub async fn claims(
        &self,
        target_group_arn: &str,
        failing: &[TargetDescription],
    ) -> Result<Claims, HealError> {
        let mut claims = Claims::new();
        if failing.is_empty() {
            return Ok(claims);
        }
        if let Some(service) = self.ecs_service_of(target_group_arn).await? {
            let owner = format!(
                "ECS service {service}, which replaces tasks that fail the load balancer's health checks,"
            );
            for target in failing {
                if let Some(id) = target.id() {
                    claims.insert(id.to_owned(), Claim::ReplacedBy(owner.clone()));
                }
            }
            return Ok(claims);
        }
        let instances: Vec<String> = failing
            .iter()
            .filter_map(TargetDescription::id)
            .filter(|id| id.starts_with("i-"))
            .map(str::to_owned)
            .collect();
        let mut running = Vec::new();
        for batch in instances.chunks(INSTANCE_BATCH) {
            let mut pages = self
                .ec2
                .describe_instances()
                .filters(
                    Filter::builder()
                        .name("instance-id")
                        .set_values(Some(batch.to_vec()))
                        .build(),
                )
                .into_paginator()
                .items()
                .send();
            while let Some(reservation) = pages.next().await {
                let reservation = reservation.map_err(|e| api_error("DescribeInstances", e))?;
                for instance in reservation.instances() {
                    let Some(id) = instance.instance_id() else {
                        continue;
                    };
                    let state = instance.state().and_then(|s| s.name());
                    let tags = instance
                        .tags()
                        .iter()
                        .filter_map(|t| t.key().zip(t.value()));
                    if pairs_opt_out(tags) {
                        claims.insert(id.to_owned(), Claim::OptedOut);
                    } else if instance
                        .tags()
                        .iter()
                        .any(|t| t.key() == Some(STOP_START_TAG))
                    {
                        claims.insert(id.to_owned(), Claim::StoppingAndStarting);
                    } else if state != Some(&InstanceStateName::Running) {
                        let state = state.map_or("in an unknown state", InstanceStateName::as_str);
                        claims.insert(id.to_owned(), Claim::NotRunning(state.to_owned()));
                    } else {
                        running.push(id.to_owned());
                    }
                }
            }
        }
        for (instance, group) in self.groups_of(&running).await? {
            claims.insert(instance, group_claim(&group, target_group_arn));
        }
        Ok(claims)
    }

    /// The ECS service (`cluster/service`) whose load balancer configuration names the
    /// target group, if one does: every cluster's services, every page.
    async fn ecs_service_of(&self, target_group_arn: &str) -> Result<Option<String>, HealError> {
        let mut clusters = self.ecs.list_clusters().into_paginator().items().send();
        while let Some(cluster) = clusters.next().await {
            let cluster = cluster.map_err(|e| api_error("ListClusters", e))?;
            let mut services = Vec::new();
            let mut pages = self
                .ecs
                .list_services()
                .cluster(&cluster)
                .into_paginator()
                .items()
                .send();
            while let Some(service) = pages.next().await {
                services.push(service.map_err(|e| api_error("ListServices", e))?);
            }
            for batch in services.chunks(SERVICE_BATCH) {
                let described = self
                    .ecs
                    .describe_services()
                    .cluster(&cluster)
                    .set_services(Some(batch.to_vec()))
                    .send()
                    .await
                    .map_err(|e| api_error("DescribeServices", e))?;
                let owner = described.services().iter().find(|service| {
                    service
                        .load_balancers()
                        .iter()
                        .any(|lb| lb.target_group_arn() == Some(target_group_arn))
                });
                if let Some(service) = owner {
                    let cluster_name = cluster.rsplit('/').next().unwrap_or(&cluster);
                    return Ok(Some(format!(
                        "{cluster_name}/{}",
                        service.service_name().unwrap_or_default()
                    )));
                }
            }
        }
        Ok(None)
    }

    /// The Auto Scaling group of each instance that is a member of one.
    async fn groups_of(
        &self,
        instances: &[String],
    ) -> Result<Vec<(String, AutoScalingGroup)>, HealError> {
        let mut members = Vec::new();
        for batch in instances.chunks(INSTANCE_BATCH) {
            let mut pages = self
                .autoscaling
                .describe_auto_scaling_instances()
                .set_instance_ids(Some(batch.to_vec()))
                .into_paginator()
                .items()
                .send();
            while let Some(member) = pages.next().await {
                let member = member.map_err(|e| api_error("DescribeAutoScalingInstances", e))?;
                if let (Some(instance), Some(group)) =
                    (member.instance_id(), member.auto_scaling_group_name())
                {
                    members.push((instance.to_owned(), group.to_owned()));
                }
            }
        }
        let mut names: Vec<String> = members.iter().map(|(_, group)| group.clone()).collect();
        names.sort();
        names.dedup();
        let mut groups = Vec::new();
        for batch in names.chunks(INSTANCE_BATCH) {
            let mut pages = self
                .autoscaling
                .describe_auto_scaling_groups()
                .set_auto_scaling_group_names(Some(batch.to_vec()))
                .into_paginator()
                .items()
                .send();
            while let Some(group) = pages.next().await {
                groups.push(group.map_err(|e| api_error("DescribeAutoScalingGroups", e))?);
            }
        }
        Ok(members
            .into_iter()
            .filter_map(|(instance, name)| {
                groups
                    .iter()
                    .find(|group| group.auto_scaling_group_name() == Some(name.as_str()))
                    .map(|group| (instance, group.clone()))
            })
            .collect())
    }
}

/// What a member's Auto Scaling group does with it when the target group finds it unhealthy.
pub fn group_claim(group: &AutoScalingGroup, target_group_arn: &str) -> Claim {
    let name = group.auto_scaling_group_name().unwrap_or_default();
    let suspended: Vec<&str> = group
        .suspended_processes()
        .iter()
        .filter_map(|process| process.process_name())
        .filter(|process| REPLACING_PROCESSES.contains(process))
        .collect();
    if !suspended.is_empty() {
        return Claim::HeldBy(format!(
            "its Auto Scaling group {name} has {} suspended: a person holds its replacement",
            suspended.join(", ")
        ));
    }
    let checks_elb = group
        .health_check_type()
        .is_some_and(|kind| kind.split(',').any(|kind| kind.trim() == "ELB"));
    let attached = group
        .target_group_arns()
        .iter()
        .any(|arn| arn == target_group_arn)
        || group
            .traffic_sources()
            .iter()
            .any(|source| source.identifier() == Some(target_group_arn));
    if checks_elb && attached {
        Claim::ReplacedBy(format!(
            "Auto Scaling group {name}, which checks this target group's health,"
        ))
    } else {
        Claim::UncheckedMember(format!(
            "a member of Auto Scaling group {name}, which does not check this target group's health: deregistered, it would stay in service and never be replaced (give the group the ELB health check type)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_autoscaling::types::{SuspendedProcess, TrafficSourceIdentifier};

    use super::*;

    const ARN: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123";

    fn group(kind: &str) -> aws_sdk_autoscaling::types::builders::AutoScalingGroupBuilder {
        AutoScalingGroup::builder()
            .auto_scaling_group_name("web")
            .health_check_type(kind)
    }

    #[test]
    fn an_elb_checked_group_attached_to_the_target_group_replaces_its_members() {
        let attached = group("ELB").target_group_arns(ARN).build();
        assert!(matches!(group_claim(&attached, ARN), Claim::ReplacedBy(_)));
        let by_traffic_source = group("EC2,ELB")
            .traffic_sources(
                TrafficSourceIdentifier::builder()
                    .identifier(ARN)
                    .r#type("elbv2")
                    .build(),
            )
            .build();
        assert!(matches!(
            group_claim(&by_traffic_source, ARN),
            Claim::ReplacedBy(_)
        ));
    }

    #[test]
    fn a_group_that_does_not_check_the_target_group_is_no_owner() {
        let ec2_only = group("EC2").target_group_arns(ARN).build();
        assert!(matches!(
            group_claim(&ec2_only, ARN),
            Claim::UncheckedMember(_)
        ));
        let elsewhere = group("ELB").target_group_arns("arn:other").build();
        assert!(matches!(
            group_claim(&elsewhere, ARN),
            Claim::UncheckedMember(_)
        ));
    }

    #[test]
    fn a_suspended_replacement_is_a_persons_hold() {
        let held = group("ELB")
            .target_group_arns(ARN)
            .suspended_processes(
                SuspendedProcess::builder()
                    .process_name("ReplaceUnhealthy")
                    .build(),
            )
            .suspended_processes(
                SuspendedProcess::builder()
                    .process_name("AZRebalance")
                    .build(),
            )
            .build();
        let Claim::HeldBy(why) = group_claim(&held, ARN) else {
            panic!("a hold");
        };
        assert!(
            why.contains("ReplaceUnhealthy") && !why.contains("AZRebalance"),
            "{why}"
        );
    }
}
