//! `restart-ecs-service`: force a new deployment of an ECS service and stop its unhealthy
//! tasks.
//!
//! The resource id is `<cluster>/<service>`. The service is read first (with its tags): a
//! service that is gone or being deleted needs nothing, one that is not `ACTIVE`, is scaled
//! to zero or whose deployments another controller owns (CodeDeploy, external) is left
//! alone. A forced deployment replaces every task with the same task definition, keeping
//! the service's desired count, deployment configuration and circuit breaker in charge.
//! Tasks of the service whose health check reports `UNHEALTHY` are stopped with a reason
//! naming autoheal and the incident; the scheduler replaces them.
//!
//! With `desired_count_adjustment`, the restart also adds that many tasks to the desired
//! count (never past `max_desired_count` nor the service quota), so that capacity does not
//! dip while tasks are replaced. The change is recorded on the service (tag
//! `autoheal:desired-count`: the attempt's token, the count before and after), and the action
//! continues in follow-ups until the new deployment is steady (one deployment left, as many
//! tasks running as desired); then the desired count goes back, unless something else (a
//! scaling policy, a person) changed it in the meantime.
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

/// The service tag recording a desired-count adjustment: `<token> <before> <after>`.
pub const DESIRED_COUNT_TAG: &str = "autoheal:desired-count";

/// How long a new deployment gets before autoheal looks again whether it is steady.
pub const SETTLE_INTERVAL_SECONDS: u64 = 60;

/// What a restart does, from the rule.
#[derive(Debug, Clone, Copy)]
pub struct RestartSettings {
    pub force_new_deployment: bool,
    pub stop_unhealthy_tasks: bool,
    pub desired_count_adjustment: u32,
    pub max_desired_count: Option<u32>,
}

/// A desired-count adjustment recorded on the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Adjustment<'a> {
    pub token: &'a str,
    pub before: i32,
    pub after: i32,
}

