//! `recover-ec2-instance`: recover an instance whose status checks fail, least destructive
//! first, and never by replacing a standalone instance (its root volume, other volumes,
//! private IPs, network interfaces and metadata settings would be lost).
//!
//! - An Auto Scaling member is marked unhealthy; its group terminates and replaces it, keeping
//!   the group's own launch template, capacity and lifecycle hooks in charge.
//! - A standalone instance, as AWS recommends for each status check:
//!   - *system* check failed (the host): stop and start, which moves an EBS-backed instance to
//!     healthy hardware and keeps its volumes, private IPs and network interfaces;
//!   - *instance* check failed (the guest): reboot on the first attempt, stop and start on a
//!     later one.
//!
//!   Which check failed is read live (`DescribeInstanceStatus`); only when the live status is
//!   not conclusive does the alarm's metric say. Both checks passing again: `not-needed`.
//!   A stop and start that would lose data (instance-store root or instance-store volumes) or
//!   that the instance cannot survive (a spot instance) is `unsafe`: it goes to a person.
//!
//! A stop and start is resumable: the instance is tagged `autoheal:stop-start` before it is
//! stopped, so an attempt that died between stop and start (or whose stop outlasted the
//! invocation) is finished by the next one, and an instance a person stopped is left alone.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_autoscaling::Client as AutoScalingClient;
use aws_sdk_ec2::Client as Ec2Client;
use aws_sdk_ec2::client::Waiters;
use aws_sdk_ec2::types::{
    DeviceType, Instance, InstanceLifecycleType, InstanceStateName, SummaryStatus, Tag,
};
use aws_smithy_types::error::display::DisplayErrorContext;

use autoheal_aws::errors::{api_error, describe};
use autoheal_aws::tags::{OPT_OUT_TAG, is_opted_out};
use autoheal_core::{GroupView, HealError, HealOutcome, HealRequest, SkipReason};

/// Marks an instance autoheal stopped and has yet to start again; its value is the token of
/// the attempt that stopped it.
pub const STOP_START_TAG: &str = "autoheal:stop-start";

/// How long to wait for a stop before forcing it, for a forced stop, and for the start: within
/// the function's 300 s timeout together.
const STOP_WAIT: Duration = Duration::from_secs(120);
const FORCED_STOP_WAIT: Duration = Duration::from_secs(60);
const START_WAIT: Duration = Duration::from_secs(90);

/// A status check's live result, as `DescribeInstanceStatus` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckStatus {
    Ok,
    Impaired,
    Initializing,
    /// `insufficient-data`, `not-applicable` or no report: says nothing either way.
    Unknown,
}

impl CheckStatus {
    fn from_summary(status: Option<&SummaryStatus>) -> Self {
        match status {
            Some(SummaryStatus::Ok) => CheckStatus::Ok,
            Some(SummaryStatus::Impaired) => CheckStatus::Impaired,
            Some(SummaryStatus::Initializing) => CheckStatus::Initializing,
            _ => CheckStatus::Unknown,
        }
    }
}

/// Which status check the alarm watches, from its metric name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlarmedCheck {
    /// `StatusCheckFailed_System`.
    System,
    /// `StatusCheckFailed_Instance`.
    Instance,
    /// `StatusCheckFailed`: either.
    Either,
}

impl AlarmedCheck {
    /// The check the alarm's metrics name for `instance_id`, the most specific first.
    pub fn of(request: &HealRequest<'_>) -> Self {
        let names: Vec<&str> = request
            .event
            .kind
            .metrics()
            .iter()
            .filter(|metric| metric.namespace == "AWS/EC2")
            .filter(|metric| {
                metric
                    .dimensions
                    .get("InstanceId")
                    .is_some_and(|id| id.trim() == request.resource_id)
            })
            .map(|metric| metric.name.as_str())
            .collect();
        if names.contains(&"StatusCheckFailed_System") {
            AlarmedCheck::System
        } else if names.contains(&"StatusCheckFailed_Instance") {
            AlarmedCheck::Instance
        } else {
            AlarmedCheck::Either
        }
    }
}

/// What stands between an instance and a safe stop and start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StopStartRisk {
    /// The root volume is instance store: it does not survive a stop.
    pub instance_store_root: bool,
    /// The instance type has instance-store volumes: their data is lost on stop.
    pub instance_store_volumes: bool,
    /// A spot instance may not come back after a stop.
    pub spot: bool,
}

