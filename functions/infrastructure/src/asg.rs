//! `scale-out-auto-scaling-group`: add capacity to a group whose instances fail, and replace
//! the unhealthy ones; put the capacity back when the incident resolves.
//!
//! Desired capacity grows by the rule's increment, never past the group's maximum; unhealthy
//! members are terminated with `ShouldDecrementDesiredCapacity = false`, so the group launches
//! their replacements. A member protected from scale-in, in `Standby`, or tagged
//! `autoheal:disabled=true` is never terminated: a person chose to keep it; it is recorded as
//! held back.
//!
//! Before each new attempt ([`GroupScaler::assess`]): a group that does not exist (or is being
//! deleted) is `gone`; a group where a person suspended a process the action needs (`Launch`
//! always; `Terminate`, `ReplaceUnhealthy` and `HealthCheck` when there are unhealthy members
//! to replace or a health check to switch; `AddToLoadBalancer` behind a load balancer, whose
//! new capacity would take no traffic) is held for them (`operator-hold`); a group in an
//! instance refresh is being replaced by AWS already (`aws-healing`). The action itself
//! refuses (`unsafe`) what a person holds, should it run without that look.
//!
//! Each scale-out is recorded on the group (tag `autoheal:scale-out`: the attempt's token, the
//! capacity before and after), so a retried attempt does not add capacity twice, and it is
//! reported as a revert: when the alarm returns to OK the desired capacity goes back to what
//! it was (within the group's current minimum and maximum), unless something else (a scaling
//! policy, a person) has changed it since; then the group's own scaling owns it.
//!
//! With `health_check_type = "ELB"`, a group behind a load balancer (target groups or classic
//! load balancers attached) whose health check type is `EC2` is switched to `ELB` with the
//! rule's grace period, so that it replaces the instances the load balancer finds unhealthy,
//! not only those whose EC2 status checks fail. The previous type and grace period go into
//! the record. This change stays after the incident: putting the weaker check back would let
//! the next such fault through.

use std::collections::BTreeMap;

use aws_sdk_autoscaling::Client as AutoScalingClient;
use aws_sdk_autoscaling::types::{AutoScalingGroup, Instance, LifecycleState, Tag};

use autoheal_aws::errors::{api_error, describe};
use autoheal_aws::tags::pairs_opt_out;
use autoheal_core::{Assessment, HealError, HealOutcome, HealRequest, Revert, SkipReason};

use crate::groups;

/// The revert that puts a group's desired capacity back.
pub const RESTORE_DESIRED_CAPACITY: &str = "restore-desired-capacity";

/// The group tag recording the latest scale-out: `<token> <before> <after>`.
pub const SCALE_OUT_TAG: &str = "autoheal:scale-out";

/// When to look again at a group a person holds or an instance refresh replaces.
const RECHECK_SECONDS: u64 = 300;

/// What a scale-out does, from the rule.
#[derive(Debug, Clone, Copy)]
pub struct ScaleOut {
    pub increment: u32,
    pub replace_unhealthy: bool,
    /// `Some(grace period)`: switch a load-balanced group's health check to `ELB`.
    pub elb_health_check: Option<u32>,
}

impl ScaleOut {
    /// The settings of a rule's `scale-out-auto-scaling-group` action.
    pub fn new(
        increment: u32,
        replace_unhealthy: bool,
        health_check_type: Option<&str>,
        health_check_grace_period: u32,
    ) -> Self {
        ScaleOut {
            increment,
            replace_unhealthy,
            elb_health_check: (health_check_type == Some("ELB"))
                .then_some(health_check_grace_period),
        }
    }
}

/// Whether the group should switch to the load balancer's health check: it is behind one and
/// checks only EC2 health.
fn wants_elb_health_check(group: &AutoScalingGroup) -> bool {
    let behind_load_balancer =
        !group.target_group_arns().is_empty() || !group.load_balancer_names().is_empty();
    behind_load_balancer && group.health_check_type().is_none_or(|kind| kind == "EC2")
}

