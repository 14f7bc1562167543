//! `restart-ecs-service`: force a new deployment of an ECS service and stop its unhealthy
//! tasks.
//!
//! The resource id is `<cluster>/<service>`. The service is read first (with its tags): a
//! service that is gone or being deleted needs nothing, one that is not `ACTIVE`, is scaled
//! to zero or whose deployments another controller owns (CodeDeploy, external) is left
//! alone. A forced deployment replaces every task with the same task definition, keeping
//! the service's desired count, deployment configuration and circuit breaker in charge.
//! Tasks of the service whose health check reports `UNHEALTHY` are stopped with a reason
//! naming autoheal and the incident; the scheduler replaces them. The desired count is
//! never changed.
//!
//! The rule's group guard bounds the restart: while more than `max_unhealthy_percent` of the
//! service's tasks are unhealthy (a shared fault: a dependency down, a bad image), nothing is
//! done, not even the deployment; otherwise at most `max_healing_percent` of its tasks (at
//! least one) are stopped per run, the rest at the next attempt.

use std::collections::BTreeMap;

use aws_sdk_ecs::Client as EcsClient;
use aws_sdk_ecs::types::{
    DeploymentControllerType, DesiredStatus, HealthStatus, Service, ServiceField, Task,
};

use autoheal_aws::tags::{OPT_OUT_TAG, pairs_opt_out};
use autoheal_core::{Allowance, HealError, HealOutcome, HealRequest, SkipReason};

use autoheal_aws::errors::api_error;

/// DescribeTasks takes at most this many tasks per call.
const DESCRIBE_TASKS_BATCH: usize = 100;

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

/// The tasks among `tasks` that belong to `service` and report `UNHEALTHY`.
pub fn unhealthy_tasks<'a>(service: &str, tasks: &'a [Task]) -> Vec<&'a Task> {
    let group = format!("service:{service}");
    tasks
        .iter()
        .filter(|task| task.group() == Some(group.as_str()))
        .filter(|task| task.health_status() == Some(&HealthStatus::Unhealthy))
        .filter(|task| task.desired_status() != Some("STOPPED"))
        .collect()
}

