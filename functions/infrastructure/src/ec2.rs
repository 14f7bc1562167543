//! `replace-ec2-instance`: replace an instance whose status checks fail.
//!
//! - An Auto Scaling member is marked unhealthy; its group terminates and replaces it, keeping
//!   the group's own launch template, capacity and lifecycle hooks in charge.
//! - A standalone instance is relaunched like-for-like (image, type, subnet, security groups,
//!   key pair, instance profile, user data, tags), its Elastic IPs are moved to the new
//!   instance, and only then is the old one terminated. `RunInstances` carries the attempt's
//!   idempotency token, so a retried attempt never launches a second replacement.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_autoscaling::Client as AutoScalingClient;
use aws_sdk_ec2::Client as Ec2Client;
use aws_sdk_ec2::client::Waiters;
use aws_sdk_ec2::types::{
    Filter, IamInstanceProfileSpecification, Instance, InstanceAttributeName, InstanceStateName,
    InstanceType, ResourceType, Tag, TagSpecification,
};
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use autoheal_aws::errors::describe;

use autoheal_core::{HealError, HealOutcome, HealRequest, SkipReason};

use autoheal_aws::tags::{OPT_OUT_TAG, is_opted_out};

/// How long to wait for the replacement to be running before moving its Elastic IP.
const RUNNING_TIMEOUT: Duration = Duration::from_secs(240);

fn api_error<E>(operation: &str, error: E) -> HealError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    HealError::new(describe(operation, &error))
}

/// Replaces EC2 instances.
#[derive(Debug, Clone)]
pub struct InstanceReplacer {
    ec2: Ec2Client,
    autoscaling: AutoScalingClient,
}

impl InstanceReplacer {
    pub fn new(ec2: Ec2Client, autoscaling: AutoScalingClient) -> Self {
        InstanceReplacer { ec2, autoscaling }
    }

    pub async fn replace(
        &self,
        request: HealRequest<'_>,
        preserve_elastic_ip: bool,
    ) -> Result<HealOutcome, HealError> {
        let instance_id = request.resource_id;
        let instance = self.describe(instance_id).await?;
        let state = instance.state().and_then(|s| s.name());
        if matches!(
            state,
            Some(InstanceStateName::ShuttingDown | InstanceStateName::Terminated)
        ) {
            return Ok(HealOutcome::Skipped {
                reason: SkipReason::NotNeeded,
                summary: format!("{instance_id} is already terminated or terminating"),
            });
        }
        let tags: BTreeMap<String, String> = instance
            .tags()
            .iter()
            .filter_map(|tag| Some((tag.key()?.to_owned(), tag.value()?.to_owned())))
            .collect();
        if is_opted_out(&tags) {
            return Ok(HealOutcome::Skipped {
                reason: SkipReason::OptedOut,
                summary: format!("{instance_id} is tagged {OPT_OUT_TAG}=true"),
            });
        }
        if let Some(group) = self.auto_scaling_group_of(instance_id).await? {
            return self.hand_to_group(instance_id, &group).await;
        }
        self.relaunch(request, &instance, &tags, preserve_elastic_ip)
            .await
    }

    async fn describe(&self, instance_id: &str) -> Result<Instance, HealError> {
        let output = self
            .ec2
            .describe_instances()
            .instance_ids(instance_id)
            .send()
            .await
            .map_err(|e| api_error("DescribeInstances", e))?;
        output
            .reservations()
            .iter()
            .flat_map(|reservation| reservation.instances())
            .find(|instance| instance.instance_id() == Some(instance_id))
            .cloned()
            .ok_or_else(|| HealError::new(format!("DescribeInstances: no instance {instance_id}")))
    }

    async fn auto_scaling_group_of(&self, instance_id: &str) -> Result<Option<String>, HealError> {
        let output = self
            .autoscaling
            .describe_auto_scaling_instances()
            .instance_ids(instance_id)
            .send()
            .await
            .map_err(|e| api_error("DescribeAutoScalingInstances", e))?;
        Ok(output
            .auto_scaling_instances()
            .iter()
            .find(|member| member.instance_id() == Some(instance_id))
            .and_then(|member| member.auto_scaling_group_name())
            .map(str::to_owned))
    }

    async fn hand_to_group(
        &self,
        instance_id: &str,
        group: &str,
    ) -> Result<HealOutcome, HealError> {
        self.autoscaling
            .set_instance_health()
            .instance_id(instance_id)
            .health_status("Unhealthy")
            .should_respect_grace_period(false)
            .send()
            .await
            .map_err(|e| api_error("SetInstanceHealth", e))?;
        Ok(HealOutcome::Healed {
            summary: format!(
                "marked {instance_id} unhealthy in Auto Scaling group {group}; the group replaces it"
            ),
            details: BTreeMap::from([("auto_scaling_group".to_owned(), group.to_owned())]),
        })
    }

