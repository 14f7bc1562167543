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
            | Action::ResetConnectionPool { parameter, .. }
            | Action::EnableGracefulDegradation { parameter, .. } => {
                non_empty("action.parameter", parameter);
                if let Some(message) = parameter_template_problem(parameter) {
                    problems.push(("action.parameter", message));
                }
            }
            Action::RestartProcess {
                service,
                document,
                heap_dump_command,
                heap_dump_directory,
                ..
            } => {
                non_empty("action.service", service);
                non_empty("action.document", document);
                non_empty("action.heap_dump_directory", heap_dump_directory);
                if let Some(command) = heap_dump_command {
                    non_empty("action.heap_dump_command", command);
                }
                if !service.trim().is_empty() && !is_systemd_unit_name(service) {
                    problems.push((
                        "action.service",
                        "must be a systemd unit name: letters, digits and `@._-` only, not starting with `-`"
                            .to_owned(),
                    ));
                }
            }
            Action::RestoreDbToPointInTime {
                target_suffix,
                integrity_hook_function,
                ..
            } => {
                non_empty("action.target_suffix", target_suffix);
                if let Some(hook) = integrity_hook_function {
                    non_empty("action.integrity_hook_function", hook);
                }
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
        problems.extend(self.setting_problems());
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

impl Action {
    /// Problems with the parameters that tune an action (limits, formats, placeholders).
    fn setting_problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        match self {
            Action::ScaleOutAutoScalingGroup {
                health_check_type: Some(kind),
                health_check_grace_period,
                ..
            } => {
                if kind != "ELB" {
                    problems.push((
                        "action.health_check_type",
                        format!("must be \"ELB\" (the group's own EC2 checks need no rule), not {kind:?}"),
                    ));
                }
                if *health_check_grace_period > 7200 {
                    problems.push((
                        "action.health_check_grace_period",
                        "must be at most 7200 seconds".to_owned(),
                    ));
                }
            }
            Action::RestartEcsService {
                desired_count_adjustment,
                max_desired_count,
                ..
            } => {
                if *desired_count_adjustment > ECS_MAX_TASKS_PER_SERVICE {
                    problems.push((
                        "action.desired_count_adjustment",
                        format!("must be at most {ECS_MAX_TASKS_PER_SERVICE} (tasks per service)"),
                    ));
                }
                if let Some(max) = max_desired_count
                    && !(1..=ECS_MAX_TASKS_PER_SERVICE).contains(max)
                {
                    problems.push((
                        "action.max_desired_count",
                        format!("must be between 1 and {ECS_MAX_TASKS_PER_SERVICE}"),
                    ));
                }
            }
            Action::RestartProcess {
                heap_dump_command,
                heap_dump_timeout_seconds,
                heap_dump_max_mb,
                heap_dump_directory,
                stop_timeout_seconds,
                ..
            } => {
                if let Some(command) = heap_dump_command
                    && let Some(message) = heap_dump_command_problem(command)
                {
                    problems.push(("action.heap_dump_command", message));
                }
                if !(1..=3600).contains(heap_dump_timeout_seconds) {
                    problems.push((
                        "action.heap_dump_timeout_seconds",
                        "must be between 1 and 3600".to_owned(),
                    ));
                }
                if *heap_dump_max_mb == 0 {
                    problems.push(("action.heap_dump_max_mb", "must be at least 1".to_owned()));
                }
                if !heap_dump_directory.trim().is_empty()
                    && !is_plain_absolute_path(heap_dump_directory)
                {
                    problems.push((
                        "action.heap_dump_directory",
                        "must be an absolute path of letters, digits and `/._-` only".to_owned(),
                    ));
                }
                if !(1..=3600).contains(stop_timeout_seconds) {
                    problems.push((
                        "action.stop_timeout_seconds",
                        "must be between 1 and 3600".to_owned(),
                    ));
                }
            }
            Action::EnableGracefulDegradation { shed, .. }
                if shed.is_empty() || shed.iter().any(|work| work.trim().is_empty()) =>
            {
                problems.push((
                    "action.shed",
                    "must name at least one kind of optional work, none empty".to_owned(),
                ));
            }
            Action::VerifyBackup {
                min_backup_retention_days,
                preferred_backup_window,
                ..
            } => {
                if let Some(days) = min_backup_retention_days
                    && !(1..=35).contains(days)
                {
                    problems.push((
                        "action.min_backup_retention_days",
                        "must be between 1 and 35 (what RDS keeps)".to_owned(),
                    ));
                }
                if let Some(window) = preferred_backup_window
                    && let Err(message) = backup_window_minutes(window)
                {
                    problems.push(("action.preferred_backup_window", message));
                }
            }
            _ => {}
        }
        problems
    }
}

/// A heap-dump command: one line, with `{pid}` and `{output}` as its only placeholders and
/// `{output}` in it, so that the record can say where the dump is.
fn heap_dump_command_problem(command: &str) -> Option<String> {
    if command.trim().is_empty() {
        return None;
    }
    if command.chars().any(char::is_control) {
        return Some("must be one line without control characters".to_owned());
    }
    if !command.contains("{output}") {
        return Some("must contain `{output}`, the file the dump is written to".to_owned());
    }
    let rest = command.replace("{pid}", "").replace("{output}", "");
    if rest.contains(['{', '}']) {
        return Some("`{pid}` and `{output}` are the only placeholders it may contain".to_owned());
    }
    None
}

/// An absolute path that can go into a shell command as it is.
fn is_plain_absolute_path(path: &str) -> bool {
    path.starts_with('/')
        && !path.split('/').any(|part| part == "..")
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-'))
}

/// The length in minutes of an RDS backup window `hh24:mi-hh24:mi` (UTC, at least 30
/// minutes), or why it is not one.
pub fn backup_window_minutes(window: &str) -> Result<u32, String> {
    let invalid =
        || format!("must be `hh24:mi-hh24:mi` in UTC, e.g. `03:00-04:00`, not `{window}`");
    let minutes = |time: &str| -> Option<u32> {
        let (hours, minutes) = time.split_once(':')?;
        if hours.len() != 2 || minutes.len() != 2 {
            return None;
        }
        let (hours, minutes): (u32, u32) = (hours.parse().ok()?, minutes.parse().ok()?);
        (hours < 24 && minutes < 60).then_some(hours * 60 + minutes)
    };
    let (start, end) = window.split_once('-').ok_or_else(invalid)?;
    let (start, end) = (
        minutes(start).ok_or_else(invalid)?,
        minutes(end).ok_or_else(invalid)?,
    );
    let length = (end + 24 * 60 - start) % (24 * 60);
    if length < 30 {
        return Err(format!("must be at least 30 minutes long, not `{window}`"));
    }
    Ok(length)
}
