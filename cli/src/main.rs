//! `autoheal`: the operator's command line.
//!
//! `validate` and `explain` need no AWS at all; `bootstrap`, `invoke`, `tick`, `reset`,
//! `history`, `stats`, `coverage` and `alarms` talk to the endpoint given (the local emulator) or to the account the usual AWS
//! settings name.

mod crash_point;
mod detection;
mod output;
mod places;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use autoheal_aws::config::{
    DEFAULT_SCHEDULE_GROUP, DEFAULT_TABLE_NAME, DEFAULT_TOPIC_NAME, env, parse_budget,
    read_account_budget,
};
use autoheal_aws::followups::{delete_schedule, due_schedules};
use autoheal_aws::{
    FollowUpTarget, FunctionConfig, build_engine, build_engine_with_clock, sdk_config,
};
use autoheal_core::engine::explain;
use autoheal_core::engine::{DEFAULT_GLOBAL_BUDGET, DEFAULT_LAYER_BUDGET};
use autoheal_core::policy::resolve::select_any;
use autoheal_core::{
    AlarmEvent, Clock, FollowUp, Layer, Mode, Reach, RuleSet, Settings, Statistics,
};
use autoheal_detection::drill::Firing;
use crash_point::CrashPoint;

#[derive(Debug, Parser)]
#[command(name = "autoheal", version, about = "Automated healing on every layer of an AWS workload", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Format {
    Json,
    Table,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a rules file (the shipped rules when none is given); exit 1 on any problem.
    Validate {
        /// The rules file (TOML).
        rules_file: Option<PathBuf>,
    },
    /// Say what an event would do, without touching AWS: prints one JSON object.
    Explain {
        /// An EventBridge "CloudWatch Alarm State Change" event (JSON file).
        #[arg(long)]
        event: PathBuf,
        /// Rules file to use instead of the shipped rules.
        #[arg(long)]
        rules: Option<PathBuf>,
        /// Explain as if the deployment ran in shadow mode.
        #[arg(long)]
        shadow: bool,
    },
    /// Create the state table and the notification topic (as the template defines them).
    Bootstrap {
        /// Endpoint of the AWS APIs (e.g. the local emulator, http://127.0.0.1:5000).
        #[arg(long, env = "AWS_ENDPOINT_URL")]
        endpoint_url: Option<String>,
        #[arg(long, default_value = DEFAULT_TABLE_NAME)]
        table: String,
        #[arg(long, default_value = DEFAULT_TOPIC_NAME)]
        topic: String,
    },
    /// Run the real handler of the event's layer once and print the outcome and record.
    Invoke {
        /// An EventBridge "CloudWatch Alarm State Change" event (JSON file).
        #[arg(long)]
        event: PathBuf,
        /// Run this layer's handler whatever the event, as that layer's function would if
        /// EventBridge delivered the event to it (default: the layer of the event's rule).
        #[arg(long)]
        layer: Option<Layer>,
        #[command(flatten)]
        deployment: DeploymentArgs,
        #[arg(long, value_enum, default_value = "json")]
        output: Format,
        /// Only record what would be done.
        #[arg(long)]
        shadow: bool,
        /// A drill: first fire the event's alarm in CloudWatch as the event describes it
        /// (created with its metrics and tags, and no actions, where CloudWatch has none of
        /// that name; its state set to the event's). autoheal acts only on an alarm
        /// CloudWatch holds in the state the event says.
        #[arg(long)]
        fire: bool,
    },
    /// Deliver the follow-ups due (by now, or at `--at`) to their layers' real handlers, and
    /// delete them, as EventBridge Scheduler does; for where no scheduler runs them (the
    /// local emulator stores schedules but never fires them).
    Tick {
        #[command(flatten)]
        deployment: DeploymentArgs,
        /// Fire what is due at this time and run the handlers as if it were now: RFC 3339
        /// (`2026-12-01T10:00:00Z`) or a delay from now (`+15m`, `+2h`, `+1d`).
        #[arg(long, value_parser = parse_at)]
        at: Option<chrono::DateTime<chrono::Utc>>,
        #[arg(long, value_enum, default_value = "json")]
        output: Format,
    },
    /// Close an open (typically escalated) incident: autoheal acts on the resource again at
    /// its next ALARM. Recorded and notified like a run.
    Reset {
        #[command(flatten)]
        deployment: DeploymentArgs,
        /// The rule whose incident to close.
        #[arg(long)]
        rule: String,
        /// The resource the incident is about.
        #[arg(long)]
        resource: String,
        /// Where the resource is, when not in the deployment's own account and region.
        #[command(flatten)]
        place: places::PlaceArgs,
        /// Record the reset as of this time (RFC 3339 or `+N[smhd]`; default now), to keep a
        /// timeline in order after `tick --at`.
        #[arg(long, value_parser = parse_at)]
        at: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// Print incidents as timelines: detected, acted, deferred, resolved / escalated / reset.
    History {
        #[command(flatten)]
        deployment: DeploymentArgs,
        /// Only this resource's incidents.
        #[arg(long)]
        resource: Option<String>,
        /// Only this rule's incidents.
        #[arg(long)]
        rule: Option<String>,
        #[command(flatten)]
        place: places::PlaceArgs,
        /// How far back: `N` with a unit `s`, `m`, `h` or `d` (e.g. `24h`, `7d`).
        #[arg(long, default_value = "7d", value_parser = parse_duration)]
        since: chrono::Duration,
        /// Read as of this time instead of now (RFC 3339, or `+N` with a unit), to see the
        /// timelines `tick --at` and `reset --at` wrote ahead of the clock.
        #[arg(long, value_parser = parse_at)]
        at: Option<chrono::DateTime<chrono::Utc>>,
        #[arg(long, value_enum, default_value = "json")]
        output: Format,
    },
    /// Per rule and resource in the scope: protected (an alarm reaches the rule), missing, or
    /// an alarm that never reaches its rule; last line `N of M resources protected`.
    Coverage {
        #[command(flatten)]
        detection: detection::DetectionArgs,
        /// Survey this account or region instead of the credentials' own.
        #[command(flatten)]
        place: places::PlaceArgs,
        /// The role to assume in `--account` when the credentials are another account's.
        #[arg(long)]
        role_name: Option<String>,
        #[arg(long, value_enum, default_value = "table")]
        output: Format,
    },
    /// The alarms autoheal creates and keeps for its rules.
    Alarms {
        #[command(subcommand)]
        command: detection::AlarmsCommand,
    },
    /// Read healing records back and print statistics over them.
    Stats {
        #[arg(long, env = "AWS_ENDPOINT_URL")]
        endpoint_url: Option<String>,
        #[arg(long, env = env::TABLE_NAME, default_value = DEFAULT_TABLE_NAME)]
        table: String,
        /// How many UTC days back to read (today included).
        #[arg(long, default_value_t = 7)]
        days: u32,
        /// Rules file the deployment uses (for the rule counts).
        #[arg(long)]
        rules: Option<PathBuf>,
        #[command(flatten)]
        place: places::PlaceArgs,
        #[arg(long, value_enum, default_value = "json")]
        output: Format,
    },
}

