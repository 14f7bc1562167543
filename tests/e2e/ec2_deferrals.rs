//! `ec2-instance-healing` looks before each new attempt (`Healer::assess`): it waits while AWS
//! heals the instance itself (simplified automatic recovery, the alarm's own recover or reboot
//! action, a scheduled event, an Auto Scaling group replacing or refreshing), holds for a
//! person (stop protection, suspended processes), waits for another autoheal run, and calls a
//! missing instance gone; then, once the wait is over, the action acts only on what is still
//! impaired. Each side effect, or its absence, is read back through the SDK.

use aws_sdk_ec2::types::{AttributeBooleanValue, InstanceAutoRecoveryState, InstanceStateName};
use serde_json::Value;

use autoheal_core::{
    AlarmEvent, Assessment, HealOutcome, HealRequest, Healer, RuleSet, Settings, SkipReason,
    SystemClock, WaitReason,
};
use autoheal_infrastructure::InfrastructureHealer;
use autoheal_tests::{Deployment, Emulator, Fleet, ec2_alarm, first_attempt};

const SYSTEM: &str = "emulator:system-status";
const GUEST: &str = "emulator:instance-status";
const EVENT: &str = "emulator:scheduled-event";
const STOP_START_TAG: &str = "autoheal:stop-start";
const TOKEN: &str = "autoheal-0123456789abcdef00000001";
const RECOVER: &str = "arn:aws:automate:us-east-1:ec2:recover";
const REBOOT: &str = "arn:aws:automate:us-east-1:ec2:reboot";

struct Scene {
    deployment: Deployment,
    _emulator: Emulator,
    sdk: aws_config::SdkConfig,
    fleet: Fleet,
    healer: InfrastructureHealer,
    rules: RuleSet,
}

/// An emulator with status checks, scheduled events and recovery settings (every emulator
/// has instance refreshes).
async fn scene() -> Scene {
    let emulator =
        Emulator::start_with_shims(&["moto_ec2_status_checks.py", "moto_ec2_auto_recovery.py"]);
    let deployment = Deployment::bootstrap(&emulator).await;
    Scene {
        fleet: Fleet::new(&deployment.sdk),
        healer: InfrastructureHealer::new(&deployment.sdk),
        rules: RuleSet::shipped().expect("shipped rules"),
        sdk: deployment.sdk.clone(),
        deployment,
        _emulator: emulator,
    }
}

/// The sample alarm on `instance`, watching `metric`, fired `ago` seconds before now.
fn alarm(instance: &str, metric: &str, ago: i64) -> AlarmEvent {
    let mut event = ec2_alarm(instance, "event-1");
    event["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"]["name"] =
        Value::from(metric);
    event["time"] = Value::from((chrono::Utc::now() - chrono::Duration::seconds(ago)).to_rfc3339());
    AlarmEvent::from_value(event).expect("an alarm")
}

impl Scene {
    fn request<'a>(
        &'a self,
        instance: &'a str,
        event: &'a AlarmEvent,
        actions: &'a [String],
    ) -> HealRequest<'a> {
        let rule = self.rules.get("ec2-instance-healing").expect("the rule");
        HealRequest {
            alarm_actions: actions,
            ..first_attempt(rule, instance, event, TOKEN)
        }
    }

    async fn assess(&self, instance: &str, event: &AlarmEvent, actions: &[String]) -> Assessment {
        self.healer
            .assess(self.request(instance, event, actions))
            .await
            .expect("assessed")
    }

    async fn heal(&self, instance: &str, event: &AlarmEvent, actions: &[String]) -> HealOutcome {
        self.healer
            .heal(self.request(instance, event, actions))
            .await
            .expect("healed")
    }

    async fn auto_recovery(&self, instance: &str, state: InstanceAutoRecoveryState) {
        self.fleet
            .ec2
            .modify_instance_maintenance_options()
            .instance_id(instance)
            .auto_recovery(state)
            .send()
            .await
            .expect("maintenance options");
    }
}