    async fn relaunch(
        &self,
        request: HealRequest<'_>,
        old: &Instance,
        tags: &BTreeMap<String, String>,
        preserve_elastic_ip: bool,
    ) -> Result<HealOutcome, HealError> {
        let old_id = request.resource_id;
        let image_id = old
            .image_id()
            .ok_or_else(|| HealError::new(format!("{old_id} has no image id to relaunch from")))?;
        let user_data = self
            .ec2
            .describe_instance_attribute()
            .instance_id(old_id)
            .attribute(InstanceAttributeName::UserData)
            .send()
            .await
            .map_err(|e| api_error("DescribeInstanceAttribute", e))?
            .user_data()
            .and_then(|value| value.value())
            .map(str::to_owned);

        // Tags the account may set (not `aws:`), plus where the replacement came from.
        let mut new_tags: Vec<Tag> = tags
            .iter()
            .filter(|(key, _)| !key.starts_with("aws:"))
            .map(|(key, value)| Tag::builder().key(key).value(value).build())
            .collect();
        new_tags.push(
            Tag::builder()
                .key("autoheal:replaces")
                .value(old_id)
                .build(),
        );
        new_tags.push(
            Tag::builder()
                .key("autoheal:incident")
                .value(request.incident_id)
                .build(),
        );

        let mut launch = self
            .ec2
            .run_instances()
            .image_id(image_id)
            .min_count(1)
            .max_count(1)
            .client_token(request.idempotency_token)
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::Instance)
                    .set_tags(Some(new_tags))
                    .build(),
            )
            .set_instance_type(old.instance_type().cloned().or(Some(InstanceType::T3Micro)))
            .set_subnet_id(old.subnet_id().map(str::to_owned))
            .set_key_name(old.key_name().map(str::to_owned))
            .set_user_data(user_data)
            .set_ebs_optimized(old.ebs_optimized());
        let groups: Vec<String> = old
            .security_groups()
            .iter()
            .filter_map(|group| group.group_id().map(str::to_owned))
            .collect();
        if !groups.is_empty() {
            launch = launch.set_security_group_ids(Some(groups));
        }
        if let Some(profile) = old.iam_instance_profile().and_then(|p| p.arn()) {
            launch = launch.iam_instance_profile(
                IamInstanceProfileSpecification::builder()
                    .arn(profile)
                    .build(),
            );
        }
        let launched = launch
            .send()
            .await
            .map_err(|e| api_error("RunInstances", e))?;
        let new_id = launched
            .instances()
            .first()
            .and_then(|instance| instance.instance_id())
            .ok_or_else(|| HealError::new("RunInstances returned no instance"))?
            .to_owned();

        self.ec2
            .wait_until_instance_running()
            .instance_ids(&new_id)
            .wait(RUNNING_TIMEOUT)
            .await
            .map_err(|e| {
                HealError::new(format!(
                    "launched {new_id}, but it did not reach running ({}); {old_id} was left in place",
                    DisplayErrorContext(&e)
                ))
            })?;

        let mut moved = Vec::new();
        if preserve_elastic_ip {
            let addresses = self
                .ec2
                .describe_addresses()
                .filters(Filter::builder().name("instance-id").values(old_id).build())
                .send()
                .await
                .map_err(|e| api_error("DescribeAddresses", e))?;
            for address in addresses.addresses() {
                let Some(allocation) = address.allocation_id() else {
                    continue;
                };
                self.ec2
                    .associate_address()
                    .allocation_id(allocation)
                    .instance_id(&new_id)
                    .allow_reassociation(true)
                    .send()
                    .await
                    .map_err(|e| {
                        HealError::new(format!(
                            "launched {new_id}, but {}; {old_id} was left in place",
                            describe("AssociateAddress", &e)
                        ))
                    })?;
                moved.push(address.public_ip().unwrap_or(allocation).to_owned());
            }
        }

        self.ec2
            .terminate_instances()
            .instance_ids(old_id)
            .send()
            .await
            .map_err(|e| {
                HealError::new(format!(
                    "launched {new_id}, but terminating {old_id} failed: {}",
                    describe("TerminateInstances", &e)
                ))
            })?;

        let mut details = BTreeMap::from([("replacement_instance_id".to_owned(), new_id.clone())]);
        let mut summary = format!(
            "replaced {old_id} with {new_id} (same image, type, subnet and security groups)"
        );
        if !moved.is_empty() {
            summary.push_str(&format!("; moved Elastic IP {}", moved.join(", ")));
            details.insert("elastic_ips".to_owned(), moved.join(","));
        }
        Ok(HealOutcome::Healed { summary, details })
    }
}
