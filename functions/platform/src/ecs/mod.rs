//! `restart-ecs-service`: force a new deployment of an ECS service and stop its unhealthy
//! tasks.
//!
//! The resource id is `<cluster>/<service>`. Before an attempt, the service is looked at
//! ([`ServiceRestarter::assess`]): a service (or cluster) that does not exist, or that is
//! being deleted, is `gone`; while ECS is already replacing its tasks (a deployment rolling
//! out, or one the deployment circuit breaker is rolling back) autoheal waits (`aws-healing`)
//! instead of forcing a deployment over it.
//!
//! The action reads the service again (with its tags): one that is not `ACTIVE`, is scaled
//! to zero or whose deployments another controller owns (CodeDeploy, external) is left
//! alone, and so is one whose circuit breaker is still rolling a failed deployment back, or
//! whose last deployment failed with nothing rolling it back (a forced deployment of the
//! same task definition would fail the same way: a person decides). A rollout still under
//! way once the rule's `max_wait_seconds` have passed is stuck: the restart forces a new
//! deployment over it. A forced deployment replaces every task with the same task
//! definition, keeping the service's desired count, deployment configuration and circuit
//! breaker in charge. Tasks of the service whose health check reports `UNHEALTHY` are
//! stopped with a reason naming autoheal and the incident; the scheduler replaces them.
//!
//! With `desired_count_adjustment`, the restart also adds that many tasks to the desired
//! count (never past `max_desired_count` nor the service quota), so that capacity does not
//! dip while tasks are replaced. The change is recorded on the service (tag
//! `autoheal:desired-count`: the attempt's token, the count before and after), and the action
//! continues in follow-ups until the new deployment has settled (one deployment left, done,
//! as many tasks running as desired); then the desired count goes back, unless something else
//! (a scaling policy, a person) changed it in the meantime. A deployment that fails with
//! nothing rolling it back never settles: the count stays raised and the run fails, for a
//! person (see [`capacity`]).
//!
//! The rule's group guard bounds the restart: while more than `max_unhealthy_percent` of the
//! service's tasks are unhealthy (a shared fault: a dependency down, a bad image), nothing is
//! done, not even the deployment; otherwise at most `max_healing_percent` of its tasks (at
//! least one) are stopped per run, the rest at the next attempt.

pub mod capacity;
pub mod rollout;
pub mod tasks;

use std::collections::BTreeMap;

use aws_sdk_ecs::Client as EcsClient;
use aws_sdk_ecs::types::{DeploymentControllerType, Service, ServiceField};

use autoheal_aws::errors::api_error;
use autoheal_aws::tags::pairs_opt_out;
use autoheal_core::{Allowance, Assessment, HealError, HealOutcome, HealRequest, SkipReason};

pub use capacity::{Adjustment, DESIRED_COUNT_TAG, SETTLE_INTERVAL_SECONDS, adjusted_count};
pub use rollout::{Rollout, steady};
pub use tasks::{stop_reason, unhealthy_tasks};

use capacity::recorded_adjustment;

/// What a restart does, from the rule.
#[derive(Debug, Clone, Copy)]
pub struct RestartSettings {
    pub force_new_deployment: bool,
    pub stop_unhealthy_tasks: bool,
    pub desired_count_adjustment: u32,
    pub max_desired_count: Option<u32>,
}

/// The cluster and service named by a resource id `<cluster>/<service>`.
pub fn parse_service_id(resource_id: &str) -> Result<(&str, &str), HealError> {
    match resource_id.split_once('/') {
        Some((cluster, service))
            if !cluster.trim().is_empty()
                && !service.trim().is_empty()
                && !service.contains('/') =>
        {
            Ok((cluster, service))
        }
        _ => Err(HealError::new(format!(
            "resource id `{resource_id}` is not `<cluster>/<service>`: nothing was changed"
        ))),
    }
}

/// A service as ECS describes it, or why there is none to heal.
#[derive(Debug, Clone)]
enum Lookup {
    Found(Box<Service>),
    /// It does not exist, or is being deleted: the sentence says which.
    Gone(String),
}

/// Restarts ECS services.
#[derive(Debug, Clone)]
pub struct ServiceRestarter {
    ecs: EcsClient,
}

impl ServiceRestarter {
    pub fn new(ecs: EcsClient) -> Self {
        ServiceRestarter { ecs }
    }

