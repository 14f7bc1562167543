//! Which rule an event selects (`resolve::select`, `resolve::select_any`) and which resource
//! it heals.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use autoheal_core::resolve::{RULE_TAG, Selection, resolve_resource, select, select_any};
use autoheal_core::rules::placeholders;
use autoheal_core::{AlarmEvent, Layer, RuleSet, SkipReason};
use proptest::prelude::*;
use serde_json::{Value, json};

use common::*;

fn shipped() -> RuleSet {
    RuleSet::shipped().unwrap_or_else(|e| panic!("the shipped rules must parse:\n{e}"))
}

fn rules(text: &str) -> RuleSet {
    RuleSet::from_toml(text).unwrap_or_else(|e| panic!("the test rules must parse:\n{e}"))
}

fn event(value: Value) -> AlarmEvent {
    AlarmEvent::from_value(value).unwrap_or_else(|e| panic!("the test event must parse: {e}"))
}

/// One input of a metric-math alarm: namespace, metric name and dimensions.
type Input<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

/// An input whose dimensions the test builds.
type OwnedInput<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>);

/// A metric-math alarm over `metrics`.
fn math_alarm(alarm_name: &str, metrics: &[Input<'_>]) -> Value {
    let mut queries = vec![json!({"id": "e1", "expression": "MAX(METRICS())", "returnData": true})];
    for (index, (namespace, metric, dimensions)) in metrics.iter().enumerate() {
        let dimensions: serde_json::Map<String, Value> = dimensions
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
            .collect();
        queries.push(json!({
            "id": format!("m{}", index + 1),
            "metricStat": {
                "metric": {"namespace": namespace, "name": metric, "dimensions": dimensions},
                "period": 60,
                "stat": "Maximum"
            },
            "returnData": false
        }));
    }
    let mut value = metric_alarm("math-1", alarm_name, "ALARM", "x", "x", &[]);
    value["detail"]["configuration"] = json!({"metrics": queries});
    value
}

#[track_caller]
fn assert_matched(selection: &Selection<'_>, rule: &str, resource: &str) {
    match selection {
        Selection::Matched {
            rule: r,
            resource_id,
        } => {
            assert_eq!(r.name, rule);
            assert_eq!(resource_id, resource);
        }
        other => panic!("expected `{rule}` on `{resource}`, got {other:?}"),
    }
}

#[track_caller]
fn assert_unresolved(selection: &Selection<'_>, rule: &str, expected: SkipReason) {
    match selection {
        Selection::Unresolved {
            rule: r,
            reason,
            detail,
        } => {
            assert_eq!(r.name, rule);
            assert_eq!(*reason, expected, "{detail}");
            assert!(!detail.is_empty());
        }
        other => panic!("expected `{rule}` unresolved ({expected}), got {other:?}"),
    }
}

#[track_caller]
fn assert_no_match(selection: &Selection<'_>) -> String {
    match selection {
        Selection::NoMatch { detail } => detail.clone(),
        other => panic!("expected no match, got {other:?}"),
    }
}

// ------------------------------------------------------------------ the shipped rules

#[test]
fn given_an_ec2_system_status_check_alarm_when_selected_then_ec2_instance_healing_heals_the_instance()
 {
    let rules = shipped();
    let alarm = event(ec2_status_check("e-1", "ALARM", "i-0abc1234def567890"));

    let selection = select(&rules, &alarm, Layer::Infrastructure);

    assert_matched(&selection, "ec2-instance-healing", "i-0abc1234def567890");
    assert_eq!(
        selection.rule().map(|r| r.name.as_str()),
        Some("ec2-instance-healing")
    );
}

#[test]
fn given_each_ec2_status_check_metric_when_selected_then_ec2_instance_healing_applies() {
    let rules = shipped();
    for metric in [
        "StatusCheckFailed",
        "StatusCheckFailed_System",
        "StatusCheckFailed_Instance",
    ] {
        let alarm = event(metric_alarm(
            "e-1",
            "status",
            "ALARM",
            "AWS/EC2",
            metric,
            &[("InstanceId", "i-00000000000000001")],
        ));
        assert_matched(
            &select(&rules, &alarm, Layer::Infrastructure),
            "ec2-instance-healing",
            "i-00000000000000001",
        );
    }
}

#[test]
fn given_a_lambda_errors_alarm_when_selected_then_lambda_function_healing_heals_the_function() {
    let rules = shipped();
    let alarm = event(metric_alarm(
        "e-1",
        "checkout-errors",
        "ALARM",
        "AWS/Lambda",
        "Errors",
        &[("FunctionName", "checkout")],
    ));

    assert_matched(
        &select(&rules, &alarm, Layer::Platform),
        "lambda-function-healing",
        "checkout",
    );
    let (layer, selection) = select_any(&rules, &alarm);
    assert_eq!(layer, Some(Layer::Platform));
    assert_matched(&selection, "lambda-function-healing", "checkout");
}

#[test]
fn given_an_ebs_stalled_io_alarm_when_selected_then_ebs_volume_healing_heals_the_volume() {
    let rules = shipped();
    let alarm = event(metric_alarm(
        "e-1",
        "vol-stalled",
        "ALARM",
        "AWS/EBS",
        "VolumeStalledIOCheck",
        &[("VolumeId", "vol-0123456789abcdef0")],
    ));

    assert_matched(
        &select(&rules, &alarm, Layer::Infrastructure),
        "ebs-volume-healing",
        "vol-0123456789abcdef0",
    );
}

#[test]
fn given_an_auto_scaling_group_status_alarm_when_selected_then_asg_capacity_healing_applies() {
    let rules = shipped();
    let alarm = event(metric_alarm(
        "e-1",
        "asg-status",
        "ALARM",
        "AWS/EC2",
        "StatusCheckFailed",
        &[("AutoScalingGroupName", "web-asg")],
    ));

    assert_matched(
        &select(&rules, &alarm, Layer::Infrastructure),
        "asg-capacity-healing",
        "web-asg",
    );
}

#[test]
fn given_an_alarm_matching_two_rules_when_selected_then_the_first_in_file_order_wins() {
    let rules = shipped();
    let alarm = event(metric_alarm(
        "e-1",
        "both",
        "ALARM",
        "AWS/EC2",
        "StatusCheckFailed",
        &[
            ("InstanceId", "i-00000000000000001"),
            ("AutoScalingGroupName", "web-asg"),
        ],
    ));

    assert_matched(
        &select(&rules, &alarm, Layer::Infrastructure),
        "ec2-instance-healing",
        "i-00000000000000001",
    );
}

#[test]
fn given_an_event_sent_to_the_wrong_layer_when_selected_then_it_belongs_to_another_layer() {
    let rules = shipped();
    let alarm = event(metric_alarm(
        "e-1",
        "checkout-errors",
        "ALARM",
        "AWS/Lambda",
        "Errors",
        &[("FunctionName", "checkout")],
    ));

    for layer in Layer::ALL
        .into_iter()
        .filter(|layer| *layer != Layer::Platform)
    {
        match select(&rules, &alarm, layer) {
            Selection::OtherLayer { rule } => {
                assert_eq!(rule.name, "lambda-function-healing");
                assert_eq!(rule.layer, Layer::Platform);
            }
            other => panic!("{layer}: expected another layer, got {other:?}"),
        }
    }
}

#[test]
fn given_the_aws_metric_math_sample_when_selected_then_no_rule_matches_in_any_layer() {
    let rules = shipped();
    let alarm = event(metric_math_sample());

    for layer in Layer::ALL {
        assert_no_match(&select(&rules, &alarm, layer));
    }
    let (layer, selection) = select_any(&rules, &alarm);
    assert_eq!(layer, None);
    let detail = assert_no_match(&selection);
    assert!(detail.contains("metric-math"), "{detail}");
    assert!(detail.contains("TotalNetworkTrafficTooHigh"), "{detail}");
    assert!(detail.contains("AWS/EC2/NetworkIn"), "{detail}");
}

#[test]
fn given_the_aws_composite_sample_when_selected_then_no_rule_matches() {
    let rules = shipped();
    let alarm = event(composite_sample());

    for layer in Layer::ALL {
        let detail = assert_no_match(&select(&rules, &alarm, layer));
        assert!(detail.contains("composite"), "{detail}");
        assert!(detail.contains("ServiceAggregatedAlarm"), "{detail}");
    }
    assert_eq!(select_any(&rules, &alarm).0, None);
}

#[test]
fn given_the_aws_cpu_utilization_samples_when_selected_then_no_rule_matches() {
    let rules = shipped();
    for sample in [single_metric_sample(), anomaly_detection_sample()] {
        let alarm = event(sample);
        let (layer, selection) = select_any(&rules, &alarm);
        assert_eq!(layer, None, "{}", alarm.alarm_name);
        assert_no_match(&selection);
    }
}

#[test]
fn given_an_empty_dimension_value_when_selected_then_the_resource_is_unresolved_as_empty() {
    let rules = shipped();
    for instance in ["", "   "] {
        let alarm = event(ec2_status_check("e-1", "ALARM", instance));
        assert_unresolved(
            &select(&rules, &alarm, Layer::Infrastructure),
            "ec2-instance-healing",
            SkipReason::EmptyResourceId,
        );
    }
}

#[test]
fn given_a_dimension_value_with_surrounding_spaces_when_selected_then_the_id_is_trimmed() {
    let rules = shipped();
    let alarm = event(ec2_status_check("e-1", "ALARM", "  i-00000000000000001 "));
    assert_matched(
        &select(&rules, &alarm, Layer::Infrastructure),
        "ec2-instance-healing",
        "i-00000000000000001",
    );
}

#[test]
fn given_a_metric_math_alarm_over_two_instances_when_selected_then_the_resource_is_ambiguous() {
    let rules = shipped();
    let alarm = event(math_alarm(
        "two-instances",
        &[
            (
                "AWS/EC2",
                "StatusCheckFailed",
                &[("InstanceId", "i-00000000000000001")],
            ),
            (
                "AWS/EC2",
                "StatusCheckFailed",
                &[("InstanceId", "i-00000000000000002")],
            ),
        ],
    ));

    let selection = select(&rules, &alarm, Layer::Infrastructure);

    assert_unresolved(
        &selection,
        "ec2-instance-healing",
        SkipReason::AmbiguousResource,
    );
    if let Selection::Unresolved { detail, .. } = &selection {
        assert!(
            detail.contains("i-00000000000000001") && detail.contains("i-00000000000000002"),
            "{detail}"
        );
    }
}

#[test]
fn given_a_metric_math_alarm_over_one_instance_when_selected_then_that_instance_is_healed() {
    let rules = shipped();
    let alarm = event(math_alarm(
        "one-instance",
        &[
            (
                "AWS/EC2",
                "StatusCheckFailed_System",
                &[("InstanceId", "i-00000000000000001")],
            ),
            (
                "AWS/EC2",
                "StatusCheckFailed_Instance",
                &[("InstanceId", "i-00000000000000001")],
            ),
        ],
    ));

    assert_matched(
        &select(&rules, &alarm, Layer::Infrastructure),
        "ec2-instance-healing",
        "i-00000000000000001",
    );
}

#[test]
fn given_a_metric_math_alarm_where_only_one_input_matches_when_selected_then_its_dimension_is_used()
{
    let rules = shipped();
    let alarm = event(math_alarm(
        "mixed",
        &[
            (
                "AWS/EC2",
                "StatusCheckFailed",
                &[("InstanceId", "i-00000000000000001")],
            ),
            (
                "AWS/EC2",
                "CPUUtilization",
                &[("InstanceId", "i-00000000000000002")],
            ),
        ],
    ));

    assert_matched(
        &select(&rules, &alarm, Layer::Infrastructure),
        "ec2-instance-healing",
        "i-00000000000000001",
    );
}

#[test]
fn given_the_rule_tag_when_selected_then_it_overrides_metric_matching() {
    let rules = shipped();
    let alarm = event(with_tags(
        ec2_status_check("e-1", "ALARM", "i-00000000000000001"),
        json!({RULE_TAG: "memory-leak-healing"}),
    ));

    assert_matched(
        &select(&rules, &alarm, Layer::Application),
        "memory-leak-healing",
        "i-00000000000000001",
    );
    match select(&rules, &alarm, Layer::Infrastructure) {
        Selection::OtherLayer { rule } => assert_eq!(rule.name, "memory-leak-healing"),
        other => panic!("expected the tagged rule's layer to own the event, got {other:?}"),
    }
    assert_eq!(select_any(&rules, &alarm).0, Some(Layer::Application));
}

#[test]
fn given_the_rule_tag_as_a_tag_list_when_selected_then_it_overrides_metric_matching() {
    let rules = shipped();
    let alarm = event(with_tags(
        ec2_status_check("e-1", "ALARM", "i-00000000000000001"),
        json!([{"Key": RULE_TAG, "Value": "memory-leak-healing"}]),
    ));

    assert_matched(
        &select(&rules, &alarm, Layer::Application),
        "memory-leak-healing",
        "i-00000000000000001",
    );
}

#[test]
fn given_the_rule_tag_naming_an_unknown_rule_when_selected_then_nothing_matches() {
    let rules = shipped();
    let alarm = event(with_tags(
        ec2_status_check("e-1", "ALARM", "i-00000000000000001"),
        json!({RULE_TAG: "no-such-rule"}),
    ));

    let detail = assert_no_match(&select(&rules, &alarm, Layer::Infrastructure));
    assert!(detail.contains("no-such-rule"), "{detail}");
}

#[test]
fn given_an_alarm_name_prefix_when_selected_then_the_application_rule_applies() {
    let rules = shipped();
    let alarm = event(metric_alarm(
        "e-1",
        "circuit-breaker-healing-checkout",
        "ALARM",
        "MyApp",
        "BreakerOpen",
        &[("Service", "checkout")],
    ));

    assert_matched(
        &select(&rules, &alarm, Layer::Application),
        "circuit-breaker-healing",
        "checkout",
    );
}

#[test]
fn given_a_name_matched_alarm_without_the_dimension_when_selected_then_it_is_unresolved() {
    let rules = shipped();
    let alarm = event(metric_alarm(
        "e-1",
        "connection-pool-healing-orders",
        "ALARM",
        "MyApp",
        "PoolExhausted",
        &[("Host", "a")],
    ));

    assert_unresolved(
        &select(&rules, &alarm, Layer::Application),
        "connection-pool-healing",
        SkipReason::ResourceUnresolved,
    );
}

#[test]
fn given_an_ecs_alarm_when_selected_then_the_template_joins_cluster_and_service() {
    let rules = shipped();
    let alarm = event(metric_alarm(
        "e-1",
        "web-tasks",
        "ALARM",
        "ECS/ContainerInsights",
        "RunningTaskCount",
        &[("ClusterName", "prod"), ("ServiceName", "web")],
    ));

    assert_matched(
        &select(&rules, &alarm, Layer::Platform),
        "ecs-service-healing",
        "prod/web",
    );
}

#[test]
fn given_a_target_group_alarm_when_selected_then_the_template_fills_region_and_account() {
    let rules = shipped();
    let alarm = event(metric_alarm(
        "e-1",
        "unhealthy-hosts",
        "ALARM",
        "AWS/ApplicationELB",
        "UnHealthyHostCount",
        &[
            ("TargetGroup", "targetgroup/web/0123456789abcdef"),
            ("LoadBalancer", "app/web/fedcba9876543210"),
        ],
    ));

    assert_matched(
        &select(&rules, &alarm, Layer::Network),
        "alb-target-healing",
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef",
    );
}

#[test]
fn given_an_event_without_region_when_the_template_needs_it_then_the_resource_is_empty() {
    let rules = shipped();
    let mut value = metric_alarm(
        "e-1",
        "unhealthy-hosts",
        "ALARM",
        "AWS/ApplicationELB",
        "UnHealthyHostCount",
        &[("TargetGroup", "targetgroup/web/0123456789abcdef")],
    );
    value.as_object_mut().expect("object").remove("region");

    assert_unresolved(
        &select(&rules, &event(value), Layer::Network),
        "alb-target-healing",
        SkipReason::EmptyResourceId,
    );
}

// ------------------------------------------------------------------ rules written for the test

const TEST_RULES: &str = r#"
[[rule]]
name = "disabled-ec2"
layer = "infrastructure"
enabled = false
cooldown_seconds = 60
max_attempts = 1
[rule.trigger]
namespace = "AWS/EC2"
dimensions = ["InstanceId"]
[rule.resource]
dimension = "InstanceId"
[rule.action]
type = "recover-ec2-instance"

[[rule]]
name = "disabled-ebs"
layer = "infrastructure"
enabled = false
cooldown_seconds = 60
max_attempts = 1
[rule.trigger]
namespace = "AWS/EBS"
[rule.resource]
dimension = "VolumeId"
[rule.action]
type = "repair-ebs-volume"

[[rule]]
name = "enabled-ebs"
layer = "infrastructure"
cooldown_seconds = 60
max_attempts = 1
[rule.trigger]
namespace = "AWS/EBS"
[rule.resource]
dimension = "VolumeId"
[rule.action]
type = "repair-ebs-volume"

[[rule]]
name = "composite-by-tag"
layer = "platform"
cooldown_seconds = 60
max_attempts = 1
[rule.trigger]
alarm_name_prefixes = ["svc-"]
[rule.resource]
alarm_tag = "service"
[rule.action]
type = "restart-ecs-service"

[[rule]]
name = "ecs-by-template"
layer = "platform"
cooldown_seconds = 60
max_attempts = 1
[rule.trigger]
namespace = "ECS/ContainerInsights"
[rule.resource]
template = "{ClusterName}-{aws.region}/{ServiceName}"
[rule.action]
type = "restart-ecs-service"
"#;

#[test]
fn given_only_a_disabled_rule_matches_when_selected_then_the_selection_is_disabled() {
    let rules = rules(TEST_RULES);
    let alarm = event(ec2_status_check("e-1", "ALARM", "i-00000000000000001"));

    match select(&rules, &alarm, Layer::Infrastructure) {
        Selection::Disabled { rule } => assert_eq!(rule.name, "disabled-ec2"),
        other => panic!("expected a disabled rule, got {other:?}"),
    }
    let (layer, selection) = select_any(&rules, &alarm);
    assert_eq!(layer, Some(Layer::Infrastructure));
    assert!(
        matches!(selection, Selection::Disabled { .. }),
        "{selection:?}"
    );
}

#[test]
fn given_a_disabled_rule_before_an_enabled_one_when_selected_then_the_enabled_rule_wins() {
    let rules = rules(TEST_RULES);
    let alarm = event(metric_alarm(
        "e-1",
        "vol",
        "ALARM",
        "AWS/EBS",
        "VolumeStalledIOCheck",
        &[("VolumeId", "vol-00000001")],
    ));

    assert_matched(
        &select(&rules, &alarm, Layer::Infrastructure),
        "enabled-ebs",
        "vol-00000001",
    );
}

#[test]
fn given_a_composite_alarm_tagged_with_its_resource_when_selected_then_the_tag_names_it() {
    let rules = rules(TEST_RULES);
    let mut value = composite_sample();
    value["detail"]["alarmName"] = json!("svc-checkout-health");
    let alarm = event(with_tags(value, json!({"service": " prod/checkout "})));

    assert_matched(
        &select(&rules, &alarm, Layer::Platform),
        "composite-by-tag",
        "prod/checkout",
    );
}

#[test]
fn given_a_composite_alarm_without_or_with_an_empty_resource_tag_then_it_is_unresolved() {
    let rules = rules(TEST_RULES);
    let mut value = composite_sample();
    value["detail"]["alarmName"] = json!("svc-checkout-health");

    let untagged = event(value.clone());
    assert_unresolved(
        &select(&rules, &untagged, Layer::Platform),
        "composite-by-tag",
        SkipReason::ResourceUnresolved,
    );
    let empty = event(with_tags(value, json!({"service": ""})));
    assert_unresolved(
        &select(&rules, &empty, Layer::Platform),
        "composite-by-tag",
        SkipReason::EmptyResourceId,
    );
}

#[test]
fn given_a_composite_alarm_tagged_with_a_rule_when_selected_then_the_tagged_rule_applies() {
    let rules = rules(TEST_RULES);
    let alarm = event(with_tags(
        composite_sample(),
        json!({RULE_TAG: "composite-by-tag", "service": "prod/orders"}),
    ));

    assert_matched(
        &select(&rules, &alarm, Layer::Platform),
        "composite-by-tag",
        "prod/orders",
    );
}

#[test]
fn given_a_template_with_a_missing_dimension_when_selected_then_it_is_unresolved() {
    let rules = rules(TEST_RULES);
    let alarm = event(metric_alarm(
        "e-1",
        "tasks",
        "ALARM",
        "ECS/ContainerInsights",
        "RunningTaskCount",
        &[("ClusterName", "prod")],
    ));

    assert_unresolved(
        &select(&rules, &alarm, Layer::Platform),
        "ecs-by-template",
        SkipReason::ResourceUnresolved,
    );
}

#[test]
fn given_a_template_over_dimensions_and_region_when_resolved_then_all_placeholders_are_filled() {
    let rules = rules(TEST_RULES);
    let alarm = event(metric_alarm(
        "e-1",
        "tasks",
        "ALARM",
        "ECS/ContainerInsights",
        "RunningTaskCount",
        &[("ClusterName", "prod"), ("ServiceName", "web")],
    ));
    let rule = rules.get("ecs-by-template").expect("test rule");

    assert_eq!(
        resolve_resource(rule, &alarm),
        Ok("prod-us-east-1/web".to_owned())
    );
}

#[test]
fn given_templates_when_their_placeholders_are_listed_then_names_or_errors_come_back() {
    assert_eq!(
        placeholders("{ClusterName}/{ServiceName}"),
        Ok(vec!["ClusterName", "ServiceName"])
    );
    assert_eq!(placeholders("plain"), Ok(vec![]));
    assert!(placeholders("{open").is_err());
    assert!(placeholders("close}").is_err());
    assert!(placeholders("{}").is_err());
}

/// Instance ids as an alarm may carry them: well-formed ones (8 or 17 hex digits) with
/// surrounding whitespace, and anything at all.
fn any_instance_id() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ \t]{0,2}i-([0-9a-f]{8}|[0-9a-f]{17})[ \t]{0,2}",
        ".{0,24}",
    ]
}

