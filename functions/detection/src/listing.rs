//! The one place that knows how the resources of each kind are listed: every listing paged,
//! terminated and deleting resources left out, with their tags and the metric dimensions
//! they are published under.

use std::collections::BTreeMap;

use autoheal_core::ResourceKind;
use autoheal_core::model::alarm::MANAGED_TAG;
use autoheal_core::policy::detection::target::Resource;

use crate::Clients;
use crate::error::{DetectionError, describe};

/// The tag CloudFormation puts on what a stack creates: autoheal's own stack's resources are
/// never protected.
const STACK_TAG: &str = "aws:cloudformation:stack-name";

/// Who autoheal is: its stack's name, whose resources are its own.
#[derive(Debug, Clone, Default)]
pub struct Own {
    pub stack: Option<String>,
}

impl Own {
    fn is_own(&self, name: &str, tags: &BTreeMap<String, String>) -> bool {
        let managed = tags
            .get(MANAGED_TAG)
            .is_some_and(|value| value.eq_ignore_ascii_case("true"));
        let of_stack = self.stack.as_deref().is_some_and(|stack| {
            tags.get(STACK_TAG).map(String::as_str) == Some(stack)
                || name.starts_with(&format!("{stack}-"))
        });
        managed || of_stack
    }
}

fn err(what: &'static str) -> impl Fn(String) -> DetectionError {
    move |message| DetectionError::Listing { what, message }
}

fn resource(
    kind: ResourceKind,
    id: String,
    dimensions: &[(&str, String)],
    tags: BTreeMap<String, String>,
    own: &Own,
) -> Resource {
    Resource {
        own: own.is_own(&id, &tags),
        kind,
        dimensions: dimensions
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.clone()))
            .collect(),
        id,
        tags,
    }
}

/// Lists the resources of `kind`. `alias` is the alias a Lambda function must have (the one
/// the rule rolls back); functions without it are left out.
pub async fn list(
    clients: &Clients,
    kind: ResourceKind,
    alias: Option<&str>,
    own: &Own,
) -> Result<Vec<Resource>, DetectionError> {
    match kind {
        ResourceKind::Ec2Instance => Box::pin(instances(clients, own)).await,
        ResourceKind::EbsVolume => Box::pin(volumes(clients, own)).await,
        ResourceKind::NatGateway => Box::pin(nat_gateways(clients, own)).await,
        ResourceKind::AutoScalingGroup => Box::pin(groups(clients, own)).await,
        ResourceKind::EcsService => Box::pin(services(clients, own)).await,
        ResourceKind::LambdaFunction => {
            Box::pin(functions(clients, alias.unwrap_or("live"), own)).await
        }
        ResourceKind::RdsInstance => Box::pin(databases(clients, own)).await,
        ResourceKind::ElastiCacheCluster => Box::pin(caches(clients, own)).await,
        ResourceKind::TargetGroup => Box::pin(target_groups(clients, own)).await,
        ResourceKind::Route53HealthCheck => Box::pin(health_checks(clients, own)).await,
        // An application's services are found by the metrics they publish.
        _ => Ok(Vec::new()),
    }
}

async fn instances(clients: &Clients, own: &Own) -> Result<Vec<Resource>, DetectionError> {
    let mut found = Vec::new();
    let mut pages = clients.ec2.describe_instances().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| err("EC2 instances")(describe(&e)))?;
        for instance in page.reservations().iter().flat_map(|r| r.instances()) {
            let state = instance
                .state()
                .and_then(|state| state.name())
                .map(|name| name.as_str().to_owned())
                .unwrap_or_default();
            let Some(id) = instance.instance_id() else {
                continue;
            };
            if matches!(state.as_str(), "terminated" | "shutting-down") {
                continue;
            }
            let tags = instance
                .tags()
                .iter()
                .filter_map(|tag| Some((tag.key()?.to_owned(), tag.value()?.to_owned())))
                .collect();
            found.push(resource(
                ResourceKind::Ec2Instance,
                id.to_owned(),
                &[("InstanceId", id.to_owned())],
                tags,
                own,
            ));
        }
    }
    Ok(found)
}

