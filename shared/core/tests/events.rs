//! Parsing EventBridge "CloudWatch Alarm State Change" events into `AlarmEvent`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use autoheal_core::model::event::MetricRef;
use autoheal_core::policy::resolve::{Selection, select, select_any};
use autoheal_core::{AlarmEvent, AlarmKind, AlarmState, EventError, Layer, ResourceKind, RuleSet};
use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use serde_json::{Value, json};

use common::*;

fn parse(value: Value) -> AlarmEvent {
    AlarmEvent::from_value(value).unwrap_or_else(|e| panic!("the event should parse: {e}"))
}

fn parse_err(value: Value) -> EventError {
    match AlarmEvent::from_value(value) {
        Ok(event) => panic!("the event should be rejected, got {event:?}"),
        Err(error) => error,
    }
}

fn dims(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

// ------------------------------------------------------------------ the AWS samples

#[test]
fn given_the_aws_single_metric_sample_when_parsed_then_it_is_a_metric_alarm_on_the_instance() {
    let event = parse(single_metric_sample());

    assert_eq!(event.id, "c4c1c1c9-6542-e61b-6ef0-8c4d36933a92");
    assert_eq!(event.alarm_name, "ServerCpuTooHigh");
    assert_eq!(event.state, AlarmState::Alarm);
    assert_eq!(event.previous_state, Some(AlarmState::Ok));
    assert_eq!(event.account.as_deref(), Some("123456789012"));
    assert_eq!(event.region.as_deref(), Some("us-east-1"));
    assert_eq!(
        event.time,
        Some(Utc.with_ymd_and_hms(2019, 10, 2, 17, 4, 40).unwrap())
    );
    assert_eq!(
        event.alarm_arn.as_deref(),
        Some("arn:aws:cloudwatch:us-east-1:123456789012:alarm:ServerCpuTooHigh")
    );
    assert!(
        event
            .state_reason
            .as_deref()
            .is_some_and(|r| r.starts_with("Threshold Crossed")),
        "{:?}",
        event.state_reason
    );
    assert_eq!(
        event.kind,
        AlarmKind::Metric {
            metric: MetricRef {
                namespace: "AWS/EC2".to_owned(),
                name: "CPUUtilization".to_owned(),
                dimensions: dims(&[("InstanceId", "i-12345678901234567")]),
            }
        }
    );
    assert_eq!(event.kind.label(), "metric");
    assert_eq!(event.kind.metrics().len(), 1);
    assert!(event.alarm_tags.is_empty());
}

#[test]
fn given_the_aws_metric_math_sample_when_parsed_then_it_is_metric_math_with_its_inputs() {
    let event = parse(metric_math_sample());

    assert_eq!(event.alarm_name, "TotalNetworkTrafficTooHigh");
    assert_eq!(event.state, AlarmState::Alarm);
    assert_eq!(event.previous_state, Some(AlarmState::InsufficientData));
    let AlarmKind::MetricMath {
        expression,
        metrics,
    } = &event.kind
    else {
        panic!("expected a metric-math alarm, got {:?}", event.kind);
    };
    assert_eq!(expression.as_deref(), Some("SUM(METRICS())"));
    let names: Vec<&str> = metrics.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["NetworkIn", "NetworkOut"]);
    for metric in metrics {
        assert_eq!(metric.namespace, "AWS/EC2");
        assert_eq!(
            metric.dimensions,
            dims(&[("InstanceId", "i-12345678901234567")])
        );
    }
    assert_eq!(event.kind.label(), "metric-math");
    assert_eq!(event.kind.metrics().len(), 2);
}

#[test]
fn given_the_aws_anomaly_detection_sample_when_parsed_then_it_is_an_anomaly_detection_alarm() {
    let event = parse(anomaly_detection_sample());

    assert_eq!(event.alarm_name, "EC2 CPU Utilization Anomaly");
    let AlarmKind::AnomalyDetection { metrics } = &event.kind else {
        panic!("expected an anomaly-detection alarm, got {:?}", event.kind);
    };
    assert_eq!(
        metrics,
        &[MetricRef {
            namespace: "AWS/EC2".to_owned(),
            name: "CPUUtilization".to_owned(),
            dimensions: dims(&[("InstanceId", "i-12345678901234567")]),
        }]
    );
    assert_eq!(event.kind.label(), "anomaly-detection");
}

#[test]
fn given_an_anomaly_band_written_in_lower_case_when_parsed_then_it_is_still_anomaly_detection() {
    let mut value = anomaly_detection_sample();
    value["detail"]["configuration"]["metrics"][1]["expression"] =
        json!("anomaly_detection_band(m1, 2)");

    let event = parse(value);

    assert!(
        matches!(event.kind, AlarmKind::AnomalyDetection { .. }),
        "{:?}",
        event.kind
    );
}

#[test]
fn given_the_aws_composite_sample_when_parsed_then_it_is_composite_with_its_rule_and_no_metrics() {
    let event = parse(composite_sample());

    assert_eq!(event.alarm_name, "ServiceAggregatedAlarm");
    assert_eq!(event.state, AlarmState::Alarm);
    assert_eq!(event.previous_state, Some(AlarmState::Ok));
    assert_eq!(
        event.kind,
        AlarmKind::Composite {
            alarm_rule: "ALARM(ServerCpuTooHigh) OR ALARM(TotalNetworkTrafficTooHigh)".to_owned()
        }
    );
    assert!(event.kind.metrics().is_empty());
    assert_eq!(event.kind.label(), "composite");
}

#[test]
fn given_two_metric_stats_and_no_expression_when_parsed_then_it_is_metric_math_without_expression()
{
    let mut value = metric_math_sample();
    let metrics = value["detail"]["configuration"]["metrics"]
        .as_array_mut()
        .expect("the sample has metrics");
    metrics.remove(0);

    let event = parse(value);

    assert_eq!(
        event.kind,
        AlarmKind::MetricMath {
            expression: None,
            metrics: event.kind.metrics().to_vec(),
        }
    );
    assert_eq!(event.kind.metrics().len(), 2);
}

#[test]
fn given_no_configuration_when_parsed_then_the_alarm_watches_no_metric() {
    let mut value = single_metric_sample();
    value["detail"]
        .as_object_mut()
        .expect("detail is an object")
        .remove("configuration");

    let event = parse(value);

    assert!(event.kind.metrics().is_empty(), "{:?}", event.kind);
}

#[test]
fn given_a_metric_without_dimensions_when_parsed_then_its_dimensions_are_empty() {
    let mut value = single_metric_sample();
    value["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"]
        .as_object_mut()
        .expect("metric is an object")
        .remove("dimensions");

    let event = parse(value);

    assert!(event.kind.metrics()[0].dimensions.is_empty());
}

#[test]
fn given_resources_without_an_alarm_arn_when_parsed_then_the_alarm_arn_is_none() {
    let mut value = single_metric_sample();
    value["resources"] = json!(["arn:aws:ec2:us-east-1:123456789012:instance/i-1"]);
    assert_eq!(parse(value.clone()).alarm_arn, None);

    value.as_object_mut().expect("object").remove("resources");
    assert_eq!(parse(value).alarm_arn, None);
}

