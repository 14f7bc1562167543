//! Tolerant parsing of EventBridge "CloudWatch Alarm State Change" events.
//!
//! The envelope is `aws_lambda_events`' `EventBridgeEvent`; the alarm detail has its own types
//! here because the library's typed configuration rejects metric-math and composite alarms and
//! defaults a missing state to OK, which for a healer would be the worst possible guess.

mod raw;

use std::collections::BTreeMap;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use raw::{RawConfiguration, RawDetail, RawEnvelope, Text};

/// The `detail-type` CloudWatch uses for alarm state changes.
pub const ALARM_STATE_CHANGE: &str = "CloudWatch Alarm State Change";
/// The `source` CloudWatch uses for its events.
pub const CLOUDWATCH_SOURCE: &str = "aws.cloudwatch";

/// Why an event could not be read as an alarm state change. Nothing is done for such an event.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    #[error("the event is not valid JSON: {0}")]
    Json(#[source] serde_json::Error),
    #[error("the event is not an EventBridge event: {0}")]
    Envelope(#[source] serde_json::Error),
    #[error("unexpected detail-type `{0}` (expected `{ALARM_STATE_CHANGE}`)")]
    DetailType(String),
    #[error("unexpected source `{0}` (expected `{CLOUDWATCH_SOURCE}`)")]
    Source(String),
    #[error("the event has no `id`")]
    MissingId,
    #[error("the alarm detail is malformed at `{path}`: {message}")]
    Detail { path: String, message: String },
    #[error("the alarm detail has no `{0}`")]
    MissingField(&'static str),
    #[error("unknown alarm state `{0}` (expected ALARM, OK or INSUFFICIENT_DATA)")]
    State(String),
    #[error("the event is larger than EventBridge delivers: more than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("`{field}` has {length} characters, more than CloudWatch allows ({limit})")]
    TooLong {
        field: &'static str,
        length: usize,
        limit: usize,
    },
    #[error("`{field}` contains a control character, which CloudWatch does not allow")]
    ControlCharacter { field: &'static str },
}

/// The largest event EventBridge delivers (256 KiB); anything larger was not sent by it.
pub const MAX_EVENT_BYTES: usize = 256 * 1024;
/// CloudWatch's longest alarm name, in characters.
pub const MAX_ALARM_NAME_CHARS: usize = 255;
/// CloudWatch's longest state reason, in characters; a longer one is cut to this.
pub const MAX_STATE_REASON_CHARS: usize = 1023;

/// Refuses an alarm name that CloudWatch could not have issued: such a name was forged, and
/// it would end up in records, schedules and notifications.
pub(crate) fn check_alarm_name(name: &str) -> Result<(), EventError> {
    let length = name.chars().count();
    if length > MAX_ALARM_NAME_CHARS {
        return Err(EventError::TooLong {
            field: "alarmName",
            length,
            limit: MAX_ALARM_NAME_CHARS,
        });
    }
    if name.chars().any(char::is_control) {
        return Err(EventError::ControlCharacter { field: "alarmName" });
    }
    Ok(())
}

/// Refuses a payload larger than EventBridge delivers, counting its JSON encoding without
/// building it (and stopping as soon as it is too large).
pub(crate) fn check_size(value: &Value) -> Result<(), EventError> {
    // An alarm event is a few KiB: a bound on its encoding, from the tree's shape and its
    // strings' lengths, settles it without encoding a byte.
    let mut bound = 0;
    if add_encoded_length_bound(value, &mut bound, 0) {
        return Ok(());
    }
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            if self.0 > MAX_EVENT_BYTES {
                return Err(std::io::Error::other("too large"));
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    serde_json::to_writer(&mut counter, value).map_err(|_| EventError::TooLarge {
        limit: MAX_EVENT_BYTES,
    })
}

/// Adds to `total` an upper bound of `value`'s compact JSON length: exact but for strings,
/// counted at six bytes (`\u001f`) per byte. `false` once the bound passes
/// [`MAX_EVENT_BYTES`] or the tree is deeper than a parsed payload can be; the encoding is
/// then counted.
fn add_encoded_length_bound(value: &Value, total: &mut usize, depth: usize) -> bool {
    /// serde_json refuses to parse deeper nesting.
    const MAX_DEPTH: usize = 128;
    fn string(text: &str) -> usize {
        text.len().saturating_mul(6).saturating_add(2)
    }
    if depth > MAX_DEPTH {
        return false;
    }
    let length = match value {
        Value::Null | Value::Bool(true) => 4,
        Value::Bool(false) => 5,
        Value::Number(number) => {
            // serde_json writes a number as it displays it.
            struct Count(usize);
            impl std::fmt::Write for Count {
                fn write_str(&mut self, text: &str) -> std::fmt::Result {
                    self.0 += text.len();
                    Ok(())
                }
            }
            let mut count = Count(0);
            if std::fmt::write(&mut count, format_args!("{number}")).is_err() {
                return false;
            }
            count.0
        }
        Value::String(text) => string(text),
        Value::Array(items) => {
            *total = total.saturating_add(2 + items.len().saturating_sub(1));
            for item in items {
                if !add_encoded_length_bound(item, total, depth + 1) {
                    return false;
                }
            }
            0
        }
        Value::Object(fields) => {
            *total = total.saturating_add(2 + fields.len().saturating_sub(1));
            for (name, field) in fields {
                *total = total.saturating_add(string(name)).saturating_add(1);
                if !add_encoded_length_bound(field, total, depth + 1) {
                    return false;
                }
            }
            0
        }
    };
    *total = total.saturating_add(length);
    *total <= MAX_EVENT_BYTES
}

/// `text` cut to at most `limit` characters.
fn truncated(mut text: String, limit: usize) -> String {
    // No longer in bytes, so no longer in characters: nothing to count.
    if text.len() <= limit {
        return text;
    }
    if let Some((cut, _)) = text.char_indices().nth(limit) {
        text.truncate(cut);
    }
    text
}

/// The state an alarm moved into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AlarmState {
    Alarm,
    Ok,
    InsufficientData,
}

impl AlarmState {
    fn parse(value: &str) -> Result<Self, EventError> {
        match value {
            "ALARM" => Ok(AlarmState::Alarm),
            "OK" => Ok(AlarmState::Ok),
            "INSUFFICIENT_DATA" => Ok(AlarmState::InsufficientData),
            other => Err(EventError::State(other.to_owned())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AlarmState::Alarm => "ALARM",
            AlarmState::Ok => "OK",
            AlarmState::InsufficientData => "INSUFFICIENT_DATA",
        }
    }
}

/// One metric an alarm watches (directly, or as an input of a metric-math expression).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricRef {
    pub namespace: String,
    pub name: String,
    pub dimensions: BTreeMap<String, String>,
}

/// What kind of alarm changed state, with the metrics it watches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum AlarmKind {
    /// One metric, one threshold.
    Metric { metric: MetricRef },
    /// A metric-math expression over one or more metrics.
    MetricMath {
        expression: Option<String>,
        metrics: Vec<MetricRef>,
    },
    /// An anomaly-detection band around a metric.
    AnomalyDetection { metrics: Vec<MetricRef> },
    /// A rule over other alarms; it watches no metric itself.
    Composite { alarm_rule: String },
}

impl AlarmKind {
    /// Every metric the alarm watches; empty for a composite alarm.
    pub fn metrics(&self) -> &[MetricRef] {
        match self {
            AlarmKind::Metric { metric } => std::slice::from_ref(metric),
            AlarmKind::MetricMath { metrics, .. } | AlarmKind::AnomalyDetection { metrics } => {
                metrics
            }
            AlarmKind::Composite { .. } => &[],
        }
    }

    pub fn label(&self) -> &'static str {
        match self {
            AlarmKind::Metric { .. } => "metric",
            AlarmKind::MetricMath { .. } => "metric-math",
            AlarmKind::AnomalyDetection { .. } => "anomaly-detection",
            AlarmKind::Composite { .. } => "composite",
        }
    }
}

/// An alarm state change, as autoheal needs it. It serializes as itself (not as the
/// EventBridge event) so that a follow-up can carry it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmEvent {
    /// EventBridge's event id: the same for every delivery of one event.
    pub id: String,
    pub time: Option<DateTime<Utc>>,
    pub account: Option<String>,
    pub region: Option<String>,
    pub alarm_arn: Option<String>,
    pub alarm_name: String,
    pub state: AlarmState,
    pub state_reason: Option<String>,
    pub previous_state: Option<AlarmState>,
    pub kind: AlarmKind,
    /// Tags of the alarm, when the event carries them (`alarmTags`).
    pub alarm_tags: BTreeMap<String, String>,
    /// Why CloudWatch itself holds this alarm's actions back, if it does: a composite
    /// alarm's suppressor (`actionsSuppressedBy`) or an alarm mute rule (`muteDetail`).
    /// autoheal respects both, like any other alarm action.
    pub suppressed_by: Option<String>,
}

