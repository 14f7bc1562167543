//! The fields of an alarm state change as serde reads them, generic over how text is held:
//! `String` where the event is read through `serde_path_to_error` from an owned JSON value
//! (the path of a malformed field, in the messages it has always given), `&str` where it is
//! read in place from a borrowed one (the happy path: no copy of what is not kept, no tree
//! rebuilt). One definition serves both, so both accept the same events and read the same
//! fields from them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

/// Text read from the event: owned, or borrowed from the payload.
pub(super) trait Text: AsRef<str> {
    fn into_string(self) -> String;
}

impl Text for String {
    fn into_string(self) -> String {
        self
    }
}

impl Text for &str {
    fn into_string(self) -> String {
        self.to_owned()
    }
}

/// The EventBridge envelope with its alarm detail, field for field as `aws_lambda_events`'
/// `EventBridgeEvent` reads it (the same names, defaults and types), the detail read in the
/// same pass. Only the happy path reads it: any event it refuses is read again the reporting
/// way, which says why.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) struct RawEnvelope<S> {
    /// Never used, but read as the library reads it: an event it refuses is not taken.
    #[serde(default, rename = "version")]
    _version: Option<S>,
    #[serde(default)]
    pub(super) id: Option<S>,
    pub(super) detail_type: S,
    pub(super) source: S,
    #[serde(default)]
    pub(super) account: Option<S>,
    #[serde(default)]
    pub(super) time: Option<DateTime<Utc>>,
    #[serde(default)]
    pub(super) region: Option<S>,
    #[serde(default)]
    pub(super) resources: Option<Vec<S>>,
    pub(super) detail: RawDetail<S>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RawDetail<S> {
    pub(super) alarm_name: Option<S>,
    pub(super) state: Option<RawState<S>>,
    pub(super) previous_state: Option<RawState<S>>,
    pub(super) configuration: Option<RawConfiguration<S>>,
    #[serde(default, deserialize_with = "tags")]
    pub(super) alarm_tags: BTreeMap<String, String>,
    pub(super) mute_detail: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RawState<S> {
    pub(super) value: Option<S>,
    pub(super) reason: Option<S>,
    pub(super) actions_suppressed_by: Option<S>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", bound(deserialize = "S: Deserialize<'de>"))]
pub(super) struct RawConfiguration<S> {
    #[serde(default)]
    pub(super) metrics: Vec<RawMetricQuery<S>>,
    pub(super) alarm_rule: Option<S>,
}

impl<S> Default for RawConfiguration<S> {
    fn default() -> Self {
        RawConfiguration {
            metrics: Vec::new(),
            alarm_rule: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RawMetricQuery<S> {
    pub(super) metric_stat: Option<RawMetricStat<S>>,
    pub(super) expression: Option<S>,
}

#[derive(Debug, Deserialize)]
pub(super) struct RawMetricStat<S> {
    pub(super) metric: RawMetric<S>,
}

#[derive(Debug, Deserialize)]
pub(super) struct RawMetric<S> {
    pub(super) namespace: Option<S>,
    pub(super) name: Option<S>,
    #[serde(default)]
    pub(super) dimensions: BTreeMap<String, String>,
}

/// `alarmTags` has been seen both as a map and as a list of `{Key, Value}` pairs.
fn tags<'de, D>(deserializer: D) -> Result<BTreeMap<String, String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Tags {
        Map(BTreeMap<String, String>),
        List(Vec<Pair>),
    }
    #[derive(Deserialize)]
    struct Pair {
        #[serde(alias = "key")]
        #[serde(rename = "Key")]
        key: String,
        #[serde(alias = "value")]
        #[serde(rename = "Value")]
        value: String,
    }
    Ok(match Option::<Tags>::deserialize(deserializer)? {
        None => BTreeMap::new(),
        Some(Tags::Map(map)) => map,
        Some(Tags::List(list)) => list.into_iter().map(|p| (p.key, p.value)).collect(),
    })
}
