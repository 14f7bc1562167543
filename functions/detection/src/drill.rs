//! A drill: the alarm an event describes, fired in CloudWatch as CloudWatch would hold it had
//! it sent the event. autoheal acts only on an alarm CloudWatch holds (the engine reads it
//! back), so a drill — or a demonstration on a local emulator — first makes the event true:
//! the alarm exists with the event's metrics and tags, in the event's state. An alarm the
//! drill creates takes no actions of its own.

use std::collections::BTreeMap;

use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::types::{AlarmType, StateValue};

use autoheal_core::model::alarm::{MetricAlarm, WatchedMetric};
use autoheal_core::model::rules::Comparison;
use autoheal_core::policy::genuine::{tags_differ, watch_differs};
use autoheal_core::{AlarmEvent, AlarmKind, Rule};

use crate::error::{DetectionError, describe};

/// When the drill sets the alarm's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firing {
    /// Always to the event's: the alarm fires (or clears) now.
    AsEvent,
    /// To the event's unless someone other than a drill set the state last (a test that
    /// moves the alarm itself, to deliver an event late): then the state stays theirs.
    UnlessSetByOthers,
}

/// How a drill's state change says it was a drill (`StateReason`).
const DRILL_REASON: &str = "autoheal drill";

/// What the drill changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fired {
    /// The alarm was created, or redefined to watch what the event says.
    pub defined: bool,
    /// Its state was set to the event's.
    pub state_set: bool,
}

/// Makes `event` true in CloudWatch: its alarm exists, watches the event's metrics, carries
/// its tags, and (per `firing`) is in its state. `rule`, the rule the event selects, gives a
/// created alarm its statistic, threshold and direction (`[rule.alarm]`).
pub async fn fire(
    client: &Client,
    event: &AlarmEvent,
    rule: Option<&Rule>,
    firing: Firing,
) -> Result<Fired, DetectionError> {
    let name = &event.alarm_name;
    let failed = |change: &'static str, message: String| DetectionError::Writing {
        change,
        alarm: name.clone(),
        done: 0,
        planned: 1,
        message,
    };
    if let AlarmKind::Composite { .. } = event.kind {
        return Err(DetectionError::Config(format!(
            "alarm `{name}` is a composite alarm: a drill fires the alarms it is made of"
        )));
    }
    let held = client
        .describe_alarms()
        .alarm_names(name)
        .alarm_types(AlarmType::MetricAlarm)
        .send()
        .await
        .map_err(|e| DetectionError::Listing {
            what: "alarms",
            message: describe(&e),
        })?;
    let held = held
        .metric_alarms()
        .iter()
        .find(|alarm| alarm.alarm_name() == Some(name.as_str()));
    let tags = match held.and_then(|alarm| alarm.alarm_arn()) {
        Some(arn) => client
            .list_tags_for_resource()
            .resource_arn(arn)
            .send()
            .await
            .map_err(|e| DetectionError::Listing {
                what: "alarm tags",
                message: describe(&e),
            })?
            .tags()
            .iter()
            .filter_map(|tag| Some((tag.key()?.to_owned(), tag.value()?.to_owned())))
            .collect(),
        None => BTreeMap::new(),
    };
    let as_event = held.is_some_and(|alarm| {
        watch_differs(&event.kind, &autoheal_aws::followups::watches(alarm)).is_none()
            && tags_differ(&event.alarm_tags, &tags).is_none()
    });
    let mut fired = Fired::default();
    if !as_event {
        super::alarms::put(client, &definition(event, rule), &event.alarm_tags)
            .await
            .map_err(|message| failed("put", message))?;
        fired.defined = true;
    }
    let set_by_others = held.is_some_and(|alarm| {
        !alarm
            .state_reason()
            .is_some_and(|reason| reason.starts_with(DRILL_REASON))
    });
    let state = match (firing, set_by_others) {
        (Firing::AsEvent, _) | (Firing::UnlessSetByOthers, false) => Some((
            StateValue::from(event.state.as_str()),
            format!(
                "{DRILL_REASON}: {} as event {} says",
                event.state.as_str(),
                event.id
            ),
        )),
        // CloudWatch keeps an alarm's state when it is redefined; the emulator starts it
        // over: put back what its setter gave it.
        (Firing::UnlessSetByOthers, true) if fired.defined => held.and_then(|alarm| {
            Some((
                alarm.state_value()?.clone(),
                alarm.state_reason().unwrap_or_default().to_owned(),
            ))
        }),
        (Firing::UnlessSetByOthers, true) => None,
    };
    if let Some((state, reason)) = state {
        client
            .set_alarm_state()
            .alarm_name(name)
            .state_value(state)
            .state_reason(reason)
            .send()
            .await
            .map_err(|e| failed("set the state of", describe(&e)))?;
        fired.state_set = true;
    }
    Ok(fired)
}

/// The alarm a drill creates for `event`: its metrics, the rule's statistic, threshold and
/// direction (or "at least 1 in one minute"), and no actions.
fn definition(event: &AlarmEvent, rule: Option<&Rule>) -> MetricAlarm {
    let spec = rule.and_then(|rule| rule.alarm.as_ref());
    let statistic = spec.map_or_else(|| "Maximum".to_owned(), |spec| spec.statistic.clone());
    let period_seconds = spec.map_or(60, |spec| spec.period_seconds);
    let metrics: Vec<WatchedMetric> = event
        .kind
        .metrics()
        .iter()
        .enumerate()
        .map(|(index, metric)| WatchedMetric {
            id: format!("m{}", index + 1),
            namespace: metric.namespace.clone(),
            name: metric.name.clone(),
            dimensions: metric.dimensions.clone(),
            statistic: statistic.clone(),
            period_seconds,
        })
        .collect();
    let expression = match &event.kind {
        AlarmKind::Metric { .. } => None,
        AlarmKind::MetricMath { expression, .. } => Some(
            expression
                .clone()
                .unwrap_or_else(|| "SUM(METRICS())".to_owned()),
        ),
        _ => Some("SUM(METRICS())".to_owned()),
    };
    let comparison = spec.map_or(Comparison::GreaterThanOrEqualToThreshold, |spec| {
        spec.comparison
    });
    MetricAlarm {
        name: event.alarm_name.clone(),
        description: format!(
            "Created by an autoheal drill from event {}: it takes no actions",
            event.id
        ),
        metrics,
        expression,
        evaluation_periods: 1,
        datapoints_to_alarm: 1,
        threshold: spec.map_or(1.0, |spec| spec.threshold),
        comparison: comparison.as_str().to_owned(),
        missing_data: "missing".to_owned(),
        actions: Vec::new(),
    }
}
