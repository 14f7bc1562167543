//! Parsing EventBridge "CloudWatch Alarm State Change" events into `AlarmEvent`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use autoheal_core::event::MetricRef;
use autoheal_core::{AlarmEvent, AlarmKind, AlarmState, EventError};
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
