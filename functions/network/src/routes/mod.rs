//! `replace-nat-route`: send the traffic of a failing NAT gateway through its standby.
//!
//! Every route table with a route through the failing gateway names its standby NAT gateway
//! in a tag (the rule's `standby_tag`, `autoheal:standby-nat-gateway` by default). Each route
//! of that table through the failing gateway (IPv4, IPv6 or prefix-list destination) is
//! replaced with the same route through the standby, provided the standby is `available`, in
//! the same VPC and of the same connectivity type (public or private), and has headroom for
//! the failing gateway's traffic on top of its own (see [`headroom`]: its own port-allocation
//! errors and packet drops, and both gateways' connections and traffic, from CloudWatch). A
//! table without the tag, or whose standby is not fit, is left alone and reported (`unsafe`);
//! so is a table tagged `autoheal:disabled=true`. A failing gateway that no longer exists
//! (deleted, deleting or failed) is gone: its routes are a person's to clean up.
//!
//! The routes stay on the standby when the alarm returns to OK: the failing gateway then
//! carries no traffic, so its metrics recover whether or not it is fit again (port exhaustion,
//! the usual fault, would come straight back). Moving them back is a person's decision; the
//! record names each table and gateway for it.

pub mod headroom;
mod plan;

use std::collections::{BTreeMap, HashMap};

use aws_sdk_cloudwatch::Client as CloudWatchClient;
use aws_sdk_ec2::Client as Ec2Client;
use aws_sdk_ec2::types::{Filter, NatGateway, NatGatewayState, RouteTable};

use autoheal_aws::errors::api_error;
use autoheal_core::{Assessment, HealError, HealOutcome, HealRequest, SkipReason};

pub use plan::{Destination, TablePlan, destinations_through, opted_out, plan_table, tag_value};

/// Replaces routes through failing NAT gateways.
#[derive(Debug, Clone)]
pub struct NatRouteReplacer {
    ec2: Ec2Client,
    cloudwatch: CloudWatchClient,
}

/// Whether a NAT gateway is gone or on its way: it routes nothing any more.
fn is_gone(gateway: &NatGateway) -> bool {
    matches!(
        gateway.state(),
        None | Some(NatGatewayState::Deleting | NatGatewayState::Deleted | NatGatewayState::Failed)
    )
}

fn gone(id: &str) -> String {
    format!(
        "NAT gateway {id} does not exist any more (deleted or failed): there is no traffic of its to move"
    )
}

impl NatRouteReplacer {
    pub fn new(ec2: Ec2Client, cloudwatch: CloudWatchClient) -> Self {
        NatRouteReplacer { ec2, cloudwatch }
    }

    /// The gateway as EC2 describes it; `None` when EC2 does not know it (any more).
    async fn gateway(&self, id: &str) -> Result<Option<NatGateway>, HealError> {
        Ok(self.gateways(vec![id.to_owned()]).await?.remove(id))
    }

    /// Whether the failing gateway no longer exists.
    pub async fn is_gone(&self, id: &str) -> Result<bool, HealError> {
        Ok(self
            .gateway(id)
            .await?
            .is_none_or(|gateway| is_gone(&gateway)))
    }

    /// A gateway that no longer exists has no traffic to move.
    pub async fn assess(&self, request: HealRequest<'_>) -> Result<Assessment, HealError> {
        Ok(if self.is_gone(request.resource_id).await? {
            Assessment::gone(gone(request.resource_id))
        } else {
            Assessment::Proceed
        })
    }

