//! The data layer's rules against the emulator.

use chrono::{Duration, SubsecRound, Utc};
use serde_json::Value;

use autoheal_core::idempotency_token;
use autoheal_core::{
    AlarmEvent, Clock, HealError, HealOutcome, HealRequest, Healer, HealingRecord, HealingStatus,
    Layer, RuleSet, Settings, SkipReason, SystemClock, Verdict,
};
use autoheal_data::DataHealer;
use autoheal_tests::data::{
    BACKUP_VERIFICATION, CACHE_INVALIDATION, DATABASE_CORRUPTION, DataStores, at, data_alarm,
    data_ok, rds_tag,
};
use autoheal_tests::{
    Deployment, Emulator, Published, TestClock, TestEngine, autoheal_snapshot_tags, ec2_alarm,
    rds_snapshot, rds_snapshot_ids,
};

type DataEngine = TestEngine<SystemClock>;

fn data_engine(deployment: &Deployment) -> DataEngine {
    deployment.layer(Layer::Data)
}

/// Sends `event` through the engine; returns the run's record.
async fn handle(engine: &DataEngine, event: Value) -> HealingRecord {
    engine
        .handle(event, "run-1")
        .await
        .expect("handled")
        .record
        .expect("a record")
}

/// The one record stored in the table.
async fn stored_record(deployment: &Deployment) -> HealingRecord {
    deployment.only_record().await
}

/// The one notification published, as (attributes envelope, record).
async fn only_notification(deployment: &Deployment, queue: &str) -> (Value, Value) {
    let published = deployment.only_notification(queue).await;
    (published.envelope, published.record)
}

fn assert_published(envelope: &Value, record: &Value, rule: &str, resource: &str, status: &str) {
    let published = Published {
        envelope: envelope.clone(),
        record: record.clone(),
    };
    published.assert_about("data", rule, status);
    assert_eq!(record["resource_id"], resource);
}

/// The OK event after a heal marks the incident recovering.
async fn ok_is_recovering(engine: &DataEngine, rule: &str, resource: &str) {
    let outcome = engine
        .handle(data_ok(rule, resource, "event-ok"), "run-2")
        .await
        .expect("handled");
    assert_eq!(outcome.decision, Verdict::Recovering, "{outcome:?}");
}

