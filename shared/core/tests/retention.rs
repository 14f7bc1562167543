//! Snapshot retention: which of autoheal's own snapshots are deleted, and that nothing else
//! ever is.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;

use autoheal_core::policy::retention::{
    self, MANAGED_TAG, RULE_TAG, Report, Retention, SNAPSHOT_OF_TAG, Scope, SnapshotFacts,
    SnapshotStore, ownership_tags,
};
use autoheal_core::{Action, RuleSet};

const SOURCE: &str = "vol-1";
const RULE: &str = "ebs-volume-healing";

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0).unwrap()
}

fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// autoheal's finished snapshot of `SOURCE`, `days` old.
fn own(id: &str, days: i64) -> SnapshotFacts {
    SnapshotFacts {
        id: id.to_owned(),
        taken_of: Some(SOURCE.to_owned()),
        created_at: Some(now() - Duration::days(days)),
        ready: true,
        made_by_autoheal: true,
        tags: ownership_tags(SOURCE, RULE)
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
    }
}

fn scope(just_made: &str) -> Scope<'_> {
    Scope {
        source: SOURCE,
        rule: RULE,
        just_made,
    }
}

fn keep(keep: u32) -> Retention {
    Retention {
        keep,
        max_age_days: None,
    }
}

fn ids(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

// ------------------------------------------------------------------ examples

#[test]
fn given_five_own_snapshots_and_keep_three_then_the_two_oldest_are_deleted() {
    let snapshots = vec![
        own("snap-new", 0),
        own("snap-d1", 1),
        own("snap-d5", 5),
        own("snap-d9", 9),
        own("snap-d2", 2),
    ];

    let plan = retention::plan(&snapshots, scope("snap-new"), keep(3), now());

    assert_eq!(plan.delete, ids(&["snap-d5", "snap-d9"]));
    assert_eq!(plan.keep, ids(&["snap-new", "snap-d1", "snap-d2"]));
    assert_eq!(
        retention::to_delete(&snapshots, scope("snap-new"), keep(3), now()),
        plan.delete
    );
}

/// Tags can be added by anyone allowed to tag: a snapshot tagged exactly as autoheal tags its
/// own, but not made by autoheal (its description or identifier says otherwise), is never a
/// candidate, however old.
#[test]
fn given_a_snapshot_someone_tagged_as_autoheals_then_it_is_never_deleted() {
    let mut forged = own("snap-golden", 30);
    forged.made_by_autoheal = false;
    let snapshots = vec![own("snap-new", 0), forged, own("snap-d9", 9)];

    let plan = retention::plan(&snapshots, scope("snap-new"), keep(1), now());

    assert_eq!(plan.delete, ids(&["snap-d9"]));
    assert!(!plan.keep.contains(&"snap-golden".to_owned()));
}

#[test]
fn given_keep_one_then_only_the_snapshot_just_made_remains() {
    let snapshots = vec![own("snap-a", 3), own("snap-new", 0), own("snap-b", 4)];

    let plan = retention::plan(&snapshots, scope("snap-new"), keep(1), now());

    assert_eq!(plan.delete, ids(&["snap-a", "snap-b"]));
    assert_eq!(plan.keep, ids(&["snap-new"]));
}

#[test]
fn given_the_snapshot_just_made_is_not_the_newest_then_it_is_still_kept() {
    // A retried attempt reuses a snapshot taken before newer ones (clock skew, or an
    // attempt that died long ago).
    // The newest `keep` stay, and the one just made as well.
    let snapshots = vec![
        own("snap-old-attempt", 10),
        own("snap-1", 1),
        own("snap-2", 2),
        own("snap-3", 3),
    ];

    let plan = retention::plan(&snapshots, scope("snap-old-attempt"), keep(2), now());

    assert_eq!(plan.delete, ids(&["snap-3"]));
    assert_eq!(plan.keep, ids(&["snap-1", "snap-2", "snap-old-attempt"]));
}

#[test]
fn given_snapshots_that_are_not_autoheals_then_none_of_them_is_a_candidate() {
    let mut person = own("snap-person", 30);
    person.tags.clear();
    let mut other_volume = own("snap-other-volume", 30);
    other_volume.tags = tags(&[
        (MANAGED_TAG, "true"),
        (SNAPSHOT_OF_TAG, "vol-2"),
        (RULE_TAG, RULE),
    ]);
    other_volume.taken_of = Some("vol-2".to_owned());
    let mut other_rule = own("snap-other-rule", 30);
    other_rule
        .tags
        .insert(RULE_TAG.to_owned(), "some-other-rule".to_owned());
    let mut not_managed = own("snap-managed-false", 30);
    not_managed
        .tags
        .insert(MANAGED_TAG.to_owned(), "false".to_owned());
    let mut managed_upper = own("snap-managed-TRUE", 30);
    managed_upper
        .tags
        .insert(MANAGED_TAG.to_owned(), "TRUE".to_owned());
    let mut only_managed = own("snap-only-managed", 30);
    only_managed.tags = tags(&[(MANAGED_TAG, "true")]);
    let mut only_source = own("snap-only-source", 30);
    only_source.tags = tags(&[(SNAPSHOT_OF_TAG, SOURCE), (RULE_TAG, RULE)]);
    // Tagged as ours, but the service says it is a copy, or of another volume.
    let mut copy = own("snap-copy", 30);
    copy.taken_of = None;
    let mut moved = own("snap-of-vol-9", 30);
    moved.taken_of = Some("vol-9".to_owned());
    let snapshots = vec![
        own("snap-new", 0),
        person,
        other_volume,
        other_rule,
        not_managed,
        managed_upper,
        only_managed,
        only_source,
        copy,
        moved,
    ];

    let plan = retention::plan(&snapshots, scope("snap-new"), keep(1), now());

    assert!(plan.delete.is_empty(), "{plan:?}");
    assert_eq!(plan.keep, ids(&["snap-new"]), "only autoheal's are listed");
}

#[test]
fn given_unfinished_or_undated_snapshots_then_they_are_kept_and_do_not_count() {
    let mut pending = own("snap-pending", 0);
    pending.ready = false;
    let mut undated = own("snap-undated", 0);
    undated.created_at = None;
    let snapshots = vec![
        pending,
        undated,
        own("snap-new", 0),
        own("snap-1", 1),
        own("snap-2", 2),
    ];

    let plan = retention::plan(&snapshots, scope("snap-new"), keep(2), now());

    assert_eq!(plan.delete, ids(&["snap-2"]));
    assert_eq!(
        plan.keep,
        ids(&["snap-pending", "snap-new", "snap-1", "snap-undated"])
    );
}

#[test]
fn given_a_maximum_age_then_older_snapshots_go_even_among_the_newest_keep() {
    let snapshots = vec![own("snap-new", 0), own("snap-10", 10), own("snap-40", 40)];
    let retention = Retention {
        keep: 5,
        max_age_days: Some(30),
    };

    let plan = retention::plan(&snapshots, scope("snap-new"), retention, now());

    assert_eq!(plan.delete, ids(&["snap-40"]));
    assert_eq!(plan.keep, ids(&["snap-new", "snap-10"]));
}

#[test]
fn given_a_maximum_age_then_exactly_that_age_is_kept_and_the_just_made_one_always() {
    let mut ancient_new = own("snap-new", 400);
    ancient_new.created_at = Some(now() - Duration::days(400));
    let snapshots = vec![ancient_new, own("snap-30", 30), own("snap-31", 31)];
    let retention = Retention {
        keep: 5,
        max_age_days: Some(30),
    };

    let plan = retention::plan(&snapshots, scope("snap-new"), retention, now());

    assert_eq!(plan.delete, ids(&["snap-31"]));
    assert_eq!(plan.keep, ids(&["snap-30", "snap-new"]));
}

#[test]
fn given_a_snapshot_listed_twice_then_it_is_planned_once() {
    let snapshots = vec![
        own("snap-new", 0),
        own("snap-1", 1),
        own("snap-1", 1),
        own("snap-2", 2),
    ];

    let plan = retention::plan(&snapshots, scope("snap-new"), keep(1), now());

    assert_eq!(plan.delete, ids(&["snap-1", "snap-2"]));
}

#[test]
fn given_the_ownership_tags_then_they_mark_the_snapshot_as_autoheals() {
    let tags = ownership_tags("db-1", "rds-instance-healing");
    assert_eq!(
        tags,
        [
            ("autoheal:managed", "true".to_owned()),
            ("autoheal:snapshot-of", "db-1".to_owned()),
            ("autoheal:rule", "rds-instance-healing".to_owned()),
        ]
    );
}

#[test]
fn given_the_shipped_rules_then_the_snapshot_taking_actions_have_a_retention() {
    let rules = RuleSet::shipped().unwrap();
    for name in [
        "ebs-volume-healing",
        "rds-instance-healing",
        "backup-verification-healing",
    ] {
        let rule = rules.get(name).unwrap();
        assert_eq!(
            Retention::of(&rule.action),
            Some(keep(3)),
            "{name}: the shipped file sets keep_snapshots = 3, no maximum age"
        );
    }
    for rule in rules.rules() {
        if !matches!(
            rule.action,
            Action::RepairEbsVolume { .. }
                | Action::RebootRdsInstance { .. }
                | Action::VerifyBackup { .. }
        ) {
            assert_eq!(Retention::of(&rule.action), None, "{}", rule.name);
        }
    }
}

// ------------------------------------------------------------------ the run and its report

/// A store of snapshots in memory; deleting `refuse` fails.
#[derive(Debug, Default)]
struct Store {
    snapshots: Mutex<Vec<SnapshotFacts>>,
    refuse: BTreeSet<String>,
    list_error: Option<String>,
}

impl SnapshotStore for Store {
    async fn list(&self, source: &str) -> Result<Vec<SnapshotFacts>, String> {
        assert_eq!(source, SOURCE);
        match &self.list_error {
            Some(error) => Err(error.clone()),
            None => Ok(self.snapshots.lock().unwrap().clone()),
        }
    }

    async fn delete(&self, id: &str) -> Result<(), String> {
        if self.refuse.contains(id) {
            return Err(format!("UnauthorizedOperation: not allowed to delete {id}"));
        }
        self.snapshots.lock().unwrap().retain(|s| s.id != id);
        Ok(())
    }
}

fn remaining(store: &Store) -> Vec<String> {
    store
        .snapshots
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.id.clone())
        .collect()
}

