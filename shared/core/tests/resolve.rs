//! Which rule an event selects (`resolve::select`, `resolve::select_any`) and which resource
//! it heals.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use autoheal_core::model::rules::placeholders;
use autoheal_core::policy::resolve::{
    RULE_TAG, SelectedBy, Selection, candidates, resolve_resource, select, select_any,
};
use autoheal_core::{AlarmEvent, Layer, Rule, RuleSet, SkipReason};
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
fn given_a_lambda_alarm_on_the_rules_own_alias_when_selected_then_it_rolls_that_alias_back() {
    let rules = shipped();
    let alarm = event(metric_alarm(
        "e-1",
        "checkout-live-errors",
        "ALARM",
        "AWS/Lambda",
        "Errors",
        &[("FunctionName", "checkout"), ("Resource", "checkout:live")],
    ));

    assert_matched(
        &select(&rules, &alarm, Layer::Platform),
        "lambda-function-healing",
        "checkout",
    );
}

#[test]
fn given_a_lambda_alarm_on_another_alias_or_a_version_when_selected_then_no_rule_rolls_live_back() {
    let rules = shipped();
    for dimensions in [
        vec![
            ("FunctionName", "checkout"),
            ("Resource", "checkout:staging"),
        ],
        vec![("FunctionName", "checkout"), ("Resource", "checkout:7")],
        vec![("FunctionName", "checkout"), ("ExecutedVersion", "7")],
        vec![
            ("FunctionName", "checkout"),
            ("Resource", "checkout:live"),
            ("ExecutedVersion", "7"),
        ],
    ] {
        let alarm = event(metric_alarm(
            "e-1",
            "checkout-errors",
            "ALARM",
            "AWS/Lambda",
            "Errors",
            &dimensions,
        ));
        let detail = assert_no_match(&select(&rules, &alarm, Layer::Platform));
        assert!(detail.contains("checkout-errors"), "{detail}");
    }
}

#[test]
fn given_an_alarm_named_for_the_lambda_rule_on_another_alias_when_selected_then_it_is_unresolved() {
    let rules = rules(
        r#"
[[rule]]
name = "lambda-function-healing"
layer = "platform"
cooldown_seconds = 600
max_attempts = 2
[rule.trigger]
alarm_name_prefixes = ["lambda-function-healing-"]
[rule.resource]
dimension = "FunctionName"
[rule.action]
type = "rollback-lambda-alias"
alias = "live"
"#,
    );
    let alarm = event(metric_alarm(
        "e-1",
        "lambda-function-healing-checkout",
        "ALARM",
        "AWS/Lambda",
        "Errors",
        &[
            ("FunctionName", "checkout"),
            ("Resource", "checkout:staging"),
        ],
    ));

    assert_unresolved(
        &select(&rules, &alarm, Layer::Platform),
        "lambda-function-healing",
        SkipReason::OtherTarget,
    );
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
    autoheal_core::SHIPPED_RULES.to_owned()
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

    let found = autoheal_core::policy::resolve::shadowed(&rules);

    let named: Vec<(&str, &str, autoheal_core::policy::resolve::SelectedBy)> = found
        .iter()
        .map(|s| (s.rule.as_str(), s.by.as_str(), s.selector))
        .collect();
    assert_eq!(
        named,
        [
            (
                "second",
                "first",
                autoheal_core::policy::resolve::SelectedBy::AlarmName
            ),
            (
                "second",
                "first",
                autoheal_core::policy::resolve::SelectedBy::Metric
            ),
        ]
    );
    assert!(
        found[0].to_string().contains("rule `second`"),
        "{}",
        found[0]
    );
    assert!(autoheal_core::policy::resolve::shadowed(&shipped()).is_empty());
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

// ------------------------------------------------------------------ the index against a scan

/// Selection as the README states it, by trying every rule: the `autoheal:rule` tag, else the
/// alarm-name prefixes, else the metrics; within the deciding tier, file order.
fn scan_candidates<'r>(
    rules: &'r RuleSet,
    alarm: &AlarmEvent,
) -> (Option<SelectedBy>, Vec<&'r Rule>) {
    if let Some(name) = alarm.alarm_tags.get(RULE_TAG) {
        let named: Vec<&Rule> = rules
            .rules()
            .iter()
            .filter(|rule| rule.name == name.trim())
            .take(1)
            .collect();
        return (Some(SelectedBy::Tag), named);
    }
    let by_name: Vec<&Rule> = rules
        .rules()
        .iter()
        .filter(|rule| {
            rule.trigger
                .alarm_name_prefixes
                .iter()
                .any(|prefix| alarm.alarm_name.starts_with(prefix.as_str()))
        })
        .collect();
    if !by_name.is_empty() {
        return (Some(SelectedBy::AlarmName), by_name);
    }
    let by_metric: Vec<&Rule> = rules
        .rules()
        .iter()
        .filter(|rule| {
            alarm.kind.metrics().iter().any(|metric| {
                rule.trigger.namespace.as_deref() == Some(metric.namespace.as_str())
                    && (rule.trigger.metrics.is_empty()
                        || rule.trigger.metrics.contains(&metric.name))
                    && rule
                        .trigger
                        .dimensions
                        .iter()
                        .all(|d| metric.dimensions.contains_key(d))
            })
        })
        .collect();
    let by = (!by_metric.is_empty()).then_some(SelectedBy::Metric);
    (by, by_metric)
}

