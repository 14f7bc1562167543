//! The hostile-input corpus (`tests/hostile/`) through the real handlers of all five layers,
//! with their own SDK configuration, behind a proxy that counts every AWS request: each
//! payload is refused or skipped with its expected reason, and not one request reaches the
//! service that owns the resource, nor any write the state table. Each hostile rules file
//! stops the function at start, before any client exists.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

use autoheal_aws::config::env;
use autoheal_aws::{ConfigError, FunctionConfig};
use autoheal_core::{EngineError, Layer, Verdict};
use autoheal_tests::faults::FaultProxy;
use autoheal_tests::{Deployment, Emulator, workspace};

/// The reads the engine may make before a skip it reaches after loading the state
/// (`not-actionable`, `no-open-incident`): the resource's state, nothing else.
const STATE_READS: [&str; 2] = ["dynamodb:BatchGetItem", "dynamodb:GetItem"];

fn corpus() -> PathBuf {
    workspace().join("tests/hostile")
}

/// `expected.json`: each file's outcome and, for events, the layer it is meant for.
fn manifest() -> BTreeMap<String, (String, Option<Layer>)> {
    let text = std::fs::read_to_string(corpus().join("expected.json")).expect("manifest");
    let manifest: BTreeMap<String, Value> = serde_json::from_str(&text).expect("manifest JSON");
    manifest
        .into_iter()
        .map(|(file, entry)| {
            let (outcome, layer) = match &entry {
                Value::String(outcome) => (outcome.clone(), None),
                detailed => (
                    detailed["outcome"].as_str().expect("an outcome").to_owned(),
                    detailed["layer"]
                        .as_str()
                        .map(|layer| layer.parse().expect("a layer")),
                ),
            };
            (file, (outcome, layer))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_events_are_refused_or_skipped_without_one_call_to_the_resources_service() {
    let emulator = Emulator::start();
    let direct = Deployment::bootstrap(&emulator).await;
    let proxy = FaultProxy::start(&emulator.url()).await;
    let proxied = Deployment {
        sdk: proxy.sdk().await,
        ..direct.clone()
    };
    let engines: Vec<_> = Layer::ALL
        .iter()
        .map(|&layer| (layer, proxied.layer(layer)))
        .collect();
    let mut tried = 0;
    for (file, (outcome, meant_for)) in manifest() {
        if !file.starts_with("events/") || outcome == "act" {
            continue; // rules files: below; `act`: valid events, kept to mark a limit
        }
        let bytes = std::fs::read(corpus().join(&file)).expect("corpus file");
        // What the Lambda runtime does first: bytes that are not JSON never reach a handler.
        let Ok(payload) = serde_json::from_slice::<Value>(&bytes) else {
            assert_eq!(outcome, "error", "{file}: not JSON");
            tried += 1;
            continue;
        };
        for (layer, engine) in &engines {
            proxy.clear_log();
            let expected = match meant_for {
                Some(meant) if meant != *layer => "skip:other-layer",
                _ => outcome.as_str(),
            };
            // As delivered: no alarm is fired for a hostile event.
            let result = engine.unsent.handle(payload.clone(), "hostile").await;
            let seen = match &result {
                Err(EngineError::InvalidEvent(_)) => "error".to_owned(),
                Ok(outcome) if matches!(outcome.decision, Verdict::Skip | Verdict::Ignore) => {
                    format!(
                        "skip:{}",
                        outcome.reason.map_or("none", |reason| reason.as_str())
                    )
                }
                other => format!("{other:?}"),
            };
            assert_eq!(seen, expected, "{file} in the {layer} function: {result:?}");
            if let Ok(outcome) = &result {
                assert!(outcome.record.is_none(), "{file}: nothing recorded");
            }
            let requests = proxy.requests();
            let allowed: &[&str] =
                if matches!(expected, "skip:not-actionable" | "skip:no-open-incident") {
                    &STATE_READS
                } else {
                    &[]
                };
            assert!(
                requests.iter().all(|r| allowed.contains(&r.as_str())),
                "{file} in the {layer} function made calls: {requests:?}"
            );
            tried += 1;
        }
    }
    assert!(tried >= 5 * 60, "{tried} cases through the handlers");
    assert_eq!(direct.item_count().await, 0, "no write to the state table");
    for (_, engine) in &engines {
        assert_eq!(engine.healer.calls(), 0, "no healer was asked");
    }
}

#[test]
fn a_hostile_rules_file_stops_the_function_before_it_serves() {
    let mut refused = 0;
    for (file, (outcome, _)) in manifest() {
        if !file.starts_with("rules/") {
            continue;
        }
        assert_eq!(outcome, "error", "{file}");
        let path = corpus().join(&file).display().to_string();
        let settings = [
            (
                env::TOPIC_ARN,
                "arn:aws:sns:us-east-1:123456789012:autoheal",
            ),
            (env::SCHEDULER_ROLE_ARN, "arn:aws:iam::123456789012:role/s"),
            (
                env::FUNCTION_ARN,
                "arn:aws:lambda:us-east-1:123456789012:function:f",
            ),
            (env::RULES_PATH, path.as_str()),
        ];
        let result = FunctionConfig::from_lookup(Layer::Infrastructure, |name| {
            settings
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        });
        match result {
            Err(ConfigError::Rules(error)) => {
                assert!(!error.to_string().trim().is_empty(), "{file}");
            }
            // A file that is not UTF-8 is refused as it is read.
            Err(error @ ConfigError::RulesFile { .. }) => {
                assert!(error.to_string().contains("UTF-8"), "{file}: {error}");
            }
            other => panic!("{file}: {other:?}"),
        }
        refused += 1;
    }
    assert!(refused >= 20, "{refused} rules files");
}
