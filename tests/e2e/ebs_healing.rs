//! `ebs-volume-healing` against the emulator: least destructive first (re-enable I/O where EBS
//! disabled it, else stop and start the instance; a replacement only on a later attempt, with
//! the instance stopped so that its snapshot holds every write), the volume's own type and
//! performance kept, root and Multi-Attach volumes refused, and autoheal's own snapshots kept
//! to the rule's retention. Each side effect is read back through the SDK.

use aws_sdk_ec2::types::{
    AttributeBooleanValue, InstanceStateName, ResourceType, Tag, TagSpecification, VolumeType,
};
use chrono::Utc;

use autoheal_core::policy::decision::idempotency_token;
use autoheal_core::{
    AlarmEvent, Assessment, Clock, HealOutcome, HealRequest, Healer, HealingRecord, HealingStatus,
    Layer, RuleSet, Settings, SkipReason, Verdict, WaitReason,
};
use autoheal_infrastructure::InfrastructureHealer;
use autoheal_tests::{
    Deployment, Emulator, Fleet, TestClock, TestEngine, autoheal_snapshot_tags, first_attempt,
    rule_event,
};

const STOP_START_TAG: &str = "autoheal:stop-start";
const DETACHED_FROM: &str = "emulator:detached-from";
const SHIMS: [&str; 1] = ["moto_ec2_status_checks.py"];
const RULE: &str = "ebs-volume-healing";
const TOKEN: &str = "autoheal-0123456789abcdef00000002";

fn ebs_event(state: &str, id: &str, volume: &str) -> serde_json::Value {
    rule_event(RULE, state, id, "VolumeId", volume)
}

struct Scene {
    _emulator: Emulator,
    deployment: Deployment,
    fleet: Fleet,
    clock: TestClock,
    engine: TestEngine<TestClock>,
}

async fn scene(extra: &[&str]) -> Scene {
    let shims: Vec<&str> = SHIMS.iter().chain(extra).copied().collect();
    let emulator = Emulator::start_with_shims(&shims);
    let deployment = Deployment::bootstrap(&emulator).await;
    let clock = TestClock::at(Utc::now());
    let engine = deployment.layer_with(Layer::Infrastructure, clock.clone(), Settings::default());
    Scene {
        fleet: Fleet::new(&deployment.sdk),
        deployment,
        clock,
        engine,
        _emulator: emulator,
    }
}

impl Scene {
    /// The alarm on `volume` handled once.
    async fn attempt(&self, volume: &str, id: &str) -> HealingRecord {
        self.engine
            .handle(ebs_event("alarm", id, volume), &format!("run-{id}"))
            .await
            .expect("handled")
            .record
            .expect("a record")
    }

    /// The first attempt, then, the alarm still on after the backoff, the second.
    async fn two_attempts(&self, volume: &str) -> (HealingRecord, HealingRecord) {
        let first = self.attempt(volume, "ebs-1").await;
        self.clock.advance(7200);
        let second = self.attempt(volume, "ebs-2").await;
        assert_eq!(second.attempt, 2, "{second:?}");
        (first, second)
    }

    /// A volume of `kind` (`size` GiB, `iops`), attached to `instance` at `device`.
    async fn volume(
        &self,
        instance: &str,
        device: &str,
        kind: VolumeType,
        size: i32,
        iops: Option<i32>,
        multi_attach: bool,
    ) -> String {
        let zone = self
            .fleet
            .instance(instance)
            .await
            .placement()
            .and_then(|p| p.availability_zone().map(str::to_owned))
            .expect("a zone");
        let volume = self
            .fleet
            .ec2
            .create_volume()
            .availability_zone(zone)
            .size(size)
            .volume_type(kind)
            .set_iops(iops)
            .multi_attach_enabled(multi_attach)
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::Volume)
                    .tags(Tag::builder().key("team").value("data").build())
                    .build(),
            )
            .send()
            .await
            .expect("a volume")
            .volume_id
            .expect("its id");
        self.fleet
            .ec2
            .attach_volume()
            .volume_id(&volume)
            .instance_id(instance)
            .device(device)
            .send()
            .await
            .expect("attached");
        volume
    }

    fn healer(&self) -> InfrastructureHealer {
        InfrastructureHealer::new(&self.deployment.sdk)
    }
}

