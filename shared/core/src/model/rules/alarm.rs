//! The alarm that detects a rule's trigger (`[rule.alarm]`): what `autoheal alarms apply`
//! creates for every resource the rule protects, and what `autoheal coverage` looks for.

use serde::{Deserialize, Serialize};

/// How an alarm compares its statistic with its threshold: CloudWatch's own names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Comparison {
    GreaterThanOrEqualToThreshold,
    GreaterThanThreshold,
    LessThanThreshold,
    LessThanOrEqualToThreshold,
}

impl Comparison {
    pub fn as_str(self) -> &'static str {
        match self {
            Comparison::GreaterThanOrEqualToThreshold => "GreaterThanOrEqualToThreshold",
            Comparison::GreaterThanThreshold => "GreaterThanThreshold",
            Comparison::LessThanThreshold => "LessThanThreshold",
            Comparison::LessThanOrEqualToThreshold => "LessThanOrEqualToThreshold",
        }
    }

    /// The CloudWatch name, or `None` for one autoheal does not write (anomaly bands).
    pub fn parse(name: &str) -> Option<Self> {
        [
            Comparison::GreaterThanOrEqualToThreshold,
            Comparison::GreaterThanThreshold,
            Comparison::LessThanThreshold,
            Comparison::LessThanOrEqualToThreshold,
        ]
        .into_iter()
        .find(|comparison| comparison.as_str() == name)
    }

    /// The sign, for tables: `>=`, `>`, `<`, `<=`.
    pub fn symbol(self) -> &'static str {
        match self {
            Comparison::GreaterThanOrEqualToThreshold => ">=",
            Comparison::GreaterThanThreshold => ">",
            Comparison::LessThanThreshold => "<",
            Comparison::LessThanOrEqualToThreshold => "<=",
        }
    }
}

/// What an alarm makes of a period without data: CloudWatch's `TreatMissingData`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MissingData {
    Breaching,
    NotBreaching,
    Ignore,
    #[default]
    Missing,
}

impl MissingData {
    pub fn as_str(self) -> &'static str {
        match self {
            MissingData::Breaching => "breaching",
            MissingData::NotBreaching => "notBreaching",
            MissingData::Ignore => "ignore",
            MissingData::Missing => "missing",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        [
            MissingData::Breaching,
            MissingData::NotBreaching,
            MissingData::Ignore,
            MissingData::Missing,
        ]
        .into_iter()
        .find(|treatment| treatment.as_str() == name)
    }
}

/// The alarm that detects a rule's trigger on one resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlarmSpec {
    /// The metric's namespace. An application metric may leave it out: then the metric is
    /// looked for in every namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The metric's name.
    pub metric: String,
    /// The dimensions the metric carries, their values taken from the resource. Left out:
    /// the trigger's dimensions, or the resource's dimension. An application metric keeps
    /// the dimensions it is published with, which must include these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dimensions: Vec<String>,
    /// `Average`, `Sum`, `Minimum`, `Maximum`, `SampleCount`, or a percentile `p99`, `p99.9`.
    pub statistic: String,
    #[serde(default = "AlarmSpec::default_period")]
    pub period_seconds: u32,
    pub evaluation_periods: u32,
    /// Left out: all of `evaluation_periods`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datapoints_to_alarm: Option<u32>,
    pub threshold: f64,
    pub comparison: Comparison,
    #[serde(default)]
    pub missing_data: MissingData,
    /// The alarm watches `metric − minus` (another metric of the same resource), e.g.
    /// running tasks minus desired tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minus: Option<String>,
    /// The alarm watches `100 × metric ÷ divided_by` (a percentage), e.g. errors per
    /// invocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub divided_by: Option<String>,
    /// The application publishes this metric: its alarm is created only where the metric
    /// exists (CloudWatch `ListMetrics`), one per resource it is published for.
    #[serde(default)]
    pub application_metric: bool,
}

/// The most dimensions a CloudWatch metric has.
pub const MAX_DIMENSIONS: usize = 30;

impl AlarmSpec {
    fn default_period() -> u32 {
        60
    }

    /// The datapoints that must breach, of `evaluation_periods`.
    pub fn datapoints(&self) -> u32 {
        self.datapoints_to_alarm.unwrap_or(self.evaluation_periods)
    }
}

/// Whether a statistic is one of CloudWatch's plain statistics (`Ok(false)`) or a
/// percentile (`Ok(true)`), or what is wrong with it.
pub fn statistic_kind(statistic: &str) -> Result<bool, String> {
    const PLAIN: [&str; 5] = ["Average", "Sum", "Minimum", "Maximum", "SampleCount"];
    if PLAIN.contains(&statistic) {
        return Ok(false);
    }
    let percentile = statistic
        .strip_prefix('p')
        .filter(|number| {
            !number.is_empty() && number.chars().all(|c| c.is_ascii_digit() || c == '.')
        })
        .and_then(|number| number.parse::<f64>().ok());
    match percentile {
        Some(value) if (0.0..=100.0).contains(&value) => Ok(true),
        _ => Err(format!(
            "must be one of {} or a percentile like `p99`, not `{statistic}`",
            PLAIN.join(", ")
        )),
    }
}

/// A period CloudWatch alarms take: 10, 20 or 30 s (high resolution) or whole minutes.
pub fn is_valid_period(period: u32) -> bool {
    matches!(period, 10 | 20 | 30) || (period > 0 && period.is_multiple_of(60))
}
