//! `nat-route-healing`: routes move only onto a standby with headroom for them.

use aws_sdk_ec2::types::NatGatewayState;

use autoheal_core::{Assessment, Healer, HealingStatus, SkipReason, Verdict};
use autoheal_network::NetworkHealer;
use autoheal_tests::network::{NAT64, NatFixture, STANDBY_TAG, nat_alarm, nat_ok};
use autoheal_tests::{Deployment, Emulator};

use super::{Alarmed, network, single_notice, skipped, stored_record};

const RULE: &str = "nat-route-healing";

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
async fn nat_a_missing_or_deleted_gateway_is_gone_not_failed() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let queue = deployment.subscribe_queue("operators").await;
    let nat = NatFixture::with_standby(&deployment.sdk, &[]).await;
    nat.ec2
        .delete_nat_gateway()
        .nat_gateway_id(&nat.failing)
        .send()
        .await
        .expect("a person deletes the failing gateway");
    let healer = NetworkHealer::new(&deployment.sdk);

    for gateway in ["nat-0123456789abcdef0", nat.failing.as_str()] {
        let alarm = Alarmed::new(RULE, nat_alarm(gateway, "e1"), gateway);
        let assessment = healer.assess(alarm.request()).await.expect("assessed");
        assert!(
            matches!(&assessment, Assessment::Gone { summary } if summary.contains(gateway)),
            "{gateway}: {assessment:?}"
        );
        let (reason, _) = skipped(healer.heal(alarm.request()).await.expect("no error"));
        assert_eq!(reason, SkipReason::Gone, "{gateway}");
    }
    assert_eq!(
        nat.tables_through(&nat.standby).await,
        0,
        "a person's deletion is theirs to finish: no route moved"
    );

    let record = network(&deployment)
        .handle(nat_alarm("nat-0123456789abcdef0", "nat-missing"), "run-1")
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
async fn nat_a_standby_already_exhausting_its_ports_is_not_used() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let nat = NatFixture::with_standby(&deployment.sdk, &[]).await;
    NatFixture::report(&deployment.sdk, &nat.standby, "ErrorPortAllocation", 3.0).await;
    let before = nat.nat_routes().await;

    let record = network(&deployment)
        .handle(nat_alarm(&nat.failing, "nat-exhausted-standby"), "run-1")
        .await
        .expect("handled")
        .record
        .expect("a record");

    assert_eq!(record.skip_reason, Some(SkipReason::Unsafe), "{record:?}");
    let summary = record.summary.expect("a summary");
    assert!(
        summary.contains(&nat.standby)
            && summary.contains("no headroom")
            && summary.contains("source port"),
        "{summary}"
    );
    assert_eq!(nat.nat_routes().await, before, "routes unchanged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nat_a_standby_that_could_not_hold_both_gateways_connections_is_not_used() {
    let emulator = Emulator::start();
    let sdk = emulator.sdk().await;
    let nat = NatFixture::with_standby(&sdk, &[]).await;
    let before = nat.nat_routes().await;
    // Together 60,000 connections, more than one address's 55,000 to a destination.
    NatFixture::report(&sdk, &nat.failing, "ActiveConnectionCount", 40_000.0).await;
    NatFixture::report(&sdk, &nat.standby, "ActiveConnectionCount", 20_000.0).await;
    let healer = NetworkHealer::new(&sdk);
    let alarm = Alarmed::new(RULE, nat_alarm(&nat.failing, "e1"), &nat.failing);

    let (reason, summary) = skipped(healer.heal(alarm.request()).await.expect("no error"));

    assert_eq!(reason, SkipReason::Unsafe);
    assert!(
        summary.contains("60000 concurrent connections"),
        "{summary}"
    );
    assert_eq!(nat.nat_routes().await, before, "routes unchanged");

    // A lighter load fits: the same routes move.
    let light = NatFixture::with_standby(&sdk, &[]).await;
    NatFixture::report(&sdk, &light.failing, "ActiveConnectionCount", 30_000.0).await;
    NatFixture::report(&sdk, &light.standby, "ActiveConnectionCount", 20_000.0).await;
    let alarm = Alarmed::new(RULE, nat_alarm(&light.failing, "e2"), &light.failing);
    let moved = healer.heal(alarm.request()).await.expect("moved");
    assert!(
        matches!(moved, autoheal_core::HealOutcome::Healed { .. }),
        "{moved:?}"
    );
    assert_eq!(light.tables_through(&light.failing).await, 0);
}
