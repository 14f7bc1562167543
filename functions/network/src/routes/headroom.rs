//! Whether a standby NAT gateway has room for the failing gateway's traffic, from both
//! gateways' CloudWatch metrics of the last 15 minutes (one-minute datapoints).
//!
//! A standby has no headroom when, in that window:
//! - it could not allocate a source port itself (`ErrorPortAllocation` above 0): it is
//!   already exhausting ports;
//! - it dropped more than 0.01 % of the packets it received in some minute
//!   (`PacketsDropCount` over `PacketsInFromSource` + `PacketsInFromDestination`), the
//!   threshold of AWS's own recommended NAT gateway alarm;
//! - the two gateways' peak concurrent connections (`ActiveConnectionCount`, maximum) add up
//!   to more than 55,000 per address of the standby: a NAT gateway address holds 55,000
//!   connections to one destination, so under that the standby cannot run out of ports
//!   whatever the destinations, and over it the port exhaustion that failed the first
//!   gateway may move with its traffic (give the standby secondary addresses for more);
//! - the two gateways' peak traffic adds up to more than 80 % of what one NAT gateway
//!   processes: 100 Gbit/s (`BytesInFromSource` + `BytesInFromDestination`) or 10 million
//!   packets a second.
//!
//! The failing gateway's whole load is counted against each standby, as if every table moved
//! onto it: conservative when several standbys share it. A gateway without datapoints carried
//! no traffic in the window.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_cloudwatch::Client as CloudWatchClient;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat};

use autoheal_aws::errors::api_error;
use autoheal_core::HealError;

/// How far back the metrics are read.
pub const WINDOW_MINUTES: i64 = 15;
/// A standby that drops more than this share of its packets in a minute has no headroom.
pub const MAX_DROP_RATIO: f64 = 0.0001;
/// Concurrent connections a NAT gateway address holds to one destination.
pub const CONNECTIONS_PER_ADDRESS: f64 = 55_000.0;
/// What one NAT gateway processes, and the share of it the two gateways may use together.
pub const MAX_BITS_PER_SECOND: f64 = 100e9;
pub const MAX_PACKETS_PER_SECOND: f64 = 10e6;
pub const USABLE_SHARE: f64 = 0.8;

/// The metrics read per gateway, with their statistic.
const METRICS: [(&str, &str); 7] = [
    ("ErrorPortAllocation", "Sum"),
    ("PacketsDropCount", "Sum"),
    ("PacketsInFromSource", "Sum"),
    ("PacketsInFromDestination", "Sum"),
    ("BytesInFromSource", "Sum"),
    ("BytesInFromDestination", "Sum"),
    ("ActiveConnectionCount", "Maximum"),
];

/// One metric of one gateway: its value per minute (epoch seconds).
type Series = BTreeMap<i64, f64>;

/// A NAT gateway's load in the window, as the headroom test reads it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Load {
    pub port_errors: f64,
    /// The largest share of received packets dropped in one minute.
    pub peak_drop_ratio: f64,
    pub peak_connections: f64,
    /// The most bytes and packets received in one minute.
    pub peak_bytes_per_minute: f64,
    pub peak_packets_per_minute: f64,
}

impl Load {
    /// The load from one gateway's series, by metric name.
    fn from_series(series: &HashMap<&str, Series>) -> Load {
        let empty = Series::new();
        let get = |name: &str| series.get(name).unwrap_or(&empty);
        let sum_at = |names: &[&str], minute: &i64| -> f64 {
            names
                .iter()
                .map(|name| get(name).get(minute).copied().unwrap_or(0.0))
                .sum()
        };
        let minutes: Vec<i64> = series.values().flat_map(|s| s.keys().copied()).collect();
        let packets_in = ["PacketsInFromSource", "PacketsInFromDestination"];
        let bytes_in = ["BytesInFromSource", "BytesInFromDestination"];
        let peak = |f: &dyn Fn(&i64) -> f64| minutes.iter().map(f).fold(0.0, f64::max);
        Load {
            port_errors: get("ErrorPortAllocation").values().sum(),
            peak_drop_ratio: peak(&|minute| {
                let dropped = sum_at(&["PacketsDropCount"], minute);
                let received = sum_at(&packets_in, minute);
                match (dropped > 0.0, received > 0.0) {
                    (false, _) => 0.0,
                    (true, true) => dropped / received,
                    (true, false) => 1.0,
                }
            }),
            peak_connections: get("ActiveConnectionCount")
                .values()
                .copied()
                .fold(0.0, f64::max),
            peak_bytes_per_minute: peak(&|minute| sum_at(&bytes_in, minute)),
            peak_packets_per_minute: peak(&|minute| sum_at(&packets_in, minute)),
        }
    }
}

