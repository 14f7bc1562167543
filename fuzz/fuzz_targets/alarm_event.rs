//! Any bytes as the payload a layer's function receives: parsing never panics, its reading in
//! place and its reporting reading agree, and what parses holds the invariants the engine
//! relies on in every layer.

#![no_main]

use std::sync::LazyLock;

use autoheal_core::model::event::{MAX_ALARM_NAME_CHARS, MAX_EVENT_BYTES, MAX_STATE_REASON_CHARS};
use autoheal_core::model::resource_id::validate;
use autoheal_core::policy::resolve::{Selection, select};
use autoheal_core::{AlarmEvent, FollowUp, Layer, RuleSet};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

static RULES: LazyLock<RuleSet> =
    LazyLock::new(|| RuleSet::shipped().unwrap_or_else(|e| panic!("shipped rules: {e}")));

fuzz_target!(|data: &[u8]| {
    let rules = &*RULES;
    let from_slice = AlarmEvent::from_slice(data);
    let Ok(payload) = serde_json::from_slice::<Value>(data) else {
        assert!(from_slice.is_err(), "an event from bytes that are not JSON");
        return;
    };
    check_follow_up(rules, &payload);
    // The reading in place takes exactly what the reporting reading takes, and reads it alike;
    // from_value gives the reporting reading's error.
    let in_place = AlarmEvent::read_in_place(&payload);
    let reporting = AlarmEvent::from_value_reporting(payload.clone());
    assert_eq!(
        in_place.as_ref(),
        reporting.as_ref().ok(),
        "the two readings disagree"
    );
    let from_value = AlarmEvent::from_value(payload);
    if let (Err(a), Err(b)) = (&from_value, &reporting) {
        assert_eq!(
            a.to_string(),
            b.to_string(),
            "from_value and its reporting reading"
        );
    }
    match (&from_slice, &from_value) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "from_slice and from_value disagree"),
        (Err(_), Err(_)) => {}
        // Only the size limit may tell them apart: bytes count whitespace, JSON does not.
        (Err(autoheal_core::EventError::TooLarge { .. }), Ok(_)) => {}
        (a, b) => panic!("from_slice {a:?} but from_value {b:?}"),
    }
    let Ok(event) = from_value else {
        return;
    };
    check_event(&event);
    check_selection(rules, &event);
});

fn check_event(event: &AlarmEvent) {
    assert!(!event.id.trim().is_empty(), "an event without id");
    assert!(!event.alarm_name.trim().is_empty(), "an alarm without name");
    assert!(event.alarm_name.chars().count() <= MAX_ALARM_NAME_CHARS);
    assert!(!event.alarm_name.chars().any(char::is_control));
    if let Some(reason) = &event.state_reason {
        assert!(reason.chars().count() <= MAX_STATE_REASON_CHARS);
    }
    let encoded = serde_json::to_vec(event).unwrap_or_default();
    assert!(!encoded.is_empty(), "an event that does not serialize");
    // A follow-up carries the event as it serializes: it must read back the same.
    let back: AlarmEvent = serde_json::from_slice(&encoded)
        .unwrap_or_else(|e| panic!("an event that does not read back: {e}"));
    assert_eq!(&back, event);
}

/// One alarm, one rule, one layer: at most one layer's function decides on it, and what it
/// decides on is a resource id of the rule's format.
fn check_selection(rules: &RuleSet, event: &AlarmEvent) {
    let mut deciding = Vec::new();
    for layer in Layer::ALL {
        match select(rules, event, layer) {
            Selection::Matched { rule, resource_id } => {
                assert_eq!(rule.layer, layer);
                assert!(!resource_id.is_empty());
                assert_eq!(resource_id.trim(), resource_id);
                assert_eq!(
                    validate(rule.action.resource_kind(), &resource_id, event),
                    Ok(()),
                    "{resource_id:?}"
                );
                deciding.push(layer);
            }
            Selection::Unresolved { rule, detail, .. } => {
                assert_eq!(rule.layer, layer);
                assert!(!detail.is_empty());
                deciding.push(layer);
            }
            Selection::Disabled { rule } => {
                assert_eq!(rule.layer, layer);
                deciding.push(layer);
            }
            Selection::OtherLayer { rule } => assert_ne!(rule.layer, layer),
            Selection::NoMatch { detail } => assert!(!detail.is_empty()),
        }
    }
    assert!(deciding.len() <= 1, "decided by {deciding:?}");
}

fn check_follow_up(rules: &RuleSet, payload: &Value) {
    let follow_up = match FollowUp::from_payload(payload) {
        Ok(Some(follow_up)) => follow_up,
        Ok(None) => return,
        Err(error) => {
            assert!(!error.to_string().is_empty());
            return;
        }
    };
    assert!(follow_up.alarm.alarm_name.chars().count() <= MAX_ALARM_NAME_CHARS);
    assert!(serde_json::to_vec(payload).map_or(0, |b| b.len()) <= MAX_EVENT_BYTES);
    // What autoheal schedules reads back as the same check.
    let again = FollowUp::from_payload(&follow_up.to_payload())
        .unwrap_or_else(|e| panic!("a follow-up that does not read back: {e}"));
    assert_eq!(again.as_ref(), Some(&follow_up));
    for layer in Layer::ALL {
        if let Ok(rule) = follow_up.select(rules, layer) {
            assert_eq!(rule.layer, layer);
            assert!(rule.enabled);
            assert_eq!(
                validate(
                    rule.action.resource_kind(),
                    &follow_up.resource_id,
                    &follow_up.alarm
                ),
                Ok(())
            );
        }
    }
}
