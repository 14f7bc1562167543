//! `ecs-service-healing` (`restart-ecs-service`): the restart, the capacity it adds while tasks
//! are replaced, and what it waits for or refuses: a deployment rolling out or being rolled
//! back, a failed deployment, a service that is gone.

use autoheal_core::{
    AlarmEvent, HealOutcome, Healer, HealingStatus, SkipReason, Verdict, WaitReason,
};
use autoheal_platform::PlatformHealer;
use autoheal_tests::platform::{EcsService, ecs_event};
use autoheal_tests::{Deployment, Emulator};

use super::{alarm, gone, notified, platform, shipped_rule, skipped, stored_record, waits};

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
async fn a_restart_adds_tasks_so_capacity_does_not_dip_and_puts_the_count_back_once_steady() {
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

// ------------------------------------------------------------ what the restart waits for

const RESOURCE: &str = "prod-cluster/orders-api";
const TOKEN: &str = "autoheal-0123456789abcdef00000001";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_rolling_out_or_rolled_back_by_the_circuit_breaker_is_waited_for_never_forced()
{
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let service = EcsService::create(&deployment.sdk, "prod-cluster", "orders-api", &[]).await;
    let rule = shipped_rule("ecs-service-healing");
    let event = alarm(ecs_event("alarm", "prod-cluster", "orders-api", "e1"));
    let request = autoheal_tests::first_attempt(&rule, RESOURCE, &event, TOKEN);
    let healer = PlatformHealer::new(&deployment.sdk);

    // Settled: nothing to wait for.
    assert_eq!(
        healer.assess(request).await.expect("assessed"),
        autoheal_core::Assessment::Proceed
    );

    // A new deployment rolling out over the last one.
    service
        .set_deployments(Some("PRIMARY:IN_PROGRESS,ACTIVE:COMPLETED"), Some(1))
        .await;
    let before = service.deployment_ids().await;
    let seen = waits(
        healer.assess(request).await.expect("assessed"),
        WaitReason::AwsHealing,
    );
    assert!(
        seen.contains(&format!(
            "deployment {} is rolling out (1 of 2 tasks running)",
            before[0]
        )),
        "{seen}"
    );

    // The circuit breaker rolling a failed deployment back.
    service
        .set_deployments(Some("PRIMARY:IN_PROGRESS,ACTIVE:FAILED"), Some(1))
        .await;
    let seen = waits(
        healer.assess(request).await.expect("assessed"),
        WaitReason::AwsHealing,
    );
    assert!(seen.contains("circuit breaker is rolling back"), "{seen}");
    // Past the wait, the restart still does not cut the rollback short.
    let summary = skipped(
        healer.heal(request).await.expect("healed"),
        SkipReason::Unsafe,
    );
    assert!(
        summary.contains("the circuit breaker owns the service"),
        "{summary}"
    );
    assert_eq!(
        service.deployment_ids().await,
        before,
        "no deployment forced"
    );
    assert_eq!(service.describe().await.desired_count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_deployment_that_nothing_rolls_back_is_left_to_a_person() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let service = EcsService::create(&deployment.sdk, "prod-cluster", "orders-api", &[]).await;
    service
        .set_deployments(Some("PRIMARY:FAILED"), Some(0))
        .await;
    let before = service.deployment_ids().await;
    let rule = shipped_rule("ecs-service-healing");
    let event = alarm(ecs_event("alarm", "prod-cluster", "orders-api", "e1"));
    let request = autoheal_tests::first_attempt(&rule, RESOURCE, &event, TOKEN);
    let healer = PlatformHealer::new(&deployment.sdk);

    // Nothing is healing it: no wait, and the restart refuses.
    assert_eq!(
        healer.assess(request).await.expect("assessed"),
        autoheal_core::Assessment::Proceed
    );
    let summary = skipped(
        healer.heal(request).await.expect("healed"),
        SkipReason::Unsafe,
    );
    assert!(
        summary.contains("failed (ECS deployment circuit breaker: tasks failed to start.)")
            && summary.contains("would fail the same way"),
        "{summary}"
    );
    assert_eq!(
        service.deployment_ids().await,
        before,
        "no deployment forced"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_still_under_way_past_the_wait_is_restarted_over_and_said_so() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let service = EcsService::create(&deployment.sdk, "prod-cluster", "orders-api", &[]).await;
    service
        .set_deployments(Some("PRIMARY:IN_PROGRESS,ACTIVE:COMPLETED"), Some(0))
        .await;
    let stuck = service.deployment_ids().await[0].clone();
    let rule = shipped_rule("ecs-service-healing");
    let event = alarm(ecs_event("alarm", "prod-cluster", "orders-api", "e1"));
    let request = autoheal_tests::first_attempt(&rule, RESOURCE, &event, TOKEN);

    let HealOutcome::Healed {
        summary, details, ..
    } = PlatformHealer::new(&deployment.sdk)
        .heal(request)
        .await
        .expect("healed")
    else {
        panic!("the restart runs");
    };

    let forced = service.deployment_ids().await[0].clone();
    assert_ne!(forced, stuck, "a new deployment was forced");
    assert_eq!(details["deployment_id"], forced);
    assert_eq!(details["stuck_deployment_id"], stuck);
    assert!(
        summary.contains(&format!("over {stuck}, which had not finished rolling out")),
        "{summary}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raised_count_waits_out_a_rollback_and_goes_back_only_once_the_service_has_settled() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let service = EcsService::create(&deployment.sdk, "prod-cluster", "orders-api", &[]).await;
    let rules = autoheal_tests::shipped_rules_with(&[(
        "# desired_count_adjustment = 1",
        "desired_count_adjustment = 1",
    )]);
    let rule = rules.get("ecs-service-healing").expect("the rule");
    let event = alarm(ecs_event("alarm", "prod-cluster", "orders-api", "e1"));
    let request = autoheal_tests::first_attempt(rule, RESOURCE, &event, TOKEN);
    let healer = PlatformHealer::new(&deployment.sdk);
    assert!(matches!(
        healer.heal(request).await.expect("the restart"),
        HealOutcome::Continuing { .. }
    ));
    assert_eq!(service.describe().await.desired_count(), 3);

    // The new deployment fails and the circuit breaker rolls it back: the count stays.
    service
        .set_deployments(Some("PRIMARY:IN_PROGRESS,ACTIVE:FAILED"), Some(2))
        .await;
    let HealOutcome::Continuing { summary, .. } = healer.heal(request).await.expect("a step")
    else {
        panic!("still waiting");
    };
    assert!(summary.contains("rolling back"), "{summary}");
    assert_eq!(service.describe().await.desired_count(), 3);

    // The rollback done, every task running: the count goes back.
    service.set_deployments(None, None).await;
    let HealOutcome::Healed { summary, .. } = healer.heal(request).await.expect("a step") else {
        panic!("settled");
    };
    assert!(
        summary.contains("desired count back from 3 to 2"),
        "{summary}"
    );
    assert_eq!(service.describe().await.desired_count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raised_count_stays_raised_for_a_person_when_the_new_deployment_fails_for_good() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let service = EcsService::create(&deployment.sdk, "prod-cluster", "orders-api", &[]).await;
    let rules = autoheal_tests::shipped_rules_with(&[(
        "# desired_count_adjustment = 1",
        "desired_count_adjustment = 1",
    )]);
    let rule = rules.get("ecs-service-healing").expect("the rule");
    let event = alarm(ecs_event("alarm", "prod-cluster", "orders-api", "e1"));
    let request = autoheal_tests::first_attempt(rule, RESOURCE, &event, TOKEN);
    let healer = PlatformHealer::new(&deployment.sdk);
    assert!(matches!(
        healer.heal(request).await.expect("the restart"),
        HealOutcome::Continuing { .. }
    ));

    service
        .set_deployments(Some("PRIMARY:FAILED"), Some(1))
        .await;
    let error = healer.heal(request).await.expect_err("it did not settle");

    assert!(
        error.message.contains("did not settle")
            && error.message.contains("nothing rolls it back")
            && error
                .message
                .contains("stays 3 (autoheal raised it from 2)"),
        "{error}"
    );
    assert_eq!(service.describe().await.desired_count(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_or_cluster_that_does_not_exist_or_was_deleted_is_gone() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let service = EcsService::create(&deployment.sdk, "prod-cluster", "orders-api", &[]).await;
    EcsService::create(&deployment.sdk, "prod-cluster-2", "billing", &[]).await;
    let rule = shipped_rule("ecs-service-healing");
    let healer = PlatformHealer::new(&deployment.sdk);
    let event = alarm(ecs_event("alarm", "prod-cluster", "orders-api", "e1"));
    let assess = |resource: &'static str| {
        let request = autoheal_tests::first_attempt(&rule, resource, &event, TOKEN);
        let healer = healer.clone();
        async move { healer.assess(request).await.expect("assessed") }
    };

    assert!(gone(assess("no-such-cluster/orders-api").await).contains("cluster no-such-cluster"));
    assert!(gone(assess("prod-cluster/no-such-service").await).contains("does not exist"));
    service.delete().await;
    let summary = gone(assess(RESOURCE).await);
    assert!(summary.contains("deleted"), "{summary}");
    assert!(healer.is_gone(&rule, RESOURCE).await.expect("looked"));
    assert!(
        !healer
            .is_gone(&rule, "prod-cluster-2/billing")
            .await
            .expect("looked")
    );

    // An attempt that finds it gone after all changes nothing and says so.
    let request = autoheal_tests::first_attempt(&rule, RESOURCE, &event, TOKEN);
    let summary = skipped(
        healer.heal(request).await.expect("healed"),
        SkipReason::Gone,
    );
    assert!(summary.contains("orders-api"), "{summary}");
}
