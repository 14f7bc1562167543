//! `template.yaml` as a security reviewer reads it: a first deploy changes nothing, each role
//! can only heal (every narrowed grant denies what healing never needs), and autoheal cannot
//! be silenced without someone hearing of it (self-alarms on a second channel, CloudTrail's
//! record of changes to autoheal itself, a table only its roles write).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use autoheal_tests::cfn::{ACCOUNT, PARTITION, REGION, Stack, as_list, functions};
use autoheal_tests::iam::{Request, allowed, request, why_denied};
use autoheal_tests::{Emulator, create_queue, template, workspace};

const STACK: &str = "autoheal";

fn arn(service: &str, resource: &str) -> String {
    format!("arn:{PARTITION}:{service}:{REGION}:{ACCOUNT}:{resource}")
}

const TOPIC: &str = "autoheal-NotificationTopic-1A2B3C";
const SECOND_TOPIC: &str = "autoheal-SecurityTopic-4D5E6F";
const SECURITY_TEAM_TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:security-alerts";
const QUEUE: &str = "autoheal-DeadLetterQueue-1A2B3C";
const TABLE: &str = "autoheal-StateTable-1A2B3C";
const GROUP: &str = "autoheal-follow-ups";

/// A stack named `autoheal`, with every resource the tests below read given a value.
fn stack() -> Stack {
    let mut stack = Stack::new(&[])
        .with_resource("NotificationTopic", &arn("sns", TOPIC))
        .with_resource("NotificationTopic.TopicName", TOPIC)
        .with_resource("NotificationKey.Arn", &arn("kms", "key/notification-key"))
        .with_resource("SecurityTopic", &arn("sns", SECOND_TOPIC))
        .with_resource("SecurityKey.Arn", &arn("kms", "key/second-channel-key"))
        .with_resource("StateTable", TABLE)
        .with_resource(
            "StateTable.Arn",
            &arn("dynamodb", &format!("table/{TABLE}")),
        )
        .with_resource("FollowUpScheduleGroup", GROUP)
        .with_resource(
            "FollowUpSchedulerRole.Arn",
            &format!("arn:{PARTITION}:iam::{ACCOUNT}:role/autoheal-FollowUpSchedulerRole-1A2B"),
        )
        .with_resource(
            "DeadLetterQueue",
            &format!("https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{QUEUE}"),
        )
        .with_resource("DeadLetterQueue.Arn", &arn("sqs", QUEUE))
        .with_resource("DeadLetterQueue.QueueName", QUEUE)
        .with_resource("RestartProcessDocument", "autoheal-restart-process");
    for layer in [
        "Infrastructure",
        "Platform",
        "Application",
        "Data",
        "Network",
    ] {
        stack = stack.with_resource(
            &format!("{layer}Function"),
            &format!("{STACK}-{}", layer.to_lowercase()),
        );
    }
    stack
}

/// The stack with a second channel: its own topic (an e-mail) and a security team's topic.
fn with_second_channel() -> Stack {
    stack()
        .with_parameter("SecurityNotificationEmail", "security@example.com")
        .with_parameter("SecurityTopicArn", SECURITY_TEAM_TOPIC)
}

fn resource<'t>(template: &'t Value, name: &str) -> &'t Value {
    let found = &template["Resources"][name];
    assert!(found.is_object(), "no resource {name}");
    found
}

// ---------------------------------------------------------------------------------------
// A first deploy changes nothing.

