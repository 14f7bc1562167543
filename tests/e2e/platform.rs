//! The platform layer's rules against the emulator: `ecs-service-healing`,
//! `lambda-function-healing` and `rds-instance-healing`, through the platform engine with the
//! real healer, state table and topic.

use serde_json::Value;

use autoheal_core::idempotency_token;
use autoheal_core::{
    Action, AlarmEvent, HealOutcome, HealRequest, Healer, HealingRecord, HealingStatus, Layer,
    RuleSet, Settings, SkipReason, SystemClock, Verdict,
};
use autoheal_platform::PlatformHealer;
use autoheal_tests::platform::{
    EcsService, ecs_event, lambda_event, lambda_function, live_version, rds_event, rds_instance,
    rds_snapshots,
};
use autoheal_tests::{
    Deployment, Emulator, TestClock, TestEngine, autoheal_snapshot_tags, ec2_alarm, rds_snapshot,
    rds_snapshot_ids,
};

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

// ------------------------------------------------------------------ ecs-service-healing

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecs_service_gets_a_new_deployment_and_keeps_its_tasks_and_count() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let queue = deployment.subscribe_queue("operators").await;
    let service = EcsService::create(&deployment.sdk, "prod-cluster", "orders-api", &[]).await;
    let before = service.deployment_id().await;
    let engine = platform(&deployment);

    let outcome = engine
        .handle(
            ecs_event("alarm", "prod-cluster", "orders-api", "ecs-1"),
            "run-1",
        )
        .await
        .expect("handled");

    assert_eq!(outcome.decision, Verdict::Act, "{outcome:?}");
    let record = stored_record(&deployment, HealingStatus::Completed).await;
    assert_eq!(record.resource_id, "prod-cluster/orders-api");
    assert_eq!(record.action, "restart-ecs-service");
    let after = service.deployment_id().await;
    assert_ne!(after, before, "a new deployment was forced");
    assert_eq!(record.details.get("deployment_id"), Some(&after));
    // The emulator reports every task healthy: none is stopped, and nothing else changes.
    assert!(!record.details.contains_key("stopped_tasks"), "{record:?}");
    for (arn, desired, reason) in service.task_states(&[]).await {
        assert_eq!(desired.as_deref(), Some("RUNNING"), "{arn}");
        assert_eq!(reason, None, "{arn}");
    }
    assert_eq!(service.describe().await.desired_count(), 2);
    let notice = notified(&deployment, &queue, "ecs-service-healing", "completed").await;
    assert_eq!(notice["resource_id"], "prod-cluster/orders-api");
    assert_eq!(notice["details"]["deployment_id"], after.as_str());

    let ok = engine
        .handle(
            ecs_event("ok", "prod-cluster", "orders-api", "ecs-2"),
            "run-2",
        )
        .await
        .expect("handled");
    assert_eq!(ok.decision, Verdict::Recovering, "{ok:?}");
    assert_eq!(engine.healer.calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecs_service_tasks_reported_unhealthy_are_stopped_with_a_reason_naming_the_incident() {
    let emulator = Emulator::start_with_ecs_task_health();
    let deployment = Deployment::bootstrap(&emulator).await;
    let service = EcsService::create(&deployment.sdk, "prod-cluster", "orders-api", &[]).await;
    let unhealthy = service
        .run_task("service:orders-api", Some("UNHEALTHY"))
        .await;
    let healthy = service
        .run_task("service:orders-api", Some("HEALTHY"))
        .await;
    let unhealthy_elsewhere = service.run_task("family:batch", Some("UNHEALTHY")).await;

    let outcome = platform(&deployment)
        .handle(
            ecs_event("alarm", "prod-cluster", "orders-api", "ecs-unhealthy"),
            "run-1",
        )
        .await
        .expect("handled");

    assert_eq!(outcome.decision, Verdict::Act, "{outcome:?}");
    let record = stored_record(&deployment, HealingStatus::Completed).await;
    assert_eq!(record.details.get("stopped_tasks"), Some(&unhealthy));
    let incident = record.incident_id.clone().expect("an incident");
    for (arn, desired, reason) in service
        .task_states(&[&unhealthy, &healthy, &unhealthy_elsewhere])
        .await
    {
        if arn == unhealthy {
            assert_eq!(desired.as_deref(), Some("STOPPED"));
            let reason = reason.expect("a stop reason");
            assert!(
                reason.starts_with("autoheal") && reason.contains(&incident),
                "{reason}"
            );
        } else {
            assert_eq!(
                desired.as_deref(),
                Some("RUNNING"),
                "{arn} was left running"
            );
        }
    }
    assert_eq!(service.describe().await.desired_count(), 2);
    let summary = record.summary.expect("a summary");
    assert!(summary.contains("stopped 1 unhealthy task"), "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecs_service_tagged_disabled_is_left_alone() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let queue = deployment.subscribe_queue("operators").await;
    let service = EcsService::create(
        &deployment.sdk,
        "prod-cluster",
        "orders-api",
        &[("autoheal:disabled", "true")],
    )
    .await;
    let before = service.deployment_id().await;

    let outcome = platform(&deployment)
        .handle(
            ecs_event("alarm", "prod-cluster", "orders-api", "ecs-opt-out"),
            "run-1",
        )
        .await
        .expect("handled");

    assert_eq!(outcome.reason, Some(SkipReason::OptedOut), "{outcome:?}");
    let record = stored_record(&deployment, HealingStatus::Skipped).await;
    assert_eq!(record.skip_reason, Some(SkipReason::OptedOut));
    assert_eq!(service.deployment_id().await, before, "no deployment");
    notified(&deployment, &queue, "ecs-service-healing", "skipped").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecs_service_in_a_missing_cluster_gives_a_failed_record_with_the_service_message() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let queue = deployment.subscribe_queue("operators").await;

    let outcome = platform(&deployment)
        .handle(
            ecs_event("alarm", "no-such-cluster", "orders-api", "ecs-missing"),
            "run-1",
        )
        .await
        .expect("handled, not an error");

    assert_eq!(outcome.decision, Verdict::Act);
    let record = stored_record(&deployment, HealingStatus::Failed).await;
    let error = record.error.expect("an error message");
    assert!(
        error.starts_with("DescribeServices: ClusterNotFoundException"),
        "{error}"
    );
    let notice = notified(&deployment, &queue, "ecs-service-healing", "failed").await;
    assert_eq!(notice["error"], error.as_str());
}

// ------------------------------------------------------------------ lambda-function-healing

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_alias_rolls_back_to_the_previous_version() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let queue = deployment.subscribe_queue("operators").await;
    let lambda = lambda_function(&deployment.sdk, "orders-processor", &[]).await;
    let engine = platform(&deployment);

    let outcome = engine
        .handle(lambda_event("alarm", "orders-processor", "fn-1"), "run-1")
        .await
        .expect("handled");

    assert_eq!(outcome.decision, Verdict::Act, "{outcome:?}");
    assert_eq!(live_version(&lambda, "orders-processor").await, "1");
    let record = stored_record(&deployment, HealingStatus::Completed).await;
    assert_eq!(
        record.details.get("from_version").map(String::as_str),
        Some("2")
    );
    assert_eq!(
        record.details.get("to_version").map(String::as_str),
        Some("1")
    );
    let notice = notified(&deployment, &queue, "lambda-function-healing", "completed").await;
    assert_eq!(notice["details"]["to_version"], "1");

    let ok = engine
        .handle(lambda_event("ok", "orders-processor", "fn-2"), "run-2")
        .await
        .expect("handled");
    assert_eq!(ok.decision, Verdict::Recovering, "{ok:?}");
    assert_eq!(live_version(&lambda, "orders-processor").await, "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_function_tagged_disabled_keeps_its_alias() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let queue = deployment.subscribe_queue("operators").await;
    let lambda = lambda_function(
        &deployment.sdk,
        "orders-processor",
        &[("autoheal:disabled", "true")],
    )
    .await;

    let outcome = platform(&deployment)
        .handle(
            lambda_event("alarm", "orders-processor", "fn-opt-out"),
            "run-1",
        )
        .await
        .expect("handled");

    assert_eq!(outcome.reason, Some(SkipReason::OptedOut), "{outcome:?}");
    let record = stored_record(&deployment, HealingStatus::Skipped).await;
    assert_eq!(record.skip_reason, Some(SkipReason::OptedOut));
    assert_eq!(live_version(&lambda, "orders-processor").await, "2");
    notified(&deployment, &queue, "lambda-function-healing", "skipped").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_alias_on_the_first_version_has_nothing_to_roll_back_to() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let lambda = lambda_function(&deployment.sdk, "orders-processor", &[]).await;
    lambda
        .update_alias()
        .function_name("orders-processor")
        .name("live")
        .function_version("1")
        .send()
        .await
        .expect("alias on version 1");

    let outcome = platform(&deployment)
        .handle(
            lambda_event("alarm", "orders-processor", "fn-first"),
            "run-1",
        )
        .await
        .expect("handled");

    assert_eq!(outcome.reason, Some(SkipReason::NotNeeded), "{outcome:?}");
    let record = stored_record(&deployment, HealingStatus::Skipped).await;
    let summary = record.summary.expect("a summary");
    assert!(
        summary.contains("no published version precedes it"),
        "{summary}"
    );
    assert_eq!(live_version(&lambda, "orders-processor").await, "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_lambda_function_gives_a_failed_record_with_the_service_message() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let queue = deployment.subscribe_queue("operators").await;

    let outcome = platform(&deployment)
        .handle(
            lambda_event("alarm", "no-such-function", "fn-missing"),
            "run-1",
        )
        .await
        .expect("handled, not an error");

    assert_eq!(outcome.decision, Verdict::Act);
    let record = stored_record(&deployment, HealingStatus::Failed).await;
    let error = record.error.expect("an error message");
    assert!(
        error.starts_with("GetAlias: ResourceNotFoundException"),
        "{error}"
    );
    notified(&deployment, &queue, "lambda-function-healing", "failed").await;
}

// ------------------------------------------------------------------ rds-instance-healing

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rds_instance_is_snapshotted_then_rebooted() {
    let emulator = Emulator::start();
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
    let emulator = Emulator::start_with_shims(&["moto_rds_snapshot_progress.py"]);
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
    assert_eq!(engine.healer.calls(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_rds_attempt_reuses_its_snapshot_and_fails_over_a_multi_az_instance_when_asked() {
    let emulator = Emulator::start();
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rds_instance_tagged_disabled_is_neither_snapshotted_nor_rebooted() {
    let emulator = Emulator::start();
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
    notified(&deployment, &queue, "rds-instance-healing", "skipped").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_rds_instance_gives_a_failed_record_with_the_service_message() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let queue = deployment.subscribe_queue("operators").await;

    let outcome = platform(&deployment)
        .handle(rds_event("alarm", "no-such-db", "db-missing"), "run-1")
        .await
        .expect("handled, not an error");

    assert_eq!(outcome.decision, Verdict::Act);
    let record = stored_record(&deployment, HealingStatus::Failed).await;
    let error = record.error.expect("an error message");
    assert!(
        error.starts_with("DescribeDBInstances: DBInstanceNotFound"),
        "{error}"
    );
    notified(&deployment, &queue, "rds-instance-healing", "failed").await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rds_reboot_deletes_only_autoheals_own_older_snapshots_of_the_instance_beyond_three() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let rds = rds_instance(&deployment.sdk, "orders-db", false, &[]).await;
    rds_instance(&deployment.sdk, "billing-db", false, &[]).await;
    // Oldest first: a person's snapshot, four of autoheal's own, one of autoheal's of another
    // instance, and a verified backup of this instance (another rule's).
    rds_snapshot(&rds, "orders-db", "before-the-upgrade", &[]).await;
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

// ------------------------------------------------------------ ecs-service-healing: capacity

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_adds_tasks_so_capacity_does_not_dip_and_puts_the_count_back_once_steady() {
    use autoheal_core::{AlarmEvent, HealOutcome, Healer};

    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let service = EcsService::create(&deployment.sdk, "prod-cluster", "orders-api", &[]).await;
    let before = service.deployment_id().await;
    let rules = autoheal_tests::shipped_rules_with(&[
        (
            "# desired_count_adjustment = 1",
            "desired_count_adjustment = 3",
        ),
        ("# max_desired_count = 20", "max_desired_count = 4"),
    ]);
    let healer = PlatformHealer::new(&deployment.sdk);
    let event = AlarmEvent::from_value(ecs_event("alarm", "prod-cluster", "orders-api", "e1"))
        .expect("an alarm");
    let request = autoheal_tests::first_attempt(
        rules.get("ecs-service-healing").expect("the rule"),
        "prod-cluster/orders-api",
        &event,
        "autoheal-0123456789abcdef00000001",
    );

    // 1. The restart, with 2 more tasks (3 asked, 4 at most) while the tasks are replaced.
    let HealOutcome::Continuing {
        summary,
        details,
        resume_after_seconds,
    } = healer.heal(request).await.expect("the restart")
    else {
        panic!("the count goes back in a later step");
    };
    assert_eq!(
        resume_after_seconds,
        autoheal_platform::ecs::SETTLE_INTERVAL_SECONDS
    );
    assert_eq!(details["desired_count_before"], "2");
    assert_eq!(details["desired_count_after"], "4");
    assert!(
        summary.contains("raised the desired count from 2 to 4"),
        "{summary}"
    );
    let during = service.describe().await;
    assert_eq!(during.desired_count(), 4);
    assert_ne!(
        service.deployment_id().await,
        before,
        "a new deployment was forced"
    );
    let recorded = during
        .tags()
        .iter()
        .find(|tag| tag.key() == Some("autoheal:desired-count"))
        .and_then(|tag| tag.value())
        .expect("the adjustment is recorded on the service");
    assert_eq!(recorded, "autoheal-0123456789abcdef00000001 2 4");

    // 2. The follow-up step: the new deployment is steady (one deployment, every task
    //    running), so the count goes back; no second deployment is forced.
    let forced = service.deployment_id().await;
    let HealOutcome::Healed { summary, .. } = healer.heal(request).await.expect("the settle step")
    else {
        panic!("steady: the action ends");
    };
    assert!(
        summary.contains("desired count back from 4 to 2"),
        "{summary}"
    );
    assert_eq!(service.describe().await.desired_count(), 2);
    assert_eq!(service.deployment_id().await, forced);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_desired_count_someone_changed_during_the_restart_is_left_to_them() {
    use autoheal_core::{AlarmEvent, HealOutcome, Healer};

    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let service = EcsService::create(&deployment.sdk, "prod-cluster", "orders-api", &[]).await;
    let rules = autoheal_tests::shipped_rules_with(&[(
        "# desired_count_adjustment = 1",
        "desired_count_adjustment = 1",
    )]);
    let healer = PlatformHealer::new(&deployment.sdk);
    let event = AlarmEvent::from_value(ecs_event("alarm", "prod-cluster", "orders-api", "e1"))
        .expect("an alarm");
    let request = autoheal_tests::first_attempt(
        rules.get("ecs-service-healing").expect("the rule"),
        "prod-cluster/orders-api",
        &event,
        "autoheal-0123456789abcdef00000002",
    );
    assert!(matches!(
        healer.heal(request).await.expect("the restart"),
        HealOutcome::Continuing { .. }
    ));
    assert_eq!(service.describe().await.desired_count(), 3);
    // A scaling policy (here, a person) moves the service on.
    service
        .ecs
        .update_service()
        .cluster("prod-cluster")
        .service("orders-api")
        .desired_count(6)
        .send()
        .await
        .expect("scale");

    let HealOutcome::Healed { summary, .. } = healer.heal(request).await.expect("the settle step")
    else {
        panic!("the action ends");
    };
    assert!(summary.contains("owns it now"), "{summary}");
    assert_eq!(service.describe().await.desired_count(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_attempt_adds_to_the_services_own_count_not_to_tasks_an_earlier_one_added() {
    use autoheal_core::{AlarmEvent, HealOutcome, Healer};

    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let service = EcsService::create(&deployment.sdk, "prod-cluster", "orders-api", &[]).await;
    let rules = autoheal_tests::shipped_rules_with(&[(
        "# desired_count_adjustment = 1",
        "desired_count_adjustment = 1",
    )]);
    let rule = rules.get("ecs-service-healing").expect("the rule");
    let healer = PlatformHealer::new(&deployment.sdk);
    let event = AlarmEvent::from_value(ecs_event("alarm", "prod-cluster", "orders-api", "e1"))
        .expect("an alarm");
    let resource = "prod-cluster/orders-api";

    // Attempt 1 raises 2 → 3 and its action ends before the deployment is steady.
    let first = autoheal_tests::first_attempt(rule, resource, &event, "autoheal-attempt-one");
    assert!(matches!(
        healer.heal(first).await.expect("attempt 1"),
        HealOutcome::Continuing { .. }
    ));
    assert_eq!(service.describe().await.desired_count(), 3);

    // Attempt 2 counts from the service's own 2, not from 3.
    let second = autoheal_tests::first_attempt(rule, resource, &event, "autoheal-attempt-two");
    let HealOutcome::Continuing { details, .. } = healer.heal(second).await.expect("attempt 2")
    else {
        panic!("the count goes back in a later step");
    };
    assert_eq!(details["desired_count_before"], "2");
    assert_eq!(details["desired_count_after"], "3");
    assert_eq!(service.describe().await.desired_count(), 3);
    assert!(matches!(
        healer.heal(second).await.expect("attempt 2 settles"),
        HealOutcome::Healed { .. }
    ));
    assert_eq!(service.describe().await.desired_count(), 2);
}
