//! The Route 53 requests of the DNS action: health checks, zones, record sets, and changes
//! that replace a record only while it is still exactly as read.

use aws_sdk_route53::Client as Route53Client;
use aws_sdk_route53::types::{Change, ChangeAction, ChangeBatch, ResourceRecordSet, RrType};

use autoheal_aws::errors::api_error;
use autoheal_core::HealError;

use super::plan::{bare_zone_id, is_healthy, record_label};

/// How a change that replaces records as read went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replaced {
    /// Route 53 took the change; its id.
    Done { change_id: String },
    /// Someone changed these records (labels) after autoheal read them: Route 53 refused the
    /// whole batch, and their records stay as they are.
    Changed { records: Vec<String> },
}

/// Route 53, as the DNS action uses it.
#[derive(Debug, Clone)]
pub struct Zones {
    route53: Route53Client,
}

impl Zones {
    pub fn new(route53: Route53Client) -> Self {
        Zones { route53 }
    }

    pub fn client(&self) -> &Route53Client {
        &self.route53
    }

    /// Whether the health check exists.
    pub async fn health_check_exists(&self, health_check_id: &str) -> Result<bool, HealError> {
        match self
            .route53
            .get_health_check()
            .health_check_id(health_check_id)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_no_such_health_check()) =>
            {
                Ok(false)
            }
            Err(e) => Err(api_error("GetHealthCheck", e)),
        }
    }

    /// Whether Route 53's checkers find the health check's endpoint healthy now.
    pub async fn healthy(&self, health_check_id: &str) -> Result<bool, HealError> {
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

    /// Every hosted zone of the account, every page.
    pub async fn hosted_zones(&self) -> Result<Vec<String>, HealError> {
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
    pub async fn record_sets(&self, zone: &str) -> Result<Vec<ResourceRecordSet>, HealError> {
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

    /// Replaces each `(read, new)` pair in one change batch: a `DELETE` of the record exactly
    /// as read, then a `CREATE` of the new one. Route 53 applies a batch whole or not at all,
    /// and refuses a `DELETE` whose values are not the record's current ones: a record
    /// someone changed after autoheal read it stays theirs. A refusal is told apart from
    /// other invalid batches by reading the records again.
    pub async fn replace_exactly(
        &self,
        zone: &str,
        pairs: &[(ResourceRecordSet, ResourceRecordSet)],
        comment: String,
    ) -> Result<Replaced, HealError> {
        let mut changes = Vec::new();
        for (read, new) in pairs {
            for (action, record) in [(ChangeAction::Delete, read), (ChangeAction::Create, new)] {
                changes.push(
                    Change::builder()
                        .action(action)
                        .resource_record_set(record.clone())
                        .build()
                        .map_err(|e| HealError::new(format!("a Route 53 change: {e}")))?,
                );
            }
        }
        let batch = ChangeBatch::builder()
            .comment(comment)
            .set_changes(Some(changes))
            .build()
            .map_err(|e| HealError::new(format!("a Route 53 change batch: {e}")))?;
        let refused = match self
            .route53
            .change_resource_record_sets()
            .hosted_zone_id(zone)
            .change_batch(batch)
            .send()
            .await
        {
            Ok(output) => {
                return Ok(Replaced::Done {
                    change_id: output
                        .change_info()
                        .map(|info| info.id().trim_start_matches("/change/").to_owned())
                        .unwrap_or_default(),
                });
            }
            Err(e) => {
                let invalid = e
                    .as_service_error()
                    .is_some_and(|e| e.is_invalid_change_batch());
                let error = api_error("ChangeResourceRecordSets", e);
                if !invalid {
                    return Err(error);
                }
                error
            }
        };
        let now = self.record_sets(zone).await?;
        let changed: Vec<String> = pairs
            .iter()
            .filter(|(read, _)| !now.contains(read))
            .map(|(read, _)| record_label(read))
            .collect();
        if changed.is_empty() {
            Err(refused)
        } else {
            Ok(Replaced::Changed { records: changed })
        }
    }
}