    /// Before an attempt: whether the service is there, and whether ECS is already
    /// replacing its tasks (then autoheal waits for it).
    pub async fn assess(&self, request: HealRequest<'_>) -> Result<Assessment, HealError> {
        let (cluster, name) = parse_service_id(request.resource_id)?;
        let service = match self.lookup(cluster, name).await? {
            Lookup::Found(service) => service,
            Lookup::Gone(why) => return Ok(Assessment::gone(why)),
        };
        let rollout = Rollout::of(&service);
        if rollout.under_way() {
            return Ok(Assessment::aws_healing(
                format!(
                    "service {name} in cluster {cluster}: {}",
                    rollout.describe()
                ),
                SETTLE_INTERVAL_SECONDS,
            ));
        }
        Ok(Assessment::Proceed)
    }

    /// Whether the service no longer exists (or is being deleted).
    pub async fn is_gone(&self, resource_id: &str) -> Result<bool, HealError> {
        let (cluster, name) = parse_service_id(resource_id)?;
        Ok(matches!(self.lookup(cluster, name).await?, Lookup::Gone(_)))
    }

    pub async fn restart(
        &self,
        request: HealRequest<'_>,
        settings: RestartSettings,
    ) -> Result<HealOutcome, HealError> {
        let RestartSettings {
            force_new_deployment,
            stop_unhealthy_tasks,
            ..
        } = settings;
        let (cluster, name) = parse_service_id(request.resource_id)?;
        let service = match self.lookup(cluster, name).await? {
            Lookup::Found(service) => service,
            Lookup::Gone(why) => {
                return Ok(HealOutcome::Skipped {
                    reason: SkipReason::Gone,
                    summary: why,
                });
            }
        };
        // A later step of this attempt: the restart is done, the count waits to go back.
        if let Some(adjustment) = recorded_adjustment(&service)
            .filter(|adjustment| adjustment.token == request.idempotency_token)
        {
            return self.settle(cluster, name, &service, adjustment).await;
        }
        if let Some(skip) = should_skip(&service, cluster, name, force_new_deployment) {
            return Ok(skip);
        }
        let rollout = Rollout::of(&service);
        match &rollout {
            Rollout::RollingBack { .. } => {
                return Ok(HealOutcome::Skipped {
                    reason: SkipReason::Unsafe,
                    summary: format!(
                        "service {name} in cluster {cluster}: {}; a forced deployment would cut the rollback short: the circuit breaker owns the service until it is done",
                        rollout.describe()
                    ),
                });
            }
            Rollout::Failed { .. } => {
                return Ok(HealOutcome::Skipped {
                    reason: SkipReason::Unsafe,
                    summary: format!(
                        "service {name} in cluster {cluster}: {}; a forced deployment of the same task definition would fail the same way: a person decides",
                        rollout.describe()
                    ),
                });
            }
            Rollout::Steady | Rollout::ShortOfTasks { .. } | Rollout::RollingOut { .. } => {}
        }

        // The tasks are read before anything changes, so that a storm changes nothing.
        let guard = request.rule.policy.group_guard;
        let mut to_stop = Vec::new();
        let mut held_back = 0;
        if stop_unhealthy_tasks {
            let tasks = self.running_tasks(cluster, name).await?;
            let group = format!("service:{name}");
            let running = tasks
                .iter()
                .filter(|task| task.group() == Some(group.as_str()))
                .count();
            let size = u32::try_from(running)
                .unwrap_or(u32::MAX)
                .max(u32::try_from(service.desired_count()).unwrap_or(0));
            let unhealthy: Vec<String> = unhealthy_tasks(name, &tasks)
                .iter()
                .filter_map(|task| task.task_arn().map(str::to_owned))
                .collect();
            let count = u32::try_from(unhealthy.len()).unwrap_or(u32::MAX);
            match guard.allowance(size, count) {
                Allowance::Storm => {
                    return Ok(HealOutcome::Skipped {
                        reason: SkipReason::GroupStorm,
                        summary: guard.describe_storm(
                            &format!("service {name} in cluster {cluster}"),
                            size,
                            count,
                        ),
                    });
                }
                Allowance::Heal(allowed) => {
                    let allowed = usize::try_from(allowed).unwrap_or(usize::MAX);
                    held_back = unhealthy.len().saturating_sub(allowed);
                    to_stop = unhealthy.into_iter().take(allowed).collect();
                }
            }
        }

        let mut details = BTreeMap::new();
        let mut done = Vec::new();
        // An earlier attempt's tasks still added (its action ended before the deployment was
        // steady) are not the service's own count: adding to them would ratchet it up.
        let desired = match recorded_adjustment(&service) {
            Some(earlier)
                if settings.desired_count_adjustment > 0
                    && earlier.after == service.desired_count() =>
            {
                earlier.before
            }
            _ => service.desired_count(),
        };
        let adjusted = adjusted_count(
            desired,
            settings.desired_count_adjustment,
            settings.max_desired_count,
        );
        if let Some(after) = adjusted {
            let adjustment = Adjustment {
                token: request.idempotency_token,
                before: desired,
                after,
            };
            self.record_adjustment(&service, &adjustment).await?;
            details.insert("desired_count_before".to_owned(), desired.to_string());
            details.insert("desired_count_after".to_owned(), after.to_string());
        }
        if force_new_deployment || adjusted.is_some() {
            let deployment = self
                .update(cluster, name, force_new_deployment, adjusted)
                .await?;
            if let Some(after) = adjusted {
                done.push(format!(
                    "raised the desired count from {desired} to {after}"
                ));
            }
            // Past the rule's wait, a rollout still under way is stuck: say what was replaced.
            let over = match &rollout {
                Rollout::RollingOut { deployment, .. } if force_new_deployment => {
                    details.insert("stuck_deployment_id".to_owned(), deployment.clone());
                    format!(" over {deployment}, which had not finished rolling out")
                }
                _ => String::new(),
            };
            match (force_new_deployment, deployment) {
                (false, _) => {}
                (true, Some(id)) => {
                    done.push(format!("forced a new deployment ({id}){over}"));
                    details.insert("deployment_id".to_owned(), id);
                }
                (true, None) => done.push(format!("forced a new deployment{over}")),
            }
        }
        if !to_stop.is_empty() {
            let stopped =
                self.stop_tasks(request, cluster, &to_stop)
                    .await
                    .map_err(|mut error| {
                        if let Some(id) = details.get("deployment_id") {
                            error
                                .message
                                .push_str(&format!(" (deployment {id} was already forced)"));
                        }
                        error
                    })?;
            done.push(format!("stopped {} unhealthy task(s)", stopped.len()));
            details.insert("stopped_tasks".to_owned(), stopped.join(","));
            if held_back > 0 {
                done.push(format!(
                    "left {held_back} more for the next attempt (at most {} % of the service per run)",
                    guard.max_healing_percent
                ));
                details.insert("held_back_tasks".to_owned(), held_back.to_string());
            }
        }
        if done.is_empty() {
            return Ok(HealOutcome::Skipped {
                reason: SkipReason::NotNeeded,
                summary: format!(
                    "service {name} in cluster {cluster} has no unhealthy task and the rule forces no deployment"
                ),
            });
        }
        if let Some(after) = adjusted {
            return Ok(HealOutcome::Continuing {
                summary: format!(
                    "{} of service {name} in cluster {cluster}; the desired count goes back to {desired} from {after} when the new deployment is steady",
                    done.join(" and ")
                ),
                details,
                resume_after_seconds: SETTLE_INTERVAL_SECONDS,
            });
        }
        Ok(HealOutcome::Healed {
            summary: format!(
                "{} of service {name} in cluster {cluster}; its desired count stays {desired}",
                done.join(" and "),
            ),
            details,
            reverts: Vec::new(),
        })
    }