#[test]
fn given_the_same_event_as_bytes_and_as_json_when_parsed_then_both_agree() {
    for sample in [
        single_metric_sample(),
        metric_math_sample(),
        anomaly_detection_sample(),
        composite_sample(),
    ] {
        let bytes = serde_json::to_vec(&sample).expect("serializable");
        let from_slice = AlarmEvent::from_slice(&bytes).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(from_slice, parse(sample));
    }
}

// ------------------------------------------------------------------ states

#[test]
fn given_each_alarm_state_when_parsed_then_the_state_is_read_exactly() {
    for (text, state) in [
        ("ALARM", AlarmState::Alarm),
        ("OK", AlarmState::Ok),
        ("INSUFFICIENT_DATA", AlarmState::InsufficientData),
    ] {
        let event = parse(ec2_status_check("e-1", text, "i-1"));
        assert_eq!(event.state, state, "{text}");
        assert_eq!(state.as_str(), text);
    }
}

#[test]
fn given_no_previous_state_when_parsed_then_the_previous_state_is_none() {
    let mut value = single_metric_sample();
    value["detail"]
        .as_object_mut()
        .expect("object")
        .remove("previousState");

    assert_eq!(parse(value).previous_state, None);
}

// ------------------------------------------------------------------ alarm tags

#[test]
fn given_alarm_tags_as_a_map_when_parsed_then_the_tags_are_read() {
    let value = with_tags(
        single_metric_sample(),
        json!({"autoheal:rule": "ec2-instance-healing", "team": "web"}),
    );

    let event = parse(value);

    assert_eq!(
        event.alarm_tags,
        dims(&[("autoheal:rule", "ec2-instance-healing"), ("team", "web")])
    );
}

#[test]
fn given_alarm_tags_as_a_list_of_key_value_pairs_when_parsed_then_the_tags_are_read() {
    let value = with_tags(
        single_metric_sample(),
        json!([
            {"Key": "autoheal:rule", "Value": "ec2-instance-healing"},
            {"Key": "team", "Value": "web"}
        ]),
    );

    let event = parse(value);

    assert_eq!(
        event.alarm_tags,
        dims(&[("autoheal:rule", "ec2-instance-healing"), ("team", "web")])
    );
}

#[test]
fn given_alarm_tags_as_a_list_with_lower_case_keys_when_parsed_then_the_tags_are_read() {
    let value = with_tags(
        single_metric_sample(),
        json!([{"key": "team", "value": "web"}]),
    );

    assert_eq!(parse(value).alarm_tags, dims(&[("team", "web")]));
}

#[test]
fn given_null_or_empty_alarm_tags_when_parsed_then_there_are_no_tags() {
    for tags in [json!(null), json!({}), json!([])] {
        let event = parse(with_tags(single_metric_sample(), tags.clone()));
        assert!(event.alarm_tags.is_empty(), "{tags}");
    }
}

#[test]
fn given_alarm_tags_of_the_wrong_shape_when_parsed_then_a_detail_error_names_alarm_tags() {
    let error = parse_err(with_tags(single_metric_sample(), json!("team=web")));

    match error {
        EventError::Detail { path, .. } => assert_eq!(path, "alarmTags"),
        other => panic!("expected a detail error, got {other:?}"),
    }
}

// ------------------------------------------------------------------ errors, never panics

#[test]
fn given_bytes_that_are_not_json_when_parsed_then_a_json_error_is_returned() {
    for bytes in [
        &b""[..],
        b"{",
        b"not json",
        b"{\"id\": }",
        &[0xff, 0xfe, 0x00],
    ] {
        match AlarmEvent::from_slice(bytes) {
            Err(EventError::Json(_)) => {}
            other => panic!("expected a JSON error for {bytes:?}, got {other:?}"),
        }
    }
}

#[test]
fn given_json_that_is_not_an_eventbridge_event_when_parsed_then_an_envelope_error_is_returned() {
    for value in [
        json!(null),
        json!([]),
        json!("event"),
        json!(42),
        json!({}),
        json!({"detail-type": "CloudWatch Alarm State Change", "source": "aws.cloudwatch"}),
    ] {
        match AlarmEvent::from_value(value.clone()) {
            Err(EventError::Envelope(_)) => {}
            other => panic!("expected an envelope error for {value}, got {other:?}"),
        }
    }
}

#[test]
fn given_a_wrong_detail_type_when_parsed_then_the_detail_type_is_named_in_the_error() {
    let mut value = single_metric_sample();
    value["detail-type"] = json!("EC2 Instance State-change Notification");

    let error = parse_err(value);

    match &error {
        EventError::DetailType(found) => {
            assert_eq!(found, "EC2 Instance State-change Notification");
        }
        other => panic!("expected a detail-type error, got {other:?}"),
    }
    assert!(
        error
            .to_string()
            .contains("EC2 Instance State-change Notification")
    );
}

#[test]
fn given_the_alarm_configuration_change_detail_type_when_parsed_then_it_is_rejected() {
    let mut value = single_metric_sample();
    value["detail-type"] = json!("CloudWatch Alarm Configuration Change");

    assert!(matches!(parse_err(value), EventError::DetailType(_)));
}

#[test]
fn given_a_wrong_source_when_parsed_then_the_source_is_named_in_the_error() {
    let mut value = single_metric_sample();
    value["source"] = json!("my.app");

    let error = parse_err(value);

    match &error {
        EventError::Source(found) => assert_eq!(found, "my.app"),
        other => panic!("expected a source error, got {other:?}"),
    }
    assert!(error.to_string().contains("my.app"));
}

#[test]
fn given_no_alarm_name_when_parsed_then_a_missing_field_error_names_alarm_name() {
    let mut value = single_metric_sample();
    value["detail"]
        .as_object_mut()
        .expect("object")
        .remove("alarmName");

    assert!(matches!(
        parse_err(value),
        EventError::MissingField("alarmName")
    ));
}

#[test]
fn given_a_blank_alarm_name_when_parsed_then_a_missing_field_error_names_alarm_name() {
    for name in ["", "   "] {
        let mut value = single_metric_sample();
        value["detail"]["alarmName"] = json!(name);
        assert!(
            matches!(parse_err(value), EventError::MissingField("alarmName")),
            "{name:?}"
        );
    }
}

#[test]
fn given_no_event_id_when_parsed_then_a_missing_id_error_is_returned() {
    let mut value = single_metric_sample();
    value.as_object_mut().expect("object").remove("id");

    assert!(matches!(parse_err(value), EventError::MissingId));
}

#[test]
fn given_an_empty_or_blank_or_null_event_id_when_parsed_then_a_missing_id_error_is_returned() {
    for id in [json!(""), json!("  "), json!(null)] {
        let mut value = single_metric_sample();
        value["id"] = id.clone();
        assert!(matches!(parse_err(value), EventError::MissingId), "id {id}");
    }
}

#[test]
fn given_no_state_when_parsed_then_a_missing_field_error_names_state() {
    let mut value = single_metric_sample();
    value["detail"]
        .as_object_mut()
        .expect("object")
        .remove("state");

    assert!(matches!(
        parse_err(value),
        EventError::MissingField("state")
    ));
}

