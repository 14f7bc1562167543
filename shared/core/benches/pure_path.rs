//! The pure path of one alarm event, over rule sets of 10 to 10,000 rules: parsing the
//! EventBridge event (from the JSON value the Lambda runtime hands the function, and from
//! bytes), selecting its rule (and resource), the decision given the resource's state, and the
//! three together as a layer's function runs them before any I/O.
//!
//! The rule sets mix the shipped rules' shapes: rules selected by alarm-name prefix (like
//! `circuit-breaker-healing`), by metric (like `ec2-instance-healing`), by both (like
//! `memory-leak-healing`), over six actions of the five layers, some disabled, some in shadow
//! mode. Every event selects exactly one rule, spread through the file, by name, by metric
//! (single-metric and metric-math alarms) or by its `autoheal:rule` tag.
//!
//! Benchmarks measure; they assert nothing about timings.

#![allow(clippy::expect_used)]

use std::hint::black_box;

use autoheal_core::policy::decision::{DecisionInput, Transition, decide};
use autoheal_core::policy::resolve::{RULE_TAG, Selection, candidates, select};
use autoheal_core::{
    AlarmEvent, AlarmState, Decision, Incident, Layer, ResourceState, Rule, RuleSet,
};
use chrono::{DateTime, Duration, Utc};
use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};

/// A shipped sample event: the envelope, states and reasons every generated event shares.
const SAMPLE_EVENT: &str = include_str!("../../../events/ec2-instance-healing.alarm.json");

/// The rule-set sizes measured.
const SIZES: [usize; 4] = [10, 100, 1_000, 10_000];

/// Rules per generated rules file: a file stays well below the largest one read.
const RULES_PER_FILE: usize = 400;

const TEAMS: [&str; 8] = [
    "payments", "orders", "search", "identity", "catalog", "shipping", "billing", "media",
];
const SERVICES: [&str; 8] = [
    "api",
    "worker",
    "gateway",
    "scheduler",
    "indexer",
    "frontend",
    "ledger",
    "stream",
];
const METRICS: [&str; 8] = [
    "ErrorCount",
    "Latency",
    "QueueDepth",
    "Throttles",
    "Saturation",
    "RestartCount",
    "DroppedMessages",
    "HealthCheckFailed",
];

/// One kind of rule: its layer, the dimensions its metric carries (with the values the
/// events give them) and its resource and action tables.
struct Kind {
    layer: &'static str,
    slug: &'static str,
    dimensions: &'static [(&'static str, &'static str)],
    resource: &'static str,
    action: &'static str,
}

const KINDS: [Kind; 6] = [
    Kind {
        layer: "infrastructure",
        slug: "instance",
        dimensions: &[("InstanceId", "i-0123456789abcdef0")],
        resource: "dimension = \"InstanceId\"",
        action: "type = \"recover-ec2-instance\"\nreboot_first = true",
    },
    Kind {
        layer: "platform",
        slug: "function",
        dimensions: &[("FunctionName", "orders-api-handler")],
        resource: "dimension = \"FunctionName\"",
        action: "type = \"rollback-lambda-alias\"\nalias = \"live\"",
    },
    Kind {
        layer: "platform",
        slug: "service",
        dimensions: &[("ClusterName", "prod"), ("ServiceName", "orders-api")],
        resource: "template = \"{ClusterName}/{ServiceName}\"",
        action: "type = \"restart-ecs-service\"",
    },
    Kind {
        layer: "application",
        slug: "breaker",
        dimensions: &[("Service", "orders-api"), ("Dependency", "inventory")],
        resource: "dimension = \"Service\"",
        action: "type = \"reset-circuit-breaker\"\nparameter = \"/autoheal/{resource}/circuit-breaker\"",
    },
    Kind {
        layer: "data",
        slug: "cache",
        dimensions: &[("CacheClusterId", "orders-cache-001")],
        resource: "dimension = \"CacheClusterId\"",
        action: "type = \"repair-cache\"\nhook_function = \"autoheal-cache-hook\"",
    },
    Kind {
        layer: "network",
        slug: "health-check",
        dimensions: &[("HealthCheckId", "abcdef01-2345-6789-abcd-ef0123456789")],
        resource: "dimension = \"HealthCheckId\"",
        action: "type = \"fail-over-dns-record\"",
    },
];

