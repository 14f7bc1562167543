//! What a rule does: one action of one layer, with its parameters and their defaults.

use serde::{Deserialize, Serialize};

use crate::model::event::MetricRef;
use crate::model::layer::Layer;
use crate::model::resource_id::ResourceKind;

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
    DEFAULT_KEEP
}
fn default_health_check_grace_period() -> u32 {
    300
}
fn default_heap_dump_timeout() -> u32 {
    120
}
fn default_heap_dump_max_mb() -> u32 {
    4096
}
fn default_heap_dump_directory() -> String {
    "/var/tmp/autoheal".to_owned()
}
fn default_stop_timeout() -> u32 {
    30
}
fn default_shed() -> Vec<String> {
    [
        "recommendations",
        "non-critical-writes",
        "expensive-queries",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// The largest number of tasks an ECS service may run (the service quota).
pub const ECS_MAX_TASKS_PER_SERVICE: u32 = 5000;

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
        /// `"ELB"`: a group behind a load balancer whose health check type is `EC2` is
        /// switched to `ELB`, so that it replaces the instances the load balancer finds
        /// unhealthy. Kept after the incident: it is the group's fix, not a stopgap.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        health_check_type: Option<String>,
        /// The grace period set with the `ELB` health check type.
        #[serde(default = "default_health_check_grace_period")]
        health_check_grace_period: u32,
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
        /// Tasks added to the desired count for the restart, so that capacity does not dip
        /// while tasks are replaced; the count goes back when the incident resolves.
        #[serde(default)]
        desired_count_adjustment: u32,
        /// The desired count never goes past this (at most the service quota).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_desired_count: Option<u32>,
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
        /// A diagnostic run before the restart, e.g. `jcmd {pid} GC.heap_dump {output}` or
        /// `gcore -o {output} {pid}`: `{pid}` is the service's main process, `{output}` the
        /// file it writes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        heap_dump_command: Option<String>,
        /// The heap dump is stopped after this long; the restart goes on.
        #[serde(default = "default_heap_dump_timeout")]
        heap_dump_timeout_seconds: u32,
        /// No dump is taken without twice this much free space, and a larger one is deleted.
        #[serde(default = "default_heap_dump_max_mb")]
        heap_dump_max_mb: u32,
        /// Where the dump goes on the instance.
        #[serde(default = "default_heap_dump_directory")]
        heap_dump_directory: String,
        /// How long the service gets to stop gracefully before it is killed.
        #[serde(default = "default_stop_timeout")]
        stop_timeout_seconds: u32,
    },
    /// Switch on the degradation flag an application reads from Parameter Store, so that it
    /// sheds optional work; switched off again when the incident resolves.
    EnableGracefulDegradation {
        parameter: String,
        /// The optional work the application stops while degraded.
        #[serde(default = "default_shed")]
        shed: Vec<String>,
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
        /// The operator's integrity check (a Lambda function), run on the restored instance
        /// once it is available; without one the record says the check was not run.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        integrity_hook_function: Option<String>,
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
        /// The backup policy: an instance keeping automated backups fewer days is brought up
        /// to this, as is one whose test restore failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min_backup_retention_days: Option<u32>,
        /// The backup policy's daily window, `hh24:mi-hh24:mi` in UTC, set with the retention.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        preferred_backup_window: Option<String>,
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
            Action::EnableGracefulDegradation { .. } => "enable-graceful-degradation",
            Action::RestoreDbToPointInTime { .. } => "restore-db-to-point-in-time",
            Action::RepairCache { .. } => "repair-cache",
            Action::VerifyBackup { .. } => "verify-backup",
            Action::DeregisterUnhealthyTargets {} => "deregister-unhealthy-targets",
            Action::FailOverDnsRecord { .. } => "fail-over-dns-record",
            Action::ReplaceNatRoute { .. } => "replace-nat-route",
        }
    }

    /// Whether the action weighs the alarm's own actions (an EC2 `reboot` or `recover`
    /// action of the alarm heals the instance itself): the engine reads them from CloudWatch
    /// before such an action, and only then.
    pub fn weighs_alarm_actions(&self) -> bool {
        matches!(self, Action::RecoverEc2Instance { .. })
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
            Action::ResetCircuitBreaker { .. }
            | Action::ResetConnectionPool { .. }
            | Action::EnableGracefulDegradation { .. } => ResourceKind::ApplicationService,
            Action::RepairCache { .. } => ResourceKind::ElastiCacheCluster,
            Action::DeregisterUnhealthyTargets {} => ResourceKind::TargetGroup,
            Action::FailOverDnsRecord { .. } => ResourceKind::Route53HealthCheck,
            Action::ReplaceNatRoute { .. } => ResourceKind::NatGateway,
        }
    }

    /// Why `metric` watches a part of the resource that this action does not heal, if it
    /// does. An alias rollback heals its own alias: an alarm on another alias
    /// (`Resource = <function>:<other alias>`) or on one version (`ExecutedVersion`, or
    /// `Resource = <function>:<version>`) says nothing about it, and must not roll it back.
    pub fn foreign_target(&self, metric: &MetricRef) -> Option<String> {
        let Action::RollbackLambdaAlias { alias } = self else {
            return None;
        };
        if let Some(version) = metric.dimensions.get("ExecutedVersion") {
            return Some(format!(
                "the alarm watches version {version}, not alias `{alias}`"
            ));
        }
        let resource = metric.dimensions.get("Resource")?;
        let qualifier = resource.rsplit_once(':').map(|(_, qualifier)| qualifier);
        match qualifier {
            // The function as a whole (no qualifier) includes the alias's invocations.
            None => None,
            Some(qualifier) if qualifier == alias => None,
            Some(qualifier) => Some(format!(
                "the alarm watches `{qualifier}` of the function (`Resource = {resource}`), not alias `{alias}`"
            )),
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
            | Action::ResetConnectionPool { .. }
            | Action::EnableGracefulDegradation { .. } => Layer::Application,
            Action::RestoreDbToPointInTime { .. }
            | Action::RepairCache { .. }
            | Action::VerifyBackup { .. } => Layer::Data,
            Action::DeregisterUnhealthyTargets {}
            | Action::FailOverDnsRecord { .. }
            | Action::ReplaceNatRoute { .. } => Layer::Network,
        }
    }
}

/// How many snapshots of a resource a rule keeps when its file does not say.
pub const DEFAULT_KEEP: u32 = 3;

/// A rule's snapshot retention: what its action keeps of autoheal's own snapshots once it has
/// taken a new one (the retention policy applies it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// The newest finished snapshots kept (at least 1).
    pub keep: u32,
    /// Finished snapshots older than this many days are deleted, whatever `keep` says.
    pub max_age_days: Option<u32>,
}

impl Retention {
    /// The retention of an action that takes snapshots; `None` for the others.
    pub fn of(action: &Action) -> Option<Retention> {
        match action {
            Action::RepairEbsVolume {
                keep_snapshots,
                snapshot_max_age_days,
                ..
            }
            | Action::RebootRdsInstance {
                keep_snapshots,
                snapshot_max_age_days,
                ..
            }
            | Action::VerifyBackup {
                keep_snapshots,
                snapshot_max_age_days,
                ..
            } => Some(Retention {
                keep: *keep_snapshots,
                max_age_days: *snapshot_max_age_days,
            }),
            _ => None,
        }
    }
}
