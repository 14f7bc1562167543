//! The hostile-input corpus (`tests/hostile/` of the repository): every payload and rules file
//! listed in `expected.json` gives exactly its expected outcome through the pure path, and the
//! manifest and the directory agree. `tests/hostile/README.md` describes the schema.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use autoheal_core::policy::decision::{Decision, DecisionInput, decide};
use autoheal_core::policy::resolve::select;
use autoheal_core::{AlarmEvent, AlarmState, FollowUp, Layer, ResourceState, RuleSet};

/// The fewest cases the corpus may have.
const MIN_CASES: usize = 60;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/hostile")
}

/// One entry of `expected.json`: an outcome, or an outcome with the layer it is meant for
/// (events) or the line an error must name (rules files).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Expected {
    Outcome(String),
    Detailed {
        outcome: String,
        #[serde(default)]
        layer: Option<Layer>,
        #[serde(default)]
        line: Option<usize>,
    },
}

impl Expected {
    fn outcome(&self) -> &str {
        match self {
            Expected::Outcome(outcome) | Expected::Detailed { outcome, .. } => outcome,
        }
    }

    fn layer(&self) -> Option<Layer> {
        match self {
            Expected::Outcome(_) => None,
            Expected::Detailed { layer, .. } => *layer,
        }
    }

    fn line(&self) -> Option<usize> {
        match self {
            Expected::Outcome(_) => None,
            Expected::Detailed { line, .. } => *line,
        }
    }
}

fn manifest() -> BTreeMap<String, Expected> {
    let path = corpus().join("expected.json");
    let text = std::fs::read_to_string(&path).expect("tests/hostile/expected.json exists");
    serde_json::from_str(&text).expect("expected.json maps paths to outcomes")
}

/// Every file under `dir` (relative to the corpus), sorted.
fn files_in(dir: &str) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(corpus().join(dir))
        .unwrap_or_else(|e| panic!("tests/hostile/{dir}: {e}"))
        .map(|entry| {
            let entry = entry.expect("a directory entry");
            format!("{dir}/{}", entry.file_name().to_string_lossy())
        })
        .collect();
    files.sort();
    files
}

/// A fixed "now" for decisions: the corpus must not depend on the day it runs.
fn now() -> DateTime<Utc> {
    "2026-11-24T07:00:00Z".parse().expect("a time")
}

/// What `layer`'s function makes of `bytes` before any AWS call: `error`, `skip:<reason>`, or
/// `act` (it would act on a resource with no history).
fn event_outcome(bytes: &[u8], rules: &RuleSet, layer: Layer) -> String {
    let payload: Value = match serde_json::from_slice(bytes) {
        Ok(payload) => payload,
        Err(_) => {
            assert!(
                AlarmEvent::from_slice(bytes).is_err(),
                "bytes that are not JSON parse as an event"
            );
            return "error".to_owned();
        }
    };
    match FollowUp::from_payload(&payload) {
        Err(error) => {
            assert!(!error.to_string().is_empty());
            return "error".to_owned();
        }
        Ok(Some(follow_up)) => {
            return match follow_up.select(rules, layer) {
                Err(not_selected) => format!("skip:{}", not_selected.reason),
                // Beyond this point a check reads the alarm back from CloudWatch.
                Ok(_) => "check".to_owned(),
            };
        }
        Ok(None) => {}
    }
    let from_slice = AlarmEvent::from_slice(bytes);
    let event = match AlarmEvent::from_value(payload) {
        Ok(event) => event,
        Err(error) => {
            assert!(!error.to_string().is_empty());
            assert!(
                from_slice.is_err(),
                "from_slice accepts what from_value refuses"
            );
            return "error".to_owned();
        }
    };
    assert_eq!(
        from_slice.as_ref().ok(),
        Some(&event),
        "from_slice and from_value agree"
    );
    let (rule, resource_id) = match select(rules, &event, layer).into_match() {
        Ok(found) => found,
        Err(not_selected) => return format!("skip:{}", not_selected.reason),
    };
    assert_eq!(
        autoheal_core::model::resource_id::validate(
            rule.action.resource_kind(),
            &resource_id,
            &event
        ),
        Ok(()),
        "a selected resource id has its kind's format"
    );
    if event.suppressed_by.is_some() && event.state == AlarmState::Alarm {
        return "skip:suppressed".to_owned();
    }
    let state = ResourceState::default();
    let transition = decide(DecisionInput {
        policy: &rule.policy,
        state: &state,
        alarm: event.state,
        event_id: &event.id,
        event_seen: false,
        run_id: "hostile",
        now: now(),
    });
    match transition.decision {
        Decision::Act { .. } => "act".to_owned(),
        Decision::Skip { reason, .. } | Decision::Ignore { reason } => format!("skip:{reason}"),
        other => format!("{other:?}"),
    }
}

