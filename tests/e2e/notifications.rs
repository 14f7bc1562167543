//! Notifications reach subscribers through SNS with filterable attributes.

use autoheal_core::{Settings, SystemClock};
use autoheal_tests::{Deployment, Emulator, Fleet, ec2_alarm};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_heal_is_published_with_layer_and_status_attributes() {
    let emulator = Emulator::start_with_ec2_status_checks();
    let deployment = Deployment::bootstrap(&emulator).await;
    let queue = deployment.subscribe_queue("operators").await;
    let fleet = Fleet::new(&deployment.sdk);
    let old = fleet
        .standalone(&[("emulator:system-status", "impaired")])
        .await;
    let engine = deployment.infrastructure(SystemClock, Settings::default());

    engine
        .handle(ec2_alarm(&old, "event-notify"), "run-1")
        .await
        .expect("handled");

    let notifications = deployment.notifications(&queue).await;
    assert_eq!(notifications.len(), 1, "{notifications:#?}");
    let envelope = &notifications[0];
    assert_eq!(
        envelope["MessageAttributes"]["layer"]["Value"],
        "infrastructure"
    );
    assert_eq!(
        envelope["MessageAttributes"]["status"]["Value"],
        "completed"
    );
    assert_eq!(
        envelope["MessageAttributes"]["rule"]["Value"],
        "ec2-instance-healing"
    );
    let subject = envelope["Subject"].as_str().expect("a subject");
    assert!(
        subject.contains("completed") && subject.contains(&old),
        "{subject}"
    );
    let message: serde_json::Value =
        serde_json::from_str(envelope["Message"].as_str().expect("a message")).expect("JSON body");
    assert_eq!(message["record"]["rule"], "ec2-instance-healing");
    assert_eq!(message["record"]["resource_id"], old.as_str());
    assert_eq!(message["record"]["status"], "completed");
    assert_eq!(message["record"]["attempt"], 1);
    assert!(message["record"]["ended_at"].is_string());
}
