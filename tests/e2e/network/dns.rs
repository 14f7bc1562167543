//! `dns-failover-healing`: weights move only over records as read, and come back only over
//! records as autoheal left them.

use std::time::Duration;

use aws_sdk_route53::types::ResourceRecordSetFailover;
use chrono::Utc;

use autoheal_core::{
    Assessment, HealOutcome, Healer, HealingStatus, Layer, Settings, SkipReason, Verdict,
};
use autoheal_network::NetworkHealer;
use autoheal_tests::faults::{Fault, FaultProxy};
use autoheal_tests::network::{DNS_SHIMS, DnsFixture, dns_alarm, dns_ok, failover, weighted};
use autoheal_tests::{Deployment, Emulator, TestClock};

use super::{Alarmed, network, single_notice, skipped, stored_record};

const RULE: &str = "dns-failover-healing";

/// An emulator whose health checks can fail and whose change batches are checked against the
/// records as they are.
fn emulator() -> Emulator {
    Emulator::start_with_shims(&DNS_SHIMS)
}

/// Runs `act` with a healer whose first listing of record sets is answered 2 s late, and a
/// person's UPSERT of `theirs` half a second in: a change between autoheal's read and its
/// write.
async fn with_a_person_changing_the_record<F, Fut>(
    emulator: &Emulator,
    dns: &DnsFixture,
    theirs: aws_sdk_route53::types::ResourceRecordSet,
    act: F,
) -> Result<HealOutcome, autoheal_core::HealError>
where
    F: FnOnce(NetworkHealer) -> Fut,
    Fut: std::future::Future<Output = Result<HealOutcome, autoheal_core::HealError>>,
{
    let proxy = FaultProxy::start(&emulator.url()).await;
    // ListResourceRecordSets is `GET /2013-04-01/hostedzone/<zone>/rrset`.
    proxy.inject(
        "route53:GET /2013-04-01/hostedzone/*",
        Fault::Slow(Duration::from_secs(2)),
        Some(1),
    );
    let healer = NetworkHealer::new(&proxy.sdk().await);
    let (outcome, ()) = tokio::join!(act(healer), async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        dns.records_upsert(vec![theirs]).await;
    });
    outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_failing_weighted_record_is_set_to_weight_zero_and_the_healthy_one_keeps_its_weight() {
    let emulator = emulator();
    let deployment = Deployment::bootstrap(&emulator).await;
    let queue = deployment.subscribe_queue("operators").await;
    let dns = DnsFixture::create(&deployment.sdk).await;
    let blue = dns.health_check("192.0.2.10", &[("team", "api")]).await;
    let green = dns.health_check("192.0.2.20", &[]).await;
    dns.set_health(&blue, "Failure").await;
    dns.records(vec![
        weighted("blue", "192.0.2.10", 70, &blue),
        weighted("green", "192.0.2.20", 30, &green),
    ])
    .await;
    let engine = network(&deployment);

    let outcome = engine
        .handle(dns_alarm(&blue, "dns-alarm"), "run-1")
        .await
        .expect("handled");

    let record = outcome.record.expect("a record");
    assert_eq!(record.status, HealingStatus::Completed, "{record:?}");
    let shifted = dns.record("blue").await;
    assert_eq!(
        shifted.weight(),
        Some(0),
        "the failing endpoint gets no traffic"
    );
    assert_eq!(shifted.health_check_id(), Some(blue.as_str()));
    assert_eq!(shifted.ttl(), Some(60));
    assert_eq!(
        shifted.resource_records().first().map(|r| r.value()),
        Some("192.0.2.10"),
        "everything but the weight is unchanged"
    );
    assert_eq!(dns.record("green").await.weight(), Some(30));
    let stored = stored_record(&deployment).await;
    assert_eq!(stored.status, HealingStatus::Completed);
    assert_eq!(stored.details.get("hosted_zone_id"), Some(&dns.zone_id));
    assert_eq!(
        stored.details.get("record_name").map(String::as_str),
        Some("api.example.com.")
    );
    assert_eq!(
        stored.details.get("set_identifier").map(String::as_str),
        Some("blue")
    );
    assert_eq!(
        stored.details.get("previous_weight").map(String::as_str),
        Some("70")
    );
    let notice = single_notice(&deployment, &queue, "dns-failover-healing", "completed").await;
    assert_eq!(notice["resource_id"], blue.as_str());
    assert_eq!(notice["details"]["previous_weight"], "70");

    // OK arrives while Route 53 still finds blue failing: the weight stays 0, the revert waits.
    let early = engine
        .handle(dns_ok(&blue, "dns-ok-early"), "run-2")
        .await
        .expect("handled");
    assert_eq!(early.decision, Verdict::Revert, "{early:?}");
    let early = early.record.expect("a revert record");
    assert_eq!(early.status, HealingStatus::Failed, "{early:?}");
    assert!(
        early
            .error
            .as_deref()
            .is_some_and(|e| e.contains("does not pass yet")),
        "{early:?}"
    );
    assert_eq!(dns.record("blue").await.weight(), Some(0));

    // Blue passes again, the alarm flaps back to OK: the previous weight comes back.
    dns.set_health(&blue, "Success").await;
    let ok = engine
        .handle(dns_ok(&blue, "dns-ok"), "run-3")
        .await
        .expect("handled");
    assert_eq!(ok.decision, Verdict::Revert, "{ok:?}");
    let restored = ok.record.expect("a revert record");
    assert_eq!(restored.status, HealingStatus::Completed, "{restored:?}");
    assert_eq!(restored.details["restored_weight"], "70");
    assert_eq!(dns.record("blue").await.weight(), Some(70));
    assert_eq!(dns.record("green").await.weight(), Some(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_traffic_never_shifts_to_an_unhealthy_alternative_and_a_weight_changed_since_is_kept() {
    let emulator = emulator();
    let deployment = Deployment::bootstrap(&emulator).await;
    let dns = DnsFixture::create(&deployment.sdk).await;
    let blue = dns.health_check("192.0.2.10", &[]).await;
    let green = dns.health_check("192.0.2.20", &[]).await;
    dns.set_health(&blue, "Failure").await;
    dns.set_health(&green, "Failure").await;
    dns.records(vec![
        weighted("blue", "192.0.2.10", 70, &blue),
        weighted("green", "192.0.2.20", 30, &green),
    ])
    .await;
    let clock = TestClock::at(Utc::now());
    let engine = deployment.engine(
        Layer::Network,
        NetworkHealer::new(&deployment.sdk),
        clock.clone(),
        Settings::default(),
    );

    let both_failing = engine
        .handle(dns_alarm(&blue, "dns-both"), "run-1")
        .await
        .expect("handled")
        .record
        .expect("a record");
    assert_eq!(
        both_failing.skip_reason,
        Some(SkipReason::Unsafe),
        "{both_failing:?}"
    );
    assert_eq!(dns.record("blue").await.weight(), Some(70));

    // Green recovers: the next attempt moves blue's traffic to it. Then a person sets blue's
    // weight by hand.
    dns.set_health(&green, "Success").await;
    clock.advance(7200);
    let shifted = engine
        .handle(dns_alarm(&blue, "dns-green-back"), "run-2")
        .await
        .expect("handled")
        .record
        .expect("a record");
    assert_eq!(shifted.status, HealingStatus::Completed, "{shifted:?}");
    dns.records_upsert(vec![weighted("blue", "192.0.2.10", 10, &blue)])
        .await;
    dns.set_health(&blue, "Success").await;
    let ok = engine
        .handle(dns_ok(&blue, "dns-ok"), "run-3")
        .await
        .expect("handled");
    let kept = ok.record.expect("a revert record");
    assert_eq!(kept.status, HealingStatus::Completed, "{kept:?}");
    assert!(
        kept.summary
            .as_deref()
            .is_some_and(|s| s.contains("changed since")),
        "{kept:?}"
    );
    assert_eq!(
        dns.record("blue").await.weight(),
        Some(10),
        "the person's weight stays"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_the_only_weighted_record_with_traffic_is_left_alone() {
    let emulator = emulator();
    let deployment = Deployment::bootstrap(&emulator).await;
    let dns = DnsFixture::create(&deployment.sdk).await;
    let blue = dns.health_check("192.0.2.10", &[]).await;
    let green = dns.health_check("192.0.2.20", &[]).await;
    dns.set_health(&blue, "Failure").await;
    dns.records(vec![
        weighted("blue", "192.0.2.10", 100, &blue),
        weighted("green", "192.0.2.20", 0, &green),
    ])
    .await;
    let engine = network(&deployment);

    let record = engine
        .handle(dns_alarm(&blue, "dns-only"), "run-1")
        .await
        .expect("handled")
        .record
        .expect("a record");

    assert_eq!(record.status, HealingStatus::Skipped);
    assert_eq!(record.skip_reason, Some(SkipReason::Unsafe), "{record:?}");
    assert_eq!(dns.record("blue").await.weight(), Some(100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_failover_primary_is_left_to_route53() {
    let emulator = emulator();
    let deployment = Deployment::bootstrap(&emulator).await;
    let dns = DnsFixture::create(&deployment.sdk).await;
    let primary = dns.health_check("192.0.2.10", &[]).await;
    dns.set_health(&primary, "Failure").await;
    dns.records(vec![
        failover(
            "primary",
            "192.0.2.10",
            ResourceRecordSetFailover::Primary,
            Some(&primary),
        ),
        failover(
            "secondary",
            "192.0.2.20",
            ResourceRecordSetFailover::Secondary,
            None,
        ),
    ])
    .await;
    let engine = network(&deployment);

    let record = engine
        .handle(dns_alarm(&primary, "dns-failover"), "run-1")
        .await
        .expect("handled")
        .record
        .expect("a record");

    assert_eq!(record.status, HealingStatus::Skipped);
    assert_eq!(
        record.skip_reason,
        Some(SkipReason::NotNeeded),
        "{record:?}"
    );
    let summary = record.summary.expect("a summary");
    assert!(summary.contains("secondary"), "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_health_check_tagged_disabled_is_left_alone() {
    let emulator = emulator();
    let deployment = Deployment::bootstrap(&emulator).await;
    let dns = DnsFixture::create(&deployment.sdk).await;
    let blue = dns
        .health_check("192.0.2.10", &[("autoheal:disabled", "true")])
        .await;
    let green = dns.health_check("192.0.2.20", &[]).await;
    dns.records(vec![
        weighted("blue", "192.0.2.10", 70, &blue),
        weighted("green", "192.0.2.20", 30, &green),
    ])
    .await;
    let engine = network(&deployment);

    let record = engine
        .handle(dns_alarm(&blue, "dns-opt-out"), "run-1")
        .await
        .expect("handled")
        .record
        .expect("a record");

    assert_eq!(record.status, HealingStatus::Skipped);
    assert_eq!(record.skip_reason, Some(SkipReason::OptedOut));
    assert_eq!(dns.record("blue").await.weight(), Some(70));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_missing_health_check_is_gone_not_failed() {
    let emulator = emulator();
    let deployment = Deployment::bootstrap(&emulator).await;
    let queue = deployment.subscribe_queue("operators").await;
    let engine = network(&deployment);
    let missing = "abcdef12-3456-7890-abcd-ef1234567890";
    let healer = NetworkHealer::new(&deployment.sdk);
    let alarm = Alarmed::new(RULE, dns_alarm(missing, "e1"), missing);

    let assessment = healer.assess(alarm.request()).await.expect("assessed");

    assert!(
        matches!(&assessment, Assessment::Gone { summary } if summary.contains(missing)),
        "{assessment:?}"
    );
    let record = engine
        .handle(dns_alarm(missing, "dns-missing"), "run-1")
        .await
        .expect("handled, not an error")
        .record
        .expect("a record");
    assert_eq!(record.status, HealingStatus::Skipped, "{record:?}");
    assert_eq!(record.skip_reason, Some(SkipReason::Gone));
    assert_eq!(
        stored_record(&deployment).await.skip_reason,
        Some(SkipReason::Gone)
    );
    single_notice(&deployment, &queue, RULE, "skipped").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_a_record_a_person_changes_while_autoheal_zeroes_it_stays_theirs() {
    let emulator = emulator();
    let sdk = emulator.sdk().await;
    let dns = DnsFixture::create(&sdk).await;
    let blue = dns.health_check("192.0.2.10", &[]).await;
    let green = dns.health_check("192.0.2.20", &[]).await;
    dns.set_health(&blue, "Failure").await;
    dns.records(vec![
        weighted("blue", "192.0.2.10", 70, &blue),
        weighted("green", "192.0.2.20", 30, &green),
    ])
    .await;
    let alarm = Alarmed::new(RULE, dns_alarm(&blue, "e1"), &blue);
    // The person is draining blue by hand, to a weight of their own.
    let theirs = weighted("blue", "192.0.2.10", 5, &blue);

    let outcome = with_a_person_changing_the_record(&emulator, &dns, theirs, |healer| async move {
        healer.heal(alarm.request()).await
    })
    .await;

    let (reason, summary) = skipped(outcome.expect("no error"));
    assert_eq!(reason, SkipReason::Unsafe);
    assert!(
        summary.contains("changed after autoheal read it") && summary.contains("blue"),
        "{summary}"
    );
    assert_eq!(dns.record("blue").await.weight(), Some(5), "theirs stays");
    assert_eq!(dns.record("green").await.weight(), Some(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_a_record_a_person_changes_while_autoheal_restores_it_stays_theirs() {
    let emulator = emulator();
    let sdk = emulator.sdk().await;
    let dns = DnsFixture::create(&sdk).await;
    let blue = dns.health_check("192.0.2.10", &[]).await;
    let green = dns.health_check("192.0.2.20", &[]).await;
    dns.set_health(&blue, "Failure").await;
    dns.records(vec![
        weighted("blue", "192.0.2.10", 70, &blue),
        weighted("green", "192.0.2.20", 30, &green),
    ])
    .await;
    let alarm = Alarmed::new(RULE, dns_alarm(&blue, "e1"), &blue);
    let HealOutcome::Healed { reverts, .. } = NetworkHealer::new(&sdk)
        .heal(alarm.request())
        .await
        .expect("failed over")
    else {
        panic!("blue goes to weight 0");
    };
    assert_eq!(dns.record("blue").await.weight(), Some(0));
    dns.set_health(&blue, "Success").await;
    // The person brings blue back slowly, with a weight of their own.
    let theirs = weighted("blue", "192.0.2.10", 10, &blue);

    let outcome = with_a_person_changing_the_record(&emulator, &dns, theirs, |healer| {
        let revert = reverts[0].clone();
        async move { healer.revert(alarm.request(), &revert).await }
    })
    .await;

    let (reason, summary) = skipped(outcome.expect("no error"));
    assert_eq!(reason, SkipReason::Unsafe);
    assert!(summary.contains("theirs stays"), "{summary}");
    assert_eq!(dns.record("blue").await.weight(), Some(10), "theirs stays");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_a_record_repointed_while_at_weight_zero_is_not_given_its_weight_back() {
    let emulator = emulator();
    let deployment = Deployment::bootstrap(&emulator).await;
    let dns = DnsFixture::create(&deployment.sdk).await;
    let blue = dns.health_check("192.0.2.10", &[]).await;
    let green = dns.health_check("192.0.2.20", &[]).await;
    dns.set_health(&blue, "Failure").await;
    dns.records(vec![
        weighted("blue", "192.0.2.10", 70, &blue),
        weighted("green", "192.0.2.20", 30, &green),
    ])
    .await;
    let engine = network(&deployment);
    let shifted = engine
        .handle(dns_alarm(&blue, "dns-alarm"), "run-1")
        .await
        .expect("handled")
        .record
        .expect("a record");
    assert_eq!(shifted.status, HealingStatus::Completed, "{shifted:?}");
    // A person points blue at a new endpoint and keeps it out of traffic while they test it.
    dns.records_upsert(vec![weighted("blue", "192.0.2.99", 0, &blue)])
        .await;
    dns.set_health(&blue, "Success").await;

    let ok = engine
        .handle(dns_ok(&blue, "dns-ok"), "run-2")
        .await
        .expect("handled");

    assert_eq!(ok.decision, Verdict::Revert, "{ok:?}");
    let kept = ok.record.expect("a revert record");
    assert!(
        kept.summary
            .as_deref()
            .is_some_and(|s| s.contains("not as autoheal left it")),
        "{kept:?}"
    );
    let record = dns.record("blue").await;
    assert_eq!(record.weight(), Some(0), "theirs stays out of traffic");
    assert_eq!(
        record.resource_records().first().map(|r| r.value()),
        Some("192.0.2.99")
    );
}
