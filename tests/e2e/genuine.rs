//! Only CloudWatch's own alarm moves autoheal. Whoever may invoke a function or put an event on
//! its bus can write an alarm event; only CloudWatch holds the alarm. Each event here reaches
//! the engine as it is (`unsent`: no alarm is put into the emulator for it), and is judged
//! against the alarm as the emulator's CloudWatch holds it: refused with nothing assessed,
//! done or written beyond that read.

use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, StateValue, Statistic};
use aws_sdk_ec2::types::InstanceStateName;
use serde_json::{Value, json};

use autoheal_core::{AlarmEvent, Layer, Settings, SkipReason, SystemClock, Verdict};
use autoheal_detection::drill::{Firing, fire};
use autoheal_tests::platform::{
    RDS_INSTANCE_STATES, rds_event, rds_instance, rds_reboots, rds_snapshots,
};
use autoheal_tests::{Deployment, Emulator, Fleet, ec2_alarm};

const SYSTEM: &str = "emulator:system-status";

fn alarm_name(event: &Value) -> String {
    event["detail"]["alarmName"]
        .as_str()
        .expect("an alarm name")
        .to_owned()
}

/// Fires `event`'s alarm in the emulator's CloudWatch as the event describes it.
async fn fired(deployment: &Deployment, event: &Value) {
    let event = AlarmEvent::from_value(event.clone()).expect("an alarm event");
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&deployment.sdk);
    fire(&cloudwatch, &event, None, Firing::AsEvent)
        .await
        .expect("alarm fired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_cloudwatch_did_not_send_change_nothing() {
    let emulator = Emulator::start_with_ec2_status_checks();
    let deployment = Deployment::bootstrap(&emulator).await;
    let fleet = Fleet::new(&deployment.sdk);
    let production = fleet.standalone(&[(SYSTEM, "impaired")]).await;
    let staging = fleet.standalone(&[(SYSTEM, "impaired")]).await;
    let engine = deployment.infrastructure(SystemClock, Settings::default());
    let refused = |outcome: &autoheal_core::Outcome, reason: SkipReason, says: &str| {
        assert_eq!(outcome.decision, Verdict::Ignore, "{outcome:?}");
        assert_eq!(outcome.reason, Some(reason), "{outcome:?}");
        assert!(
            outcome.detail.as_deref().is_some_and(|d| d.contains(says)),
            "{outcome:?}"
        );
        assert!(outcome.record.is_none(), "{outcome:?}");
    };

    // Made up, straight to the function: CloudWatch has no such alarm.
    let made_up = ec2_alarm(&production, "forged-1");
    let outcome = engine
        .unsent
        .handle(made_up.clone(), "run-1")
        .await
        .expect("handled");
    refused(&outcome, SkipReason::NotGenuine, "no alarm named");

    // The alarm exists and fires, on the staging instance; the event names production.
    let mut on_staging = ec2_alarm(&staging, "staging");
    on_staging["detail"]["alarmName"] = made_up["detail"]["alarmName"].clone();
    fired(&deployment, &on_staging).await;
    let outcome = engine
        .unsent
        .handle(ec2_alarm(&production, "forged-2"), "run-2")
        .await
        .expect("handled");
    refused(&outcome, SkipReason::NotGenuine, &staging);

    // The alarm on production, and an event with a tag it does not carry (a tag may select
    // a rule or name a resource).
    fired(&deployment, &made_up).await;
    let mut tagged = ec2_alarm(&production, "forged-3");
    tagged["detail"]["alarmTags"] = json!({"autoheal:rule": "ec2-instance-healing"});
    let outcome = engine
        .unsent
        .handle(tagged, "run-3")
        .await
        .expect("handled");
    refused(
        &outcome,
        SkipReason::NotGenuine,
        "autoheal:rule=ec2-instance-healing",
    );

    // The alarm on production, and an event from another account (a staging account's alarm of
    // the same name, say): that alarm is not this one.
    let mut elsewhere = ec2_alarm(&production, "forged-4");
    elsewhere["account"] = json!("222222222222");
    let outcome = engine
        .unsent
        .handle(elsewhere, "run-3b")
        .await
        .expect("handled");
    refused(&outcome, SkipReason::NotGenuine, "account 222222222222");

    // The alarm on production, OK now: its ALARM event is out of date.
    deployment.set_alarm(&alarm_name(&made_up), "OK").await;
    let outcome = engine
        .unsent
        .handle(ec2_alarm(&production, "late"), "run-4")
        .await
        .expect("handled");
    refused(&outcome, SkipReason::Stale, "OK");

    assert_eq!(engine.healer.assessed(), 0, "nothing assessed");
    assert_eq!(engine.healer.calls(), 0, "nothing done");
    assert_eq!(deployment.item_count().await, 0, "nothing written");
    assert!(
        deployment.follow_ups().await.is_empty(),
        "nothing scheduled"
    );
    for instance in [&production, &staging] {
        assert!(fleet.history(instance).await.is_empty());
        assert_eq!(
            fleet.instance_state(instance).await,
            Some(InstanceStateName::Running)
        );
    }

    // CloudWatch's own event for the alarm firing on production: healed.
    deployment.set_alarm(&alarm_name(&made_up), "ALARM").await;
    let outcome = engine
        .unsent
        .handle(ec2_alarm(&production, "genuine"), "run-5")
        .await
        .expect("handled");
    assert_eq!(outcome.decision, Verdict::Act, "{outcome:?}");
    assert!(!fleet.history(&production).await.is_empty());
    assert!(fleet.history(&staging).await.is_empty());
}

