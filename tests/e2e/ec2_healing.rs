//! `ec2-instance-healing` against EC2 and Auto Scaling in the emulator: a standalone instance
//! is rebooted or stopped and started, never replaced; an Auto Scaling member is handed to
//! its group.

use aws_sdk_ec2::types::{InstanceStateName, InstanceType};
use chrono::{TimeZone, Utc};
use serde_json::Value;

use autoheal_core::{HealingStatus, Settings, SkipReason, SystemClock};
use autoheal_tests::{Deployment, Emulator, Fleet, TestClock, ec2_alarm};

const SYSTEM: &str = "emulator:system-status";
const GUEST: &str = "emulator:instance-status";
const STOP_START_TAG: &str = "autoheal:stop-start";
const NO_CAPACITY: &str = "emulator:insufficient-capacity";

/// The sample alarm aimed at `instance`, on the status-check metric `metric`.
fn alarm_on(metric: &str, instance: &str, id: &str) -> Value {
    let mut event = ec2_alarm(instance, id);
    event["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"]["name"] =
        Value::from(metric);
    event
}

async fn started() -> (Emulator, Deployment, Fleet) {
    let emulator = Emulator::start_with_ec2_status_checks();
    let deployment = Deployment::bootstrap(&emulator).await;
    let fleet = Fleet::new(&deployment.sdk);
    (emulator, deployment, fleet)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_system_check_stops_and_starts_the_same_instance_keeping_its_volumes_and_addresses()
 {
    let (_emulator, deployment, fleet) = started().await;
    let instance = fleet
        .standalone(&[("Name", "web-01"), (SYSTEM, "impaired")])
        .await;
    let allocation = fleet.elastic_ip(&instance).await;
    let data = fleet.attached_volume(&instance, "/dev/sdf", &[]).await;
    let before = fleet.instance(&instance).await;
    let engine = deployment.infrastructure(SystemClock, Settings::default());

    let outcome = engine
        .handle(ec2_alarm(&instance, "event-system"), "run-1")
        .await
        .expect("handled");

    let record = outcome.record.expect("a record");
    assert_eq!(record.status, HealingStatus::Completed, "{record:?}");
    assert_eq!(record.details["recovery"], "stop-start");
    assert_eq!(fleet.history(&instance).await, ["stop", "start"]);
    assert_eq!(
        fleet.instance_state(&instance).await,
        Some(InstanceStateName::Running)
    );
    let after = fleet.instance(&instance).await;
    assert_eq!(after.private_ip_address, before.private_ip_address);
    assert_eq!(
        record.details.get("private_ip"),
        before.private_ip_address.as_ref()
    );
    let attached = fleet.volume(&data).await;
    assert_eq!(
        attached.attachments()[0].instance_id(),
        Some(instance.as_str()),
        "the data volume stays attached"
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
        Some(instance.as_str()),
        "the Elastic IP stays with the instance"
    );
    assert_eq!(
        fleet.instance_tag(&instance, STOP_START_TAG).await,
        None,
        "the stop-start mark is dropped once the instance runs again"
    );
    assert_eq!(
        fleet.running_instance_count().await,
        1,
        "nothing was launched"
    );
    assert!(fleet.replacements_of(&instance).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_instance_check_is_rebooted_first_then_stopped_and_started_on_the_next_attempt() {
    let (_emulator, deployment, fleet) = started().await;
    let instance = fleet.standalone(&[(GUEST, "impaired")]).await;
    let clock = TestClock::at(Utc.with_ymd_and_hms(2026, 11, 2, 8, 0, 0).unwrap());
    let engine = deployment.infrastructure(clock.clone(), Settings::default());

    let first = engine
        .handle(
            alarm_on("StatusCheckFailed_Instance", &instance, "event-1"),
            "run-1",
        )
        .await
        .expect("handled");
    let record = first.record.expect("a record");
    assert_eq!(record.status, HealingStatus::Completed, "{record:?}");
    assert_eq!(record.details["recovery"], "reboot");
    assert_eq!(fleet.history(&instance).await, ["reboot"]);

    // The reboot did not fix the guest: the next attempt, after the backoff, stops and starts.
    clock.advance(7200);
    let second = engine
        .handle(
            alarm_on("StatusCheckFailed_Instance", &instance, "event-2"),
            "run-2",
        )
        .await
        .expect("handled");
    let record = second.record.expect("a record");
    assert_eq!(record.attempt, 2);
    assert_eq!(record.details["recovery"], "stop-start", "{record:?}");
    assert_eq!(fleet.history(&instance).await, ["reboot", "stop", "start"]);
    assert_eq!(
        fleet.instance_state(&instance).await,
        Some(InstanceStateName::Running)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_that_pass_again_or_an_instance_store_type_are_left_alone() {
    let (_emulator, deployment, fleet) = started().await;
    let recovered = fleet.standalone(&[]).await;
    let ephemeral = fleet
        .standalone_of_type(InstanceType::M5dLarge, &[(SYSTEM, "impaired")])
        .await;
    let engine = deployment.infrastructure(SystemClock, Settings::default());

    let outcome = engine
        .handle(ec2_alarm(&recovered, "event-passing"), "run-1")
        .await
        .expect("handled");
    let record = outcome.record.expect("a record");
    assert_eq!(
        record.skip_reason,
        Some(SkipReason::NotNeeded),
        "{record:?}"
    );
    assert!(fleet.history(&recovered).await.is_empty());

    let outcome = engine
        .handle(ec2_alarm(&ephemeral, "event-ephemeral"), "run-2")
        .await
        .expect("handled");
    let record = outcome.record.expect("a record");
    assert_eq!(record.skip_reason, Some(SkipReason::Unsafe), "{record:?}");
    let summary = record.summary.expect("a summary");
    assert!(summary.contains("instance-store"), "{summary}");
    assert!(
        fleet.history(&ephemeral).await.is_empty(),
        "an instance whose data a stop would erase is never stopped"
    );
    assert_eq!(
        fleet.instance_state(&ephemeral).await,
        Some(InstanceStateName::Running)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_autoheal_stopped_is_started_by_the_next_attempt_and_one_a_person_stopped_is_not()
 {
    let (_emulator, deployment, fleet) = started().await;
    // An attempt that died between its stop and its start left the instance stopped, marked.
    let interrupted = fleet.standalone(&[(SYSTEM, "impaired")]).await;
    fleet
        .tag_instance(&interrupted, STOP_START_TAG, "autoheal-earlier-attempt")
        .await;
    fleet
        .ec2
        .stop_instances()
        .instance_ids(&interrupted)
        .send()
        .await
        .expect("stop");
    let by_hand = fleet.standalone(&[]).await;
    fleet
        .ec2
        .stop_instances()
        .instance_ids(&by_hand)
        .send()
        .await
        .expect("stop");
    let engine = deployment.infrastructure(SystemClock, Settings::default());

    let outcome = engine
        .handle(ec2_alarm(&interrupted, "event-resume"), "run-1")
        .await
        .expect("handled");
    let record = outcome.record.expect("a record");
    assert_eq!(record.status, HealingStatus::Completed, "{record:?}");
    assert_eq!(fleet.history(&interrupted).await, ["stop", "start"]);
    assert_eq!(
        fleet.instance_state(&interrupted).await,
        Some(InstanceStateName::Running)
    );
    assert_eq!(fleet.instance_tag(&interrupted, STOP_START_TAG).await, None);

    let outcome = engine
        .handle(ec2_alarm(&by_hand, "event-by-hand"), "run-2")
        .await
        .expect("handled");
    let record = outcome.record.expect("a record");
    assert_eq!(
        record.skip_reason,
        Some(SkipReason::NotNeeded),
        "{record:?}"
    );
    assert_eq!(
        fleet.instance_state(&by_hand).await,
        Some(InstanceStateName::Stopped),
        "autoheal does not start what it did not stop"
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
    let (_emulator, deployment, fleet) = started().await;
    let instance = fleet
        .standalone(&[("autoheal:disabled", "true"), (SYSTEM, "impaired")])
        .await;
    let engine = deployment.infrastructure(SystemClock, Settings::default());

    let outcome = engine
        .handle(ec2_alarm(&instance, "event-opt-out"), "run-1")
        .await
        .expect("handled");

    let record = outcome.record.expect("a record");
    assert_eq!(record.status, HealingStatus::Skipped);
    assert_eq!(record.skip_reason, Some(SkipReason::OptedOut));
    assert!(fleet.history(&instance).await.is_empty());
    assert_eq!(fleet.running_instance_count().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_instance_is_gone_and_nobody_is_told_of_a_failure() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let queue = deployment.subscribe_queue("operators").await;
    let engine = deployment.infrastructure(SystemClock, Settings::default());

    let outcome = engine
        .handle(ec2_alarm("i-0000000000000dead", "event-missing"), "run-1")
        .await
        .expect("handled, not an error");

    let record = outcome.record.expect("a record");
    assert_eq!(record.status, HealingStatus::Skipped, "{record:?}");
    assert_eq!(record.skip_reason, Some(SkipReason::Gone));
    assert!(record.error.is_none(), "{record:?}");
    assert_eq!(
        deployment.only_record().await.skip_reason,
        Some(SkipReason::Gone)
    );
    let notifications = deployment.notifications(&queue).await;
    assert!(
        notifications
            .iter()
            .all(|n| n["MessageAttributes"]["status"]["Value"] != "failed"),
        "{notifications:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_refused_for_capacity_continues_in_one_incident_until_the_instance_runs() {
    let emulator =
        Emulator::start_with_shims(&["moto_ec2_status_checks.py", "moto_ec2_capacity.py"]);
    let deployment = Deployment::bootstrap(&emulator).await;
    let queue = deployment.subscribe_queue("operators").await;
    let fleet = Fleet::new(&deployment.sdk);
    // EC2 has no capacity of the instance's type in its zone until the tag goes.
    let instance = fleet
        .standalone(&[(SYSTEM, "impaired"), (NO_CAPACITY, "t3.small")])
        .await;
    let event = ec2_alarm(&instance, "event-capacity");
    let alarm_name = event["detail"]["alarmName"]
        .as_str()
        .expect("a name")
        .to_owned();
    deployment.set_alarm(&alarm_name, "ALARM").await;
    let clock = TestClock::at(Utc::now());
    let engine = deployment.infrastructure(clock.clone(), Settings::default());

    let first = engine.handle(event, "run-1").await.expect("handled");
    let record = first.record.expect("a record");
    assert_eq!(record.status, HealingStatus::InProgress, "{record:?}");
    assert_eq!(record.details["stage"], "starting");
    assert!(
        record.details["waiting_for"].contains("InsufficientInstanceCapacity"),
        "{record:?}"
    );
    assert_eq!(fleet.history(&instance).await, ["stop"]);
    assert_eq!(
        fleet.instance_state(&instance).await,
        Some(InstanceStateName::Stopped)
    );
    assert!(
        fleet
            .instance_tag(&instance, STOP_START_TAG)
            .await
            .is_some(),
        "marked as autoheal's to start"
    );

    // The next step is refused too; then capacity comes back and the step after starts it.
    let mut records = vec![record];
    let mut refused_again = false;
    for step in 0..6 {
        if refused_again {
            fleet
                .ec2
                .delete_tags()
                .resources(&instance)
                .tags(aws_sdk_ec2::types::Tag::builder().key(NO_CAPACITY).build())
                .send()
                .await
                .expect("capacity is back");
        }
        let outcome = deployment
            .fire_next(&engine, &clock, &format!("step-{step}"))
            .await
            .expect("a next step is scheduled");
        let Some(record) = outcome.record else {
            assert_eq!(outcome.reason, Some(SkipReason::Superseded), "{outcome:?}");
            continue;
        };
        let done = record.status == HealingStatus::Completed;
        if record.status == HealingStatus::InProgress {
            refused_again = true;
        }
        records.push(record);
        if done {
            break;
        }
    }
    let last = records.last().expect("records");
    assert_eq!(last.status, HealingStatus::Completed, "{records:#?}");
    assert_eq!(
        records.len(),
        3,
        "refused twice, then started: {records:#?}"
    );
    assert!(
        records
            .iter()
            .all(|r| r.incident_id == records[0].incident_id && r.attempt == 1),
        "one incident, one attempt: {records:#?}"
    );
    assert_eq!(
        fleet.instance_state(&instance).await,
        Some(InstanceStateName::Running)
    );
    assert_eq!(
        fleet.history(&instance).await,
        ["stop", "start"],
        "stopped once, started once"
    );
    assert_eq!(fleet.instance_tag(&instance, STOP_START_TAG).await, None);
    let statuses: Vec<String> = deployment
        .notifications(&queue)
        .await
        .iter()
        .map(|n| {
            n["MessageAttributes"]["status"]["Value"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(
        statuses,
        ["in_progress", "completed"],
        "no failure, no escalation"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_mode_records_what_it_would_do_and_changes_nothing() {
    let (_emulator, deployment, fleet) = started().await;
    let instance = fleet.standalone(&[(SYSTEM, "impaired")]).await;
    let settings = Settings {
        mode: autoheal_core::Mode::Shadow,
        layer_enabled: true,
        ..Settings::default()
    };
    let engine = deployment.infrastructure(SystemClock, settings);

    let outcome = engine
        .handle(ec2_alarm(&instance, "event-shadow"), "run-1")
        .await
        .expect("handled");

    let record = outcome.record.expect("a record");
    assert_eq!(record.skip_reason, Some(SkipReason::ShadowMode));
    assert_eq!(engine.healer.calls(), 0);
    assert!(fleet.history(&instance).await.is_empty());
}

/// An ALARM delivered after its alarm is OK again (Lambda's queue holds events for up to an
/// hour in a storm) is stale: CloudWatch is read first, nothing is stopped, nothing written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_event_delivered_after_its_alarm_is_ok_again_changes_nothing() {
    let (_emulator, deployment, fleet) = started().await;
    let instance = fleet.standalone(&[(SYSTEM, "impaired")]).await;
    let event = ec2_alarm(&instance, "event-late");
    let name = event["detail"]["alarmName"]
        .as_str()
        .expect("an alarm name")
        .to_owned();
    deployment.set_alarm(&name, "OK").await;
    let engine = deployment.infrastructure(SystemClock, Settings::default());

    let outcome = engine.handle(event, "run-1").await.expect("handled");

    assert_eq!(outcome.reason, Some(SkipReason::Stale), "{outcome:?}");
    assert!(outcome.record.is_none());
    assert_eq!(deployment.item_count().await, 0, "nothing written");
    assert!(fleet.history(&instance).await.is_empty());
    assert_eq!(
        fleet.instance_state(&instance).await,
        Some(InstanceStateName::Running)
    );
}
