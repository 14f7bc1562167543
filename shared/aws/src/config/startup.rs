//! What a function that cannot start says: one line naming the variable, who sets it and
//! what to set it to; and the check of the variables Lambda sets for a function's runtime.

use std::path::PathBuf;

use autoheal_core::RulesError;

use super::env::{self, lambda};
use crate::tags::Scope;

/// A configuration problem: the function cannot start. Each says, in one line, which
/// variable, where it is set and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name} is not set: {}", where_to_set(name))]
    Missing { name: &'static str },
    #[error("{name}=`{value}` is invalid: {reason}; {}", what_to_set(name))]
    Invalid {
        name: &'static str,
        value: String,
        reason: String,
    },
    #[error(
        "cannot read the rules file {} that {} names: {source}; set it to a readable rules \
         file, or unset it for the shipped rules",
        path.display(),
        env::RULES_PATH
    )]
    RulesFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the rules are invalid: {}; fix the rules file {} names (`autoheal validate FILE` lists \
         each problem with its line)",
        one_line(.0),
        env::RULES_PATH
    )]
    Rules(#[from] RulesError),
}

/// Who sets a variable a function reads.
enum SetBy {
    /// The stack, to what the function needs; `value` is what a person sets it to instead.
    Stack { value: &'static str },
    /// The stack, from one of its parameters.
    Parameter {
        parameter: &'static str,
        value: &'static str,
    },
    /// Lambda, for the function's runtime.
    Lambda,
}

/// Who sets each variable, and to what.
fn set_by(name: &str) -> SetBy {
    match name {
        env::TOPIC_ARN => SetBy::Stack {
            value: "the notification topic's ARN",
        },
        env::SCHEDULER_ROLE_ARN => SetBy::Stack {
            value: "the ARN of the role EventBridge Scheduler assumes to deliver follow-ups (the \
                    stack's output FollowUpSchedulerRoleArn)",
        },
        env::FUNCTION_ARN => SetBy::Stack {
            value: "the function's own ARN, where its follow-ups are delivered",
        },
        env::RESTART_DOCUMENT => SetBy::Stack {
            value: "the name of the stack's restart document (RestartProcessDocument, \
                    `<stack>-restart-process`), the one document a restart sends",
        },
        env::MODE => SetBy::Parameter {
            parameter: "Mode",
            value: "`enforce` or `shadow`",
        },
        env::SCOPE => SetBy::Parameter {
            parameter: "Scope",
            value: "`tagged` (only resources tagged autoheal:protect=true) or `all`",
        },
        env::ENABLED_LAYERS => SetBy::Parameter {
            parameter: "EnabledLayers",
            value: "`all` or a comma-separated list of infrastructure, platform, application, \
                    data, network",
        },
        env::LAYER_BUDGET => SetBy::Parameter {
            parameter: "LayerBudget",
            value: "`N/SECONDS` (at most N actions in any SECONDS, e.g. `10/900`) or `off`",
        },
        env::GLOBAL_BUDGET => SetBy::Parameter {
            parameter: "GlobalBudget",
            value: "`N/SECONDS` (at most N actions in any SECONDS, e.g. `20/900`) or `off`",
        },
        env::ACCOUNT_BUDGET => SetBy::Parameter {
            parameter: "AccountBudget",
            value: "`N/SECONDS` (at most N actions in any one account in any SECONDS, e.g. \
                    `5/900`), `off` or nothing",
        },
        env::HOME_ACCOUNT => SetBy::Stack {
            value: "the 12-digit id of the account the function runs in (AWS::AccountId), \
                    which it heals with its own credentials",
        },
        env::MEMBER_ACCOUNTS => SetBy::Parameter {
            parameter: "MemberAccounts",
            value: "a comma-separated list of 12-digit account ids, or `organization` (every \
                    account of OrganizationId)",
        },
        env::MEMBER_REGIONS => SetBy::Parameter {
            parameter: "MemberRegions",
            value: "a comma-separated list of region names (e.g. `eu-west-1,us-east-1`)",
        },
        env::MEMBER_ROLE_NAME => SetBy::Parameter {
            parameter: "MemberRoleName",
            value: "the name of the role member.yaml creates in every member account (its \
                    MemberRoleName)",
        },
        _ => SetBy::Lambda,
    }
}

/// The end of the line that says `name` is not set: who sets it, and what to do.
fn where_to_set(name: &str) -> String {
    match set_by(name) {
        SetBy::Stack { value } | SetBy::Parameter { value, .. } => {
            format!("the stack sets it; when running a function by hand, set it to {value}")
        }
        SetBy::Lambda => "Lambda sets it for a function's runtime; to run a function outside \
                          Lambda, start it under `cargo lambda watch`, which sets it"
            .to_owned(),
    }
}

/// The end of the line that says `name` is invalid: what to set it to, and where.
fn what_to_set(name: &str) -> String {
    match set_by(name) {
        SetBy::Stack { value } => format!("set it to {value} (the stack sets it)"),
        SetBy::Parameter { parameter, value } => {
            format!("set it to {value} (the stack sets it from its parameter {parameter})")
        }
        SetBy::Lambda => where_to_set(name),
    }
}

/// A rules file's problems on one line.
fn one_line(error: &RulesError) -> String {
    error
        .problems
        .iter()
        .map(|problem| problem.to_string().replace('\n', " "))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The scope `AUTOHEAL_SCOPE` names, through `lookup` (unset: `all`).
pub fn read_scope(lookup: impl Fn(&str) -> Option<String>) -> Result<Scope, ConfigError> {
    let value = lookup(env::SCOPE);
    Scope::parse(value.as_deref()).map_err(|reason| ConfigError::Invalid {
        name: env::SCOPE,
        value: value.unwrap_or_default(),
        reason,
    })
}

/// Checks, through `lookup`, the variables Lambda sets for a function's runtime, which the
/// runtime reads as it starts (and panics without): a function started outside Lambda says
/// which one it lacks instead.
pub fn check_lambda_environment(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    for name in [
        lambda::RUNTIME_API,
        lambda::FUNCTION_NAME,
        lambda::FUNCTION_VERSION,
        lambda::FUNCTION_MEMORY_SIZE,
    ] {
        let value = lookup(name).ok_or(ConfigError::Missing { name })?;
        if name == lambda::FUNCTION_MEMORY_SIZE && value.parse::<i32>().is_err() {
            return Err(ConfigError::Invalid {
                name,
                value,
                reason: "not a whole number of MB".to_owned(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_function_without_a_variable_the_stack_sets_says_so_in_one_line() {
        let cases = [
            (
                env::TOPIC_ARN,
                "AUTOHEAL_TOPIC_ARN is not set: the stack sets it; when running a function by \
                 hand, set it to the notification topic's ARN",
            ),
            (
                env::SCHEDULER_ROLE_ARN,
                "AUTOHEAL_SCHEDULER_ROLE_ARN is not set: the stack sets it; when running a \
                 function by hand, set it to the ARN of the role EventBridge Scheduler assumes to \
                 deliver follow-ups (the stack's output FollowUpSchedulerRoleArn)",
            ),
            (
                env::FUNCTION_ARN,
                "AUTOHEAL_FUNCTION_ARN is not set: the stack sets it; when running a function by \
                 hand, set it to the function's own ARN, where its follow-ups are delivered",
            ),
            (
                env::RESTART_DOCUMENT,
                "AUTOHEAL_RESTART_DOCUMENT is not set: the stack sets it; when running a function \
                 by hand, set it to the name of the stack's restart document \
                 (RestartProcessDocument, `<stack>-restart-process`), the one document a restart \
                 sends",
            ),
        ];
        for (name, expected) in cases {
            assert_eq!(ConfigError::Missing { name }.to_string(), expected);
        }
    }
}
