//! What the live health of a target group's targets, and who owns them, say to do: pure.

use std::collections::HashMap;

use aws_sdk_elasticloadbalancingv2::types::{
    TargetDescription, TargetHealthDescription, TargetHealthStateEnum,
};

use autoheal_core::{Allowance, GroupGuard, SkipReason};

/// Why a failing target is not autoheal's to deregister.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Its owner replaces it when the load balancer finds it unhealthy (an Auto Scaling group
    /// with ELB health checks on this target group, an ECS service): deregistered, it would
    /// leave the health checks its owner acts on, and the capacity would be lost for good.
    ReplacedBy(String),
    /// Its owner would replace it, but a person suspended that.
    HeldBy(String),
    /// autoheal's EC2 healing is stopping and starting the instance.
    StoppingAndStarting,
    /// The instance is not running (pending, stopping, stopped): mid stop or start, it
    /// would lose its place in the group when it runs again.
    NotRunning(String),
    /// A member of an Auto Scaling group whose health checks do not include this target
    /// group: out of the load balancer it would stay in service, never replaced.
    UncheckedMember(String),
    /// The instance is tagged `autoheal:disabled=true`: a person keeps autoheal off it (its
    /// opt-out is its own, not only its target group's).
    OptedOut,
}

impl Claim {
    /// The skip reason of a run that leaves the target for this claim.
    pub fn reason(&self) -> SkipReason {
        match self {
            Claim::ReplacedBy(_) | Claim::NotRunning(_) => SkipReason::NotNeeded,
            Claim::HeldBy(_) => SkipReason::OperatorHold,
            Claim::StoppingAndStarting => SkipReason::ResourceBusy,
            Claim::UncheckedMember(_) => SkipReason::Unsafe,
            Claim::OptedOut => SkipReason::OptedOut,
        }
    }

    /// Why the target stays, in words.
    pub fn describe(&self) -> String {
        match self {
            Claim::ReplacedBy(owner) => format!("{owner} replaces it"),
            Claim::HeldBy(why) => why.clone(),
            Claim::StoppingAndStarting => {
                "autoheal's EC2 healing is stopping and starting it (autoheal:stop-start)"
                    .to_owned()
            }
            Claim::NotRunning(state) => format!("the instance is {state}, mid stop or start"),
            Claim::UncheckedMember(why) => why.clone(),
            Claim::OptedOut => "the instance is tagged autoheal:disabled=true".to_owned(),
        }
    }
}

/// The claims on failing targets, by target id.
pub type Claims = HashMap<String, Claim>;

/// What the live target health says to do.
#[derive(Debug, Clone, PartialEq)]
pub enum TargetPlan {
    /// No registered target is failing.
    NothingFailing,
    /// Deregistering the failing targets would leave no healthy one.
    NoHealthyLeft { failing: Vec<TargetDescription> },
    /// More of the group is failing than the group guard allows to heal target by target.
    Storm { failing: usize, registered: usize },
    /// Deregister `deregister` (possibly none); `healthy` targets stay, `held_back` failing
    /// ones wait for the next run (the group guard's share per run), and `left` are someone
    /// else's to heal.
    Deregister {
        deregister: Vec<TargetDescription>,
        healthy: usize,
        held_back: usize,
        left: Vec<(TargetDescription, Claim)>,
    },
}

/// Whether a target fails its health checks. A stopped instance that is still registered
/// (`unused`, `Target.InvalidState`) does not: it gets no traffic, the load balancer does not
/// count it unhealthy, and deregistered it would lose its place when it starts again.
pub fn is_failing(health: &TargetHealthDescription) -> bool {
    health.target_health().and_then(|h| h.state()) == Some(&TargetHealthStateEnum::Unhealthy)
}

fn is_healthy(health: &TargetHealthDescription) -> bool {
    health.target_health().and_then(|h| h.state()) == Some(&TargetHealthStateEnum::Healthy)
}

/// The failing targets, each with an id.
pub fn failing(health: &[TargetHealthDescription]) -> Vec<TargetDescription> {
    health
        .iter()
        .filter(|h| is_failing(h))
        .filter_map(|h| h.target().cloned())
        .filter(|t| t.id().is_some_and(|id| !id.is_empty()))
        .collect()
}

