//! The network layer's rules against the emulator: `alb-target-healing`,
//! `dns-failover-healing` and `nat-route-healing`, each through the network engine with the
//! real healer, DynamoDB state and SNS notifications.

use aws_sdk_ec2::types::NatGatewayState;
use aws_sdk_route53::types::ResourceRecordSetFailover;
use chrono::Utc;
use serde_json::Value;

use autoheal_core::{
    HealingRecord, HealingStatus, Layer, Settings, SkipReason, SystemClock, Verdict,
};
use autoheal_network::NetworkHealer;
use autoheal_tests::network::{
    DnsFixture, NAT64, NatFixture, STANDBY_TAG, TargetGroupFixture, alb_alarm, alb_ok, dns_alarm,
    dns_ok, failover, nat_alarm, nat_ok, weighted,
};
use autoheal_tests::{Deployment, Emulator, TestClock, TestEngine, ec2_alarm};

type NetworkEngine = TestEngine<SystemClock>;

fn network(deployment: &Deployment) -> NetworkEngine {
    deployment.layer(Layer::Network)
}

/// The only healing record in the table.
async fn stored_record(deployment: &Deployment) -> HealingRecord {
    deployment.only_record().await
}

/// The single notification on `queue`: its attributes are checked, its record returned.
async fn single_notice(deployment: &Deployment, queue: &str, rule: &str, status: &str) -> Value {
    let published = deployment.only_notification(queue).await;
    published.assert_about("network", rule, status);
    published.record
}

