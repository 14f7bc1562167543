//! `asg-capacity-healing` against the emulator (`ec2-instance-healing` and
//! `ebs-volume-healing` have their own modules).

use autoheal_core::{
    AlarmEvent, Assessment, HealOutcome, Healer, HealingStatus, Layer, RuleSet, SkipReason,
    SystemClock, Verdict, WaitReason,
};
use autoheal_infrastructure::InfrastructureHealer;
use autoheal_tests::{Deployment, Emulator, Fleet, TestEngine, first_attempt, rule_event};

fn asg_event(state: &str, id: &str, group: &str) -> serde_json::Value {
    rule_event(
        "asg-capacity-healing",
        state,
        id,
        "AutoScalingGroupName",
        group,
    )
}

const TOKEN: &str = "autoheal-0123456789abcdef00000001";

/// The state item's expiry (DynamoDB's TTL attribute) of `rule` on `resource`, if it has one.
async fn state_expiry(deployment: &Deployment, rule: &str, resource: &str) -> Option<String> {
    use autoheal_aws::state::{PARTITION_KEY, SORT_KEY, TTL_ATTRIBUTE};
    use aws_sdk_dynamodb::types::AttributeValue;
    let item = aws_sdk_dynamodb::Client::new(&deployment.sdk)
        .get_item()
        .table_name(&deployment.table)
        .key(
            PARTITION_KEY,
            AttributeValue::S(format!("RESOURCE#{rule}#{resource}")),
        )
        .key(SORT_KEY, AttributeValue::S("STATE".to_owned()))
        .consistent_read(true)
        .send()
        .await
        .expect("the state item")
        .item
        .expect("a state");
    item.get(TTL_ATTRIBUTE)
        .and_then(|value| value.as_n().ok())
        .cloned()
}

fn engine(deployment: &Deployment) -> TestEngine<SystemClock> {
    deployment.layer(Layer::Infrastructure)
}

/// An unhealthy member tagged `autoheal:disabled=true` stays: the group still scales out, and
/// the member is recorded as held back, never terminated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unhealthy_member_that_opted_out_is_never_terminated() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let fleet = Fleet::new(&deployment.sdk);
    let (group, member) = fleet.auto_scaling_group("web-asg").await;
    fleet
        .tag_instance(&member, "autoheal:disabled", "true")
        .await;
    mark_unhealthy(&fleet, &member).await;
    let engine = engine(&deployment);

    let outcome = engine
        .handle(asg_event("alarm", "asg-1", &group), "run-1")
        .await
        .expect("handled");

    let record = outcome.record.expect("a record");
    assert_eq!(record.status, HealingStatus::Completed, "{record:?}");
    assert_eq!(record.details.get("held_back_instances"), Some(&member));
    assert_eq!(record.details.get("replaced_instances"), None);
    assert!(
        fleet
            .group(&group)
            .await
            .instances()
            .iter()
            .any(|i| i.instance_id() == Some(member.as_str())),
        "the opted-out member is still in its group"
    );
}

