//! Settings from the environment (`env` names the variables; `startup` says what is wrong
//! with them), and the AWS SDK configuration every client is built from (`sdk`), with its HTTPS
//! client (`https`) and the roots that client trusts (`trust`).

pub mod env;
mod https;
mod lambda_sdk;
mod reach;
mod sdk;
mod startup;
mod trust;

use std::path::PathBuf;
use std::sync::Arc;

use autoheal_core::engine::{DEFAULT_GLOBAL_BUDGET, DEFAULT_LAYER_BUDGET};
use autoheal_core::{Layer, Limit, Mode, RuleSet, Settings};

pub use lambda_sdk::{lambda_region, lambda_sdk_config, lambda_sdk_from_env};
pub use reach::{ORGANIZATION, Reaching, read_account_budget, read_reach};
pub use sdk::{DEFAULT_REGION, https_client, https_client_trusting, sdk_config};
pub use startup::{ConfigError, check_lambda_environment, read_scope};
pub use trust::{AMAZON_TRUST_SERVICES, Roots, RootsError};

/// The state table's name when none is configured (also what `autoheal bootstrap` creates).
pub const DEFAULT_TABLE_NAME: &str = "autoheal-state";
/// The notification topic's name when none is configured.
pub const DEFAULT_TOPIC_NAME: &str = "autoheal-notifications";

/// The restart document of a stack named `autoheal` (`<stack>-restart-process`): what a
/// restart sends when none is configured (the command line, the tests).
pub const DEFAULT_RESTART_DOCUMENT: &str = "autoheal-restart-process";

/// The schedule group follow-ups go to when none is configured (EventBridge Scheduler's own).
pub const DEFAULT_SCHEDULE_GROUP: &str = "default";

/// Where a layer's follow-ups are scheduled and what they invoke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowUpTarget {
    /// The EventBridge Scheduler schedule group.
    pub schedule_group: String,
    /// The role EventBridge Scheduler assumes to invoke the function.
    pub role_arn: String,
    /// The layer's own function: a follow-up comes back to the function that acted.
    pub function_arn: String,
    /// The queue EventBridge Scheduler sends a follow-up to when it cannot deliver it (after
    /// its retries), so that a lost check is kept and alarmed on; `None`: no queue.
    pub dead_letter_arn: Option<String>,
}

impl FollowUpTarget {
    /// The names a local deployment (the emulator) uses: nothing checks the ARNs there.
    pub fn local(layer: Layer) -> Self {
        FollowUpTarget {
            schedule_group: DEFAULT_SCHEDULE_GROUP.to_owned(),
            role_arn: "arn:aws:iam::123456789012:role/autoheal-scheduler".to_owned(),
            function_arn: format!(
                "arn:aws:lambda:{DEFAULT_REGION}:123456789012:function:autoheal-{layer}"
            ),
            dead_letter_arn: None,
        }
    }
}

/// What one layer's function needs besides its AWS clients.
#[derive(Debug, Clone)]
pub struct FunctionConfig {
    pub layer: Layer,
    pub table_name: String,
    pub topic_arn: String,
    pub settings: Settings,
    /// Parsed once per container; every engine the function builds shares them.
    pub rules: Arc<RuleSet>,
    pub follow_ups: FollowUpTarget,
    /// The role assumed in member accounts (`None`: the function heals in its own account
    /// only).
    pub member_role: Option<String>,
}

