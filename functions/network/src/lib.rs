//! The network layer: load-balancer targets, DNS records, NAT routes.
//!
//! Every action re-reads the live resource first, honours the `autoheal:disabled=true` opt-out
//! tag, and skips with a reason when the heal is no longer needed or would be unsafe. Before
//! an attempt, [`NetworkHealer::assess`] says whether the resource is gone, and whether the
//! targets' owners (an Auto Scaling group, an ECS service), a person or another autoheal run
//! are healing them already.

pub mod dns;
pub mod routes;
pub mod targets;

use aws_config::SdkConfig;

use autoheal_aws::OnFirstUse;
use autoheal_core::{
    Action, Assessment, HealError, HealOutcome, HealRequest, Healer, Layer, Revert, Rule,
};

pub use dns::DnsFailover;
pub use routes::NatRouteReplacer;
pub use targets::TargetDeregistrar;

/// Runs the network layer's actions.
#[derive(Debug, Clone)]
pub struct NetworkHealer {
    targets: OnFirstUse<TargetDeregistrar>,
    dns: OnFirstUse<DnsFailover>,
    routes: OnFirstUse<NatRouteReplacer>,
}

impl NetworkHealer {
    /// The layer's healer for one SDK configuration (once per container): each action's
    /// clients are built when an event first needs them.
    pub fn new(sdk: &SdkConfig) -> Self {
        NetworkHealer {
            targets: OnFirstUse::new(sdk, |sdk| {
                TargetDeregistrar::new(
                    aws_sdk_elasticloadbalancingv2::Client::new(sdk),
                    targets::Owners {
                        ec2: aws_sdk_ec2::Client::new(sdk),
                        autoscaling: aws_sdk_autoscaling::Client::new(sdk),
                        ecs: aws_sdk_ecs::Client::new(sdk),
                    },
                )
            }),
            dns: OnFirstUse::new(sdk, |sdk| {
                DnsFailover::new(aws_sdk_route53::Client::new(sdk))
            }),
            routes: OnFirstUse::new(sdk, |sdk| {
                NatRouteReplacer::new(
                    aws_sdk_ec2::Client::new(sdk),
                    aws_sdk_cloudwatch::Client::new(sdk),
                )
            }),
        }
    }
}

impl Healer for NetworkHealer {
    fn layer(&self) -> Layer {
        Layer::Network
    }

    async fn assess(&self, request: HealRequest<'_>) -> Result<Assessment, HealError> {
        match &request.rule.action {
            Action::DeregisterUnhealthyTargets {} => self.targets.get().assess(request).await,
            Action::FailOverDnsRecord { .. } => self.dns.get().assess(request).await,
            Action::ReplaceNatRoute { .. } => self.routes.get().assess(request).await,
            _ => Ok(Assessment::Proceed),
        }
    }

    /// A target group, health check or NAT gateway that no longer exists has nothing left to
    /// heal.
    async fn is_gone(&self, rule: &Rule, resource_id: &str) -> Result<bool, HealError> {
        match &rule.action {
            Action::DeregisterUnhealthyTargets {} => self.targets.get().is_gone(resource_id).await,
            Action::FailOverDnsRecord { .. } => self.dns.get().is_gone(resource_id).await,
            Action::ReplaceNatRoute { .. } => self.routes.get().is_gone(resource_id).await,
            _ => Ok(false),
        }
    }

    async fn heal(&self, request: HealRequest<'_>) -> Result<HealOutcome, HealError> {
        match &request.rule.action {
            Action::DeregisterUnhealthyTargets {} => self.targets.get().deregister(request).await,
            Action::FailOverDnsRecord { hosted_zone_id } => {
                self.dns
                    .get()
                    .fail_over(request, hosted_zone_id.as_deref())
                    .await
            }
            Action::ReplaceNatRoute { standby_tag } => {
                self.routes.get().replace(request, standby_tag).await
            }
            other => Err(HealError::unsupported(self.layer(), other)),
        }
    }

    async fn revert(
        &self,
        _request: HealRequest<'_>,
        revert: &Revert,
    ) -> Result<HealOutcome, HealError> {
        match revert.kind.as_str() {
            dns::RESTORE_RECORD_WEIGHT => self.dns.get().restore(revert).await,
            _ => Err(HealError::unknown_revert(self.layer(), revert)),
        }
    }
}
