//! Load: a burst of alarm events of every layer through the real handlers against the
//! emulator, 16 at a time, with redeliveries and overlapping alarms. Every delivery leaves
//! exactly one record, every redelivery is skipped, and no resource is acted on twice.
//! `make test` runs 150 events; `make reliability` runs 1,000 and prints the figures.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::Semaphore;

use autoheal_core::{HealingStatus, Layer, Settings, SkipReason, SystemClock, Verdict};
use autoheal_tests::application::{AppParameters, application_alarm};
use autoheal_tests::data::{CACHE_INVALIDATION, DataStores, data_alarm};
use autoheal_tests::network::nat_alarm;
use autoheal_tests::platform::{lambda_event, lambda_function};
use autoheal_tests::{Deployment, Emulator, Fleet, TestEngine, ec2_alarm};

/// Events handled at once, as a burst of EventBridge deliveries would be.
const CONCURRENCY: usize = 16;

/// What a burst measured.
#[derive(Debug)]
struct BurstReport {
    deliveries: usize,
    redeliveries: usize,
    handler_errors: usize,
    acted: usize,
    failed_actions: usize,
    deferred: usize,
    duplicates: usize,
    seconds: f64,
    p50_ms: u128,
    p99_ms: u128,
    max_ms: u128,
}

/// One delivery: the layer whose function EventBridge routes it to, and the event.
struct Delivery {
    layer: Layer,
    resource: String,
    event: Value,
}

fn percentile(sorted: &[Duration], fraction: f64) -> u128 {
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index].as_millis()
}

/// Builds the fixtures and the deliveries for a burst of `total` events: 30 % EC2 status
/// checks (a tenth of them a second alarm on an instance already alarmed), 30 % circuit
/// breakers, 10 % each Lambda rollbacks, cache repairs and NAT routes (gateways that do not
/// exist: records skipped as gone), then 20 % of the burst again as redeliveries.
async fn deliveries(emulator: &Emulator, deployment: &Deployment, total: usize) -> Vec<Delivery> {
    emulator.lambda_without_docker();
    let sdk = &deployment.sdk;
    let fresh = total - total / 5;
    let share = |percent: usize| (fresh * percent / 100).max(1);
    let mut out = Vec::new();

    let instances = Fleet::new(sdk)
        .standalone_fleet(
            aws_sdk_ec2::types::InstanceType::T3Micro,
            i32::try_from(share(27)).expect("a small fleet"),
            &[("emulator:system-status", "impaired")],
        )
        .await;
    for (i, instance) in instances.iter().enumerate() {
        out.push(Delivery {
            layer: Layer::Infrastructure,
            resource: instance.clone(),
            event: ec2_alarm(instance, &format!("ec2-{i}")),
        });
    }
    for (i, instance) in instances.iter().take(share(3)).enumerate() {
        let mut event = ec2_alarm(instance, &format!("ec2-overlap-{i}"));
        event["detail"]["alarmName"] = json!(format!("{instance}-second-alarm"));
        out.push(Delivery {
            layer: Layer::Infrastructure,
            resource: instance.clone(),
            event,
        });
    }

    let parameters = AppParameters::new(sdk);
    for i in 0..share(30) {
        let service = format!("svc-{i}");
        parameters
            .create(
                &format!("/autoheal/{service}/circuit-breaker"),
                &json!({"state": "open"}),
                &[],
            )
            .await;
        out.push(Delivery {
            layer: Layer::Application,
            resource: service.clone(),
            event: application_alarm("circuit-breaker-healing", &service, &format!("cb-{i}")),
        });
    }

    for i in 0..share(10) {
        let function = format!("orders-{i}");
        lambda_function(sdk, &function, &[]).await;
        out.push(Delivery {
            layer: Layer::Platform,
            resource: function.clone(),
            event: lambda_event("alarm", &function, &format!("fn-{i}")),
        });
    }

    let stores = DataStores::new(sdk);
    for i in 0..share(10) {
        let cluster = format!("sessions-{i}");
        stores.cache_cluster(&cluster, &[]).await;
        out.push(Delivery {
            layer: Layer::Data,
            resource: cluster.clone(),
            event: data_alarm(CACHE_INVALIDATION, &cluster, &format!("cache-{i}")),
        });
    }

    for i in 0..share(10) {
        let gateway = format!("nat-{i:017x}");
        out.push(Delivery {
            layer: Layer::Network,
            resource: gateway.clone(),
            event: nat_alarm(&gateway, &format!("nat-{i}")),
        });
    }

    // One alarm per resource, as deployments have them (the samples share their names).
    for delivery in &mut out {
        let name = format!(
            "{}-{}",
            delivery.event["detail"]["alarmName"]
                .as_str()
                .unwrap_or_default(),
            delivery.resource
        );
        delivery.event["detail"]["alarmName"] = Value::from(name);
    }
    // Redeliveries: a fifth of the burst repeats earlier events, spread through it.
    let originals = out.len();
    let repeats = total.saturating_sub(originals);
    for i in 0..repeats {
        let original = &out[(i * 7919) % originals];
        out.push(Delivery {
            layer: original.layer,
            resource: original.resource.clone(),
            event: original.event.clone(),
        });
    }
    // Interleave: a deterministic shuffle, so redeliveries race their originals.
    let len = out.len();
    for i in 0..len {
        out.swap(i, (i * 104_729 + 17) % len);
    }
    out
}

