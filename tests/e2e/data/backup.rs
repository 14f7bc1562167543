//! `backup-verification-healing` (`verify-backup`): the fresh backup, its test restore and the
//! clean-up, across follow-ups; what it waits for; autoheal's own older backups.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_is_taken_and_proved_to_restore_then_the_test_restore_is_deleted() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let queue = deployment.subscribe_queue("operators").await;
    let stores = DataStores::new(&deployment.sdk);
    stores.database("orders-db", &[], 7).await;
    let engine = data_engine(&deployment);

    let record = handle(
        &engine,
        data_alarm(BACKUP_VERIFICATION, "orders-db", "event-verify"),
    )
    .await;

    assert_eq!(record.status, HealingStatus::Completed, "{record:?}");
    assert_eq!(record.action, "verify-backup");
    let snapshot_id = record.details["snapshot_id"].clone();
    let verified = record.details["verified_instance_id"].clone();
    assert!(
        snapshot_id.starts_with("autoheal-verify-orders-db-"),
        "{snapshot_id}"
    );
    assert!(
        verified.starts_with("autoheal-verify-orders-db-"),
        "{verified}"
    );
    assert_eq!(record.details["verification"], "restored");

    // The fresh backup is kept; the test restore is gone; the source is untouched.
    let snapshots = stores.snapshots_of("orders-db").await;
    assert_eq!(snapshots.len(), 1, "{snapshots:#?}");
    assert_eq!(
        snapshots[0].db_snapshot_identifier(),
        Some(snapshot_id.as_str())
    );
    assert_eq!(snapshots[0].status(), Some("available"));
    assert_eq!(
        rds_tag(snapshots[0].tag_list(), "autoheal:backup-of"),
        Some("orders-db")
    );
    assert!(stores.instance(&verified).await.is_none(), "deleted");
    assert_eq!(stores.instance_ids().await, vec!["orders-db".to_owned()]);

    let stored = stored_record(&deployment).await;
    assert_eq!(stored.status, HealingStatus::Completed);
    assert_eq!(stored.details.get("snapshot_id"), Some(&snapshot_id));
    let (envelope, published) = only_notification(&deployment, &queue).await;
    assert_published(
        &envelope,
        &published,
        BACKUP_VERIFICATION,
        "orders-db",
        "completed",
    );
    assert_eq!(
        published["details"]["verified_instance_id"],
        verified.as_str()
    );

    ok_is_recovering(&engine, BACKUP_VERIFICATION, "orders-db").await;
    assert_eq!(engine.healer.calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_that_does_not_restore_fails_and_keeps_the_snapshot() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let queue = deployment.subscribe_queue("operators").await;
    let stores = DataStores::new(&deployment.sdk);
    stores.unrestorable_database("orders-db", 7).await;
    let engine = data_engine(&deployment);

    let record = handle(
        &engine,
        data_alarm(BACKUP_VERIFICATION, "orders-db", "event-broken"),
    )
    .await;

    assert_eq!(record.status, HealingStatus::Failed, "{record:?}");
    let error = record.error.expect("an error");
    assert!(
        error.contains("OptionGroupNotFound") && error.contains("backup verification"),
        "{error}"
    );
    assert_eq!(stores.snapshots_of("orders-db").await.len(), 1, "kept");
    assert_eq!(stores.instance_ids().await, vec!["orders-db".to_owned()]);
    let (envelope, published) = only_notification(&deployment, &queue).await;
    assert_published(
        &envelope,
        &published,
        BACKUP_VERIFICATION,
        "orders-db",
        "failed",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_verification_reuses_its_snapshot_and_deletes_its_test_restore() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let stores = DataStores::new(&deployment.sdk);
    stores.database("orders-db", &[], 7).await;
    // What an attempt that died after restoring left behind.
    stores
        .rds
        .create_db_snapshot()
        .db_instance_identifier("orders-db")
        .db_snapshot_identifier("autoheal-verify-orders-db-01234567")
        .send()
        .await
        .expect("snapshot");
    stores
        .rds
        .restore_db_instance_from_db_snapshot()
        .db_snapshot_identifier("autoheal-verify-orders-db-01234567")
        .db_instance_identifier("autoheal-verify-orders-db-01234567")
        .tags(
            aws_sdk_rds::types::Tag::builder()
                .key("autoheal:verification-of")
                .value("orders-db")
                .build(),
        )
        .send()
        .await
        .expect("leftover restore");

    let outcome = verify_with_fixed_token(&deployment, "orders-db").await;

    let HealOutcome::Healed { details, .. } = outcome.expect("healed") else {
        panic!("healed");
    };
    assert_eq!(
        details["verified_instance_id"],
        "autoheal-verify-orders-db-01234567"
    );
    assert_eq!(stores.snapshots_of("orders-db").await.len(), 1);
    assert_eq!(stores.instance_ids().await, vec!["orders-db".to_owned()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_autoheal_did_not_create_is_never_deleted() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let stores = DataStores::new(&deployment.sdk);
    stores.database("orders-db", &[], 7).await;
    // Someone's own instance that happens to have the name autoheal would derive.
    stores
        .database("autoheal-verify-orders-db-01234567", &[], 7)
        .await;

    let error = verify_with_fixed_token(&deployment, "orders-db")
        .await
        .expect_err("refused");

    assert!(error.message.contains("not tagged"), "{error}");
    assert_eq!(
        stores.instance_ids().await,
        vec![
            "autoheal-verify-orders-db-01234567".to_owned(),
            "orders-db".to_owned()
        ]
    );
}

/// A healer whose invocation is killed once its step's calls are made: it never returns, as
/// a process that died after its AWS calls and before it recorded them.
struct KilledAfterItsCalls<H>(H);

impl<H: Healer + Sync> Healer for KilledAfterItsCalls<H> {
    fn layer(&self) -> Layer {
        self.0.layer()
    }

    async fn heal(&self, request: HealRequest<'_>) -> Result<HealOutcome, HealError> {
        let _ = self.0.heal(request).await;
        std::future::pending().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verification_whose_snapshot_outlasts_an_invocation_completes_across_follow_ups_and_resumes_after_a_kill()
 {
    let emulator = Emulator::start_with_shims(&["moto_rds_snapshot_progress.py"]);
    let deployment = Deployment::bootstrap(&emulator).await;
    let stores = DataStores::new(&deployment.sdk);
    // RDS works on this instance's snapshots until the tag goes.
    stores
        .database("orders-db", &[("emulator:snapshot-status", "creating")], 7)
        .await;
    let alarm = data_alarm(BACKUP_VERIFICATION, "orders-db", "event-slow");
    let alarm_name = alarm["detail"]["alarmName"]
        .as_str()
        .expect("a name")
        .to_owned();
    deployment.set_alarm(&alarm_name, "ALARM").await;
    let start = Utc::now();
    let clock = TestClock::at(start);
    let engine = deployment.layer_with(Layer::Data, clock.clone(), Settings::default());

    // The alarm's invocation takes the snapshot and is killed before it records anything.
    let killed = deployment.engine(
        Layer::Data,
        KilledAfterItsCalls(DataHealer::new(&deployment.sdk)),
        clock.clone(),
        Settings::default(),
    );
    let died = tokio::time::timeout(
        std::time::Duration::from_secs(3),
        killed.handle(alarm, "killed-run"),
    )
    .await;
    assert!(died.is_err(), "the run never ended");
    assert_eq!(stores.snapshots_of("orders-db").await.len(), 1);

    // Its check (due when the attempt's backoff ends, two hours for this rule) resumes the
    // attempt: the same snapshot (taking it again would fail: it exists), still being made;
    // then a step every two minutes, each in a short invocation, until three hours passed.
    let mut steps = Vec::new();
    while clock.now() < start + Duration::hours(3) {
        let outcome = deployment
            .fire_next(&engine, &clock, &format!("step-{}", steps.len()))
            .await
            .expect("the next step is scheduled");
        steps.push(outcome);
    }
    // Each step's own safety check (in case it died too) is superseded by the step after.
    let (superseded, steps): (Vec<_>, Vec<_>) =
        steps.into_iter().partition(|step| step.record.is_none());
    assert!(
        superseded
            .iter()
            .all(|check| check.reason == Some(SkipReason::Superseded)),
        "{superseded:#?}"
    );
    assert!(steps.len() > 25, "{} steps", steps.len());
    for step in &steps {
        let record = step.record.as_ref().expect("recorded");
        assert_eq!(record.status, HealingStatus::InProgress, "{record:?}");
        assert_eq!(record.attempt, 1);
    }
    let snapshot_id = steps[0].record.as_ref().expect("recorded").details["snapshot_id"].clone();

    // RDS finishes the snapshot: the next step restores it, proves it, and cleans up.
    let arn = stores
        .instance("orders-db")
        .await
        .expect("the source")
        .db_instance_arn()
        .expect("an arn")
        .to_owned();
    stores
        .rds
        .remove_tags_from_resource()
        .resource_name(arn)
        .tag_keys("emulator:snapshot-status")
        .send()
        .await
        .expect("untag");
    let mut fired = 0;
    let record = loop {
        let outcome = deployment
            .fire_next(&engine, &clock, &format!("last-{fired}"))
            .await
            .expect("the next step");
        fired += 1;
        if let Some(record) = outcome.record {
            break record;
        }
        assert_eq!(outcome.reason, Some(SkipReason::Superseded));
    };
    assert_eq!(record.status, HealingStatus::Completed, "{record:?}");
    assert_eq!(record.attempt, 1, "one attempt from start to end");
    assert_eq!(record.details["snapshot_id"], snapshot_id);
    assert_eq!(record.details["verification"], "restored");
    let snapshots = stores.snapshots_of("orders-db").await;
    assert_eq!(snapshots.len(), 1, "the snapshot was taken once");
    assert_eq!(
        rds_tag(snapshots[0].tag_list(), "autoheal:verification"),
        Some("restored")
    );
    assert_eq!(stores.instance_ids().await, vec!["orders-db".to_owned()]);
    assert_eq!(
        usize::try_from(engine.healer.calls()).expect("small"),
        steps.len() + 1
    );
}

/// Snapshots of `orders-db` and `billing-db` before a verification, oldest first: a person's,
/// four of autoheal's own verified backups (returned), one of autoheal's of another instance,
/// and one of this instance taken before a reboot (another rule's).
async fn snapshots_before_verification(stores: &DataStores) -> Vec<String> {
    stores.database("orders-db", &[], 7).await;
    stores.database("billing-db", &[], 7).await;
    rds_snapshot(&stores.rds, "orders-db", "before-the-upgrade", &[]).await;
    let own: Vec<String> = (1..=4)
        .map(|n| format!("autoheal-verify-orders-db-old{n}"))
        .collect();
    for id in &own {
        rds_snapshot(
            &stores.rds,
            "orders-db",
            id,
            &autoheal_snapshot_tags("orders-db", BACKUP_VERIFICATION),
        )
        .await;
    }
    rds_snapshot(
        &stores.rds,
        "billing-db",
        "autoheal-verify-billing-db-old",
        &autoheal_snapshot_tags("billing-db", BACKUP_VERIFICATION),
    )
    .await;
    rds_snapshot(
        &stores.rds,
        "orders-db",
        "autoheal-orders-db-before-reboot",
        &autoheal_snapshot_tags("orders-db", "rds-instance-healing"),
    )
    .await;
    own
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_backup_replaces_only_autoheals_own_older_backups_beyond_three() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let stores = DataStores::new(&deployment.sdk);
    let own = snapshots_before_verification(&stores).await;
    let before = rds_snapshot_ids(&stores.rds).await;
    let engine = data_engine(&deployment);

    let record = handle(
        &engine,
        data_alarm(BACKUP_VERIFICATION, "orders-db", "event-verify"),
    )
    .await;

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
    let after = rds_snapshot_ids(&stores.rds).await;
    assert_eq!(after, expected);
    for kept in [
        "before-the-upgrade",
        "autoheal-verify-billing-db-old",
        "autoheal-orders-db-before-reboot",
    ] {
        assert!(after.contains(kept), "{kept} was deleted");
    }
    let fresh = stores
        .snapshots_of("orders-db")
        .await
        .into_iter()
        .find(|s| s.db_snapshot_identifier() == Some(new.as_str()))
        .expect("the fresh backup");
    for (key, value) in autoheal_snapshot_tags("orders-db", BACKUP_VERIFICATION) {
        assert_eq!(rds_tag(fresh.tag_list(), key), Some(value));
    }
    assert_eq!(
        rds_tag(fresh.tag_list(), "autoheal:backup-of"),
        Some("orders-db")
    );
    assert_eq!(
        stored_record(&deployment)
            .await
            .details
            .get("snapshots_deleted"),
        record.details.get("snapshots_deleted")
    );

    // The same attempt again: its snapshot is reused and nothing more is deleted.
    let rules = RuleSet::shipped().expect("shipped rules");
    let rule = rules.get(BACKUP_VERIFICATION).expect("the rule");
    let incident = record.incident_id.as_deref().expect("an incident");
    let token = idempotency_token(&rule.name, "orders-db", incident, record.attempt);
    let event =
        AlarmEvent::from_value(data_alarm(BACKUP_VERIFICATION, "orders-db", "event-verify"))
            .expect("an alarm");
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
        .expect("verified again");
    let HealOutcome::Healed { details, .. } = again else {
        panic!("{again:?}");
    };
    assert_eq!(details["snapshot_id"], new);
    assert_eq!(details["snapshots_deleted"], "");
    assert_eq!(rds_snapshot_ids(&stores.rds).await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_that_does_not_restore_deletes_no_older_backup() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let stores = DataStores::new(&deployment.sdk);
    stores.option_group("orders-options").await;
    stores
        .database_with_option_group("orders-db", &[], 7, Some("orders-options"))
        .await;
    for n in 1..=4 {
        rds_snapshot(
            &stores.rds,
            "orders-db",
            &format!("autoheal-verify-orders-db-old{n}"),
            &autoheal_snapshot_tags("orders-db", BACKUP_VERIFICATION),
        )
        .await;
    }
    // No snapshot of the instance can be restored now.
    stores.delete_option_group("orders-options").await;
    let before = rds_snapshot_ids(&stores.rds).await;

    let record = handle(
        &data_engine(&deployment),
        data_alarm(BACKUP_VERIFICATION, "orders-db", "event-broken"),
    )
    .await;

    assert_eq!(record.status, HealingStatus::Failed, "{record:?}");
    let after = rds_snapshot_ids(&stores.rds).await;
    assert_eq!(after.len(), before.len() + 1, "only the new one added");
    assert!(after.is_superset(&before), "{after:?}");
}

/// Runs `verify-backup` on `db` directly, as attempt 1 with a known idempotency token.
async fn verify_with_fixed_token(
    deployment: &Deployment,
    db: &str,
) -> Result<HealOutcome, autoheal_core::HealError> {
    let healer = DataHealer::new(&deployment.sdk);
    let rules = RuleSet::shipped().expect("shipped rules");
    let event =
        AlarmEvent::from_value(data_alarm(BACKUP_VERIFICATION, db, "event-1")).expect("an alarm");
    healer
        .heal(HealRequest {
            rule: rules.get(BACKUP_VERIFICATION).expect("the rule"),
            resource_id: db,
            attempt: 1,
            incident_id: "incident-1",
            idempotency_token: "autoheal-0123456789abcdef00000001",
            event: &event,
            alarm_actions: &[],
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_tagged_disabled_is_not_verified() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let stores = DataStores::new(&deployment.sdk);
    stores
        .database("orders-db", &[("autoheal:disabled", "true")], 7)
        .await;
    let engine = data_engine(&deployment);

    let record = handle(
        &engine,
        data_alarm(BACKUP_VERIFICATION, "orders-db", "event-opt-out"),
    )
    .await;

    assert_eq!(record.status, HealingStatus::Skipped);
    assert_eq!(record.skip_reason, Some(SkipReason::OptedOut));
    assert!(stores.snapshots_of("orders-db").await.is_empty());
    assert_eq!(stores.instance_ids().await, vec!["orders-db".to_owned()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_aws_or_a_person_is_working_on_is_waited_for_before_its_snapshot() {
    let emulator = Emulator::start_with_shims(&["moto_rds_instance_states.py"]);
    let deployment = Deployment::bootstrap(&emulator).await;
    let stores = DataStores::new(&deployment.sdk);
    stores
        .database(
            "orders-db",
            &[("emulator:db-instance-status", "backing-up")],
            7,
        )
        .await;
    let healer = DataHealer::new(&deployment.sdk);
    let rules = RuleSet::shipped().expect("shipped rules");
    let event = AlarmEvent::from_value(data_alarm(BACKUP_VERIFICATION, "orders-db", "e1"))
        .expect("an alarm");
    let verify = shipped_attempt(&rules, BACKUP_VERIFICATION, "orders-db", &event);

    let Assessment::Wait(wait) = healer.assess(verify).await.expect("assessed") else {
        panic!("a wait");
    };
    assert_eq!(wait.reason, WaitReason::AwsHealing);
    assert_eq!(
        wait.summary,
        "DB instance orders-db is backing-up: RDS is backing it up"
    );
    stores
        .untag_database("orders-db", "emulator:db-instance-status")
        .await;
    let arn = stores
        .instance("orders-db")
        .await
        .expect("the instance")
        .db_instance_arn()
        .expect("an ARN")
        .to_owned();
    stores
        .rds
        .add_tags_to_resource()
        .resource_name(arn)
        .tags(
            aws_sdk_rds::types::Tag::builder()
                .key("emulator:db-instance-status")
                .value("modifying")
                .build(),
        )
        .send()
        .await
        .expect("tag");
    let Assessment::Wait(wait) = healer.assess(verify).await.expect("assessed") else {
        panic!("a wait");
    };
    assert_eq!(wait.reason, WaitReason::OperatorHold);
    assert!(
        stores.snapshots_of("orders-db").await.is_empty(),
        "nothing taken"
    );

    // A restore to a point in time reads the backups, not the instance: nothing to wait for.
    let event = AlarmEvent::from_value(data_alarm(DATABASE_CORRUPTION, "orders-db", "e2"))
        .expect("an alarm");
    let restore = shipped_attempt(&rules, DATABASE_CORRUPTION, "orders-db", &event);
    assert_eq!(
        healer.assess(restore).await.expect("assessed"),
        Assessment::Proceed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verification_whose_instance_is_deleted_meanwhile_still_deletes_its_test_restore() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let stores = DataStores::new(&deployment.sdk);
    stores.database("orders-db", &[], 7).await;
    // What an earlier step of the attempt left: its test restore, tagged as autoheal's.
    let verify_id = "autoheal-verify-orders-db-01234567";
    stores
        .rds
        .create_db_instance()
        .db_instance_identifier(verify_id)
        .db_instance_class("db.t3.micro")
        .engine("postgres")
        .allocated_storage(20)
        .master_username("autoheal")
        .master_user_password("not-a-secret-1")
        .tags(
            aws_sdk_rds::types::Tag::builder()
                .key("autoheal:verification-of")
                .value("orders-db")
                .build(),
        )
        .send()
        .await
        .expect("the test restore");
    // A person deletes the instance being verified.
    stores
        .rds
        .delete_db_instance()
        .db_instance_identifier("orders-db")
        .skip_final_snapshot(true)
        .send()
        .await
        .expect("delete");
    let rules = RuleSet::shipped().expect("shipped rules");
    let event = AlarmEvent::from_value(data_alarm(BACKUP_VERIFICATION, "orders-db", "e1"))
        .expect("an alarm");
    let request = shipped_attempt(&rules, BACKUP_VERIFICATION, "orders-db", &event);

    let outcome = DataHealer::new(&deployment.sdk)
        .heal(request)
        .await
        .expect("healed");

    let HealOutcome::Skipped {
        reason: SkipReason::Gone,
        summary,
    } = outcome
    else {
        panic!("{outcome:?}");
    };
    assert!(
        summary.contains(&format!("its test restore {verify_id} was deleted")),
        "{summary}"
    );
    assert!(
        stores.instance_ids().await.is_empty(),
        "nothing left behind"
    );
}
