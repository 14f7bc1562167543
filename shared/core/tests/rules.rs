//! The rules file: the shipped rules, and the errors of invalid files (rule, field, line).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use autoheal_core::model::rules::{RuleProblem, SHIPPED_RULES};
use autoheal_core::{Action, Layer, Mode, RuleSet};

fn shipped() -> RuleSet {
    RuleSet::shipped().unwrap_or_else(|e| panic!("the shipped rules must parse:\n{e}"))
}

fn parse(text: &str) -> RuleSet {
    RuleSet::from_toml(text).unwrap_or_else(|e| panic!("the rules should parse:\n{e}"))
}

fn problems(text: &str) -> Vec<RuleProblem> {
    match RuleSet::from_toml(text) {
        Ok(rules) => panic!(
            "the rules should be rejected, got {:?}",
            rules.rules().iter().map(|r| &r.name).collect::<Vec<_>>()
        ),
        Err(error) => {
            assert!(!error.problems.is_empty(), "an error without problems");
            error.problems
        }
    }
}

fn first_problem(text: &str) -> RuleProblem {
    problems(text).remove(0)
}

/// The 1-based line of the first line containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|line| line.contains(needle))
        .unwrap_or_else(|| panic!("`{needle}` is not in the text"))
        + 1
}

/// The 1-based line of the `nth` (1-based) line that is exactly `wanted`.
fn exact_line_of(text: &str, wanted: &str, nth: usize) -> usize {
    text.lines()
        .enumerate()
        .filter(|(_, line)| *line == wanted)
        .nth(nth - 1)
        .unwrap_or_else(|| panic!("no line #{nth} `{wanted}`"))
        .0
        + 1
}

/// The 1-based line of the `[[rule]]` header of the rule named `name`.
fn header_of(text: &str, name: &str) -> usize {
    let name_line = line_of(text, &format!("name = \"{name}\""));
    let header = text
        .lines()
        .take(name_line)
        .collect::<Vec<_>>()
        .iter()
        .rposition(|line| line.trim() == "[[rule]]")
        .expect("a header above the name");
    header + 1
}

/// Replaces `from` (which must occur) once.
fn edit(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "`{from}` is not in the text");
    text.replacen(from, to, 1)
}

fn assert_problem(problem: &RuleProblem, rule: &str, field: &str, line: usize) {
    assert_eq!(problem.rule.as_deref(), Some(rule), "rule of {problem:?}");
    assert_eq!(
        problem.field.as_deref(),
        Some(field),
        "field of {problem:?}"
    );
    assert_eq!(problem.line, Some(line), "line of {problem:?}");
    assert!(!problem.message.is_empty(), "message of {problem:?}");
}

// ------------------------------------------------------------------ the shipped rules

const REFERENCE_RULES: [(&str, Layer, u64, u32); 12] = [
    ("ec2-instance-healing", Layer::Infrastructure, 600, 3),
    ("asg-capacity-healing", Layer::Infrastructure, 300, 5),
    ("ebs-volume-healing", Layer::Infrastructure, 1800, 2),
    ("ecs-service-healing", Layer::Platform, 300, 3),
    ("lambda-function-healing", Layer::Platform, 600, 2),
    ("rds-instance-healing", Layer::Platform, 1800, 2),
    ("circuit-breaker-healing", Layer::Application, 300, 5),
    ("memory-leak-healing", Layer::Application, 600, 3),
    ("connection-pool-healing", Layer::Application, 180, 4),
    ("database-corruption-healing", Layer::Data, 3600, 2),
    ("cache-invalidation-healing", Layer::Data, 300, 3),
    ("backup-verification-healing", Layer::Data, 7200, 2),
];

#[test]
fn given_the_shipped_file_when_parsed_then_it_is_valid_and_equals_the_compiled_in_text() {
    let rules = shipped();
    assert_eq!(rules, parse(SHIPPED_RULES));
    assert!(!rules.rules().is_empty());
}

/// Rules beyond the reference sample that REL11-BP03 asks for (graceful degradation).
const PRACTICE_RULES: &[&str] = &["graceful-degradation-healing"];

#[test]
fn given_the_shipped_rules_then_the_non_network_rules_are_exactly_the_twelve_reference_rules() {
    let rules = shipped();
    let names: BTreeSet<&str> = rules
        .rules()
        .iter()
        .filter(|rule| rule.layer != Layer::Network)
        .map(|rule| rule.name.as_str())
        .filter(|name| !PRACTICE_RULES.contains(name))
        .collect();
    let expected: BTreeSet<&str> = REFERENCE_RULES.iter().map(|(name, ..)| *name).collect();
    assert_eq!(names, expected);
    for name in PRACTICE_RULES {
        assert!(rules.get(name).is_some(), "{name} is shipped");
    }
}

#[test]
fn given_the_shipped_rules_then_each_reference_rule_has_its_layer_cooldown_and_max_attempts() {
    let rules = shipped();
    for (name, layer, cooldown, max_attempts) in REFERENCE_RULES {
        let rule = rules
            .get(name)
            .unwrap_or_else(|| panic!("rule `{name}` is missing"));
        assert_eq!(rule.layer, layer, "{name}");
        assert_eq!(rule.policy.cooldown_seconds, cooldown, "{name}");
        assert_eq!(rule.policy.max_attempts, max_attempts, "{name}");
    }
}

#[test]
fn given_the_shipped_rules_then_the_network_layer_has_its_three_rules() {
    let rules = shipped();
    let network: Vec<&str> = rules
        .of_layer(Layer::Network)
        .map(|rule| rule.name.as_str())
        .collect();
    assert_eq!(
        network,
        [
            "alb-target-healing",
            "dns-failover-healing",
            "nat-route-healing"
        ]
    );
}

#[test]
fn given_the_shipped_rules_then_every_rule_is_enabled_enforcing_and_in_its_actions_layer() {
    for rule in shipped().rules() {
        assert!(rule.enabled, "{}", rule.name);
        assert_eq!(rule.mode, Mode::Enforce, "{}", rule.name);
        assert_eq!(rule.action.layer(), rule.layer, "{}", rule.name);
        assert!(!rule.description.is_empty(), "{}", rule.name);
    }
}

