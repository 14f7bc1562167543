//! A CloudWatch alarm as autoheal reads, compares and writes it, in the core's own types (the
//! detection adapters translate to and from the SDK's).

use std::collections::BTreeMap;

use serde::Serialize;

/// The tag on every alarm autoheal created: the only alarms it ever changes or deletes.
pub const MANAGED_TAG: &str = "autoheal:managed";
/// The tag naming the resource a managed alarm protects.
pub const RESOURCE_TAG: &str = "autoheal:resource";

/// One metric an alarm watches, with the statistic and period it is read with.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WatchedMetric {
    /// The query's id in a metric-math alarm (`m1`, `m2`); `m1` for a plain alarm.
    pub id: String,
    pub namespace: String,
    pub name: String,
    pub dimensions: BTreeMap<String, String>,
    /// `Average`, `Sum`, `Minimum`, `Maximum`, `SampleCount` or a percentile (`p99`).
    pub statistic: String,
    pub period_seconds: u32,
}

/// A metric alarm's configuration: what autoheal writes, and what it compares an existing
/// alarm with. A composite alarm has no metrics.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricAlarm {
    pub name: String,
    pub description: String,
    /// One metric for a plain alarm; the metrics the expression combines otherwise.
    pub metrics: Vec<WatchedMetric>,
    /// The expression whose value the alarm compares (`m1 - m2`), for a metric-math alarm.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
    pub evaluation_periods: u32,
    pub datapoints_to_alarm: u32,
    pub threshold: f64,
    /// CloudWatch's comparison name (`GreaterThanOrEqualToThreshold`, …).
    pub comparison: String,
    /// CloudWatch's `TreatMissingData` (`missing`, `breaching`, …).
    pub missing_data: String,
    /// What the alarm does on ALARM (topic ARNs, EC2 actions).
    pub actions: Vec<String>,
}

/// An alarm found in the account.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExistingAlarm {
    pub arn: String,
    pub alarm: MetricAlarm,
    /// The rule of a composite alarm (which has no metrics).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub composite_rule: Option<String>,
    pub tags: BTreeMap<String, String>,
}

impl ExistingAlarm {
    /// Whether autoheal created the alarm (its tag `autoheal:managed` is `true`).
    pub fn is_managed(&self) -> bool {
        self.tags
            .get(MANAGED_TAG)
            .is_some_and(|value| value.eq_ignore_ascii_case("true"))
    }
}

/// Whether an alarm action is one of EC2's own (`arn:aws:automate:<region>:ec2:recover` or
/// `…:ec2:reboot`): the instance is healed by AWS, not by autoheal.
pub fn is_ec2_healing_action(action: &str) -> bool {
    action.contains(":automate:")
        && (action.ends_with(":ec2:recover") || action.ends_with(":ec2:reboot"))
}

/// The account and region in an alarm's ARN (`arn:aws:cloudwatch:<region>:<account>:alarm:…`).
pub fn arn_account_region(arn: &str) -> Option<(&str, &str)> {
    let mut parts = arn.splitn(6, ':');
    let (_, _, _, region, account) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    Some((account, region))
}