/// A scale-out recorded on the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Recorded<'a> {
    token: &'a str,
    before: i32,
    after: i32,
}

impl<'a> Recorded<'a> {
    fn parse(value: &'a str) -> Option<Self> {
        let mut parts = value.split_whitespace();
        let token = parts.next()?;
        let before = parts.next()?.parse().ok()?;
        let after = parts.next()?.parse().ok()?;
        Some(Recorded {
            token,
            before,
            after,
        })
    }

    fn render(&self) -> String {
        format!("{} {} {}", self.token, self.before, self.after)
    }
}

/// The group's unhealthy members that are not already leaving it, split into those the action
/// may replace and those a person keeps (protected from scale-in, or in `Standby`).
fn unhealthy_members(group: &AutoScalingGroup) -> (Vec<String>, Vec<String>) {
    let mut replace = Vec::new();
    let mut held_back = Vec::new();
    for member in group.instances() {
        let unhealthy = member
            .health_status()
            .is_some_and(|status| status.eq_ignore_ascii_case("unhealthy"));
        let Some(id) = member.instance_id() else {
            continue;
        };
        if !unhealthy || member.lifecycle_state().is_some_and(is_leaving) {
            continue;
        }
        if is_kept(member) {
            held_back.push(id.to_owned());
        } else {
            replace.push(id.to_owned());
        }
    }
    (replace, held_back)
}

/// A member a person keeps: protected from scale-in, or taken out of service.
fn is_kept(member: &Instance) -> bool {
    member.protected_from_scale_in() == Some(true)
        || member
            .lifecycle_state()
            .is_some_and(|state| state.as_str().contains("Standby"))
}

/// The processes the action needs on this group, which a person must not have suspended.
fn needed_processes(group: &AutoScalingGroup, settings: ScaleOut) -> Vec<&'static str> {
    let mut needed = vec!["Launch"];
    let (replace, _) = unhealthy_members(group);
    if settings.replace_unhealthy && !replace.is_empty() {
        needed.extend(["Terminate", "ReplaceUnhealthy", "HealthCheck"]);
    }
    let behind_load_balancer =
        !group.target_group_arns().is_empty() || !group.load_balancer_names().is_empty();
    if settings.elb_health_check.is_some()
        && wants_elb_health_check(group)
        && !needed.contains(&"HealthCheck")
    {
        needed.push("HealthCheck");
    }
    if behind_load_balancer {
        needed.push("AddToLoadBalancer");
    }
    needed
}

/// What a person froze on the group that the action needs, in one sentence.
fn held_by_a_person(group: &AutoScalingGroup, settings: ScaleOut) -> Option<String> {
    let name = group.auto_scaling_group_name().unwrap_or_default();
    let suspended = groups::suspended_of(group, &needed_processes(group, settings));
    (!suspended.is_empty()).then(|| {
        format!(
            "Auto Scaling group {name} has {} suspended: a person froze what scaling out and replacing members needs",
            suspended.join(", ")
        )
    })
}

fn opted_out(group: &AutoScalingGroup) -> bool {
    pairs_opt_out(
        group
            .tags()
            .iter()
            .filter_map(|tag| tag.key().zip(tag.value())),
    )
}

fn parse_capacity(revert: &Revert, key: &str) -> Result<i32, HealError> {
    let value = revert.param(key).map_err(HealError::new)?;
    value.parse().map_err(|_| {
        HealError::new(format!(
            "revert `{}`: `{key}` is not a number: {value}",
            revert.kind
        ))
    })
}

/// Scales Auto Scaling groups out.
#[derive(Debug, Clone)]
pub struct GroupScaler {
    autoscaling: AutoScalingClient,
    ec2: aws_sdk_ec2::Client,
}

