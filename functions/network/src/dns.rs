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
//!   is put back when the alarm returns to OK and the health check passes again, unless the
//!   record's weight was changed since.
//! - *failover* primary: Route 53 already answers with the secondary while the health check
//!   fails, so nothing is changed; without a secondary record there is nowhere to go (unsafe).
//! - other policies (latency, geolocation, multivalue, ...): Route 53 already leaves unhealthy
//!   records out of its answers; nothing is changed.
//!
//! Before anything, the failing health check is read live: passing again, it needs nothing.

use std::collections::BTreeMap;

use aws_sdk_route53::Client as Route53Client;
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ResourceRecordSet, ResourceRecordSetFailover, RrType,
    TagResourceType,
};

use autoheal_aws::tags::{OPT_OUT_TAG, pairs_opt_out};
use autoheal_core::{HealError, HealOutcome, HealRequest, Revert, SkipReason};

/// The revert that puts a zeroed record's weight back.
pub const RESTORE_RECORD_WEIGHT: &str = "restore-record-weight";

/// Whether Route 53 considers an endpoint healthy from its checkers' last observations: more
/// than 18 % of them report success (Route 53's documented rule). No observation: not known
/// to be healthy.
pub fn is_healthy<'a>(statuses: impl IntoIterator<Item = &'a str>) -> bool {
    let (mut total, mut passing) = (0usize, 0usize);
    for status in statuses {
        total += 1;
        if status.trim_start().starts_with("Success") {
            passing += 1;
        }
    }
    total > 0 && passing * 100 > total * 18
}

use autoheal_aws::errors::api_error;

/// Shifts weighted DNS traffic away from failed endpoints.
#[derive(Debug, Clone)]
pub struct DnsFailover {
    route53: Route53Client,
}

/// What to do with one record set that references the failing health check.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordStep {
    /// UPSERT the record with weight 0 (it had `previous_weight`).
    ZeroWeight {
        record: ResourceRecordSet,
        previous_weight: i64,
    },
    /// Leave the record as it is, for `reason`.
    Leave {
        record: ResourceRecordSet,
        reason: SkipReason,
        why: String,
    },
}

