//! A function's own binary, run the way Lambda runs it: under a local Runtime API, with the
//! environment Lambda gives a function (the region, the execution role's credentials and
//! Lambda's log controls in variables) and the emulator as its endpoint (`AWS_ENDPOINT_URL`).
//! What `autoheal_aws::run` wires before the engine (the log, the SDK configuration read from
//! that environment, the runtime) is exercised here; the other tests build the engine directly.

use std::process::{Command, Stdio};
use std::time::Duration;

use autoheal_core::policy::resolve::select_any;
use autoheal_core::{AlarmEvent, RuleSet};
use autoheal_detection::drill::{self, Firing};
use serde_json::Value;

use autoheal_tests::accounts::{MEMBER_B, MEMBER_ROLE, STRANGER, placed, sdk_in};
use autoheal_tests::runtime_api::{Answer, RuntimeApi};
use autoheal_tests::{Deployment, Emulator, Fleet, ScratchDir, binary, ec2_alarm};

/// What Lambda sets for a 128 MB function, its configuration as the template sets it, and
/// the emulator's endpoint and test credentials.
fn lambda_environment(
    runtime_api: &str,
    emulator: &Emulator,
    deployment: &Deployment,
) -> Vec<(&'static str, String)> {
    let function = "autoheal-infrastructure";
    vec![
        ("AWS_LAMBDA_RUNTIME_API", runtime_api.to_owned()),
        ("AWS_LAMBDA_FUNCTION_NAME", function.to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".to_owned()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{function}"),
        ),
        (
            "AWS_LAMBDA_LOG_STREAM_NAME",
            "2026/01/01/[$LATEST]e2e".to_owned(),
        ),
        ("AWS_LAMBDA_LOG_FORMAT", "JSON".to_owned()),
        ("AWS_LAMBDA_LOG_LEVEL", "INFO".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_DEFAULT_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
        ("AWS_SESSION_TOKEN", "test-token".to_owned()),
        ("AWS_ENDPOINT_URL", emulator.url()),
        ("AUTOHEAL_TABLE_NAME", deployment.table.clone()),
        ("AUTOHEAL_TOPIC_ARN", deployment.topic_arn.clone()),
        (
            "AUTOHEAL_SCHEDULER_ROLE_ARN",
            "arn:aws:iam::123456789012:role/autoheal-scheduler".to_owned(),
        ),
        (
            "AUTOHEAL_FUNCTION_ARN",
            format!("arn:aws:lambda:us-east-1:123456789012:function:{function}"),
        ),
        ("AUTOHEAL_HOME_ACCOUNT", "123456789012".to_owned()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_infrastructure_binary_reboots_an_impaired_instance_handed_to_it_by_the_runtime_api() {
    let emulator = Emulator::start_with_ec2_status_checks();
    let deployment = Deployment::bootstrap(&emulator).await;
    let fleet = Fleet::new(&deployment.sdk);
    let instance = fleet
        .standalone(&[("Name", "web-01"), ("emulator:instance-status", "impaired")])
        .await;
    // autoheal acts only on an alarm CloudWatch holds: the event's alarm fires first.
    let payload = ec2_alarm(&instance, "event-1");
    let event = AlarmEvent::from_value(payload.clone()).expect("an alarm event");
    let rules = RuleSet::shipped().expect("the shipped rules");
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&deployment.sdk);
    drill::fire(
        &cloudwatch,
        &event,
        select_any(&rules, &event).1.rule(),
        Firing::AsEvent,
    )
    .await
    .expect("the event's alarm fired");
    let api = RuntimeApi::start(vec![("request-1".to_owned(), payload)]);
    let scratch = ScratchDir::new("function-process");
    let log = scratch.join("stdout.log");
    let mut process = Command::new(binary("autoheal-infrastructure"))
        .env_clear()
        .envs(lambda_environment(&api.address, &emulator, &deployment))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).expect("the log file"))
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the function");

    let answer = api.answer("request-1", Duration::from_secs(60));
    process.kill().ok();
    process.wait().ok();

    let Some(Answer::Response(outcome)) = answer else {
        panic!("expected the function's result, got {answer:?}");
    };
    assert_eq!(outcome["decision"], "act", "{outcome}");
    assert_eq!(outcome["record"]["status"], "completed", "{outcome}");
    assert_eq!(fleet.history(&instance).await, ["reboot"]);
    // Lambda's JSON log format: every line the function wrote is one JSON object, the run's
    // log line among them.
    let written = std::fs::read_to_string(&log).expect("read the log");
    let lines: Vec<Value> = written
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert!(lines.iter().all(Value::is_object), "{written}");
    assert!(
        lines
            .iter()
            .any(|line| line["level"] == "INFO" && line.to_string().contains(&instance)),
        "{written}"
    );
}