async fn volumes(clients: &Clients, own: &Own) -> Result<Vec<Resource>, DetectionError> {
    let mut found = Vec::new();
    let mut pages = clients.ec2.describe_volumes().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| err("EBS volumes")(describe(&e)))?;
        for volume in page.volumes() {
            let state = volume.state().map(|s| s.as_str()).unwrap_or_default();
            let Some(id) = volume.volume_id() else {
                continue;
            };
            if matches!(state, "deleting" | "deleted" | "error") {
                continue;
            }
            let tags = volume
                .tags()
                .iter()
                .filter_map(|tag| Some((tag.key()?.to_owned(), tag.value()?.to_owned())))
                .collect();
            found.push(resource(
                ResourceKind::EbsVolume,
                id.to_owned(),
                &[("VolumeId", id.to_owned())],
                tags,
                own,
            ));
        }
    }
    Ok(found)
}

async fn nat_gateways(clients: &Clients, own: &Own) -> Result<Vec<Resource>, DetectionError> {
    let mut found = Vec::new();
    let mut pages = clients.ec2.describe_nat_gateways().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| err("NAT gateways")(describe(&e)))?;
        for gateway in page.nat_gateways() {
            let state = gateway.state().map(|s| s.as_str()).unwrap_or_default();
            let Some(id) = gateway.nat_gateway_id() else {
                continue;
            };
            if matches!(state, "deleting" | "deleted" | "failed") {
                continue;
            }
            let tags = gateway
                .tags()
                .iter()
                .filter_map(|tag| Some((tag.key()?.to_owned(), tag.value()?.to_owned())))
                .collect();
            found.push(resource(
                ResourceKind::NatGateway,
                id.to_owned(),
                &[("NatGatewayId", id.to_owned())],
                tags,
                own,
            ));
        }
    }
    Ok(found)
}

async fn groups(clients: &Clients, own: &Own) -> Result<Vec<Resource>, DetectionError> {
    let mut found = Vec::new();
    let mut pages = clients
        .autoscaling
        .describe_auto_scaling_groups()
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| err("Auto Scaling groups")(describe(&e)))?;
        for group in page.auto_scaling_groups() {
            let Some(name) = group.auto_scaling_group_name() else {
                continue;
            };
            if group.status().is_some_and(|s| s.starts_with("Delete")) {
                continue;
            }
            let tags = group
                .tags()
                .iter()
                .filter_map(|tag| Some((tag.key()?.to_owned(), tag.value()?.to_owned())))
                .collect();
            found.push(resource(
                ResourceKind::AutoScalingGroup,
                name.to_owned(),
                &[("AutoScalingGroupName", name.to_owned())],
                tags,
                own,
            ));
        }
    }
    Ok(found)
}

async fn services(clients: &Clients, own: &Own) -> Result<Vec<Resource>, DetectionError> {
    let mut clusters = Vec::new();
    let mut pages = clients.ecs.list_clusters().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| err("ECS clusters")(describe(&e)))?;
        clusters.extend(page.cluster_arns().iter().cloned());
    }
    let mut found = Vec::new();
    for cluster in clusters {
        let mut arns = Vec::new();
        let mut pages = clients
            .ecs
            .list_services()
            .cluster(&cluster)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| err("ECS services")(describe(&e)))?;
            arns.extend(page.service_arns().iter().cloned());
        }
        // DescribeServices takes at most 10 services at once.
        for batch in arns.chunks(10) {
            let described = clients
                .ecs
                .describe_services()
                .cluster(&cluster)
                .set_services(Some(batch.to_vec()))
                .include(aws_sdk_ecs::types::ServiceField::Tags)
                .send()
                .await
                .map_err(|e| err("ECS services")(describe(&e)))?;
            for service in described.services() {
                if service.status() != Some("ACTIVE") {
                    continue;
                }
                let (Some(name), Some(cluster_arn)) =
                    (service.service_name(), service.cluster_arn())
                else {
                    continue;
                };
                let cluster_name = cluster_arn.rsplit('/').next().unwrap_or(cluster_arn);
                let tags = service
                    .tags()
                    .iter()
                    .filter_map(|tag| Some((tag.key()?.to_owned(), tag.value()?.to_owned())))
                    .collect();
                found.push(resource(
                    ResourceKind::EcsService,
                    format!("{cluster_name}/{name}"),
                    &[
                        ("ClusterName", cluster_name.to_owned()),
                        ("ServiceName", name.to_owned()),
                    ],
                    tags,
                    own,
                ));
            }
        }
    }
    Ok(found)
}