proptest! {
    #[test]
    fn given_any_instance_id_when_selected_then_a_match_is_trimmed_non_empty_and_well_formed(
        instance in any_instance_id()
    ) {
        let rules = shipped();
        let alarm = event(ec2_status_check("e-1", "ALARM", &instance));
        let trimmed = instance.trim();
        let well_formed = trimmed
            .strip_prefix("i-")
            .is_some_and(|hex| {
                matches!(hex.len(), 8 | 17)
                    && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            });
        match select(&rules, &alarm, Layer::Infrastructure) {
            Selection::Matched { resource_id, .. } => {
                prop_assert_eq!(resource_id.as_str(), trimmed);
                prop_assert!(well_formed, "accepted {:?}", resource_id);
            }
            Selection::Unresolved { reason: SkipReason::EmptyResourceId, .. } => {
                prop_assert!(trimmed.is_empty());
            }
            Selection::Unresolved { reason: SkipReason::InvalidResourceId, detail, .. } => {
                prop_assert!(!trimmed.is_empty() && !well_formed, "refused {:?}: {}", instance, detail);
            }
            other => prop_assert!(false, "unexpected selection {:?}", other),
        }
    }
}

// ------------------------------------------------------------------ one alarm, one rule, one layer

/// What every layer's function makes of `alarm`: the layers that would decide on it.
fn deciding_layers(rules: &RuleSet, alarm: &AlarmEvent) -> Vec<Layer> {
    Layer::ALL
        .into_iter()
        .filter(|layer| {
            !matches!(
                select(rules, alarm, *layer),
                Selection::OtherLayer { .. } | Selection::NoMatch { .. }
            )
        })
        .collect()
}