#[test]
fn given_a_state_without_value_when_parsed_then_a_missing_field_error_names_state_value() {
    let mut value = single_metric_sample();
    value["detail"]["state"]
        .as_object_mut()
        .expect("object")
        .remove("value");

    assert!(matches!(
        parse_err(value),
        EventError::MissingField("state.value")
    ));
}

#[test]
fn given_an_unknown_state_value_when_parsed_then_the_value_is_named_in_the_error() {
    for state in ["BROKEN", "alarm", "", "Ok"] {
        let error = parse_err(ec2_status_check("e-1", state, "i-1"));
        match &error {
            EventError::State(found) => assert_eq!(found, state),
            other => panic!("expected a state error for {state:?}, got {other:?}"),
        }
    }
}

#[test]
fn given_an_unknown_previous_state_value_when_parsed_then_a_state_error_is_returned() {
    let mut value = single_metric_sample();
    value["detail"]["previousState"]["value"] = json!("MAYBE");

    assert!(matches!(parse_err(value), EventError::State(s) if s == "MAYBE"));
}

#[test]
fn given_a_state_value_of_the_wrong_type_when_parsed_then_a_detail_error_points_at_it() {
    let mut value = single_metric_sample();
    value["detail"]["state"]["value"] = json!(1);

    match parse_err(value) {
        EventError::Detail { path, message } => {
            assert_eq!(path, "state.value");
            assert!(message.contains("invalid type"), "{message}");
        }
        other => panic!("expected a detail error, got {other:?}"),
    }
}

#[test]
fn given_a_non_string_dimension_value_when_parsed_then_a_detail_error_points_at_the_dimension() {
    let mut value = single_metric_sample();
    value["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"]["dimensions"]["InstanceId"] =
        json!(17);

    match parse_err(value) {
        EventError::Detail { path, .. } => {
            assert!(
                path.starts_with("configuration.metrics[0].metricStat.metric.dimensions"),
                "{path}"
            );
        }
        other => panic!("expected a detail error, got {other:?}"),
    }
}

#[test]
fn given_a_detail_that_is_not_an_object_when_parsed_then_a_detail_error_is_returned() {
    for detail in [json!(null), json!("ALARM"), json!([1, 2])] {
        let mut value = single_metric_sample();
        value["detail"] = detail.clone();
        assert!(
            matches!(parse_err(value), EventError::Detail { .. }),
            "detail {detail}"
        );
    }
}

#[test]
fn given_no_detail_when_parsed_then_an_error_is_returned() {
    let mut value = single_metric_sample();
    value.as_object_mut().expect("object").remove("detail");

    assert!(AlarmEvent::from_value(value).is_err());
}

// ------------------------------------------------------------------ CloudWatch's limits

#[test]
fn given_an_alarm_name_of_255_characters_when_parsed_then_it_is_read_whole() {
    let name = format!("{}🔥", "é".repeat(254));
    let mut value = single_metric_sample();
    value["detail"]["alarmName"] = json!(name);

    assert_eq!(parse(value).alarm_name, name);
}

#[test]
fn given_an_alarm_name_of_256_characters_when_parsed_then_it_is_too_long() {
    let mut value = single_metric_sample();
    value["detail"]["alarmName"] = json!("é".repeat(256));

    match parse_err(value) {
        EventError::TooLong {
            field,
            length,
            limit,
        } => assert_eq!((field, length, limit), ("alarmName", 256, 255)),
        other => panic!("expected TooLong, got {other:?}"),
    }
}

#[test]
fn given_an_alarm_name_with_a_control_character_when_parsed_then_it_is_refused() {
    for name in ["web\u{0}01", "web\n01", "web\u{1b}[2J", "web\u{7f}"] {
        let mut value = single_metric_sample();
        value["detail"]["alarmName"] = json!(name);

        assert!(
            matches!(
                parse_err(value),
                EventError::ControlCharacter { field: "alarmName" }
            ),
            "{name:?}"
        );
    }
}

#[test]
fn given_an_event_over_256_kib_when_parsed_as_bytes_or_json_then_it_is_too_large() {
    let mut value = single_metric_sample();
    value["detail"]["state"]["reason"] = json!("x".repeat(256 * 1024));
    let bytes = serde_json::to_vec(&value).expect("serializable");

    assert!(matches!(
        AlarmEvent::from_slice(&bytes),
        Err(EventError::TooLarge { limit: 262_144 })
    ));
    assert!(matches!(
        parse_err(value),
        EventError::TooLarge { limit: 262_144 }
    ));
}

#[test]
fn given_a_state_reason_over_1023_characters_when_parsed_then_it_is_cut_to_1023() {
    let mut value = single_metric_sample();
    value["detail"]["state"]["reason"] = json!("ü".repeat(5000));

    let reason = parse(value).state_reason.expect("a reason");
    assert_eq!(reason.chars().count(), 1023);
    assert!(reason.chars().all(|c| c == 'ü'));
}

#[test]
fn given_timestamps_before_1970_and_far_ahead_when_parsed_then_they_are_kept() {
    for time in ["1969-07-20T20:17:40Z", "9999-12-31T23:59:59Z"] {
        let mut value = single_metric_sample();
        value["time"] = json!(time);

        let parsed = parse(value).time.expect("a time");
        assert_eq!(
            parsed,
            time.parse::<chrono::DateTime<Utc>>().expect("a time")
        );
    }
    let mut unparseable = single_metric_sample();
    unparseable["time"] = json!("yesterday");
    assert!(matches!(parse_err(unparseable), EventError::Envelope(_)));
}

// ------------------------------------------------------------------ properties

/// Arbitrary JSON, biased towards the names and values alarm events use.
fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
        prop::sample::select(vec![
            "ALARM",
            "OK",
            "INSUFFICIENT_DATA",
            "aws.cloudwatch",
            "CloudWatch Alarm State Change",
            "ANOMALY_DETECTION_BAND(m1, 2)",
            "2019-10-02T17:04:40Z",
            "",
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(arb_key(), inner, 0..5)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

fn arb_key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "id",
            "detail-type",
            "source",
            "time",
            "region",
            "resources",
            "detail",
            "alarmName",
            "state",
            "previousState",
            "value",
            "reason",
            "configuration",
            "metrics",
            "metricStat",
            "metric",
            "namespace",
            "name",
            "dimensions",
            "expression",
            "alarmRule",
            "alarmTags",
            "Key",
            "Value",
        ])
        .prop_map(str::to_owned),
        "[a-zA-Z-]{0,8}",
    ]
}

/// One change to an event: where (a walk of child indexes) and what.
#[derive(Debug, Clone)]
enum Mutation {
    Replace(Vec<usize>, Value),
    Remove(Vec<usize>),
    Insert(Vec<usize>, String, Value),
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    let path = prop::collection::vec(any::<usize>(), 0..6);
    prop_oneof![
        (path.clone(), arb_json()).prop_map(|(p, v)| Mutation::Replace(p, v)),
        path.clone().prop_map(Mutation::Remove),
        (path, arb_key(), arb_json()).prop_map(|(p, k, v)| Mutation::Insert(p, k, v)),
    ]
}

