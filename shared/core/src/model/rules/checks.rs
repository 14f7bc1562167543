//! The checks of an action's parameters: limits, formats and placeholders, each problem as
//! the field at fault and what is wrong with it.

use super::action::{Action, ECS_MAX_TASKS_PER_SERVICE, Retention};

impl Action {
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
        if let Some(retention) = Retention::of(self) {
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

/// The heap-dump commands the stack's restart document runs, as a rule writes them, and the
/// tool the document names each by. Any other `heap_dump_command` cannot be run: the document
/// runs no command of the rule's own.
pub const HEAP_DUMP_COMMANDS: [(&str, &str); 3] = [
    ("jcmd {pid} GC.heap_dump {output}", "jcmd"),
    ("jmap -dump:format=b,file={output} {pid}", "jmap"),
    ("gcore -o {output} {pid}", "gcore"),
];

/// The restart document's tool for a rule's heap-dump command (spaces aside), or `None`.
pub fn heap_dump_tool(command: &str) -> Option<&'static str> {
    let words = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
    let command = words(command);
    HEAP_DUMP_COMMANDS
        .iter()
        .find(|(known, _)| words(known) == command)
        .map(|(_, tool)| *tool)
}

/// A heap-dump command the restart document cannot run: one of `HEAP_DUMP_COMMANDS` or
/// nothing, refused when the rules are loaded rather than when a restart is due.
fn heap_dump_command_problem(command: &str) -> Option<String> {
    if command.trim().is_empty() || heap_dump_tool(command).is_some() {
        return None;
    }
    let known: Vec<String> = HEAP_DUMP_COMMANDS
        .iter()
        .map(|(known, _)| format!("`{known}`"))
        .collect();
    Some(format!(
        "must be one of the commands the restart document runs: {}",
        known.join(", ")
    ))
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
