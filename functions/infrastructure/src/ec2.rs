//! `recover-ec2-instance`: recover an instance whose status checks fail, least destructive
//! first, and never by replacing a standalone instance (its root volume, other volumes,
//! private IPs, network interfaces and metadata settings would be lost).
//!
//! - An Auto Scaling member is marked unhealthy; its group terminates and replaces it (see
//!   [`crate::group_member`]).
//! - A standalone instance, as AWS recommends for each status check:
//!   - *system* check failed (the host): stop and start, which moves an EBS-backed instance to
//!     healthy hardware and keeps its volumes, private IPs and network interfaces;
//!   - *instance* check failed (the guest): reboot on the first attempt, stop and start on a
//!     later one (or at once when the alarm's own reboot action already rebooted it).
//!
//!   Which check failed is read live (`DescribeInstanceStatus`); only when the live status is
//!   not conclusive does the alarm's metric say. Both checks passing again: `not-needed`.
//!   A stop and start that would lose data (instance-store root or instance-store volumes) or
//!   that the instance cannot survive (a spot instance) is `unsafe`: it goes to a person, and
//!   so does an instance a person protected from stops (`DisableApiStop`).
//!
//! Before each new attempt ([`InstanceRecovery::assess`]) autoheal waits while AWS heals the
//! instance itself, and while a person holds it:
//! - *AWS healing*: a failed system check on an instance that EC2's simplified automatic
//!   recovery watches (on by default), or whose alarm has the EC2 `recover` action; a
//!   scheduled event (reboot, maintenance, retirement) under way or due within the rule's
//!   `max_wait_seconds`; the alarm's own `reboot` action, for five minutes after the alarm
//!   fired (then its reboot counts as the first attempt's); an Auto Scaling group replacing
//!   the member or refreshing its instances.
//! - *A person's hold*: stop protection when a stop is needed (a reboot is still done),
//!   suspended replacement processes or a member in `Standby`, an alarm whose own action
//!   stops or terminates the instance.
//! - *Another autoheal run*: an instance a volume repair is stopping and starting.
//!
//! An instance EC2 does not know, or terminated, is `gone`. The stop and start itself is
//! [`crate::stop_start`]'s: marked, resumable, and continuing in follow-ups (a stop that
//! hangs, a start refused for capacity) until the instance runs, never `failed` with it
//! stopped.

use std::collections::BTreeMap;

use aws_sdk_autoscaling::Client as AutoScalingClient;
use aws_sdk_ec2::Client as Ec2Client;
use aws_sdk_ec2::types::{Instance, InstanceStateName};

use autoheal_aws::errors::api_error;
use autoheal_aws::tags::is_opted_out;
use autoheal_core::{
    Assessment, Clock, GroupView, HealError, HealOutcome, HealRequest, SkipReason, SystemClock,
};

use crate::ec2_plan::{Plan, Situation, plan};
use crate::group_member::GroupMember;
use crate::groups;
use crate::instance_status::{self, AlarmAction, AlarmedCheck, CheckStatus};
use crate::instances::{self, InstanceTypes};
use crate::stop_start::{Cycle, Mark, Phase, StopStart};

/// The action's kind, as marks name it.
pub const ACTION: &str = "recover-ec2-instance";

/// When to look again at what AWS is doing, or what a person holds.
const AWS_HEALING_RECHECK_SECONDS: u64 = 300;
const OPERATOR_HOLD_RECHECK_SECONDS: u64 = 300;
/// When to look again at an instance another autoheal run is stopping and starting.
const RESOURCE_BUSY_RECHECK_SECONDS: u64 = 120;
/// How long after an alarm's own reboot action its effect is waited for: the instance boots
/// and its status checks are evaluated again within a few minutes.
const REBOOT_SETTLE_SECONDS: i64 = 300;

/// Recovers EC2 instances.
#[derive(Debug, Clone)]
pub struct InstanceRecovery {
    ec2: Ec2Client,
    autoscaling: AutoScalingClient,
    stop_start: StopStart,
    member: GroupMember,
    types: InstanceTypes,
}

