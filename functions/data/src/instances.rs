//! The DB instances the data layer's actions start from and make: the source a heal reads
//! (or finds gone, or opted out), the instances autoheal creates under derived names (reused
//! or deleted only when tagged as autoheal's), and the states in which an instance will not
//! become available by itself. Both `restore` and `backup` build on these.

use aws_sdk_rds::Client as RdsClient;
use aws_sdk_rds::types::{DbInstance, Tag};

use autoheal_aws::lookups::describe_db_instance;
use autoheal_aws::rds_status::{self, InstanceState};
use autoheal_aws::tags::is_opted_out;
use autoheal_core::{Assessment, HealError, HealOutcome, SkipReason};

use crate::tag_map;

/// The states in which a DB instance will not become available by itself.
pub(crate) const FAILED_INSTANCE_STATES: [&str; 8] = [
    "failed",
    "incompatible-network",
    "incompatible-option-group",
    "incompatible-parameters",
    "incompatible-restore",
    "inaccessible-encryption-credentials",
    "restore-error",
    "storage-full",
];

/// The source DB instance of a heal, or why there is none to heal.
pub(crate) enum Source {
    Healable(Box<DbInstance>),
    /// Its owner opted it out: the outcome says so.
    OptedOut(HealOutcome),
    /// It does not exist, or is being deleted: the sentence says which.
    Gone(String),
}

/// The instance a heal starts from.
pub(crate) async fn describe_source(rds: &RdsClient, id: &str) -> Result<Source, HealError> {
    let Some(source) = describe_db_instance(rds, id).await? else {
        return Ok(Source::Gone(format!("DB instance {id} does not exist")));
    };
    let status = source.db_instance_status().unwrap_or("unknown");
    if rds_status::classify(status) == InstanceState::Deleting {
        return Ok(Source::Gone(format!(
            "DB instance {id} is being deleted ({status})"
        )));
    }
    let tags = tag_map(source.tag_list().iter().map(|t| (t.key(), t.value())));
    if is_opted_out(&tags) {
        return Ok(Source::OptedOut(HealOutcome::Skipped {
            reason: SkipReason::OptedOut,
            summary: format!(
                "DB instance {id} {}",
                autoheal_aws::tags::opted_out_phrase()
            ),
        }));
    }
    Ok(Source::Healable(Box::new(source)))
}

/// Before an attempt on the instance `id`: `gone` when it does not exist or is being
/// deleted, a wait while AWS or a person works on it (when `busy_matters`: the action needs
/// it available), and otherwise to go ahead.
pub(crate) async fn assess_source(
    rds: &RdsClient,
    id: &str,
    busy_matters: bool,
) -> Result<Assessment, HealError> {
    let Some(source) = describe_db_instance(rds, id).await? else {
        return Ok(Assessment::gone(format!("DB instance {id} does not exist")));
    };
    let status = source.db_instance_status().unwrap_or("unknown");
    Ok(match rds_status::assess(id, status) {
        Some(gone @ Assessment::Gone { .. }) => gone,
        Some(wait) if busy_matters => wait,
        _ => Assessment::Proceed,
    })
}

/// Whether the instance `id` no longer exists (or is being deleted).
pub(crate) async fn source_is_gone(rds: &RdsClient, id: &str) -> Result<bool, HealError> {
    Ok(matches!(describe_source(rds, id).await?, Source::Gone(_)))
}

/// The instance `id` (one autoheal creates), or `None` when there is none yet.
pub(crate) async fn describe_instance(
    rds: &RdsClient,
    id: &str,
) -> Result<Option<DbInstance>, HealError> {
    describe_db_instance(rds, id).await
}

/// An instance found under a name autoheal derives is reused (or deleted) only if autoheal
/// made it: it carries `key=source`.
pub(crate) fn created_by_autoheal(
    instance: &DbInstance,
    key: &str,
    source: &str,
) -> Result<(), HealError> {
    let tags = tag_map(instance.tag_list().iter().map(|t| (t.key(), t.value())));
    if tags.get(key).map(String::as_str) == Some(source) {
        Ok(())
    } else {
        Err(HealError::new(format!(
            "DB instance {} already exists but is not tagged {key}={source}: autoheal leaves it alone",
            instance.db_instance_identifier().unwrap_or_default()
        )))
    }
}

pub(crate) fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}