/// Follows `path` (each step picks a child by index modulo the number of children) as far
/// as it goes, and applies `at` to the parent and the chosen child's key.
fn walk(value: &mut Value, path: &[usize], at: &mut dyn FnMut(&mut Value, Option<ChildKey>)) {
    let child = match (path.first(), &*value) {
        (Some(step), Value::Object(map)) if !map.is_empty() => {
            map.keys().nth(step % map.len()).cloned().map(ChildKey::Key)
        }
        (Some(step), Value::Array(items)) if !items.is_empty() => {
            Some(ChildKey::Index(step % items.len()))
        }
        _ => None,
    };
    match child {
        Some(key) if path.len() > 1 => {
            let next = match &key {
                ChildKey::Key(k) => value.get_mut(k.as_str()),
                ChildKey::Index(i) => value.get_mut(*i),
            };
            match next {
                Some(next) if matches!(next, Value::Object(_) | Value::Array(_)) => {
                    walk(next, &path[1..], at);
                }
                _ => at(value, Some(key)),
            }
        }
        key => at(value, key),
    }
}

#[derive(Debug, Clone)]
enum ChildKey {
    Key(String),
    Index(usize),
}

fn apply(value: &mut Value, mutation: &Mutation) {
    match mutation {
        Mutation::Replace(path, new) => walk(value, path, &mut |parent, key| match key {
            Some(ChildKey::Key(k)) => parent[k.as_str()] = new.clone(),
            Some(ChildKey::Index(i)) => parent[i] = new.clone(),
            None => *parent = new.clone(),
        }),
        Mutation::Remove(path) => walk(value, path, &mut |parent, key| match (parent, key) {
            (Value::Object(map), Some(ChildKey::Key(k))) => {
                map.remove(&k);
            }
            (Value::Array(items), Some(ChildKey::Index(i))) => {
                items.remove(i);
            }
            _ => {}
        }),
        Mutation::Insert(path, name, new) => walk(value, path, &mut |parent, _| {
            if let Value::Object(map) = parent {
                map.insert(name.clone(), new.clone());
            }
        }),
    }
}

fn arb_sample() -> impl Strategy<Value = Value> {
    prop::sample::select(vec![0usize, 1, 2, 3]).prop_map(|i| match i {
        0 => single_metric_sample(),
        1 => metric_math_sample(),
        2 => anomaly_detection_sample(),
        _ => composite_sample(),
    })
}

/// What every successfully parsed event guarantees.
fn check_invariants(event: &AlarmEvent) {
    assert!(!event.id.trim().is_empty(), "parsed an event without id");
    assert!(
        !event.alarm_name.trim().is_empty(),
        "parsed an event without alarm name"
    );
    if let AlarmKind::Metric { .. } = event.kind {
        assert_eq!(event.kind.metrics().len(), 1);
    }
    if let AlarmKind::Composite { .. } = event.kind {
        assert!(event.kind.metrics().is_empty());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn given_arbitrary_bytes_when_parsed_then_it_never_panics(
        bytes in prop::collection::vec(any::<u8>(), 0..512)
    ) {
        if let Ok(event) = AlarmEvent::from_slice(&bytes) {
            check_invariants(&event);
        }
    }

    #[test]
    fn given_json_ish_token_soup_when_parsed_then_it_never_panics(
        tokens in prop::collection::vec(
            prop::sample::select(vec![
                "{", "}", "[", "]", ":", ",", "\"", "null", "true", "-1", "1e999", "0.5",
                "\"id\"", "\"detail\"", "\"detail-type\"", "\"source\"", "\"alarmName\"",
                "\"state\"", "\"value\"", "\"ALARM\"", "\"aws.cloudwatch\"",
                "\"CloudWatch Alarm State Change\"", "\"alarmTags\"", "\"\\u0000\"", "\\",
            ]),
            0..64,
        )
    ) {
        let text = tokens.concat();
        if let Ok(event) = AlarmEvent::from_slice(text.as_bytes()) {
            check_invariants(&event);
        }
    }

    #[test]
    fn given_arbitrary_json_when_parsed_then_it_never_panics(value in arb_json()) {
        if let Ok(event) = AlarmEvent::from_value(value) {
            check_invariants(&event);
        }
    }

    #[test]
    fn given_a_sample_event_with_arbitrary_mutations_when_parsed_then_it_never_panics(
        sample in arb_sample(),
        mutations in prop::collection::vec(arb_mutation(), 1..6),
    ) {
        let mut value = sample;
        for mutation in &mutations {
            apply(&mut value, mutation);
        }
        let bytes = serde_json::to_vec(&value).expect("a Value always serializes");
        let from_slice = AlarmEvent::from_slice(&bytes);
        let from_value = AlarmEvent::from_value(value);
        if let Ok(event) = &from_value {
            check_invariants(event);
        }
        // Bytes and value must reach the same verdict.
        prop_assert_eq!(from_slice.is_ok(), from_value.is_ok());
    }

    #[test]
    fn given_a_sample_event_with_truncated_bytes_when_parsed_then_it_never_panics(
        sample in arb_sample(),
        cut in any::<prop::sample::Index>(),
    ) {
        let bytes = serde_json::to_vec(&sample).expect("a Value always serializes");
        let cut = cut.index(bytes.len());
        prop_assert!(AlarmEvent::from_slice(&bytes[..cut]).is_err());
    }
}

// ------------------------------------------------------------------ structured properties

/// One metric as the generator writes it.
#[derive(Debug, Clone)]
struct GenMetric {
    namespace: String,
    name: String,
    dimensions: BTreeMap<String, String>,
}

impl GenMetric {
    fn query(&self, id: &str, return_data: bool) -> Value {
        json!({
            "id": id,
            "metricStat": {
                "metric": {
                    "namespace": self.namespace,
                    "name": self.name,
                    "dimensions": self.dimensions,
                },
                "period": 60,
                "stat": "Average"
            },
            "returnData": return_data
        })
    }

    fn parsed(&self) -> MetricRef {
        MetricRef {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            dimensions: self.dimensions.clone(),
        }
    }
}

/// What kind of alarm the generator writes.
#[derive(Debug, Clone)]
enum GenKind {
    Metric(GenMetric),
    MetricMath {
        expression: String,
        inputs: Vec<GenMetric>,
    },
    Composite {
        alarm_rule: String,
    },
}

/// A valid CloudWatch Alarm State Change event, as its parts.
#[derive(Debug, Clone)]
struct GenAlarm {
    id: String,
    account: String,
    region: String,
    time: chrono::DateTime<Utc>,
    name: String,
    state: AlarmState,
    previous: Option<AlarmState>,
    reason: String,
    kind: GenKind,
    tags: BTreeMap<String, String>,
    /// `alarmTags` written as a list of `{Key, Value}` pairs instead of a map.
    tags_as_list: bool,
}

impl GenAlarm {
    fn to_event(&self) -> Value {
        let configuration = match &self.kind {
            GenKind::Metric(metric) => json!({"metrics": [metric.query("m1", true)]}),
            GenKind::MetricMath { expression, inputs } => {
                let mut queries = vec![json!({
                    "id": "e1", "expression": expression, "label": "e1", "returnData": true
                })];
                for (index, input) in inputs.iter().enumerate() {
                    queries.push(input.query(&format!("m{}", index + 1), false));
                }
                json!({"metrics": queries})
            }
            GenKind::Composite { alarm_rule } => json!({"alarmRule": alarm_rule}),
        };
        let tags = if self.tags_as_list {
            Value::Array(
                self.tags
                    .iter()
                    .map(|(k, v)| json!({"Key": k, "Value": v}))
                    .collect(),
            )
        } else {
            json!(self.tags)
        };
        let mut detail = json!({
            "alarmName": self.name,
            "state": {"value": self.state.as_str(), "reason": self.reason,
                      "timestamp": "2024-05-01T12:00:00.000+0000"},
            "configuration": configuration,
            "alarmTags": tags,
        });
        if let Some(previous) = self.previous {
            detail["previousState"] = json!({"value": previous.as_str(), "reason": "before"});
        }
        json!({
            "version": "0",
            "id": self.id,
            "detail-type": "CloudWatch Alarm State Change",
            "source": "aws.cloudwatch",
            "account": self.account,
            "time": self.time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "region": self.region,
            "resources": [self.alarm_arn()],
            "detail": detail,
        })
    }

    fn alarm_arn(&self) -> String {
        format!(
            "arn:aws:cloudwatch:{}:{}:alarm:{}",
            self.region, self.account, self.name
        )
    }

    fn expected_kind(&self) -> AlarmKind {
        match &self.kind {
            GenKind::Metric(metric) => AlarmKind::Metric {
                metric: metric.parsed(),
            },
            GenKind::MetricMath { expression, inputs } => AlarmKind::MetricMath {
                expression: Some(expression.clone()),
                metrics: inputs.iter().map(GenMetric::parsed).collect(),
            },
            GenKind::Composite { alarm_rule } => AlarmKind::Composite {
                alarm_rule: alarm_rule.clone(),
            },
        }
    }
}

/// An alarm name as CloudWatch allows it: 1 to 255 characters, any but control characters,
/// not only whitespace.
fn arb_alarm_name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9 _./#:()-]{1,255}",
        "[^\\p{Cc}]{1,255}",
        Just("é".repeat(254) + "🔥"),
    ]
    .prop_filter("not only whitespace", |name| !name.trim().is_empty())
}

