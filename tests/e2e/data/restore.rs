//! `database-corruption-healing` (`restore-db-to-point-in-time`) and the operator's integrity
//! check of the restored copy.

use super::*;

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

// ------------------------------------------------------------ the integrity check after a restore

/// The corruption rule with the operator's integrity hook.
fn rules_with_integrity_hook() -> RuleSet {
    autoheal_tests::shipped_rules_with(&[(
        "# integrity_hook_function = \"autoheal-integrity-hook\"",
        "integrity_hook_function = \"autoheal-integrity-hook\"",
    )])
}

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
