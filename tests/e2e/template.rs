//! `template.yaml`: each alarm routes to exactly its layer, and every IAM statement is
//! least-privilege.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{Value, json};

use autoheal_core::{Layer, RuleSet};
use autoheal_tests::{Emulator, create_queue, template, workspace};

/// The stack name the patterns are instantiated with.
const STACK: &str = "autoheal";

/// Replaces `{"Fn::Sub": "...${AWS::StackName}..."}` by its value for `STACK`.
fn substitute(value: &Value) -> Value {
    match value {
        Value::Object(map) if map.len() == 1 && map.contains_key("Fn::Sub") => {
            let text = map["Fn::Sub"].as_str().expect("a plain Fn::Sub string");
            Value::from(text.replace("${AWS::StackName}", STACK))
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| (key.clone(), substitute(value)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(substitute).collect()),
        other => other.clone(),
    }
}

fn functions(template: &Value) -> Vec<(String, &Value)> {
    template["Resources"]
        .as_object()
        .expect("Resources")
        .iter()
        .filter(|(_, resource)| resource["Type"] == "AWS::Serverless::Function")
        .map(|(name, resource)| (name.clone(), resource))
        .collect()
}

/// Each layer's EventBridge pattern, with the stack name filled in.
fn layer_patterns(template: &Value) -> BTreeMap<Layer, Value> {
    let mut patterns = BTreeMap::new();
    for (name, function) in functions(template) {
        let binary = function["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .expect("Metadata.BuildProperties.Binary");
        let layer: Layer = binary
            .strip_prefix("autoheal-")
            .and_then(|layer| layer.parse().ok())
            .unwrap_or_else(|| panic!("{name}: binary {binary} names no layer"));
        let events = function["Properties"]["Events"]
            .as_object()
            .expect("Events");
        let rules: Vec<&Value> = events
            .values()
            .filter(|event| event["Type"] == "EventBridgeRule")
            .collect();
        assert_eq!(rules.len(), 1, "{name}: one EventBridge rule per layer");
        let properties = &rules[0]["Properties"];
        assert!(
            properties["DeadLetterConfig"].is_object(),
            "{name}: a dead-letter queue"
        );
        assert!(
            properties["RetryPolicy"].is_object(),
            "{name}: a retry policy"
        );
        patterns.insert(layer, substitute(&properties["Pattern"]));
    }
    assert_eq!(patterns.len(), 5, "one function per layer");
    patterns
}

fn event_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![workspace().join("events")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("events/") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|ext| ext == "json") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The layer a sample event must reach: its rule's layer, or for AWS's documentation
/// samples the layer owning the namespace (none for a composite alarm).
fn expected_layer(rules: &RuleSet, file: &std::path::Path, event: &Value) -> Option<Layer> {
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .expect("file name");
    if let Some(rule) = name.split('.').next().and_then(|rule| rules.get(rule)) {
        return Some(rule.layer);
    }
    let namespace = event["detail"]["configuration"]["metrics"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|metric| metric["metricStat"]["metric"]["namespace"].as_str())?;
    rules
        .rules()
        .iter()
        .find(|rule| rule.trigger.namespace.as_deref() == Some(namespace))
        .map(|rule| rule.layer)
}

/// An alarm on one of autoheal's own functions, and one of autoheal's own alarms.
fn self_alarms() -> Vec<(String, Value)> {
    let base: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace().join("events/lambda-function-healing.alarm.json"))
            .expect("sample"),
    )
    .expect("JSON");
    let mut on_own_function = base.clone();
    on_own_function["detail"]["alarmName"] = json!("team-alarm-on-autoheal-errors");
    on_own_function["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"]["dimensions"] =
        json!({ "FunctionName": format!("{STACK}-platform") });
    let mut own_alarm = base;
    own_alarm["detail"]["alarmName"] = json!(format!("{STACK}-platform-errors"));
    vec![
        (
            "an alarm on autoheal's own function".to_owned(),
            on_own_function,
        ),
        ("autoheal's own alarm".to_owned(), own_alarm),
    ]
}

