//! Snapshot retention: which of autoheal's own snapshots of a resource go once it has taken a
//! new one.
//!
//! `repair-ebs-volume`, `reboot-rds-instance` and `verify-backup` each take a manual snapshot.
//! Without retention every heal would leave one more behind, forever. After a heal that took
//! a snapshot succeeded, its action lists the snapshots of the same resource and deletes those
//! this policy names; everything about *which* ones is decided here, without I/O:
//!
//! - only autoheal's own snapshots are candidates: tagged `autoheal:managed=true`,
//!   `autoheal:snapshot-of=<the resource>` and `autoheal:rule=<the rule>`, and reported by the
//!   service as taken of that resource (a copy, shared or not, is never a candidate). A
//!   person's snapshot, an AWS automated backup, another rule's or another resource's
//!   snapshot is never touched;
//! - the snapshot just taken is always kept, and so is every snapshot that is not finished
//!   (`completed` / `available`) or whose creation time is unknown;
//! - of the finished candidates, the newest `keep_snapshots` are kept, the rest deleted;
//! - with `snapshot_max_age_days`, finished candidates older than that are deleted too, even
//!   among the newest `keep_snapshots` (except the one just taken).
//!
//! The tags are also what the IAM policy conditions deletion on, so a snapshot autoheal did
//! not tag cannot be deleted by it even if this code were wrong. Tags can be added by anyone
//! allowed to tag, so a candidate must also carry what only its creator could set and nobody
//! can change: an EBS snapshot's description (`autoheal: …`, fixed at creation), an RDS
//! snapshot's identifier (`autoheal-…`, which cannot be renamed). Someone who tags their own
//! snapshot as autoheal's does not make it one.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use chrono::{DateTime, Duration, Utc};
use tracing::warn;

/// The retention a rule's action sets, which [`plan`] applies.
pub use crate::model::rules::Retention;

/// `true` on every snapshot autoheal takes: the proof that autoheal made it.
pub const MANAGED_TAG: &str = "autoheal:managed";
/// The volume or DB instance the snapshot is of.
pub const SNAPSHOT_OF_TAG: &str = "autoheal:snapshot-of";
/// The rule that took the snapshot: each rule's retention governs its own snapshots only.
pub const RULE_TAG: &str = "autoheal:rule";

/// The tags that make a snapshot of `source` taken for `rule` autoheal's own: put them on the
/// snapshot when it is created (with the action's own tags).
pub fn ownership_tags(source: &str, rule: &str) -> [(&'static str, String); 3] {
    [
        (MANAGED_TAG, "true".to_owned()),
        (SNAPSHOT_OF_TAG, source.to_owned()),
        (RULE_TAG, rule.to_owned()),
    ]
}

/// What the service says about one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotFacts {
    pub id: String,
    /// The volume or DB instance the service says the snapshot was taken of; `None` when it
    /// does not say, or when the snapshot is a copy of another snapshot.
    pub taken_of: Option<String>,
    /// When the snapshot was started (EBS) or created (RDS).
    pub created_at: Option<DateTime<Utc>>,
    /// Finished and usable: `completed` (EBS), `available` (RDS).
    pub ready: bool,
    pub tags: BTreeMap<String, String>,
    /// What the service reports that only the snapshot's creator could set, and nobody can
    /// change since, says autoheal created it (see the module's docs).
    pub made_by_autoheal: bool,
}

/// How every EBS snapshot autoheal takes is described (`CreateSnapshot`'s description, which
/// cannot be changed afterwards).
pub const EBS_DESCRIPTION_PREFIX: &str = "autoheal: ";

/// How every RDS snapshot autoheal takes is named (an identifier cannot be changed).
pub const RDS_IDENTIFIER_PREFIX: &str = "autoheal-";

impl SnapshotFacts {
    /// Whether autoheal took this snapshot of `source` for `rule`.
    pub fn is_autoheals(&self, source: &str, rule: &str) -> bool {
        let tag = |key: &str| self.tags.get(key).map(String::as_str);
        self.made_by_autoheal
            && tag(MANAGED_TAG) == Some("true")
            && tag(SNAPSHOT_OF_TAG) == Some(source)
            && tag(RULE_TAG) == Some(rule)
            && self.taken_of.as_deref() == Some(source)
    }
}

/// Whose snapshots a retention run looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope<'a> {
    /// The volume or DB instance.
    pub source: &'a str,
    /// The rule that took the snapshots.
    pub rule: &'a str,
    /// The snapshot the heal just took (or reused): never deleted.
    pub just_made: &'a str,
}

/// autoheal's own snapshots of the scope's source, split into those to delete and those kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Newest first.
    pub delete: Vec<String>,
    /// Newest first; the snapshots of other owners, sources or rules are in neither list.
    pub keep: Vec<String>,
}

