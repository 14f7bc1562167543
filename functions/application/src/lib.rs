//! The application layer: circuit breakers, leaking processes and connection pools.
//!
//! An application's own state is not an AWS resource, so these actions act through a
//! contract with the application (see the README): the circuit breaker and the connection
//! pool are JSON documents in Systems Manager Parameter Store that the application reads, and
//! a process is restarted by a Systems Manager Run Command on its instance.

pub mod circuit_breaker;
pub mod connection_pool;
pub mod degradation;
mod parameter;
pub mod process;

use aws_config::SdkConfig;

use autoheal_aws::OnFirstUse;
use autoheal_core::{
    Action, Assessment, GroupView, HealError, HealOutcome, HealRequest, Healer, Layer, Revert, Rule,
};

pub use circuit_breaker::CircuitBreakerReset;
pub use connection_pool::ConnectionPoolReset;
pub use degradation::GracefulDegradation;
pub use process::ProcessRestarter;

/// How long an action waits before looking again at a document a person holds.
const HOLD_RECHECK_SECONDS: u64 = 300;

/// Runs the application layer's actions.
#[derive(Debug, Clone)]
pub struct ApplicationHealer {
    breakers: CircuitBreakerReset,
    processes: OnFirstUse<ProcessRestarter>,
    pools: ConnectionPoolReset,
    degradation: GracefulDegradation,
    parameters: parameter::Parameters,
    ec2: OnFirstUse<aws_sdk_ec2::Client>,
    autoscaling: OnFirstUse<aws_sdk_autoscaling::Client>,
}

impl ApplicationHealer {
    /// Builds the layer's clients from one SDK configuration (once per container), restarting
    /// processes with the restart document of a stack named `autoheal`
    /// ([`DEFAULT_RESTART_DOCUMENT`](autoheal_aws::config::DEFAULT_RESTART_DOCUMENT)).
    pub fn new(sdk: &SdkConfig) -> Self {
        Self::with_restart_document(sdk, autoheal_aws::config::DEFAULT_RESTART_DOCUMENT)
    }

    /// [`ApplicationHealer::new`] with the stack's restart document (`AUTOHEAL_RESTART_DOCUMENT`).
    ///
    /// Systems Manager's client, which five of the six actions call, is built here; EC2's and
    /// Auto Scaling's, which only a process's restart needs, when an event first needs them.
    pub fn with_restart_document(sdk: &SdkConfig, document: &str) -> Self {
        let ssm = aws_sdk_ssm::Client::new(sdk);
        let document = document.to_owned();
        ApplicationHealer {
            breakers: CircuitBreakerReset::new(ssm.clone()),
            processes: OnFirstUse::new(sdk, move |sdk| {
                ProcessRestarter::new(
                    aws_sdk_ec2::Client::new(sdk),
                    aws_sdk_ssm::Client::new(sdk),
                    document.as_str(),
                )
            }),
            pools: ConnectionPoolReset::new(ssm.clone()),
            degradation: GracefulDegradation::new(ssm.clone()),
            parameters: parameter::Parameters::new(ssm),
            ec2: OnFirstUse::new(sdk, aws_sdk_ec2::Client::new),
            autoscaling: OnFirstUse::new(sdk, aws_sdk_autoscaling::Client::new),
        }
    }
}

impl Healer for ApplicationHealer {
    fn layer(&self) -> Layer {
        Layer::Application
    }

    /// A restarted process's instance may be one of an Auto Scaling group's: the group guard
    /// bounds how many of its members restart at once (a leak shipped in a release shows on
    /// every member together).
    async fn group(&self, request: HealRequest<'_>) -> Result<Option<GroupView>, HealError> {
        match &request.rule.action {
            Action::RestartProcess { .. } => {
                autoheal_aws::lookups::auto_scaling_group_of(
                    self.ec2.get(),
                    self.autoscaling.get(),
                    request.resource_id,
                )
                .await
            }
            _ => Ok(None),
        }
    }

