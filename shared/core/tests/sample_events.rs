#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The sample events in `events/`: one ALARM and one OK event for every shipped rule, each of
//! which must select its rule, plus the shapes of AWS's documented examples in
//! `events/aws-samples/`, which must parse as the kind of alarm they are named after.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use autoheal_core::policy::resolve::{Selection, select_any};
use autoheal_core::{AlarmEvent, AlarmKind, AlarmState, RuleSet};
use serde_json::Value;

const EVENTS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events");

/// The resource each rule's sample events name, as the rule's resource selector reads it.
const EXPECTED_RESOURCES: [(&str, &str); 16] = [
    ("ec2-instance-healing", "i-0123456789abcdef0"),
    ("asg-capacity-healing", "web-asg"),
    ("ebs-volume-healing", "vol-0a1b2c3d4e5f67890"),
    ("ecs-service-healing", "prod-cluster/orders-api"),
    ("lambda-function-healing", "orders-processor"),
    ("rds-instance-healing", "orders-db"),
    ("circuit-breaker-healing", "orders-api"),
    ("graceful-degradation-healing", "checkout-api"),
    ("memory-leak-healing", "i-0fedcba9876543210"),
    ("connection-pool-healing", "payments-api"),
    ("database-corruption-healing", "orders-db"),
    ("cache-invalidation-healing", "sessions-cache-001"),
    ("backup-verification-healing", "orders-db"),
    (
        "alb-target-healing",
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef",
    ),
    (
        "dns-failover-healing",
        "abcdef12-3456-7890-abcd-ef1234567890",
    ),
    ("nat-route-healing", "nat-0123456789abcdef0"),
];

/// The `*.json` files directly in `dir`, sorted by name.
fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file() && path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

fn parse(path: &Path) -> (Value, AlarmEvent) {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let raw: Value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
    let event = AlarmEvent::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
    (raw, event)
}

/// What every sample must look like, as EventBridge delivers CloudWatch alarm events.
fn check_envelope(name: &str, raw: &Value, event: &AlarmEvent) {
    assert_eq!(raw["version"], "0", "{name}: version");
    assert_eq!(
        raw["detail-type"], "CloudWatch Alarm State Change",
        "{name}"
    );
    assert_eq!(raw["source"], "aws.cloudwatch", "{name}");
    assert_eq!(
        event.account.as_deref(),
        Some("123456789012"),
        "{name}: account"
    );
    assert_eq!(event.region.as_deref(), Some("us-east-1"), "{name}: region");
    assert!(event.time.is_some(), "{name}: time");
    let id = &event.id;
    let uuid_like = id.len() == 36
        && id.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        });
    assert!(uuid_like, "{name}: id `{id}` does not look like a UUID");
    assert_eq!(
        event.alarm_arn.as_deref(),
        Some(
            format!(
                "arn:aws:cloudwatch:us-east-1:123456789012:alarm:{}",
                event.alarm_name
            )
            .as_str()
        ),
        "{name}: resources must hold the alarm's ARN"
    );
    for key in ["state", "previousState"] {
        let state = &raw["detail"][key];
        assert!(state["value"].is_string(), "{name}: {key}.value");
        assert!(state["reason"].is_string(), "{name}: {key}.reason");
        assert!(state["timestamp"].is_string(), "{name}: {key}.timestamp");
        // AWS sends reasonData as a string holding JSON, not as an object.
        if let Some(data) = state.get("reasonData") {
            let text = data
                .as_str()
                .unwrap_or_else(|| panic!("{name}: {key}.reasonData must be a JSON string"));
            let decoded: Value = serde_json::from_str(text)
                .unwrap_or_else(|e| panic!("{name}: {key}.reasonData is not JSON: {e}"));
            assert!(decoded.is_object(), "{name}: {key}.reasonData");
        }
    }
}