/// How rule `index` is selected: 2 in 5 by name prefix, 2 in 5 by metric, 1 in 5 by both.
fn by_prefix(index: usize) -> bool {
    matches!(index % 5, 0 | 1 | 4)
}
fn by_metric(index: usize) -> bool {
    matches!(index % 5, 2..=4)
}
fn enabled(index: usize) -> bool {
    index % 13 != 12
}

fn kind(index: usize) -> &'static Kind {
    &KINDS[index % KINDS.len()]
}
fn team(index: usize) -> &'static str {
    TEAMS[(index / 3) % TEAMS.len()]
}
fn service(index: usize) -> &'static str {
    SERVICES[(index / 7) % SERVICES.len()]
}
fn rule_name(index: usize) -> String {
    format!(
        "{}-{}-{index:05}-{}-healing",
        team(index),
        service(index),
        kind(index).slug
    )
}
/// Distinct for every rule, and none the start of another (fixed width, trailing dash).
fn prefix(index: usize) -> String {
    format!("{}-{}-{index:05}-", team(index), service(index))
}
/// Eight metrics per namespace: (namespace, metric) is distinct for every rule.
fn namespace(index: usize) -> String {
    let team = team(index);
    let mut capitalized = team[..1].to_uppercase();
    capitalized.push_str(&team[1..]);
    format!("Acme/{capitalized}/{}{:04}", service(index), index / 8)
}
fn metric(index: usize) -> &'static str {
    METRICS[index % METRICS.len()]
}

fn rule_toml(index: usize) -> String {
    let kind = kind(index);
    let mut trigger = String::new();
    if by_metric(index) {
        let dimensions: Vec<String> = kind
            .dimensions
            .iter()
            .take(2)
            .filter(|(name, _)| *name != "Dependency")
            .map(|(name, _)| format!("\"{name}\""))
            .collect();
        trigger.push_str(&format!(
            "namespace = \"{}\"\nmetrics = [\"{}\"]\ndimensions = [{}]\n",
            namespace(index),
            metric(index),
            dimensions.join(", ")
        ));
    }
    if by_prefix(index) {
        trigger.push_str(&format!("alarm_name_prefixes = [\"{}\"]\n", prefix(index)));
    }
    let mut options = String::new();
    if !enabled(index) {
        options.push_str("enabled = false\n");
    }
    if index % 11 == 10 {
        options.push_str("mode = \"shadow\"\n");
    }
    format!(
        "[[rule]]\nname = \"{name}\"\nlayer = \"{layer}\"\ndescription = \"Heal the {slug} of {team} {service}.\"\n{options}cooldown_seconds = {cooldown}\nmax_attempts = {attempts}\n[rule.trigger]\n{trigger}[rule.resource]\n{resource}\n[rule.action]\n{action}\n\n",
        name = rule_name(index),
        layer = kind.layer,
        slug = kind.slug,
        team = team(index),
        service = service(index),
        cooldown = 60 * (1 + index % 30),
        attempts = 1 + index % 5,
        resource = kind.resource,
        action = kind.action,
    )
}

/// `count` generated rules, written as rules files and read as the functions read them.
fn rule_set(count: usize) -> RuleSet {
    let mut rules: Vec<Rule> = Vec::with_capacity(count);
    for start in (0..count).step_by(RULES_PER_FILE) {
        let text: String = (start..count.min(start + RULES_PER_FILE))
            .map(rule_toml)
            .collect();
        let file = RuleSet::from_toml(&text)
            .unwrap_or_else(|e| panic!("the generated rules must be valid:\n{e}"));
        rules.extend(file.rules().iter().cloned());
    }
    RuleSet::from_rules(rules).unwrap_or_else(|e| panic!("the generated rules must be valid:\n{e}"))
}

/// How an event selects its rule.
#[derive(Clone, Copy, Debug)]
enum Via {
    Name,
    Metric,
    MetricMath,
    Tag,
}

fn metric_query(id: &str, namespace: &str, name: &str, dimensions: Value, main: bool) -> Value {
    json!({
        "id": id,
        "metricStat": {
            "metric": {"namespace": namespace, "name": name, "dimensions": dimensions},
            "period": 60,
            "stat": "Maximum"
        },
        "returnData": main
    })
}

