//! `connection-pool-healing`: the pool grows within its database's cap, a person's change
//! wins, and the growth goes back when the incident resolves.

use autoheal_application::ApplicationHealer;
use autoheal_core::{HealOutcome, Healer, HealingStatus, Revert, SkipReason, Verdict};
use autoheal_tests::application::{
    AppParameters, application_alarm, application_ok, person_writes,
};
use autoheal_tests::{Deployment, Emulator};
use serde_json::json;

use super::{
    Alarmed, POOL, application, handle, notified, skipped, stored_record,
    with_a_person_writing_meanwhile,
};

/// The revert a heal asks for, or a panic naming what it did instead.
fn growth_revert(outcome: &HealOutcome) -> Revert {
    match outcome {
        HealOutcome::Healed { reverts, .. } => {
            assert_eq!(reverts.len(), 1, "{reverts:?}");
            reverts[0].clone()
        }
        other => panic!("expected a growth: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_connection_pool_is_grown_and_reset_then_put_back_when_the_alarm_clears() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let parameters = AppParameters::new(&deployment.sdk);
    let name = "/autoheal/payments-api/connection-pool";
    parameters
        .create(
            name,
            &json!({"max_connections": 50, "timeout_seconds": 5, "generation": 3, "pool": "primary"}),
            &[],
        )
        .await;
    let (engine, queue) = application(&deployment).await;

    let (outcome, record) = handle(&engine, application_alarm(POOL, "payments-api", "e1")).await;

    assert_eq!(outcome.decision, Verdict::Act);
    assert_eq!(record.status, HealingStatus::Completed, "{record:?}");
    let (value, version) = parameters.read(name).await;
    assert_eq!(value["max_connections"], 60);
    assert_eq!(value["timeout_seconds"], 30);
    assert_eq!(value["generation"], 4);
    assert_eq!(value["pool"], "primary", "unknown fields are kept");
    assert_eq!(value["changed_by"], "autoheal");
    assert_eq!(
        value["autoheal_growth"],
        json!({"incident": record.incident_id.clone().expect("an incident"), "added": 10,
               "max_connections_before": 50, "timeout_seconds_before": 5, "version": 2}),
        "what autoheal added, for whoever reads the parameter"
    );
    assert_eq!(version, 2);
    for (key, expected) in [
        ("parameter", name),
        ("old_max_connections", "50"),
        ("new_max_connections", "60"),
        ("generation", "4"),
        ("parameter_version", "2"),
        ("database", name),
        ("added_connections", "10"),
    ] {
        assert_eq!(record.details.get(key).map(String::as_str), Some(expected));
    }
    stored_record(&deployment, &record).await;
    let (envelope, notified) = notified(&deployment, &queue).await;
    assert_eq!(
        envelope["MessageAttributes"]["status"]["Value"],
        "completed"
    );
    assert_eq!(envelope["MessageAttributes"]["rule"]["Value"], POOL);
    assert_eq!(notified["details"]["new_max_connections"], "60");

    // The alarm clears: the size and timeout from before come back, the reset stays.
    let back = engine
        .handle(application_ok(POOL, "payments-api", "e-ok"), "run-ok")
        .await
        .expect("handled");
    assert_eq!(back.decision, Verdict::Revert, "{back:?}");
    let revert = back.record.expect("a revert record");
    assert_eq!(revert.status, HealingStatus::Completed, "{revert:?}");
    assert_eq!(revert.details["restored_max_connections"], "50");
    let (value, version) = parameters.read(name).await;
    assert_eq!(version, 3);
    assert_eq!(value["max_connections"], 50);
    assert_eq!(value["timeout_seconds"], 5);
    assert_eq!(value["generation"], 4, "no second reset of the connections");
    assert_eq!(value["pool"], "primary");
    assert!(value.get("autoheal_growth").is_none(), "{value}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_pool_grows_to_its_limit_and_no_further() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let parameters = AppParameters::new(&deployment.sdk);
    let near = "/autoheal/near-api/connection-pool";
    let full = "/autoheal/full-api/connection-pool";
    parameters
        .create(near, &json!({"max_connections": 995, "generation": 1}), &[])
        .await;
    parameters
        .create(
            full,
            &json!({"max_connections": 1000, "generation": 1}),
            &[],
        )
        .await;
    let (engine, _queue) = application(&deployment).await;

    let (_, near_run) = handle(&engine, application_alarm(POOL, "near-api", "e1")).await;
    let (_, full_run) = handle(&engine, application_alarm(POOL, "full-api", "e2")).await;

    assert_eq!(near_run.status, HealingStatus::Completed, "{near_run:?}");
    assert_eq!(parameters.read(near).await.0["max_connections"], 1000);
    assert_eq!(full_run.status, HealingStatus::Skipped);
    assert_eq!(full_run.skip_reason, Some(SkipReason::Unsafe));
    assert_eq!(
        parameters.read(full).await,
        (json!({"max_connections": 1000, "generation": 1}), 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_attempt_does_not_grow_the_pool_twice() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let parameters = AppParameters::new(&deployment.sdk);
    let name = "/autoheal/payments-api/connection-pool";
    parameters
        .create(name, &json!({"max_connections": 50, "generation": 0}), &[])
        .await;
    let alarm = Alarmed::new(POOL, "payments-api");
    let request = alarm.attempt(1, "autoheal-00000000000000aa00000001");
    let healer = ApplicationHealer::new(&deployment.sdk);

    let first = healer.heal(request).await.expect("first");
    let again = healer.heal(request).await.expect("again");

    assert!(matches!(first, HealOutcome::Healed { .. }), "{first:?}");
    assert!(
        matches!(
            again,
            HealOutcome::Skipped {
                reason: SkipReason::NotNeeded,
                ..
            }
        ),
        "{again:?}"
    );
    let (value, version) = parameters.read(name).await;
    assert_eq!((value["max_connections"].clone(), version), (json!(60), 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_pool_parameter_tagged_disabled_is_left_alone() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let parameters = AppParameters::new(&deployment.sdk);
    let name = "/autoheal/payments-api/connection-pool";
    let value = json!({"max_connections": 50, "generation": 3});
    parameters
        .create(name, &value, &[("autoheal:disabled", "TRUE")])
        .await;
    let (engine, queue) = application(&deployment).await;

    let (_, record) = handle(&engine, application_alarm(POOL, "payments-api", "e1")).await;

    assert_eq!(record.skip_reason, Some(SkipReason::OptedOut));
    assert_eq!(parameters.read(name).await, (value, 1));
    stored_record(&deployment, &record).await;
    notified(&deployment, &queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_connection_pool_parameter_fails_with_the_service_message() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let (engine, queue) = application(&deployment).await;

    let (_, record) = handle(&engine, application_alarm(POOL, "payments-api", "e1")).await;

    assert_eq!(record.status, HealingStatus::Failed);
    let error = record.error.clone().expect("an error");
    assert!(error.contains("ParameterNotFound"), "{error}");
    stored_record(&deployment, &record).await;
    let (envelope, _) = notified(&deployment, &queue).await;
    assert_eq!(envelope["MessageAttributes"]["status"]["Value"], "failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_id_that_could_name_another_parameter_is_refused() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let parameters = AppParameters::new(&deployment.sdk);
    let other = "/autoheal/a/b/connection-pool";
    let value = json!({"max_connections": 50});
    parameters.create(other, &value, &[]).await;
    let (engine, _queue) = application(&deployment).await;

    let outcome = engine
        .handle(application_alarm(POOL, "a/b", "e1"), "run-1")
        .await
        .expect("handled");

    // Refused before the healer runs: the id is not a service name.
    assert_eq!(outcome.decision, Verdict::Skip, "{outcome:?}");
    assert_eq!(
        outcome.reason,
        Some(SkipReason::InvalidResourceId),
        "{outcome:?}"
    );
    assert!(outcome.record.is_none(), "{outcome:?}");
    assert_eq!(engine.healer.calls(), 0);
    assert_eq!(parameters.read(other).await, (value, 1));
}

const PAYMENTS_POOL: &str = "/autoheal/payments-api/connection-pool";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_attempts_grow_from_the_same_baseline_and_the_newest_revert_puts_it_back() {
    let emulator = Emulator::start();
    let sdk = emulator.sdk().await;
    let parameters = AppParameters::new(&sdk);
    parameters
        .create(
            PAYMENTS_POOL,
            &json!({"max_connections": 50, "timeout_seconds": 5, "generation": 0}),
            &[],
        )
        .await;
    let healer = ApplicationHealer::new(&sdk);
    let alarm = Alarmed::new(POOL, "payments-api");
    let (first, second) = (
        alarm.attempt(1, "autoheal-00000000000000aa00000001"),
        alarm.attempt(2, "autoheal-00000000000000aa00000002"),
    );

    let grown_once = healer.heal(first).await.expect("first attempt");
    let grown_twice = healer.heal(second).await.expect("second attempt");

    let (value, version) = parameters.read(PAYMENTS_POOL).await;
    assert_eq!((value["max_connections"].clone(), version), (json!(70), 3));
    assert_eq!(value["autoheal_growth"]["added"], 20);
    assert_eq!(value["autoheal_growth"]["max_connections_before"], 50);
    // The engine puts changes back newest first: the second attempt's revert restores the
    // baseline both grew from; the first's then finds nothing left to do.
    let restored = healer
        .revert(second, &growth_revert(&grown_twice))
        .await
        .expect("the newest revert");
    assert!(
        matches!(&restored, HealOutcome::Healed { summary, .. } if summary.contains("70 → 50")),
        "{restored:?}"
    );
    let (reason, summary) = skipped(
        healer
            .revert(first, &growth_revert(&grown_once))
            .await
            .expect("the older revert"),
    );
    assert_eq!(reason, SkipReason::NotNeeded);
    assert!(summary.contains("already back"), "{summary}");
    let (value, version) = parameters.read(PAYMENTS_POOL).await;
    assert_eq!(version, 4);
    assert_eq!(value["max_connections"], 50);
    assert_eq!(value["timeout_seconds"], 5);
    assert_eq!(value["generation"], 2);
    assert!(value.get("autoheal_growth").is_none(), "{value}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pools_of_one_database_share_a_cap_on_what_autoheal_adds() {
    let emulator = Emulator::start();
    let sdk = emulator.sdk().await;
    let parameters = AppParameters::new(&sdk);
    let pool = |service: &str| format!("/autoheal/{service}/connection-pool");
    parameters
        .create(
            &pool("orders-api"),
            &json!({"max_connections": 100, "database": "orders-db"}),
            &[],
        )
        .await;
    let billing = json!({"max_connections": 80, "database": "orders-db"});
    parameters.create(&pool("billing-api"), &billing, &[]).await;
    parameters
        .create(
            &pool("search-api"),
            &json!({"max_connections": 30, "database": "search-db"}),
            &[],
        )
        .await;
    // Another application's parameter under the same path is not a pool.
    parameters
        .create(
            "/autoheal/orders-api/circuit-breaker",
            &json!({"state": "closed", "database": "orders-db"}),
            &[],
        )
        .await;
    let healer = ApplicationHealer::new(&sdk);
    let orders = Alarmed::new(POOL, "orders-api");
    let tokens: Vec<String> = (1..=5)
        .map(|n| format!("autoheal-00000000000000cc0000000{n}"))
        .collect();

    // The orders pool grows by 10 four times: the database's cap of 40 is reached.
    for (n, token) in tokens.iter().take(4).enumerate() {
        let attempt = u32::try_from(n + 1).expect("small");
        let grown = healer
            .heal(orders.attempt(attempt, token))
            .await
            .expect("grown");
        assert!(matches!(grown, HealOutcome::Healed { .. }), "{grown:?}");
    }
    let (reason, summary) = skipped(
        healer
            .heal(orders.attempt(5, &tokens[4]))
            .await
            .expect("a fifth attempt"),
    );
    assert_eq!(reason, SkipReason::Unsafe);
    assert!(
        summary.contains("40") && summary.contains("orders-db"),
        "{summary}"
    );
    assert_eq!(
        parameters.read(&pool("orders-api")).await.0["max_connections"],
        140
    );

    // The billing pool shares that database: nothing left for it. The search pool does not.
    let billing_alarm = Alarmed::new(POOL, "billing-api");
    let (reason, summary) = skipped(
        healer
            .heal(billing_alarm.attempt(1, "autoheal-00000000000000dd00000001"))
            .await
            .expect("billing"),
    );
    assert_eq!(reason, SkipReason::Unsafe);
    assert!(
        summary.contains("/autoheal/orders-api/connection-pool: 40"),
        "{summary}"
    );
    assert_eq!(parameters.read(&pool("billing-api")).await, (billing, 1));
    let search = Alarmed::new(POOL, "search-api");
    let grown = healer
        .heal(search.attempt(1, "autoheal-00000000000000ee00000001"))
        .await
        .expect("search");
    assert!(matches!(grown, HealOutcome::Healed { .. }), "{grown:?}");
    assert_eq!(
        parameters.read(&pool("search-api")).await.0["max_connections"],
        40
    );

    // A person takes the orders pool over: its size is theirs, no longer autoheal's growth,
    // and the billing pool may grow again.
    let (mut taken_over, _) = parameters.read(&pool("orders-api")).await;
    taken_over["max_connections"] = json!(120);
    taken_over["changed_by"] = json!("alice");
    person_writes(&parameters.ssm, &pool("orders-api"), &taken_over).await;
    let grown = healer
        .heal(billing_alarm.attempt(1, "autoheal-00000000000000dd00000002"))
        .await
        .expect("billing again");
    assert!(matches!(grown, HealOutcome::Healed { .. }), "{grown:?}");
    assert_eq!(
        parameters.read(&pool("billing-api")).await.0["max_connections"],
        90
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_writing_the_pool_while_autoheal_grows_it_wins() {
    let emulator = Emulator::start();
    let parameters = AppParameters::new(&emulator.sdk().await);
    parameters
        .create(PAYMENTS_POOL, &json!({"max_connections": 50}), &[])
        .await;
    let alarm = Alarmed::new(POOL, "payments-api");
    let theirs = json!({"max_connections": 45, "changed_by": "bob"});

    let outcome =
        with_a_person_writing_meanwhile(&emulator, PAYMENTS_POOL, &theirs, |healer| async move {
            healer
                .heal(alarm.attempt(1, "autoheal-00000000000000aa00000001"))
                .await
        })
        .await;

    let (reason, summary) = skipped(outcome.expect("no error"));
    assert_eq!(reason, SkipReason::Unsafe);
    assert!(
        summary.contains("changed by someone else (version 2)"),
        "{summary}"
    );
    assert_eq!(parameters.read(PAYMENTS_POOL).await, (theirs, 4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_writing_the_pool_while_autoheal_puts_it_back_wins() {
    let emulator = Emulator::start();
    let sdk = emulator.sdk().await;
    let parameters = AppParameters::new(&sdk);
    parameters
        .create(PAYMENTS_POOL, &json!({"max_connections": 50}), &[])
        .await;
    let alarm = Alarmed::new(POOL, "payments-api");
    let request = alarm.attempt(1, "autoheal-00000000000000aa00000001");
    let grown = ApplicationHealer::new(&sdk)
        .heal(request)
        .await
        .expect("grown");
    let revert = growth_revert(&grown);
    let theirs = json!({"max_connections": 65, "changed_by": "bob"});

    let outcome = with_a_person_writing_meanwhile(&emulator, PAYMENTS_POOL, &theirs, |healer| {
        let revert = revert.clone();
        async move { healer.revert(request, &revert).await }
    })
    .await;

    let (reason, summary) = skipped(outcome.expect("no error"));
    assert_eq!(reason, SkipReason::Unsafe);
    assert!(summary.contains("their setting stays"), "{summary}");
    assert_eq!(parameters.read(PAYMENTS_POOL).await, (theirs, 5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_a_person_resized_during_the_incident_stays_when_the_alarm_clears() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let parameters = AppParameters::new(&deployment.sdk);
    parameters
        .create(PAYMENTS_POOL, &json!({"max_connections": 50}), &[])
        .await;
    let (engine, _queue) = application(&deployment).await;
    let (_, grown) = handle(&engine, application_alarm(POOL, "payments-api", "e1")).await;
    assert_eq!(grown.status, HealingStatus::Completed, "{grown:?}");
    let theirs = json!({"max_connections": 75, "changed_by": "alice"});
    person_writes(&parameters.ssm, PAYMENTS_POOL, &theirs).await;

    let back = engine
        .handle(application_ok(POOL, "payments-api", "e-ok"), "run-ok")
        .await
        .expect("handled");

    assert_eq!(back.decision, Verdict::Revert, "{back:?}");
    let summary = back.record.expect("a record").summary.expect("a summary");
    assert!(summary.contains("stays as they set it"), "{summary}");
    assert_eq!(parameters.read(PAYMENTS_POOL).await, (theirs, 3));
}
