//! Incidents read back as timelines.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use autoheal_core::report::history::timelines;
use autoheal_core::{HealingRecord, HealingStatus, Layer, Mode, RunPhase, SkipReason};
use chrono::{DateTime, Duration, TimeZone, Utc};

fn at(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap() + Duration::minutes(minutes)
}

fn record(id: &str, minutes: i64, incident: Option<&str>, attempt: u32) -> HealingRecord {
    HealingRecord {
        id: id.to_owned(),
        event_id: id.to_owned(),
        alarm_name: "web-01-status".to_owned(),
        rule: "ec2-instance-healing".to_owned(),
        layer: Layer::Infrastructure,
        action: "recover-ec2-instance".to_owned(),
        resource_id: "i-1".to_owned(),
        account: None,
        region: None,
        role_session: None,
        status: HealingStatus::Completed,
        phase: RunPhase::Heal,
        mode: Mode::Enforce,
        started_at: at(minutes),
        ended_at: Some(at(minutes)),
        attempt,
        incident_id: incident.map(str::to_owned),
        skip_reason: None,
        error: None,
        summary: Some(format!("run {id}")),
        details: BTreeMap::new(),
    }
}

#[test]
fn given_an_incidents_records_in_any_order_when_read_then_they_form_one_timeline_in_order() {
    let resolved = HealingRecord {
        phase: RunPhase::Verify,
        ..record("verify", 40, Some("e1"), 2)
    };
    let deferred = HealingRecord {
        status: HealingStatus::Skipped,
        skip_reason: Some(SkipReason::Budget),
        ..record("deferred", 1, Some("e1"), 0)
    };
    let failed = HealingRecord {
        status: HealingStatus::Failed,
        error: Some("InsufficientInstanceCapacity".to_owned()),
        summary: None,
        ..record("first", 20, Some("e1"), 1)
    };
    let duplicate = HealingRecord {
        status: HealingStatus::Skipped,
        skip_reason: Some(SkipReason::Duplicate),
        ..record("dup", 21, None, 0)
    };
    let records = vec![
        resolved,
        record("second", 30, Some("e1"), 2),
        duplicate,
        failed,
        deferred,
    ];

    let timelines = timelines(&records);

    assert_eq!(timelines.len(), 1, "{timelines:#?}");
    let timeline = &timelines[0];
    assert_eq!(timeline.incident_id, "e1");
    assert_eq!(timeline.detected_at, at(1));
    assert_eq!(timeline.state, "resolved");
    let stages: Vec<(&str, u32)> = timeline
        .steps
        .iter()
        .map(|s| (s.stage, s.attempt))
        .collect();
    assert_eq!(
        stages,
        [("deferred", 0), ("acted", 1), ("acted", 2), ("resolved", 2)]
    );
    assert_eq!(timeline.steps[0].status, "skipped (budget)");
    assert_eq!(timeline.steps[1].summary, "InsufficientInstanceCapacity");
}

#[test]
fn given_a_failed_last_attempt_or_spent_attempts_when_read_then_the_incident_is_escalated() {
    let mut spent = HealingRecord {
        status: HealingStatus::Failed,
        ..record("last", 5, Some("e1"), 3)
    };
    spent
        .details
        .insert("escalated".to_owned(), "true".to_owned());
    let gave_up = HealingRecord {
        status: HealingStatus::Skipped,
        skip_reason: Some(SkipReason::MaxAttempts),
        resource_id: "i-2".to_owned(),
        ..record("gave-up", 6, Some("e2"), 3)
    };
    let open = HealingRecord {
        resource_id: "i-3".to_owned(),
        ..record("open", 7, Some("e3"), 1)
    };

    let states: Vec<(String, &str)> = timelines(&[open, gave_up, spent])
        .into_iter()
        .map(|t| (t.resource_id, t.state))
        .collect();

    assert_eq!(
        states,
        [
            ("i-1".to_owned(), "escalated"),
            ("i-2".to_owned(), "escalated"),
            ("i-3".to_owned(), "open")
        ]
    );
}
