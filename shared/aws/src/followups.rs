//! The closed loop on AWS: follow-ups are EventBridge Scheduler one-time schedules that invoke
//! the layer's function and delete themselves; alarms are read back with CloudWatch
//! `DescribeAlarms` (and their tags with `ListTagsForResource`, when an event carries tags).

use std::collections::BTreeMap;

use aws_sdk_cloudwatch::types::{AlarmType, StateValue};
use aws_sdk_scheduler::error::ProvideErrorMetadata;
use aws_sdk_scheduler::types::{
    ActionAfterCompletion, DeadLetterConfig, FlexibleTimeWindow, FlexibleTimeWindowMode,
    RetryPolicy, Target,
};
use chrono::{DateTime, SecondsFormat, Utc};

use autoheal_core::{
    AlarmDefinition, AlarmKind, AlarmNow, AlarmReading, AlarmState, FollowUp, FollowUpError,
    FollowUpKind, FollowUps, MetricRef,
};

use crate::config::FollowUpTarget;
use crate::errors::describe;

/// How long EventBridge Scheduler keeps retrying to deliver a follow-up the function could not
/// take (throttled, or an error such as the state table being unavailable).
const DELIVERY_RETRY_SECONDS: i32 = 3600;
const DELIVERY_ATTEMPTS: i32 = 20;
/// EventBridge Scheduler's limit on a target's input.
const INPUT_MAX: usize = 8192;

/// Schedules follow-ups and reads alarms.
#[derive(Debug, Clone)]
pub struct AwsFollowUps {
    scheduler: aws_sdk_scheduler::Client,
    cloudwatch: aws_sdk_cloudwatch::Client,
    target: FollowUpTarget,
}

impl AwsFollowUps {
    pub fn new(
        scheduler: aws_sdk_scheduler::Client,
        cloudwatch: aws_sdk_cloudwatch::Client,
        target: FollowUpTarget,
    ) -> Self {
        AwsFollowUps {
            scheduler,
            cloudwatch,
            target,
        }
    }
}

fn error(operation: &str, message: impl std::fmt::Display) -> FollowUpError {
    FollowUpError {
        message: format!("{operation}: {message}"),
    }
}

fn api_error<E>(operation: &str, error: &E) -> FollowUpError
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
{
    FollowUpError {
        message: describe(operation, error),
    }
}

/// EventBridge Scheduler's one-time expression: `at(yyyy-mm-ddThh:mm:ss)`, in UTC here. It
/// has whole seconds: a fraction rounds up, so that a follow-up is never delivered before
/// it is due (it would only find its backoff not over and schedule itself again).
pub fn at_expression(at: DateTime<Utc>) -> String {
    let whole = if at.timestamp_subsec_nanos() == 0 {
        at
    } else {
        DateTime::from_timestamp(at.timestamp().saturating_add(1), 0).unwrap_or(at)
    };
    format!(
        "at({})",
        whole
            .to_rfc3339_opts(SecondsFormat::Secs, true)
            .trim_end_matches('Z')
    )
}

impl FollowUps for AwsFollowUps {
    async fn schedule(&self, follow_up: &FollowUp, at: DateTime<Utc>) -> Result<(), FollowUpError> {
        let input = follow_up.to_payload().to_string();
        if input.len() > INPUT_MAX {
            return Err(error(
                "CreateSchedule",
                format!(
                    "the follow-up is {} bytes, more than a schedule's {INPUT_MAX}",
                    input.len()
                ),
            ));
        }
        let target = Target::builder()
            .arn(&self.target.function_arn)
            .role_arn(&self.target.role_arn)
            .input(input)
            .retry_policy(
                RetryPolicy::builder()
                    .maximum_event_age_in_seconds(DELIVERY_RETRY_SECONDS)
                    .maximum_retry_attempts(DELIVERY_ATTEMPTS)
                    .build(),
            )
            // A follow-up still undelivered after the retries is kept there, not lost.
            .set_dead_letter_config(
                self.target
                    .dead_letter_arn
                    .as_ref()
                    .map(|arn| DeadLetterConfig::builder().arn(arn).build()),
            )
            .build()
            .map_err(|e| error("CreateSchedule", e))?;
        let window = FlexibleTimeWindow::builder()
            .mode(FlexibleTimeWindowMode::Off)
            .build()
            .map_err(|e| error("CreateSchedule", e))?;
        let created = self
            .scheduler
            .create_schedule()
            .name(follow_up.schedule_name())
            .group_name(&self.target.schedule_group)
            .schedule_expression(at_expression(at))
            .schedule_expression_timezone("UTC")
            .flexible_time_window(window)
            .action_after_completion(ActionAfterCompletion::Delete)
            .description(format!(
                "autoheal {} {} of {} on {}",
                match follow_up.kind {
                    FollowUpKind::Check => "check",
                    FollowUpKind::Revert => "revert retry",
                },
                follow_up.check,
                follow_up.rule,
                follow_up.resource_id
            ))
            .target(target)
            .send()
            .await;
        match created {
            Ok(_) => Ok(()),
            // The same check was scheduled already (a retried run): the first schedule stands.
            Err(e) if e.as_service_error().and_then(|s| s.code()) == Some("ConflictException") => {
                Ok(())
            }
            Err(e) => Err(api_error("CreateSchedule", &e)),
        }
    }