/// The selection a scan makes: the first enabled candidate and its resource, or the first
/// candidate when all are disabled, or none.
fn scan_select<'r>(rules: &'r RuleSet, alarm: &AlarmEvent) -> Option<Selection<'r>> {
    let (_, found) = scan_candidates(rules, alarm);
    let first = *found.first()?;
    Some(match found.into_iter().find(|rule| rule.enabled) {
        Some(rule) => match resolve_resource(rule, alarm) {
            Ok(resource_id) => Selection::Matched { rule, resource_id },
            Err((reason, detail)) => Selection::Unresolved {
                rule,
                reason,
                detail,
            },
        },
        None => Selection::Disabled { rule: first },
    })
}

/// Alarm-name prefixes that start one another, share bytes of a multi-byte character, end in
/// spaces: every way the prefix trie branches.
const PREFIXES: [&str; 10] = [
    "w", "web", "web-1", "web-10", "wex", "db", "db-", "é", "éa", "web ",
];
const NAMESPACES: [&str; 3] = ["AWS/EC2", "AWS/RDS", "Custom"];
const METRIC_NAMES: [&str; 3] = ["Errors", "Latency", "StatusCheckFailed"];
const DIMENSIONS: [&str; 3] = ["InstanceId", "DBInstanceIdentifier", "Service"];

/// A random rule's trigger: a namespace with metrics and dimensions, prefixes, or both.
#[derive(Debug, Clone)]
struct RandomRule {
    layer: usize,
    enabled: bool,
    namespace: Option<&'static str>,
    metrics: Vec<&'static str>,
    dimensions: Vec<&'static str>,
    prefixes: Vec<&'static str>,
}

fn random_rule() -> impl Strategy<Value = RandomRule> {
    (
        0..5usize,
        prop::bool::weighted(0.8),
        prop::option::of(prop::sample::select(NAMESPACES.to_vec())),
        prop::collection::vec(prop::sample::select(METRIC_NAMES.to_vec()), 0..3),
        prop::sample::subsequence(DIMENSIONS.to_vec(), 0..2),
        prop::collection::vec(prop::sample::select(PREFIXES.to_vec()), 0..3),
    )
        .prop_map(
            |(layer, enabled, namespace, metrics, dimensions, prefixes)| {
                // A valid trigger: a namespace or a prefix; metrics and dimensions need the
                // namespace.
                let namespace = namespace.or(prefixes.is_empty().then_some("Custom"));
                let (metrics, dimensions) = if namespace.is_some() {
                    (metrics, dimensions)
                } else {
                    (Vec::new(), Vec::new())
                };
                RandomRule {
                    layer,
                    enabled,
                    namespace,
                    metrics,
                    dimensions,
                    prefixes,
                }
            },
        )
}

