//! What keeps a rollback to exactly one step, on exactly what the alarm names:
//!
//! - the alarm's scope: a rollback of alias `live` answers an alarm on the function as a
//!   whole, or on `live` itself (`Resource=<function>:live`); an alarm on another alias
//!   (`Resource=<function>:staging`), on a version, or on the version that ran
//!   (`ExecutedVersion`) says nothing about `live`, and changes nothing;
//! - the rollback's record on the function (tag `autoheal:rollback:<alias>` = `<from> <to>
//!   <attempt> <incident>`), written before the alias moves: a second attempt of the same
//!   incident finds it and does not walk back a second version, and a later incident finds
//!   the alias still on the version autoheal restored and leaves it to a person.

use autoheal_core::{AlarmEvent, AlarmKind};

/// The prefix of the tag recording a rollback of an alias (the alias's name follows).
pub const ROLLBACK_TAG_PREFIX: &str = "autoheal:rollback:";
/// Lambda's limits on a tag's key and value, in characters.
const MAX_TAG_KEY: usize = 128;
const MAX_TAG_VALUE: usize = 256;

/// Why the alarm does not speak for `alias` of `function`, if it does not.
pub fn outside_scope(event: &AlarmEvent, function: &str, alias: &str) -> Option<String> {
    let own = format!("{function}:{alias}");
    let metrics = match &event.kind {
        AlarmKind::Composite { .. } => return None,
        kind => kind.metrics(),
    };
    for metric in metrics.iter().filter(|m| m.namespace == "AWS/Lambda") {
        if let Some(version) = metric.dimensions.get("ExecutedVersion") {
            return Some(format!(
                "the alarm watches {} of {function} by the version that ran (ExecutedVersion={version}), not alias {alias}: a rollback of {alias} would act on what it does not name",
                metric.name
            ));
        }
        if let Some(resource) = metric.dimensions.get("Resource")
            && resource != &own
            && resource != function
        {
            return Some(format!(
                "the alarm watches {} of {resource} (Resource), not alias {alias} ({own}): a rollback of {alias} would act on what it does not name",
                metric.name
            ));
        }
    }
    None
}

/// The tag key recording rollbacks of `alias`.
pub fn rollback_tag_key(alias: &str) -> String {
    format!("{ROLLBACK_TAG_PREFIX}{alias}")
        .chars()
        .take(MAX_TAG_KEY)
        .collect()
}

/// An incident id as it can stand in a tag value: Lambda allows letters, digits, spaces and
/// `_.:/=+-@`; anything else (and spaces, which separate the fields) becomes `_`.
pub fn incident_mark(incident_id: &str) -> String {
    incident_id
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || "_.:/=+-@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A rollback autoheal made, as recorded on the function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollbackRecord {
    pub from: String,
    pub to: String,
    pub attempt: u32,
    /// The incident, as [`incident_mark`] writes it.
    pub incident: String,
}

impl RollbackRecord {
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.split(' ');
        let record = RollbackRecord {
            from: parts.next()?.to_owned(),
            to: parts.next()?.to_owned(),
            attempt: parts.next()?.parse().ok()?,
            incident: parts.next()?.to_owned(),
        };
        parts.next().is_none().then_some(record)
    }

    /// The tag value; the incident is cut to fit Lambda's 256 characters.
    pub fn render(&self) -> String {
        let value = format!(
            "{} {} {} {}",
            self.from, self.to, self.attempt, self.incident
        );
        value.chars().take(MAX_TAG_VALUE).collect()
    }
}

/// What an earlier rollback recorded on the function means for this one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Earlier {
    /// None applies: roll back as the history says.
    None,
    /// This attempt already rolled the alias back (a retry after it did): report it again.
    Done(RollbackRecord),
    /// An earlier attempt of this incident rolled the alias back (and it moved on since, or
    /// stayed): another rollback would walk back a second version.
    SecondInIncident(RollbackRecord),
    /// The alias is still on the version an earlier incident's rollback restored: the
    /// version before it is the one that rollback moved away from.
    OnRestoredVersion(RollbackRecord),
}

