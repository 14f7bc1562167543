//! Fixtures of the platform layer in the emulator: ECS services, Lambda functions with
//! published versions and an alias, RDS instances, and their alarm events.

use aws_config::SdkConfig;
use serde_json::Value;

use crate::sample_event;

/// The sample event `<rule>.<state>.json` (`state` is `alarm` or `ok`) with event id `id`
/// and its metric's dimensions set to `dimensions`.
pub fn platform_event(rule: &str, state: &str, id: &str, dimensions: &[(&str, &str)]) -> Value {
    let mut event = sample_event(&format!("{rule}.{state}.json"));
    event["id"] = Value::from(id);
    let metric = &mut event["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"];
    for (name, value) in dimensions {
        assert!(
            metric["dimensions"].get(*name).is_some(),
            "{rule}.{state}.json has no dimension {name}"
        );
        metric["dimensions"][*name] = Value::from(*value);
    }
    event
}

/// `ecs-service-healing` for service `service` in `cluster`.
pub fn ecs_event(state: &str, cluster: &str, service: &str, id: &str) -> Value {
    platform_event(
        "ecs-service-healing",
        state,
        id,
        &[("ClusterName", cluster), ("ServiceName", service)],
    )
}

/// `lambda-function-healing` for `function`.
pub fn lambda_event(state: &str, function: &str, id: &str) -> Value {
    platform_event(
        "lambda-function-healing",
        state,
        id,
        &[("FunctionName", function)],
    )
}

/// `rds-instance-healing` for `db`.
pub fn rds_event(state: &str, db: &str, id: &str) -> Value {
    platform_event(
        "rds-instance-healing",
        state,
        id,
        &[("DBInstanceIdentifier", db)],
    )
}

/// An ECS cluster with one service and its tasks.
#[derive(Debug, Clone)]
pub struct EcsService {
    pub ecs: aws_sdk_ecs::Client,
    pub cluster: String,
    pub service: String,
    /// Tasks started for the service (group `service:<name>`).
    pub tasks: Vec<String>,
    /// A task of the same cluster that is not the service's.
    pub other_task: String,
}

impl EcsService {
    /// Cluster `cluster`, service `service` (desired count 2, tagged `tags`) with two
    /// running tasks, and one stand-alone task beside it.
    pub async fn create(
        sdk: &SdkConfig,
        cluster: &str,
        service: &str,
        tags: &[(&str, &str)],
    ) -> Self {
        let ecs = aws_sdk_ecs::Client::new(sdk);
        ecs.create_cluster()
            .cluster_name(cluster)
            .send()
            .await
            .expect("cluster");
        ecs.register_task_definition()
            .family(service)
            // The emulator needs a network configuration for `awsvpc` tasks; bridge keeps
            // the fixture small.
            .network_mode(aws_sdk_ecs::types::NetworkMode::Bridge)
            .container_definitions(
                aws_sdk_ecs::types::ContainerDefinition::builder()
                    .name("app")
                    .image("public.ecr.aws/nginx/nginx:latest")
                    .essential(true)
                    .cpu(256)
                    .memory(512)
                    .build(),
            )
            .send()
            .await
            .expect("task definition");
        let mut create = ecs
            .create_service()
            .cluster(cluster)
            .service_name(service)
            .task_definition(service)
            .desired_count(2)
            .launch_type(aws_sdk_ecs::types::LaunchType::Fargate);
        for (key, value) in tags {
            create = create.tags(
                aws_sdk_ecs::types::Tag::builder()
                    .key(*key)
                    .value(*value)
                    .build(),
            );
        }
        create.send().await.expect("service");
        let run = |group: String, count: i32| {
            ecs.run_task()
                .cluster(cluster)
                .task_definition(service)
                .launch_type(aws_sdk_ecs::types::LaunchType::Fargate)
                .group(group)
                .count(count)
                .send()
        };
        let arns = |output: aws_sdk_ecs::operation::run_task::RunTaskOutput| -> Vec<String> {
            output
                .tasks()
                .iter()
                .filter_map(|task| task.task_arn().map(str::to_owned))
                .collect()
        };
        let tasks = arns(
            run(format!("service:{service}"), 2)
                .await
                .expect("service tasks"),
        );
        let other_task = arns(run("family:batch".to_owned(), 1).await.expect("other task"))
            .pop()
            .expect("a task");
        EcsService {
            ecs,
            cluster: cluster.to_owned(),
            service: service.to_owned(),
            tasks,
            other_task,
        }
    }

    /// Starts one more task in the cluster, in `group` (`service:<name>` for the service's
    /// own); with `health`, the emulator started by `Emulator::start_with_ecs_task_health`
    /// reports that health status for it.
    pub async fn run_task(&self, group: &str, health: Option<&str>) -> String {
        let mut run = self
            .ecs
            .run_task()
            .cluster(&self.cluster)
            .task_definition(&self.service)
            .launch_type(aws_sdk_ecs::types::LaunchType::Fargate)
            .group(group);
        if let Some(health) = health {
            run = run.tags(
                aws_sdk_ecs::types::Tag::builder()
                    .key("emulator:health-status")
                    .value(health)
                    .build(),
            );
        }
        run.send()
            .await
            .expect("run task")
            .tasks()
            .first()
            .and_then(|task| task.task_arn())
            .expect("a task")
            .to_owned()
    }

