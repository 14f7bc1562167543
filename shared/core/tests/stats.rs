//! Statistics over healing records (`Statistics::compute`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use autoheal_core::report::stats::LayerCounts;
use autoheal_core::{
    HealingRecord, HealingStatus, Layer, Mode, RuleSet, RunPhase, SkipReason, Statistics,
};
use chrono::{TimeZone, Utc};

fn record(
    id: &str,
    layer: Layer,
    status: HealingStatus,
    skip: Option<SkipReason>,
) -> HealingRecord {
    HealingRecord {
        id: id.to_owned(),
        event_id: format!("event-{id}"),
        alarm_name: "alarm".to_owned(),
        rule: "some-rule".to_owned(),
        layer,
        action: "some-action".to_owned(),
        resource_id: "resource".to_owned(),
        account: None,
        region: None,
        role_session: None,
        status,
        phase: RunPhase::Heal,
        mode: Mode::Enforce,
        started_at: Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap(),
        ended_at: None,
        attempt: 1,
        incident_id: None,
        skip_reason: skip,
        error: None,
        summary: None,
        details: BTreeMap::new(),
    }
}

fn shipped() -> RuleSet {
    RuleSet::shipped().unwrap_or_else(|e| panic!("the shipped rules must parse:\n{e}"))
}

fn counts(total: u64, completed: u64, failed: u64, skipped: u64, active: u64) -> LayerCounts {
    LayerCounts {
        total,
        completed,
        failed,
        skipped,
        active,
    }
}

#[test]
fn given_no_records_when_computed_then_everything_is_zero_and_there_is_no_success_rate() {
    let stats = Statistics::compute(&[], &shipped());

    assert_eq!(stats.total, 0);
    assert_eq!(
        stats.completed + stats.failed + stats.skipped + stats.active,
        0
    );
    assert_eq!(stats.success_rate, None);
    assert!(stats.skipped_by_reason.is_empty());
    assert_eq!(
        stats.per_layer.len(),
        Layer::ALL.len(),
        "every layer is listed"
    );
    assert!(
        stats
            .per_layer
            .values()
            .all(|c| *c == LayerCounts::default())
    );
}

#[test]
fn given_a_mix_of_records_when_computed_then_totals_rate_and_per_layer_counts_add_up() {
    use HealingStatus::*;
    let records = [
        record("1", Layer::Infrastructure, Completed, None),
        record("2", Layer::Infrastructure, Completed, None),
        record("3", Layer::Infrastructure, Failed, None),
        record("4", Layer::Platform, Completed, None),
        record("5", Layer::Platform, Skipped, Some(SkipReason::Cooldown)),
        record("6", Layer::Data, Skipped, Some(SkipReason::Cooldown)),
        record("7", Layer::Data, Skipped, Some(SkipReason::Duplicate)),
        record("8", Layer::Network, InProgress, None),
        record("9", Layer::Network, Pending, None),
        record("10", Layer::Application, Skipped, None),
    ];

    let stats = Statistics::compute(&records, &shipped());

    assert_eq!(stats.total, 10);
    assert_eq!(stats.completed, 3);
    assert_eq!(stats.failed, 1);
    assert_eq!(stats.skipped, 4);
    assert_eq!(stats.active, 2);
    assert_eq!(stats.success_rate, Some(0.75));
    assert_eq!(
        stats.per_layer,
        BTreeMap::from([
            (Layer::Infrastructure, counts(3, 2, 1, 0, 0)),
            (Layer::Platform, counts(2, 1, 0, 1, 0)),
            (Layer::Application, counts(1, 0, 0, 1, 0)),
            (Layer::Data, counts(2, 0, 0, 2, 0)),
            (Layer::Network, counts(2, 0, 0, 0, 2)),
        ])
    );
    assert_eq!(
        stats.skipped_by_reason,
        BTreeMap::from([(SkipReason::Cooldown, 2), (SkipReason::Duplicate, 1)])
    );
}

#[test]
fn given_only_skipped_and_active_records_when_computed_then_there_is_no_success_rate() {
    let records = [
        record(
            "1",
            Layer::Data,
            HealingStatus::Skipped,
            Some(SkipReason::ShadowMode),
        ),
        record("2", Layer::Data, HealingStatus::InProgress, None),
    ];

    let stats = Statistics::compute(&records, &shipped());

    assert_eq!(stats.success_rate, None);
    assert_eq!(stats.active, 1);
    assert_eq!(stats.skipped, 1);
}