impl GroupScaler {
    pub fn new(autoscaling: AutoScalingClient, ec2: aws_sdk_ec2::Client) -> Self {
        GroupScaler { autoscaling, ec2 }
    }

    /// Of `ids`, the instances tagged `autoheal:disabled=true` (each page of one
    /// `DescribeInstances`).
    async fn opted_out(&self, ids: &[String]) -> Result<Vec<String>, HealError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pages = self
            .ec2
            .describe_instances()
            .set_instance_ids(Some(ids.to_vec()))
            .into_paginator()
            .send();
        let mut opted_out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| api_error("DescribeInstances", e))?;
            for instance in page.reservations().iter().flat_map(|r| r.instances()) {
                let tags = instance
                    .tags()
                    .iter()
                    .filter_map(|t| t.key().zip(t.value()));
                if let Some(id) = instance.instance_id()
                    && autoheal_aws::tags::pairs_disabled(tags)
                {
                    opted_out.push(id.to_owned());
                }
            }
        }
        Ok(opted_out)
    }

    /// Whether the group is gone, or being deleted.
    pub async fn is_gone(&self, name: &str) -> Result<bool, HealError> {
        Ok(groups::describe(&self.autoscaling, name).await?.is_none())
    }

    /// Looks, read-only, at what may already replace the group's instances or hold the group
    /// (see the module's docs) before a new attempt.
    pub async fn assess(
        &self,
        request: HealRequest<'_>,
        settings: ScaleOut,
    ) -> Result<Assessment, HealError> {
        let name = request.resource_id;
        let Some(group) = groups::describe(&self.autoscaling, name).await? else {
            return Ok(Assessment::gone(format!(
                "Auto Scaling group {name} does not exist (or is being deleted)"
            )));
        };
        if opted_out(&group) {
            return Ok(Assessment::Proceed);
        }
        if let Some(why) = held_by_a_person(&group, settings) {
            return Ok(Assessment::operator_hold(why, RECHECK_SECONDS));
        }
        if let Some(refresh) = groups::refresh_under_way(&self.autoscaling, name).await? {
            return Ok(Assessment::aws_healing(
                format!(
                    "Auto Scaling group {name} is replacing its instances: {}",
                    refresh.describe()
                ),
                RECHECK_SECONDS,
            ));
        }
        Ok(Assessment::Proceed)
    }

    /// Sets the group's desired capacity now, whatever its scaling cooldown.
    async fn set_desired(&self, name: &str, desired: i32) -> Result<(), HealError> {
        self.autoscaling
            .set_desired_capacity()
            .auto_scaling_group_name(name)
            .desired_capacity(desired)
            .honor_cooldown(false)
            .send()
            .await
            .map_err(|e| api_error("SetDesiredCapacity", e))?;
        Ok(())
    }

    pub async fn scale_out(
        &self,
        request: HealRequest<'_>,
        settings: ScaleOut,
    ) -> Result<HealOutcome, HealError> {
        let ScaleOut {
            increment,
            replace_unhealthy,
            ..
        } = settings;
        let name = request.resource_id;
        let Some(group) = groups::describe(&self.autoscaling, name).await? else {
            return Ok(HealOutcome::Skipped {
                reason: SkipReason::Gone,
                summary: format!("Auto Scaling group {name} does not exist (or is being deleted)"),
            });
        };
        if opted_out(&group) {
            return Ok(HealOutcome::Skipped {
                reason: SkipReason::OptedOut,
                summary: format!(
                    "Auto Scaling group {name} {}",
                    autoheal_aws::tags::opted_out_phrase()
                ),
            });
        }
        if let Some(why) = held_by_a_person(&group, settings) {
            return Ok(HealOutcome::Skipped {
                reason: SkipReason::Unsafe,
                summary: why,
            });
        }
        let desired = group.desired_capacity().unwrap_or_default();
        let max = group.max_size().unwrap_or(desired);
        // A retry of this attempt finds its own scale-out on the group and does not repeat it.
        let recorded = group
            .tags()
            .iter()
            .find(|tag| tag.key() == Some(SCALE_OUT_TAG))
            .and_then(|tag| tag.value())
            .and_then(Recorded::parse)
            .filter(|done| done.token == request.idempotency_token);
        let increment = i32::try_from(increment).unwrap_or(i32::MAX);
        let (desired, target) = match recorded {
            Some(done) => (done.before, done.after),
            None => (desired, desired.saturating_add(increment).min(max)),
        };
        let (mut unhealthy, mut held_back) = if replace_unhealthy {
            unhealthy_members(&group)
        } else {
            (Vec::new(), Vec::new())
        };
        let opted_out = self.opted_out(&unhealthy).await?;
        unhealthy.retain(|id| !opted_out.contains(id));
        held_back.extend(opted_out);
        let switch_health_check = settings
            .elb_health_check
            .filter(|_| wants_elb_health_check(&group));
        if target <= desired && unhealthy.is_empty() && switch_health_check.is_none() {
            return Ok(if held_back.is_empty() {
                HealOutcome::Skipped {
                    reason: SkipReason::NotNeeded,
                    summary: format!(
                        "Auto Scaling group {name} is at its maximum ({max}) and has no unhealthy instance to replace"
                    ),
                }
            } else {
                HealOutcome::Skipped {
                    reason: SkipReason::Unsafe,
                    summary: format!(
                        "Auto Scaling group {name} is at its maximum ({max}), and its unhealthy {} are protected from scale-in, in Standby or opted out: a person keeps them",
                        held_back.join(", ")
                    ),
                }
            });
        }

        if target > desired && recorded.is_none() {
            let done = Recorded {
                token: request.idempotency_token,
                before: desired,
                after: target,
            };
            self.autoscaling
                .create_or_update_tags()
                .tags(
                    Tag::builder()
                        .resource_id(name)
                        .resource_type("auto-scaling-group")
                        .key(SCALE_OUT_TAG)
                        .value(done.render())
                        .propagate_at_launch(false)
                        .build(),
                )
                .send()
                .await
                .map_err(|e| api_error("CreateOrUpdateTags", e))?;
            self.set_desired(name, target).await?;
        }
        let mut health_check = None;
        if let Some(grace_period) = switch_health_check {
            let previous = (
                group.health_check_type().unwrap_or("EC2").to_owned(),
                group.health_check_grace_period().unwrap_or(0),
            );
            self.autoscaling
                .update_auto_scaling_group()
                .auto_scaling_group_name(name)
                .health_check_type("ELB")
                .health_check_grace_period(i32::try_from(grace_period).unwrap_or(i32::MAX))
                .send()
                .await
                .map_err(|e| {
                    HealError::new(format!(
                        "desired capacity is {target}, but {}",
                        describe("UpdateAutoScalingGroup", &e)
                    ))
                })?;
            health_check = Some((previous, grace_period));
        }
        let mut replaced = Vec::new();
        for instance in &unhealthy {
            self.autoscaling
                .terminate_instance_in_auto_scaling_group()
                .instance_id(instance)
                .should_decrement_desired_capacity(false)
                .send()
                .await
                .map_err(|e| {
                    HealError::new(format!(
                        "desired capacity is {target}, but {}",
                        describe("TerminateInstanceInAutoScalingGroup", &e)
                    ))
                })?;
            replaced.push(instance.clone());
        }

        let mut summary = if target > desired {
            format!("scaled Auto Scaling group {name} out from {desired} to {target} instances")
        } else {
            format!("Auto Scaling group {name} is at its maximum ({max})")
        };
        if let Some(((previous_type, previous_grace), grace_period)) = &health_check {
            summary.push_str(&format!(
                "; switched its health check from {previous_type} (grace {previous_grace} s) to ELB (grace {grace_period} s), so that it replaces the instances its load balancer finds unhealthy"
            ));
        }
        if !replaced.is_empty() {
            summary.push_str(&format!("; replacing unhealthy {}", replaced.join(", ")));
        }
        if !held_back.is_empty() {
            summary.push_str(&format!(
                "; left unhealthy {} in place: protected from scale-in, in Standby or opted out, a person's choice",
                held_back.join(", ")
            ));
        }
        let mut details = BTreeMap::from([
            ("desired_before".to_owned(), desired.to_string()),
            ("desired_after".to_owned(), target.to_string()),
        ]);
        if !replaced.is_empty() {
            details.insert("replaced_instances".to_owned(), replaced.join(","));
        }
        if !held_back.is_empty() {
            details.insert("held_back_instances".to_owned(), held_back.join(","));
        }
        if let Some(((previous_type, previous_grace), grace_period)) = health_check {
            details.insert("previous_health_check_type".to_owned(), previous_type);
            details.insert(
                "previous_health_check_grace_period".to_owned(),
                previous_grace.to_string(),
            );
            details.insert("health_check_type".to_owned(), "ELB".to_owned());
            details.insert(
                "health_check_grace_period".to_owned(),
                grace_period.to_string(),
            );
        }
        let reverts = if target > desired {
            summary.push_str(&format!(
                "; desired capacity goes back to {desired} when the alarm returns to OK"
            ));
            vec![
                Revert::new(RESTORE_DESIRED_CAPACITY)
                    .with("desired_before", desired)
                    .with("desired_after", target),
            ]
        } else {
            Vec::new()
        };
        Ok(HealOutcome::Healed {
            summary,
            details,
            reverts,
        })
    }

    /// Puts the desired capacity back to what it was before a scale-out, if it is still what
    /// the scale-out set, within the group's current minimum and maximum.
    pub async fn restore(
        &self,
        request: HealRequest<'_>,
        revert: &Revert,
    ) -> Result<HealOutcome, HealError> {
        let name = request.resource_id;
        let before = parse_capacity(revert, "desired_before")?;
        let after = parse_capacity(revert, "desired_after")?;
        let Some(group) = groups::describe(&self.autoscaling, name).await? else {
            return Ok(HealOutcome::Skipped {
                reason: SkipReason::NotNeeded,
                summary: format!("Auto Scaling group {name} no longer exists: nothing to put back"),
            });
        };
        if opted_out(&group) {
            return Ok(HealOutcome::Skipped {
                reason: SkipReason::OptedOut,
                summary: format!(
                    "Auto Scaling group {name} {}: its desired capacity stays",
                    autoheal_aws::tags::opted_out_phrase()
                ),
            });
        }
        let desired = group.desired_capacity().unwrap_or_default();
        if desired != after {
            return Ok(HealOutcome::Skipped {
                reason: SkipReason::NotNeeded,
                summary: format!(
                    "Auto Scaling group {name} has desired capacity {desired}, not the {after} autoheal set: its own scaling owns it now"
                ),
            });
        }
        let min = group.min_size().unwrap_or(0);
        let max = group.max_size().unwrap_or(after);
        let target = before.clamp(min, max.max(min));
        if target == desired {
            return Ok(HealOutcome::Skipped {
                reason: SkipReason::NotNeeded,
                summary: format!(
                    "Auto Scaling group {name} stays at {desired}: its limits ({min}..{max}) do not allow {before}"
                ),
            });
        }
        self.set_desired(name, target).await?;
        Ok(HealOutcome::healed(
            format!("scaled Auto Scaling group {name} back from {desired} to {target} instances"),
            BTreeMap::from([
                ("desired_before".to_owned(), desired.to_string()),
                ("desired_after".to_owned(), target.to_string()),
            ]),
        ))
    }
}

/// A member on its way out of the group: terminating it again would fail.
fn is_leaving(state: &LifecycleState) -> bool {
    state.as_str().starts_with("Terminat") || state.as_str().starts_with("Detach")
}
