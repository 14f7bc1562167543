//! `restart-process`: restart a leaking application process through Systems Manager.
//!
//! The resource is an EC2 instance (the `InstanceId` of the CloudWatch agent's
//! `mem_used_percent`). The instance must be running, not opted out, and managed by Systems
//! Manager with its agent online; then a Run Command of the rule's document
//! (`AWS-RunShellScript`) runs a short script on it ([`restart_script`]):
//!
//! 1. optionally a diagnostic (`heap_dump_command`, e.g. `jcmd {pid} GC.heap_dump {output}`)
//!    against the unit's main process, bounded in time (`timeout`) and size: it is not run
//!    without twice `heap_dump_max_mb` free in its directory, and a larger dump is deleted,
//!    so that a post-mortem never fills the instance's disk. Whatever becomes of it, the
//!    restart goes on; the record names the file;
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
use autoheal_aws::tags::{OPT_OUT_TAG, pairs_opt_out};
use autoheal_core::{Assessment, HealError, HealOutcome, HealRequest, SkipReason};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

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
    pub document: &'a str,
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

/// A value as one single-quoted shell word.
fn quoted(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// The script's lines, and the file the heap dump goes to if one is taken. The service name
/// and the directory were checked to be plain words when the rules loaded; the operator's
/// command runs in its own `sh -c`, its placeholders bound to positional parameters so that
/// nothing from the instance is parsed as shell.
pub fn restart_script(plan: &RestartPlan<'_>, token: &str) -> (Vec<String>, Option<String>) {
    let unit = quoted(plan.service);
    let mut lines = vec![format!("unit={unit}")];
    let mut output = None;
    if let Some(dump) = plan.heap_dump {
        let directory = dump.directory.trim_end_matches('/');
        let directory = if directory.is_empty() { "/" } else { directory };
        // The token's unique tail names the file: one dump per attempt.
        let token: Vec<char> = token.chars().filter(char::is_ascii_alphanumeric).collect();
        let tail: String = token[token.len().saturating_sub(12)..].iter().collect();
        let file = format!("{directory}/{}-{tail}.dump", plan.service);
        let max_kb = u64::from(dump.max_mb) * 1024;
        let command = dump
            .command
            .replace("{pid}", "\"$1\"")
            .replace("{output}", "\"$2\"");
        lines.extend([
            format!("dir={}; dump={}", quoted(directory), quoted(&file)),
            r#"pid=$(systemctl show --property=MainPID --value "$unit")"#.to_owned(),
            r#"if [ "${pid:-0}" -gt 0 ] 2>/dev/null; then mkdir -p "$dir" && chmod 700 "$dir""#.to_owned(),
            format!(
                r#"  free=$(df -Pk "$dir" | awk 'NR==2 {{print $4}}'); if [ "${{free:-0}}" -ge {} ]; then"#,
                max_kb * 2
            ),
            format!(
                r#"    timeout {} sh -c {} autoheal-heap-dump "$pid" "$dump" || echo "autoheal: the heap dump failed or took over {} s" >&2"#,
                dump.timeout_seconds,
                quoted(&command),
                dump.timeout_seconds
            ),
            format!(
                r#"    if [ -f "$dump" ] && [ "$(du -k "$dump" | cut -f1)" -gt {max_kb} ]; then rm -f "$dump"; echo "autoheal: the heap dump was over {} MB and was deleted" >&2; fi"#,
                dump.max_mb
            ),
            format!(
                r#"  else echo "autoheal: less than {} MB free in $dir: no heap dump" >&2; fi"#,
                u64::from(dump.max_mb) * 2
            ),
            r#"else echo "autoheal: $unit has no main process: no heap dump" >&2; fi"#.to_owned(),
        ]);
        output = Some(file);
    }
    lines.extend([
        format!(
            r#"timeout {} systemctl stop "$unit" || systemctl kill --signal=SIGKILL "$unit""#,
            plan.stop_timeout_seconds
        ),
        r#"systemctl start "$unit""#.to_owned(),
    ]);
    (lines, output)
}

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
        plan: RestartPlan<'_>,
    ) -> Result<HealOutcome, HealError> {
        let RestartPlan {
            service, document, ..
        } = plan;
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
        let (script, dump) = restart_script(&plan, request.idempotency_token);
        let sent = self
            .ssm
            .send_command()
            .instance_ids(instance_id)
            .document_name(document)
            .parameters("commands", script)
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
        let output = match self
            .ec2
            .describe_instances()
            .instance_ids(instance_id)
            .send()
            .await
        {
            Ok(output) => output,
            Err(e) if e.code() == Some("InvalidInstanceID.NotFound") => return Ok(None),
            Err(e) => return Err(api_error("DescribeInstances", e)),
        };
        Ok(output
            .reservations()
            .iter()
            .flat_map(|reservation| reservation.instances())
            .find(|instance| instance.instance_id() == Some(instance_id))
            .cloned())
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
            document: "AWS-RunShellScript",
            heap_dump,
            stop_timeout_seconds: 45,
        }
    }

    #[test]
    fn without_a_heap_dump_the_service_stops_gracefully_then_starts() {
        let (lines, dump) = restart_script(&plan(None), "token-1");
        assert_eq!(dump, None);
        assert_eq!(
            lines,
            [
                "unit='app'",
                r#"timeout 45 systemctl stop "$unit" || systemctl kill --signal=SIGKILL "$unit""#,
                r#"systemctl start "$unit""#,
            ]
        );
    }

    #[test]
    fn a_heap_dump_comes_first_bounded_in_time_and_size() {
        let heap_dump = HeapDump {
            command: "jcmd {pid} GC.heap_dump {output}",
            timeout_seconds: 90,
            max_mb: 512,
            directory: "/var/tmp/autoheal/",
        };
        let (lines, dump) = restart_script(&plan(Some(heap_dump)), "3f2a-9c!");
        assert_eq!(dump.as_deref(), Some("/var/tmp/autoheal/app-3f2a9c.dump"));
        let script = lines.join("\n");
        assert!(
            script.contains(
                r#"timeout 90 sh -c 'jcmd "$1" GC.heap_dump "$2"' autoheal-heap-dump "$pid" "$dump""#
            ),
            "{script}"
        );
        assert!(
            script.contains("-ge 1048576 ]"),
            "twice the limit free: {script}"
        );
        assert!(
            script.contains(r#"-gt 524288 ]; then rm -f "$dump""#),
            "{script}"
        );
        let dump_at = script.find("sh -c").expect("the dump");
        let stop_at = script.find("systemctl stop").expect("the stop");
        assert!(dump_at < stop_at, "the dump comes before the stop");
        assert!(script.ends_with(r#"systemctl start "$unit""#));
    }

    #[test]
    fn quotes_in_the_operators_command_stay_inside_its_word() {
        let heap_dump = HeapDump {
            command: "gcore -o {output} {pid} || echo 'no gcore'",
            timeout_seconds: 60,
            max_mb: 100,
            directory: "/tmp",
        };
        let (lines, _) = restart_script(&plan(Some(heap_dump)), "t");
        let script = lines.join("\n");
        let expected = r#"sh -c 'gcore -o "$2" "$1" || echo '\''no gcore'\''' autoheal"#;
        assert!(script.contains(expected), "{script}");
    }
}