/// Whether `standby`, with `addresses` public or private addresses, has room for the
/// failing gateway's load on top of its own; `Err` says why not.
pub fn headroom(failing: &Load, standby: &Load, addresses: usize) -> Result<(), String> {
    if standby.port_errors > 0.0 {
        return Err(format!(
            "it could not allocate a source port {} time(s) in the last {WINDOW_MINUTES} minutes",
            standby.port_errors
        ));
    }
    if standby.peak_drop_ratio > MAX_DROP_RATIO {
        return Err(format!(
            "it dropped {:.3} % of its packets in a minute (more than {} %)",
            standby.peak_drop_ratio * 100.0,
            MAX_DROP_RATIO * 100.0
        ));
    }
    let connections = failing.peak_connections + standby.peak_connections;
    let ceiling = CONNECTIONS_PER_ADDRESS * addresses.max(1) as f64;
    if connections > ceiling {
        return Err(format!(
            "both gateways together peaked at {connections} concurrent connections, more than the {ceiling} its {} address(es) hold to one destination",
            addresses.max(1)
        ));
    }
    let bits = (failing.peak_bytes_per_minute + standby.peak_bytes_per_minute) * 8.0 / 60.0;
    if bits > MAX_BITS_PER_SECOND * USABLE_SHARE {
        return Err(format!(
            "both gateways together peaked at {:.1} Gbit/s, more than {} % of a NAT gateway's {} Gbit/s",
            bits / 1e9,
            USABLE_SHARE * 100.0,
            MAX_BITS_PER_SECOND / 1e9
        ));
    }
    let packets = (failing.peak_packets_per_minute + standby.peak_packets_per_minute) / 60.0;
    if packets > MAX_PACKETS_PER_SECOND * USABLE_SHARE {
        return Err(format!(
            "both gateways together peaked at {packets:.0} packets/s, more than {} % of a NAT gateway's {}",
            USABLE_SHARE * 100.0,
            MAX_PACKETS_PER_SECOND
        ));
    }
    Ok(())
}

/// Reads the load of each gateway in the window, in one `GetMetricData` (every page).
pub async fn loads(
    cloudwatch: &CloudWatchClient,
    gateways: &[&str],
) -> Result<HashMap<String, Load>, HealError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
        });
    let mut queries = Vec::new();
    let mut meaning: HashMap<String, (usize, &str)> = HashMap::new();
    for (g, gateway) in gateways.iter().enumerate() {
        for (m, (name, stat)) in METRICS.iter().enumerate() {
            let id = format!("g{g}m{m}");
            meaning.insert(id.clone(), (g, name));
            let metric = Metric::builder()
                .namespace("AWS/NATGateway")
                .metric_name(*name)
                .dimensions(
                    Dimension::builder()
                        .name("NatGatewayId")
                        .value(*gateway)
                        .build(),
                )
                .build();
            queries.push(
                MetricDataQuery::builder()
                    .id(id)
                    .metric_stat(
                        MetricStat::builder()
                            .metric(metric)
                            .period(60)
                            .stat(*stat)
                            .build(),
                    )
                    .return_data(true)
                    .build(),
            );
        }
    }
    let mut series: Vec<HashMap<&str, Series>> = vec![HashMap::new(); gateways.len()];
    let mut pages = cloudwatch
        .get_metric_data()
        .set_metric_data_queries(Some(queries))
        .start_time(DateTime::from_secs(now - WINDOW_MINUTES * 60))
        .end_time(DateTime::from_secs(now))
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| api_error("GetMetricData", e))?;
        for result in page.metric_data_results() {
            let Some((g, name)) = result.id().and_then(|id| meaning.get(id)) else {
                continue;
            };
            let values = series[*g].entry(name).or_default();
            for (at, value) in result.timestamps().iter().zip(result.values()) {
                values.insert(at.secs(), *value);
            }
        }
    }
    Ok(gateways
        .iter()
        .zip(series)
        .map(|(gateway, series)| ((*gateway).to_owned(), Load::from_series(&series)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(points: &[(i64, f64)]) -> Series {
        points.iter().copied().collect()
    }

    #[test]
    fn an_idle_standby_takes_a_moderate_load() {
        let failing = Load {
            peak_connections: 30_000.0,
            peak_bytes_per_minute: 60e9,
            peak_packets_per_minute: 60e6,
            ..Load::default()
        };
        assert_eq!(headroom(&failing, &Load::default(), 1), Ok(()));
    }

    #[test]
    fn a_standby_already_failing_has_no_headroom() {
        let errors = Load {
            port_errors: 3.0,
            ..Load::default()
        };
        assert!(headroom(&Load::default(), &errors, 1).is_err());
        let drops = Load {
            peak_drop_ratio: 0.002,
            ..Load::default()
        };
        let Err(why) = headroom(&Load::default(), &drops, 1) else {
            panic!("no headroom");
        };
        assert!(why.contains("0.200 %"), "{why}");
    }

    #[test]
    fn the_combined_load_must_fit_one_gateway() {
        let failing = Load {
            peak_connections: 40_000.0,
            ..Load::default()
        };
        let standby = Load {
            peak_connections: 20_000.0,
            ..Load::default()
        };
        assert!(headroom(&failing, &standby, 1).is_err());
        assert_eq!(headroom(&failing, &standby, 2), Ok(()), "a second address");
        let heavy = Load {
            peak_bytes_per_minute: 400e9,
            ..Load::default()
        };
        let Err(why) = headroom(&heavy, &heavy, 8) else {
            panic!("no headroom");
        };
        assert!(why.contains("Gbit/s"), "{why}");
    }

    #[test]
    fn the_load_is_read_minute_by_minute() {
        let gateway: HashMap<&str, Series> = HashMap::from([
            ("PacketsDropCount", series(&[(60, 1.0), (120, 5.0)])),
            (
                "PacketsInFromSource",
                series(&[(60, 50_000.0), (120, 500.0)]),
            ),
            (
                "PacketsInFromDestination",
                series(&[(60, 50_000.0), (120, 500.0)]),
            ),
            ("ActiveConnectionCount", series(&[(60, 10.0), (120, 30.0)])),
            ("ErrorPortAllocation", series(&[(60, 0.0), (120, 2.0)])),
        ]);
        let load = Load::from_series(&gateway);
        assert_eq!(load.peak_drop_ratio, 5.0 / 1000.0);
        assert_eq!(load.peak_connections, 30.0);
        assert_eq!(load.peak_packets_per_minute, 100_000.0);
        assert_eq!(load.port_errors, 2.0);
        assert_eq!(Load::from_series(&HashMap::new()), Load::default());
    }
}