fn unrelated_events() -> Vec<(String, Value)> {
    let mut sqs_alarm: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace().join("events/ec2-instance-healing.alarm.json"))
            .expect("sample"),
    )
    .expect("JSON");
    sqs_alarm["detail"]["alarmName"] = json!("orders-queue-backlog");
    sqs_alarm["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"] = json!({
        "namespace": "AWS/SQS",
        "name": "ApproximateAgeOfOldestMessage",
        "dimensions": { "QueueName": "orders" }
    });
    let mut insufficient = serde_json::from_str::<Value>(
        &std::fs::read_to_string(workspace().join("events/ec2-instance-healing.alarm.json"))
            .expect("sample"),
    )
    .expect("JSON");
    insufficient["detail"]["state"]["value"] = json!("INSUFFICIENT_DATA");
    let config_change = json!({
        "version": "0",
        "id": "5ec3c1a2-0000-4000-8000-000000000001",
        "detail-type": "CloudWatch Alarm Configuration Change",
        "source": "aws.cloudwatch",
        "account": "123456789012",
        "time": "2026-11-24T06:00:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:cloudwatch:us-east-1:123456789012:alarm:web-01-system-status-check-failed"],
        "detail": { "alarmName": "web-01-system-status-check-failed", "operation": "update" }
    });
    vec![
        ("an alarm on a metric no layer heals".to_owned(), sqs_alarm),
        ("INSUFFICIENT_DATA".to_owned(), insufficient),
        ("an alarm configuration change".to_owned(), config_change),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sample_event_reaches_exactly_its_layer_and_nothing_else_reaches_any() {
    let emulator = Emulator::start_with_eventbridge_arrays();
    let sdk = emulator.sdk().await;
    let events = aws_sdk_eventbridge::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let rules = RuleSet::shipped().expect("shipped rules");

    let mut queues = BTreeMap::new();
    for (layer, pattern) in layer_patterns(&template()) {
        let (url, arn) = create_queue(&sdk, &format!("{layer}-layer")).await;
        let rule = format!("{STACK}-{layer}-alarm-state-change");
        events
            .put_rule()
            .name(&rule)
            .event_pattern(pattern.to_string())
            .send()
            .await
            .unwrap_or_else(|e| panic!("{layer}: the emulator refused the pattern: {e:?}"));
        events
            .put_targets()
            .rule(&rule)
            .targets(
                aws_sdk_eventbridge::types::Target::builder()
                    .id("layer")
                    .arn(arn)
                    .build()
                    .expect("target"),
            )
            .send()
            .await
            .expect("target");
        queues.insert(layer, url);
    }

    let mut cases: Vec<(String, Value, Option<Layer>)> = Vec::new();
    for file in event_files() {
        let event: Value =
            serde_json::from_str(&std::fs::read_to_string(&file).expect("read")).expect("JSON");
        let expected = expected_layer(&rules, &file, &event);
        cases.push((file.display().to_string(), event, expected));
    }
    assert!(
        cases.len() >= 34,
        "every rule's ALARM and OK events, and AWS's samples"
    );
    cases.extend(
        self_alarms()
            .into_iter()
            .map(|(name, event)| (name, event, None)),
    );
    cases.extend(
        unrelated_events()
            .into_iter()
            .map(|(name, event)| (name, event, None)),
    );

    for (name, event, expected) in cases {
        let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
            .source(event["source"].as_str().expect("source"))
            .detail_type(event["detail-type"].as_str().expect("detail-type"))
            .detail(event["detail"].to_string())
            .set_resources(event["resources"].as_array().map(|r| {
                r.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            }))
            .build();
        let put = events
            .put_events()
            .entries(entry)
            .send()
            .await
            .expect("put events");
        assert_eq!(put.failed_entry_count(), 0, "{name}");

        let mut reached = Vec::new();
        for (layer, url) in &queues {
            let received = sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .send()
                .await
                .expect("receive")
                .messages
                .unwrap_or_default();
            for message in &received {
                sqs.delete_message()
                    .queue_url(url)
                    .receipt_handle(message.receipt_handle().expect("handle"))
                    .send()
                    .await
                    .expect("delete");
            }
            if !received.is_empty() {
                reached.push(*layer);
            }
        }
        assert_eq!(reached, expected.into_iter().collect::<Vec<_>>(), "{name}");
    }
}

#[test]
fn every_rule_is_selected_by_its_layers_pattern() {
    let patterns = layer_patterns(&template());
    for rule in RuleSet::shipped().expect("shipped rules").rules() {
        let pattern = patterns[&rule.layer].to_string();
        if let Some(namespace) = &rule.trigger.namespace {
            assert!(
                pattern.contains(&format!("\"{namespace}\"")),
                "{}: namespace {namespace} not routed to {}",
                rule.name,
                rule.layer
            );
        }
        for prefix in &rule.trigger.alarm_name_prefixes {
            let routed_by_name = pattern.contains(&format!("{{\"prefix\":\"{prefix}\"}}"));
            let routed_by_namespace = rule.trigger.namespace.is_some();
            assert!(
                routed_by_name || routed_by_namespace,
                "{}: alarm-name prefix {prefix} not routed to {}",
                rule.name,
                rule.layer
            );
        }
    }
}

/// Whether an IAM action only reads.
fn is_read_only(action: &str) -> bool {
    let verb = action.split(':').nth(1).unwrap_or(action);
    ["Describe", "Get", "List", "BatchGet", "Query", "Scan"]
        .iter()
        .any(|prefix| verb.starts_with(prefix))
}

fn as_list(value: &Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items.clone(),
        Value::Null => Vec::new(),
        other => vec![other.clone()],
    }
}

