//! `replace-nat-route`: send the traffic of a failing NAT gateway through its standby.
//!
//! Every route table with a route through the failing gateway names its standby NAT gateway
//! in a tag (the rule's `standby_tag`, `autoheal:standby-nat-gateway` by default). Each route
//! of that table through the failing gateway (IPv4, IPv6 or prefix-list destination) is
//! replaced with the same route through the standby, provided the standby is `available`, in
//! the same VPC and of the same connectivity type (public or private). A table without the
//! tag, or whose standby is not fit, is left alone and reported; so is a table tagged
//! `autoheal:disabled=true`.
//!
//! The routes stay on the standby when the alarm returns to OK: the failing gateway then
//! carries no traffic, so its metrics recover whether or not it is fit again (port exhaustion,
//! the usual fault, would come straight back). Moving them back is a person's decision; the
//! record names each table and gateway for it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use aws_sdk_ec2::Client as Ec2Client;
use aws_sdk_ec2::types::{Filter, NatGateway, NatGatewayState, RouteTable, Tag};

use autoheal_aws::tags::{OPT_OUT_TAG, pairs_opt_out};
use autoheal_core::{HealError, HealOutcome, HealRequest, SkipReason};

use autoheal_aws::errors::api_error;

/// Replaces routes through failing NAT gateways.
#[derive(Debug, Clone)]
pub struct NatRouteReplacer {
    ec2: Ec2Client,
}

/// The destination of a route, as `ReplaceRoute` takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Ipv4(String),
    Ipv6(String),
    PrefixList(String),
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Ipv4(cidr) | Destination::Ipv6(cidr) | Destination::PrefixList(cidr) => {
                f.write_str(cidr)
            }
        }
    }
}

/// What to do with one route table that routes through the failing gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TablePlan {
    /// Point `destinations` at `standby`.
    Replace {
        table: String,
        standby: String,
        destinations: Vec<Destination>,
    },
    /// Leave the table as it is, for `reason`.
    Leave {
        table: String,
        reason: SkipReason,
        why: String,
    },
}

fn tag_value<'a>(tags: &'a [Tag], key: &str) -> Option<&'a str> {
    tags.iter()
        .find(|tag| tag.key() == Some(key))
        .and_then(|tag| tag.value())
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

fn opted_out(tags: &[Tag]) -> bool {
    pairs_opt_out(
        tags.iter()
            .filter_map(|tag| Some((tag.key()?, tag.value().unwrap_or_default()))),
    )
}

/// The routes of `table` through `failing`.
pub fn destinations_through(table: &RouteTable, failing: &str) -> Vec<Destination> {
    table
        .routes()
        .iter()
        .filter(|route| route.nat_gateway_id() == Some(failing))
        .filter_map(|route| {
            if let Some(cidr) = route.destination_cidr_block() {
                Some(Destination::Ipv4(cidr.to_owned()))
            } else if let Some(cidr) = route.destination_ipv6_cidr_block() {
                Some(Destination::Ipv6(cidr.to_owned()))
            } else {
                route
                    .destination_prefix_list_id()
                    .map(|list| Destination::PrefixList(list.to_owned()))
            }
        })
        .collect()
}

