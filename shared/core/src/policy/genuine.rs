//! Whether an alarm event is CloudWatch's own, and means what its rule heals: the event is
//! compared with the alarm as CloudWatch holds it. Anyone who may invoke a function, or put
//! an event on its bus, can write an event; only CloudWatch holds the alarm.

use std::collections::BTreeMap;

use crate::model::alarm::arn_account_region;
use crate::model::event::{AlarmKind, MetricRef};
use crate::model::rules::{AlarmSpec, Comparison};

/// What an alarm watches and how, as CloudWatch holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmDefinition {
    /// Its metrics, or a composite alarm's rule.
    pub watches: AlarmKind,
    /// CloudWatch's comparison name; none for a composite alarm.
    pub comparison: Option<String>,
}

/// Where the event's account of the alarm differs from CloudWatch's, if it does: a different
/// kind of alarm, other metrics or dimensions, another composite rule.
pub fn watch_differs(event: &AlarmKind, held: &AlarmKind) -> Option<String> {
    match (event, held) {
        (AlarmKind::Composite { alarm_rule: said }, AlarmKind::Composite { alarm_rule: held }) => {
            (said != held)
                .then(|| format!("the event's composite rule `{said}` is not the alarm's `{held}`"))
        }
        (AlarmKind::Composite { .. }, _) | (_, AlarmKind::Composite { .. }) => Some(format!(
            "the event describes a {} alarm, CloudWatch holds a {} alarm",
            event.label(),
            held.label()
        )),
        _ => {
            let said = sorted(event.metrics());
            let held = sorted(held.metrics());
            (said != held).then(|| {
                format!(
                    "the event names the metrics {}, the alarm watches {}",
                    describe(&said),
                    describe(&held)
                )
            })
        }
    }
}

/// Where the event's account or region differs from those of the alarm CloudWatch holds
/// (`held_arn`), if it does: an alarm of the same name elsewhere is another alarm. The event's
/// own `account` and `region` are taken first, then its alarm's ARN.
pub fn place_differs(
    account: Option<&str>,
    region: Option<&str>,
    event_arn: Option<&str>,
    held_arn: &str,
) -> Option<String> {
    let (held_account, held_region) = arn_account_region(held_arn)?;
    let from_arn = event_arn.and_then(arn_account_region);
    let account = account.or(from_arn.map(|(account, _)| account));
    let region = region.or(from_arn.map(|(_, region)| region));
    match (account, region) {
        (Some(account), _) if account != held_account => Some(format!(
            "the event comes from account {account}, the alarm is account {held_account}'s"
        )),
        (_, Some(region)) if region != held_region => Some(format!(
            "the event comes from region {region}, the alarm is in {held_region}"
        )),
        _ => None,
    }
}

/// The event's tags that the alarm does not carry with the same value: a tag can select a
/// rule or name the resource, so each must be the alarm's own.
pub fn tags_differ(
    event: &BTreeMap<String, String>,
    held: &BTreeMap<String, String>,
) -> Option<String> {
    let foreign: Vec<String> = event
        .iter()
        .filter(|(key, value)| held.get(*key) != Some(*value))
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    (!foreign.is_empty()).then(|| {
        format!(
            "the alarm does not carry the event's tags {}",
            foreign.join(", ")
        )
    })
}

/// Which way an alarm fires: when its value rises past the threshold, falls below it, or
/// leaves a band either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Rising,
    Falling,
    Either,
}

impl Direction {
    /// The direction of a CloudWatch comparison name; `None` for a name CloudWatch does not use.
    pub fn of(comparison: &str) -> Option<Self> {
        match comparison {
            "GreaterThanOrEqualToThreshold"
            | "GreaterThanThreshold"
            | "GreaterThanUpperThreshold" => Some(Direction::Rising),
            "LessThanThreshold" | "LessThanOrEqualToThreshold" | "LessThanLowerThreshold" => {
                Some(Direction::Falling)
            }
            "LessThanLowerOrGreaterThanUpperThreshold" => Some(Direction::Either),
            _ => None,
        }
    }

