//! The backup policy a `verify-backup` rule asks for (`min_backup_retention_days`,
//! `preferred_backup_window`), and the `ModifyDBInstance` that brings an instance to it.
//!
//! `ModifyDBInstance` with `ApplyImmediately` applies, with the request's own changes, every
//! modification waiting for the instance's maintenance window (`PendingModifiedValues`: an
//! instance class change, an engine upgrade, a storage change), which is downtime nobody
//! planned for now. autoheal never sends it. It does not need to: RDS applies a retention
//! change between two non-zero values, and a new backup window, as soon as possible without
//! it. Only turning automated backups on (retention 0 before) waits for the maintenance
//! window, as it takes the instance offline briefly. The instance's pending modifications
//! are named in the record and stay for the window they were queued for.

use std::collections::BTreeMap;

use aws_sdk_rds::Client as RdsClient;
use aws_sdk_rds::types::DbInstance;

use autoheal_aws::errors::api_error;
use autoheal_core::HealError;

/// The backup settings a rule asks for.
#[derive(Debug, Clone, Copy, Default)]
pub struct BackupPolicy<'a> {
    pub min_retention_days: Option<u32>,
    pub window: Option<&'a str>,
}

/// When RDS applies a policy change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// As soon as possible, without `ApplyImmediately`.
    AsSoonAsPossible,
    /// In the instance's next maintenance window (turning automated backups on).
    MaintenanceWindow,
}

/// A change of backup settings autoheal made, with what they were.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyChange {
    pub retention: (i32, i32),
    pub window: (Option<String>, Option<String>),
    pub applied: Applied,
    /// The instance's modifications waiting for its maintenance window, which the change
    /// leaves waiting (`Name value` each).
    pub pending: Vec<String>,
}

/// The modifications waiting for the instance's maintenance window, as `Name value`.
pub fn pending_modifications(instance: &DbInstance) -> Vec<String> {
    let Some(pending) = instance.pending_modified_values() else {
        return Vec::new();
    };
    let text = |name: &str, value: Option<String>| value.map(|value| format!("{name} {value}"));
    let number = |value: Option<i32>| value.map(|n| n.to_string());
    [
        text(
            "DBInstanceClass",
            pending.db_instance_class().map(str::to_owned),
        ),
        text("EngineVersion", pending.engine_version().map(str::to_owned)),
        text("Engine", pending.engine().map(str::to_owned)),
        text("AllocatedStorage", number(pending.allocated_storage())),
        text("StorageType", pending.storage_type().map(str::to_owned)),
        text("Iops", number(pending.iops())),
        text("StorageThroughput", number(pending.storage_throughput())),
        text("MultiAZ", pending.multi_az().map(|b| b.to_string())),
        text("Port", number(pending.port())),
        text(
            "BackupRetentionPeriod",
            number(pending.backup_retention_period()),
        ),
        text("LicenseModel", pending.license_model().map(str::to_owned)),
        text(
            "DBInstanceIdentifier",
            pending.db_instance_identifier().map(str::to_owned),
        ),
        text(
            "CACertificateIdentifier",
            pending.ca_certificate_identifier().map(str::to_owned),
        ),
        text(
            "DBSubnetGroupName",
            pending.db_subnet_group_name().map(str::to_owned),
        ),
        pending
            .master_user_password()
            .map(|_| "MasterUserPassword (new)".to_owned()),
    ]
    .into_iter()
    .flatten()
    .collect()
}

impl PolicyChange {
    /// What the policy changes on `source`, if anything; `failed`: its test restore failed,
    /// which brings the whole policy (the window too) to bear.
    pub fn plan(policy: BackupPolicy<'_>, source: &DbInstance, failed: bool) -> Option<Self> {
        let retention = source.backup_retention_period().unwrap_or(0);
        let wanted = policy
            .min_retention_days
            .and_then(|days| i32::try_from(days).ok())
            .unwrap_or(0);
        let too_short = retention < wanted;
        if !too_short && !failed {
            return None;
        }
        let window = source.preferred_backup_window().map(str::to_owned);
        let new_window = match policy.window {
            Some(wanted) if window.as_deref() != Some(wanted) => Some(wanted.to_owned()),
            _ => window.clone(),
        };
        let new_retention = retention.max(wanted);
        if new_retention == retention && new_window == window {
            return None;
        }
        Some(PolicyChange {
            retention: (retention, new_retention),
            window: (window, new_window),
            // Turning automated backups on takes the instance offline briefly.
            applied: if retention == 0 && new_retention > 0 {
                Applied::MaintenanceWindow
            } else {
                Applied::AsSoonAsPossible
            },
            pending: pending_modifications(source),
        })
    }