/// Reads the record (if any) of the alias now on `current`, for attempt `attempt` of the
/// incident marked `incident`.
pub fn earlier(
    record: Option<&RollbackRecord>,
    incident: &str,
    attempt: u32,
    current: &str,
) -> Earlier {
    let Some(record) = record else {
        return Earlier::None;
    };
    let record_incident = record.incident.as_str();
    // A cut incident still matches its own start.
    let same_incident = record_incident == incident
        || (record.render().chars().count() == MAX_TAG_VALUE
            && incident.starts_with(record_incident));
    match (same_incident, current == record.to) {
        (true, true) if record.attempt == attempt => Earlier::Done(record.clone()),
        // The rollback of this incident did not take (its UpdateAlias failed): the same step.
        (true, false) if current == record.from => Earlier::None,
        (true, _) => Earlier::SecondInIncident(record.clone()),
        (false, true) => Earlier::OnRestoredVersion(record.clone()),
        (false, false) => Earlier::None,
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn alarm(dimensions: serde_json::Value, metric: &str) -> AlarmEvent {
        let mut event: serde_json::Value = serde_json::from_str(include_str!(
            "../../../../events/lambda-function-healing.alarm.json"
        ))
        .expect("the sample");
        let stat = &mut event["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"];
        stat["dimensions"] = dimensions;
        stat["name"] = json!(metric);
        AlarmEvent::from_value(event).expect("an alarm")
    }

    #[test]
    fn an_alarm_speaks_for_the_alias_only_on_the_function_or_on_the_alias_itself() {
        let scope =
            |dimensions, metric| outside_scope(&alarm(dimensions, metric), "orders", "live");
        assert_eq!(scope(json!({"FunctionName": "orders"}), "Errors"), None);
        assert_eq!(
            scope(
                json!({"FunctionName": "orders", "Resource": "orders:live"}),
                "Errors"
            ),
            None
        );
        assert_eq!(
            scope(
                json!({"FunctionName": "orders", "Resource": "orders"}),
                "Errors"
            ),
            None
        );
        let other = scope(
            json!({"FunctionName": "orders", "Resource": "orders:staging"}),
            "Errors",
        )
        .expect("another alias");
        assert!(other.contains("orders:staging"), "{other}");
        assert!(
            scope(
                json!({"FunctionName": "orders", "Resource": "orders:7"}),
                "Errors"
            )
            .is_some(),
            "a version"
        );
        let executed = scope(
            json!({"FunctionName": "orders", "Resource": "orders:live", "ExecutedVersion": "7"}),
            "Errors",
        )
        .expect("the version that ran");
        assert!(executed.contains("ExecutedVersion=7"), "{executed}");
    }

    #[test]
    fn a_record_round_trips_and_fits_a_tag() {
        let record = RollbackRecord {
            from: "10".to_owned(),
            to: "9".to_owned(),
            attempt: 1,
            incident: incident_mark("a4ea3938-d429 #1"),
        };
        assert_eq!(record.incident, "a4ea3938-d429__1");
        assert_eq!(RollbackRecord::parse(&record.render()), Some(record));
        let long = RollbackRecord {
            from: "10".to_owned(),
            to: "9".to_owned(),
            attempt: 1,
            incident: "x".repeat(400),
        };
        assert_eq!(long.render().chars().count(), 256);
        assert_eq!(rollback_tag_key(&"a".repeat(200)).chars().count(), 128);
        for bad in ["", "10 9", "10 9 one i", "10 9 1 i extra"] {
            assert_eq!(RollbackRecord::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn one_rollback_per_incident_and_none_over_a_restored_version() {
        let record = RollbackRecord {
            from: "10".to_owned(),
            to: "9".to_owned(),
            attempt: 1,
            incident: "inc-1".to_owned(),
        };
        let read = |incident, attempt, current| earlier(Some(&record), incident, attempt, current);
        let kept = || record.clone();
        assert_eq!(
            read("inc-1", 1, "9"),
            Earlier::Done(kept()),
            "a retry of the attempt"
        );
        assert_eq!(read("inc-1", 2, "9"), Earlier::SecondInIncident(kept()));
        assert_eq!(read("inc-1", 2, "11"), Earlier::SecondInIncident(kept()));
        assert_eq!(
            read("inc-1", 2, "10"),
            Earlier::None,
            "the rollback did not take"
        );
        assert_eq!(read("inc-2", 1, "9"), Earlier::OnRestoredVersion(kept()));
        assert_eq!(read("inc-2", 1, "11"), Earlier::None, "deployed since");
        assert_eq!(earlier(None, "inc-1", 1, "9"), Earlier::None);
    }
}
