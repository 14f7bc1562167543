//! What a rule does: one action of one layer, with its parameters and their defaults.

use serde::{Deserialize, Serialize};

use crate::layer::Layer;
use crate::resource_id::ResourceKind;

pub(super) fn yes() -> bool {
    true
}
fn default_scale_increment() -> u32 {
    2
}
fn default_volume_type() -> String {
    "gp3".to_owned()
}
fn default_trial_percent() -> u8 {
    10
}
fn default_run_shell_document() -> String {
    "AWS-RunShellScript".to_owned()
}
fn default_pool_timeout() -> u32 {
    30
}
fn default_max_connections_limit() -> u32 {
    1000
}
fn default_restore_suffix() -> String {
    "-restored".to_owned()
}
fn default_lookback_minutes() -> u32 {
    5
}
fn default_verification_class() -> String {
    "db.t3.micro".to_owned()
}
fn default_standby_tag() -> String {
    "autoheal:standby-nat-gateway".to_owned()
}
fn default_keep_snapshots() -> u32 {
    crate::retention::DEFAULT_KEEP
}

/// What a rule does, with its parameters. Each action belongs to exactly one layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Action {
    /// Recover an instance whose status checks fail, least destructive first. An Auto Scaling
    /// member is marked unhealthy so its group replaces it. A standalone instance is never
    /// replaced: a failed instance check is answered with a reboot (with `reboot_first`), and
    /// a failed system check, or a later attempt, with a stop and start onto healthy hardware,
    /// which keeps its EBS volumes, private IPs and network interfaces.
    RecoverEc2Instance {
        #[serde(default = "yes")]
        reboot_first: bool,
        /// `false`: never stop an instance; what a reboot cannot fix goes to a person.
        #[serde(default = "yes")]
        allow_stop_start: bool,
    },
    /// Scale an Auto Scaling group out within its maximum and replace unhealthy members.
    ScaleOutAutoScalingGroup {
        #[serde(default = "default_scale_increment")]
        increment: u32,
        #[serde(default = "yes")]
        replace_unhealthy: bool,
    },
    /// Snapshot a degraded EBS volume, then migrate it to a healthy volume type.
    RepairEbsVolume {
        #[serde(default = "yes")]
        snapshot_first: bool,
        #[serde(default = "default_volume_type")]
        target_volume_type: String,
        #[serde(default)]
        force_detach: bool,
        /// autoheal's snapshots of the volume kept after a repair, the new one included.
        #[serde(default = "default_keep_snapshots")]
        keep_snapshots: u32,
        /// autoheal's snapshots of the volume older than this are deleted after a repair.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        snapshot_max_age_days: Option<u32>,
    },
    /// Force a new deployment of an ECS service and stop its unhealthy tasks.
    RestartEcsService {
        #[serde(default = "yes")]
        force_new_deployment: bool,
        #[serde(default = "yes")]
        stop_unhealthy_tasks: bool,
    },
    /// Point a Lambda alias back at the previously published version.
    RollbackLambdaAlias { alias: String },
    /// Snapshot an RDS instance, then reboot it (with failover when Multi-AZ and asked).
    RebootRdsInstance {
        #[serde(default = "yes")]
        snapshot_first: bool,
        #[serde(default)]
        force_failover: bool,
        /// autoheal's snapshots of the instance kept after a reboot, the new one included.
        #[serde(default = "default_keep_snapshots")]
        keep_snapshots: u32,
        /// autoheal's snapshots of the instance older than this are deleted after a reboot.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        snapshot_max_age_days: Option<u32>,
    },
    /// Half-open a circuit breaker the application reads from a Parameter Store parameter.
    ResetCircuitBreaker {
        parameter: String,
        #[serde(default = "default_trial_percent")]
        trial_traffic_percent: u8,
    },
    /// Restart a process on an instance through a Systems Manager Run Command.
    RestartProcess {
        service: String,
        #[serde(default = "default_run_shell_document")]
        document: String,
    },
    /// Reset and resize a connection pool the application reads from Parameter Store.
    ResetConnectionPool {
        parameter: String,
        grow_by: u32,
        #[serde(default = "default_pool_timeout")]
        timeout_seconds: u32,
        /// The pool never grows past this size.
        #[serde(default = "default_max_connections_limit")]
        max_connections_limit: u32,
    },
    /// Restore a database to a point just before the corruption, into a new instance.
    RestoreDbToPointInTime {
        #[serde(default = "default_restore_suffix")]
        target_suffix: String,
        #[serde(default = "default_lookback_minutes")]
        lookback_minutes: u32,
    },
    /// Run the cache-repair hook the operator names (a Lambda function): warm, evict, set TTL.
    RepairCache {
        hook_function: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ttl_seconds: Option<u32>,
    },
    /// Take a fresh backup and prove it restores, then clean up the test restore.
    VerifyBackup {
        #[serde(default = "default_verification_class")]
        restore_instance_class: String,
        /// Verified backups of the instance kept, the new one included.
        #[serde(default = "default_keep_snapshots")]
        keep_snapshots: u32,
        /// Verified backups older than this are deleted after a verification.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        snapshot_max_age_days: Option<u32>,
    },
    /// Deregister the unhealthy targets of a load-balancer target group.
    DeregisterUnhealthyTargets {},
    /// Move DNS traffic away from the endpoint of a failed Route 53 health check.
    FailOverDnsRecord {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hosted_zone_id: Option<String>,
    },
    /// Replace routes through a failed NAT gateway with its tagged standby.
    ReplaceNatRoute {
        #[serde(default = "default_standby_tag")]
        standby_tag: String,
    },
}

