//! `restore-db-to-point-in-time`: restore a corrupted RDS instance to a point just before the
//! corruption, into a NEW instance, and check the copy's data. The damaged instance is never
//! modified: a person switches the application over (or copies the lost rows back).
//!
//! A restore takes minutes to hours, so the action runs as steps (`Continuing`): it follows
//! the restored instance until it is `available`, then runs the operator's integrity check
//! (`integrity_hook_function`, a Lambda function) with
//! `{"action": "verify-integrity", "source_instance_id", "restored_instance_id",
//! "restored_endpoint", "restore_time", "incident", "attempt", "idempotency_token"}`. Its
//! verdict, `{"verdict": "consistent" | "inconsistent", "details": …}`, goes into the record
//! and the notification; `inconsistent` fails the run, and the copy is kept for a person.
//! Without a hook the record says the check was not run (`integrity_check = not-run`),
//! never that it passed.
//!
//! The restore time is the alarm's state-change time minus `lookback_minutes`, or the
//! instance's latest restorable time when that is earlier. The new instance is named
//! `<db><target_suffix>-<8 characters of the attempt's idempotency token>`, so a retried attempt
//! finds and reports the copy it already started instead of starting another.

use std::collections::BTreeMap;

use aws_sdk_lambda::Client as LambdaClient;
use aws_sdk_rds::Client as RdsClient;
use aws_sdk_rds::types::DbInstance;
use chrono::{DateTime, Duration, SecondsFormat, Utc};

use autoheal_aws::errors::api_error;
use autoheal_core::{Assessment, HealError, HealOutcome, HealRequest, SkipReason};

use crate::hook::{self, Integrity};
use crate::instances::{
    FAILED_INSTANCE_STATES, Source, assess_source, created_by_autoheal, describe_instance,
    describe_source, source_is_gone, tag,
};
use crate::{rds_identifier, short_token};

/// RDS DB instance identifiers are at most 63 characters.
const MAX_INSTANCE_ID: usize = 63;

/// How long to let RDS work on the restore before looking again.
pub const RESTORE_STEP_SECONDS: u64 = 120;

/// Restores RDS instances to a point in time.
#[derive(Debug, Clone)]
pub struct PointInTimeRestorer {
    rds: RdsClient,
    lambda: LambdaClient,
}

impl PointInTimeRestorer {
    pub fn new(rds: RdsClient, lambda: LambdaClient) -> Self {
        PointInTimeRestorer { rds, lambda }
    }

    /// Before an attempt: whether the damaged instance is still there. A restore reads its
    /// backups, not the instance, so nothing the instance is doing is waited for.
    pub async fn assess(&self, request: HealRequest<'_>) -> Result<Assessment, HealError> {
        assess_source(&self.rds, request.resource_id, false).await
    }

    /// Whether the damaged instance no longer exists.
    pub async fn is_gone(&self, db: &str) -> Result<bool, HealError> {
        source_is_gone(&self.rds, db).await
    }