    async fn read_alarm(&self, alarm_name: &str) -> Result<Option<AlarmReading>, FollowUpError> {
        Ok(self
            .describe_alarm(alarm_name)
            .await?
            .map(|alarm| alarm.reading))
    }

    async fn describe_alarm(&self, alarm_name: &str) -> Result<Option<AlarmNow>, FollowUpError> {
        let output = self
            .cloudwatch
            .describe_alarms()
            .alarm_names(alarm_name)
            .alarm_types(AlarmType::MetricAlarm)
            .alarm_types(AlarmType::CompositeAlarm)
            .send()
            .await
            .map_err(|e| api_error("DescribeAlarms", &e))?;
        let metric = output
            .metric_alarms()
            .iter()
            .filter(|alarm| alarm.alarm_name() == Some(alarm_name))
            .map(|alarm| Held {
                state: alarm.state_value(),
                since: alarm.state_updated_timestamp(),
                actions: alarm.alarm_actions(),
                arn: alarm.alarm_arn(),
                definition: AlarmDefinition {
                    watches: watches(alarm),
                    comparison: alarm.comparison_operator().map(|c| c.as_str().to_owned()),
                },
            });
        let composite = output
            .composite_alarms()
            .iter()
            .filter(|alarm| alarm.alarm_name() == Some(alarm_name))
            .map(|alarm| Held {
                state: alarm.state_value(),
                since: alarm.state_updated_timestamp(),
                actions: alarm.alarm_actions(),
                arn: alarm.alarm_arn(),
                definition: AlarmDefinition {
                    watches: AlarmKind::Composite {
                        alarm_rule: alarm.alarm_rule().unwrap_or_default().to_owned(),
                    },
                    comparison: None,
                },
            });
        let Some(held) = metric.chain(composite).next() else {
            return Ok(None);
        };
        let state = match held.state {
            Some(StateValue::Alarm) => AlarmState::Alarm,
            Some(StateValue::Ok) => AlarmState::Ok,
            _ => AlarmState::InsufficientData,
        };
        let since = held
            .since
            .and_then(|time| DateTime::from_timestamp(time.secs(), time.subsec_nanos()))
            .ok_or_else(|| {
                error(
                    "DescribeAlarms",
                    format!("alarm {alarm_name} has no state update time"),
                )
            })?;
        Ok(Some(AlarmNow {
            reading: AlarmReading { state, since },
            actions: held.actions.to_vec(),
            definition: held.definition,
            arn: held.arn.map(str::to_owned),
        }))
    }

    async fn alarm_tags(&self, alarm_arn: &str) -> Result<BTreeMap<String, String>, FollowUpError> {
        let output = self
            .cloudwatch
            .list_tags_for_resource()
            .resource_arn(alarm_arn)
            .send()
            .await
            .map_err(|e| api_error("ListTagsForResource", &e))?;
        Ok(output
            .tags()
            .iter()
            .filter_map(|tag| Some((tag.key()?.to_owned(), tag.value()?.to_owned())))
            .collect())
    }
}

/// An alarm as `DescribeAlarms` returns it, metric or composite alike.
struct Held<'a> {
    state: Option<&'a StateValue>,
    since: Option<&'a aws_sdk_cloudwatch::primitives::DateTime>,
    actions: &'a [String],
    arn: Option<&'a str>,
    definition: AlarmDefinition,
}

