//! Where a service's deployment stands, read from `DescribeServices`: rolled out, rolling
//! out, being rolled back by the deployment circuit breaker, or failed with nothing rolling it
//! back. ECS's own deployment is its healing: autoheal waits for it instead of forcing
//! another over it, and puts a desired count back only once a deployment has really settled.

use aws_sdk_ecs::types::{DeploymentRolloutState, Service, StabilityStatus};

/// How a service's deployments stand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rollout {
    /// One deployment, done (`COMPLETED`, or no rollout state), every desired task running.
    Steady,
    /// One deployment, done, with fewer tasks running than desired: what the restart heals.
    ShortOfTasks { running: i32, desired: i32 },
    /// Tasks are being replaced: a deployment `IN_PROGRESS`, or more than one deployment
    /// (or, for a service another controller deploys, more than one task set, or one still
    /// stabilising).
    RollingOut {
        deployment: String,
        running: i32,
        desired: i32,
    },
    /// The deployment circuit breaker marked a deployment `FAILED` and is rolling back to
    /// another.
    RollingBack { failed: String, to: String },
    /// The service's only deployment `FAILED` and nothing rolls it back.
    Failed { deployment: String, reason: String },
}

impl Rollout {
    /// Reads the service's deployments.
    pub fn of(service: &Service) -> Self {
        let running = service.running_count();
        let desired = service.desired_count();
        let deployments = service.deployments();
        let id = |id: Option<&str>| id.unwrap_or("unknown").to_owned();
        let failed =
            |state: Option<&DeploymentRolloutState>| state == Some(&DeploymentRolloutState::Failed);
        if let Some(broken) = deployments.iter().find(|d| failed(d.rollout_state())) {
            return match deployments.iter().find(|d| !failed(d.rollout_state())) {
                Some(to) => Rollout::RollingBack {
                    failed: id(broken.id()),
                    to: id(to.id()),
                },
                None => Rollout::Failed {
                    deployment: id(broken.id()),
                    reason: broken
                        .rollout_state_reason()
                        .unwrap_or("no reason given")
                        .to_owned(),
                },
            };
        }
        let primary = deployments
            .iter()
            .find(|d| d.status() == Some("PRIMARY"))
            .or(deployments.first());
        if let Some(primary) = primary {
            let in_progress = primary.rollout_state() == Some(&DeploymentRolloutState::InProgress);
            if deployments.len() > 1 || in_progress {
                return Rollout::RollingOut {
                    deployment: id(primary.id()),
                    running,
                    desired,
                };
            }
        } else {
            // CodeDeploy or an external controller deploys through task sets.
            let sets = service.task_sets();
            let stabilising = sets
                .iter()
                .find(|set| set.stability_status() == Some(&StabilityStatus::Stabilizing));
            if sets.len() > 1 || stabilising.is_some() {
                let set = stabilising
                    .or_else(|| sets.iter().find(|set| set.status() == Some("PRIMARY")))
                    .or(sets.first());
                return Rollout::RollingOut {
                    deployment: id(set.and_then(|set| set.id())),
                    running,
                    desired,
                };
            }
        }
        if running < desired {
            Rollout::ShortOfTasks { running, desired }
        } else {
            Rollout::Steady
        }
    }

    /// ECS is replacing the service's tasks by itself (a rollout, or a rollback).
    pub fn under_way(&self) -> bool {
        matches!(
            self,
            Rollout::RollingOut { .. } | Rollout::RollingBack { .. }
        )
    }

    /// What is going on, as a clause: "deployment X is rolling out (1 of 3 tasks running)".
    pub fn describe(&self) -> String {
        match self {
            Rollout::Steady => "its deployment is steady".to_owned(),
            Rollout::ShortOfTasks { running, desired } => {
                format!("{running} of {desired} tasks are running")
            }
            Rollout::RollingOut {
                deployment,
                running,
                desired,
            } => format!(
                "deployment {deployment} is rolling out ({running} of {desired} tasks running)"
            ),
            Rollout::RollingBack { failed, to } => format!(
                "deployment {failed} failed and the deployment circuit breaker is rolling back to {to}"
            ),
            Rollout::Failed { deployment, reason } => {
                format!("deployment {deployment} failed ({reason}) and nothing rolls it back")
            }
        }
    }
}