#[test]
fn the_manifest_lists_every_file_of_the_corpus_and_nothing_else() {
    let manifest = manifest();
    let mut on_disk = files_in("events");
    on_disk.extend(files_in("rules"));
    let listed: Vec<String> = manifest.keys().cloned().collect();
    let unlisted: Vec<&String> = on_disk
        .iter()
        .filter(|f| !manifest.contains_key(*f))
        .collect();
    let missing: Vec<&String> = listed.iter().filter(|f| !on_disk.contains(f)).collect();
    assert!(
        unlisted.is_empty(),
        "files not in expected.json: {unlisted:?}"
    );
    assert!(
        missing.is_empty(),
        "listed files that do not exist: {missing:?}"
    );
    assert!(
        manifest.len() >= MIN_CASES,
        "{} cases, at least {MIN_CASES} wanted",
        manifest.len()
    );
    for (path, expected) in &manifest {
        let outcome = expected.outcome();
        let known = outcome == "error"
            || outcome == "act"
            || outcome.strip_prefix("skip:").is_some_and(|reason| {
                serde_json::from_value::<autoheal_core::SkipReason>(Value::from(reason)).is_ok()
            });
        assert!(known, "{path}: unknown outcome `{outcome}`");
        if path.starts_with("rules/") {
            assert_eq!(
                outcome, "error",
                "{path}: every hostile rules file is refused"
            );
            assert!(
                expected.layer().is_none(),
                "{path}: a rules file has no layer"
            );
        } else {
            assert!(
                expected.line().is_none(),
                "{path}: only rules files name a line"
            );
        }
    }
}

#[test]
fn every_hostile_event_gives_exactly_its_expected_outcome_in_every_layer() {
    let rules = RuleSet::shipped().expect("the shipped rules parse");
    let mut failures = Vec::new();
    let mut checked = 0;
    for (path, expected) in manifest().iter().filter(|(p, _)| p.starts_with("events/")) {
        let bytes = std::fs::read(corpus().join(path)).expect("a listed file exists");
        for layer in Layer::ALL {
            // A payload meant for one layer is another layer's only to skip.
            let wanted = match expected.layer() {
                Some(meant) if meant != layer => "skip:other-layer",
                _ => expected.outcome(),
            };
            let got = event_outcome(&bytes, &rules, layer);
            if got != wanted {
                failures.push(format!("{path} in {layer}: expected {wanted}, got {got}"));
            }
        }
        checked += 1;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked > 0, "the corpus has events");
}

#[test]
fn every_hostile_rules_file_is_refused_with_a_message_and_its_line() {
    let mut failures = Vec::new();
    for (path, expected) in manifest().iter().filter(|(p, _)| p.starts_with("rules/")) {
        let bytes = std::fs::read(corpus().join(path)).expect("a listed file exists");
        let Ok(text) = String::from_utf8(bytes) else {
            failures.push(format!("{path}: not UTF-8, so never handed to the parser"));
            continue;
        };
        match RuleSet::from_toml(&text) {
            Ok(rules) => failures.push(format!(
                "{path}: accepted with {} rules",
                rules.rules().len()
            )),
            Err(error) => {
                let message = error.to_string();
                if message.trim().is_empty() {
                    failures.push(format!("{path}: an empty message"));
                }
                if let Some(line) = expected.line() {
                    let named = error.problems.iter().any(|p| p.line == Some(line));
                    if !named || !message.contains(&format!("line {line}:")) {
                        failures.push(format!("{path}: line {line} not named in:\n{message}"));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