    pub async fn restore(
        &self,
        request: HealRequest<'_>,
        target_suffix: &str,
        lookback_minutes: u32,
        integrity_hook: Option<&str>,
    ) -> Result<HealOutcome, HealError> {
        let db = request.resource_id;
        let source = match describe_source(&self.rds, db).await? {
            Source::Healable(source) => source,
            Source::OptedOut(skipped) => return Ok(skipped),
            Source::Gone(why) => {
                return Ok(HealOutcome::Skipped {
                    reason: SkipReason::Gone,
                    summary: why,
                });
            }
        };
        if source.backup_retention_period().unwrap_or(0) <= 0 {
            return Ok(HealOutcome::Skipped {
                reason: SkipReason::Unsafe,
                summary: format!(
                    "DB instance {db} has automated backups turned off (backup retention 0): \
                     there is no point in time to restore to"
                ),
            });
        }

        let target = rds_identifier(
            db,
            &format!(
                "{}-{}",
                target_suffix.trim_end_matches('-'),
                short_token(request.idempotency_token)
            ),
            MAX_INSTANCE_ID,
        );
        let latest = source
            .latest_restorable_time()
            .and_then(|t| DateTime::<Utc>::from_timestamp(t.secs(), t.subsec_nanos()));
        let restore_time = restore_time(
            request.event.time.unwrap_or_else(Utc::now),
            lookback_minutes,
            latest,
        );

        let (restored, reused) = match describe_instance(&self.rds, &target).await? {
            Some(existing) => {
                created_by_autoheal(&existing, "autoheal:restored-from", db)?;
                (existing, true)
            }
            None => (
                self.start_restore(request, &source, &target, restore_time)
                    .await?,
                false,
            ),
        };

        let status = restored
            .db_instance_status()
            .unwrap_or("unknown")
            .to_owned();
        let endpoint = restored
            .endpoint()
            .and_then(|e| e.address().map(|a| (a, e.port())))
            .map(|(address, port)| match port {
                Some(port) => format!("{address}:{port}"),
                None => address.to_owned(),
            });
        let when = restore_time.to_rfc3339_opts(SecondsFormat::Secs, true);
        let mut details = BTreeMap::from([
            ("source_instance_id".to_owned(), db.to_owned()),
            ("restored_instance_id".to_owned(), target.clone()),
            ("restore_time".to_owned(), when.clone()),
            ("restored_instance_status".to_owned(), status.clone()),
        ]);
        let mut summary = format!(
            "{} {db} as of {when} into new DB instance {target} (status {status}",
            if reused {
                "restored"
            } else {
                "started restoring"
            }
        );
        if let Some(endpoint) = &endpoint {
            summary.push_str(&format!(", endpoint {endpoint}"));
            details.insert("restored_endpoint".to_owned(), endpoint.clone());
        }
        summary.push(')');
        if reused {
            details.insert("reused".to_owned(), "true".to_owned());
        }
        match status.as_str() {
            "available" => {}
            failed if FAILED_INSTANCE_STATES.contains(&failed) => {
                return Err(HealError::new(format!(
                    "{summary}: the restore ended {failed}; {db} was left untouched"
                )));
            }
            _ => {
                summary.push_str("; the integrity check runs once it is available");
                return Ok(HealOutcome::Continuing {
                    summary,
                    details,
                    resume_after_seconds: RESTORE_STEP_SECONDS,
                });
            }
        }

        let Some(hook_function) = integrity_hook else {
            details.insert("integrity_check".to_owned(), "not-run".to_owned());
            summary.push_str(&format!(
                "; the integrity check was not run (the rule names no integrity_hook_function): \
                 {db} was left untouched; verify {target}, then switch the application over"
            ));
            return Ok(HealOutcome::healed(summary, details));
        };
        let payload = serde_json::json!({
            "action": "verify-integrity",
            "source_instance_id": db,
            "restored_instance_id": target,
            "restored_endpoint": endpoint,
            "restore_time": when,
            "incident": request.incident_id,
            "attempt": request.attempt,
            "idempotency_token": request.idempotency_token,
        });
        let reply = hook::invoke(&self.lambda, "integrity hook", hook_function, &payload)
            .await
            .map_err(|mut error| {
                error.message = format!("{summary}, but {}", error.message);
                error
            })?;
        details.extend(hook::details(hook_function, &reply));
        match hook::integrity_verdict(hook_function, &reply) {
            Ok(Integrity::Consistent { details: found }) => {
                details.insert("integrity_check".to_owned(), "consistent".to_owned());
                details.insert("integrity_details".to_owned(), found.clone());
                let found = if found.is_empty() {
                    String::new()
                } else {
                    format!(" ({found})")
                };
                summary.push_str(&format!(
                    "; integrity hook {hook_function} found it consistent{found}: switch the application over to {target}; {db} was left untouched"
                ));
                Ok(HealOutcome::healed(summary, details))
            }
            Ok(Integrity::Inconsistent { details: found }) => Err(HealError::new(format!(
                "{summary}, but integrity hook {hook_function} found it inconsistent: {found}; {target} is kept for a person to inspect, {db} was left untouched"
            ))),
            Err(error) => Err(HealError::new(format!("{summary}, but {}", error.message))),
        }
    }

    async fn start_restore(
        &self,
        request: HealRequest<'_>,
        source: &DbInstance,
        target: &str,
        restore_time: DateTime<Utc>,
    ) -> Result<DbInstance, HealError> {
        let db = request.resource_id;
        let security_groups: Vec<String> = source
            .vpc_security_groups()
            .iter()
            .filter_map(|g| g.vpc_security_group_id().map(str::to_owned))
            .collect();
        let output = self
            .rds
            .restore_db_instance_to_point_in_time()
            .source_db_instance_identifier(db)
            .target_db_instance_identifier(target)
            .restore_time(aws_smithy_types::DateTime::from_secs(
                restore_time.timestamp(),
            ))
            // Same size and network as the damaged instance, so it can take over.
            .set_db_instance_class(source.db_instance_class().map(str::to_owned))
            .set_db_subnet_group_name(
                source
                    .db_subnet_group()
                    .and_then(|g| g.db_subnet_group_name())
                    .map(str::to_owned),
            )
            .set_vpc_security_group_ids((!security_groups.is_empty()).then_some(security_groups))
            .set_publicly_accessible(source.publicly_accessible())
            .set_multi_az(source.multi_az())
            .tags(tag("autoheal:restored-from", db))
            .tags(tag("autoheal:incident", request.incident_id))
            .send()
            .await
            .map_err(|e| api_error("RestoreDBInstanceToPointInTime", e))?;
        output.db_instance().cloned().ok_or_else(|| {
            HealError::new(format!(
                "RestoreDBInstanceToPointInTime returned no DB instance for {target}"
            ))
        })
    }
}

/// The alarm's time minus the lookback, no later than the latest restorable time.
pub fn restore_time(
    alarm_time: DateTime<Utc>,
    lookback_minutes: u32,
    latest_restorable: Option<DateTime<Utc>>,
) -> DateTime<Utc> {
    let wanted = alarm_time - Duration::minutes(i64::from(lookback_minutes));
    match latest_restorable {
        Some(latest) if latest < wanted => latest,
        _ => wanted,
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().expect("a time")
    }

    #[test]
    fn restore_time_looks_back_from_the_alarm() {
        assert_eq!(
            restore_time(
                at("2026-11-24T07:03:14Z"),
                5,
                Some(at("2026-11-24T07:10:00Z"))
            ),
            at("2026-11-24T06:58:14Z")
        );
    }

    #[test]
    fn restore_time_is_clamped_to_the_latest_restorable_time() {
        assert_eq!(
            restore_time(
                at("2026-11-24T07:03:14Z"),
                5,
                Some(at("2026-11-24T06:55:00Z"))
            ),
            at("2026-11-24T06:55:00Z")
        );
        assert_eq!(
            restore_time(at("2026-11-24T07:03:14Z"), 0, None),
            at("2026-11-24T07:03:14Z")
        );
    }
}