async fn functions(
    clients: &Clients,
    alias: &str,
    own: &Own,
) -> Result<Vec<Resource>, DetectionError> {
    let mut listed = Vec::new();
    let mut pages = clients.lambda.list_functions().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| err("Lambda functions")(describe(&e)))?;
        for function in page.functions() {
            if let (Some(name), Some(arn)) = (function.function_name(), function.function_arn()) {
                listed.push((name.to_owned(), arn.to_owned()));
            }
        }
    }
    let mut found = Vec::new();
    for (name, arn) in listed {
        // Only a function with the alias the rule rolls back can be healed.
        match clients
            .lambda
            .get_alias()
            .function_name(&name)
            .name(alias)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                continue;
            }
            Err(e) => return Err(err("Lambda aliases")(describe(&e))),
        }
        let tags = clients
            .lambda
            .list_tags()
            .resource(&arn)
            .send()
            .await
            .map_err(|e| err("Lambda function tags")(describe(&e)))?
            .tags
            .unwrap_or_default()
            .into_iter()
            .collect();
        found.push(resource(
            ResourceKind::LambdaFunction,
            name.clone(),
            &[
                ("FunctionName", name.clone()),
                ("Resource", format!("{name}:{alias}")),
            ],
            tags,
            own,
        ));
    }
    Ok(found)
}

async fn databases(clients: &Clients, own: &Own) -> Result<Vec<Resource>, DetectionError> {
    let mut found = Vec::new();
    let mut pages = clients.rds.describe_db_instances().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| err("RDS instances")(describe(&e)))?;
        for instance in page.db_instances() {
            let Some(id) = instance.db_instance_identifier() else {
                continue;
            };
            if matches!(instance.db_instance_status(), Some("deleting" | "deleted")) {
                continue;
            }
            let tags = instance
                .tag_list()
                .iter()
                .filter_map(|tag| Some((tag.key()?.to_owned(), tag.value()?.to_owned())))
                .collect();
            found.push(resource(
                ResourceKind::RdsInstance,
                id.to_owned(),
                &[("DBInstanceIdentifier", id.to_owned())],
                tags,
                own,
            ));
        }
    }
    Ok(found)
}

async fn caches(clients: &Clients, own: &Own) -> Result<Vec<Resource>, DetectionError> {
    let mut listed = Vec::new();
    let mut pages = clients
        .elasticache
        .describe_cache_clusters()
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| err("ElastiCache clusters")(describe(&e)))?;
        for cluster in page.cache_clusters() {
            if matches!(cluster.cache_cluster_status(), Some("deleting" | "deleted")) {
                continue;
            }
            if let (Some(id), Some(arn)) = (cluster.cache_cluster_id(), cluster.arn()) {
                listed.push((id.to_owned(), arn.to_owned()));
            }
        }
    }
    let mut found = Vec::new();
    for (id, arn) in listed {
        let tags = clients
            .elasticache
            .list_tags_for_resource()
            .resource_name(&arn)
            .send()
            .await
            .map_err(|e| err("ElastiCache tags")(describe(&e)))?
            .tag_list()
            .iter()
            .filter_map(|tag| Some((tag.key()?.to_owned(), tag.value()?.to_owned())))
            .collect();
        found.push(resource(
            ResourceKind::ElastiCacheCluster,
            id.clone(),
            &[("CacheClusterId", id)],
            tags,
            own,
        ));
    }
    Ok(found)
}