/// `rds-instance-healing` heals a database nobody can connect to (`[rule.alarm]`:
/// `DatabaseConnections < 1`). The usual "too many connections" alarm on the same metric fires
/// the other way: it does not select the rule, and the database is neither snapshotted nor
/// rebooted at peak load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_too_many_connections_alarm_does_not_reboot_the_database() {
    let emulator = Emulator::start_with_shims(&[RDS_INSTANCE_STATES]);
    let deployment = Deployment::bootstrap(&emulator).await;
    let rds = rds_instance(&deployment.sdk, "orders-db", false, &[]).await;
    let event = rds_event("alarm", "orders-db", "db-1");
    let name = alarm_name(&event);
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&deployment.sdk);
    cloudwatch
        .put_metric_alarm()
        .alarm_name(&name)
        .namespace("AWS/RDS")
        .metric_name("DatabaseConnections")
        .dimensions(
            Dimension::builder()
                .name("DBInstanceIdentifier")
                .value("orders-db")
                .build(),
        )
        .statistic(Statistic::Average)
        .period(60)
        .evaluation_periods(3)
        .threshold(500.0)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
        .send()
        .await
        .expect("put metric alarm");
    cloudwatch
        .set_alarm_state()
        .alarm_name(&name)
        .state_value(StateValue::Alarm)
        .state_reason("peak load")
        .send()
        .await
        .expect("set alarm state");
    let engine = deployment.layer(Layer::Platform);

    let outcome = engine.unsent.handle(event, "run-1").await.expect("handled");

    assert_eq!(outcome.rule.as_deref(), Some("rds-instance-healing"));
    assert_eq!(outcome.decision, Verdict::Ignore, "{outcome:?}");
    assert_eq!(
        outcome.reason,
        Some(SkipReason::OppositeDirection),
        "{outcome:?}"
    );
    assert!(outcome.record.is_none());
    assert_eq!(engine.healer.assessed(), 0);
    assert_eq!(deployment.item_count().await, 0, "nothing written");
    assert!(rds_snapshots(&rds, "orders-db").await.is_empty());
    assert!(rds_reboots(&rds, "orders-db").await.is_empty());
}