/// A member of a group tagged `autoheal:disabled=true` is not handed to the group: its status
/// check alarm is skipped as opted out, and its health stays as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_of_a_group_that_opted_out_is_not_marked_unhealthy() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let fleet = Fleet::new(&deployment.sdk);
    let (group, member) = fleet.auto_scaling_group("web-asg").await;
    fleet
        .autoscaling
        .create_or_update_tags()
        .tags(
            aws_sdk_autoscaling::types::Tag::builder()
                .resource_id(&group)
                .resource_type("auto-scaling-group")
                .key("autoheal:disabled")
                .value("true")
                .propagate_at_launch(false)
                .build(),
        )
        .send()
        .await
        .expect("tag the group");
    let engine = engine(&deployment);

    let outcome = engine
        .handle(autoheal_tests::ec2_alarm(&member, "member-1"), "run-1")
        .await
        .expect("handled");

    let record = outcome.record.expect("a record");
    assert_eq!(record.skip_reason, Some(SkipReason::OptedOut), "{record:?}");
    let health = fleet
        .group(&group)
        .await
        .instances()
        .iter()
        .find(|i| i.instance_id() == Some(member.as_str()))
        .and_then(|i| i.health_status().map(str::to_owned));
    assert_eq!(health.as_deref(), Some("Healthy"));
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

    // While the capacity autoheal added is still to be put back, the state never expires.
    assert_eq!(
        state_expiry(&deployment, "asg-capacity-healing", &group).await,
        None
    );

    // The alarm returns to OK: the capacity autoheal added goes back.
    let ok = engine
        .handle(asg_event("ok", "asg-ok", &group), "run-2")
        .await
        .expect("handled");
    assert_eq!(ok.decision, Verdict::Revert, "{ok:?}");
    assert!(
        state_expiry(&deployment, "asg-capacity-healing", &group)
            .await
            .is_some(),
        "with nothing left to put back, the state expires as any other"
    );
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
async fn a_missing_group_is_gone_and_nobody_is_told_of_a_failure() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let queue = deployment.subscribe_queue("operators").await;
    let engine = engine(&deployment);

    let outcome = engine
        .handle(asg_event("alarm", "gone-1", "no-such-asg"), "run-1")
        .await
        .expect("handled");

    let record = outcome.record.expect("a record");
    assert_eq!(record.status, HealingStatus::Skipped, "{record:?}");
    assert_eq!(record.skip_reason, Some(SkipReason::Gone));
    assert!(
        record
            .summary
            .as_deref()
            .is_some_and(|s| s.contains("no-such-asg")),
        "{record:?}"
    );
    let notifications = deployment.notifications(&queue).await;
    assert!(
        notifications
            .iter()
            .all(|n| n["MessageAttributes"]["status"]["Value"] != "failed"),
        "{notifications:#?}"
    );
    let healer = InfrastructureHealer::new(&deployment.sdk);
    let rules = RuleSet::shipped().expect("shipped rules");
    let event =
        AlarmEvent::from_value(asg_event("alarm", "gone-2", "no-such-asg")).expect("an alarm");
    let request = first_attempt(
        rules.get("asg-capacity-healing").expect("the rule"),
        "no-such-asg",
        &event,
        TOKEN,
    );
    assert!(matches!(
        healer.assess(request).await.expect("assessed"),
        Assessment::Gone { .. }
    ));
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

/// The group's members' health, by instance.
async fn health(fleet: &Fleet, group: &str) -> std::collections::BTreeMap<String, String> {
    fleet
        .group(group)
        .await
        .instances()
        .iter()
        .filter_map(|i| {
            Some((
                i.instance_id()?.to_owned(),
                i.health_status()?.to_ascii_lowercase(),
            ))
        })
        .collect()
}

