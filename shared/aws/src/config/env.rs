//! The environment variables a function reads, and those Lambda sets for its runtime.

pub const TABLE_NAME: &str = "AUTOHEAL_TABLE_NAME";
pub const TOPIC_ARN: &str = "AUTOHEAL_TOPIC_ARN";
pub const MODE: &str = "AUTOHEAL_MODE";
pub const SCOPE: &str = "AUTOHEAL_SCOPE";
pub const ENABLED_LAYERS: &str = "AUTOHEAL_ENABLED_LAYERS";
pub const RULES_PATH: &str = "AUTOHEAL_RULES_PATH";
pub const SCHEDULE_GROUP: &str = "AUTOHEAL_SCHEDULE_GROUP";
pub const SCHEDULER_ROLE_ARN: &str = "AUTOHEAL_SCHEDULER_ROLE_ARN";
pub const FUNCTION_ARN: &str = "AUTOHEAL_FUNCTION_ARN";
pub const SCHEDULE_DEAD_LETTER_ARN: &str = "AUTOHEAL_SCHEDULE_DEAD_LETTER_ARN";
pub const RESTART_DOCUMENT: &str = "AUTOHEAL_RESTART_DOCUMENT";
pub const LAYER_BUDGET: &str = "AUTOHEAL_LAYER_BUDGET";
pub const GLOBAL_BUDGET: &str = "AUTOHEAL_GLOBAL_BUDGET";
pub const ACCOUNT_BUDGET: &str = "AUTOHEAL_ACCOUNT_BUDGET";
pub const HOME_ACCOUNT: &str = "AUTOHEAL_HOME_ACCOUNT";
pub const MEMBER_ACCOUNTS: &str = "AUTOHEAL_MEMBER_ACCOUNTS";
pub const MEMBER_REGIONS: &str = "AUTOHEAL_MEMBER_REGIONS";
pub const MEMBER_ROLE_NAME: &str = "AUTOHEAL_MEMBER_ROLE_NAME";

/// An environment of fixed `pairs`, for the tests of what reads one.
#[cfg(test)]
pub(crate) fn lookup_in<'a>(
    pairs: &'a [(&'a str, &'a str)],
) -> impl Fn(&str) -> Option<String> + 'a {
    move |name| {
        pairs
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| (*value).to_owned())
    }
}

/// The variables Lambda sets for a function's runtime: a function started without them is
/// not running in Lambda, and cannot serve events.
pub mod lambda {
    pub const RUNTIME_API: &str = "AWS_LAMBDA_RUNTIME_API";
    pub const FUNCTION_NAME: &str = "AWS_LAMBDA_FUNCTION_NAME";
    pub const FUNCTION_VERSION: &str = "AWS_LAMBDA_FUNCTION_VERSION";
    pub const FUNCTION_MEMORY_SIZE: &str = "AWS_LAMBDA_FUNCTION_MEMORY_SIZE";
}
