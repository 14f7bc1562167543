//! The snapshots of one volume or DB instance, for the retention of autoheal's own snapshots
//! (`autoheal_core::policy::retention`): one small adapter per service. They list and delete; which
//! snapshots go is decided by the core, from the facts they report.
//!
//! Each adapter is behind a cargo feature (`ec2`, `rds`), so that a function links only the
//! SDK it uses.

use chrono::{DateTime, Utc};

/// A service timestamp as a `chrono` time.
#[cfg_attr(not(any(feature = "ec2", feature = "rds")), allow(dead_code))]
fn to_chrono(time: &aws_smithy_types::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(time.secs(), time.subsec_nanos())
}

#[cfg(feature = "ec2")]
pub use ec2::Ec2Snapshots;
#[cfg(feature = "rds")]
pub use rds::RdsSnapshots;

#[cfg(feature = "ec2")]
mod ec2 {
    use aws_sdk_ec2::Client;
    use aws_sdk_ec2::types::{Filter, Snapshot, SnapshotState};

    use autoheal_core::policy::retention::{
        EBS_DESCRIPTION_PREFIX, MANAGED_TAG, SNAPSHOT_OF_TAG, SnapshotFacts, SnapshotStore,
    };

    use crate::errors::describe;

    /// EBS snapshots of a volume.
    #[derive(Debug, Clone)]
    pub struct Ec2Snapshots {
        ec2: Client,
    }

    impl Ec2Snapshots {
        pub fn new(ec2: Client) -> Self {
            Ec2Snapshots { ec2 }
        }
    }

    fn facts(snapshot: &Snapshot) -> Option<SnapshotFacts> {
        Some(SnapshotFacts {
            id: snapshot.snapshot_id()?.to_owned(),
            // A copy (`CopySnapshot`) reports an arbitrary volume id, never the source's.
            taken_of: snapshot.volume_id().map(str::to_owned),
            created_at: snapshot.start_time().and_then(super::to_chrono),
            ready: snapshot.state() == Some(&SnapshotState::Completed),
            made_by_autoheal: snapshot
                .description()
                .is_some_and(|d| d.starts_with(EBS_DESCRIPTION_PREFIX)),
            tags: snapshot
                .tags()
                .iter()
                .filter_map(|tag| Some((tag.key()?.to_owned(), tag.value()?.to_owned())))
                .collect(),
        })
    }

    impl SnapshotStore for Ec2Snapshots {
        /// The account's own snapshots (`owner-ids self`: never one shared with it) tagged as
        /// autoheal's snapshots of `volume_id`.
        async fn list(&self, volume_id: &str) -> Result<Vec<SnapshotFacts>, String> {
            let mut pages = self
                .ec2
                .describe_snapshots()
                .owner_ids("self")
                .filters(
                    Filter::builder()
                        .name(format!("tag:{MANAGED_TAG}"))
                        .values("true")
                        .build(),
                )
                .filters(
                    Filter::builder()
                        .name(format!("tag:{SNAPSHOT_OF_TAG}"))
                        .values(volume_id)
                        .build(),
                )
                .into_paginator()
                .items()
                .send();
            let mut found = Vec::new();
            while let Some(snapshot) = pages.next().await {
                let snapshot = snapshot.map_err(|e| describe("DescribeSnapshots", &e))?;
                found.extend(facts(&snapshot));
            }
            Ok(found)
        }

        async fn delete(&self, snapshot_id: &str) -> Result<(), String> {
            self.ec2
                .delete_snapshot()
                .snapshot_id(snapshot_id)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| describe("DeleteSnapshot", &e))
        }
    }

    #[cfg(test)]
    #[allow(clippy::expect_used)]
    mod tests {
        use super::*;
        use aws_sdk_ec2::types::Tag;

        #[test]
        fn a_completed_snapshot_reports_its_volume_time_and_tags() {
            let snapshot = Snapshot::builder()
                .snapshot_id("snap-1")
                .volume_id("vol-1")
                .state(SnapshotState::Completed)
                .start_time(aws_smithy_types::DateTime::from_secs(1_700_000_000))
                .tags(Tag::builder().key(MANAGED_TAG).value("true").build())
                .build();
            let facts = facts(&snapshot).expect("facts");
            assert_eq!(facts.id, "snap-1");
            assert_eq!(facts.taken_of.as_deref(), Some("vol-1"));
            assert!(facts.ready);
            assert_eq!(facts.created_at.map(|t| t.timestamp()), Some(1_700_000_000));
            assert_eq!(
                facts.tags.get(MANAGED_TAG).map(String::as_str),
                Some("true")
            );
        }

        #[test]
        fn a_pending_or_failed_snapshot_is_not_ready() {
            for state in [
                SnapshotState::Pending,
                SnapshotState::Error,
                SnapshotState::Recoverable,
            ] {
                let snapshot = Snapshot::builder()
                    .snapshot_id("snap-1")
                    .state(state)
                    .build();
                assert!(!facts(&snapshot).expect("facts").ready);
            }
        }
    }
}

