//! Resource ids against their service's id format (`resource_id::validate`), and the named
//! skip an id of the wrong format gives before any call.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use autoheal_core::model::resource_id::{ResourceKind, event_partition, validate};
use autoheal_core::policy::resolve::{Selection, select};
use autoheal_core::{AlarmEvent, FollowUp, Layer, RuleSet, SkipReason};
use serde_json::{Value, json};

use common::*;

/// An alarm of account 123456789012 in us-east-1 (partition `aws`).
fn aws_event() -> AlarmEvent {
    AlarmEvent::from_value(ec2_status_check("e-1", "ALARM", "i-0123456789abcdef0"))
        .expect("the test event parses")
}

/// The same alarm, from `region` of `partition`.
fn event_in(partition: &str, region: &str) -> AlarmEvent {
    let mut value = ec2_status_check("e-1", "ALARM", "i-0123456789abcdef0");
    value["region"] = json!(region);
    value["resources"] = json!([format!(
        "arn:{partition}:cloudwatch:{region}:123456789012:alarm:web-1-status-check"
    )]);
    AlarmEvent::from_value(value).expect("the test event parses")
}

#[track_caller]
fn assert_accepted(kind: ResourceKind, ids: &[&str]) {
    let event = aws_event();
    for id in ids {
        if let Err(message) = validate(kind, id, &event) {
            panic!("{kind:?} must accept {id:?}: {message}");
        }
    }
}

#[track_caller]
fn assert_refused(kind: ResourceKind, ids: &[&str]) {
    let event = aws_event();
    for id in ids {
        let message =
            validate(kind, id, &event).expect_err(&format!("{kind:?} must refuse {id:?}"));
        assert!(message.contains(kind.label()), "{message}");
    }
}

const INJECTIONS: [&str; 6] = [
    "i-123; rm -rf /",
    "../",
    "../../etc/passwd",
    "$(reboot)",
    "`reboot`",
    "a\nb",
];

#[test]
fn ec2_instance_ids_are_i_and_8_or_17_lower_case_hex_digits() {
    assert_accepted(
        ResourceKind::Ec2Instance,
        &["i-0123456789abcdef0", "i-1234abcd", "i-0000000000000dead"],
    );
    assert_refused(
        ResourceKind::Ec2Instance,
        &[
            "i-123",
            "i-0123456789ABCDEF0",
            "i-0123456789abcdef",
            "i-0123456789abcdef01",
            "i-0123456789abcdefg",
            "vol-0123456789abcdef0",
            "i-",
            " i-0123456789abcdef0",
            "I-0123456789abcdef0",
        ],
    );
    assert_refused(ResourceKind::Ec2Instance, &INJECTIONS);
}

#[test]
fn ebs_volume_and_nat_gateway_ids_have_their_own_prefix() {
    assert_accepted(
        ResourceKind::EbsVolume,
        &["vol-0a1b2c3d4e5f67890", "vol-1234abcd"],
    );
    assert_refused(
        ResourceKind::EbsVolume,
        &[
            "vol-1",
            "i-0123456789abcdef0",
            "vol-0A1B2C3D",
            "vol-../../x",
        ],
    );
    assert_accepted(
        ResourceKind::NatGateway,
        &["nat-0123456789abcdef0", "nat-1234abcd"],
    );
    assert_refused(
        ResourceKind::NatGateway,
        &[
            "nat-good",
            "nat-123",
            "vol-0123456789abcdef0",
            "nat-0123456789ABCDEF0",
        ],
    );
    assert_refused(ResourceKind::NatGateway, &INJECTIONS);
}

#[test]
fn auto_scaling_group_names_are_1_to_255_characters_without_control_characters() {
    let longest = "a".repeat(255);
    let unicode = "é".repeat(255);
    assert_accepted(
        ResourceKind::AutoScalingGroup,
        &["web-asg", "my group (blue)", "a", &longest, &unicode],
    );
    let too_long = "a".repeat(256);
    assert_refused(
        ResourceKind::AutoScalingGroup,
        &[
            &too_long,
            "web\nasg",
            "web\u{7}asg",
            " web-asg",
            "web-asg ",
            "\t",
        ],
    );
}