#[test]
fn every_rule_sample_selects_its_rule() {
    let rules = RuleSet::shipped().unwrap_or_else(|e| panic!("{e}"));
    let expected_resources: BTreeMap<&str, &str> = EXPECTED_RESOURCES.into_iter().collect();
    let mut ids = BTreeSet::new();
    let mut seen: BTreeMap<String, BTreeSet<&'static str>> = BTreeMap::new();

    let files = json_files(Path::new(EVENTS_DIR));
    assert!(!files.is_empty(), "no sample events in {EVENTS_DIR}");
    for path in &files {
        let name = file_name(path);
        let (rule_name, expected_state, suffix) =
            if let Some(rule) = name.strip_suffix(".alarm.json") {
                (rule, AlarmState::Alarm, "alarm")
            } else if let Some(rule) = name.strip_suffix(".ok.json") {
                (rule, AlarmState::Ok, "ok")
            } else {
                panic!("{name}: sample events are named <rule>.alarm.json or <rule>.ok.json");
            };

        let (raw, event) = parse(path);
        check_envelope(&name, &raw, &event);
        assert!(
            ids.insert(event.id.clone()),
            "{name}: duplicate id {}",
            event.id
        );
        assert_eq!(event.state, expected_state, "{name}: state");
        let expected_previous = match expected_state {
            AlarmState::Alarm => AlarmState::Ok,
            _ => AlarmState::Alarm,
        };
        assert_eq!(
            event.previous_state,
            Some(expected_previous),
            "{name}: previousState"
        );
        assert!(
            matches!(event.kind, AlarmKind::Metric { .. }),
            "{name}: expected a single-metric alarm, got {}",
            event.kind.label()
        );

        let (layer, selection) = select_any(&rules, &event);
        match selection {
            Selection::Matched { rule, resource_id } => {
                assert_eq!(rule.name, rule_name, "{name}: selected the wrong rule");
                assert_eq!(layer, Some(rule.layer), "{name}: layer");
                assert_eq!(
                    Some(resource_id.as_str()),
                    expected_resources.get(rule_name).copied(),
                    "{name}: resource id"
                );
            }
            other => panic!("{name}: expected rule `{rule_name}` to match, got {other:?}"),
        }
        assert!(
            seen.entry(rule_name.to_owned()).or_default().insert(suffix),
            "{name}: listed twice"
        );
    }

    for path in json_files(&Path::new(EVENTS_DIR).join("aws-samples")) {
        let (_, event) = parse(&path);
        assert!(
            ids.insert(event.id.clone()),
            "{}: duplicate id {}",
            file_name(&path),
            event.id
        );
    }

    for rule in rules.rules() {
        let kinds = seen.get(&rule.name);
        for suffix in ["alarm", "ok"] {
            assert!(
                kinds.is_some_and(|kinds| kinds.contains(suffix)),
                "rule `{}` has no events/{}.{suffix}.json",
                rule.name,
                rule.name
            );
        }
    }
    assert_eq!(
        seen.len(),
        rules.rules().len(),
        "samples for unknown rules: {seen:?}"
    );
}

#[test]
fn the_documented_aws_shapes_parse_as_their_kind() {
    let dir = Path::new(EVENTS_DIR).join("aws-samples");
    let expected = [
        ("anomaly-detection.json", "anomaly-detection"),
        ("composite.json", "composite"),
        ("metric-math.json", "metric-math"),
        ("single-metric-cpu.json", "metric"),
    ];
    let names: Vec<String> = json_files(&dir).iter().map(|p| file_name(p)).collect();
    let expected_names: Vec<&str> = expected.iter().map(|(name, _)| *name).collect();
    assert_eq!(names, expected_names, "files in events/aws-samples");

    for (name, kind) in expected {
        let (raw, event) = parse(&dir.join(name));
        check_envelope(name, &raw, &event);
        assert_eq!(event.kind.label(), kind, "{name}: kind");
        assert_eq!(event.state, AlarmState::Alarm, "{name}: state");
        match &event.kind {
            AlarmKind::Metric { metric } => {
                assert_eq!(metric.namespace, "AWS/EC2", "{name}");
                assert_eq!(metric.name, "CPUUtilization", "{name}");
                assert_eq!(
                    metric.dimensions.get("InstanceId").map(String::as_str),
                    Some("i-0123456789abcdef0"),
                    "{name}"
                );
            }
            AlarmKind::MetricMath {
                expression,
                metrics,
            } => {
                assert_eq!(expression.as_deref(), Some("SUM(METRICS())"), "{name}");
                let metric_names: Vec<&str> = metrics.iter().map(|m| m.name.as_str()).collect();
                assert_eq!(metric_names, ["NetworkIn", "NetworkOut"], "{name}");
                assert_eq!(
                    event.previous_state,
                    Some(AlarmState::InsufficientData),
                    "{name}"
                );
            }
            AlarmKind::AnomalyDetection { metrics } => {
                assert_eq!(metrics.len(), 1, "{name}: the band's input metric");
                assert_eq!(metrics[0].name, "CPUUtilization", "{name}");
            }
            AlarmKind::Composite { alarm_rule } => {
                assert_eq!(
                    alarm_rule, "ALARM(ServerCpuTooHigh) OR ALARM(TotalNetworkTrafficTooHigh)",
                    "{name}"
                );
                assert!(event.kind.metrics().is_empty(), "{name}");
            }
        }
    }
}
