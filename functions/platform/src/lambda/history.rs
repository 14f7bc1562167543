//! An alias's history, as CloudTrail's event history records it: every `CreateAlias` and
//! `UpdateAlias` of the last 90 days, in every account and region, without a trail. Each
//! says which version the call put the alias on and who made it; a call CodeDeploy made for a
//! deployment is marked by CloudTrail as CodeDeploy's (`invokedBy`, `sourceIPAddress` and
//! `userAgent` name `codedeploy.amazonaws.com`), whatever the deployment's traffic shift
//! (an all-at-once shift leaves no routing configuration on the alias, only that record).
//!
//! From it, [`previous_live`] finds the version that was live on the alias before the
//! current one: the version to roll back to, never one that was only published.

use aws_sdk_cloudtrail::Client as CloudTrailClient;
use aws_sdk_cloudtrail::types::{LookupAttribute, LookupAttributeKey};
use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

use autoheal_aws::errors::api_error;
use autoheal_core::HealError;

/// CloudTrail's names of Lambda's alias calls (they carry the API version).
pub const CREATE_ALIAS: &str = "CreateAlias20150331";
pub const UPDATE_ALIAS: &str = "UpdateAlias20150331";
/// How CloudTrail names CodeDeploy when it calls Lambda for a deployment.
pub const CODEDEPLOY: &str = "codedeploy.amazonaws.com";
/// How far back CloudTrail's event history goes.
pub const HISTORY_DAYS: i64 = 90;
/// LookupEvents returns at most 50 events a page.
const PAGE_SIZE: i32 = 50;
/// At most this many pages of each call are read: the alias's own changes are among the
/// account's latest, and LookupEvents allows 2 requests a second.
const MAX_PAGES: usize = 10;

/// Who changed the alias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Writer {
    /// CodeDeploy, for a deployment.
    CodeDeploy,
    /// Anyone else, as CloudTrail names them (an ARN, a user name).
    Other(String),
}

impl Writer {
    pub fn describe(&self) -> &str {
        match self {
            Writer::CodeDeploy => "CodeDeploy",
            Writer::Other(who) => who,
        }
    }
}

/// One recorded change of the alias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasChange {
    pub at: DateTime<Utc>,
    /// The version the alias pointed at after the call; `None` when the call left it as it
    /// was (a new description or routing configuration only).
    pub version: Option<String>,
    /// `CreateAlias` (the alias's first version), else `UpdateAlias`.
    pub created: bool,
    pub by: Writer,
}

/// What the history says about the version live before the current one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Previous {
    /// The version live before; `since` is the change that put the current one in place.
    Version { version: String, since: AliasChange },
    /// The alias was created on the current version and has pointed at it since.
    Never { since: AliasChange },
    /// The alias moved to the current version (`since`), and the history holds nothing
    /// before that.
    BeforeHistory { since: AliasChange },
    /// The newest recorded change put the alias on another version: the change to the
    /// current one is not in CloudTrail yet (it records within minutes).
    Unrecorded { newest: String },
    /// CloudTrail records no change of the alias.
    Unknown,
}

