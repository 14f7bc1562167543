//! The platform layer's rules against the emulator: `ecs-service-healing`,
//! `lambda-function-healing` and `rds-instance-healing`, through the platform engine with the
//! real healer, state table and topic, and what the healer finds before an attempt (its
//! assessment: gone, or waiting for AWS's own healing or a person).

mod ecs;
mod lambda;
mod rds;

use serde_json::Value;

use autoheal_core::{
    AlarmEvent, Assessment, HealingRecord, HealingStatus, Layer, Rule, RuleSet, SkipReason,
    SystemClock, WaitReason,
};
use autoheal_tests::{Deployment, Emulator, TestEngine, ec2_alarm};

type PlatformEngine = TestEngine<SystemClock>;

fn platform(deployment: &Deployment) -> PlatformEngine {
    deployment.layer(Layer::Platform)
}

/// The one record stored today, which must be `status`.
async fn stored_record(deployment: &Deployment, status: HealingStatus) -> HealingRecord {
    let record = deployment.only_record().await;
    assert_eq!(record.status, status, "{record:?}");
    assert_eq!(record.layer, Layer::Platform);
    record
}

/// The one notification published, about `rule` with `status`; returns its record as JSON.
async fn notified(deployment: &Deployment, queue: &str, rule: &str, status: &str) -> Value {
    let published = deployment.only_notification(queue).await;
    published.assert_about("platform", rule, status);
    published.record
}

/// The shipped rule `name`.
fn shipped_rule(name: &str) -> Rule {
    RuleSet::shipped()
        .expect("shipped rules")
        .get(name)
        .cloned()
        .expect("the rule")
}

/// The alarm event, parsed as the engine hands it to a healer.
fn alarm(event: Value) -> AlarmEvent {
    AlarmEvent::from_value(event).expect("an alarm")
}

/// The wait an assessment asks for (its reason and what it saw), or a panic naming it.
#[track_caller]
fn waits(assessment: Assessment, reason: WaitReason) -> String {
    match assessment {
        Assessment::Wait(wait) if wait.reason == reason => {
            assert!(wait.recheck_after_seconds > 0, "{wait:?}");
            wait.summary
        }
        other => panic!("expected a {reason:?} wait, got {other:?}"),
    }
}

/// The summary of a `gone` assessment, or a panic naming it.
#[track_caller]
fn gone(assessment: Assessment) -> String {
    match assessment {
        Assessment::Gone { summary } => summary,
        other => panic!("expected gone, got {other:?}"),
    }
}

/// The summary of a heal skipped for `reason`, or a panic naming the outcome.
#[track_caller]
fn skipped(outcome: autoheal_core::HealOutcome, reason: SkipReason) -> String {
    match outcome {
        autoheal_core::HealOutcome::Skipped {
            reason: found,
            summary,
        } if found == reason => summary,
        other => panic!("expected a {reason} skip, got {other:?}"),
    }
}

// ------------------------------------------------------------------ other layers

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_infrastructure_alarm_sent_to_the_platform_function_is_skipped() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let engine = platform(&deployment);

    let outcome = engine
        .handle(ec2_alarm("i-0123456789abcdef0", "ec2-elsewhere"), "run-1")
        .await
        .expect("handled");

    assert_eq!(outcome.reason, Some(SkipReason::OtherLayer), "{outcome:?}");
    assert_eq!(engine.healer.calls(), 0);
    assert_eq!(deployment.item_count().await, 0, "nothing written");
}
