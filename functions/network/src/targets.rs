//! `deregister-unhealthy-targets`: take the failing targets of a load-balancer target group
//! out of rotation.
//!
//! A target fails when its health checks fail (`unhealthy`) or when it is an instance that is
//! stopped or terminated but still registered (`unused` / `Target.InvalidState`). Failing
//! targets are deregistered only while at least one healthy target stays registered:
//! deregistering the last capacity would turn a degraded service into an outage. The rule's
//! group guard bounds each run: while more than `max_unhealthy_percent` of the registered
//! targets fail (a shared fault, not a per-target one), none is deregistered; otherwise at
//! most `max_healing_percent` of them (at least one) leave per run, the rest at the next
//! attempt. An Auto Scaling group that owns a deregistered instance replaces it through its
//! own health checks.

use std::collections::BTreeMap;

use aws_sdk_elasticloadbalancingv2::Client as ElbClient;
use aws_sdk_elasticloadbalancingv2::types::{
    TargetDescription, TargetHealthDescription, TargetHealthReasonEnum, TargetHealthStateEnum,
};

use autoheal_aws::tags::{OPT_OUT_TAG, pairs_opt_out};
use autoheal_core::{Allowance, GroupGuard, HealError, HealOutcome, HealRequest, SkipReason};

use autoheal_aws::errors::api_error;

/// Deregisters the failing targets of target groups.
#[derive(Debug, Clone)]
pub struct TargetDeregistrar {
    elb: ElbClient,
}

/// What the live target health says to do.
#[derive(Debug, Clone, PartialEq)]
pub enum TargetPlan {
    /// No registered target is failing.
    NothingFailing,
    /// Deregistering the failing targets would leave no healthy one.
    NoHealthyLeft { failing: Vec<TargetDescription> },
    /// Deregister `failing`; `healthy` targets stay, and `held_back` failing ones wait for
    /// the next run (the group guard's share per run).
    Deregister {
        failing: Vec<TargetDescription>,
        healthy: usize,
        held_back: usize,
    },
    /// More of the group is failing than the group guard allows to heal target by target.
    Storm { failing: usize, registered: usize },
}

/// Whether a target is failing and should leave the group.
fn is_failing(health: &TargetHealthDescription) -> bool {
    let Some(health) = health.target_health() else {
        return false;
    };
    match health.state() {
        Some(TargetHealthStateEnum::Unhealthy) => true,
        // A stopped or terminated instance that is still registered.
        Some(TargetHealthStateEnum::Unused) => {
            health.reason() == Some(&TargetHealthReasonEnum::InvalidState)
        }
        _ => false,
    }
}

fn is_healthy(health: &TargetHealthDescription) -> bool {
    health.target_health().and_then(|h| h.state()) == Some(&TargetHealthStateEnum::Healthy)
}

/// Decides from the live health of a group's targets and the rule's group guard. Targets
/// that are registering, draining or unchecked count neither as failing nor as healthy
/// capacity.
pub fn plan(health: &[TargetHealthDescription], guard: GroupGuard) -> TargetPlan {
    let mut failing: Vec<TargetDescription> = health
        .iter()
        .filter(|h| is_failing(h))
        .filter_map(|h| h.target().cloned())
        .filter(|t| t.id().is_some_and(|id| !id.is_empty()))
        .collect();
    let healthy = health.iter().filter(|h| is_healthy(h)).count();
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    if failing.is_empty() {
        return TargetPlan::NothingFailing;
    }
    if healthy == 0 {
        return TargetPlan::NoHealthyLeft { failing };
    }
    match guard.allowance(count(health.len()), count(failing.len())) {
        Allowance::Storm => TargetPlan::Storm {
            failing: failing.len(),
            registered: health.len(),
        },
        Allowance::Heal(allowed) => {
            let allowed = usize::try_from(allowed).unwrap_or(usize::MAX);
            let held_back = failing.len().saturating_sub(allowed);
            failing.truncate(allowed);
            TargetPlan::Deregister {
                failing,
                healthy,
                held_back,
            }
        }
    }
}

/// `i-0abc:80`, `10.0.1.7:8080`, or the bare id of a target without a port (Lambda).
pub fn target_label(target: &TargetDescription) -> String {
    let id = target.id().unwrap_or_default();
    match target.port() {
        Some(port) => format!("{id}:{port}"),
        None => id.to_owned(),
    }
}