fn volume_tag(volume: &aws_sdk_ec2::types::Volume, key: &str) -> Option<String> {
    volume
        .tags()
        .iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value().map(str::to_owned))
}

/// The first attempt's request on `volume`, or a later one's.
fn request<'a>(
    rules: &'a RuleSet,
    volume: &'a str,
    event: &'a AlarmEvent,
    attempt: u32,
) -> HealRequest<'a> {
    HealRequest {
        attempt,
        ..first_attempt(rules.get(RULE).expect("the rule"), volume, event, TOKEN)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn io_that_ebs_disabled_is_re_enabled_and_nothing_else_changes() {
    let scene = scene(&[]).await;
    let instance = scene.fleet.standalone(&[]).await;
    let volume = scene
        .fleet
        .attached_volume(&instance, "/dev/sdf", &[("emulator:io-enabled", "failed")])
        .await;

    let record = scene.attempt(&volume, "ebs-1").await;

    assert_eq!(record.status, HealingStatus::Completed, "{record:?}");
    assert_eq!(record.details["recovery"], "enable-volume-io");
    assert!(
        record
            .summary
            .as_deref()
            .is_some_and(|s| s.contains("file system")),
        "{record:?}"
    );
    let status = scene
        .fleet
        .ec2
        .describe_volume_status()
        .volume_ids(&volume)
        .send()
        .await
        .expect("volume status");
    let io_enabled = status.volume_statuses()[0]
        .volume_status()
        .expect("a status")
        .details()
        .iter()
        .find(|d| d.name().map(|n| n.as_str()) == Some("io-enabled"))
        .and_then(|d| d.status().map(str::to_owned));
    assert_eq!(io_enabled.as_deref(), Some("passed"), "I/O flows again");
    assert!(
        scene.fleet.history(&instance).await.is_empty(),
        "the instance was not touched"
    );
    let after = scene.fleet.volume(&volume).await;
    assert_eq!(
        after.attachments()[0].instance_id(),
        Some(instance.as_str())
    );
    assert!(scene.fleet.snapshots_of(&[&volume]).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_attempt_stops_and_starts_the_instance_and_leaves_the_volume_where_it_is() {
    let scene = scene(&[]).await;
    let instance = scene.fleet.standalone(&[]).await;
    let volume = scene
        .fleet
        .attached_volume(&instance, "/dev/sdf", &[])
        .await;

    let record = scene.attempt(&volume, "ebs-1").await;

    assert_eq!(record.status, HealingStatus::Completed, "{record:?}");
    assert_eq!(record.details["recovery"], "stop-start");
    assert_eq!(record.details["instance_id"], instance);
    assert_eq!(scene.fleet.history(&instance).await, ["stop", "start"]);
    assert_eq!(
        scene.fleet.instance_state(&instance).await,
        Some(InstanceStateName::Running)
    );
    assert_eq!(
        scene.fleet.instance_tag(&instance, STOP_START_TAG).await,
        None
    );
    let after = scene.fleet.volume(&volume).await;
    let attachment = &after.attachments()[0];
    assert_eq!(
        (attachment.instance_id(), attachment.device()),
        (Some(instance.as_str()), Some("/dev/sdf")),
        "never detached"
    );
    assert_eq!(volume_tag(&after, DETACHED_FROM), None);
    assert!(
        scene.fleet.snapshots_of(&[&volume]).await.is_empty(),
        "nothing to snapshot yet"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replacement_is_swapped_in_only_with_the_instance_stopped_and_keeps_io2_iops() {
    let scene = scene(&[]).await;
    let instance = scene.fleet.standalone(&[]).await;
    let old = scene
        .volume(
            &instance,
            "/dev/sdf",
            VolumeType::Io2,
            100,
            Some(8000),
            false,
        )
        .await;

    let (first, second) = scene.two_attempts(&old).await;

    assert_eq!(first.details["recovery"], "stop-start", "{first:?}");
    assert_eq!(second.status, HealingStatus::Completed, "{second:?}");
    assert_eq!(second.details["recovery"], "replace-volume");
    let new = &second.details["replacement_volume_id"];
    let snapshot = &second.details["snapshot_id"];
    let replacement = scene.fleet.volume(new).await;
    assert_eq!(
        replacement.volume_type(),
        Some(&VolumeType::Io2),
        "its type is kept"
    );
    assert_eq!(replacement.iops(), Some(8000), "and its provisioned IOPS");
    assert_eq!(replacement.size(), Some(100));
    assert_eq!(replacement.snapshot_id(), Some(snapshot.as_str()));
    let attachment = &replacement.attachments()[0];
    assert_eq!(
        (attachment.instance_id(), attachment.device()),
        (Some(instance.as_str()), Some("/dev/sdf"))
    );
    assert_eq!(volume_tag(&replacement, "team").as_deref(), Some("data"));
    let kept = scene.fleet.volume(&old).await;
    assert!(
        kept.attachments().is_empty(),
        "the old volume is detached, and kept"
    );
    assert_eq!(
        volume_tag(&kept, "autoheal:replaced-by").as_deref(),
        Some(new.as_str())
    );
    assert_eq!(
        volume_tag(&kept, DETACHED_FROM),
        Some(format!("{instance}:stopped")),
        "detached only once the instance had stopped"
    );
    assert_eq!(
        scene.fleet.history(&instance).await,
        ["stop", "start", "stop", "start"]
    );
    assert_eq!(
        scene.fleet.instance_state(&instance).await,
        Some(InstanceStateName::Running)
    );
    assert_eq!(
        scene.fleet.instance_tag(&instance, STOP_START_TAG).await,
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gp2_volume_is_replaced_by_gp3_with_at_least_its_performance() {
    let scene = scene(&[]).await;
    let queue = scene.deployment.subscribe_queue("operators").await;
    let instance = scene.fleet.standalone(&[]).await;
    let old = scene
        .fleet
        .attached_volume(&instance, "/dev/sdf", &[("team", "data")])
        .await;

    let (_, record) = scene.two_attempts(&old).await;

    assert_eq!(record.status, HealingStatus::Completed, "{record:?}");
    let snapshot = &record.details["snapshot_id"];
    let snapshots = scene
        .fleet
        .ec2
        .describe_snapshots()
        .snapshot_ids(snapshot)
        .send()
        .await
        .expect("snapshots");
    assert_eq!(snapshots.snapshots()[0].volume_id(), Some(old.as_str()));
    let replacement = scene
        .fleet
        .volume(&record.details["replacement_volume_id"])
        .await;
    assert_eq!(replacement.volume_type(), Some(&VolumeType::Gp3));
    assert_eq!(
        replacement.iops(),
        Some(3000),
        "at least gp2's 60 IOPS of 20 GiB, and gp3's base"
    );
    assert_eq!(
        replacement.throughput(),
        Some(128),
        "at least gp2's 128 MiB/s"
    );
    let stored = scene
        .deployment
        .store()
        .recent_records(5, scene.clock.now())
        .await
        .expect("records");
    assert!(
        stored.iter().any(|r| r.details.get("replacement_volume_id")
            == record.details.get("replacement_volume_id")),
        "{stored:#?}"
    );
    assert_eq!(
        scene.deployment.notifications(&queue).await.len(),
        2,
        "one per attempt"
    );

    let ok = scene
        .engine
        .handle(ebs_event("ok", "ebs-ok", &old), "run-ok")
        .await
        .expect("handled");
    assert_eq!(ok.decision, Verdict::Recovering);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replacement_that_died_between_the_detach_and_the_attach_is_finished_by_its_next_step() {
    let scene = scene(&[]).await;
    let fleet = &scene.fleet;
    let instance = fleet.standalone(&[]).await;
    let old = fleet.attached_volume(&instance, "/dev/sdf", &[]).await;
    // What the step that died left: the instance stopped under the attempt's mark, the
    // snapshot taken with it stopped, the replacement made from it, the volume detached.
    fleet
        .tag_instance(
            &instance,
            STOP_START_TAG,
            &format!("{TOKEN} repair-ebs-volume/{old} stopping"),
        )
        .await;
    fleet
        .ec2
        .stop_instances()
        .instance_ids(&instance)
        .send()
        .await
        .expect("stop");
    let mut tags = autoheal_snapshot_tags(&old, RULE).to_vec();
    tags.push(("autoheal:token", TOKEN));
    let snapshot = fleet.snapshot_by_autoheal(&old, &tags).await;
    let zone = fleet
        .volume(&old)
        .await
        .availability_zone()
        .expect("a zone")
        .to_owned();
    let attach_to = format!("{instance}:/dev/sdf");
    let mut spec = TagSpecification::builder().resource_type(ResourceType::Volume);
    for (key, value) in [
        ("autoheal:replaces", old.as_str()),
        ("autoheal:token", TOKEN),
        ("autoheal:attach-to", attach_to.as_str()),
    ] {
        spec = spec.tags(Tag::builder().key(key).value(value).build());
    }
    let new = fleet
        .ec2
        .create_volume()
        .snapshot_id(&snapshot)
        .availability_zone(zone)
        .volume_type(VolumeType::Gp3)
        .tag_specifications(spec.build())
        .send()
        .await
        .expect("the replacement")
        .volume_id
        .expect("its id");
    fleet
        .ec2
        .detach_volume()
        .volume_id(&old)
        .instance_id(&instance)
        .send()
        .await
        .expect("detached");
    let rules = RuleSet::shipped().expect("shipped rules");
    let event = AlarmEvent::from_value(ebs_event("alarm", "ebs-2", &old)).expect("an alarm");

    let outcome = scene
        .healer()
        .heal(request(&rules, &old, &event, 2))
        .await
        .expect("healed");

    let HealOutcome::Healed { details, .. } = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(details["replacement_volume_id"], new);
    assert_eq!(details["snapshot_id"], snapshot);
    let replacement = fleet.volume(&new).await;
    let attachment = &replacement.attachments()[0];
    assert_eq!(
        (attachment.instance_id(), attachment.device()),
        (Some(instance.as_str()), Some("/dev/sdf"))
    );
    assert_eq!(
        fleet.instance_state(&instance).await,
        Some(InstanceStateName::Running)
    );
    assert_eq!(fleet.instance_tag(&instance, STOP_START_TAG).await, None);
    assert_eq!(
        volume_tag(&fleet.volume(&old).await, "autoheal:replaced-by"),
        Some(new.clone())
    );
    assert_eq!(
        fleet.snapshots_of(&[&old]).await.len(),
        1,
        "the snapshot was not taken again"
    );
    let replacements = fleet
        .ec2
        .describe_volumes()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("tag:autoheal:replaces")
                .values(&old)
                .build(),
        )
        .send()
        .await
        .expect("volumes");
    assert_eq!(
        replacements.volumes().len(),
        1,
        "nor the replacement made again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_attach_and_root_volumes_are_unsafe_and_their_instance_is_never_stopped() {
    let scene = scene(&[]).await;
    let instance = scene.fleet.standalone(&[]).await;
    let shared = scene
        .volume(
            &instance,
            "/dev/sdg",
            VolumeType::Io2,
            100,
            Some(3000),
            true,
        )
        .await;
    let root = scene
        .fleet
        .instance(&instance)
        .await
        .block_device_mappings()
        .iter()
        .find_map(|m| m.ebs().and_then(|e| e.volume_id().map(str::to_owned)))
        .expect("a root volume");
    let healer = scene.healer();
    let rules = RuleSet::shipped().expect("shipped rules");

    for volume in [&shared, &root] {
        let event = AlarmEvent::from_value(ebs_event("alarm", "ebs-1", volume)).expect("an alarm");
        for attempt in [1, 2] {
            let outcome = healer
                .heal(request(&rules, volume, &event, attempt))
                .await
                .expect("healed");
            let HealOutcome::Skipped { reason, summary } = outcome else {
                panic!("{volume} attempt {attempt}: {outcome:?}");
            };
            assert_eq!(reason, SkipReason::Unsafe, "{summary}");
            let why = if *volume == shared {
                "Multi-Attach"
            } else {
                "root volume"
            };
            assert!(summary.contains(why), "{summary}");
        }
    }
    assert!(
        scene.fleet.history(&instance).await.is_empty(),
        "never stopped"
    );
    assert!(scene.fleet.snapshots_of(&[&shared, &root]).await.is_empty());
    assert_eq!(scene.fleet.volume(&shared).await.attachments().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_runs_stop_and_start_is_waited_for_and_stop_protection_is_a_persons_hold() {
    let scene = scene(&[]).await;
    let busy = scene.fleet.standalone(&[]).await;
    let busy_volume = scene.fleet.attached_volume(&busy, "/dev/sdf", &[]).await;
    // The instance's status-check rule stopped it and has yet to start it again.
    let mark = format!("autoheal-ffff recover-ec2-instance/{busy} starting");
    scene.fleet.tag_instance(&busy, STOP_START_TAG, &mark).await;
    scene
        .fleet
        .ec2
        .stop_instances()
        .instance_ids(&busy)
        .send()
        .await
        .expect("stopped by the other run");
    let protected = scene.fleet.standalone(&[]).await;
    let protected_volume = scene
        .fleet
        .attached_volume(&protected, "/dev/sdf", &[])
        .await;
    scene
        .fleet
        .ec2
        .modify_instance_attribute()
        .instance_id(&protected)
        .disable_api_stop(AttributeBooleanValue::builder().value(true).build())
        .send()
        .await
        .expect("stop protection");
    let healer = scene.healer();
    let rules = RuleSet::shipped().expect("shipped rules");

    for (volume, instance, expected, history) in [
        (&busy_volume, &busy, WaitReason::ResourceBusy, vec!["stop"]),
        (
            &protected_volume,
            &protected,
            WaitReason::OperatorHold,
            vec![],
        ),
    ] {
        let event = AlarmEvent::from_value(ebs_event("alarm", "ebs-1", volume)).expect("an alarm");
        let assessment = healer
            .assess(request(&rules, volume, &event, 1))
            .await
            .expect("assessed");
        let Assessment::Wait(wait) = assessment else {
            panic!("{volume}: {assessment:?}");
        };
        assert_eq!(wait.reason, expected, "{wait:?}");
        let outcome = healer
            .heal(request(&rules, volume, &event, 1))
            .await
            .expect("healed");
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
        assert_eq!(
            scene.fleet.history(instance).await,
            history,
            "{instance} was not stopped, nor started"
        );
    }
    assert_eq!(
        scene.fleet.instance_tag(&busy, STOP_START_TAG).await,
        Some(mark)
    );
    assert_eq!(
        scene.fleet.instance_state(&busy).await,
        Some(InstanceStateName::Stopped)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_opted_out_and_missing_volumes_are_not_touched() {
    let scene = scene(&[]).await;
    let instance = scene.fleet.standalone(&[]).await;
    let root = scene
        .fleet
        .instance(&instance)
        .await
        .block_device_mappings()
        .iter()
        .find_map(|m| m.ebs().and_then(|e| e.volume_id().map(str::to_owned)))
        .expect("a root volume");
    let opted_out = scene
        .fleet
        .attached_volume(&instance, "/dev/sdg", &[("autoheal:disabled", "true")])
        .await;
    let missing = "vol-0000000000000dead";

    let on_root = scene.attempt(&root, "root-1").await;
    let on_opted_out = scene.attempt(&opted_out, "opt-1").await;
    let on_missing = scene.attempt(missing, "gone-1").await;

    assert_eq!(on_root.skip_reason, Some(SkipReason::Unsafe), "{on_root:?}");
    assert_eq!(on_opted_out.skip_reason, Some(SkipReason::OptedOut));
    assert_eq!(
        on_missing.skip_reason,
        Some(SkipReason::Gone),
        "{on_missing:?}"
    );
    assert!(on_missing.error.is_none());
    let rules = RuleSet::shipped().expect("shipped rules");
    let event = AlarmEvent::from_value(ebs_event("alarm", "gone-2", missing)).expect("an alarm");
    let assessment = scene
        .healer()
        .assess(request(&rules, missing, &event, 1))
        .await
        .expect("assessed");
    assert!(
        matches!(assessment, Assessment::Gone { .. }),
        "{assessment:?}"
    );
    assert!(scene.fleet.history(&instance).await.is_empty());
    assert!(
        scene
            .fleet
            .snapshots_of(&[&root, &opted_out])
            .await
            .is_empty(),
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
    record: &HealingRecord,
    volume: &str,
) -> Result<HealOutcome, autoheal_core::HealError> {
    let rules = RuleSet::shipped().expect("shipped rules");
    let rule = rules.get(RULE).expect("the rule");
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
    let scene = scene(&[]).await;
    let queue = scene.deployment.subscribe_queue("operators").await;
    let fleet = &scene.fleet;
    let instance = fleet.standalone(&[]).await;
    let volume = fleet.attached_volume(&instance, "/dev/sdf", &[]).await;
    let other = fleet.attached_volume(&instance, "/dev/sdg", &[]).await;
    // Oldest first: a person's snapshot, one someone tagged as autoheal's (whoever may tag
    // can: it is not autoheal's to delete), four of autoheal's own, one of autoheal's of
    // another volume, one of this volume tagged by another rule.
    let person = fleet
        .snapshot(&volume, &[("Name", "before the upgrade")])
        .await;
    let forged = fleet
        .snapshot(
            &volume,
            &autoheal_snapshot_tags(&volume, "ebs-volume-healing"),
        )
        .await;
    let mut own = Vec::new();
    for _ in 0..4 {
        a_second_later().await;
        own.push(
            fleet
                .snapshot_by_autoheal(
                    &volume,
                    &autoheal_snapshot_tags(&volume, "ebs-volume-healing"),
                )
                .await,
        );
    }
    let of_other_volume = fleet
        .snapshot_by_autoheal(
            &other,
            &autoheal_snapshot_tags(&other, "ebs-volume-healing"),
        )
        .await;
    let of_other_rule = fleet
        .snapshot_by_autoheal(&volume, &autoheal_snapshot_tags(&volume, "some-other-rule"))
        .await;
    let before = fleet.snapshots_of(&[&volume, &other]).await;
    assert_eq!(before.len(), 8);
    a_second_later().await;

    // The first attempt stops and starts the instance; the second replaces the volume, and
    // applies the retention once the replacement is in place.
    let (first, record) = scene.two_attempts(&volume).await;
    assert!(
        !first.details.contains_key("snapshots_deleted"),
        "{first:?}"
    );

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
    for kept in [&person, &of_other_volume, &of_other_rule, &forged] {
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
    let stored = scene
        .deployment
        .store()
        .recent_records(2, scene.clock.now())
        .await
        .expect("records");
    let stored = stored.last().expect("the second attempt's record");
    assert_eq!(stored.attempt, 2);
    assert_eq!(
        stored.details.get("snapshots_deleted"),
        record.details.get("snapshots_deleted")
    );
    let notifications = scene.deployment.notifications(&queue).await;
    let message: serde_json::Value =
        serde_json::from_str(notifications[1]["Message"].as_str().expect("a message"))
            .expect("JSON");
    assert_eq!(
        message["record"]["details"]["snapshots_deleted"],
        record.details["snapshots_deleted"].as_str()
    );

    // The same attempt again: its snapshot is reused and nothing more is deleted.
    let again = retry(&scene.engine.healer.inner, &record, &volume)
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
    let scene = scene(&["moto_snapshot_in_use.py"]).await;
    let fleet = &scene.fleet;
    let instance = fleet.standalone(&[]).await;
    let volume = fleet.attached_volume(&instance, "/dev/sdf", &[]).await;
    let ours = autoheal_snapshot_tags(&volume, "ebs-volume-healing");
    // autoheal's oldest snapshot, which someone registered an AMI from.
    let mut in_use_tags = ours.to_vec();
    in_use_tags.push(("emulator:in-use-by", "ami-0123456789abcdef0"));
    let in_use = fleet.snapshot_by_autoheal(&volume, &in_use_tags).await;
    let mut own = Vec::new();
    for _ in 0..3 {
        a_second_later().await;
        own.push(fleet.snapshot_by_autoheal(&volume, &ours).await);
    }
    a_second_later().await;

    let (_, record) = scene.two_attempts(&volume).await;

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
