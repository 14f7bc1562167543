//! `autoheal`: the operator's command line.
//!
//! `validate` and `explain` need no AWS at all; `bootstrap`, `invoke` and `stats` talk to the
//! endpoint given (the local emulator) or to the account the usual AWS settings name.

mod output;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use autoheal_aws::config::{DEFAULT_TABLE_NAME, DEFAULT_TOPIC_NAME, env};
use autoheal_aws::{FunctionConfig, build_engine, sdk_config};
use autoheal_core::engine::explain;
use autoheal_core::resolve::select_any;
use autoheal_core::{AlarmEvent, Layer, Mode, RuleSet, Settings, Statistics};

#[derive(Debug, Parser)]
#[command(name = "autoheal", version, about = "Automated healing on every layer of an AWS workload", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
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
        /// Endpoint of the AWS APIs (e.g. the local emulator).
        #[arg(long, env = "AWS_ENDPOINT_URL")]
        endpoint_url: Option<String>,
        #[arg(long, value_enum, default_value = "json")]
        output: Format,
        /// Rules file to use instead of the shipped rules.
        #[arg(long)]
        rules: Option<PathBuf>,
        #[arg(long, env = env::TABLE_NAME, default_value = DEFAULT_TABLE_NAME)]
        table: String,
        /// Topic ARN; by default the topic `bootstrap` created is looked up by name.
        #[arg(long, env = env::TOPIC_ARN)]
        topic_arn: Option<String>,
        /// Only record what would be done.
        #[arg(long)]
        shadow: bool,
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
        #[arg(long, value_enum, default_value = "json")]
        output: Format,
    },
}

/// A failure the user should read: printed as `error: ...`, exit code 1.
#[derive(Debug)]
struct Failure(String);

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

fn load_rules(path: Option<&Path>) -> Result<RuleSet, Failure> {
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

fn settings(shadow: bool) -> Settings {
    Settings {
        mode: if shadow { Mode::Shadow } else { Mode::Enforce },
        layer_enabled: true,
    }
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
            for shadowed in autoheal_core::resolve::shadowed(&rules) {
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
            let outcome = explain(&rules, &event, settings(shadow), chrono::Utc::now());
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
            endpoint_url,
            output: format,
            rules,
            table,
            topic_arn,
            shadow,
        } => {
            let rules = load_rules(rules.as_deref())?;
            let (payload, event) = load_event(&event)?;
            // An event no rule claims still goes through a handler, which records nothing
            // and says why; the infrastructure one is as good as any.
            let layer = layer
                .or_else(|| select_any(&rules, &event).0)
                .unwrap_or(Layer::Infrastructure);
            let sdk = sdk_config(endpoint_url.as_deref()).await;
            let topic_arn = match topic_arn {
                Some(arn) => arn,
                None => find_topic(&sdk, DEFAULT_TOPIC_NAME).await?,
            };
            let config = FunctionConfig {
                layer,
                table_name: table,
                topic_arn,
                settings: settings(shadow),
                rules,
            };
            let run_id = format!(
                "cli-{}-{}",
                std::process::id(),
                chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
            );
            let healer = autoheal_layers::LayerHealer::new(layer, &sdk);
            let outcome = build_engine(config, &sdk, healer)
                .handle(payload, &run_id)
                .await?;
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&outcome)?),
                Format::Table => print!("{}", output::outcome_table(&outcome)),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Stats {
            endpoint_url,
            table,
            days,
            rules,
            output: format,
        } => {
            let rules = load_rules(rules.as_deref())?;
            let sdk = sdk_config(endpoint_url.as_deref()).await;
            let store =
                autoheal_aws::DynamoStateStore::new(aws_sdk_dynamodb::Client::new(&sdk), table);
            let records = store.recent_records(days, chrono::Utc::now()).await?;
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
        "no SNS topic named `{name}`: run `autoheal bootstrap` first, or pass --topic-arn"
    )))
}