/// `www.example.com. A (blue)`.
pub fn record_label(record: &ResourceRecordSet) -> String {
    match record.set_identifier() {
        Some(identifier) => format!("{} {} ({identifier})", record.name(), record.r#type()),
        None => format!("{} {}", record.name(), record.r#type()),
    }
}

fn same_set(a: &ResourceRecordSet, b: &ResourceRecordSet) -> bool {
    a.name().eq_ignore_ascii_case(b.name()) && a.r#type() == b.r#type()
}

/// Decides, for every record set of one zone that references `health_check_id`, what to do.
/// `healthy` says whether another health check passes (a record without one counts as healthy,
/// as Route 53 counts it).
pub fn plan_zone(
    health_check_id: &str,
    records: &[ResourceRecordSet],
    healthy: &dyn Fn(&str) -> bool,
) -> Vec<RecordStep> {
    let references = |record: &ResourceRecordSet| record.health_check_id() == Some(health_check_id);
    records
        .iter()
        .filter(|record| references(record))
        .map(|record| {
            let label = record_label(record);
            let leave = |reason: SkipReason, why: String| RecordStep::Leave {
                record: record.clone(),
                reason,
                why,
            };
            let siblings = || {
                records
                    .iter()
                    .filter(move |other| same_set(other, record) && !references(other))
            };
            if let Some(weight) = record.weight() {
                if weight == 0 {
                    return leave(
                        SkipReason::NotNeeded,
                        format!("{label} already has weight 0"),
                    );
                }
                let takes_traffic = |other: &ResourceRecordSet| {
                    other.weight().is_some_and(|w| w > 0)
                        && other.health_check_id().is_none_or(healthy)
                };
                if siblings().any(takes_traffic) {
                    return RecordStep::ZeroWeight {
                        record: record.clone(),
                        previous_weight: weight,
                    };
                }
                return leave(
                    SkipReason::Unsafe,
                    format!(
                        "{label}: no other record of its name and type has a weight above 0 and a \
                         healthy endpoint: there is nowhere healthy to shift its traffic to"
                    ),
                );
            }
            match record.failover() {
                Some(ResourceRecordSetFailover::Primary) => {
                    match siblings().find(|other| {
                        other.failover() == Some(&ResourceRecordSetFailover::Secondary)
                    }) {
                        Some(secondary) => leave(
                            SkipReason::NotNeeded,
                            format!(
                                "{label} is a failover primary: Route 53 already answers with the secondary {} while the health check fails",
                                record_label(secondary)
                            ),
                        ),
                        None => leave(
                            SkipReason::Unsafe,
                            format!(
                                "{label} is a failover primary without a secondary record: there is nothing to fail over to"
                            ),
                        ),
                    }
                }
                Some(ResourceRecordSetFailover::Secondary) => leave(
                    SkipReason::NotNeeded,
                    format!(
                        "{label} is a failover secondary: it takes no traffic while its primary is healthy"
                    ),
                ),
                _ => leave(
                    SkipReason::NotNeeded,
                    format!(
                        "{label}: Route 53 already leaves records with a failing health check out of its answers for this routing policy"
                    ),
                ),
            }
        })
        .collect()
}

/// The health checks of the records that could take the traffic of the records using
/// `health_check_id` (same name and type, another health check).
pub fn alternatives<'r>(health_check_id: &str, records: &'r [ResourceRecordSet]) -> Vec<&'r str> {
    let failing: Vec<&ResourceRecordSet> = records
        .iter()
        .filter(|record| record.health_check_id() == Some(health_check_id))
        .collect();
    let mut ids: Vec<&str> = records
        .iter()
        .filter(|other| failing.iter().any(|record| same_set(record, other)))
        .filter_map(|other| other.health_check_id())
        .filter(|id| *id != health_check_id)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// `Z0123456789` from `/hostedzone/Z0123456789` or `Z0123456789`.
pub fn bare_zone_id(id: &str) -> &str {
    id.trim().trim_start_matches("/hostedzone/")
}

impl DnsFailover {
    pub fn new(route53: Route53Client) -> Self {
        DnsFailover { route53 }
    }

    pub async fn fail_over(
        &self,
        request: HealRequest<'_>,
        hosted_zone_id: Option<&str>,
    ) -> Result<HealOutcome, HealError> {
        let health_check_id = request.resource_id;
        // The health check must exist (its error names it otherwise).
        self.route53
            .get_health_check()
            .health_check_id(health_check_id)
            .send()
            .await
            .map_err(|e| api_error("GetHealthCheck", e))?;
        let tags = self
            .route53
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
                summary: format!("health check {health_check_id} is tagged {OPT_OUT_TAG}=true"),
            });
        }
        if self.healthy(health_check_id).await? {
            return Ok(HealOutcome::Skipped {
                reason: SkipReason::NotNeeded,
                summary: format!("health check {health_check_id} passes again"),
            });
        }
        let mut health = BTreeMap::new();

        let zones = match hosted_zone_id.map(bare_zone_id) {
            Some(zone) if !zone.is_empty() => vec![zone.to_owned()],
            _ => self.hosted_zones().await?,
        };

        let mut changed: Vec<(String, ResourceRecordSet, i64)> = Vec::new();
        let mut left: Vec<(SkipReason, String)> = Vec::new();
        let mut change_ids = Vec::new();
        for zone in &zones {
            let records = self.record_sets(zone).await?;
            for other in alternatives(health_check_id, &records) {
                if !health.contains_key(other) {
                    let healthy = self.healthy(other).await?;
                    health.insert(other.to_owned(), healthy);
                }
            }
            let healthy = |id: &str| health.get(id).copied().unwrap_or(false);
            let mut shifts = Vec::new();
            for step in plan_zone(health_check_id, &records, &healthy) {
                match step {
                    RecordStep::ZeroWeight {
                        record,
                        previous_weight,
                    } => shifts.push((record, previous_weight)),
                    RecordStep::Leave { reason, why, .. } => {
                        left.push((reason, format!("{why} (zone {zone})")))
                    }
                }
            }
            if shifts.is_empty() {
                continue;
            }
            let change_id = self
                .zero_weights(zone, &shifts, health_check_id, request.incident_id)
                .await
                .map_err(|error| {
                    if changed.is_empty() {
                        error
                    } else {
                        HealError::new(format!(
                            "{error}; already set to weight 0: {}",
                            describe_changed(&changed)
                        ))
                    }
                })?;
            change_ids.push(change_id);
            changed.extend(
                shifts
                    .into_iter()
                    .map(|(record, weight)| (zone.clone(), record, weight)),
            );
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

        let mut summary = format!(
            "set {} to weight 0 so DNS traffic goes to the healthy endpoints; the previous weight comes back when health check {health_check_id} passes again",
            describe_changed(&changed)
        );
        if !left.is_empty() {
            summary.push_str(&format!("; left alone: {}", join_reasons(&left)));
        }
        let column = |f: &dyn Fn(&(String, ResourceRecordSet, i64)) -> String| {
            changed.iter().map(f).collect::<Vec<_>>().join(",")
        };
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
            })
            .collect();
        Ok(HealOutcome::Healed {
            summary,
            details,
            reverts,
        })
    }

    /// Puts a zeroed weight back once its health check passes, if the record still has the 0
    /// autoheal gave it. A health check still failing keeps the revert for the next OK.
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
        if !self.healthy(health_check_id).await? {
            return Err(HealError::new(format!(
                "health check {health_check_id} does not pass yet: {label} keeps weight 0 until it does"
            )));
        }
        let records = self.record_sets(zone).await?;
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
        if record.weight() != Some(0) {
            return Ok(HealOutcome::Skipped {
                reason: SkipReason::NotNeeded,
                summary: format!(
                    "{label} has weight {} now, not the 0 autoheal set: it was changed since, and stays",
                    record.weight().map_or("none".to_owned(), |w| w.to_string())
                ),
            });
        }
        let mut restored = record.clone();
        restored.weight = Some(previous);
        let change = Change::builder()
            .action(ChangeAction::Upsert)
            .resource_record_set(restored)
            .build()
            .map_err(|e| HealError::new(format!("a Route 53 change: {e}")))?;
        let batch = ChangeBatch::builder()
            .comment(format!(
                "autoheal: health check {health_check_id} passes again; weight {previous} restored"
            ))
            .changes(change)
            .build()
            .map_err(|e| HealError::new(format!("a Route 53 change batch: {e}")))?;
        let change_id = self.submit(zone, batch).await?;
        Ok(HealOutcome::healed(
            format!(
                "restored weight {previous} of {label} in zone {zone}: health check {health_check_id} passes again"
            ),
            BTreeMap::from([
                ("hosted_zone_id".to_owned(), zone.to_owned()),
                ("restored_weight".to_owned(), previous.to_string()),
                ("change_id".to_owned(), change_id),
            ]),
        ))
    }

    /// Whether Route 53's checkers find the health check's endpoint healthy now.
    async fn healthy(&self, health_check_id: &str) -> Result<bool, HealError> {
        let output = self
            .route53
            .get_health_check_status()
            .health_check_id(health_check_id)
            .send()
            .await
            .map_err(|e| api_error("GetHealthCheckStatus", e))?;
        Ok(is_healthy(
            output
                .health_check_observations()
                .iter()
                .filter_map(|observation| observation.status_report())
                .filter_map(|report| report.status()),
        ))
    }

    async fn hosted_zones(&self) -> Result<Vec<String>, HealError> {
        let mut zones = Vec::new();
        let mut pages = self
            .route53
            .list_hosted_zones()
            .into_paginator()
            .items()
            .send();
        while let Some(zone) = pages.next().await {
            let zone = zone.map_err(|e| api_error("ListHostedZones", e))?;
            zones.push(bare_zone_id(zone.id()).to_owned());
        }
        Ok(zones)
    }

    /// Every record set of a zone, following `NextRecordName` / `Type` / `Identifier`.
    async fn record_sets(&self, zone: &str) -> Result<Vec<ResourceRecordSet>, HealError> {
        type Start = (String, RrType, Option<String>);
        let mut all = Vec::new();
        let mut start: Option<Start> = None;
        loop {
            let mut call = self
                .route53
                .list_resource_record_sets()
                .hosted_zone_id(zone);
            if let Some((name, kind, identifier)) = &start {
                call = call
                    .start_record_name(name)
                    .start_record_type(kind.clone())
                    .set_start_record_identifier(identifier.clone());
            }
            let page = call
                .send()
                .await
                .map_err(|e| api_error("ListResourceRecordSets", e))?;
            all.extend(page.resource_record_sets().iter().cloned());
            if !page.is_truncated() {
                return Ok(all);
            }
            let next = match (page.next_record_name(), page.next_record_type()) {
                (Some(name), Some(kind)) => (
                    name.to_owned(),
                    kind.clone(),
                    page.next_record_identifier().map(str::to_owned),
                ),
                _ => {
                    return Err(HealError::new(format!(
                        "ListResourceRecordSets: zone {zone}: a truncated page without the next record"
                    )));
                }
            };
            if start.as_ref() == Some(&next) {
                return Err(HealError::new(format!(
                    "ListResourceRecordSets: zone {zone}: the listing does not advance past {} {}",
                    next.0, next.1
                )));
            }
            start = Some(next);
        }
    }

    /// One atomic change batch per zone; returns the change id.
    async fn zero_weights(
        &self,
        zone: &str,
        shifts: &[(ResourceRecordSet, i64)],
        health_check_id: &str,
        incident_id: &str,
    ) -> Result<String, HealError> {
        let changes = shifts
            .iter()
            .map(|(record, _)| {
                let mut updated = record.clone();
                updated.weight = Some(0);
                Change::builder()
                    .action(ChangeAction::Upsert)
                    .resource_record_set(updated)
                    .build()
                    .map_err(|e| HealError::new(format!("a Route 53 change: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let batch = ChangeBatch::builder()
            .comment(format!(
                "autoheal: health check {health_check_id} fails (incident {incident_id}); weight set to 0"
            ))
            .set_changes(Some(changes))
            .build()
            .map_err(|e| HealError::new(format!("a Route 53 change batch: {e}")))?;
        self.submit(zone, batch).await
    }

    /// Applies one change batch to a zone; returns the change id.
    async fn submit(&self, zone: &str, batch: ChangeBatch) -> Result<String, HealError> {
        let output = self
            .route53
            .change_resource_record_sets()
            .hosted_zone_id(zone)
            .change_batch(batch)
            .send()
            .await
            .map_err(|e| api_error("ChangeResourceRecordSets", e))?;
        Ok(output
            .change_info()
            .map(|info| info.id().trim_start_matches("/change/").to_owned())
            .unwrap_or_default())
    }
}

fn describe_changed(changed: &[(String, ResourceRecordSet, i64)]) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record(
        set: &str,
        weight: Option<i64>,
        failover: Option<ResourceRecordSetFailover>,
        health_check: Option<&str>,
    ) -> ResourceRecordSet {
        ResourceRecordSet::builder()
            .name("www.example.com.")
            .r#type(RrType::A)
            .set_identifier(set)
            .set_weight(weight)
            .set_failover(failover)
            .set_health_check_id(health_check.map(str::to_owned))
            .ttl(60)
            .build()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn all_healthy(_: &str) -> bool {
        true
    }

    #[test]
    fn a_failing_weighted_record_is_left_when_the_only_alternative_is_unhealthy_too() {
        let records = [
            record("blue", Some(70), None, Some("hc-blue")),
            record("green", Some(30), None, Some("hc-green")),
            record("grey", Some(0), None, None),
        ];
        let green_fails = |id: &str| id != "hc-green";
        assert!(matches!(
            &plan_zone("hc-blue", &records, &green_fails)[..],
            [RecordStep::Leave {
                reason: SkipReason::Unsafe,
                ..
            }]
        ));
        // A record without a health check counts as healthy, as Route 53 counts it.
        let records = [
            record("blue", Some(70), None, Some("hc-blue")),
            record("green", Some(30), None, None),
        ];
        assert!(matches!(
            &plan_zone("hc-blue", &records, &|_: &str| false)[..],
            [RecordStep::ZeroWeight { .. }]
        ));
        assert_eq!(
            alternatives(
                "hc-blue",
                &[
                    record("blue", Some(70), None, Some("hc-blue")),
                    record("green", Some(30), None, Some("hc-green")),
                    record("teal", Some(30), None, Some("hc-green")),
                ]
            ),
            ["hc-green"]
        );
    }

    #[test]
    fn route53_counts_an_endpoint_healthy_when_more_than_18_percent_of_checkers_pass() {
        let success = "Success: HTTP Status Code 200, OK";
        let failure = "Failure: HTTP Status Code 503, Service Unavailable";
        assert!(is_healthy([success]));
        assert!(is_healthy([success, failure, failure, failure]));
        assert!(!is_healthy([
            success, failure, failure, failure, failure, failure
        ]));
        assert!(!is_healthy([failure, failure]));
        assert!(!is_healthy([]));
    }

    #[test]
    fn a_failing_weighted_record_goes_to_zero_when_another_takes_the_traffic() {
        let records = [
            record("blue", Some(70), None, Some("hc-blue")),
            record("green", Some(30), None, Some("hc-green")),
        ];
        let steps = plan_zone("hc-blue", &records, &all_healthy);
        assert_eq!(steps.len(), 1);
        assert!(matches!(
            &steps[0],
            RecordStep::ZeroWeight { record, previous_weight: 70 } if record.set_identifier() == Some("blue")
        ));
    }

    #[test]
    fn the_only_weighted_record_with_traffic_is_left_alone() {
        let records = [
            record("blue", Some(100), None, Some("hc-blue")),
            record("green", Some(0), None, Some("hc-green")),
        ];
        assert!(matches!(
            &plan_zone("hc-blue", &records, &all_healthy)[..],
            [RecordStep::Leave {
                reason: SkipReason::Unsafe,
                ..
            }]
        ));
        // Two records on the same failing endpoint cannot take each other's traffic.
        let records = [
            record("blue-a", Some(50), None, Some("hc-blue")),
            record("blue-b", Some(50), None, Some("hc-blue")),
        ];
        assert!(
            plan_zone("hc-blue", &records, &all_healthy)
                .iter()
                .all(|step| matches!(
                    step,
                    RecordStep::Leave {
                        reason: SkipReason::Unsafe,
                        ..
                    }
                ))
        );
    }

    #[test]
    fn a_record_already_at_zero_needs_nothing() {
        let records = [
            record("blue", Some(0), None, Some("hc-blue")),
            record("green", Some(100), None, None),
        ];
        assert!(matches!(
            &plan_zone("hc-blue", &records, &all_healthy)[..],
            [RecordStep::Leave {
                reason: SkipReason::NotNeeded,
                ..
            }]
        ));
    }

    #[test]
    fn failover_primary_is_left_to_route53_unless_the_secondary_is_missing() {
        let primary = record(
            "primary",
            None,
            Some(ResourceRecordSetFailover::Primary),
            Some("hc-1"),
        );
        let secondary = record(
            "secondary",
            None,
            Some(ResourceRecordSetFailover::Secondary),
            None,
        );
        assert!(matches!(
            &plan_zone("hc-1", &[primary.clone(), secondary], &all_healthy)[..],
            [RecordStep::Leave {
                reason: SkipReason::NotNeeded,
                ..
            }]
        ));
        assert!(matches!(
            &plan_zone("hc-1", &[primary], &all_healthy)[..],
            [RecordStep::Leave {
                reason: SkipReason::Unsafe,
                ..
            }]
        ));
    }

    #[test]
    fn records_of_other_health_checks_are_ignored() {
        let records = [record("blue", Some(10), None, Some("hc-other"))];
        assert!(plan_zone("hc-blue", &records, &all_healthy).is_empty());
    }

    #[test]
    fn zone_ids_lose_their_prefix() {
        assert_eq!(bare_zone_id("/hostedzone/Z123"), "Z123");
        assert_eq!(bare_zone_id("Z123"), "Z123");
    }
}