impl StopStartRisk {
    fn why_unsafe(&self) -> Option<&'static str> {
        if self.instance_store_root {
            Some("its root device is instance store, which does not survive a stop")
        } else if self.instance_store_volumes {
            Some("its instance type has instance-store volumes, whose data a stop erases")
        } else if self.spot {
            Some("it is a spot instance, which may not be started again once stopped")
        } else {
            None
        }
    }
}

/// What the live facts call for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    Reboot,
    StopStart,
    Skip { reason: SkipReason, why: String },
}

/// The failing check, the attempt and the rule's switches decide the recovery. Pure.
pub fn plan(
    system: CheckStatus,
    instance: CheckStatus,
    alarmed: AlarmedCheck,
    attempt: u32,
    reboot_first: bool,
    allow_stop_start: bool,
    risk: &StopStartRisk,
) -> Plan {
    let skip = |reason, why: &str| Plan::Skip {
        reason,
        why: why.to_owned(),
    };
    let system_failed = match (system, instance) {
        (CheckStatus::Impaired, _) => true,
        (_, CheckStatus::Impaired) => false,
        (CheckStatus::Ok, CheckStatus::Ok) => {
            return skip(SkipReason::NotNeeded, "both status checks pass again");
        }
        (CheckStatus::Initializing, _) | (_, CheckStatus::Initializing) => {
            return skip(
                SkipReason::NotNeeded,
                "its status checks are initializing: it was just started",
            );
        }
        // Nothing conclusive live: the alarm's metric says which check failed; when it
        // watches both, the least destructive reading (the guest) stands.
        _ => alarmed == AlarmedCheck::System,
    };
    let wants_reboot = !system_failed && reboot_first && attempt <= 1;
    if wants_reboot {
        return Plan::Reboot;
    }
    if !allow_stop_start {
        return if system_failed {
            skip(
                SkipReason::Unsafe,
                "its system status check fails, which only a stop and start onto other hardware fixes, and the rule does not allow stopping it",
            )
        } else {
            Plan::Reboot
        };
    }
    match risk.why_unsafe() {
        Some(why) => Plan::Skip {
            reason: SkipReason::Unsafe,
            why: format!("it needs a stop and start, but {why}"),
        },
        None => Plan::StopStart,
    }
}

/// Recovers EC2 instances.
#[derive(Debug, Clone)]
pub struct InstanceRecovery {
    ec2: Ec2Client,
    autoscaling: AutoScalingClient,
}

impl InstanceRecovery {
    pub fn new(ec2: Ec2Client, autoscaling: AutoScalingClient) -> Self {
        InstanceRecovery { ec2, autoscaling }
    }

    pub async fn recover(
        &self,
        request: HealRequest<'_>,
        reboot_first: bool,
        allow_stop_start: bool,
    ) -> Result<HealOutcome, HealError> {
        let id = request.resource_id;
        let instance = self.describe(id).await?;
        let tags: BTreeMap<String, String> = instance
            .tags()
            .iter()
            .filter_map(|tag| Some((tag.key()?.to_owned(), tag.value()?.to_owned())))
            .collect();
        let ours = tags.contains_key(STOP_START_TAG);
        let not_needed = |why: String| {
            Ok(HealOutcome::Skipped {
                reason: SkipReason::NotNeeded,
                summary: format!("{id} {why}"),
            })
        };
        let state = instance.state().and_then(|s| s.name()).cloned();
        if matches!(
            state,
            Some(InstanceStateName::ShuttingDown | InstanceStateName::Terminated)
        ) {
            return not_needed("is already terminated or terminating".to_owned());
        }
        if is_opted_out(&tags) {
            return Ok(HealOutcome::Skipped {
                reason: SkipReason::OptedOut,
                summary: format!("{id} is tagged {OPT_OUT_TAG}=true"),
            });
        }
        if let Some(group) = self.auto_scaling_group_of(id).await? {
            return self.hand_to_group(id, &group).await;
        }
        match state {
            // An earlier attempt stopped it and did not see it through: finish the job.
            Some(InstanceStateName::Stopped) if ours => self.start(request, "resumed").await,
            Some(InstanceStateName::Stopping) if ours => {
                self.finish_stop(id, true).await?;
                self.start(request, "resumed").await
            }
            Some(InstanceStateName::Pending) if ours => self.start(request, "resumed").await,
            Some(InstanceStateName::Running) => {
                let (system, guest) = self.status_checks(id).await?;
                let risk = self.stop_start_risk(&instance).await?;
                let alarmed = AlarmedCheck::of(&request);
                match plan(
                    system,
                    guest,
                    alarmed,
                    request.attempt,
                    reboot_first,
                    allow_stop_start,
                    &risk,
                ) {
                    Plan::Reboot => self.reboot(id, system, guest).await,
                    Plan::StopStart => self.stop_start(request, system).await,
                    Plan::Skip { reason, why } => Ok(HealOutcome::Skipped {
                        reason,
                        summary: format!("{id}: {why}"),
                    }),
                }
            }
            Some(InstanceStateName::Stopped | InstanceStateName::Stopping) => not_needed(
                "was stopped by someone else: autoheal does not start what it did not stop"
                    .to_owned(),
            ),
            other => not_needed(format!(
                "is {}: its status checks re-evaluate once it runs",
                other.as_ref().map_or("in an unknown state", |s| s.as_str())
            )),
        }
    }

