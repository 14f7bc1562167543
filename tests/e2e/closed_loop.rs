//! The closed loop through the emulator: every attempt schedules its follow-up in EventBridge
//! Scheduler; the follow-up reads the alarm back from CloudWatch and resolves, retries or
//! escalates, with no new alarm event.

use chrono::Utc;
use serde_json::Value;

use autoheal_core::{Clock, HealingStatus, RunPhase, Settings, SkipReason, Verdict};
use autoheal_tests::{
    Deployment, Emulator, Fleet, TestClock, TestEngine, ec2_alarm, ec2_alarm_name, ec2_ok,
};

/// The record a notification carries, and its kind.
fn kinds(notifications: &[Value]) -> Vec<(String, String)> {
    notifications
        .iter()
        .map(|n| {
            let message: Value =
                serde_json::from_str(n["Message"].as_str().expect("a message")).expect("JSON");
            (
                message["kind"].as_str().unwrap_or_default().to_owned(),
                message["record"]["status"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_that_stays_on_is_retried_by_follow_ups_alone_then_escalated_once() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let queue = deployment.subscribe_queue("loop").await;
    let fleet = Fleet::new(&deployment.sdk);
    // An Auto Scaling member is handed to its group on every attempt.
    let (_, member) = fleet.auto_scaling_group("web-asg").await;
    deployment
        .set_alarm(&ec2_alarm_name(&member), "ALARM")
        .await;
    let clock = TestClock::at(Utc::now());
    let engine = deployment.infrastructure(clock.clone(), Settings::default());

    let first = engine
        .handle(ec2_alarm(&member, "e1"), "r1")
        .await
        .expect("handled");
    assert_eq!(first.decision, Verdict::Act);
    let scheduled = deployment.follow_ups().await;
    assert_eq!(scheduled.len(), 1, "{scheduled:?}");
    assert_eq!(scheduled[0].payload["detail-type"], "autoheal.check");

    let mut delays = Vec::new();
    let mut last = clock.now();
    let mut outcomes = Vec::new();
    for check in 1..=3 {
        fleet.passes_health_check(&member).await;
        let outcome = deployment
            .fire_next(&engine, &clock, &format!("check-{check}"))
            .await
            .expect("a follow-up was scheduled");
        delays.push((clock.now() - last).num_seconds());
        last = clock.now();
        outcomes.push(outcome);
    }

    assert_eq!(outcomes[0].decision, Verdict::Act, "{:?}", outcomes[0]);
    assert_eq!(outcomes[1].decision, Verdict::Act, "{:?}", outcomes[1]);
    assert_eq!(
        outcomes[2].reason,
        Some(SkipReason::MaxAttempts),
        "{:?}",
        outcomes[2]
    );
    assert_eq!(
        engine.healer.calls(),
        3,
        "attempts 2 and 3 came from follow-ups"
    );
    assert!(delays[1] > delays[0], "the delays grow: {delays:?}");
    assert!(
        deployment.follow_ups().await.is_empty(),
        "nothing is scheduled after the escalation"
    );
    let kinds = kinds(&deployment.notifications(&queue).await);
    assert_eq!(
        kinds
            .iter()
            .filter(|(kind, _)| kind == "escalation")
            .count(),
        1,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|(kind, _)| kind == "healing").count(),
        3,
        "{kinds:?}"
    );

    // No action after it until an operator resets the incident.
    clock.advance(86_400);
    let later = engine
        .handle(ec2_alarm(&member, "e2"), "r2")
        .await
        .expect("handled");
    assert_eq!(later.reason, Some(SkipReason::MaxAttempts));
    let reset = engine
        .reset("ec2-instance-healing", &member, "reset-1")
        .await
        .expect("reset");
    assert_eq!(reset.phase, RunPhase::Reset);
    let after_reset = engine
        .handle(ec2_alarm(&member, "e3"), "r3")
        .await
        .expect("handled");
    assert_eq!(after_reset.decision, Verdict::Act);
    assert_eq!(engine.healer.calls(), 4);
}

/// An Auto Scaling member whose status-check alarm fired and which autoheal handed to its
/// group (at the test clock's time, the alarm in ALARM in CloudWatch).
async fn member_handed_to_its_group(
    emulator: &Emulator,
) -> (Deployment, TestClock, TestEngine<TestClock>, String) {
    let deployment = Deployment::bootstrap(emulator).await;
    let fleet = Fleet::new(&deployment.sdk);
    let (_, member) = fleet.auto_scaling_group("web-asg").await;
    deployment
        .set_alarm(&ec2_alarm_name(&member), "ALARM")
        .await;
    let clock = TestClock::at(Utc::now());
    let engine = deployment.infrastructure(clock.clone(), Settings::default());
    engine
        .handle(ec2_alarm(&member, "e1"), "r1")
        .await
        .expect("handled");
    (deployment, clock, engine, member)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_back_to_ok_is_resolved_by_its_follow_up_with_the_time_to_recover() {
    let emulator = Emulator::start();
    let (deployment, clock, engine, member) = member_handed_to_its_group(&emulator).await;
    deployment.set_alarm(&ec2_alarm_name(&member), "OK").await;

    // The first check finds OK for less than the stable period and checks again after it.
    let waiting = deployment
        .fire_next(&engine, &clock, "check-1")
        .await
        .expect("a follow-up");
    let resolved = deployment
        .fire_next(&engine, &clock, "check-2")
        .await
        .expect("a second follow-up");

    assert_eq!(waiting.decision, Verdict::Recheck, "{waiting:?}");
    assert_eq!(resolved.decision, Verdict::Resolve, "{resolved:?}");
    let record = resolved.record.as_ref().expect("a record");
    assert_eq!(record.phase, RunPhase::Verify);
    assert_eq!(record.status, HealingStatus::Completed);
    let recovered: i64 = record.details["time_to_recover_seconds"]
        .parse()
        .expect("seconds");
    assert!((0..60).contains(&recovered), "{recovered}");
    assert!(deployment.follow_ups().await.is_empty());

    // The late OK event changes nothing, and nothing acts again.
    let late = engine
        .handle(ec2_ok(&member, "ok-1"), "r2")
        .await
        .expect("handled");
    assert_eq!(late.decision, Verdict::Ignore, "{late:?}");
    assert_eq!(engine.healer.calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_alarms_acts_within_the_budget_and_defers_the_rest_with_one_notification() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let queue = deployment.subscribe_queue("budget").await;
    let fleet = Fleet::new(&deployment.sdk);
    let mut members = Vec::new();
    for group in 0..8 {
        members.push(fleet.auto_scaling_group(&format!("web-{group}")).await.1);
    }
    let clock = TestClock::at(Utc::now());
    let engine = deployment.infrastructure(clock.clone(), Settings::default());

    // Eight alarms at once: the claims race for the rule's budget (5 per 15 minutes) in
    // DynamoDB transactions.
    let engine = std::sync::Arc::new(engine);
    let handles: Vec<_> = members
        .iter()
        .enumerate()
        .map(|(i, member)| {
            let engine = std::sync::Arc::clone(&engine);
            let event = ec2_alarm(member, &format!("e{i}"));
            tokio::spawn(async move { engine.handle(event, &format!("r{i}")).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for handle in handles {
        outcomes.push(handle.await.expect("joined").expect("handled"));
    }

    let acted = outcomes
        .iter()
        .filter(|o| o.decision == Verdict::Act)
        .count();
    let deferred = outcomes
        .iter()
        .filter(|o| o.reason == Some(SkipReason::Budget))
        .count();
    assert_eq!((acted, deferred), (5, 3), "{outcomes:#?}");
    assert_eq!(engine.healer.calls(), 5);
    let kinds = kinds(&deployment.notifications(&queue).await);
    assert_eq!(
        kinds.iter().filter(|(kind, _)| kind == "budget").count(),
        1,
        "{kinds:?}"
    );
    // The acted are verified, the deferred retried. A deferred member's first attempt had
    // scheduled its check (number 1) before its claim was refused: the deferral takes number
    // 2, and the check passed over finds its number superseded when it fires.
    let scheduled = deployment.follow_ups().await;
    assert_eq!(scheduled.len(), 8 + 3, "{scheduled:#?}");
    let members_checked: std::collections::BTreeSet<&str> = scheduled
        .iter()
        .filter_map(|schedule| schedule.payload["detail"]["resource_id"].as_str())
        .collect();
    assert_eq!(members_checked.len(), 8);
    assert_eq!(
        scheduled
            .iter()
            .filter(|schedule| schedule.payload["detail"]["check"] == 2)
            .count(),
        3,
        "the deferrals' checks"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_its_group_replaced_resolves_when_its_alarm_runs_out_of_data() {
    let emulator = Emulator::start();
    let (deployment, clock, engine, member) = member_handed_to_its_group(&emulator).await;

    // The group terminates the member it was handed; its status-check metric stops.
    aws_sdk_ec2::Client::new(&deployment.sdk)
        .terminate_instances()
        .instance_ids(&member)
        .send()
        .await
        .expect("terminate");
    deployment
        .set_alarm(&ec2_alarm_name(&member), "INSUFFICIENT_DATA")
        .await;

    let resolved = deployment
        .fire_next(&engine, &clock, "check-1")
        .await
        .expect("a follow-up");

    assert_eq!(resolved.decision, Verdict::Resolve, "{resolved:?}");
    assert!(!resolved.escalated);
    let record = resolved.record.as_ref().expect("a record");
    assert_eq!(record.details["resolution"], "gone");
    assert!(
        record
            .summary
            .as_deref()
            .is_some_and(|s| s.contains("no longer exists")),
        "{record:?}"
    );
    assert!(deployment.follow_ups().await.is_empty());
    assert_eq!(engine.healer.calls(), 1);
}
