//! AWS requests per event, counted at a proxy between the functions and the emulator: the
//! state costs one read and two writes for an event that acts, one read and one write for a
//! duplicate delivery, whatever the action.

use std::collections::BTreeMap;

use chrono::Utc;

use autoheal_core::{Settings, Verdict};
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

fn of_service<'a>(requests: &'a [String], service: &str) -> Vec<&'a str> {
    requests
        .iter()
        .map(String::as_str)
        .filter(|request| request.starts_with(&format!("{service}:")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acted_event_reads_the_state_once_and_writes_it_twice_and_a_duplicate_reads_once() {
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

    proxy.clear_log();
    let acted = engine
        .handle(event.clone(), "run-1")
        .await
        .expect("handled");
    assert_eq!(acted.decision, Verdict::Act, "{acted:?}");
    let requests = proxy.requests();
    eprintln!("acted event: {:#?}", tally(&requests));
    // The state, the event's claim and the budgets in one read; the claim (state, record,
    // budgets) in one transaction; the final record and the lease's release in another.
    assert_eq!(
        of_service(&requests, "dynamodb"),
        [
            "dynamodb:BatchGetItem",
            "dynamodb:TransactWriteItems",
            "dynamodb:TransactWriteItems"
        ],
        "{requests:#?}"
    );
    assert_eq!(proxy.count("ec2:RebootInstances"), 1, "{requests:#?}");
    assert_eq!(proxy.count("sns:Publish"), 1, "{requests:#?}");
    assert_eq!(
        proxy.count("scheduler:*"),
        1,
        "the follow-up: {requests:#?}"
    );

    proxy.clear_log();
    let duplicate = engine.handle(event, "run-2").await.expect("handled");
    assert_eq!(duplicate.decision, Verdict::Skip, "{duplicate:?}");
    let requests = proxy.requests();
    eprintln!("duplicate: {:#?}", tally(&requests));
    // One read finds the claim; the duplicate's own record is the one write.
    assert_eq!(
        requests,
        ["dynamodb:BatchGetItem", "dynamodb:PutItem"],
        "a duplicate touches nothing but its record"
    );
}