#[test]
fn given_the_shipped_rules_then_the_file_defaults_apply_to_every_rule() {
    for rule in shipped().rules() {
        assert_eq!(rule.policy.stable_period_seconds, 900, "{}", rule.name);
        assert_eq!(rule.policy.backoff_max_seconds, 3600, "{}", rule.name);
        assert_eq!(rule.policy.lease_seconds, 900, "{}", rule.name);
        assert_eq!(
            rule.policy.group_guard.max_healing_percent, 20,
            "{}",
            rule.name
        );
        assert_eq!(
            rule.policy.group_guard.max_unhealthy_percent, 50,
            "{}",
            rule.name
        );
    }
}

#[test]
fn given_the_shipped_rules_then_the_counts_per_layer_add_up() {
    let rules = shipped();
    let counts = rules.counts();
    for layer in Layer::ALL {
        let expected = rules.of_layer(layer).count();
        assert_eq!(counts.get(&layer), Some(&(expected, expected)), "{layer}");
    }
    for (layer, shipped) in [
        (Layer::Infrastructure, 3),
        (Layer::Platform, 3),
        (Layer::Application, 4),
        (Layer::Data, 3),
    ] {
        assert_eq!(counts.get(&layer), Some(&(shipped, shipped)), "{layer}");
    }
    let total: usize = counts.values().map(|(all, _)| all).sum();
    assert_eq!(total, rules.rules().len());
}

#[test]
fn given_the_shipped_rules_then_the_actions_carry_their_parameters() {
    let rules = shipped();
    let action = |name: &str| rules.get(name).expect("shipped rule").action.clone();
    assert_eq!(
        action("ec2-instance-healing"),
        Action::RecoverEc2Instance {
            reboot_first: true,
            allow_stop_start: true
        }
    );
    assert_eq!(
        action("lambda-function-healing"),
        Action::RollbackLambdaAlias {
            alias: "live".to_owned()
        }
    );
    assert_eq!(
        action("asg-capacity-healing"),
        Action::ScaleOutAutoScalingGroup {
            increment: 2,
            replace_unhealthy: true,
            health_check_type: Some("ELB".to_owned()),
            health_check_grace_period: 300,
        }
    );
    assert_eq!(
        action("ecs-service-healing"),
        Action::RestartEcsService {
            force_new_deployment: true,
            stop_unhealthy_tasks: true,
            desired_count_adjustment: 0,
            max_desired_count: None,
        }
    );
    assert_eq!(
        action("graceful-degradation-healing"),
        Action::EnableGracefulDegradation {
            parameter: "/autoheal/{resource}/degradation".to_owned(),
            shed: [
                "recommendations",
                "non-critical-writes",
                "expensive-queries"
            ]
            .map(str::to_owned)
            .to_vec(),
        }
    );
    assert_eq!(
        action("memory-leak-healing"),
        Action::RestartProcess {
            service: "app".to_owned(),
            document: "AWS-RunShellScript".to_owned(),
            heap_dump_command: None,
            heap_dump_timeout_seconds: 120,
            heap_dump_max_mb: 4096,
            heap_dump_directory: "/var/tmp/autoheal".to_owned(),
            stop_timeout_seconds: 30,
        }
    );
    assert_eq!(
        action("database-corruption-healing"),
        Action::RestoreDbToPointInTime {
            target_suffix: "-restored".to_owned(),
            lookback_minutes: 5,
            integrity_hook_function: None,
        }
    );
}

#[test]
fn given_a_rule_name_that_is_not_shipped_then_get_finds_nothing() {
    assert!(shipped().get("no-such-rule").is_none());
}

// ------------------------------------------------------------------ small valid files

const BASE: &str = r#"# two rules
[defaults]
stable_period_seconds = 900

[[rule]]
name = "first-rule"
layer = "infrastructure"
cooldown_seconds = 600
max_attempts = 3
[rule.trigger]
namespace = "AWS/EC2"
metrics = ["StatusCheckFailed"]
dimensions = ["InstanceId"]
[rule.resource]
dimension = "InstanceId"
[rule.action]
type = "recover-ec2-instance"

[[rule]]
name = "second-rule"
layer = "platform"
cooldown_seconds = 300
max_attempts = 2
[rule.trigger]
namespace = "AWS/Lambda"
metrics = ["Errors"]
dimensions = ["FunctionName"]
[rule.resource]
dimension = "FunctionName"
[rule.action]
type = "rollback-lambda-alias"
alias = "live"
"#;

#[test]
fn given_a_minimal_file_when_parsed_then_defaults_fill_in_what_is_not_written() {
    let rules = parse(BASE);
    assert_eq!(rules.rules().len(), 2);
    let first = rules.get("first-rule").expect("first rule");
    assert!(first.enabled);
    assert_eq!(first.mode, Mode::Enforce);
    assert_eq!(first.description, "");
    assert_eq!(
        first.action,
        Action::RecoverEc2Instance {
            reboot_first: true,
            allow_stop_start: true
        }
    );
    assert_eq!(first.policy.stable_period_seconds, 900);
    assert_eq!(first.policy.backoff_max_seconds, 3600);
    assert_eq!(first.policy.lease_seconds, 900);
}

#[test]
fn given_rules_in_a_file_when_parsed_then_file_order_is_kept() {
    let names: Vec<String> = parse(BASE).rules().iter().map(|r| r.name.clone()).collect();
    assert_eq!(names, ["first-rule", "second-rule"]);
}

#[test]
fn given_per_rule_timings_when_parsed_then_they_override_the_defaults() {
    let text = edit(
        BASE,
        "max_attempts = 2\n",
        "max_attempts = 2\nstable_period_seconds = 60\nbackoff_max_seconds = 120\nlease_seconds = 300\n",
    );
    let rules = parse(&text);
    let policy = rules.get("second-rule").expect("second rule").policy;
    assert_eq!(policy.stable_period_seconds, 60);
    assert_eq!(policy.backoff_max_seconds, 120);
    assert_eq!(policy.lease_seconds, 300);
    assert_eq!(
        rules
            .get("first-rule")
            .expect("first")
            .policy
            .backoff_max_seconds,
        3600
    );
}

