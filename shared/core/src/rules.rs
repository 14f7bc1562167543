//! Healing rules: a declarative TOML file, validated with the rule, field and line at fault.
//!
//! TOML because operators edit this file by hand: it has comments, no significant indentation,
//! and its parser reports the line of every error. README.md ("Healing rules") describes the format.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::layer::Layer;

/// The rules shipped inside every binary; `AUTOHEAL_RULES_PATH` replaces them at deploy time.
pub const SHIPPED_RULES: &str = include_str!("../../../rules/autoheal-rules.toml");

/// Whether a rule acts, or only records what it would have done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    #[default]
    Enforce,
    Shadow,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Shadow => "shadow",
        }
    }
}

/// Which alarms select a rule. Any one selector is enough:
/// an alarm tag `autoheal:rule` naming the rule, an alarm-name prefix, or a metric match
/// (namespace, optionally metric names, and dimension names the metric must carry).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dimensions: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alarm_name_prefixes: Vec<String>,
}

/// How the id of the resource to heal is read from the alarm. Exactly one field is set.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceSelector {
    /// The value of this metric dimension (e.g. `InstanceId`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimension: Option<String>,
    /// A template over dimension names and `{aws.region}`, `{aws.account}`,
    /// e.g. `"{ClusterName}/{ServiceName}"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// The value of this alarm tag; the way composite alarms name their resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm_tag: Option<String>,
}

fn yes() -> bool {
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
    fn problems(&self) -> Vec<(&'static str, String)> {
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

/// Defaults for every rule; a rule may override each of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// How long an OK must hold before the incident closes and attempts reset.
    #[serde(default = "Defaults::stable_period")]
    pub stable_period_seconds: u64,
    /// The longest wait between two attempts of one incident, however many failed.
    #[serde(default = "Defaults::backoff_max")]
    pub backoff_max_seconds: u64,
    /// How long a claim stays valid if the invocation holding it dies.
    #[serde(default = "Defaults::lease")]
    pub lease_seconds: u64,
}

impl Defaults {
    fn stable_period() -> u64 {
        900
    }
    fn backoff_max() -> u64 {
        3600
    }
    fn lease() -> u64 {
        900
    }
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            stable_period_seconds: Self::stable_period(),
            backoff_max_seconds: Self::backoff_max(),
            lease_seconds: Self::lease(),
        }
    }
}

/// The timing and budget that govern one rule's attempts on one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Policy {
    pub cooldown_seconds: u64,
    pub max_attempts: u32,
    pub stable_period_seconds: u64,
    pub backoff_max_seconds: u64,
    pub lease_seconds: u64,
}

/// One validated healing rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rule {
    pub name: String,
    pub description: String,
    pub layer: Layer,
    pub enabled: bool,
    pub mode: Mode,
    pub trigger: Trigger,
    pub resource: ResourceSelector,
    pub action: Action,
    pub policy: Policy,
}

/// The rules of one deployment, in file order (the first matching rule wins).
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSet {
    rules: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    defaults: Option<Defaults>,
    #[serde(default)]
    rule: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: String,
    #[serde(default)]
    description: String,
    layer: Layer,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    mode: Mode,
    trigger: Trigger,
    resource: ResourceSelector,
    action: Action,
    cooldown_seconds: u64,
    max_attempts: u32,
    #[serde(default)]
    stable_period_seconds: Option<u64>,
    #[serde(default)]
    backoff_max_seconds: Option<u64>,
    #[serde(default)]
    lease_seconds: Option<u64>,
}

/// One thing wrong with a rules file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleProblem {
    /// 1-based line in the file, when known.
    pub line: Option<usize>,
    /// The rule's name (or its position, `rule #3`, when it has no readable name).
    pub rule: Option<String>,
    /// The field at fault, as a dotted path inside the rule (e.g. `action.type`).
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for RuleProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if let Some(rule) = &self.rule {
            write!(f, "rule `{rule}`: ")?;
        }
        if let Some(field) = &self.field {
            write!(f, "field `{field}`: ")?;
        }
        f.write_str(&self.message)
    }
}

