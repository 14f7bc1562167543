//! Races: the same event delivered many times at once, and different events about one
//! resource at once, act exactly once.

use std::sync::Arc;

use autoheal_core::{HealingStatus, Settings, SkipReason, SystemClock, Verdict};
use autoheal_tests::{Deployment, Emulator, Fleet, ec2_alarm};

/// A deployment and one standalone instance whose system status check fails.
async fn impaired_instance() -> (Emulator, Deployment, Fleet, String) {
    let emulator = Emulator::start_with_ec2_status_checks();
    let deployment = Deployment::bootstrap(&emulator).await;
    let fleet = Fleet::new(&deployment.sdk);
    let instance = fleet
        .standalone(&[("emulator:system-status", "impaired")])
        .await;
    (emulator, deployment, fleet, instance)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_deliveries_of_one_event_recover_the_instance_once() {
    let (_emulator, deployment, fleet, old) = impaired_instance().await;
    let engine = Arc::new(deployment.infrastructure(SystemClock, Settings::default()));
    let event = ec2_alarm(&old, "event-concurrent");
    // The alarm fires once; its one event is delivered fifty times at once.
    engine.fire(&event).await;

    let handles: Vec<_> = (0..50)
        .map(|i| {
            let engine = Arc::clone(&engine);
            let event = event.clone();
            tokio::spawn(async move { engine.unsent.handle(event, &format!("run-{i}")).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for handle in handles {
        outcomes.push(handle.await.expect("joined").expect("handled"));
    }

    assert_eq!(engine.healer.calls(), 1, "the action ran once");
    assert_eq!(
        fleet.history(&old).await,
        ["stop", "start"],
        "stopped and started exactly once"
    );
    let records = deployment
        .store()
        .recent_records(1, chrono::Utc::now())
        .await
        .expect("records");
    // One run, one record: the 49 redeliveries are ignored (the log and the skip metric
    // count them), and write nothing.
    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!(records[0].status, HealingStatus::Completed, "{records:#?}");
    let duplicates = outcomes
        .iter()
        .filter(|o| o.decision == Verdict::Ignore && o.reason == Some(SkipReason::Duplicate))
        .count();
    assert_eq!(duplicates, 49, "{outcomes:#?}");
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| o.decision == Verdict::Act)
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn different_events_about_one_instance_at_once_recover_it_once() {
    let (_emulator, deployment, fleet, old) = impaired_instance().await;
    let engine = Arc::new(deployment.infrastructure(SystemClock, Settings::default()));
    // Twenty alarms about the same instance (the status-check metrics, other alarm names),
    // each its own event.
    let metrics = [
        "StatusCheckFailed",
        "StatusCheckFailed_System",
        "StatusCheckFailed_Instance",
    ];
    let handles: Vec<_> = (0..20)
        .map(|i| {
            let engine = Arc::clone(&engine);
            let mut event = ec2_alarm(&old, &format!("event-{i}"));
            event["detail"]["alarmName"] = format!("web-status-{i}").into();
            event["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"]["name"] =
                metrics[i % metrics.len()].into();
            tokio::spawn(async move { engine.handle(event, &format!("run-{i}")).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for handle in handles {
        outcomes.push(handle.await.expect("joined").expect("handled"));
    }

    assert_eq!(engine.healer.calls(), 1, "the action ran once");
    assert_eq!(fleet.history(&old).await, ["stop", "start"]);
    let acted: Vec<_> = outcomes
        .iter()
        .filter(|o| o.decision == Verdict::Act)
        .collect();
    assert_eq!(acted.len(), 1, "{outcomes:#?}");
    for outcome in outcomes.iter().filter(|o| o.decision != Verdict::Act) {
        assert_eq!(outcome.decision, Verdict::Skip, "{outcome:?}");
        assert!(
            matches!(
                outcome.reason,
                Some(SkipReason::InProgress | SkipReason::Backoff | SkipReason::Cooldown)
            ),
            "held back by the one that acts: {outcome:?}"
        );
    }
}
