//! `asg-capacity-healing` and `ebs-volume-healing` against the emulator (`ec2-instance-healing`
//! has its own module).

use autoheal_core::idempotency_token;
use autoheal_core::{
    AlarmEvent, HealOutcome, HealRequest, Healer, HealingStatus, Layer, RuleSet, SkipReason,
    SystemClock, Verdict,
};
use autoheal_infrastructure::InfrastructureHealer;
use autoheal_tests::{Deployment, Emulator, Fleet, TestEngine, autoheal_snapshot_tags, rule_event};

fn asg_event(state: &str, id: &str, group: &str) -> serde_json::Value {
    rule_event(
        "asg-capacity-healing",
        state,
        id,
        "AutoScalingGroupName",
        group,
    )
}

fn ebs_event(state: &str, id: &str, volume: &str) -> serde_json::Value {
    rule_event("ebs-volume-healing", state, id, "VolumeId", volume)
}

fn engine(deployment: &Deployment) -> TestEngine<SystemClock> {
    deployment.layer(Layer::Infrastructure)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_group_scales_out_within_its_maximum_and_replaces_its_unhealthy_member() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let queue = deployment.subscribe_queue("operators").await;
    let fleet = Fleet::new(&deployment.sdk);
    let (group, member) = fleet.auto_scaling_group("web-asg").await;
    fleet
        .autoscaling
        .set_instance_health()
        .instance_id(&member)
        .health_status("Unhealthy")
        .send()
        .await
        .expect("mark unhealthy");
    let engine = engine(&deployment);

    let outcome = engine
        .handle(asg_event("alarm", "asg-1", &group), "run-1")
        .await
        .expect("handled");

    let record = outcome.record.expect("a record");
    assert_eq!(record.status, HealingStatus::Completed, "{record:?}");
    assert_eq!(
        record.details.get("desired_before").map(String::as_str),
        Some("1")
    );
    assert_eq!(
        record.details.get("desired_after").map(String::as_str),
        Some("3"),
        "1 + 2, within max 3"
    );
    assert_eq!(record.details.get("replaced_instances"), Some(&member));
    let after = fleet.group(&group).await;
    assert_eq!(after.desired_capacity(), Some(3));
    assert!(
        after
            .instances()
            .iter()
            .all(|i| i.instance_id() != Some(member.as_str())),
        "the unhealthy member left the group"
    );
    let stored = deployment
        .store()
        .recent_records(1, chrono::Utc::now())
        .await
        .expect("records");
    assert_eq!(
        stored
            .iter()
            .filter(|r| r.status == HealingStatus::Completed)
            .count(),
        1
    );
    let notifications = deployment.notifications(&queue).await;
    assert_eq!(notifications.len(), 1);
    assert_eq!(
        notifications[0]["MessageAttributes"]["rule"]["Value"],
        "asg-capacity-healing"
    );

    // The alarm returns to OK: the capacity autoheal added goes back.
    let ok = engine
        .handle(asg_event("ok", "asg-ok", &group), "run-2")
        .await
        .expect("handled");
    assert_eq!(ok.decision, Verdict::Revert, "{ok:?}");
    let revert = ok.record.expect("a revert record");
    assert_eq!(revert.status, HealingStatus::Completed, "{revert:?}");
    assert_eq!(revert.phase, autoheal_core::RunPhase::Revert);
    assert_eq!(fleet.group(&group).await.desired_capacity(), Some(1));
    let notifications = deployment.notifications(&queue).await;
    assert_eq!(notifications.len(), 1);
    assert_eq!(
        notifications[0]["MessageAttributes"]["phase"]["Value"],
        "revert"
    );

    // The same OK again, and a later one, change nothing more.
    for (id, run) in [("asg-ok", "run-3"), ("asg-ok-2", "run-4")] {
        let again = engine
            .handle(asg_event("ok", id, &group), run)
            .await
            .expect("handled");
        assert_ne!(again.decision, Verdict::Revert, "{again:?}");
    }
    assert_eq!(fleet.group(&group).await.desired_capacity(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scale_out_is_not_repeated_by_a_retry_and_is_not_undone_over_the_groups_own_scaling() {
    use autoheal_core::{AlarmEvent, HealOutcome, Healer, RuleSet};

    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let fleet = Fleet::new(&deployment.sdk);
    let (group, _) = fleet.auto_scaling_group("retried-asg").await;
    fleet
        .autoscaling
        .update_auto_scaling_group()
        .auto_scaling_group_name(&group)
        .max_size(10)
        .send()
        .await
        .expect("room to grow");
    let healer = InfrastructureHealer::new(&deployment.sdk);
    let rules = RuleSet::shipped().expect("shipped rules");
    let event = AlarmEvent::from_value(asg_event("alarm", "asg-1", &group)).expect("an alarm");
    let request = autoheal_tests::first_attempt(
        rules.get("asg-capacity-healing").expect("the rule"),
        &group,
        &event,
        "autoheal-0123456789abcdef00000001",
    );

    let first = healer.heal(request).await.expect("first try");
    let second = healer.heal(request).await.expect("retry");

    let (
        HealOutcome::Healed { reverts: a, .. },
        HealOutcome::Healed {
            reverts: b,
            details,
            ..
        },
    ) = (first, second)
    else {
        panic!("both tries heal");
    };
    assert_eq!(
        fleet.group(&group).await.desired_capacity(),
        Some(3),
        "1 + 2 once, not twice"
    );
    assert_eq!(a, b, "the retry reports the same change to put back");
    assert_eq!(details["desired_before"], "1");

    // A scaling policy (here, a person) moves the group on before the alarm clears.
    fleet
        .autoscaling
        .set_desired_capacity()
        .auto_scaling_group_name(&group)
        .desired_capacity(5)
        .send()
        .await
        .expect("scale");
    let undone = healer.revert(request, &a[0]).await.expect("revert");
    let HealOutcome::Skipped { reason, summary } = undone else {
        panic!("the revert must leave the group's own scaling alone: {undone:?}");
    };
    assert_eq!(reason, SkipReason::NotNeeded);
    assert!(summary.contains("owns it"), "{summary}");
    assert_eq!(fleet.group(&group).await.desired_capacity(), Some(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_at_its_maximum_with_nothing_to_replace_is_left_alone_and_an_opted_out_group_too() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let fleet = Fleet::new(&deployment.sdk);
    let (group, _) = fleet.auto_scaling_group("full-asg").await;
    fleet
        .autoscaling
        .update_auto_scaling_group()
        .auto_scaling_group_name(&group)
        .max_size(1)
        .send()
        .await
        .expect("cap the group");
    let (opted_out, _) = fleet.auto_scaling_group("pets-asg").await;
    fleet
        .autoscaling
        .create_or_update_tags()
        .tags(
            aws_sdk_autoscaling::types::Tag::builder()
                .resource_id(&opted_out)
                .resource_type("auto-scaling-group")
                .key("autoheal:disabled")
                .value("true")
                .propagate_at_launch(false)
                .build(),
        )
        .send()
        .await
        .expect("tag");
    let engine = engine(&deployment);

    let full = engine
        .handle(asg_event("alarm", "full-1", &group), "run-1")
        .await
        .expect("handled");
    let pets = engine
        .handle(asg_event("alarm", "pets-1", &opted_out), "run-2")
        .await
        .expect("handled");

    assert_eq!(
        full.record.and_then(|r| r.skip_reason),
        Some(SkipReason::NotNeeded)
    );
    assert_eq!(
        pets.record.and_then(|r| r.skip_reason),
        Some(SkipReason::OptedOut)
    );
    assert_eq!(fleet.group(&group).await.desired_capacity(), Some(1));
    assert_eq!(fleet.group(&opted_out).await.desired_capacity(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_group_gives_a_failed_record_with_the_service_message() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let queue = deployment.subscribe_queue("operators").await;
    let engine = engine(&deployment);

    let outcome = engine
        .handle(asg_event("alarm", "gone-1", "no-such-asg"), "run-1")
        .await
        .expect("handled");

    let record = outcome.record.expect("a record");
    assert_eq!(record.status, HealingStatus::Failed);
    assert!(
        record
            .error
            .as_deref()
            .is_some_and(|e| e.contains("no-such-asg")),
        "{record:?}"
    );
    assert_eq!(deployment.notifications(&queue).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_data_volume_is_snapshotted_then_swapped_for_a_gp3_copy() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let queue = deployment.subscribe_queue("operators").await;
    let fleet = Fleet::new(&deployment.sdk);
    let instance = fleet.standalone(&[]).await;
    let old = fleet
        .attached_volume(&instance, "/dev/sdf", &[("team", "data")])
        .await;
    let engine = engine(&deployment);

    let outcome = engine
        .handle(ebs_event("alarm", "ebs-1", &old), "run-1")
        .await
        .expect("handled");

    let record = outcome.record.expect("a record");
    assert_eq!(record.status, HealingStatus::Completed, "{record:?}");
    let snapshot = record.details.get("snapshot_id").expect("a snapshot");
    let new = record
        .details
        .get("replacement_volume_id")
        .expect("a replacement");
    let snapshots = fleet
        .ec2
        .describe_snapshots()
        .snapshot_ids(snapshot)
        .send()
        .await
        .expect("snapshots");
    assert_eq!(
        snapshots.snapshots()[0].volume_id(),
        Some(old.as_str()),
        "snapshot of the failing volume"
    );
    let replacement = fleet.volume(new).await;
    assert_eq!(
        replacement.volume_type(),
        Some(&aws_sdk_ec2::types::VolumeType::Gp3)
    );
    assert_eq!(
        replacement.snapshot_id(),
        Some(snapshot.as_str()),
        "built from the snapshot"
    );
    let attachment = &replacement.attachments()[0];
    assert_eq!(
        (attachment.instance_id(), attachment.device()),
        (Some(instance.as_str()), Some("/dev/sdf"))
    );
    let kept = fleet.volume(&old).await;
    assert!(kept.attachments().is_empty(), "the old volume is detached");
    assert!(
        kept.tags()
            .iter()
            .any(|t| t.key() == Some("autoheal:replaced-by") && t.value() == Some(new.as_str())),
        "and kept, tagged with its replacement"
    );
    assert!(
        replacement
            .tags()
            .iter()
            .any(|t| t.key() == Some("team") && t.value() == Some("data"))
    );
    let stored = deployment
        .store()
        .recent_records(1, chrono::Utc::now())
        .await
        .expect("records");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].status, HealingStatus::Completed);
    assert_eq!(stored[0].details.get("replacement_volume_id"), Some(new));
    assert_eq!(deployment.notifications(&queue).await.len(), 1);

    let ok = engine
        .handle(ebs_event("ok", "ebs-ok", &old), "run-2")
        .await
        .expect("handled");
    assert_eq!(ok.decision, Verdict::Recovering);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_opted_out_and_missing_volumes_are_not_touched() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let fleet = Fleet::new(&deployment.sdk);
    let instance = fleet.standalone(&[]).await;
    let root = fleet
        .instance(&instance)
        .await
        .block_device_mappings()
        .iter()
        .find_map(|m| m.ebs().and_then(|e| e.volume_id().map(str::to_owned)))
        .expect("a root volume");
    let opted_out = fleet
        .attached_volume(&instance, "/dev/sdg", &[("autoheal:disabled", "true")])
        .await;
    let engine = engine(&deployment);

    let on_root = engine
        .handle(ebs_event("alarm", "root-1", &root), "run-1")
        .await
        .expect("handled");
    let on_opted_out = engine
        .handle(ebs_event("alarm", "opt-1", &opted_out), "run-2")
        .await
        .expect("handled");
    let on_missing = engine
        .handle(
            ebs_event("alarm", "gone-1", "vol-0000000000000dead"),
            "run-3",
        )
        .await
        .expect("handled");

    assert_eq!(
        on_root.record.as_ref().and_then(|r| r.skip_reason),
        Some(SkipReason::Unsafe),
        "{on_root:?}"
    );
    assert_eq!(
        on_opted_out.record.as_ref().and_then(|r| r.skip_reason),
        Some(SkipReason::OptedOut)
    );
    let failed = on_missing.record.expect("a record");
    assert_eq!(failed.status, HealingStatus::Failed);
    assert!(
        failed
            .error
            .as_deref()
            .is_some_and(|e| e.contains("InvalidVolume")),
        "{failed:?}"
    );
    let snapshots = fleet
        .ec2
        .describe_snapshots()
        .owner_ids("self")
        .send()
        .await
        .expect("snapshots");
    assert!(
        snapshots
            .snapshots()
            .iter()
            .all(|s| s.volume_id() != Some(root.as_str())
                && s.volume_id() != Some(opted_out.as_str())),
        "nothing was snapshotted"
    );
}

/// EC2 reports a snapshot's start time to the second: fixtures a second apart keep their order.
async fn a_second_later() {
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
}

/// Runs the same attempt as `record` again, as after an invocation that died (same token).
async fn retry(
    healer: &impl Healer,
    record: &autoheal_core::HealingRecord,
    volume: &str,
) -> Result<HealOutcome, autoheal_core::HealError> {
    let rules = RuleSet::shipped().expect("shipped rules");
    let rule = rules.get("ebs-volume-healing").expect("the rule");
    let incident = record.incident_id.as_deref().expect("an incident");
    let token = idempotency_token(&rule.name, volume, incident, record.attempt);
    let event = AlarmEvent::from_value(ebs_event("alarm", "ebs-retry", volume)).expect("event");
    healer
        .heal(HealRequest {
            rule,
            resource_id: volume,
            attempt: record.attempt,
            incident_id: incident,
            idempotency_token: &token,
            event: &event,
            alarm_actions: &[],
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repair_deletes_only_autoheals_own_older_snapshots_of_the_volume_beyond_three() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let queue = deployment.subscribe_queue("operators").await;
    let fleet = Fleet::new(&deployment.sdk);
    let instance = fleet.standalone(&[]).await;
    let volume = fleet.attached_volume(&instance, "/dev/sdf", &[]).await;
    let other = fleet.attached_volume(&instance, "/dev/sdg", &[]).await;
    // Oldest first: a person's snapshot, four of autoheal's own, one of autoheal's of another
    // volume, one of this volume tagged by another rule.
    let person = fleet
        .snapshot(&volume, &[("Name", "before the upgrade")])
        .await;
    let mut own = Vec::new();
    for _ in 0..4 {
        a_second_later().await;
        own.push(
            fleet
                .snapshot(
                    &volume,
                    &autoheal_snapshot_tags(&volume, "ebs-volume-healing"),
                )
                .await,
        );
    }
    let of_other_volume = fleet
        .snapshot(
            &other,
            &autoheal_snapshot_tags(&other, "ebs-volume-healing"),
        )
        .await;
    let of_other_rule = fleet
        .snapshot(&volume, &autoheal_snapshot_tags(&volume, "some-other-rule"))
        .await;
    let before = fleet.snapshots_of(&[&volume, &other]).await;
    assert_eq!(before.len(), 7);
    a_second_later().await;
    let engine = engine(&deployment);

    let record = engine
        .handle(ebs_event("alarm", "ebs-1", &volume), "run-1")
        .await
        .expect("handled")
        .record
        .expect("a record");

    assert_eq!(record.status, HealingStatus::Completed, "{record:?}");
    let new = record.details["snapshot_id"].clone();
    // Kept: the new snapshot and the two newest of autoheal's older ones (3 in all); deleted:
    // the two oldest of autoheal's; everything else is untouched.
    assert_eq!(
        record.details["snapshots_deleted"],
        format!("{},{}", own[1], own[0])
    );
    assert_eq!(
        record.details["snapshots_kept"],
        format!("{new},{},{}", own[3], own[2])
    );
    let mut expected = before.clone();
    expected.remove(&own[0]);
    expected.remove(&own[1]);
    expected.insert(new.clone());
    let after = fleet.snapshots_of(&[&volume, &other]).await;
    assert_eq!(after, expected);
    for kept in [&person, &of_other_volume, &of_other_rule] {
        assert!(after.contains(kept), "{kept} was deleted");
    }
    let tags = fleet.snapshot_tags(&new).await;
    for (key, value) in autoheal_snapshot_tags(&volume, "ebs-volume-healing") {
        assert_eq!(tags.get(key).map(String::as_str), Some(value), "{tags:?}");
    }
    assert!(tags.contains_key("autoheal:incident") && tags.contains_key("autoheal:token"));
    assert!(
        record
            .summary
            .as_deref()
            .is_some_and(|s| s.contains("deleted 2 older snapshots")),
        "{record:?}"
    );
    let stored = deployment
        .store()
        .recent_records(1, chrono::Utc::now())
        .await
        .expect("records");
    assert_eq!(
        stored[0].details.get("snapshots_deleted"),
        record.details.get("snapshots_deleted")
    );
    let notifications = deployment.notifications(&queue).await;
    let message: serde_json::Value =
        serde_json::from_str(notifications[0]["Message"].as_str().expect("a message"))
            .expect("JSON");
    assert_eq!(
        message["record"]["details"]["snapshots_deleted"],
        record.details["snapshots_deleted"].as_str()
    );

    // The same attempt again: its snapshot is reused and nothing more is deleted.
    let again = retry(&engine.healer.inner, &record, &volume)
        .await
        .expect("healed again");
    let HealOutcome::Healed { details, .. } = again else {
        panic!("{again:?}");
    };
    assert_eq!(details["snapshot_id"], new);
    assert_eq!(details["snapshots_deleted"], "");
    assert_eq!(fleet.snapshots_of(&[&volume, &other]).await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_that_cannot_be_deleted_is_reported_and_the_repair_still_completes() {
    let emulator = Emulator::start_with_snapshots_in_use();
    let deployment = Deployment::bootstrap(&emulator).await;
    let fleet = Fleet::new(&deployment.sdk);
    let instance = fleet.standalone(&[]).await;
    let volume = fleet.attached_volume(&instance, "/dev/sdf", &[]).await;
    let ours = autoheal_snapshot_tags(&volume, "ebs-volume-healing");
    // autoheal's oldest snapshot, which someone registered an AMI from.
    let mut in_use_tags = ours.to_vec();
    in_use_tags.push(("emulator:in-use-by", "ami-0123456789abcdef0"));
    let in_use = fleet.snapshot(&volume, &in_use_tags).await;
    let mut own = Vec::new();
    for _ in 0..3 {
        a_second_later().await;
        own.push(fleet.snapshot(&volume, &ours).await);
    }
    a_second_later().await;

    let record = engine(&deployment)
        .handle(ebs_event("alarm", "ebs-1", &volume), "run-1")
        .await
        .expect("handled")
        .record
        .expect("a record");

    assert_eq!(record.status, HealingStatus::Completed, "{record:?}");
    assert_eq!(record.details["snapshots_deleted"], own[0]);
    let refused = &record.details["snapshots_not_deleted"];
    assert!(
        refused.starts_with(&format!("{in_use}: DeleteSnapshot: InvalidSnapshot.InUse")),
        "{refused}"
    );
    let summary = record.summary.clone().unwrap_or_default();
    assert!(
        summary.contains(&format!("could not delete {in_use}")),
        "{summary}"
    );
    let after = fleet.snapshots_of(&[&volume]).await;
    assert!(
        after.contains(&in_use) && !after.contains(&own[0]),
        "{after:?}"
    );
    assert_eq!(
        after.len(),
        4,
        "the new one, two of autoheal's and the one in use"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_balanced_group_checking_only_ec2_health_is_switched_to_the_elb_health_check() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let fleet = Fleet::new(&deployment.sdk);
    let (group, _) = fleet.auto_scaling_group("web-asg").await;
    let (vpc, _) = fleet.vpc_and_subnet().await;
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&deployment.sdk);
    let target_group = elb
        .create_target_group()
        .name("web-targets")
        .protocol(aws_sdk_elasticloadbalancingv2::types::ProtocolEnum::Http)
        .port(80)
        .vpc_id(vpc)
        .send()
        .await
        .expect("a target group")
        .target_groups()[0]
        .target_group_arn()
        .expect("its ARN")
        .to_owned();
    fleet
        .autoscaling
        .attach_load_balancer_target_groups()
        .auto_scaling_group_name(&group)
        .target_group_arns(&target_group)
        .send()
        .await
        .expect("behind the load balancer");
    assert_eq!(fleet.group(&group).await.health_check_type(), Some("EC2"));
    let engine = engine(&deployment);

    let outcome = engine
        .handle(asg_event("alarm", "asg-1", &group), "run-1")
        .await
        .expect("handled");

    let record = outcome.record.expect("a record");
    assert_eq!(record.status, HealingStatus::Completed, "{record:?}");
    assert_eq!(record.details["previous_health_check_type"], "EC2");
    assert_eq!(record.details["health_check_type"], "ELB");
    assert_eq!(record.details["health_check_grace_period"], "300");
    let summary = record.summary.expect("a summary");
    assert!(
        summary.contains("from EC2") && summary.contains("to ELB"),
        "{summary}"
    );
    let after = fleet.group(&group).await;
    assert_eq!(after.health_check_type(), Some("ELB"));
    assert_eq!(after.health_check_grace_period(), Some(300));

    // The alarm clears: the added capacity goes back, the group's better check stays.
    let ok = engine
        .handle(asg_event("ok", "asg-ok", &group), "run-2")
        .await
        .expect("handled");
    assert_eq!(ok.decision, Verdict::Revert, "{ok:?}");
    let after = fleet.group(&group).await;
    assert_eq!(after.desired_capacity(), Some(1));
    assert_eq!(after.health_check_type(), Some("ELB"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_behind_no_load_balancer_keeps_its_ec2_health_check() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let fleet = Fleet::new(&deployment.sdk);
    let (group, _) = fleet.auto_scaling_group("batch-asg").await;
    let engine = engine(&deployment);

    let outcome = engine
        .handle(asg_event("alarm", "asg-1", &group), "run-1")
        .await
        .expect("handled");

    let record = outcome.record.expect("a record");
    assert_eq!(record.status, HealingStatus::Completed, "{record:?}");
    assert!(
        !record.details.contains_key("health_check_type"),
        "{record:?}"
    );
    assert_eq!(fleet.group(&group).await.health_check_type(), Some("EC2"));
}