/// The change an event of CloudTrail (`CloudTrailEvent`, its JSON) records, if it is a
/// successful `CreateAlias` or `UpdateAlias` of `alias` of `function`.
pub fn parse_change(event: &str, function: &str, alias: &str) -> Option<AliasChange> {
    let event: Value = serde_json::from_str(event).ok()?;
    let created = match event.get("eventName")?.as_str()? {
        CREATE_ALIAS => true,
        UPDATE_ALIAS => false,
        _ => return None,
    };
    if event.get("errorCode").is_some_and(|code| !code.is_null()) {
        return None;
    }
    let request = event.get("requestParameters")?;
    let named = request.get("functionName")?.as_str()?;
    if function_name(named) != function || request.get("name")?.as_str()? != alias {
        return None;
    }
    let version = event
        .get("responseElements")
        .and_then(|response| response.get("functionVersion"))
        .or_else(|| request.get("functionVersion"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let at = event
        .get("eventTime")?
        .as_str()?
        .parse::<DateTime<Utc>>()
        .ok()?;
    let text = |field: &str| event.get(field).and_then(Value::as_str);
    let identity = event.get("userIdentity");
    let invoked_by = identity
        .and_then(|identity| identity.get("invokedBy"))
        .and_then(Value::as_str);
    let by = if [invoked_by, text("sourceIPAddress"), text("userAgent")].contains(&Some(CODEDEPLOY))
    {
        Writer::CodeDeploy
    } else {
        let named = ["arn", "userName", "principalId"]
            .iter()
            .find_map(|field| identity?.get(*field)?.as_str());
        Writer::Other(named.unwrap_or("an unnamed caller").to_owned())
    };
    Some(AliasChange {
        at,
        version,
        created,
        by,
    })
}

/// The function's name in a `functionName` as a caller wrote it: a name, a partial ARN
/// (`123456789012:function:name`) or an ARN, with or without a qualifier.
pub fn function_name(named: &str) -> &str {
    let unprefixed = named
        .rsplit_once("function:")
        .map_or(named, |(_, name)| name);
    unprefixed.split(':').next().unwrap_or(unprefixed)
}

/// The version live on the alias before `current`, from its recorded changes, in any order
/// of time; changes of the same second (CloudTrail's `eventTime` has no finer unit) are taken
/// in the order given, which must be oldest first.
pub fn previous_live(changes: &[AliasChange], current: &str) -> Previous {
    let mut ordered: Vec<&AliasChange> = changes.iter().collect();
    ordered.sort_by_key(|change| change.at);
    // A call that left the version as it was keeps the one before it.
    let mut timeline: Vec<(String, &AliasChange)> = Vec::new();
    for change in ordered {
        let version = change
            .version
            .clone()
            .or_else(|| timeline.last().map(|(version, _)| version.clone()));
        if let Some(version) = version {
            timeline.push((version, change));
        }
    }
    let Some((newest, _)) = timeline.last() else {
        return Previous::Unknown;
    };
    if newest != current {
        return Previous::Unrecorded {
            newest: newest.clone(),
        };
    }
    // The first of the newest run of changes on the current version put it in place.
    let mut first = timeline.len() - 1;
    while first > 0 && timeline[first - 1].0 == current {
        first -= 1;
    }
    let since = timeline[first].1.clone();
    match first.checked_sub(1) {
        Some(before) => Previous::Version {
            version: timeline[before].0.clone(),
            since,
        },
        None if since.created => Previous::Never { since },
        None => Previous::BeforeHistory { since },
    }
}

/// Reads the alias's changes of the last [`HISTORY_DAYS`] from CloudTrail: its
/// `UpdateAlias` calls, newest first (LookupEvents' order), until the version before the
/// current one shows (or [`MAX_PAGES`] pages), then its `CreateAlias` calls.
pub async fn read(
    cloudtrail: &CloudTrailClient,
    function: &str,
    alias: &str,
    current: &str,
    now: DateTime<Utc>,
) -> Result<Vec<AliasChange>, HealError> {
    // LookupEvents answers newest first: each list is turned oldest first.
    let mut updates = Vec::new();
    lookup(cloudtrail, UPDATE_ALIAS, now, &mut |event| {
        if let Some(change) = parse_change(event, function, alias) {
            updates.push(change);
        }
        // Older pages cannot change the newest change, nor what was live before it.
        let oldest_first: Vec<AliasChange> = updates.iter().rev().cloned().collect();
        matches!(
            previous_live(&oldest_first, current),
            Previous::Version { .. } | Previous::Unrecorded { .. }
        )
    })
    .await?;
    let mut creates = Vec::new();
    lookup(cloudtrail, CREATE_ALIAS, now, &mut |event| {
        if let Some(change) = parse_change(event, function, alias) {
            creates.push(change);
        }
        false
    })
    .await?;
    // An alias is created before it is updated, also within one second.
    Ok(creates
        .into_iter()
        .rev()
        .chain(updates.into_iter().rev())
        .collect())
}

/// Pages through the events named `event_name`, handing each event's record to `seen`,
/// which says when enough was read.
async fn lookup(
    cloudtrail: &CloudTrailClient,
    event_name: &str,
    now: DateTime<Utc>,
    seen: &mut (dyn FnMut(&str) -> bool + Send),
) -> Result<(), HealError> {
    let attribute = LookupAttribute::builder()
        .attribute_key(LookupAttributeKey::EventName)
        .attribute_value(event_name)
        .build()
        .map_err(|e| HealError::new(format!("LookupEvents: {e}")))?;
    let since = now - Duration::days(HISTORY_DAYS);
    let mut pages = cloudtrail
        .lookup_events()
        .lookup_attributes(attribute)
        // No end time: up to now, this second included.
        .start_time(aws_smithy_types::DateTime::from_secs(since.timestamp()))
        .max_results(PAGE_SIZE)
        .into_paginator()
        .send();
    let mut read = 0;
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| api_error("LookupEvents", e))?;
        for event in page.events() {
            if let Some(record) = event.cloud_trail_event()
                && seen(record)
            {
                return Ok(());
            }
        }
        read += 1;
        if read >= MAX_PAGES {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    fn at(minute: u32) -> DateTime<Utc> {
        format!("2026-11-24T06:{minute:02}:00Z")
            .parse()
            .expect("a time")
    }

    fn change(minute: u32, version: Option<&str>, created: bool, by: Writer) -> AliasChange {
        AliasChange {
            at: at(minute),
            version: version.map(str::to_owned),
            created,
            by,
        }
    }

    fn person() -> Writer {
        Writer::Other("arn:aws:iam::123456789012:user/ops".to_owned())
    }

    #[test]
    fn the_previous_version_is_the_one_live_before_the_current_not_the_largest_below_it() {
        // Published 1, 2, 3; live went 1 → 3 (2 was never on the alias).
        let changes = [
            change(1, Some("1"), true, person()),
            change(9, Some("3"), false, person()),
        ];
        let Previous::Version { version, since } = previous_live(&changes, "3") else {
            panic!("a previous version");
        };
        assert_eq!(version, "1");
        assert_eq!(since.at, at(9));
    }

    #[test]
    fn changes_that_keep_the_version_and_a_weighted_shift_end_on_the_version_that_led() {
        // A canary from 4 to 5 (4 leads with 5 weighted), then 5 alone, then a description.
        let changes = [
            change(5, Some("4"), false, Writer::CodeDeploy),
            change(1, Some("4"), true, person()),
            change(6, Some("4"), false, Writer::CodeDeploy),
            change(8, Some("5"), false, Writer::CodeDeploy),
            change(9, None, false, person()),
        ];
        let Previous::Version { version, since } = previous_live(&changes, "5") else {
            panic!("a previous version");
        };
        assert_eq!(version, "4");
        assert_eq!(since.by, Writer::CodeDeploy, "CodeDeploy moved it to 5");
    }

    #[test]
    fn what_the_history_cannot_say_is_said() {
        assert_eq!(previous_live(&[], "3"), Previous::Unknown);
        assert_eq!(
            previous_live(&[change(1, Some("2"), true, person())], "3"),
            Previous::Unrecorded {
                newest: "2".to_owned()
            }
        );
        assert!(matches!(
            previous_live(&[change(1, Some("3"), true, person())], "3"),
            Previous::Never { .. }
        ));
        assert!(matches!(
            previous_live(&[change(1, Some("3"), false, person())], "3"),
            Previous::BeforeHistory { .. }
        ));
    }

    #[test]
    fn cloudtrail_records_are_read_for_their_alias_version_and_caller() {
        let record = |name: &str, function: &str, extra: &str| {
            format!(
                r#"{{"eventTime":"2026-11-24T06:09:00Z","eventName":"{name}","sourceIPAddress":"{extra}","userAgent":"{extra}","userIdentity":{{"type":"AssumedRole","arn":"arn:aws:sts::123456789012:assumed-role/deployer/ci"}},"requestParameters":{{"functionName":"{function}","name":"live","functionVersion":"7"}},"responseElements":{{"functionVersion":"7","name":"live"}}}}"#
            )
        };
        let plain = parse_change(
            &record(UPDATE_ALIAS, "orders", "198.51.100.7"),
            "orders",
            "live",
        )
        .expect("a change");
        assert_eq!(plain.version.as_deref(), Some("7"));
        assert_eq!(plain.at, at(9));
        assert!(!plain.created);
        assert_eq!(
            plain.by,
            Writer::Other("arn:aws:sts::123456789012:assumed-role/deployer/ci".to_owned())
        );
        let arn = "arn:aws:lambda:us-east-1:123456789012:function:orders";
        let by_codedeploy =
            parse_change(&record(CREATE_ALIAS, arn, CODEDEPLOY), "orders", "live").expect("one");
        assert!(by_codedeploy.created);
        assert_eq!(by_codedeploy.by, Writer::CodeDeploy);
        assert!(parse_change(&record(UPDATE_ALIAS, "billing", "x"), "orders", "live").is_none());
        assert!(parse_change(&record(UPDATE_ALIAS, "orders", "x"), "orders", "staging").is_none());
        assert!(
            parse_change(
                &record("DeleteAlias20150331", "orders", "x"),
                "orders",
                "live"
            )
            .is_none()
        );
        let failed = record(UPDATE_ALIAS, "orders", "x").replacen(
            '{',
            r#"{"errorCode":"ResourceConflictException","#,
            1,
        );
        assert!(
            parse_change(&failed, "orders", "live").is_none(),
            "a refused call changed nothing"
        );
    }

    #[test]
    fn function_names_are_read_from_names_and_arns() {
        assert_eq!(function_name("orders"), "orders");
        assert_eq!(function_name("orders:live"), "orders");
        assert_eq!(function_name("123456789012:function:orders"), "orders");
        assert_eq!(
            function_name("arn:aws:lambda:us-east-1:123456789012:function:orders:7"),
            "orders"
        );
    }
}