impl FunctionConfig {
    /// Reads the configuration through `lookup` (the process environment in Lambda).
    pub fn from_lookup(
        layer: Layer,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let table_name = lookup(env::TABLE_NAME)
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_TABLE_NAME.to_owned());
        let topic_arn = lookup(env::TOPIC_ARN)
            .filter(|v| !v.trim().is_empty())
            .ok_or(ConfigError::Missing {
                name: env::TOPIC_ARN,
            })?;
        let required = |name: &'static str| {
            lookup(name)
                .filter(|v| !v.trim().is_empty())
                .ok_or(ConfigError::Missing { name })
        };
        let follow_ups = FollowUpTarget {
            schedule_group: lookup(env::SCHEDULE_GROUP)
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| DEFAULT_SCHEDULE_GROUP.to_owned()),
            role_arn: required(env::SCHEDULER_ROLE_ARN)?,
            function_arn: required(env::FUNCTION_ARN)?,
            dead_letter_arn: lookup(env::SCHEDULE_DEAD_LETTER_ARN)
                .map(|arn| arn.trim().to_owned())
                .filter(|arn| !arn.is_empty()),
        };
        let mode = match lookup(env::MODE).as_deref().map(str::trim) {
            None | Some("") | Some("enforce") => Mode::Enforce,
            Some("shadow") => Mode::Shadow,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: env::MODE,
                    value: other.to_owned(),
                    reason: "not a mode".to_owned(),
                });
            }
        };
        let layer_budget = parse_budget(
            env::LAYER_BUDGET,
            lookup(env::LAYER_BUDGET),
            DEFAULT_LAYER_BUDGET,
        )?;
        let global_budget = parse_budget(
            env::GLOBAL_BUDGET,
            lookup(env::GLOBAL_BUDGET),
            DEFAULT_GLOBAL_BUDGET,
        )?;
        let layer_enabled = match lookup(env::ENABLED_LAYERS) {
            None => true,
            // Set but empty is a mistake, not "no layer": stopping every heal is `shadow`.
            Some(list) if list.trim().is_empty() => {
                return Err(ConfigError::Invalid {
                    name: env::ENABLED_LAYERS,
                    value: list,
                    reason: "set but empty, it names no layer (`shadow` mode stops every heal)"
                        .to_owned(),
                });
            }
            Some(list) => parse_layers(&list)?.contains(&layer),
        };
        let reaching = read_reach(&lookup, &lambda_region(&lookup))?;
        let account_budget = read_account_budget(&lookup)?;
        let rules = match lookup(env::RULES_PATH).filter(|v| !v.trim().is_empty()) {
            Some(path) => {
                let path = PathBuf::from(path);
                let text = std::fs::read_to_string(&path)
                    .map_err(|source| ConfigError::RulesFile { path, source })?;
                RuleSet::from_toml(&text)?
            }
            None => RuleSet::shipped()?,
        };
        Ok(FunctionConfig {
            layer,
            table_name,
            topic_arn,
            settings: Settings {
                mode,
                layer_enabled,
                emit_metrics: false,
                layer_budget,
                global_budget,
                account_budget,
                reach: reaching.reach,
            },
            rules: Arc::new(rules),
            follow_ups,
            member_role: reaching.member_role,
        })
    }

    pub fn from_env(layer: Layer) -> Result<Self, ConfigError> {
        Self::from_lookup(layer, |name| std::env::var(name).ok())
    }
}

/// A budget setting: `N/SECONDS` (at most N actions in any SECONDS), or `off`; unset or empty
/// is the shipped default.
pub fn parse_budget(
    name: &'static str,
    value: Option<String>,
    default: Limit,
) -> Result<Option<Limit>, ConfigError> {
    match value.filter(|v| !v.trim().is_empty()) {
        None => Ok(Some(default)),
        Some(value) => parse_limit(name, &value),
    }
}