#[test]
fn ecs_services_are_cluster_slash_service() {
    let longest = format!("{}/{}", "c".repeat(255), "s".repeat(255));
    assert_accepted(
        ResourceKind::EcsService,
        &["prod-cluster/orders-api", "a/b", "prod_1/Web_2", &longest],
    );
    let too_long = format!("{}/web", "c".repeat(256));
    assert_refused(
        ResourceKind::EcsService,
        &[
            "orders-api",
            "prod/",
            "/orders",
            "a/b/c",
            "prod cluster/web",
            "prod/web.1",
            &too_long,
        ],
    );
    assert_refused(ResourceKind::EcsService, &INJECTIONS);
}

#[test]
fn lambda_functions_are_names_or_arns_of_the_events_account_and_partition() {
    let longest = "f".repeat(64);
    assert_accepted(
        ResourceKind::LambdaFunction,
        &[
            "orders-processor",
            "checkout_v2",
            &longest,
            "arn:aws:lambda:us-east-1:123456789012:function:orders-processor",
            "arn:aws:lambda:eu-west-1:123456789012:function:orders-processor",
        ],
    );
    let too_long = "f".repeat(65);
    assert_refused(
        ResourceKind::LambdaFunction,
        &[
            &too_long,
            "orders.processor",
            "arn:aws:lambda:us-east-1:123456789012:function:orders:live",
            "arn:aws:lambda:us-east-1:123456789012:layer:orders",
            "arn:aws:s3:us-east-1:123456789012:function:orders",
            "arn:aws:lambda:us-east-1:12345:function:orders",
        ],
    );
    assert_refused(ResourceKind::LambdaFunction, &INJECTIONS);
    let event = aws_event();
    let other_account = "arn:aws:lambda:us-east-1:210987654321:function:orders-processor";
    let message = validate(ResourceKind::LambdaFunction, other_account, &event).unwrap_err();
    assert!(message.contains("account `210987654321`"), "{message}");
    let china = "arn:aws-cn:lambda:cn-north-1:123456789012:function:orders-processor";
    let message = validate(ResourceKind::LambdaFunction, china, &event).unwrap_err();
    assert!(message.contains("partition `aws-cn`"), "{message}");
}

#[test]
fn rds_identifiers_are_1_to_63_starting_with_a_letter_without_double_or_trailing_hyphens() {
    let longest = format!("d{}", "b".repeat(62));
    assert_accepted(
        ResourceKind::RdsInstance,
        &["orders-db", "a", "Orders-DB-2", &longest],
    );
    let too_long = format!("d{}", "b".repeat(63));
    assert_refused(
        ResourceKind::RdsInstance,
        &[
            &too_long,
            "1orders",
            "orders--db",
            "orders-db-",
            "-orders",
            "orders_db",
            "orders.db",
            "",
        ],
    );
    assert_refused(ResourceKind::RdsInstance, &INJECTIONS);
}

#[test]
fn elasticache_cluster_ids_are_rds_shaped_and_at_most_50_characters() {
    let longest = format!("c{}", "a".repeat(49));
    assert_accepted(
        ResourceKind::ElastiCacheCluster,
        &["sessions-cache-001", &longest],
    );
    let too_long = format!("c{}", "a".repeat(50));
    assert_refused(
        ResourceKind::ElastiCacheCluster,
        &[&too_long, "sessions--cache", "0001", "sessions-cache-"],
    );
}

#[test]
fn route53_health_check_ids_are_lower_case_uuids() {
    assert_accepted(
        ResourceKind::Route53HealthCheck,
        &["abcdef12-3456-7890-abcd-ef1234567890"],
    );
    assert_refused(
        ResourceKind::Route53HealthCheck,
        &[
            "ABCDEF12-3456-7890-ABCD-EF1234567890",
            "abcdef12-3456-7890-abcd-ef123456789",
            "abcdef1234567890abcdef1234567890abcd",
            "abcdef12-3456-7890-abcd-ef1234567890-",
            "abcdef12_3456_7890_abcd_ef1234567890",
            "zbcdef12-3456-7890-abcd-ef1234567890",
        ],
    );
    assert_refused(ResourceKind::Route53HealthCheck, &INJECTIONS);
}

#[test]
fn application_service_names_cannot_leave_their_parameter_path() {
    let longest = "s".repeat(128);
    assert_accepted(
        ResourceKind::ApplicationService,
        &["orders-api", "payments.v2", "a_b", "...", &longest],
    );
    let too_long = "s".repeat(129);
    assert_refused(
        ResourceKind::ApplicationService,
        &[".", "..", "a/b", "../x", "orders api", &too_long, "é"],
    );
    assert_refused(ResourceKind::ApplicationService, &INJECTIONS);
}