/// Decides which of `snapshots` to delete (see the module documentation).
pub fn plan(
    snapshots: &[SnapshotFacts],
    scope: Scope<'_>,
    retention: Retention,
    now: DateTime<Utc>,
) -> Plan {
    let mut seen = BTreeSet::new();
    let mut own: Vec<&SnapshotFacts> = snapshots
        .iter()
        .filter(|s| s.is_autoheals(scope.source, scope.rule))
        .filter(|s| seen.insert(s.id.as_str()))
        .collect();
    // Newest first; unknown times last; ties by id, so that the plan does not depend on the
    // order the service listed them in.
    own.sort_by(|a, b| {
        b.created_at
            .is_some()
            .cmp(&a.created_at.is_some())
            .then(b.created_at.cmp(&a.created_at))
            .then(b.id.cmp(&a.id))
    });
    let max_age = retention
        .max_age_days
        .map(|days| Duration::days(i64::from(days)));
    let mut plan = Plan::default();
    let mut finished = 0u32;
    for snapshot in own {
        let just_made = snapshot.id == scope.just_made;
        let delete = match snapshot.created_at {
            _ if just_made => {
                finished += u32::from(snapshot.ready);
                false
            }
            Some(created_at) if snapshot.ready => {
                finished += 1;
                finished > retention.keep || max_age.is_some_and(|age| now - created_at > age)
            }
            // Not finished, or of unknown age: kept, and not counted among the `keep`.
            _ => false,
        };
        if delete {
            plan.delete.push(snapshot.id.clone());
        } else {
            plan.keep.push(snapshot.id.clone());
        }
    }
    plan
}

/// The ids [`plan`] deletes.
pub fn to_delete(
    snapshots: &[SnapshotFacts],
    scope: Scope<'_>,
    retention: Retention,
    now: DateTime<Utc>,
) -> Vec<String> {
    plan(snapshots, scope, retention, now).delete
}

/// A service's snapshots of one resource: the per-service adapter of a retention run.
pub trait SnapshotStore {
    /// The snapshots of `source` that may be autoheal's (a narrower listing is an
    /// optimisation: [`plan`] checks every snapshot again). Errors are readable messages.
    fn list(&self, source: &str)
    -> impl Future<Output = Result<Vec<SnapshotFacts>, String>> + Send;

    fn delete(&self, id: &str) -> impl Future<Output = Result<(), String>> + Send;
}

/// What a retention run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub deleted: Vec<String>,
    pub kept: Vec<String>,
    /// Snapshots the plan deleted but the service refused, with its reason.
    pub not_deleted: Vec<(String, String)>,
    /// Why the snapshots could not be listed (nothing was deleted then).
    pub error: Option<String>,
}

impl Report {
    /// Adds `snapshots_deleted` and `snapshots_kept` (ids, comma-separated, newest first) and,
    /// when something went wrong, `snapshots_not_deleted` or `snapshot_retention_error`.
    pub fn write_details(&self, details: &mut BTreeMap<String, String>) {
        if let Some(error) = &self.error {
            details.insert("snapshot_retention_error".to_owned(), error.clone());
            return;
        }
        details.insert("snapshots_deleted".to_owned(), self.deleted.join(","));
        details.insert("snapshots_kept".to_owned(), self.kept.join(","));
        if !self.not_deleted.is_empty() {
            let failures: Vec<String> = self
                .not_deleted
                .iter()
                .map(|(id, reason)| format!("{id}: {reason}"))
                .collect();
            details.insert("snapshots_not_deleted".to_owned(), failures.join("; "));
        }
    }

    /// Puts the report into the record of the heal it follows: its details, and a clause of
    /// its summary.
    pub fn add_to(&self, summary: &mut String, details: &mut BTreeMap<String, String>) {
        self.write_details(details);
        summary.push_str(&format!("; {}", self.summary()));
    }

    /// One sentence for the run's summary.
    pub fn summary(&self) -> String {
        if let Some(error) = &self.error {
            return format!("older snapshots were not cleaned up: {error}");
        }
        let mut summary = match self.deleted.len() {
            0 => "no older snapshot deleted".to_owned(),
            1 => format!("deleted older snapshot {}", self.deleted[0]),
            n => format!("deleted {n} older snapshots ({})", self.deleted.join(", ")),
        };
        summary.push_str(&format!(", kept {}", self.kept.len()));
        if !self.not_deleted.is_empty() {
            let ids: Vec<&str> = self.not_deleted.iter().map(|(id, _)| id.as_str()).collect();
            summary.push_str(&format!(
                "; could not delete {} ({})",
                ids.join(", "),
                self.not_deleted
                    .iter()
                    .map(|(_, reason)| reason.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
        summary
    }
}

/// Lists the scope's snapshots, deletes what [`plan`] says, and reports. Never fails: a
/// listing or a deletion that fails is in the report, and the heal it follows stands.
pub async fn apply<S: SnapshotStore>(
    store: &S,
    scope: Scope<'_>,
    retention: Retention,
    now: DateTime<Utc>,
) -> Report {
    let snapshots = match store.list(scope.source).await {
        Ok(snapshots) => snapshots,
        Err(error) => {
            warn!(resource = scope.source, rule = scope.rule, %error, "snapshots not listed: retention skipped");
            return Report {
                error: Some(error),
                ..Report::default()
            };
        }
    };
    let plan = plan(&snapshots, scope, retention, now);
    let mut report = Report {
        kept: plan.keep,
        ..Report::default()
    };
    for id in plan.delete {
        match store.delete(&id).await {
            Ok(()) => report.deleted.push(id),
            Err(error) => {
                warn!(resource = scope.source, rule = scope.rule, snapshot = %id, %error, "snapshot not deleted");
                report.not_deleted.push((id, error));
            }
        }
    }
    report
}
