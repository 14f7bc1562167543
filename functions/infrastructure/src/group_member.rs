//! `recover-ec2-instance` on an Auto Scaling member: mark it unhealthy, and its group replaces
//! it, keeping the group's own launch template, capacity and lifecycle hooks in charge.
//!
//! Marking it is only right when the group will act on the mark, and nobody holds the group or
//! the member: with `ReplaceUnhealthy`, `HealthCheck`, `Terminate` or `Launch` suspended, a
//! person froze replacement and the mark would do nothing or fight them; a member in
//! `Standby` was taken out of service by a person. A member the group already found
//! unhealthy or is terminating, one still launching, or a group in an instance refresh is
//! being replaced by AWS already.

use std::collections::BTreeMap;

use aws_sdk_autoscaling::Client as AutoScalingClient;
use aws_sdk_autoscaling::types::{AutoScalingGroup, LifecycleState};

use autoheal_aws::errors::api_error;
use autoheal_core::{Assessment, HealError, HealOutcome, SkipReason, WaitReason};

use crate::groups;

/// The processes the group replaces an unhealthy member with.
const REPLACEMENT_PROCESSES: [&str; 4] = ["ReplaceUnhealthy", "HealthCheck", "Terminate", "Launch"];

/// When to look again at a group that is replacing the member, or that a person holds.
const RECHECK_SECONDS: u64 = 300;

/// Why the member should not be marked now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub reason: WaitReason,
    pub why: String,
    /// The group is terminating the member already.
    pub leaving: bool,
}

/// What the group's live state says about marking `instance_id` unhealthy. Pure.
pub fn hold(group: &AutoScalingGroup, instance_id: &str) -> Option<Hold> {
    let name = group.auto_scaling_group_name().unwrap_or_default();
    let suspended = groups::suspended_of(group, &REPLACEMENT_PROCESSES);
    if !suspended.is_empty() {
        return Some(Hold {
            reason: WaitReason::OperatorHold,
            leaving: false,
            why: format!(
                "Auto Scaling group {name} has {} suspended: marking {instance_id} unhealthy would not replace it, or would override the person who suspended it",
                suspended.join(", ")
            ),
        });
    }
    let member = group
        .instances()
        .iter()
        .find(|member| member.instance_id() == Some(instance_id))?;
    let state = member.lifecycle_state().map(LifecycleState::as_str);
    let aws = |why: String| {
        Some(Hold {
            reason: WaitReason::AwsHealing,
            why,
            leaving: false,
        })
    };
    match state {
        Some(s) if s.contains("Standby") || s.starts_with("Detach") => Some(Hold {
            reason: WaitReason::OperatorHold,
            leaving: false,
            why: format!(
                "{instance_id} is {s} in Auto Scaling group {name}: a person took it out of service"
            ),
        }),
        Some(s) if s.starts_with("Terminat") => Some(Hold {
            reason: WaitReason::AwsHealing,
            why: format!("Auto Scaling group {name} is already terminating {instance_id} ({s})"),
            leaving: true,
        }),
        Some(s) if s.starts_with("Pending") => aws(format!(
            "Auto Scaling group {name} is still launching {instance_id} ({s})"
        )),
        _ if member
            .health_status()
            .is_some_and(|status| status.eq_ignore_ascii_case("unhealthy")) =>
        {
            aws(format!(
                "Auto Scaling group {name} already has {instance_id} marked unhealthy and replaces it"
            ))
        }
        _ => None,
    }
}

/// Marks group members unhealthy.
#[derive(Debug, Clone)]
pub struct GroupMember {
    autoscaling: AutoScalingClient,
}

impl GroupMember {
    pub fn new(autoscaling: AutoScalingClient) -> Self {
        GroupMember { autoscaling }
    }