fn quoted(values: &[&str]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

fn random_rules_file(random: &[RandomRule]) -> String {
    const LAYERS: [(&str, &str, &str); 5] = [
        (
            "infrastructure",
            "dimension = \"InstanceId\"",
            "type = \"recover-ec2-instance\"",
        ),
        (
            "platform",
            "dimension = \"DBInstanceIdentifier\"",
            "type = \"reboot-rds-instance\"",
        ),
        (
            "application",
            "dimension = \"Service\"",
            "type = \"reset-circuit-breaker\"\nparameter = \"/autoheal/{resource}/circuit-breaker\"",
        ),
        (
            "data",
            "dimension = \"DBInstanceIdentifier\"",
            "type = \"verify-backup\"",
        ),
        (
            "network",
            "alarm_tag = \"health-check\"",
            "type = \"fail-over-dns-record\"",
        ),
    ];
    let mut text = String::new();
    for (index, rule) in random.iter().enumerate() {
        let (layer, resource, action) = LAYERS[rule.layer];
        let mut trigger = String::new();
        if let Some(namespace) = rule.namespace {
            trigger.push_str(&format!(
                "namespace = {namespace:?}\nmetrics = {}\ndimensions = {}\n",
                quoted(&rule.metrics),
                quoted(&rule.dimensions)
            ));
        }
        if !rule.prefixes.is_empty() {
            trigger.push_str(&format!(
                "alarm_name_prefixes = {}\n",
                quoted(&rule.prefixes)
            ));
        }
        text.push_str(&format!(
            "[[rule]]\nname = \"rule-{index}\"\nlayer = \"{layer}\"\nenabled = {}\ncooldown_seconds = 60\nmax_attempts = 2\n[rule.trigger]\n{trigger}[rule.resource]\n{resource}\n[rule.action]\n{action}\n\n",
            rule.enabled
        ));
    }
    text
}

/// Alarm names built from the prefixes' pieces, so that they start with some, several or none.
fn random_alarm_name() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec![
            "w", "we", "web", "-", "1", "0", "x", "db", "é", "a", " ",
        ]),
        1..6,
    )
    .prop_map(|pieces| pieces.concat())
    .prop_filter("CloudWatch refuses a blank alarm name", |name| {
        !name.trim().is_empty()
    })
}