#[test]
fn given_a_corruption_alarm_on_an_rds_metric_when_every_layer_selects_then_only_the_data_layer_owns_it()
 {
    let rules = shipped();
    let alarm = event(metric_alarm(
        "e-1",
        "database-corruption-healing-orders",
        "ALARM",
        "AWS/RDS",
        "DatabaseConnections",
        &[("DBInstanceIdentifier", "orders-db")],
    ));

    assert_matched(
        &select(&rules, &alarm, Layer::Data),
        "database-corruption-healing",
        "orders-db",
    );
    match select(&rules, &alarm, Layer::Platform) {
        Selection::OtherLayer { rule } => assert_eq!(rule.name, "database-corruption-healing"),
        other => panic!("the platform layer must leave it to the data layer, got {other:?}"),
    }
    assert_eq!(deciding_layers(&rules, &alarm), [Layer::Data]);
    assert_eq!(select_any(&rules, &alarm).0, Some(Layer::Data));
}

#[test]
fn given_a_memory_leak_alarm_on_an_ec2_metric_when_every_layer_selects_then_only_the_application_layer_owns_it()
 {
    let rules = shipped();
    let alarm = event(metric_alarm(
        "e-1",
        "memory-leak-healing-web-1",
        "ALARM",
        "AWS/EC2",
        "StatusCheckFailed",
        &[("InstanceId", "i-00000000000000001")],
    ));

    assert_matched(
        &select(&rules, &alarm, Layer::Application),
        "memory-leak-healing",
        "i-00000000000000001",
    );
    assert_eq!(deciding_layers(&rules, &alarm), [Layer::Application]);
}

