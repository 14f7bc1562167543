//! What the live instance says about rebooting it: opted out, not available, an Aurora
//! member whose snapshot is not its own, a reboot that would also apply a person's pending
//! parameter changes, or a Multi-AZ failover that has just happened or is under way.

use aws_sdk_rds::types::DbInstance;
use chrono::{DateTime, Utc};

use autoheal_aws::rds_status::{self, InstanceState};
use autoheal_aws::tags::pairs_opt_out;
use autoheal_core::{Assessment, HealOutcome, SkipReason};

/// How long after a Multi-AZ failover completes clients may still be finding the new
/// primary through DNS (RDS: "it may take several minutes"): no reboot meanwhile.
pub const FAILOVER_SETTLE_SECONDS: i64 = 300;
/// How often a failover under way is looked at again.
pub const FAILOVER_RECHECK_SECONDS: u64 = 60;
/// How far back failover events are read.
pub const FAILOVER_LOOKBACK_MINUTES: i64 = 60;

/// The parameter groups of the instance whose changes wait for a reboot.
pub fn pending_reboot(instance: &DbInstance) -> Vec<&str> {
    instance
        .db_parameter_groups()
        .iter()
        .filter(|group| group.parameter_apply_status() == Some("pending-reboot"))
        .filter_map(|group| group.db_parameter_group_name())
        .collect()
}

/// Why the live instance must not be rebooted, if it must not.
pub fn should_skip(instance: &DbInstance, db: &str, snapshot_first: bool) -> Option<HealOutcome> {
    let skip = |reason, summary: String| Some(HealOutcome::Skipped { reason, summary });
    let tags = instance
        .tag_list()
        .iter()
        .filter_map(|tag| Some((tag.key()?, tag.value()?)));
    if pairs_opt_out(tags) {
        return skip(
            SkipReason::OptedOut,
            format!("{db} {}", autoheal_aws::tags::opted_out_phrase()),
        );
    }
    let status = instance.db_instance_status().unwrap_or("unknown");
    match rds_status::classify(status) {
        InstanceState::Available => {}
        InstanceState::Deleting => {
            return skip(
                SkipReason::Gone,
                format!("{db} is being deleted ({status})"),
            );
        }
        InstanceState::Busy { .. } | InstanceState::Other => {
            return skip(
                SkipReason::Unsafe,
                format!("{db} is not available: {status}"),
            );
        }
    }
    if snapshot_first && let Some(cluster) = instance.db_cluster_identifier() {
        return skip(
            SkipReason::Unsafe,
            format!(
                "{db} belongs to cluster {cluster}: its storage is the cluster's, so a snapshot of the instance alone cannot be taken before the reboot"
            ),
        );
    }
    let pending = pending_reboot(instance);
    if !pending.is_empty() {
        return skip(
            SkipReason::Unsafe,
            format!(
                "a reboot of {db} would also apply the parameter changes waiting in {} (pending-reboot), which nobody has chosen to apply yet: a person decides when",
                pending.join(", ")
            ),
        );
    }
    None
}

/// One failover event of the instance: when, and RDS's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailoverEvent {
    pub at: DateTime<Utc>,
    pub message: String,
}

/// Whether a Multi-AZ failover of `db` is under way (its newest failover event says it
/// started), or completed so recently that clients may not have reached the new primary yet.
pub fn failover_wait(db: &str, events: &[FailoverEvent], now: DateTime<Utc>) -> Option<Assessment> {
    let newest = events.iter().max_by_key(|event| event.at)?;
    let message = newest.message.to_ascii_lowercase();
    let at = newest.at;
    if message.contains("started") || message.contains("in progress") {
        return Some(Assessment::aws_healing(
            format!(
                "a Multi-AZ failover of DB instance {db} started at {at} and has not completed (\"{}\")",
                newest.message
            ),
            FAILOVER_RECHECK_SECONDS,
        ));
    }
    let since = (now - at).num_seconds();
    if message.contains("complete") && since < FAILOVER_SETTLE_SECONDS {
        let left = u64::try_from(FAILOVER_SETTLE_SECONDS - since.max(0)).unwrap_or(0);
        return Some(Assessment::aws_healing(
            format!(
                "a Multi-AZ failover of DB instance {db} completed at {at}: clients reach the new primary through DNS within minutes"
            ),
            left.max(1),
        ));
    }
    None
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;
    use autoheal_core::WaitReason;
    use aws_sdk_rds::types::DbParameterGroupStatus;

    fn reason(instance: DbInstance, snapshot: bool) -> Option<(SkipReason, String)> {
        match should_skip(&instance, "db", snapshot) {
            Some(HealOutcome::Skipped { reason, summary }) => Some((reason, summary)),
            _ => None,
        }
    }

    #[test]
    fn live_state_decides_whether_to_reboot() {
        let available = || DbInstance::builder().db_instance_status("available");
        assert_eq!(reason(available().build(), true), None);
        assert_eq!(
            reason(available().db_instance_status("rebooting").build(), true),
            Some((
                SkipReason::Unsafe,
                "db is not available: rebooting".to_owned()
            ))
        );
        assert_eq!(
            reason(available().db_instance_status("deleting").build(), true).map(|r| r.0),
            Some(SkipReason::Gone)
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
            .key(autoheal_aws::tags::OPT_OUT_TAG)
            .value("TRUE")
            .build();
        assert_eq!(
            reason(available().tag_list(tag).build(), true).map(|r| r.0),
            Some(SkipReason::OptedOut)
        );
    }

    #[test]
    fn a_reboot_that_would_apply_pending_parameter_changes_is_a_persons_call() {
        let group = |name: &str, status: &str| {
            DbParameterGroupStatus::builder()
                .db_parameter_group_name(name)
                .parameter_apply_status(status)
                .build()
        };
        let in_sync = DbInstance::builder()
            .db_instance_status("available")
            .db_parameter_groups(group("orders-params", "in-sync"))
            .build();
        assert_eq!(reason(in_sync, false), None);
        let pending = DbInstance::builder()
            .db_instance_status("available")
            .db_parameter_groups(group("orders-params", "pending-reboot"))
            .build();
        let (why, summary) = reason(pending, false).expect("refused");
        assert_eq!(why, SkipReason::Unsafe);
        assert!(
            summary.contains("orders-params (pending-reboot)"),
            "{summary}"
        );
    }

    #[test]
    fn a_failover_under_way_or_just_done_is_waited_for() {
        let now: DateTime<Utc> = "2026-11-24T07:00:00Z".parse().expect("a time");
        let event = |minutes_ago: i64, message: &str| FailoverEvent {
            at: now - chrono::Duration::minutes(minutes_ago),
            message: message.to_owned(),
        };
        let wait = |events: &[FailoverEvent]| match failover_wait("db", events, now) {
            Some(Assessment::Wait(wait)) => Some((wait.reason, wait.recheck_after_seconds)),
            _ => None,
        };
        let started = event(
            2,
            "A Multi-AZ failover that resulted in the promotion of a standby instance has started.",
        );
        assert_eq!(
            wait(std::slice::from_ref(&started)),
            Some((WaitReason::AwsHealing, FAILOVER_RECHECK_SECONDS))
        );
        let completed = event(1, "Multi-AZ instance failover completed");
        assert_eq!(
            wait(&[started.clone(), completed]),
            Some((WaitReason::AwsHealing, 240)),
            "clients still finding the new primary"
        );
        let long_ago = event(20, "Multi-AZ instance failover completed");
        assert_eq!(wait(&[event(25, "failover started"), long_ago]), None);
        assert_eq!(wait(&[]), None);
    }
}
