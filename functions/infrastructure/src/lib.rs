//! The infrastructure layer: EC2 instances, Auto Scaling groups, EBS volumes.

pub mod asg;
pub mod ebs;
pub mod ec2;

use aws_config::SdkConfig;

use autoheal_core::retention::Retention;
use autoheal_core::{Action, HealError, HealOutcome, HealRequest, Healer};

pub use asg::GroupScaler;
pub use ebs::VolumeRepairer;
pub use ec2::InstanceReplacer;

/// Runs the infrastructure layer's actions.
#[derive(Debug, Clone)]
pub struct InfrastructureHealer {
    instances: InstanceReplacer,
    groups: GroupScaler,
    volumes: VolumeRepairer,
}

impl InfrastructureHealer {
    /// Builds the layer's clients from one SDK configuration (once per container).
    pub fn new(sdk: &SdkConfig) -> Self {
        let ec2 = aws_sdk_ec2::Client::new(sdk);
        let autoscaling = aws_sdk_autoscaling::Client::new(sdk);
        InfrastructureHealer {
            instances: InstanceReplacer::new(ec2.clone(), autoscaling.clone()),
            groups: GroupScaler::new(autoscaling),
            volumes: VolumeRepairer::new(ec2),
        }
    }
}

impl Healer for InfrastructureHealer {
    fn supports(&self, action: &Action) -> bool {
        matches!(
            action,
            Action::ReplaceEc2Instance { .. }
                | Action::ScaleOutAutoScalingGroup { .. }
                | Action::RepairEbsVolume { .. }
        )
    }

    async fn heal(&self, request: HealRequest<'_>) -> Result<HealOutcome, HealError> {
        match &request.rule.action {
            Action::ReplaceEc2Instance {
                preserve_elastic_ip,
            } => self.instances.replace(request, *preserve_elastic_ip).await,
            Action::ScaleOutAutoScalingGroup {
                increment,
                replace_unhealthy,
            } => {
                self.groups
                    .scale_out(request, *increment, *replace_unhealthy)
                    .await
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
            other => Err(HealError::new(format!(
                "the infrastructure function does not implement `{}`",
                other.kind()
            ))),
        }
    }
}