/// Whether the service's deployment has settled, so that a desired count raised for a
/// restart can go back: one deployment left, done, and every desired task running. A failed
/// deployment has not settled: the circuit breaker's rollback replaces the tasks again, and
/// lowering the count then would take away the capacity the raise was for. `Err` names what
/// it still waits for.
pub fn steady(service: &Service) -> Result<(), String> {
    match Rollout::of(service) {
        Rollout::Steady => Ok(()),
        other => Err(other.describe()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ecs::types::{Deployment, TaskSet};

    fn deployment(id: &str, status: &str, state: DeploymentRolloutState) -> Deployment {
        Deployment::builder()
            .id(id)
            .status(status)
            .rollout_state(state)
            .rollout_state_reason("ECS deployment circuit breaker: tasks failed to start.")
            .build()
    }

    fn service(deployments: Vec<Deployment>, running: i32, desired: i32) -> Service {
        Service::builder()
            .set_deployments(Some(deployments))
            .running_count(running)
            .desired_count(desired)
            .build()
    }

    #[test]
    fn one_completed_deployment_with_every_task_running_is_steady() {
        let done = deployment("d1", "PRIMARY", DeploymentRolloutState::Completed);
        assert_eq!(
            Rollout::of(&service(vec![done.clone()], 5, 5)),
            Rollout::Steady
        );
        assert!(steady(&service(vec![done.clone()], 5, 5)).is_ok());
        assert_eq!(
            Rollout::of(&service(vec![done], 4, 5)),
            Rollout::ShortOfTasks {
                running: 4,
                desired: 5
            }
        );
    }

    #[test]
    fn a_deployment_in_progress_or_two_deployments_are_rolling_out() {
        let new = deployment("d2", "PRIMARY", DeploymentRolloutState::InProgress);
        let old = deployment("d1", "ACTIVE", DeploymentRolloutState::Completed);
        let rolling = Rollout::of(&service(vec![new.clone(), old.clone()], 5, 5));
        assert_eq!(
            rolling,
            Rollout::RollingOut {
                deployment: "d2".to_owned(),
                running: 5,
                desired: 5
            }
        );
        assert!(rolling.under_way());
        assert!(Rollout::of(&service(vec![new], 5, 5)).under_way());
        let done = deployment("d2", "PRIMARY", DeploymentRolloutState::Completed);
        assert!(Rollout::of(&service(vec![done, old], 5, 5)).under_way());
    }

    #[test]
    fn a_failed_deployment_is_never_settled() {
        let failed = deployment("d2", "ACTIVE", DeploymentRolloutState::Failed);
        let back = deployment("d1", "PRIMARY", DeploymentRolloutState::InProgress);
        let rolling_back = Rollout::of(&service(vec![back, failed.clone()], 3, 5));
        assert_eq!(
            rolling_back,
            Rollout::RollingBack {
                failed: "d2".to_owned(),
                to: "d1".to_owned()
            }
        );
        assert!(rolling_back.under_way());
        assert!(
            steady(&service(vec![failed.clone()], 5, 5)).is_err(),
            "failed, nothing rolls it back"
        );
        let Rollout::Failed {
            deployment: id,
            reason,
        } = Rollout::of(&service(vec![failed], 5, 5))
        else {
            panic!("failed");
        };
        assert_eq!(id, "d2");
        assert!(reason.contains("circuit breaker"), "{reason}");
        // The rollback done but the failed deployment not yet drained: still rolling back.
        let done = deployment("d1", "PRIMARY", DeploymentRolloutState::Completed);
        let failed = deployment("d2", "ACTIVE", DeploymentRolloutState::Failed);
        assert!(steady(&service(vec![done, failed], 5, 5)).is_err());
    }

    #[test]
    fn task_sets_of_another_controller_being_shifted_are_rolling_out() {
        let set = |id: &str, status: &str, stability: StabilityStatus| {
            TaskSet::builder()
                .id(id)
                .status(status)
                .stability_status(stability)
                .build()
        };
        let blue = set("ts-1", "PRIMARY", StabilityStatus::SteadyState);
        let green = set("ts-2", "ACTIVE", StabilityStatus::Stabilizing);
        let shifting = Service::builder()
            .task_sets(blue.clone())
            .task_sets(green)
            .running_count(4)
            .desired_count(4)
            .build();
        assert!(matches!(
            Rollout::of(&shifting),
            Rollout::RollingOut { deployment, .. } if deployment == "ts-2"
        ));
        let settled = Service::builder()
            .task_sets(blue)
            .running_count(4)
            .desired_count(4)
            .build();
        assert_eq!(Rollout::of(&settled), Rollout::Steady);
    }
}
