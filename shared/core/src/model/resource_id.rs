//! Resource ids checked against the id format of the service that owns them, before any call.
//!
//! A resource id comes from the alarm (a dimension, a tag, a template over them), so whoever
//! can put an alarm on the bus chooses it. An id that the service could never have issued is
//! refused here, so that a forged or mistyped id (`i-123; rm -rf /`, `../../etc`, the ARN of
//! another account) never reaches an API call, a parameter path or a log line unescaped.

use crate::model::event::AlarmEvent;

/// What kind of resource an action heals, and so which id format its id must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ResourceKind {
    /// `i-` and 8 or 17 lower-case hex digits.
    Ec2Instance,
    /// `vol-` and 8 or 17 lower-case hex digits.
    EbsVolume,
    /// `nat-` and 8 or 17 lower-case hex digits.
    NatGateway,
    /// 1 to 255 characters, no control characters, no surrounding whitespace.
    AutoScalingGroup,
    /// `cluster/service`, each of `[A-Za-z0-9_-]{1,255}`.
    EcsService,
    /// `[A-Za-z0-9_-]{1,64}`, or the function's ARN in the event's account and partition.
    LambdaFunction,
    /// 1 to 63 letters, digits and hyphens; a letter first, no `--`, no trailing hyphen.
    RdsInstance,
    /// 1 to 50 characters, the shape of an RDS identifier.
    ElastiCacheCluster,
    /// A UUID: 8-4-4-4-12 lower-case hex digits.
    Route53HealthCheck,
    /// An application's service name inside a parameter path: `[A-Za-z0-9_.-]{1,128}`, not
    /// `.` or `..`.
    ApplicationService,
    /// `arn:<partition>:elasticloadbalancing:<region>:<account>:targetgroup/<name>/<16 hex>`
    /// in the event's own partition, region and account.
    TargetGroup,
}

impl ResourceKind {
    /// A short stable name of the kind, for keys (see `limits::resource_key`).
    pub fn key(self) -> &'static str {
        match self {
            ResourceKind::Ec2Instance => "ec2-instance",
            ResourceKind::EbsVolume => "ebs-volume",
            ResourceKind::NatGateway => "nat-gateway",
            ResourceKind::AutoScalingGroup => "auto-scaling-group",
            ResourceKind::EcsService => "ecs-service",
            ResourceKind::LambdaFunction => "lambda-function",
            ResourceKind::RdsInstance => "rds-instance",
            ResourceKind::ElastiCacheCluster => "elasticache-cluster",
            ResourceKind::Route53HealthCheck => "route53-health-check",
            ResourceKind::ApplicationService => "application-service",
            ResourceKind::TargetGroup => "target-group",
        }
    }

    /// What the id names, for messages.
    pub fn label(self) -> &'static str {
        match self {
            ResourceKind::Ec2Instance => "an EC2 instance id",
            ResourceKind::EbsVolume => "an EBS volume id",
            ResourceKind::NatGateway => "a NAT gateway id",
            ResourceKind::AutoScalingGroup => "an Auto Scaling group name",
            ResourceKind::EcsService => "an ECS cluster/service",
            ResourceKind::LambdaFunction => "a Lambda function",
            ResourceKind::RdsInstance => "an RDS DB instance identifier",
            ResourceKind::ElastiCacheCluster => "an ElastiCache cluster id",
            ResourceKind::Route53HealthCheck => "a Route 53 health check id",
            ResourceKind::ApplicationService => "an application service name",
            ResourceKind::TargetGroup => "a target group ARN",
        }
    }

    /// The format expected, for messages.
    pub fn format(self) -> &'static str {
        match self {
            ResourceKind::Ec2Instance => "`i-` and 8 or 17 lower-case hex digits",
            ResourceKind::EbsVolume => "`vol-` and 8 or 17 lower-case hex digits",
            ResourceKind::NatGateway => "`nat-` and 8 or 17 lower-case hex digits",
            ResourceKind::AutoScalingGroup => {
                "1 to 255 characters, no control characters, no leading or trailing whitespace"
            }
            ResourceKind::EcsService => "`<cluster>/<service>`, each 1 to 255 of `A-Za-z0-9_-`",
            ResourceKind::LambdaFunction => {
                "1 to 64 of `A-Za-z0-9_-`, or `arn:<partition>:lambda:<region>:<account>:function:<name>` of this event's account and partition"
            }
            ResourceKind::RdsInstance => {
                "1 to 63 letters, digits and hyphens, starting with a letter, without `--` or a trailing hyphen"
            }
            ResourceKind::ElastiCacheCluster => {
                "1 to 50 letters, digits and hyphens, starting with a letter, without `--` or a trailing hyphen"
            }
            ResourceKind::Route53HealthCheck => {
                "a UUID: 8-4-4-4-12 lower-case hex digits and hyphens"
            }
            ResourceKind::ApplicationService => "1 to 128 of `A-Za-z0-9_.-`, not `.` or `..`",
            ResourceKind::TargetGroup => {
                "`arn:<partition>:elasticloadbalancing:<region>:<account>:targetgroup/<name>/<16 hex digits>` of this event's partition, region and account"
            }
        }
    }
}