    fn of_rule(comparison: Comparison) -> Self {
        match comparison {
            Comparison::GreaterThanOrEqualToThreshold | Comparison::GreaterThanThreshold => {
                Direction::Rising
            }
            Comparison::LessThanThreshold | Comparison::LessThanOrEqualToThreshold => {
                Direction::Falling
            }
        }
    }

    fn says(self) -> &'static str {
        match self {
            Direction::Rising => "rises above",
            Direction::Falling => "falls below",
            Direction::Either => "leaves",
        }
    }
}

/// Why the alarm means the opposite of what the rule's trigger means, if it does: it watches
/// the metric of the rule's `[rule.alarm]` and fires the other way (a "too many connections"
/// alarm on a rule that heals a database nobody can reach). An alarm that watches another
/// metric, or one the rule states no alarm for, is not judged.
pub fn contradicts(spec: &AlarmSpec, held: &AlarmDefinition) -> Option<String> {
    let comparison = held.comparison.as_deref()?;
    let fires = Direction::of(comparison)?;
    let means = Direction::of_rule(spec.comparison);
    let watched = |metric: &MetricRef| {
        metric.name == spec.metric
            && spec
                .namespace
                .as_deref()
                .is_none_or(|namespace| metric.namespace == namespace)
    };
    let shaped = spec.minus.is_some() || spec.divided_by.is_some();
    let comparable = match &held.watches {
        AlarmKind::Metric { metric } => !shaped && watched(metric),
        AlarmKind::AnomalyDetection { metrics } => !shaped && metrics.iter().any(watched),
        AlarmKind::MetricMath { metrics, .. } => shaped && metrics.iter().any(watched),
        AlarmKind::Composite { .. } => false,
    };
    let opposite = matches!(
        (means, fires),
        (Direction::Rising, Direction::Falling) | (Direction::Falling, Direction::Rising)
    );
    (comparable && opposite).then(|| {
        format!(
            "the alarm fires when {} {} its threshold ({comparison}); the rule heals when it {} \
             ({}): the alarm does not mean what the rule heals",
            spec.metric,
            fires.says(),
            means.says(),
            spec.comparison.as_str()
        )
    })
}

fn sorted(metrics: &[MetricRef]) -> Vec<&MetricRef> {
    let mut sorted: Vec<&MetricRef> = metrics.iter().collect();
    sorted.sort_by(|a, b| {
        (&a.namespace, &a.name, &a.dimensions).cmp(&(&b.namespace, &b.name, &b.dimensions))
    });
    sorted
}