    /// Whether the group or a person is already on it (see the module's docs).
    pub async fn assess(&self, instance_id: &str, group: &str) -> Result<Assessment, HealError> {
        let Some(described) = groups::describe(&self.autoscaling, group).await? else {
            // The group is gone or being deleted: it terminates its instances itself.
            return Ok(Assessment::aws_healing(
                format!("Auto Scaling group {group} of {instance_id} is being deleted"),
                RECHECK_SECONDS,
            ));
        };
        if let Some(hold) = hold(&described, instance_id) {
            return Ok(Assessment::Wait(autoheal_core::Wait {
                reason: hold.reason,
                summary: hold.why,
                recheck_after_seconds: RECHECK_SECONDS,
            }));
        }
        if let Some(refresh) = groups::refresh_under_way(&self.autoscaling, group).await? {
            return Ok(Assessment::aws_healing(
                format!(
                    "Auto Scaling group {group} replaces its instances: {}",
                    refresh.describe()
                ),
                RECHECK_SECONDS,
            ));
        }
        Ok(Assessment::Proceed)
    }

    /// Marks the member unhealthy for its group to replace, unless a person holds the group or
    /// the member (`unsafe`), or the group is terminating it already (`not-needed`).
    pub async fn hand_over(
        &self,
        instance_id: &str,
        group: &str,
    ) -> Result<HealOutcome, HealError> {
        let described = groups::describe(&self.autoscaling, group).await?;
        // The group opted out: its members are not handed to it.
        if described.as_ref().is_some_and(|g| {
            autoheal_aws::tags::pairs_disabled(
                g.tags().iter().filter_map(|tag| tag.key().zip(tag.value())),
            )
        }) {
            return Ok(HealOutcome::Skipped {
                reason: SkipReason::OptedOut,
                summary: format!(
                    "Auto Scaling group {group} of {instance_id} is tagged autoheal:disabled=true: \
                     its members are not marked unhealthy"
                ),
            });
        }
        // What AWS is doing is no reason to hold back once the wait is over: marking the
        // member unhealthy again does no harm. What a person holds is theirs, and a member
        // its group terminates is on its way out.
        if let Some(hold) = described.as_ref().and_then(|g| hold(g, instance_id))
            && (hold.reason == WaitReason::OperatorHold || hold.leaving)
        {
            return Ok(HealOutcome::Skipped {
                reason: if hold.leaving {
                    SkipReason::NotNeeded
                } else {
                    SkipReason::Unsafe
                },
                summary: hold.why,
            });
        }
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
}

#[cfg(test)]
mod tests {
    use aws_sdk_autoscaling::types::{Instance, SuspendedProcess};

    use super::*;

    fn group(suspended: &[&str], member: (&str, LifecycleState)) -> AutoScalingGroup {
        let mut builder = AutoScalingGroup::builder()
            .auto_scaling_group_name("web")
            .instances(
                Instance::builder()
                    .instance_id("i-1")
                    .health_status(member.0)
                    .lifecycle_state(member.1)
                    .build(),
            );
        for process in suspended {
            builder = builder
                .suspended_processes(SuspendedProcess::builder().process_name(*process).build());
        }
        builder.build()
    }

    fn reason(group: &AutoScalingGroup) -> Option<WaitReason> {
        hold(group, "i-1").map(|hold| hold.reason)
    }

    #[test]
    fn a_suspended_replacement_process_or_a_member_in_standby_is_a_persons_hold() {
        for process in REPLACEMENT_PROCESSES {
            let held = group(&[process], ("Healthy", LifecycleState::InService));
            assert_eq!(reason(&held), Some(WaitReason::OperatorHold), "{process}");
        }
        let standby = group(&[], ("Healthy", LifecycleState::Standby));
        assert_eq!(reason(&standby), Some(WaitReason::OperatorHold));
        // Processes that do not replace members are no hold.
        let scheduled = group(
            &["ScheduledActions", "AZRebalance"],
            ("Healthy", LifecycleState::InService),
        );
        assert_eq!(reason(&scheduled), None);
    }

    #[test]
    fn a_member_the_group_is_replacing_or_launching_waits_for_it() {
        for member in [
            ("Unhealthy", LifecycleState::InService),
            ("Healthy", LifecycleState::TerminatingWait),
            ("Healthy", LifecycleState::PendingWait),
        ] {
            assert_eq!(
                reason(&group(&[], member.clone())),
                Some(WaitReason::AwsHealing),
                "{member:?}"
            );
        }
        assert_eq!(
            reason(&group(&[], ("Healthy", LifecycleState::InService))),
            None
        );
    }
}
