//! What EC2 says of an instance's health, and what AWS itself is doing about it: the status
//! checks, scheduled events, simplified automatic recovery, and the alarm's own EC2 actions.

use aws_sdk_ec2::Client as Ec2Client;
use aws_sdk_ec2::types::{Instance, InstanceAutoRecoveryState, SummaryStatus, Tenancy};

use autoheal_aws::errors::api_error;
use autoheal_core::{HealError, HealRequest};

use crate::instances::Facts;

/// A status check's live result, as `DescribeInstanceStatus` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckStatus {
    Ok,
    Impaired,
    Initializing,
    /// `insufficient-data`, `not-applicable` or no report: says nothing either way.
    Unknown,
}

impl CheckStatus {
    fn from_summary(status: Option<&SummaryStatus>) -> Self {
        match status {
            Some(SummaryStatus::Ok) => CheckStatus::Ok,
            Some(SummaryStatus::Impaired) => CheckStatus::Impaired,
            Some(SummaryStatus::Initializing) => CheckStatus::Initializing,
            _ => CheckStatus::Unknown,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            CheckStatus::Ok => "ok",
            CheckStatus::Impaired => "impaired",
            CheckStatus::Initializing => "initializing",
            CheckStatus::Unknown => "not conclusive",
        }
    }
}

/// Which status check the alarm watches, from its metric name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlarmedCheck {
    /// `StatusCheckFailed_System`.
    System,
    /// `StatusCheckFailed_Instance`.
    Instance,
    /// `StatusCheckFailed`: either.
    Either,
}

impl AlarmedCheck {
    /// The check the alarm's metrics name for the request's instance, the most specific first.
    pub fn of(request: &HealRequest<'_>) -> Self {
        let names: Vec<&str> = request
            .event
            .kind
            .metrics()
            .iter()
            .filter(|metric| metric.namespace == "AWS/EC2")
            .filter(|metric| {
                metric
                    .dimensions
                    .get("InstanceId")
                    .is_some_and(|id| id.trim() == request.resource_id)
            })
            .map(|metric| metric.name.as_str())
            .collect();
        if names.contains(&"StatusCheckFailed_System") {
            AlarmedCheck::System
        } else if names.contains(&"StatusCheckFailed_Instance") {
            AlarmedCheck::Instance
        } else {
            AlarmedCheck::Either
        }
    }
}

/// An event EC2 scheduled for the instance (a reboot, maintenance, a retirement or stop of
/// degraded hardware).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledEvent {
    pub code: String,
    pub description: String,
    /// Seconds since the epoch.
    pub not_before: Option<i64>,
}

impl ScheduledEvent {
    /// EC2 keeps completed and canceled events for a while, their description saying so.
    pub fn is_open(&self) -> bool {
        !(self.description.starts_with("[Completed]") || self.description.starts_with("[Canceled]"))
    }

    /// An open event under way at `now`, or due within `horizon` seconds of it: what waiting
    /// for can still make a difference.
    pub fn is_near(&self, now: i64, horizon: u64) -> bool {
        let horizon = i64::try_from(horizon).unwrap_or(i64::MAX);
        self.is_open()
            && self
                .not_before
                .is_none_or(|at| at <= now.saturating_add(horizon))
    }
}

/// The live status of an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceHealth {
    pub system: CheckStatus,
    pub instance: CheckStatus,
    pub events: Vec<ScheduledEvent>,
}

/// Reads the instance's status checks and scheduled events (`DescribeInstanceStatus`).
pub async fn read(ec2: &Ec2Client, id: &str) -> Result<InstanceHealth, HealError> {
    // One id, one answer: EC2 pages this call only when no ids are named.
    let statuses = ec2
        .describe_instance_status()
        .instance_ids(id)
        .include_all_instances(true)
        .send()
        .await
        .map_err(|e| api_error("DescribeInstanceStatus", e))?
        .instance_statuses
        .unwrap_or_default();
    let mut health = InstanceHealth {
        system: CheckStatus::Unknown,
        instance: CheckStatus::Unknown,
        events: Vec::new(),
    };
    for status in statuses {
        if status.instance_id() != Some(id) {
            continue;
        }
        health.system = CheckStatus::from_summary(status.system_status().and_then(|s| s.status()));
        health.instance =
            CheckStatus::from_summary(status.instance_status().and_then(|s| s.status()));
        health.events = status
            .events()
            .iter()
            .map(|event| ScheduledEvent {
                code: event
                    .code()
                    .map_or_else(|| "event".to_owned(), |c| c.as_str().to_owned()),
                description: event.description().unwrap_or_default().to_owned(),
                not_before: event.not_before().map(|at| at.secs()),
            })
            .collect();
    }
    Ok(health)
}

