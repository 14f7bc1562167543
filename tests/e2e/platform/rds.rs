//! `rds-instance-healing` (`reboot-rds-instance`): the snapshot, the reboot, autoheal's own
//! snapshots kept within retention, and what it waits for or refuses: an instance AWS or a
//! person is working on, a Multi-AZ failover, parameter changes a reboot would apply, an
//! instance that is gone.

use autoheal_core::policy::decision::idempotency_token;
use autoheal_core::{
    Action, AlarmEvent, HealOutcome, HealRequest, Healer, HealingStatus, Layer, RuleSet, Settings,
    SkipReason, Verdict, WaitReason,
};
use autoheal_platform::PlatformHealer;
use autoheal_tests::platform::{
    RDS_INSTANCE_STATES, rds_change_static_parameter, rds_describe, rds_event, rds_instance,
    rds_instance_in_group, rds_parameter_group, rds_reboots, rds_set_tag, rds_snapshots,
};
use autoheal_tests::{
    Deployment, Emulator, TestClock, autoheal_snapshot_tags, rds_snapshot, rds_snapshot_ids,
};

use super::{alarm, gone, notified, platform, shipped_rule, skipped, stored_record, waits};

const TOKEN: &str = "autoheal-0123456789abcdef00000001";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rds_instance_is_snapshotted_then_rebooted() {
    let emulator = Emulator::start_with_shims(&[RDS_INSTANCE_STATES]);
    let deployment = Deployment::bootstrap(&emulator).await;
    let queue = deployment.subscribe_queue("operators").await;
    let rds = rds_instance(&deployment.sdk, "orders-db", false, &[]).await;
    let engine = platform(&deployment);

    let outcome = engine
        .handle(rds_event("alarm", "orders-db", "db-1"), "run-1")
        .await
        .expect("handled");

    assert_eq!(outcome.decision, Verdict::Act, "{outcome:?}");
    let record = stored_record(&deployment, HealingStatus::Completed).await;
    let snapshots = rds_snapshots(&rds, "orders-db").await;
    assert_eq!(snapshots.len(), 1, "{snapshots:?}");
    assert!(
        snapshots[0].starts_with("autoheal-orders-db-"),
        "{snapshots:?}"
    );
    assert_eq!(record.details.get("snapshot_id"), Some(&snapshots[0]));
    assert_eq!(
        record.details.get("failover").map(String::as_str),
        Some("no")
    );
    assert_eq!(rds_reboots(&rds, "orders-db").await, ["reboot"]);
    let notice = notified(&deployment, &queue, "rds-instance-healing", "completed").await;
    assert_eq!(notice["details"]["snapshot_id"], snapshots[0].as_str());

    let ok = engine
        .handle(rds_event("ok", "orders-db", "db-2"), "run-2")
        .await
        .expect("handled");
    assert_eq!(ok.decision, Verdict::Recovering, "{ok:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_rds_snapshot_is_waited_for_across_follow_ups_and_no_reboot_follows_an_alarm_back_to_ok()
 {
    let emulator =
        Emulator::start_with_shims(&["moto_rds_snapshot_progress.py", RDS_INSTANCE_STATES]);
    let deployment = Deployment::bootstrap(&emulator).await;
    let rds = rds_instance(
        &deployment.sdk,
        "orders-db",
        false,
        &[("emulator:snapshot-status", "creating")],
    )
    .await;
    let alarm = rds_event("alarm", "orders-db", "db-slow");
    let alarm_name = alarm["detail"]["alarmName"]
        .as_str()
        .expect("a name")
        .to_owned();
    deployment.set_alarm(&alarm_name, "ALARM").await;
    let clock = TestClock::at(chrono::Utc::now());
    let engine = deployment.layer_with(Layer::Platform, clock.clone(), Settings::default());

    let first = engine.handle(alarm, "run-1").await.expect("handled");
    let record = first.record.expect("recorded");
    assert_eq!(record.status, HealingStatus::InProgress, "{record:?}");
    let snapshot = record.details["snapshot_id"].clone();
    let step = deployment
        .fire_next(&engine, &clock, "step-1")
        .await
        .expect("the next step");
    assert_eq!(
        step.record.expect("recorded").status,
        HealingStatus::InProgress
    );

    // The alarm clears while the snapshot is made; once it is done, no reboot is needed.
    deployment.set_alarm(&alarm_name, "OK").await;
    let arn = rds
        .describe_db_instances()
        .db_instance_identifier("orders-db")
        .send()
        .await
        .expect("describe")
        .db_instances()[0]
        .db_instance_arn()
        .expect("an arn")
        .to_owned();
    rds.remove_tags_from_resource()
        .resource_name(arn)
        .tag_keys("emulator:snapshot-status")
        .send()
        .await
        .expect("untag");
    let last = deployment
        .fire_next(&engine, &clock, "step-2")
        .await
        .expect("the next step");
    let record = last.record.expect("recorded");
    assert_eq!(record.status, HealingStatus::Skipped, "{record:?}");
    assert_eq!(record.skip_reason, Some(SkipReason::NotNeeded));
    assert!(
        record
            .summary
            .as_deref()
            .is_some_and(|s| s.contains(&snapshot) && s.contains("was not rebooted")),
        "{record:?}"
    );
    assert_eq!(rds_snapshots(&rds, "orders-db").await, [snapshot]);
    assert!(
        rds_reboots(&rds, "orders-db").await.is_empty(),
        "never rebooted"
    );
    assert_eq!(engine.healer.calls(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_rds_attempt_reuses_its_snapshot_and_fails_over_a_multi_az_instance_when_asked() {
    let emulator = Emulator::start_with_shims(&[RDS_INSTANCE_STATES]);
    let deployment = Deployment::bootstrap(&emulator).await;
    let rds = rds_instance(&deployment.sdk, "orders-db", true, &[]).await;
    let mut rule = RuleSet::shipped()
        .expect("shipped rules")
        .get("rds-instance-healing")
        .cloned()
        .expect("the rule");
    rule.action = Action::RebootRdsInstance {
        snapshot_first: true,
        force_failover: true,
        keep_snapshots: 3,
        snapshot_max_age_days: None,
    };
    let event = AlarmEvent::from_value(rds_event("alarm", "orders-db", "db-retry")).expect("event");
    let healer = PlatformHealer::new(&deployment.sdk);
    let request = autoheal_tests::first_attempt(
        &rule,
        "orders-db",
        &event,
        "autoheal-0123456789abcdef00000001",
    );

    // The same attempt twice, as after an invocation that died: one snapshot, reused.
    let first = healer.heal(request).await.expect("healed");
    let second = healer.heal(request).await.expect("healed again");

    let snapshots = rds_snapshots(&rds, "orders-db").await;
    assert_eq!(snapshots, ["autoheal-orders-db-0123456789ab"]);
    for outcome in [&first, &second] {
        let HealOutcome::Healed { details, .. } = outcome else {
            panic!("{outcome:?}");
        };
        assert_eq!(details.get("snapshot_id"), Some(&snapshots[0]));
        assert_eq!(details.get("failover").map(String::as_str), Some("yes"));
    }
    let HealOutcome::Healed { summary, .. } = second else {
        panic!("{second:?}");
    };
    assert!(summary.starts_with("reused snapshot"), "{summary}");
    assert!(
        summary.contains("with failover to its standby"),
        "{summary}"
    );
    let reboots = rds_reboots(&rds, "orders-db").await;
    assert!(
        !reboots.is_empty() && reboots.iter().all(|r| r == "reboot-with-failover"),
        "{reboots:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rds_instance_tagged_disabled_is_neither_snapshotted_nor_rebooted() {
    let emulator = Emulator::start_with_shims(&[RDS_INSTANCE_STATES]);
    let deployment = Deployment::bootstrap(&emulator).await;
    let queue = deployment.subscribe_queue("operators").await;
    let rds = rds_instance(
        &deployment.sdk,
        "orders-db",
        true,
        &[("autoheal:disabled", "true")],
    )
    .await;

    let outcome = platform(&deployment)
        .handle(rds_event("alarm", "orders-db", "db-opt-out"), "run-1")
        .await
        .expect("handled");

    assert_eq!(outcome.reason, Some(SkipReason::OptedOut), "{outcome:?}");
    let record = stored_record(&deployment, HealingStatus::Skipped).await;
    assert_eq!(record.skip_reason, Some(SkipReason::OptedOut));
    assert!(rds_snapshots(&rds, "orders-db").await.is_empty());
    assert!(rds_reboots(&rds, "orders-db").await.is_empty());
    notified(&deployment, &queue, "rds-instance-healing", "skipped").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rds_reboot_deletes_only_autoheals_own_older_snapshots_of_the_instance_beyond_three() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let rds = rds_instance(&deployment.sdk, "orders-db", false, &[]).await;
    rds_instance(&deployment.sdk, "billing-db", false, &[]).await;
    // Oldest first: a person's snapshot, one someone tagged as autoheal's (its name says it is
    // not: an identifier cannot be changed), four of autoheal's own, one of autoheal's of
    // another instance, and a verified backup of this instance (another rule's).
    rds_snapshot(&rds, "orders-db", "before-the-upgrade", &[]).await;
    rds_snapshot(
        &rds,
        "orders-db",
        "nightly-orders-db",
        &autoheal_snapshot_tags("orders-db", "rds-instance-healing"),
    )
    .await;
    let own: Vec<String> = (1..=4)
        .map(|n| format!("autoheal-orders-db-old{n}"))
        .collect();
    for id in &own {
        rds_snapshot(
            &rds,
            "orders-db",
            id,
            &autoheal_snapshot_tags("orders-db", "rds-instance-healing"),
        )
        .await;
    }
    rds_snapshot(
        &rds,
        "billing-db",
        "autoheal-billing-db-old",
        &autoheal_snapshot_tags("billing-db", "rds-instance-healing"),
    )
    .await;
    rds_snapshot(
        &rds,
        "orders-db",
        "autoheal-verify-orders-db-old",
        &autoheal_snapshot_tags("orders-db", "backup-verification-healing"),
    )
    .await;
    let before = rds_snapshot_ids(&rds).await;
    let engine = platform(&deployment);

    let outcome = engine
        .handle(rds_event("alarm", "orders-db", "db-1"), "run-1")
        .await
        .expect("handled");

    let record = outcome.record.expect("a record");
    assert_eq!(record.status, HealingStatus::Completed, "{record:?}");
    let new = record.details["snapshot_id"].clone();
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
    let after = rds_snapshot_ids(&rds).await;
    assert_eq!(after, expected);
    for kept in [
        "before-the-upgrade",
        "nightly-orders-db",
        "autoheal-billing-db-old",
        "autoheal-verify-orders-db-old",
    ] {
        assert!(after.contains(kept), "{kept} was deleted");
    }
    let tags = rds
        .describe_db_snapshots()
        .db_snapshot_identifier(&new)
        .send()
        .await
        .expect("the new snapshot")
        .db_snapshots()[0]
        .tag_list()
        .to_vec();
    for (key, value) in autoheal_snapshot_tags("orders-db", "rds-instance-healing") {
        assert!(
            tags.iter()
                .any(|t| t.key() == Some(key) && t.value() == Some(value)),
            "{tags:?}"
        );
    }
    assert_eq!(
        stored_record(&deployment, HealingStatus::Completed)
            .await
            .details
            .get("snapshots_deleted"),
        record.details.get("snapshots_deleted")
    );

    // The same attempt again: its snapshot is reused and nothing more is deleted.
    let rules = RuleSet::shipped().expect("shipped rules");
    let rule = rules.get("rds-instance-healing").expect("the rule");
    let incident = record.incident_id.as_deref().expect("an incident");
    let token = idempotency_token(&rule.name, "orders-db", incident, record.attempt);
    let event = AlarmEvent::from_value(rds_event("alarm", "orders-db", "db-1")).expect("event");
    let again = engine
        .healer
        .inner
        .heal(HealRequest {
            rule,
            resource_id: "orders-db",
            attempt: record.attempt,
            incident_id: incident,
            idempotency_token: &token,
            event: &event,
            alarm_actions: &[],
        })
        .await
        .expect("healed again");
    let HealOutcome::Healed {
        summary, details, ..
    } = again
    else {
        panic!("{again:?}");
    };
    assert!(summary.starts_with("reused snapshot"), "{summary}");
    assert_eq!(details["snapshot_id"], new);
    assert_eq!(details["snapshots_deleted"], "");
    assert_eq!(rds_snapshot_ids(&rds).await, expected);
}

// ------------------------------------------------------------ what the reboot waits for

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_aws_or_a_person_is_working_on_is_waited_for_and_never_rebooted() {
    let emulator = Emulator::start_with_shims(&[RDS_INSTANCE_STATES]);
    let deployment = Deployment::bootstrap(&emulator).await;
    let rds = rds_instance(&deployment.sdk, "orders-db", false, &[]).await;
    let rule = shipped_rule("rds-instance-healing");
    let event = alarm(rds_event("alarm", "orders-db", "e1"));
    let request = autoheal_tests::first_attempt(&rule, "orders-db", &event, TOKEN);
    let healer = PlatformHealer::new(&deployment.sdk);
    let status = "emulator:db-instance-status";

    assert_eq!(
        healer.assess(request).await.expect("assessed"),
        autoheal_core::Assessment::Proceed
    );
    for (state, reason, what) in [
        ("backing-up", WaitReason::AwsHealing, "RDS is backing it up"),
        (
            "maintenance",
            WaitReason::AwsHealing,
            "RDS is applying maintenance",
        ),
        ("rebooting", WaitReason::AwsHealing, "it is rebooting"),
        (
            "modifying",
            WaitReason::OperatorHold,
            "a modification is being applied",
        ),
        ("stopped", WaitReason::OperatorHold, "it was stopped"),
    ] {
        rds_set_tag(&rds, "orders-db", status, Some(state)).await;
        let seen = waits(healer.assess(request).await.expect("assessed"), reason);
        assert_eq!(seen, format!("DB instance orders-db is {state}: {what}"));
    }
    // Past the wait, an instance still at work is not rebooted.
    let summary = skipped(
        healer.heal(request).await.expect("healed"),
        SkipReason::Unsafe,
    );
    assert_eq!(summary, "orders-db is not available: stopped");
    assert!(rds_snapshots(&rds, "orders-db").await.is_empty());
    assert!(rds_reboots(&rds, "orders-db").await.is_empty());

    rds_set_tag(&rds, "orders-db", status, Some("deleting")).await;
    assert!(gone(healer.assess(request).await.expect("assessed")).contains("being deleted"));
    assert!(healer.is_gone(&rule, "orders-db").await.expect("looked"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_az_failover_that_just_happened_is_waited_for() {
    let emulator = Emulator::start_with_shims(&[RDS_INSTANCE_STATES]);
    let deployment = Deployment::bootstrap(&emulator).await;
    let rds = rds_instance(&deployment.sdk, "orders-db", true, &[]).await;
    let rule = shipped_rule("rds-instance-healing");
    let event = alarm(rds_event("alarm", "orders-db", "e1"));
    let request = autoheal_tests::first_attempt(&rule, "orders-db", &event, TOKEN);
    let healer = PlatformHealer::new(&deployment.sdk);
    assert_eq!(
        healer.assess(request).await.expect("assessed"),
        autoheal_core::Assessment::Proceed
    );

    // Someone (RDS, or a person testing it) fails the instance over.
    rds.reboot_db_instance()
        .db_instance_identifier("orders-db")
        .force_failover(true)
        .send()
        .await
        .expect("a failover");

    let seen = waits(
        healer.assess(request).await.expect("assessed"),
        WaitReason::AwsHealing,
    );
    assert!(
        seen.contains("Multi-AZ failover of DB instance orders-db completed")
            && seen.contains("through DNS"),
        "{seen}"
    );
    assert_eq!(
        rds_reboots(&rds, "orders-db").await,
        ["reboot-with-failover"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reboot_that_would_apply_a_persons_pending_parameter_changes_is_refused() {
    let emulator = Emulator::start_with_shims(&[RDS_INSTANCE_STATES]);
    let deployment = Deployment::bootstrap(&emulator).await;
    let rds = aws_sdk_rds::Client::new(&deployment.sdk);
    rds_parameter_group(&rds, "orders-params").await;
    rds_instance_in_group(&rds, "orders-db", "orders-params").await;
    rds_change_static_parameter(&rds, "orders-params").await;
    let rule = shipped_rule("rds-instance-healing");
    let event = alarm(rds_event("alarm", "orders-db", "e1"));
    let request = autoheal_tests::first_attempt(&rule, "orders-db", &event, TOKEN);

    let summary = skipped(
        PlatformHealer::new(&deployment.sdk)
            .heal(request)
            .await
            .expect("healed"),
        SkipReason::Unsafe,
    );

    assert!(
        summary.contains("orders-params (pending-reboot)") && summary.contains("a person decides"),
        "{summary}"
    );
    assert!(
        rds_snapshots(&rds, "orders-db").await.is_empty(),
        "no snapshot"
    );
    assert!(rds_reboots(&rds, "orders-db").await.is_empty(), "no reboot");
    let groups = rds_describe(&rds, "orders-db").await;
    assert_eq!(
        groups.db_parameter_groups()[0].parameter_apply_status(),
        Some("pending-reboot"),
        "the change still waits for the person"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_does_not_exist_is_gone() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let rule = shipped_rule("rds-instance-healing");
    let event = alarm(rds_event("alarm", "no-such-db", "e1"));
    let request = autoheal_tests::first_attempt(&rule, "no-such-db", &event, TOKEN);
    let healer = PlatformHealer::new(&deployment.sdk);

    let summary = gone(healer.assess(request).await.expect("assessed"));
    assert_eq!(summary, "DB instance no-such-db does not exist");
    assert!(healer.is_gone(&rule, "no-such-db").await.expect("looked"));
    let summary = skipped(
        healer.heal(request).await.expect("healed"),
        SkipReason::Gone,
    );
    assert_eq!(summary, "DB instance no-such-db does not exist");
}