/// A rules file that cannot be used; nothing in it is applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(.problems))]
pub struct RulesError {
    pub problems: Vec<RuleProblem>,
}

fn render(problems: &[RuleProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl RuleSet {
    /// The rules compiled into the binary. They are checked by the test suite, so failing to
    /// parse them here is a build defect and reported as such.
    pub fn shipped() -> Result<Self, RulesError> {
        Self::from_toml(SHIPPED_RULES)
    }

    /// Parses and validates a rules file.
    pub fn from_toml(text: &str) -> Result<Self, RulesError> {
        let headers = RuleHeaders::scan(text);
        let raw: RawFile = parse_raw(text, &headers)?;
        let defaults = raw.defaults.unwrap_or_default();
        let mut problems = Vec::new();
        let mut seen = HashSet::new();
        let mut rules = Vec::with_capacity(raw.rule.len());
        for (index, raw_rule) in raw.rule.into_iter().enumerate() {
            let line = headers.line_of(index);
            let label = if raw_rule.name.trim().is_empty() {
                format!("rule #{}", index + 1)
            } else {
                raw_rule.name.clone()
            };
            let mut problem = |field: &str, message: String| {
                problems.push(RuleProblem {
                    line,
                    rule: Some(label.clone()),
                    field: Some(field.to_owned()),
                    message,
                });
            };
            if !is_rule_name(&raw_rule.name) {
                problem(
                    "name",
                    "must be lower-case letters, digits and dashes, starting with a letter"
                        .to_owned(),
                );
            } else if !seen.insert(raw_rule.name.clone()) {
                problem("name", "duplicate rule name".to_owned());
            }
            if raw_rule.max_attempts == 0 {
                problem("max_attempts", "must be at least 1".to_owned());
            }
            if raw_rule.action.layer() != raw_rule.layer {
                problem(
                    "action.type",
                    format!(
                        "`{}` is a {} action, but the rule is in the {} layer",
                        raw_rule.action.kind(),
                        raw_rule.action.layer(),
                        raw_rule.layer
                    ),
                );
            }
            for (field, message) in raw_rule.action.problems() {
                problem(field, message);
            }
            for (field, message) in trigger_problems(&raw_rule.trigger) {
                problem(field, message);
            }
            for (field, message) in resource_problems(&raw_rule.resource) {
                problem(field, message);
            }
            let lease_seconds = raw_rule.lease_seconds.unwrap_or(defaults.lease_seconds);
            if lease_seconds == 0 {
                problem("lease_seconds", "must be at least 1".to_owned());
            }
            rules.push(Rule {
                name: raw_rule.name,
                description: raw_rule.description,
                layer: raw_rule.layer,
                enabled: raw_rule.enabled,
                mode: raw_rule.mode,
                trigger: raw_rule.trigger,
                resource: raw_rule.resource,
                action: raw_rule.action,
                policy: Policy {
                    cooldown_seconds: raw_rule.cooldown_seconds,
                    max_attempts: raw_rule.max_attempts,
                    stable_period_seconds: raw_rule
                        .stable_period_seconds
                        .unwrap_or(defaults.stable_period_seconds),
                    backoff_max_seconds: raw_rule
                        .backoff_max_seconds
                        .unwrap_or(defaults.backoff_max_seconds),
                    lease_seconds,
                },
            });
        }
        if problems.is_empty() {
            Ok(RuleSet { rules })
        } else {
            Err(RulesError { problems })
        }
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn get(&self, name: &str) -> Option<&Rule> {
        self.rules.iter().find(|rule| rule.name == name)
    }

    pub fn of_layer(&self, layer: Layer) -> impl Iterator<Item = &Rule> {
        self.rules.iter().filter(move |rule| rule.layer == layer)
    }

    /// Rules per layer, and how many of them are enabled.
    pub fn counts(&self) -> BTreeMap<Layer, (usize, usize)> {
        let mut counts = BTreeMap::new();
        for rule in &self.rules {
            let entry = counts.entry(rule.layer).or_insert((0, 0));
            entry.0 += 1;
            if rule.enabled {
                entry.1 += 1;
            }
        }
        counts
    }
}

fn is_rule_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn trigger_problems(trigger: &Trigger) -> Vec<(&'static str, String)> {
    let mut problems = Vec::new();
    if trigger.namespace.is_none() && trigger.alarm_name_prefixes.is_empty() {
        problems.push((
            "trigger",
            "needs a `namespace` or at least one of `alarm_name_prefixes`".to_owned(),
        ));
    }
    if trigger
        .namespace
        .as_deref()
        .is_some_and(|ns| ns.trim().is_empty())
    {
        problems.push(("trigger.namespace", "must not be empty".to_owned()));
    }
    if trigger.namespace.is_none()
        && (!trigger.metrics.is_empty() || !trigger.dimensions.is_empty())
    {
        problems.push((
            "trigger.namespace",
            "is required when `metrics` or `dimensions` are given".to_owned(),
        ));
    }
    for (field, values) in [
        ("trigger.metrics", &trigger.metrics),
        ("trigger.dimensions", &trigger.dimensions),
        ("trigger.alarm_name_prefixes", &trigger.alarm_name_prefixes),
    ] {
        if values.iter().any(|value| value.trim().is_empty()) {
            problems.push((field, "must not contain an empty string".to_owned()));
        }
    }
    problems
}

fn resource_problems(resource: &ResourceSelector) -> Vec<(&'static str, String)> {
    let set = [
        resource.dimension.is_some(),
        resource.template.is_some(),
        resource.alarm_tag.is_some(),
    ]
    .into_iter()
    .filter(|set| *set)
    .count();
    let mut problems = Vec::new();
    if set != 1 {
        problems.push((
            "resource",
            "needs exactly one of `dimension`, `template` or `alarm_tag`".to_owned(),
        ));
    }
    for (field, value) in [
        ("resource.dimension", &resource.dimension),
        ("resource.alarm_tag", &resource.alarm_tag),
    ] {
        if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
            problems.push((field, "must not be empty".to_owned()));
        }
    }
    if let Some(template) = &resource.template {
        match crate::resolve::placeholders(template) {
            Ok(names) if names.is_empty() => problems.push((
                "resource.template",
                "must name at least one `{placeholder}`".to_owned(),
            )),
            Ok(_) => {}
            Err(message) => problems.push(("resource.template", message)),
        }
    }
    problems
}

/// Where each `[[rule]]` table starts, to give line numbers to problems found after parsing.
struct RuleHeaders {
    lines: Vec<usize>,
}

impl RuleHeaders {
    fn scan(text: &str) -> Self {
        let lines = text
            .lines()
            .enumerate()
            .filter(|(_, line)| {
                let line = line.trim();
                line.starts_with("[[rule]]") || line.starts_with("[[ rule ]]")
            })
            .map(|(index, _)| index + 1)
            .collect();
        RuleHeaders { lines }
    }

    fn line_of(&self, rule_index: usize) -> Option<usize> {
        self.lines.get(rule_index).copied()
    }

    /// The index of the rule whose table contains `line`.
    fn rule_at(&self, line: usize) -> Option<usize> {
        self.lines.iter().rposition(|start| *start <= line)
    }
}

fn parse_raw(text: &str, headers: &RuleHeaders) -> Result<RawFile, RulesError> {
    // A lenient first pass finds rule names, so that a type error deeper in a rule can say
    // which rule it is in.
    let names: Vec<Option<String>> = match text.parse::<toml::Table>() {
        Ok(table) => table
            .get("rule")
            .and_then(toml::Value::as_array)
            .map(|rules| {
                rules
                    .iter()
                    .map(|rule| {
                        rule.get("name")
                            .and_then(toml::Value::as_str)
                            .map(str::to_owned)
                    })
                    .collect()
            })
            .unwrap_or_default(),
        Err(error) => return Err(syntax_error(text, headers, &error)),
    };
    let deserializer =
        toml::Deserializer::parse(text).map_err(|error| syntax_error(text, headers, &error))?;
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let mut line = error.inner().span().map(|span| line_at(text, span.start));
        let message = error.inner().message().to_owned();
        let mut segments = error.path().iter();
        let (rule_index, mut field) = match (segments.next(), segments.next()) {
            (
                Some(serde_path_to_error::Segment::Map { key }),
                Some(serde_path_to_error::Segment::Seq { index }),
            ) if key == "rule" => {
                let rest: Vec<String> = segments.map(ToString::to_string).collect();
                (Some(*index), rest.join("."))
            }
            _ => (
                line.and_then(|line| headers.rule_at(line)),
                error.path().to_string(),
            ),
        };
        // serde reports a missing field on its parent; name the field itself.
        if let Some(missing) = backticked(&message, "missing field `") {
            field = join_field(&field, missing);
        } else if message.starts_with("unknown variant") && field.ends_with("action") {
            field = join_field(&field, "type");
        } else if let Some(unknown) = backticked(&message, "unknown field `") {
            // The path already ends with the unknown key, except inside the (internally
            // tagged) action.
            if field.rsplit('.').next() != Some(unknown) {
                field = join_field(&field, unknown);
            }
        } else if field == "action"
            && let Some(index) = rule_index
            && let Some(parameter) = wrong_action_parameter(text, index)
        {
            // The action is read as a whole (its `type` picks the parameters), so serde does
            // not say which parameter holds the wrong value: name it, and its line.
            line = parameter_line(text, headers, index, "action", &parameter).or(line);
            field = join_field(&field, &parameter);
        }
        let rule = rule_index.map(|index| match names.get(index).cloned().flatten() {
            Some(name) if !name.trim().is_empty() => name,
            _ => format!("rule #{}", index + 1),
        });
        let line = line.or_else(|| rule_index.and_then(|index| headers.line_of(index)));
        RulesError {
            problems: vec![RuleProblem {
                line,
                rule,
                field: (!field.is_empty() && field != ".").then_some(field),
                message,
            }],
        }
    })
}

