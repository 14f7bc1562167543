//! `autoheal coverage` and `autoheal alarms plan|apply`: the detection function's own code,
//! run from a terminal against the account (or the emulator) the usual settings name.

use std::path::PathBuf;
use std::process::ExitCode;

use autoheal_core::policy::detection::coverage::{Coverage, Protection};
use autoheal_core::policy::detection::plan::{Change, Plan};
use autoheal_core::policy::detection::target::Scope;
use autoheal_detection::{
    ACTIONS_VARIABLE, Clients, Own, SCOPE_VARIABLE, STACK_VARIABLE, Settings,
};

use crate::places::PlaceArgs;
use crate::{Failure, Format, load_rules};

/// Where detection looks, and what its alarms notify.
#[derive(Debug, clap::Args)]
pub struct DetectionArgs {
    /// Endpoint of the AWS APIs (e.g. the local emulator).
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    endpoint_url: Option<String>,
    /// Rules file the deployment uses instead of the shipped rules.
    #[arg(long)]
    rules: Option<PathBuf>,
    /// Which resources get alarms: `tagged` (tag `autoheal:protect=true`), `all` or `off`.
    #[arg(long, env = SCOPE_VARIABLE, default_value = "tagged")]
    scope: Scope,
    /// Alarm actions of the alarms autoheal creates (the stack's topic ARN), comma-separated.
    #[arg(long = "alarm-actions", env = ACTIONS_VARIABLE, default_value = "")]
    actions: String,
    /// The stack whose resources are autoheal's own (never protected).
    #[arg(long, env = STACK_VARIABLE)]
    stack: Option<String>,
}

impl DetectionArgs {
    async fn open(&self) -> Result<(Clients, Settings), Failure> {
        let sdk = autoheal_aws::sdk_config(self.endpoint_url.as_deref()).await;
        self.open_with(&sdk)
    }

    fn open_with(&self, sdk: &aws_config::SdkConfig) -> Result<(Clients, Settings), Failure> {
        let rules = load_rules(self.rules.as_deref())?;
        let settings = Settings {
            rules,
            scope: self.scope,
            actions: self
                .actions
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(str::to_owned)
                .collect(),
            own: Own {
                stack: self.stack.clone(),
            },
        };
        Ok((Clients::new(sdk), settings))
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum AlarmsCommand {
    /// Print what `apply` would change (`+` create, `~` update, `-` delete); change nothing.
    Plan {
        #[command(flatten)]
        detection: DetectionArgs,
        #[arg(long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Make exactly the plan's changes: create missing alarms, put back drifted ones and
    /// delete those no resource needs. Only alarms autoheal created are ever changed.
    Apply {
        #[command(flatten)]
        detection: DetectionArgs,
        #[arg(long, value_enum, default_value = "table")]
        output: Format,
    },
}

/// `autoheal coverage`, in the credentials' account and region or in `place`.
pub async fn coverage(
    detection: &DetectionArgs,
    place: &PlaceArgs,
    role_name: Option<&str>,
    format: Format,
) -> Result<ExitCode, Failure> {
    let sdk = autoheal_aws::sdk_config(detection.endpoint_url.as_deref()).await;
    let sdk = place.sdk(&sdk, role_name).await?;
    let (clients, settings) = detection.open_with(&sdk)?;
    let survey = autoheal_detection::survey(&clients, &settings).await?;
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&survey.coverage)?),
        Format::Table => print!("{}", coverage_table(&survey.coverage)),
    }
    Ok(ExitCode::SUCCESS)
}

/// `autoheal alarms plan|apply`.
pub async fn alarms(command: &AlarmsCommand) -> Result<ExitCode, Failure> {
    match command {
        AlarmsCommand::Plan { detection, output } => {
            let (clients, settings) = detection.open().await?;
            let survey = autoheal_detection::survey(&clients, &settings).await?;
            match output {
                Format::Json => println!("{}", serde_json::to_string_pretty(&survey.plan)?),
                Format::Table => print!("{}", plan_table(&survey.plan)),
            }
        }
        AlarmsCommand::Apply { detection, output } => {
            let (clients, settings) = detection.open().await?;
            let applied = autoheal_detection::apply(&clients, &settings).await?;
            match output {
                Format::Json => println!("{}", serde_json::to_string_pretty(&applied)?),
                Format::Table => {
                    for made in &applied.made {
                        println!("{} {}", made.sign, made.alarm);
                    }
                    let count = |sign| applied.made.iter().filter(|m| m.sign == sign).count();
                    println!(
                        "{} created, {} updated, {} deleted, {} unchanged",
                        count('+'),
                        count('~'),
                        count('-'),
                        applied.unchanged
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One line per rule and resource, then `N of M resources protected`.
pub fn coverage_table(coverage: &Coverage) -> String {
    let mut rows = vec![[
        "RULE".to_owned(),
        "RESOURCE".to_owned(),
        "STATUS".to_owned(),
        "ALARM".to_owned(),
    ]];
    for entry in &coverage.entries {
        let (alarm, note) = match &entry.protection {
            Protection::Protected { alarm, managed } => (
                alarm.clone(),
                if *managed { "autoheal's" } else { "yours" }.to_owned(),
            ),
            Protection::ProtectedByAws { alarm } => (alarm.clone(), String::new()),
            Protection::Unreached { alarm, why } => (alarm.clone(), why.clone()),
            Protection::Missing => ("-".to_owned(), String::new()),
        };
        let status = match note.as_str() {
            "" => entry.protection.label().to_owned(),
            note => format!("{} ({note})", entry.protection.label()),
        };
        rows.push([entry.rule.clone(), entry.resource.clone(), status, alarm]);
    }
    let mut text = table(&rows);
    text.push_str(&coverage.summary());
    text.push('\n');
    text
}

/// One line per change, with why, then the counts.
pub fn plan_table(plan: &Plan) -> String {
    let mut text = String::new();
    for change in &plan.changes {
        let why = match change {
            Change::Create { desired } => format!("{} on {}", desired.rule, desired.resource),
            Change::Update { differences, .. } => differences.join("; "),
            Change::Delete { why, .. } => why.clone(),
        };
        text.push_str(&format!("{} {}  ({why})\n", change.sign(), change.name()));
    }
    for left in &plan.left {
        text.push_str(&format!(
            "  {} on {}: no alarm created: {}\n",
            left.rule, left.resource, left.why
        ));
    }
    text.push_str(&plan.summary());
    text.push('\n');
    text
}

fn table(rows: &[[String; 4]]) -> String {
    let mut widths = [0usize; 4];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        text.push_str(line.join("  ").trim_end());
        text.push('\n');
    }
    text
}
