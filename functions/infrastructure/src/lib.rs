//! The infrastructure layer: EC2 instances, Auto Scaling groups, EBS volumes.

pub mod ec2;

use aws_config::SdkConfig;

use autoheal_core::{Action, HealError, HealOutcome, HealRequest, Healer};

pub use ec2::InstanceReplacer;

/// Runs the infrastructure layer's actions.
#[derive(Debug, Clone)]
pub struct InfrastructureHealer {
    instances: InstanceReplacer,
}

impl InfrastructureHealer {
    /// Builds the layer's clients from one SDK configuration (once per container).
    pub fn new(sdk: &SdkConfig) -> Self {
        InfrastructureHealer {
            instances: InstanceReplacer::new(
                aws_sdk_ec2::Client::new(sdk),
                aws_sdk_autoscaling::Client::new(sdk),
            ),
        }
    }
}

impl Healer for InfrastructureHealer {
    fn supports(&self, action: &Action) -> bool {
        matches!(action, Action::ReplaceEc2Instance { .. })
    }

    async fn heal(&self, request: HealRequest<'_>) -> Result<HealOutcome, HealError> {
        match &request.rule.action {
            Action::ReplaceEc2Instance {
                preserve_elastic_ip,
            } => self.instances.replace(request, *preserve_elastic_ip).await,
            other => Err(HealError::new(format!(
                "the infrastructure function does not implement `{}`",
                other.kind()
            ))),
        }
    }
}