#[test]
fn a_first_deploy_is_in_shadow_mode_and_the_readme_says_how_to_leave_it() {
    let template = template();
    let mode = &template["Parameters"]["Mode"];
    assert_eq!(mode["Default"], "shadow", "{mode}");
    assert_eq!(
        template["Globals"]["Function"]["Environment"]["Variables"]["AUTOHEAL_MODE"],
        json!({ "Ref": "Mode" })
    );
    let readme = std::fs::read_to_string(workspace().join("README.md")).expect("README");
    let deploy = readme
        .split("\n## Deploy\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("the Deploy section");
    for needed in [
        "autoheal history",
        "autoheal stats",
        "--parameter-overrides Mode=enforce",
    ] {
        assert!(
            deploy.contains(needed),
            "the Deploy section shows `{needed}`"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Roles that can only heal.

/// Every grant narrowed to healing: what healing needs is allowed, its nearest abuse denied.
#[test]
fn each_narrowed_grant_allows_the_heal_and_denies_what_healing_never_needs() {
    let policies = stack().function_statements(&template());
    let instance = arn("ec2", "instance/i-0123456789abcdef0");
    let volume = arn("ec2", "volume/vol-0123456789abcdef0");
    let snapshot = format!("arn:{PARTITION}:ec2:{REGION}::snapshot/snap-0123456789abcdef0");
    let group = arn(
        "autoscaling",
        "autoScalingGroup:0e1f:autoScalingGroupName/web",
    );
    let zone = format!("arn:{PARTITION}:route53:::hostedzone/Z1");
    let records = |types: &[&str]| {
        types.iter().fold(
            request("route53:ChangeResourceRecordSets", &zone)
                .with("route53:ChangeResourceRecordSetsActions", "DELETE")
                .with("route53:ChangeResourceRecordSetsActions", "CREATE"),
            |r, t| r.with("route53:ChangeResourceRecordSetsRecordTypes", t),
        )
    };
    let db = |name: &str| arn("rds", &format!("db:{name}"));
    let rds_snapshot = |name: &str| arn("rds", &format!("snapshot:{name}"));
    let health_check_only = || request("autoscaling:UpdateAutoScalingGroup", &group);
    let (infrastructure, platform, application, data, network) = (
        "InfrastructureFunction",
        "PlatformFunction",
        "ApplicationFunction",
        "DataFunction",
        "NetworkFunction",
    );
    // (function, request, allowed?, why)
    #[rustfmt::skip]
    let cases: Vec<(&str, Request, bool, &str)> = vec![
        // Run Command: the stack's restart document only, never a shell.
        (application, request("ssm:SendCommand", &arn("ssm", "document/autoheal-restart-process")), true, "the restart document"),
        (application, request("ssm:SendCommand", &format!("arn:{PARTITION}:ssm:{REGION}::document/AWS-RunShellScript")), false, "AWS-RunShellScript: root on the fleet"),
        (application, request("ssm:SendCommand", &format!("arn:{PARTITION}:ssm:{REGION}::document/AWS-RunPowerShellScript")), false, "another shell"),
        (application, request("ssm:SendCommand", &arn("ssm", "document/team-runbook")), false, "another document of the account"),
        (application, request("ssm:SendCommand", &instance), true, "on an instance"),
        (application, request("ssm:SendCommand", &instance).resource_tag("autoheal:disabled", "true"), false, "on an opted-out instance"),
        // Route 53: address and alias records only.
        (network, records(&["A"]), true, "an A record"),
        (network, records(&["AAAA"]), true, "an AAAA record"),
        (network, records(&["CNAME"]), true, "a CNAME record"),
        (network, records(&["MX"]), false, "a mail record"),
        (network, records(&["TXT"]), false, "a certificate's validation record"),
        (network, records(&["NS"]), false, "a delegation"),
        (network, records(&["A", "MX"]), false, "an MX beside an A"),
        (network, request("route53:ChangeResourceRecordSets", &zone).with("route53:ChangeResourceRecordSetsActions", "DELETE").with("route53:ChangeResourceRecordSetsActions", "CREATE"), false, "record types unknown"),
        // Auto Scaling: the health check switch only, never a group's limits, subnets or launch.
        (infrastructure, health_check_only(), true, "switch to ELB health checks"),
        (infrastructure, health_check_only().with("autoscaling:MinSize", "0"), false, "a min change"),
        (infrastructure, health_check_only().with("autoscaling:MaxSize", "100"), false, "a max change"),
        (infrastructure, health_check_only().with("autoscaling:VPCZoneIdentifiers", "subnet-attacker"), false, "a subnet change"),
        (infrastructure, health_check_only().with("autoscaling:LaunchConfigurationName", "backdoored"), false, "a launch configuration change"),
        (infrastructure, health_check_only().with("autoscaling:LaunchTemplateVersionSpecified", "true"), false, "a launch template change"),
        (infrastructure, health_check_only().with("autoscaling:InstanceTypes", "p5.48xlarge"), false, "an instance type change"),
        (infrastructure, health_check_only().resource_tag("autoheal:disabled", "true"), false, "an opted-out group"),
        (infrastructure, request("autoscaling:SetDesiredCapacity", &group), true, "scale out (bounded by the group's own max)"),
        // EBS: volumes only from autoheal's own snapshots, attached only as autoheal's replacement.
        (infrastructure, request("ec2:CreateVolume", &volume).request_tag("autoheal:replaces", "vol-1"), true, "a tagged replacement"),
        (infrastructure, request("ec2:CreateVolume", &volume), false, "an untagged volume"),
        (infrastructure, request("ec2:CreateVolume", &snapshot).resource_tag("autoheal:managed", "true"), true, "from autoheal's snapshot"),
        (infrastructure, request("ec2:CreateVolume", &snapshot), false, "from a foreign snapshot"),
        (infrastructure, request("ec2:CreateVolume", &snapshot).resource_tag("autoheal:managed", "false"), false, "from a snapshot not marked autoheal's"),
        (infrastructure, request("ec2:AttachVolume", &volume).resource_tag("autoheal:replaces", "vol-1"), true, "attach the replacement"),
        (infrastructure, request("ec2:AttachVolume", &volume), false, "attach someone's volume to read it"),
        (infrastructure, request("ec2:AttachVolume", &instance), true, "onto the instance"),
        (infrastructure, request("ec2:DetachVolume", &volume), true, "detach the stalled volume"),
        (infrastructure, request("ec2:DetachVolume", &volume).resource_tag("autoheal:disabled", "true"), false, "an opted-out volume"),
        // RDS: verification copies under their prefix, from autoheal's backups, deleted only there.
        (data, request("rds:RestoreDBInstanceFromDBSnapshot", &db("autoheal-verify-orders-db-1a2b")).request_tag("autoheal:verification-of", "orders-db"), true, "a tagged verification copy"),
        (data, request("rds:RestoreDBInstanceFromDBSnapshot", &db("orders-db-verify-1a2b")).request_tag("autoheal:verification-of", "orders-db"), false, "outside the prefix"),
        (data, request("rds:RestoreDBInstanceFromDBSnapshot", &db("autoheal-verify-orders-db-1a2b")), false, "an untagged copy"),
        (data, request("rds:RestoreDBInstanceFromDBSnapshot", &rds_snapshot("autoheal-verify-orders-db-1a2b")).resource_tag("autoheal:managed", "true"), true, "from autoheal's backup"),
        (data, request("rds:RestoreDBInstanceFromDBSnapshot", &rds_snapshot("autoheal-verify-orders-db-1a2b")), false, "from a backup not marked autoheal's"),
        (data, request("rds:RestoreDBInstanceFromDBSnapshot", &rds_snapshot("nightly-orders-db")).resource_tag("autoheal:managed", "true"), false, "from someone's snapshot"),
        (data, request("rds:DeleteDBInstance", &db("autoheal-verify-orders-db-1a2b")).resource_tag("autoheal:verification-of", "orders-db"), true, "delete the verification copy"),
        (data, request("rds:DeleteDBInstance", &db("orders-db-verify-1a2b")).resource_tag("autoheal:verification-of", "orders-db"), false, "a database outside the prefix"),
        (data, request("rds:AddTagsToResource", &db("orders-db")).request_tag("autoheal:verification-of", "orders-db"), false, "mark a production database as a copy"),
        (data, request("rds:AddTagsToResource", &db("autoheal-verify-orders-db-1a2b")).request_tag("autoheal:verification-of", "orders-db").request_tag("autoheal:incident", "i-1"), true, "mark the copy at creation"),
        (data, request("rds:AddTagsToResource", &db("orders-db-restored-1a2b")).request_tag("autoheal:restored-from", "orders-db").request_tag("autoheal:incident", "i-1"), true, "mark a restored copy at creation"),
        (data, request("rds:AddTagsToResource", &db("orders-db-restored-1a2b")).request_tag("autoheal:verification-of", "orders-db"), false, "a copy's mark on a restored instance"),
        (data, request("rds:RestoreDBInstanceToPointInTime", &db("orders-db")), true, "restore from a source"),
        (data, request("rds:RestoreDBInstanceToPointInTime", &db("orders-db")).resource_tag("autoheal:disabled", "true"), false, "from an opted-out source"),
        (data, request("rds:RestoreDBInstanceToPointInTime", &arn("rds", "subgrp:orders")), true, "in the source's subnet group"),
        (data, request("rds:ModifyDBInstance", &db("orders-db")), true, "the backup policy"),
        (data, request("rds:ModifyDBInstance", &arn("rds", "pg:open-to-all")), false, "a parameter group"),
        (data, request("rds:ModifyDBInstance", &arn("rds", "secgrp:public")), false, "a security group"),
        // Grants no code uses are gone.
        (platform, request("rds:ListTagsForResource", &db("orders-db")), false, "unused"),
        (data, request("rds:ListTagsForResource", &db("orders-db")), false, "unused"),
        // The hooks: the stack's own names when none is given.
        (data, request("lambda:InvokeFunction", &arn("lambda", "function:autoheal-cache-hook")), true, "the stack's cache hook"),
        (data, request("lambda:InvokeFunction", &arn("lambda", "function:autoheal-integrity-hook")), true, "the stack's integrity hook"),
        (data, request("lambda:InvokeFunction", &arn("lambda", "function:payments-api")), false, "any other function"),
    ];
    let mut wrong = Vec::new();
    for (function, request, expected, why) in &cases {
        let statements = &policies[*function];
        if allowed(statements, request) != *expected {
            wrong.push(format!(
                "{function}: {} on {} {:?} should be {} ({why}); {}",
                request.action,
                request.resource,
                request.context,
                if *expected { "allowed" } else { "denied" },
                why_denied(statements, request)
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Hooks given as ARNs: those functions and no other, not even the stack's own names.
#[test]
fn hooks_given_as_arns_are_the_only_functions_the_data_layer_may_invoke() {
    let cache = arn("lambda", "function:orders-cache-warmer");
    let integrity = arn("lambda", "function:orders-integrity:live");
    let policies = stack()
        .with_parameter("CacheHookFunctionArn", &cache)
        .with_parameter("IntegrityHookFunctionArn", &integrity)
        .function_statements(&template());
    let statements = &policies["DataFunction"];
    let invoke = |function: &str| request("lambda:InvokeFunction", function);
    assert!(allowed(statements, &invoke(&cache)));
    assert!(allowed(statements, &invoke(&integrity)));
    assert!(!allowed(
        statements,
        &invoke(&arn("lambda", "function:autoheal-cache-hook"))
    ));
    assert!(!allowed(
        statements,
        &invoke(&arn("lambda", "function:orders-integrity:canary"))
    ));
}

// ---------------------------------------------------------------------------------------
// Not silenced silently.

/// A self-alarm and the datapoint a failure of what it watches makes.
struct Watch {
    alarm: &'static str,
    namespace: &'static str,
    metric: &'static str,
    dimensions: Vec<(&'static str, String)>,
}

/// What each self-alarm watches, with the dimensions AWS publishes the metric with.
fn watches() -> Vec<Watch> {
    let mut found = vec![
        Watch {
            alarm: "DeadLetterQueueAlarm",
            namespace: "AWS/SQS",
            metric: "NumberOfMessagesSent",
            dimensions: vec![("QueueName", QUEUE.to_owned())],
        },
        Watch {
            alarm: "FollowUpsDroppedAlarm",
            namespace: "AWS/Scheduler",
            metric: "InvocationDroppedCount",
            dimensions: vec![("ScheduleGroup", GROUP.to_owned())],
        },
        Watch {
            alarm: "FollowUpsFailedAlarm",
            namespace: "AWS/Scheduler",
            metric: "TargetErrorCount",
            dimensions: vec![("ScheduleGroup", GROUP.to_owned())],
        },
        Watch {
            alarm: "FollowUpsLostAlarm",
            namespace: "AWS/Scheduler",
            metric: "InvocationsFailedToBeSentToDeadLetterCount",
            dimensions: vec![("ScheduleGroup", GROUP.to_owned())],
        },
        Watch {
            alarm: "NotificationsFailedAlarm",
            namespace: "AWS/SNS",
            metric: "NumberOfNotificationsFailed",
            dimensions: vec![("TopicName", TOPIC.to_owned())],
        },
    ];
    for (alarm, layer) in [
        ("InfrastructureErrorsAlarm", "infrastructure"),
        ("PlatformErrorsAlarm", "platform"),
        ("ApplicationErrorsAlarm", "application"),
        ("DataErrorsAlarm", "data"),
        ("NetworkErrorsAlarm", "network"),
    ] {
        found.push(Watch {
            alarm,
            namespace: "AWS/Lambda",
            metric: "Errors",
            dimensions: vec![("FunctionName", format!("{STACK}-{layer}"))],
        });
    }
    found
}

/// Whether `alarm` goes into ALARM when one evaluation period's datapoints of its metric (a
/// Sum, or whatever its statistic is, over its period) add up to `value`: CloudWatch's
/// evaluation of a single-metric alarm with one evaluation period.
fn breaches(alarm: &Value, watch: &Watch, value: f64) -> bool {
    let properties = &alarm["Properties"];
    assert_eq!(properties["Namespace"], watch.namespace, "{}", watch.alarm);
    assert_eq!(properties["MetricName"], watch.metric, "{}", watch.alarm);
    let dimensions: BTreeMap<String, String> = as_list(&properties["Dimensions"])
        .iter()
        .map(|d| {
            (
                d["Name"].as_str().expect("a name").to_owned(),
                d["Value"].as_str().expect("a concrete value").to_owned(),
            )
        })
        .collect();
    let published: BTreeMap<String, String> = watch
        .dimensions
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    assert_eq!(
        dimensions, published,
        "{}: the alarm's dimensions are the metric's as AWS publishes it",
        watch.alarm
    );
    assert_eq!(
        properties["Statistic"], "Sum",
        "{}: every event counts",
        watch.alarm
    );
    assert_eq!(
        properties["EvaluationPeriods"],
        json!(1),
        "{}: at once",
        watch.alarm
    );
    assert_eq!(
        properties["TreatMissingData"], "notBreaching",
        "{}: no datapoint is no failure",
        watch.alarm
    );
    let threshold = properties["Threshold"].as_f64().expect("a threshold");
    match properties["ComparisonOperator"].as_str() {
        Some("GreaterThanThreshold") => value > threshold,
        Some("GreaterThanOrEqualToThreshold") => value >= threshold,
        other => panic!("{}: comparison {other:?}", watch.alarm),
    }
}

/// Each self-alarm fires on one failure of what it watches (one message sent to the
/// dead-letter queue, one follow-up dropped, …) and is OK again in a period without one, so a
/// later failure notifies again (an alarm on the queue's depth stayed in ALARM until someone
/// drained it). Each notifies the topic and, when there is one, the second channel.
#[test]
fn each_self_alarm_fires_on_one_failure_and_notifies_the_second_channel() {
    let template = template();
    let plain = stack();
    let second = with_second_channel();
    for watch in watches() {
        let declared = resource(&template, watch.alarm);
        assert_eq!(
            declared["Type"], "AWS::CloudWatch::Alarm",
            "{}",
            watch.alarm
        );
        let alarm = plain.concrete(&template, declared).expect("the alarm");
        let name = alarm["Properties"]["AlarmName"].as_str().expect("a name");
        assert!(
            name.starts_with(&format!("{STACK}-")),
            "{name}: named `<stack>-…`, so the topics' policies let it publish and no layer routes it"
        );
        assert!(breaches(&alarm, &watch, 1.0), "{name}: one failure");
        assert!(
            !breaches(&alarm, &watch, 0.0),
            "{name}: a period without one"
        );

        let topic = arn("sns", TOPIC);
        assert_eq!(
            alarm["Properties"]["AlarmActions"],
            json!([topic]),
            "{name}: the topic, with no second channel"
        );
        let with_second = second.concrete(&template, declared).expect("the alarm");
        assert_eq!(
            with_second["Properties"]["AlarmActions"],
            json!([topic, arn("sns", SECOND_TOPIC), SECURITY_TEAM_TOPIC]),
            "{name}: the topic and the second channel"
        );
    }
}

/// The second channel is a topic under a key of its own, that this stack's alarms and rules
/// may publish to: the notification topic's key disabled does not silence it.
#[test]
fn the_second_channel_has_its_own_topic_and_key() {
    let template = template();
    let second = with_second_channel();
    let topic = resource(&template, "SecurityTopic");
    assert_eq!(topic["Condition"], "HasSecurityEmail");
    assert_eq!(
        topic["Properties"]["KmsMasterKeyId"],
        json!({ "Fn::GetAtt": ["SecurityKey", "Arn"] }),
        "its own key, not the notification topic's"
    );
    let policy = second
        .concrete(
            &template,
            &resource(&template, "SecurityTopicPolicy")["Properties"],
        )
        .expect("the policy");
    let statements = as_list(&policy["PolicyDocument"]["Statement"]);
    let publish = |principal: &str, source: &str| {
        statements.iter().any(|s| {
            s["Principal"]["Service"] == principal
                && autoheal_tests::iam::statement_applies(
                    s,
                    &request("sns:Publish", &arn("sns", SECOND_TOPIC))
                        .with("aws:SourceArn", source),
                )
        })
    };
    assert!(publish(
        "cloudwatch.amazonaws.com",
        &arn("cloudwatch", "alarm:autoheal-follow-ups-dropped")
    ));
    assert!(publish(
        "events.amazonaws.com",
        &arn("events", "rule/autoheal-self-protection")
    ));
    assert!(!publish(
        "cloudwatch.amazonaws.com",
        &arn("cloudwatch", "alarm:someone-elses")
    ));
    let key = second
        .concrete(&template, &resource(&template, "SecurityKey")["Properties"])
        .expect("the key");
    assert_eq!(key["EnableKeyRotation"], json!(true));
}

/// Follow-ups EventBridge Scheduler cannot deliver go to the dead-letter queue (the stack
/// names it to every function, and lets the scheduler's role, and nothing else of it, send
/// there), where the dead-letter alarm hears of them.
#[test]
fn undelivered_follow_ups_are_kept_in_the_dead_letter_queue() {
    let template = template();
    let stack = stack();
    let variables = stack
        .concrete(
            &template,
            &template["Globals"]["Function"]["Environment"]["Variables"],
        )
        .expect("variables");
    assert_eq!(
        variables["AUTOHEAL_SCHEDULE_DEAD_LETTER_ARN"],
        arn("sqs", QUEUE)
    );
    let role = stack
        .concrete(
            &template,
            &resource(&template, "FollowUpSchedulerRole")["Properties"],
        )
        .expect("the role");
    let statements: Vec<Value> = as_list(&role["Policies"])
        .iter()
        .flat_map(|p| as_list(&p["PolicyDocument"]["Statement"]))
        .collect();
    assert!(allowed(
        &statements,
        &request("sqs:SendMessage", &arn("sqs", QUEUE))
    ));
    assert!(!allowed(
        &statements,
        &request("sqs:SendMessage", &arn("sqs", "someone-elses"))
    ));
    assert!(!allowed(
        &statements,
        &request("sqs:ReceiveMessage", &arn("sqs", QUEUE))
    ));
}

/// Each follow-up a function schedules names the dead-letter queue: EventBridge Scheduler
/// keeps there what it cannot deliver.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_follow_up_names_the_dead_letter_queue() {
    let emulator = Emulator::start_with_ec2_status_checks();
    let deployment = autoheal_tests::Deployment::bootstrap(&emulator).await;
    let instance = autoheal_tests::Fleet::new(&deployment.sdk)
        .standalone(&[("emulator:instance-status", "impaired")])
        .await;
    let engine = deployment.infrastructure(
        autoheal_tests::TestClock::at(chrono::Utc::now()),
        autoheal_core::Settings::default(),
    );
    engine
        .handle(autoheal_tests::ec2_alarm(&instance, "event-1"), "run-1")
        .await
        .expect("handled");
    let scheduled = deployment.follow_ups().await;
    assert_eq!(scheduled.len(), 1, "the attempt's check");
    let schedule = aws_sdk_scheduler::Client::new(&deployment.sdk)
        .get_schedule()
        .name(&scheduled[0].name)
        .send()
        .await
        .expect("get schedule");
    let target = schedule.target().expect("a target");
    assert_eq!(
        target.dead_letter_config().and_then(|d| d.arn()),
        Some(autoheal_tests::DEAD_LETTER_ARN)
    );
    assert!(
        target.retry_policy().is_some(),
        "it retries before it gives up"
    );
}

/// Only the stack's roles (named `<stack>-…`) and the operator's role write the state table;
/// it cannot be deleted by mistake, nor its history lost with the stack.
#[test]
fn only_the_stacks_roles_and_the_operator_write_the_state_table() {
    let template = template();
    let table = resource(&template, "StateTable");
    assert_eq!(table["DeletionPolicy"], "Retain");
    assert_eq!(
        table["Properties"]["DeletionProtectionEnabled"],
        json!(true)
    );
    let operator = format!("arn:{PARTITION}:iam::{ACCOUNT}:role/platform-operators");
    let role = |name: &str| format!("arn:{PARTITION}:iam::{ACCOUNT}:role/{name}");
    let function_role = role("autoheal-DataFunctionRole-1A2B3C");
    for (stack, operator_may_write) in [
        (stack(), false),
        (stack().with_parameter("OperatorRoleArn", &operator), true),
    ] {
        let properties = stack
            .concrete(&template, &table["Properties"])
            .expect("the table");
        let policy = as_list(&properties["ResourcePolicy"]["PolicyDocument"]["Statement"]);
        let denied = |action: &str, principal: &str| {
            let request = request(action, &arn("dynamodb", &format!("table/{TABLE}")))
                .with("aws:PrincipalArn", principal);
            policy.iter().any(|s| {
                s["Effect"] == "Deny" && autoheal_tests::iam::statement_applies(s, &request)
            })
        };
        for action in [
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
            "dynamodb:BatchWriteItem",
            "dynamodb:PartiQLUpdate",
        ] {
            assert!(!denied(action, &function_role), "{action} by a function");
            assert!(
                denied(action, &role("developer")),
                "{action} by anyone else"
            );
            assert!(
                denied(action, &role("autoheal2-DataFunctionRole-1A2B3C")),
                "{action} by another stack's role"
            );
            assert_eq!(
                denied(action, &operator),
                !operator_may_write,
                "{action} by the operator's role"
            );
        }
        assert!(
            !denied("dynamodb:Query", &role("developer")),
            "reads stay IAM's"
        );
    }
}

#[test]
fn the_functions_logs_outlive_the_stack() {
    let template = template();
    let groups: Vec<(&String, &Value)> = template["Resources"]
        .as_object()
        .expect("resources")
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::Logs::LogGroup")
        .collect();
    assert_eq!(groups.len(), functions(&template).len(), "one per function");
    for (name, group) in groups {
        assert_eq!(group["DeletionPolicy"], "Retain", "{name}");
        assert_eq!(group["UpdateReplacePolicy"], "Retain", "{name}");
    }
}

#[test]
fn no_stack_is_synced_from_a_workstation() {
    let samconfig =
        std::fs::read_to_string(workspace().join("samconfig.toml")).expect("samconfig.toml");
    let settings: Vec<&str> = samconfig
        .lines()
        .map(str::trim)
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .collect();
    assert!(
        !settings
            .iter()
            .any(|line| line.starts_with('[') && line.contains(".sync.")),
        "`sam sync` deploys straight from a workstation: {samconfig}"
    );
    assert!(
        !settings.iter().any(|line| line.starts_with("watch")),
        "{samconfig}"
    );
    assert!(
        settings.contains(&"confirm_changeset = true"),
        "a deploy shows its change set first: {samconfig}"
    );
}

// ---------------------------------------------------------------------------------------
// Changes to autoheal itself, from CloudTrail.

/// The self-protection rule in the emulator's EventBridge (its pattern from the template),
/// with a queue as its target.
struct Tripwire {
    _emulator: Emulator,
    events: aws_sdk_eventbridge::Client,
    sqs: aws_sdk_sqs::Client,
    queue: String,
}

impl Tripwire {
    async fn start() -> Self {
        let emulator = Emulator::start_with_eventbridge_arrays();
        let sdk = emulator.sdk().await;
        let events = aws_sdk_eventbridge::Client::new(&sdk);
        let template = template();
        let rule = with_second_channel()
            .concrete(
                &template,
                &resource(&template, "SelfProtectionRule")["Properties"],
            )
            .expect("the rule");
        let (queue, queue_arn) = create_queue(&sdk, "tripwire").await;
        events
            .put_rule()
            .name(rule["Name"].as_str().expect("a name"))
            .event_pattern(rule["EventPattern"].to_string())
            .send()
            .await
            .unwrap_or_else(|e| panic!("the emulator refused the pattern: {e:?}"));
        events
            .put_targets()
            .rule(rule["Name"].as_str().expect("a name"))
            .targets(
                aws_sdk_eventbridge::types::Target::builder()
                    .id("queue")
                    .arn(queue_arn)
                    .build()
                    .expect("target"),
            )
            .send()
            .await
            .expect("target");
        Tripwire {
            _emulator: emulator,
            events,
            sqs: aws_sdk_sqs::Client::new(&sdk),
            queue,
        }
    }

    /// Whether CloudTrail's record of `event_name` (by a person, unless `detail` says) on
    /// `source` trips the rule.
    async fn trips(&self, source: &str, event_name: &str, detail: Value) -> bool {
        let mut detail = detail;
        detail["eventName"] = json!(event_name);
        detail["eventSource"] = json!(format!(
            "{}.amazonaws.com",
            source.trim_start_matches("aws.")
        ));
        if detail["userIdentity"].is_null() {
            detail["userIdentity"] = json!({
                "type": "AssumedRole",
                "arn": format!("arn:{PARTITION}:sts::{ACCOUNT}:assumed-role/developer/alice")
            });
        }
        let put = self
            .events
            .put_events()
            .entries(
                aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                    .source(source)
                    .detail_type("AWS API Call via CloudTrail")
                    .detail(detail.to_string())
                    .build(),
            )
            .send()
            .await
            .expect("put events");
        assert_eq!(put.failed_entry_count(), 0);
        let received = self
            .sqs
            .receive_message()
            .queue_url(&self.queue)
            .max_number_of_messages(10)
            .send()
            .await
            .expect("receive")
            .messages
            .unwrap_or_default();
        for message in &received {
            self.sqs
                .delete_message()
                .queue_url(&self.queue)
                .receipt_handle(message.receipt_handle().expect("handle"))
                .send()
                .await
                .expect("delete");
        }
        !received.is_empty()
    }
}

/// Whoever disables a layer rule, edits a function (`AUTOHEAL_MODE`, its code, its
/// concurrency), deletes follow-ups or their group, changes the table's settings or policy,
/// a topic, a subscription, a key, the dead-letter queue, the restart document or an alarm of
/// autoheal's is heard of; the same calls on anything else, and schedules deleting
/// themselves, are not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_that_would_silence_autoheal_trips_the_self_protection_rule() {
    let wire = Tripwire::start().await;
    let topic = arn("sns", TOPIC);
    let second = arn("sns", SECOND_TOPIC);
    let key = arn("kms", "key/notification-key");
    let queue_url = format!("https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{QUEUE}");
    #[rustfmt::skip]
    let cases: Vec<(&str, &str, Value, bool, &str)> = vec![
        ("aws.events", "DisableRule", json!({"requestParameters": {"name": "autoheal-PlatformFunctionAlarmStateChange-1A2B"}}), true, "a layer rule disabled"),
        ("aws.events", "DeleteRule", json!({"requestParameters": {"name": "autoheal-self-protection"}}), true, "the rule itself deleted"),
        ("aws.events", "RemoveTargets", json!({"requestParameters": {"rule": "autoheal-NetworkFunctionAlarmStateChange-1A2B", "ids": ["1"]}}), true, "a layer rule's function removed"),
        ("aws.events", "DisableRule", json!({"requestParameters": {"name": "orders-nightly"}}), false, "someone else's rule"),
        ("aws.events", "PutPermission", json!({"requestParameters": {"eventBusName": "autoheal-alarms", "policy": "{}"}}), true, "the member accounts' bus opened to others"),
        ("aws.events", "DeleteEventBus", json!({"requestParameters": {"name": "autoheal-alarms"}}), true, "the member accounts' bus deleted"),
        ("aws.events", "PutPermission", json!({"requestParameters": {"eventBusName": "orders-events"}}), false, "someone else's bus"),
        ("aws.lambda", "UpdateFunctionConfiguration20150331v2", json!({"requestParameters": {"functionName": "autoheal-infrastructure", "environment": {"variables": {"AUTOHEAL_MODE": "shadow"}}}}), true, "AUTOHEAL_MODE edited"),
        ("aws.lambda", "UpdateFunctionCode20150331v2", json!({"requestParameters": {"functionName": format!("arn:{PARTITION}:lambda:{REGION}:{ACCOUNT}:function:autoheal-application")}}), true, "a function's code replaced (by ARN)"),
        ("aws.lambda", "PutFunctionConcurrency20171031", json!({"requestParameters": {"functionName": "autoheal-data", "reservedConcurrentExecutions": 0}}), true, "a function throttled to zero"),
        ("aws.lambda", "DeleteFunction20150331", json!({"requestParameters": {"functionName": "autoheal-network"}}), true, "a function deleted"),
        ("aws.lambda", "UpdateFunctionConfiguration20150331v2", json!({"requestParameters": {"functionName": "payments-api"}}), false, "someone else's function"),
        ("aws.scheduler", "DeleteScheduleGroup", json!({"requestParameters": {"name": GROUP}}), true, "the follow-ups' group deleted"),
        ("aws.scheduler", "DeleteSchedule", json!({"requestParameters": {"name": "autoheal-0123-2", "groupName": GROUP}}), true, "a follow-up deleted by a person"),
        ("aws.scheduler", "DeleteSchedule", json!({"requestParameters": {"name": "autoheal-0123-2", "groupName": GROUP}, "userIdentity": {"type": "AWSService", "invokedBy": "scheduler.amazonaws.com"}}), false, "a follow-up deleting itself once delivered"),
        ("aws.scheduler", "DeleteSchedule", json!({"requestParameters": {"name": "reports", "groupName": "default"}}), false, "someone else's schedule"),
        ("aws.dynamodb", "UpdateTimeToLive", json!({"requestParameters": {"tableName": TABLE}}), true, "the table's expiry changed"),
        ("aws.dynamodb", "DeleteResourcePolicy", json!({"requestParameters": {"resourceArn": arn("dynamodb", &format!("table/{TABLE}"))}}), true, "the table's write policy removed"),
        ("aws.dynamodb", "DeleteTable", json!({"requestParameters": {"tableName": "orders"}}), false, "someone else's table"),
        ("aws.sns", "Unsubscribe", json!({"requestParameters": {"subscriptionArn": format!("{topic}:5c1f2a9e-0000-4000-8000-000000000001")}}), true, "the on-call unsubscribed"),
        ("aws.sns", "Unsubscribe", json!({"requestParameters": {"subscriptionArn": format!("{second}:5c1f2a9e-0000-4000-8000-000000000002")}}), true, "the second channel unsubscribed"),
        ("aws.sns", "SetTopicAttributes", json!({"requestParameters": {"topicArn": topic, "attributeName": "KmsMasterKeyId"}}), true, "the topic's key changed"),
        ("aws.sns", "DeleteTopic", json!({"requestParameters": {"topicArn": arn("sns", "orders-events")}}), false, "someone else's topic"),
        ("aws.kms", "DisableKey", json!({"requestParameters": {"keyId": "notification-key"}, "resources": [{"ARN": key, "type": "AWS::KMS::Key"}]}), true, "the topic's key disabled"),
        ("aws.kms", "ScheduleKeyDeletion", json!({"requestParameters": {"keyId": "second-channel-key"}, "resources": [{"ARN": arn("kms", "key/second-channel-key"), "type": "AWS::KMS::Key"}]}), true, "the second channel's key scheduled for deletion"),
        ("aws.kms", "DisableKey", json!({"requestParameters": {"keyId": "orders"}, "resources": [{"ARN": arn("kms", "key/orders"), "type": "AWS::KMS::Key"}]}), false, "someone else's key"),
        ("aws.sqs", "PurgeQueue", json!({"requestParameters": {"queueUrl": queue_url}}), true, "the dead letters purged"),
        ("aws.ssm", "UpdateDocument", json!({"requestParameters": {"name": "autoheal-restart-process"}}), true, "the restart document rewritten"),
        ("aws.ssm", "UpdateDocument", json!({"requestParameters": {"name": "team-runbook"}}), false, "someone else's document"),
        ("aws.monitoring", "DisableAlarmActions", json!({"requestParameters": {"alarmNames": ["autoheal-dead-letters"]}}), true, "a self-alarm muted"),
        ("aws.monitoring", "PutMetricAlarm", json!({"requestParameters": {"alarmName": "autoheal-follow-ups-dropped", "threshold": 1000}}), true, "a self-alarm blunted"),
        ("aws.monitoring", "DeleteAlarms", json!({"requestParameters": {"alarmNames": ["orders-latency"]}}), false, "someone else's alarm"),
    ];
    let mut wrong = Vec::new();
    for (source, event, detail, expected, why) in cases {
        if wire.trips(source, event, detail).await != expected {
            wrong.push(format!(
                "{source} {event} ({why}) should {}trip the rule",
                if expected { "" } else { "not " }
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The rule tells both channels, and keeps what it cannot deliver.
#[test]
fn the_self_protection_rule_tells_the_topic_and_the_second_channel() {
    let template = template();
    let declared = resource(&template, "SelfProtectionRule");
    let targets = |stack: Stack| -> Vec<Value> {
        as_list(
            &stack
                .concrete(&template, &declared["Properties"])
                .expect("the rule")["Targets"],
        )
    };
    let arns =
        |targets: &[Value]| -> Vec<Value> { targets.iter().map(|t| t["Arn"].clone()).collect() };
    assert_eq!(arns(&targets(stack())), [json!(arn("sns", TOPIC))]);
    let both = targets(with_second_channel());
    assert_eq!(
        arns(&both),
        [
            json!(arn("sns", TOPIC)),
            json!(arn("sns", SECOND_TOPIC)),
            json!(SECURITY_TEAM_TOPIC)
        ]
    );
    for target in both {
        assert_eq!(
            target["DeadLetterConfig"]["Arn"],
            arn("sqs", QUEUE),
            "{target}"
        );
    }
}