    /// The service as ECS describes it now.
    pub async fn describe(&self) -> aws_sdk_ecs::types::Service {
        self.ecs
            .describe_services()
            .cluster(&self.cluster)
            .services(&self.service)
            .include(aws_sdk_ecs::types::ServiceField::Tags)
            .send()
            .await
            .expect("describe services")
            .services()
            .first()
            .cloned()
            .expect("the service")
    }

    /// The id of the service's first deployment.
    pub async fn deployment_id(&self) -> String {
        self.describe()
            .await
            .deployments()
            .first()
            .and_then(|deployment| deployment.id())
            .expect("a deployment")
            .to_owned()
    }

    /// (ARN, desired status, stopped reason) of the fixture's tasks and of `more`.
    pub async fn task_states(
        &self,
        more: &[&str],
    ) -> Vec<(String, Option<String>, Option<String>)> {
        let mut all = self.tasks.clone();
        all.push(self.other_task.clone());
        all.extend(more.iter().map(|arn| (*arn).to_owned()));
        self.ecs
            .describe_tasks()
            .cluster(&self.cluster)
            .set_tasks(Some(all))
            .send()
            .await
            .expect("describe tasks")
            .tasks()
            .iter()
            .map(|task| {
                (
                    task.task_arn().unwrap_or_default().to_owned(),
                    task.desired_status().map(str::to_owned),
                    task.stopped_reason()
                        .filter(|reason| !reason.is_empty())
                        .map(str::to_owned),
                )
            })
            .collect()
    }
}

/// The smallest valid zip archive: an empty one (only its end-of-central-directory record).
pub fn empty_zip() -> Vec<u8> {
    let mut zip = b"PK\x05\x06".to_vec();
    zip.extend_from_slice(&[0; 18]);
    zip
}

/// A Lambda function `name`, tagged `tags`, with published versions 1 and 2 and the alias
/// `live` on version 2.
pub async fn lambda_function(
    sdk: &SdkConfig,
    name: &str,
    tags: &[(&str, &str)],
) -> aws_sdk_lambda::Client {
    let iam = aws_sdk_iam::Client::new(sdk);
    let role = iam
        .create_role()
        .role_name(format!("{name}-role"))
        .assume_role_policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
        )
        .send()
        .await
        .expect("role")
        .role
        .expect("a role")
        .arn;
    let lambda = aws_sdk_lambda::Client::new(sdk);
    let mut create = lambda
        .create_function()
        .function_name(name)
        .runtime(aws_sdk_lambda::types::Runtime::Providedal2023)
        .handler("bootstrap")
        .role(role)
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(aws_sdk_lambda::primitives::Blob::new(empty_zip()))
                .build(),
        );
    for (key, value) in tags {
        create = create.tags(*key, *value);
    }
    create.send().await.expect("function");
    for release in ["1", "2"] {
        // A version is published only when the function changed since the last one.
        lambda
            .update_function_configuration()
            .function_name(name)
            .description(format!("release {release}"))
            .send()
            .await
            .expect("update configuration");
        let published = lambda
            .publish_version()
            .function_name(name)
            .send()
            .await
            .expect("publish version");
        assert_eq!(published.version(), Some(release));
    }
    lambda
        .create_alias()
        .function_name(name)
        .name("live")
        .function_version("2")
        .send()
        .await
        .expect("alias");
    lambda
}

/// The version the alias `live` of `function` points at.
pub async fn live_version(lambda: &aws_sdk_lambda::Client, function: &str) -> String {
    lambda
        .get_alias()
        .function_name(function)
        .name("live")
        .send()
        .await
        .expect("alias")
        .function_version()
        .expect("a version")
        .to_owned()
}

/// An available RDS instance `id`, tagged `tags`.
pub async fn rds_instance(
    sdk: &SdkConfig,
    id: &str,
    multi_az: bool,
    tags: &[(&str, &str)],
) -> aws_sdk_rds::Client {
    let rds = aws_sdk_rds::Client::new(sdk);
    let mut create = rds
        .create_db_instance()
        .db_instance_identifier(id)
        .db_instance_class("db.t3.micro")
        .engine("postgres")
        .allocated_storage(20)
        .master_username("autoheal")
        .master_user_password("not-a-secret-1")
        .multi_az(multi_az);
    for (key, value) in tags {
        create = create.tags(
            aws_sdk_rds::types::Tag::builder()
                .key(*key)
                .value(*value)
                .build(),
        );
    }
    create.send().await.expect("db instance");
    rds
}

/// The ids of the manual snapshots of `db`.
pub async fn rds_snapshots(rds: &aws_sdk_rds::Client, db: &str) -> Vec<String> {
    rds.describe_db_snapshots()
        .db_instance_identifier(db)
        .send()
        .await
        .expect("snapshots")
        .db_snapshots()
        .iter()
        .filter(|snapshot| snapshot.snapshot_type() == Some("manual"))
        .filter_map(|snapshot| snapshot.db_snapshot_identifier().map(str::to_owned))
        .collect()
}
