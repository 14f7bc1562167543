//! `verify-backup`: take a fresh backup of an RDS instance and prove it restores.
//!
//! The work takes minutes to hours (a large database's snapshot, a restore), so it runs as
//! steps, each in its own short invocation: a step that finds AWS still working answers
//! `Continuing` and autoheal resumes the action in a follow-up, with the same attempt and
//! idempotency token. Everything the action makes is named from that token, so each step
//! sees what earlier ones (or a run that died) left and never repeats one:
//!
//! 1. **The backup**: a manual snapshot `autoheal-verify-<db>-<token>`, tagged as autoheal's,
//!    taken once; the action waits (across follow-ups) until it is `available`. The snapshot
//!    is kept: it is the fresh backup. A snapshot that fails is the verification's failure.
//! 2. **The test restore**: a temporary instance `autoheal-verify-<db>-<token>` (the prefix its
//!    role may restore into and delete) restored from that
//!    snapshot with `restore_instance_class`, in the source's subnet group and security
//!    groups, never public, without deletion protection; the action waits until it is
//!    `available`. A restore that is refused or ends in a failed state IS the verification
//!    failure. The verdict is written on the snapshot (`autoheal:verification`) before the
//!    temporary instance goes, so that it outlives it.
//! 3. **The clean-up**: the temporary instance is deleted (no final snapshot, no automated
//!    backups) whatever the verdict, before the run is recorded.
//! 4. Only when the new backup proved it restores: autoheal's own older verified backups of
//!    the instance beyond the rule's retention are deleted (`autoheal_core::policy::retention`). A
//!    failed verification deletes no snapshot.
//! 5. **The backup policy** (`min_backup_retention_days`, `preferred_backup_window`): when
//!    the instance keeps automated backups fewer days than the policy, or its test restore
//!    failed, its backup settings are brought to the policy with `ModifyDBInstance`, and the
//!    previous values go into the record and the notification. Retention only ever grows.
//!    `ApplyImmediately` is never sent: it would also apply the instance's pending
//!    modifications (see [`policy`]).
//!
//! Before an attempt ([`BackupVerifier::assess`]), an instance that does not exist or is being
//! deleted is `gone`, and one that AWS or a person is working on (a backup, maintenance, a
//! modification) is waited for: a snapshot needs it `available`. If the instance goes while
//! a verification is under way, its test restore is still deleted.

pub mod policy;

use std::collections::BTreeMap;

use aws_sdk_rds::Client as RdsClient;
use aws_sdk_rds::types::{DbInstance, DbSnapshot};

use autoheal_aws::errors::{api_error, describe};
use autoheal_aws::snapshots::RdsSnapshots;
use autoheal_core::policy::retention::{self, Retention, Scope, ownership_tags};
use autoheal_core::{
    Assessment, Clock, HealError, HealOutcome, HealRequest, SkipReason, SystemClock,
};

use crate::instances::{
    FAILED_INSTANCE_STATES, Source, assess_source, created_by_autoheal, describe_instance,
    describe_source, source_is_gone, tag,
};
use crate::{rds_identifier, short_token, tag_map};

pub use policy::{Applied, BackupPolicy, PolicyChange};

/// How long to let AWS work on the snapshot or the test restore before looking again.
pub const STEP_INTERVAL_SECONDS: u64 = 120;
/// The verdict of the test restore, on the snapshot: `restored`, or `failed: <why>`.
pub const VERIFICATION_TAG: &str = "autoheal:verification";
/// RDS DB instance identifiers are at most 63 characters, snapshot identifiers 255.
const MAX_INSTANCE_ID: usize = 63;
const MAX_SNAPSHOT_ID: usize = 255;
/// What the test restore showed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Restored,
    Failed(String),
}

impl Verdict {
    fn from_tag(value: &str) -> Self {
        match value.strip_prefix("failed: ") {
            Some(why) => Verdict::Failed(why.to_owned()),
            None if value == "restored" => Verdict::Restored,
            None => Verdict::Failed(value.to_owned()),
        }
    }

    fn tag_value(&self) -> String {
        match self {
            Verdict::Restored => "restored".to_owned(),
            // RDS tag values are at most 256 characters.
            Verdict::Failed(why) => format!("failed: {why}").chars().take(256).collect(),
        }
    }
}

/// Verifies RDS backups by restoring them.
#[derive(Debug, Clone)]
pub struct BackupVerifier {
    rds: RdsClient,
}

impl BackupVerifier {
    pub fn new(rds: RdsClient) -> Self {
        BackupVerifier { rds }
    }