#[test]
fn given_a_rule_with_its_own_group_guard_when_parsed_then_it_overrides_the_defaults() {
    let text = edit(
        BASE,
        "max_attempts = 2\n",
        "max_attempts = 2\nmax_healing_percent = 50\nmax_unhealthy_percent = 100\n",
    );
    let rules = parse(&text);
    let guard = rules
        .get("second-rule")
        .expect("second rule")
        .policy
        .group_guard;
    assert_eq!(
        (guard.max_healing_percent, guard.max_unhealthy_percent),
        (50, 100)
    );
    let first = rules.get("first-rule").expect("first").policy.group_guard;
    assert_eq!(
        (first.max_healing_percent, first.max_unhealthy_percent),
        (20, 50)
    );
}

#[test]
fn given_a_group_guard_that_is_no_percentage_then_the_line_and_field_are_named() {
    for (line, field) in [
        ("max_healing_percent = 0", "max_healing_percent"),
        ("max_unhealthy_percent = 101", "max_unhealthy_percent"),
        ("max_healing_percent = 300", "max_healing_percent"),
    ] {
        let text = edit(
            BASE,
            "max_attempts = 2\n",
            &format!("max_attempts = 2\n{line}\n"),
        );
        let problem = first_problem(&text);
        assert_eq!(
            problem.rule.as_deref(),
            Some("second-rule"),
            "{line}: {problem:?}"
        );
        assert_eq!(problem.field.as_deref(), Some(field), "{line}: {problem:?}");
        assert!(problem.line.is_some(), "{line}: {problem:?}");
    }
}

#[test]
fn given_no_defaults_table_when_parsed_then_the_built_in_defaults_apply() {
    let text = edit(BASE, "[defaults]\nstable_period_seconds = 900\n", "");
    let policy = parse(&text).get("first-rule").expect("first").policy;
    assert_eq!(policy.stable_period_seconds, 900);
    assert_eq!(policy.backoff_max_seconds, 3600);
    assert_eq!(policy.lease_seconds, 900);
}

#[test]
fn given_a_disabled_shadow_rule_when_parsed_then_it_is_disabled_and_in_shadow_mode() {
    let text = edit(
        BASE,
        "layer = \"platform\"\n",
        "layer = \"platform\"\nenabled = false\nmode = \"shadow\"\n",
    );
    let rules = parse(&text);
    let rule = rules.get("second-rule").expect("second rule");
    assert!(!rule.enabled);
    assert_eq!(rule.mode, Mode::Shadow);
    assert_eq!(rules.counts().get(&Layer::Platform), Some(&(1, 0)));
}

#[test]
fn given_an_empty_file_when_parsed_then_there_are_no_rules() {
    assert!(parse("").rules().is_empty());
    assert!(parse("# nothing yet\n").rules().is_empty());
}

#[test]
fn given_a_template_over_dimensions_and_the_region_when_parsed_then_it_is_accepted() {
    let text = edit(
        BASE,
        "dimension = \"FunctionName\"",
        "template = \"arn:aws:lambda:{aws.region}:{aws.account}:function:{FunctionName}\"",
    );
    let rules = parse(&text);
    assert_eq!(
        rules
            .get("second-rule")
            .expect("rule")
            .resource
            .template
            .as_deref(),
        Some("arn:aws:lambda:{aws.region}:{aws.account}:function:{FunctionName}")
    );
}

#[test]
fn given_a_trigger_by_alarm_name_prefix_only_when_parsed_then_it_is_accepted() {
    let text = edit(
        BASE,
        "namespace = \"AWS/Lambda\"\nmetrics = [\"Errors\"]\ndimensions = [\"FunctionName\"]\n",
        "alarm_name_prefixes = [\"lambda-\"]\n",
    );
    let rules = parse(&text);
    let trigger = &rules.get("second-rule").expect("rule").trigger;
    assert_eq!(trigger.namespace, None);
    assert_eq!(trigger.alarm_name_prefixes, ["lambda-"]);
}

// ------------------------------------------------------------------ invalid files

#[test]
fn given_an_unknown_action_type_when_parsed_then_the_problem_names_rule_action_type_and_line() {
    let text = edit(
        BASE,
        "type = \"rollback-lambda-alias\"",
        "type = \"reboot-everything\"",
    );
    let problem = first_problem(&text);
    assert_problem(
        &problem,
        "second-rule",
        "action.type",
        line_of(&text, "reboot-everything"),
    );
    assert!(problem.message.contains("reboot-everything"), "{problem:?}");
}

#[test]
fn given_a_negative_cooldown_when_parsed_then_the_problem_names_rule_cooldown_and_line() {
    let text = edit(BASE, "cooldown_seconds = 300", "cooldown_seconds = -5");
    let problem = first_problem(&text);
    assert_problem(
        &problem,
        "second-rule",
        "cooldown_seconds",
        line_of(&text, "cooldown_seconds = -5"),
    );
    assert!(problem.message.contains("-5"), "{problem:?}");
}

#[test]
fn given_a_cooldown_written_as_a_string_when_parsed_then_the_problem_names_cooldown() {
    let text = edit(BASE, "cooldown_seconds = 300", "cooldown_seconds = \"300\"");
    let problem = first_problem(&text);
    assert_problem(
        &problem,
        "second-rule",
        "cooldown_seconds",
        line_of(&text, "cooldown_seconds = \"300\""),
    );
}

#[test]
fn given_a_duplicate_rule_name_when_parsed_then_the_problem_names_the_rule_name_and_second_line() {
    let text = edit(BASE, "name = \"second-rule\"", "name = \"first-rule\"");
    let second_header = line_of(&text, "layer = \"platform\"") - 2;
    let problem = first_problem(&text);
    assert_problem(&problem, "first-rule", "name", second_header);
    assert!(problem.message.contains("duplicate"), "{problem:?}");
}

