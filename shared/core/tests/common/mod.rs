//! Alarm events shared by the integration tests: the samples of the AWS documentation
//! ("Alarm events and EventBridge", CloudWatch User Guide) and builders for variations.

#![allow(dead_code)]

use serde_json::{Value, json};

/// A single-metric alarm (AWS sample "ServerCpuTooHigh": CPUUtilization on one instance).
pub fn single_metric_sample() -> Value {
    json!({
        "version": "0",
        "id": "c4c1c1c9-6542-e61b-6ef0-8c4d36933a92",
        "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch",
        "account": "123456789012",
        "time": "2019-10-02T17:04:40Z",
        "region": "us-east-1",
        "resources": ["arn:aws:cloudwatch:us-east-1:123456789012:alarm:ServerCpuTooHigh"],
        "detail": {
            "alarmName": "ServerCpuTooHigh",
            "configuration": {
                "description": "Goes into alarm when server CPU utilization is too high!",
                "metrics": [{
                    "id": "30b6c6b2-a864-43a2-4877-c09a1afc3b87",
                    "metricStat": {
                        "metric": {
                            "dimensions": {"InstanceId": "i-12345678901234567"},
                            "name": "CPUUtilization",
                            "namespace": "AWS/EC2"
                        },
                        "period": 300,
                        "stat": "Average"
                    },
                    "returnData": true
                }]
            },
            "previousState": {
                "reason": "Threshold Crossed: 1 out of the last 1 datapoints [0.0666851903306472 (01/10/19 13:46:00)] was not greater than the threshold (50.0) (minimum 1 datapoint for ALARM -> OK transition).",
                "reasonData": "{\"version\":\"1.0\",\"queryDate\":\"2019-10-01T13:56:40.985+0000\",\"startDate\":\"2019-10-01T13:46:00.000+0000\",\"statistic\":\"Average\",\"period\":300,\"recentDatapoints\":[0.0666851903306472],\"threshold\":50.0}",
                "timestamp": "2019-10-01T13:56:40.987+0000",
                "value": "OK"
            },
            "state": {
                "reason": "Threshold Crossed: 1 out of the last 1 datapoints [99.50160229693434 (02/10/19 16:59:00)] was greater than the threshold (50.0) (minimum 1 datapoint for OK -> ALARM transition).",
                "reasonData": "{\"version\":\"1.0\",\"queryDate\":\"2019-10-02T17:04:40.985+0000\",\"startDate\":\"2019-10-02T16:59:00.000+0000\",\"statistic\":\"Average\",\"period\":300,\"recentDatapoints\":[99.50160229693434],\"threshold\":50.0}",
                "timestamp": "2019-10-02T17:04:40.989+0000",
                "value": "ALARM"
            }
        }
    })
}

