//! `fail-over-dns-record`: move DNS traffic away from the endpoint of a failed Route 53 health
//! check.
//!
//! The record sets that reference the health check are found in the rule's hosted zone, or in
//! every hosted zone of the account. Per record set, by routing policy:
//!
//! - *weighted*: when another record of the same name and type keeps a weight above 0, the
//!   failing record is set to weight 0 (everything else unchanged), so traffic stays on the
//!   healthy endpoints until a person restores the weight; when no other record would take the
//!   traffic, nothing is changed (unsafe).
//! - *failover* primary: Route 53 already answers with the secondary while the health check
//!   fails, so nothing is changed; without a secondary record there is nowhere to go (unsafe).
//! - other policies (latency, geolocation, multivalue, ...): Route 53 already leaves unhealthy
//!   records out of its answers; nothing is changed.

use std::collections::BTreeMap;

use aws_sdk_route53::Client as Route53Client;
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ResourceRecordSet, ResourceRecordSetFailover, RrType,
    TagResourceType,
};

use autoheal_aws::tags::{OPT_OUT_TAG, pairs_opt_out};
use autoheal_core::{HealError, HealOutcome, HealRequest, SkipReason};

use crate::api_error;

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
pub fn plan_zone(health_check_id: &str, records: &[ResourceRecordSet]) -> Vec<RecordStep> {
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
                if siblings().any(|other| other.weight().is_some_and(|w| w > 0)) {
                    return RecordStep::ZeroWeight {
                        record: record.clone(),
                        previous_weight: weight,
                    };
                }
                return leave(
                    SkipReason::Unsafe,
                    format!(
                        "{label} is the only record of its name and type with a weight above 0 \
                         whose endpoint is not failing: there is no healthy endpoint to shift its traffic to"
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

        let zones = match hosted_zone_id.map(bare_zone_id) {
            Some(zone) if !zone.is_empty() => vec![zone.to_owned()],
            _ => self.hosted_zones().await?,
        };

        let mut changed: Vec<(String, ResourceRecordSet, i64)> = Vec::new();
        let mut left: Vec<(SkipReason, String)> = Vec::new();
        let mut change_ids = Vec::new();
        for zone in &zones {
            let records = self.record_sets(zone).await?;
            let mut shifts = Vec::new();
            for step in plan_zone(health_check_id, &records) {
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
            "set {} to weight 0 so DNS traffic goes to the healthy endpoints (restore the previous weight once health check {health_check_id} passes)",
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
        Ok(HealOutcome::healed(summary, details))
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

    #[test]
    fn a_failing_weighted_record_goes_to_zero_when_another_takes_the_traffic() {
        let records = [
            record("blue", Some(70), None, Some("hc-blue")),
            record("green", Some(30), None, Some("hc-green")),
        ];
        let steps = plan_zone("hc-blue", &records);
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
            &plan_zone("hc-blue", &records)[..],
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
        assert!(plan_zone("hc-blue", &records).iter().all(|step| matches!(
            step,
            RecordStep::Leave {
                reason: SkipReason::Unsafe,
                ..
            }
        )));
    }

    #[test]
    fn a_record_already_at_zero_needs_nothing() {
        let records = [
            record("blue", Some(0), None, Some("hc-blue")),
            record("green", Some(100), None, None),
        ];
        assert!(matches!(
            &plan_zone("hc-blue", &records)[..],
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
            &plan_zone("hc-1", &[primary.clone(), secondary])[..],
            [RecordStep::Leave {
                reason: SkipReason::NotNeeded,
                ..
            }]
        ));
        assert!(matches!(
            &plan_zone("hc-1", &[primary])[..],
            [RecordStep::Leave {
                reason: SkipReason::Unsafe,
                ..
            }]
        ));
    }

    #[test]
    fn records_of_other_health_checks_are_ignored() {
        let records = [record("blue", Some(10), None, Some("hc-other"))];
        assert!(plan_zone("hc-blue", &records).is_empty());
    }

    #[test]
    fn zone_ids_lose_their_prefix() {
        assert_eq!(bare_zone_id("/hostedzone/Z123"), "Z123");
        assert_eq!(bare_zone_id("Z123"), "Z123");
    }
}
