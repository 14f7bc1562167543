//! The Lambda wiring every layer's `main` shares: configuration, clients, engine, runtime.

use aws_config::SdkConfig;
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;

use autoheal_core::{Clock, Engine, EngineError, Healer, Layer, SystemClock};

use crate::config::{
    ConfigError, FunctionConfig, check_lambda_environment, lambda_sdk_from_env, read_scope,
};
use crate::dispatch::Dispatcher;
use crate::followups::AwsFollowUps;
use crate::members::MemberRoleError;
use crate::notify::SnsNotifier;
use crate::state::DynamoStateStore;

/// A layer's engine with the AWS adapters.
pub type LayerEngine<H> = Engine<DynamoStateStore, SnsNotifier, H, SystemClock, AwsFollowUps>;

/// Builds a layer's engine from its configuration and an SDK configuration.
pub fn build_engine<H: Healer>(
    config: FunctionConfig,
    sdk: &SdkConfig,
    healer: H,
) -> LayerEngine<H> {
    build_engine_with_clock(config, sdk, healer, SystemClock)
}

/// [`build_engine`] with another clock (tests move time).
pub fn build_engine_with_clock<H: Healer, C: Clock>(
    config: FunctionConfig,
    sdk: &SdkConfig,
    healer: H,
    clock: C,
) -> Engine<DynamoStateStore, SnsNotifier, H, C, AwsFollowUps> {
    build_engine_in(config, sdk, sdk, healer, clock)
}

/// A layer's engine acting in one place: `place` is the configuration of that place's clients
/// (the alarms are read where they live; `healer` is built from it), `home` the function's
/// own, where the state, the notifications and the follow-up schedules are.
pub fn build_engine_in<H: Healer, C: Clock>(
    config: FunctionConfig,
    home: &SdkConfig,
    place: &SdkConfig,
    healer: H,
    clock: C,
) -> Engine<DynamoStateStore, SnsNotifier, H, C, AwsFollowUps> {
    Engine {
        layer: config.layer,
        rules: config.rules,
        settings: config.settings,
        store: DynamoStateStore::new(aws_sdk_dynamodb::Client::new(home), config.table_name),
        notifier: SnsNotifier::new(aws_sdk_sns::Client::new(home), config.topic_arn),
        healer,
        clock,
        follow_ups: AwsFollowUps::new(
            aws_sdk_scheduler::Client::new(home),
            aws_sdk_cloudwatch::Client::new(place),
            config.follow_ups,
        ),
    }
}

/// The error a Lambda invocation reports: its type tells an operator (and the DLQ) whether a
/// redelivery could help.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A member account's role could not be assumed: that account's event alone fails.
    #[error(transparent)]
    MemberRole(#[from] MemberRoleError),
}

impl HandlerError {
    /// The error type Lambda reports (and the dead-letter queue keeps): one per cause, so an
    /// operator can tell a bad event from an outage that a redelivery will get past.
    pub fn error_type(&self) -> &'static str {
        match self {
            HandlerError::Engine(EngineError::InvalidEvent(_)) => "autoheal.InvalidEvent",
            HandlerError::Engine(EngineError::Store(_)) => "autoheal.StateStoreUnavailable",
            HandlerError::Engine(EngineError::FollowUp(_)) => "autoheal.FollowUpNotScheduled",
            HandlerError::Engine(EngineError::Group(_)) => "autoheal.GroupUnreadable",
            HandlerError::Engine(EngineError::Assessment(_)) => "autoheal.ResourceUnreadable",
            HandlerError::Engine(EngineError::Refused(_)) => "autoheal.Refused",
            HandlerError::MemberRole(_) => "autoheal.MemberRoleNotAssumed",
        }
    }
}

impl From<HandlerError> for Diagnostic {
    fn from(error: HandlerError) -> Diagnostic {
        Diagnostic {
            error_type: error.error_type().to_owned(),
            error_message: error.to_string(),
        }
    }
}

/// A function that cannot start says why in one line on stderr (what Lambda logs of a failed
/// init) and exits with status 1: an error returned from `main` would print its `Debug` form.
fn cannot_start(error: &ConfigError) -> ! {
    eprintln!("error: {error}");
    std::process::exit(1)
}

/// Runs one layer's function: builds everything once per container, then serves events.
/// `make_healer` receives the SDK configuration to build the layer's own clients: the
/// function's own, and that of each other place (a member account, another region) it acts
/// in, the first time it does.
pub async fn run<H, F>(layer: Layer, make_healer: F) -> Result<(), lambda_runtime::Error>
where
    H: Healer,
    F: Fn(&SdkConfig) -> H,
{
    serve(layer, None, move |sdk, _| make_healer(sdk)).await
}

/// [`run`] for a layer whose healer needs one more variable the stack sets (`setting`): read
/// and checked with the rest before the first event (a function without it cannot start, and
/// says so in one line), then handed to `make_healer`.
pub async fn run_with_setting<H, F>(
    layer: Layer,
    setting: &'static str,
    make_healer: F,
) -> Result<(), lambda_runtime::Error>
where
    H: Healer,
    F: Fn(&SdkConfig, String) -> H,
{
    serve(layer, Some(setting), move |sdk, value| {
        make_healer(sdk, value.unwrap_or_default().to_owned())
    })
    .await
}