/// A metric-math alarm (AWS sample "TotalNetworkTrafficTooHigh": SUM of NetworkIn and
/// NetworkOut of one instance).
pub fn metric_math_sample() -> Value {
    json!({
        "version": "0",
        "id": "2dde0eb1-528b-d2d5-9ca6-6d590caf2329",
        "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch",
        "account": "123456789012",
        "time": "2019-10-02T17:20:48Z",
        "region": "us-east-1",
        "resources": ["arn:aws:cloudwatch:us-east-1:123456789012:alarm:TotalNetworkTrafficTooHigh"],
        "detail": {
            "alarmName": "TotalNetworkTrafficTooHigh",
            "configuration": {
                "description": "Goes into alarm if total network traffic exceeds 10Kb",
                "metrics": [
                    {
                        "expression": "SUM(METRICS())",
                        "id": "e1",
                        "label": "Total Network Traffic",
                        "returnData": true
                    },
                    {
                        "id": "m1",
                        "metricStat": {
                            "metric": {
                                "dimensions": {"InstanceId": "i-12345678901234567"},
                                "name": "NetworkIn",
                                "namespace": "AWS/EC2"
                            },
                            "period": 300,
                            "stat": "Maximum"
                        },
                        "returnData": false
                    },
                    {
                        "id": "m2",
                        "metricStat": {
                            "metric": {
                                "dimensions": {"InstanceId": "i-12345678901234567"},
                                "name": "NetworkOut",
                                "namespace": "AWS/EC2"
                            },
                            "period": 300,
                            "stat": "Maximum"
                        },
                        "returnData": false
                    }
                ]
            },
            "previousState": {
                "reason": "Unchecked: Initial alarm creation",
                "timestamp": "2019-10-02T17:20:03.642+0000",
                "value": "INSUFFICIENT_DATA"
            },
            "state": {
                "reason": "Threshold Crossed: 1 out of the last 1 datapoints [45628.0 (02/10/19 17:10:00)] was greater than the threshold (10000.0) (minimum 1 datapoint for OK -> ALARM transition).",
                "reasonData": "{\"version\":\"1.0\",\"queryDate\":\"2019-10-02T17:20:48.551+0000\",\"startDate\":\"2019-10-02T17:10:00.000+0000\",\"period\":300,\"recentDatapoints\":[45628.0],\"threshold\":10000.0}",
                "timestamp": "2019-10-02T17:20:48.554+0000",
                "value": "ALARM"
            }
        }
    })
}

/// An anomaly-detection alarm (AWS sample "EC2 CPU Utilization Anomaly").
pub fn anomaly_detection_sample() -> Value {
    json!({
        "version": "0",
        "id": "daafc9f1-bddd-c6c9-83af-74971fcfc4ef",
        "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch",
        "account": "123456789012",
        "time": "2019-10-03T16:00:04Z",
        "region": "us-east-1",
        "resources": ["arn:aws:cloudwatch:us-east-1:123456789012:alarm:EC2 CPU Utilization Anomaly"],
        "detail": {
            "alarmName": "EC2 CPU Utilization Anomaly",
            "state": {
                "value": "ALARM",
                "reason": "Thresholds Crossed: 1 out of the last 1 datapoints [0.0 (03/10/19 15:58:00)] was less than the lower thresholds [0.020599444741798756] or greater than the upper thresholds [0.3149508808748821] (minimum 1 datapoint for OK -> ALARM transition).",
                "reasonData": "{\"version\":\"1.0\",\"queryDate\":\"2019-10-03T16:00:04.650+0000\",\"startDate\":\"2019-10-03T15:58:00.000+0000\",\"period\":60,\"recentDatapoints\":[0.0],\"recentLowerThresholds\":[0.020599444741798756],\"recentUpperThresholds\":[0.3149508808748821]}",
                "timestamp": "2019-10-03T16:00:04.653+0000"
            },
            "previousState": {
                "value": "OK",
                "reason": "Thresholds Crossed: 1 out of the last 1 datapoints [0.166666666664241 (03/10/19 15:57:00)] was not less than the lower thresholds [0.0] or not greater than the upper thresholds [0.9085725166037478] (minimum 1 datapoint for ALARM -> OK transition).",
                "timestamp": "2019-10-03T15:59:04.670+0000"
            },
            "configuration": {
                "description": "Goes into alarm if CPU Utilization is out of band",
                "metrics": [
                    {
                        "id": "m1",
                        "metricStat": {
                            "metric": {
                                "namespace": "AWS/EC2",
                                "name": "CPUUtilization",
                                "dimensions": {"InstanceId": "i-12345678901234567"}
                            },
                            "period": 60,
                            "stat": "Average"
                        },
                        "returnData": true
                    },
                    {
                        "id": "ad1",
                        "expression": "ANOMALY_DETECTION_BAND(m1, 2)",
                        "label": "CPUUtilization (expected)",
                        "returnData": true
                    }
                ],
                "thresholdMetricId": "ad1"
            }
        }
    })
}

