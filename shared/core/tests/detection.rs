//! Detection: every rule's alarm, the resources in the scope, coverage decided by selection,
//! and the plan that creates, puts back and deletes only autoheal's own alarms.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fs;

use autoheal_core::model::alarm::{ExistingAlarm, MetricAlarm, WatchedMetric};
use autoheal_core::policy::detection::coverage::{Protection, coverage};
use autoheal_core::policy::detection::desired::{DesiredAlarm, desired_alarm};
use autoheal_core::policy::detection::event::as_event;
use autoheal_core::policy::detection::plan::{Change, plan};
use autoheal_core::policy::detection::target::{
    Found, PublishedMetric, Resource, Scope, Target, targets,
};
use autoheal_core::policy::resolve::{Selection, select_any};
use autoheal_core::{AlarmEvent, ResourceKind, RuleSet};

const ARN_PREFIX: &str = "arn:aws:cloudwatch:us-east-1:123456789012:alarm:";

fn shipped() -> RuleSet {
    RuleSet::shipped().unwrap_or_else(|e| panic!("{e}"))
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The target each rule's sample ALARM event names: its resource and the dimensions of its
/// metric (the alias dimension a Lambda alarm adds, from the rule's alias).
fn sample_target(rules: &RuleSet, rule: &str) -> Target {
    let path = format!(
        "{}/../../events/{rule}.alarm.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let event = AlarmEvent::from_slice(&fs::read(&path).unwrap()).unwrap();
    let rule = rules.get(rule).unwrap();
    let (_, selection) = select_any(rules, &event);
    let Selection::Matched { resource_id, .. } = selection else {
        panic!("{}: the sample does not select its rule", rule.name);
    };
    let metric = &event.kind.metrics()[0];
    let spec = rule.alarm.as_ref().unwrap();
    let mut dimensions = BTreeMap::new();
    for name in rule.alarm_dimensions().unwrap() {
        let value = match metric.dimensions.get(&name) {
            Some(value) => value.clone(),
            None if name == "Resource" => format!("{resource_id}:live"),
            None => panic!("{}: the sample has no `{name}`", rule.name),
        };
        dimensions.insert(name, value);
    }
    if spec.application_metric {
        // An application metric keeps every dimension it is published with.
        dimensions = metric.dimensions.clone();
    }
    Target {
        rule: rule.name.clone(),
        resource: resource_id,
        namespace: spec
            .namespace
            .clone()
            .unwrap_or_else(|| metric.namespace.clone()),
        dimensions,
    }
}

fn existing(desired: &DesiredAlarm, managed: bool) -> ExistingAlarm {
    let mut tags = desired.tags.clone();
    if !managed {
        tags.clear();
    }
    ExistingAlarm {
        arn: format!("{ARN_PREFIX}{}", desired.alarm.name),
        alarm: desired.alarm.clone(),
        composite_rule: None,
        tags,
    }
}

fn users_alarm(name: &str, namespace: &str, metric: &str, dims: &[(&str, &str)]) -> ExistingAlarm {
    ExistingAlarm {
        arn: format!("{ARN_PREFIX}{name}"),
        alarm: MetricAlarm {
            name: name.to_owned(),
            description: String::new(),
            metrics: vec![WatchedMetric {
                id: "m1".to_owned(),
                namespace: namespace.to_owned(),
                name: metric.to_owned(),
                dimensions: map(dims),
                statistic: "Maximum".to_owned(),
                period_seconds: 60,
            }],
            expression: None,
            evaluation_periods: 1,
            datapoints_to_alarm: 1,
            threshold: 1.0,
            comparison: "GreaterThanOrEqualToThreshold".to_owned(),
            missing_data: "missing".to_owned(),
            actions: Vec::new(),
        },
        composite_rule: None,
        tags: BTreeMap::new(),
    }
}

#[test]
fn every_shipped_rule_has_an_alarm_whose_event_selects_the_rule_for_its_resource() {
    let rules = shipped();
    for rule in rules.rules() {
        assert!(rule.alarm.is_some(), "{}: no [rule.alarm]", rule.name);
        let target = sample_target(&rules, &rule.name);
        let desired = desired_alarm(rule, &target, &[]).unwrap();
        assert!(
            desired.alarm.name.starts_with(&format!("{}-", rule.name)),
            "{}",
            desired.alarm.name
        );
        // Without its tags: what every state-change event carries.
        let arn = format!("{ARN_PREFIX}{}", desired.alarm.name);
        let event = as_event(&desired.alarm, &arn, None, None).unwrap();
        match select_any(&rules, &event).1 {
            Selection::Matched {
                rule: selected,
                resource_id,
            } => {
                assert_eq!(selected.name, rule.name);
                assert_eq!(resource_id, target.resource, "{}", rule.name);
            }
            other => panic!("{}: {other:?}", rule.name),
        }
        assert_eq!(desired.tags["autoheal:rule"], rule.name);
        assert_eq!(desired.tags["autoheal:managed"], "true");
    }
}

#[test]
fn the_sample_events_watch_the_metric_their_rules_alarm_defines() {
    let rules = shipped();
    for rule in rules.rules() {
        let target = sample_target(&rules, &rule.name);
        let spec = rule.alarm.as_ref().unwrap();
        let path = format!(
            "{}/../../events/{}.alarm.json",
            env!("CARGO_MANIFEST_DIR"),
            rule.name
        );
        let event = AlarmEvent::from_slice(&fs::read(&path).unwrap()).unwrap();
        let metric = &event.kind.metrics()[0];
        if let Some(namespace) = &spec.namespace {
            assert_eq!(&metric.namespace, namespace, "{}", rule.name);
        }
        let same_family = metric.name == spec.metric || rule.trigger.metrics.contains(&metric.name);
        assert!(same_family, "{}: sample metric {}", rule.name, metric.name);
        for (name, value) in &target.dimensions {
            if let Some(sample) = metric.dimensions.get(name) {
                assert_eq!(sample, value, "{}: {name}", rule.name);
            }
        }
    }
}

fn instance(id: &str, tags: &[(&str, &str)]) -> Found {
    Found {
        rule: "ec2-instance-healing".to_owned(),
        resource: Resource {
            kind: ResourceKind::Ec2Instance,
            id: id.to_owned(),
            dimensions: map(&[("InstanceId", id)]),
            tags: map(tags),
            own: false,
        },
        metric: None,
    }
}

#[test]
fn the_scope_keeps_tagged_resources_or_all_never_disabled_or_own_ones() {
    let rules = shipped();
    let mut own = instance("i-00000000000000004", &[("autoheal:protect", "true")]);
    own.resource.own = true;
    let found = vec![
        instance("i-00000000000000001", &[("autoheal:protect", "true")]),
        instance("i-00000000000000002", &[]),
        instance(
            "i-00000000000000003",
            &[("autoheal:protect", "true"), ("autoheal:disabled", "TRUE")],
        ),
        own,
    ];
    let ids = |scope| -> Vec<String> {
        targets(&rules, &found, scope)
            .into_iter()
            .map(|t| t.resource)
            .collect()
    };
    assert_eq!(ids(Scope::Tagged), ["i-00000000000000001"]);
    assert_eq!(
        ids(Scope::All),
        ["i-00000000000000001", "i-00000000000000002"]
    );
    assert!(ids(Scope::Off).is_empty());
    assert_eq!("all".parse::<Scope>(), Ok(Scope::All));
    assert!("everything".parse::<Scope>().is_err());
}

#[test]
fn an_application_metric_gets_an_alarm_per_series_with_its_own_dimensions() {
    let rules = shipped();
    let series = |dependency: &str| Found {
        rule: "circuit-breaker-healing".to_owned(),
        resource: Resource {
            kind: ResourceKind::ApplicationService,
            id: "orders-api".to_owned(),
            dimensions: BTreeMap::new(),
            tags: BTreeMap::new(),
            own: false,
        },
        metric: Some(PublishedMetric {
            namespace: "Acme/Resilience".to_owned(),
            name: "CircuitBreakerOpen".to_owned(),
            dimensions: map(&[("Service", "orders-api"), ("Dependency", dependency)]),
        }),
    };
    let found = targets(
        &rules,
        &[series("inventory"), series("payments")],
        Scope::Tagged,
    );
    let rule = rules.get("circuit-breaker-healing").unwrap();
    let names: Vec<String> = found
        .iter()
        .map(|t| desired_alarm(rule, t, &[]).unwrap().alarm.name)
        .collect();
    assert_eq!(
        names,
        [
            "circuit-breaker-healing-orders-api-inventory",
            "circuit-breaker-healing-orders-api-payments"
        ]
    );
    assert_eq!(found[0].namespace, "Acme/Resilience");
}

#[test]
fn the_plan_creates_what_is_missing_and_then_nothing() {
    let rules = shipped();
    let targets = vec![
        sample_target(&rules, "ec2-instance-healing"),
        sample_target(&rules, "ecs-service-healing"),
    ];
    let first = plan(&rules, &targets, &[], &[]);
    assert_eq!(first.counts(), (2, 0, 0));
    let created: Vec<ExistingAlarm> = first
        .changes
        .iter()
        .map(|change| match change {
            Change::Create { desired } => existing(desired, true),
            other => panic!("{other:?}"),
        })
        .collect();
    let again = plan(&rules, &targets, &created, &[]);
    assert_eq!(again.counts(), (0, 0, 0), "{:?}", again.changes);
    assert_eq!(again.unchanged, 2);
    assert_eq!(again.summary(), "0 to create, 0 to update, 0 to delete");
    let covered = coverage(&rules, &targets, &created);
    assert_eq!(covered.summary(), "2 of 2 resources protected");
}

#[test]
fn a_drifted_managed_alarm_is_put_back_and_an_orphan_deleted() {
    let rules = shipped();
    let target = sample_target(&rules, "ec2-instance-healing");
    let rule = rules.get("ec2-instance-healing").unwrap();
    let desired = desired_alarm(rule, &target, &[]).unwrap();
    let mut drifted = existing(&desired, true);
    drifted.alarm.threshold = 5.0;
    let mut orphan = existing(&desired, true);
    orphan.alarm.name = "ec2-instance-healing-i-0dead0000000000ff".to_owned();
    let result = plan(&rules, &[target], &[drifted, orphan], &[]);
    assert_eq!(result.counts(), (0, 1, 1));
    match &result.changes[0] {
        Change::Update { differences, .. } => assert_eq!(differences, &["threshold 5 -> 1"]),
        other => panic!("{other:?}"),
    }
    match &result.changes[1] {
        Change::Delete { name, why } => {
            assert_eq!(name, "ec2-instance-healing-i-0dead0000000000ff");
            assert!(why.contains("gone"), "{why}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_persons_alarm_counts_as_protection_and_is_never_changed() {
    let rules = shipped();
    let target = sample_target(&rules, "ec2-instance-healing");
    let rule = rules.get("ec2-instance-healing").unwrap();
    let desired = desired_alarm(rule, &target, &[]).unwrap();
    let theirs = users_alarm(
        "web-01-system-check",
        "AWS/EC2",
        "StatusCheckFailed_System",
        &[("InstanceId", &target.resource)],
    );
    // Their alarm protects it: autoheal's own is redundant and goes; theirs stays.
    let result = plan(
        &rules,
        std::slice::from_ref(&target),
        &[theirs.clone(), existing(&desired, true)],
        &[],
    );
    assert_eq!(result.counts(), (0, 0, 1));
    assert_eq!(result.changes[0].name(), desired.alarm.name);
    assert_eq!(result.left.len(), 1);
    let covered = coverage(&rules, std::slice::from_ref(&target), &[theirs]);
    assert_eq!(
        covered.entries[0].protection,
        Protection::Protected {
            alarm: "web-01-system-check".to_owned(),
            managed: false
        }
    );
    // A person's alarm under autoheal's name is never overwritten.
    let taken = existing(&desired, false);
    let mut taken = taken;
    taken.alarm.metrics[0].namespace = "Acme/Other".to_owned();
    let result = plan(&rules, std::slice::from_ref(&target), &[taken], &[]);
    assert_eq!(result.counts(), (0, 0, 0));
    assert!(result.left[0].why.contains("did not create"));
}

#[test]
fn coverage_tells_aws_protection_unreached_alarms_and_missing_ones() {
    let rules = shipped();
    let target = sample_target(&rules, "ec2-instance-healing");
    let mut recover = users_alarm(
        "web-01-recover",
        "AWS/EC2",
        "StatusCheckFailed_System",
        &[("InstanceId", &target.resource)],
    );
    recover.alarm.actions = vec!["arn:aws:automate:us-east-1:ec2:recover".to_owned()];
    // Autoheal's own stack's alarms and a disabled rule are not coverage; an alarm whose
    // name is taken by another rule's prefix reaches that rule instead.
    let misnamed = users_alarm(
        "memory-leak-healing-web-01",
        "AWS/EC2",
        "StatusCheckFailed",
        &[("InstanceId", &target.resource)],
    );
    let one = |alarms: &[ExistingAlarm]| {
        coverage(&rules, std::slice::from_ref(&target), alarms).entries[0]
            .protection
            .clone()
    };
    assert_eq!(one(&[]), Protection::Missing);
    assert!(matches!(one(&[recover]), Protection::ProtectedByAws { .. }));
    match one(&[misnamed]) {
        Protection::Unreached { alarm, why } => {
            assert_eq!(alarm, "memory-leak-healing-web-01");
            assert!(why.contains("memory-leak-healing"), "{why}");
        }
        other => panic!("{other:?}"),
    }
    // Selected by its tag only: reaches the rule only where CloudWatch carries tags.
    let mut tagged = users_alarm("team-alarm", "Acme/Web", "Health", &[("Host", "web-01")]);
    tagged.composite_rule = Some("ALARM(a)".to_owned());
    tagged.alarm.metrics.clear();
    tagged.tags.insert(
        "autoheal:rule".to_owned(),
        "ec2-instance-healing".to_owned(),
    );
    tagged
        .tags
        .insert("InstanceId".to_owned(), target.resource.clone());
    let covered = coverage(&rules, std::slice::from_ref(&target), &[tagged]);
    assert_eq!(covered.summary(), "0 of 1 resources protected");
}

/// An alarm that fires the opposite way to its rule's trigger is refused when it fires
/// (`opposite-direction`), so it protects nothing: "too many connections" on a database whose
/// rule heals "nobody can connect". The rule's own direction protects it.
#[test]
fn an_alarm_firing_the_opposite_way_to_its_rule_never_reaches_it() {
    let rules = shipped();
    let target = sample_target(&rules, "rds-instance-healing");
    let connections = |name: &str, comparison: &str| {
        let mut alarm = users_alarm(
            name,
            "AWS/RDS",
            "DatabaseConnections",
            &[("DBInstanceIdentifier", &target.resource)],
        );
        alarm.alarm.comparison = comparison.to_owned();
        alarm
    };
    let one = |alarm: ExistingAlarm| {
        coverage(&rules, std::slice::from_ref(&target), &[alarm]).entries[0]
            .protection
            .clone()
    };

    match one(connections(
        "orders-db-too-many-connections",
        "GreaterThanThreshold",
    )) {
        Protection::Unreached { alarm, why } => {
            assert_eq!(alarm, "orders-db-too-many-connections");
            assert!(why.contains("GreaterThanThreshold"), "{why}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        one(connections("orders-db-unreachable", "LessThanThreshold")),
        Protection::Protected { .. }
    ));
    // Nor does it make autoheal's own alarm redundant: that one stays.
    let rule = rules.get("rds-instance-healing").unwrap();
    let desired = desired_alarm(rule, &target, &[]).unwrap();
    let result = plan(
        &rules,
        std::slice::from_ref(&target),
        &[
            connections("orders-db-too-many-connections", "GreaterThanThreshold"),
            existing(&desired, true),
        ],
        &[],
    );
    assert_eq!(result.counts(), (0, 0, 0), "{result:?}");
}

#[test]
fn an_invalid_alarm_definition_is_named_with_its_field_and_line() {
    let text = r#"
[[rule]]
name = "ec2-instance-healing"
layer = "infrastructure"
cooldown_seconds = 600
max_attempts = 3
[rule.trigger]
namespace = "AWS/EC2"
metrics = ["StatusCheckFailed"]
dimensions = ["InstanceId"]
[rule.resource]
dimension = "InstanceId"
[rule.alarm]
namespace = "AWS/EBS"
metric = "CPUUtilization"
dimensions = ["VolumeId"]
statistic = "Median"
period_seconds = 45
evaluation_periods = 2
datapoints_to_alarm = 3
threshold = 1
comparison = "GreaterThanOrEqualToThreshold"
[rule.action]
type = "recover-ec2-instance"
"#;
    let problems = RuleSet::from_toml(text).unwrap_err().problems;
    let named: Vec<(String, Option<usize>)> = problems
        .iter()
        .map(|p| (p.field.clone().unwrap_or_default(), p.line))
        .collect();
    let line = |needle: &str| text.lines().position(|l| l.starts_with(needle)).unwrap() + 1;
    for (field, needle) in [
        ("alarm.statistic", "statistic"),
        ("alarm.period_seconds", "period_seconds"),
        ("alarm.datapoints_to_alarm", "datapoints_to_alarm"),
        ("alarm.dimensions", "dimensions = [\"VolumeId\"]"),
        ("alarm.namespace", "namespace = \"AWS/EBS\""),
        ("alarm.metric", "metric = "),
    ] {
        assert!(
            named.contains(&(field.to_owned(), Some(line(needle)))),
            "{field} at line {}: {named:?}",
            line(needle)
        );
    }
    let unknown = text.replace(
        "comparison = \"GreaterThanOrEqualToThreshold\"",
        "comparison = \"Above\"",
    );
    let problem = &RuleSet::from_toml(&unknown).unwrap_err().problems[0];
    assert!(problem.message.contains("Above"), "{}", problem.message);
}
