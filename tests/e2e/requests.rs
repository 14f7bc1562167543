//! AWS requests per event, counted at a proxy between the functions and the emulator. An
//! ALARM is decided first on nothing stored, which its claim's conditions check: the state
//! costs two writes for the first incident on a resource, whatever the action, and one refused
//! write for a duplicate delivery. A refused claim returns the state, so an ALARM on a
//! resource with history decides again without a read.

use std::collections::BTreeMap;

use chrono::Utc;

use autoheal_core::{AlarmEvent, Settings, SkipReason, Verdict};
use autoheal_detection::drill::{Firing, fire};
use autoheal_tests::faults::FaultProxy;
use autoheal_tests::{Deployment, Emulator, Fleet, TestClock, ec2_alarm};

/// The requests of one event, by `service:Operation`.
fn tally(requests: &[String]) -> BTreeMap<&str, usize> {
    let mut counts = BTreeMap::new();
    for request in requests {
        *counts.entry(request.as_str()).or_default() += 1;
    }
    counts
}

/// The requests that are neither the state table's nor a read (`Describe…`): what acts.
fn acting(requests: &[String]) -> Vec<&str> {
    requests
        .iter()
        .filter(|request| !request.starts_with("dynamodb:"))
        .filter(|request| {
            let operation = request.split(':').nth(1).unwrap_or_default();
            !operation.starts_with("Describe")
        })
        .map(String::as_str)
        .collect()
}

fn of_service<'a>(requests: &'a [String], service: &str) -> Vec<&'a str> {
    requests
        .iter()
        .map(String::as_str)
        .filter(|request| request.starts_with(&format!("{service}:")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acted_event_writes_the_state_twice_without_reading_it_and_a_duplicate_writes_nothing() {
    let emulator = Emulator::start_with_ec2_status_checks();
    let direct = Deployment::bootstrap(&emulator).await;
    let proxy = FaultProxy::start(&emulator.url()).await;
    let deployment = Deployment {
        sdk: proxy.sdk().await,
        ..direct.clone()
    };
    let fleet = Fleet::new(&direct.sdk);
    let instance = fleet
        .standalone(&[("emulator:instance-status", "impaired")])
        .await;
    let engine = deployment.infrastructure(TestClock::at(Utc::now()), Settings::default());
    let event = ec2_alarm(&instance, "event-1");
    // The alarm fires (outside the proxy): the engine then reads it once per event.
    let alarm = AlarmEvent::from_value(event.clone()).expect("an alarm event");
    fire(
        &aws_sdk_cloudwatch::Client::new(&direct.sdk),
        &alarm,
        None,
        Firing::AsEvent,
    )
    .await
    .expect("alarm fired");

    proxy.clear_log();
    let acted = engine
        .unsent
        .handle(event.clone(), "run-1")
        .await
        .expect("handled");
    assert_eq!(acted.decision, Verdict::Act, "{acted:?}");
    let requests = proxy.requests();
    eprintln!("acted event: {:#?}", tally(&requests));
    // The claim (event, state, record, budgets) in one transaction, conditioned on nothing
    // being stored; the final record and the lease's release in another.
    assert_eq!(
        of_service(&requests, "dynamodb"),
        ["dynamodb:TransactWriteItems", "dynamodb:TransactWriteItems"],
        "{requests:#?}"
    );
    assert_eq!(proxy.count("ec2:RebootInstances"), 1, "{requests:#?}");
    assert_eq!(
        proxy.count("monitoring:DescribeAlarms"),
        1,
        "the event judged against its alarm, once: {requests:#?}"
    );
    assert_eq!(proxy.count("sns:Publish"), 1, "{requests:#?}");
    assert_eq!(
        proxy.count("ec2:DescribeInstanceTypes"),
        1,
        "the instance type, described once for the look and the action: {requests:#?}"
    );
    assert_eq!(
        proxy.count("scheduler:*"),
        1,
        "the follow-up: {requests:#?}"
    );
    let scheduled: Vec<String> = of_service(&requests, "scheduler")
        .into_iter()
        .map(str::to_owned)
        .collect();

    proxy.clear_log();
    let duplicate = engine.unsent.handle(event, "run-2").await.expect("handled");
    assert_eq!(duplicate.decision, Verdict::Ignore, "{duplicate:?}");
    assert_eq!(
        duplicate.reason,
        Some(SkipReason::Duplicate),
        "{duplicate:?}"
    );
    let requests = proxy.requests();
    eprintln!("duplicate: {:#?}", tally(&requests));
    // The claim is refused, and returns the state and the event's claim. What comes before
    // the claim is read again — the healer's look at the instance and the group guard's read,
    // as the claim takes the group's slot — and a redelivery changes nothing.
    assert_eq!(
        of_service(&requests, "dynamodb"),
        ["dynamodb:TransactWriteItems"],
        "a duplicate writes nothing: {requests:#?}"
    );
    // Its check is scheduled again before the refused claim: the first delivery's schedule,
    // by name, which stands.
    assert_eq!(
        acting(&requests),
        scheduled,
        "a duplicate acts on nothing: {requests:#?}"
    );
    assert_eq!(
        proxy.count("ec2:DescribeInstanceTypes"),
        0,
        "a type's description does not change: the container asks for it once: {requests:#?}"
    );

    // Another alarm within the cooldown: the refused claim returns the state, on which the
    // run decides its skip without a read; the skip's record is the one write.
    proxy.clear_log();
    let skipped = engine
        .unsent
        .handle(ec2_alarm(&instance, "event-2"), "run-3")
        .await
        .expect("handled");
    assert_eq!(skipped.decision, Verdict::Skip, "{skipped:?}");
    assert_eq!(skipped.reason, Some(SkipReason::Cooldown), "{skipped:?}");
    let requests = proxy.requests();
    assert_eq!(
        of_service(&requests, "dynamodb"),
        ["dynamodb:TransactWriteItems", "dynamodb:PutItem"],
        "no state read: {requests:#?}"
    );
    // The presumed attempt's check, scheduled before its refused claim (it finds no incident
    // of its own when it fires), and no action.
    assert_eq!(
        acting(&requests)
            .iter()
            .filter(|request| !request.starts_with("scheduler:"))
            .count(),
        0,
        "no action: {requests:#?}"
    );
    assert_eq!(proxy.count("scheduler:*"), 1, "{requests:#?}");
    assert_eq!(proxy.count("ec2:RebootInstances"), 0);
}
