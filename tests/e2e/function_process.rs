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