impl AlarmEvent {
    /// Parses raw bytes, as they arrive from `cargo lambda invoke` or a file.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, EventError> {
        if bytes.len() > MAX_EVENT_BYTES {
            return Err(EventError::TooLarge {
                limit: MAX_EVENT_BYTES,
            });
        }
        let value: Value = serde_json::from_slice(bytes).map_err(EventError::Json)?;
        Self::from_value(value)
    }

    /// Parses an EventBridge event already decoded as JSON (the Lambda runtime's payload).
    ///
    /// An alarm state change is read in place first, borrowing its text from `value` and
    /// copying only what the event keeps. Anything that read refuses (an event of another
    /// kind, a malformed field, a name CloudWatch could not have issued) is read again by
    /// [`AlarmEvent::from_value_reporting`], which says what is wrong and where: both make
    /// the same checks over the same field types, so they accept the same events and read
    /// them alike.
    pub fn from_value(value: Value) -> Result<Self, EventError> {
        match Self::read_in_place(&value) {
            Some(event) => Ok(event),
            None => Self::from_value_reporting(value),
        }
    }

    /// The happy path alone: the alarm state change read in place, or `None` for any payload
    /// [`AlarmEvent::from_value_reporting`] refuses, whatever the reason.
    pub fn read_in_place(value: &Value) -> Option<Self> {
        check_size(value).ok()?;
        let envelope = RawEnvelope::<&str>::deserialize(value).ok()?;
        if envelope.detail_type != ALARM_STATE_CHANGE || envelope.source != CLOUDWATCH_SOURCE {
            return None;
        }
        let id = envelope.id.filter(|id| !id.trim().is_empty())?;
        Self::assemble(
            Envelope {
                id,
                time: envelope.time,
                account: envelope.account,
                region: envelope.region,
                resources: envelope.resources,
            },
            envelope.detail,
        )
        .ok()
    }

    /// Parses an EventBridge event already decoded as JSON, reporting the path of a
    /// malformed field of the alarm detail. [`AlarmEvent::from_value`] gives the same result
    /// faster; this is the reading its errors come from.
    pub fn from_value_reporting(value: Value) -> Result<Self, EventError> {
        check_size(&value)?;
        let envelope: EventBridgeEvent<Value> =
            serde_json::from_value(value).map_err(EventError::Envelope)?;
        if envelope.detail_type != ALARM_STATE_CHANGE {
            return Err(EventError::DetailType(envelope.detail_type));
        }
        if envelope.source != CLOUDWATCH_SOURCE {
            return Err(EventError::Source(envelope.source));
        }
        let id = envelope
            .id
            .filter(|id| !id.trim().is_empty())
            .ok_or(EventError::MissingId)?;
        let detail: RawDetail<String> =
            serde_path_to_error::deserialize(envelope.detail).map_err(|e| EventError::Detail {
                path: e.path().to_string(),
                message: e.inner().to_string(),
            })?;
        Self::assemble(
            Envelope {
                id,
                time: envelope.time,
                account: envelope.account,
                region: envelope.region,
                resources: envelope.resources,
            },
            detail,
        )
    }

    /// The event from its envelope and detail as read, with CloudWatch's rules checked.
    fn assemble<S: Text>(envelope: Envelope<S>, detail: RawDetail<S>) -> Result<Self, EventError> {
        let alarm_name = detail
            .alarm_name
            .filter(|name| !name.as_ref().trim().is_empty())
            .ok_or(EventError::MissingField("alarmName"))?;
        check_alarm_name(alarm_name.as_ref())?;
        let state = detail.state.ok_or(EventError::MissingField("state"))?;
        let state_value = state.value.ok_or(EventError::MissingField("state.value"))?;
        let previous_state = match detail.previous_state.and_then(|s| s.value) {
            Some(value) => Some(AlarmState::parse(value.as_ref())?),
            None => None,
        };
        let suppressed_by = state
            .actions_suppressed_by
            .filter(|by| !by.as_ref().trim().is_empty())
            .map(|by| format!("actions suppressed by {}", by.as_ref()))
            .or_else(|| {
                detail
                    .mute_detail
                    .filter(|mute| !mute.is_null())
                    .map(
                        |mute| match mute.get("mutedByArn").and_then(Value::as_str) {
                            Some(arn) => format!("muted by {arn}"),
                            None => "muted by an alarm mute rule".to_owned(),
                        },
                    )
            });
        let kind = alarm_kind(detail.configuration.unwrap_or_default());
        let alarm_arn = envelope
            .resources
            .unwrap_or_default()
            .into_iter()
            .find(|arn| arn.as_ref().contains(":alarm:"))
            .map(Text::into_string);

        Ok(AlarmEvent {
            id: envelope.id.into_string(),
            time: envelope.time,
            account: envelope.account.map(Text::into_string),
            region: envelope.region.map(Text::into_string),
            alarm_arn,
            alarm_name: alarm_name.into_string(),
            state: AlarmState::parse(state_value.as_ref())?,
            state_reason: state
                .reason
                .map(|reason| truncated(reason.into_string(), MAX_STATE_REASON_CHARS)),
            previous_state,
            kind,
            alarm_tags: detail.alarm_tags,
            suppressed_by,
        })
    }
}

