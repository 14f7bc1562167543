//! The same event delivered many times at once acts exactly once.

use std::sync::Arc;

use autoheal_core::{HealingStatus, Settings, SkipReason, SystemClock, Verdict};
use autoheal_tests::{Deployment, Emulator, Fleet, ec2_alarm};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_concurrent_deliveries_of_one_event_recover_the_instance_once() {
    let emulator = Emulator::start_with_ec2_status_checks();
    let deployment = Deployment::bootstrap(&emulator).await;
    let fleet = Fleet::new(&deployment.sdk);
    let old = fleet
        .standalone(&[("emulator:system-status", "impaired")])
        .await;
    let engine = Arc::new(deployment.infrastructure(SystemClock, Settings::default()));
    let event = ec2_alarm(&old, "event-concurrent");

    let handles: Vec<_> = (0..10)
        .map(|i| {
            let engine = Arc::clone(&engine);
            let event = event.clone();
            tokio::spawn(async move { engine.handle(event, &format!("run-{i}")).await })
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
    assert_eq!(records.len(), 10, "every delivery is recorded");
    let completed = records
        .iter()
        .filter(|r| r.status == HealingStatus::Completed)
        .count();
    let duplicates = records
        .iter()
        .filter(|r| {
            r.status == HealingStatus::Skipped && r.skip_reason == Some(SkipReason::Duplicate)
        })
        .count();
    assert_eq!((completed, duplicates), (1, 9), "{records:#?}");
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| o.decision == Verdict::Act)
            .count(),
        1
    );
}
