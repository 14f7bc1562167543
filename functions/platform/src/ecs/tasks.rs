//! A service's tasks: which report `UNHEALTHY`, and stopping them with a reason that names
//! autoheal and the incident (the scheduler replaces them).

use aws_sdk_ecs::types::{DesiredStatus, HealthStatus, Task};

use autoheal_aws::errors::api_error;
use autoheal_core::{HealError, HealRequest};

use super::ServiceRestarter;

/// DescribeTasks takes at most this many tasks per call.
const DESCRIBE_TASKS_BATCH: usize = 100;

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

impl ServiceRestarter {
    /// The service's running tasks (every page of ListTasks).
    pub(super) async fn running_tasks(
        &self,
        cluster: &str,
        name: &str,
    ) -> Result<Vec<Task>, HealError> {
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
    pub(super) async fn stop_tasks(
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
}