/// What the event keeps of its envelope, once its detail-type, source and id are checked.
struct Envelope<S> {
    id: S,
    time: Option<DateTime<Utc>>,
    account: Option<S>,
    region: Option<S>,
    resources: Option<Vec<S>>,
}

/// What kind of alarm a configuration describes, and the metrics it watches.
fn alarm_kind<S: Text>(configuration: RawConfiguration<S>) -> AlarmKind {
    if let Some(alarm_rule) = configuration.alarm_rule {
        return AlarmKind::Composite {
            alarm_rule: alarm_rule.into_string(),
        };
    }
    let mut expressions = Vec::new();
    let mut metrics = Vec::new();
    for query in configuration.metrics {
        if let Some(expression) = query.expression {
            expressions.push(expression);
        }
        if let Some(stat) = query.metric_stat {
            metrics.push(MetricRef {
                namespace: stat
                    .metric
                    .namespace
                    .map(Text::into_string)
                    .unwrap_or_default(),
                name: stat.metric.name.map(Text::into_string).unwrap_or_default(),
                dimensions: stat.metric.dimensions,
            });
        }
    }
    let is_anomaly_band = expressions.iter().any(|expression| {
        expression
            .as_ref()
            .to_ascii_uppercase()
            .contains("ANOMALY_DETECTION_BAND")
    });
    if is_anomaly_band {
        return AlarmKind::AnomalyDetection { metrics };
    }
    match expressions.into_iter().next() {
        Some(expression) => AlarmKind::MetricMath {
            expression: Some(expression.into_string()),
            metrics,
        },
        None => match <[MetricRef; 1]>::try_from(metrics) {
            Ok([metric]) => AlarmKind::Metric { metric },
            Err(metrics) => AlarmKind::MetricMath {
                expression: None,
                metrics,
            },
        },
    }
}
