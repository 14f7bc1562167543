//! What to do with the record sets that use a failing health check: pure.

use aws_sdk_route53::types::{ResourceRecordSet, ResourceRecordSetFailover};

use autoheal_core::SkipReason;

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

/// What to do with one record set that references the failing health check.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordStep {
    /// Set the record's weight to 0 (it had `previous_weight`).
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

/// The record as autoheal compares it with what it left: every field that decides where
/// and how traffic goes, in one line. A revert puts a weight back only over a record that
/// still reads exactly so.
pub fn fingerprint(record: &ResourceRecordSet) -> String {
    let mut values: Vec<&str> = record
        .resource_records()
        .iter()
        .map(|value| value.value())
        .collect();
    values.sort_unstable();
    let alias = record.alias_target().map(|alias| {
        format!(
            "{}|{}|{}",
            alias.hosted_zone_id(),
            alias.dns_name(),
            alias.evaluate_target_health()
        )
    });
    let geo = record.geo_location().map(|geo| {
        format!(
            "{}|{}|{}",
            geo.continent_code().unwrap_or_default(),
            geo.country_code().unwrap_or_default(),
            geo.subdivision_code().unwrap_or_default()
        )
    });
    format!(
        "{} {} set={} weight={:?} ttl={:?} values={} health_check={:?} alias={:?} failover={:?} region={:?} geo={:?} multivalue={:?}",
        record.name().to_ascii_lowercase(),
        record.r#type(),
        record.set_identifier().unwrap_or_default(),
        record.weight(),
        record.ttl(),
        values.join(","),
        record.health_check_id(),
        alias,
        record.failover().map(ResourceRecordSetFailover::as_str),
        record.region().map(|region| region.as_str()),
        geo,
        record.multi_value_answer(),
    )
}

#[cfg(test)]
mod tests {
    use aws_sdk_route53::types::RrType;

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
    fn a_fingerprint_changes_with_what_routes_traffic_and_not_with_the_order_of_values() {
        let base = record("blue", Some(0), None, Some("hc-blue"));
        let two_values = |first: &str, second: &str| {
            let mut with = base.clone();
            with.resource_records = Some(
                [first, second]
                    .iter()
                    .map(|value| {
                        aws_sdk_route53::types::ResourceRecord::builder()
                            .value(*value)
                            .build()
                            .unwrap_or_else(|e| panic!("{e}"))
                    })
                    .collect(),
            );
            with
        };
        assert_eq!(
            fingerprint(&two_values("192.0.2.1", "192.0.2.2")),
            fingerprint(&two_values("192.0.2.2", "192.0.2.1"))
        );
        let mut reweighted = base.clone();
        reweighted.weight = Some(10);
        let mut repointed = two_values("192.0.2.9", "192.0.2.2");
        repointed.ttl = Some(300);
        for changed in [reweighted, repointed, record("blue", Some(0), None, None)] {
            assert_ne!(fingerprint(&base), fingerprint(&changed), "{changed:?}");
        }
    }

    #[test]
    fn zone_ids_lose_their_prefix() {
        assert_eq!(bare_zone_id("/hostedzone/Z123"), "Z123");
        assert_eq!(bare_zone_id("Z123"), "Z123");
    }
}