impl<'a> Adjustment<'a> {
    pub fn parse(value: &'a str) -> Option<Self> {
        let mut parts = value.split_whitespace();
        let adjustment = Adjustment {
            token: parts.next()?,
            before: parts.next()?.parse().ok()?,
            after: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(adjustment)
    }

    pub fn render(&self) -> String {
        format!("{} {} {}", self.token, self.before, self.after)
    }
}

/// The desired count during a restart: `adjustment` more, within the limits; `None` when
/// nothing is to be added.
pub fn adjusted_count(
    desired: i32,
    adjustment: u32,
    max_desired_count: Option<u32>,
) -> Option<i32> {
    let limit = max_desired_count
        .unwrap_or(autoheal_core::ECS_MAX_TASKS_PER_SERVICE)
        .min(autoheal_core::ECS_MAX_TASKS_PER_SERVICE);
    let limit = i32::try_from(limit).unwrap_or(i32::MAX);
    let target = desired
        .saturating_add(i32::try_from(adjustment).unwrap_or(i32::MAX))
        .min(limit);
    (target > desired).then_some(target)
}

/// Whether the service's new deployment is steady: one deployment left and as many tasks
/// running as desired. `Err` names what it still waits for.
pub fn steady(service: &Service) -> Result<(), String> {
    let deployments = service.deployments();
    // A failed rollout is settled too: the deployment circuit breaker rolled it back.
    if deployments
        .iter()
        .any(|d| d.rollout_state() == Some(&aws_sdk_ecs::types::DeploymentRolloutState::Failed))
    {
        return Ok(());
    }
    if deployments.len() > 1 {
        return Err(format!(
            "{} deployments are still running",
            deployments.len()
        ));
    }
    if service.running_count() < service.desired_count() {
        return Err(format!(
            "{} of {} tasks are running",
            service.running_count(),
            service.desired_count()
        ));
    }
    Ok(())
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
        settings: RestartSettings,
    ) -> Result<HealOutcome, HealError> {
        let RestartSettings {
            force_new_deployment,
            stop_unhealthy_tasks,
            ..
        } = settings;
        let (cluster, name) = parse_service_id(request.resource_id)?;
        let Some(service) = self.describe(cluster, name).await? else {
            return Ok(HealOutcome::Skipped {
                reason: SkipReason::NotNeeded,
                summary: format!("service {name} no longer exists in cluster {cluster}"),
            });
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
            match (force_new_deployment, deployment) {
                (false, _) => {}
                (true, Some(id)) => {
                    done.push(format!("forced a new deployment ({id})"));
                    details.insert("deployment_id".to_owned(), id);
                }
                (true, None) => done.push("forced a new deployment".to_owned()),
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

    /// Puts the desired count back once the new deployment is steady, if it is still what
    /// autoheal set; until then the action continues.
    async fn settle(
        &self,
        cluster: &str,
        name: &str,
        service: &Service,
        adjustment: Adjustment<'_>,
    ) -> Result<HealOutcome, HealError> {
        let Adjustment { before, after, .. } = adjustment;
        let desired = service.desired_count();
        let details = BTreeMap::from([
            ("desired_count_before".to_owned(), before.to_string()),
            ("desired_count_after".to_owned(), after.to_string()),
        ]);
        if desired != after {
            return Ok(HealOutcome::healed(
                format!(
                    "service {name} in cluster {cluster} has desired count {desired}, not the {after} autoheal set: its own scaling owns it now"
                ),
                details,
            ));
        }
        if let Err(waiting) = steady(service) {
            return Ok(HealOutcome::Continuing {
                summary: format!(
                    "the new deployment of service {name} in cluster {cluster} is not steady yet ({waiting}); the desired count stays {after}"
                ),
                details,
                resume_after_seconds: SETTLE_INTERVAL_SECONDS,
            });
        }
        self.update(cluster, name, false, Some(before)).await?;
        Ok(HealOutcome::healed(
            format!(
                "the new deployment of service {name} in cluster {cluster} is steady: desired count back from {after} to {before}"
            ),
            details,
        ))
    }

    /// Records the adjustment on the service before making it, so that a retried step finds
    /// it and never adds twice.
    async fn record_adjustment(
        &self,
        service: &Service,
        adjustment: &Adjustment<'_>,
    ) -> Result<(), HealError> {
        let arn = service
            .service_arn()
            .ok_or_else(|| HealError::new("DescribeServices returned no service ARN"))?;
        self.ecs
            .tag_resource()
            .resource_arn(arn)
            .tags(
                aws_sdk_ecs::types::Tag::builder()
                    .key(DESIRED_COUNT_TAG)
                    .value(adjustment.render())
                    .build(),
            )
            .send()
            .await
            .map_err(|e| api_error("TagResource", e))?;
        Ok(())
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

/// The desired-count adjustment recorded on the service, if any.
fn recorded_adjustment(service: &Service) -> Option<Adjustment<'_>> {
    service
        .tags()
        .iter()
        .find(|tag| tag.key() == Some(DESIRED_COUNT_TAG))
        .and_then(|tag| tag.value())
        .and_then(Adjustment::parse)
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
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn the_adjustment_stays_within_the_limits() {
        assert_eq!(adjusted_count(4, 2, None), Some(6));
        assert_eq!(adjusted_count(4, 2, Some(5)), Some(5));
        assert_eq!(adjusted_count(5, 2, Some(5)), None, "already at the limit");
        assert_eq!(adjusted_count(4, 0, None), None);
        assert_eq!(
            adjusted_count(4_999, 5, None),
            Some(5_000),
            "the service quota"
        );
        assert_eq!(adjusted_count(4, 2, Some(9_999)), Some(6));
    }

    #[test]
    fn an_adjustment_round_trips_on_its_tag() {
        let adjustment = Adjustment {
            token: "abc",
            before: 4,
            after: 5,
        };
        assert_eq!(Adjustment::parse(&adjustment.render()), Some(adjustment));
        for bad in ["", "abc 4", "abc four 5", "abc 4 5 6"] {
            assert_eq!(Adjustment::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_deployment_is_steady_with_one_deployment_and_every_task_running() {
        use aws_sdk_ecs::types::{Deployment, DeploymentRolloutState};
        let deployment = |state| {
            Deployment::builder()
                .status("PRIMARY")
                .rollout_state(state)
                .build()
        };
        let service = |deployments: Vec<Deployment>, running, desired| {
            Service::builder()
                .set_deployments(Some(deployments))
                .running_count(running)
                .desired_count(desired)
                .build()
        };
        let primary = deployment(DeploymentRolloutState::Completed);
        assert!(steady(&service(vec![primary.clone()], 5, 5)).is_ok());
        assert!(steady(&service(vec![primary.clone()], 4, 5)).is_err());
        assert!(steady(&service(vec![primary.clone(), primary.clone()], 5, 5)).is_err());
        let failed = deployment(DeploymentRolloutState::Failed);
        assert!(
            steady(&service(vec![failed, primary], 3, 5)).is_ok(),
            "rolled back"
        );
    }

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
