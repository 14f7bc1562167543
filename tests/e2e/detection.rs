//! Detection against the emulator: the alarms autoheal's rules need, planned, created, kept
//! and deleted through the real clients, and read back through the SDK.

use std::collections::BTreeMap;
use std::process::{Command, Output};

use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, Statistic};
use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
use serde_json::{Value, json};

use autoheal_core::RuleSet;
use autoheal_core::policy::detection::plan::Change;
use autoheal_core::policy::detection::target::Scope;
use autoheal_detection::{Clients, Own, Settings};
use autoheal_tests::faults::{Fault, FaultProxy};
use autoheal_tests::{Emulator, binary};

const PROTECT: (&str, &str) = ("autoheal:protect", "true");

fn settings() -> Settings {
    Settings {
        rules: RuleSet::shipped().expect("shipped rules"),
        scope: Scope::Tagged,
        actions: Vec::new(),
        own: Own::default(),
    }
}

fn autoheal(emulator: &str, args: &[&str]) -> Output {
    let output = Command::new(binary("autoheal"))
        .args(args)
        .args(["--endpoint-url", emulator])
        .env_remove("AUTOHEAL_ALARM_SCOPE")
        .env_remove("AUTOHEAL_ALARM_ACTIONS")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("run autoheal");
    assert!(
        output.status.success(),
        "autoheal {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn last_line(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned()
}

fn tags(tagged: bool) -> Vec<(&'static str, &'static str)> {
    if tagged { vec![PROTECT] } else { Vec::new() }
}

async fn instance(ec2: &aws_sdk_ec2::Client, tagged: bool) -> String {
    let mut request = ec2
        .run_instances()
        .image_id("ami-12345678")
        .min_count(1)
        .max_count(1);
    if tagged {
        request = request.tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Instance)
                .tags(Tag::builder().key(PROTECT.0).value(PROTECT.1).build())
                .build(),
        );
    }
    let reservation = request.send().await.expect("run instance");
    reservation.instances()[0]
        .instance_id()
        .expect("id")
        .to_owned()
}