/// A budget given: `N/SECONDS` (at most N actions in any SECONDS), or `off` (`None`).
pub fn parse_limit(name: &'static str, value: &str) -> Result<Option<Limit>, ConfigError> {
    let text = value.trim();
    if text == "off" {
        return Ok(None);
    }
    let invalid = |reason: &str| ConfigError::Invalid {
        name,
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    let (limit, window) = text
        .split_once('/')
        .ok_or_else(|| invalid("not `N/SECONDS`"))?;
    let limit: u32 = limit
        .trim()
        .parse()
        .map_err(|_| invalid("the number of actions is not a whole number"))?;
    let window_seconds: u64 = window
        .trim()
        .parse()
        .map_err(|_| invalid("the window is not a whole number of seconds"))?;
    if limit == 0 || window_seconds == 0 {
        return Err(invalid(
            "both must be at least 1 (`off` turns the budget off)",
        ));
    }
    Ok(Some(Limit {
        limit,
        window_seconds,
    }))
}

/// Parses a comma-separated list of layers (`all` for every layer).
pub fn parse_layers(list: &str) -> Result<Vec<Layer>, ConfigError> {
    let mut layers = Vec::new();
    for item in list
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
    {
        if item == "all" {
            return Ok(Layer::ALL.to_vec());
        }
        layers.push(
            item.parse()
                .map_err(
                    |e: autoheal_core::model::layer::UnknownLayer| ConfigError::Invalid {
                        name: env::ENABLED_LAYERS,
                        value: list.to_owned(),
                        reason: e.to_string(),
                    },
                )?,
        );
    }
    Ok(layers)
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    use crate::config::env::lookup_in as lookup;

    const REQUIRED: [(&str, &str); 3] = [
        (
            env::TOPIC_ARN,
            "arn:aws:sns:us-east-1:123456789012:autoheal",
        ),
        (
            env::SCHEDULER_ROLE_ARN,
            "arn:aws:iam::123456789012:role/scheduler",
        ),
        (
            env::FUNCTION_ARN,
            "arn:aws:lambda:us-east-1:123456789012:function:autoheal-data",
        ),
    ];

    #[test]
    fn a_function_reads_its_follow_up_target_and_the_shipped_budgets_by_default() {
        let config = FunctionConfig::from_lookup(Layer::Data, lookup(&REQUIRED))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.follow_ups.schedule_group, DEFAULT_SCHEDULE_GROUP);
        assert_eq!(config.follow_ups.role_arn, REQUIRED[1].1);
        assert_eq!(config.follow_ups.function_arn, REQUIRED[2].1);
        assert_eq!(config.settings.layer_budget, Some(DEFAULT_LAYER_BUDGET));
        assert_eq!(config.settings.global_budget, Some(DEFAULT_GLOBAL_BUDGET));
    }

    #[test]
    fn undelivered_follow_ups_go_to_the_dead_letter_queue_the_stack_names() {
        let unset = FunctionConfig::from_lookup(Layer::Data, lookup(&REQUIRED))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(unset.follow_ups.dead_letter_arn, None);
        let queue = "arn:aws:sqs:us-east-1:123456789012:autoheal-DeadLetterQueue-1A2B";
        let pairs = with(&[(env::SCHEDULE_DEAD_LETTER_ARN, queue)]);
        let set = FunctionConfig::from_lookup(Layer::Data, lookup(&pairs))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(set.follow_ups.dead_letter_arn.as_deref(), Some(queue));
        let blank = with(&[(env::SCHEDULE_DEAD_LETTER_ARN, " ")]);
        let blank = FunctionConfig::from_lookup(Layer::Data, lookup(&blank))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(blank.follow_ups.dead_letter_arn, None);
    }

    fn with<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut pairs: Vec<(&str, &str)> = extra.to_vec();
        pairs.extend(REQUIRED);
        pairs
    }

    fn configure(layer: Layer, pairs: &[(&str, &str)]) -> Result<FunctionConfig, String> {
        FunctionConfig::from_lookup(layer, lookup(pairs)).map_err(|e| e.to_string())
    }

    #[test]
    fn unset_and_blank_settings_take_their_defaults() {
        let blank = with(&[
            (env::TABLE_NAME, "  "),
            (env::SCHEDULE_GROUP, ""),
            (env::MODE, ""),
            (env::RULES_PATH, " "),
            (env::LAYER_BUDGET, ""),
        ]);
        for pairs in [REQUIRED.to_vec(), blank] {
            let config = configure(Layer::Network, &pairs).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(config.layer, Layer::Network);
            assert_eq!(config.table_name, DEFAULT_TABLE_NAME);
            assert_eq!(config.topic_arn, REQUIRED[0].1);
            assert_eq!(config.follow_ups.schedule_group, DEFAULT_SCHEDULE_GROUP);
            assert_eq!(config.settings.mode, Mode::Enforce);
            assert!(config.settings.layer_enabled);
            assert!(
                !config.settings.emit_metrics,
                "only the Lambda runtime emits"
            );
            assert_eq!(config.settings.layer_budget, Some(DEFAULT_LAYER_BUDGET));
            assert_eq!(
                config.rules.rules().len(),
                RuleSet::shipped().expect("shipped").rules().len()
            );
        }
    }

    #[test]
    fn every_setting_is_read_from_its_variable() {
        let pairs = with(&[
            (env::TABLE_NAME, "healing-state"),
            (env::SCHEDULE_GROUP, "autoheal-follow-ups"),
            (env::MODE, " shadow "),
            (env::ENABLED_LAYERS, "infrastructure, data"),
            (env::LAYER_BUDGET, "3/60"),
            (env::GLOBAL_BUDGET, "off"),
        ]);
        let config = configure(Layer::Data, &pairs).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.table_name, "healing-state");
        assert_eq!(config.follow_ups.schedule_group, "autoheal-follow-ups");
        assert_eq!(config.settings.mode, Mode::Shadow);
        assert!(config.settings.layer_enabled);
        assert_eq!(
            config.settings.layer_budget,
            Some(Limit {
                limit: 3,
                window_seconds: 60
            })
        );
        assert_eq!(config.settings.global_budget, None);
        let elsewhere = configure(Layer::Platform, &pairs).unwrap_or_else(|e| panic!("{e}"));
        assert!(!elsewhere.settings.layer_enabled, "platform is not listed");
        let all = with(&[(env::ENABLED_LAYERS, "all")]);
        assert!(
            configure(Layer::Platform, &all)
                .unwrap_or_else(|e| panic!("{e}"))
                .settings
                .layer_enabled
        );
    }

    #[test]
    fn a_rules_file_replaces_the_shipped_rules() {
        let path =
            std::env::temp_dir().join(format!("autoheal-config-test-{}.toml", std::process::id()));
        std::fs::write(
            &path,
            r#"
[[rule]]
name = "only-rule"
layer = "infrastructure"
cooldown_seconds = 600
max_attempts = 3
[rule.trigger]
alarm_name_prefixes = ["only-"]
[rule.resource]
dimension = "InstanceId"
[rule.action]
type = "recover-ec2-instance"
"#,
        )
        .expect("write the rules file");
        let path_text = path.display().to_string();
        let result = configure(
            Layer::Infrastructure,
            &with(&[(env::RULES_PATH, path_text.as_str())]),
        );
        std::fs::remove_file(&path).ok();
        let config = result.unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<&str> = config
            .rules
            .rules()
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(names, ["only-rule"]);
    }

    #[test]
    fn a_bad_setting_stops_the_function_with_the_variable_named() {
        let missing_file = "/nonexistent/autoheal-rules.toml";
        let cases: [(&[(&str, &str)], &str); 9] = [
            (
                &[(env::MODE, "dry-run")],
                "AUTOHEAL_MODE=`dry-run` is invalid",
            ),
            (
                &[(env::ENABLED_LAYERS, " ")],
                "AUTOHEAL_ENABLED_LAYERS=` ` is invalid",
            ),
            (
                &[(env::ENABLED_LAYERS, "infrastructure,storage")],
                "AUTOHEAL_ENABLED_LAYERS=`infrastructure,storage` is invalid",
            ),
            (
                &[(env::LAYER_BUDGET, "ten/900")],
                "AUTOHEAL_LAYER_BUDGET=`ten/900` is invalid",
            ),
            (
                &[(env::GLOBAL_BUDGET, "0/900")],
                "AUTOHEAL_GLOBAL_BUDGET=`0/900` is invalid",
            ),
            (
                &[(env::RULES_PATH, missing_file)],
                "cannot read the rules file /nonexistent/autoheal-rules.toml",
            ),
            (&[(env::TOPIC_ARN, " ")], "AUTOHEAL_TOPIC_ARN is not set"),
            (
                &[(env::SCHEDULER_ROLE_ARN, "")],
                "AUTOHEAL_SCHEDULER_ROLE_ARN is not set",
            ),
            (
                &[(env::FUNCTION_ARN, "")],
                "AUTOHEAL_FUNCTION_ARN is not set",
            ),
        ];
        for (extra, expected) in cases {
            // The first value of a name wins: the bad one shadows the required one.
            let error = configure(Layer::Application, &with(extra)).err();
            assert!(
                error.as_deref().is_some_and(|e| e.starts_with(expected)),
                "{extra:?}: {error:?}"
            );
            assert!(
                error.as_deref().is_some_and(|e| !e.contains('\n')),
                "one line: {error:?}"
            );
        }
    }

    #[test]
    fn an_invalid_setting_says_what_to_set_it_to_and_where_the_stack_sets_it() {
        let cases: [(&str, &str, &str); 4] = [
            (
                env::MODE,
                "dry-run",
                "AUTOHEAL_MODE=`dry-run` is invalid: not a mode; set it to `enforce` or `shadow` \
                 (the stack sets it from its parameter Mode)",
            ),
            (
                env::ENABLED_LAYERS,
                "",
                "AUTOHEAL_ENABLED_LAYERS=`` is invalid: set but empty, it names no layer \
                 (`shadow` mode stops every heal); set it to `all` or a comma-separated list of \
                 infrastructure, platform, application, data, network (the stack sets it from its \
                 parameter EnabledLayers)",
            ),
            (
                env::LAYER_BUDGET,
                "ten/900",
                "AUTOHEAL_LAYER_BUDGET=`ten/900` is invalid: the number of actions is not a whole \
                 number; set it to `N/SECONDS` (at most N actions in any SECONDS, e.g. `10/900`) or \
                 `off` (the stack sets it from its parameter LayerBudget)",
            ),
            (
                env::GLOBAL_BUDGET,
                "20",
                "AUTOHEAL_GLOBAL_BUDGET=`20` is invalid: not `N/SECONDS`; set it to `N/SECONDS` \
                 (at most N actions in any SECONDS, e.g. `20/900`) or `off` (the stack sets it \
                 from its parameter GlobalBudget)",
            ),
        ];
        for (name, value, expected) in cases {
            let error = configure(Layer::Network, &with(&[(name, value)])).err();
            assert_eq!(error.as_deref(), Some(expected));
        }
    }

    #[test]
    fn rules_that_cannot_be_used_are_one_line_naming_their_variable() {
        let path = std::env::temp_dir().join(format!(
            "autoheal-config-invalid-{}.toml",
            std::process::id()
        ));
        std::fs::write(
            &path,
            "[[rule]]\nname = \"Bad\"\nlayer = \"data\"\ncooldown_seconds = 60\n\
             max_attempts = 0\n[rule.trigger]\nalarm_name_prefixes = [\"x-\"]\n\
             [rule.resource]\ndimension = \"DBInstanceIdentifier\"\n\
             [rule.action]\ntype = \"verify-backup\"\n",
        )
        .expect("write the rules file");
        let text = path.display().to_string();
        let invalid = configure(Layer::Data, &with(&[(env::RULES_PATH, text.as_str())])).err();
        std::fs::remove_file(&path).ok();
        let invalid = invalid.unwrap_or_default();
        assert!(
            invalid.starts_with("the rules are invalid: line 1: rule `Bad`: field `name`: "),
            "{invalid}"
        );
        assert!(
            invalid.contains("; line 1: rule `Bad`: field `max_attempts`: must be at least 1; "),
            "{invalid}"
        );
        assert!(invalid.ends_with("fix the rules file AUTOHEAL_RULES_PATH names (`autoheal validate FILE` lists each problem with its line)"), "{invalid}");
        assert!(!invalid.contains('\n'), "{invalid}");

        let missing = "/nonexistent/autoheal-rules.toml";
        let unreadable = configure(Layer::Data, &with(&[(env::RULES_PATH, missing)])).err();
        let unreadable = unreadable.unwrap_or_default();
        assert!(
            unreadable.starts_with(
                "cannot read the rules file /nonexistent/autoheal-rules.toml that \
                 AUTOHEAL_RULES_PATH names: "
            ) && unreadable
                .ends_with("; set it to a readable rules file, or unset it for the shipped rules")
                && !unreadable.contains('\n'),
            "{unreadable}"
        );
    }

    #[test]
    fn budgets_are_n_per_seconds_or_off_and_nothing_else() {
        let parse = |value: &str| {
            parse_budget(
                env::LAYER_BUDGET,
                Some(value.to_owned()),
                DEFAULT_LAYER_BUDGET,
            )
        };
        assert_eq!(
            parse("3/60").ok().flatten(),
            Some(Limit {
                limit: 3,
                window_seconds: 60
            })
        );
        assert_eq!(parse("off").ok(), Some(None));
        assert_eq!(parse(" ").ok(), Some(Some(DEFAULT_LAYER_BUDGET)));
        for bad in ["10", "0/900", "10/0", "ten/900", "10/-1", "10/900/1"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_function_outside_lambda_names_the_lambda_variable_it_lacks() {
        let lambda = [
            (env::lambda::RUNTIME_API, "127.0.0.1:9001"),
            (env::lambda::FUNCTION_NAME, "autoheal-data"),
            (env::lambda::FUNCTION_VERSION, "$LATEST"),
            (env::lambda::FUNCTION_MEMORY_SIZE, "256"),
        ];
        assert!(check_lambda_environment(lookup(&lambda)).is_ok());
        for name in lambda.map(|(name, _)| name) {
            let without: Vec<(&str, &str)> =
                lambda.into_iter().filter(|(key, _)| *key != name).collect();
            let error = check_lambda_environment(lookup(&without)).map_err(|e| e.to_string());
            assert_eq!(
                error,
                Err(format!(
                    "{name} is not set: Lambda sets it for a function's runtime; to run a \
                     function outside Lambda, start it under `cargo lambda watch`, which sets it"
                ))
            );
        }
        let mut odd = lambda;
        odd[3].1 = "a lot";
        assert_eq!(
            check_lambda_environment(lookup(&odd)).map_err(|e| e.to_string()),
            Err(
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=`a lot` is invalid: not a whole number of MB; \
                 Lambda sets it for a function's runtime; to run a function outside Lambda, start \
                 it under `cargo lambda watch`, which sets it"
                    .to_owned()
            )
        );
    }
}