/// The wait's reason and summary.
fn waited(assessment: Assessment) -> (WaitReason, String) {
    match assessment {
        Assessment::Wait(wait) => (wait.reason, wait.summary),
        other => panic!("expected a wait, got {other:?}"),
    }
}

fn skipped(outcome: &HealOutcome) -> (SkipReason, &str) {
    match outcome {
        HealOutcome::Skipped { reason, summary } => (*reason, summary.as_str()),
        other => panic!("expected a skip, got {other:?}"),
    }
}

fn recovery(outcome: &HealOutcome) -> &str {
    match outcome {
        HealOutcome::Healed { details, .. } => details["recovery"].as_str(),
        other => panic!("expected a heal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simplified_automatic_recovery_is_awaited_then_only_a_host_still_failing_is_stopped_and_started()
 {
    let scene = scene().await;
    let fleet = &scene.fleet;
    let recovered = fleet.standalone(&[(SYSTEM, "impaired")]).await;
    let still_failing = fleet.standalone(&[(SYSTEM, "impaired")]).await;
    let described = fleet.instance(&recovered).await;
    assert_eq!(
        described
            .maintenance_options()
            .and_then(|m| m.auto_recovery()),
        Some(&InstanceAutoRecoveryState::Default),
        "on by default, as in EC2"
    );
    let event = alarm(&recovered, "StatusCheckFailed_System", 60);

    let (reason, summary) = waited(scene.assess(&recovered, &event, &[]).await);
    assert_eq!(reason, WaitReason::AwsHealing);
    assert!(
        summary.contains("simplified automatic recovery"),
        "{summary}"
    );
    assert!(
        fleet.history(&recovered).await.is_empty(),
        "nothing was done"
    );

    // AWS moved one to healthy hardware: its check passes, and the action finds nothing to do.
    fleet
        .ec2
        .delete_tags()
        .resources(&recovered)
        .tags(aws_sdk_ec2::types::Tag::builder().key(SYSTEM).build())
        .send()
        .await
        .expect("the host recovered");
    let event = alarm(&recovered, "StatusCheckFailed_System", 1900);
    let outcome = scene.heal(&recovered, &event, &[]).await;
    assert_eq!(skipped(&outcome).0, SkipReason::NotNeeded);
    assert!(fleet.history(&recovered).await.is_empty());

    // The other still fails once the wait is over: the action stops and starts it.
    let event = alarm(&still_failing, "StatusCheckFailed_System", 1900);
    let outcome = scene.heal(&still_failing, &event, &[]).await;
    assert_eq!(recovery(&outcome), "stop-start");
    assert_eq!(fleet.history(&still_failing).await, ["stop", "start"]);

    // With automatic recovery disabled, nothing is waited for.
    let off = fleet.standalone(&[(SYSTEM, "impaired")]).await;
    scene
        .auto_recovery(&off, InstanceAutoRecoveryState::Disabled)
        .await;
    let event = alarm(&off, "StatusCheckFailed_System", 60);
    assert_eq!(scene.assess(&off, &event, &[]).await, Assessment::Proceed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_with_its_own_ec2_recover_action_is_left_to_aws_and_one_that_stops_to_a_person() {
    let scene = scene().await;
    let fleet = &scene.fleet;
    let instance = fleet.standalone(&[(SYSTEM, "impaired")]).await;
    scene
        .auto_recovery(&instance, InstanceAutoRecoveryState::Disabled)
        .await;
    let event = alarm(&instance, "StatusCheckFailed_System", 60);
    let recover = [
        "arn:aws:sns:us-east-1:123456789012:operators".to_owned(),
        RECOVER.to_owned(),
    ];
    let stop = ["arn:aws:automate:us-east-1:ec2:stop".to_owned()];

    let (reason, summary) = waited(scene.assess(&instance, &event, &recover).await);
    assert_eq!(reason, WaitReason::AwsHealing);
    assert!(summary.contains("recover action"), "{summary}");
    let (reason, summary) = waited(scene.assess(&instance, &event, &stop).await);
    assert_eq!(reason, WaitReason::OperatorHold);
    assert!(summary.contains("stops"), "{summary}");
    assert_eq!(
        scene.assess(&instance, &event, &[]).await,
        Assessment::Proceed,
        "the same instance, its alarm without EC2 actions"
    );
    assert!(fleet.history(&instance).await.is_empty());
    assert_eq!(
        fleet.instance_state(&instance).await,
        Some(InstanceStateName::Running)
    );
}

/// Through the engine: the alarm's own actions are read from the alarm CloudWatch holds before
/// the attempt, and its recover action leaves the instance to AWS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_reads_the_alarms_own_actions_and_leaves_a_recover_action_to_aws() {
    use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, Statistic};
    let scene = scene().await;
    let instance = scene.fleet.standalone(&[(SYSTEM, "impaired")]).await;
    scene
        .auto_recovery(&instance, InstanceAutoRecoveryState::Disabled)
        .await;
    let event = ec2_alarm(&instance, "event-recover");
    let name = event["detail"]["alarmName"]
        .as_str()
        .expect("an alarm name")
        .to_owned();
    aws_sdk_cloudwatch::Client::new(&scene.sdk)
        .put_metric_alarm()
        .alarm_name(&name)
        .namespace("AWS/EC2")
        .metric_name("StatusCheckFailed_System")
        .dimensions(
            Dimension::builder()
                .name("InstanceId")
                .value(&instance)
                .build(),
        )
        .statistic(Statistic::Maximum)
        .period(60)
        .evaluation_periods(2)
        .threshold(1.0)
        .comparison_operator(ComparisonOperator::GreaterThanOrEqualToThreshold)
        .alarm_actions(RECOVER)
        .send()
        .await
        .expect("put the alarm");
    // It fires, as the event says.
    scene.deployment.set_alarm(&name, "ALARM").await;
    let engine = scene
        .deployment
        .infrastructure(SystemClock, Settings::default());

    let outcome = engine.handle(event, "run-1").await.expect("handled");

    assert_eq!(outcome.reason, Some(SkipReason::AwsHealing), "{outcome:?}");
    assert!(
        outcome
            .detail
            .as_deref()
            .is_some_and(|detail| detail.contains("recover action")),
        "{outcome:?}"
    );
    assert!(scene.fleet.history(&instance).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alarms_own_reboot_is_given_time_then_counts_as_the_first_attempts_reboot() {
    let scene = scene().await;
    let fleet = &scene.fleet;
    let instance = fleet.standalone(&[(GUEST, "impaired")]).await;
    let reboot = [REBOOT.to_owned()];

    let just_fired = alarm(&instance, "StatusCheckFailed_Instance", 60);
    let assessment = scene.assess(&instance, &just_fired, &reboot).await;
    let Assessment::Wait(wait) = &assessment else {
        panic!("expected a wait, got {assessment:?}")
    };
    assert_eq!(wait.reason, WaitReason::AwsHealing);
    assert!(wait.summary.contains("reboot action"), "{wait:?}");
    assert!(
        (30..=240).contains(&wait.recheck_after_seconds),
        "looked at again once the reboot had its five minutes: {wait:?}"
    );

    // Ten minutes on and still failing: the reboot did not help, the first attempt stops and
    // starts it instead of rebooting it a second time.
    let later = alarm(&instance, "StatusCheckFailed_Instance", 600);
    assert_eq!(
        scene.assess(&instance, &later, &reboot).await,
        Assessment::Proceed
    );
    let outcome = scene.heal(&instance, &later, &reboot).await;
    assert_eq!(recovery(&outcome), "stop-start");
    assert_eq!(fleet.history(&instance).await, ["stop", "start"]);

    // Without the alarm's reboot, the first attempt reboots.
    let other = fleet.standalone(&[(GUEST, "impaired")]).await;
    let event = alarm(&other, "StatusCheckFailed_Instance", 60);
    assert_eq!(scene.assess(&other, &event, &[]).await, Assessment::Proceed);
    assert_eq!(recovery(&scene.heal(&other, &event, &[]).await), "reboot");
    assert_eq!(fleet.history(&other).await, ["reboot"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_event_under_way_is_awaited_and_a_distant_or_completed_one_is_not() {
    let scene = scene().await;
    let fleet = &scene.fleet;
    let instance = fleet
        .standalone(&[(GUEST, "impaired"), (EVENT, "system-reboot")])
        .await;
    let event = alarm(&instance, "StatusCheckFailed_Instance", 60);

    let (reason, summary) = waited(scene.assess(&instance, &event, &[]).await);
    assert_eq!(reason, WaitReason::AwsHealing);
    assert!(summary.contains("system-reboot"), "{summary}");

    for later in ["system-reboot completed", "instance-retirement +1209600"] {
        fleet.tag_instance(&instance, EVENT, later).await;
        assert_eq!(
            scene.assess(&instance, &event, &[]).await,
            Assessment::Proceed,
            "{later}"
        );
    }
    assert!(fleet.history(&instance).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_protection_holds_a_stop_and_start_for_a_person_but_not_a_reboot() {
    let scene = scene().await;
    let fleet = &scene.fleet;
    let host = fleet.standalone(&[(SYSTEM, "impaired")]).await;
    let guest = fleet.standalone(&[(GUEST, "impaired")]).await;
    for instance in [&host, &guest] {
        scene
            .auto_recovery(instance, InstanceAutoRecoveryState::Disabled)
            .await;
        fleet
            .ec2
            .modify_instance_attribute()
            .instance_id(instance)
            .disable_api_stop(AttributeBooleanValue::builder().value(true).build())
            .send()
            .await
            .expect("stop protection");
    }
    let event = alarm(&host, "StatusCheckFailed_System", 60);

    let (reason, summary) = waited(scene.assess(&host, &event, &[]).await);
    assert_eq!(reason, WaitReason::OperatorHold);
    assert!(summary.contains("DisableApiStop"), "{summary}");
    // Should the action run anyway, it refuses too.
    let outcome = scene.heal(&host, &event, &[]).await;
    assert_eq!(skipped(&outcome).0, SkipReason::Unsafe);
    assert!(fleet.history(&host).await.is_empty());
    assert_eq!(
        fleet.instance_state(&host).await,
        Some(InstanceStateName::Running)
    );

    // A reboot is no stop: the guest is rebooted.
    let event = alarm(&guest, "StatusCheckFailed_Instance", 60);
    assert_eq!(scene.assess(&guest, &event, &[]).await, Assessment::Proceed);
    assert_eq!(recovery(&scene.heal(&guest, &event, &[]).await), "reboot");
    assert_eq!(fleet.history(&guest).await, ["reboot"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_is_held_while_a_person_suspended_replacement_and_left_to_a_running_refresh() {
    let scene = scene().await;
    let fleet = &scene.fleet;
    let (group, member) = fleet.auto_scaling_group("web-asg").await;
    let event = alarm(&member, "StatusCheckFailed_System", 60);
    let health = || async {
        fleet
            .autoscaling
            .describe_auto_scaling_instances()
            .instance_ids(&member)
            .send()
            .await
            .expect("describe")
            .auto_scaling_instances()[0]
            .health_status()
            .map(str::to_ascii_lowercase)
    };
    fleet
        .autoscaling
        .suspend_processes()
        .auto_scaling_group_name(&group)
        .scaling_processes("ReplaceUnhealthy")
        .send()
        .await
        .expect("suspend");

    let (reason, summary) = waited(scene.assess(&member, &event, &[]).await);
    assert_eq!(reason, WaitReason::OperatorHold);
    assert!(summary.contains("ReplaceUnhealthy"), "{summary}");
    assert_eq!(
        skipped(&scene.heal(&member, &event, &[]).await).0,
        SkipReason::Unsafe
    );
    assert_eq!(health().await.as_deref(), Some("healthy"), "not marked");

    fleet
        .autoscaling
        .resume_processes()
        .auto_scaling_group_name(&group)
        .scaling_processes("ReplaceUnhealthy")
        .send()
        .await
        .expect("resume");
    fleet
        .autoscaling
        .start_instance_refresh()
        .auto_scaling_group_name(&group)
        .send()
        .await
        .expect("an instance refresh");
    let (reason, summary) = waited(scene.assess(&member, &event, &[]).await);
    assert_eq!(reason, WaitReason::AwsHealing);
    assert!(summary.contains("instance refresh"), "{summary}");

    fleet
        .autoscaling
        .cancel_instance_refresh()
        .auto_scaling_group_name(&group)
        .send()
        .await
        .expect("cancel");
    assert_eq!(
        scene.assess(&member, &event, &[]).await,
        Assessment::Proceed
    );
    assert_eq!(
        recovery(&scene.heal(&member, &event, &[]).await),
        "auto-scaling-replacement"
    );
    assert_eq!(health().await.as_deref(), Some("unhealthy"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_ec2_does_not_know_or_terminated_is_gone() {
    let scene = scene().await;
    let fleet = &scene.fleet;
    let terminated = fleet.standalone(&[]).await;
    fleet
        .ec2
        .terminate_instances()
        .instance_ids(&terminated)
        .send()
        .await
        .expect("terminate");

    // The healer of every layer (the CLI's and the demo's) asks the same.
    let every_layer =
        autoheal_layers::LayerHealer::new(autoheal_core::Layer::Infrastructure, &scene.sdk);
    for instance in ["i-0000000000000dead", terminated.as_str()] {
        let event = alarm(instance, "StatusCheckFailed_System", 60);
        let assessment = scene.assess(instance, &event, &[]).await;
        assert!(
            matches!(assessment, Assessment::Gone { .. }),
            "{instance}: {assessment:?}"
        );
        let request = scene.request(instance, &event, &[]);
        let assessment = every_layer.assess(request).await.expect("assessed");
        assert!(
            matches!(assessment, Assessment::Gone { .. }),
            "{instance}: {assessment:?}"
        );
        assert_eq!(
            skipped(&scene.heal(instance, &event, &[]).await).0,
            SkipReason::Gone,
            "{instance}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_a_volume_repair_is_stopping_and_starting_is_busy() {
    let scene = scene().await;
    let fleet = &scene.fleet;
    let instance = fleet.standalone(&[(SYSTEM, "impaired")]).await;
    scene
        .auto_recovery(&instance, InstanceAutoRecoveryState::Disabled)
        .await;
    let mark = "autoheal-ffff repair-ebs-volume/vol-0123456789abcdef0 stopping";
    fleet.tag_instance(&instance, STOP_START_TAG, mark).await;
    fleet
        .ec2
        .stop_instances()
        .instance_ids(&instance)
        .send()
        .await
        .expect("stopped by the repair");
    let event = alarm(&instance, "StatusCheckFailed_System", 60);

    let (reason, summary) = waited(scene.assess(&instance, &event, &[]).await);
    assert_eq!(reason, WaitReason::ResourceBusy);
    assert!(
        summary.contains("repair-ebs-volume on vol-0123456789abcdef0"),
        "{summary}"
    );
    // The instance rule never starts an instance another run stopped.
    assert_eq!(
        skipped(&scene.heal(&instance, &event, &[]).await).0,
        SkipReason::Unsafe
    );
    assert_eq!(
        fleet.instance_state(&instance).await,
        Some(InstanceStateName::Stopped)
    );
    assert_eq!(
        fleet
            .instance_tag(&instance, STOP_START_TAG)
            .await
            .as_deref(),
        Some(mark)
    );
}