fn arb_state() -> impl Strategy<Value = AlarmState> {
    prop::sample::select(vec![
        AlarmState::Alarm,
        AlarmState::Ok,
        AlarmState::InsufficientData,
    ])
}

fn arb_dimensions() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map("[A-Za-z][A-Za-z0-9]{0,15}", "[^\\p{Cc}]{0,40}", 0..4)
}

fn arb_metric() -> impl Strategy<Value = GenMetric> {
    (
        prop_oneof![
            prop::sample::select(vec!["AWS/EC2", "AWS/RDS", "AWS/Lambda", "CWAgent"])
                .prop_map(str::to_owned),
            "[A-Za-z/]{1,20}",
        ],
        "[A-Za-z_]{1,24}",
        arb_dimensions(),
    )
        .prop_map(|(namespace, name, dimensions)| GenMetric {
            namespace,
            name,
            dimensions,
        })
}

fn arb_kind() -> impl Strategy<Value = GenKind> {
    prop_oneof![
        arb_metric().prop_map(GenKind::Metric),
        (
            prop::sample::select(vec!["MAX(METRICS())", "m1 + m2", "SUM([m1, m2]) / 2", "m1"]),
            prop::collection::vec(arb_metric(), 1..4),
        )
            .prop_map(|(expression, inputs)| GenKind::MetricMath {
                expression: expression.to_owned(),
                inputs,
            }),
        "[^\\p{Cc}]{0,120}".prop_map(|alarm_rule| GenKind::Composite { alarm_rule }),
    ]
}

fn arb_tags() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map("[^\\p{Cc}]{1,128}", "[^\\p{Cc}]{0,64}", 0..5)
}

fn arb_alarm() -> impl Strategy<Value = GenAlarm> {
    (
        (
            "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
            "[0-9]{12}",
            prop::sample::select(vec![
                "us-east-1",
                "eu-west-3",
                "ap-southeast-2",
                "sa-east-1",
            ]),
            // 1901 to 9999: before 1970 and far ahead are valid too.
            -2_147_483_648i64..253_402_300_799,
        ),
        arb_alarm_name(),
        arb_state(),
        prop::option::of(arb_state()),
        "[^\\p{Cc}]{0,200}",
        arb_kind(),
        arb_tags(),
        any::<bool>(),
    )
        .prop_map(
            |((id, account, region, seconds), name, state, previous, reason, kind, tags, list)| {
                GenAlarm {
                    id,
                    account,
                    region: region.to_owned(),
                    time: Utc.timestamp_opt(seconds, 0).single().expect("in range"),
                    name,
                    state,
                    previous,
                    reason,
                    kind,
                    tags,
                    tags_as_list: list,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn given_a_valid_alarm_event_when_parsed_then_it_always_parses_and_round_trips_its_fields(
        alarm in arb_alarm()
    ) {
        let value = alarm.to_event();
        let bytes = serde_json::to_vec(&value).expect("a Value always serializes");
        let result = AlarmEvent::from_value(value);
        prop_assert!(result.is_ok(), "{:?} refused: {:?}", alarm, result);
        let event = result.expect("checked above");
        check_invariants(&event);

        prop_assert_eq!(&event.id, &alarm.id);
        prop_assert_eq!(&event.alarm_name, &alarm.name);
        prop_assert_eq!(event.state, alarm.state);
        prop_assert_eq!(event.previous_state, alarm.previous);
        prop_assert_eq!(event.state_reason.as_deref(), Some(alarm.reason.as_str()));
        prop_assert_eq!(event.kind.clone(), alarm.expected_kind());
        prop_assert_eq!(&event.alarm_tags, &alarm.tags);
        prop_assert_eq!(event.time, Some(alarm.time));
        prop_assert_eq!(event.account.as_deref(), Some(alarm.account.as_str()));
        prop_assert_eq!(event.region.as_deref(), Some(alarm.region.as_str()));
        prop_assert_eq!(event.alarm_arn.clone(), Some(alarm.alarm_arn()));
        prop_assert_eq!(event.suppressed_by.as_deref(), None);
        // The bytes on the wire read the same.
        prop_assert_eq!(AlarmEvent::from_slice(&bytes).ok(), Some(event));
    }
}

// ------------------------------------------------------------------ structured selection

/// Where a generated dimension value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pool {
    /// A value of the format the dimension's service issues.
    WellFormed,
    /// A value no service issues (injections, other services' ids, traversals).
    Hostile,
    /// Anything at all.
    Any,
}

/// A value of the format AWS issues for the dimension `name`.
fn well_formed_value(name: &str) -> BoxedStrategy<String> {
    match name {
        "InstanceId" => "i-([0-9a-f]{8}|[0-9a-f]{17})".boxed(),
        "VolumeId" => "vol-([0-9a-f]{8}|[0-9a-f]{17})".boxed(),
        "NatGatewayId" => "nat-([0-9a-f]{8}|[0-9a-f]{17})".boxed(),
        "AutoScalingGroupName" => "[a-zA-Z0-9][a-zA-Z0-9 ._-]{0,60}[a-zA-Z0-9]".boxed(),
        "ClusterName" | "ServiceName" => "[A-Za-z0-9_-]{1,64}".boxed(),
        "FunctionName" => "[A-Za-z0-9_-]{1,64}".boxed(),
        "DBInstanceIdentifier" => "[a-z][a-z0-9]{0,10}(-[a-z0-9]{1,10}){0,3}".boxed(),
        "CacheClusterId" => "[a-z][a-z0-9]{0,6}(-[a-z0-9]{1,6}){0,3}".boxed(),
        "Service" => "[A-Za-z0-9_-][A-Za-z0-9_.-]{0,40}".boxed(),
        "TargetGroup" => "targetgroup/[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?/[0-9a-f]{16}".boxed(),
        "HealthCheckId" => "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}".boxed(),
        _ => "[a-z]{1,10}".boxed(),
    }
}

/// Values no AWS service issues as a resource id of any kind the shipped rules read.
fn hostile_value() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "i-123; rm -rf /",
        "$(reboot)",
        "../../etc/passwd",
        "..",
        "`id`",
        "a\u{0}b",
        "x\ny",
        "|| true",
        "*",
    ])
    .prop_map(str::to_owned)
}