    /// The Auto Scaling group the instance is a member of, read live for the group guard.
    pub async fn group(&self, request: HealRequest<'_>) -> Result<Option<GroupView>, HealError> {
        autoheal_aws::lookups::auto_scaling_group_of(
            &self.ec2,
            &self.autoscaling,
            request.resource_id,
        )
        .await
    }

    /// Whether the instance is terminated (or shutting down), or unknown to EC2.
    pub async fn is_gone(&self, instance_id: &str) -> Result<bool, HealError> {
        autoheal_aws::lookups::instance_is_gone(&self.ec2, instance_id).await
    }

    async fn describe(&self, instance_id: &str) -> Result<Instance, HealError> {
        autoheal_aws::lookups::describe_instance(&self.ec2, instance_id).await
    }

    async fn auto_scaling_group_of(&self, instance_id: &str) -> Result<Option<String>, HealError> {
        let output = self
            .autoscaling
            .describe_auto_scaling_instances()
            .instance_ids(instance_id)
            .send()
            .await
            .map_err(|e| api_error("DescribeAutoScalingInstances", e))?;
        Ok(output
            .auto_scaling_instances()
            .iter()
            .find(|member| member.instance_id() == Some(instance_id))
            .and_then(|member| member.auto_scaling_group_name())
            .map(str::to_owned))
    }

    async fn hand_to_group(
        &self,
        instance_id: &str,
        group: &str,
    ) -> Result<HealOutcome, HealError> {
        self.autoscaling
            .set_instance_health()
            .instance_id(instance_id)
            .health_status("Unhealthy")
            .should_respect_grace_period(false)
            .send()
            .await
            .map_err(|e| api_error("SetInstanceHealth", e))?;
        Ok(HealOutcome::healed(
            format!(
                "marked {instance_id} unhealthy in Auto Scaling group {group}; the group replaces it"
            ),
            BTreeMap::from([
                ("recovery".to_owned(), "auto-scaling-replacement".to_owned()),
                ("auto_scaling_group".to_owned(), group.to_owned()),
            ]),
        ))
    }

    /// The live (system, instance) status checks.
    async fn status_checks(&self, id: &str) -> Result<(CheckStatus, CheckStatus), HealError> {
        let output = self
            .ec2
            .describe_instance_status()
            .instance_ids(id)
            .include_all_instances(true)
            .send()
            .await
            .map_err(|e| api_error("DescribeInstanceStatus", e))?;
        let status = output
            .instance_statuses()
            .iter()
            .find(|status| status.instance_id() == Some(id));
        Ok((
            CheckStatus::from_summary(
                status
                    .and_then(|s| s.system_status())
                    .and_then(|s| s.status()),
            ),
            CheckStatus::from_summary(
                status
                    .and_then(|s| s.instance_status())
                    .and_then(|s| s.status()),
            ),
        ))
    }

    async fn stop_start_risk(&self, instance: &Instance) -> Result<StopStartRisk, HealError> {
        let mut risk = StopStartRisk {
            instance_store_root: instance.root_device_type() == Some(&DeviceType::InstanceStore),
            instance_store_volumes: false,
            spot: instance.instance_lifecycle() == Some(&InstanceLifecycleType::Spot),
        };
        if let Some(instance_type) = instance.instance_type() {
            let output = self
                .ec2
                .describe_instance_types()
                .instance_types(instance_type.clone())
                .send()
                .await
                .map_err(|e| api_error("DescribeInstanceTypes", e))?;
            risk.instance_store_volumes = output
                .instance_types()
                .iter()
                .any(|info| info.instance_storage_supported() == Some(true));
        }
        Ok(risk)
    }

