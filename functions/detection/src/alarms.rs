//! The account's alarms, read into the core's types (`DescribeAlarms`, paged), and the
//! changes of a plan written back: each alarm whole in one `PutMetricAlarm`, deletions in
//! batches of the 100 names `DeleteAlarms` takes, throttling retried by the client.

use std::collections::BTreeMap;

use autoheal_core::RuleSet;
use autoheal_core::model::alarm::{ExistingAlarm, MetricAlarm, WatchedMetric};
use autoheal_core::policy::detection::plan::{Change, Plan};
use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::types::{
    AlarmType, ComparisonOperator, Dimension, Metric, MetricDataQuery, MetricStat, Statistic, Tag,
};

use crate::error::{DetectionError, describe};

/// The most names one `DeleteAlarms` takes.
pub const DELETE_BATCH: usize = 100;

/// Every metric and composite alarm, with the tags of those that may be autoheal's (named
/// after a rule) or select a rule by tag only (composite alarms): the tags of other alarms
/// change nothing autoheal decides.
pub async fn existing(
    client: &Client,
    rules: &RuleSet,
) -> Result<Vec<ExistingAlarm>, DetectionError> {
    let failed = |e: &dyn std::error::Error| DetectionError::Listing {
        what: "alarms",
        message: describe(&e),
    };
    let mut found = Vec::new();
    let mut pages = client
        .describe_alarms()
        .alarm_types(AlarmType::MetricAlarm)
        .alarm_types(AlarmType::CompositeAlarm)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| failed(&e))?;
        for alarm in page.metric_alarms() {
            let (Some(name), Some(arn)) = (alarm.alarm_name(), alarm.alarm_arn()) else {
                continue;
            };
            found.push(ExistingAlarm {
                arn: arn.to_owned(),
                alarm: metric_alarm(alarm, name),
                composite_rule: None,
                tags: BTreeMap::new(),
            });
        }
        for alarm in page.composite_alarms() {
            let (Some(name), Some(arn)) = (alarm.alarm_name(), alarm.alarm_arn()) else {
                continue;
            };
            found.push(ExistingAlarm {
                arn: arn.to_owned(),
                alarm: MetricAlarm {
                    name: name.to_owned(),
                    description: alarm.alarm_description().unwrap_or_default().to_owned(),
                    metrics: Vec::new(),
                    expression: None,
                    evaluation_periods: 0,
                    datapoints_to_alarm: 0,
                    threshold: 0.0,
                    comparison: String::new(),
                    missing_data: String::new(),
                    actions: alarm.alarm_actions().to_vec(),
                },
                composite_rule: Some(alarm.alarm_rule().unwrap_or_default().to_owned()),
                tags: BTreeMap::new(),
            });
        }
    }
    for alarm in &mut found {
        let named_after_a_rule = rules
            .rules()
            .iter()
            .any(|rule| alarm.alarm.name.starts_with(&format!("{}-", rule.name)));
        if named_after_a_rule || alarm.composite_rule.is_some() {
            let listed = client
                .list_tags_for_resource()
                .resource_arn(&alarm.arn)
                .send()
                .await
                .map_err(|e| failed(&e))?;
            alarm.tags = listed
                .tags()
                .iter()
                .filter_map(|tag| Some((tag.key()?.to_owned(), tag.value()?.to_owned())))
                .collect();
        }
    }
    Ok(found)
}

fn dimensions(metric: Option<&Metric>) -> BTreeMap<String, String> {
    metric
        .map(|metric| metric.dimensions())
        .unwrap_or_default()
        .iter()
        .filter_map(|d| Some((d.name()?.to_owned(), d.value()?.to_owned())))
        .collect()
}

/// A metric alarm as the core compares it: one metric, or the metrics of its expression.
fn metric_alarm(alarm: &aws_sdk_cloudwatch::types::MetricAlarm, name: &str) -> MetricAlarm {
    let statistic = alarm
        .statistic()
        .map(|s| s.as_str().to_owned())
        .or_else(|| alarm.extended_statistic().map(str::to_owned))
        .unwrap_or_default();
    let period = alarm.period().unwrap_or_default().max(0) as u32;
    let (metrics, expression) = if let Some(metric) = alarm.metric_name() {
        let metric = WatchedMetric {
            id: "m1".to_owned(),
            namespace: alarm.namespace().unwrap_or_default().to_owned(),
            name: metric.to_owned(),
            dimensions: alarm
                .dimensions()
                .iter()
                .filter_map(|d| Some((d.name()?.to_owned(), d.value()?.to_owned())))
                .collect(),
            statistic,
            period_seconds: period,
        };
        (vec![metric], None)
    } else {
        let mut metrics = Vec::new();
        let mut expression = None;
        for query in alarm.metrics() {
            if let Some(stat) = query.metric_stat() {
                metrics.push(WatchedMetric {
                    id: query.id().unwrap_or_default().to_owned(),
                    namespace: stat
                        .metric()
                        .and_then(|m| m.namespace())
                        .unwrap_or_default()
                        .to_owned(),
                    name: stat
                        .metric()
                        .and_then(|m| m.metric_name())
                        .unwrap_or_default()
                        .to_owned(),
                    dimensions: dimensions(stat.metric()),
                    statistic: stat.stat().unwrap_or_default().to_owned(),
                    period_seconds: stat.period().unwrap_or_default().max(0) as u32,
                });
            } else if query.return_data() != Some(false)
                && let Some(text) = query.expression()
            {
                expression = Some(text.to_owned());
            }
        }
        (metrics, expression)
    };
    let evaluation_periods = alarm.evaluation_periods().unwrap_or_default().max(0) as u32;
    MetricAlarm {
        name: name.to_owned(),
        description: alarm.alarm_description().unwrap_or_default().to_owned(),
        metrics,
        expression,
        evaluation_periods,
        datapoints_to_alarm: alarm
            .datapoints_to_alarm()
            .map_or(evaluation_periods, |d| d.max(0) as u32),
        threshold: alarm.threshold().unwrap_or_default(),
        comparison: alarm
            .comparison_operator()
            .map(|c| c.as_str().to_owned())
            .unwrap_or_default(),
        missing_data: alarm.treat_missing_data().unwrap_or("missing").to_owned(),
        actions: alarm.alarm_actions().to_vec(),
    }
}