#[test]
fn given_a_missing_required_field_when_parsed_then_the_problem_names_rule_and_that_field() {
    let text = edit(
        BASE,
        "cooldown_seconds = 300\nmax_attempts = 2\n",
        "cooldown_seconds = 300\n",
    );
    let problem = first_problem(&text);
    assert_problem(
        &problem,
        "second-rule",
        "max_attempts",
        header_of(&text, "second-rule"),
    );
    assert!(problem.message.contains("missing"), "{problem:?}");
}

#[test]
fn given_a_missing_resource_table_when_parsed_then_the_problem_names_rule_and_resource() {
    let text = edit(BASE, "[rule.resource]\ndimension = \"FunctionName\"\n", "");
    let problem = first_problem(&text);
    assert_problem(
        &problem,
        "second-rule",
        "resource",
        header_of(&text, "second-rule"),
    );
}

#[test]
fn given_an_action_of_another_layer_when_parsed_then_the_problem_names_rule_and_action_type() {
    let text = edit(BASE, "layer = \"platform\"", "layer = \"data\"");
    let problem = first_problem(&text);
    assert_problem(
        &problem,
        "second-rule",
        "action.type",
        exact_line_of(&text, "type = \"rollback-lambda-alias\"", 1),
    );
    assert!(
        problem.message.contains("rollback-lambda-alias")
            && problem.message.contains("platform")
            && problem.message.contains("data"),
        "{problem:?}"
    );
}

#[test]
fn given_an_empty_resource_selector_when_parsed_then_the_problem_names_rule_and_resource() {
    let text = edit(
        BASE,
        "[rule.resource]\ndimension = \"FunctionName\"\n",
        "[rule.resource]\n",
    );
    let problem = first_problem(&text);
    assert_problem(
        &problem,
        "second-rule",
        "resource",
        header_of(&text, "second-rule"),
    );
}

#[test]
fn given_an_empty_resource_dimension_when_parsed_then_the_problem_names_resource_dimension() {
    let text = edit(BASE, "dimension = \"FunctionName\"", "dimension = \"  \"");
    let problem = first_problem(&text);
    assert_problem(
        &problem,
        "second-rule",
        "resource.dimension",
        header_of(&text, "second-rule"),
    );
}

#[test]
fn given_two_resource_selectors_when_parsed_then_the_problem_names_resource() {
    let text = edit(
        BASE,
        "dimension = \"FunctionName\"",
        "dimension = \"FunctionName\"\nalarm_tag = \"function\"",
    );
    assert_problem(
        &first_problem(&text),
        "second-rule",
        "resource",
        header_of(&text, "second-rule"),
    );
}

#[test]
fn given_bad_resource_templates_when_parsed_then_the_problem_names_resource_template() {
    for template in ["no-placeholder", "{FunctionName", "{}", "{a}}", "{a{b}"] {
        let text = edit(
            BASE,
            "dimension = \"FunctionName\"",
            &format!("template = \"{template}\""),
        );
        assert_problem(
            &first_problem(&text),
            "second-rule",
            "resource.template",
            header_of(&text, "second-rule"),
        );
    }
}

#[test]
fn given_max_attempts_zero_when_parsed_then_the_problem_names_rule_and_max_attempts() {
    let text = edit(BASE, "max_attempts = 2", "max_attempts = 0");
    assert_problem(
        &first_problem(&text),
        "second-rule",
        "max_attempts",
        header_of(&text, "second-rule"),
    );
}

#[test]
fn given_a_lease_of_zero_when_parsed_then_the_problem_names_lease_seconds() {
    let text = edit(
        BASE,
        "max_attempts = 2",
        "max_attempts = 2\nlease_seconds = 0",
    );
    assert_problem(
        &first_problem(&text),
        "second-rule",
        "lease_seconds",
        header_of(&text, "second-rule"),
    );
}

/// A lease shorter than the functions' timeout could end under a live invocation: a
/// redelivered event would then take over a stop and start under way.
#[test]
fn given_a_lease_shorter_than_the_functions_timeout_when_parsed_then_it_is_refused() {
    let short = autoheal_core::FUNCTION_TIMEOUT_SECONDS - 1;
    let text = edit(
        BASE,
        "max_attempts = 2",
        &format!("max_attempts = 2\nlease_seconds = {short}"),
    );
    let problem = first_problem(&text);
    assert_problem(
        &problem,
        "second-rule",
        "lease_seconds",
        header_of(&text, "second-rule"),
    );
    assert!(problem.to_string().contains("timeout"), "{problem}");
    let enough = autoheal_core::FUNCTION_TIMEOUT_SECONDS;
    let text = edit(
        BASE,
        "max_attempts = 2",
        &format!("max_attempts = 2\nlease_seconds = {enough}"),
    );
    let policy = parse(&text).get("second-rule").expect("second rule").policy;
    assert_eq!(policy.lease_seconds, enough);
}

#[test]
fn given_a_default_lease_of_zero_when_parsed_then_every_rule_reports_lease_seconds() {
    let text = edit(BASE, "stable_period_seconds = 900", "lease_seconds = 0");
    let found = problems(&text);
    let rules: Vec<Option<&str>> = found.iter().map(|p| p.rule.as_deref()).collect();
    assert_eq!(rules, [Some("first-rule"), Some("second-rule")]);
    assert!(
        found
            .iter()
            .all(|p| p.field.as_deref() == Some("lease_seconds"))
    );
}

#[test]
fn given_a_typo_in_a_rule_field_when_parsed_then_the_problem_names_the_unknown_field_once() {
    let text = edit(BASE, "cooldown_seconds = 300", "cooldown_secs = 300");
    let problem = first_problem(&text);
    assert_problem(
        &problem,
        "second-rule",
        "cooldown_secs",
        line_of(&text, "cooldown_secs"),
    );
    assert!(problem.message.contains("unknown field"), "{problem:?}");
}