/// The parameter of rule `index`'s action whose value is wrong: the one without which the
/// action reads, or lacks only that parameter.
fn wrong_action_parameter(text: &str, index: usize) -> Option<String> {
    let file = text.parse::<toml::Table>().ok()?;
    let action = file
        .get("rule")?
        .as_array()?
        .get(index)?
        .get("action")?
        .as_table()?;
    action
        .keys()
        .filter(|key| key.as_str() != "type")
        .find(|key| {
            let mut without = action.clone();
            without.remove(key.as_str());
            match toml::Value::Table(without).try_into::<Action>() {
                Ok(_) => true,
                Err(error) => error.message() == format!("missing field `{key}`"),
            }
        })
        .cloned()
}

/// The 1-based line where rule `index` sets `key` of its table `[rule.<table>]` (or the
/// dotted `<table>.<key>` in the rule's own table).
fn parameter_line(
    text: &str,
    headers: &RuleHeaders,
    index: usize,
    table: &str,
    key: &str,
) -> Option<usize> {
    let start = headers.line_of(index)?;
    let end = headers.line_of(index + 1).unwrap_or(usize::MAX);
    let sub_table = format!("rule.{table}");
    let dotted = format!("{table}.{key}");
    let mut current = String::from("rule");
    for (at, line) in text
        .lines()
        .enumerate()
        .skip(start)
        .take(end.saturating_sub(start + 1))
    {
        let line = line.trim();
        if line.starts_with('[') {
            current = line
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or_default()
                .replace(' ', "");
            continue;
        }
        let Some((written, _)) = line.split_once('=') else {
            continue;
        };
        let written = written.trim().trim_matches('"').trim_matches('\'');
        if (current == sub_table && written == key) || (current == "rule" && written == dotted) {
            return Some(at + 1);
        }
    }
    None
}

