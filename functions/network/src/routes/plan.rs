//! What to do with each route table that routes through the failing NAT gateway: pure.

use std::collections::HashMap;
use std::fmt;

use aws_sdk_ec2::types::{NatGateway, NatGatewayState, RouteTable, Tag};

use autoheal_aws::tags::pairs_opt_out;
use autoheal_core::SkipReason;

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

pub fn tag_value<'a>(tags: &'a [Tag], key: &str) -> Option<&'a str> {
    tags.iter()
        .find(|tag| tag.key() == Some(key))
        .and_then(|tag| tag.value())
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

pub fn opted_out(tags: &[Tag]) -> bool {
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
            format!("the route table {}", autoheal_aws::tags::opted_out_phrase()),
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
                table(
                    &[(TAG, "nat-good"), (autoheal_aws::tags::OPT_OUT_TAG, "true")],
                    routes(),
                ),
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