#[test]
fn given_a_metric_math_alarm_over_ec2_and_elb_metrics_when_every_layer_selects_then_one_layer_owns_it()
 {
    let rules = shipped();
    let alarm = event(math_alarm(
        "web-degraded",
        &[
            (
                "AWS/EC2",
                "StatusCheckFailed",
                &[("InstanceId", "i-00000000000000001")],
            ),
            (
                "AWS/ApplicationELB",
                "UnHealthyHostCount",
                &[
                    ("TargetGroup", "targetgroup/web/0123456789abcdef"),
                    ("LoadBalancer", "app/web/0123456789abcdef"),
                ],
            ),
        ],
    ));

    // File order decides within the metric tier: the EC2 rule comes first.
    assert_matched(
        &select(&rules, &alarm, Layer::Infrastructure),
        "ec2-instance-healing",
        "i-00000000000000001",
    );
    assert_eq!(deciding_layers(&rules, &alarm), [Layer::Infrastructure]);
}

#[test]
fn given_a_disabled_rule_selected_by_name_when_a_metric_rule_also_matches_then_the_event_stays_the_disabled_rules()
 {
    let text = shipped_text().replace(
        "name = \"database-corruption-healing\"",
        "name = \"database-corruption-healing\"\nenabled = false",
    );
    let rules = rules(&text);
    let alarm = event(metric_alarm(
        "e-1",
        "database-corruption-healing-orders",
        "ALARM",
        "AWS/RDS",
        "DatabaseConnections",
        &[("DBInstanceIdentifier", "orders-db")],
    ));

    match select(&rules, &alarm, Layer::Data) {
        Selection::Disabled { rule } => assert_eq!(rule.name, "database-corruption-healing"),
        other => panic!("expected the disabled corruption rule, got {other:?}"),
    }
    // The platform's reboot rule would match the metric, but the alarm was named for another
    // rule: a disabled rule never hands its alarms to a less explicit one.
    assert!(matches!(
        select(&rules, &alarm, Layer::Platform),
        Selection::OtherLayer { .. }
    ));
}

