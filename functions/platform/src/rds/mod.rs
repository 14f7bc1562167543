//! `reboot-rds-instance`: snapshot an RDS instance, then reboot it.
//!
//! Before an attempt ([`InstanceRebooter::assess`]): an instance that does not exist, or is
//! being deleted, is `gone`; one that AWS is working on (a backup, maintenance, a reboot, a
//! failover, storage optimisation) is waited for (`aws-healing`), and so is a Multi-AZ
//! failover under way or completed in the last minutes (its events say so: clients find the
//! new primary through DNS within minutes, and a reboot then would be a second outage); one a
//! person is changing (a modification, an engine upgrade) or stopped is theirs
//! (`operator-hold`). See `autoheal_aws::rds_status`.
//!
//! The instance must be `available` (a reboot of an instance that is modifying, backing up
//! or already rebooting is refused or harmful). A reboot applies the changes waiting in the
//! instance's DB parameter group for one (`pending-reboot`), and no modification waiting for
//! the maintenance window (`PendingModifiedValues`): so an instance with pending-reboot
//! parameter changes is not rebooted (`unsafe`): those are a person's changes, to apply when
//! they choose, and they could be what breaks it.
//!
//! With `snapshot_first`, a manual snapshot
//! `autoheal-<db>-<suffix>` is taken, the suffix coming from the attempt's idempotency
//! token: a retried attempt finds its snapshot and reuses it. The instance is not rebooted
//! while it is being backed up: until the snapshot is available the action answers
//! `Continuing`, and autoheal resumes it in a follow-up (same attempt, same token), so that a
//! snapshot of a large database that takes hours never holds an invocation. If the alarm is
//! back to OK by the time the snapshot is done, the reboot is not needed and is not done. It
//! fails over to the standby only when the rule asks for it and the instance is Multi-AZ.
//!
//! The snapshot is tagged as autoheal's (`autoheal:managed`, `autoheal:snapshot-of`,
//! `autoheal:rule`). After the reboot, autoheal's own older snapshots of the instance beyond
//! the rule's retention are deleted (`autoheal_core::policy::retention`); no other snapshot is ever
//! a candidate.

pub mod checks;

use std::collections::BTreeMap;

use aws_sdk_rds::Client as RdsClient;
use aws_sdk_rds::types::{DbSnapshot, SourceType};
use chrono::{DateTime, Duration, Utc};

use autoheal_aws::errors::api_error;
use autoheal_aws::lookups::describe_db_instance;
use autoheal_aws::rds_status;
use autoheal_aws::snapshots::RdsSnapshots;
use autoheal_core::policy::retention::{self, Retention, Scope, ownership_tags};
use autoheal_core::{
    AlarmState, Assessment, Clock, HealError, HealOutcome, HealRequest, SkipReason, SystemClock,
};

use checks::{FAILOVER_LOOKBACK_MINUTES, FailoverEvent, failover_wait, should_skip};

