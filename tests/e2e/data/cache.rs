//! `cache-invalidation-healing` (`repair-cache`): the operator's repair hook.

use super::*;

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