/// Where a deployment's state, notifications and follow-ups are.
#[derive(Debug, clap::Args)]
struct DeploymentArgs {
    /// Endpoint of the AWS APIs (e.g. the local emulator).
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    endpoint_url: Option<String>,
    /// Rules file the deployment uses instead of the shipped rules.
    #[arg(long)]
    rules: Option<PathBuf>,
    #[arg(long, env = env::TABLE_NAME, default_value = DEFAULT_TABLE_NAME)]
    table: String,
    /// Topic ARN; by default the topic `bootstrap` created is looked up by name.
    #[arg(long, env = env::TOPIC_ARN)]
    topic_arn: Option<String>,
    /// The EventBridge Scheduler group of the follow-ups.
    #[arg(long, env = env::SCHEDULE_GROUP, default_value = DEFAULT_SCHEDULE_GROUP)]
    schedule_group: String,
    /// The role EventBridge Scheduler assumes to deliver follow-ups (the stack's output
    /// `FollowUpSchedulerRoleArn`). Against AWS, commands that heal need it.
    #[arg(long, env = env::SCHEDULER_ROLE_ARN)]
    scheduler_role_arn: Option<String>,
    /// The ARN of the stack's functions less the layer (the stack's output
    /// `FunctionArnPrefix`, `arn:aws:lambda:<region>:<account>:function:<stack>-`): a
    /// follow-up goes to `<prefix><layer>`. Against AWS, commands that heal need it.
    #[arg(long, env = "AUTOHEAL_FUNCTION_ARN_PREFIX")]
    function_arn_prefix: Option<String>,
    /// Which resources may be changed: `tagged` (only those tagged `autoheal:protect=true`)
    /// or `all` (the stack's parameter `Scope`).
    #[arg(long, env = env::SCOPE, default_value = "all")]
    scope: String,
}

