//! `verify-backup`: take a fresh backup of an RDS instance and prove it restores.
//!
//! 1. A manual snapshot `autoheal-verify-<db>-<token>` (reused when a retried attempt already
//!    took it), tagged as autoheal's, and a bounded wait until it is available. The snapshot
//!    is kept: it is the fresh backup.
//! 2. A temporary instance `<db>-verify-<token>` restored from that snapshot with
//!    `restore_instance_class`, in the source's subnet group and security groups, never
//!    public, without deletion protection, and a bounded wait until it is available. A
//!    restore that fails or never becomes available IS the verification failure.
//! 3. The temporary instance is deleted (no final snapshot, no automated backups) whatever
//!    the verification showed, before the run is recorded.
//! 4. Only when the new backup proved it restores: autoheal's own older verified backups of
//!    the instance beyond the rule's retention are deleted (`autoheal_core::retention`). A
//!    failed verification deletes no snapshot.
//!
//! The waits together stay well under the function's 300 s timeout.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_rds::Client as RdsClient;
use aws_sdk_rds::client::Waiters;
use aws_sdk_rds::types::{DbInstance, DbSnapshot};
use aws_smithy_types::error::display::DisplayErrorContext;

use autoheal_aws::errors::describe;
use autoheal_aws::snapshots::RdsSnapshots;
use autoheal_core::retention::{self, Retention, Scope, ownership_tags};
use autoheal_core::{Clock, HealError, HealOutcome, HealRequest, SkipReason, SystemClock};

use crate::restore::{Source, created_by_autoheal, describe_instance, describe_source, tag};
use crate::{rds_identifier, short_token};
use autoheal_aws::errors::api_error;

/// How long to wait for the new snapshot to become available.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(90);
/// How long to wait for the test restore to become available.
const RESTORE_TIMEOUT: Duration = Duration::from_secs(150);
/// RDS DB instance identifiers are at most 63 characters, snapshot identifiers 255.
const MAX_INSTANCE_ID: usize = 63;
const MAX_SNAPSHOT_ID: usize = 255;

/// Verifies RDS backups by restoring them.
#[derive(Debug, Clone)]
pub struct BackupVerifier {
    rds: RdsClient,
}

impl BackupVerifier {
    pub fn new(rds: RdsClient) -> Self {
        BackupVerifier { rds }
    }

    pub async fn verify(
        &self,
        request: HealRequest<'_>,
        restore_instance_class: &str,
        retention: Retention,
    ) -> Result<HealOutcome, HealError> {
        let db = request.resource_id;
        let source = match describe_source(&self.rds, db).await? {
            Source::Healable(source) => source,
            Source::OptedOut(skipped) => return Ok(skipped),
        };
        let status = source.db_instance_status().unwrap_or("unknown");
        if status != "available" {
            return Ok(HealOutcome::Skipped {
                reason: SkipReason::Unsafe,
                summary: format!(
                    "DB instance {db} is {status}, not available: a snapshot cannot be taken now"
                ),
            });
        }

        let token = short_token(request.idempotency_token);
        let snapshot_id = rds_identifier(&format!("autoheal-verify-{db}"), &token, MAX_SNAPSHOT_ID);
        let verify_id = rds_identifier(db, &format!("verify-{token}"), MAX_INSTANCE_ID);

        self.take_snapshot(request, &snapshot_id).await?;
        self.rds
            .wait_until_db_snapshot_available()
            .db_snapshot_identifier(&snapshot_id)
            .wait(SNAPSHOT_TIMEOUT)
            .await
            .map_err(|e| {
                HealError::new(format!(
                    "snapshot {snapshot_id} of {db} did not become available within {} s: {}",
                    SNAPSHOT_TIMEOUT.as_secs(),
                    DisplayErrorContext(&e)
                ))
            })?;

        // A leftover of a retried attempt is verified (and deleted) like a new restore.
        let restored = match describe_instance(&self.rds, &verify_id).await? {
            Some(existing) => {
                created_by_autoheal(&existing, "autoheal:verification-of", db)?;
                Ok(())
            }
            None => self
                .restore(
                    request,
                    &source,
                    &snapshot_id,
                    &verify_id,
                    restore_instance_class,
                )
                .await
                .map(|_| ()),
        };
        let verification = match restored {
            // Nothing was created: nothing to clean up.
            Err(error) => Err(error.message),
            Ok(()) => {
                let waited = self
                    .rds
                    .wait_until_db_instance_available()
                    .db_instance_identifier(&verify_id)
                    .wait(RESTORE_TIMEOUT)
                    .await
                    .map(|_| ())
                    .map_err(|e| {
                        format!(
                            "the test restore {verify_id} did not become available within {} s: {}",
                            RESTORE_TIMEOUT.as_secs(),
                            DisplayErrorContext(&e)
                        )
                    });
                let cleaned = self.delete(&verify_id).await;
                match (waited, cleaned) {
                    (Ok(()), Ok(())) => Ok(()),
                    (Ok(()), Err(cleanup)) => Err(format!(
                        "snapshot {snapshot_id} restored into {verify_id}, but {cleanup}; \
                         delete {verify_id} by hand"
                    )),
                    (Err(failure), Ok(())) => Err(format!("{failure}; {verify_id} was deleted")),
                    (Err(failure), Err(cleanup)) => {
                        Err(format!("{failure}; {cleanup}; delete {verify_id} by hand"))
                    }
                }
            }
        };
        match verification {
            Ok(()) => {
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
                let mut details = BTreeMap::from([
                    ("snapshot_id".to_owned(), snapshot_id.clone()),
                    ("verified_instance_id".to_owned(), verify_id.clone()),
                    ("verification".to_owned(), "restored".to_owned()),
                ]);
                report.write_details(&mut details);
                Ok(HealOutcome::Healed {
                    summary: format!(
                        "took snapshot {snapshot_id} of {db} and proved it restores: {verify_id} \
                         ({restore_instance_class}) became available and was deleted; {}",
                        report.summary()
                    ),
                    details,
                    reverts: Vec::new(),
                })
            }
            Err(reason) => Err(HealError::new(format!(
                "backup verification of {db} failed: {reason} (snapshot {snapshot_id} is kept)"
            ))),
        }
    }

    /// Takes the snapshot unless a retried attempt already did.
    async fn take_snapshot(
        &self,
        request: HealRequest<'_>,
        snapshot_id: &str,
    ) -> Result<(), HealError> {
        if let Some(existing) = self.snapshot(snapshot_id).await? {
            let source = existing.db_instance_identifier();
            if source != Some(request.resource_id) {
                return Err(HealError::new(format!(
                    "DB snapshot {snapshot_id} already exists but is of {}, not {}",
                    source.unwrap_or("another instance"),
                    request.resource_id
                )));
            }
            return Ok(());
        }
        self.rds
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
        Ok(())
    }

    async fn snapshot(&self, snapshot_id: &str) -> Result<Option<DbSnapshot>, HealError> {
        match self
            .rds
            .describe_db_snapshots()
            .db_snapshot_identifier(snapshot_id)
            .send()
            .await
        {
            Ok(output) => Ok(output.db_snapshots().first().cloned()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_db_snapshot_not_found_fault()) =>
            {
                Ok(None)
            }
            Err(e) => Err(api_error("DescribeDBSnapshots", e)),
        }
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
