//! The data layer's rules against the emulator: `restore-db-to-point-in-time` and its
//! integrity check (`restore`), `repair-cache` (`cache`), `verify-backup` (`backup`) and its
//! backup policy (`policy`), and what the healer finds before an attempt.

mod backup;
mod cache;
mod policy;
mod restore;

use chrono::{Duration, SubsecRound, Utc};
use serde_json::Value;

use autoheal_core::policy::decision::idempotency_token;
use autoheal_core::{
    AlarmEvent, Assessment, Clock, HealError, HealOutcome, HealRequest, Healer, HealingRecord,
    HealingStatus, Layer, RuleSet, Settings, SkipReason, SystemClock, Verdict, WaitReason,
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

/// The idempotency token of the attempts a test runs against the healer directly.
const TOKEN: &str = "autoheal-0123456789abcdef00000001";

/// The first attempt of `rule` on `resource`, with the shipped rules.
fn shipped_attempt<'a>(
    rules: &'a RuleSet,
    rule: &str,
    resource: &'a str,
    event: &'a AlarmEvent,
) -> HealRequest<'a> {
    autoheal_tests::first_attempt(rules.get(rule).expect("the rule"), resource, event, TOKEN)
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

// ------------------------------------------------------------ gone

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_or_cache_that_does_not_exist_is_gone_for_every_data_action() {
    let emulator = Emulator::start();
    emulator.lambda_without_docker();
    let deployment = Deployment::bootstrap(&emulator).await;
    let stores = DataStores::new(&deployment.sdk);
    stores.database("orders-db", &[], 7).await;
    stores.cache_cluster("sessions-cache-001", &[]).await;
    let healer = DataHealer::new(&deployment.sdk);
    let rules = RuleSet::shipped().expect("shipped rules");

    for (rule, missing, present) in [
        (DATABASE_CORRUPTION, "no-such-db", "orders-db"),
        (BACKUP_VERIFICATION, "no-such-db", "orders-db"),
        (CACHE_INVALIDATION, "no-such-cache", "sessions-cache-001"),
    ] {
        let event = AlarmEvent::from_value(data_alarm(rule, missing, "e1")).expect("an alarm");
        let request = shipped_attempt(&rules, rule, missing, &event);
        let Assessment::Gone { summary } = healer.assess(request).await.expect("assessed") else {
            panic!("{rule}: gone");
        };
        assert!(summary.contains(missing), "{rule}: {summary}");
        let rule_of = rules.get(rule).expect("the rule");
        assert!(
            healer.is_gone(rule_of, missing).await.expect("looked"),
            "{rule}"
        );
        assert!(
            !healer.is_gone(rule_of, present).await.expect("looked"),
            "{rule}"
        );
        let outcome = healer.heal(request).await.expect("healed");
        let HealOutcome::Skipped {
            reason: SkipReason::Gone,
            ..
        } = outcome
        else {
            panic!("{rule}: {outcome:?}");
        };
        let event = AlarmEvent::from_value(data_alarm(rule, present, "e2")).expect("an alarm");
        let request = shipped_attempt(&rules, rule, present, &event);
        assert_eq!(
            healer.assess(request).await.expect("assessed"),
            Assessment::Proceed,
            "{rule}"
        );
    }
    assert_eq!(stores.instance_ids().await, vec!["orders-db".to_owned()]);
}