/// 30 resources of six kinds, every other one tagged `autoheal:protect=true`: the alarm
/// names the tagged ones need.
async fn fleet(emulator: &Emulator) -> Vec<String> {
    let sdk = emulator.sdk().await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let rds = aws_sdk_rds::Client::new(&sdk);
    let ecs = aws_sdk_ecs::Client::new(&sdk);
    let route53 = aws_sdk_route53::Client::new(&sdk);
    let autoscaling = aws_sdk_autoscaling::Client::new(&sdk);
    let mut expected = Vec::new();
    for n in 0..6 {
        let id = instance(&ec2, n % 2 == 0).await;
        if n % 2 == 0 {
            expected.push(format!("ec2-instance-healing-{id}"));
        }
    }
    for n in 0..6 {
        let mut request = ec2.create_volume().availability_zone("us-east-1a").size(8);
        for (key, value) in tags(n % 2 == 0) {
            request = request.tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::Volume)
                    .tags(Tag::builder().key(key).value(value).build())
                    .build(),
            );
        }
        let id = request.send().await.expect("volume").volume_id.expect("id");
        if n % 2 == 0 {
            expected.push(format!("ebs-volume-healing-{id}"));
        }
    }
    for n in 0..4 {
        let name = format!("orders-db-{n}");
        let mut request = rds
            .create_db_instance()
            .db_instance_identifier(&name)
            .db_instance_class("db.t3.micro")
            .engine("postgres")
            .master_username("admin")
            .master_user_password("password-123")
            .allocated_storage(20);
        for (key, value) in tags(n % 2 == 0) {
            request = request.tags(
                aws_sdk_rds::types::Tag::builder()
                    .key(key)
                    .value(value)
                    .build(),
            );
        }
        request.send().await.expect("db instance");
        if n % 2 == 0 {
            expected.push(format!("rds-instance-healing-{name}"));
        }
    }
    ecs.create_cluster()
        .cluster_name("prod")
        .send()
        .await
        .expect("cluster");
    for n in 0..4 {
        let name = format!("api-{n}");
        let mut request = ecs
            .create_service()
            .cluster("prod")
            .service_name(&name)
            .desired_count(2);
        for (key, value) in tags(n % 2 == 0) {
            request = request.tags(
                aws_sdk_ecs::types::Tag::builder()
                    .key(key)
                    .value(value)
                    .build(),
            );
        }
        request.send().await.expect("service");
        if n % 2 == 0 {
            expected.push(format!("ecs-service-healing-prod/{name}"));
        }
    }
    for n in 0..4 {
        let check = route53
            .create_health_check()
            .caller_reference(format!("check-{n}"))
            .health_check_config(
                aws_sdk_route53::types::HealthCheckConfig::builder()
                    .r#type(aws_sdk_route53::types::HealthCheckType::Http)
                    .fully_qualified_domain_name(format!("api-{n}.example.com"))
                    .build()
                    .expect("config"),
            )
            .send()
            .await
            .expect("health check");
        let id = check.health_check.expect("check").id;
        if n % 2 == 0 {
            route53
                .change_tags_for_resource()
                .resource_type(aws_sdk_route53::types::TagResourceType::Healthcheck)
                .resource_id(&id)
                .add_tags(
                    aws_sdk_route53::types::Tag::builder()
                        .key(PROTECT.0)
                        .value(PROTECT.1)
                        .build(),
                )
                .send()
                .await
                .expect("tag health check");
            expected.push(format!("dns-failover-healing-{id}"));
        }
    }
    autoscaling
        .create_launch_configuration()
        .launch_configuration_name("web")
        .image_id("ami-12345678")
        .instance_type("t3.micro")
        .send()
        .await
        .expect("launch configuration");
    for n in 0..6 {
        let name = format!("web-asg-{n}");
        let mut request = autoscaling
            .create_auto_scaling_group()
            .auto_scaling_group_name(&name)
            .launch_configuration_name("web")
            .availability_zones("us-east-1a")
            .min_size(0)
            .max_size(2)
            .desired_capacity(0);
        for (key, value) in tags(n % 2 == 0) {
            request = request.tags(
                aws_sdk_autoscaling::types::Tag::builder()
                    .key(key)
                    .value(value)
                    .propagate_at_launch(false)
                    .build(),
            );
        }
        request.send().await.expect("group");
        if n % 2 == 0 {
            expected.push(format!("asg-capacity-healing-{name}"));
        }
    }
    expected.sort();
    assert_eq!(expected.len(), 15);
    expected
}

/// The alarms in the emulator, by name, with their tags.
async fn alarms(
    sdk: &aws_config::SdkConfig,
) -> BTreeMap<
    String,
    (
        aws_sdk_cloudwatch::types::MetricAlarm,
        BTreeMap<String, String>,
    ),