fn shipped_text() -> String {
    autoheal_core::rules::SHIPPED_RULES.to_owned()
}

proptest! {
    /// Whatever mix of names, namespaces, metrics, dimensions and tags an alarm has, at most
    /// one layer's function decides on it, and it is the layer `select_any` names.
    #[test]
    fn given_any_alarm_when_every_layer_selects_then_at_most_one_layer_owns_it(
        name in prop::sample::select(vec![
            "web-1", "memory-leak-healing-web", "database-corruption-healing-orders",
            "circuit-breaker-healing-api", "backup-verification-healing-orders",
            "connection-pool-healing-api", "nat",
        ]),
        inputs in prop::collection::vec(
            (
                prop::sample::select(vec![
                    ("AWS/EC2", "StatusCheckFailed"), ("AWS/RDS", "DatabaseConnections"),
                    ("AWS/ApplicationELB", "UnHealthyHostCount"), ("CWAgent", "mem_used_percent"),
                    ("AWS/Lambda", "Errors"), ("AWS/EBS", "VolumeStalledIOCheck"),
                    ("AWS/NATGateway", "ErrorPortAllocation"), ("Custom", "Latency"),
                ]),
                prop::sample::subsequence(vec![
                    "InstanceId", "DBInstanceIdentifier", "AutoScalingGroupName", "TargetGroup",
                    "LoadBalancer", "FunctionName", "VolumeId", "NatGatewayId", "Service",
                ], 0..3),
            ),
            1..4,
        ),
        tag in prop::option::of(prop::sample::select(vec![
            "ec2-instance-healing", "memory-leak-healing", "nat-route-healing", "no-such-rule",
        ])),
    ) {
        let rules = shipped();
        let metrics: Vec<OwnedInput<'_>> = inputs
            .iter()
            .map(|((namespace, metric), dimensions)| {
                (*namespace, *metric, dimensions.iter().map(|d| (*d, "x-1")).collect())
            })
            .collect();
        let borrowed: Vec<Input<'_>> = metrics
            .iter()
            .map(|(namespace, metric, dimensions)| (*namespace, *metric, dimensions.as_slice()))
            .collect();
        let mut value = math_alarm(name, &borrowed);
        if let Some(tag) = tag {
            value = with_tags(value, json!({RULE_TAG: tag}));
        }
        let alarm = event(value);
        let owners = deciding_layers(&rules, &alarm);
        prop_assert!(owners.len() <= 1, "{owners:?}");
        let (layer, selection) = select_any(&rules, &alarm);
        prop_assert_eq!(owners.first().copied(), layer);
        if let Some(rule) = selection.rule() {
            prop_assert_eq!(Some(rule.layer), layer);
        }
    }
}