/// An ALARM event for rule `index`, selecting it `via`, as EventBridge delivers it.
fn event_json(index: usize, via: Via, serial: usize) -> Vec<u8> {
    let kind = kind(index);
    let dimensions: serde_json::Map<String, Value> = kind
        .dimensions
        .iter()
        .map(|(name, value)| ((*name).to_owned(), Value::from(*value)))
        .collect();
    // A metric no rule watches: the application's own namespace.
    let unwatched = metric_query(
        "m2",
        "Acme/Applications",
        "p99Latency",
        Value::Object(dimensions.clone()),
        false,
    );
    let watched = |main: bool| {
        metric_query(
            "m1",
            &namespace(index),
            metric(index),
            Value::Object(dimensions.clone()),
            main,
        )
    };
    let plain_name = format!("{}-{}-high-{index:05}", service(index), metric(index));
    let (alarm_name, metrics) = match via {
        Via::Name => (
            format!("{}{}-p99-latency", prefix(index), service(index)),
            vec![metric_query(
                "m1",
                "Acme/Applications",
                "p99Latency",
                Value::Object(dimensions.clone()),
                true,
            )],
        ),
        Via::Metric => (plain_name, vec![watched(true)]),
        Via::MetricMath => (
            plain_name,
            vec![
                json!({"id": "e1", "expression": "MAX(METRICS())", "label": "worst", "returnData": true}),
                watched(false),
                unwatched,
            ],
        ),
        Via::Tag => (
            format!("{}-degraded-{index:05}", service(index)),
            vec![metric_query(
                "m1",
                "Acme/Applications",
                "p99Latency",
                Value::Object(dimensions.clone()),
                true,
            )],
        ),
    };
    let mut event: Value = serde_json::from_str(SAMPLE_EVENT).expect("the sample event is JSON");
    event["id"] = Value::from(format!("{serial:08x}-ac10-3525-0b66-{index:012x}"));
    event["resources"] = json!([format!(
        "arn:aws:cloudwatch:us-east-1:123456789012:alarm:{alarm_name}"
    )]);
    event["detail"]["alarmName"] = Value::from(alarm_name);
    event["detail"]["configuration"]["metrics"] = Value::Array(metrics);
    if let Via::Tag = via {
        event["detail"]["alarmTags"] = json!({RULE_TAG: rule_name(index), "team": team(index)});
    }
    serde_json::to_vec(&event).expect("an event serializes")
}

/// The events measured on a set of `count` rules: each selects exactly one enabled rule;
/// their rules are spread from the start to the end of the file.
fn events(rules: &RuleSet) -> Vec<Vec<u8>> {
    let count = rules.rules().len();
    let mut events = Vec::new();
    for (serial, tenth) in [0, 2, 5, 7, 9, 10].into_iter().enumerate() {
        // The first enabled rule from this point of the file on, wrapping around.
        let index = (0..count)
            .map(|offset| (count * tenth / 10 + offset) % count)
            .find(|index| enabled(*index))
            .expect("an enabled rule");
        let mut vias = vec![if by_prefix(index) {
            Via::Name
        } else {
            Via::Metric
        }];
        if by_metric(index) && !by_prefix(index) {
            vias.push(Via::MetricMath);
        }
        if tenth % 5 == 0 {
            vias.push(Via::Tag);
        }
        for via in vias {
            let bytes = event_json(index, via, serial);
            check_selects_one(rules, &bytes, index, via);
            events.push(bytes);
        }
    }
    events
}

/// Setup check: the event selects rule `index` and nothing else.
fn check_selects_one(rules: &RuleSet, bytes: &[u8], index: usize, via: Via) {
    let event = AlarmEvent::from_slice(bytes).expect("the generated event parses");
    let expected = rule_name(index);
    let (_, found) = candidates(rules, &event);
    let found: Vec<&str> = found.iter().map(|rule| rule.name.as_str()).collect();
    assert_eq!(found, [expected.as_str()], "{via:?} selects one rule");
    let rule = rules.get(&expected).expect("the rule exists");
    match select(rules, &event, rule.layer) {
        Selection::Matched { rule, .. } => assert_eq!(rule.name, expected),
        other => panic!("{via:?} event for `{expected}` selects {other:?}"),
    }
}

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-24T06:00:06Z")
        .expect("a timestamp")
        .with_timezone(&Utc)
}

/// The whole pure path of one event in `layer`'s function: parse, select, decide. The
/// function's entry takes the JSON value the Lambda runtime decoded.
fn pure_path(
    rules: &RuleSet,
    layer: Layer,
    payload: Value,
    state: &ResourceState,
    now: DateTime<Utc>,
) -> Option<Transition> {
    let event = AlarmEvent::from_value(payload).ok()?;
    let (rule, _resource_id) = select(rules, &event, layer).into_match().ok()?;
    Some(decide(DecisionInput {
        policy: &rule.policy,
        state,
        alarm: event.state,
        event_id: &event.id,
        event_seen: false,
        run_id: "bench-run",
        now,
    }))
}