fn labels(targets: &[TargetDescription]) -> String {
    targets
        .iter()
        .map(target_label)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether `arn` names a target group: `arn:<partition>:elasticloadbalancing:<region>:
/// <account>:targetgroup/<name>/<id>`.
pub fn is_target_group_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.split(':').collect();
    let [arn_prefix, partition, service, region, account, resource] = parts[..] else {
        return false;
    };
    let path: Vec<&str> = resource.split('/').collect();
    arn_prefix == "arn"
        && !partition.is_empty()
        && service == "elasticloadbalancing"
        && !region.is_empty()
        && !account.is_empty()
        && path.len() == 3
        && path[0] == "targetgroup"
        && path.iter().all(|segment| !segment.is_empty())
}

impl TargetDeregistrar {
    pub fn new(elb: ElbClient) -> Self {
        TargetDeregistrar { elb }
    }

    pub async fn deregister(&self, request: HealRequest<'_>) -> Result<HealOutcome, HealError> {
        let arn = request.resource_id;
        if !is_target_group_arn(arn) {
            return Err(HealError::new(format!(
                "`{arn}` is not a target group ARN (arn:aws:elasticloadbalancing:<region>:<account>:targetgroup/<name>/<id>)"
            )));
        }

        let tags = self
            .elb
            .describe_tags()
            .resource_arns(arn)
            .send()
            .await
            .map_err(|e| api_error("DescribeTags", e))?;
        let opted_out = tags
            .tag_descriptions()
            .iter()
            .filter(|description| description.resource_arn() == Some(arn))
            .flat_map(|description| description.tags())
            .filter_map(|tag| Some((tag.key()?, tag.value().unwrap_or_default())));
        if pairs_opt_out(opted_out) {
            return Ok(HealOutcome::Skipped {
                reason: SkipReason::OptedOut,
                summary: format!("target group {arn} is tagged {OPT_OUT_TAG}=true"),
            });
        }

        let health = self
            .elb
            .describe_target_health()
            .target_group_arn(arn)
            .send()
            .await
            .map_err(|e| api_error("DescribeTargetHealth", e))?;
        let guard = request.rule.policy.group_guard;
        let (failing, healthy, held_back) = match plan(health.target_health_descriptions(), guard) {
            TargetPlan::NothingFailing => {
                return Ok(HealOutcome::Skipped {
                    reason: SkipReason::NotNeeded,
                    summary: format!("no target of {arn} is unhealthy any more"),
                });
            }
            TargetPlan::NoHealthyLeft { failing } => {
                return Ok(HealOutcome::Skipped {
                    reason: SkipReason::Unsafe,
                    summary: format!(
                        "every registered target of {arn} is failing or not yet healthy ({}): \
                         deregistering them would leave the target group without capacity",
                        labels(&failing)
                    ),
                });
            }
            TargetPlan::Storm {
                failing,
                registered,
            } => {
                return Ok(HealOutcome::Skipped {
                    reason: SkipReason::GroupStorm,
                    summary: guard.describe_storm(
                        &format!("target group {arn}"),
                        u32::try_from(registered).unwrap_or(u32::MAX),
                        u32::try_from(failing).unwrap_or(u32::MAX),
                    ),
                });
            }
            TargetPlan::Deregister {
                failing,
                healthy,
                held_back,
            } => (failing, healthy, held_back),
        };

        self.elb
            .deregister_targets()
            .target_group_arn(arn)
            .set_targets(Some(failing.clone()))
            .send()
            .await
            .map_err(|e| api_error("DeregisterTargets", e))?;

        let deregistered = labels(&failing);
        let waiting = if held_back > 0 {
            format!(
                "; {held_back} more failing target(s) wait for the next attempt (at most {} % of the group per run)",
                guard.max_healing_percent
            )
        } else {
            String::new()
        };
        let mut details = BTreeMap::from([
            ("target_group_arn".to_owned(), arn.to_owned()),
            ("deregistered_targets".to_owned(), deregistered.clone()),
            ("healthy_targets_left".to_owned(), healthy.to_string()),
        ]);
        if held_back > 0 {
            details.insert("held_back_targets".to_owned(), held_back.to_string());
        }
        Ok(HealOutcome::Healed {
            summary: format!(
                "deregistered {} unhealthy target(s) of {arn} ({deregistered}); {healthy} healthy target(s) keep serving{waiting}",
                failing.len()
            ),
            details,
            reverts: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_elasticloadbalancingv2::types::TargetHealth;

    use super::*;

    fn target(
        id: &str,
        state: TargetHealthStateEnum,
        reason: Option<TargetHealthReasonEnum>,
    ) -> TargetHealthDescription {
        TargetHealthDescription::builder()
            .target(TargetDescription::builder().id(id).port(80).build())
            .target_health(
                TargetHealth::builder()
                    .state(state)
                    .set_reason(reason)
                    .build(),
            )
            .build()
    }

    #[test]
    fn unhealthy_and_stopped_targets_leave_while_a_healthy_one_stays() {
        let health = [
            target("i-1", TargetHealthStateEnum::Healthy, None),
            target(
                "i-2",
                TargetHealthStateEnum::Unhealthy,
                Some(TargetHealthReasonEnum::FailedHealthChecks),
            ),
            target(
                "i-3",
                TargetHealthStateEnum::Unused,
                Some(TargetHealthReasonEnum::InvalidState),
            ),
            target(
                "i-4",
                TargetHealthStateEnum::Initial,
                Some(TargetHealthReasonEnum::InitialHealthChecking),
            ),
        ];
        let lenient = GroupGuard {
            max_healing_percent: 100,
            max_unhealthy_percent: 100,
        };
        let TargetPlan::Deregister {
            failing,
            healthy,
            held_back,
        } = plan(&health, lenient)
        else {
            panic!("expected a deregistration");
        };
        assert_eq!(labels(&failing), "i-2:80, i-3:80");
        assert_eq!((healthy, held_back), (1, 0));
    }

    #[test]
    fn the_last_capacity_is_never_deregistered() {
        let health = [
            target("i-1", TargetHealthStateEnum::Unhealthy, None),
            target(
                "i-2",
                TargetHealthStateEnum::Initial,
                Some(TargetHealthReasonEnum::RegistrationInProgress),
            ),
        ];
        assert!(matches!(
            plan(&health, GroupGuard::default()),
            TargetPlan::NoHealthyLeft { .. }
        ));
    }

    #[test]
    fn draining_and_unused_targets_are_not_failing() {
        let health = [
            target("i-1", TargetHealthStateEnum::Healthy, None),
            target("i-2", TargetHealthStateEnum::Draining, None),
            target("i-3", TargetHealthStateEnum::UnhealthyDraining, None),
            target(
                "i-4",
                TargetHealthStateEnum::Unused,
                Some(TargetHealthReasonEnum::NotInUse),
            ),
        ];
        assert_eq!(
            plan(&health, GroupGuard::default()),
            TargetPlan::NothingFailing
        );
        assert_eq!(plan(&[], GroupGuard::default()), TargetPlan::NothingFailing);
    }

    fn group_of_ten(failing: usize) -> Vec<TargetHealthDescription> {
        (0..10)
            .map(|i| {
                let state = if i < failing {
                    TargetHealthStateEnum::Unhealthy
                } else {
                    TargetHealthStateEnum::Healthy
                };
                target(&format!("i-{i}"), state, None)
            })
            .collect()
    }

    #[test]
    fn six_failing_targets_of_ten_are_a_storm_and_none_leaves() {
        assert_eq!(
            plan(&group_of_ten(6), GroupGuard::default()),
            TargetPlan::Storm {
                failing: 6,
                registered: 10
            }
        );
    }

    #[test]
    fn at_most_a_fifth_of_the_group_leaves_per_run() {
        let TargetPlan::Deregister {
            failing, held_back, ..
        } = plan(&group_of_ten(3), GroupGuard::default())
        else {
            panic!("expected a deregistration");
        };
        assert_eq!(labels(&failing), "i-0:80, i-1:80");
        assert_eq!(held_back, 1);
        let TargetPlan::Deregister {
            failing, held_back, ..
        } = plan(&group_of_ten(2), GroupGuard::default())
        else {
            panic!("expected a deregistration");
        };
        assert_eq!((failing.len(), held_back), (2, 0));
    }

    #[test]
    fn only_target_group_arns_are_accepted() {
        assert!(is_target_group_arn(
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef"
        ));
        for bad in [
            "",
            "targetgroup/web/0123456789abcdef",
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:",
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/web/0123",
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup//0123",
            "arn:aws:elasticloadbalancing::123456789012:targetgroup/web/0123",
        ] {
            assert!(!is_target_group_arn(bad), "{bad}");
        }
    }
}