/// A target group's metrics carry its own ARN's last part (`targetgroup/<name>/<id>`) and
/// the load balancer's (`app/<name>/<id>`); one not attached to a load balancer publishes
/// none and is left out.
async fn target_groups(clients: &Clients, own: &Own) -> Result<Vec<Resource>, DetectionError> {
    let mut listed = Vec::new();
    let mut pages = clients
        .elbv2
        .describe_target_groups()
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| err("target groups")(describe(&e)))?;
        for group in page.target_groups() {
            let (Some(arn), Some(balancer)) =
                (group.target_group_arn(), group.load_balancer_arns().first())
            else {
                continue;
            };
            listed.push((arn.to_owned(), balancer.clone()));
        }
    }
    let mut tags: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    // DescribeTags takes at most 20 resources at once.
    for batch in listed.chunks(20) {
        let described = clients
            .elbv2
            .describe_tags()
            .set_resource_arns(Some(batch.iter().map(|(arn, _)| arn.clone()).collect()))
            .send()
            .await
            .map_err(|e| err("target group tags")(describe(&e)))?;
        for description in described.tag_descriptions() {
            if let Some(arn) = description.resource_arn() {
                tags.insert(
                    arn.to_owned(),
                    description
                        .tags()
                        .iter()
                        .filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned())))
                        .collect(),
                );
            }
        }
    }
    Ok(listed
        .into_iter()
        .map(|(arn, balancer)| {
            let last = |arn: &str, after: &str| {
                arn.split_once(after)
                    .map(|(_, rest)| rest.to_owned())
                    .unwrap_or_default()
            };
            let dimensions = [
                (
                    "TargetGroup",
                    format!("targetgroup/{}", last(&arn, ":targetgroup/")),
                ),
                ("LoadBalancer", last(&balancer, ":loadbalancer/")),
            ];
            let tags = tags.remove(&arn).unwrap_or_default();
            resource(ResourceKind::TargetGroup, arn, &dimensions, tags, own)
        })
        .collect())
}

async fn health_checks(clients: &Clients, own: &Own) -> Result<Vec<Resource>, DetectionError> {
    let mut ids = Vec::new();
    let mut pages = clients.route53.list_health_checks().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| err("Route 53 health checks")(describe(&e)))?;
        ids.extend(
            page.health_checks()
                .iter()
                .map(|check| check.id().to_owned()),
        );
    }
    let mut found = Vec::new();
    // ListTagsForResources takes at most 10 health checks at once.
    for batch in ids.chunks(10) {
        let listed = clients
            .route53
            .list_tags_for_resources()
            .resource_type(aws_sdk_route53::types::TagResourceType::Healthcheck)
            .set_resource_ids(Some(batch.to_vec()))
            .send()
            .await
            .map_err(|e| err("Route 53 health check tags")(describe(&e)))?;
        let mut tags: BTreeMap<String, BTreeMap<String, String>> = listed
            .resource_tag_sets()
            .iter()
            .filter_map(|set| {
                let tags = set
                    .tags()
                    .iter()
                    .filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned())))
                    .collect();
                Some((set.resource_id()?.to_owned(), tags))
            })
            .collect();
        for id in batch {
            let tags = tags.remove(id).unwrap_or_default();
            found.push(resource(
                ResourceKind::Route53HealthCheck,
                id.clone(),
                &[("HealthCheckId", id.clone())],
                tags,
                own,
            ));
        }
    }
    Ok(found)
}