/// The binary heals in a member account through the member role, as the stack configures it
/// to, and refuses an account it was not given; the log says where it acted and under which
/// session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_infrastructure_binary_heals_in_a_member_account_and_refuses_a_stranger() {
    let emulator = Emulator::start_with_ec2_status_checks();
    let deployment = Deployment::bootstrap(&emulator).await;
    let rules = RuleSet::shipped().expect("the shipped rules");
    let mut events = Vec::new();
    let mut fleets = Vec::new();
    for (account, request) in [(MEMBER_B, "request-b"), (STRANGER, "request-s")] {
        let there = sdk_in(&deployment.sdk, account, "us-east-1").await;
        let fleet = Fleet::new(&there);
        let instance = fleet
            .standalone(&[("Name", "web-01"), ("emulator:instance-status", "impaired")])
            .await;
        let payload = placed(ec2_alarm(&instance, request), account, "us-east-1");
        let event = AlarmEvent::from_value(payload.clone()).expect("an alarm event");
        drill::fire(
            &aws_sdk_cloudwatch::Client::new(&there),
            &event,
            select_any(&rules, &event).1.rule(),
            Firing::AsEvent,
        )
        .await
        .expect("the event's alarm fired where it lives");
        events.push((request.to_owned(), payload));
        fleets.push((fleet, instance));
    }
    let api = RuntimeApi::start(events);
    let scratch = ScratchDir::new("function-process-member");
    let log = scratch.join("stdout.log");
    let mut environment = lambda_environment(&api.address, &emulator, &deployment);
    environment.push(("AUTOHEAL_MEMBER_ACCOUNTS", MEMBER_B.to_owned()));
    environment.push(("AUTOHEAL_MEMBER_REGIONS", "us-east-1".to_owned()));
    environment.push(("AUTOHEAL_MEMBER_ROLE_NAME", MEMBER_ROLE.to_owned()));
    let mut process = Command::new(binary("autoheal-infrastructure"))
        .env_clear()
        .envs(environment)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).expect("the log file"))
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the function");

    let healed = api.answer("request-b", Duration::from_secs(60));
    let refused = api.answer("request-s", Duration::from_secs(60));
    process.kill().ok();
    process.wait().ok();

    let Some(Answer::Response(healed)) = healed else {
        panic!("expected the function's result, got {healed:?}");
    };
    assert_eq!(healed["record"]["status"], "completed", "{healed}");
    assert_eq!(healed["record"]["account"], MEMBER_B, "{healed}");
    assert_eq!(
        healed["record"]["role_session"], "autoheal-request-b",
        "{healed}"
    );
    let Some(Answer::Response(refused)) = refused else {
        panic!("expected the function's result, got {refused:?}");
    };
    assert_eq!(refused["reason"], "out-of-reach", "{refused}");
    let (member_fleet, member_instance) = &fleets[0];
    assert_eq!(member_fleet.history(member_instance).await, ["reboot"]);
    let (stranger_fleet, stranger_instance) = &fleets[1];
    assert!(stranger_fleet.history(stranger_instance).await.is_empty());
    let written = std::fs::read_to_string(&log).expect("read the log");
    assert!(
        written
            .lines()
            .any(|line| line.contains("acting in a member account")
                && line.contains(MEMBER_B)
                && line.contains("autoheal-request-b")),
        "{written}"
    );
}
