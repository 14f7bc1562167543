//! `deregister-unhealthy-targets`: take the failing targets of a load-balancer target group
//! out of rotation, when nobody else heals them.
//!
//! A target fails when it fails its health checks (`unhealthy`). A stopped instance that is
//! still registered (`unused`) does not: it gets no traffic, and deregistered it would lose
//! its place in the group when it starts again (a stop and start by autoheal, by AWS or by a
//! person). Failing targets are deregistered only while at least one healthy target stays
//! registered: deregistering the last capacity would turn a degraded service into an outage.
//! The rule's group guard bounds each run: while more than `max_unhealthy_percent` of the
//! registered targets fail (a shared fault, not a per-target one), none is deregistered;
//! otherwise at most `max_healing_percent` of them (at least one) leave per run, the rest at
//! the next attempt.
//!
//! Deregistering takes a target out of the load balancer's health checks, so a target whose
//! owner replaces it on those checks is never deregistered: its owner would never see it
//! fail, and the alarm would "recover" with the capacity lost. Those are the targets of an
//! ECS service's target group and the members of an Auto Scaling group that checks this
//! target group's health (`ELB` health checks, the group attached): autoheal waits for the
//! owner (`aws-healing`) and then leaves them to it (`not-needed`). A member whose group's
//! replacement a person suspended waits for them (`operator-hold`); an instance autoheal's EC2
//! healing is stopping and starting (tag `autoheal:stop-start`) waits for that
//! (`resource-busy`); a member of a group that does not check this target group is `unsafe`
//! (deregistered, it would stay in service and never be replaced).

mod owners;
mod plan;

use std::collections::BTreeMap;

use aws_sdk_elasticloadbalancingv2::Client as ElbClient;
use aws_sdk_elasticloadbalancingv2::types::TargetHealthDescription;

use autoheal_aws::errors::api_error;
use autoheal_aws::tags::pairs_opt_out;
use autoheal_core::{Assessment, HealError, HealOutcome, HealRequest, SkipReason};

pub use owners::{Owners, STOP_START_TAG, group_claim};
pub use plan::{
    Claim, Claims, TargetPlan, describe_left, failing, is_target_group_arn, labels, plan,
    strongest_reason, target_label,
};

/// How long autoheal waits before looking again at targets whose owner replaces them.
const OWNER_RECHECK_SECONDS: u64 = 120;
/// How long autoheal waits before looking again at targets held by a person.
const HOLD_RECHECK_SECONDS: u64 = 300;
/// How long autoheal waits before looking again at instances it is stopping and starting.
const STOP_START_RECHECK_SECONDS: u64 = 60;

/// Deregisters the failing targets of target groups.
#[derive(Debug, Clone)]
pub struct TargetDeregistrar {
    elb: ElbClient,
    owners: Owners,
}

impl TargetDeregistrar {
    pub fn new(elb: ElbClient, owners: Owners) -> Self {
        TargetDeregistrar { elb, owners }
    }

    /// The live health of the group's targets; `None` when the target group does not exist.
    async fn health(&self, arn: &str) -> Result<Option<Vec<TargetHealthDescription>>, HealError> {
        match self
            .elb
            .describe_target_health()
            .target_group_arn(arn)
            .send()
            .await
        {
            Ok(output) => Ok(Some(output.target_health_descriptions().to_vec())),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_target_group_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(api_error("DescribeTargetHealth", e)),
        }
    }

    /// Whether the target group no longer exists.
    pub async fn is_gone(&self, arn: &str) -> Result<bool, HealError> {
        if !is_target_group_arn(arn) {
            return Ok(false);
        }
        Ok(self.health(arn).await?.is_none())
    }

