//! What an RDS DB instance's status says to a healer about to act on it: the instance is
//! there to heal, it is going away, or someone is already working on it and autoheal waits.
//!
//! RDS names each state (`DescribeDBInstances`' `DBInstanceStatus`). A reboot, a snapshot or
//! a modification is refused, or fights the work under way, unless the instance is
//! `available`; so before autoheal acts it sorts the others: work AWS does by itself
//! (automated backups, maintenance, a failover, storage optimisation) ends by itself and is
//! waited for as `aws-healing`; a change a person started (a modification, an engine upgrade,
//! new credentials) or a stop they asked for is theirs, and is waited for as `operator-hold`.
//! A state that no wait ends (`failed`, `storage-full`, `incompatible-*`) is left to the
//! action, which refuses to act on an instance that is not available.

use autoheal_core::{Assessment, WaitReason};

/// How long to wait before looking again at work AWS does by itself.
pub const AWS_WORK_RECHECK_SECONDS: u64 = 120;
/// How long to wait before looking again at a change a person started.
pub const PERSON_WORK_RECHECK_SECONDS: u64 = 300;

/// States in which AWS is working on the instance by itself, with what each means.
const AWS_WORK: [(&str, &str); 8] = [
    ("backing-up", "RDS is backing it up"),
    ("maintenance", "RDS is applying maintenance"),
    ("rebooting", "it is rebooting"),
    ("starting", "it is starting"),
    ("failing-over", "it is failing over to its standby"),
    ("storage-optimization", "RDS is optimising its storage"),
    ("creating", "it is being created"),
    ("storage-initialization", "RDS is initialising its storage"),
];

/// States in which a change a person asked for is under way, or they stopped the instance.
const PERSON_WORK: [(&str, &str); 12] = [
    ("modifying", "a modification is being applied"),
    ("upgrading", "its engine is being upgraded"),
    ("renaming", "it is being renamed"),
    (
        "resetting-master-credentials",
        "its master credentials are being reset",
    ),
    (
        "configuring-enhanced-monitoring",
        "Enhanced Monitoring is being configured",
    ),
    (
        "configuring-iam-database-auth",
        "IAM database authentication is being configured",
    ),
    (
        "configuring-log-exports",
        "its log exports are being configured",
    ),
    ("converting-to-vpc", "it is being moved into a VPC"),
    ("moving-to-vpc", "it is being moved into a VPC"),
    (
        "storage-config-upgrade",
        "its storage configuration is being upgraded",
    ),
    ("stopping", "it is being stopped"),
    ("stopped", "it was stopped"),
];

/// What an instance's status means for an action about to run on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceState {
    /// `available`: the action may look further.
    Available,
    /// Being deleted: nothing is left to heal.
    Deleting,
    /// Someone is working on it: wait for them.
    Busy {
        reason: WaitReason,
        /// What the work is, as a clause: "RDS is backing it up".
        what: &'static str,
    },
    /// Any other state (one no wait ends, or one this table does not know): the action
    /// decides, and refuses an instance that is not available.
    Other,
}

/// The meaning of `status` (`DBInstanceStatus`).
pub fn classify(status: &str) -> InstanceState {
    if status == "available" {
        return InstanceState::Available;
    }
    if matches!(status, "deleting" | "delete-precheck") {
        return InstanceState::Deleting;
    }
    let busy = |reason, table: &[(&str, &'static str)]| {
        table
            .iter()
            .find(|(name, _)| *name == status)
            .map(|(_, what)| InstanceState::Busy { reason, what })
    };
    busy(WaitReason::AwsHealing, &AWS_WORK)
        .or_else(|| busy(WaitReason::OperatorHold, &PERSON_WORK))
        .unwrap_or(InstanceState::Other)
}

/// The assessment of DB instance `db` in `status`, when it says to wait or that the instance
/// is going away; `None` when it is for the action to decide.
pub fn assess(db: &str, status: &str) -> Option<Assessment> {
    match classify(status) {
        InstanceState::Available | InstanceState::Other => None,
        InstanceState::Deleting => Some(Assessment::gone(format!(
            "DB instance {db} is being deleted ({status})"
        ))),
        InstanceState::Busy { reason, what } => {
            let summary = format!("DB instance {db} is {status}: {what}");
            Some(match reason {
                WaitReason::OperatorHold => {
                    Assessment::operator_hold(summary, PERSON_WORK_RECHECK_SECONDS)
                }
                _ => Assessment::aws_healing(summary, AWS_WORK_RECHECK_SECONDS),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(status: &str) -> Option<WaitReason> {
        match assess("db", status) {
            Some(Assessment::Wait(wait)) => Some(wait.reason),
            _ => None,
        }
    }

    #[test]
    fn aws_own_work_is_waited_for_as_aws_healing() {
        for status in [
            "backing-up",
            "maintenance",
            "rebooting",
            "storage-optimization",
        ] {
            assert_eq!(reason(status), Some(WaitReason::AwsHealing), "{status}");
        }
    }

    #[test]
    fn a_persons_change_or_stop_is_waited_for_as_their_hold() {
        for status in ["modifying", "upgrading", "stopped", "stopping", "renaming"] {
            assert_eq!(reason(status), Some(WaitReason::OperatorHold), "{status}");
        }
    }

    #[test]
    fn an_instance_being_deleted_is_gone_and_the_rest_is_the_actions() {
        assert!(matches!(
            assess("db", "deleting"),
            Some(Assessment::Gone { .. })
        ));
        for status in [
            "available",
            "failed",
            "storage-full",
            "incompatible-network",
            "new",
        ] {
            assert_eq!(assess("db", status), None, "{status}");
        }
        let Some(Assessment::Wait(wait)) = assess("orders-db", "backing-up") else {
            panic!("a wait");
        };
        assert_eq!(
            wait.summary,
            "DB instance orders-db is backing-up: RDS is backing it up"
        );
    }
}
