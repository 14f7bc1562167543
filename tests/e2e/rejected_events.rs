//! Bad or foreign input: a clear error or skip, no panic, no write, no AWS call.

use serde_json::{Value, json};

use autoheal_core::{EngineError, Settings, SkipReason, SystemClock, Verdict};
use autoheal_tests::{Deployment, Emulator, Fleet, ec2_alarm, sample_event};

enum Expect {
    Error,
    Skip(SkipReason),
}

fn metric_math_cpu() -> Value {
    sample_event("aws-samples/metric-math.json")
}

fn composite() -> Value {
    sample_event("aws-samples/composite.json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_and_unmatched_events_write_nothing_and_call_nothing() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let fleet = Fleet::new(&deployment.sdk);
    let instance = fleet.standalone(&[]).await;
    let engine = deployment.infrastructure(SystemClock, Settings::default());

    let mut wrong_detail_type = ec2_alarm(&instance, "e-detail-type");
    wrong_detail_type["detail-type"] = json!("EC2 Instance State-change Notification");
    let mut no_alarm_name = ec2_alarm(&instance, "e-no-name");
    no_alarm_name["detail"]
        .as_object_mut()
        .unwrap()
        .remove("alarmName");
    let empty_dimension = ec2_alarm("", "e-empty-dimension");
    let platform_event = sample_event("lambda-function-healing.alarm.json");

    let cases: Vec<(&str, Value, Expect)> = vec![
        ("a string, not an event", json!("{not json"), Expect::Error),
        ("wrong detail-type", wrong_detail_type, Expect::Error),
        ("missing alarm name", no_alarm_name, Expect::Error),
        (
            "empty dimension value",
            empty_dimension,
            Expect::Skip(SkipReason::EmptyResourceId),
        ),
        (
            "metric math with no rule",
            metric_math_cpu(),
            Expect::Skip(SkipReason::NoMatchingRule),
        ),
        (
            "composite with no rule",
            composite(),
            Expect::Skip(SkipReason::NoMatchingRule),
        ),
        (
            "another layer's event",
            platform_event,
            Expect::Skip(SkipReason::OtherLayer),
        ),
    ];
    for (name, event, expect) in cases {
        let result = engine.handle(event, name).await;
        match (expect, result) {
            (Expect::Error, Err(EngineError::InvalidEvent(error))) => {
                assert!(!error.to_string().is_empty(), "{name}");
            }
            (Expect::Skip(reason), Ok(outcome)) => {
                assert_eq!(outcome.decision, Verdict::Skip, "{name}: {outcome:?}");
                assert_eq!(outcome.reason, Some(reason), "{name}: {outcome:?}");
                assert!(outcome.record.is_none(), "{name}: nothing recorded");
            }
            (_, other) => panic!("{name}: unexpected {other:?}"),
        }
    }
    // Unparseable bytes never reach the engine as JSON; the parser rejects them too.
    assert!(autoheal_core::AlarmEvent::from_slice(b"{\"detail-type\": ").is_err());

    assert_eq!(deployment.item_count().await, 0, "no write to DynamoDB");
    assert_eq!(engine.healer.calls(), 0, "no action");
    assert_eq!(fleet.running_instance_count().await, 1, "no EC2 change");
}
