//! `deregister-unhealthy-targets`: take the failing targets of a load-balancer target group
//! out of rotation.
//!
//! A target fails when its health checks fail (`unhealthy`) or when it is an instance that is
//! stopped or terminated but still registered (`unused` / `Target.InvalidState`). Failing
//! targets are deregistered only while at least one healthy target stays registered:
//! deregistering the last capacity would turn a degraded service into an outage. An Auto
//! Scaling group that owns a deregistered instance replaces it through its own health checks.

use std::collections::BTreeMap;

use aws_sdk_elasticloadbalancingv2::Client as ElbClient;
use aws_sdk_elasticloadbalancingv2::types::{
    TargetDescription, TargetHealthDescription, TargetHealthReasonEnum, TargetHealthStateEnum,
};

use autoheal_aws::tags::{OPT_OUT_TAG, pairs_opt_out};
use autoheal_core::{HealError, HealOutcome, HealRequest, SkipReason};

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
    /// Deregister `failing`; `healthy` targets stay.
    Deregister {
        failing: Vec<TargetDescription>,
        healthy: usize,
    },
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

/// Decides from the live health of a group's targets. Targets that are registering,
/// draining or unchecked count neither as failing nor as healthy capacity.
pub fn plan(health: &[TargetHealthDescription]) -> TargetPlan {
    let failing: Vec<TargetDescription> = health
        .iter()
        .filter(|h| is_failing(h))
        .filter_map(|h| h.target().cloned())
        .filter(|t| t.id().is_some_and(|id| !id.is_empty()))
        .collect();
    let healthy = health.iter().filter(|h| is_healthy(h)).count();
    if failing.is_empty() {
        TargetPlan::NothingFailing
    } else if healthy == 0 {
        TargetPlan::NoHealthyLeft { failing }
    } else {
        TargetPlan::Deregister { failing, healthy }
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
        let (failing, healthy) = match plan(health.target_health_descriptions()) {
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
            TargetPlan::Deregister { failing, healthy } => (failing, healthy),
        };

        self.elb
            .deregister_targets()
            .target_group_arn(arn)
            .set_targets(Some(failing.clone()))
            .send()
            .await
            .map_err(|e| api_error("DeregisterTargets", e))?;

        let deregistered = labels(&failing);
        Ok(HealOutcome::Healed {
            summary: format!(
                "deregistered {} unhealthy target(s) of {arn} ({deregistered}); {healthy} healthy target(s) keep serving",
                failing.len()
            ),
            details: BTreeMap::from([
                ("target_group_arn".to_owned(), arn.to_owned()),
                ("deregistered_targets".to_owned(), deregistered),
                ("healthy_targets_left".to_owned(), healthy.to_string()),
            ]),
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
        let TargetPlan::Deregister { failing, healthy } = plan(&health) else {
            panic!("expected a deregistration");
        };
        assert_eq!(labels(&failing), "i-2:80, i-3:80");
        assert_eq!(healthy, 1);
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
        assert!(matches!(plan(&health), TargetPlan::NoHealthyLeft { .. }));
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
        assert_eq!(plan(&health), TargetPlan::NothingFailing);
        assert_eq!(plan(&[]), TargetPlan::NothingFailing);
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
