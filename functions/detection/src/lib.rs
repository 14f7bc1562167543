//! Detection: the alarms autoheal's rules need, kept in the account. One run lists every
//! rule's resources (`discover`, through `listing`) and the alarms (`alarms`), lets the core
//! decide (`autoheal_core::policy::detection`: scope, coverage, plan) and writes the plan.
//! The detection function runs it on a schedule and on resource lifecycle events;
//! `autoheal coverage` and `autoheal alarms plan|apply` run the same code.

pub mod alarms;
pub mod discover;
pub mod drill;
pub mod error;
pub mod listing;

use std::time::Duration;

use autoheal_core::RuleSet;
use autoheal_core::model::alarm::ExistingAlarm;
use autoheal_core::policy::detection::coverage::{Coverage, coverage};
use autoheal_core::policy::detection::plan::{Plan, plan};
use autoheal_core::policy::detection::target::{Scope, Target, targets};
use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use serde::Serialize;

pub use alarms::Made;
pub use error::DetectionError;
pub use listing::Own;

/// The variable naming the scope (`tagged`, `all`, `off`).
pub const SCOPE_VARIABLE: &str = "AUTOHEAL_ALARM_SCOPE";
/// The variable naming the alarm action of autoheal's alarms (the stack's topic), if any.
pub const ACTIONS_VARIABLE: &str = "AUTOHEAL_ALARM_ACTIONS";
/// The variable naming the stack, whose resources are autoheal's own.
pub const STACK_VARIABLE: &str = "AUTOHEAL_STACK_NAME";

/// The clients of every listing and of CloudWatch.
#[derive(Debug, Clone)]
pub struct Clients {
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub ec2: aws_sdk_ec2::Client,
    pub autoscaling: aws_sdk_autoscaling::Client,
    pub ecs: aws_sdk_ecs::Client,
    pub lambda: aws_sdk_lambda::Client,
    pub rds: aws_sdk_rds::Client,
    pub elasticache: aws_sdk_elasticache::Client,
    pub elbv2: aws_sdk_elasticloadbalancingv2::Client,
    pub route53: aws_sdk_route53::Client,
}

impl Clients {
    /// The clients of `sdk`. CloudWatch's retries more, and longer: writing a fleet's alarms
    /// meets `PutMetricAlarm`'s low request rate, and a throttled write must still be made.
    pub fn new(sdk: &SdkConfig) -> Self {
        let cloudwatch = aws_sdk_cloudwatch::config::Builder::from(sdk)
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(8)
                    .with_initial_backoff(Duration::from_millis(200))
                    .with_max_backoff(Duration::from_secs(10)),
            )
            .build();
        Clients {
            cloudwatch: aws_sdk_cloudwatch::Client::from_conf(cloudwatch),
            ec2: aws_sdk_ec2::Client::new(sdk),
            autoscaling: aws_sdk_autoscaling::Client::new(sdk),
            ecs: aws_sdk_ecs::Client::new(sdk),
            lambda: aws_sdk_lambda::Client::new(sdk),
            rds: aws_sdk_rds::Client::new(sdk),
            elasticache: aws_sdk_elasticache::Client::new(sdk),
            elbv2: aws_sdk_elasticloadbalancingv2::Client::new(sdk),
            route53: aws_sdk_route53::Client::new(sdk),
        }
    }
}

/// What one run is about: the rules, the scope, the alarm actions, who autoheal is.
#[derive(Debug, Clone)]
pub struct Settings {
    pub rules: RuleSet,
    pub scope: Scope,
    pub actions: Vec<String>,
    pub own: Own,
}

impl Settings {
    /// The settings from the function's environment (`lookup` reads a variable), with the
    /// given rules.
    pub fn from_lookup(
        rules: RuleSet,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, DetectionError> {
        let scope = match lookup(SCOPE_VARIABLE).filter(|v| !v.trim().is_empty()) {
            Some(value) => value.parse().map_err(|message: String| {
                DetectionError::Config(format!(
                    "{SCOPE_VARIABLE}: {message} (set by the stack parameter AlarmScope)"
                ))
            })?,
            None => Scope::default(),
        };
        let actions = lookup(ACTIONS_VARIABLE)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|action| !action.is_empty())
            .map(str::to_owned)
            .collect();
        let stack = lookup(STACK_VARIABLE).filter(|v| !v.trim().is_empty());
        Ok(Settings {
            rules,
            scope,
            actions,
            own: Own { stack },
        })
    }
}