    /// Before an attempt: whether the instance is there, and whether it is free for a
    /// snapshot (AWS or a person working on it is waited for).
    pub async fn assess(&self, request: HealRequest<'_>) -> Result<Assessment, HealError> {
        assess_source(&self.rds, request.resource_id, true).await
    }

    /// Whether the instance no longer exists.
    pub async fn is_gone(&self, db: &str) -> Result<bool, HealError> {
        source_is_gone(&self.rds, db).await
    }

    /// Runs the next step of the verification (see the module's documentation).
    pub async fn verify(
        &self,
        request: HealRequest<'_>,
        restore_instance_class: &str,
        retention: Retention,
        policy: BackupPolicy<'_>,
    ) -> Result<HealOutcome, HealError> {
        let db = request.resource_id;
        let (reason, summary) = match describe_source(&self.rds, db).await? {
            Source::Healable(source) => {
                return self
                    .steps(request, &source, restore_instance_class, retention, policy)
                    .await;
            }
            Source::OptedOut(HealOutcome::Skipped { reason, summary }) => (reason, summary),
            Source::OptedOut(other) => return Ok(other),
            Source::Gone(why) => (SkipReason::Gone, why),
        };
        // Nothing more is verified, but a test restore an earlier step started goes.
        let (_, verify_id) = names(request);
        let summary = match self.clean_up(db, &verify_id).await {
            Ok(true) => format!("{summary}; its test restore {verify_id} was deleted"),
            Ok(false) => summary,
            Err(error) => format!(
                "{summary}; its test restore {verify_id} could not be deleted ({error}): delete it by hand"
            ),
        };
        Ok(HealOutcome::Skipped { reason, summary })
    }

    /// The steps of a verification of `source` (see the module's documentation).
    async fn steps(
        &self,
        request: HealRequest<'_>,
        source: &DbInstance,
        restore_instance_class: &str,
        retention: Retention,
        policy: BackupPolicy<'_>,
    ) -> Result<HealOutcome, HealError> {
        let db = request.resource_id;
        let (snapshot_id, verify_id) = names(request);
        let ids = || {
            BTreeMap::from([
                ("snapshot_id".to_owned(), snapshot_id.clone()),
                ("verified_instance_id".to_owned(), verify_id.clone()),
            ])
        };

        // 1. The backup.
        let snapshot = match self.snapshot(&snapshot_id).await? {
            Some(existing) => {
                let of = existing.db_instance_identifier();
                if of != Some(db) {
                    return Err(HealError::new(format!(
                        "DB snapshot {snapshot_id} already exists but is of {}, not {db}",
                        of.unwrap_or("another instance")
                    )));
                }
                existing
            }
            None => {
                let status = source.db_instance_status().unwrap_or("unknown");
                if status != "available" {
                    return Ok(HealOutcome::Skipped {
                        reason: SkipReason::Unsafe,
                        summary: format!(
                            "DB instance {db} is {status}, not available: a snapshot cannot be taken now"
                        ),
                    });
                }
                self.take_snapshot(request, &snapshot_id).await?
            }
        };
        match snapshot.status().unwrap_or("creating") {
            "available" => {}
            "creating" | "copying" | "pending" => {
                let progress = snapshot
                    .percent_progress()
                    .map_or_else(String::new, |p| format!(", {p} %"));
                return Ok(continuing(
                    format!("taking snapshot {snapshot_id} of {db} (being created{progress})"),
                    ids(),
                ));
            }
            other => {
                return Err(HealError::new(format!(
                    "backup verification of {db} failed: the new snapshot {snapshot_id} is {other}"
                )));
            }
        }

        // 2. The test restore, unless an earlier step reached its verdict.
        let recorded = tag_map(snapshot.tag_list().iter().map(|t| (t.key(), t.value())))
            .get(VERIFICATION_TAG)
            .map(|value| Verdict::from_tag(value));
        let verdict = match recorded {
            Some(verdict) => verdict,
            None => {
                let restored = match describe_instance(&self.rds, &verify_id).await? {
                    Some(existing) => {
                        created_by_autoheal(&existing, "autoheal:verification-of", db)?;
                        existing
                    }
                    None => match self
                        .restore(
                            request,
                            source,
                            &snapshot_id,
                            &verify_id,
                            restore_instance_class,
                        )
                        .await
                    {
                        Ok(created) => created,
                        // Refused: nothing was created, and that is the verdict.
                        Err(refused) => {
                            let verdict = Verdict::Failed(refused.message);
                            self.record_verdict(&snapshot, &verdict).await?;
                            let mut error = failure(db, &snapshot_id, &verdict, None);
                            error
                                .message
                                .push_str(&self.enforce_after_failure(source, policy).await);
                            return Err(error);
                        }
                    },
                };
                let status = restored.db_instance_status().unwrap_or("creating");
                let verdict = match status {
                    "available" => Verdict::Restored,
                    failed if FAILED_INSTANCE_STATES.contains(&failed) => {
                        Verdict::Failed(format!("the test restore {verify_id} ended {failed}"))
                    }
                    "deleting" => Verdict::Failed(format!(
                        "the test restore {verify_id} was deleted before it became available"
                    )),
                    working => {
                        return Ok(continuing(
                            format!(
                                "snapshot {snapshot_id} of {db} is available; restoring it into {verify_id} ({working})"
                            ),
                            ids(),
                        ));
                    }
                };
                self.record_verdict(&snapshot, &verdict).await?;
                verdict
            }
        };

        // 3. The clean-up, whatever the verdict.
        let cleanup = self.clean_up(db, &verify_id).await.err();
        match verdict {
            Verdict::Failed(_) => {
                let mut error = failure(db, &snapshot_id, &verdict, cleanup.as_deref());
                error
                    .message
                    .push_str(&self.enforce_after_failure(source, policy).await);
                Err(error)
            }
            Verdict::Restored => {
                if let Some(cleanup) = cleanup {
                    return Err(HealError::new(format!(
                        "snapshot {snapshot_id} restored into {verify_id}, but {cleanup}; \
                         delete {verify_id} by hand"
                    )));
                }
                // 4. Only a backup proven to restore lets older ones go.
                let report = retention::apply(
                    &RdsSnapshots::new(self.rds.clone()),
                    Scope {
                        source: db,
                        rule: &request.rule.name,
                        just_made: &snapshot_id,
                    },
                    retention,
                    SystemClock.now(),
                )
                .await;
                let mut details = ids();
                details.insert("verification".to_owned(), "restored".to_owned());
                report.write_details(&mut details);
                let mut summary = format!(
                    "took snapshot {snapshot_id} of {db} and proved it restores: {verify_id} \
                     ({restore_instance_class}) became available and was deleted; {}",
                    report.summary()
                );
                if let Some(change) = PolicyChange::plan(policy, source, false) {
                    change.apply(&self.rds, db).await.map_err(|e| {
                        HealError::new(format!("{summary}; but the backup policy: {}", e.message))
                    })?;
                    summary.push_str(&format!("; {}", change.summary(db)));
                    change.write_details(&mut details);
                }
                Ok(HealOutcome::Healed {
                    summary,
                    details,
                    reverts: Vec::new(),
                })
            }
        }
    }