/// Every policy statement in the template, named by where it stands.
fn statements(template: &Value) -> Vec<(String, Value)> {
    let mut found = Vec::new();
    for (name, resource) in template["Resources"].as_object().expect("Resources") {
        let properties = &resource["Properties"];
        let mut documents: Vec<(String, Value)> = Vec::new();
        match resource["Type"].as_str() {
            Some("AWS::Serverless::Function") => {
                for policy in as_list(&properties["Policies"]) {
                    if policy.get("Statement").is_some() {
                        documents.push((format!("function {name}"), policy));
                    }
                }
            }
            Some(
                "AWS::IAM::ManagedPolicy"
                | "AWS::IAM::Policy"
                | "AWS::SNS::TopicPolicy"
                | "AWS::SQS::QueuePolicy",
            ) => {
                documents.push((
                    format!("policy {name}"),
                    properties["PolicyDocument"].clone(),
                ));
            }
            Some("AWS::IAM::Role") => {
                for policy in as_list(&properties["Policies"]) {
                    documents.push((format!("role {name}"), policy["PolicyDocument"].clone()));
                }
            }
            _ => {}
        }
        for (owner, document) in documents {
            for (index, statement) in as_list(&document["Statement"]).into_iter().enumerate() {
                let sid = statement["Sid"]
                    .as_str()
                    .map_or_else(|| format!("#{index}"), str::to_owned);
                found.push((format!("{owner}, statement {sid}"), statement));
            }
        }
    }
    found
}

#[test]
fn no_iam_statement_has_a_wildcard_action_or_an_unconditioned_mutation_on_every_resource() {
    let template = template();
    let statements = statements(&template);
    assert!(statements.len() >= 10, "the walk found the statements");
    let mut problems = Vec::new();
    for (place, statement) in &statements {
        let actions: Vec<String> = as_list(&statement["Action"])
            .iter()
            .filter_map(|a| a.as_str().map(str::to_owned))
            .collect();
        assert!(!actions.is_empty(), "{place}: no Action");
        assert!(statement.get("NotAction").is_none(), "{place}: NotAction");
        for action in &actions {
            if action.contains('*') {
                problems.push(format!("{place}: wildcard action `{action}`"));
            }
        }
        let on_everything = as_list(&statement["Resource"]).iter().any(|r| r == "*");
        let conditioned = statement["Condition"].is_object();
        if on_everything && !conditioned {
            for action in actions.iter().filter(|a| !is_read_only(a)) {
                problems.push(format!(
                    "{place}: `{action}` on Resource \"*\" without a condition"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_iam_walk_catches_what_it_must() {
    let bad = json!({
        "Resources": {
            "Healer": {
                "Type": "AWS::Serverless::Function",
                "Properties": { "Policies": [ { "Statement": [
                    { "Sid": "Everything", "Effect": "Allow", "Action": "ec2:*", "Resource": "*" },
                    { "Sid": "Terminate", "Effect": "Allow", "Action": ["ec2:TerminateInstances"], "Resource": "*" }
                ] } ] }
            }
        }
    });
    let found = statements(&bad);
    assert_eq!(found.len(), 2);
    assert!(
        found
            .iter()
            .all(|(place, _)| place.starts_with("function Healer"))
    );
    assert!(!is_read_only("ec2:TerminateInstances") && is_read_only("ec2:DescribeInstances"));
}