/// Decides for one route table, given the failing gateway and the standbys as read.
pub fn plan_table(
    table: &RouteTable,
    failing: &NatGateway,
    standby_tag: &str,
    standbys: &HashMap<String, NatGateway>,
) -> TablePlan {
    let table_id = table.route_table_id().unwrap_or_default().to_owned();
    let failing_id = failing.nat_gateway_id().unwrap_or_default();
    let leave = |reason: SkipReason, why: String| TablePlan::Leave {
        table: table_id.clone(),
        reason,
        why: format!("{table_id}: {why}"),
    };
    if opted_out(table.tags()) {
        return leave(
            SkipReason::OptedOut,
            format!("the route table is tagged {OPT_OUT_TAG}=true"),
        );
    }
    let Some(standby_id) = tag_value(table.tags(), standby_tag) else {
        return leave(
            SkipReason::Unsafe,
            format!("no standby NAT gateway: the route table has no `{standby_tag}` tag"),
        );
    };
    if standby_id == failing_id {
        return leave(
            SkipReason::Unsafe,
            format!("its standby NAT gateway is the failing {failing_id} itself"),
        );
    }
    let Some(standby) = standbys.get(standby_id) else {
        return leave(
            SkipReason::Unsafe,
            format!("its standby NAT gateway {standby_id} does not exist"),
        );
    };
    if standby.state() != Some(&NatGatewayState::Available) {
        return leave(
            SkipReason::Unsafe,
            format!(
                "its standby NAT gateway {standby_id} is {}, not available",
                standby
                    .state()
                    .map_or("in an unknown state", |s| s.as_str())
            ),
        );
    }
    if standby.vpc_id() != table.vpc_id() {
        return leave(
            SkipReason::Unsafe,
            format!(
                "its standby NAT gateway {standby_id} is in {}, not in the table's {}",
                standby.vpc_id().unwrap_or("another VPC"),
                table.vpc_id().unwrap_or("VPC")
            ),
        );
    }
    if standby.connectivity_type() != failing.connectivity_type() {
        return leave(
            SkipReason::Unsafe,
            format!(
                "its standby NAT gateway {standby_id} is {}, the failing one {}",
                standby
                    .connectivity_type()
                    .map_or("of unknown connectivity", |c| c.as_str()),
                failing
                    .connectivity_type()
                    .map_or("of unknown connectivity", |c| c.as_str())
            ),
        );
    }
    let destinations = destinations_through(table, failing_id);
    if destinations.is_empty() {
        return leave(
            SkipReason::NotNeeded,
            format!("no route goes through {failing_id} any more"),
        );
    }
    TablePlan::Replace {
        table: table_id.clone(),
        standby: standby_id.to_owned(),
        destinations,
    }
}

impl NatRouteReplacer {
    pub fn new(ec2: Ec2Client) -> Self {
        NatRouteReplacer { ec2 }
    }