    /// Looks at the group before an attempt: gone, or every failing target someone else's to
    /// heal (their owner, a person, autoheal's own stop and start).
    pub async fn assess(&self, request: HealRequest<'_>) -> Result<Assessment, HealError> {
        let arn = request.resource_id;
        if !is_target_group_arn(arn) {
            return Ok(Assessment::Proceed);
        }
        let Some(health) = self.health(arn).await? else {
            return Ok(Assessment::gone(gone(arn)));
        };
        let failing = failing(&health);
        let claims = self.owners.claims(arn, &failing).await?;
        let all_claimed = failing
            .iter()
            .all(|target| claims.contains_key(target.id().unwrap_or_default()));
        if failing.is_empty() || !all_claimed {
            return Ok(Assessment::Proceed);
        }
        let left: Vec<_> = failing
            .iter()
            .filter_map(|target| {
                let claim = claims.get(target.id().unwrap_or_default())?;
                Some((target.clone(), claim.clone()))
            })
            .collect();
        let summary = format!(
            "the failing targets of {arn} are someone else's to heal: {}",
            describe_left(&left)
        );
        let any = |wanted: fn(&Claim) -> bool| left.iter().any(|(_, claim)| wanted(claim));
        Ok(
            if any(|claim| matches!(claim, Claim::UncheckedMember(_) | Claim::OptedOut)) {
                // The action says `unsafe` and a person hears of it; waiting would not change it.
                Assessment::Proceed
            } else if any(|claim| matches!(claim, Claim::HeldBy(_))) {
                Assessment::operator_hold(summary, HOLD_RECHECK_SECONDS)
            } else if any(|claim| matches!(claim, Claim::ReplacedBy(_) | Claim::NotRunning(_))) {
                Assessment::aws_healing(summary, OWNER_RECHECK_SECONDS)
            } else {
                Assessment::resource_busy(summary, STOP_START_RECHECK_SECONDS)
            },
        )
    }

    pub async fn deregister(&self, request: HealRequest<'_>) -> Result<HealOutcome, HealError> {
        let arn = request.resource_id;
        if !is_target_group_arn(arn) {
            return Err(HealError::new(format!(
                "`{arn}` is not a target group ARN (arn:aws:elasticloadbalancing:<region>:<account>:targetgroup/<name>/<id>)"
            )));
        }
        let Some(health) = self.health(arn).await? else {
            return Ok(HealOutcome::Skipped {
                reason: SkipReason::Gone,
                summary: gone(arn),
            });
        };

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
                summary: format!(
                    "target group {arn} {}",
                    autoheal_aws::tags::opted_out_phrase()
                ),
            });
        }

        let guard = request.rule.policy.group_guard;
        let claims = self.owners.claims(arn, &failing(&health)).await?;
        let (deregister, healthy, held_back, left) = match plan(&health, guard, &claims) {
            TargetPlan::NothingFailing => {
                return Ok(HealOutcome::Skipped {
                    reason: SkipReason::NotNeeded,
                    summary: format!("no target of {arn} fails its health checks any more"),
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
                deregister,
                healthy,
                held_back,
                left,
            } => (deregister, healthy, held_back, left),
        };
        if deregister.is_empty() {
            return Ok(HealOutcome::Skipped {
                reason: strongest_reason(&left),
                summary: format!(
                    "no failing target of {arn} is autoheal's to deregister: {}",
                    describe_left(&left)
                ),
            });
        }

        self.elb
            .deregister_targets()
            .target_group_arn(arn)
            .set_targets(Some(deregister.clone()))
            .send()
            .await
            .map_err(|e| api_error("DeregisterTargets", e))?;

        let deregistered = labels(&deregister);
        let mut summary = format!(
            "deregistered {} unhealthy target(s) of {arn} ({deregistered}); {healthy} healthy target(s) keep serving",
            deregister.len()
        );
        if held_back > 0 {
            summary.push_str(&format!(
                "; {held_back} more failing target(s) wait for the next attempt (at most {} % of the group per run)",
                guard.max_healing_percent
            ));
        }
        if !left.is_empty() {
            summary.push_str(&format!("; left to others: {}", describe_left(&left)));
        }
        let mut details = BTreeMap::from([
            ("target_group_arn".to_owned(), arn.to_owned()),
            ("deregistered_targets".to_owned(), deregistered),
            ("healthy_targets_left".to_owned(), healthy.to_string()),
        ]);
        if held_back > 0 {
            details.insert("held_back_targets".to_owned(), held_back.to_string());
        }
        if !left.is_empty() {
            details.insert("left_to_others".to_owned(), describe_left(&left));
        }
        Ok(HealOutcome::healed(summary, details))
    }
}

fn gone(arn: &str) -> String {
    format!("target group {arn} does not exist: nothing left to deregister")
}
