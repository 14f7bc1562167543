//! The platform layer: ECS services, Lambda aliases, RDS instances.
//!
//! Before each new attempt, the healer looks at the resource ([`Healer::assess`]): one that
//! does not exist is `gone`; one that AWS is already healing (an ECS deployment rolling out or
//! back, a CodeDeploy traffic shift, RDS maintenance, a backup or a failover) or that a
//! person is changing is waited for. Each action then re-reads the live resource before it
//! changes anything, skips with a reason when the heal is no longer needed, unsafe, or the
//! resource is tagged `autoheal:disabled=true`, and reports the service's own error when a
//! call fails.

pub mod ecs;
pub mod lambda;
pub mod rds;

use aws_config::SdkConfig;

use autoheal_aws::OnFirstUse;
use autoheal_core::Retention;
use autoheal_core::{Action, Assessment, HealError, HealOutcome, HealRequest, Healer, Layer, Rule};

pub use ecs::ServiceRestarter;
pub use lambda::AliasRollback;
pub use rds::InstanceRebooter;

/// Runs the platform layer's actions.
#[derive(Debug, Clone)]
pub struct PlatformHealer {
    services: OnFirstUse<ServiceRestarter>,
    aliases: OnFirstUse<AliasRollback>,
    databases: OnFirstUse<InstanceRebooter>,
}

impl PlatformHealer {
    /// The layer's healer for one SDK configuration (once per container): each service's
    /// clients are built when an event first needs them.
    pub fn new(sdk: &SdkConfig) -> Self {
        PlatformHealer {
            services: OnFirstUse::new(sdk, |sdk| {
                ServiceRestarter::new(aws_sdk_ecs::Client::new(sdk))
            }),
            aliases: OnFirstUse::new(sdk, |sdk| {
                AliasRollback::new(
                    aws_sdk_lambda::Client::new(sdk),
                    aws_sdk_cloudtrail::Client::new(sdk),
                )
            }),
            databases: OnFirstUse::new(sdk, |sdk| {
                InstanceRebooter::new(aws_sdk_rds::Client::new(sdk))
            }),
        }
    }
}

impl Healer for PlatformHealer {
    fn layer(&self) -> Layer {
        Layer::Platform
    }

    async fn assess(&self, request: HealRequest<'_>) -> Result<Assessment, HealError> {
        match &request.rule.action {
            Action::RestartEcsService { .. } => self.services.get().assess(request).await,
            Action::RollbackLambdaAlias { alias } => {
                self.aliases.get().assess(request, alias).await
            }
            Action::RebootRdsInstance { .. } => self.databases.get().assess(request).await,
            other => Err(HealError::unsupported(self.layer(), other)),
        }
    }

    async fn is_gone(&self, rule: &Rule, resource_id: &str) -> Result<bool, HealError> {
        match &rule.action {
            Action::RestartEcsService { .. } => self.services.get().is_gone(resource_id).await,
            Action::RollbackLambdaAlias { alias } => {
                self.aliases.get().is_gone(resource_id, alias).await
            }
            Action::RebootRdsInstance { .. } => self.databases.get().is_gone(resource_id).await,
            other => Err(HealError::unsupported(self.layer(), other)),
        }
    }

    async fn heal(&self, request: HealRequest<'_>) -> Result<HealOutcome, HealError> {
        match &request.rule.action {
            Action::RestartEcsService {
                force_new_deployment,
                stop_unhealthy_tasks,
                desired_count_adjustment,
                max_desired_count,
            } => {
                let settings = ecs::RestartSettings {
                    force_new_deployment: *force_new_deployment,
                    stop_unhealthy_tasks: *stop_unhealthy_tasks,
                    desired_count_adjustment: *desired_count_adjustment,
                    max_desired_count: *max_desired_count,
                };
                self.services.get().restart(request, settings).await
            }
            Action::RollbackLambdaAlias { alias } => {
                self.aliases.get().roll_back(request, alias).await
            }
            Action::RebootRdsInstance {
                snapshot_first,
                force_failover,
                keep_snapshots,
                snapshot_max_age_days,
            } => {
                let retention = Retention {
                    keep: *keep_snapshots,
                    max_age_days: *snapshot_max_age_days,
                };
                self.databases
                    .get()
                    .reboot(request, *snapshot_first, *force_failover, retention)
                    .await
            }
            other => Err(HealError::unsupported(self.layer(), other)),
        }
    }
}
