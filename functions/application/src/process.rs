//! `restart-process`: restart a leaking application process through Systems Manager.
//!
//! The resource is an EC2 instance (the `InstanceId` of the CloudWatch agent's
//! `mem_used_percent`). The instance must be running, not opted out, and managed by Systems
//! Manager with its agent online; then a Run Command of the rule's document
//! (`AWS-RunShellScript`) runs `systemctl restart <service>` on it. systemd stops the unit
//! gracefully (its `ExecStop` and `TimeoutStopSec`) and starts it again with fresh memory.
//!
//! `SendCommand` takes no client token: the command's comment carries the attempt's
//! idempotency token, and a retried attempt that finds a command with that token on the
//! instance does not send a second one.

use std::collections::BTreeMap;

use aws_sdk_ec2::Client as Ec2Client;
use aws_sdk_ec2::types::InstanceStateName;
use aws_sdk_ssm::Client as SsmClient;
use aws_sdk_ssm::types::{
    CommandFilter, CommandFilterKey, InstanceInformationStringFilter, PingStatus,
};

use autoheal_aws::errors::api_error;
use autoheal_aws::tags::{OPT_OUT_TAG, pairs_opt_out};
use autoheal_core::{HealError, HealOutcome, HealRequest, SkipReason};

/// If the command has not started on the instance by then, it does not run at all: a restart
/// that comes late is no longer the one the alarm asked for.
const DELIVERY_TIMEOUT_SECONDS: i32 = 120;

/// How far back a retried attempt looks for the command it may already have sent: longer
/// than any claim lease.
const RETRY_LOOKBACK_HOURS: i64 = 6;

/// `SendCommand` accepts comments of at most this many characters.
const COMMENT_MAX: usize = 100;

/// Restarts processes on instances with Systems Manager Run Command.
#[derive(Debug, Clone)]
pub struct ProcessRestarter {
    ec2: Ec2Client,
    ssm: SsmClient,
}

impl ProcessRestarter {
    pub fn new(ec2: Ec2Client, ssm: SsmClient) -> Self {
        ProcessRestarter { ec2, ssm }
    }

    pub async fn restart(
        &self,
        request: HealRequest<'_>,
        service: &str,
        document: &str,
    ) -> Result<HealOutcome, HealError> {
        let instance_id = request.resource_id;
        let instance = autoheal_aws::lookups::describe_instance(&self.ec2, instance_id).await?;
        let state = instance.state().and_then(|s| s.name());
        if state != Some(&InstanceStateName::Running) {
            let state = state.map_or("in an unknown state", InstanceStateName::as_str);
            return Ok(HealOutcome::Skipped {
                reason: SkipReason::NotNeeded,
                summary: format!("{instance_id} is {state}, not running: no process to restart"),
            });
        }
        if pairs_opt_out(
            instance
                .tags()
                .iter()
                .filter_map(|tag| Some((tag.key()?, tag.value()?))),
        ) {
            return Ok(HealOutcome::Skipped {
                reason: SkipReason::OptedOut,
                summary: format!("{instance_id} is tagged {OPT_OUT_TAG}=true"),
            });
        }
        match self.ping_status(instance_id).await? {
            Some(PingStatus::Online) => {}
            Some(status) => {
                return Ok(HealOutcome::Skipped {
                    reason: SkipReason::Unsafe,
                    summary: format!(
                        "the Systems Manager agent of {instance_id} is {}, not online: the restart could not be delivered",
                        status.as_str()
                    ),
                });
            }
            None => {
                return Ok(HealOutcome::Skipped {
                    reason: SkipReason::Unsafe,
                    summary: format!("{instance_id} is not managed by Systems Manager"),
                });
            }
        }

        let comment = comment(request.idempotency_token, request.incident_id);
        if let Some(command_id) = self
            .earlier_command(instance_id, request.idempotency_token)
            .await?
        {
            return Ok(HealOutcome::Skipped {
                reason: SkipReason::NotNeeded,
                summary: format!(
                    "this attempt already sent the restart of {service} on {instance_id} (command {command_id})"
                ),
            });
        }
        let command_line = format!("systemctl restart {service}");
        let sent = self
            .ssm
            .send_command()
            .instance_ids(instance_id)
            .document_name(document)
            .parameters("commands", vec![command_line.clone()])
            .comment(comment)
            .timeout_seconds(DELIVERY_TIMEOUT_SECONDS)
            .send()
            .await
            .map_err(|e| api_error("SendCommand", e))?;
        let command_id = sent
            .command()
            .and_then(|command| command.command_id())
            .ok_or_else(|| HealError::new("SendCommand returned no command id"))?
            .to_owned();
        Ok(HealOutcome::Healed {
            summary: format!(
                "sent `{command_line}` to {instance_id} with {document} (command {command_id})"
            ),
            details: BTreeMap::from([
                ("command_id".to_owned(), command_id),
                ("document".to_owned(), document.to_owned()),
                ("service".to_owned(), service.to_owned()),
            ]),
            reverts: Vec::new(),
        })
    }

    /// The agent's ping status, or `None` when Systems Manager does not manage the instance.
    async fn ping_status(&self, instance_id: &str) -> Result<Option<PingStatus>, HealError> {
        let filter = InstanceInformationStringFilter::builder()
            .key("InstanceIds")
            .values(instance_id)
            .build()
            .map_err(|e| HealError::new(format!("DescribeInstanceInformation: {e}")))?;
        let output = self
            .ssm
            .describe_instance_information()
            .filters(filter)
            .send()
            .await
            .map_err(|e| api_error("DescribeInstanceInformation", e))?;
        Ok(output
            .instance_information_list()
            .iter()
            .find(|info| info.instance_id() == Some(instance_id))
            .map(|info| info.ping_status().cloned().unwrap_or(PingStatus::Inactive)))
    }

    /// A command this attempt already sent to the instance (its comment starts with the token).
    async fn earlier_command(
        &self,
        instance_id: &str,
        token: &str,
    ) -> Result<Option<String>, HealError> {
        let since = chrono::Utc::now() - chrono::Duration::hours(RETRY_LOOKBACK_HOURS);
        let recent = CommandFilter::builder()
            .key(CommandFilterKey::InvokedAfter)
            .value(since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .build()
            .map_err(|e| HealError::new(format!("ListCommands: {e}")))?;
        let output = self
            .ssm
            .list_commands()
            .instance_id(instance_id)
            .filters(recent)
            .send()
            .await
            .map_err(|e| api_error("ListCommands", e))?;
        Ok(output
            .commands()
            .iter()
            .filter(|command| {
                command
                    .comment()
                    .is_some_and(|comment| comment.starts_with(&format!("autoheal {token}")))
            })
            .find_map(|command| command.command_id().map(str::to_owned)))
    }
}

/// `autoheal <token>: incident <id>`, cut to what `SendCommand` accepts (the token first, so
/// that it survives the cut).
fn comment(token: &str, incident_id: &str) -> String {
    format!("autoheal {token}: incident {incident_id}")
        .chars()
        .take(COMMENT_MAX)
        .collect()
}
