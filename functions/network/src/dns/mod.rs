//! `fail-over-dns-record`: move DNS traffic away from the endpoint of a failed Route 53 health
//! check.
//!
//! The record sets that reference the health check are found in the rule's hosted zone, or in
//! every hosted zone of the account. Per record set, by routing policy:
//!
//! - *weighted*: when another record of the same name and type keeps a weight above 0 and is
//!   healthy (no health check, or one Route 53 reports healthy), the failing record is set to
//!   weight 0 (everything else unchanged), so traffic goes to the healthy endpoints; when no
//!   healthy record would take the traffic, nothing is changed (unsafe). The previous weight
//!   is put back when the alarm returns to OK and the health check passes again, only while
//!   the record is still exactly as autoheal left it.
//! - *failover* primary: Route 53 already answers with the secondary while the health check
//!   fails, so nothing is changed; without a secondary record there is nowhere to go (unsafe).
//! - other policies (latency, geolocation, multivalue, ...): Route 53 already leaves unhealthy
//!   records out of its answers; nothing is changed.
//!
//! Every change writes only over what was read: one change batch `DELETE`s each record
//! exactly as read and `CREATE`s it anew, and Route 53 refuses the whole batch when a record
//! changed in between. A person's change between autoheal's read and its write stays, and the
//! run is `unsafe`. Before anything, the failing health check is read live: gone, there is
//! nothing to heal; passing again, it needs nothing.

mod plan;
mod route53;

use std::collections::BTreeMap;

use aws_sdk_route53::Client as Route53Client;
use aws_sdk_route53::types::{ResourceRecordSet, RrType, TagResourceType};

use autoheal_aws::errors::api_error;
use autoheal_aws::tags::pairs_opt_out;
use autoheal_core::{Assessment, HealError, HealOutcome, HealRequest, Revert, SkipReason};

pub use plan::{
    RecordStep, alternatives, bare_zone_id, fingerprint, is_healthy, plan_zone, record_label,
};
pub use route53::{Replaced, Zones};

/// The revert that puts a zeroed record's weight back.
pub const RESTORE_RECORD_WEIGHT: &str = "restore-record-weight";

/// One record autoheal set to weight 0: its zone, the record as written, its weight before.
type Shifted = (String, ResourceRecordSet, i64);

/// Shifts weighted DNS traffic away from failed endpoints.
#[derive(Debug, Clone)]
pub struct DnsFailover {
    zones: Zones,
}

impl DnsFailover {
    pub fn new(route53: Route53Client) -> Self {
        DnsFailover {
            zones: Zones::new(route53),
        }
    }

    /// Whether the health check no longer exists.
    pub async fn is_gone(&self, health_check_id: &str) -> Result<bool, HealError> {
        Ok(!self.zones.health_check_exists(health_check_id).await?)
    }

    /// A health check that no longer exists has nothing to fail over.
    pub async fn assess(&self, request: HealRequest<'_>) -> Result<Assessment, HealError> {
        Ok(if self.is_gone(request.resource_id).await? {
            Assessment::gone(gone(request.resource_id))
        } else {
            Assessment::Proceed
        })
    }