/// How long to let RDS work on the snapshot before looking again.
pub const SNAPSHOT_POLL_SECONDS: u64 = 120;

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

    /// Before an attempt: whether the instance is there, and whether AWS or a person is
    /// already working on it (then autoheal waits).
    pub async fn assess(&self, request: HealRequest<'_>) -> Result<Assessment, HealError> {
        let db = request.resource_id;
        let Some(instance) = describe_db_instance(&self.rds, db).await? else {
            return Ok(Assessment::gone(format!("DB instance {db} does not exist")));
        };
        let status = instance.db_instance_status().unwrap_or("unknown");
        if let Some(assessment) = rds_status::assess(db, status) {
            return Ok(assessment);
        }
        if instance.multi_az().unwrap_or(false) {
            let now = Utc::now();
            let events = self.failover_events(db, now).await?;
            if let Some(wait) = failover_wait(db, &events, now) {
                return Ok(wait);
            }
        }
        Ok(Assessment::Proceed)
    }

    /// Whether the instance no longer exists (or is being deleted).
    pub async fn is_gone(&self, db: &str) -> Result<bool, HealError> {
        Ok(match describe_db_instance(&self.rds, db).await? {
            None => true,
            Some(instance) => matches!(
                rds_status::classify(instance.db_instance_status().unwrap_or("unknown")),
                rds_status::InstanceState::Deleting
            ),
        })
    }

    pub async fn reboot(
        &self,
        request: HealRequest<'_>,
        snapshot_first: bool,
        force_failover: bool,
        retention: Retention,
    ) -> Result<HealOutcome, HealError> {
        let db = request.resource_id;
        let Some(instance) = describe_db_instance(&self.rds, db).await? else {
            return Ok(gone(db));
        };
        // A step that resumes the action finds the instance backing up its own snapshot: it
        // is looked at again once the snapshot is done.
        let own_snapshot = snapshot_first
            && self
                .existing_snapshot(&snapshot_id(db, request.idempotency_token))
                .await?
                .is_some();
        if !own_snapshot && let Some(skip) = should_skip(&instance, db, snapshot_first) {
            return Ok(skip);
        }
        let multi_az = instance.multi_az().unwrap_or(false);
        let failover = force_failover && multi_az;

        let mut details = BTreeMap::new();
        let mut summary = String::new();
        if snapshot_first {
            let snapshot = snapshot_id(db, request.idempotency_token);
            let (reused, status) = self.snapshot(request, &snapshot).await?;
            let verb = if reused { "reused" } else { "took" };
            details.insert("snapshot_id".to_owned(), snapshot.clone());
            match status.as_str() {
                "available" => {}
                "creating" | "copying" | "pending" => {
                    return Ok(HealOutcome::Continuing {
                        summary: format!(
                            "{verb} snapshot {snapshot} of {db}; {db} is rebooted once it is available"
                        ),
                        details,
                        resume_after_seconds: SNAPSHOT_POLL_SECONDS,
                    });
                }
                other => {
                    return Err(HealError::new(format!(
                        "snapshot {snapshot} is {other}; {db} was not rebooted"
                    )));
                }
            }
            if request.event.state == AlarmState::Ok {
                return Ok(HealOutcome::Skipped {
                    reason: SkipReason::NotNeeded,
                    summary: format!(
                        "{verb} snapshot {snapshot} of {db}; the alarm is OK again, so {db} was not rebooted"
                    ),
                });
            }
            // The instance was available before the snapshot; it must be again to reboot.
            let Some(instance) = describe_db_instance(&self.rds, db).await? else {
                return Ok(gone(db));
            };
            if let Some(skip) = should_skip(&instance, db, snapshot_first) {
                return Ok(skip);
            }
            summary.push_str(&format!("{verb} snapshot {snapshot}, then "));
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

    /// The instance's failover events of the last hour, every page.
    async fn failover_events(
        &self,
        db: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<FailoverEvent>, HealError> {
        let since = now - Duration::minutes(FAILOVER_LOOKBACK_MINUTES);
        let mut pages = self
            .rds
            .describe_events()
            .source_identifier(db)
            .source_type(SourceType::DbInstance)
            .event_categories("failover")
            .start_time(aws_smithy_types::DateTime::from_secs(since.timestamp()))
            .into_paginator()
            .items()
            .send();
        let mut events = Vec::new();
        while let Some(event) = pages.next().await {
            let event = event.map_err(|e| api_error("DescribeEvents", e))?;
            let failover = event.event_categories().iter().any(|c| c == "failover");
            let at = event
                .date()
                .and_then(|t| DateTime::<Utc>::from_timestamp(t.secs(), t.subsec_nanos()));
            if let (true, Some(at), Some(message)) = (failover, at, event.message())
                && at >= since
            {
                events.push(FailoverEvent {
                    at,
                    message: message.to_owned(),
                });
            }
        }
        Ok(events)
    }

    /// The snapshot `id`, if it exists.
    async fn existing_snapshot(&self, id: &str) -> Result<Option<DbSnapshot>, HealError> {
        autoheal_aws::lookups::describe_db_snapshot(&self.rds, id).await
    }

    /// Takes the snapshot, tagged as autoheal's, unless this attempt already did; returns
    /// whether it already existed (and is reused) and its status.
    async fn snapshot(
        &self,
        request: HealRequest<'_>,
        snapshot: &str,
    ) -> Result<(bool, String), HealError> {
        let db = request.resource_id;
        if let Some(existing) = self.existing_snapshot(snapshot).await? {
            let owner = existing.db_instance_identifier();
            if owner != Some(db) {
                return Err(HealError::new(format!(
                    "snapshot {snapshot} already exists for another instance ({}); {db} was not rebooted",
                    owner.unwrap_or("unknown")
                )));
            }
            let status = existing.status().unwrap_or("creating").to_owned();
            return Ok((true, status));
        }
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
        let output = self
            .rds
            .create_db_snapshot()
            .db_instance_identifier(db)
            .db_snapshot_identifier(snapshot)
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| api_error("CreateDBSnapshot", e))?;
        let status = output
            .db_snapshot()
            .and_then(|created| created.status())
            .unwrap_or("creating")
            .to_owned();
        Ok((false, status))
    }
}

/// The outcome for an instance that does not exist.
fn gone(db: &str) -> HealOutcome {
    HealOutcome::Skipped {
        reason: SkipReason::Gone,
        summary: format!("DB instance {db} does not exist"),
    }
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
}