    pub async fn replace(
        &self,
        request: HealRequest<'_>,
        standby_tag: &str,
    ) -> Result<HealOutcome, HealError> {
        let failing_id = request.resource_id;
        let failing = self
            .ec2
            .describe_nat_gateways()
            .nat_gateway_ids(failing_id)
            .send()
            .await
            .map_err(|e| api_error("DescribeNatGateways", e))?
            .nat_gateways()
            .iter()
            .find(|gateway| gateway.nat_gateway_id() == Some(failing_id))
            .cloned()
            .ok_or_else(|| {
                HealError::new(format!(
                    "DescribeNatGateways: NatGatewayNotFound: NAT gateway {failing_id} was not found"
                ))
            })?;
        if opted_out(failing.tags()) {
            return Ok(HealOutcome::Skipped {
                reason: SkipReason::OptedOut,
                summary: format!("NAT gateway {failing_id} is tagged {OPT_OUT_TAG}=true"),
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

        let mut replaced: Vec<(String, String, Vec<Destination>)> = Vec::new();
        let mut left: Vec<(SkipReason, String)> = Vec::new();
        for table in &tables {
            match plan_table(table, &failing, standby_tag, &standbys) {
                TablePlan::Leave { reason, why, .. } => left.push((reason, why)),
                TablePlan::Replace {
                    table,
                    standby,
                    destinations,
                } => {
                    // Moved one by one: a failure says exactly which routes moved before it,
                    // in this table too.
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

#[cfg(test)]
mod tests {
    use aws_sdk_ec2::types::{ConnectivityType, Route};

    use super::*;

    const TAG: &str = "autoheal:standby-nat-gateway";

    fn gateway(id: &str, vpc: &str, state: NatGatewayState) -> NatGateway {
        NatGateway::builder()
            .nat_gateway_id(id)
            .vpc_id(vpc)
            .state(state)
            .connectivity_type(ConnectivityType::Public)
            .build()
    }

    fn table(tags: &[(&str, &str)], routes: Vec<Route>) -> RouteTable {
        let mut builder = RouteTable::builder()
            .route_table_id("rtb-1")
            .vpc_id("vpc-1")
            .set_routes(Some(routes));
        for (key, value) in tags {
            builder = builder.tags(Tag::builder().key(*key).value(*value).build());
        }
        builder.build()
    }

    fn routes() -> Vec<Route> {
        vec![
            Route::builder()
                .destination_cidr_block("10.0.0.0/16")
                .gateway_id("local")
                .build(),
            Route::builder()
                .destination_cidr_block("0.0.0.0/0")
                .nat_gateway_id("nat-bad")
                .build(),
            Route::builder()
                .destination_ipv6_cidr_block("64:ff9b::/96")
                .nat_gateway_id("nat-bad")
                .build(),
        ]
    }

    fn standbys(standby: NatGateway) -> HashMap<String, NatGateway> {
        HashMap::from([(
            standby.nat_gateway_id().unwrap_or_default().to_owned(),
            standby,
        )])
    }

    #[test]
    fn every_route_through_the_failing_gateway_moves_to_an_available_standby() {
        let failing = gateway("nat-bad", "vpc-1", NatGatewayState::Available);
        let standby = gateway("nat-good", "vpc-1", NatGatewayState::Available);
        let plan = plan_table(
            &table(&[(TAG, "nat-good")], routes()),
            &failing,
            TAG,
            &standbys(standby),
        );
        assert_eq!(
            plan,
            TablePlan::Replace {
                table: "rtb-1".to_owned(),
                standby: "nat-good".to_owned(),
                destinations: vec![
                    Destination::Ipv4("0.0.0.0/0".to_owned()),
                    Destination::Ipv6("64:ff9b::/96".to_owned()),
                ],
            }
        );
    }

    #[test]
    fn unfit_standbys_leave_the_table_alone() {
        let failing = gateway("nat-bad", "vpc-1", NatGatewayState::Available);
        let cases = [
            (table(&[], routes()), None, SkipReason::Unsafe),
            (
                table(&[(TAG, "nat-bad")], routes()),
                None,
                SkipReason::Unsafe,
            ),
            (
                table(&[(TAG, "nat-gone")], routes()),
                None,
                SkipReason::Unsafe,
            ),
            (
                table(&[(TAG, "nat-good")], routes()),
                Some(gateway("nat-good", "vpc-1", NatGatewayState::Pending)),
                SkipReason::Unsafe,
            ),
            (
                table(&[(TAG, "nat-good")], routes()),
                Some(gateway("nat-good", "vpc-2", NatGatewayState::Available)),
                SkipReason::Unsafe,
            ),
            (
                table(&[(TAG, "nat-good"), (OPT_OUT_TAG, "true")], routes()),
                Some(gateway("nat-good", "vpc-1", NatGatewayState::Available)),
                SkipReason::OptedOut,
            ),
            (
                table(&[(TAG, "nat-good")], Vec::new()),
                Some(gateway("nat-good", "vpc-1", NatGatewayState::Available)),
                SkipReason::NotNeeded,
            ),
        ];
        for (table, standby, expected) in cases {
            let standbys = standby.map(standbys).unwrap_or_default();
            let plan = plan_table(&table, &failing, TAG, &standbys);
            assert!(
                matches!(&plan, TablePlan::Leave { reason, .. } if *reason == expected),
                "{plan:?}"
            );
        }
    }

    #[test]
    fn a_private_standby_does_not_replace_a_public_gateway() {
        let failing = gateway("nat-bad", "vpc-1", NatGatewayState::Available);
        let mut standby = gateway("nat-good", "vpc-1", NatGatewayState::Available);
        standby.connectivity_type = Some(ConnectivityType::Private);
        let plan = plan_table(
            &table(&[(TAG, "nat-good")], routes()),
            &failing,
            TAG,
            &standbys(standby),
        );
        assert!(matches!(
            plan,
            TablePlan::Leave {
                reason: SkipReason::Unsafe,
                ..
            }
        ));
    }
}