    /// After a failed verification: the policy applied, in words to add to the failure.
    async fn enforce_after_failure(&self, source: &DbInstance, policy: BackupPolicy<'_>) -> String {
        let db = source.db_instance_identifier().unwrap_or_default();
        match PolicyChange::plan(policy, source, true) {
            None => String::new(),
            Some(change) => match change.apply(&self.rds, db).await {
                Ok(()) => format!("; {}", change.summary(db)),
                Err(error) => format!(
                    "; bringing its backup settings to the rule's policy failed: {}",
                    error.message
                ),
            },
        }
    }

    /// Writes the verdict on the snapshot, so that it outlives the test instance.
    async fn record_verdict(
        &self,
        snapshot: &DbSnapshot,
        verdict: &Verdict,
    ) -> Result<(), HealError> {
        let arn = snapshot.db_snapshot_arn().ok_or_else(|| {
            HealError::new(format!(
                "DescribeDBSnapshots returned no ARN for {}",
                snapshot.db_snapshot_identifier().unwrap_or_default()
            ))
        })?;
        self.rds
            .add_tags_to_resource()
            .resource_name(arn)
            .tags(tag(VERIFICATION_TAG, &verdict.tag_value()))
            .send()
            .await
            .map_err(|e| api_error("AddTagsToResource", e))?;
        Ok(())
    }

    /// Deletes the test instance, if it is still there and not already being deleted;
    /// `true` when this call deleted it.
    async fn clean_up(&self, db: &str, verify_id: &str) -> Result<bool, String> {
        match describe_instance(&self.rds, verify_id).await {
            Ok(None) => Ok(false),
            Ok(Some(existing)) if existing.db_instance_status() == Some("deleting") => Ok(false),
            Ok(Some(existing)) => {
                created_by_autoheal(&existing, "autoheal:verification-of", db)
                    .map_err(|e| e.message)?;
                self.delete(verify_id).await.map(|()| true)
            }
            Err(error) => Err(error.message),
        }
    }

