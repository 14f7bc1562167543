//! Where the functions heal, as the stack configures them: the home account always (and
//! nothing else, in one account); with HealMemberAccounts, the member role of the allowed
//! accounts, assumed in a session named after a run, and nothing else of any account. What
//! the stack sets in the functions' environment is what they read.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use autoheal_aws::FunctionConfig;
use autoheal_aws::config::env;
use autoheal_core::{Layer, Limit, MemberAccounts, Place};
use autoheal_tests::cfn::{ACCOUNT, PARTITION, REGION, Stack};
use autoheal_tests::iam::{Request, allowed, request};
use autoheal_tests::template;

use super::reference_stack;

const MEMBER: &str = "111122223333";
const OTHER_MEMBER: &str = "444455556666";
const STRANGER: &str = "777788889999";
const ORGANIZATION: &str = "o-a1b2c3d4e5";

const LAYER_FUNCTIONS: [(&str, Layer); 5] = [
    ("InfrastructureFunction", Layer::Infrastructure),
    ("PlatformFunction", Layer::Platform),
    ("ApplicationFunction", Layer::Application),
    ("DataFunction", Layer::Data),
    ("NetworkFunction", Layer::Network),
];

/// Assuming `name` in `account` (a member of `organization`, if any) in a session `session`,
/// with the request context AWS gives it.
fn assume(account: &str, name: &str, organization: Option<&str>, session: &str) -> Request {
    let request = request(
        "sts:AssumeRole",
        &format!("arn:{PARTITION}:iam::{account}:role/{name}"),
    )
    .with("sts:RoleSessionName", session)
    .with("aws:ResourceAccount", account);
    match organization {
        Some(organization) => request.with("aws:ResourceOrgID", organization),
        None => request,
    }
}

/// A request, whether the layer functions may make it, and why.
type Case<'a> = (Request, bool, &'a str);

