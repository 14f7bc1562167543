//! `alb-target-healing`: only targets nobody else heals leave the target group.

use autoheal_core::{Assessment, Healer, HealingStatus, SkipReason, Verdict, WaitReason};
use autoheal_network::NetworkHealer;
use autoheal_tests::network::{TARGET_SHIMS, TargetGroupFixture, alb_alarm, alb_ok};
use autoheal_tests::{Deployment, Emulator, Fleet};

use super::{Alarmed, network, single_notice, skipped, stored_record};

const RULE: &str = "alb-target-healing";

/// An emulator whose load balancer can find running targets unhealthy.
fn emulator() -> Emulator {
    Emulator::start_with_shims(&TARGET_SHIMS)
}

/// The wait the healer asks for before an attempt on the group.
async fn wait_for(healer: &NetworkHealer, group: &TargetGroupFixture) -> autoheal_core::Wait {
    let alarm = Alarmed::new(RULE, alb_alarm(&group.arn, "e1"), &group.arn);
    match healer.assess(alarm.request()).await.expect("assessed") {
        Assessment::Wait(wait) => wait,
        other => panic!("expected a wait: {other:?}"),
    }
}

/// The healer's skip of an attempt on the group.
async fn skip_of(healer: &NetworkHealer, group: &TargetGroupFixture) -> (SkipReason, String) {
    let alarm = Alarmed::new(RULE, alb_alarm(&group.arn, "e1"), &group.arn);
    skipped(healer.heal(alarm.request()).await.expect("no error"))
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alb_unhealthy_targets_are_deregistered_and_healthy_ones_keep_serving() {
    let emulator = emulator();
    let deployment = Deployment::bootstrap(&emulator).await;
    let queue = deployment.subscribe_queue("operators").await;
    let group = TargetGroupFixture::create(&deployment.sdk, 3, &[("team", "web")]).await;
    let failed = group.instances[0].clone();
    group.fail(&[&failed]).await;
    let engine = network(&deployment);

    let outcome = engine
        .handle(alb_alarm(&group.arn, "alb-alarm"), "run-1")
        .await
        .expect("handled");

    let record = outcome.record.expect("a record");
    assert_eq!(record.status, HealingStatus::Completed, "{record:?}");
    assert_eq!(record.resource_id, group.arn);
    let mut healthy = group.instances[1..].to_vec();
    healthy.sort();
    assert_eq!(
        group.registered().await,
        healthy,
        "only the failed target left"
    );
    let stored = stored_record(&deployment).await;
    assert_eq!(stored.status, HealingStatus::Completed);
    assert_eq!(stored.rule, "alb-target-healing");
    assert_eq!(
        stored.details.get("deregistered_targets"),
        Some(&format!("{failed}:80"))
    );
    assert_eq!(
        stored
            .details
            .get("healthy_targets_left")
            .map(String::as_str),
        Some("2")
    );
    let notice = single_notice(&deployment, &queue, "alb-target-healing", "completed").await;
    assert_eq!(notice["resource_id"], group.arn.as_str());
    assert_eq!(notice["action"], "deregister-unhealthy-targets");

    let ok = engine
        .handle(alb_ok(&group.arn, "alb-ok"), "run-2")
        .await
        .expect("handled");
    assert_eq!(ok.decision, Verdict::Recovering, "{ok:?}");
    assert_eq!(engine.healer.calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alb_the_last_capacity_is_never_deregistered() {
    let emulator = emulator();
    let deployment = Deployment::bootstrap(&emulator).await;
    let group = TargetGroupFixture::create(&deployment.sdk, 2, &[]).await;
    group
        .fail(&[&group.instances[0], &group.instances[1]])
        .await;
    let engine = network(&deployment);

    let record = engine
        .handle(alb_alarm(&group.arn, "alb-all-failing"), "run-1")
        .await
        .expect("handled")
        .record
        .expect("a record");

    assert_eq!(record.status, HealingStatus::Skipped);
    assert_eq!(record.skip_reason, Some(SkipReason::Unsafe), "{record:?}");
    let mut all = group.instances.clone();
    all.sort();
    assert_eq!(
        group.registered().await,
        all,
        "every target still registered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alb_target_group_whose_targets_all_recovered_needs_nothing() {
    let emulator = emulator();
    let deployment = Deployment::bootstrap(&emulator).await;
    let group = TargetGroupFixture::create(&deployment.sdk, 2, &[]).await;
    let engine = network(&deployment);

    let record = engine
        .handle(alb_alarm(&group.arn, "alb-healthy"), "run-1")
        .await
        .expect("handled")
        .record
        .expect("a record");

    assert_eq!(record.status, HealingStatus::Skipped);
    assert_eq!(
        record.skip_reason,
        Some(SkipReason::NotNeeded),
        "{record:?}"
    );
    assert_eq!(group.registered().await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alb_target_group_tagged_disabled_is_left_alone() {
    let emulator = emulator();
    let deployment = Deployment::bootstrap(&emulator).await;
    let group =
        TargetGroupFixture::create(&deployment.sdk, 2, &[("autoheal:disabled", "true")]).await;
    group.fail(&[&group.instances[0]]).await;
    let engine = network(&deployment);

    let outcome = engine
        .handle(alb_alarm(&group.arn, "alb-opt-out"), "run-1")
        .await
        .expect("handled");

    let record = outcome.record.expect("a record");
    assert_eq!(record.status, HealingStatus::Skipped);
    assert_eq!(record.skip_reason, Some(SkipReason::OptedOut));
    assert_eq!(group.registered().await.len(), 2, "nothing deregistered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alb_missing_target_group_is_gone_not_failed() {
    let emulator = emulator();
    let deployment = Deployment::bootstrap(&emulator).await;
    let queue = deployment.subscribe_queue("operators").await;
    let engine = network(&deployment);
    let missing =
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/gone/0123456789abcdef";
    let healer = NetworkHealer::new(&deployment.sdk);
    let alarm = Alarmed::new(RULE, alb_alarm(missing, "e1"), missing);

    let assessment = healer.assess(alarm.request()).await.expect("assessed");

    assert!(
        matches!(&assessment, Assessment::Gone { summary } if summary.contains(missing)),
        "{assessment:?}"
    );
    // An attempt that comes anyway (the group deleted after the look) is a skip, not a
    // failure.
    let record = engine
        .handle(alb_alarm(missing, "alb-missing"), "run-1")
        .await
        .expect("handled, not an error")
        .record
        .expect("a record");
    assert_eq!(record.status, HealingStatus::Skipped, "{record:?}");
    assert_eq!(record.skip_reason, Some(SkipReason::Gone));
    assert_eq!(
        stored_record(&deployment).await.skip_reason,
        Some(SkipReason::Gone)
    );
    single_notice(&deployment, &queue, RULE, "skipped").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alb_instances_mid_stop_and_start_stay_registered() {
    let emulator = emulator();
    let sdk = emulator.sdk().await;
    let group = TargetGroupFixture::create(&sdk, 4, &[]).await;
    let fleet = Fleet::new(&sdk);
    // autoheal's EC2 healing has stopped the first and is about to stop the second, which
    // fails its health checks meanwhile.
    let (stopped, stopping) = (&group.instances[0], &group.instances[1]);
    fleet
        .tag_instance(stopped, "autoheal:stop-start", "autoheal-1")
        .await;
    fleet
        .tag_instance(stopping, "autoheal:stop-start", "autoheal-2")
        .await;
    group.stop(&[stopped]).await;
    group.fail(&[stopping]).await;
    let healer = NetworkHealer::new(&sdk);

    let wait = wait_for(&healer, &group).await;
    let (reason, summary) = skip_of(&healer, &group).await;

    assert_eq!(wait.reason, WaitReason::ResourceBusy, "{wait:?}");
    assert!(wait.summary.contains(stopping.as_str()), "{wait:?}");
    assert_eq!(reason, SkipReason::ResourceBusy);
    assert!(
        summary.contains("stopping and starting") && !summary.contains(stopped.as_str()),
        "a stopped instance is not failing: {summary}"
    );
    assert_eq!(group.registered().await, sorted(group.instances.clone()));

    // A person's stopped instance is no failing target either: it keeps its place.
    let theirs = TargetGroupFixture::create_named(&sdk, "batch", 3, &[]).await;
    theirs.stop(&[&theirs.instances[0]]).await;
    let (reason, _) = skip_of(&healer, &theirs).await;
    assert_eq!(reason, SkipReason::NotNeeded);
    assert_eq!(theirs.registered().await, sorted(theirs.instances.clone()));
}

/// An instance tagged `autoheal:disabled=true` stays registered however it fails, in a
/// target group that did not opt out: its opt-out is read on the instance, where a person
/// put it (IAM sees only the target group's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alb_an_opted_out_instance_stays_registered() {
    let emulator = emulator();
    let deployment = Deployment::bootstrap(&emulator).await;
    let group = TargetGroupFixture::create(&deployment.sdk, 4, &[]).await;
    let (theirs, failing) = (&group.instances[0], &group.instances[1]);
    Fleet::new(&deployment.sdk)
        .tag_instance(theirs, "autoheal:disabled", "true")
        .await;
    group.fail(&[theirs, failing]).await;
    let engine = network(&deployment);

    let outcome = engine
        .handle(alb_alarm(&group.arn, "alb-alarm"), "run-1")
        .await
        .expect("handled");

    let record = outcome.record.expect("a record");
    assert_eq!(record.status, HealingStatus::Completed, "{record:?}");
    let mut left: Vec<String> = group
        .instances
        .iter()
        .filter(|i| *i != failing)
        .cloned()
        .collect();
    left.sort();
    assert_eq!(
        group.registered().await,
        left,
        "only the other failing target left"
    );
    let summary = record.summary.unwrap_or_default();
    assert!(
        summary.contains(theirs.as_str()) && summary.contains("autoheal:disabled=true"),
        "{summary}"
    );

    // Alone in failing, it is skipped as opted out, not as a failure.
    let healer = NetworkHealer::new(&deployment.function_sdk(autoheal_core::Layer::Network));
    let (reason, summary) = skip_of(&healer, &group).await;
    assert_eq!(reason, SkipReason::OptedOut, "{summary}");
    assert_eq!(group.registered().await, left);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alb_targets_an_auto_scaling_group_replaces_on_their_health_checks_are_left_to_it() {
    let emulator = emulator();
    let deployment = Deployment::bootstrap(&emulator).await;
    let sdk = deployment.sdk.clone();
    let group = TargetGroupFixture::of_auto_scaling_group(&sdk, "web-asg", 3, "ELB").await;
    group.fail(&[&group.instances[0]]).await;
    let healer = NetworkHealer::new(&sdk);

    let wait = wait_for(&healer, &group).await;
    let (reason, summary) = skip_of(&healer, &group).await;

    assert_eq!(wait.reason, WaitReason::AwsHealing, "{wait:?}");
    assert!(wait.summary.contains("web-asg"), "{wait:?}");
    assert_eq!(reason, SkipReason::NotNeeded);
    assert!(summary.contains("web-asg"), "{summary}");
    assert_eq!(group.registered().await, sorted(group.instances.clone()));
    // Through the engine, the run waits for the group (no attempt) and deregisters nothing.
    let record = network(&deployment)
        .handle(alb_alarm(&group.arn, "alb-asg"), "run-1")
        .await
        .expect("handled")
        .record
        .expect("a record");
    assert_eq!(
        (record.skip_reason, record.attempt),
        (Some(SkipReason::AwsHealing), 0),
        "{record:?}"
    );
    assert!(
        record
            .summary
            .as_deref()
            .unwrap_or_default()
            .contains("web-asg"),
        "{record:?}"
    );
    assert_eq!(group.registered().await, sorted(group.instances.clone()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alb_members_of_a_group_that_would_not_replace_them_are_not_deregistered() {
    let emulator = emulator();
    let sdk = emulator.sdk().await;
    let healer = NetworkHealer::new(&sdk);

    // A group that checks EC2 status only: out of the target group, a member stays in service.
    let unchecked = TargetGroupFixture::of_auto_scaling_group(&sdk, "ec2-asg", 3, "EC2").await;
    unchecked.fail(&[&unchecked.instances[0]]).await;
    let (reason, summary) = skip_of(&healer, &unchecked).await;
    assert_eq!(reason, SkipReason::Unsafe);
    assert!(
        summary.contains("ec2-asg") && summary.contains("ELB"),
        "{summary}"
    );
    assert_eq!(
        unchecked.registered().await,
        sorted(unchecked.instances.clone())
    );

    // A group whose replacement a person suspended: theirs to decide.
    let held = TargetGroupFixture::of_auto_scaling_group(&sdk, "held-asg", 3, "ELB").await;
    aws_sdk_autoscaling::Client::new(&sdk)
        .suspend_processes()
        .auto_scaling_group_name("held-asg")
        .scaling_processes("ReplaceUnhealthy")
        .send()
        .await
        .expect("suspend");
    held.fail(&[&held.instances[0]]).await;
    let wait = wait_for(&healer, &held).await;
    assert_eq!(wait.reason, WaitReason::OperatorHold, "{wait:?}");
    assert!(wait.summary.contains("ReplaceUnhealthy"), "{wait:?}");
    let (reason, _) = skip_of(&healer, &held).await;
    assert_eq!(reason, SkipReason::OperatorHold);
    assert_eq!(held.registered().await, sorted(held.instances.clone()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alb_targets_of_an_ecs_services_target_group_are_left_to_the_service() {
    let emulator = emulator();
    let sdk = emulator.sdk().await;
    let group = TargetGroupFixture::create(&sdk, 3, &[]).await;
    group
        .owned_by_ecs_service(&sdk, "prod-cluster", "orders-api")
        .await;
    group.fail(&[&group.instances[1]]).await;
    let healer = NetworkHealer::new(&sdk);

    let wait = wait_for(&healer, &group).await;
    let (reason, summary) = skip_of(&healer, &group).await;

    assert_eq!(wait.reason, WaitReason::AwsHealing, "{wait:?}");
    assert!(wait.summary.contains("prod-cluster/orders-api"), "{wait:?}");
    assert_eq!(reason, SkipReason::NotNeeded);
    assert!(summary.contains("ECS service"), "{summary}");
    assert_eq!(group.registered().await, sorted(group.instances.clone()));
}