    /// The service, or why there is none: ECS reports it missing, its cluster does not
    /// exist, or it is being deleted (`DRAINING`) or was (`INACTIVE`).
    async fn lookup(&self, cluster: &str, name: &str) -> Result<Lookup, HealError> {
        let output = match self
            .ecs
            .describe_services()
            .cluster(cluster)
            .services(name)
            .include(ServiceField::Tags)
            .send()
            .await
        {
            Ok(output) => output,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_cluster_not_found_exception()) =>
            {
                return Ok(Lookup::Gone(format!(
                    "cluster {cluster} of service {name} does not exist"
                )));
            }
            Err(e) => return Err(api_error("DescribeServices", e)),
        };
        if let Some(service) = output
            .services()
            .iter()
            .find(|service| service.service_name() == Some(name))
        {
            return Ok(match service.status() {
                Some(status @ ("DRAINING" | "INACTIVE")) => Lookup::Gone(format!(
                    "service {name} in cluster {cluster} is deleted or being deleted ({status})"
                )),
                _ => Lookup::Found(Box::new(service.clone())),
            });
        }
        match output.failures().first() {
            Some(failure) if failure.reason() != Some("MISSING") => Err(HealError::new(format!(
                "DescribeServices: {}: {}",
                failure.reason().unwrap_or("failure"),
                failure
                    .detail()
                    .or(failure.arn())
                    .map_or_else(|| format!("{cluster}/{name}"), str::to_owned)
            ))),
            _ => Ok(Lookup::Gone(format!(
                "service {name} does not exist in cluster {cluster}"
            ))),
        }
    }

    /// Starts a new deployment and/or sets the desired count, in one call; returns the id of
    /// the service's primary deployment.
    async fn update(
        &self,
        cluster: &str,
        name: &str,
        force_new_deployment: bool,
        desired_count: Option<i32>,
    ) -> Result<Option<String>, HealError> {
        let output = self
            .ecs
            .update_service()
            .cluster(cluster)
            .service(name)
            .force_new_deployment(force_new_deployment)
            .set_desired_count(desired_count)
            .send()
            .await
            .map_err(|e| api_error("UpdateService", e))?;
        Ok(output.service().and_then(|service| {
            let deployments = service.deployments();
            deployments
                .iter()
                .find(|deployment| deployment.status() == Some("PRIMARY"))
                .or(deployments.first())
                .and_then(|deployment| deployment.id())
                .map(str::to_owned)
        }))
    }
}

