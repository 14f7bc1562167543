//! A function or the command line that cannot start says why in exactly one line on stderr,
//! naming the variable, where it is set and what to do, and exits with status 1.

use std::process::{Command, Output};

use autoheal_tests::{binary, workspace};

/// The one line `output` wrote to stderr, after checking that it wrote nothing else and
/// failed with status 1.
fn the_one_line(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        output.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one line: {stderr}");
    lines[0].to_owned()
}

/// A layer's function started by hand, with only `vars` in its environment.
fn function(vars: &[(&str, &str)]) -> Output {
    function_of("autoheal-infrastructure", vars)
}

fn function_of(binary_name: &str, vars: &[(&str, &str)]) -> Output {
    Command::new(binary(binary_name))
        .env_clear()
        .envs(vars.iter().copied())
        .output()
        .expect("run the function")
}

/// What the stack sets for every function.
const STACK_SETS: [(&str, &str); 3] = [
    (
        "AUTOHEAL_TOPIC_ARN",
        "arn:aws:sns:us-east-1:123456789012:autoheal",
    ),
    (
        "AUTOHEAL_SCHEDULER_ROLE_ARN",
        "arn:aws:iam::123456789012:role/autoheal-scheduler",
    ),
    (
        "AUTOHEAL_FUNCTION_ARN",
        "arn:aws:lambda:us-east-1:123456789012:function:autoheal-application",
    ),
];

/// The command line with `vars` added to a clean environment.
fn autoheal(args: &[&str], vars: &[(&str, &str)]) -> Output {
    Command::new(binary("autoheal"))
        .args(args)
        .env_clear()
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(vars.iter().copied())
        .output()
        .expect("run autoheal")
}

fn event() -> String {
    workspace()
        .join("events/ec2-instance-healing.alarm.json")
        .display()
        .to_string()
}

#[test]
fn a_function_started_without_its_topic_names_the_variable_and_who_sets_it() {
    let line = the_one_line(&function(&[]));
    assert_eq!(
        line,
        "error: AUTOHEAL_TOPIC_ARN is not set: the stack sets it; when running a function by \
         hand, set it to the notification topic's ARN"
    );
}

#[test]
fn a_function_started_outside_lambda_names_the_variable_lambda_sets() {
    let line = the_one_line(&function(&[
        (
            "AUTOHEAL_TOPIC_ARN",
            "arn:aws:sns:us-east-1:123456789012:autoheal",
        ),
        (
            "AUTOHEAL_SCHEDULER_ROLE_ARN",
            "arn:aws:iam::123456789012:role/autoheal-scheduler",
        ),
        (
            "AUTOHEAL_FUNCTION_ARN",
            "arn:aws:lambda:us-east-1:123456789012:function:autoheal-infrastructure",
        ),
    ]));
    assert_eq!(
        line,
        "error: AWS_LAMBDA_RUNTIME_API is not set: Lambda sets it for a function's runtime; to \
         run a function outside Lambda, start it under `cargo lambda watch`, which sets it"
    );
}

/// The application function restarts processes only with the stack's restart document, which
/// the stack names: without it, it does not start.
#[test]
fn the_application_function_without_its_restart_document_names_the_variable() {
    let line = the_one_line(&function_of("autoheal-application", &STACK_SETS));
    assert_eq!(
        line,
        "error: AUTOHEAL_RESTART_DOCUMENT is not set: the stack sets it; when running a function \
         by hand, set it to the name of the stack's restart document (RestartProcessDocument, \
         `<stack>-restart-process`), the one document a restart sends"
    );
}

#[test]
fn the_command_line_with_an_invalid_budget_names_the_variable_and_its_stack_parameter() {
    let output = autoheal(
        &["explain", "--event", &event()],
        &[("AUTOHEAL_LAYER_BUDGET", "ten/900")],
    );
    assert_eq!(
        the_one_line(&output),
        "error: AUTOHEAL_LAYER_BUDGET=`ten/900` is invalid: the number of actions is not a whole \
         number; set it to `N/SECONDS` (at most N actions in any SECONDS, e.g. `10/900`) or \
         `off` (the stack sets it from its parameter LayerBudget)"
    );
}