#[test]
fn given_a_typo_in_a_nested_table_when_parsed_then_the_field_is_the_dotted_path() {
    for (from, to, field) in [
        (
            "namespace = \"AWS/Lambda\"",
            "namespaces = \"AWS/Lambda\"",
            "trigger.namespaces",
        ),
        (
            "dimension = \"FunctionName\"",
            "dimenson = \"FunctionName\"",
            "resource.dimenson",
        ),
    ] {
        let text = edit(BASE, from, to);
        assert_problem(
            &first_problem(&text),
            "second-rule",
            field,
            line_of(&text, to),
        );
    }
}

#[test]
fn given_a_typo_in_an_action_parameter_when_parsed_then_the_problem_points_at_the_action_table() {
    let text = edit(BASE, "alias = \"live\"", "alais = \"live\"");
    // The action is read as a whole (its `type` picks the parameters), so the line is the
    // one of its table.
    let action_table = line_of(&text, "alais") - 2;
    assert_eq!(exact_line_of(&text, "[rule.action]", 2), action_table);
    assert_problem(
        &first_problem(&text),
        "second-rule",
        "action.alais",
        action_table,
    );
}

#[test]
fn given_an_unknown_layer_when_parsed_then_the_problem_names_rule_and_layer() {
    let text = edit(BASE, "layer = \"platform\"", "layer = \"plattform\"");
    assert_problem(
        &first_problem(&text),
        "second-rule",
        "layer",
        line_of(&text, "plattform"),
    );
}

#[test]
fn given_a_value_without_quotes_when_parsed_then_the_toml_error_names_rule_field_and_line() {
    let text = edit(BASE, "cooldown_seconds = 300", "cooldown_seconds = soon");
    let problem = first_problem(&text);
    assert_problem(
        &problem,
        "second-rule",
        "cooldown_seconds",
        line_of(&text, "cooldown_seconds = soon"),
    );
    assert!(problem.message.starts_with("not valid TOML"), "{problem:?}");
}

#[test]
fn given_an_unterminated_string_in_an_action_when_parsed_then_the_toml_error_names_action_field() {
    let text = edit(BASE, "alias = \"live\"", "alias = \"live");
    let problem = first_problem(&text);
    assert_problem(
        &problem,
        "second-rule",
        "action.alias",
        line_of(&text, "alias = \"live"),
    );
}

#[test]
fn given_a_duplicated_key_when_parsed_then_the_toml_error_names_rule_field_and_line() {
    let text = edit(
        BASE,
        "max_attempts = 2",
        "max_attempts = 2\nmax_attempts = 4",
    );
    let problem = first_problem(&text);
    assert_problem(
        &problem,
        "second-rule",
        "max_attempts",
        line_of(&text, "max_attempts = 4"),
    );
}

#[test]
fn given_an_unclosed_table_header_when_parsed_then_the_toml_error_names_rule_and_table() {
    let text = edit(
        BASE,
        "[rule.resource]\ndimension = \"FunctionName\"",
        "[rule.resource\ndimension = \"FunctionName\"",
    );
    let problem = first_problem(&text);
    assert_problem(
        &problem,
        "second-rule",
        "resource",
        exact_line_of(&text, "[rule.resource", 1),
    );
}

#[test]
fn given_invalid_toml_in_a_rule_without_a_readable_name_then_the_rule_is_named_by_position() {
    let text = edit(BASE, "name = \"second-rule\"", "name = \"second-rule");
    let problem = first_problem(&text);
    assert_problem(
        &problem,
        "rule #2",
        "name",
        line_of(&text, "name = \"second-rule"),
    );
}

#[test]
fn given_a_typo_in_the_defaults_when_parsed_then_the_problem_names_the_defaults_field() {
    let text = edit(
        BASE,
        "stable_period_seconds = 900",
        "stable_period_secs = 900",
    );
    let problem = first_problem(&text);
    assert_eq!(problem.rule, None, "{problem:?}");
    assert_eq!(
        problem.field.as_deref(),
        Some("defaults.stable_period_secs"),
        "{problem:?}"
    );
    assert_eq!(problem.line, Some(line_of(&text, "stable_period_secs")));
}

#[test]
fn given_the_first_rule_without_a_name_then_the_problem_names_its_name_field_and_header() {
    // The array of rules and its first table start at the same header: the rule is meant.
    let text = edit(BASE, "name = \"first-rule\"\n", "");
    let problem = first_problem(&text);
    assert_problem(
        &problem,
        "rule #1",
        "name",
        exact_line_of(&text, "[[rule]]", 1),
    );
    assert!(
        problem.message.contains("missing field `name`"),
        "{problem:?}"
    );
}

#[test]
fn given_a_wrong_item_of_a_list_or_an_inline_table_then_the_field_is_its_path() {
    let inline = edit(
        BASE,
        "[rule.trigger]\nnamespace = \"AWS/Lambda\"\nmetrics = [\"Errors\"]\ndimensions = [\"FunctionName\"]",
        "trigger = { namespace = \"AWS/Lambda\", metrics = [\"Errors\", 5], dimensions = [\"FunctionName\"] }",
    );
    for (text, rule, field, written) in [
        (
            edit(
                BASE,
                "metrics = [\"StatusCheckFailed\"]",
                "metrics = [\"StatusCheckFailed\", 5]",
            ),
            "first-rule",
            "trigger.metrics.[1]",
            "metrics = [\"StatusCheckFailed\", 5]",
        ),
        (inline, "second-rule", "trigger.metrics.[1]", "trigger = {"),
    ] {
        let problem = first_problem(&text);
        assert_problem(&problem, rule, field, line_of(&text, written));
        assert!(problem.message.contains("expected a string"), "{problem:?}");
    }
}