async fn burst(total: usize) -> BurstReport {
    let emulator = Emulator::start_with_ec2_status_checks();
    let deployment = Deployment::bootstrap(&emulator).await;
    let deliveries = deliveries(&emulator, &deployment, total).await;
    let engines: BTreeMap<Layer, Arc<TestEngine<SystemClock>>> = Layer::ALL
        .iter()
        .map(|&layer| {
            (
                layer,
                Arc::new(deployment.layer_with(layer, SystemClock, Settings::default())),
            )
        })
        .collect();

    let permits = Arc::new(Semaphore::new(CONCURRENCY));
    let started = Instant::now();
    let mut runs = Vec::new();
    for (n, delivery) in deliveries.iter().enumerate() {
        let engine = Arc::clone(&engines[&delivery.layer]);
        let event = delivery.event.clone();
        let permits = Arc::clone(&permits);
        runs.push(tokio::spawn(async move {
            let _permit = permits.acquire_owned().await.expect("semaphore");
            let began = Instant::now();
            let result = engine.handle(event, &format!("run-{n:05}")).await;
            (result, began.elapsed())
        }));
    }
    let mut outcomes = Vec::new();
    let mut latencies = Vec::new();
    let mut handler_errors = 0;
    for run in runs {
        let (result, took) = run.await.expect("joined");
        latencies.push(took);
        match result {
            Ok(outcome) => outcomes.push(Some(outcome)),
            Err(error) => {
                eprintln!("handler error: {error}");
                handler_errors += 1;
                outcomes.push(None);
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort();

    // Every delivery left exactly one record, under its own run id, except a redelivery
    // ignored as a duplicate: its event's run has the record.
    let records = deployment
        .store()
        .recent_records(1, chrono::Utc::now())
        .await
        .expect("records");
    let mut by_run: BTreeMap<&str, usize> = BTreeMap::new();
    for record in &records {
        *by_run.entry(record.id.as_str()).or_default() += 1;
    }
    for (n, outcome) in outcomes.iter().enumerate() {
        let run = format!("run-{n:05}");
        let duplicate = outcome.as_ref().is_some_and(|outcome| {
            outcome.decision == Verdict::Ignore && outcome.reason == Some(SkipReason::Duplicate)
        });
        assert_eq!(
            by_run.get(run.as_str()).copied(),
            (!duplicate).then_some(1),
            "{run}: {outcome:?}"
        );
    }

    // Redeliveries are skipped; no resource is acted on twice.
    let mut seen_events = BTreeSet::new();
    let mut acted_on: BTreeMap<&str, usize> = BTreeMap::new();
    let (mut redeliveries, mut duplicates, mut deferred, mut acted, mut failed_actions) =
        (0, 0, 0, 0, 0);
    for (delivery, outcome) in deliveries.iter().zip(&outcomes) {
        let outcome = outcome.as_ref().expect("handled");
        let id = delivery.event["id"].as_str().expect("an id");
        if !seen_events.insert(id) {
            redeliveries += 1;
        }
        if outcome.reason == Some(SkipReason::Duplicate) {
            duplicates += 1;
        }
        if outcome.reason.is_some_and(SkipReason::is_deferral) {
            deferred += 1;
        }
        if outcome.decision == Verdict::Act {
            let record = outcome.record.as_ref().expect("a record");
            acted += 1;
            if record.status == HealingStatus::Failed {
                failed_actions += 1;
            }
            *acted_on.entry(delivery.resource.as_str()).or_default() += 1;
        }
    }
    // A redelivery arriving before its original is the one that acts, and the original is
    // the duplicate: count them per event id.
    let mut deliveries_of: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (delivery, outcome) in deliveries.iter().zip(&outcomes) {
        let outcome = outcome.as_ref().expect("handled");
        deliveries_of
            .entry(delivery.event["id"].as_str().expect("an id"))
            .or_default()
            .push(format!(
                "{:?} {:?} {:?}",
                outcome.decision,
                outcome.reason,
                outcome.record.as_ref().map(|r| r.status)
            ));
    }
    for (id, seen) in &deliveries_of {
        // One delivery of an event decides; every other one is ignored as a duplicate once
        // the first claimed it, or skipped for the same reason the first was held back
        // (cooldown, backoff, another run in progress), which claims nothing.
        let acted = seen.iter().filter(|s| s.starts_with("Act")).count();
        let skipped = seen
            .iter()
            .filter(|s| s.starts_with("Skip") || s.starts_with("Ignore Some(Duplicate)"))
            .count();
        assert!(
            acted <= 1 && acted + skipped == seen.len(),
            "{id}: {seen:#?}"
        );
    }
    let twice: Vec<_> = acted_on.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "acted on twice: {twice:?}");
    let fleet = Fleet::new(&deployment.sdk);
    for delivery in deliveries
        .iter()
        .filter(|d| d.layer == Layer::Infrastructure)
    {
        let history = fleet.history(&delivery.resource).await;
        assert!(
            history.is_empty() || history == ["stop", "start"] || history == ["reboot"],
            "{}: {history:?}",
            delivery.resource
        );
    }

    BurstReport {
        deliveries: deliveries.len(),
        redeliveries,
        handler_errors,
        acted,
        failed_actions,
        deferred,
        duplicates,
        seconds,
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
        max_ms: latencies.last().map_or(0, Duration::as_millis),
    }
}

fn check(report: &BurstReport) {
    println!(
        "burst: {} deliveries ({} redeliveries) in {:.1} s = {:.1} events/s; per event p50 {} ms, p99 {} ms, max {} ms; acted {} (failed {}), deferred {}, duplicates {}, handler errors {}",
        report.deliveries,
        report.redeliveries,
        report.seconds,
        report.deliveries as f64 / report.seconds,
        report.p50_ms,
        report.p99_ms,
        report.max_ms,
        report.acted,
        report.failed_actions,
        report.deferred,
        report.duplicates,
        report.handler_errors,
    );
    assert_eq!(report.handler_errors, 0);
    assert!(report.duplicates > 0, "{report:?}");
    assert!(report.acted > 0, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_150_events_loses_nothing_and_acts_once_per_resource() {
    check(&burst(150).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "about seven minutes: `make reliability`"]
async fn a_burst_of_1000_events_loses_nothing_and_acts_once_per_resource() {
    check(&burst(1000).await);
}