#[test]
fn target_group_arns_must_be_of_the_events_partition_region_and_account() {
    assert_accepted(
        ResourceKind::TargetGroup,
        &[
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef",
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/a-b-1/0123456789abcdef",
        ],
    );
    assert_refused(
        ResourceKind::TargetGroup,
        &[
            "targetgroup/web/0123456789abcdef",
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789ABCDEF",
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcde",
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/web/0123456789abcdef",
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/-web/0123456789abcdef",
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/../0123456789abcdef",
            "arn:aws:ec2:us-east-1:123456789012:targetgroup/web/0123456789abcdef",
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef/x",
        ],
    );
    let event = aws_event();
    for (arn, part) in [
        (
            "arn:aws:elasticloadbalancing:us-east-1:210987654321:targetgroup/web/0123456789abcdef",
            "account `210987654321`",
        ),
        (
            "arn:aws-cn:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef",
            "partition `aws-cn`",
        ),
        (
            "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/web/0123456789abcdef",
            "region `eu-west-1`",
        ),
    ] {
        let message = validate(ResourceKind::TargetGroup, arn, &event).unwrap_err();
        assert!(message.contains(part), "{message}");
        assert!(message.contains("of this event"), "{message}");
    }
}

#[test]
fn an_arn_of_the_china_partition_is_accepted_only_from_an_event_of_that_partition() {
    let arn =
        "arn:aws-cn:elasticloadbalancing:cn-north-1:123456789012:targetgroup/web/0123456789abcdef";
    assert_eq!(
        validate(
            ResourceKind::TargetGroup,
            arn,
            &event_in("aws-cn", "cn-north-1")
        ),
        Ok(())
    );
    assert!(validate(ResourceKind::TargetGroup, arn, &aws_event()).is_err());
}

#[test]
fn the_events_partition_comes_from_its_alarm_arn_or_else_its_region() {
    assert_eq!(event_partition(&aws_event()), Some("aws"));
    assert_eq!(
        event_partition(&event_in("aws-us-gov", "us-gov-west-1")),
        Some("aws-us-gov")
    );
    for (region, partition) in [
        ("cn-northwest-1", "aws-cn"),
        ("us-gov-east-1", "aws-us-gov"),
        ("eu-west-3", "aws"),
    ] {
        let mut value = ec2_status_check("e-1", "ALARM", "i-0123456789abcdef0");
        value["region"] = json!(region);
        value["resources"] = json!([]);
        let event = AlarmEvent::from_value(value).unwrap();
        assert_eq!(event_partition(&event), Some(partition), "{region}");
    }
}

#[test]
fn a_huge_or_control_character_id_is_shown_truncated_and_escaped() {
    let event = aws_event();
    let huge = format!("i-{}", "x".repeat(10_000));
    let message = validate(ResourceKind::Ec2Instance, &huge, &event).unwrap_err();
    assert!(message.len() < 400, "{} bytes", message.len());
    assert!(message.contains("(10002 characters)"), "{message}");

    let message = validate(ResourceKind::Ec2Instance, "i-1\n\u{1b}[31m", &event).unwrap_err();
    assert!(!message.chars().any(char::is_control), "{message:?}");
    assert!(message.contains(r"i-1\n\u{1b}[31m"), "{message}");
    assert!(
        message.contains("8 or 17 lower-case hex digits"),
        "{message}"
    );

    let message = validate(ResourceKind::Ec2Instance, "`reboot`", &event).unwrap_err();
    assert!(
        message.starts_with(r"resource id `\`reboot\`` is not"),
        "{message}"
    );
}

fn shipped() -> RuleSet {
    RuleSet::shipped().expect("the shipped rules parse")
}