/// Why the live service must not be restarted, if it must not.
fn should_skip(
    service: &Service,
    cluster: &str,
    name: &str,
    force_new_deployment: bool,
) -> Option<HealOutcome> {
    let status = service.status().unwrap_or("UNKNOWN");
    let skip = |reason, summary: String| Some(HealOutcome::Skipped { reason, summary });
    if status != "ACTIVE" {
        return skip(
            SkipReason::Unsafe,
            format!("service {name} in cluster {cluster} is not ACTIVE: {status}"),
        );
    }
    let tags = service
        .tags()
        .iter()
        .filter_map(|tag| Some((tag.key()?, tag.value()?)));
    if pairs_opt_out(tags) {
        return skip(
            SkipReason::OptedOut,
            format!(
                "service {name} in cluster {cluster} {}",
                autoheal_aws::tags::opted_out_phrase()
            ),
        );
    }
    if service.desired_count() == 0 {
        return skip(
            SkipReason::NotNeeded,
            format!("service {name} in cluster {cluster} is scaled to zero: no task should run"),
        );
    }
    let controller = service
        .deployment_controller()
        .map(|controller| controller.r#type().clone())
        .unwrap_or(DeploymentControllerType::Ecs);
    if force_new_deployment && controller != DeploymentControllerType::Ecs {
        return skip(
            SkipReason::Unsafe,
            format!(
                "service {name} in cluster {cluster} is deployed by {}: autoheal does not force its deployments",
                controller.as_str()
            ),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_ids_name_exactly_one_cluster_and_service() {
        assert_eq!(
            parse_service_id("prod/orders-api").ok(),
            Some(("prod", "orders-api"))
        );
        for bad in ["", "orders-api", "/orders-api", "prod/", "a/b/c", " / "] {
            assert!(parse_service_id(bad).is_err(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn live_state_decides_whether_to_act() {
        let active = || Service::builder().status("ACTIVE").desired_count(2);
        let reason = |service: Service| match should_skip(&service, "c", "s", true) {
            Some(HealOutcome::Skipped { reason, .. }) => Some(reason),
            _ => None,
        };
        assert_eq!(reason(active().build()), None);
        assert_eq!(
            reason(active().status("PENDING").build()),
            Some(SkipReason::Unsafe)
        );
        assert_eq!(
            reason(active().desired_count(0).build()),
            Some(SkipReason::NotNeeded)
        );
        assert_eq!(
            reason(
                active()
                    .tags(
                        aws_sdk_ecs::types::Tag::builder()
                            .key(autoheal_aws::tags::OPT_OUT_TAG)
                            .value("true")
                            .build()
                    )
                    .build()
            ),
            Some(SkipReason::OptedOut)
        );
        let code_deploy = aws_sdk_ecs::types::DeploymentController::builder()
            .r#type(DeploymentControllerType::CodeDeploy)
            .build()
            .ok();
        assert_eq!(
            reason(active().set_deployment_controller(code_deploy).build()),
            Some(SkipReason::Unsafe)
        );
    }
}