/// Decides from the live health of a group's targets, the claims on its failing ones and
/// the rule's group guard. Targets that are registering, draining or unused count neither as
/// failing nor as healthy capacity.
pub fn plan(health: &[TargetHealthDescription], guard: GroupGuard, claims: &Claims) -> TargetPlan {
    let failing = failing(health);
    let healthy = health.iter().filter(|h| is_healthy(h)).count();
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    if failing.is_empty() {
        return TargetPlan::NothingFailing;
    }
    if healthy == 0 {
        return TargetPlan::NoHealthyLeft { failing };
    }
    let allowed = match guard.allowance(count(health.len()), count(failing.len())) {
        Allowance::Storm => {
            return TargetPlan::Storm {
                failing: failing.len(),
                registered: health.len(),
            };
        }
        Allowance::Heal(allowed) => usize::try_from(allowed).unwrap_or(usize::MAX),
    };
    let (mut deregister, mut left) = (Vec::new(), Vec::new());
    for target in failing {
        match claims.get(target.id().unwrap_or_default()) {
            Some(claim) => left.push((target, claim.clone())),
            None => deregister.push(target),
        }
    }
    let held_back = deregister.len().saturating_sub(allowed);
    deregister.truncate(allowed);
    TargetPlan::Deregister {
        deregister,
        healthy,
        held_back,
        left,
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

pub fn labels(targets: &[TargetDescription]) -> String {
    targets
        .iter()
        .map(target_label)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The targets left to others, with why: `i-1:80 (Auto Scaling group web replaces it)`.
pub fn describe_left(left: &[(TargetDescription, Claim)]) -> String {
    left.iter()
        .map(|(target, claim)| format!("{} ({})", target_label(target), claim.describe()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The reason of a run that deregisters nothing because every failing target is someone
/// else's: a person's call first (unsafe, then their hold), then another autoheal run, then
/// the owners' own healing.
pub fn strongest_reason(left: &[(TargetDescription, Claim)]) -> SkipReason {
    [
        SkipReason::Unsafe,
        SkipReason::OperatorHold,
        SkipReason::OptedOut,
        SkipReason::ResourceBusy,
    ]
    .into_iter()
    .find(|wanted| left.iter().any(|(_, claim)| claim.reason() == *wanted))
    .unwrap_or(SkipReason::NotNeeded)
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

#[cfg(test)]
mod tests {
    use aws_sdk_elasticloadbalancingv2::types::{TargetHealth, TargetHealthReasonEnum};

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

    const LENIENT: GroupGuard = GroupGuard {
        max_healing_percent: 100,
        max_unhealthy_percent: 100,
    };

    fn deregistered(plan: TargetPlan) -> (String, usize, usize, Vec<(String, Claim)>) {
        let TargetPlan::Deregister {
            deregister,
            healthy,
            held_back,
            left,
        } = plan
        else {
            panic!("expected a deregistration: {plan:?}");
        };
        let left = left
            .into_iter()
            .map(|(target, claim)| (target_label(&target), claim))
            .collect();
        (labels(&deregister), healthy, held_back, left)
    }

    #[test]
    fn unhealthy_targets_leave_while_a_healthy_one_stays_and_stopped_ones_stay_registered() {
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
        assert_eq!(
            deregistered(plan(&health, LENIENT, &Claims::new())),
            ("i-2:80".to_owned(), 1, 0, Vec::new())
        );
    }

    #[test]
    fn targets_someone_else_heals_are_left_to_them() {
        let health = [
            target("i-1", TargetHealthStateEnum::Healthy, None),
            target("i-2", TargetHealthStateEnum::Unhealthy, None),
            target("i-3", TargetHealthStateEnum::Unhealthy, None),
            target("i-4", TargetHealthStateEnum::Unhealthy, None),
        ];
        let claims = Claims::from([
            (
                "i-2".to_owned(),
                Claim::ReplacedBy("Auto Scaling group web".to_owned()),
            ),
            ("i-3".to_owned(), Claim::StoppingAndStarting),
        ]);
        let (deregister, _, _, left) = deregistered(plan(&health, LENIENT, &claims));
        assert_eq!(deregister, "i-4:80");
        assert_eq!(
            left,
            [
                (
                    "i-2:80".to_owned(),
                    Claim::ReplacedBy("Auto Scaling group web".to_owned())
                ),
                ("i-3:80".to_owned(), Claim::StoppingAndStarting),
            ]
        );
        let left: Vec<_> = claims
            .into_values()
            .map(|claim| (TargetDescription::builder().id("x").build(), claim))
            .collect();
        assert_eq!(strongest_reason(&left), SkipReason::ResourceBusy);
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
            plan(&health, GroupGuard::default(), &Claims::new()),
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
        let none = Claims::new();
        assert_eq!(
            plan(&health, GroupGuard::default(), &none),
            TargetPlan::NothingFailing
        );
        assert_eq!(
            plan(&[], GroupGuard::default(), &none),
            TargetPlan::NothingFailing
        );
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
            plan(&group_of_ten(6), GroupGuard::default(), &Claims::new()),
            TargetPlan::Storm {
                failing: 6,
                registered: 10
            }
        );
    }

    #[test]
    fn at_most_a_fifth_of_the_group_leaves_per_run() {
        let none = Claims::new();
        let (deregister, _, held_back, _) =
            deregistered(plan(&group_of_ten(3), GroupGuard::default(), &none));
        assert_eq!((deregister.as_str(), held_back), ("i-0:80, i-1:80", 1));
        let (deregister, _, held_back, _) =
            deregistered(plan(&group_of_ten(2), GroupGuard::default(), &none));
        assert_eq!((deregister.as_str(), held_back), ("i-0:80, i-1:80", 0));
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