type RandomMetric = (&'static str, &'static str, Vec<&'static str>);

fn random_metric() -> impl Strategy<Value = RandomMetric> {
    (
        prop::sample::select(NAMESPACES.to_vec()),
        prop::sample::select(METRIC_NAMES.to_vec()),
        prop::sample::subsequence(DIMENSIONS.to_vec(), 0..3),
    )
}

fn random_event(
    name: &str,
    metrics: &[RandomMetric],
    tag: Option<&str>,
    health_check: bool,
) -> AlarmEvent {
    let value_of = |dimension: &str| match dimension {
        "InstanceId" => "i-0123456789abcdef0",
        "DBInstanceIdentifier" => "orders-db",
        _ => "orders-api",
    };
    let mut value = match metrics {
        [] => {
            let mut value = composite_sample();
            value["detail"]["alarmName"] = Value::from(name);
            value
        }
        [(namespace, metric, dimensions)] => {
            let dimensions: Vec<(&str, &str)> =
                dimensions.iter().map(|d| (*d, value_of(d))).collect();
            metric_alarm("e-1", name, "ALARM", namespace, metric, &dimensions)
        }
        several => {
            let owned: Vec<OwnedInput<'_>> = several
                .iter()
                .map(|(namespace, metric, dimensions)| {
                    let dimensions = dimensions.iter().map(|d| (*d, value_of(d))).collect();
                    (*namespace, *metric, dimensions)
                })
                .collect();
            let inputs: Vec<Input<'_>> = owned
                .iter()
                .map(|(namespace, metric, dimensions)| (*namespace, *metric, dimensions.as_slice()))
                .collect();
            math_alarm(name, &inputs)
        }
    };
    let mut tags = serde_json::Map::new();
    if let Some(tag) = tag {
        tags.insert(RULE_TAG.to_owned(), Value::from(tag));
    }
    if health_check {
        tags.insert(
            "health-check".to_owned(),
            Value::from("abcdef01-2345-6789-abcd-ef0123456789"),
        );
    }
    if !tags.is_empty() {
        value = with_tags(value, Value::Object(tags));
    }
    event(value)
}

fn names(rules: &[&Rule]) -> Vec<String> {
    rules.iter().map(|rule| rule.name.clone()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Whatever the rules and the alarm, selecting through the index finds what trying every
    /// rule finds: the same tier, the same rules in the same order, the same rule and resource
    /// (or the same reason there is none) in every layer's function.
    #[test]
    fn given_any_rules_and_alarm_when_selected_through_the_index_then_it_equals_a_scan(
        random in prop::collection::vec(random_rule(), 0..24),
        name in random_alarm_name(),
        metrics in prop::collection::vec(random_metric(), 0..3),
        tag in prop::option::of(prop_oneof![
            (0..30usize).prop_map(|i| format!("rule-{i}")),
            (0..30usize).prop_map(|i| format!(" rule-{i}\t")),
            Just(String::new()),
            Just("no-such-rule".to_owned()),
        ]),
        health_check in any::<bool>(),
    ) {
        let rules = rules(&random_rules_file(&random));
        let alarm = random_event(&name, &metrics, tag.as_deref(), health_check);

        let (by, found) = candidates(&rules, &alarm);
        let (scan_by, scanned) = scan_candidates(&rules, &alarm);
        prop_assert_eq!(by, scan_by);
        prop_assert_eq!(names(&found), names(&scanned));
        prop_assert!(found.iter().zip(&scanned).all(|(a, b)| std::ptr::eq(*a, *b)));

        let (layer, selection) = select_any(&rules, &alarm);
        match scan_select(&rules, &alarm) {
            Some(expected) => {
                prop_assert_eq!(layer, expected.rule().map(|rule| rule.layer));
                prop_assert_eq!(&selection, &expected);
            }
            None => {
                prop_assert_eq!(layer, None);
                prop_assert!(matches!(selection, Selection::NoMatch { .. }), "{:?}", selection);
            }
        }
        for each in Layer::ALL {
            let seen = select(&rules, &alarm, each);
            match selection.rule() {
                Some(rule) if rule.layer != each => {
                    prop_assert_eq!(seen, Selection::OtherLayer { rule });
                }
                _ => prop_assert_eq!(&seen, &selection),
            }
        }
        for index in 0..30 {
            let wanted = format!("rule-{index}");
            prop_assert_eq!(
                rules.get(&wanted).map(|rule| &rule.name),
                rules.rules().iter().find(|rule| rule.name == wanted).map(|rule| &rule.name)
            );
        }
    }
}

#[test]
fn given_prefixes_that_start_one_another_when_an_alarm_starts_with_several_then_all_are_candidates_in_file_order()
 {
    let rules = rules(&random_rules_file(&[
        RandomRule {
            layer: 0,
            enabled: true,
            namespace: None,
            metrics: vec![],
            dimensions: vec![],
            prefixes: vec!["web-10"],
        },
        RandomRule {
            layer: 0,
            enabled: false,
            namespace: None,
            metrics: vec![],
            dimensions: vec![],
            prefixes: vec!["wex", "w"],
        },
        RandomRule {
            layer: 0,
            enabled: true,
            namespace: None,
            metrics: vec![],
            dimensions: vec![],
            prefixes: vec!["web", "web-1"],
        },
    ]));
    let alarm = random_event("web-100", &[], None, false);

    let (by, found) = candidates(&rules, &alarm);

    assert_eq!(by, Some(SelectedBy::AlarmName));
    assert_eq!(names(&found), ["rule-0", "rule-1", "rule-2"]);
    assert_eq!(names(&scan_candidates(&rules, &alarm).1), names(&found));
}