    async fn reboot(
        &self,
        id: &str,
        system: CheckStatus,
        guest: CheckStatus,
    ) -> Result<HealOutcome, HealError> {
        self.ec2
            .reboot_instances()
            .instance_ids(id)
            .send()
            .await
            .map_err(|e| api_error("RebootInstances", e))?;
        Ok(HealOutcome::healed(
            format!(
                "rebooted {id} (instance status check {}, system status check {}); a later attempt stops and starts it",
                label(guest),
                label(system)
            ),
            BTreeMap::from([
                ("recovery".to_owned(), "reboot".to_owned()),
                ("failed_check".to_owned(), "instance".to_owned()),
            ]),
        ))
    }

    /// Tags the instance as autoheal's to start again, stops it (forcing the stop if it hangs),
    /// then starts it.
    async fn stop_start(
        &self,
        request: HealRequest<'_>,
        system: CheckStatus,
    ) -> Result<HealOutcome, HealError> {
        let id = request.resource_id;
        self.ec2
            .create_tags()
            .resources(id)
            .tags(
                Tag::builder()
                    .key(STOP_START_TAG)
                    .value(request.idempotency_token)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| api_error("CreateTags", e))?;
        self.ec2
            .stop_instances()
            .instance_ids(id)
            .send()
            .await
            .map_err(|e| api_error("StopInstances", e))?;
        if self.wait_stopped(id, STOP_WAIT).await.is_err() {
            self.finish_stop(id, true).await?;
        }
        let why = if system == CheckStatus::Impaired {
            "system status check failed"
        } else {
            "status check still failing"
        };
        self.start(request, why).await
    }

    /// Stops an instance that is stopping (forced: it already had its chance to stop cleanly).
    async fn finish_stop(&self, id: &str, force: bool) -> Result<(), HealError> {
        self.ec2
            .stop_instances()
            .instance_ids(id)
            .force(force)
            .send()
            .await
            .map_err(|e| api_error("StopInstances", e))?;
        self.wait_stopped(id, FORCED_STOP_WAIT).await.map_err(|e| {
            HealError::new(format!(
                "{id} is still stopping after a forced stop ({e}); the next attempt starts it once it has stopped"
            ))
        })
    }

    async fn wait_stopped(&self, id: &str, wait: Duration) -> Result<(), String> {
        self.ec2
            .wait_until_instance_stopped()
            .instance_ids(id)
            .wait(wait)
            .await
            .map(|_| ())
            .map_err(|e| DisplayErrorContext(&e).to_string())
    }

    /// Starts the stopped instance, waits until it runs, and drops the stop-start mark.
    async fn start(&self, request: HealRequest<'_>, why: &str) -> Result<HealOutcome, HealError> {
        let id = request.resource_id;
        self.ec2
            .start_instances()
            .instance_ids(id)
            .send()
            .await
            .map_err(|e| {
                HealError::new(format!(
                    "stopped {id}, but {}; the next attempt starts it",
                    describe("StartInstances", &e)
                ))
            })?;
        self.ec2
            .wait_until_instance_running()
            .instance_ids(id)
            .wait(START_WAIT)
            .await
            .map_err(|e| {
                HealError::new(format!(
                    "started {id}, but it is not running yet ({}); the next attempt checks it again",
                    DisplayErrorContext(&e)
                ))
            })?;
        let mut details = BTreeMap::from([
            ("recovery".to_owned(), "stop-start".to_owned()),
            ("cause".to_owned(), why.to_owned()),
        ]);
        let mut summary = format!(
            "stopped and started {id} ({why}) onto healthy hardware; its EBS volumes, private IPs and network interfaces stay"
        );
        // Its public IPv4 address changes unless it is an Elastic IP: say which it has now.
        if let Ok(now) = self.describe(id).await {
            if let Some(ip) = now.private_ip_address() {
                details.insert("private_ip".to_owned(), ip.to_owned());
            }
            if let Some(ip) = now.public_ip_address() {
                details.insert("public_ip".to_owned(), ip.to_owned());
            }
        }
        if let Err(error) = self
            .ec2
            .delete_tags()
            .resources(id)
            .tags(Tag::builder().key(STOP_START_TAG).build())
            .send()
            .await
        {
            let message = describe("DeleteTags", &error);
            summary.push_str(&format!(
                "; the {STOP_START_TAG} tag stays ({message}): remove it by hand"
            ));
            details.insert("tag_cleanup_error".to_owned(), message);
        }
        Ok(HealOutcome::healed(summary, details))
    }
}