/// A variable the stack sets, read through `lookup`: its value, or the error that says it is
/// not set.
pub fn required_setting(
    name: &'static str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    lookup(name)
        .map(|value| value.trim().to_owned())
        .filter(|value| !value.is_empty())
        .ok_or(ConfigError::Missing { name })
}

async fn serve<H, F>(
    layer: Layer,
    setting: Option<&'static str>,
    make_healer: F,
) -> Result<(), lambda_runtime::Error>
where
    H: Healer,
    F: Fn(&SdkConfig, Option<&str>) -> H,
{
    crate::logging::init();
    let lookup = |name: &str| std::env::var(name).ok();
    let started = FunctionConfig::from_lookup(layer, lookup).and_then(|config| {
        let value = setting
            .map(|name| required_setting(name, lookup))
            .transpose()?;
        let scope = read_scope(lookup)?;
        check_lambda_environment(lookup)?;
        Ok((config, value, scope))
    });
    let (mut config, value, scope) = match started {
        Ok(started) => started,
        Err(error) => cannot_start(&error),
    };
    crate::tags::set_scope(scope);
    // In Lambda, each outcome's metrics go to the log in the embedded metric format.
    config.settings.emit_metrics = true;
    // Everything from Lambda's environment (AWS_ENDPOINT_URL too, when set).
    let sdk = lambda_sdk_from_env();
    let dispatcher = Dispatcher::new(
        config,
        &sdk,
        |sdk: &SdkConfig| make_healer(sdk, value.as_deref()),
        SystemClock,
    );
    let dispatcher = &dispatcher;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let run_id = event.context.request_id.clone();
        dispatcher.handle(event.payload, &run_id).await
    }))
    .await
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use autoheal_core::{AlarmEvent, FollowUpError, StoreError};

    use super::*;

    fn diagnostic(error: EngineError) -> (bool, Diagnostic) {
        let retryable = error.is_retryable();
        (retryable, Diagnostic::from(HandlerError::from(error)))
    }

    #[test]
    fn a_setting_the_stack_sets_is_required_and_says_so_when_missing() {
        let name = crate::config::env::RESTART_DOCUMENT;
        let set = |value: &'static str| move |_: &str| Some(value.to_owned());
        assert_eq!(
            required_setting(name, set(" autoheal-restart-process ")).expect("set"),
            "autoheal-restart-process"
        );
        for missing in [
            required_setting(name, |_| None),
            required_setting(name, set("  ")),
        ] {
            let error = missing.expect_err("not set");
            assert!(
                error
                    .to_string()
                    .starts_with("AUTOHEAL_RESTART_DOCUMENT is not set: the stack sets it"),
                "{error}"
            );
        }
    }

    #[test]
    fn each_cause_reports_its_own_error_type_and_message() {
        let invalid = AlarmEvent::from_slice(b"{").expect_err("not an event");
        let cases = [
            (
                EngineError::InvalidEvent(invalid),
                false,
                "autoheal.InvalidEvent",
                "invalid event: the event is not valid JSON",
            ),
            (
                EngineError::Store(StoreError {
                    message: "throttled".to_owned(),
                }),
                true,
                "autoheal.StateStoreUnavailable",
                "state store: throttled",
            ),
            (
                EngineError::FollowUp(FollowUpError {
                    message: "no scheduler".to_owned(),
                }),
                true,
                "autoheal.FollowUpNotScheduled",
                "follow-up: no scheduler",
            ),
            (
                EngineError::Group("DescribeAutoScalingGroups failed".to_owned()),
                true,
                "autoheal.GroupUnreadable",
                "group guard: DescribeAutoScalingGroups failed",
            ),
            (
                EngineError::Refused("no role".to_owned()),
                false,
                "autoheal.Refused",
                "no role",
            ),
        ];
        let member_role = Diagnostic::from(HandlerError::from(MemberRoleError {
            role_arn: "arn:aws:iam::222222222222:role/autoheal-member".to_owned(),
            account: "222222222222".to_owned(),
            role_name: "autoheal-member".to_owned(),
            cause: "AssumeRole: AccessDenied: not authorized".to_owned(),
        }));
        assert_eq!(member_role.error_type, "autoheal.MemberRoleNotAssumed");
        assert!(
            member_role.error_message.starts_with(
                "cannot assume the member role arn:aws:iam::222222222222:role/autoheal-member \
                 in account 222222222222: AssumeRole: AccessDenied"
            ),
            "{}",
            member_role.error_message
        );
        for (error, retryable, error_type, message) in cases {
            let (is_retryable, diagnostic) = diagnostic(error);
            assert_eq!(is_retryable, retryable, "{error_type}");
            assert_eq!(diagnostic.error_type, error_type);
            assert!(
                diagnostic.error_message.contains(message),
                "{error_type}: {}",
                diagnostic.error_message
            );
        }
    }
}