#[tokio::test]
async fn given_a_run_then_it_deletes_the_plan_and_reports_deleted_and_kept() {
    let mut person = own("snap-person", 50);
    person.tags.clear();
    let store = Store {
        snapshots: Mutex::new(vec![
            own("snap-new", 0),
            own("snap-1", 1),
            own("snap-2", 2),
            own("snap-3", 3),
            own("snap-4", 4),
            person,
        ]),
        ..Store::default()
    };

    let report = retention::apply(&store, scope("snap-new"), keep(3), now()).await;

    assert_eq!(report.deleted, ids(&["snap-3", "snap-4"]));
    assert_eq!(report.kept, ids(&["snap-new", "snap-1", "snap-2"]));
    assert!(report.not_deleted.is_empty() && report.error.is_none());
    assert_eq!(
        remaining(&store),
        ids(&["snap-new", "snap-1", "snap-2", "snap-person"])
    );
    let mut details = BTreeMap::new();
    report.write_details(&mut details);
    assert_eq!(details["snapshots_deleted"], "snap-3,snap-4");
    assert_eq!(details["snapshots_kept"], "snap-new,snap-1,snap-2");
    assert!(!details.contains_key("snapshots_not_deleted"));
    assert_eq!(
        report.summary(),
        "deleted 2 older snapshots (snap-3, snap-4), kept 3"
    );

    // Run again (a retried attempt): nothing more goes.
    let again = retention::apply(&store, scope("snap-new"), keep(3), now()).await;
    assert!(again.deleted.is_empty(), "{again:?}");
    let mut details = BTreeMap::new();
    again.write_details(&mut details);
    assert_eq!(details["snapshots_deleted"], "");
    assert_eq!(again.summary(), "no older snapshot deleted, kept 3");
}