impl InstanceRecovery {
    pub fn new(ec2: Ec2Client, autoscaling: AutoScalingClient, types: InstanceTypes) -> Self {
        InstanceRecovery {
            stop_start: StopStart::new(ec2.clone()),
            member: GroupMember::new(autoscaling.clone()),
            types,
            ec2,
            autoscaling,
        }
    }

    /// Looks, read-only, at what may already heal the instance or hold it (see the module's
    /// docs) before a new attempt.
    pub async fn assess(
        &self,
        request: HealRequest<'_>,
        reboot_first: bool,
        allow_stop_start: bool,
    ) -> Result<Assessment, HealError> {
        let id = request.resource_id;
        let Some(instance) = instances::describe(&self.ec2, id).await? else {
            return Ok(Assessment::gone(format!("EC2 does not know instance {id}")));
        };
        if instances::is_terminated(&instance) {
            return Ok(Assessment::gone(format!("{id} is terminated")));
        }
        if is_opted_out(&instances::tags(&instance)) {
            return Ok(Assessment::Proceed);
        }
        if let Some(mark) = Mark::on(&instance) {
            if !mark.is_owned_by(ACTION, id, true) {
                return Ok(Assessment::resource_busy(
                    format!("{id} is being stopped and started by {}", mark.holder()),
                    RESOURCE_BUSY_RECHECK_SECONDS,
                ));
            }
            // Its own earlier attempt's stop and start: the attempt finishes it.
            return Ok(Assessment::Proceed);
        }
        let actions = AlarmAction::of(request.alarm_actions);
        if let Some(action) = actions
            .iter()
            .find(|a| matches!(a, AlarmAction::Stop | AlarmAction::Terminate))
        {
            let verb = if *action == AlarmAction::Stop {
                "stops"
            } else {
                "terminates"
            };
            return Ok(Assessment::operator_hold(
                format!("the alarm's own EC2 action {verb} {id}: autoheal does not act against it"),
                OPERATOR_HOLD_RECHECK_SECONDS,
            ));
        }
        if let Some(group) = groups::group_of(&self.autoscaling, id).await? {
            return self.member.assess(id, &group).await;
        }
        if instance.state().and_then(|s| s.name()) != Some(&InstanceStateName::Running) {
            // Stopped by someone else, or starting: the action itself says so.
            return Ok(Assessment::Proceed);
        }
        let health = instance_status::read(&self.ec2, id).await?;
        let facts = self.types.facts(&self.ec2, &instance).await?;
        let situation = Situation {
            system: health.system,
            instance: health.instance,
            alarmed: AlarmedCheck::of(&request),
            attempt: request.attempt,
            reboot_first,
            allow_stop_start,
            alarm_rebooted: actions.contains(&AlarmAction::Reboot),
        };
        let planned = plan(&situation, &facts.risk);
        if matches!(planned, Plan::Skip { .. }) {
            // Nothing to do, or nothing autoheal may do: the action says which.
            return Ok(Assessment::Proceed);
        }
        let now = SystemClock.now().timestamp();
        let horizon = request.rule.policy.max_wait_seconds;
        if let Some(event) = health.events.iter().find(|e| e.is_near(now, horizon)) {
            return Ok(Assessment::aws_healing(
                format!(
                    "EC2 has scheduled {} for {id}: {}",
                    event.code, event.description
                ),
                AWS_HEALING_RECHECK_SECONDS,
            ));
        }
        match planned {
            Plan::StopStart { system: true } => {
                if instance_status::auto_recovery_on(&instance, &facts) {
                    return Ok(Assessment::aws_healing(
                        format!(
                            "{id}'s system status check fails and EC2's simplified automatic recovery (MaintenanceOptions.AutoRecovery = default) moves it to healthy hardware"
                        ),
                        AWS_HEALING_RECHECK_SECONDS,
                    ));
                }
                if actions.contains(&AlarmAction::Recover) {
                    return Ok(Assessment::aws_healing(
                        format!(
                            "{id}'s system status check fails and the alarm's own EC2 recover action moves it to healthy hardware"
                        ),
                        AWS_HEALING_RECHECK_SECONDS,
                    ));
                }
                self.stop_hold(id).await
            }
            Plan::StopStart { system: false } => {
                // The alarm rebooted the guest when it fired: give the reboot time to work.
                let rebooted_ago = request
                    .event
                    .time
                    .map(|at| (now - at.timestamp()).max(0))
                    .filter(|ago| situation.alarm_rebooted && *ago < REBOOT_SETTLE_SECONDS);
                if let Some(ago) = rebooted_ago {
                    return Ok(Assessment::aws_healing(
                        format!(
                            "the alarm's own EC2 reboot action rebooted {id} {ago} s ago; its status checks are evaluated again"
                        ),
                        u64::try_from(REBOOT_SETTLE_SECONDS - ago)
                            .unwrap_or(60)
                            .max(30),
                    ));
                }
                self.stop_hold(id).await
            }
            Plan::Reboot | Plan::Skip { .. } => Ok(Assessment::Proceed),
        }
    }