fn label(status: CheckStatus) -> &'static str {
    match status {
        CheckStatus::Ok => "ok",
        CheckStatus::Impaired => "impaired",
        CheckStatus::Initializing => "initializing",
        CheckStatus::Unknown => "not conclusive",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use CheckStatus::{Impaired, Initializing, Ok as Passing, Unknown};

    fn safe() -> StopStartRisk {
        StopStartRisk::default()
    }

    fn reason(plan: &Plan) -> Option<SkipReason> {
        match plan {
            Plan::Skip { reason, .. } => Some(*reason),
            _ => None,
        }
    }

    #[test]
    fn a_failed_system_check_is_stopped_and_started_on_every_attempt() {
        for attempt in 1..=3 {
            let plan = plan(
                Impaired,
                Passing,
                AlarmedCheck::Either,
                attempt,
                true,
                true,
                &safe(),
            );
            assert_eq!(plan, Plan::StopStart, "attempt {attempt}");
        }
    }

    #[test]
    fn a_failed_instance_check_is_rebooted_first_then_stopped_and_started() {
        let first = plan(
            Passing,
            Impaired,
            AlarmedCheck::Either,
            1,
            true,
            true,
            &safe(),
        );
        let second = plan(
            Passing,
            Impaired,
            AlarmedCheck::Either,
            2,
            true,
            true,
            &safe(),
        );
        let no_reboot_first = plan(
            Passing,
            Impaired,
            AlarmedCheck::Either,
            1,
            false,
            true,
            &safe(),
        );
        assert_eq!(first, Plan::Reboot);
        assert_eq!(second, Plan::StopStart);
        assert_eq!(no_reboot_first, Plan::StopStart);
    }

    #[test]
    fn passing_or_initializing_checks_need_nothing() {
        for (system, guest) in [
            (Passing, Passing),
            (Initializing, Passing),
            (Unknown, Initializing),
        ] {
            let plan = plan(system, guest, AlarmedCheck::System, 1, true, true, &safe());
            assert_eq!(
                reason(&plan),
                Some(SkipReason::NotNeeded),
                "{system:?}/{guest:?}"
            );
        }
    }

    #[test]
    fn without_a_live_verdict_the_alarmed_metric_decides_and_either_means_the_guest() {
        let system = plan(
            Unknown,
            Unknown,
            AlarmedCheck::System,
            1,
            true,
            true,
            &safe(),
        );
        let either = plan(
            Unknown,
            Unknown,
            AlarmedCheck::Either,
            1,
            true,
            true,
            &safe(),
        );
        assert_eq!(system, Plan::StopStart);
        assert_eq!(either, Plan::Reboot);
    }

    #[test]
    fn a_stop_that_would_lose_data_or_the_instance_is_unsafe() {
        for risk in [
            StopStartRisk {
                instance_store_root: true,
                ..safe()
            },
            StopStartRisk {
                instance_store_volumes: true,
                ..safe()
            },
            StopStartRisk {
                spot: true,
                ..safe()
            },
        ] {
            let plan = plan(
                Impaired,
                Passing,
                AlarmedCheck::Either,
                1,
                true,
                true,
                &risk,
            );
            assert_eq!(reason(&plan), Some(SkipReason::Unsafe), "{risk:?}");
            // A reboot keeps every kind of storage: it stays allowed.
            let reboot = plan_for_guest(&risk);
            assert_eq!(reboot, Plan::Reboot, "{risk:?}");
        }
    }

    fn plan_for_guest(risk: &StopStartRisk) -> Plan {
        plan(Passing, Impaired, AlarmedCheck::Either, 1, true, true, risk)
    }

    #[test]
    fn a_rule_that_forbids_stopping_reboots_the_guest_and_hands_the_host_to_a_person() {
        let guest = plan(
            Passing,
            Impaired,
            AlarmedCheck::Either,
            3,
            true,
            false,
            &safe(),
        );
        let host = plan(
            Impaired,
            Passing,
            AlarmedCheck::Either,
            1,
            true,
            false,
            &safe(),
        );
        assert_eq!(guest, Plan::Reboot);
        assert_eq!(reason(&host), Some(SkipReason::Unsafe));
    }
}