#[test]
fn given_a_rule_an_earlier_rule_always_wins_when_checked_then_the_shadowing_is_named() {
    let rules = rules(
        r#"
[[rule]]
name = "first"
layer = "infrastructure"
cooldown_seconds = 60
max_attempts = 1
[rule.trigger]
namespace = "AWS/EC2"
alarm_name_prefixes = ["web"]
[rule.resource]
dimension = "InstanceId"
[rule.action]
type = "recover-ec2-instance"

[[rule]]
name = "second"
layer = "infrastructure"
cooldown_seconds = 60
max_attempts = 1
[rule.trigger]
namespace = "AWS/EC2"
metrics = ["StatusCheckFailed"]
dimensions = ["InstanceId"]
alarm_name_prefixes = ["web-frontend"]
[rule.resource]
dimension = "InstanceId"
[rule.action]
type = "recover-ec2-instance"

[[rule]]
name = "third"
layer = "infrastructure"
cooldown_seconds = 60
max_attempts = 1
[rule.trigger]
namespace = "AWS/EBS"
alarm_name_prefixes = ["volume"]
[rule.resource]
dimension = "VolumeId"
[rule.action]
type = "repair-ebs-volume"
"#,
    );

    let found = autoheal_core::resolve::shadowed(&rules);

    let named: Vec<(&str, &str, autoheal_core::resolve::SelectedBy)> = found
        .iter()
        .map(|s| (s.rule.as_str(), s.by.as_str(), s.selector))
        .collect();
    assert_eq!(
        named,
        [
            (
                "second",
                "first",
                autoheal_core::resolve::SelectedBy::AlarmName
            ),
            (
                "second",
                "first",
                autoheal_core::resolve::SelectedBy::Metric
            ),
        ]
    );
    assert!(
        found[0].to_string().contains("rule `second`"),
        "{}",
        found[0]
    );
    assert!(autoheal_core::resolve::shadowed(&shipped()).is_empty());
}

#[test]
fn given_an_alarm_in_another_partition_when_the_target_group_is_named_then_its_arn_is_in_that_partition()
 {
    let rules = RuleSet::shipped().expect("shipped rules");
    let rule = rules.get("alb-target-healing").expect("the rule");
    for (region, partition) in [
        ("us-east-1", "aws"),
        ("cn-north-1", "aws-cn"),
        ("us-gov-west-1", "aws-us-gov"),
    ] {
        let mut value: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../events/alb-target-healing.alarm.json"
            ))
            .expect("sample"),
        )
        .expect("JSON");
        value["region"] = region.into();
        value["resources"] = serde_json::json!([]);
        value["detail"]
            .as_object_mut()
            .expect("detail")
            .remove("alarmArn");
        let event = AlarmEvent::from_value(value).expect("an alarm event");
        let id = resolve_resource(rule, &event).unwrap_or_else(|e| panic!("{region}: {e:?}"));
        assert!(
            id.starts_with(&format!("arn:{partition}:elasticloadbalancing:{region}:")),
            "{region}: {id}"
        );
    }
}