#[test]
fn given_bad_rule_names_when_parsed_then_the_problem_names_the_name_field() {
    for (name, label) in [
        ("Second_Rule", "Second_Rule"),
        ("2nd", "2nd"),
        ("", "rule #2"),
    ] {
        let text = edit(
            BASE,
            "name = \"second-rule\"",
            &format!("name = \"{name}\""),
        );
        let problem = first_problem(&text);
        assert_eq!(problem.rule.as_deref(), Some(label), "{problem:?}");
        assert_eq!(problem.field.as_deref(), Some("name"), "{problem:?}");
        assert!(problem.line.is_some(), "{problem:?}");
    }
}

#[test]
fn given_a_trigger_without_namespace_or_prefix_when_parsed_then_the_problem_names_trigger() {
    let text = edit(
        BASE,
        "namespace = \"AWS/Lambda\"\nmetrics = [\"Errors\"]\ndimensions = [\"FunctionName\"]\n",
        "",
    );
    assert_problem(
        &first_problem(&text),
        "second-rule",
        "trigger",
        header_of(&text, "second-rule"),
    );
}

#[test]
fn given_metrics_without_namespace_when_parsed_then_the_problem_names_trigger_namespace() {
    let text = edit(
        BASE,
        "namespace = \"AWS/Lambda\"\n",
        "alarm_name_prefixes = [\"lambda-\"]\n",
    );
    assert_problem(
        &first_problem(&text),
        "second-rule",
        "trigger.namespace",
        header_of(&text, "second-rule"),
    );
}

#[test]
fn given_empty_strings_in_a_trigger_when_parsed_then_the_problem_names_the_list() {
    let text = edit(
        BASE,
        "metrics = [\"Errors\"]",
        "metrics = [\"Errors\", \"\"]",
    );
    assert_problem(
        &first_problem(&text),
        "second-rule",
        "trigger.metrics",
        header_of(&text, "second-rule"),
    );
}

#[test]
fn given_bad_action_parameters_when_parsed_then_the_problem_names_the_parameter() {
    let text = edit(BASE, "alias = \"live\"", "alias = \"\"");
    assert_problem(
        &first_problem(&text),
        "second-rule",
        "action.alias",
        line_of(&text, "alias = \"\""),
    );

    let text = edit(
        BASE,
        "type = \"recover-ec2-instance\"",
        "type = \"scale-out-auto-scaling-group\"\nincrement = 0",
    );
    assert_problem(
        &first_problem(&text),
        "first-rule",
        "action.increment",
        line_of(&text, "increment = 0"),
    );
}

#[test]
fn given_problems_in_two_rules_when_parsed_then_all_are_reported_in_file_order() {
    let text = edit(BASE, "max_attempts = 3", "max_attempts = 0");
    let text = edit(&text, "layer = \"platform\"", "layer = \"network\"");
    let found = problems(&text);
    assert_eq!(found.len(), 2, "{found:?}");
    assert_problem(
        &found[0],
        "first-rule",
        "max_attempts",
        header_of(&text, "first-rule"),
    );
    assert_problem(
        &found[1],
        "second-rule",
        "action.type",
        exact_line_of(&text, "type = \"rollback-lambda-alias\"", 1),
    );
}

#[test]
fn given_a_rules_error_when_displayed_then_it_reads_line_rule_field_and_message() {
    let text = edit(BASE, "max_attempts = 2", "max_attempts = 0");
    let error = RuleSet::from_toml(&text).expect_err("max_attempts 0 is invalid");
    let line = header_of(&text, "second-rule");
    assert_eq!(
        error.to_string(),
        format!("line {line}: rule `second-rule`: field `max_attempts`: must be at least 1")
    );
}

#[test]
fn given_the_shipped_file_with_one_mistake_when_parsed_then_the_shipped_rule_is_named() {
    let text = edit(
        SHIPPED_RULES,
        "type = \"repair-ebs-volume\"",
        "type = \"reboot-everything\"",
    );
    assert_problem(
        &first_problem(&text),
        "ebs-volume-healing",
        "action.type",
        line_of(&text, "reboot-everything"),
    );

    let text = edit(
        SHIPPED_RULES,
        "cooldown_seconds = 300\nmax_attempts = 5",
        "cooldown_seconds = -300\nmax_attempts = 5",
    );
    assert_problem(
        &first_problem(&text),
        "asg-capacity-healing",
        "cooldown_seconds",
        line_of(&text, "cooldown_seconds = -300"),
    );
}

// ------------------------------------------------------------------ snapshot retention

/// `BASE` with a third rule whose action is `action` (its lines after `type`).
fn with_snapshot_rule(action: &str) -> String {
    format!(
        r#"{BASE}
[[rule]]
name = "third-rule"
layer = "platform"
cooldown_seconds = 1800
max_attempts = 2
[rule.trigger]
namespace = "AWS/RDS"
dimensions = ["DBInstanceIdentifier"]
[rule.resource]
dimension = "DBInstanceIdentifier"
[rule.action]
type = "reboot-rds-instance"
{action}"#
    )
}

#[test]
fn given_the_shipped_rules_then_the_snapshot_taking_actions_keep_three_snapshots_of_any_age() {
    let rules = shipped();
    let action = |name: &str| rules.get(name).expect("shipped rule").action.clone();
    assert_eq!(
        action("ebs-volume-healing"),
        Action::RepairEbsVolume {
            snapshot_first: true,
            target_volume_type: "gp3".to_owned(),
            force_detach: false,
            keep_snapshots: 3,
            snapshot_max_age_days: None,
        }
    );
    assert_eq!(
        action("rds-instance-healing"),
        Action::RebootRdsInstance {
            snapshot_first: true,
            force_failover: false,
            keep_snapshots: 3,
            snapshot_max_age_days: None,
        }
    );
    assert_eq!(
        action("backup-verification-healing"),
        Action::VerifyBackup {
            restore_instance_class: "db.t3.micro".to_owned(),
            keep_snapshots: 3,
            snapshot_max_age_days: None,
            min_backup_retention_days: Some(7),
            preferred_backup_window: None,
        }
    );
    // Set explicitly, so that the file shows them.
    for name in ["repair-ebs-volume", "reboot-rds-instance", "verify-backup"] {
        let after = SHIPPED_RULES
            .split(&format!("type = \"{name}\""))
            .nth(1)
            .expect("the action")
            .split("[[rule]]")
            .next()
            .expect("its table");
        assert!(after.contains("\nkeep_snapshots = 3\n"), "{name}");
    }
}

