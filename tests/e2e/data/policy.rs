//! The backup policy of `verify-backup`: retention and window brought to the rule's policy,
//! never applying the instance's pending modifications.

use super::*;

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
    assert_eq!(
        record.details["backup_settings_applied"],
        "as-soon-as-possible"
    );
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backup_policy_never_applies_a_pending_instance_class_change() {
    let emulator = Emulator::start_with_shims(&["moto_rds_pending_modifications.py"]);
    let deployment = Deployment::bootstrap(&emulator).await;
    let queue = deployment.subscribe_queue("operators").await;
    let stores = DataStores::new(&deployment.sdk);
    stores.database("orders-db", &[], 2).await;
    let class = stores
        .instance("orders-db")
        .await
        .expect("the instance")
        .db_instance_class()
        .map(str::to_owned);
    // A person queued a bigger class for the maintenance window.
    stores
        .rds
        .modify_db_instance()
        .db_instance_identifier("orders-db")
        .db_instance_class("db.r6g.large")
        .apply_immediately(false)
        .send()
        .await
        .expect("queue a class change");
    let engine = data_engine(&deployment);

    let record = handle(&engine, data_alarm(BACKUP_VERIFICATION, "orders-db", "e1")).await;

    assert_eq!(record.status, HealingStatus::Completed, "{record:?}");
    let instance = stores.instance("orders-db").await.expect("the instance");
    // The retention changed at once, the class did not: it still waits for the window.
    assert_eq!(instance.backup_retention_period(), Some(7));
    assert_eq!(instance.db_instance_class().map(str::to_owned), class);
    assert_eq!(
        instance
            .pending_modified_values()
            .and_then(|pending| pending.db_instance_class()),
        Some("db.r6g.large")
    );
    assert_eq!(
        record.details["backup_settings_applied"],
        "as-soon-as-possible"
    );
    assert_eq!(
        record.details["pending_modifications_left"],
        "DBInstanceClass db.r6g.large"
    );
    let (_, published) = only_notification(&deployment, &queue).await;
    let summary = published["summary"].as_str().expect("a summary");
    assert!(
        summary.contains(
            "its pending modifications (DBInstanceClass db.r6g.large) stay for its maintenance window"
        ),
        "{summary}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turning_automated_backups_on_waits_for_the_maintenance_window() {
    let emulator = Emulator::start_with_shims(&["moto_rds_pending_modifications.py"]);
    let deployment = Deployment::bootstrap(&emulator).await;
    let stores = DataStores::new(&deployment.sdk);
    stores.unrestorable_database("orders-db", 0).await;
    let healer = DataHealer::new(&deployment.sdk);
    let rules = RuleSet::shipped().expect("shipped rules");
    let event = AlarmEvent::from_value(data_alarm(BACKUP_VERIFICATION, "orders-db", "e1"))
        .expect("an alarm");
    let request = shipped_attempt(&rules, BACKUP_VERIFICATION, "orders-db", &event);

    let error = healer.heal(request).await.expect_err("the restore fails");

    assert!(error.message.contains("next maintenance window"), "{error}");
    let instance = stores.instance("orders-db").await.expect("the instance");
    assert_eq!(instance.backup_retention_period(), Some(0), "not yet");
    assert_eq!(
        instance
            .pending_modified_values()
            .and_then(|pending| pending.backup_retention_period()),
        Some(7),
        "queued for the window"
    );
}