/// A composite alarm (AWS sample "ServiceAggregatedAlarm", with an actions suppressor).
pub fn composite_sample() -> Value {
    json!({
        "version": "0",
        "id": "d3dfc86d-384d-24c8-0345-9f7986db0b80",
        "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch",
        "account": "123456789012",
        "time": "2022-07-22T15:57:45Z",
        "region": "us-east-1",
        "resources": ["arn:aws:cloudwatch:us-east-1:123456789012:alarm:ServiceAggregatedAlarm"],
        "detail": {
            "alarmName": "ServiceAggregatedAlarm",
            "state": {
                "actionsSuppressedBy": "WaitPeriod",
                "actionsSuppressedReason": "Actions suppressed by WaitPeriod",
                "value": "ALARM",
                "reason": "arn:aws:cloudwatch:us-east-1:123456789012:alarm:SuppressionDemo.EventBridge.FirstChild transitioned to ALARM at Friday 22 July, 2022 15:57:45 UTC",
                "reasonData": "{\"triggeringAlarms\":[{\"arn\":\"arn:aws:cloudwatch:us-east-1:123456789012:alarm:ServerCpuTooHigh\",\"state\":{\"value\":\"ALARM\",\"timestamp\":\"2022-07-22T15:57:45.394+0000\"}}]}",
                "timestamp": "2022-07-22T15:57:45.394+0000"
            },
            "previousState": {
                "value": "OK",
                "reason": "arn:aws:cloudwatch:us-east-1:123456789012:alarm:SuppressionDemo.EventBridge.Main was created and its alarm rule evaluates to OK",
                "reasonData": "{\"triggeringAlarms\":[]}",
                "timestamp": "2022-07-22T15:56:14.552+0000"
            },
            "configuration": {
                "alarmRule": "ALARM(ServerCpuTooHigh) OR ALARM(TotalNetworkTrafficTooHigh)",
                "actionsSuppressor": "ServiceMaintenanceAlarm",
                "actionsSuppressorWaitPeriod": 120,
                "actionsSuppressorExtensionPeriod": 180
            }
        }
    })
}

/// A single-metric alarm event with the given id, name, state and metric.
pub fn metric_alarm(
    id: &str,
    alarm_name: &str,
    state: &str,
    namespace: &str,
    metric: &str,
    dimensions: &[(&str, &str)],
) -> Value {
    let dimensions: serde_json::Map<String, Value> = dimensions
        .iter()
        .map(|(name, value)| ((*name).to_owned(), Value::from(*value)))
        .collect();
    json!({
        "version": "0",
        "id": id,
        "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch",
        "account": "123456789012",
        "time": "2024-05-01T12:00:00Z",
        "region": "us-east-1",
        "resources": [format!("arn:aws:cloudwatch:us-east-1:123456789012:alarm:{alarm_name}")],
        "detail": {
            "alarmName": alarm_name,
            "state": {"value": state, "reason": "test", "timestamp": "2024-05-01T12:00:00.000+0000"},
            "previousState": {"value": "OK", "reason": "test", "timestamp": "2024-05-01T11:00:00.000+0000"},
            "configuration": {
                "metrics": [{
                    "id": "m1",
                    "metricStat": {
                        "metric": {"namespace": namespace, "name": metric, "dimensions": dimensions},
                        "period": 60,
                        "stat": "Maximum"
                    },
                    "returnData": true
                }]
            }
        }
    })
}

/// `AWS/EC2 StatusCheckFailed_System` on one instance: what `ec2-instance-healing` heals.
pub fn ec2_status_check(id: &str, state: &str, instance_id: &str) -> Value {
    metric_alarm(
        id,
        "web-1-status-check",
        state,
        "AWS/EC2",
        "StatusCheckFailed_System",
        &[("InstanceId", instance_id)],
    )
}

/// The event with `alarmTags` set to `tags` (any JSON shape).
pub fn with_tags(mut event: Value, tags: Value) -> Value {
    event["detail"]["alarmTags"] = tags;
    event
}
