//! An alarm as its "CloudWatch Alarm State Change" event carries it: what selection (the
//! same code `explain` and every layer's function use) reads to decide which rule an alarm
//! reaches.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::model::alarm::{MetricAlarm, arn_account_region};
use crate::model::event::{ALARM_STATE_CHANGE, AlarmEvent, CLOUDWATCH_SOURCE};

/// The EventBridge event CloudWatch sends when `alarm` (whose ARN is `arn`) goes into ALARM.
/// `tags` are put in `detail.alarmTags` as CloudWatch does when the alarm propagates them;
/// `None`: the event carries no tags. A composite alarm carries its rule and no metrics.
pub fn state_change_event(
    alarm: &MetricAlarm,
    arn: &str,
    composite_rule: Option<&str>,
    tags: Option<&BTreeMap<String, String>>,
) -> Value {
    let (account, region) = arn_account_region(arn).unwrap_or(("", ""));
    let mut queries: Vec<Value> = alarm
        .metrics
        .iter()
        .map(|metric| {
            json!({
                "id": metric.id,
                "metricStat": {
                    "metric": {
                        "namespace": metric.namespace,
                        "name": metric.name,
                        "dimensions": metric.dimensions,
                    },
                    "period": metric.period_seconds,
                    "stat": metric.statistic,
                },
                "returnData": alarm.expression.is_none(),
            })
        })
        .collect();
    if let Some(expression) = &alarm.expression {
        queries.push(json!({ "id": "e1", "expression": expression, "returnData": true }));
    }
    let configuration = match composite_rule {
        Some(rule) => json!({ "alarmRule": rule, "description": alarm.description }),
        None => json!({ "metrics": queries, "description": alarm.description }),
    };
    let state = json!({
        "value": "ALARM",
        "reason": "Threshold Crossed",
        "timestamp": "2026-01-01T00:00:00.000+0000",
    });
    let mut detail = json!({
        "alarmName": alarm.name,
        "state": state,
        "previousState": { "value": "OK", "reason": "", "timestamp": "2026-01-01T00:00:00.000+0000" },
        "configuration": configuration,
    });
    if let Some(tags) = tags {
        detail["alarmTags"] = json!(tags);
    }
    json!({
        "version": "0",
        "id": "00000000-0000-4000-8000-000000000000",
        "detail-type": ALARM_STATE_CHANGE,
        "source": CLOUDWATCH_SOURCE,
        "account": account,
        "time": "2026-01-01T00:00:00Z",
        "region": region,
        "resources": [arn],
        "detail": detail,
    })
}

/// [`state_change_event`], parsed as every function parses it; `None` for an alarm no event
/// could carry (a name CloudWatch would refuse).
pub fn as_event(
    alarm: &MetricAlarm,
    arn: &str,
    composite_rule: Option<&str>,
    tags: Option<&BTreeMap<String, String>>,
) -> Option<AlarmEvent> {
    AlarmEvent::from_value(state_change_event(alarm, arn, composite_rule, tags)).ok()
}