#[cfg(feature = "rds")]
mod rds {
    use aws_sdk_rds::Client;
    use aws_sdk_rds::types::DbSnapshot;

    use autoheal_core::policy::retention::{RDS_IDENTIFIER_PREFIX, SnapshotFacts, SnapshotStore};

    use crate::errors::describe;

    /// Manual DB snapshots of an RDS instance.
    #[derive(Debug, Clone)]
    pub struct RdsSnapshots {
        rds: Client,
    }

    impl RdsSnapshots {
        pub fn new(rds: Client) -> Self {
            RdsSnapshots { rds }
        }
    }

    fn facts(snapshot: &DbSnapshot) -> Option<SnapshotFacts> {
        let copy = snapshot.source_db_snapshot_identifier().is_some()
            || snapshot.source_region().is_some();
        let manual = snapshot.snapshot_type() == Some("manual");
        Some(SnapshotFacts {
            id: snapshot.db_snapshot_identifier()?.to_owned(),
            // A copy keeps its original's instance id; an automated backup is AWS's to
            // expire: neither is ever a candidate.
            taken_of: snapshot
                .db_instance_identifier()
                .filter(|_| manual && !copy)
                .map(str::to_owned),
            created_at: snapshot.snapshot_create_time().and_then(super::to_chrono),
            ready: snapshot.status() == Some("available"),
            made_by_autoheal: snapshot
                .db_snapshot_identifier()
                .is_some_and(|id| id.starts_with(RDS_IDENTIFIER_PREFIX)),
            tags: snapshot
                .tag_list()
                .iter()
                .filter_map(|tag| Some((tag.key()?.to_owned(), tag.value()?.to_owned())))
                .collect(),
        })
    }

    impl SnapshotStore for RdsSnapshots {
        /// The instance's manual snapshots, with their tags (`TagList`). A snapshot listed
        /// without tags is never a candidate.
        async fn list(&self, db_instance_id: &str) -> Result<Vec<SnapshotFacts>, String> {
            let mut pages = self
                .rds
                .describe_db_snapshots()
                .db_instance_identifier(db_instance_id)
                .snapshot_type("manual")
                .into_paginator()
                .items()
                .send();
            let mut found = Vec::new();
            while let Some(snapshot) = pages.next().await {
                let snapshot = snapshot.map_err(|e| describe("DescribeDBSnapshots", &e))?;
                found.extend(facts(&snapshot));
            }
            Ok(found)
        }

        async fn delete(&self, snapshot_id: &str) -> Result<(), String> {
            self.rds
                .delete_db_snapshot()
                .db_snapshot_identifier(snapshot_id)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| describe("DeleteDBSnapshot", &e))
        }
    }

    #[cfg(test)]
    #[allow(clippy::expect_used)]
    mod tests {
        use super::*;

        fn manual() -> aws_sdk_rds::types::builders::DbSnapshotBuilder {
            DbSnapshot::builder()
                .db_snapshot_identifier("autoheal-db-1")
                .db_instance_identifier("db")
                .snapshot_type("manual")
                .status("available")
        }

        #[test]
        fn a_manual_snapshot_is_of_its_instance() {
            let facts = facts(&manual().build()).expect("facts");
            assert_eq!(facts.taken_of.as_deref(), Some("db"));
            assert!(facts.ready);
        }

        #[test]
        fn copies_and_automated_backups_are_of_no_instance() {
            for snapshot in [
                manual().source_db_snapshot_identifier("arn:aws:rds:eu-west-1:1:snapshot:x"),
                manual().source_region("eu-west-1"),
                manual().snapshot_type("automated"),
                manual().snapshot_type("shared"),
            ] {
                assert_eq!(facts(&snapshot.build()).expect("facts").taken_of, None);
            }
        }

        #[test]
        fn a_snapshot_being_created_is_not_ready() {
            let facts = facts(&manual().status("creating").build()).expect("facts");
            assert!(!facts.ready);
        }
    }
}
