//! `reboot-rds-instance`: snapshot an RDS instance, then reboot it.
//!
//! The instance must be `available` (a reboot of an instance that is modifying, backing up
//! or already rebooting is refused or harmful). With `snapshot_first`, a manual snapshot
//! `autoheal-<db>-<suffix>` is taken, the suffix coming from the attempt's idempotency
//! token: a retried attempt finds its snapshot and reuses it. The reboot waits until the
//! snapshot is available (an instance is not rebooted while it is being backed up). It
//! fails over to the standby only when the rule asks for it and the instance is Multi-AZ.
//!
//! The snapshot is tagged as autoheal's (`autoheal:managed`, `autoheal:snapshot-of`,
//! `autoheal:rule`). After the reboot, autoheal's own older snapshots of the instance beyond
//! the rule's retention are deleted (`autoheal_core::retention`); no other snapshot is ever
//! a candidate.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_rds::Client as RdsClient;
use aws_sdk_rds::client::Waiters;
use aws_sdk_rds::types::DbInstance;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use autoheal_aws::snapshots::RdsSnapshots;
use autoheal_aws::tags::{OPT_OUT_TAG, pairs_opt_out};
use autoheal_core::retention::{self, Retention, Scope, ownership_tags};
use autoheal_core::{Clock, HealError, HealOutcome, HealRequest, SkipReason, SystemClock};

use autoheal_aws::errors::api_error;

/// How long to wait for the snapshot before rebooting (the function times out at 300 s).
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(240);

/// How many characters of the idempotency token's hash name the snapshot.
const SUFFIX_LEN: usize = 12;

/// The snapshot id for `db` on the attempt with `token`: `autoheal-<db>-<suffix>`, a valid
/// RDS identifier (letters, digits and single hyphens, starting with a letter, at most 255
/// characters, no trailing hyphen).
pub fn snapshot_id(db: &str, token: &str) -> String {
    let suffix: String = token
        .trim_start_matches("autoheal-")
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(SUFFIX_LEN)
        .collect::<String>()
        .to_ascii_lowercase();
    let mut id = String::from("autoheal");
    for part in db
        .split(|c: char| !c.is_ascii_alphanumeric())
        .chain([suffix.as_str()])
        .filter(|part| !part.is_empty())
    {
        id.push('-');
        id.push_str(&part.to_ascii_lowercase());
    }
    if id.len() > 255 {
        // Keep the suffix: it tells attempts apart.
        let keep = 255 - suffix.len() - 1;
        let head = id[..keep].trim_end_matches('-').to_owned();
        id = format!("{head}-{suffix}");
    }
    id
}

/// Reboots RDS instances.
#[derive(Debug, Clone)]
pub struct InstanceRebooter {
    rds: RdsClient,
}

impl InstanceRebooter {
    pub fn new(rds: RdsClient) -> Self {
        InstanceRebooter { rds }
    }

    pub async fn reboot(
        &self,
        request: HealRequest<'_>,
        snapshot_first: bool,
        force_failover: bool,
        retention: Retention,
    ) -> Result<HealOutcome, HealError> {
        let db = request.resource_id;
        let instance = self.describe(db).await?;
        if let Some(skip) = should_skip(&instance, db, snapshot_first) {
            return Ok(skip);
        }
        let multi_az = instance.multi_az().unwrap_or(false);
        let failover = force_failover && multi_az;

        let mut details = BTreeMap::new();
        let mut summary = String::new();
        if snapshot_first {
            let snapshot = snapshot_id(db, request.idempotency_token);
            let reused = self.snapshot(request, &snapshot).await?;
            self.rds
                .wait_until_db_snapshot_available()
                .db_snapshot_identifier(&snapshot)
                .wait(SNAPSHOT_TIMEOUT)
                .await
                .map_err(|e| {
                    HealError::new(format!(
                        "snapshot {snapshot} did not become available ({}); {db} was not rebooted",
                        DisplayErrorContext(&e)
                    ))
                })?;
            summary.push_str(&format!(
                "{} snapshot {snapshot}, then ",
                if reused { "reused" } else { "took" }
            ));
            details.insert("snapshot_id".to_owned(), snapshot);
        }

        let mut reboot = self.rds.reboot_db_instance().db_instance_identifier(db);
        if failover {
            reboot = reboot.force_failover(true);
        }
        reboot.send().await.map_err(|e| {
            let mut error = api_error("RebootDBInstance", e);
            if let Some(snapshot) = details.get("snapshot_id") {
                error
                    .message
                    .push_str(&format!(" (snapshot {snapshot} was taken)"));
            }
            error
        })?;
        summary.push_str(&format!(
            "rebooted {db}{}",
            if failover {
                " with failover to its standby"
            } else if force_failover {
                " (no failover: the instance is not Multi-AZ)"
            } else {
                ""
            }
        ));
        details.insert(
            "failover".to_owned(),
            if failover { "yes" } else { "no" }.to_owned(),
        );
        if let Some(snapshot) = details.get("snapshot_id").cloned() {
            let store = RdsSnapshots::new(self.rds.clone());
            let scope = Scope {
                just_made: &snapshot,
                rule: &request.rule.name,
                source: db,
            };
            retention::apply(&store, scope, retention, SystemClock.now())
                .await
                .add_to(&mut summary, &mut details);
        }
        Ok(HealOutcome::healed(summary, details))
    }