#[test]
fn given_no_retention_parameters_then_three_snapshots_are_kept_whatever_their_age() {
    let rules = parse(&with_snapshot_rule(""));
    assert_eq!(
        rules.get("third-rule").expect("third rule").action,
        Action::RebootRdsInstance {
            snapshot_first: true,
            force_failover: false,
            keep_snapshots: 3,
            snapshot_max_age_days: None,
        }
    );
}

#[test]
fn given_retention_parameters_then_they_are_read() {
    let rules = parse(&with_snapshot_rule(
        "keep_snapshots = 1\nsnapshot_max_age_days = 30\n",
    ));
    assert_eq!(
        rules.get("third-rule").expect("third rule").action,
        Action::RebootRdsInstance {
            snapshot_first: true,
            force_failover: false,
            keep_snapshots: 1,
            snapshot_max_age_days: Some(30),
        }
    );
}

#[test]
fn given_keep_snapshots_zero_then_the_problem_names_the_rule_and_field() {
    let text = with_snapshot_rule("keep_snapshots = 0\n");
    let problem = first_problem(&text);
    assert_problem(
        &problem,
        "third-rule",
        "action.keep_snapshots",
        line_of(&text, "keep_snapshots = 0"),
    );
    assert!(problem.message.contains("at least 1"), "{problem:?}");
}

#[test]
fn given_a_maximum_snapshot_age_of_zero_then_the_problem_names_the_rule_and_field() {
    let text = with_snapshot_rule("snapshot_max_age_days = 0\n");
    let problem = first_problem(&text);
    assert_problem(
        &problem,
        "third-rule",
        "action.snapshot_max_age_days",
        line_of(&text, "snapshot_max_age_days = 0"),
    );
    assert!(problem.message.contains("at least 1"), "{problem:?}");
}

#[test]
fn given_a_wrong_value_of_a_retention_parameter_then_the_problem_names_its_line_and_field() {
    for (written, field) in [
        ("keep_snapshots = -1", "action.keep_snapshots"),
        ("keep_snapshots = \"three\"", "action.keep_snapshots"),
        ("keep_snapshots = 4.5", "action.keep_snapshots"),
        (
            "snapshot_max_age_days = -30",
            "action.snapshot_max_age_days",
        ),
        (
            "snapshot_max_age_days = true",
            "action.snapshot_max_age_days",
        ),
    ] {
        let text = with_snapshot_rule(&format!("force_failover = true\n{written}\n"));
        let problem = first_problem(&text);
        assert_problem(&problem, "third-rule", field, line_of(&text, written));
    }
}

#[test]
fn given_a_wrong_value_of_any_action_parameter_then_the_problem_names_its_line_and_field() {
    let text = edit(
        BASE,
        "type = \"recover-ec2-instance\"",
        "type = \"scale-out-auto-scaling-group\"\nincrement = -2\nreplace_unhealthy = true",
    );
    assert_problem(
        &first_problem(&text),
        "first-rule",
        "action.increment",
        line_of(&text, "increment = -2"),
    );
    // A wrong value of a required parameter.
    let text = edit(BASE, "alias = \"live\"", "alias = 7");
    assert_problem(
        &first_problem(&text),
        "second-rule",
        "action.alias",
        line_of(&text, "alias = 7"),
    );
}

#[test]
fn given_the_shipped_file_with_a_wrong_retention_value_then_the_rule_line_and_field_are_named() {
    let text = edit(
        SHIPPED_RULES,
        "restore_instance_class = \"db.t3.micro\"",
        "restore_instance_class = \"db.t3.micro\"\nsnapshot_max_age_days = -7",
    );
    let problem = first_problem(&text);
    assert_problem(
        &problem,
        "backup-verification-healing",
        "action.snapshot_max_age_days",
        line_of(&text, "snapshot_max_age_days = -7"),
    );
    assert_eq!(
        problem.to_string(),
        format!(
            "line {}: rule `backup-verification-healing`: field `action.snapshot_max_age_days`: invalid value: integer `-7`, expected u32",
            line_of(&text, "snapshot_max_age_days = -7")
        )
    );

    let text = edit(SHIPPED_RULES, "keep_snapshots = 3", "keep_snapshots = 0");
    assert_problem(
        &first_problem(&text),
        "ebs-volume-healing",
        "action.keep_snapshots",
        line_of(&text, "keep_snapshots = 0"),
    );
}

#[test]
fn given_a_rules_file_over_the_size_limit_when_parsed_then_it_is_refused_without_parsing() {
    let padding = "# padding\n".repeat(autoheal_core::model::rules::MAX_RULES_BYTES / 10 + 1);
    let text = format!("{SHIPPED_RULES}{padding}");

    let problems = problems(&text);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].message.contains("more than the 262144"),
        "{}",
        problems[0].message
    );
    // The shipped file itself is far below the limit.
    assert!(SHIPPED_RULES.len() * 4 < autoheal_core::model::rules::MAX_RULES_BYTES);
}