#[tokio::test]
async fn given_a_deletion_the_service_refuses_then_the_others_still_go_and_it_is_reported() {
    let store = Store {
        snapshots: Mutex::new(vec![own("snap-new", 0), own("snap-1", 1), own("snap-2", 2)]),
        refuse: BTreeSet::from(["snap-1".to_owned()]),
        ..Store::default()
    };

    let report = retention::apply(&store, scope("snap-new"), keep(1), now()).await;

    assert_eq!(report.deleted, ids(&["snap-2"]));
    assert_eq!(report.not_deleted.len(), 1);
    assert_eq!(report.not_deleted[0].0, "snap-1");
    assert_eq!(remaining(&store), ids(&["snap-new", "snap-1"]));
    let mut details = BTreeMap::new();
    report.write_details(&mut details);
    assert_eq!(details["snapshots_deleted"], "snap-2");
    assert_eq!(
        details["snapshots_not_deleted"],
        "snap-1: UnauthorizedOperation: not allowed to delete snap-1"
    );
    let summary = report.summary();
    assert!(
        summary.contains("could not delete snap-1") && summary.contains("UnauthorizedOperation"),
        "{summary}"
    );
}

#[tokio::test]
async fn given_a_listing_that_fails_then_nothing_is_deleted_and_the_error_is_reported() {
    let store = Store {
        snapshots: Mutex::new(vec![own("snap-new", 0), own("snap-1", 1)]),
        list_error: Some("DescribeSnapshots: RequestLimitExceeded: slow down".to_owned()),
        ..Store::default()
    };

    let report = retention::apply(&store, scope("snap-new"), keep(1), now()).await;

    assert_eq!(
        report,
        Report {
            error: Some("DescribeSnapshots: RequestLimitExceeded: slow down".to_owned()),
            ..Report::default()
        }
    );
    assert_eq!(remaining(&store), ids(&["snap-new", "snap-1"]));
    let mut details = BTreeMap::new();
    report.write_details(&mut details);
    assert_eq!(
        details["snapshot_retention_error"],
        "DescribeSnapshots: RequestLimitExceeded: slow down"
    );
    assert!(report.summary().contains("RequestLimitExceeded"));
}