impl Action {
    /// The action's name as written in the rules file.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::RecoverEc2Instance { .. } => "recover-ec2-instance",
            Action::ScaleOutAutoScalingGroup { .. } => "scale-out-auto-scaling-group",
            Action::RepairEbsVolume { .. } => "repair-ebs-volume",
            Action::RestartEcsService { .. } => "restart-ecs-service",
            Action::RollbackLambdaAlias { .. } => "rollback-lambda-alias",
            Action::RebootRdsInstance { .. } => "reboot-rds-instance",
            Action::ResetCircuitBreaker { .. } => "reset-circuit-breaker",
            Action::RestartProcess { .. } => "restart-process",
            Action::ResetConnectionPool { .. } => "reset-connection-pool",
            Action::RestoreDbToPointInTime { .. } => "restore-db-to-point-in-time",
            Action::RepairCache { .. } => "repair-cache",
            Action::VerifyBackup { .. } => "verify-backup",
            Action::DeregisterUnhealthyTargets {} => "deregister-unhealthy-targets",
            Action::FailOverDnsRecord { .. } => "fail-over-dns-record",
            Action::ReplaceNatRoute { .. } => "replace-nat-route",
        }
    }

    /// The kind of resource the action heals: its id must have that kind's format.
    pub fn resource_kind(&self) -> ResourceKind {
        match self {
            Action::RecoverEc2Instance { .. } | Action::RestartProcess { .. } => {
                ResourceKind::Ec2Instance
            }
            Action::ScaleOutAutoScalingGroup { .. } => ResourceKind::AutoScalingGroup,
            Action::RepairEbsVolume { .. } => ResourceKind::EbsVolume,
            Action::RestartEcsService { .. } => ResourceKind::EcsService,
            Action::RollbackLambdaAlias { .. } => ResourceKind::LambdaFunction,
            Action::RebootRdsInstance { .. }
            | Action::RestoreDbToPointInTime { .. }
            | Action::VerifyBackup { .. } => ResourceKind::RdsInstance,
            // The id names the application's own parameter: `/autoheal/{resource}/...`.
            Action::ResetCircuitBreaker { .. } | Action::ResetConnectionPool { .. } => {
                ResourceKind::ApplicationService
            }
            Action::RepairCache { .. } => ResourceKind::ElastiCacheCluster,
            Action::DeregisterUnhealthyTargets {} => ResourceKind::TargetGroup,
            Action::FailOverDnsRecord { .. } => ResourceKind::Route53HealthCheck,
            Action::ReplaceNatRoute { .. } => ResourceKind::NatGateway,
        }
    }

    /// The layer whose function may run this action.
    pub fn layer(&self) -> Layer {
        match self {
            Action::RecoverEc2Instance { .. }
            | Action::ScaleOutAutoScalingGroup { .. }
            | Action::RepairEbsVolume { .. } => Layer::Infrastructure,
            Action::RestartEcsService { .. }
            | Action::RollbackLambdaAlias { .. }
            | Action::RebootRdsInstance { .. } => Layer::Platform,
            Action::ResetCircuitBreaker { .. }
            | Action::RestartProcess { .. }
            | Action::ResetConnectionPool { .. } => Layer::Application,
            Action::RestoreDbToPointInTime { .. }
            | Action::RepairCache { .. }
            | Action::VerifyBackup { .. } => Layer::Data,
            Action::DeregisterUnhealthyTargets {}
            | Action::FailOverDnsRecord { .. }
            | Action::ReplaceNatRoute { .. } => Layer::Network,
        }
    }

    /// Problems with the parameters, as (field, message) pairs.
    pub(super) fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        let mut non_empty = |field: &'static str, value: &str| {
            if value.trim().is_empty() {
                problems.push((field, "must not be empty".to_owned()));
            }
        };
        match self {
            Action::RepairEbsVolume {
                target_volume_type, ..
            } => non_empty("action.target_volume_type", target_volume_type),
            Action::RollbackLambdaAlias { alias } => non_empty("action.alias", alias),
            Action::ResetCircuitBreaker { parameter, .. }
            | Action::ResetConnectionPool { parameter, .. } => {
                non_empty("action.parameter", parameter);
                if let Some(message) = parameter_template_problem(parameter) {
                    problems.push(("action.parameter", message));
                }
            }
            Action::RestartProcess { service, document } => {
                non_empty("action.service", service);
                non_empty("action.document", document);
                if !service.trim().is_empty() && !is_systemd_unit_name(service) {
                    problems.push((
                        "action.service",
                        "must be a systemd unit name: letters, digits and `@._-` only, not starting with `-`"
                            .to_owned(),
                    ));
                }
            }
            Action::RestoreDbToPointInTime { target_suffix, .. } => {
                non_empty("action.target_suffix", target_suffix)
            }
            Action::RepairCache { hook_function, .. } => {
                non_empty("action.hook_function", hook_function)
            }
            Action::VerifyBackup {
                restore_instance_class,
                ..
            } => non_empty("action.restore_instance_class", restore_instance_class),
            Action::ReplaceNatRoute { standby_tag } => non_empty("action.standby_tag", standby_tag),
            _ => {}
        }
        match self {
            Action::RepairEbsVolume {
                snapshot_first: false,
                ..
            } => problems.push((
                "action.snapshot_first",
                "must be true: the replacement volume is built from the snapshot".to_owned(),
            )),
            Action::ScaleOutAutoScalingGroup { increment: 0, .. } => {
                problems.push(("action.increment", "must be at least 1".to_owned()));
            }
            Action::ResetCircuitBreaker {
                trial_traffic_percent,
                ..
            } if !(1..=100).contains(trial_traffic_percent) => {
                problems.push((
                    "action.trial_traffic_percent",
                    "must be between 1 and 100".to_owned(),
                ));
            }
            Action::ResetConnectionPool {
                timeout_seconds: 0, ..
            } => problems.push(("action.timeout_seconds", "must be at least 1".to_owned())),
            Action::ResetConnectionPool {
                max_connections_limit: 0,
                ..
            } => problems.push((
                "action.max_connections_limit",
                "must be at least 1".to_owned(),
            )),
            _ => {}
        }
        if let Some(retention) = crate::retention::Retention::of(self) {
            if retention.keep == 0 {
                problems.push((
                    "action.keep_snapshots",
                    "must be at least 1: the snapshot just taken is always kept".to_owned(),
                ));
            }
            if retention.max_age_days == Some(0) {
                problems.push((
                    "action.snapshot_max_age_days",
                    "must be at least 1 (leave it out to keep snapshots of any age)".to_owned(),
                ));
            }
        }
        problems
    }
}

/// A Parameter Store name template: `{resource}` is its only placeholder, and it is there, so
/// that each resource has its own parameter.
fn parameter_template_problem(template: &str) -> Option<String> {
    if template.trim().is_empty() {
        return None;
    }
    let rest = template.replace("{resource}", "");
    if rest.len() == template.len() {
        Some("must contain `{resource}`, the resource's own part of the name".to_owned())
    } else if rest.contains(['{', '}']) {
        Some("`{resource}` is the only placeholder it may contain".to_owned())
    } else {
        None
    }
}

/// A systemd unit name as autoheal accepts it: letters, digits and `@._-`, so that it can be
/// put into a shell command as it is.
fn is_systemd_unit_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '@' | '.' | '_' | '-'))
}