    /// Takes the snapshot (the first step: nobody took it yet).
    async fn take_snapshot(
        &self,
        request: HealRequest<'_>,
        snapshot_id: &str,
    ) -> Result<DbSnapshot, HealError> {
        let output = self
            .rds
            .create_db_snapshot()
            .db_instance_identifier(request.resource_id)
            .db_snapshot_identifier(snapshot_id)
            .set_tags(Some(
                ownership_tags(request.resource_id, &request.rule.name)
                    .iter()
                    .map(|(key, value)| tag(key, value))
                    .collect(),
            ))
            .tags(tag("autoheal:backup-of", request.resource_id))
            .tags(tag("autoheal:incident", request.incident_id))
            .send()
            .await
            .map_err(|e| api_error("CreateDBSnapshot", e))?;
        match output.db_snapshot() {
            Some(snapshot) => Ok(snapshot.clone()),
            None => self.snapshot(snapshot_id).await?.ok_or_else(|| {
                HealError::new(format!(
                    "CreateDBSnapshot returned no snapshot {snapshot_id}"
                ))
            }),
        }
    }

    async fn snapshot(&self, snapshot_id: &str) -> Result<Option<DbSnapshot>, HealError> {
        autoheal_aws::lookups::describe_db_snapshot(&self.rds, snapshot_id).await
    }

    async fn restore(
        &self,
        request: HealRequest<'_>,
        source: &DbInstance,
        snapshot_id: &str,
        verify_id: &str,
        instance_class: &str,
    ) -> Result<DbInstance, HealError> {
        let security_groups: Vec<String> = source
            .vpc_security_groups()
            .iter()
            .filter_map(|g| g.vpc_security_group_id().map(str::to_owned))
            .collect();
        let output = self
            .rds
            .restore_db_instance_from_db_snapshot()
            .db_snapshot_identifier(snapshot_id)
            .db_instance_identifier(verify_id)
            .db_instance_class(instance_class)
            .set_db_subnet_group_name(
                source
                    .db_subnet_group()
                    .and_then(|g| g.db_subnet_group_name())
                    .map(str::to_owned),
            )
            .set_vpc_security_group_ids((!security_groups.is_empty()).then_some(security_groups))
            .publicly_accessible(false)
            .multi_az(false)
            .deletion_protection(false)
            .tags(tag("autoheal:verification-of", request.resource_id))
            .tags(tag("autoheal:incident", request.incident_id))
            .send()
            .await
            .map_err(|e| {
                HealError::new(format!(
                    "snapshot {snapshot_id} could not be restored: {}",
                    describe("RestoreDBInstanceFromDBSnapshot", &e)
                ))
            })?;
        output.db_instance().cloned().ok_or_else(|| {
            HealError::new(format!(
                "RestoreDBInstanceFromDBSnapshot returned no DB instance for {verify_id}"
            ))
        })
    }

    async fn delete(&self, verify_id: &str) -> Result<(), String> {
        self.rds
            .delete_db_instance()
            .db_instance_identifier(verify_id)
            .skip_final_snapshot(true)
            .delete_automated_backups(true)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| describe("DeleteDBInstance", &e))
    }
}

/// The names of what the attempt makes: its snapshot and its test restore.
fn names(request: HealRequest<'_>) -> (String, String) {
    let db = request.resource_id;
    let token = short_token(request.idempotency_token);
    (
        rds_identifier(&format!("autoheal-verify-{db}"), &token, MAX_SNAPSHOT_ID),
        rds_identifier(&format!("autoheal-verify-{db}"), &token, MAX_INSTANCE_ID),
    )
}

/// The action continues: AWS is still working on the snapshot or the test restore.
fn continuing(summary: String, details: BTreeMap<String, String>) -> HealOutcome {
    HealOutcome::Continuing {
        summary,
        details,
        resume_after_seconds: STEP_INTERVAL_SECONDS,
    }
}

/// A failed verification, with what became of the test instance.
fn failure(db: &str, snapshot_id: &str, verdict: &Verdict, cleanup: Option<&str>) -> HealError {
    let why = match verdict {
        Verdict::Failed(why) => why.as_str(),
        Verdict::Restored => "the restore succeeded",
    };
    let cleanup = cleanup.map_or_else(String::new, |c| {
        format!("; {c}: delete the test instance by hand")
    });
    HealError::new(format!(
        "backup verification of {db} failed: {why}{cleanup} (snapshot {snapshot_id} is kept)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verdict_outlives_the_test_instance_on_its_tag() {
        for verdict in [
            Verdict::Restored,
            Verdict::Failed("the test restore db-verify-1 ended storage-full".to_owned()),
        ] {
            assert_eq!(Verdict::from_tag(&verdict.tag_value()), verdict);
        }
        assert_eq!(
            Verdict::from_tag("something else"),
            Verdict::Failed("something else".to_owned())
        );
        let long = Verdict::Failed("x".repeat(400));
        assert_eq!(long.tag_value().chars().count(), 256);
    }
}
