//! The data layer: databases, caches and backups.
//!
//! - `restore-db-to-point-in-time` ([`restore`]): restores a corrupted RDS instance to a point
//!   just before the corruption, into a new instance next to the damaged one.
//! - `repair-cache` ([`cache`]): hands an ElastiCache cluster whose hit rate collapsed to the
//!   operator's cache-repair hook (a Lambda function).
//! - `verify-backup` ([`backup`]): takes a fresh snapshot of an RDS instance and proves it
//!   restores, then deletes the test restore.
//!
//! Before each new attempt the healer looks at the resource ([`Healer::assess`]): one that does
//! not exist, or is being deleted, is `gone`; one AWS or a person is working on is waited for
//! where the action needs it free (a snapshot, the cache hook).

pub mod backup;
pub mod cache;
pub mod hook;
mod instances;
pub mod restore;

use std::collections::BTreeMap;

use aws_config::SdkConfig;

use autoheal_aws::OnFirstUse;
use autoheal_core::Retention;
use autoheal_core::{Action, Assessment, HealError, HealOutcome, HealRequest, Healer, Layer, Rule};

pub use backup::BackupVerifier;
pub use cache::CacheRepairer;
pub use restore::PointInTimeRestorer;

/// Runs the data layer's actions.
#[derive(Debug, Clone)]
pub struct DataHealer {
    restorer: OnFirstUse<PointInTimeRestorer>,
    cache: OnFirstUse<CacheRepairer>,
    backups: OnFirstUse<BackupVerifier>,
}

impl DataHealer {
    /// The layer's healer for one SDK configuration (once per container): each action's
    /// clients are built when an event first needs them.
    pub fn new(sdk: &SdkConfig) -> Self {
        DataHealer {
            restorer: OnFirstUse::new(sdk, |sdk| {
                PointInTimeRestorer::new(
                    aws_sdk_rds::Client::new(sdk),
                    aws_sdk_lambda::Client::new(sdk),
                )
            }),
            cache: OnFirstUse::new(sdk, |sdk| {
                CacheRepairer::new(
                    aws_sdk_elasticache::Client::new(sdk),
                    aws_sdk_lambda::Client::new(sdk),
                )
            }),
            backups: OnFirstUse::new(sdk, |sdk| {
                BackupVerifier::new(aws_sdk_rds::Client::new(sdk))
            }),
        }
    }
}

impl Healer for DataHealer {
    fn layer(&self) -> Layer {
        Layer::Data
    }

    async fn assess(&self, request: HealRequest<'_>) -> Result<Assessment, HealError> {
        match &request.rule.action {
            Action::RestoreDbToPointInTime { .. } => self.restorer.get().assess(request).await,
            Action::RepairCache { .. } => self.cache.get().assess(request).await,
            Action::VerifyBackup { .. } => self.backups.get().assess(request).await,
            other => Err(HealError::unsupported(self.layer(), other)),
        }
    }

    async fn is_gone(&self, rule: &Rule, resource_id: &str) -> Result<bool, HealError> {
        match &rule.action {
            Action::RestoreDbToPointInTime { .. } => self.restorer.get().is_gone(resource_id).await,
            Action::RepairCache { .. } => self.cache.get().is_gone(resource_id).await,
            Action::VerifyBackup { .. } => self.backups.get().is_gone(resource_id).await,
            other => Err(HealError::unsupported(self.layer(), other)),
        }
    }