/// The rules the layers' functions use: the file `AUTOHEAL_RULES_PATH` names, or the
/// shipped ones.
pub fn load_rules(lookup: impl Fn(&str) -> Option<String>) -> Result<RuleSet, DetectionError> {
    let variable = autoheal_aws::config::env::RULES_PATH;
    match lookup(variable).filter(|v| !v.trim().is_empty()) {
        Some(path) => {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                DetectionError::Config(format!("{variable}: cannot read `{path}`: {e}"))
            })?;
            RuleSet::from_toml(&text).map_err(|e| {
                DetectionError::Config(format!(
                    "{variable}: `{path}` is not a valid rules file (`autoheal validate FILE` lists each problem with its line):\n{e}"
                ))
            })
        }
        None => RuleSet::shipped().map_err(|e| DetectionError::Config(e.to_string())),
    }
}

/// Everything one look at the account finds: the targets in the scope, the alarms, and what
/// the core makes of them.
#[derive(Debug, Clone)]
pub struct Survey {
    pub targets: Vec<Target>,
    pub alarms: Vec<ExistingAlarm>,
    pub coverage: Coverage,
    pub plan: Plan,
}

/// Lists every rule's resources and every alarm, and decides coverage and the plan. Changes
/// nothing.
pub async fn survey(clients: &Clients, settings: &Settings) -> Result<Survey, DetectionError> {
    let found = if settings.scope == Scope::Off {
        Vec::new()
    } else {
        Box::pin(discover::discover(clients, &settings.rules, &settings.own)).await?
    };
    let targets = targets(&settings.rules, &found, settings.scope);
    let alarms = Box::pin(alarms::existing(&clients.cloudwatch, &settings.rules)).await?;
    let coverage = coverage(&settings.rules, &targets, &alarms);
    let plan = plan(&settings.rules, &targets, &alarms, &settings.actions);
    Ok(Survey {
        targets,
        alarms,
        coverage,
        plan,
    })
}

/// What a run of `alarms apply` (or the detection function) did.
#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    pub scope: Scope,
    pub made: Vec<Made>,
    pub unchanged: usize,
    /// The coverage before the changes.
    pub before: String,
}

/// Surveys the account and makes the plan's changes.
pub async fn apply(clients: &Clients, settings: &Settings) -> Result<Applied, DetectionError> {
    let survey = Box::pin(survey(clients, settings)).await?;
    let made = alarms::apply(&clients.cloudwatch, &survey.plan).await?;
    Ok(Applied {
        scope: settings.scope,
        made,
        unchanged: survey.plan.unchanged,
        before: survey.coverage.summary(),
    })
}

/// One invocation of the detection function: whatever the event (the schedule, a resource's
/// lifecycle event), one `alarms apply` over the whole account; the answer says what changed.
pub async fn handle(
    clients: &Clients,
    settings: &Settings,
    event: &serde_json::Value,
) -> Result<serde_json::Value, DetectionError> {
    let trigger = event["detail-type"].as_str().unwrap_or("invocation");
    tracing::info!(trigger, scope = settings.scope.as_str(), "detection run");
    let applied = apply(clients, settings).await?;
    for made in &applied.made {
        tracing::info!(change = %made.sign, alarm = %made.alarm, "alarm changed");
    }
    serde_json::to_value(&applied).map_err(|e| DetectionError::Config(e.to_string()))
}

/// Lambda reports a failed run with its kind and message.
impl From<DetectionError> for lambda_runtime::Diagnostic {
    fn from(error: DetectionError) -> Self {
        let kind = match &error {
            DetectionError::Listing { .. } => "DetectionListingFailed",
            DetectionError::Writing { .. } => "DetectionWritingFailed",
            DetectionError::Config(_) => "DetectionConfigInvalid",
        };
        lambda_runtime::Diagnostic {
            error_type: kind.to_owned(),
            error_message: error.to_string(),
        }
    }
}