/// The reason StopTask records on a task autoheal stops (ECS keeps up to 255 characters).
pub fn stop_reason(rule: &str, incident_id: &str) -> String {
    let reason = format!("autoheal ({rule}, incident {incident_id}): task health check UNHEALTHY");
    reason.chars().take(255).collect()
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

    pub async fn restart(
        &self,
        request: HealRequest<'_>,
        force_new_deployment: bool,
        stop_unhealthy_tasks: bool,
    ) -> Result<HealOutcome, HealError> {
        let (cluster, name) = parse_service_id(request.resource_id)?;
        let Some(service) = self.describe(cluster, name).await? else {
            return Ok(HealOutcome::Skipped {
                reason: SkipReason::NotNeeded,
                summary: format!("service {name} no longer exists in cluster {cluster}"),
            });
        };
        if let Some(skip) = should_skip(&service, cluster, name, force_new_deployment) {
            return Ok(skip);
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
        if force_new_deployment {
            let deployment = self.force_new_deployment(cluster, name).await?;
            match deployment {
                Some(id) => {
                    done.push(format!("forced a new deployment ({id})"));
                    details.insert("deployment_id".to_owned(), id);
                }
                None => done.push("forced a new deployment".to_owned()),
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
                    "service {name} in cluster {cluster} has no unhealthy task to stop, and the rule forces no deployment"
                ),
            });
        }
        Ok(HealOutcome::Healed {
            summary: format!(
                "{} of service {name} in cluster {cluster}; its desired count stays {}",
                done.join(" and "),
                service.desired_count()
            ),
            details,
            reverts: Vec::new(),
        })
    }

    /// The service, or `None` when ECS reports it missing.
    async fn describe(&self, cluster: &str, name: &str) -> Result<Option<Service>, HealError> {
        let output = self
            .ecs
            .describe_services()
            .cluster(cluster)
            .services(name)
            .include(ServiceField::Tags)
            .send()
            .await
            .map_err(|e| api_error("DescribeServices", e))?;
        if let Some(service) = output
            .services()
            .iter()
            .find(|service| service.service_name() == Some(name))
        {
            return Ok(Some(service.clone()));
        }
        match output.failures().first() {
            Some(failure) if failure.reason() == Some("MISSING") => Ok(None),
            Some(failure) => Err(HealError::new(format!(
                "DescribeServices: {}: {}",
                failure.reason().unwrap_or("failure"),
                failure
                    .detail()
                    .or(failure.arn())
                    .map_or_else(|| format!("{cluster}/{name}"), str::to_owned)
            ))),
            None => Ok(None),
        }
    }

    /// Starts a new deployment; returns the id of the service's primary deployment.
    async fn force_new_deployment(
        &self,
        cluster: &str,
        name: &str,
    ) -> Result<Option<String>, HealError> {
        let output = self
            .ecs
            .update_service()
            .cluster(cluster)
            .service(name)
            .force_new_deployment(true)
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

    /// The service's running tasks.
    async fn running_tasks(&self, cluster: &str, name: &str) -> Result<Vec<Task>, HealError> {
        let mut arns = Vec::new();
        let mut pages = self
            .ecs
            .list_tasks()
            .cluster(cluster)
            .service_name(name)
            .desired_status(DesiredStatus::Running)
            .into_paginator()
            .items()
            .send();
        while let Some(arn) = pages.next().await {
            arns.push(arn.map_err(|e| api_error("ListTasks", e))?);
        }
        let mut tasks = Vec::new();
        for batch in arns.chunks(DESCRIBE_TASKS_BATCH) {
            let output = self
                .ecs
                .describe_tasks()
                .cluster(cluster)
                .set_tasks(Some(batch.to_vec()))
                .send()
                .await
                .map_err(|e| api_error("DescribeTasks", e))?;
            tasks.extend_from_slice(output.tasks());
        }
        Ok(tasks)
    }

    /// Stops `arns` with a reason naming autoheal and the incident; returns them.
    async fn stop_tasks(
        &self,
        request: HealRequest<'_>,
        cluster: &str,
        arns: &[String],
    ) -> Result<Vec<String>, HealError> {
        let reason = stop_reason(&request.rule.name, request.incident_id);
        let mut stopped = Vec::new();
        for arn in arns {
            self.ecs
                .stop_task()
                .cluster(cluster)
                .task(arn)
                .reason(&reason)
                .send()
                .await
                .map_err(|e| {
                    let mut message = api_error("StopTask", e).message;
                    if !stopped.is_empty() {
                        message.push_str(&format!("; already stopped: {}", stopped.join(", ")));
                    }
                    HealError::new(message)
                })?;
            stopped.push(arn.clone());
        }
        Ok(stopped)
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
    match status {
        "ACTIVE" => {}
        "DRAINING" | "INACTIVE" => {
            return skip(
                SkipReason::NotNeeded,
                format!("service {name} in cluster {cluster} is being deleted ({status})"),
            );
        }
        other => {
            return skip(
                SkipReason::Unsafe,
                format!("service {name} in cluster {cluster} is not ACTIVE: {other}"),
            );
        }
    }
    let tags = service
        .tags()
        .iter()
        .filter_map(|tag| Some((tag.key()?, tag.value()?)));
    if pairs_opt_out(tags) {
        return skip(
            SkipReason::OptedOut,
            format!("service {name} in cluster {cluster} is tagged {OPT_OUT_TAG}=true"),
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

    fn task(arn: &str, group: &str, health: HealthStatus) -> Task {
        Task::builder()
            .task_arn(arn)
            .group(group)
            .health_status(health)
            .desired_status("RUNNING")
            .build()
    }

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
    fn only_unhealthy_tasks_of_the_service_are_chosen() {
        let tasks = vec![
            task("t1", "service:orders-api", HealthStatus::Unhealthy),
            task("t2", "service:orders-api", HealthStatus::Healthy),
            task("t3", "service:orders-api", HealthStatus::from("UNKNOWN")),
            task("t4", "service:billing", HealthStatus::Unhealthy),
            task("t5", "family:orders-api", HealthStatus::Unhealthy),
            Task::builder()
                .task_arn("t6")
                .group("service:orders-api")
                .health_status(HealthStatus::Unhealthy)
                .desired_status("STOPPED")
                .build(),
        ];
        let chosen: Vec<_> = unhealthy_tasks("orders-api", &tasks)
            .into_iter()
            .filter_map(Task::task_arn)
            .collect();
        assert_eq!(chosen, ["t1"]);
    }

    #[test]
    fn the_stop_reason_names_autoheal_and_the_incident_and_fits() {
        let reason = stop_reason("ecs-service-healing", "inc-42");
        assert!(reason.starts_with("autoheal"));
        assert!(reason.contains("inc-42"));
        assert!(stop_reason("r", &"x".repeat(400)).chars().count() <= 255);
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
            reason(active().status("DRAINING").build()),
            Some(SkipReason::NotNeeded)
        );
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
                            .key(OPT_OUT_TAG)
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