// ------------------------------------------------------------------ properties

/// One listed snapshot: what kind of owner it has, its age in hours, whether it is finished
/// and dated.
fn arb_snapshot() -> impl Strategy<Value = (u8, i64, bool, bool)> {
    (
        0u8..6,
        0i64..2000,
        prop::bool::weighted(0.85),
        prop::bool::weighted(0.9),
    )
}

fn build(index: usize, (kind, hours, ready, dated): (u8, i64, bool, bool)) -> SnapshotFacts {
    let mut facts = own(&format!("snap-{index:03}"), 0);
    facts.created_at = dated.then(|| now() - Duration::hours(hours));
    facts.ready = ready;
    match kind {
        // autoheal's own (most of them)
        0..=2 => {}
        // a person's: no tags
        3 => facts.tags.clear(),
        // autoheal's, of another volume
        4 => {
            facts
                .tags
                .insert(SNAPSHOT_OF_TAG.to_owned(), "vol-2".to_owned());
            facts.taken_of = Some("vol-2".to_owned());
        }
        // tagged like ours, but a copy
        _ => facts.taken_of = None,
    }
    facts
}

fn arb_case() -> impl Strategy<Value = (Vec<SnapshotFacts>, usize, Retention)> {
    (
        prop::collection::vec(arb_snapshot(), 1..25),
        any::<prop::sample::Index>(),
        1u32..6,
        prop::option::of(1u32..60),
    )
        .prop_map(|(raw, just_made, keep, max_age_days)| {
            let snapshots: Vec<SnapshotFacts> = raw
                .into_iter()
                .enumerate()
                .map(|(i, s)| build(i, s))
                .collect();
            let just_made = just_made.index(snapshots.len());
            (snapshots, just_made, Retention { keep, max_age_days })
        })
}