async fn mark_unhealthy(fleet: &Fleet, instance: &str) {
    fleet
        .autoscaling
        .set_instance_health()
        .instance_id(instance)
        .health_status("Unhealthy")
        .send()
        .await
        .expect("mark unhealthy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_where_a_person_suspended_what_the_action_needs_is_held_and_left_unchanged() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let fleet = Fleet::new(&deployment.sdk);
    let (group, member) = fleet.auto_scaling_group("frozen-asg").await;
    mark_unhealthy(&fleet, &member).await;
    let healer = InfrastructureHealer::new(&deployment.sdk);
    let rules = RuleSet::shipped().expect("shipped rules");
    let event = AlarmEvent::from_value(asg_event("alarm", "asg-1", &group)).expect("an alarm");
    let request = first_attempt(
        rules.get("asg-capacity-healing").expect("the rule"),
        &group,
        &event,
        TOKEN,
    );
    let suspend = |processes: &'static [&'static str]| {
        let fleet = fleet.clone();
        let group = group.clone();
        async move {
            fleet
                .autoscaling
                .suspend_processes()
                .auto_scaling_group_name(&group)
                .set_scaling_processes(Some(processes.iter().map(|p| (*p).to_owned()).collect()))
                .send()
                .await
                .expect("suspend");
        }
    };

    // Scheduled actions have nothing to do with scaling out or replacing members.
    suspend(&["ScheduledActions"]).await;
    assert_eq!(
        healer.assess(request).await.expect("assessed"),
        Assessment::Proceed
    );

    suspend(&["Terminate"]).await;
    let assessment = healer.assess(request).await.expect("assessed");
    let Assessment::Wait(wait) = assessment else {
        panic!("{assessment:?}");
    };
    assert_eq!(wait.reason, WaitReason::OperatorHold);
    assert!(wait.summary.contains("Terminate"), "{wait:?}");
    // Should the action run anyway, it refuses and changes nothing.
    let outcome = healer.heal(request).await.expect("healed");
    assert!(
        matches!(
            outcome,
            HealOutcome::Skipped {
                reason: SkipReason::Unsafe,
                ..
            }
        ),
        "{outcome:?}"
    );
    let after = fleet.group(&group).await;
    assert_eq!(after.desired_capacity(), Some(1));
    assert_eq!(
        health(&fleet, &group)
            .await
            .get(&member)
            .map(String::as_str),
        Some("unhealthy"),
        "still there"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_in_an_instance_refresh_is_left_to_it_until_the_refresh_ends() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let fleet = Fleet::new(&deployment.sdk);
    let (group, _) = fleet.auto_scaling_group("refreshing-asg").await;
    let healer = InfrastructureHealer::new(&deployment.sdk);
    let rules = RuleSet::shipped().expect("shipped rules");
    let event = AlarmEvent::from_value(asg_event("alarm", "asg-1", &group)).expect("an alarm");
    let request = first_attempt(
        rules.get("asg-capacity-healing").expect("the rule"),
        &group,
        &event,
        TOKEN,
    );
    let refresh = fleet
        .autoscaling
        .start_instance_refresh()
        .auto_scaling_group_name(&group)
        .send()
        .await
        .expect("an instance refresh")
        .instance_refresh_id
        .expect("its id");

    let assessment = healer.assess(request).await.expect("assessed");
    let Assessment::Wait(wait) = assessment else {
        panic!("{assessment:?}");
    };
    assert_eq!(wait.reason, WaitReason::AwsHealing);
    assert!(wait.summary.contains(&refresh), "{wait:?}");
    assert_eq!(
        fleet.group(&group).await.desired_capacity(),
        Some(1),
        "nothing changed"
    );

    fleet
        .autoscaling
        .cancel_instance_refresh()
        .auto_scaling_group_name(&group)
        .send()
        .await
        .expect("cancel");
    assert_eq!(
        healer.assess(request).await.expect("assessed"),
        Assessment::Proceed
    );
    let outcome = healer.heal(request).await.expect("healed");
    assert!(matches!(outcome, HealOutcome::Healed { .. }), "{outcome:?}");
    assert_eq!(fleet.group(&group).await.desired_capacity(), Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_protected_from_scale_in_are_never_terminated_and_are_recorded_as_held_back() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let fleet = Fleet::new(&deployment.sdk);
    let members = fleet.auto_scaling_group_of("pets-and-cattle-asg", 3).await;
    let group = "pets-and-cattle-asg";
    let (protected, replaced, healthy) = (&members[0], &members[1], &members[2]);
    fleet
        .autoscaling
        .set_instance_protection()
        .auto_scaling_group_name(group)
        .instance_ids(protected)
        .protected_from_scale_in(true)
        .send()
        .await
        .expect("protect");
    mark_unhealthy(&fleet, protected).await;
    mark_unhealthy(&fleet, replaced).await;

    let record = engine(&deployment)
        .handle(asg_event("alarm", "asg-1", group), "run-1")
        .await
        .expect("handled")
        .record
        .expect("a record");

    assert_eq!(record.status, HealingStatus::Completed, "{record:?}");
    assert_eq!(record.details.get("replaced_instances"), Some(replaced));
    assert_eq!(record.details.get("held_back_instances"), Some(protected));
    let summary = record.summary.expect("a summary");
    assert!(summary.contains("protected from scale-in"), "{summary}");
    let now = health(&fleet, group).await;
    assert!(
        now.contains_key(protected),
        "the protected member stays: {now:?}"
    );
    assert!(now.contains_key(healthy), "{now:?}");
    assert!(
        !now.contains_key(replaced),
        "the other left the group: {now:?}"
    );
}