> {
    let cloudwatch = aws_sdk_cloudwatch::Client::new(sdk);
    let mut found = BTreeMap::new();
    let listed = cloudwatch.describe_alarms().send().await.expect("alarms");
    for alarm in listed.metric_alarms() {
        let tags = cloudwatch
            .list_tags_for_resource()
            .resource_arn(alarm.alarm_arn().expect("arn"))
            .send()
            .await
            .expect("tags")
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned())))
            .collect();
        found.insert(
            alarm.alarm_name().expect("name").to_owned(),
            (alarm.clone(), tags),
        );
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_half_tagged_gets_exactly_the_alarms_its_tagged_half_needs_once() {
    let emulator = Emulator::start();
    let url = emulator.url();
    let expected = fleet(&emulator).await;
    let sdk = emulator.sdk().await;

    let survey = autoheal_detection::survey(&Clients::new(&sdk), &settings())
        .await
        .expect("survey");
    let mut planned: Vec<String> = survey
        .plan
        .changes
        .iter()
        .map(|change| {
            assert!(matches!(change, Change::Create { .. }), "{change:?}");
            change.name().to_owned()
        })
        .collect();
    planned.sort();
    assert_eq!(planned, expected);
    let plan = autoheal(&url, &["alarms", "plan"]);
    assert_eq!(last_line(&plan), "15 to create, 0 to update, 0 to delete");
    assert!(alarms(&sdk).await.is_empty(), "plan changes nothing");

    let before = autoheal(&url, &["coverage"]);
    assert_eq!(last_line(&before), "0 of 15 resources protected");

    let apply = autoheal(&url, &["alarms", "apply"]);
    assert_eq!(
        last_line(&apply),
        "15 created, 0 updated, 0 deleted, 0 unchanged"
    );
    let written = alarms(&sdk).await;
    assert_eq!(written.keys().cloned().collect::<Vec<_>>(), expected);
    for (name, (alarm, tags)) in &written {
        let rule = name.split('-').take(3).collect::<Vec<_>>().join("-");
        assert_eq!(
            tags.get("autoheal:managed").map(String::as_str),
            Some("true"),
            "{name}"
        );
        assert_eq!(tags.get("autoheal:rule"), Some(&rule), "{name}");
        assert!(alarm.evaluation_periods().is_some(), "{name}");
    }
    let ecs = &written["ecs-service-healing-prod/api-0"].0;
    assert_eq!(
        ecs.metrics().len(),
        3,
        "running minus desired, as metric math"
    );
    assert_eq!(
        ecs.comparison_operator(),
        Some(&ComparisonOperator::LessThanThreshold)
    );

    let after = autoheal(&url, &["coverage", "--output", "json"]);
    let coverage: Value = serde_json::from_slice(&after.stdout).expect("JSON");
    assert_eq!(
        (
            coverage["protected"].as_u64(),
            coverage["resources"].as_u64()
        ),
        (Some(15), Some(15))
    );
    assert!(
        coverage["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .all(|e| e["status"] == "protected")
    );
    assert_eq!(
        last_line(&autoheal(&url, &["coverage"])),
        "15 of 15 resources protected"
    );

    let again = autoheal(&url, &["alarms", "apply"]);
    assert_eq!(
        last_line(&again),
        "0 created, 0 updated, 0 deleted, 15 unchanged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_is_put_back_a_persons_alarm_left_alone_and_a_gone_instances_alarm_deleted() {
    let emulator = Emulator::start();
    let url = emulator.url();
    let sdk = emulator.sdk().await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&sdk);
    let drifting = instance(&ec2, true).await;
    let theirs = instance(&ec2, true).await;
    let leaving = instance(&ec2, true).await;
    autoheal(&url, &["alarms", "apply"]);

    // A person raises the threshold of autoheal's alarm, and puts their own alarm on another
    // instance's status check.
    let drifted = format!("ec2-instance-healing-{drifting}");
    let written = alarms(&sdk).await;
    let original = &written[&drifted].0;
    cloudwatch
        .put_metric_alarm()
        .alarm_name(&drifted)
        .namespace("AWS/EC2")
        .metric_name("StatusCheckFailed")
        .dimensions(
            Dimension::builder()
                .name("InstanceId")
                .value(&drifting)
                .build(),
        )
        .statistic(Statistic::Maximum)
        .period(60)
        .evaluation_periods(2)
        .datapoints_to_alarm(2)
        .threshold(5.0)
        .comparison_operator(ComparisonOperator::GreaterThanOrEqualToThreshold)
        .set_alarm_description(original.alarm_description().map(str::to_owned))
        .send()
        .await
        .expect("drift");
    let own = "web-02-system-check";
    cloudwatch
        .put_metric_alarm()
        .alarm_name(own)
        .namespace("AWS/EC2")
        .metric_name("StatusCheckFailed_System")
        .dimensions(
            Dimension::builder()
                .name("InstanceId")
                .value(&theirs)
                .build(),
        )
        .statistic(Statistic::Maximum)
        .period(300)
        .evaluation_periods(1)
        .threshold(1.0)
        .comparison_operator(ComparisonOperator::GreaterThanOrEqualToThreshold)
        .send()
        .await
        .expect("their alarm");
    ec2.terminate_instances()
        .instance_ids(&leaving)
        .send()
        .await
        .expect("terminate");

    let plan = String::from_utf8_lossy(&autoheal(&url, &["alarms", "plan"]).stdout).into_owned();
    assert!(
        plan.contains(&format!("~ {drifted}  (threshold 5 -> 1)")),
        "{plan}"
    );
    assert!(
        plan.contains(&format!(
            "- ec2-instance-healing-{leaving}  (its resource is gone"
        )),
        "{plan}"
    );
    assert!(
        plan.contains(&format!("- ec2-instance-healing-{theirs}  (alarm `{own}`")),
        "{plan}"
    );
    assert!(
        plan.ends_with("0 to create, 1 to update, 2 to delete\n"),
        "{plan}"
    );

    autoheal(&url, &["alarms", "apply"]);
    let after = alarms(&sdk).await;
    assert_eq!(after[&drifted].0.threshold(), Some(1.0));
    assert!(!after.contains_key(&format!("ec2-instance-healing-{leaving}")));
    assert!(!after.contains_key(&format!("ec2-instance-healing-{theirs}")));
    let (their_alarm, their_tags) = &after[own];
    assert_eq!(
        (their_alarm.period(), their_alarm.threshold()),
        (Some(300), Some(1.0))
    );
    assert!(
        their_tags.is_empty(),
        "their alarm is not tagged by autoheal"
    );

    let coverage = String::from_utf8_lossy(&autoheal(&url, &["coverage"]).stdout).into_owned();
    let row = coverage
        .lines()
        .find(|line| line.contains(&theirs))
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "));
    assert_eq!(
        row,
        Some(format!(
            "ec2-instance-healing {theirs} protected (yours) {own}"
        )),
        "{coverage}"
    );
    assert!(
        coverage.ends_with("2 of 2 resources protected\n"),
        "{coverage}"
    );
    let again = autoheal(&url, &["alarms", "apply"]);
    assert_eq!(
        last_line(&again),
        "0 created, 0 updated, 0 deleted, 1 unchanged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_launched_and_tagged_is_protected_after_one_run_of_the_function() {
    let emulator = Emulator::start();
    let sdk = emulator.sdk().await;
    let clients = Clients::new(&sdk);
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let id = instance(&ec2, true).await;
    let event = json!({
        "version": "0",
        "id": "7bf73129-1428-4cd3-a780-95db273d1602",
        "detail-type": "EC2 Instance State-change Notification",
        "source": "aws.ec2",
        "account": "123456789012",
        "time": "2026-11-24T06:00:00Z",
        "region": "us-east-1",
        "resources": [format!("arn:aws:ec2:us-east-1:123456789012:instance/{id}")],
        "detail": { "instance-id": id, "state": "running" }
    });
    let answer = autoheal_detection::handle(&clients, &settings(), &event)
        .await
        .expect("one run");
    assert_eq!(
        answer["made"],
        json!([{ "sign": "+", "alarm": format!("ec2-instance-healing-{id}") }])
    );
    let survey = autoheal_detection::survey(&clients, &settings())
        .await
        .expect("survey");
    assert_eq!(survey.coverage.summary(), "1 of 1 resources protected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_writes_are_retried_and_a_write_that_keeps_failing_leaves_whole_alarms() {
    let emulator = Emulator::start();
    let proxy = FaultProxy::start(&emulator.url()).await;
    let sdk = proxy.sdk().await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    for _ in 0..4 {
        instance(&ec2, true).await;
    }
    let clients = Clients::new(&sdk);

    // Throttled three times: retried, and every alarm is made once.
    proxy.inject("monitoring:PutMetricAlarm", Fault::Throttle, Some(3));
    let applied = autoheal_detection::apply(&clients, &settings())
        .await
        .expect("apply");
    assert_eq!(applied.made.len(), 4);
    assert_eq!(proxy.count("monitoring:PutMetricAlarm"), 4 + 3);
    assert_eq!(alarms(&sdk).await.len(), 4);

    // Two more instances; the second write keeps being throttled: the run stops, saying how
    // far it got, and what it made is whole (tagged as autoheal's).
    instance(&ec2, true).await;
    instance(&ec2, true).await;
    proxy.inject_after("monitoring:PutMetricAlarm", 1, Fault::Throttle, None);
    let error = autoheal_detection::apply(&clients, &settings())
        .await
        .expect_err("the second write fails");
    assert!(
        error.to_string().contains("(1 of 2 changes made)"),
        "{error}"
    );
    let partial = alarms(&sdk).await;
    assert_eq!(partial.len(), 5);
    assert!(
        partial
            .values()
            .all(|(_, tags)| tags.get("autoheal:managed").map(String::as_str) == Some("true"))
    );
    proxy.heal();
    let rest = autoheal_detection::apply(&clients, &settings())
        .await
        .expect("apply");
    assert_eq!(rest.made.len(), 1);
    assert_eq!(alarms(&sdk).await.len(), 6);
}
