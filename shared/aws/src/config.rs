//! Settings from the environment, and the AWS SDK configuration every client is built from.

use std::path::PathBuf;
use std::time::Duration;

use aws_config::environment::EnvironmentVariableRegionProvider;
use aws_config::meta::region::RegionProviderChain;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::SharedHttpClient;
use aws_smithy_http_client::tls;

use autoheal_core::engine::{DEFAULT_GLOBAL_BUDGET, DEFAULT_LAYER_BUDGET};
use autoheal_core::{Layer, Limit, Mode, RuleSet, RulesError, Settings};

/// The state table's name when none is configured (also what `autoheal bootstrap` creates).
pub const DEFAULT_TABLE_NAME: &str = "autoheal-state";
/// The notification topic's name when none is configured.
pub const DEFAULT_TOPIC_NAME: &str = "autoheal-notifications";
/// The region used when neither the environment nor a profile names one.
pub const DEFAULT_REGION: &str = "us-east-1";

/// Environment variables a function reads.
pub mod env {
    pub const TABLE_NAME: &str = "AUTOHEAL_TABLE_NAME";
    pub const TOPIC_ARN: &str = "AUTOHEAL_TOPIC_ARN";
    pub const MODE: &str = "AUTOHEAL_MODE";
    pub const ENABLED_LAYERS: &str = "AUTOHEAL_ENABLED_LAYERS";
    pub const RULES_PATH: &str = "AUTOHEAL_RULES_PATH";
    pub const SCHEDULE_GROUP: &str = "AUTOHEAL_SCHEDULE_GROUP";
    pub const SCHEDULER_ROLE_ARN: &str = "AUTOHEAL_SCHEDULER_ROLE_ARN";
    pub const FUNCTION_ARN: &str = "AUTOHEAL_FUNCTION_ARN";
    pub const LAYER_BUDGET: &str = "AUTOHEAL_LAYER_BUDGET";
    pub const GLOBAL_BUDGET: &str = "AUTOHEAL_GLOBAL_BUDGET";
}

/// The variables Lambda sets for a function's runtime: a function started without them is
/// not running in Lambda, and cannot serve events.
pub mod lambda {
    pub const RUNTIME_API: &str = "AWS_LAMBDA_RUNTIME_API";
    pub const FUNCTION_NAME: &str = "AWS_LAMBDA_FUNCTION_NAME";
    pub const FUNCTION_VERSION: &str = "AWS_LAMBDA_FUNCTION_VERSION";
    pub const FUNCTION_MEMORY_SIZE: &str = "AWS_LAMBDA_FUNCTION_MEMORY_SIZE";
}

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
        }
    }
}

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
        env::MODE => SetBy::Parameter {
            parameter: "Mode",
            value: "`enforce` or `shadow`",
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

/// What one layer's function needs besides its AWS clients.
#[derive(Debug, Clone)]
pub struct FunctionConfig {
    pub layer: Layer,
    pub table_name: String,
    pub topic_arn: String,
    pub settings: Settings,
    pub rules: RuleSet,
    pub follow_ups: FollowUpTarget,
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
            },
            rules,
            follow_ups,
        })
    }

    pub fn from_env(layer: Layer) -> Result<Self, ConfigError> {
        Self::from_lookup(layer, |name| std::env::var(name).ok())
    }
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

/// A budget setting: `N/SECONDS` (at most N actions in any SECONDS), or `off`; unset or empty
/// is the shipped default.
pub fn parse_budget(
    name: &'static str,
    value: Option<String>,
    default: Limit,
) -> Result<Option<Limit>, ConfigError> {
    let Some(value) = value.filter(|v| !v.trim().is_empty()) else {
        return Ok(Some(default));
    };
    let text = value.trim();
    if text == "off" {
        return Ok(None);
    }
    let invalid = |reason: &str| ConfigError::Invalid {
        name,
        value: value.clone(),
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

/// Throttling, 5xx answers and dropped connections are retried with exponential backoff and
/// jitter, three attempts in all: what remains is the heal's failure, recorded and notified.
fn retries() -> RetryConfig {
    RetryConfig::standard().with_max_attempts(3)
}

/// A call that hangs must not use up the invocation (300 s): each attempt gets 20 s, each
/// call with its retries 60 s, so a stalled endpoint ends as a recorded failure.
fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .operation_attempt_timeout(Duration::from_secs(20))
        .operation_timeout(Duration::from_secs(60))
        .build()
}

/// The HTTPS client every AWS client uses: hyper and rustls with the ring provider, trusting
/// the system's root certificates (read at the first TLS connection, not here).
pub fn https_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

/// Loads the SDK configuration. With `endpoint_url` (the local emulator), every client talks
/// to it, the region comes from the environment or defaults, never from instance metadata,
/// and static test credentials stand in where the environment has none.
pub async fn sdk_config(endpoint_url: Option<&str>) -> SdkConfig {
    let Some(url) = endpoint_url else {
        // The loader's own region chain (environment, profile, instance metadata) runs with the
        // HTTPS client above; only when it finds nothing does the default region apply.
        let config = aws_config::defaults(BehaviorVersion::latest())
            .http_client(https_client())
            .retry_config(retries())
            .timeout_config(timeouts())
            .load()
            .await;
        if config.region().is_some() {
            return config;
        }
        return config
            .into_builder()
            .region(Region::new(DEFAULT_REGION))
            .build();
    };
    let region = RegionProviderChain::first_try(EnvironmentVariableRegionProvider::new())
        .or_else(Region::new(DEFAULT_REGION));
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
        .region(region)
        .retry_config(retries())
        .timeout_config(timeouts())
        .endpoint_url(url);
    let has_env_credentials = std::env::var_os("AWS_ACCESS_KEY_ID").is_some();
    if !has_env_credentials {
        loader = loader.credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test",
            "test",
            None,
            None,
            "autoheal-local",
        ));
    }
    loader.load().await
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    fn lookup<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        }
    }

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
        ];
        for (name, expected) in cases {
            let without: Vec<(&str, &str)> = REQUIRED
                .into_iter()
                .filter(|(key, _)| *key != name)
                .collect();
            let error = configure(Layer::Data, &without).err();
            assert_eq!(error.as_deref(), Some(expected));
        }
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
        let cases: [(&[(&str, &str)], &str); 8] = [
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
    fn a_function_outside_lambda_names_the_lambda_variable_it_lacks() {
        let lambda = [
            (lambda::RUNTIME_API, "127.0.0.1:9001"),
            (lambda::FUNCTION_NAME, "autoheal-data"),
            (lambda::FUNCTION_VERSION, "$LATEST"),
            (lambda::FUNCTION_MEMORY_SIZE, "256"),
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
}