    /// A stop is needed: a person's stop protection holds it.
    async fn stop_hold(&self, id: &str) -> Result<Assessment, HealError> {
        if instances::stop_protected(&self.ec2, id).await? {
            return Ok(Assessment::operator_hold(
                format!(
                    "{id} needs a stop and start, and a person protects it from stops (DisableApiStop)"
                ),
                OPERATOR_HOLD_RECHECK_SECONDS,
            ));
        }
        Ok(Assessment::Proceed)
    }

    pub async fn recover(
        &self,
        request: HealRequest<'_>,
        reboot_first: bool,
        allow_stop_start: bool,
    ) -> Result<HealOutcome, HealError> {
        let id = request.resource_id;
        let skipped = |reason, summary: String| Ok(HealOutcome::Skipped { reason, summary });
        let Some(instance) = instances::describe(&self.ec2, id).await? else {
            return skipped(SkipReason::Gone, format!("EC2 does not know instance {id}"));
        };
        if instances::is_terminated(&instance) {
            return skipped(
                SkipReason::Gone,
                format!("{id} is already terminated or terminating"),
            );
        }
        if is_opted_out(&instances::tags(&instance)) {
            return skipped(
                SkipReason::OptedOut,
                format!("{id} {}", autoheal_aws::tags::opted_out_phrase()),
            );
        }
        let mark = Mark::on(&instance);
        if let Some(theirs) = mark.as_ref().filter(|m| !m.is_owned_by(ACTION, id, true)) {
            return skipped(
                SkipReason::Unsafe,
                format!(
                    "{id} is being stopped and started by {}, which starts it again: autoheal does not act on it meanwhile",
                    theirs.holder()
                ),
            );
        }
        if let Some(group) = groups::group_of(&self.autoscaling, id).await? {
            return self.member.hand_over(id, &group).await;
        }
        let state = instance.state().and_then(|s| s.name()).cloned();
        let ours = mark.is_some();
        match state {
            // An earlier step or attempt stopped it and did not see it through: finish the job.
            Some(
                InstanceStateName::Stopped
                | InstanceStateName::Stopping
                | InstanceStateName::Pending,
            ) if ours => self.stop_start(request, &instance, "resumed").await,
            Some(InstanceStateName::Running)
                if mark.as_ref().is_some_and(|m| {
                    m.token == request.idempotency_token && m.phase == Some(Phase::Starting)
                }) =>
            {
                self.stop_start(request, &instance, "resumed").await
            }
            Some(InstanceStateName::Running) => {
                if ours {
                    // An earlier attempt got it running again but left its mark.
                    let _ = self.stop_start.unmark(id).await;
                }
                self.recover_running(request, &instance, reboot_first, allow_stop_start)
                    .await
            }
            Some(InstanceStateName::Stopped | InstanceStateName::Stopping) => skipped(
                SkipReason::NotNeeded,
                format!(
                    "{id} was stopped by someone else: autoheal does not start what it did not stop"
                ),
            ),
            other => skipped(
                SkipReason::NotNeeded,
                format!(
                    "{id} is {}: its status checks re-evaluate once it runs",
                    other.as_ref().map_or("in an unknown state", |s| s.as_str())
                ),
            ),
        }
    }