/// An EC2 action of the alarm itself (CloudWatch runs it when the alarm goes to ALARM).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlarmAction {
    /// `arn:aws:automate:<region>:ec2:recover`: AWS moves the instance to healthy hardware.
    Recover,
    /// `…:ec2:reboot`: CloudWatch rebooted the instance.
    Reboot,
    /// `…:ec2:stop`.
    Stop,
    /// `…:ec2:terminate`.
    Terminate,
}

impl AlarmAction {
    /// The EC2 action an alarm action's ARN names: `arn:<partition>:automate:<region>:ec2:<x>`,
    /// or the older `arn:<partition>:swf:<region>:<account>:action/actions/AWS_EC2.InstanceId.<X>/1.0`.
    pub fn parse(arn: &str) -> Option<Self> {
        let parts: Vec<&str> = arn.trim().split(':').collect();
        let name = match parts.as_slice() {
            ["arn", _, "automate", _, "ec2", action] => action.to_ascii_lowercase(),
            ["arn", _, "swf", _, _, path] => path
                .strip_prefix("action/actions/AWS_EC2.InstanceId.")?
                .split('/')
                .next()?
                .to_ascii_lowercase(),
            _ => return None,
        };
        match name.as_str() {
            "recover" => Some(AlarmAction::Recover),
            "reboot" => Some(AlarmAction::Reboot),
            "stop" => Some(AlarmAction::Stop),
            "terminate" => Some(AlarmAction::Terminate),
            _ => None,
        }
    }

    /// The EC2 actions among an alarm's actions.
    pub fn of(actions: &[String]) -> Vec<Self> {
        actions.iter().filter_map(|arn| Self::parse(arn)).collect()
    }
}

/// Whether EC2's simplified automatic recovery watches the instance: on by default
/// (`MaintenanceOptions.AutoRecovery = default`) for a running instance of a type that
/// supports it, on shared or dedicated tenancy (not a Dedicated Host), bought on demand. It
/// acts on a failed *system* status check, moving the instance to other hardware. An instance
/// whose description does not say (`MaintenanceOptions` absent) is not counted on.
pub fn auto_recovery_on(instance: &Instance, facts: &Facts) -> bool {
    let configured = instance
        .maintenance_options()
        .and_then(|options| options.auto_recovery())
        == Some(&InstanceAutoRecoveryState::Default);
    let host = instance.placement().and_then(|p| p.tenancy()) == Some(&Tenancy::Host);
    configured && facts.auto_recovery_supported && !host && !facts.risk.spot
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alarms_ec2_actions_are_read_from_their_arns() {
        let actions = [
            "arn:aws:automate:us-east-1:ec2:recover".to_owned(),
            "arn:aws-cn:automate:cn-north-1:ec2:reboot".to_owned(),
            "arn:aws:swf:us-east-1:123456789012:action/actions/AWS_EC2.InstanceId.Reboot/1.0"
                .to_owned(),
            "arn:aws:sns:us-east-1:123456789012:operators".to_owned(),
            "arn:aws:automate:us-east-1:ec2:stop".to_owned(),
            "arn:aws:automate:us-east-1:ec2:terminate".to_owned(),
            "arn:aws:ssm:us-east-1:123456789012:opsitem:3".to_owned(),
            "not an arn".to_owned(),
        ];
        assert_eq!(
            AlarmAction::of(&actions),
            [
                AlarmAction::Recover,
                AlarmAction::Reboot,
                AlarmAction::Reboot,
                AlarmAction::Stop,
                AlarmAction::Terminate
            ]
        );
    }

    #[test]
    fn only_open_events_under_way_or_due_soon_count() {
        let event = |description: &str, not_before: Option<i64>| ScheduledEvent {
            code: "system-reboot".to_owned(),
            description: description.to_owned(),
            not_before,
        };
        let now = 1_000_000;
        assert!(event("The instance is scheduled for a reboot", Some(now - 60)).is_near(now, 1800));
        assert!(event("Scheduled maintenance", Some(now + 1200)).is_near(now, 1800));
        assert!(event("Scheduled maintenance", None).is_near(now, 1800));
        assert!(!event("Scheduled maintenance", Some(now + 86_400 * 14)).is_near(now, 1800));
        assert!(
            !event(
                "[Completed] The instance is running on new hardware",
                Some(now)
            )
            .is_near(now, 1800)
        );
        assert!(!event("[Canceled] Scheduled maintenance", Some(now)).is_near(now, 1800));
    }
}