    /// A restart looks at its instance (gone, or being stopped and started by autoheal); a
    /// parameter action waits while a person holds the document (`hold`). A missing
    /// parameter is not "gone": the application has not created what it reads, and the
    /// action's failure tells a person so.
    async fn assess(&self, request: HealRequest<'_>) -> Result<Assessment, HealError> {
        let template = match &request.rule.action {
            Action::RestartProcess { .. } => return self.processes.get().assess(request).await,
            Action::ResetCircuitBreaker { parameter, .. }
            | Action::ResetConnectionPool { parameter, .. }
            | Action::EnableGracefulDegradation { parameter, .. } => parameter,
            _ => return Ok(Assessment::Proceed),
        };
        let Some((name, document)) = self.parameters.peek(template, request.resource_id).await
        else {
            return Ok(Assessment::Proceed);
        };
        Ok(match document.hold() {
            Some(by) => Assessment::operator_hold(
                format!("{name} is held by a person (`hold`: {by})"),
                HOLD_RECHECK_SECONDS,
            ),
            None => Assessment::Proceed,
        })
    }

    /// A restarted process's instance is gone once terminated: nothing is left to heal.
    async fn is_gone(&self, rule: &Rule, resource_id: &str) -> Result<bool, HealError> {
        match &rule.action {
            Action::RestartProcess { .. } => {
                autoheal_aws::lookups::instance_is_gone(self.ec2.get(), resource_id).await
            }
            _ => Ok(false),
        }
    }

    async fn heal(&self, request: HealRequest<'_>) -> Result<HealOutcome, HealError> {
        match &request.rule.action {
            Action::ResetCircuitBreaker {
                parameter,
                trial_traffic_percent,
            } => {
                self.breakers
                    .half_open(request, parameter, *trial_traffic_percent)
                    .await
            }
            // The document is the stack's (the one the role may send), not the rule's.
            Action::RestartProcess {
                service,
                document: _,
                heap_dump_command,
                heap_dump_timeout_seconds,
                heap_dump_max_mb,
                heap_dump_directory,
                stop_timeout_seconds,
            } => {
                let plan = process::RestartPlan {
                    service,
                    heap_dump: heap_dump_command
                        .as_deref()
                        .map(|command| process::HeapDump {
                            command,
                            timeout_seconds: *heap_dump_timeout_seconds,
                            max_mb: *heap_dump_max_mb,
                            directory: heap_dump_directory,
                        }),
                    stop_timeout_seconds: *stop_timeout_seconds,
                };
                self.processes.get().restart(request, plan).await
            }
            Action::EnableGracefulDegradation { parameter, shed } => {
                self.degradation.enable(request, parameter, shed).await
            }
            Action::ResetConnectionPool {
                parameter,
                grow_by,
                timeout_seconds,
                max_connections_limit,
            } => {
                let resize = connection_pool::Resize {
                    grow_by: *grow_by,
                    timeout_seconds: *timeout_seconds,
                    max_connections_limit: *max_connections_limit,
                    max_growth_per_database: connection_pool::MAX_GROWTH_PER_DATABASE,
                };
                self.pools.reset(request, parameter, resize).await
            }
            other => Err(HealError::unsupported(self.layer(), other)),
        }
    }

    async fn revert(
        &self,
        request: HealRequest<'_>,
        revert: &Revert,
    ) -> Result<HealOutcome, HealError> {
        match (&request.rule.action, revert.kind.as_str()) {
            (
                Action::EnableGracefulDegradation { parameter, .. },
                degradation::DISABLE_GRACEFUL_DEGRADATION,
            ) => self.degradation.disable(request, parameter, revert).await,
            (
                Action::ResetConnectionPool { parameter, .. },
                connection_pool::RESTORE_CONNECTION_POOL,
            ) => self.pools.restore(request, parameter, revert).await,
            _ => Err(HealError::unknown_revert(self.layer(), revert)),
        }
    }
}