#[test]
fn given_only_failures_when_computed_then_the_success_rate_is_zero() {
    let records = [
        record("1", Layer::Platform, HealingStatus::Failed, None),
        record("2", Layer::Platform, HealingStatus::Failed, None),
    ];

    assert_eq!(
        Statistics::compute(&records, &shipped()).success_rate,
        Some(0.0)
    );
}

#[test]
fn given_only_completions_when_computed_then_the_success_rate_is_one() {
    let records = [record("1", Layer::Network, HealingStatus::Completed, None)];

    assert_eq!(
        Statistics::compute(&records, &shipped()).success_rate,
        Some(1.0)
    );
}

#[test]
fn given_the_shipped_rules_when_computed_then_all_rules_are_registered_and_enabled() {
    let rules = shipped();

    let stats = Statistics::compute(&[], &rules);

    // The twelve reference rules and three network rules, all enabled.
    assert_eq!(stats.rules_registered, 16);
    assert_eq!(stats.rules_enabled, 16);
}

#[test]
fn given_disabled_rules_when_computed_then_they_are_registered_but_not_enabled() {
    let text = autoheal_core::SHIPPED_RULES
        .replacen(
            "name = \"ec2-instance-healing\"\n",
            "name = \"ec2-instance-healing\"\nenabled = false\n",
            1,
        )
        .replacen(
            "name = \"nat-route-healing\"\n",
            "name = \"nat-route-healing\"\nenabled = false\n",
            1,
        );
    let rules = RuleSet::from_toml(&text).unwrap_or_else(|e| panic!("{e}"));

    let stats = Statistics::compute(&[], &rules);

    assert_eq!(stats.rules_registered, 16);
    assert_eq!(stats.rules_enabled, 14);
}

#[test]
fn given_records_by_reference_from_any_iterator_when_computed_then_the_result_is_the_same() {
    let records = [
        record("1", Layer::Infrastructure, HealingStatus::Completed, None),
        record("2", Layer::Infrastructure, HealingStatus::Failed, None),
        record("3", Layer::Network, HealingStatus::Completed, None),
    ];
    let rules = shipped();

    let infrastructure = [records[0].clone(), records[1].clone()];
    let from_slice = Statistics::compute(&infrastructure, &rules);
    let from_iter = Statistics::compute(
        records.iter().filter(|r| r.layer == Layer::Infrastructure),
        &rules,
    );

    assert_eq!(from_slice, from_iter);
    assert_eq!(from_iter.total, 2);
    assert_eq!(from_iter.success_rate, Some(0.5));
}

#[test]
fn given_statistics_when_serialized_then_layers_and_reasons_are_readable_keys() {
    let records = [record(
        "1",
        Layer::Infrastructure,
        HealingStatus::Skipped,
        Some(SkipReason::MaxAttempts),
    )];
    let stats = Statistics::compute(&records, &shipped());

    let json = serde_json::to_value(&stats).unwrap_or_else(|e| panic!("{e}"));

    assert_eq!(json["per_layer"]["infrastructure"]["skipped"], 1);
    assert_eq!(json["skipped_by_reason"]["max-attempts"], 1);
    assert_eq!(json["success_rate"], serde_json::Value::Null);
}

#[test]
fn given_records_of_several_accounts_when_computed_then_each_account_has_its_counts() {
    let in_account = |id: &str, account: &str, status| HealingRecord {
        account: Some(account.to_owned()),
        region: Some("eu-west-1".to_owned()),
        ..record(id, Layer::Infrastructure, status, None)
    };
    let records = [
        in_account("a", "111111111111", HealingStatus::Completed),
        in_account("b", "222222222222", HealingStatus::Failed),
        in_account("c", "222222222222", HealingStatus::Completed),
        // Recorded before records named their account: counted, under no account.
        record("d", Layer::Data, HealingStatus::Completed, None),
    ];

    let stats = Statistics::compute(&records, &shipped());

    assert_eq!(stats.total, 4);
    assert_eq!(
        stats.per_account,
        BTreeMap::from([
            ("111111111111".to_owned(), counts(1, 1, 0, 0, 0)),
            ("222222222222".to_owned(), counts(2, 1, 1, 0, 0)),
        ])
    );
    let json = serde_json::to_value(&stats).unwrap();
    assert_eq!(json["per_account"]["222222222222"]["failed"], 1);
    let one_account = Statistics::compute(&records[3..], &shipped());
    let json = serde_json::to_value(&one_account).unwrap();
    assert!(json.get("per_account").is_none(), "{json}");
}