fn describe(metrics: &[&MetricRef]) -> String {
    if metrics.is_empty() {
        return "none".to_owned();
    }
    metrics
        .iter()
        .map(|metric| {
            let dimensions: Vec<String> = metric
                .dimensions
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect();
            format!(
                "{}/{} {{{}}}",
                metric.namespace,
                metric.name,
                dimensions.join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(name: &str, dimensions: &[(&str, &str)]) -> MetricRef {
        MetricRef {
            namespace: "AWS/RDS".to_owned(),
            name: name.to_owned(),
            dimensions: dimensions
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    fn spec(metric: &str, comparison: Comparison) -> AlarmSpec {
        AlarmSpec {
            namespace: Some("AWS/RDS".to_owned()),
            metric: metric.to_owned(),
            dimensions: Vec::new(),
            statistic: "Average".to_owned(),
            period_seconds: 60,
            evaluation_periods: 3,
            datapoints_to_alarm: None,
            threshold: 1.0,
            comparison,
            missing_data: crate::model::rules::MissingData::Breaching,
            minus: None,
            divided_by: None,
            application_metric: false,
        }
    }

    fn held(metric: MetricRef, comparison: &str) -> AlarmDefinition {
        AlarmDefinition {
            watches: AlarmKind::Metric { metric },
            comparison: Some(comparison.to_owned()),
        }
    }

    #[test]
    fn the_same_metrics_in_another_order_do_not_differ() {
        let a = metric("A", &[("DBInstanceIdentifier", "db-1")]);
        let b = metric("B", &[]);
        let said = AlarmKind::MetricMath {
            expression: Some("a + b".to_owned()),
            metrics: vec![a.clone(), b.clone()],
        };
        let held = AlarmKind::MetricMath {
            expression: None,
            metrics: vec![b, a],
        };
        assert_eq!(watch_differs(&said, &held), None);
    }

    #[test]
    fn another_dimension_value_differs() {
        let said = AlarmKind::Metric {
            metric: metric("CPUUtilization", &[("DBInstanceIdentifier", "prod")]),
        };
        let held = AlarmKind::Metric {
            metric: metric("CPUUtilization", &[("DBInstanceIdentifier", "staging")]),
        };
        let differs = watch_differs(&said, &held).unwrap_or_else(|| panic!("differs"));
        assert!(
            differs.contains("prod") && differs.contains("staging"),
            "{differs}"
        );
    }

    #[test]
    fn a_composite_event_for_a_metric_alarm_differs() {
        let said = AlarmKind::Composite {
            alarm_rule: "ALARM(x)".to_owned(),
        };
        let held = AlarmKind::Metric {
            metric: metric("CPUUtilization", &[]),
        };
        assert!(watch_differs(&said, &held).is_some());
        assert!(watch_differs(&held, &said).is_some());
    }

    #[test]
    fn a_tag_the_alarm_does_not_carry_differs_and_extra_alarm_tags_do_not() {
        let event: BTreeMap<String, String> = [(
            "autoheal:rule".to_owned(),
            "rds-instance-healing".to_owned(),
        )]
        .into();
        let mut alarm: BTreeMap<String, String> = [("team".to_owned(), "db".to_owned())].into();
        assert!(tags_differ(&event, &alarm).is_some());
        alarm.insert(
            "autoheal:rule".to_owned(),
            "rds-instance-healing".to_owned(),
        );
        assert_eq!(tags_differ(&event, &alarm), None);
        alarm.insert("autoheal:rule".to_owned(), "other".to_owned());
        assert!(tags_differ(&event, &alarm).is_some());
    }

    #[test]
    fn an_event_from_another_account_or_region_is_not_the_alarm_held_here() {
        let held = "arn:aws:cloudwatch:us-east-1:111111111111:alarm:web";
        assert_eq!(
            place_differs(Some("111111111111"), Some("us-east-1"), None, held),
            None
        );
        assert!(place_differs(Some("222222222222"), Some("us-east-1"), None, held).is_some());
        assert!(place_differs(Some("111111111111"), Some("eu-west-1"), None, held).is_some());
        let elsewhere = "arn:aws:cloudwatch:eu-west-1:222222222222:alarm:web";
        assert!(place_differs(None, None, Some(elsewhere), held).is_some());
        assert_eq!(place_differs(None, None, None, held), None);
    }

    #[test]
    fn an_alarm_on_the_rules_metric_firing_the_other_way_contradicts_it() {
        let rule = spec("DatabaseConnections", Comparison::LessThanThreshold);
        let too_many = held(metric("DatabaseConnections", &[]), "GreaterThanThreshold");
        assert!(contradicts(&rule, &too_many).is_some());
        let none_left = held(
            metric("DatabaseConnections", &[]),
            "LessThanOrEqualToThreshold",
        );
        assert_eq!(contradicts(&rule, &none_left), None);
        let band = held(
            metric("DatabaseConnections", &[]),
            "LessThanLowerOrGreaterThanUpperThreshold",
        );
        assert_eq!(contradicts(&rule, &band), None);
    }

    #[test]
    fn an_alarm_on_another_metric_is_not_judged_by_the_rules_direction() {
        let rule = spec("DatabaseConnections", Comparison::LessThanThreshold);
        let cpu = held(metric("CPUUtilization", &[]), "GreaterThanThreshold");
        assert_eq!(contradicts(&rule, &cpu), None);
    }
}
