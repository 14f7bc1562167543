//! `template.yaml`: each alarm routes to exactly its layer, and every IAM statement is
//! least-privilege.

mod member;
mod reach;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{Value, json};

use autoheal_core::{Layer, RuleSet};
use autoheal_tests::cfn::{ACCOUNT, PARTITION, REGION, Stack, as_list, evaluate, functions};
use autoheal_tests::iam::{Request, allowed, glob, request};
use autoheal_tests::{Emulator, create_queue, sample_event, template, workspace};

/// The stack name the patterns are instantiated with.
const STACK: &str = "autoheal";

/// Replaces `{"Fn::Sub": "...${AWS::StackName}..."}` by its value for `STACK`, and
/// `{"Ref": "AWS::AccountId"}` by the emulator's account.
fn substitute(value: &Value) -> Value {
    match value {
        Value::Object(map)
            if map.len() == 1 && map.get("Ref") == Some(&json!("AWS::AccountId")) =>
        {
            Value::from(ACCOUNT)
        }
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

/// Each layer's EventBridge pattern, with the stack name filled in.
fn layer_patterns(template: &Value) -> BTreeMap<Layer, Value> {
    let mut patterns = BTreeMap::new();
    for (name, function) in functions(template) {
        let binary = function["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .expect("Metadata.BuildProperties.Binary");
        // The detection function receives resource lifecycle events, never alarms.
        if binary == "autoheal-detection" {
            continue;
        }
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

/// The emulator's EventBridge with each layer's rule (its pattern from the template) and an
/// SQS queue per layer as the target, so a put event shows which layers it reached.
struct Router {
    // Kept alive for the clients below; dropping it stops the emulator.
    _emulator: Emulator,
    events: aws_sdk_eventbridge::Client,
    sqs: aws_sdk_sqs::Client,
    queues: BTreeMap<Layer, String>,
}

impl Router {
    async fn start() -> Self {
        let emulator = Emulator::start_with_eventbridge_arrays();
        let sdk = emulator.sdk().await;
        Self::with(emulator, &sdk).await
    }

    /// The same rules, patterns and targets on the event bus of another account (what a bus
    /// that accepts other accounts' events holds): its events carry that account.
    async fn start_in_another_account() -> Self {
        let emulator = Emulator::start_with_eventbridge_arrays();
        let sdk = emulator.sdk().await;
        let assumed = aws_sdk_sts::Client::new(&sdk)
            .assume_role()
            .role_arn(format!(
                "arn:aws:iam::{OTHER_ACCOUNT}:role/staging-deployer"
            ))
            .role_session_name("staging")
            .send()
            .await
            .expect("assume a role of the other account");
        let credentials = assumed.credentials().expect("credentials");
        let other = sdk
            .to_builder()
            .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(
                aws_sdk_dynamodb::config::Credentials::new(
                    credentials.access_key_id(),
                    credentials.secret_access_key(),
                    Some(credentials.session_token().to_owned()),
                    None,
                    "the other account",
                ),
            ))
            .build();
        Self::with(emulator, &other).await
    }

    async fn with(emulator: Emulator, sdk: &aws_config::SdkConfig) -> Self {
        let events = aws_sdk_eventbridge::Client::new(sdk);
        let sqs = aws_sdk_sqs::Client::new(sdk);
        let mut queues = BTreeMap::new();
        for (layer, pattern) in layer_patterns(&template()) {
            let (url, arn) = create_queue(sdk, &format!("{layer}-layer")).await;
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
        Self {
            _emulator: emulator,
            events,
            sqs,
            queues,
        }
    }

    /// The layers an event reaches, in layer order.
    async fn reached(&self, name: &str, event: &Value) -> Vec<Layer> {
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
        let put = self
            .events
            .put_events()
            .entries(entry)
            .send()
            .await
            .expect("put events");
        assert_eq!(put.failed_entry_count(), 0, "{name}");

        let mut reached = Vec::new();
        for (layer, url) in &self.queues {
            let received = self
                .sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .send()
                .await
                .expect("receive")
                .messages
                .unwrap_or_default();
            for message in &received {
                self.sqs
                    .delete_message()
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
        reached
    }
}

/// A namespace no layer routes, and an alarm name no rule's prefix starts.
const UNRELATED_NAMESPACE: &str = "Acme/Orders";
const UNRELATED_NAME: &str = "orders-api-degraded";

/// A single-metric alarm event (from a shipped sample) with the given name, metric and tags.
fn metric_alarm(
    name: &str,
    namespace: &str,
    metric: &str,
    dimensions: &[String],
    tags: Option<Value>,
) -> Value {
    let mut event = sample_event("ec2-instance-healing.alarm.json");
    event["detail"]["alarmName"] = json!(name);
    event["resources"] = json!([format!(
        "arn:aws:cloudwatch:us-east-1:123456789012:alarm:{name}"
    )]);
    let dimensions: serde_json::Map<String, Value> = dimensions
        .iter()
        .map(|d| (d.clone(), json!(format!("{}-1", d.to_lowercase()))))
        .collect();
    event["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"] =
        json!({ "namespace": namespace, "name": metric, "dimensions": dimensions });
    if let Some(tags) = tags {
        event["detail"]["alarmTags"] = tags;
        event["detail"]["alarmTagsStatus"] = json!("SUCCESS");
    }
    event
}

/// AWS's composite alarm sample with the given name and tags (a composite has no metrics).
fn composite_alarm(name: &str, tags: Option<Value>) -> Value {
    let mut event = sample_event("aws-samples/composite.json");
    event["detail"]["alarmName"] = json!(name);
    event["resources"] = json!([format!(
        "arn:aws:cloudwatch:us-east-1:123456789012:alarm:{name}"
    )]);
    assert!(event["detail"]["configuration"]["metrics"].is_null());
    if let Some(tags) = tags {
        event["detail"]["alarmTags"] = tags;
        event["detail"]["alarmTagsStatus"] = json!("SUCCESS");
    }
    event
}

/// The tags of an alarm that selects `rule` by tag (with an unrelated tag beside it).
fn rule_tag(rule: &str) -> Option<Value> {
    Some(json!({ "autoheal:rule": rule, "team": "orders" }))
}

/// Alarms that select a rule by the tag `autoheal:rule` only: a composite alarm and a metric
/// alarm on a namespace no layer routes, both with unrelated names, for every shipped rule.
fn tagged_alarms(rules: &RuleSet) -> Vec<(String, Value, Vec<Layer>)> {
    let mut cases = Vec::new();
    for rule in rules.rules() {
        cases.push((
            format!("a composite alarm tagged autoheal:rule={}", rule.name),
            composite_alarm("ServiceAggregatedAlarm", rule_tag(&rule.name)),
            vec![rule.layer],
        ));
        cases.push((
            format!(
                "a metric alarm on {UNRELATED_NAMESPACE} tagged autoheal:rule={}",
                rule.name
            ),
            metric_alarm(
                UNRELATED_NAME,
                UNRELATED_NAMESPACE,
                "Latency",
                &["Service".to_owned()],
                rule_tag(&rule.name),
            ),
            vec![rule.layer],
        ));
    }
    cases.push((
        "a composite alarm tagged with a rule no layer has".to_owned(),
        composite_alarm("ServiceAggregatedAlarm", rule_tag("no-such-healing")),
        Vec::new(),
    ));
    cases.push((
        "a composite alarm whose other tags only name a rule".to_owned(),
        composite_alarm(
            "ServiceAggregatedAlarm",
            Some(json!({ "rule": "ec2-instance-healing" })),
        ),
        Vec::new(),
    ));
    cases.push((
        "autoheal's own composite alarm, tagged with a rule".to_owned(),
        composite_alarm(&format!("{STACK}-health"), rule_tag("ec2-instance-healing")),
        Vec::new(),
    ));
    cases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sample_event_reaches_exactly_its_layer_and_nothing_else_reaches_any() {
    let router = Router::start().await;
    let rules = RuleSet::shipped().expect("shipped rules");

    let mut cases: Vec<(String, Value, Vec<Layer>)> = Vec::new();
    for file in event_files() {
        let event: Value =
            serde_json::from_str(&std::fs::read_to_string(&file).expect("read")).expect("JSON");
        let expected = expected_layer(&rules, &file, &event);
        cases.push((
            file.display().to_string(),
            event,
            expected.into_iter().collect(),
        ));
    }
    assert!(
        cases.len() >= 34,
        "every rule's ALARM and OK events, and AWS's samples"
    );
    cases.extend(
        self_alarms()
            .into_iter()
            .chain(unrelated_events())
            .map(|(name, event)| (name, event, Vec::new())),
    );
    cases.extend(tagged_alarms(&rules));
    // Rules overlap across layers: an alarm named for the data layer's rule on an RDS metric
    // reaches the platform layer too. The core selects one rule for both, and the layer it
    // does not belong to skips it.
    cases.push((
        "database-corruption-healing-… on AWS/RDS".to_owned(),
        metric_alarm(
            "database-corruption-healing-orders-db",
            "AWS/RDS",
            "ChecksumErrors",
            &["DBInstanceIdentifier".to_owned()],
            None,
        ),
        vec![Layer::Platform, Layer::Data],
    ));

    for (name, event, expected) in cases {
        assert_eq!(router.reached(&name, &event).await, expected, "{name}");
    }
}

/// An account the stack is not deployed in.
const OTHER_ACCOUNT: &str = "210987654321";

/// The layer patterns match this account's alarms only: the same sample events, put on the
/// bus of another account that holds the same rules, reach no layer (a staging alarm never
/// acts on a production resource of the same name); on this account's bus they do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_of_another_account_reaches_no_layer() {
    let ours = Router::start().await;
    let theirs = Router::start_in_another_account().await;
    let rules = RuleSet::shipped().expect("shipped rules");
    for rule in rules.rules() {
        let event = sample_event(&format!("{}.alarm.json", rule.name));
        let name = format!("{}'s sample", rule.name);
        assert_eq!(ours.reached(&name, &event).await, [rule.layer], "{name}");
        assert_eq!(
            theirs.reached(&name, &event).await,
            Vec::<Layer>::new(),
            "{name} from account {OTHER_ACCOUNT}"
        );
    }
}

/// Every way a rule can be selected — its namespace, each of its alarm-name prefixes, its
/// tag — reaches the rule's layer on its own, with the other two ways absent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_routing_path_of_every_rule_reaches_its_layer_on_its_own() {
    let router = Router::start().await;
    let rules = RuleSet::shipped().expect("shipped rules");
    let mut paths = 0;
    for rule in rules.rules() {
        let metric = rule
            .trigger
            .metrics
            .first()
            .map_or("Anything", String::as_str);
        if let Some(namespace) = &rule.trigger.namespace {
            let name = format!("{}: namespace {namespace}", rule.name);
            let event = metric_alarm(
                UNRELATED_NAME,
                namespace,
                metric,
                &rule.trigger.dimensions,
                None,
            );
            assert_eq!(router.reached(&name, &event).await, [rule.layer], "{name}");
            paths += 1;
        }
        for prefix in &rule.trigger.alarm_name_prefixes {
            let name = format!("{}: alarm-name prefix {prefix}", rule.name);
            let event = metric_alarm(
                &format!("{prefix}-orders"),
                UNRELATED_NAMESPACE,
                metric,
                &rule.trigger.dimensions,
                None,
            );
            assert_eq!(router.reached(&name, &event).await, [rule.layer], "{name}");
            paths += 1;
        }
        let name = format!("{}: tag autoheal:rule", rule.name);
        let event = metric_alarm(
            UNRELATED_NAME,
            UNRELATED_NAMESPACE,
            metric,
            &rule.trigger.dimensions,
            rule_tag(&rule.name),
        );
        assert_eq!(router.reached(&name, &event).await, [rule.layer], "{name}");
        paths += 1;
    }
    assert!(
        paths >= 2 * rules.rules().len(),
        "every rule has a tag path and a namespace or name path"
    );
}

/// Whether an IAM action only reads.
fn is_read_only(action: &str) -> bool {
    let verb = action.split(':').nth(1).unwrap_or(action);
    [
        "Describe", "Get", "List", "BatchGet", "Query", "Scan", "Lookup",
    ]
    .iter()
    .any(|prefix| verb.starts_with(prefix))
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

/// What is wrong with a set of policy statements: a wildcard or `NotAction` action, or a
/// mutating action allowed on every resource (`"*"`) without a condition.
fn policy_problems(statements: &[(String, Value)]) -> Vec<String> {
    let mut problems = Vec::new();
    for (place, statement) in statements {
        let actions: Vec<String> = as_list(&statement["Action"])
            .iter()
            .filter_map(|a| a.as_str().map(str::to_owned))
            .collect();
        if actions.is_empty() {
            problems.push(format!("{place}: no Action"));
        }
        if statement.get("NotAction").is_some() {
            problems.push(format!(
                "{place}: NotAction allows everything it does not name"
            ));
        }
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
    problems
}

#[test]
fn no_iam_statement_has_a_wildcard_action_or_an_unconditioned_mutation_on_every_resource() {
    let template = template();
    let statements = statements(&template);
    assert!(statements.len() >= 10, "the walk found the statements");
    let problems = policy_problems(&statements);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_iam_walk_catches_what_it_must() {
    let bad = json!({
        "Resources": {
            "Healer": {
                "Type": "AWS::Serverless::Function",
                "Properties": { "Policies": [ { "Statement": [
                    { "Sid": "Wildcard", "Effect": "Allow", "Action": "ec2:*",
                      "Resource": "arn:aws:ec2:*:*:instance/i-0123456789abcdef0" },
                    { "Sid": "Unconditioned", "Effect": "Allow", "Action": ["ec2:TerminateInstances"],
                      "Resource": "*" },
                    { "Sid": "Everything", "Effect": "Allow", "NotAction": "iam:*", "Resource": "*" },
                    { "Sid": "Conditioned", "Effect": "Allow", "Action": "ec2:RebootInstances",
                      "Resource": "*",
                      "Condition": { "StringEquals": { "aws:ResourceTag/autoheal:managed": "true" } } },
                    { "Sid": "Reads", "Effect": "Allow", "Action": "ec2:DescribeInstances", "Resource": "*" }
                ] } ] }
            },
            "Extra": {
                "Type": "AWS::IAM::ManagedPolicy",
                "Properties": { "PolicyDocument": { "Statement": [
                    { "Sid": "Delete", "Effect": "Allow", "Action": "rds:DeleteDBInstance", "Resource": ["*"] }
                ] } }
            }
        }
    });
    let found = statements(&bad);
    assert_eq!(found.len(), 6, "{found:#?}");
    let mut problems = policy_problems(&found);
    problems.sort();
    assert_eq!(
        problems,
        [
            "function Healer, statement Everything: NotAction allows everything it does not name",
            "function Healer, statement Everything: no Action",
            "function Healer, statement Unconditioned: `ec2:TerminateInstances` on Resource \"*\" without a condition",
            "function Healer, statement Wildcard: wildcard action `ec2:*`",
            "policy Extra, statement Delete: `rds:DeleteDBInstance` on Resource \"*\" without a condition",
        ]
    );
}

// ---------------------------------------------------------------------------------------
// Conditions and parameters: the template evaluated for given parameter values.

/// A function's property as deployed: its own, or else the one of `Globals.Function`.
fn function_property<'t>(template: &'t Value, function: &'t Value, property: &str) -> &'t Value {
    let own = &function["Properties"][property];
    if own.is_null() {
        &template["Globals"]["Function"][property]
    } else {
        own
    }
}

/// The rules' lease is checked against the functions' timeout (`FUNCTION_TIMEOUT_SECONDS`):
/// every function of the stack runs at most that long, so a claim never ends under a live
/// invocation.
#[test]
fn no_function_runs_longer_than_the_timeout_the_rules_lease_is_checked_against() {
    let template = template();
    for (name, function) in functions(&template) {
        let timeout = function_property(&template, function, "Timeout");
        let seconds = timeout
            .as_u64()
            .unwrap_or_else(|| panic!("{name}: a numeric Timeout, not {timeout}"));
        assert!(
            seconds <= autoheal_core::FUNCTION_TIMEOUT_SECONDS,
            "{name}: Timeout {seconds} s is longer than the {} s a rule's lease must cover",
            autoheal_core::FUNCTION_TIMEOUT_SECONDS
        );
    }
}

#[test]
fn reserved_concurrency_bounds_every_function_and_zero_means_no_reservation() {
    let template = template();
    let parameter = &template["Parameters"]["ReservedConcurrency"];
    let default = parameter["Default"]
        .as_u64()
        .or_else(|| parameter["Default"].as_str().and_then(|d| d.parse().ok()))
        .expect("ReservedConcurrency has a numeric default");
    assert!(
        (1..=10).contains(&default),
        "a small default bound, not {default}"
    );
    assert_eq!(
        parameter["MinValue"],
        json!(0),
        "0 is allowed: no reservation"
    );
    assert!(
        parameter["Description"]
            .as_str()
            .is_some_and(|d| d.contains('0')),
        "the description says what 0 means"
    );
    for (name, function) in functions(&template) {
        let reserved = function_property(&template, function, "ReservedConcurrentExecutions");
        assert!(
            !reserved.is_null(),
            "{name}: no ReservedConcurrentExecutions"
        );
        let at = |value: &str| {
            evaluate(
                &template,
                reserved,
                &BTreeMap::from([("ReservedConcurrency", value)]),
            )
        };
        let by_default = evaluate(&template, reserved, &BTreeMap::new());
        assert_eq!(by_default, Some(json!(default)), "{name}: the default");
        assert_eq!(at("3"), Some(json!("3")), "{name}: a chosen bound");
        // Reserved concurrency 0 would stop the function: 0 leaves the property out.
        assert_eq!(at("0"), None, "{name}: 0 means no reservation");
    }
}

// ---------------------------------------------------------------------------------------
// IAM: each function's effective policy, evaluated for concrete requests.

const KEY_ARN: &str = "arn:aws:kms:us-east-1:123456789012:key/notification-key";
const TOPIC_ARN: &str = "arn:aws:sns:us-east-1:123456789012:autoheal-NotificationTopic-1A2B3C";
const TABLE_ARN: &str = "arn:aws:dynamodb:us-east-1:123456789012:table/autoheal-StateTable-1A2B3C";
const SCHEDULE_GROUP: &str = "autoheal-follow-ups";
const SCHEDULER_ROLE_ARN: &str =
    "arn:aws:iam::123456789012:role/autoheal-FollowUpSchedulerRole-1A2B3C";
const DEAD_LETTER_QUEUE_ARN: &str =
    "arn:aws:sqs:us-east-1:123456789012:autoheal-DeadLetterQueue-1A2B3C";
const RESTART_DOCUMENT: &str = "autoheal-restart-process";

/// The stack these tests deploy: named `autoheal`, with its parameters' defaults.
fn reference_stack() -> Stack {
    Stack::new(&[
        ("NotificationTopic", TOPIC_ARN),
        ("NotificationKey.Arn", KEY_ARN),
        ("StateTable.Arn", TABLE_ARN),
        ("FollowUpScheduleGroup", SCHEDULE_GROUP),
        ("FollowUpSchedulerRole.Arn", SCHEDULER_ROLE_ARN),
        ("DeadLetterQueue.Arn", DEAD_LETTER_QUEUE_ARN),
        ("RestartProcessDocument", RESTART_DOCUMENT),
    ])
}

/// `node` with the intrinsics of policies filled in with the reference stack's values.
fn concrete(node: &Value) -> Value {
    reference_stack()
        .concrete(autoheal_tests::cfn::shared_template(), node)
        .unwrap_or(Value::Null)
}

/// Each function's statements as the reference stack deploys them.
fn function_statements(template: &Value) -> BTreeMap<String, Vec<Value>> {
    reference_stack().function_statements(template)
}

fn arn(service: &str, resource: &str) -> String {
    format!("arn:{PARTITION}:{service}:{REGION}:{ACCOUNT}:{resource}")
}

#[test]
fn the_iam_evaluator_follows_iams_rules() {
    let statements = vec![json!({
        "Effect": "Allow",
        "Action": ["ec2:CreateTags", "ec2:DeleteTags"],
        "Resource": "arn:aws:ec2:us-east-1:123456789012:instance/*",
        "Condition": {
            "ForAllValues:StringEquals": { "aws:TagKeys": ["autoheal:stop-start"] },
            "StringNotEqualsIgnoreCase": { "aws:ResourceTag/autoheal:disabled": "true" }
        }
    })];
    let instance = arn("ec2", "instance/i-1");
    let tag = |keys: &[&str]| {
        keys.iter()
            .fold(request("ec2:DeleteTags", &instance), |r, k| {
                r.with("aws:TagKeys", k)
            })
    };
    assert!(allowed(&statements, &tag(&["autoheal:stop-start"])));
    assert!(!allowed(
        &statements,
        &tag(&["autoheal:stop-start", "Name"])
    ));
    // ForAllValues over no keys holds: why the template also requires the keys to be present.
    assert!(allowed(&statements, &tag(&[])));
    assert!(!allowed(
        &statements,
        &tag(&["autoheal:stop-start"]).resource_tag("autoheal:disabled", "TRUE")
    ));
    assert!(!allowed(
        &statements,
        &request("ec2:DeleteTags", &arn("ec2", "volume/vol-1"))
            .with("aws:TagKeys", "autoheal:stop-start")
    ));
    assert!(!allowed(
        &statements,
        &request("ec2:TerminateInstances", &instance)
    ));
    assert!(glob(
        "arn:aws:rds:*:*:snapshot:autoheal-*",
        "arn:aws:rds:us-east-1:1:snapshot:autoheal-db-1"
    ));
    assert!(!glob(
        "arn:aws:rds:*:*:snapshot:autoheal-*",
        "arn:aws:rds:us-east-1:1:snapshot:manual-1"
    ));
    let tagging = vec![json!({
        "Effect": "Allow",
        "Action": "rds:AddTagsToResource",
        "Resource": "*",
        "Condition": { "StringEquals": { "aws:RequestTag/autoheal:managed": "true" } }
    })];
    let tag =
        |value: &str| request("rds:AddTagsToResource", "x").request_tag("autoheal:managed", value);
    assert!(allowed(&tagging, &tag("true")));
    assert!(!allowed(&tagging, &tag("false")));
    assert!(!allowed(&tagging, &request("rds:AddTagsToResource", "x")));
}

/// Each function may do what its actions need, and no more where it matters.
#[test]
fn each_function_may_do_what_its_actions_need_and_no_more() {
    let policies = function_statements(&template());
    let instance = arn("ec2", "instance/i-0123456789abcdef0");
    let volume = arn("ec2", "volume/vol-0123456789abcdef0");
    let snapshot = format!("arn:{PARTITION}:ec2:{REGION}::snapshot/snap-0123456789abcdef0");
    let group = arn(
        "autoscaling",
        "autoScalingGroup:0e1f:autoScalingGroupName/web",
    );
    let key = arn("kms", "key/1234abcd-12ab-34cd-56ef-1234567890ab");
    let rds_snapshot = |name: &str| arn("rds", &format!("snapshot:{name}"));
    let db = arn("rds", "db:orders-db");

    let (infrastructure, platform, application, data, network) = (
        "InfrastructureFunction",
        "PlatformFunction",
        "ApplicationFunction",
        "DataFunction",
        "NetworkFunction",
    );
    // (function, request, allowed?, why)
    #[rustfmt::skip]
    let cases: Vec<(&str, Request, bool, &str)> = vec![
        // Infrastructure: reboot, then stop/start; never relaunch or terminate.
        (infrastructure, request("ec2:RebootInstances", &instance), true, "reboot"),
        (infrastructure, request("ec2:StopInstances", &instance), true, "stop"),
        (infrastructure, request("ec2:StartInstances", &instance), true, "start"),
        (infrastructure, request("ec2:StopInstances", &instance).resource_tag("autoheal:disabled", "true"), false, "an opted-out instance"),
        (infrastructure, request("ec2:RebootInstances", &instance).resource_tag("autoheal:disabled", "TRUE"), false, "opt-out in capitals"),
        (infrastructure, request("ec2:DescribeInstanceStatus", "*"), true, "instance status"),
        (infrastructure, request("ec2:DescribeInstanceTypes", "*"), true, "instance types"),
        (infrastructure, request("ec2:DescribeInstanceAttribute", &instance), true, "stop protection"),
        (infrastructure, request("ec2:DescribeVolumeStatus", "*"), true, "volume status"),
        (infrastructure, request("ec2:DescribeVolumeAttribute", &volume), true, "AutoEnableIO"),
        (infrastructure, request("autoscaling:DescribeInstanceRefreshes", "*"), true, "instance refreshes"),
        (infrastructure, request("ec2:ModifyInstanceAttribute", &instance), false, "never lifts a person's stop protection"),
        (infrastructure, request("ec2:ModifyInstanceMaintenanceOptions", &instance), false, "never changes automatic recovery"),
        (infrastructure, request("autoscaling:ResumeProcesses", &group), false, "never resumes what a person suspended"),
        (infrastructure, request("autoscaling:SetInstanceProtection", &group), false, "never lifts scale-in protection"),
        (infrastructure, request("autoscaling:CancelInstanceRefresh", &group), false, "never cancels an instance refresh"),
        (infrastructure, request("ec2:RunInstances", &instance).request_tag("autoheal:replaces", "i-1"), false, "no relaunch"),
        (infrastructure, request("ec2:TerminateInstances", &instance), false, "no termination"),
        (infrastructure, request("ec2:AssociateAddress", &instance), false, "no Elastic IP move"),
        (infrastructure, request("iam:PassRole", &arn("iam", "role/web")), false, "no role passing"),
        (infrastructure, request("ec2:CreateTags", &instance).with("aws:TagKeys", "autoheal:stop-start"), true, "mark a stop/start"),
        (infrastructure, request("ec2:DeleteTags", &instance).with("aws:TagKeys", "autoheal:stop-start"), true, "clear the mark"),
        (infrastructure, request("ec2:CreateTags", &instance).with("aws:TagKeys", "Name"), false, "other instance tags"),
        (infrastructure, request("ec2:DeleteTags", &instance), false, "DeleteTags without keys deletes every tag"),
        (infrastructure, request("ec2:CreateTags", &instance).with("ec2:CreateAction", "RunInstances"), false, "no launch-time tagging"),
        (infrastructure, request("autoscaling:SetDesiredCapacity", &group), true, "revert lowers desired capacity"),
        (infrastructure, request("autoscaling:SetInstanceHealth", &group), true, "mark a member unhealthy"),
        (infrastructure, request("autoscaling:TerminateInstanceInAutoScalingGroup", &group), true, "replace a member"),
        (infrastructure, request("autoscaling:SetDesiredCapacity", &group).resource_tag("autoheal:disabled", "true"), false, "an opted-out group"),
        (infrastructure, request("autoscaling:CreateOrUpdateTags", &group).with("aws:TagKeys", "autoheal:scale-out"), true, "record a scale-out"),
        (infrastructure, request("autoscaling:CreateOrUpdateTags", &group).with("aws:TagKeys", "autoheal:disabled"), false, "opt a group in or out"),
        (infrastructure, request("autoscaling:CreateOrUpdateTags", &group).with("aws:TagKeys", "autoheal:scale-out").resource_tag("autoheal:disabled", "true"), false, "tag an opted-out group"),
        (infrastructure, request("ec2:CreateSnapshot", &volume), true, "snapshot a volume"),
        (infrastructure, request("ec2:CreateSnapshot", &snapshot), true, "the snapshot it creates"),
        (infrastructure, request("ec2:CreateTags", &snapshot).with("ec2:CreateAction", "CreateSnapshot").with("aws:TagKeys", "autoheal:managed").with("aws:TagKeys", "autoheal:snapshot-of"), true, "tag a snapshot at creation"),
        (infrastructure, request("ec2:CreateTags", &snapshot).with("aws:TagKeys", "autoheal:managed"), false, "tag an existing snapshot"),
        (infrastructure, request("ec2:DeleteSnapshot", &snapshot).resource_tag("autoheal:managed", "true"), true, "delete its own snapshot"),
        (infrastructure, request("ec2:DeleteSnapshot", &snapshot), false, "delete a snapshot it did not create"),
        (infrastructure, request("ec2:DeleteSnapshot", &snapshot).resource_tag("autoheal:managed", "false"), false, "delete a snapshot not marked as its own"),
        (infrastructure, request("ec2:DeleteVolume", &volume), false, "never delete a volume"),
        (infrastructure, request("ec2:EnableVolumeIO", &volume), true, "re-enable I/O EBS disabled"),
        (infrastructure, request("ec2:EnableVolumeIO", &volume).resource_tag("autoheal:disabled", "true"), false, "an opted-out volume"),
        (infrastructure, request("ec2:ModifyVolumeAttribute", &volume), false, "never changes AutoEnableIO"),
        (infrastructure, request("kms:CreateGrant", &key).via("ec2").with("kms:GrantIsForAWSResource", "true"), true, "EC2 holds a grant on a volume key"),
        (infrastructure, request("kms:CreateGrant", &key).via("ec2"), false, "a grant not for an AWS resource"),
        (infrastructure, request("kms:CreateGrant", &key).with("kms:GrantIsForAWSResource", "true"), false, "a grant not through EC2"),
        (infrastructure, request("kms:Decrypt", &key).via("ec2"), true, "decrypt through EC2"),
        (infrastructure, request("kms:GenerateDataKeyWithoutPlaintext", &key).via("ec2"), true, "a volume data key"),
        (infrastructure, request("kms:ReEncryptFrom", &key).via("ec2"), true, "re-encrypt from"),
        (infrastructure, request("kms:ReEncryptTo", &key).via("ec2"), true, "re-encrypt to"),
        (infrastructure, request("kms:DescribeKey", &key).via("ec2"), true, "describe the key"),
        (infrastructure, request("kms:Decrypt", &key), false, "decrypt directly"),
        // Platform: the reboot snapshot is autoheal's own; retention deletes only those.
        (platform, request("rds:CreateDBSnapshot", &db), true, "snapshot before a reboot"),
        (platform, request("rds:CreateDBSnapshot", &rds_snapshot("autoheal-orders-db-1a2b")), true, "the snapshot it names"),
        (platform, request("rds:AddTagsToResource", &rds_snapshot("autoheal-orders-db-1a2b")).request_tag("autoheal:managed", "true").request_tag("autoheal:snapshot-of", "orders-db").request_tag("autoheal:rule", "rds-instance-healing"), true, "tag its snapshot at creation"),
        (platform, request("rds:AddTagsToResource", &rds_snapshot("autoheal-orders-db-1a2b")).request_tag("autoheal:snapshot-of", "orders-db"), false, "tags without the managed mark"),
        (platform, request("rds:AddTagsToResource", &db).request_tag("autoheal:managed", "true"), false, "tag a database"),
        (platform, request("rds:DescribeDBSnapshots", &rds_snapshot("autoheal-orders-db-1a2b")), true, "list snapshots"),
        (platform, request("rds:ListTagsForResource", &rds_snapshot("autoheal-orders-db-1a2b")), false, "unused: the describe calls answer tags"),
        (platform, request("rds:DeleteDBSnapshot", &rds_snapshot("autoheal-orders-db-1a2b")).resource_tag("autoheal:managed", "true"), true, "delete its own snapshot"),
        (platform, request("rds:DeleteDBSnapshot", &rds_snapshot("autoheal-orders-db-1a2b")), false, "an untagged snapshot"),
        (platform, request("rds:DeleteDBSnapshot", &rds_snapshot("nightly-orders-db")).resource_tag("autoheal:managed", "true"), false, "a snapshot not named as autoheal's"),
        (platform, request("rds:RebootDBInstance", &db).resource_tag("autoheal:disabled", "true"), false, "an opted-out database"),
        // Data: the verification backup likewise.
        (data, request("rds:DeleteDBSnapshot", &rds_snapshot("autoheal-verify-orders-db-1a2b")).resource_tag("autoheal:managed", "true"), true, "delete its own backup"),
        (data, request("rds:DeleteDBSnapshot", &rds_snapshot("autoheal-verify-orders-db-1a2b")), false, "an untagged backup"),
        (data, request("rds:AddTagsToResource", &rds_snapshot("autoheal-verify-orders-db-1a2b")).request_tag("autoheal:incident", "i-1").request_tag("autoheal:managed", "true").request_tag("autoheal:snapshot-of", "orders-db").request_tag("autoheal:backup-of", "orders-db").request_tag("autoheal:rule", "backup-verification-healing"), true, "tag its backup at creation"),
        (data, request("rds:DescribeDBSnapshots", &rds_snapshot("autoheal-verify-orders-db-1a2b")), true, "list backups"),
        (data, request("rds:ListTagsForResource", &rds_snapshot("autoheal-verify-orders-db-1a2b")), false, "unused: the describe calls answer tags"),
        (data, request("elasticache:ListTagsForResource", &arn("elasticache", "replicationgroup:sessions")), true, "a replication group's opt-out"),
        // Application: only the restart document, only on instances that did not opt out.
        (application, request("ssm:SendCommand", &arn("ssm", &format!("document/{RESTART_DOCUMENT}"))), true, "the stack's restart document"),
        (application, request("ssm:SendCommand", &format!("arn:{PARTITION}:ssm:{REGION}::document/AWS-RunShellScript")), false, "a shell: never"),
        (application, request("ssm:SendCommand", &instance), true, "on an instance"),
        (application, request("ssm:SendCommand", &instance).resource_tag("autoheal:disabled", "true"), false, "on an opted-out instance"),
        (application, request("ssm:SendCommand", &arn("ssm", "document/AWS-RunPowerShellScript")), false, "another document"),
        // Application: the pools of a database are listed under their path, nothing else.
        (application, request("ssm:GetParametersByPath", &arn("ssm", "parameter/autoheal")), true, "list the pools"),
        (application, request("ssm:GetParametersByPath", &arn("ssm", "parameter/prod/db")), false, "another application's parameters"),
        (application, request("ssm:PutParameter", &arn("ssm", "parameter/autoheal/payments-api/connection-pool")), true, "resize a pool"),
        (application, request("ssm:PutParameter", &arn("ssm", "parameter/autoheal/payments-api/connection-pool")).resource_tag("autoheal:disabled", "true"), false, "an opted-out pool"),
        (application, request("ssm:ListCommands", "*"), true, "every page of an instance's commands"),
        // Network: the DNS action reads the alternative's health; a record is replaced as read
        // (DELETE of it as read and CREATE in one batch), never overwritten blind or deleted.
        (network, request("route53:GetHealthCheckStatus", "arn:aws:route53:::healthcheck/0b1c"), true, "health check status"),
        (network, request("route53:ChangeResourceRecordSets", "arn:aws:route53:::hostedzone/Z1").with("route53:ChangeResourceRecordSetsActions", "DELETE").with("route53:ChangeResourceRecordSetsActions", "CREATE").with("route53:ChangeResourceRecordSetsRecordTypes", "A"), true, "reweight or restore as read"),
        (network, request("route53:ChangeResourceRecordSets", "arn:aws:route53:::hostedzone/Z1").with("route53:ChangeResourceRecordSetsActions", "UPSERT"), false, "overwrite a record blind"),
        (network, request("route53:ChangeResourceRecordSets", "arn:aws:route53:::hostedzone/Z1").with("route53:ChangeResourceRecordSetsActions", "DELETE"), false, "delete a record"),
        (network, request("route53:ChangeResourceRecordSets", "arn:aws:route53:::hostedzone/Z1").with("route53:ChangeResourceRecordSetsActions", "CREATE"), false, "only add a record"),
        (network, request("route53:ChangeResourceRecordSets", "arn:aws:route53:::hostedzone/Z1").with("route53:ChangeResourceRecordSetsActions", "DELETE").with("route53:ChangeResourceRecordSetsActions", "CREATE").with("route53:ChangeResourceRecordSetsActions", "UPSERT"), false, "an UPSERT beside a replacement"),
        (network, request("ec2:ReplaceRoute", &arn("ec2", "route-table/rtb-1")), true, "move or restore a route"),
        // Network: who owns a failing target, and a standby's headroom, are only read.
        (network, request("ec2:DescribeInstances", "*"), true, "a target's instance"),
        (network, request("autoscaling:DescribeAutoScalingInstances", "*"), true, "a target's group"),
        (network, request("autoscaling:DescribeAutoScalingGroups", "*"), true, "the group's health checks"),
        (network, request("ecs:ListClusters", "*"), true, "the clusters"),
        (network, request("ecs:ListServices", "*"), true, "their services"),
        (network, request("ecs:DescribeServices", &arn("ecs", "service/prod/orders-api")), true, "a service's target groups"),
        (network, request("ecs:UpdateService", &arn("ecs", "service/prod/orders-api")), false, "never change the owner"),
        (network, request("autoscaling:SetInstanceHealth", &group), false, "never mark a member unhealthy"),
        (network, request("cloudwatch:GetMetricData", "*"), true, "NAT gateway metrics"),
        (network, request("elasticloadbalancing:RegisterTargets", &arn("elasticloadbalancing", "targetgroup/web/0123")), false, "never register a target"),
    ];
    let mut wrong = Vec::new();
    for (function, request, expected, why) in &cases {
        let statements = policies
            .get(*function)
            .unwrap_or_else(|| panic!("no {function}"));
        if allowed(statements, request) != *expected {
            wrong.push(format!(
                "{function}: {} on {} should be {} ({why})",
                request.action,
                request.resource,
                if *expected { "allowed" } else { "denied" }
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The platform and data functions may read what their actions wait for (the alias's history,
/// a failover's events, a function that is gone), record a rollback on its function and no
/// other tag, and change backup settings only on instances that did not opt out.
#[test]
fn the_platform_and_data_functions_read_what_they_wait_for_and_record_only_a_rollback() {
    let policies = function_statements(&template());
    let function = arn("lambda", "function:orders-processor");
    let alias = arn("lambda", "function:orders-processor:live");
    let db = arn("rds", "db:orders-db");
    let rollback = || {
        request("lambda:TagResource", &function).request_tag("autoheal:rollback:live", "3 1 1 i")
    };
    let (platform, data) = ("PlatformFunction", "DataFunction");
    // (function, request, allowed?, why)
    #[rustfmt::skip]
    let cases: Vec<(&str, Request, bool, &str)> = vec![
        (platform, request("cloudtrail:LookupEvents", "*"), true, "the alias's history"),
        (platform, request("lambda:GetAlias", &alias), true, "the alias"),
        (platform, request("lambda:GetFunctionConfiguration", &function), true, "a function that is gone"),
        (platform, request("lambda:ListVersionsByFunction", &function), false, "versions are not read: only the alias's history says what was live"),
        (platform, rollback(), true, "record a rollback"),
        (platform, rollback().request_tag("team", "orders"), false, "another tag in the same call"),
        (platform, request("lambda:TagResource", &function).request_tag("autoheal:disabled", "false"), false, "opt a function back in"),
        (platform, request("lambda:TagResource", &function), false, "TagResource naming no key"),
        (platform, rollback().resource_tag("autoheal:disabled", "true"), false, "an opted-out function"),
        (platform, request("lambda:UpdateAlias", &alias), true, "the rollback"),
        (platform, request("lambda:UpdateAlias", &alias).resource_tag("autoheal:disabled", "true"), false, "an opted-out function's alias"),
        (platform, request("rds:DescribeEvents", "*"), true, "a failover's events"),
        (platform, request("ecs:DescribeServices", &arn("ecs", "service/prod-cluster/orders-api")), true, "a service's deployments"),
        (data, request("cloudtrail:LookupEvents", "*"), false, "the data layer reads no history"),
        (data, request("rds:DescribeDBInstances", &db), true, "status and pending modifications"),
        (data, request("elasticache:DescribeCacheClusters", &arn("elasticache", "cluster:sessions")), true, "a cluster's status"),
        (data, request("rds:ModifyDBInstance", &db), true, "the backup policy"),
        (data, request("rds:ModifyDBInstance", &db).resource_tag("autoheal:disabled", "true"), false, "an opted-out instance"),
    ];
    let mut wrong = Vec::new();
    for (function, request, expected, why) in &cases {
        let statements = policies
            .get(*function)
            .unwrap_or_else(|| panic!("no {function}"));
        if allowed(statements, request) != *expected {
            wrong.push(format!(
                "{function}: {} on {} should be {} ({why})",
                request.action,
                request.resource,
                if *expected { "allowed" } else { "denied" }
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The topic's key is the stack's own, CloudWatch and EventBridge may use it to publish, and
/// every function may use it through SNS only.
#[test]
fn the_topic_is_encrypted_with_the_stacks_key_which_alarms_and_every_function_can_use() {
    let template = template();
    let resources = &template["Resources"];
    let topic = &resources["NotificationTopic"]["Properties"];
    let key_ref = &topic["KmsMasterKeyId"];
    let key_name = key_ref["Fn::GetAtt"][0]
        .as_str()
        .or_else(|| key_ref["Ref"].as_str())
        .unwrap_or_else(|| panic!("the topic's key is not a key of the stack: {key_ref}"));
    let key = &resources[key_name];
    assert_eq!(key["Type"], "AWS::KMS::Key");
    assert_eq!(
        key["Properties"]["EnableKeyRotation"],
        json!(true),
        "rotation on"
    );
    assert!(
        resources
            .as_object()
            .expect("resources")
            .values()
            .any(|r| r["Type"] == "AWS::KMS::Alias"
                && r["Properties"]["TargetKeyId"] == json!({ "Ref": key_name })),
        "the key has an alias"
    );

    // The key policy, for a principal.
    let key_policy = as_list(&concrete(&key["Properties"]["KeyPolicy"]["Statement"]));
    let of = |principal: &str| -> Vec<Value> {
        key_policy
            .iter()
            .filter(|s| {
                let p = &s["Principal"];
                as_list(&p["Service"])
                    .iter()
                    .chain(as_list(&p["AWS"]).iter())
                    .any(|x| x == principal)
            })
            .cloned()
            .collect()
    };
    let root = format!("arn:{PARTITION}:iam::{ACCOUNT}:root");
    assert!(
        allowed(&of(&root), &request("kms:PutKeyPolicy", "*")),
        "the account administers the key"
    );
    let cloudwatch = of("cloudwatch.amazonaws.com");
    let events = of("events.amazonaws.com");
    for action in ["kms:GenerateDataKey", "kms:Decrypt"] {
        let from = |account: &str| request(action, "*").with("aws:SourceAccount", account);
        assert!(allowed(&cloudwatch, &from(ACCOUNT)), "CloudWatch: {action}");
        assert!(
            !allowed(&cloudwatch, &from("210987654321")),
            "CloudWatch on behalf of another account: {action}"
        );
        // EventBridge's request carries no source account for an encrypted topic.
        assert!(
            allowed(&events, &request(action, "*")),
            "EventBridge: {action}"
        );
        assert!(!allowed(
            &cloudwatch,
            &request("kms:ScheduleKeyDeletion", "*")
        ));
    }

    for (function, statements) in function_statements(&template) {
        // The detection function writes alarms and publishes nothing.
        if function == "DetectionFunction" {
            continue;
        }
        assert!(
            allowed(&statements, &request("sns:Publish", TOPIC_ARN)),
            "{function}: publish"
        );
        // The closed loop: follow-ups in the stack's group, with the scheduler's own role.
        let schedule = |group: &str| {
            arn(
                "scheduler",
                &format!("schedule/{group}/autoheal-0123456789abcdef-1"),
            )
        };
        let cases = [
            (
                request("scheduler:CreateSchedule", &schedule(SCHEDULE_GROUP)),
                true,
                "schedule a follow-up",
            ),
            (
                request("scheduler:CreateSchedule", &schedule("default")),
                false,
                "schedule in another group",
            ),
            (
                request("scheduler:DeleteSchedule", &schedule(SCHEDULE_GROUP)),
                false,
                "delete a schedule (they delete themselves)",
            ),
            (
                request("iam:PassRole", SCHEDULER_ROLE_ARN)
                    .with("iam:PassedToService", "scheduler.amazonaws.com"),
                true,
                "hand the scheduler its role",
            ),
            (
                request("iam:PassRole", SCHEDULER_ROLE_ARN)
                    .with("iam:PassedToService", "lambda.amazonaws.com"),
                false,
                "the role to another service",
            ),
            (
                request("iam:PassRole", &arn("iam", "role/web"))
                    .with("iam:PassedToService", "scheduler.amazonaws.com"),
                false,
                "another role",
            ),
            (
                request(
                    "cloudwatch:DescribeAlarms",
                    &arn("cloudwatch", "alarm:web-01-status"),
                ),
                true,
                "read an alarm back",
            ),
            (
                request(
                    "cloudwatch:SetAlarmState",
                    &arn("cloudwatch", "alarm:web-01-status"),
                ),
                false,
                "change an alarm",
            ),
        ];
        for (request, expected, why) in cases {
            assert_eq!(
                allowed(&statements, &request),
                expected,
                "{function}: {why}"
            );
        }
        for action in ["kms:GenerateDataKey", "kms:Decrypt"] {
            assert!(
                allowed(&statements, &request(action, KEY_ARN).via("sns")),
                "{function}: {action} through SNS"
            );
            assert!(
                !allowed(&statements, &request(action, KEY_ARN)),
                "{function}: {action} directly"
            );
        }
    }
}

/// Every checkov finding the template skips says why, in the resource's Metadata.
#[test]
fn every_checkov_skip_gives_its_reason() {
    let template = template();
    let mut skips = 0;
    for (name, resource) in template["Resources"].as_object().expect("Resources") {
        for skip in as_list(&resource["Metadata"]["checkov"]["skip"]) {
            let id = skip["id"].as_str().unwrap_or_default();
            assert!(id.starts_with("CKV_"), "{name}: skip of {skip}");
            let reason = skip["comment"].as_str().unwrap_or_default();
            assert!(reason.len() > 20, "{name}: {id} skipped without a reason");
            skips += 1;
        }
    }
    assert!(skips > 0, "the walk found the skips");
}

/// EventBridge Scheduler delivers follow-ups with a role that may invoke this stack's five
/// functions and nothing else, and that only the scheduler of this account can assume.
#[test]
fn the_scheduler_may_invoke_this_stacks_functions_and_nothing_else() {
    let template = template();
    let role = &template["Resources"]["FollowUpSchedulerRole"]["Properties"];
    let statements: Vec<Value> = as_list(&role["Policies"])
        .iter()
        .flat_map(|policy| as_list(&concrete(&policy["PolicyDocument"]["Statement"])))
        .collect();
    let function = |name: &str| arn("lambda", &format!("function:{name}"));
    for layer in [
        "infrastructure",
        "platform",
        "application",
        "data",
        "network",
    ] {
        let target = function(&format!("{STACK}-{layer}"));
        assert!(
            allowed(&statements, &request("lambda:InvokeFunction", &target)),
            "{layer}"
        );
        assert!(
            !allowed(&statements, &request("lambda:UpdateFunctionCode", &target)),
            "{layer}: only invoke"
        );
    }
    assert!(!allowed(
        &statements,
        &request("lambda:InvokeFunction", &function("payments"))
    ));
    let trust = as_list(&concrete(&role["AssumeRolePolicyDocument"]["Statement"]));
    assert_eq!(trust.len(), 1, "{trust:?}");
    assert_eq!(trust[0]["Principal"]["Service"], "scheduler.amazonaws.com");
    assert_eq!(
        trust[0]["Condition"]["StringEquals"]["aws:SourceAccount"],
        ACCOUNT
    );
    // Only this stack's schedule group's schedules: not another group's, not another stack's.
    assert_eq!(
        trust[0]["Condition"]["ArnEquals"]["aws:SourceArn"],
        format!("arn:{PARTITION}:scheduler:{REGION}:{ACCOUNT}:schedule-group/{SCHEDULE_GROUP}")
    );
}

/// The detection function reads everywhere, and writes only alarms named after a shipped
/// rule that carry `autoheal:managed=true`, notifying at most the stack's topic.
#[test]
fn the_detection_function_writes_only_its_own_alarms() {
    let policies = function_statements(&template());
    let statements = &policies["DetectionFunction"];
    let alarm = |name: &str| arn("cloudwatch", &format!("alarm:{name}"));
    let ours = alarm("ec2-instance-healing-i-0123456789abcdef0");
    let theirs = alarm("web-01-status-check");
    let put = |resource: &str| {
        request("cloudwatch:PutMetricAlarm", resource).request_tag("autoheal:managed", "true")
    };
    #[rustfmt::skip]
    let cases: Vec<(Request, bool, &str)> = vec![
        (put(&ours), true, "create or update its own alarm"),
        (put(&ours).with("cloudwatch:AlarmActions", TOPIC_ARN), true, "notifying the stack's topic"),
        (put(&ours).with("cloudwatch:AlarmActions", "arn:aws:automate:us-east-1:ec2:terminate"), false, "an EC2 action"),
        (request("cloudwatch:PutMetricAlarm", &ours), false, "without the managed tag"),
        (put(&theirs), false, "an alarm not named after a rule"),
        (put(&alarm("autoheal-platform-errors")), false, "the stack's own alarms"),
        (request("cloudwatch:DeleteAlarms", &ours).resource_tag("autoheal:managed", "true"), true, "delete its own"),
        (request("cloudwatch:DeleteAlarms", &ours), false, "delete an untagged alarm of a rule's name"),
        (request("cloudwatch:DeleteAlarms", &theirs).resource_tag("autoheal:managed", "true"), false, "delete another alarm"),
        (request("cloudwatch:TagResource", &ours).resource_tag("autoheal:managed", "true"), true, "retag its own"),
        (request("cloudwatch:TagResource", &theirs), false, "tag another alarm"),
        (request("cloudwatch:DescribeAlarms", &theirs), true, "read alarms"),
        (request("cloudwatch:ListMetrics", "*"), true, "find application metrics"),
        (request("cloudwatch:ListTagsForResource", &theirs), true, "read alarm tags"),
        (request("ec2:DescribeInstances", "*"), true, "list instances"),
        (request("autoscaling:DescribeAutoScalingGroups", "*"), true, "list groups"),
        (request("ecs:DescribeServices", &arn("ecs", "service/prod/api")), true, "describe services"),
        (request("lambda:GetAlias", &arn("lambda", "function:orders")), true, "find the alias"),
        (request("rds:DescribeDBInstances", &arn("rds", "db:orders-db")), true, "list databases"),
        (request("elasticache:DescribeCacheClusters", &arn("elasticache", "cluster:sessions")), true, "list caches"),
        (request("elasticloadbalancing:DescribeTargetGroups", "*"), true, "list target groups"),
        (request("route53:ListHealthChecks", "*"), true, "list health checks"),
        (request("ec2:TerminateInstances", &arn("ec2", "instance/i-0123456789abcdef0")), false, "change a resource"),
        (request("cloudwatch:SetAlarmState", &ours), false, "set an alarm's state"),
        (request("sns:Publish", TOPIC_ARN), false, "publish"),
    ];
    for (request, expected, why) in cases {
        assert_eq!(
            allowed(statements, &request),
            expected,
            "{why}: {request:?}"
        );
    }
}

/// Every alarm autoheal creates, turned into its state-change event, goes through the
/// template's patterns to exactly its rule's layer and selects its rule there: the loop from
/// detection to healing is closed for every shipped rule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_alarm_autoheal_creates_reaches_exactly_its_rules_layer_and_selects_it() {
    use autoheal_core::policy::detection::desired::desired_alarm;
    use autoheal_core::policy::detection::event::{as_event, state_change_event};
    use autoheal_core::policy::detection::target::Target;
    use autoheal_core::policy::resolve::{Selection, select};

    let router = Router::start().await;
    let rules = RuleSet::shipped().expect("shipped rules");
    for rule in rules.rules() {
        let sample = sample_event(&format!("{}.alarm.json", rule.name));
        let metric = &sample["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"];
        let spec = rule
            .alarm
            .as_ref()
            .expect("every shipped rule has an alarm");
        let mut dimensions: BTreeMap<String, String> = BTreeMap::new();
        for name in rule.alarm_dimensions().expect("dimensions") {
            let value = metric["dimensions"][&name]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| {
                    format!(
                        "{}:live",
                        metric["dimensions"]["FunctionName"].as_str().unwrap_or("x")
                    )
                });
            dimensions.insert(name, value);
        }
        let namespace = spec
            .namespace
            .clone()
            .unwrap_or_else(|| metric["namespace"].as_str().expect("namespace").to_owned());
        let resource = dimensions
            .get(rule.resource.dimension.as_deref().unwrap_or("-"))
            .cloned()
            .unwrap_or_else(|| "resource".to_owned());
        let target = Target {
            rule: rule.name.clone(),
            resource,
            namespace,
            dimensions,
        };
        let desired = desired_alarm(rule, &target, &[]).expect("desired");
        let arn = format!(
            "arn:aws:cloudwatch:us-east-1:123456789012:alarm:{}",
            desired.alarm.name
        );
        for tags in [None, Some(&desired.tags)] {
            let name = format!("{} (tags carried: {})", desired.alarm.name, tags.is_some());
            let event = state_change_event(&desired.alarm, &arn, None, tags);
            assert_eq!(router.reached(&name, &event).await, [rule.layer], "{name}");
            let parsed = as_event(&desired.alarm, &arn, None, tags).expect("event");
            match select(&rules, &parsed, rule.layer) {
                Selection::Matched { rule: selected, .. } => {
                    assert_eq!(selected.name, rule.name, "{name}")
                }
                other => panic!("{name}: {other:?}"),
            }
        }
    }
}

#[test]
fn the_functions_are_built_from_the_root_with_their_own_features_only() {
    // `sam build` runs `cargo lambda build --bin <Binary>` in the function's CodeUri. At the
    // workspace's root, Cargo builds the default members, unifying their features: those
    // must be the six functions and their libraries, so that no other member (the command
    // line's tokio and aws-config features) is built into them.
    let (default_members, function_packages) = function_packages();
    assert_eq!(function_packages.len(), 6, "five layers and detection");
    // The libraries: the core, the adapters, and the C math each release binary defines.
    let libraries = ["shared/core", "shared/aws", "functions/c-math"];
    let mut expected: Vec<&str> = libraries
        .into_iter()
        .chain(function_packages.iter().map(|(member, _)| member.as_str()))
        .collect();
    let mut found: Vec<&str> = default_members.iter().map(String::as_str).collect();
    expected.sort_unstable();
    found.sort_unstable();
    assert_eq!(
        found, expected,
        "the default members: the functions and their libraries only"
    );
}

#[test]
fn every_function_is_linked_for_lambda_by_the_release_link_script() {
    // The script links a release `bootstrap` without position independence or unwind tables
    // (1.5 MB of each); a function package without it would be deployed with both.
    let script = workspace().join("functions/release-link/build.rs");
    assert!(script.is_file(), "{}", script.display());
    let (_, function_packages) = function_packages();
    for (member, manifest) in function_packages {
        let build = manifest["package"]
            .get("build")
            .and_then(toml::Value::as_str);
        let linked_by = build.map(|build| workspace().join(&member).join(build));
        assert_eq!(
            linked_by.map(|path| path.canonicalize().expect("the build script")),
            Some(script.canonicalize().expect("the script")),
            "{member}: package.build"
        );
    }
}

#[test]
fn sam_build_builds_every_function_in_its_first_cargo_invocation() {
    // `sam build` builds one function per `cargo lambda build --bin <function>`, each run
    // holding the target directory's lock through its link; `bins` makes the first one build
    // all six (their links two at a time), which a cold build's time depends on.
    let manifest = std::fs::read_to_string(workspace().join("Cargo.toml")).expect("Cargo.toml");
    let manifest: toml::Table = manifest.parse().expect("a Cargo manifest");
    let bins = manifest
        .get("workspace")
        .and_then(|workspace| workspace.get("metadata"))
        .and_then(|metadata| metadata.get("lambda"))
        .and_then(|lambda| lambda.get("build"))
        .and_then(|build| build.get("bins"))
        .and_then(toml::Value::as_bool);
    assert_eq!(bins, Some(true), "[workspace.metadata.lambda.build] bins");
    let template = template();
    for (name, function) in functions(&template) {
        assert_eq!(
            function["Metadata"]["BuildMethod"].as_str(),
            Some("rust-cargolambda"),
            "{name}: built by cargo lambda, which reads the workspace's metadata"
        );
    }
    // Every function's binary is a default member's (`function_packages` fails otherwise), so
    // the first run builds them all; and the default members build no other binary, which
    // every `sam build` would then build and link too. Cargo's own view of the targets.
    function_packages();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let metadata = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .current_dir(workspace())
        .output()
        .expect("cargo metadata");
    assert!(metadata.status.success(), "cargo metadata: {metadata:?}");
    let metadata: serde_json::Value =
        serde_json::from_slice(&metadata.stdout).expect("cargo metadata's JSON");
    let default_members = metadata["workspace_default_members"]
        .as_array()
        .expect("workspace_default_members");
    let mut built: Vec<String> = metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter(|package| default_members.contains(&package["id"]))
        .flat_map(|package| package["targets"].as_array().expect("targets"))
        .filter(|target| {
            target["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|kind| kind == "bin"))
        })
        .map(|target| target["name"].as_str().expect("a target's name").to_owned())
        .collect();
    let mut functions: Vec<String> = functions(&template)
        .iter()
        .map(|(_, function)| {
            function["Metadata"]["BuildProperties"]["Binary"]
                .as_str()
                .expect("Metadata.BuildProperties.Binary")
                .to_owned()
        })
        .collect();
    built.sort();
    functions.sort();
    assert_eq!(built, functions, "the default members' binaries");
}

#[test]
fn the_release_link_lays_out_a_profiled_start_up_path() {
    // functions/release-link/hot-functions.txt is written by bench/hot_functions.py from
    // profiled runs; the link places each listed function's section first. A name the linker
    // script could not hold would be left out (with a warning in every release build), and a
    // list from a run that never reached the handler would lay out nothing that matters.
    let path = workspace().join("functions/release-link/hot-functions.txt");
    let list = std::fs::read_to_string(&path).expect("hot-functions.txt");
    let names: Vec<&str> = list
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect();
    for name in &names {
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.$".contains(&b)),
            "{name}: only what a linker script's pattern holds"
        );
        // Fat LTO numbers its local copies of a function (`.110`) again at any change: the
        // list names them up to the dot.
        assert!(
            !name
                .rsplit_once('.')
                .is_some_and(
                    |(_, number)| number.bytes().all(|b| b.is_ascii_digit()) && !number.is_empty()
                ),
            "{name}: a local copy's number, which the next build changes"
        );
        if name.starts_with("_ZN") && !name.ends_with("17h") {
            // A generic function's instance, hash and all (`17h`, 16 hexadecimal digits, `E`,
            // and a number where fat LTO renamed a local copy).
            let hashed = name
                .rsplit_once("17h")
                .map(|(_, hash)| hash.split_once('.').map_or(hash, |(hash, _)| hash));
            assert!(
                hashed.is_some_and(|hash| hash.len() == 17
                    && hash.ends_with('E')
                    && hash[..16].bytes().all(|b| b.is_ascii_hexdigit())),
                "{name}: a Rust symbol up to its hash, or whole"
            );
        }
    }
    assert!(
        names.windows(2).all(|pair| pair[0] < pair[1]),
        "sorted, each once (the generator's output: a diff shows what a profile changed)"
    );
    // What runs before and at a first event: the runtime's loop, a layer's healer, the
    // engine's decision, an SDK request signed and sent.
    for part in [
        "14lambda_runtime",
        "23autoheal_infrastructure",
        "13autoheal_core",
        "9aws_sigv4",
        "18aws_smithy_runtime",
    ] {
        assert!(
            names.iter().any(|name| name.contains(part)),
            "no function of {part} in the list"
        );
    }
}

#[test]
fn every_function_has_the_order_of_its_code_at_the_link_on_both_architectures() {
    // functions/release-link/order/<arch>/<package>.txt is written by bench/link_order.py
    // from the linker's balanced partitioning of each function's code; the build script gives
    // the link one section per line. A function without one would be linked sorted by name
    // (its zip 4% larger), and a line the script could not hold would be left out silently.
    let (_, function_packages) = function_packages();
    for arch in ["x86_64", "arm64"] {
        for (member, manifest) in &function_packages {
            let package = manifest["package"]["name"].as_str().expect("package.name");
            let path = workspace()
                .join("functions/release-link/order")
                .join(arch)
                .join(format!("{package}.txt"));
            let list = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{member}: {}: {e}", path.display()));
            let mut parts: Vec<&str> = Vec::new();
            let mut seen = std::collections::BTreeSet::new();
            let mut sections = 0;
            for line in list.lines().map(str::trim) {
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                if line == "[hot]" || line == "[rest]" {
                    parts.push(line);
                    continue;
                }
                assert!(!parts.is_empty(), "{}: {line} before [hot]", path.display());
                assert!(seen.insert(line), "{}: {line} twice", path.display());
                sections += 1;
                assert!(
                    line.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_.$".contains(&b)),
                    "{}: {line}: only what a linker script's pattern holds",
                    path.display()
                );
                if let Some(hash) = line.strip_prefix("17h") {
                    // A legacy-mangled symbol's hash: 16 hexadecimal digits and `E`, with a
                    // dot after it for fat LTO's numbered copies.
                    let hash = hash.strip_suffix('.').unwrap_or(hash);
                    assert!(
                        hash.len() == 17
                            && hash.ends_with('E')
                            && hash[..16].bytes().all(|b| b.is_ascii_hexdigit()),
                        "{}: {line}: a symbol's hash",
                        path.display()
                    );
                } else {
                    assert!(
                        !line
                            .rsplit_once('.')
                            .is_some_and(|(_, number)| !number.is_empty()
                                && number.bytes().all(|b| b.is_ascii_digit())),
                        "{}: {line}: a local copy's number, which the next build changes",
                        path.display()
                    );
                }
            }
            assert_eq!(parts, ["[hot]", "[rest]"], "{}", path.display());
            // Most of a function's code: each list written names over 12,000 sections.
            assert!(sections > 10_000, "{}: {sections} sections", path.display());
        }
    }
}

/// The workspace's default members, and those that build the template's functions (each
/// with its manifest), found from the functions' `Binary` and `CodeUri`.
fn function_packages() -> (Vec<String>, Vec<(String, toml::Table)>) {
    let manifest = std::fs::read_to_string(workspace().join("Cargo.toml")).expect("Cargo.toml");
    let manifest: toml::Table = manifest.parse().expect("a Cargo manifest");
    let default_members: Vec<String> = manifest["workspace"]["default-members"]
        .as_array()
        .expect("default-members")
        .iter()
        .filter_map(toml::Value::as_str)
        .map(str::to_owned)
        .collect();
    let members: Vec<(String, toml::Table)> = default_members
        .iter()
        .map(|member| {
            let manifest = std::fs::read_to_string(workspace().join(member).join("Cargo.toml"))
                .expect("a member's Cargo.toml");
            (member.clone(), manifest.parse().expect("a Cargo manifest"))
        })
        .collect();
    let template = template();
    let mut function_packages = Vec::new();
    for (name, function) in functions(&template) {
        let binary = function["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .expect("Metadata.BuildProperties.Binary");
        let code_uri = function["Properties"]["CodeUri"]
            .as_str()
            .or_else(|| template["Globals"]["Function"]["CodeUri"].as_str());
        assert_eq!(
            code_uri,
            Some("."),
            "{name}: built from the workspace's root"
        );
        let package = members
            .iter()
            .find(|(_, manifest)| {
                manifest
                    .get("bin")
                    .and_then(toml::Value::as_array)
                    .is_some_and(|bins| bins.iter().any(|bin| bin["name"].as_str() == Some(binary)))
            })
            .unwrap_or_else(|| panic!("{name}: no default member builds {binary}"));
        function_packages.push(package.clone());
    }
    (default_members, function_packages)
}