fn bench_parse_select_path(c: &mut Criterion) {
    for size in SIZES {
        let rules = rule_set(size);
        let events = events(&rules);
        let payloads: Vec<Value> = events
            .iter()
            .map(|bytes| serde_json::from_slice(bytes).expect("the generated event is JSON"))
            .collect();
        let parsed: Vec<AlarmEvent> = events
            .iter()
            .map(|bytes| AlarmEvent::from_slice(bytes).expect("the generated event parses"))
            .collect();
        let layers: Vec<_> = parsed
            .iter()
            .map(|event| candidates(&rules, event).1[0].layer)
            .collect();
        let fresh = ResourceState::default();
        let now = now();

        let mut group = c.benchmark_group(format!("rules-{size}"));
        // The payload is copied outside the measured time: the function receives it decoded.
        group.bench_function("parse", |b| {
            let mut next = 0;
            b.iter_batched(
                || {
                    next = (next + 1) % payloads.len();
                    payloads[next].clone()
                },
                |payload| AlarmEvent::from_value(black_box(payload)),
                BatchSize::SmallInput,
            )
        });
        group.bench_function("parse-bytes", |b| {
            let mut next = 0;
            b.iter(|| {
                next = (next + 1) % events.len();
                AlarmEvent::from_slice(black_box(&events[next]))
            })
        });
        group.bench_function("select", |b| {
            let mut next = 0;
            b.iter(|| {
                next = (next + 1) % parsed.len();
                select(black_box(&rules), black_box(&parsed[next]), layers[next])
            })
        });
        group.bench_function("whole", |b| {
            let mut next = 0;
            b.iter_batched(
                || {
                    next = (next + 1) % payloads.len();
                    (layers[next], payloads[next].clone())
                },
                |(layer, payload)| {
                    pure_path(black_box(&rules), layer, black_box(payload), &fresh, now)
                },
                BatchSize::SmallInput,
            )
        });
        group.bench_function(BenchmarkId::new("load", "from_rules"), |b| {
            b.iter_batched(
                || rules.rules().to_vec(),
                |rules| RuleSet::from_rules(rules).map(|set| set.rules().len()),
                BatchSize::LargeInput,
            )
        });
        group.finish();
        for (payload, layer) in payloads.iter().zip(&layers) {
            let transition = pure_path(&rules, *layer, payload.clone(), &fresh, now);
            assert!(
                matches!(transition.map(|t| t.decision), Some(Decision::Act { .. })),
                "every generated event acts on a fresh resource"
            );
        }
    }
}

/// The decision alone, given the resource's state: it does not depend on the rules.
fn bench_decide(c: &mut Criterion) {
    let rules = rule_set(10);
    let policy = rules.rules()[0].policy;
    let now = now();
    let open = Incident {
        attempts: 1,
        last_attempt_at: Some(now - Duration::hours(2)),
        next_attempt_at: Some(now - Duration::hours(1)),
        checks: 1,
        ..Incident::open("e-0", now - Duration::hours(2))
    };
    let states = [
        ("fresh-alarm", AlarmState::Alarm, ResourceState::default()),
        (
            "open-incident-alarm",
            AlarmState::Alarm,
            ResourceState {
                version: 3,
                last_action_at: Some(now - Duration::hours(2)),
                incident: Some(open.clone()),
                ..ResourceState::default()
            },
        ),
        (
            "cooldown-alarm",
            AlarmState::Alarm,
            ResourceState {
                version: 3,
                last_action_at: Some(now - Duration::seconds(10)),
                incident: Some(open.clone()),
                ..ResourceState::default()
            },
        ),
        (
            "open-incident-ok",
            AlarmState::Ok,
            ResourceState {
                version: 3,
                last_action_at: Some(now - Duration::hours(2)),
                incident: Some(open),
                ..ResourceState::default()
            },
        ),
    ];
    let mut group = c.benchmark_group("decide");
    for (name, alarm, state) in &states {
        group.bench_function(*name, |b| {
            b.iter(|| {
                decide(DecisionInput {
                    policy: black_box(&policy),
                    state: black_box(state),
                    alarm: *alarm,
                    event_id: "cbf27734-ac10-3525-0b66-402800e03d2c",
                    event_seen: false,
                    run_id: "bench-run",
                    now,
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_decide, bench_parse_select_path);
criterion_main!(benches);
