//! Fixtures of the platform layer in the emulator: ECS services, Lambda functions with
//! published versions and an alias, RDS instances, and their alarm events.

use std::collections::BTreeMap;

use aws_config::SdkConfig;
use serde_json::Value;

use crate::{Emulator, sample_event};

/// The shim of RDS instance states, reboots, failover events and pending-reboot parameter
/// changes (`tests/emulator/moto_rds_instance_states.py`).
pub const RDS_INSTANCE_STATES: &str = "moto_rds_instance_states.py";
/// The shim of RDS modifications that wait for the maintenance window
/// (`tests/emulator/moto_rds_pending_modifications.py`).
pub const RDS_PENDING_MODIFICATIONS: &str = "moto_rds_pending_modifications.py";

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

/// `lambda-function-healing` for `function`, its metric with the dimensions `more` besides
/// `FunctionName` (`Resource`, `ExecutedVersion`).
pub fn lambda_event_with(state: &str, function: &str, id: &str, more: &[(&str, &str)]) -> Value {
    let mut event = lambda_event(state, function, id);
    let dimensions =
        &mut event["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"]["dimensions"];
    for (name, value) in more {
        dimensions[*name] = Value::from(*value);
    }
    event
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

    /// Has the emulator (`tests/emulator/moto_ecs_deployments.py`) report the service's deployments as
    /// `deployments` lists them (`PRIMARY:IN_PROGRESS,ACTIVE:FAILED`), with `running` tasks
    /// running; `None`: as ECS reports a settled service.
    pub async fn set_deployments(&self, deployments: Option<&str>, running: Option<i32>) {
        let arn = self
            .describe()
            .await
            .service_arn()
            .expect("a service ARN")
            .to_owned();
        let mut gone = Vec::new();
        let mut tags = Vec::new();
        for (key, value) in [
            ("emulator:deployments", deployments.map(str::to_owned)),
            ("emulator:running-count", running.map(|n| n.to_string())),
        ] {
            match value {
                Some(value) => tags.push(
                    aws_sdk_ecs::types::Tag::builder()
                        .key(key)
                        .value(value)
                        .build(),
                ),
                None => gone.push(key.to_owned()),
            }
        }
        if !tags.is_empty() {
            self.ecs
                .tag_resource()
                .resource_arn(&arn)
                .set_tags(Some(tags))
                .send()
                .await
                .expect("tag the service");
        }
        if !gone.is_empty() {
            self.ecs
                .untag_resource()
                .resource_arn(&arn)
                .set_tag_keys(Some(gone))
                .send()
                .await
                .expect("untag the service");
        }
    }

    /// The ids of the service's deployments, primary first.
    pub async fn deployment_ids(&self) -> Vec<String> {
        self.describe()
            .await
            .deployments()
            .iter()
            .filter_map(|deployment| deployment.id().map(str::to_owned))
            .collect()
    }

    /// Deletes the service (scaled to zero first, as ECS asks).
    pub async fn delete(&self) {
        self.ecs
            .update_service()
            .cluster(&self.cluster)
            .service(&self.service)
            .desired_count(0)
            .send()
            .await
            .expect("scale to zero");
        self.ecs
            .delete_service()
            .cluster(&self.cluster)
            .service(&self.service)
            .send()
            .await
            .expect("delete the service");
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
/// `live`, created on version 1 and then moved to version 2 (a release deployed).
pub async fn lambda_function(
    sdk: &SdkConfig,
    name: &str,
    tags: &[(&str, &str)],
) -> aws_sdk_lambda::Client {
    let lambda = lambda_function_with_versions(sdk, name, 2, tags).await;
    create_alias(&lambda, name, "live", "1").await;
    move_alias(&lambda, name, "live", "2").await;
    lambda
}

/// A Lambda function `name`, tagged `tags`, with published versions `1..=versions` and no
/// alias.
pub async fn lambda_function_with_versions(
    sdk: &SdkConfig,
    name: &str,
    versions: u32,
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
    for release in (1..=versions).map(|n| n.to_string()) {
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
        assert_eq!(published.version(), Some(release.as_str()));
    }
    lambda
}

/// Creates alias `alias` of `function` on `version`, as a person or a pipeline does.
pub async fn create_alias(
    lambda: &aws_sdk_lambda::Client,
    function: &str,
    alias: &str,
    version: &str,
) {
    lambda
        .create_alias()
        .function_name(function)
        .name(alias)
        .function_version(version)
        .send()
        .await
        .expect("create alias");
}

/// Moves alias `alias` of `function` to `version`, as a person or a pipeline does.
pub async fn move_alias(
    lambda: &aws_sdk_lambda::Client,
    function: &str,
    alias: &str,
    version: &str,
) {
    lambda
        .update_alias()
        .function_name(function)
        .name(alias)
        .function_version(version)
        .send()
        .await
        .expect("update alias");
}

/// Moves alias `alias` of `function` to `version` (with `weighted`, a share of the traffic to
/// another version) as CodeDeploy does during a deployment: its own call, recorded by the
/// emulator's CloudTrail as CodeDeploy's.
pub fn codedeploy_moves_alias(
    emulator: &Emulator,
    function: &str,
    alias: &str,
    version: &str,
    weighted: Option<(&str, f64)>,
) {
    let mut body = serde_json::json!({ "FunctionVersion": version });
    if let Some((other, weight)) = weighted {
        body["RoutingConfig"] =
            serde_json::json!({ "AdditionalVersionWeights": { other: weight } });
    }
    emulator.call_as_service(
        "codedeploy.amazonaws.com",
        "lambda",
        "PUT",
        &format!("/2015-03-31/functions/{function}/aliases/{alias}"),
        &body.to_string(),
    );
}

/// The tags of function `function`.
pub async fn function_tags(
    lambda: &aws_sdk_lambda::Client,
    function: &str,
) -> BTreeMap<String, String> {
    let arn = lambda
        .get_function_configuration()
        .function_name(function)
        .send()
        .await
        .expect("the function")
        .function_arn()
        .expect("an ARN")
        .to_owned();
    lambda
        .list_tags()
        .resource(arn)
        .send()
        .await
        .expect("tags")
        .tags()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .collect()
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

/// The DB instance `db` as RDS describes it.
pub async fn rds_describe(rds: &aws_sdk_rds::Client, db: &str) -> aws_sdk_rds::types::DbInstance {
    rds.describe_db_instances()
        .db_instance_identifier(db)
        .send()
        .await
        .expect("describe DB instances")
        .db_instances()
        .first()
        .cloned()
        .expect("the instance")
}

/// Sets (or with `None` removes) the tag `key` of DB instance `db`: the emulator's shims read
/// `emulator:db-instance-status` as its status (with [`RDS_INSTANCE_STATES`]).
pub async fn rds_set_tag(rds: &aws_sdk_rds::Client, db: &str, key: &str, value: Option<&str>) {
    let arn = rds_describe(rds, db)
        .await
        .db_instance_arn()
        .expect("an ARN")
        .to_owned();
    match value {
        Some(value) => {
            rds.add_tags_to_resource()
                .resource_name(arn)
                .tags(
                    aws_sdk_rds::types::Tag::builder()
                        .key(key)
                        .value(value)
                        .build(),
                )
                .send()
                .await
                .expect("tag the instance");
        }
        None => {
            rds.remove_tags_from_resource()
                .resource_name(arn)
                .tag_keys(key)
                .send()
                .await
                .expect("untag the instance");
        }
    }
}

/// The reboots of DB instance `db` the emulator saw (with [`RDS_INSTANCE_STATES`]):
/// `reboot` or `reboot-with-failover`, in order; empty when it was never rebooted.
pub async fn rds_reboots(rds: &aws_sdk_rds::Client, db: &str) -> Vec<String> {
    rds_describe(rds, db)
        .await
        .tag_list()
        .iter()
        .find(|tag| tag.key() == Some("emulator:history"))
        .and_then(|tag| tag.value())
        .map(|history| history.split(',').map(str::to_owned).collect())
        .unwrap_or_default()
}

/// A DB parameter group `name` (postgres 16).
pub async fn rds_parameter_group(rds: &aws_sdk_rds::Client, name: &str) {
    rds.create_db_parameter_group()
        .db_parameter_group_name(name)
        .db_parameter_group_family("postgres16")
        .description("tuned by a person")
        .send()
        .await
        .expect("parameter group");
}

/// An available postgres 16 instance `id` in parameter group `group`.
pub async fn rds_instance_in_group(rds: &aws_sdk_rds::Client, id: &str, group: &str) {
    rds.create_db_instance()
        .db_instance_identifier(id)
        .db_instance_class("db.t3.micro")
        .engine("postgres")
        .engine_version("16.4")
        .allocated_storage(20)
        .master_username("autoheal")
        .master_user_password("not-a-secret-1")
        .db_parameter_group_name(group)
        .send()
        .await
        .expect("db instance");
}

/// Changes a static parameter of group `name` (`ApplyMethod` `pending-reboot`), as a
/// person's tuning does: it applies at the instance's next reboot.
pub async fn rds_change_static_parameter(rds: &aws_sdk_rds::Client, name: &str) {
    rds.modify_db_parameter_group()
        .db_parameter_group_name(name)
        .parameters(
            aws_sdk_rds::types::Parameter::builder()
                .parameter_name("shared_buffers")
                .parameter_value("262144")
                .apply_method(aws_sdk_rds::types::ApplyMethod::PendingReboot)
                .build(),
        )
        .send()
        .await
        .expect("modify the parameter group");
}