/// What a metric alarm watches: its one metric, or the metrics its expression reads.
pub fn watches(alarm: &aws_sdk_cloudwatch::types::MetricAlarm) -> AlarmKind {
    let dimensions = |dimensions: &[aws_sdk_cloudwatch::types::Dimension]| {
        dimensions
            .iter()
            .filter_map(|d| Some((d.name()?.to_owned(), d.value()?.to_owned())))
            .collect()
    };
    if let Some(name) = alarm.metric_name() {
        return AlarmKind::Metric {
            metric: MetricRef {
                namespace: alarm.namespace().unwrap_or_default().to_owned(),
                name: name.to_owned(),
                dimensions: dimensions(alarm.dimensions()),
            },
        };
    }
    let metrics = alarm
        .metrics()
        .iter()
        .filter_map(|query| query.metric_stat()?.metric())
        .map(|metric| MetricRef {
            namespace: metric.namespace().unwrap_or_default().to_owned(),
            name: metric.metric_name().unwrap_or_default().to_owned(),
            dimensions: dimensions(metric.dimensions()),
        })
        .collect();
    let expression = alarm
        .metrics()
        .iter()
        .find_map(|query| query.expression())
        .map(str::to_owned);
    AlarmKind::MetricMath {
        expression,
        metrics,
    }
}

/// A follow-up schedule that is due, as a local stand-in for EventBridge Scheduler reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct DueSchedule {
    pub name: String,
    pub due_at: DateTime<Utc>,
    /// What the schedule delivers to its target.
    pub payload: serde_json::Value,
}

/// Parses `at(yyyy-mm-ddThh:mm:ss)` (UTC).
pub fn parse_at_expression(expression: &str) -> Option<DateTime<Utc>> {
    let inner = expression.strip_prefix("at(")?.strip_suffix(')')?;
    chrono::NaiveDateTime::parse_from_str(inner, "%Y-%m-%dT%H:%M:%S")
        .ok()
        .map(|naive| naive.and_utc())
}

/// The one-time schedules of `group` due at `at`, earliest first. Where no scheduler fires
/// them (the local emulator stores schedules but never runs them), `autoheal tick` and the
/// tests deliver these to the layers' handlers, then delete them as
/// `ActionAfterCompletion: DELETE` would.
pub async fn due_schedules(
    scheduler: &aws_sdk_scheduler::Client,
    group: &str,
    at: DateTime<Utc>,
) -> Result<Vec<DueSchedule>, FollowUpError> {
    let mut names = Vec::new();
    let mut pages = scheduler
        .list_schedules()
        .group_name(group)
        .into_paginator()
        .items()
        .send();
    while let Some(summary) = pages.next().await {
        let summary = summary.map_err(|e| api_error("ListSchedules", &e))?;
        if let Some(name) = summary.name() {
            names.push(name.to_owned());
        }
    }
    let mut due = Vec::new();
    for name in names {
        let schedule = scheduler
            .get_schedule()
            .group_name(group)
            .name(&name)
            .send()
            .await
            .map_err(|e| api_error("GetSchedule", &e))?;
        let Some(due_at) = schedule
            .schedule_expression()
            .and_then(parse_at_expression)
            .filter(|due_at| *due_at <= at)
        else {
            continue;
        };
        let input = schedule
            .target()
            .and_then(|target| target.input())
            .unwrap_or("{}");
        let payload = serde_json::from_str(input)
            .map_err(|e| error("GetSchedule", format!("schedule {name}'s input: {e}")))?;
        due.push(DueSchedule {
            name,
            due_at,
            payload,
        });
    }
    due.sort_by(|a, b| a.due_at.cmp(&b.due_at).then_with(|| a.name.cmp(&b.name)));
    Ok(due)
}

/// Deletes a schedule that fired.
pub async fn delete_schedule(
    scheduler: &aws_sdk_scheduler::Client,
    group: &str,
    name: &str,
) -> Result<(), FollowUpError> {
    scheduler
        .delete_schedule()
        .group_name(group)
        .name(name)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| api_error("DeleteSchedule", &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schedule_is_never_due_before_its_follow_up() {
        let at = DateTime::parse_from_rfc3339("2026-12-01T10:00:00.250Z")
            .unwrap_or_else(|e| panic!("{e}"))
            .with_timezone(&Utc);
        assert_eq!(at_expression(at), "at(2026-12-01T10:00:01)");
        let whole = DateTime::from_timestamp(at.timestamp(), 0).unwrap_or(at);
        assert_eq!(at_expression(whole), "at(2026-12-01T10:00:00)");
        assert_eq!(
            parse_at_expression("at(2026-12-01T10:00:01)"),
            Some(whole + chrono::Duration::seconds(1))
        );
        assert_eq!(parse_at_expression("rate(5 minutes)"), None);
    }
}
