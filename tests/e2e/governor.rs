//! The safety governor through the emulator: the shipped budgets against a burst of fifty
//! alarms, and the group guard on an Auto Scaling group, each claim racing the others in
//! DynamoDB transactions.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::Utc;
use serde_json::Value;

use autoheal_core::{Clock, Outcome, Settings, SkipReason, Verdict};
use autoheal_tests::application::application_alarm;
use autoheal_tests::{
    Deployment, Emulator, Fleet, TestClock, TestEngine, ec2_alarm, ec2_alarm_name,
};

/// What the emulator's status-check shim reports as the failing host check.
const SYSTEM_IMPAIRED: (&str, &str) = ("emulator:system-status", "impaired");

/// The `kind` of every notification published.
fn kinds(notifications: &[Value]) -> Vec<String> {
    notifications
        .iter()
        .map(|n| {
            let message: Value =
                serde_json::from_str(n["Message"].as_str().expect("a message")).expect("JSON");
            message["kind"].as_str().unwrap_or_default().to_owned()
        })
        .collect()
}

/// One ALARM per instance, all at once.
async fn burst(
    engine: &Arc<TestEngine<TestClock>>,
    instances: &[String],
    prefix: &str,
) -> Vec<Outcome> {
    let handles: Vec<_> = instances
        .iter()
        .enumerate()
        .map(|(i, instance)| {
            let engine = Arc::clone(engine);
            let event = ec2_alarm(instance, &format!("{prefix}-e{i}"));
            let run = format!("{prefix}-r{i}");
            tokio::spawn(async move { engine.handle(event, &run).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for handle in handles {
        outcomes.push(handle.await.expect("joined").expect("handled"));
    }
    outcomes
}

fn count(outcomes: &[Outcome], verdict: Verdict, reason: Option<SkipReason>) -> usize {
    outcomes
        .iter()
        .filter(|o| o.decision == verdict && o.reason == reason)
        .count()
}

/// The instances the emulator saw stopped, started or rebooted.
async fn acted_on(fleet: &Fleet, instances: &[String]) -> BTreeSet<String> {
    let mut acted = BTreeSet::new();
    for instance in instances {
        if !fleet.history(instance).await.is_empty() {
            acted.insert(instance.clone());
        }
    }
    acted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_alarms_act_within_the_shipped_budget_and_the_deferred_are_picked_up_when_it_reopens()
{
    let emulator = Emulator::start_with_ec2_status_checks();
    let deployment = Deployment::bootstrap(&emulator).await;
    let queue = deployment.subscribe_queue("burst").await;
    let fleet = Fleet::new(&deployment.sdk);
    let instances = fleet
        .standalone_fleet(
            aws_sdk_ec2::types::InstanceType::T3Small,
            50,
            &[SYSTEM_IMPAIRED],
        )
        .await;
    assert_eq!(instances.len(), 50);
    let clock = TestClock::at(Utc::now());
    let engine = Arc::new(deployment.infrastructure(clock.clone(), Settings::default()));

    let outcomes = burst(&engine, &instances, "burst").await;

    assert_eq!(count(&outcomes, Verdict::Act, None), 5, "{outcomes:#?}");
    assert_eq!(
        count(&outcomes, Verdict::Skip, Some(SkipReason::Budget)),
        45
    );
    let first = acted_on(&fleet, &instances).await;
    assert_eq!(first.len(), 5, "only the budget's five were touched");
    let notices = kinds(&deployment.notifications(&queue).await);
    assert_eq!(
        notices.iter().filter(|kind| *kind == "budget").count(),
        1,
        "{notices:?}"
    );
    assert_eq!(notices.iter().filter(|kind| *kind == "healing").count(), 5);

    // The window reopens: the deferred checks fire (the acted ones' are left for later)
    // and the next five are healed; the rest wait for the window after.
    // Each deferred member's first attempt scheduled its check (number 1) before its claim
    // was refused by the budget: the deferral took number 2, due when the window reopens.
    for instance in &instances {
        deployment
            .set_alarm(&ec2_alarm_name(instance), "ALARM")
            .await;
    }
    let (deferred, passed_over): (Vec<_>, Vec<_>) = deployment
        .follow_ups()
        .await
        .into_iter()
        .filter(|schedule| {
            let resource = schedule.payload["detail"]["resource_id"].as_str();
            resource.is_some_and(|id| !first.contains(id))
        })
        .partition(|schedule| schedule.payload["detail"]["check"] == 2);
    assert_eq!(deferred.len(), 45);
    assert_eq!(passed_over.len(), 45);
    let reopened = deferred
        .iter()
        .map(|schedule| schedule.due_at)
        .max()
        .expect("45 deferred");
    clock.set(reopened);
    let mut again = Vec::new();
    for (i, schedule) in deferred.into_iter().enumerate() {
        again.push(
            deployment
                .fire(&engine, &clock, schedule, &format!("again-{i}"))
                .await,
        );
    }
    assert_eq!(count(&again, Verdict::Act, None), 5, "{again:#?}");
    assert_eq!(count(&again, Verdict::Skip, Some(SkipReason::Budget)), 40);
    let second = acted_on(&fleet, &instances).await;
    assert_eq!(second.len(), 10);
    assert!(first.is_subset(&second));
    let notices = kinds(&deployment.notifications(&queue).await);
    assert_eq!(
        notices.iter().filter(|kind| *kind == "budget").count(),
        1,
        "one more budget notice for the new window: {notices:?}"
    );

    // The checks passed over do nothing when they fire: their numbers are superseded.
    let mut stray = Vec::new();
    for (i, schedule) in passed_over.into_iter().take(5).enumerate() {
        stray.push(
            deployment
                .fire(&engine, &clock, schedule, &format!("stray-{i}"))
                .await,
        );
    }
    assert!(
        stray
            .iter()
            .all(|outcome| outcome.reason == Some(SkipReason::Superseded)),
        "{stray:#?}"
    );
    assert_eq!(acted_on(&fleet, &instances).await, second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_of_the_previous_window_hold_back_a_first_alarm_that_presumed_none() {
    let emulator = Emulator::start_with_ec2_status_checks();
    let deployment = Deployment::bootstrap(&emulator).await;
    let fleet = Fleet::new(&deployment.sdk);
    let instances = fleet
        .standalone_fleet(
            aws_sdk_ec2::types::InstanceType::T3Small,
            6,
            &[SYSTEM_IMPAIRED],
        )
        .await;
    let (first_five, last) = instances.split_at(5);
    let clock = TestClock::at(Utc::now());
    let engine = Arc::new(deployment.infrastructure(clock.clone(), Settings::default()));
    let outcomes = burst(&engine, first_five, "window-1").await;
    assert_eq!(count(&outcomes, Verdict::Act, None), 5, "{outcomes:#?}");

    // One budget window (the shipped 15 minutes) later, the five are in the previous window:
    // a new resource's first alarm, decided on no budget spent, has its claim refused by the
    // previous window's count, reads it, and is deferred.
    clock.set(clock.now() + chrono::Duration::seconds(900));
    let outcome = engine
        .handle(ec2_alarm(&last[0], "window-2-e0"), "window-2-r0")
        .await
        .expect("handled");

    assert_eq!(outcome.reason, Some(SkipReason::Budget), "{outcome:#?}");
    assert!(fleet.history(&last[0]).await.is_empty(), "not acted on");
}

/// The Auto Scaling group `web` of ten members, the first `failing` of them failing their
/// system status check; returns the members.
async fn group_of_ten_with_failing(fleet: &Fleet, failing: usize) -> Vec<String> {
    let members = fleet.auto_scaling_group_of("web", 10).await;
    assert_eq!(members.len(), 10);
    for member in &members[..failing] {
        fleet
            .tag_instance(member, SYSTEM_IMPAIRED.0, SYSTEM_IMPAIRED.1)
            .await;
    }
    members
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_of_ten_with_six_members_unhealthy_is_a_storm_no_member_is_healed() {
    let emulator = Emulator::start_with_ec2_status_checks();
    let deployment = Deployment::bootstrap(&emulator).await;
    let queue = deployment.subscribe_queue("storm").await;
    let fleet = Fleet::new(&deployment.sdk);
    let members = group_of_ten_with_failing(&fleet, 6).await;
    let unhealthy = &members[..6];
    let clock = TestClock::at(Utc::now());
    let engine = Arc::new(deployment.infrastructure(clock.clone(), Settings::default()));

    let outcomes = burst(&engine, unhealthy, "storm").await;

    assert_eq!(
        count(&outcomes, Verdict::Skip, Some(SkipReason::GroupStorm)),
        6,
        "{outcomes:#?}"
    );
    assert_eq!(engine.healer.calls(), 0);
    let group = fleet.group("web").await;
    assert!(
        group
            .instances()
            .iter()
            .all(|member| member.health_status() == Some("Healthy")),
        "no member was handed to the group: {group:?}"
    );
    let notices = kinds(&deployment.notifications(&queue).await);
    assert_eq!(notices, ["group-guard"], "one notice for the storm");
    let record = outcomes[0].record.as_ref().expect("recorded");
    assert_eq!(
        record.details.get("group").map(String::as_str),
        Some("auto-scaling-group/web")
    );
    assert_eq!(
        deployment.follow_ups().await.len(),
        6,
        "the storm is looked at again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_of_ten_heals_two_members_at_once_and_the_third_waits_for_a_slot() {
    let emulator = Emulator::start_with_ec2_status_checks();
    let deployment = Deployment::bootstrap(&emulator).await;
    let queue = deployment.subscribe_queue("slots").await;
    let fleet = Fleet::new(&deployment.sdk);
    let members = group_of_ten_with_failing(&fleet, 3).await;
    let unhealthy = &members[..3];
    let clock = TestClock::at(Utc::now());
    let engine = Arc::new(deployment.infrastructure(clock.clone(), Settings::default()));

    // Two unhealthy members: both healed.
    let outcomes = burst(&engine, &unhealthy[..2], "two").await;
    assert_eq!(count(&outcomes, Verdict::Act, None), 2, "{outcomes:#?}");
    // A third while they are in healing: 20 % of ten is two at once.
    let third = burst(&engine, &unhealthy[2..], "third").await;
    assert_eq!(
        count(&third, Verdict::Skip, Some(SkipReason::GroupBusy)),
        1,
        "{third:#?}"
    );

    let group = fleet.group("web").await;
    let handed: BTreeSet<&str> = group
        .instances()
        .iter()
        .filter(|member| member.health_status() == Some("Unhealthy"))
        .filter_map(|member| member.instance_id())
        .collect();
    let expected: BTreeSet<&str> = unhealthy[..2].iter().map(String::as_str).collect();
    assert_eq!(handed, expected, "never more than two at once");
    let notices = kinds(&deployment.notifications(&queue).await);
    assert_eq!(
        notices.iter().filter(|kind| *kind == "group-guard").count(),
        1,
        "{notices:?}"
    );
    assert_eq!(notices.iter().filter(|kind| *kind == "healing").count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_restart_on_at_most_a_fifth_of_a_group_at_once() {
    let emulator = Emulator::start_with_ssm_instance_information();
    let deployment = Deployment::bootstrap(&emulator).await;
    let fleet = Fleet::new(&deployment.sdk);
    let members = fleet.auto_scaling_group_of("web", 10).await;
    let clock = TestClock::at(Utc::now());
    let engine = deployment.layer_with(
        autoheal_core::Layer::Application,
        clock.clone(),
        Settings::default(),
    );

    // A leak shipped in a release shows on three members together.
    let mut outcomes = Vec::new();
    for (i, member) in members[..3].iter().enumerate() {
        let event = application_alarm("memory-leak-healing", member, &format!("leak-{i}"));
        outcomes.push(
            engine
                .handle(event, &format!("run-{i}"))
                .await
                .expect("handled"),
        );
    }

    let verdicts: Vec<(Verdict, Option<SkipReason>)> =
        outcomes.iter().map(|o| (o.decision, o.reason)).collect();
    assert!(
        verdicts[..2]
            .iter()
            .all(|(verdict, _)| *verdict == Verdict::Act),
        "the first two take the group's two slots: {outcomes:#?}"
    );
    assert_eq!(
        verdicts[2],
        (Verdict::Skip, Some(SkipReason::GroupBusy)),
        "{outcomes:#?}"
    );
    assert_eq!(engine.healer.calls(), 2);
}