/// A change that was made, for the report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Made {
    pub sign: char,
    pub alarm: String,
}

/// Makes exactly the plan's changes, in its order (deletions last, in batches). A change that
/// still fails after the client's retries stops the run: what was made is returned in the
/// error's count, and the next run plans the rest.
pub async fn apply(client: &Client, plan: &Plan) -> Result<Vec<Made>, DetectionError> {
    let planned = plan.changes.len();
    let mut made = Vec::with_capacity(planned);
    let failed =
        |change: &'static str, alarm: &str, done: usize, message: String| DetectionError::Writing {
            change,
            alarm: alarm.to_owned(),
            done,
            planned,
            message,
        };
    for change in &plan.changes {
        let (desired, retag, verb) = match change {
            Change::Create { desired } => (desired, true, "create"),
            Change::Update { desired, retag, .. } => (desired, *retag, "update"),
            Change::Delete { .. } => continue,
        };
        put(client, &desired.alarm, &desired.tags)
            .await
            .map_err(|message| failed(verb, &desired.alarm.name, made.len(), message))?;
        // PutMetricAlarm tags only the alarm it creates: an existing alarm is tagged apart.
        if retag && matches!(change, Change::Update { .. }) {
            let arn = client
                .describe_alarms()
                .alarm_names(&desired.alarm.name)
                .send()
                .await
                .map_err(|e| failed(verb, &desired.alarm.name, made.len(), describe(&e)))?
                .metric_alarms()
                .first()
                .and_then(|alarm| alarm.alarm_arn().map(str::to_owned));
            if let Some(arn) = arn {
                client
                    .tag_resource()
                    .resource_arn(arn)
                    .set_tags(Some(tags(&desired.tags)))
                    .send()
                    .await
                    .map_err(|e| failed(verb, &desired.alarm.name, made.len(), describe(&e)))?;
            }
        }
        made.push(Made {
            sign: change.sign(),
            alarm: desired.alarm.name.clone(),
        });
    }
    let deletions: Vec<&str> = plan
        .changes
        .iter()
        .filter(|change| matches!(change, Change::Delete { .. }))
        .map(Change::name)
        .collect();
    for batch in deletions.chunks(DELETE_BATCH) {
        client
            .delete_alarms()
            .set_alarm_names(Some(batch.iter().map(|name| (*name).to_owned()).collect()))
            .send()
            .await
            .map_err(|e| failed("delete", batch[0], made.len(), describe(&e)))?;
        made.extend(batch.iter().map(|name| Made {
            sign: '-',
            alarm: (*name).to_owned(),
        }));
    }
    Ok(made)
}

fn tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(key, value)| Tag::builder().key(key).value(value).build())
        .collect()
}

fn sdk_dimensions(dimensions: &BTreeMap<String, String>) -> Vec<Dimension> {
    dimensions
        .iter()
        .map(|(name, value)| Dimension::builder().name(name).value(value).build())
        .collect()
}

/// One `PutMetricAlarm`: the whole alarm, tagged when it is created.
pub(crate) async fn put(
    client: &Client,
    alarm: &MetricAlarm,
    tag_set: &BTreeMap<String, String>,
) -> Result<(), String> {
    let mut request = client
        .put_metric_alarm()
        .alarm_name(&alarm.name)
        .alarm_description(&alarm.description)
        .actions_enabled(true)
        .set_alarm_actions(Some(alarm.actions.clone()))
        .evaluation_periods(alarm.evaluation_periods as i32)
        .datapoints_to_alarm(alarm.datapoints_to_alarm as i32)
        .threshold(alarm.threshold)
        .comparison_operator(ComparisonOperator::from(alarm.comparison.as_str()))
        .treat_missing_data(&alarm.missing_data)
        .set_tags(Some(tags(tag_set)));
    match (&alarm.expression, alarm.metrics.as_slice()) {
        (None, [metric]) => {
            request = request
                .namespace(&metric.namespace)
                .metric_name(&metric.name)
                .set_dimensions(Some(sdk_dimensions(&metric.dimensions)))
                .period(metric.period_seconds as i32);
            request = if metric.statistic.starts_with('p') {
                request.extended_statistic(&metric.statistic)
            } else {
                request.statistic(Statistic::from(metric.statistic.as_str()))
            };
        }
        (expression, metrics) => {
            for metric in metrics {
                let stat = MetricStat::builder()
                    .metric(
                        Metric::builder()
                            .namespace(&metric.namespace)
                            .metric_name(&metric.name)
                            .set_dimensions(Some(sdk_dimensions(&metric.dimensions)))
                            .build(),
                    )
                    .period(metric.period_seconds as i32)
                    .stat(&metric.statistic)
                    .build();
                request = request.metrics(
                    MetricDataQuery::builder()
                        .id(&metric.id)
                        .metric_stat(stat)
                        .return_data(false)
                        .build(),
                );
            }
            if let Some(expression) = expression {
                request = request.metrics(
                    MetricDataQuery::builder()
                        .id("e1")
                        .expression(expression)
                        .return_data(true)
                        .build(),
                );
            }
        }
    }
    request.send().await.map(|_| ()).map_err(|e| describe(&e))
}