// ---------------------------------------------------------------- alb-target-healing

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alb_unhealthy_targets_are_deregistered_and_healthy_ones_keep_serving() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let queue = deployment.subscribe_queue("operators").await;
    let group = TargetGroupFixture::create(&deployment.sdk, 3, &[("team", "web")]).await;
    let failed = group.instances[0].clone();
    group.stop(&[&failed]).await;
    let engine = network(&deployment);

    let outcome = engine
        .handle(alb_alarm(&group.arn, "alb-alarm"), "run-1")
        .await
        .expect("handled");

    let record = outcome.record.expect("a record");
    assert_eq!(record.status, HealingStatus::Completed, "{record:?}");
    assert_eq!(record.resource_id, group.arn);
    let mut healthy = group.instances[1..].to_vec();
    healthy.sort();
    assert_eq!(
        group.registered().await,
        healthy,
        "only the failed target left"
    );
    let stored = stored_record(&deployment).await;
    assert_eq!(stored.status, HealingStatus::Completed);
    assert_eq!(stored.rule, "alb-target-healing");
    assert_eq!(
        stored.details.get("deregistered_targets"),
        Some(&format!("{failed}:80"))
    );
    assert_eq!(
        stored
            .details
            .get("healthy_targets_left")
            .map(String::as_str),
        Some("2")
    );
    let notice = single_notice(&deployment, &queue, "alb-target-healing", "completed").await;
    assert_eq!(notice["resource_id"], group.arn.as_str());
    assert_eq!(notice["action"], "deregister-unhealthy-targets");

    let ok = engine
        .handle(alb_ok(&group.arn, "alb-ok"), "run-2")
        .await
        .expect("handled");
    assert_eq!(ok.decision, Verdict::Recovering, "{ok:?}");
    assert_eq!(engine.healer.calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alb_the_last_capacity_is_never_deregistered() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let group = TargetGroupFixture::create(&deployment.sdk, 2, &[]).await;
    group
        .stop(&[&group.instances[0], &group.instances[1]])
        .await;
    let engine = network(&deployment);

    let record = engine
        .handle(alb_alarm(&group.arn, "alb-all-failing"), "run-1")
        .await
        .expect("handled")
        .record
        .expect("a record");

    assert_eq!(record.status, HealingStatus::Skipped);
    assert_eq!(record.skip_reason, Some(SkipReason::Unsafe), "{record:?}");
    let mut all = group.instances.clone();
    all.sort();
    assert_eq!(
        group.registered().await,
        all,
        "every target still registered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alb_target_group_whose_targets_all_recovered_needs_nothing() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let group = TargetGroupFixture::create(&deployment.sdk, 2, &[]).await;
    let engine = network(&deployment);

    let record = engine
        .handle(alb_alarm(&group.arn, "alb-healthy"), "run-1")
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
    assert_eq!(group.registered().await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alb_target_group_tagged_disabled_is_left_alone() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let group =
        TargetGroupFixture::create(&deployment.sdk, 2, &[("autoheal:disabled", "true")]).await;
    group.stop(&[&group.instances[0]]).await;
    let engine = network(&deployment);

    let outcome = engine
        .handle(alb_alarm(&group.arn, "alb-opt-out"), "run-1")
        .await
        .expect("handled");

    let record = outcome.record.expect("a record");
    assert_eq!(record.status, HealingStatus::Skipped);
    assert_eq!(record.skip_reason, Some(SkipReason::OptedOut));
    assert_eq!(group.registered().await.len(), 2, "nothing deregistered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alb_missing_target_group_gives_a_failed_record_with_the_service_message() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let queue = deployment.subscribe_queue("operators").await;
    let engine = network(&deployment);
    let missing =
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/gone/0123456789abcdef";

    let outcome = engine
        .handle(alb_alarm(missing, "alb-missing"), "run-1")
        .await
        .expect("handled, not an error");

    let record = outcome.record.expect("a record");
    assert_eq!(record.status, HealingStatus::Failed);
    let error = record.error.expect("an error message");
    assert!(error.contains("TargetGroupNotFound"), "{error}");
    assert_eq!(
        stored_record(&deployment).await.status,
        HealingStatus::Failed
    );
    let notice = single_notice(&deployment, &queue, "alb-target-healing", "failed").await;
    assert!(
        notice["error"]
            .as_str()
            .is_some_and(|e| e.contains("TargetGroupNotFound")),
        "{notice}"
    );
}

// ---------------------------------------------------------------- dns-failover-healing

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_failing_weighted_record_is_set_to_weight_zero_and_the_healthy_one_keeps_its_weight() {
    let emulator = Emulator::start_with_route53_health_status();
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
    let emulator = Emulator::start_with_route53_health_status();
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
    let emulator = Emulator::start_with_route53_health_status();
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
    let emulator = Emulator::start_with_route53_health_status();
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
    let emulator = Emulator::start_with_route53_health_status();
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
async fn dns_missing_health_check_gives_a_failed_record_with_the_service_message() {
    let emulator = Emulator::start_with_route53_health_status();
    let deployment = Deployment::bootstrap(&emulator).await;
    let queue = deployment.subscribe_queue("operators").await;
    let engine = network(&deployment);

    let record = engine
        .handle(
            dns_alarm("abcdef12-3456-7890-abcd-ef1234567890", "dns-missing"),
            "run-1",
        )
        .await
        .expect("handled, not an error")
        .record
        .expect("a record");

    assert_eq!(record.status, HealingStatus::Failed);
    let error = record.error.expect("an error message");
    assert!(error.contains("NoSuchHealthCheck"), "{error}");
    assert_eq!(
        stored_record(&deployment).await.status,
        HealingStatus::Failed
    );
    let notice = single_notice(&deployment, &queue, "dns-failover-healing", "failed").await;
    assert!(
        notice["error"]
            .as_str()
            .is_some_and(|e| e.contains("NoSuchHealthCheck")),
        "{notice}"
    );
}

// ---------------------------------------------------------------- nat-route-healing

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nat_routes_through_the_failing_gateway_move_to_its_standby() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let queue = deployment.subscribe_queue("operators").await;
    let nat = NatFixture::with_standby(&deployment.sdk, &[]).await;
    let engine = network(&deployment);

    let outcome = engine
        .handle(nat_alarm(&nat.failing, "nat-alarm"), "run-1")
        .await
        .expect("handled");

    let record = outcome.record.expect("a record");
    assert_eq!(record.status, HealingStatus::Completed, "{record:?}");
    assert_eq!(
        nat.nat_routes().await,
        vec![
            ("0.0.0.0/0".to_owned(), nat.standby.clone()),
            (NAT64.to_owned(), nat.standby.clone()),
        ],
        "IPv4 and IPv6 routes go through the standby"
    );
    assert_eq!(nat.tables_through(&nat.failing).await, 0);
    let stored = stored_record(&deployment).await;
    assert_eq!(stored.status, HealingStatus::Completed);
    assert_eq!(stored.details.get(&nat.route_table), Some(&nat.standby));
    let notice = single_notice(&deployment, &queue, "nat-route-healing", "completed").await;
    assert_eq!(notice["resource_id"], nat.failing.as_str());
    assert_eq!(notice["details"][&nat.route_table], nat.standby.as_str());

    let ok = engine
        .handle(nat_ok(&nat.failing, "nat-ok"), "run-2")
        .await
        .expect("handled");
    assert_eq!(ok.decision, Verdict::Recovering, "{ok:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nat_table_without_a_standby_tag_is_left_alone() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let nat = NatFixture::create(&deployment.sdk, &[("Name", "private")], &[]).await;
    let engine = network(&deployment);

    let record = engine
        .handle(nat_alarm(&nat.failing, "nat-no-standby"), "run-1")
        .await
        .expect("handled")
        .record
        .expect("a record");

    assert_eq!(record.status, HealingStatus::Skipped);
    assert_eq!(record.skip_reason, Some(SkipReason::Unsafe), "{record:?}");
    let summary = record.summary.expect("a summary");
    assert!(
        summary.contains(&nat.route_table) && summary.contains(STANDBY_TAG),
        "{summary}"
    );
    assert_eq!(
        nat.tables_through(&nat.failing).await,
        1,
        "routes unchanged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nat_standby_that_is_not_available_is_not_used() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let nat = NatFixture::with_standby(&deployment.sdk, &[]).await;
    nat.ec2
        .delete_nat_gateway()
        .nat_gateway_id(&nat.standby)
        .send()
        .await
        .expect("delete the standby");
    let state = nat
        .ec2
        .describe_nat_gateways()
        .nat_gateway_ids(&nat.standby)
        .send()
        .await
        .expect("describe")
        .nat_gateways()
        .first()
        .and_then(|gateway| gateway.state().cloned());
    assert_ne!(state, Some(NatGatewayState::Available));
    let engine = network(&deployment);

    let record = engine
        .handle(nat_alarm(&nat.failing, "nat-standby-gone"), "run-1")
        .await
        .expect("handled")
        .record
        .expect("a record");

    assert_eq!(record.status, HealingStatus::Skipped);
    assert_eq!(record.skip_reason, Some(SkipReason::Unsafe), "{record:?}");
    assert_eq!(
        nat.tables_through(&nat.failing).await,
        1,
        "routes unchanged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nat_gateway_tagged_disabled_is_left_alone() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let nat = NatFixture::with_standby(&deployment.sdk, &[("autoheal:disabled", "true")]).await;
    let engine = network(&deployment);

    let record = engine
        .handle(nat_alarm(&nat.failing, "nat-opt-out"), "run-1")
        .await
        .expect("handled")
        .record
        .expect("a record");

    assert_eq!(record.status, HealingStatus::Skipped);
    assert_eq!(record.skip_reason, Some(SkipReason::OptedOut));
    assert_eq!(
        nat.tables_through(&nat.failing).await,
        1,
        "routes unchanged"
    );
    assert_eq!(nat.tables_through(&nat.standby).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nat_missing_gateway_gives_a_failed_record_and_a_notification() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let queue = deployment.subscribe_queue("operators").await;
    let engine = network(&deployment);

    let record = engine
        .handle(nat_alarm("nat-0123456789abcdef0", "nat-missing"), "run-1")
        .await
        .expect("handled, not an error")
        .record
        .expect("a record");

    assert_eq!(record.status, HealingStatus::Failed);
    let error = record.error.expect("an error message");
    assert!(
        error.contains("NatGatewayNotFound") && error.contains("nat-0123456789abcdef0"),
        "{error}"
    );
    assert_eq!(
        stored_record(&deployment).await.status,
        HealingStatus::Failed
    );
    single_notice(&deployment, &queue, "nat-route-healing", "failed").await;
}

// ---------------------------------------------------------------- routing

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_layers_event_is_skipped_by_the_network_function() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let engine = network(&deployment);

    let outcome = engine
        .handle(ec2_alarm("i-0123456789abcdef0", "ec2-to-network"), "run-1")
        .await
        .expect("handled");

    assert_eq!(outcome.decision, Verdict::Skip);
    assert_eq!(outcome.reason, Some(SkipReason::OtherLayer));
    assert!(outcome.record.is_none());
    assert_eq!(engine.healer.calls(), 0);
    assert_eq!(deployment.item_count().await, 0, "nothing written");
}
