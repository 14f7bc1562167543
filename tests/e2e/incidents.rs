//! Cooldown, attempts, escalation, stable period and flapping, with an injected clock.

use chrono::{TimeZone, Utc};

use autoheal_core::{HealingStatus, Settings, SkipReason, Verdict};
use autoheal_tests::{Deployment, Emulator, Fleet, TestClock, ec2_alarm, ec2_ok};

/// ec2-instance-healing: cooldown 600 s, 3 attempts, stable period 900 s.
const COOLDOWN: i64 = 600;

fn start() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 6, 0, 0)
        .single()
        .expect("a valid time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooldown_then_attempts_then_one_escalation() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let queue = deployment.subscribe_queue("escalations").await;
    let fleet = Fleet::new(&deployment.sdk);
    // An Auto Scaling member stays in place when marked unhealthy; it passes the group's
    // health check again before each attempt, so every attempt acts.
    let (_, member) = fleet.auto_scaling_group("web-asg").await;
    let clock = TestClock::at(start());
    let engine = deployment.infrastructure(clock.clone(), Settings::default());

    let first = engine
        .handle(ec2_alarm(&member, "e1"), "r1")
        .await
        .expect("handled");
    assert_eq!(first.decision, Verdict::Act);

    clock.advance(60);
    let inside = engine
        .handle(ec2_alarm(&member, "e2"), "r2")
        .await
        .expect("handled");
    assert_eq!(inside.reason, Some(SkipReason::Cooldown), "{inside:?}");
    assert_eq!(engine.healer.calls(), 1);

    clock.advance(COOLDOWN);
    fleet.passes_health_check(&member).await;
    let after = engine
        .handle(ec2_alarm(&member, "e3"), "r3")
        .await
        .expect("handled");
    assert_eq!(after.decision, Verdict::Act, "{after:?}");
    assert_eq!(after.record.as_ref().map(|r| r.attempt), Some(2));

    // Far past any backoff: the third and last attempt.
    clock.advance(10 * COOLDOWN);
    fleet.passes_health_check(&member).await;
    let third = engine
        .handle(ec2_alarm(&member, "e4"), "r4")
        .await
        .expect("handled");
    assert_eq!(
        third.record.as_ref().map(|r| r.attempt),
        Some(3),
        "{third:?}"
    );
    assert_eq!(engine.healer.calls(), 3);

    for (i, id) in ["e5", "e6", "e7"].into_iter().enumerate() {
        clock.advance(10 * COOLDOWN);
        let spent = engine
            .handle(ec2_alarm(&member, id), &format!("r{}", 5 + i))
            .await
            .expect("handled");
        assert_eq!(spent.reason, Some(SkipReason::MaxAttempts), "{spent:?}");
    }
    assert_eq!(engine.healer.calls(), 3, "no action after max attempts");
    let escalations: Vec<_> = deployment
        .notifications(&queue)
        .await
        .into_iter()
        .filter(|n| n["MessageAttributes"]["kind"]["Value"] == "escalation")
        .collect();
    assert_eq!(escalations.len(), 1, "one escalation notification");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ok_inside_the_stable_period_keeps_the_incident_and_after_it_opens_a_new_one() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let fleet = Fleet::new(&deployment.sdk);
    let (_, member) = fleet.auto_scaling_group("web-asg").await;
    let clock = TestClock::at(start());
    let engine = deployment.infrastructure(clock.clone(), Settings::default());

    let first = engine
        .handle(ec2_alarm(&member, "a1"), "r1")
        .await
        .expect("handled");
    let incident = first.record.as_ref().and_then(|r| r.incident_id.clone());
    clock.advance(COOLDOWN + 10);
    let ok = engine
        .handle(ec2_ok(&member, "o1"), "r2")
        .await
        .expect("handled");
    assert_eq!(ok.decision, Verdict::Recovering);

    // Flaps back within the stable period (900 s): same incident, next attempt.
    clock.advance(300);
    fleet.passes_health_check(&member).await;
    let again = engine
        .handle(ec2_alarm(&member, "a2"), "r3")
        .await
        .expect("handled");
    let record = again.record.expect("a record");
    assert_eq!(record.incident_id, incident);
    assert_eq!(record.attempt, 2, "{record:?}");
    assert_eq!(record.status, HealingStatus::Completed);

    // OK holds past the stable period: the next ALARM opens a new incident at attempt 1.
    clock.advance(COOLDOWN * 3);
    engine
        .handle(ec2_ok(&member, "o2"), "r4")
        .await
        .expect("handled");
    clock.advance(901);
    fleet.passes_health_check(&member).await;
    let fresh = engine
        .handle(ec2_alarm(&member, "a3"), "r5")
        .await
        .expect("handled");
    let record = fresh.record.expect("a record");
    assert_eq!(record.attempt, 1, "{record:?}");
    assert_ne!(record.incident_id, incident);
    assert_eq!(record.incident_id.as_deref(), Some("a3"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_flapping_twenty_times_in_an_hour_heals_at_most_max_attempts_times() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let fleet = Fleet::new(&deployment.sdk);
    let (_, member) = fleet.auto_scaling_group("web-asg").await;
    let clock = TestClock::at(start());
    let engine = deployment.infrastructure(clock.clone(), Settings::default());

    for flap in 0..20 {
        engine
            .handle(
                ec2_alarm(&member, &format!("alarm-{flap}")),
                &format!("ra{flap}"),
            )
            .await
            .expect("handled");
        clock.advance(90);
        engine
            .handle(ec2_ok(&member, &format!("ok-{flap}")), &format!("ro{flap}"))
            .await
            .expect("handled");
        clock.advance(90);
    }

    // One incident (no OK holds for the stable period): its three attempts, each once its
    // backoff is over, then nothing more.
    assert_eq!(engine.healer.calls(), 3);
}