// ------------------------------------------------------------ restore-db-to-point-in-time

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_database_is_restored_into_a_new_instance_from_before_the_alarm() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let queue = deployment.subscribe_queue("operators").await;
    let stores = DataStores::new(&deployment.sdk);
    stores.database("orders-db", &[("team", "orders")], 7).await;
    let engine = data_engine(&deployment);
    let alarm_time = Utc::now().trunc_subsecs(0) - Duration::hours(1);

    let record = handle(
        &engine,
        at(
            data_alarm(DATABASE_CORRUPTION, "orders-db", "event-restore"),
            alarm_time,
        ),
    )
    .await;

    assert_eq!(record.status, HealingStatus::Completed, "{record:?}");
    assert_eq!(record.action, "restore-db-to-point-in-time");
    let target = record.details["restored_instance_id"].clone();
    assert!(target.starts_with("orders-db-restored-"), "{target}");
    assert!(target.len() <= 63, "{target}");
    let expected_time = alarm_time - Duration::minutes(5);
    assert_eq!(
        record.details["restore_time"],
        expected_time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "the alarm's time minus the rule's lookback"
    );
    let summary = record.summary.clone().expect("a summary");
    assert!(
        summary.contains(&target) && summary.contains("orders-db"),
        "{summary}"
    );
    assert!(record.details.contains_key("restored_endpoint"));

    // A new instance, tagged with where it came from; the damaged one is still there.
    assert_eq!(
        stores.instance_ids().await,
        vec!["orders-db".to_owned(), target.clone()]
    );
    let restored = stores.instance(&target).await.expect("the restored copy");
    assert_eq!(
        rds_tag(restored.tag_list(), "autoheal:restored-from"),
        Some("orders-db")
    );
    assert_eq!(
        rds_tag(restored.tag_list(), "autoheal:incident"),
        record.incident_id.as_deref()
    );
    let original = stores.instance("orders-db").await.expect("the original");
    assert_eq!(original.db_instance_status(), Some("available"));

    let stored = stored_record(&deployment).await;
    assert_eq!(stored.status, HealingStatus::Completed);
    assert_eq!(stored.details.get("restored_instance_id"), Some(&target));
    let (envelope, published) = only_notification(&deployment, &queue).await;
    assert_published(
        &envelope,
        &published,
        DATABASE_CORRUPTION,
        "orders-db",
        "completed",
    );
    assert_eq!(
        published["details"]["restored_instance_id"],
        target.as_str()
    );

    ok_is_recovering(&engine, DATABASE_CORRUPTION, "orders-db").await;
    assert_eq!(engine.healer.calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_restore_finds_the_copy_it_already_started() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let stores = DataStores::new(&deployment.sdk);
    stores.database("orders-db", &[], 7).await;
    let healer = DataHealer::new(&deployment.sdk);
    let rules = RuleSet::shipped().expect("shipped rules");
    let event = AlarmEvent::from_value(data_alarm(DATABASE_CORRUPTION, "orders-db", "event-1"))
        .expect("an alarm");
    let request = autoheal_tests::first_attempt(
        rules.get(DATABASE_CORRUPTION).expect("the rule"),
        "orders-db",
        &event,
        "autoheal-0123456789abcdef00000001",
    );

    let first = healer.heal(request).await.expect("first try");
    let second = healer.heal(request).await.expect("retry");

    let (HealOutcome::Healed { details: a, .. }, HealOutcome::Healed { details: b, .. }) =
        (first, second)
    else {
        panic!("both tries heal");
    };
    assert_eq!(a["restored_instance_id"], "orders-db-restored-01234567");
    assert_eq!(b["restored_instance_id"], a["restored_instance_id"]);
    assert_eq!(b.get("reused").map(String::as_str), Some("true"));
    assert_eq!(stores.instance_ids().await.len(), 2, "one copy, not two");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_tagged_disabled_is_not_restored() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let stores = DataStores::new(&deployment.sdk);
    stores
        .database("orders-db", &[("autoheal:disabled", "true")], 7)
        .await;
    let engine = data_engine(&deployment);

    let record = handle(
        &engine,
        data_alarm(DATABASE_CORRUPTION, "orders-db", "event-opt-out"),
    )
    .await;

    assert_eq!(record.status, HealingStatus::Skipped);
    assert_eq!(record.skip_reason, Some(SkipReason::OptedOut));
    assert_eq!(stores.instance_ids().await, vec!["orders-db".to_owned()]);
    assert_eq!(
        stored_record(&deployment).await.skip_reason,
        Some(SkipReason::OptedOut)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_without_automated_backups_is_not_restored() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let stores = DataStores::new(&deployment.sdk);
    stores.database("orders-db", &[], 0).await;
    let engine = data_engine(&deployment);

    let record = handle(
        &engine,
        data_alarm(DATABASE_CORRUPTION, "orders-db", "event-no-backups"),
    )
    .await;

    assert_eq!(record.status, HealingStatus::Skipped);
    assert_eq!(record.skip_reason, Some(SkipReason::Unsafe));
    assert!(
        record
            .summary
            .as_deref()
            .is_some_and(|s| s.contains("automated backups")),
        "{record:?}"
    );
    assert_eq!(stores.instance_ids().await, vec!["orders-db".to_owned()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restoring_a_missing_database_fails_with_the_service_message() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let queue = deployment.subscribe_queue("operators").await;
    let engine = data_engine(&deployment);

    let record = handle(
        &engine,
        data_alarm(DATABASE_CORRUPTION, "no-such-db", "event-missing"),
    )
    .await;

    assert_eq!(record.status, HealingStatus::Failed);
    let error = record.error.expect("an error");
    assert!(error.contains("DBInstanceNotFound"), "{error}");
    assert_eq!(
        stored_record(&deployment).await.status,
        HealingStatus::Failed
    );
    let (envelope, published) = only_notification(&deployment, &queue).await;
    assert_published(
        &envelope,
        &published,
        DATABASE_CORRUPTION,
        "no-such-db",
        "failed",
    );
    assert!(
        published["error"]
            .as_str()
            .is_some_and(|e| e.contains("DBInstanceNotFound"))
    );
}

// ------------------------------------------------------------ repair-cache

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_with_collapsed_hit_rate_is_handed_to_the_repair_hook() {
    let emulator = Emulator::start();
    emulator.lambda_without_docker();
    let deployment = Deployment::bootstrap(&emulator).await;
    let queue = deployment.subscribe_queue("operators").await;
    let stores = DataStores::new(&deployment.sdk);
    stores.cache_cluster("sessions-cache-001", &[]).await;
    let engine = data_engine(&deployment);

    let record = handle(
        &engine,
        data_alarm(CACHE_INVALIDATION, "sessions-cache-001", "event-cache"),
    )
    .await;

    assert_eq!(record.status, HealingStatus::Completed, "{record:?}");
    assert_eq!(record.action, "repair-cache");
    assert_eq!(record.details["hook_function"], "autoheal-cache-hook");
    // The emulator's Lambda answers with the request it received: what the hook was sent.
    let sent: Value =
        serde_json::from_str(&record.details["hook_reply"]).expect("the hook's JSON reply");
    assert_eq!(sent["action"], "repair-cache");
    assert_eq!(sent["cache_cluster_id"], "sessions-cache-001");
    assert_eq!(sent["ttl_seconds"], 300);
    assert_eq!(sent["attempt"], 1);
    assert_eq!(
        sent["incident"],
        record.incident_id.as_deref().expect("an incident")
    );

    let stored = stored_record(&deployment).await;
    assert_eq!(stored.status, HealingStatus::Completed);
    assert_eq!(
        stored.details.get("hook_function").map(String::as_str),
        Some("autoheal-cache-hook")
    );
    let (envelope, published) = only_notification(&deployment, &queue).await;
    assert_published(
        &envelope,
        &published,
        CACHE_INVALIDATION,
        "sessions-cache-001",
        "completed",
    );

    ok_is_recovering(&engine, CACHE_INVALIDATION, "sessions-cache-001").await;
    assert_eq!(engine.healer.calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_tagged_disabled_is_not_repaired() {
    let emulator = Emulator::start();
    emulator.lambda_without_docker();
    let deployment = Deployment::bootstrap(&emulator).await;
    let stores = DataStores::new(&deployment.sdk);
    stores
        .cache_cluster("sessions-cache-001", &[("autoheal:disabled", "true")])
        .await;
    let engine = data_engine(&deployment);

    let record = handle(
        &engine,
        data_alarm(CACHE_INVALIDATION, "sessions-cache-001", "event-opt-out"),
    )
    .await;

    assert_eq!(record.status, HealingStatus::Skipped);
    assert_eq!(record.skip_reason, Some(SkipReason::OptedOut));
    assert!(!record.details.contains_key("hook_function"), "no hook ran");
    assert_eq!(
        stored_record(&deployment).await.skip_reason,
        Some(SkipReason::OptedOut)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repairing_a_missing_cache_fails_with_the_service_message() {
    let emulator = Emulator::start();
    emulator.lambda_without_docker();
    let deployment = Deployment::bootstrap(&emulator).await;
    let queue = deployment.subscribe_queue("operators").await;
    let engine = data_engine(&deployment);

    let record = handle(
        &engine,
        data_alarm(CACHE_INVALIDATION, "no-such-cache", "event-missing"),
    )
    .await;

    assert_eq!(record.status, HealingStatus::Failed);
    let error = record.error.expect("an error");
    assert!(error.contains("CacheClusterNotFound"), "{error}");
    assert_eq!(
        stored_record(&deployment).await.status,
        HealingStatus::Failed
    );
    let (envelope, published) = only_notification(&deployment, &queue).await;
    assert_published(
        &envelope,
        &published,
        CACHE_INVALIDATION,
        "no-such-cache",
        "failed",
    );
}

// ------------------------------------------------------------ verify-backup

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
async fn verifying_a_missing_database_fails_with_the_service_message() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let queue = deployment.subscribe_queue("operators").await;
    let engine = data_engine(&deployment);

    let record = handle(
        &engine,
        data_alarm(BACKUP_VERIFICATION, "no-such-db", "event-missing"),
    )
    .await;

    assert_eq!(record.status, HealingStatus::Failed);
    let error = record.error.expect("an error");
    assert!(error.contains("DBInstanceNotFound"), "{error}");
    assert_eq!(
        stored_record(&deployment).await.status,
        HealingStatus::Failed
    );
    let (envelope, published) = only_notification(&deployment, &queue).await;
    assert_published(
        &envelope,
        &published,
        BACKUP_VERIFICATION,
        "no-such-db",
        "failed",
    );
}

// ------------------------------------------------------------ routing

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_of_another_layer_is_not_acted_on_by_the_data_function() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let engine = data_engine(&deployment);

    let outcome = engine
        .handle(ec2_alarm("i-0123456789abcdef0", "event-ec2"), "run-1")
        .await
        .expect("handled");

    assert_eq!(outcome.decision, Verdict::Skip);
    assert_eq!(outcome.reason, Some(SkipReason::OtherLayer));
    assert_eq!(engine.healer.calls(), 0);
}

// ------------------------------------------------------------ the integrity check after a restore

/// The corruption rule with the operator's integrity hook.
fn rules_with_integrity_hook() -> RuleSet {
    autoheal_tests::shipped_rules_with(&[(
        "# integrity_hook_function = \"autoheal-integrity-hook\"",
        "integrity_hook_function = \"autoheal-integrity-hook\"",
    )])
}

const TOKEN: &str = "autoheal-0123456789abcdef00000001";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_is_followed_until_available_then_checked_by_the_operators_integrity_hook() {
    let emulator = Emulator::start_with_shims(&["moto_rds_snapshot_progress.py"]);
    emulator.lambda_without_docker();
    let deployment = Deployment::bootstrap(&emulator).await;
    let stores = DataStores::new(&deployment.sdk);
    // RDS works on restores from this instance until the tag goes.
    stores
        .database("orders-db", &[("emulator:restore-status", "creating")], 7)
        .await;
    let healer = DataHealer::new(&deployment.sdk);
    let rules = rules_with_integrity_hook();
    let event = AlarmEvent::from_value(data_alarm(DATABASE_CORRUPTION, "orders-db", "e1"))
        .expect("an alarm");
    let request = autoheal_tests::first_attempt(
        rules.get(DATABASE_CORRUPTION).expect("the rule"),
        "orders-db",
        &event,
        TOKEN,
    );

    // 1. The restore starts; the check waits for the copy (a follow-up step, not a wait).
    let HealOutcome::Continuing {
        details,
        resume_after_seconds,
        ..
    } = healer.heal(request).await.expect("first step")
    else {
        panic!("the restore is followed in a later step");
    };
    assert_eq!(
        resume_after_seconds,
        autoheal_data::restore::RESTORE_STEP_SECONDS
    );
    let target = details["restored_instance_id"].clone();
    assert_eq!(details["restored_instance_status"], "creating");
    assert!(!details.contains_key("integrity_check"), "{details:?}");

    // 2. Still creating: the step looks and waits again, and restores nothing twice.
    assert!(matches!(
        healer.heal(request).await.expect("second step"),
        HealOutcome::Continuing { .. }
    ));
    assert_eq!(
        stores.instance_ids().await,
        vec!["orders-db".to_owned(), target.clone()]
    );

    // 3. Available: the hook gets the copy's endpoint and restore time; its verdict is kept.
    stores
        .untag_database("orders-db", "emulator:restore-status")
        .await;
    autoheal_tests::queue_lambda_replies(
        &emulator,
        &[r#"{"verdict": "consistent", "details": "42 tables, checksums match"}"#],
    );
    let HealOutcome::Healed {
        summary, details, ..
    } = healer.heal(request).await.expect("third step")
    else {
        panic!("the copy is available and checked");
    };
    assert_eq!(details["integrity_check"], "consistent");
    assert_eq!(details["integrity_details"], "42 tables, checksums match");
    assert_eq!(details["hook_function"], "autoheal-integrity-hook");
    assert!(
        summary.contains("consistent") && summary.contains(&target),
        "{summary}"
    );
    assert_eq!(
        stores.instance_ids().await,
        vec!["orders-db".to_owned(), target]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inconsistent_copy_fails_the_run_and_a_reply_without_a_verdict_never_passes() {
    let emulator = Emulator::start();
    emulator.lambda_without_docker();
    let deployment = Deployment::bootstrap(&emulator).await;
    let stores = DataStores::new(&deployment.sdk);
    stores.database("orders-db", &[], 7).await;
    let healer = DataHealer::new(&deployment.sdk);
    let rules = rules_with_integrity_hook();
    let event = AlarmEvent::from_value(data_alarm(DATABASE_CORRUPTION, "orders-db", "e1"))
        .expect("an alarm");
    let request = autoheal_tests::first_attempt(
        rules.get(DATABASE_CORRUPTION).expect("the rule"),
        "orders-db",
        &event,
        TOKEN,
    );

    autoheal_tests::queue_lambda_replies(
        &emulator,
        &[r#"{"verdict": "inconsistent", "details": "orders: 3 rows fail their foreign key"}"#],
    );
    let error = healer.heal(request).await.expect_err("inconsistent");
    assert!(
        error
            .message
            .contains("found it inconsistent: orders: 3 rows fail their foreign key"),
        "{error}"
    );
    assert!(error.message.contains("kept for a person"), "{error}");
    assert_eq!(stores.instance_ids().await.len(), 2, "the copy is kept");

    // Without a queued reply the emulator answers with the request: no verdict in it. The
    // check fails, and the message shows what the hook was sent.
    let error = healer.heal(request).await.expect_err("no verdict");
    assert!(error.message.contains("gave no verdict"), "{error}");
    for sent in [
        "verify-integrity",
        "\"restored_endpoint\"",
        "\"restore_time\"",
        "\"source_instance_id\":\"orders-db\"",
    ] {
        assert!(error.message.contains(sent), "{sent} in {error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_integrity_hook_the_record_says_the_check_was_not_run() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let stores = DataStores::new(&deployment.sdk);
    stores.database("orders-db", &[], 7).await;
    let engine = data_engine(&deployment);

    let record = handle(&engine, data_alarm(DATABASE_CORRUPTION, "orders-db", "e1")).await;

    assert_eq!(record.status, HealingStatus::Completed, "{record:?}");
    assert_eq!(record.details["integrity_check"], "not-run");
    let summary = record.summary.expect("a summary");
    assert!(
        summary.contains("the integrity check was not run"),
        "{summary}"
    );
    assert!(!summary.contains("consistent"), "{summary}");
}

// ------------------------------------------------------------ the backup policy

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_backup_of_an_instance_keeping_too_few_days_brings_its_retention_to_the_policy()
{
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let queue = deployment.subscribe_queue("operators").await;
    let stores = DataStores::new(&deployment.sdk);
    stores.database("orders-db", &[], 2).await;
    let engine = data_engine(&deployment);

    let record = handle(&engine, data_alarm(BACKUP_VERIFICATION, "orders-db", "e1")).await;

    assert_eq!(record.status, HealingStatus::Completed, "{record:?}");
    assert_eq!(record.details["previous_backup_retention_days"], "2");
    assert_eq!(record.details["backup_retention_days"], "7");
    assert_eq!(record.details["backup_settings_applied"], "immediately");
    let instance = stores.instance("orders-db").await.expect("the instance");
    assert_eq!(instance.backup_retention_period(), Some(7));
    let (_, published) = only_notification(&deployment, &queue).await;
    let summary = published["summary"].as_str().expect("a summary");
    assert!(summary.contains("backup retention 2 → 7 days"), "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_test_restore_brings_retention_and_window_to_the_policy_and_says_what_they_were() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let stores = DataStores::new(&deployment.sdk);
    stores.unrestorable_database("orders-db", 3).await;
    let before = stores.instance("orders-db").await.expect("the instance");
    let window_before = before
        .preferred_backup_window()
        .unwrap_or("none")
        .to_owned();
    let healer = DataHealer::new(&deployment.sdk);
    let rules = autoheal_tests::shipped_rules_with(&[(
        "# preferred_backup_window = \"03:00-04:00\"",
        "preferred_backup_window = \"03:00-04:00\"",
    )]);
    let event = AlarmEvent::from_value(data_alarm(BACKUP_VERIFICATION, "orders-db", "e1"))
        .expect("an alarm");
    let request = autoheal_tests::first_attempt(
        rules.get(BACKUP_VERIFICATION).expect("the rule"),
        "orders-db",
        &event,
        TOKEN,
    );

    let error = healer.heal(request).await.expect_err("the restore fails");

    assert!(
        error
            .message
            .contains("backup verification of orders-db failed"),
        "{error}"
    );
    assert!(
        error.message.contains("backup retention 3 → 7 days"),
        "{error}"
    );
    assert!(
        error
            .message
            .contains(&format!("backup window {window_before} → 03:00-04:00")),
        "{error}"
    );
    let after = stores.instance("orders-db").await.expect("the instance");
    assert_eq!(after.backup_retention_period(), Some(7));
    assert_eq!(after.preferred_backup_window(), Some("03:00-04:00"));
}
