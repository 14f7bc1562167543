//! `ec2-instance-healing` against EC2 and Auto Scaling in the emulator.

use autoheal_core::{HealingStatus, Settings, SkipReason, SystemClock};
use autoheal_tests::{Deployment, Emulator, Fleet, ec2_alarm};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_instance_is_replaced_like_for_like_and_keeps_its_elastic_ip() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let fleet = Fleet::new(&deployment.sdk);
    let old = fleet
        .standalone(&[("Name", "web-01"), ("team", "checkout")])
        .await;
    let allocation = fleet.elastic_ip(&old).await;
    let before = fleet.instance(&old).await;
    let engine = deployment.infrastructure(SystemClock, Settings::default());

    let outcome = engine
        .handle(ec2_alarm(&old, "event-standalone"), "run-1")
        .await
        .expect("handled");

    let record = outcome.record.expect("a record");
    assert_eq!(record.status, HealingStatus::Completed, "{record:?}");
    let stored = deployment
        .store()
        .recent_records(1, chrono::Utc::now())
        .await
        .expect("records");
    assert_eq!(
        stored,
        vec![record.clone()],
        "the final record is what DynamoDB holds"
    );
    let replacements = fleet.replacements_of(&old).await;
    assert_eq!(replacements.len(), 1, "exactly one replacement");
    let new = fleet.instance(&replacements[0]).await;
    assert_eq!(
        record.details.get("replacement_instance_id"),
        new.instance_id.as_ref()
    );
    assert_eq!(new.image_id, before.image_id);
    assert_eq!(new.instance_type, before.instance_type);
    assert_eq!(new.subnet_id, before.subnet_id);
    let groups = |i: &aws_sdk_ec2::types::Instance| -> Vec<String> {
        i.security_groups()
            .iter()
            .filter_map(|g| g.group_id.clone())
            .collect()
    };
    assert_eq!(groups(&new), groups(&before));
    let tag = |i: &aws_sdk_ec2::types::Instance, key: &str| {
        i.tags()
            .iter()
            .find(|t| t.key() == Some(key))
            .and_then(|t| t.value().map(str::to_owned))
    };
    assert_eq!(tag(&new, "team").as_deref(), Some("checkout"));
    assert_eq!(
        tag(&new, "autoheal:replaces").as_deref(),
        Some(old.as_str())
    );
    let old_state = fleet.instance(&old).await.state.and_then(|s| s.name);
    assert!(
        matches!(
            old_state,
            Some(
                aws_sdk_ec2::types::InstanceStateName::Terminated
                    | aws_sdk_ec2::types::InstanceStateName::ShuttingDown
            )
        ),
        "the failed instance is terminated, was {old_state:?}"
    );
    let address = fleet
        .ec2
        .describe_addresses()
        .allocation_ids(&allocation)
        .send()
        .await
        .expect("addresses");
    assert_eq!(
        address.addresses()[0].instance_id(),
        new.instance_id.as_deref(),
        "the Elastic IP moved to the replacement"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_scaling_member_is_marked_unhealthy_for_its_group_to_replace() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let fleet = Fleet::new(&deployment.sdk);
    let (group, member) = fleet.auto_scaling_group("web-asg").await;
    let engine = deployment.infrastructure(SystemClock, Settings::default());

    let outcome = engine
        .handle(ec2_alarm(&member, "event-asg"), "run-1")
        .await
        .expect("handled");

    let record = outcome.record.expect("a record");
    assert_eq!(record.status, HealingStatus::Completed, "{record:?}");
    assert_eq!(record.details.get("auto_scaling_group"), Some(&group));
    let health = fleet
        .autoscaling
        .describe_auto_scaling_instances()
        .instance_ids(&member)
        .send()
        .await
        .expect("describe")
        .auto_scaling_instances()
        .first()
        .and_then(|i| i.health_status().map(str::to_owned));
    assert_eq!(
        health.as_deref().map(str::to_ascii_lowercase).as_deref(),
        Some("unhealthy")
    );
    assert!(
        fleet.replacements_of(&member).await.is_empty(),
        "autoheal launched nothing itself"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_tagged_disabled_is_left_alone() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let fleet = Fleet::new(&deployment.sdk);
    let old = fleet.standalone(&[("autoheal:disabled", "true")]).await;
    let engine = deployment.infrastructure(SystemClock, Settings::default());

    let outcome = engine
        .handle(ec2_alarm(&old, "event-opt-out"), "run-1")
        .await
        .expect("handled");

    let record = outcome.record.expect("a record");
    assert_eq!(record.status, HealingStatus::Skipped);
    assert_eq!(record.skip_reason, Some(SkipReason::OptedOut));
    assert!(fleet.replacements_of(&old).await.is_empty());
    assert_eq!(fleet.running_instance_count().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_instance_gives_a_failed_record_with_the_service_message() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let queue = deployment.subscribe_queue("operators").await;
    let engine = deployment.infrastructure(SystemClock, Settings::default());

    let outcome = engine
        .handle(ec2_alarm("i-0000000000000dead", "event-missing"), "run-1")
        .await
        .expect("handled, not an error");

    let record = outcome.record.expect("a record");
    assert_eq!(record.status, HealingStatus::Failed);
    let error = record.error.expect("an error message");
    assert!(error.contains("InvalidInstanceID.NotFound"), "{error}");
    let stored = deployment
        .store()
        .recent_records(1, chrono::Utc::now())
        .await
        .expect("records");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].status, HealingStatus::Failed);
    let notifications = deployment.notifications(&queue).await;
    assert_eq!(notifications.len(), 1);
    assert_eq!(
        notifications[0]["MessageAttributes"]["status"]["Value"],
        "failed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_mode_records_what_it_would_do_and_changes_nothing() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let fleet = Fleet::new(&deployment.sdk);
    let old = fleet.standalone(&[]).await;
    let settings = Settings {
        mode: autoheal_core::Mode::Shadow,
        layer_enabled: true,
    };
    let engine = deployment.infrastructure(SystemClock, settings);

    let outcome = engine
        .handle(ec2_alarm(&old, "event-shadow"), "run-1")
        .await
        .expect("handled");

    let record = outcome.record.expect("a record");
    assert_eq!(record.skip_reason, Some(SkipReason::ShadowMode));
    assert_eq!(engine.healer.calls(), 0);
    assert!(fleet.replacements_of(&old).await.is_empty());
}