#[test]
fn given_the_parameters_of_the_practice_then_validate_accepts_them_and_names_the_line_of_a_wrong_one()
 {
    // Every optional parameter the shipped file shows in a comment, switched on, is valid.
    let all_on = [
        ("# heap_dump_command = ", "heap_dump_command = "),
        (
            "# heap_dump_timeout_seconds = ",
            "heap_dump_timeout_seconds = ",
        ),
        ("# heap_dump_max_mb = ", "heap_dump_max_mb = "),
        ("# integrity_hook_function = ", "integrity_hook_function = "),
        ("# preferred_backup_window = ", "preferred_backup_window = "),
        ("# max_desired_count = ", "max_desired_count = "),
        (
            "# desired_count_adjustment = ",
            "desired_count_adjustment = ",
        ),
    ]
    .iter()
    .fold(SHIPPED_RULES.to_owned(), |text, (from, to)| {
        edit(&text, from, to)
    });
    let rules = parse(&all_on);
    assert!(matches!(
        &rules.get("memory-leak-healing").expect("shipped").action,
        Action::RestartProcess { heap_dump_command: Some(command), .. } if command.contains("{output}")
    ));

    let cases = [
        (
            "health_check_type = \"ELB\"",
            "health_check_type = \"EC2\"",
            "asg-capacity-healing",
            "action.health_check_type",
        ),
        (
            "health_check_grace_period = 300",
            "health_check_grace_period = 90000",
            "asg-capacity-healing",
            "action.health_check_grace_period",
        ),
        (
            "# desired_count_adjustment = 1",
            "desired_count_adjustment = 9999",
            "ecs-service-healing",
            "action.desired_count_adjustment",
        ),
        (
            "# max_desired_count = 20",
            "max_desired_count = 0",
            "ecs-service-healing",
            "action.max_desired_count",
        ),
        (
            "shed = [\"recommendations\", \"non-critical-writes\", \"expensive-queries\"]",
            "shed = []",
            "graceful-degradation-healing",
            "action.shed",
        ),
        (
            "# heap_dump_command = \"jcmd {pid} GC.heap_dump {output}\"",
            "heap_dump_command = \"jcmd {pid} GC.heap_dump\"",
            "memory-leak-healing",
            "action.heap_dump_command",
        ),
        (
            "# heap_dump_command = \"jcmd {pid} GC.heap_dump {output}\"",
            "heap_dump_command = \"jcmd {pid} {core} {output}\"",
            "memory-leak-healing",
            "action.heap_dump_command",
        ),
        (
            "# heap_dump_command = \"jcmd {pid} GC.heap_dump {output}\"",
            "heap_dump_command = \"curl -T {output} https://example.com/ #{pid}\"",
            "memory-leak-healing",
            "action.heap_dump_command",
        ),
        (
            "# heap_dump_timeout_seconds = 120",
            "heap_dump_timeout_seconds = 0",
            "memory-leak-healing",
            "action.heap_dump_timeout_seconds",
        ),
        (
            "# heap_dump_max_mb = 4096",
            "heap_dump_max_mb = 0",
            "memory-leak-healing",
            "action.heap_dump_max_mb",
        ),
        (
            "stop_timeout_seconds = 30",
            "stop_timeout_seconds = 0",
            "memory-leak-healing",
            "action.stop_timeout_seconds",
        ),
        (
            "document = \"AWS-RunShellScript\"",
            "document = \"AWS-RunShellScript\"\nheap_dump_directory = \"/var/tmp/../etc\"",
            "memory-leak-healing",
            "action.heap_dump_directory",
        ),
        (
            "# integrity_hook_function = \"autoheal-integrity-hook\"",
            "integrity_hook_function = \" \"",
            "database-corruption-healing",
            "action.integrity_hook_function",
        ),
        (
            "min_backup_retention_days = 7",
            "min_backup_retention_days = 40",
            "backup-verification-healing",
            "action.min_backup_retention_days",
        ),
        (
            "# preferred_backup_window = \"03:00-04:00\"",
            "preferred_backup_window = \"03:00-03:10\"",
            "backup-verification-healing",
            "action.preferred_backup_window",
        ),
        (
            "# preferred_backup_window = \"03:00-04:00\"",
            "preferred_backup_window = \"3am\"",
            "backup-verification-healing",
            "action.preferred_backup_window",
        ),
    ];
    for (from, to, rule, field) in cases {
        let text = edit(SHIPPED_RULES, from, to);
        let problem = first_problem(&text);
        let wrong_line = to.lines().last().expect("a line");
        assert_problem(&problem, rule, field, line_of(&text, wrong_line));
        assert!(
            problem.to_string().starts_with(&format!(
                "line {}: rule `{rule}`",
                line_of(&text, wrong_line)
            )),
            "{problem}"
        );
    }
}

#[test]
fn given_backup_windows_then_their_length_is_read_across_midnight() {
    assert_eq!(autoheal_core::backup_window_minutes("03:00-04:00"), Ok(60));
    assert_eq!(autoheal_core::backup_window_minutes("23:30-00:15"), Ok(45));
    for bad in [
        "03:00-03:29",
        "3:00-04:00",
        "03:00",
        "24:00-01:00",
        "03:60-05:00",
        "",
    ] {
        assert!(
            autoheal_core::backup_window_minutes(bad).is_err(),
            "{bad:?}"
        );
    }
}

// ------------------------------------------------------------------ rules built in code

#[test]
fn given_the_shipped_rules_when_rebuilt_from_rules_then_the_set_is_the_same() {
    let shipped = shipped();

    let rebuilt = RuleSet::from_rules(shipped.rules().to_vec())
        .unwrap_or_else(|e| panic!("the shipped rules must be valid:\n{e}"));

    assert_eq!(rebuilt, shipped);
}

#[test]
fn given_rules_built_in_code_when_invalid_then_each_problem_names_rule_and_field_without_line() {
    let shipped = shipped();
    let mut rules = shipped.rules().to_vec();
    rules.push(rules[0].clone());
    rules[1].policy.max_attempts = 0;
    rules[2].trigger.alarm_name_prefixes.push(" ".to_owned());

    let problems = RuleSet::from_rules(rules)
        .expect_err("the rules should be rejected")
        .problems;

    let named: Vec<(Option<&str>, Option<&str>, Option<usize>)> = problems
        .iter()
        .map(|p| (p.rule.as_deref(), p.field.as_deref(), p.line))
        .collect();
    assert_eq!(
        named,
        [
            (
                Some(shipped.rules()[1].name.as_str()),
                Some("max_attempts"),
                None
            ),
            (
                Some(shipped.rules()[2].name.as_str()),
                Some("trigger.alarm_name_prefixes"),
                None
            ),
            (Some(shipped.rules()[0].name.as_str()), Some("name"), None),
        ]
    );
    assert_eq!(problems[2].message, "duplicate rule name");
}