/// The most characters of an id a message shows.
const SHOWN_CHARS: usize = 64;

/// Checks that `id` has the format of `kind`; ARNs must also be of `event`'s own partition,
/// region and account. The error says which id (escaped, truncated) and what was expected.
pub fn validate(kind: ResourceKind, id: &str, event: &AlarmEvent) -> Result<(), String> {
    let problem = match kind {
        ResourceKind::Ec2Instance => ec2_id("i-", id),
        ResourceKind::EbsVolume => ec2_id("vol-", id),
        ResourceKind::NatGateway => ec2_id("nat-", id),
        ResourceKind::AutoScalingGroup => auto_scaling_group(id),
        ResourceKind::EcsService => ecs_service(id),
        ResourceKind::LambdaFunction => lambda_function(id, event),
        ResourceKind::RdsInstance => db_identifier(id, 63),
        ResourceKind::ElastiCacheCluster => db_identifier(id, 50),
        ResourceKind::Route53HealthCheck => uuid(id),
        ResourceKind::ApplicationService => application_service(id),
        ResourceKind::TargetGroup => target_group(id, event),
    };
    match problem {
        None => Ok(()),
        Some(Problem::Format) => Err(format!(
            "resource id {} is not {}: expected {}",
            shown(id),
            kind.label(),
            kind.format()
        )),
        Some(Problem::Foreign(why)) => Err(format!(
            "resource id {} is not {} of this event: {why}",
            shown(id),
            kind.label()
        )),
    }
}

/// Why an id is refused.
enum Problem {
    /// It does not have the kind's format.
    Format,
    /// It is well formed but names a resource outside the event's partition, region or
    /// account.
    Foreign(String),
}

/// `id` quoted for a message: control characters escaped, at most [`SHOWN_CHARS`] shown.
pub fn shown(id: &str) -> String {
    let mut out = String::from("`");
    for c in id.chars().take(SHOWN_CHARS) {
        if c.is_control() {
            out.extend(c.escape_default());
        } else if c == '`' {
            // The id is quoted in backquotes: one inside must not close the quote.
            out.push_str("\\`");
        } else {
            out.push(c);
        }
    }
    out.push('`');
    let total = id.chars().count();
    if total > SHOWN_CHARS {
        out.push_str(&format!("… ({total} characters)"));
    }
    out
}

fn is_lower_hex(c: char) -> bool {
    c.is_ascii_digit() || ('a'..='f').contains(&c)
}

fn ec2_id(prefix: &str, id: &str) -> Option<Problem> {
    let ok = id
        .strip_prefix(prefix)
        .is_some_and(|hex| matches!(hex.len(), 8 | 17) && hex.chars().all(is_lower_hex));
    (!ok).then_some(Problem::Format)
}

fn auto_scaling_group(name: &str) -> Option<Problem> {
    let length = name.chars().count();
    let ok =
        (1..=255).contains(&length) && !name.chars().any(char::is_control) && name.trim() == name;
    (!ok).then_some(Problem::Format)
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-')
}

fn is_name(name: &str, max: usize) -> bool {
    (1..=max).contains(&name.len()) && name.chars().all(is_name_char)
}

fn ecs_service(id: &str) -> Option<Problem> {
    let ok = id
        .split_once('/')
        .is_some_and(|(cluster, service)| is_name(cluster, 255) && is_name(service, 255));
    (!ok).then_some(Problem::Format)
}

fn lambda_function(id: &str, event: &AlarmEvent) -> Option<Problem> {
    if !id.starts_with("arn:") {
        return (!is_name(id, 64)).then_some(Problem::Format);
    }
    let Some(arn) = Arn::parse(id) else {
        return Some(Problem::Format);
    };
    let Some(name) = arn.resource.strip_prefix("function:") else {
        return Some(Problem::Format);
    };
    if arn.service != "lambda" || !is_region(arn.region) || !is_name(name, 64) {
        return Some(Problem::Format);
    }
    foreign(&arn, event, false)
}

fn db_identifier(id: &str, max: usize) -> Option<Problem> {
    let ok = (1..=max).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_alphabetic())
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !id.contains("--")
        && !id.ends_with('-');
    (!ok).then_some(Problem::Format)
}