fn dimension_value(name: String, pool: Pool) -> BoxedStrategy<(String, String)> {
    let value = match pool {
        Pool::WellFormed => well_formed_value(&name),
        // An Auto Scaling group name may hold almost anything: only control characters and
        // length make one impossible.
        Pool::Hostile if name == "AutoScalingGroupName" => prop::sample::select(vec![
            "web\u{7}asg".to_owned(),
            "a\u{0}b".to_owned(),
            "x\ny".to_owned(),
            "a".repeat(256),
        ])
        .boxed(),
        Pool::Hostile => hostile_value().boxed(),
        Pool::Any => "[^\\p{Cc}]{0,30}".boxed(),
    };
    value.prop_map(move |value| (name.clone(), value)).boxed()
}

/// What an alarm needs to select one shipped rule.
#[derive(Debug, Clone)]
struct Target {
    rule: String,
    namespace: Option<String>,
    metrics: Vec<String>,
    prefix: Option<String>,
    /// The trigger's dimensions and the one the resource is read from.
    dimensions: Vec<String>,
}

/// An alarm aimed at one shipped rule (by its metric, an alarm-name prefix or its tag), its
/// dimensions drawn from one pool; or an alarm aimed at no rule.
fn arb_alarm_for_shipped_rules() -> impl Strategy<Value = (GenAlarm, Option<String>, Pool)> {
    let rules = RuleSet::shipped().expect("the shipped rules parse");
    let targets: Vec<Target> = rules
        .rules()
        .iter()
        .map(|rule| {
            let mut dimensions = rule.trigger.dimensions.clone();
            if let Some(dimension) = &rule.resource.dimension
                && !dimensions.contains(dimension)
            {
                dimensions.push(dimension.clone());
            }
            Target {
                rule: rule.name.clone(),
                namespace: rule.trigger.namespace.clone(),
                metrics: rule.trigger.metrics.clone(),
                prefix: rule.trigger.alarm_name_prefixes.first().cloned(),
                dimensions,
            }
        })
        .collect();
    let pool = prop::sample::select(vec![Pool::WellFormed, Pool::Hostile, Pool::Any]);
    (
        arb_alarm(),
        prop::option::of(prop::sample::select(targets)),
        pool,
        0usize..3,
        any::<prop::sample::Index>(),
    )
        .prop_flat_map(|(alarm, target, pool, how, metric_pick)| {
            let Some(Target {
                rule: name,
                namespace,
                metrics,
                prefix,
                dimensions,
            }) = target
            else {
                return Just((alarm, None, pool)).boxed();
            };
            let values: Vec<BoxedStrategy<(String, String)>> = dimensions
                .into_iter()
                .map(|dimension| dimension_value(dimension, pool))
                .collect();
            values
                .prop_map(move |values| {
                    let mut alarm = alarm.clone();
                    let metric = GenMetric {
                        namespace: namespace.clone().unwrap_or_else(|| "Custom/App".to_owned()),
                        name: if metrics.is_empty() {
                            "Failures".to_owned()
                        } else {
                            metrics[metric_pick.index(metrics.len())].clone()
                        },
                        dimensions: values.into_iter().collect(),
                    };
                    alarm.kind = GenKind::Metric(metric);
                    alarm.tags.remove(autoheal_core::policy::resolve::RULE_TAG);
                    match (how, &prefix) {
                        (1, Some(prefix)) => alarm.name = format!("{prefix}-{}", alarm.id),
                        (2, _) => {
                            alarm.tags.insert(
                                autoheal_core::policy::resolve::RULE_TAG.to_owned(),
                                name.clone(),
                            );
                        }
                        _ if namespace.is_none() => {
                            alarm.name =
                                format!("{}-{}", prefix.clone().unwrap_or_default(), alarm.id)
                        }
                        _ => {}
                    }
                    (alarm, Some(name.clone()), pool)
                })
                .boxed()
        })
}