    pub async fn replace(
        &self,
        request: HealRequest<'_>,
        standby_tag: &str,
    ) -> Result<HealOutcome, HealError> {
        let failing_id = request.resource_id;
        let failing = match self.gateway(failing_id).await? {
            Some(gateway) if !is_gone(&gateway) => gateway,
            _ => {
                return Ok(HealOutcome::Skipped {
                    reason: SkipReason::Gone,
                    summary: gone(failing_id),
                });
            }
        };
        if opted_out(failing.tags()) {
            return Ok(HealOutcome::Skipped {
                reason: SkipReason::OptedOut,
                summary: format!(
                    "NAT gateway {failing_id} {}",
                    autoheal_aws::tags::opted_out_phrase()
                ),
            });
        }

        let tables = self.tables_through(failing_id).await?;
        if tables.is_empty() {
            return Ok(HealOutcome::Skipped {
                reason: SkipReason::NotNeeded,
                summary: format!("no route table routes through NAT gateway {failing_id}"),
            });
        }
        let standby_ids: Vec<String> = tables
            .iter()
            .filter_map(|table| tag_value(table.tags(), standby_tag))
            .filter(|id| *id != failing_id)
            .map(str::to_owned)
            .collect();
        let standbys = self.gateways(standby_ids).await?;

        let mut left: Vec<(SkipReason, String)> = Vec::new();
        let mut moves = Vec::new();
        for table in &tables {
            match plan_table(table, &failing, standby_tag, &standbys) {
                TablePlan::Leave { reason, why, .. } => left.push((reason, why)),
                TablePlan::Replace {
                    table,
                    standby,
                    destinations,
                } => moves.push((table, standby, destinations)),
            }
        }
        let unfit = self.without_headroom(&failing, &moves, &standbys).await?;
        let mut replaced: Vec<(String, String, Vec<Destination>)> = Vec::new();
        for (table, standby, destinations) in moves {
            if let Some(why) = unfit.get(&standby) {
                left.push((
                    SkipReason::Unsafe,
                    format!("{table}: its standby NAT gateway {standby} has no headroom: {why}"),
                ));
                continue;
            }
            // Moved one by one: a failure says exactly which routes moved before it, in
            // this table too.
            replaced.push((table.clone(), standby.clone(), Vec::new()));
            for destination in destinations {
                let moved = self.replace_route(&table, &destination, &standby).await;
                if let Err(error) = moved {
                    replaced.retain(|(_, _, done)| !done.is_empty());
                    return Err(if replaced.is_empty() {
                        error
                    } else {
                        HealError::new(format!(
                            "{error}; already moved: {}",
                            describe_replaced(&replaced)
                        ))
                    });
                }
                if let Some((_, _, done)) = replaced.last_mut() {
                    done.push(destination);
                }
            }
        }

        let left_summary = left
            .iter()
            .map(|(_, why)| why.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        if replaced.is_empty() {
            let reason = [SkipReason::Unsafe, SkipReason::OptedOut]
                .into_iter()
                .find(|wanted| left.iter().any(|(reason, _)| reason == wanted))
                .unwrap_or(SkipReason::NotNeeded);
            return Ok(HealOutcome::Skipped {
                reason,
                summary: format!(
                    "no route through NAT gateway {failing_id} was changed: {left_summary}"
                ),
            });
        }
        let mut summary = format!(
            "moved the routes through failing NAT gateway {failing_id} to the standby: {}; they stay there when the alarm clears (an idle gateway's metrics recover whether or not it is fit), until a person moves them back",
            describe_replaced(&replaced)
        );
        if !left.is_empty() {
            summary.push_str(&format!("; left alone: {left_summary}"));
        }
        let mut details: BTreeMap<String, String> = replaced
            .iter()
            .map(|(table, standby, _)| (table.clone(), standby.clone()))
            .collect();
        details.insert("failing_nat_gateway".to_owned(), failing_id.to_owned());
        if !left.is_empty() {
            details.insert("left_alone".to_owned(), left_summary);
        }
        Ok(HealOutcome::healed(summary, details))
    }

    /// The standbys among `moves` without room for the failing gateway's traffic, with why.
    async fn without_headroom(
        &self,
        failing: &NatGateway,
        moves: &[(String, String, Vec<Destination>)],
        standbys: &HashMap<String, NatGateway>,
    ) -> Result<HashMap<String, String>, HealError> {
        let mut targets: Vec<&str> = moves
            .iter()
            .map(|(_, standby, _)| standby.as_str())
            .collect();
        targets.sort_unstable();
        targets.dedup();
        if targets.is_empty() {
            return Ok(HashMap::new());
        }
        let failing_id = failing.nat_gateway_id().unwrap_or_default();
        let mut gateways = vec![failing_id];
        gateways.extend(&targets);
        let loads = headroom::loads(&self.cloudwatch, &gateways).await?;
        let load = |id: &str| loads.get(id).cloned().unwrap_or_default();
        Ok(targets
            .into_iter()
            .filter_map(|standby| {
                let addresses = standbys
                    .get(standby)
                    .map_or(1, |gateway| gateway.nat_gateway_addresses().len());
                headroom::headroom(&load(failing_id), &load(standby), addresses)
                    .err()
                    .map(|why| (standby.to_owned(), why))
            })
            .collect())
    }

    /// The route tables with a route through `nat_gateway_id`.
    async fn tables_through(&self, nat_gateway_id: &str) -> Result<Vec<RouteTable>, HealError> {
        let mut tables = Vec::new();
        let mut pages = self
            .ec2
            .describe_route_tables()
            .filters(
                Filter::builder()
                    .name("route.nat-gateway-id")
                    .values(nat_gateway_id)
                    .build(),
            )
            .into_paginator()
            .items()
            .send();
        while let Some(table) = pages.next().await {
            tables.push(table.map_err(|e| api_error("DescribeRouteTables", e))?);
        }
        Ok(tables)
    }

    /// The NAT gateways among `ids` that exist (a filter, so one missing id fails nothing).
    async fn gateways(&self, ids: Vec<String>) -> Result<HashMap<String, NatGateway>, HealError> {
        let mut found = HashMap::new();
        if ids.is_empty() {
            return Ok(found);
        }
        let mut pages = self
            .ec2
            .describe_nat_gateways()
            .filter(
                Filter::builder()
                    .name("nat-gateway-id")
                    .set_values(Some(ids))
                    .build(),
            )
            .into_paginator()
            .items()
            .send();
        while let Some(gateway) = pages.next().await {
            let gateway = gateway.map_err(|e| api_error("DescribeNatGateways", e))?;
            if let Some(id) = gateway.nat_gateway_id() {
                found.insert(id.to_owned(), gateway);
            }
        }
        Ok(found)
    }

    async fn replace_route(
        &self,
        table: &str,
        destination: &Destination,
        standby: &str,
    ) -> Result<(), HealError> {
        let call = self
            .ec2
            .replace_route()
            .route_table_id(table)
            .nat_gateway_id(standby);
        let call = match destination {
            Destination::Ipv4(cidr) => call.destination_cidr_block(cidr),
            Destination::Ipv6(cidr) => call.destination_ipv6_cidr_block(cidr),
            Destination::PrefixList(list) => call.destination_prefix_list_id(list),
        };
        call.send()
            .await
            .map_err(|e| api_error("ReplaceRoute", e))
            .map_err(|error| HealError::new(format!("{table} {destination}: {error}")))?;
        Ok(())
    }
}

fn describe_replaced(replaced: &[(String, String, Vec<Destination>)]) -> String {
    replaced
        .iter()
        .map(|(table, standby, destinations)| {
            let destinations = destinations
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            format!("{table} ({destinations}) -> {standby}")
        })
        .collect::<Vec<_>>()
        .join("; ")
}