    pub fn summary(&self, db: &str) -> String {
        let (before, after) = self.retention;
        let mut changes = Vec::new();
        if before != after {
            changes.push(format!("backup retention {before} → {after} days"));
        }
        if self.window.0 != self.window.1 {
            changes.push(format!(
                "backup window {} → {}",
                self.window.0.as_deref().unwrap_or("none"),
                self.window.1.as_deref().unwrap_or("none")
            ));
        }
        let when = match self.applied {
            Applied::AsSoonAsPossible => "applied now",
            Applied::MaintenanceWindow => {
                "applied in its next maintenance window, as turning automated backups on takes it offline briefly"
            }
        };
        let mut summary = format!(
            "brought the backup settings of {db} to the rule's policy ({}; {when})",
            changes.join(", ")
        );
        if !self.pending.is_empty() {
            summary.push_str(&format!(
                "; its pending modifications ({}) stay for its maintenance window: autoheal never applies them early",
                self.pending.join(", ")
            ));
        }
        summary
    }

    pub fn write_details(&self, details: &mut BTreeMap<String, String>) {
        details.insert(
            "previous_backup_retention_days".to_owned(),
            self.retention.0.to_string(),
        );
        details.insert(
            "backup_retention_days".to_owned(),
            self.retention.1.to_string(),
        );
        details.insert(
            "previous_backup_window".to_owned(),
            self.window.0.clone().unwrap_or_default(),
        );
        details.insert(
            "backup_window".to_owned(),
            self.window.1.clone().unwrap_or_default(),
        );
        details.insert(
            "backup_settings_applied".to_owned(),
            match self.applied {
                Applied::AsSoonAsPossible => "as-soon-as-possible",
                Applied::MaintenanceWindow => "next-maintenance-window",
            }
            .to_owned(),
        );
        if !self.pending.is_empty() {
            details.insert(
                "pending_modifications_left".to_owned(),
                self.pending.join(", "),
            );
        }
    }

    /// Modifies the instance's backup settings, never with `ApplyImmediately`.
    pub async fn apply(&self, rds: &RdsClient, db: &str) -> Result<(), HealError> {
        rds.modify_db_instance()
            .db_instance_identifier(db)
            .backup_retention_period(self.retention.1)
            .set_preferred_backup_window(
                self.window
                    .1
                    .clone()
                    .filter(|_| self.window.0 != self.window.1),
            )
            .apply_immediately(false)
            .send()
            .await
            .map_err(|e| api_error("ModifyDBInstance", e))?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;
    use aws_sdk_rds::types::PendingModifiedValues;

    fn instance(retention: i32, pending: Option<PendingModifiedValues>) -> DbInstance {
        DbInstance::builder()
            .db_instance_identifier("orders-db")
            .backup_retention_period(retention)
            .preferred_backup_window("07:00-07:30")
            .set_pending_modified_values(pending)
            .build()
    }

    fn policy(days: u32) -> BackupPolicy<'static> {
        BackupPolicy {
            min_retention_days: Some(days),
            window: None,
        }
    }

    #[test]
    fn retention_only_grows_and_turning_backups_on_waits_for_the_window() {
        assert_eq!(
            PolicyChange::plan(policy(7), &instance(7, None), false),
            None
        );
        assert_eq!(
            PolicyChange::plan(policy(7), &instance(14, None), true),
            None
        );
        let raise = PolicyChange::plan(policy(7), &instance(2, None), false).expect("a change");
        assert_eq!(raise.retention, (2, 7));
        assert_eq!(raise.applied, Applied::AsSoonAsPossible);
        let on = PolicyChange::plan(policy(7), &instance(0, None), false).expect("a change");
        assert_eq!(on.applied, Applied::MaintenanceWindow);
        assert!(on.summary("orders-db").contains("next maintenance window"));
    }

    #[test]
    fn pending_modifications_are_named_and_left_for_their_window() {
        let pending = PendingModifiedValues::builder()
            .db_instance_class("db.r6g.large")
            .engine_version("16.4")
            .build();
        let change =
            PolicyChange::plan(policy(7), &instance(2, Some(pending)), false).expect("a change");
        assert_eq!(
            change.pending,
            ["DBInstanceClass db.r6g.large", "EngineVersion 16.4"]
        );
        let summary = change.summary("orders-db");
        assert!(
            summary.contains("its pending modifications (DBInstanceClass db.r6g.large, EngineVersion 16.4) stay for its maintenance window"),
            "{summary}"
        );
        let mut details = BTreeMap::new();
        change.write_details(&mut details);
        assert_eq!(
            details["pending_modifications_left"],
            "DBInstanceClass db.r6g.large, EngineVersion 16.4"
        );
        assert_eq!(details["backup_settings_applied"], "as-soon-as-possible");
    }
}
