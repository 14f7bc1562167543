//! The infrastructure layer: EC2 instances, Auto Scaling groups, EBS volumes.

pub mod asg;
pub mod ebs;
pub mod ebs_plan;
pub mod ebs_replace;
pub mod ec2;
pub mod ec2_plan;
pub mod group_member;
pub mod groups;
pub mod instance_status;
pub mod instances;
pub mod stop_start;
pub mod volume_spec;
pub mod volume_status;

use aws_config::SdkConfig;

use autoheal_core::Retention;
use autoheal_core::{
    Action, Assessment, GroupView, HealError, HealOutcome, HealRequest, Healer, Layer, Revert, Rule,
};

pub use asg::GroupScaler;
pub use ebs::VolumeRepairer;
pub use ec2::InstanceRecovery;
pub use instances::InstanceTypes;

/// Runs the infrastructure layer's actions.
#[derive(Debug, Clone)]
pub struct InfrastructureHealer {
    instances: InstanceRecovery,
    groups: GroupScaler,
    volumes: VolumeRepairer,
}

impl InfrastructureHealer {
    /// Builds the layer's clients from one SDK configuration (once per container).
    pub fn new(sdk: &SdkConfig) -> Self {
        let ec2 = aws_sdk_ec2::Client::new(sdk);
        let autoscaling = aws_sdk_autoscaling::Client::new(sdk);
        // One catalog of instance types for the container, read by both healers.
        let types = InstanceTypes::default();
        InfrastructureHealer {
            instances: InstanceRecovery::new(ec2.clone(), autoscaling.clone(), types.clone()),
            groups: GroupScaler::new(autoscaling.clone(), ec2.clone()),
            volumes: VolumeRepairer::new(ec2, autoscaling, types),
        }
    }
}

impl Healer for InfrastructureHealer {
    fn layer(&self) -> Layer {
        Layer::Infrastructure
    }

    /// An instance's Auto Scaling group: the group guard bounds how many of its members are
    /// recovered at once. The layer's other actions act on a whole group or on a volume.
    async fn group(&self, request: HealRequest<'_>) -> Result<Option<GroupView>, HealError> {
        match &request.rule.action {
            Action::RecoverEc2Instance { .. } => self.instances.group(request).await,
            _ => Ok(None),
        }
    }

    /// What may already heal the resource, or hold it, before a new attempt: each action's
    /// own look (see `ec2`, `asg` and `ebs`).
    async fn assess(&self, request: HealRequest<'_>) -> Result<Assessment, HealError> {
        match &request.rule.action {
            Action::RecoverEc2Instance {
                reboot_first,
                allow_stop_start,
            } => {
                self.instances
                    .assess(request, *reboot_first, *allow_stop_start)
                    .await
            }
            Action::ScaleOutAutoScalingGroup {
                increment,
                replace_unhealthy,
                health_check_type,
                health_check_grace_period,
            } => {
                let settings = asg::ScaleOut::new(
                    *increment,
                    *replace_unhealthy,
                    health_check_type.as_deref(),
                    *health_check_grace_period,
                );
                self.groups.assess(request, settings).await
            }
            Action::RepairEbsVolume { .. } => self.volumes.assess(request).await,
            _ => Ok(Assessment::Proceed),
        }
    }

    /// A resource is gone once terminated or deleted: an instance its Auto Scaling group
    /// replaced or someone terminated, a deleted group or volume. Nothing is left to heal, and
    /// its alarm gets no more data.
    async fn is_gone(&self, rule: &Rule, resource_id: &str) -> Result<bool, HealError> {
        match &rule.action {
            Action::RecoverEc2Instance { .. } => self.instances.is_gone(resource_id).await,
            Action::ScaleOutAutoScalingGroup { .. } => self.groups.is_gone(resource_id).await,
            Action::RepairEbsVolume { .. } => self.volumes.is_gone(resource_id).await,
            _ => Ok(false),
        }
    }

    async fn heal(&self, request: HealRequest<'_>) -> Result<HealOutcome, HealError> {
        match &request.rule.action {
            Action::RecoverEc2Instance {
                reboot_first,
                allow_stop_start,
            } => {
                self.instances
                    .recover(request, *reboot_first, *allow_stop_start)
                    .await
            }
            Action::ScaleOutAutoScalingGroup {
                increment,
                replace_unhealthy,
                health_check_type,
                health_check_grace_period,
            } => {
                let settings = asg::ScaleOut::new(
                    *increment,
                    *replace_unhealthy,
                    health_check_type.as_deref(),
                    *health_check_grace_period,
                );
                self.groups.scale_out(request, settings).await
            }
            Action::RepairEbsVolume {
                target_volume_type,
                force_detach,
                keep_snapshots,
                snapshot_max_age_days,
                ..
            } => {
                let retention = Retention {
                    keep: *keep_snapshots,
                    max_age_days: *snapshot_max_age_days,
                };
                self.volumes
                    .repair(request, target_volume_type, *force_detach, retention)
                    .await
            }
            other => Err(HealError::unsupported(self.layer(), other)),
        }
    }

    async fn revert(
        &self,
        request: HealRequest<'_>,
        revert: &Revert,
    ) -> Result<HealOutcome, HealError> {
        match revert.kind.as_str() {
            asg::RESTORE_DESIRED_CAPACITY => self.groups.restore(request, revert).await,
            _ => Err(HealError::unknown_revert(self.layer(), revert)),
        }
    }
}