    pub async fn fail_over(
        &self,
        request: HealRequest<'_>,
        hosted_zone_id: Option<&str>,
    ) -> Result<HealOutcome, HealError> {
        let health_check_id = request.resource_id;
        if self.is_gone(health_check_id).await? {
            return Ok(HealOutcome::Skipped {
                reason: SkipReason::Gone,
                summary: gone(health_check_id),
            });
        }
        let tags = self
            .zones
            .client()
            .list_tags_for_resource()
            .resource_type(TagResourceType::Healthcheck)
            .resource_id(health_check_id)
            .send()
            .await
            .map_err(|e| api_error("ListTagsForResource", e))?;
        let pairs = tags
            .resource_tag_set()
            .map(|set| set.tags())
            .unwrap_or_default()
            .iter()
            .filter_map(|tag| Some((tag.key()?, tag.value().unwrap_or_default())));
        if pairs_opt_out(pairs) {
            return Ok(HealOutcome::Skipped {
                reason: SkipReason::OptedOut,
                summary: format!(
                    "health check {health_check_id} {}",
                    autoheal_aws::tags::opted_out_phrase()
                ),
            });
        }
        if self.zones.healthy(health_check_id).await? {
            return Ok(HealOutcome::Skipped {
                reason: SkipReason::NotNeeded,
                summary: format!("health check {health_check_id} passes again"),
            });
        }
        let mut health = BTreeMap::new();

        let zones = match hosted_zone_id.map(bare_zone_id) {
            Some(zone) if !zone.is_empty() => vec![zone.to_owned()],
            _ => self.zones.hosted_zones().await?,
        };

        let mut changed: Vec<Shifted> = Vec::new();
        let mut left: Vec<(SkipReason, String)> = Vec::new();
        let mut change_ids = Vec::new();
        for zone in &zones {
            let records = self.zones.record_sets(zone).await?;
            for other in alternatives(health_check_id, &records) {
                if !health.contains_key(other) {
                    let healthy = self.zones.healthy(other).await?;
                    health.insert(other.to_owned(), healthy);
                }
            }
            let healthy = |id: &str| health.get(id).copied().unwrap_or(false);
            let mut shifts: Vec<(ResourceRecordSet, ResourceRecordSet, i64)> = Vec::new();
            for step in plan_zone(health_check_id, &records, &healthy) {
                match step {
                    RecordStep::ZeroWeight {
                        record,
                        previous_weight,
                    } => {
                        let mut zeroed = record.clone();
                        zeroed.weight = Some(0);
                        shifts.push((record, zeroed, previous_weight));
                    }
                    RecordStep::Leave { reason, why, .. } => {
                        left.push((reason, format!("{why} (zone {zone})")))
                    }
                }
            }
            if shifts.is_empty() {
                continue;
            }
            let pairs: Vec<_> = shifts
                .iter()
                .map(|(read, zeroed, _)| (read.clone(), zeroed.clone()))
                .collect();
            let comment = format!(
                "autoheal: health check {health_check_id} fails (incident {}); weight set to 0",
                request.incident_id
            );
            match self
                .zones
                .replace_exactly(zone, &pairs, comment)
                .await
                .map_err(|error| already_changed(error, &changed))?
            {
                Replaced::Done { change_id } => {
                    change_ids.push(change_id);
                    changed.extend(
                        shifts
                            .into_iter()
                            .map(|(_, zeroed, weight)| (zone.clone(), zeroed, weight)),
                    );
                }
                Replaced::Changed { records } => left.push((
                    SkipReason::Unsafe,
                    format!(
                        "{} (zone {zone}) changed after autoheal read it: someone else is working on it, and it stays as they set it",
                        records.join(", ")
                    ),
                )),
            }
        }

        if changed.is_empty() {
            if left.is_empty() {
                return Ok(HealOutcome::Skipped {
                    reason: SkipReason::NotNeeded,
                    summary: format!(
                        "no record set in {} references health check {health_check_id}",
                        match hosted_zone_id {
                            Some(zone) => format!("hosted zone {zone}"),
                            None => format!("the account's {} hosted zone(s)", zones.len()),
                        }
                    ),
                });
            }
            let reason = if left.iter().any(|(reason, _)| *reason == SkipReason::Unsafe) {
                SkipReason::Unsafe
            } else {
                SkipReason::NotNeeded
            };
            return Ok(HealOutcome::Skipped {
                reason,
                summary: join_reasons(&left),
            });
        }
        Ok(healed(health_check_id, &changed, &left, &change_ids))
    }