/// The id formats of the reliability issue, written out again from the specification so
/// that the check does not reuse the implementation.
fn has_documented_format(kind: ResourceKind, id: &str, event: &AlarmEvent) -> bool {
    let hex = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let prefixed = |prefix: &str| {
        id.strip_prefix(prefix)
            .is_some_and(|rest| (rest.len() == 8 || rest.len() == 17) && hex(rest))
    };
    let word = |s: &str, max: usize| {
        !s.is_empty()
            && s.len() <= max
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    let db = |max: usize| {
        !id.is_empty()
            && id.len() <= max
            && id.as_bytes()[0].is_ascii_alphabetic()
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !id.contains("--")
            && !id.ends_with('-')
    };
    match kind {
        ResourceKind::Ec2Instance => prefixed("i-"),
        ResourceKind::EbsVolume => prefixed("vol-"),
        ResourceKind::NatGateway => prefixed("nat-"),
        ResourceKind::AutoScalingGroup => {
            (1..=255).contains(&id.chars().count())
                && !id.chars().any(char::is_control)
                && id.trim() == id
        }
        ResourceKind::EcsService => id
            .split_once('/')
            .is_some_and(|(cluster, service)| word(cluster, 255) && word(service, 255)),
        ResourceKind::LambdaFunction => word(id, 64),
        ResourceKind::RdsInstance => db(63),
        ResourceKind::ElastiCacheCluster => db(50),
        ResourceKind::Route53HealthCheck => {
            id.len() == 36
                && id.char_indices().all(|(at, c)| match at {
                    8 | 13 | 18 | 23 => c == '-',
                    _ => c.is_ascii_digit() || ('a'..='f').contains(&c),
                })
        }
        ResourceKind::ApplicationService => {
            word(&id.replace('.', "_"), 128) && id != "." && id != ".."
        }
        ResourceKind::TargetGroup => {
            let own = format!(
                "arn:aws:elasticloadbalancing:{}:{}:targetgroup/",
                event.region.as_deref().unwrap_or_default(),
                event.account.as_deref().unwrap_or_default()
            );
            id.strip_prefix(&own)
                .and_then(|rest| rest.split_once('/'))
                .is_some_and(|(name, suffix)| {
                    word(name, 32) && !name.contains('_') && suffix.len() == 16 && hex(suffix)
                })
        }
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn given_an_alarm_for_the_shipped_rules_when_every_layer_selects_then_one_rule_or_a_named_skip(
        (alarm, aimed_at, pool) in arb_alarm_for_shipped_rules()
    ) {
        let rules = RuleSet::shipped().expect("the shipped rules parse");
        let event = AlarmEvent::from_value(alarm.to_event());
        prop_assert!(event.is_ok(), "{:?}", event);
        let event = event.expect("checked above");

        let (owner, global) = select_any(&rules, &event);
        let mut matched = Vec::new();
        for layer in Layer::ALL {
            match select(&rules, &event, layer).into_match() {
                Ok((rule, resource_id)) => {
                    prop_assert_eq!(rule.layer, layer);
                    prop_assert!(
                        has_documented_format(rule.action.resource_kind(), &resource_id, &event),
                        "{} accepted {:?}", rule.name, resource_id
                    );
                    matched.push((rule.name.clone(), resource_id));
                }
                Err(not_selected) => {
                    prop_assert!(!not_selected.detail.is_empty());
                    if let Some(rule) = not_selected.rule {
                        prop_assert_eq!(Some(rule.layer) == Some(layer), not_selected.reason != autoheal_core::SkipReason::OtherLayer);
                    }
                }
            }
        }
        // One alarm, one rule, one layer.
        prop_assert!(matched.len() <= 1, "{:?}", matched);
        if let Some((rule, _)) = matched.first() {
            prop_assert_eq!(owner, rules.get(rule).map(|r| r.layer));
        }
        // An alarm aimed at a rule by its tag, with ids of the service's own format, is healed
        // by that rule; one with hostile ids is refused by name.
        let by_tag = alarm.tags.get(autoheal_core::policy::resolve::RULE_TAG);
        if let (Some(target), Some(tagged)) = (&aimed_at, by_tag) {
            prop_assert_eq!(target, tagged);
            let rule = rules.get(target).expect("a shipped rule");
            match (pool, &global) {
                (Pool::WellFormed, Selection::Matched { rule: selected, .. }) => {
                    prop_assert_eq!(&selected.name, target);
                }
                (Pool::Hostile, Selection::Unresolved { rule: selected, reason, .. }) => {
                    prop_assert_eq!(&selected.name, target);
                    prop_assert_eq!(*reason, autoheal_core::SkipReason::InvalidResourceId);
                }
                (Pool::Any, _) => {}
                (pool, other) => prop_assert!(false, "{} with {:?} ids: {:?}", rule.name, pool, other),
            }
        }
    }
}

/// A follow-up carries the alarm within the schedule's 8 KB: a composite alarm whose rule and
/// reason are 10 KB and whose tags are many is shortened, keeps autoheal's own tags, and
/// still reads back as the same check.
#[test]
fn given_a_huge_composite_alarm_when_followed_up_then_the_payload_fits_the_schedule() {
    use autoheal_core::FollowUp;
    use autoheal_core::policy::followup::MAX_PAYLOAD_BYTES;
    let mut sample = composite_sample();
    let clause = "ALARM(\"arn:aws:cloudwatch:us-east-1:123456789012:alarm:child\") OR ";
    sample["detail"]["configuration"]["alarmRule"] = json!(clause.repeat(10_240 / clause.len()));
    sample["detail"]["state"]["reason"] = json!("é".repeat(1_000));
    let mut tags: serde_json::Map<String, Value> = (0..40)
        .map(|n| (format!("team-tag-{n}"), json!("x".repeat(200))))
        .collect();
    tags.insert("autoheal:rule".to_owned(), json!("composite-healing"));
    sample["detail"]["alarmTags"] = Value::Object(tags);
    let event = parse(sample);
    assert!(serde_json::to_string(&event).expect("json").len() > 2 * MAX_PAYLOAD_BYTES);

    let follow_up = FollowUp::new(
        Layer::Infrastructure,
        "composite-healing".to_owned(),
        "i-00000000000000001".to_owned(),
        "incident-1".to_owned(),
        3,
        &event,
    );

    assert!(
        follow_up.payload_bytes() <= MAX_PAYLOAD_BYTES,
        "{}",
        follow_up.payload_bytes()
    );
    let read = FollowUp::from_payload(&follow_up.to_payload())
        .expect("a valid follow-up")
        .expect("a follow-up");
    assert_eq!(read.event_id(), "incident-1#check-3");
    assert_eq!(read.alarm.alarm_name, event.alarm_name);
    assert_eq!(
        read.alarm
            .alarm_tags
            .get("autoheal:rule")
            .map(String::as_str),
        Some("composite-healing")
    );
    let reason = read.alarm.state_reason.expect("a reason");
    assert!(
        reason.starts_with("éé") && reason.ends_with('…'),
        "{reason}"
    );
}

// ------------------------------------------------------------------ the two readings

/// Reads `value` both ways: the reading in place gives exactly the event the reporting
/// reading gives, or refuses exactly what it refuses; `from_value` gives the reporting
/// reading's result, error message included. Returns whether the reading in place took it.
fn readings_agree(value: &Value, what: &str) -> bool {
    let in_place = AlarmEvent::read_in_place(value);
    let reporting = AlarmEvent::from_value_reporting(value.clone());
    assert_eq!(
        in_place.as_ref(),
        reporting.as_ref().ok(),
        "{what}: the reading in place gives {in_place:?}, the reporting one {reporting:?}"
    );
    match (AlarmEvent::from_value(value.clone()), &reporting) {
        (Ok(event), Ok(expected)) => assert_eq!(&event, expected, "{what}"),
        (Err(error), Err(expected)) => {
            assert_eq!(error.to_string(), expected.to_string(), "{what}");
            assert_eq!(format!("{error:?}"), format!("{expected:?}"), "{what}");
        }
        (found, expected) => panic!("{what}: from_value gives {found:?}, expected {expected:?}"),
    }
    bytes_agree(&serde_json::to_vec(value).unwrap(), what);
    in_place.is_some()
}

/// `from_slice` gives what the reporting reading of the JSON value in `bytes` gives, error
/// message included.
fn bytes_agree(bytes: &[u8], what: &str) {
    let expected = if bytes.len() > 262_144 {
        Err(EventError::TooLarge { limit: 262_144 })
    } else {
        serde_json::from_slice::<Value>(bytes)
            .map_err(EventError::Json)
            .and_then(AlarmEvent::from_value_reporting)
    };
    match (AlarmEvent::from_slice(bytes), &expected) {
        (Ok(event), Ok(expected)) => assert_eq!(&event, expected, "{what}"),
        (Err(error), Err(expected)) => {
            assert_eq!(error.to_string(), expected.to_string(), "{what}");
        }
        (found, expected) => panic!("{what}: from_slice gives {found:?}, expected {expected:?}"),
    }
}

/// The `*.json` files directly in `dir` (relative to the repository), with their bytes.
fn corpus_files(dir: &str) -> Vec<(String, Vec<u8>)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(root.join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (
                format!("{dir}/{}", path.file_name().unwrap().to_string_lossy()),
                bytes,
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn given_every_sample_event_when_read_in_place_then_it_is_taken_and_reads_as_the_reporting_reading()
{
    let samples: Vec<_> = corpus_files("events")
        .into_iter()
        .chain(corpus_files("events/aws-samples"))
        .collect();
    assert!(samples.len() >= 36, "{} sample events", samples.len());
    for (name, bytes) in samples {
        let value: Value = serde_json::from_slice(&bytes).expect("a sample event is JSON");
        assert!(readings_agree(&value, &name), "{name} is not read in place");
        bytes_agree(&bytes, &name);
    }
}

#[test]
fn given_the_hostile_corpus_when_read_both_ways_then_both_readings_agree_on_every_payload() {
    let (mut taken, mut refused) = (0, 0);
    for (name, bytes) in corpus_files("tests/hostile/events") {
        bytes_agree(&bytes, &name);
        let Ok(value) = serde_json::from_slice::<Value>(&bytes) else {
            continue;
        };
        if readings_agree(&value, &name) {
            taken += 1;
        } else {
            refused += 1;
        }
    }
    // The corpus holds both: events any layer reads, and payloads refused before any rule.
    assert!(
        taken >= 20 && refused >= 20,
        "{taken} taken, {refused} refused"
    );
}

#[test]
fn given_shapes_serde_also_accepts_when_read_both_ways_then_both_readings_agree() {
    let variants: Vec<(&str, Value)> = vec![
        (
            "tags as a list",
            with_tags(
                single_metric_sample(),
                json!([{"Key": "a", "Value": "1"}, {"key": "b", "value": "2"}]),
            ),
        ),
        (
            "tags as pairs in arrays",
            with_tags(single_metric_sample(), json!([["a", "1"]])),
        ),
        (
            "tags with both key spellings",
            with_tags(
                single_metric_sample(),
                json!([{"Key": "a", "key": "b", "Value": "1"}]),
            ),
        ),
        (
            "tags with a number",
            with_tags(single_metric_sample(), json!({"a": 1})),
        ),
        ("a muted alarm", {
            let mut value = single_metric_sample();
            value["detail"]["muteDetail"] = json!({"mutedByArn": "arn:aws:cloudwatch:us-east-1:123456789012:alarm-mute-rule:night"});
            value
        }),
        ("a mute without its rule", {
            let mut value = single_metric_sample();
            value["detail"]["muteDetail"] = json!(["night"]);
            value
        }),
        ("suppressed actions", {
            let mut value = composite_sample();
            value["detail"]["state"]["actionsSuppressedBy"] = json!("WaitPeriod");
            value
        }),
        ("a state written as an array", {
            let mut value = single_metric_sample();
            value["detail"]["state"] = json!(["ALARM", "reason", null]);
            value
        }),
        ("a state array too long", {
            let mut value = single_metric_sample();
            value["detail"]["state"] = json!(["ALARM", "reason", null, 4]);
            value
        }),
        (
            "an envelope written as an array",
            json!([
                "0", "e-1", "CloudWatch Alarm State Change", "aws.cloudwatch", null, null, null, null,
                {"alarmName": "a", "state": {"value": "OK"}}
            ]),
        ),
        ("a previous state with a number for reason", {
            let mut value = single_metric_sample();
            value["detail"]["previousState"]["reason"] = json!(3);
            value
        }),
        ("a version that is a number", {
            let mut value = single_metric_sample();
            value["version"] = json!(0);
            value
        }),
        ("null metrics", {
            let mut value = single_metric_sample();
            value["detail"]["configuration"]["metrics"] = json!(null);
            value
        }),
        ("a null metric", {
            let mut value = single_metric_sample();
            value["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"] = json!(null);
            value
        }),
        ("a reason over 1,023 characters", {
            let mut value = single_metric_sample();
            value["detail"]["state"]["reason"] = json!("ü".repeat(5000));
            value
        }),
    ];
    for (what, value) in &variants {
        readings_agree(value, what);
    }
}

#[test]
fn given_events_near_the_size_limit_when_read_both_ways_then_both_count_the_bytes_serde_json_writes()
 {
    // The size is bounded from the tree and counted only near the limit: either way, an event
    // is refused exactly when its JSON encoding is over 256 KiB.
    let base = serde_json::to_vec(&single_metric_sample()).unwrap().len() + 2;
    let mut events = Vec::new();
    for reason_bytes in [
        40_000,
        50_000,
        262_144 - base - 1,
        262_144 - base,
        262_144 - base + 1,
    ] {
        let mut value = single_metric_sample();
        value["detail"]["state"]["reason"] = json!("r".repeat(reason_bytes));
        events.push((format!("a reason of {reason_bytes} bytes"), value));
    }
    // A control character is written as six bytes (`\u0001`), a quote as two.
    for (what, text) in [("control characters", "\u{1}"), ("quotes", "\"")] {
        for count in [40_000, 43_400, 43_500, 130_000, 131_000] {
            let mut value = single_metric_sample();
            value["detail"]["state"]["reason"] = json!(text.repeat(count));
            events.push((format!("a reason of {count} {what}"), value));
        }
    }
    // Numbers are written as serde_json displays them.
    for count in [10_000, 11_000, 12_000] {
        let mut value = single_metric_sample();
        value["detail"]["configuration"]["thresholds"] =
            json!(vec![-1.234_567_890_123_4e-300; count]);
        events.push((format!("{count} long numbers"), value));
    }
    let (mut under, mut over) = (0, 0);
    for (what, value) in &events {
        let taken = readings_agree(value, what);
        let encoded = serde_json::to_vec(value).unwrap().len();
        assert_eq!(taken, encoded <= 262_144, "{what}: {encoded} bytes");
        if taken {
            under += 1;
        } else {
            over += 1;
            assert!(
                matches!(
                    AlarmEvent::from_value(value.clone()),
                    Err(EventError::TooLarge { limit: 262_144 })
                ),
                "{what}"
            );
        }
    }
    assert!(
        under >= 5 && over >= 5,
        "{under} under the limit, {over} over"
    );
}

/// One reading is taken from `value` after `mutations`: both readings agree on it.
fn mutated(value: &Value, mutations: &[Mutation]) -> Value {
    let mut value = value.clone();
    for mutation in mutations {
        apply(&mut value, mutation);
    }
    value
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn given_a_sample_event_with_arbitrary_mutations_when_read_both_ways_then_both_agree(
        sample in arb_sample(),
        mutations in prop::collection::vec(arb_mutation(), 1..6),
    ) {
        readings_agree(&mutated(&sample, &mutations), "a mutated sample");
    }

    #[test]
    fn given_arbitrary_json_when_read_both_ways_then_both_agree(value in arb_json()) {
        readings_agree(&value, "arbitrary JSON");
    }

    #[test]
    fn given_a_valid_alarm_event_when_read_in_place_then_it_is_taken_as_the_reporting_reading(
        alarm in arb_alarm(),
        mutations in prop::collection::vec(arb_mutation(), 0..3),
    ) {
        let value = alarm.to_event();
        prop_assert!(readings_agree(&value, "a generated alarm"), "{:?} not read in place", alarm);
        readings_agree(&mutated(&value, &mutations), "a mutated generated alarm");
    }
}