/// The sample event of `rule` with its first metric's `dimension` set to `value`.
fn sample_with(rule: &str, dimension: &str, value: &str) -> AlarmEvent {
    let path = format!(
        "{}/../../events/{rule}.alarm.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).expect("the sample event exists");
    let mut event: Value = serde_json::from_str(&text).expect("the sample is JSON");
    event["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"]["dimensions"]
        [dimension] = json!(value);
    AlarmEvent::from_value(event).expect("the sample parses")
}

#[test]
fn an_id_of_the_wrong_format_for_each_shipped_rule_is_a_named_skip_naming_the_id() {
    let rules = shipped();
    let cases = [
        (
            "ec2-instance-healing",
            "InstanceId",
            "vol-0123456789abcdef0",
        ),
        ("ec2-instance-healing", "InstanceId", "i-123; rm -rf /"),
        (
            "asg-capacity-healing",
            "AutoScalingGroupName",
            "web\u{0}asg",
        ),
        ("ebs-volume-healing", "VolumeId", "i-0123456789abcdef0"),
        ("ecs-service-healing", "ServiceName", "../orders"),
        ("lambda-function-healing", "FunctionName", "$(reboot)"),
        ("rds-instance-healing", "DBInstanceIdentifier", "orders--db"),
        ("circuit-breaker-healing", "Service", ".."),
        ("memory-leak-healing", "InstanceId", "i-0123456789ABCDEF0"),
        ("connection-pool-healing", "Service", "a/b"),
        (
            "database-corruption-healing",
            "DBInstanceIdentifier",
            "../../etc/passwd",
        ),
        (
            "cache-invalidation-healing",
            "CacheClusterId",
            "sessions cache",
        ),
        ("backup-verification-healing", "DBInstanceIdentifier", "9db"),
        (
            "alb-target-healing",
            "TargetGroup",
            "targetgroup/web/../../x",
        ),
        ("dns-failover-healing", "HealthCheckId", "not-a-uuid"),
        ("nat-route-healing", "NatGatewayId", "nat-good"),
    ];
    for (rule, dimension, value) in cases {
        let alarm = sample_with(rule, dimension, value);
        let layer = rules.get(rule).expect("a shipped rule").layer;
        match select(&rules, &alarm, layer) {
            Selection::Unresolved {
                rule: selected,
                reason,
                detail,
            } => {
                assert_eq!(selected.name, rule);
                assert_eq!(reason, SkipReason::InvalidResourceId, "{rule}: {detail}");
                assert!(detail.contains("is not"), "{rule}: {detail}");
                assert!(!detail.chars().any(char::is_control), "{rule}: {detail:?}");
            }
            other => panic!("{rule} with {value:?}: {other:?}"),
        }
    }
    assert_eq!(
        SkipReason::InvalidResourceId.as_str(),
        "invalid-resource-id"
    );
}

#[test]
fn every_sample_event_names_a_resource_of_its_rules_format() {
    let rules = shipped();
    for rule in rules.rules() {
        let path = format!(
            "{}/../../events/{}.alarm.json",
            env!("CARGO_MANIFEST_DIR"),
            rule.name
        );
        let text = std::fs::read_to_string(&path).expect("a sample per shipped rule");
        let alarm = AlarmEvent::from_slice(text.as_bytes()).expect("the sample parses");
        match select(&rules, &alarm, rule.layer) {
            Selection::Matched {
                rule: selected,
                resource_id,
            } => {
                assert_eq!(selected.name, rule.name);
                assert_eq!(
                    validate(rule.action.resource_kind(), &resource_id, &alarm),
                    Ok(())
                );
            }
            other => panic!("{}: {other:?}", rule.name),
        }
    }
}

#[test]
fn a_follow_up_whose_resource_id_is_not_of_its_rules_format_is_a_named_skip() {
    let rules = shipped();
    let follow_up = |resource_id: &str| FollowUp {
        layer: Layer::Infrastructure,
        rule: "ec2-instance-healing".to_owned(),
        resource_id: resource_id.to_owned(),
        incident_id: "incident-1".to_owned(),
        check: 1,
        kind: autoheal_core::FollowUpKind::Check,
        alarm: aws_event(),
    };

    let valid = follow_up("i-0123456789abcdef0");
    assert_eq!(
        valid
            .select(&rules, Layer::Infrastructure)
            .map(|rule| rule.name.as_str()),
        Ok("ec2-instance-healing")
    );
    let forged = follow_up("i-1; reboot");
    let refused = forged
        .select(&rules, Layer::Infrastructure)
        .expect_err("a forged id is refused");
    assert_eq!(refused.reason, SkipReason::InvalidResourceId);
    let blank = follow_up("  ");
    assert_eq!(
        blank
            .select(&rules, Layer::Infrastructure)
            .expect_err("a blank id is refused")
            .reason,
        SkipReason::EmptyResourceId
    );
    assert_eq!(
        valid
            .select(&rules, Layer::Network)
            .expect_err("another layer's rule")
            .reason,
        SkipReason::OtherLayer
    );
}