    async fn describe(&self, db: &str) -> Result<DbInstance, HealError> {
        let output = self
            .rds
            .describe_db_instances()
            .db_instance_identifier(db)
            .send()
            .await
            .map_err(|e| api_error("DescribeDBInstances", e))?;
        output
            .db_instances()
            .iter()
            .find(|instance| instance.db_instance_identifier() == Some(db))
            .cloned()
            .ok_or_else(|| HealError::new(format!("DescribeDBInstances: no instance {db}")))
    }

    /// Takes the snapshot, tagged as autoheal's; true when it already existed for this
    /// instance (a retried attempt) and is reused.
    async fn snapshot(&self, request: HealRequest<'_>, snapshot: &str) -> Result<bool, HealError> {
        let db = request.resource_id;
        let tags = ownership_tags(db, &request.rule.name)
            .iter()
            .map(|(key, value)| (*key, value.as_str()))
            .chain([("autoheal:incident", request.incident_id)])
            .map(|(key, value)| {
                aws_sdk_rds::types::Tag::builder()
                    .key(key)
                    .value(value)
                    .build()
            })
            .collect();
        let error = match self
            .rds
            .create_db_snapshot()
            .db_instance_identifier(db)
            .db_snapshot_identifier(snapshot)
            .set_tags(Some(tags))
            .send()
            .await
        {
            Ok(_) => return Ok(false),
            Err(error) => error,
        };
        let exists = error.code() == Some("DBSnapshotAlreadyExists")
            || error
                .as_service_error()
                .is_some_and(|e| e.is_db_snapshot_already_exists_fault());
        if !exists {
            return Err(api_error("CreateDBSnapshot", error));
        }
        let existing = self
            .rds
            .describe_db_snapshots()
            .db_snapshot_identifier(snapshot)
            .send()
            .await
            .map_err(|e| api_error("DescribeDBSnapshots", e))?;
        let owner = existing
            .db_snapshots()
            .first()
            .and_then(|found| found.db_instance_identifier());
        if owner == Some(db) {
            Ok(true)
        } else {
            Err(HealError::new(format!(
                "snapshot {snapshot} already exists for another instance ({}); {db} was not rebooted",
                owner.unwrap_or("unknown")
            )))
        }
    }
}

/// Why the live instance must not be rebooted, if it must not.
fn should_skip(instance: &DbInstance, db: &str, snapshot_first: bool) -> Option<HealOutcome> {
    let skip = |reason, summary: String| Some(HealOutcome::Skipped { reason, summary });
    let tags = instance
        .tag_list()
        .iter()
        .filter_map(|tag| Some((tag.key()?, tag.value()?)));
    if pairs_opt_out(tags) {
        return skip(
            SkipReason::OptedOut,
            format!("{db} is tagged {OPT_OUT_TAG}=true"),
        );
    }
    let status = instance.db_instance_status().unwrap_or("unknown");
    if status != "available" {
        return skip(
            SkipReason::Unsafe,
            format!("{db} is not available: {status}"),
        );
    }
    if snapshot_first && let Some(cluster) = instance.db_cluster_identifier() {
        return skip(
            SkipReason::Unsafe,
            format!(
                "{db} belongs to cluster {cluster}: its storage is the cluster's, so a snapshot of the instance alone cannot be taken before the reboot"
            ),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(id: &str) -> bool {
        id.len() <= 255
            && id.starts_with(|c: char| c.is_ascii_alphabetic())
            && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !id.contains("--")
            && !id.ends_with('-')
    }

    #[test]
    fn snapshot_ids_are_valid_and_stable_per_attempt() {
        let token = "autoheal-0123456789abcdef00000001";
        let id = snapshot_id("orders-db", token);
        assert_eq!(id, "autoheal-orders-db-0123456789ab");
        assert_eq!(snapshot_id("orders-db", token), id, "stable for a retry");
        assert_ne!(
            snapshot_id("orders-db", "autoheal-fedcba987654321000000002"),
            id
        );
        for db in ["Orders-DB", "a", "db-", "x".repeat(300).as_str()] {
            let id = snapshot_id(db, token);
            assert!(valid(&id), "{id}");
            assert!(id.ends_with("0123456789ab"), "{id}");
        }
    }

    #[test]
    fn live_state_decides_whether_to_reboot() {
        let available = || DbInstance::builder().db_instance_status("available");
        let reason =
            |instance: DbInstance, snapshot: bool| match should_skip(&instance, "db", snapshot) {
                Some(HealOutcome::Skipped { reason, summary }) => Some((reason, summary)),
                _ => None,
            };
        assert_eq!(reason(available().build(), true), None);
        assert_eq!(
            reason(available().db_instance_status("rebooting").build(), true),
            Some((
                SkipReason::Unsafe,
                "db is not available: rebooting".to_owned()
            ))
        );
        assert_eq!(
            reason(available().db_cluster_identifier("aurora").build(), true).map(|r| r.0),
            Some(SkipReason::Unsafe)
        );
        assert_eq!(
            reason(available().db_cluster_identifier("aurora").build(), false),
            None
        );
        let tag = aws_sdk_rds::types::Tag::builder()
            .key(OPT_OUT_TAG)
            .value("TRUE")
            .build();
        assert_eq!(
            reason(available().tag_list(tag).build(), true).map(|r| r.0),
            Some(SkipReason::OptedOut)
        );
    }
}