#[test]
fn the_command_line_with_an_unknown_crash_point_says_what_to_set_it_to() {
    // The endpoint is never called: the crash point is read before the first request.
    let output = autoheal(
        &[
            "invoke",
            "--event",
            &event(),
            "--endpoint-url",
            "http://127.0.0.1:9",
            "--topic-arn",
            "arn:aws:sns:us-east-1:123456789012:autoheal",
        ],
        &[("AUTOHEAL_CRASH_POINT", "midway")],
    );
    assert_eq!(
        the_one_line(&output),
        "error: AUTOHEAL_CRASH_POINT=`midway` is invalid: set it to `before-action` or \
         `after-action`, or unset it (only the crash tests set it)"
    );
}

#[test]
fn the_command_line_against_aws_without_a_follow_up_target_names_flags_and_variables() {
    let output = autoheal(
        &[
            "invoke",
            "--event",
            &event(),
            "--topic-arn",
            "arn:aws:sns:us-east-1:123456789012:autoheal",
        ],
        &[],
    );
    let line = the_one_line(&output);
    for named in [
        "--scheduler-role-arn",
        "--function-arn-prefix",
        "AUTOHEAL_SCHEDULER_ROLE_ARN",
        "AUTOHEAL_FUNCTION_ARN_PREFIX",
        "FollowUpSchedulerRoleArn",
        "FunctionArnPrefix",
    ] {
        assert!(line.contains(named), "{named}: {line}");
    }
}

/// A scope the stack cannot have set is refused before anything is read or changed.
#[test]
fn a_function_with_an_unknown_scope_names_the_variable_and_its_stack_parameter() {
    let mut vars = STACK_SETS.to_vec();
    vars.push(("AUTOHEAL_SCOPE", "everything"));
    let line = the_one_line(&function(&vars));
    assert_eq!(
        line,
        "error: AUTOHEAL_SCOPE=`everything` is invalid: `everything` is not a scope: `tagged` or \
         `all`; set it to `tagged` (only resources tagged autoheal:protect=true) or `all` (the \
         stack sets it from its parameter Scope)"
    );
}

/// Member accounts need the function's own account (what is home, healed with its own
/// credentials) and the member role's name: a function given them without does not start.
#[test]
fn a_function_given_member_accounts_without_its_home_or_role_names_the_variable() {
    let mut vars = STACK_SETS.to_vec();
    vars.push(("AUTOHEAL_MEMBER_ACCOUNTS", "111111111111"));
    assert_eq!(
        the_one_line(&function(&vars)),
        "error: AUTOHEAL_HOME_ACCOUNT is not set: the stack sets it; when running a function by \
         hand, set it to the 12-digit id of the account the function runs in (AWS::AccountId), \
         which it heals with its own credentials"
    );
    vars.push(("AUTOHEAL_HOME_ACCOUNT", "123456789012"));
    assert_eq!(
        the_one_line(&function(&vars)),
        "error: AUTOHEAL_MEMBER_ROLE_NAME is not set: the stack sets it; when running a \
         function by hand, set it to the name of the role member.yaml creates in every member \
         account (its MemberRoleName)"
    );
    vars.push(("AUTOHEAL_MEMBER_ROLE_NAME", "autoheal-member"));
    vars.push(("AUTOHEAL_MEMBER_REGIONS", "us-east-1,Frankfurt"));
    assert_eq!(
        the_one_line(&function(&vars)),
        "error: AUTOHEAL_MEMBER_REGIONS=`us-east-1,Frankfurt` is invalid: `Frankfurt` is not a \
         region name; set it to a comma-separated list of region names (e.g. \
         `eu-west-1,us-east-1`) (the stack sets it from its parameter MemberRegions)"
    );
}