impl DeploymentArgs {
    /// What `layer`'s function would be configured with in this deployment. A command that
    /// `heals` schedules follow-ups: against AWS it must name where they go, or a heal would
    /// schedule a check nobody receives (the emulator takes placeholders).
    async fn function(
        &self,
        sdk: &aws_config::SdkConfig,
        layer: Layer,
        rules: RuleSet,
        settings: Settings,
        heals: bool,
    ) -> Result<FunctionConfig, Failure> {
        let local = FollowUpTarget {
            schedule_group: self.schedule_group.clone(),
            ..FollowUpTarget::local(layer)
        };
        let follow_ups = match (&self.scheduler_role_arn, &self.function_arn_prefix) {
            (Some(role_arn), Some(prefix)) => FollowUpTarget {
                role_arn: role_arn.clone(),
                function_arn: format!("{prefix}{layer}"),
                ..local
            },
            _ if !heals || self.endpoint_url.is_some() => local,
            _ => {
                return Err(Failure(
                    "against AWS (no --endpoint-url) a heal schedules its follow-up: give \
                     --scheduler-role-arn and --function-arn-prefix, or set \
                     AUTOHEAL_SCHEDULER_ROLE_ARN and AUTOHEAL_FUNCTION_ARN_PREFIX (the stack's \
                     outputs FollowUpSchedulerRoleArn and FunctionArnPrefix)"
                        .to_owned(),
                ));
            }
        };
        let scope = autoheal_aws::tags::Scope::parse(Some(&self.scope))
            .map_err(|reason| Failure(format!("--scope: {reason}")))?;
        autoheal_aws::tags::set_scope(scope);
        let topic_arn = match &self.topic_arn {
            Some(arn) => arn.clone(),
            None => find_topic(sdk, DEFAULT_TOPIC_NAME).await?,
        };
        Ok(FunctionConfig {
            layer,
            table_name: self.table.clone(),
            topic_arn,
            settings,
            rules: rules.into(),
            follow_ups,
            member_role: None,
        })
    }
}

/// A clock stopped at one instant: `tick --at` runs the handlers as if it were then.
#[derive(Debug, Clone, Copy)]
struct FixedClock(chrono::DateTime<chrono::Utc>);

impl Clock for FixedClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.0
    }
}

