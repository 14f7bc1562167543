//! The operator's hooks: Lambda functions autoheal calls for what only the application knows
//! (which cache keys are hot, whether restored data is consistent). Each is invoked
//! synchronously with a JSON payload; a hook that reports an error (`FunctionError`) or
//! answers outside 2xx fails the run with the hook's own words.

use std::collections::BTreeMap;

use aws_sdk_lambda::Client as LambdaClient;
use aws_sdk_lambda::types::InvocationType;
use aws_smithy_types::Blob;
use serde_json::Value;

use autoheal_aws::errors::api_error;
use autoheal_core::HealError;

/// How much of a hook's reply a record keeps.
pub const REPLY_LIMIT: usize = 512;

/// Invokes `function` with `payload`; returns its reply, or its error in its own words.
/// `what` names the hook in messages (`cache-repair hook`).
pub async fn invoke(
    lambda: &LambdaClient,
    what: &str,
    function: &str,
    payload: &Value,
) -> Result<String, HealError> {
    let reply = lambda
        .invoke()
        .function_name(function)
        .invocation_type(InvocationType::RequestResponse)
        .payload(Blob::new(payload.to_string()))
        .send()
        .await
        .map_err(|e| api_error("Invoke", e))?;
    let body = reply
        .payload()
        .map(|blob| String::from_utf8_lossy(blob.as_ref()).into_owned())
        .unwrap_or_default();
    checked(
        what,
        function,
        reply.status_code(),
        reply.function_error(),
        &body,
    )
}

/// The hook's reply, or the hook's error.
pub fn checked(
    what: &str,
    function: &str,
    status_code: i32,
    function_error: Option<&str>,
    body: &str,
) -> Result<String, HealError> {
    let reply = truncate(body.trim(), REPLY_LIMIT);
    if let Some(kind) = function_error {
        return Err(HealError::new(format!(
            "{what} {function} failed ({kind}): {reply}"
        )));
    }
    if !(200..300).contains(&status_code) {
        return Err(HealError::new(format!(
            "{what} {function} answered status {status_code}: {reply}"
        )));
    }
    Ok(body.trim().to_owned())
}

/// The record's details for a hook's reply.
pub fn details(function: &str, reply: &str) -> BTreeMap<String, String> {
    let mut details = BTreeMap::from([("hook_function".to_owned(), function.to_owned())]);
    if !reply.is_empty() {
        details.insert("hook_reply".to_owned(), truncate(reply, REPLY_LIMIT));
    }
    details
}

pub fn truncate(text: &str, limit: usize) -> String {
    match text.char_indices().nth(limit) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// What an integrity hook found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Integrity {
    Consistent { details: String },
    Inconsistent { details: String },
}

/// The verdict in an integrity hook's reply: `{"verdict": "consistent" | "inconsistent",
/// "details": ...}`. Anything else is an error: a check that cannot be read never passes.
pub fn integrity_verdict(function: &str, reply: &str) -> Result<Integrity, HealError> {
    let unreadable = |why: &str| {
        HealError::new(format!(
            "integrity hook {function} gave no verdict ({why}): expected {{\"verdict\": \"consistent\" | \"inconsistent\", \"details\": …}}, got {}",
            truncate(reply, REPLY_LIMIT)
        ))
    };
    let value: Value = serde_json::from_str(reply).map_err(|_| unreadable("not JSON"))?;
    let details = match value.get("details") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => truncate(text, REPLY_LIMIT),
        Some(other) => truncate(&other.to_string(), REPLY_LIMIT),
    };
    match value.get("verdict").and_then(Value::as_str) {
        Some("consistent") => Ok(Integrity::Consistent { details }),
        Some("inconsistent") => Ok(Integrity::Inconsistent { details }),
        Some(_) => Err(unreadable("unknown verdict")),
        None => Err(unreadable("no `verdict`")),
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn a_function_error_fails_with_the_hooks_payload() {
        let error = checked(
            "cache-repair hook",
            "hook",
            200,
            Some("Unhandled"),
            r#"{"errorMessage":"redis timeout","errorType":"TimeoutError"}"#,
        )
        .expect_err("the hook failed");
        assert!(error.message.contains("Unhandled"), "{error}");
        assert!(error.message.contains("redis timeout"), "{error}");
        assert!(checked("hook", "h", 500, None, "").is_err());
    }

    #[test]
    fn a_successful_reply_is_recorded_and_long_replies_are_cut() {
        let reply = checked("hook", "h", 200, None, r#" {"evicted": 12} "#).expect("ok");
        let details = details("h", &reply);
        assert_eq!(details["hook_function"], "h");
        assert_eq!(details["hook_reply"], r#"{"evicted": 12}"#);
        let details = super::details("h", &"x".repeat(2000));
        assert_eq!(details["hook_reply"].chars().count(), REPLY_LIMIT + 1);
    }

    #[test]
    fn an_integrity_verdict_is_read_and_never_assumed() {
        assert_eq!(
            integrity_verdict("h", r#"{"verdict":"consistent","details":"42 tables"}"#).ok(),
            Some(Integrity::Consistent {
                details: "42 tables".to_owned()
            })
        );
        assert_eq!(
            integrity_verdict("h", r#"{"verdict":"inconsistent","details":{"orders":3}}"#).ok(),
            Some(Integrity::Inconsistent {
                details: r#"{"orders":3}"#.to_owned()
            })
        );
        for unreadable in [
            "",
            "ok",
            r#"{"verdict":"maybe"}"#,
            r#"{"status":"consistent"}"#,
            "[]",
        ] {
            assert!(
                integrity_verdict("h", unreadable).is_err(),
                "{unreadable:?}"
            );
        }
    }
}