/// A TOML syntax error. The file could not be parsed, so the rule and the key at fault are
/// read from the text around the error's line.
fn syntax_error(text: &str, headers: &RuleHeaders, error: &toml::de::Error) -> RulesError {
    let line = error.span().map(|span| line_at(text, span.start));
    let (rule, field) = line.map_or((None, None), |line| locate_line(text, headers, line));
    RulesError {
        problems: vec![RuleProblem {
            line,
            rule,
            field,
            message: format!("not valid TOML: {}", error.message()),
        }],
    }
}

/// The rule (its `name`, or `rule #N`) and the dotted key written on `line` (1-based), by
/// reading the raw lines: the table header above the line, and the `key =` on it.
fn locate_line(text: &str, headers: &RuleHeaders, line: usize) -> (Option<String>, Option<String>) {
    let lines: Vec<&str> = text.lines().collect();
    let Some(at) = line.checked_sub(1).filter(|at| *at < lines.len()) else {
        return (None, None);
    };
    let is_header = |l: &str| l.trim_start().starts_with('[');
    let table_of = |l: &str| -> String {
        l.trim()
            .trim_start_matches('[')
            .split(']')
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    // The table the line is in: its own header, or the nearest one above it.
    let table = if is_header(lines[at]) {
        Some(table_of(lines[at]))
    } else {
        lines[..at]
            .iter()
            .rev()
            .find(|l| is_header(l))
            .map(|l| table_of(l))
    };
    let key = (!is_header(lines[at]))
        .then(|| lines[at].split_once('='))
        .flatten()
        .map(|(key, _)| key.trim().trim_matches('"').trim_matches('\'').to_owned())
        .filter(|key| !key.is_empty() && !key.starts_with('#'));
    let in_rule = table
        .as_deref()
        .is_some_and(|table| table == "rule" || table.starts_with("rule."));
    if !in_rule {
        let field = match (table.filter(|t| !t.is_empty()), key) {
            (Some(table), Some(key)) => Some(format!("{table}.{key}")),
            (table, key) => key.or(table),
        };
        return (None, field);
    }
    let Some(index) = headers.rule_at(line) else {
        return (None, key);
    };
    let start = headers.line_of(index).unwrap_or(1).saturating_sub(1);
    let end = headers
        .line_of(index + 1)
        .map_or(lines.len(), |next| next - 1);
    let name = lines
        .get(start..end)
        .unwrap_or_default()
        .iter()
        .take_while(|l| !l.trim_start().starts_with("[rule."))
        .filter_map(|l| l.split_once('='))
        .find(|(key, _)| key.trim() == "name")
        .and_then(|(_, value)| {
            let value = value.trim();
            let quote = value.chars().next().filter(|c| *c == '"' || *c == '\'')?;
            let inner = &value[1..];
            inner.find(quote).map(|close| inner[..close].to_owned())
        })
        .filter(|name| !name.trim().is_empty())
        .unwrap_or_else(|| format!("rule #{}", index + 1));
    let sub_table = table
        .as_deref()
        .and_then(|table| table.strip_prefix("rule."))
        .map(str::to_owned);
    let field = match (sub_table, key) {
        (Some(table), Some(key)) => Some(format!("{table}.{key}")),
        (table, key) => key.or(table),
    };
    (Some(name), field)
}

fn backticked<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = message.strip_prefix(prefix)?;
    rest.split('`').next()
}

fn join_field(parent: &str, child: &str) -> String {
    if parent.is_empty() || parent == "." {
        child.to_owned()
    } else {
        format!("{parent}.{child}")
    }
}

fn line_at(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(1, |before| before.matches('\n').count() + 1)
}