/// Which of `cases` (request, why) the functions' policies in `stack` decide otherwise than
/// `expected`: every layer function the same, and the detection function never.
fn wrong(stack: &Stack, cases: &[Case<'_>]) -> Vec<String> {
    let policies = stack.function_statements(&template());
    let mut wrong = Vec::new();
    for (function, statements) in &policies {
        let layer = LAYER_FUNCTIONS.iter().any(|(name, _)| name == function);
        for (request, expected, why) in cases {
            let expected = *expected && layer;
            if allowed(statements, request) != expected {
                wrong.push(format!(
                    "{function}: {} on {} with {:?} should be {} ({why})",
                    request.action,
                    request.resource,
                    request.context,
                    if expected { "allowed" } else { "denied" }
                ));
            }
        }
    }
    wrong
}

#[test]
fn one_account_assumes_no_role_and_an_organization_only_its_member_role_when_asked() {
    let run = "autoheal-3f1c9a4e-1b2c-4d5e-8f90-0a1b2c3d4e5f";
    let org = Some(ORGANIZATION);
    let role = "autoheal-member";
    let one_account = reference_stack();
    let organization = reference_stack().with_parameter("OrganizationId", ORGANIZATION);
    let healing = organization
        .clone()
        .with_parameter("HealMemberAccounts", "true");
    let listed = reference_stack()
        .with_parameter("MemberAccounts", &format!("{MEMBER},{OTHER_MEMBER}"))
        .with_parameter("HealMemberAccounts", "true");
    let listed_in_organization = healing.clone().with_parameter("MemberAccounts", MEMBER);
    let renamed = healing.clone().with_parameter("MemberRoleName", "healer");
    #[rustfmt::skip]
    let stacks: Vec<(&str, &Stack, Vec<Case<'_>>)> = vec![
        ("one account", &one_account, vec![
            (assume(MEMBER, role, org, run), false, "no member account"),
        ]),
        ("an organization, not asked to heal", &organization, vec![
            (assume(MEMBER, role, org, run), false, "not asked"),
        ]),
        ("every account of an organization", &healing, vec![
            (assume(MEMBER, role, org, run), true, "a member account's role"),
            (assume(OTHER_MEMBER, role, org, run), true, "any member account's"),
            (assume(MEMBER, "OrganizationAccountAccessRole", org, run), false, "another role of a member account"),
            (assume(STRANGER, role, Some("o-zzzzzzzzzz"), run), false, "another organization's account"),
            (assume(STRANGER, role, None, run), false, "an account in no organization"),
            (assume(MEMBER, role, org, "investigation"), false, "a session not named after a run"),
        ]),
        ("listed accounts", &listed, vec![
            (assume(MEMBER, role, None, run), true, "a listed account"),
            (assume(OTHER_MEMBER, role, None, run), true, "the other listed account"),
            (assume(STRANGER, role, None, run), false, "an account not listed"),
            (assume(MEMBER, "Admin", None, run), false, "another role of a listed account"),
        ]),
        ("listed accounts of an organization", &listed_in_organization, vec![
            (assume(MEMBER, role, org, run), true, "a listed member"),
            (assume(MEMBER, role, None, run), false, "a listed account that left the organization"),
            (assume(OTHER_MEMBER, role, org, run), false, "a member not listed"),
        ]),
        ("another member role name", &renamed, vec![
            (assume(MEMBER, "healer", org, run), true, "the role of that name"),
            (assume(MEMBER, role, org, run), false, "the default name"),
        ]),
    ];
    let mut found = Vec::new();
    for (label, stack, cases) in &stacks {
        found.extend(
            wrong(stack, cases)
                .into_iter()
                .map(|problem| format!("{label}: {problem}")),
        );
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}

/// The functions' environment as `stack` deploys it: the globals, then the function's own.
fn environment(stack: &Stack, function: &str) -> BTreeMap<String, String> {
    let template = template();
    let stack = stack
        .clone()
        .with_resource("StateTable", "autoheal-StateTable-1A2B");
    let mut found = BTreeMap::new();
    for variables in [
        &template["Globals"]["Function"]["Environment"]["Variables"],
        &template["Resources"][function]["Properties"]["Environment"]["Variables"],
    ] {
        let concrete = stack.concrete(&template, variables).unwrap_or(Value::Null);
        for (name, value) in concrete.as_object().into_iter().flatten() {
            let text = value
                .as_str()
                .map_or_else(|| value.to_string(), str::to_owned);
            found.insert(name.clone(), text);
        }
    }
    found
}

/// Each layer function's configuration as it reads what `stack` sets (in Lambda's region).
fn configurations(stack: &Stack) -> Vec<FunctionConfig> {
    LAYER_FUNCTIONS
        .iter()
        .map(|(function, layer)| {
            let mut variables = environment(stack, function);
            variables.insert("AWS_REGION".to_owned(), REGION.to_owned());
            FunctionConfig::from_lookup(*layer, |name| variables.get(name).cloned())
                .unwrap_or_else(|e| panic!("{function} cannot start: {e}"))
        })
        .collect()
}

#[test]
fn each_function_reads_where_the_stack_says_it_heals() {
    let home = Some(Place::new(ACCOUNT, REGION));
    for config in configurations(&reference_stack()) {
        assert_eq!(config.settings.reach.home, home, "always its home");
        assert_eq!(config.settings.reach.members, MemberAccounts::None);
        assert!(config.settings.reach.regions.is_empty());
        assert_eq!(config.member_role, None);
        assert_eq!(config.settings.account_budget, None, "none by default");
    }
    let not_asked = reference_stack().with_parameter("OrganizationId", ORGANIZATION);
    for config in configurations(&not_asked) {
        assert_eq!(
            config.settings.reach.members,
            MemberAccounts::None,
            "not asked"
        );
    }
    let organization = not_asked
        .with_parameter("HealMemberAccounts", "true")
        .with_parameter("AccountBudget", "5/900");
    for config in configurations(&organization) {
        assert_eq!(config.settings.reach.home, home);
        assert_eq!(config.settings.reach.members, MemberAccounts::Organization);
        assert!(
            config.settings.reach.regions.is_empty(),
            "its own region only"
        );
        assert_eq!(config.member_role.as_deref(), Some("autoheal-member"));
        assert_eq!(
            config.settings.account_budget,
            Some(Limit {
                limit: 5,
                window_seconds: 900
            })
        );
    }
    let listed = reference_stack()
        .with_parameter("MemberAccounts", &format!("{MEMBER},{OTHER_MEMBER}"))
        .with_parameter("MemberRegions", &format!("{REGION},eu-west-1"))
        .with_parameter("MemberRoleName", "healer")
        .with_parameter("HealMemberAccounts", "true");
    for config in configurations(&listed) {
        assert_eq!(
            config.settings.reach.members,
            MemberAccounts::Listed(BTreeSet::from([MEMBER.to_owned(), OTHER_MEMBER.to_owned()]))
        );
        assert_eq!(
            config.settings.reach.regions,
            BTreeSet::from(["eu-west-1".to_owned()])
        );
        assert_eq!(config.member_role.as_deref(), Some("healer"));
    }
    // Nothing the stack leaves out is set empty (an empty variable is not "unset" to all).
    let one_account = environment(&reference_stack(), "InfrastructureFunction");
    for name in [
        env::MEMBER_ACCOUNTS,
        env::MEMBER_REGIONS,
        env::MEMBER_ROLE_NAME,
    ] {
        assert!(!one_account.contains_key(name), "{name}: {one_account:?}");
    }
    assert_eq!(one_account[env::HOME_ACCOUNT], ACCOUNT);
}