/// autoheal's finished, dated snapshots of `SOURCE`, newest first (as the plan ranks them).
fn ranked(snapshots: &[SnapshotFacts]) -> Vec<&SnapshotFacts> {
    let mut own: Vec<&SnapshotFacts> = snapshots
        .iter()
        .filter(|s| s.is_autoheals(SOURCE, RULE) && s.ready && s.created_at.is_some())
        .collect();
    own.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    own
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn never_deletes_the_snapshot_just_made((snapshots, just_made, retention) in arb_case()) {
        let id = snapshots[just_made].id.clone();
        let delete = retention::to_delete(&snapshots, scope(&id), retention, now());
        prop_assert!(!delete.contains(&id), "{:?}", delete);
    }

    #[test]
    fn never_deletes_a_snapshot_that_is_not_autoheals_or_not_finished(
        (snapshots, just_made, retention) in arb_case()
    ) {
        let id = snapshots[just_made].id.clone();
        let delete = retention::to_delete(&snapshots, scope(&id), retention, now());
        for deleted in &delete {
            let facts = snapshots.iter().find(|s| &s.id == deleted).unwrap();
            prop_assert!(facts.tags.get(MANAGED_TAG).map(String::as_str) == Some("true"), "{:?}", facts);
            prop_assert!(facts.tags.get(SNAPSHOT_OF_TAG).map(String::as_str) == Some(SOURCE), "{:?}", facts);
            prop_assert!(facts.taken_of.as_deref() == Some(SOURCE), "{:?}", facts);
            prop_assert!(facts.ready && facts.created_at.is_some(), "{:?}", facts);
        }
        let unique: BTreeSet<&String> = delete.iter().collect();
        prop_assert_eq!(unique.len(), delete.len());
    }

    #[test]
    fn never_deletes_the_newest_keep_unless_they_are_past_the_maximum_age(
        (snapshots, just_made, retention) in arb_case()
    ) {
        let id = snapshots[just_made].id.clone();
        let delete = retention::to_delete(&snapshots, scope(&id), retention, now());
        let max_age = retention.max_age_days.map(|d| Duration::days(i64::from(d)));
        for facts in ranked(&snapshots).into_iter().take(retention.keep as usize) {
            let too_old = max_age.is_some_and(|age| now() - facts.created_at.unwrap() > age);
            prop_assert!(too_old || !delete.contains(&facts.id), "{} deleted: {:?}", facts.id, delete);
        }
        if retention.max_age_days.is_none() {
            for facts in ranked(&snapshots).into_iter().take(retention.keep as usize) {
                prop_assert!(!delete.contains(&facts.id));
            }
        }
    }

    #[test]
    fn leaves_at_most_keep_finished_snapshots_and_none_past_the_maximum_age(
        (snapshots, just_made, retention) in arb_case()
    ) {
        let id = snapshots[just_made].id.clone();
        let plan = retention::plan(&snapshots, scope(&id), retention, now());
        let left: Vec<&SnapshotFacts> = ranked(&snapshots)
            .into_iter()
            .filter(|s| !plan.delete.contains(&s.id))
            .collect();
        // At most `keep` finished snapshots stay, the one just made among them when it is
        // one of the newest `keep` (else it stays as well).
        let others_left = left.iter().filter(|s| s.id != id).count();
        prop_assert!(others_left <= retention.keep as usize, "{:?}", plan);
        let just_made_is_newest = ranked(&snapshots)
            .iter()
            .take(retention.keep as usize)
            .any(|s| s.id == id);
        if just_made_is_newest {
            prop_assert!(left.len() <= retention.keep as usize, "{:?}", plan);
        }
        if let Some(days) = retention.max_age_days {
            for facts in left.iter().filter(|s| s.id != id) {
                prop_assert!(now() - facts.created_at.unwrap() <= Duration::days(i64::from(days)));
            }
        }
        // Kept and deleted are autoheal's own snapshots of the source, each in one list.
        let own: BTreeSet<&str> = snapshots
            .iter()
            .filter(|s| s.is_autoheals(SOURCE, RULE))
            .map(|s| s.id.as_str())
            .collect();
        let planned: BTreeSet<&str> = plan.keep.iter().chain(&plan.delete).map(String::as_str).collect();
        prop_assert_eq!(planned, own);
        prop_assert_eq!(plan.keep.len() + plan.delete.len(), own_len(&snapshots));
    }

    #[test]
    fn the_plan_does_not_depend_on_the_listing_order(
        (snapshots, just_made, retention) in arb_case(),
        seed in any::<u64>(),
    ) {
        let id = snapshots[just_made].id.clone();
        let mut shuffled = snapshots.clone();
        // A deterministic shuffle from the seed.
        let mut state = seed | 1;
        for i in (1..shuffled.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            shuffled.swap(i, (state % (i as u64 + 1)) as usize);
        }
        prop_assert_eq!(
            retention::plan(&snapshots, scope(&id), retention, now()),
            retention::plan(&shuffled, scope(&id), retention, now())
        );
    }
}

fn own_len(snapshots: &[SnapshotFacts]) -> usize {
    snapshots
        .iter()
        .filter(|s| s.is_autoheals(SOURCE, RULE))
        .map(|s| s.id.as_str())
        .collect::<BTreeSet<_>>()
        .len()
}