/// `N` with a unit `s`, `m`, `h` or `d`.
fn parse_duration(text: &str) -> Result<chrono::Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{text}`: a duration needs a unit (s, m, h or d)"))?;
    let (number, unit) = text.split_at(split);
    let number: i64 = number
        .parse()
        .map_err(|_| format!("`{text}`: `{number}` is not a number"))?;
    match unit {
        "s" => chrono::Duration::try_seconds(number),
        "m" => chrono::Duration::try_minutes(number),
        "h" => chrono::Duration::try_hours(number),
        "d" => chrono::Duration::try_days(number),
        other => return Err(format!("`{text}`: unknown unit `{other}` (s, m, h or d)")),
    }
    .ok_or_else(|| format!("`{text}` is too long"))
}

/// `--at`: RFC 3339, or `+N` with a unit `s`, `m`, `h` or `d` from now.
fn parse_at(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    if let Some(delay) = text.strip_prefix('+') {
        let delay = parse_duration(delay)?;
        return chrono::Utc::now()
            .checked_add_signed(delay)
            .ok_or_else(|| format!("`{text}` is too long a delay"));
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|at| at.with_timezone(&chrono::Utc))
        .map_err(|e| format!("`{text}` is neither RFC 3339 nor +N[smhd]: {e}"))
}

/// A failure the user should read: printed as `error: ...`, exit code 1.
#[derive(Debug)]
pub(crate) struct Failure(String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(error: E) -> Self {
        Failure(error.to_string())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("AUTOHEAL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(Failure(message)) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn read(path: &Path, what: &str) -> Result<String, Failure> {
    std::fs::read_to_string(path)
        .map_err(|e| Failure(format!("cannot read {what} {}: {e}", path.display())))
}

pub(crate) fn load_rules(path: Option<&Path>) -> Result<RuleSet, Failure> {
    match path {
        Some(path) => RuleSet::from_toml(&read(path, "rules file")?)
            .map_err(|e| Failure(format!("{}:\n{e}", path.display()))),
        None => RuleSet::shipped().map_err(|e| Failure(format!("shipped rules:\n{e}"))),
    }
}

fn load_event(path: &Path) -> Result<(serde_json::Value, AlarmEvent), Failure> {
    let text = read(path, "event file")?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Failure(format!("{}: not valid JSON: {e}", path.display())))?;
    let event = AlarmEvent::from_value(value.clone())
        .map_err(|e| Failure(format!("{}: {e}", path.display())))?;
    Ok((value, event))
}

/// A run id unique to this process and instant.
fn run_id(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    )
}

/// The deployment's switches as a function reads them, with the budgets the environment sets
/// (the shipped ones by default).
fn settings(shadow: bool) -> Result<Settings, Failure> {
    let read = |name: &'static str, default| {
        parse_budget(name, std::env::var(name).ok(), default).map_err(Failure::from)
    };
    Ok(Settings {
        mode: if shadow { Mode::Shadow } else { Mode::Enforce },
        layer_enabled: true,
        emit_metrics: false,
        layer_budget: read(env::LAYER_BUDGET, DEFAULT_LAYER_BUDGET)?,
        global_budget: read(env::GLOBAL_BUDGET, DEFAULT_GLOBAL_BUDGET)?,
        account_budget: read_account_budget(|name| std::env::var(name).ok())?,
        // The command line acts in the account and region its credentials are in.
        reach: Reach::default(),
    })
}

async fn run(command: Command) -> Result<ExitCode, Failure> {
    match command {
        Command::Validate { rules_file } => {
            let rules = load_rules(rules_file.as_deref())?;
            let source = rules_file
                .as_deref()
                .map_or_else(|| "shipped rules".to_owned(), |p| p.display().to_string());
            println!("{source}: {}", output::rule_summary(&rules));
            // Valid, but worth knowing: a rule that some selector can never reach.
            for shadowed in autoheal_core::policy::resolve::shadowed(&rules) {
                println!("warning: {shadowed}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Explain {
            event,
            rules,
            shadow,
        } => {
            let rules = load_rules(rules.as_deref())?;
            let (_, event) = load_event(&event)?;
            let outcome = explain(&rules, &event, &settings(shadow)?, chrono::Utc::now());
            println!("{}", serde_json::to_string_pretty(&outcome)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Bootstrap {
            endpoint_url,
            table,
            topic,
        } => {
            let sdk = sdk_config(endpoint_url.as_deref()).await;
            let done = autoheal_aws::bootstrap::bootstrap(&sdk, &table, &topic).await?;
            println!("{}", serde_json::to_string_pretty(&done)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Invoke {
            event,
            layer,
            deployment,
            output: format,
            shadow,
            fire,
        } => {
            let rules = load_rules(deployment.rules.as_deref())?;
            let (payload, event) = load_event(&event)?;
            // An event no rule claims still goes through a handler, which records nothing
            // and says why; the infrastructure one is as good as any.
            let layer = layer
                .or_else(|| select_any(&rules, &event).0)
                .unwrap_or(Layer::Infrastructure);
            let sdk = sdk_config(deployment.endpoint_url.as_deref()).await;
            let config = deployment
                .function(&sdk, layer, rules, settings(shadow)?, true)
                .await?;
            let healer = crash_point::Crashing {
                inner: autoheal_layers::LayerHealer::new(layer, &sdk),
                point: CrashPoint::from_env().map_err(Failure)?,
            };
            // Fired once everything else is known to be right: a bad flag changes nothing.
            if fire {
                let rule = select_any(&config.rules, &event).1.rule();
                let cloudwatch = aws_sdk_cloudwatch::Client::new(&sdk);
                autoheal_detection::drill::fire(&cloudwatch, &event, rule, Firing::AsEvent).await?;
            }
            let outcome = build_engine(config, &sdk, healer)
                .handle(payload, &run_id("cli"))
                .await?;
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&outcome)?),
                Format::Table => print!("{}", output::outcome_table(&outcome)),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Tick {
            deployment,
            at,
            output: format,
        } => {
            let at = at.unwrap_or_else(chrono::Utc::now);
            let rules = load_rules(deployment.rules.as_deref())?;
            let sdk = sdk_config(deployment.endpoint_url.as_deref()).await;
            let scheduler = aws_sdk_scheduler::Client::new(&sdk);
            let group = &deployment.schedule_group;
            let due = due_schedules(&scheduler, group, at).await?;
            let mut failed = false;
            let mut outcomes = Vec::new();
            for schedule in due {
                let Some(follow_up) = FollowUp::from_payload(&schedule.payload)? else {
                    eprintln!(
                        "warning: schedule {} is not an autoheal follow-up; left as it is",
                        schedule.name
                    );
                    continue;
                };
                let layer = follow_up.layer;
                let config = deployment
                    .function(&sdk, layer, rules.clone(), settings(false)?, true)
                    .await?;
                let healer = crash_point::Crashing {
                    inner: autoheal_layers::LayerHealer::new(layer, &sdk),
                    point: CrashPoint::from_env().map_err(Failure)?,
                };
                let engine = build_engine_with_clock(config, &sdk, healer, FixedClock(at));
                match engine.handle(schedule.payload, &run_id("tick")).await {
                    Ok(outcome) => {
                        delete_schedule(&scheduler, group, &schedule.name).await?;
                        outcomes.push(outcome);
                    }
                    // EventBridge Scheduler would retry it: the schedule stays for the next tick.
                    Err(error) => {
                        eprintln!("error: schedule {}: {error}", schedule.name);
                        failed = true;
                    }
                }
            }
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&outcomes)?),
                Format::Table => {
                    if outcomes.is_empty() {
                        println!("no follow-up due at {}", at.to_rfc3339());
                    }
                    for outcome in &outcomes {
                        print!("{}", output::outcome_table(outcome));
                    }
                }
            }
            Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Reset {
            deployment,
            rule,
            resource,
            place,
            at,
        } => {
            let rules = load_rules(deployment.rules.as_deref())?;
            let layer = rules
                .get(&rule)
                .map(|found| found.layer)
                .ok_or_else(|| Failure(format!("no rule `{rule}` in the rules")))?;
            let sdk = sdk_config(deployment.endpoint_url.as_deref()).await;
            let (reach, place) = place.reach(&sdk).await?;
            let settings = Settings {
                reach,
                ..settings(false)?
            };
            let config = deployment
                .function(&sdk, layer, rules, settings, false)
                .await?;
            let healer = autoheal_layers::LayerHealer::new(layer, &sdk);
            let clock = FixedClock(at.unwrap_or_else(chrono::Utc::now));
            let record = build_engine_with_clock(config, &sdk, healer, clock)
                .reset_in(&rule, &resource, place, &run_id("reset"))
                .await?;
            println!("{}", serde_json::to_string_pretty(&record)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::History {
            deployment,
            resource,
            rule,
            place,
            since,
            at,
            output: format,
        } => {
            let sdk = sdk_config(deployment.endpoint_url.as_deref()).await;
            let store = autoheal_aws::DynamoStateStore::new(
                aws_sdk_dynamodb::Client::new(&sdk),
                &deployment.table,
            );
            let now = at.unwrap_or_else(chrono::Utc::now);
            let from = now - since;
            let days = u32::try_from((now.date_naive() - from.date_naive()).num_days() + 1)
                .unwrap_or(u32::MAX);
            let records: Vec<_> = store
                .recent_records(days, now)
                .await?
                .into_iter()
                .filter(|r| r.started_at >= from)
                .filter(|r| resource.as_ref().is_none_or(|id| &r.resource_id == id))
                .filter(|r| rule.as_ref().is_none_or(|name| &r.rule == name))
                .filter(|r| place.admits(r))
                .collect();
            let timelines = autoheal_core::report::history::timelines(&records);
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&timelines)?),
                Format::Table => print!("{}", output::timelines_table(&timelines)),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Coverage {
            detection,
            place,
            role_name,
            output,
        } => detection::coverage(&detection, &place, role_name.as_deref(), output).await,
        Command::Alarms { command } => detection::alarms(&command).await,
        Command::Stats {
            endpoint_url,
            table,
            days,
            rules,
            place,
            output: format,
        } => {
            let rules = load_rules(rules.as_deref())?;
            let sdk = sdk_config(endpoint_url.as_deref()).await;
            let store =
                autoheal_aws::DynamoStateStore::new(aws_sdk_dynamodb::Client::new(&sdk), table);
            let mut records = store.recent_records(days, chrono::Utc::now()).await?;
            records.retain(|r| place.admits(r));
            let stats = Statistics::compute(&records, &rules);
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&stats)?),
                Format::Table => print!("{}", output::stats_table(&stats)),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The ARN of the topic named `name`, as `bootstrap` created it.
async fn find_topic(sdk: &aws_config::SdkConfig, name: &str) -> Result<String, Failure> {
    let sns = aws_sdk_sns::Client::new(sdk);
    let mut pages = sns.list_topics().into_paginator().items().send();
    while let Some(topic) = pages.next().await {
        let topic = topic.map_err(|e| {
            Failure(format!(
                "ListTopics: {}",
                aws_smithy_types::error::display::DisplayErrorContext(&e)
            ))
        })?;
        if let Some(arn) = topic.topic_arn()
            && arn.rsplit(':').next() == Some(name)
        {
            return Ok(arn.to_owned());
        }
    }
    Err(Failure(format!(
        "no SNS topic named `{name}`: run `autoheal bootstrap` first, or pass --topic-arn (or \
         set AUTOHEAL_TOPIC_ARN) to the stack's output NotificationTopicArn"
    )))
}