    /// Puts a zeroed weight back once its health check passes, if the record is still exactly
    /// as autoheal left it. A health check still failing keeps the revert for the next OK.
    pub async fn restore(&self, revert: &Revert) -> Result<HealOutcome, HealError> {
        let param = |key: &str| revert.param(key).map_err(HealError::new);
        let zone = param("hosted_zone_id")?;
        let name = param("record_name")?;
        let kind = RrType::from(param("record_type")?);
        let identifier = param("set_identifier")?;
        let health_check_id = param("health_check_id")?;
        let previous: i64 = param("previous_weight")?.parse().map_err(|_| {
            HealError::new(format!(
                "revert `{}`: `previous_weight` is not a number",
                revert.kind
            ))
        })?;
        let label = format!("{name} {kind} ({identifier})");
        if self.is_gone(health_check_id).await? {
            return Ok(HealOutcome::Skipped {
                reason: SkipReason::NotNeeded,
                summary: format!(
                    "health check {health_check_id} no longer exists: {label} keeps weight 0 for a person to decide"
                ),
            });
        }
        if !self.zones.healthy(health_check_id).await? {
            return Err(HealError::new(format!(
                "health check {health_check_id} does not pass yet: {label} keeps weight 0 until it does"
            )));
        }
        let records = self.zones.record_sets(zone).await?;
        let Some(record) = records.into_iter().find(|record| {
            record.name().eq_ignore_ascii_case(name)
                && record.r#type() == &kind
                && record.set_identifier().unwrap_or_default() == identifier
        }) else {
            return Ok(HealOutcome::Skipped {
                reason: SkipReason::NotNeeded,
                summary: format!("{label} no longer exists in zone {zone}"),
            });
        };
        // A revert stored before autoheal kept the record's fingerprint compares the weight.
        let as_left = match revert.params.get("written") {
            Some(written) => fingerprint(&record) == *written,
            None => record.weight() == Some(0),
        };
        if !as_left {
            return Ok(HealOutcome::Skipped {
                reason: SkipReason::NotNeeded,
                summary: format!(
                    "{label} is not as autoheal left it (weight {}): it was changed since, and stays",
                    record.weight().map_or("none".to_owned(), |w| w.to_string())
                ),
            });
        }
        let mut restored = record.clone();
        restored.weight = Some(previous);
        let comment = format!(
            "autoheal: health check {health_check_id} passes again; weight {previous} restored"
        );
        match self
            .zones
            .replace_exactly(zone, &[(record, restored)], comment)
            .await?
        {
            Replaced::Done { change_id } => Ok(HealOutcome::healed(
                format!(
                    "restored weight {previous} of {label} in zone {zone}: health check {health_check_id} passes again"
                ),
                BTreeMap::from([
                    ("hosted_zone_id".to_owned(), zone.to_owned()),
                    ("restored_weight".to_owned(), previous.to_string()),
                    ("change_id".to_owned(), change_id),
                ]),
            )),
            Replaced::Changed { .. } => Ok(HealOutcome::Skipped {
                reason: SkipReason::Unsafe,
                summary: format!(
                    "{label} was changed by someone else while autoheal restored its weight: theirs stays"
                ),
            }),
        }
    }
}

fn gone(health_check_id: &str) -> String {
    format!("health check {health_check_id} does not exist: there is nothing to fail over")
}

/// A failure after earlier zones changed: the error says which records already moved.
fn already_changed(error: HealError, changed: &[Shifted]) -> HealError {
    if changed.is_empty() {
        error
    } else {
        HealError::new(format!(
            "{error}; already set to weight 0: {}",
            describe_changed(changed)
        ))
    }
}

/// The outcome of a failover that set `changed` to weight 0.
fn healed(
    health_check_id: &str,
    changed: &[Shifted],
    left: &[(SkipReason, String)],
    change_ids: &[String],
) -> HealOutcome {
    let mut summary = format!(
        "set {} to weight 0 so DNS traffic goes to the healthy endpoints; the previous weight comes back when health check {health_check_id} passes again",
        describe_changed(changed)
    );
    if !left.is_empty() {
        summary.push_str(&format!("; left alone: {}", join_reasons(left)));
    }
    let column =
        |f: &dyn Fn(&Shifted) -> String| changed.iter().map(f).collect::<Vec<_>>().join(",");
    let details = BTreeMap::from([
        ("health_check_id".to_owned(), health_check_id.to_owned()),
        (
            "hosted_zone_id".to_owned(),
            column(&|(zone, _, _)| zone.clone()),
        ),
        (
            "record_name".to_owned(),
            column(&|(_, record, _)| record.name().to_owned()),
        ),
        (
            "record_type".to_owned(),
            column(&|(_, record, _)| record.r#type().as_str().to_owned()),
        ),
        (
            "set_identifier".to_owned(),
            column(&|(_, record, _)| record.set_identifier().unwrap_or_default().to_owned()),
        ),
        (
            "previous_weight".to_owned(),
            column(&|(_, _, weight)| weight.to_string()),
        ),
        ("change_id".to_owned(), change_ids.join(",")),
    ]);
    let reverts = changed
        .iter()
        .map(|(zone, record, weight)| {
            Revert::new(RESTORE_RECORD_WEIGHT)
                .with("hosted_zone_id", zone)
                .with("record_name", record.name())
                .with("record_type", record.r#type().as_str())
                .with(
                    "set_identifier",
                    record.set_identifier().unwrap_or_default(),
                )
                .with("previous_weight", weight)
                .with("health_check_id", health_check_id)
                .with("written", fingerprint(record))
        })
        .collect();
    HealOutcome::Healed {
        summary,
        details,
        reverts,
    }
}

fn describe_changed(changed: &[Shifted]) -> String {
    changed
        .iter()
        .map(|(zone, record, weight)| {
            format!(
                "{} in zone {zone} (was weight {weight})",
                record_label(record)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn join_reasons(left: &[(SkipReason, String)]) -> String {
    left.iter()
        .map(|(_, why)| why.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}