    async fn heal(&self, request: HealRequest<'_>) -> Result<HealOutcome, HealError> {
        match &request.rule.action {
            Action::RestoreDbToPointInTime {
                target_suffix,
                lookback_minutes,
                integrity_hook_function,
            } => {
                self.restorer
                    .get()
                    .restore(
                        request,
                        target_suffix,
                        *lookback_minutes,
                        integrity_hook_function.as_deref(),
                    )
                    .await
            }
            Action::RepairCache {
                hook_function,
                ttl_seconds,
            } => {
                self.cache
                    .get()
                    .repair(request, hook_function, *ttl_seconds)
                    .await
            }
            Action::VerifyBackup {
                restore_instance_class,
                keep_snapshots,
                snapshot_max_age_days,
                min_backup_retention_days,
                preferred_backup_window,
            } => {
                let retention = Retention {
                    keep: *keep_snapshots,
                    max_age_days: *snapshot_max_age_days,
                };
                let policy = backup::BackupPolicy {
                    min_retention_days: *min_backup_retention_days,
                    window: preferred_backup_window.as_deref(),
                };
                self.backups
                    .get()
                    .verify(request, restore_instance_class, retention, policy)
                    .await
            }
            other => Err(HealError::unsupported(self.layer(), other)),
        }
    }
}

/// The part of an attempt's idempotency token that names what the attempt creates: eight
/// lower-case letters or digits, the same for every retry of the attempt.
pub(crate) fn short_token(token: &str) -> String {
    let body = token.strip_prefix("autoheal-").unwrap_or(token);
    let short: String = body
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .take(8)
        .collect();
    if short.is_empty() {
        "0".to_owned()
    } else {
        short
    }
}

/// A valid RDS identifier of at most `max` characters: `base` (shortened when needed), then
/// `tail`. RDS identifiers are letters, digits and single hyphens, start with a letter and do
/// not end with a hyphen; `tail` is expected to satisfy that already.
pub(crate) fn rds_identifier(base: &str, tail: &str, max: usize) -> String {
    let mut cleaned = String::with_capacity(base.len());
    for c in base.chars() {
        let c = if c.is_ascii_alphanumeric() {
            c.to_ascii_lowercase()
        } else {
            '-'
        };
        if c == '-' && (cleaned.is_empty() || cleaned.ends_with('-')) {
            continue;
        }
        cleaned.push(c);
    }
    if !cleaned.starts_with(|c: char| c.is_ascii_alphabetic()) {
        cleaned.insert(0, 'x');
    }
    let room = max.saturating_sub(tail.len());
    cleaned.truncate(room);
    while cleaned.ends_with('-') {
        cleaned.pop();
    }
    match (cleaned.is_empty(), tail.starts_with('-')) {
        (true, _) => format!("x{}", tail.trim_start_matches('-')),
        (false, true) => format!("{cleaned}{tail}"),
        (false, false) => format!("{cleaned}-{tail}"),
    }
}

/// Tags as a map, from (key, value) pairs with both present.
pub(crate) fn tag_map<'a>(
    pairs: impl IntoIterator<Item = (Option<&'a str>, Option<&'a str>)>,
) -> BTreeMap<String, String> {
    pairs
        .into_iter()
        .filter_map(|(key, value)| Some((key?.to_owned(), value?.to_owned())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_token_is_eight_characters_of_the_hash() {
        assert_eq!(short_token("autoheal-0123456789abcdef00000001"), "01234567");
        assert_eq!(short_token("AB_c"), "abc");
        assert_eq!(short_token("---"), "0");
    }

    #[test]
    fn identifiers_are_valid_and_bounded() {
        assert_eq!(
            rds_identifier("orders-db", "-restored-01234567", 63),
            "orders-db-restored-01234567"
        );
        assert_eq!(
            rds_identifier("orders-db", "verify-01234567", 63),
            "orders-db-verify-01234567"
        );
        let long = "a".repeat(80);
        let id = rds_identifier(&long, "-restored-01234567", 63);
        assert_eq!(id.len(), 63);
        assert!(id.ends_with("-restored-01234567"));
        // Shortening never leaves a double or trailing hyphen before the tail.
        let id = rds_identifier(&format!("{}-b", "a".repeat(44)), "-restored-01234567", 63);
        assert!(!id.contains("--"), "{id}");
        assert_eq!(rds_identifier("9db", "-x", 63), "x9db-x");
        assert_eq!(rds_identifier("My_DB", "-x", 63), "my-db-x");
    }
}