fn uuid(id: &str) -> Option<Problem> {
    let groups: Vec<&str> = id.split('-').collect();
    let lengths: Vec<usize> = groups.iter().map(|group| group.len()).collect();
    let ok = lengths == [8, 4, 4, 4, 12] && groups.iter().all(|g| g.chars().all(is_lower_hex));
    (!ok).then_some(Problem::Format)
}

fn application_service(name: &str) -> Option<Problem> {
    let ok = (1..=128).contains(&name.len())
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    (!ok).then_some(Problem::Format)
}

fn target_group(id: &str, event: &AlarmEvent) -> Option<Problem> {
    let Some(arn) = Arn::parse(id) else {
        return Some(Problem::Format);
    };
    let well_formed = arn.service == "elasticloadbalancing"
        && is_region(arn.region)
        && arn
            .resource
            .strip_prefix("targetgroup/")
            .and_then(|rest| rest.split_once('/'))
            .is_some_and(|(name, suffix)| {
                is_target_group_name(name) && suffix.len() == 16 && suffix.chars().all(is_lower_hex)
            });
    if !well_formed {
        return Some(Problem::Format);
    }
    foreign(&arn, event, true)
}

/// A target group name: 1 to 32 letters, digits and hyphens, not starting or ending with a
/// hyphen.
fn is_target_group_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// A region name as AWS writes them: lower-case letters, digits and hyphens, e.g.
/// `us-east-1`, `cn-north-1`, `us-gov-west-1`.
fn is_region(region: &str) -> bool {
    (1..=32).contains(&region.len())
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !region.starts_with('-')
        && !region.ends_with('-')
}

/// The parts of an ARN: `arn:<partition>:<service>:<region>:<account>:<resource>`.
struct Arn<'a> {
    partition: &'a str,
    service: &'a str,
    region: &'a str,
    account: &'a str,
    resource: &'a str,
}

impl<'a> Arn<'a> {
    fn parse(text: &'a str) -> Option<Self> {
        let mut parts = text.splitn(6, ':');
        if parts.next()? != "arn" {
            return None;
        }
        let arn = Arn {
            partition: parts.next()?,
            service: parts.next()?,
            region: parts.next()?,
            account: parts.next()?,
            resource: parts.next()?,
        };
        let account_ok = arn.account.len() == 12 && arn.account.chars().all(|c| c.is_ascii_digit());
        let partition_ok = !arn.partition.is_empty()
            && arn
                .partition
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '-');
        (account_ok && partition_ok).then_some(arn)
    }
}

/// Whether a well-formed ARN lies outside the event's partition, account (and region, when
/// `same_region`).
fn foreign(arn: &Arn<'_>, event: &AlarmEvent, same_region: bool) -> Option<Problem> {
    let Some(account) = event.account.as_deref() else {
        return Some(Problem::Foreign(
            "the event names no account to compare with".to_owned(),
        ));
    };
    let Some(partition) = event_partition(event) else {
        return Some(Problem::Foreign(
            "the event names no region or alarm ARN to tell its partition".to_owned(),
        ));
    };
    if arn.partition != partition {
        return Some(Problem::Foreign(format!(
            "partition {} is not the event's `{partition}`",
            shown(arn.partition)
        )));
    }
    if arn.account != account {
        return Some(Problem::Foreign(format!(
            "account {} is not the event's {}",
            shown(arn.account),
            shown(account)
        )));
    }
    if same_region {
        let region = event.region.as_deref().unwrap_or_default();
        if arn.region != region {
            return Some(Problem::Foreign(format!(
                "region {} is not the event's {}",
                shown(arn.region),
                shown(region)
            )));
        }
    }
    None
}

/// The partition the event comes from: the one of its alarm's ARN, or else the one its
/// region belongs to.
pub fn event_partition(event: &AlarmEvent) -> Option<&str> {
    if let Some(arn) = event.alarm_arn.as_deref()
        && let Some(partition) = arn
            .strip_prefix("arn:")
            .and_then(|rest| rest.split(':').next())
        && !partition.is_empty()
    {
        return Some(partition);
    }
    let region = event.region.as_deref().filter(|region| is_region(region))?;
    // The partitions whose regions have their own prefix; every other region is in `aws`.
    const PREFIXES: [(&str, &str); 6] = [
        ("cn-", "aws-cn"),
        ("us-gov-", "aws-us-gov"),
        ("us-isob-", "aws-iso-b"),
        ("us-isof-", "aws-iso-f"),
        ("eu-isoe-", "aws-iso-e"),
        ("us-iso-", "aws-iso"),
    ];
    Some(
        PREFIXES
            .iter()
            .find(|(prefix, _)| region.starts_with(prefix))
            .map_or("aws", |(_, partition)| partition),
    )
}