    async fn recover_running(
        &self,
        request: HealRequest<'_>,
        instance: &Instance,
        reboot_first: bool,
        allow_stop_start: bool,
    ) -> Result<HealOutcome, HealError> {
        let id = request.resource_id;
        let health = instance_status::read(&self.ec2, id).await?;
        let facts = self.types.facts(&self.ec2, instance).await?;
        let situation = Situation {
            system: health.system,
            instance: health.instance,
            alarmed: AlarmedCheck::of(&request),
            attempt: request.attempt,
            reboot_first,
            allow_stop_start,
            alarm_rebooted: AlarmAction::of(request.alarm_actions).contains(&AlarmAction::Reboot),
        };
        match plan(&situation, &facts.risk) {
            Plan::Reboot => self.reboot(id, health.system, health.instance).await,
            Plan::StopStart { system } => {
                if instances::stop_protected(&self.ec2, id).await? {
                    return Ok(HealOutcome::Skipped {
                        reason: SkipReason::Unsafe,
                        summary: format!(
                            "{id} needs a stop and start, and a person protects it from stops (DisableApiStop): turn it off, or stop and start it by hand"
                        ),
                    });
                }
                let cause = if system {
                    "system status check failed"
                } else {
                    "status check still failing"
                };
                self.stop_start(request, instance, cause).await
            }
            Plan::Skip { reason, why } => Ok(HealOutcome::Skipped {
                reason,
                summary: format!("{id}: {why}"),
            }),
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
        Ok(instances::describe(&self.ec2, instance_id)
            .await?
            .is_none_or(|instance| instances::is_terminated(&instance)))
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
                guest.label(),
                system.label()
            ),
            BTreeMap::from([
                ("recovery".to_owned(), "reboot".to_owned()),
                ("failed_check".to_owned(), "instance".to_owned()),
            ]),
        ))
    }

    /// One step of the stop and start: done once the instance runs again, else continuing.
    async fn stop_start(
        &self,
        request: HealRequest<'_>,
        instance: &Instance,
        cause: &str,
    ) -> Result<HealOutcome, HealError> {
        let id = request.resource_id;
        let mark = Mark::new(request.idempotency_token, ACTION, id, Phase::Stopping);
        let mut details = BTreeMap::from([
            ("recovery".to_owned(), "stop-start".to_owned()),
            ("cause".to_owned(), cause.to_owned()),
        ]);
        match self.stop_start.cycle(instance, &mark).await? {
            Cycle::Done(after) => {
                let mut summary = format!(
                    "stopped and started {id} ({cause}) onto healthy hardware; its EBS volumes, private IPs and network interfaces stay"
                );
                if let Some(error) = after.get("tag_cleanup_error") {
                    summary.push_str(&format!(
                        "; the {} tag stays ({error}): remove it by hand",
                        crate::stop_start::STOP_START_TAG
                    ));
                }
                details.extend(after);
                Ok(HealOutcome::healed(summary, details))
            }
            Cycle::Waiting {
                stage,
                why,
                resume_after_seconds,
            } => {
                details.insert("stage".to_owned(), stage.to_owned());
                details.insert("waiting_for".to_owned(), why.clone());
                Ok(HealOutcome::Continuing {
                    summary: format!(
                        "stopping and starting {id} ({cause}): {why}; autoheal tries again in {resume_after_seconds} s until it runs"
                    ),
                    details,
                    resume_after_seconds,
                })
            }
        }
    }
}
