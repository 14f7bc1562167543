//! Fixtures of the network layer in the emulator.

use aws_config::SdkConfig;
use aws_sdk_ec2::types::{
    DomainType, Filter, InstanceType, ResourceType, Tag as Ec2Tag, TagSpecification,
};
use aws_sdk_elasticloadbalancingv2::types::{
    ProtocolEnum, Tag as ElbTag, TargetDescription, TargetHealthStateEnum, TargetTypeEnum,
};
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, HealthCheckConfig, HealthCheckType, ResourceRecord,
    ResourceRecordSet, RrType, Tag as Route53Tag, TagResourceType,
};
use serde_json::Value;

use crate::{Fleet, sample_event};

/// The emulator's additions the target tests need: a running target that fails its health
/// checks (see `tests/emulator/moto_elbv2_target_health.py`).
pub const TARGET_SHIMS: [&str; 1] = ["moto_elbv2_target_health.py"];

/// The emulator's additions the DNS tests need: health checks that fail, and change batches
/// checked against the records as they are (see `tests/emulator/moto_route53_health_status.py`
/// and `moto_route53_change_batch.py`).
pub const DNS_SHIMS: [&str; 2] = [
    "moto_route53_health_status.py",
    "moto_route53_change_batch.py",
];

/// The emulator's account and region, as they appear in ARNs.
pub const ACCOUNT: &str = "123456789012";
pub const REGION: &str = "us-east-1";

/// A network sample event (`<rule>.alarm.json` or `.ok.json`) with event id `id`, its first
/// metric's `dimension` set to `value`, and the emulator's account and region.
pub fn network_event(file: &str, dimension: &str, value: &str, id: &str) -> Value {
    let mut event = sample_event(file);
    event["id"] = Value::from(id);
    event["account"] = Value::from(ACCOUNT);
    event["region"] = Value::from(REGION);
    event["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"]["dimensions"]
        [dimension] = Value::from(value);
    event
}

/// `targetgroup/<name>/<id>`: the `TargetGroup` dimension of a target group's ARN.
pub fn target_group_dimension(arn: &str) -> &str {
    arn.rsplit(':').next().unwrap_or(arn)
}

/// The `alb-target-healing` ALARM for the target group `arn`.
pub fn alb_alarm(arn: &str, id: &str) -> Value {
    network_event(
        "alb-target-healing.alarm.json",
        "TargetGroup",
        target_group_dimension(arn),
        id,
    )
}

/// The `alb-target-healing` OK for the target group `arn`.
pub fn alb_ok(arn: &str, id: &str) -> Value {
    network_event(
        "alb-target-healing.ok.json",
        "TargetGroup",
        target_group_dimension(arn),
        id,
    )
}

pub fn dns_alarm(health_check_id: &str, id: &str) -> Value {
    network_event(
        "dns-failover-healing.alarm.json",
        "HealthCheckId",
        health_check_id,
        id,
    )
}

pub fn dns_ok(health_check_id: &str, id: &str) -> Value {
    network_event(
        "dns-failover-healing.ok.json",
        "HealthCheckId",
        health_check_id,
        id,
    )
}

pub fn nat_alarm(nat_gateway_id: &str, id: &str) -> Value {
    network_event(
        "nat-route-healing.alarm.json",
        "NatGatewayId",
        nat_gateway_id,
        id,
    )
}

pub fn nat_ok(nat_gateway_id: &str, id: &str) -> Value {
    network_event(
        "nat-route-healing.ok.json",
        "NatGatewayId",
        nat_gateway_id,
        id,
    )
}

fn ec2_tags(resource: ResourceType, tags: &[(&str, &str)]) -> TagSpecification {
    let mut spec = TagSpecification::builder().resource_type(resource);
    for (key, value) in tags {
        spec = spec.tags(Ec2Tag::builder().key(*key).value(*value).build());
    }
    spec.build()
}

/// A target group of running instances behind (conceptually) a load balancer.
#[derive(Debug, Clone)]
pub struct TargetGroupFixture {
    pub ec2: aws_sdk_ec2::Client,
    pub elb: aws_sdk_elasticloadbalancingv2::Client,
    pub arn: String,
    pub instances: Vec<String>,
}

impl TargetGroupFixture {
    /// `count` running instances registered on port 80 of a new target group `web` tagged
    /// `tags`.
    pub async fn create(sdk: &SdkConfig, count: i32, tags: &[(&str, &str)]) -> Self {
        Self::create_named(sdk, "web", count, tags).await
    }

    /// As [`Self::create`], the target group named `name`.
    pub async fn create_named(
        sdk: &SdkConfig,
        name: &str,
        count: i32,
        tags: &[(&str, &str)],
    ) -> Self {
        let ec2 = aws_sdk_ec2::Client::new(sdk);
        let elb = aws_sdk_elasticloadbalancingv2::Client::new(sdk);
        let fleet = Fleet::new(sdk);
        let (vpc, subnet) = fleet.vpc_and_subnet().await;
        let image = fleet.image().await;
        let instances: Vec<String> = if count == 0 {
            Vec::new()
        } else {
            ec2.run_instances()
                .image_id(image)
                .instance_type(InstanceType::T3Micro)
                .subnet_id(subnet)
                .min_count(count)
                .max_count(count)
                .tag_specifications(ec2_tags(ResourceType::Instance, &[("Name", "web")]))
                .send()
                .await
                .expect("run instances")
                .instances()
                .iter()
                .filter_map(|instance| instance.instance_id().map(str::to_owned))
                .collect()
        };
        let mut create = elb
            .create_target_group()
            .name(name)
            .protocol(ProtocolEnum::Http)
            .port(80)
            .vpc_id(vpc)
            .target_type(TargetTypeEnum::Instance);
        for (key, value) in tags {
            create = create.tags(ElbTag::builder().key(*key).value(*value).build());
        }
        let arn = create
            .send()
            .await
            .expect("target group")
            .target_groups()
            .first()
            .and_then(|group| group.target_group_arn())
            .expect("target group arn")
            .to_owned();
        let targets: Vec<TargetDescription> = instances
            .iter()
            .map(|id| TargetDescription::builder().id(id).port(80).build())
            .collect();
        if !targets.is_empty() {
            elb.register_targets()
                .target_group_arn(&arn)
                .set_targets(Some(targets))
                .send()
                .await
                .expect("register targets");
        }
        TargetGroupFixture {
            ec2,
            elb,
            arn,
            instances,
        }
    }

    /// Stops instances: the load balancer reports a stopped, still registered instance as a
    /// failing target (`unused`, `Target.InvalidState`).
    pub async fn stop(&self, instances: &[&str]) {
        self.ec2
            .stop_instances()
            .set_instance_ids(Some(instances.iter().map(|id| (*id).to_owned()).collect()))
            .send()
            .await
            .expect("stop instances");
    }

    /// The load balancer finds `targets` failing their health checks from now on (emulator
    /// started with [`TARGET_SHIMS`]).
    pub async fn fail(&self, targets: &[&str]) {
        self.elb
            .add_tags()
            .resource_arns(&self.arn)
            .tags(
                ElbTag::builder()
                    .key("emulator:unhealthy-targets")
                    .value(targets.join(","))
                    .build(),
            )
            .send()
            .await
            .expect("tag the target group");
    }

    /// A target group whose targets are the `size` members of a new Auto Scaling group
    /// `name`, attached to it, with `health_check_type` (`EC2` or `ELB`).
    pub async fn of_auto_scaling_group(
        sdk: &SdkConfig,
        name: &str,
        size: i32,
        health_check_type: &str,
    ) -> Self {
        let empty = Self::create_named(sdk, name, 0, &[]).await;
        let autoscaling = aws_sdk_autoscaling::Client::new(sdk);
        let fleet = Fleet::new(sdk);
        let subnet = empty.subnet().await;
        autoscaling
            .create_launch_configuration()
            .launch_configuration_name(format!("{name}-lc"))
            .image_id(fleet.image().await)
            .instance_type("t3.micro")
            .send()
            .await
            .expect("launch configuration");
        autoscaling
            .create_auto_scaling_group()
            .auto_scaling_group_name(name)
            .launch_configuration_name(format!("{name}-lc"))
            .min_size(size)
            .max_size(size + 2)
            .desired_capacity(size)
            .vpc_zone_identifier(subnet)
            .health_check_type(health_check_type)
            .health_check_grace_period(300)
            .target_group_arns(&empty.arn)
            .send()
            .await
            .expect("auto scaling group");
        let instances: Vec<String> = fleet
            .group(name)
            .await
            .instances()
            .iter()
            .filter_map(|instance| instance.instance_id().map(str::to_owned))
            .collect();
        let group = TargetGroupFixture { instances, ..empty };
        // The group registers its members with the target groups attached to it.
        let registered = group.registered().await;
        let missing: Vec<TargetDescription> = group
            .instances
            .iter()
            .filter(|id| !registered.contains(id))
            .map(|id| TargetDescription::builder().id(id).port(80).build())
            .collect();
        if !missing.is_empty() {
            group
                .elb
                .register_targets()
                .target_group_arn(&group.arn)
                .set_targets(Some(missing))
                .send()
                .await
                .expect("register the group's members");
        }
        group
    }

    /// The subnet of the target group's VPC.
    async fn subnet(&self) -> String {
        let vpc = self
            .elb
            .describe_target_groups()
            .target_group_arns(&self.arn)
            .send()
            .await
            .expect("target group")
            .target_groups()
            .first()
            .and_then(|group| group.vpc_id())
            .expect("a VPC")
            .to_owned();
        self.ec2
            .describe_subnets()
            .filters(Filter::builder().name("vpc-id").values(vpc).build())
            .send()
            .await
            .expect("subnets")
            .subnets()
            .first()
            .and_then(|subnet| subnet.subnet_id())
            .expect("a subnet")
            .to_owned()
    }

    /// An ECS service `cluster/service` whose load balancer configuration names this target
    /// group, as one that registers its tasks in it.
    pub async fn owned_by_ecs_service(&self, sdk: &SdkConfig, cluster: &str, service: &str) {
        let ecs = aws_sdk_ecs::Client::new(sdk);
        ecs.create_cluster()
            .cluster_name(cluster)
            .send()
            .await
            .expect("cluster");
        ecs.register_task_definition()
            .family(service)
            .network_mode(aws_sdk_ecs::types::NetworkMode::Bridge)
            .container_definitions(
                aws_sdk_ecs::types::ContainerDefinition::builder()
                    .name("app")
                    .image("public.ecr.aws/nginx/nginx:latest")
                    .essential(true)
                    .port_mappings(
                        aws_sdk_ecs::types::PortMapping::builder()
                            .container_port(80)
                            .build(),
                    )
                    .memory(512)
                    .build(),
            )
            .send()
            .await
            .expect("task definition");
        ecs.create_service()
            .cluster(cluster)
            .service_name(service)
            .task_definition(service)
            .desired_count(i32::try_from(self.instances.len()).expect("a few"))
            .load_balancers(
                aws_sdk_ecs::types::LoadBalancer::builder()
                    .target_group_arn(&self.arn)
                    .container_name("app")
                    .container_port(80)
                    .build(),
            )
            .send()
            .await
            .expect("service");
    }

    /// The registered targets and their health state.
    pub async fn health(&self) -> Vec<(String, Option<TargetHealthStateEnum>)> {
        let mut health: Vec<(String, Option<TargetHealthStateEnum>)> = self
            .elb
            .describe_target_health()
            .target_group_arn(&self.arn)
            .send()
            .await
            .expect("target health")
            .target_health_descriptions()
            .iter()
            .map(|description| {
                (
                    description
                        .target()
                        .and_then(|t| t.id())
                        .unwrap_or_default()
                        .to_owned(),
                    description.target_health().and_then(|h| h.state()).cloned(),
                )
            })
            .collect();
        health.sort_by(|a, b| a.0.cmp(&b.0));
        health
    }

    /// The ids of the registered targets, sorted.
    pub async fn registered(&self) -> Vec<String> {
        self.health().await.into_iter().map(|(id, _)| id).collect()
    }
}

/// A hosted zone with health-checked records.
#[derive(Debug, Clone)]
pub struct DnsFixture {
    pub route53: aws_sdk_route53::Client,
    pub zone_id: String,
}

/// `api.example.com.`: the record name every DNS fixture uses.
pub const API_NAME: &str = "api.example.com.";

impl DnsFixture {
    /// A public hosted zone `example.com`.
    pub async fn create(sdk: &SdkConfig) -> Self {
        let route53 = aws_sdk_route53::Client::new(sdk);
        let zone_id = route53
            .create_hosted_zone()
            .name("example.com")
            .caller_reference("autoheal-tests")
            .send()
            .await
            .expect("hosted zone")
            .hosted_zone()
            .map(|zone| zone.id().trim_start_matches("/hostedzone/").to_owned())
            .expect("zone id");
        DnsFixture { route53, zone_id }
    }

    /// An HTTP health check of `ip`, tagged `tags`; returns its id.
    pub async fn health_check(&self, ip: &str, tags: &[(&str, &str)]) -> String {
        let id = self
            .route53
            .create_health_check()
            .caller_reference(format!("check-{ip}"))
            .health_check_config(
                HealthCheckConfig::builder()
                    .ip_address(ip)
                    .port(80)
                    .r#type(HealthCheckType::Http)
                    .resource_path("/health")
                    .build()
                    .expect("health check config"),
            )
            .send()
            .await
            .expect("health check")
            .health_check()
            .map(|check| check.id().to_owned())
            .expect("health check id");
        if !tags.is_empty() {
            let tags = tags
                .iter()
                .map(|(key, value)| Route53Tag::builder().key(*key).value(*value).build())
                .collect();
            self.route53
                .change_tags_for_resource()
                .resource_type(TagResourceType::Healthcheck)
                .resource_id(&id)
                .set_add_tags(Some(tags))
                .send()
                .await
                .expect("tag health check");
        }
        id
    }

    /// What Route 53's checkers report for the health check from now on: `Success` or
    /// `Failure` (emulator with `start_with_route53_health_status` only).
    pub async fn set_health(&self, health_check_id: &str, status: &str) {
        self.route53
            .change_tags_for_resource()
            .resource_type(TagResourceType::Healthcheck)
            .resource_id(health_check_id)
            .add_tags(
                Route53Tag::builder()
                    .key("emulator:health-status")
                    .value(status)
                    .build(),
            )
            .send()
            .await
            .expect("tag health check");
    }

    /// Creates `api.example.com. A` records in the zone.
    pub async fn records(&self, records: Vec<ResourceRecordSet>) {
        self.change(ChangeAction::Create, records).await;
    }

    /// Overwrites records of the zone, as a person editing them would.
    pub async fn records_upsert(&self, records: Vec<ResourceRecordSet>) {
        self.change(ChangeAction::Upsert, records).await;
    }

    async fn change(&self, action: ChangeAction, records: Vec<ResourceRecordSet>) {
        let changes = records
            .into_iter()
            .map(|record| {
                Change::builder()
                    .action(action.clone())
                    .resource_record_set(record)
                    .build()
                    .expect("change")
            })
            .collect();
        self.route53
            .change_resource_record_sets()
            .hosted_zone_id(&self.zone_id)
            .change_batch(
                ChangeBatch::builder()
                    .set_changes(Some(changes))
                    .build()
                    .expect("change batch"),
            )
            .send()
            .await
            .expect("change records");
    }

    /// The `api.example.com. A` record set with `set_identifier`.
    pub async fn record(&self, set_identifier: &str) -> ResourceRecordSet {
        self.route53
            .list_resource_record_sets()
            .hosted_zone_id(&self.zone_id)
            .send()
            .await
            .expect("record sets")
            .resource_record_sets()
            .iter()
            .find(|record| {
                record.name() == API_NAME && record.set_identifier() == Some(set_identifier)
            })
            .cloned()
            .expect("the record set")
    }
}

/// A weighted `api.example.com. A` record of `ip` with `weight` and `health_check`.
pub fn weighted(set: &str, ip: &str, weight: i64, health_check: &str) -> ResourceRecordSet {
    ResourceRecordSet::builder()
        .name(API_NAME)
        .r#type(RrType::A)
        .set_identifier(set)
        .weight(weight)
        .ttl(60)
        .health_check_id(health_check)
        .resource_records(ResourceRecord::builder().value(ip).build().expect("record"))
        .build()
        .expect("record set")
}

/// A failover `api.example.com. A` record of `ip`.
pub fn failover(
    set: &str,
    ip: &str,
    role: aws_sdk_route53::types::ResourceRecordSetFailover,
    health_check: Option<&str>,
) -> ResourceRecordSet {
    ResourceRecordSet::builder()
        .name(API_NAME)
        .r#type(RrType::A)
        .set_identifier(set)
        .failover(role)
        .ttl(60)
        .set_health_check_id(health_check.map(str::to_owned))
        .resource_records(ResourceRecord::builder().value(ip).build().expect("record"))
        .build()
        .expect("record set")
}

/// A VPC with two public NAT gateways and a private route table whose default routes
/// (IPv4 and the NAT64 prefix) go through the first.
#[derive(Debug, Clone)]
pub struct NatFixture {
    pub ec2: aws_sdk_ec2::Client,
    pub vpc: String,
    pub failing: String,
    pub standby: String,
    pub route_table: String,
}

/// The NAT64 prefix: an IPv6 destination a NAT gateway serves.
pub const NAT64: &str = "64:ff9b::/96";

/// The tag of a route table that names its standby NAT gateway (the shipped rule's).
pub const STANDBY_TAG: &str = "autoheal:standby-nat-gateway";

impl NatFixture {
    /// The route table is tagged `table_tags`, the failing gateway `gateway_tags`.
    pub async fn create(
        sdk: &SdkConfig,
        table_tags: &[(&str, &str)],
        gateway_tags: &[(&str, &str)],
    ) -> Self {
        let ec2 = aws_sdk_ec2::Client::new(sdk);
        let (vpc, subnet) = Fleet::new(sdk).vpc_and_subnet().await;
        let failing = Self::nat_gateway(&ec2, &subnet, gateway_tags).await;
        let standby = Self::nat_gateway(&ec2, &subnet, &[("Name", "standby")]).await;
        let mut create = ec2.create_route_table().vpc_id(&vpc);
        if !table_tags.is_empty() {
            create = create.tag_specifications(ec2_tags(ResourceType::RouteTable, table_tags));
        }
        let route_table = create
            .send()
            .await
            .expect("route table")
            .route_table
            .and_then(|table| table.route_table_id)
            .expect("route table id");
        ec2.create_route()
            .route_table_id(&route_table)
            .destination_cidr_block("0.0.0.0/0")
            .nat_gateway_id(&failing)
            .send()
            .await
            .expect("default route");
        ec2.create_route()
            .route_table_id(&route_table)
            .destination_ipv6_cidr_block(NAT64)
            .nat_gateway_id(&failing)
            .send()
            .await
            .expect("NAT64 route");
        NatFixture {
            ec2,
            vpc,
            failing,
            standby,
            route_table,
        }
    }

    /// As `create`, with the route table tagged with the standby's id under [`STANDBY_TAG`].
    pub async fn with_standby(sdk: &SdkConfig, gateway_tags: &[(&str, &str)]) -> Self {
        let nat = Self::create(sdk, &[], gateway_tags).await;
        nat.ec2
            .create_tags()
            .resources(&nat.route_table)
            .tags(
                Ec2Tag::builder()
                    .key(STANDBY_TAG)
                    .value(&nat.standby)
                    .build(),
            )
            .send()
            .await
            .expect("tag the route table");
        nat
    }

    async fn nat_gateway(ec2: &aws_sdk_ec2::Client, subnet: &str, tags: &[(&str, &str)]) -> String {
        let allocation = ec2
            .allocate_address()
            .domain(DomainType::Vpc)
            .send()
            .await
            .expect("allocate")
            .allocation_id
            .expect("allocation id");
        let name = [("Name", "nat")];
        let tags = if tags.is_empty() { &name[..] } else { tags };
        ec2.create_nat_gateway()
            .subnet_id(subnet)
            .allocation_id(allocation)
            .tag_specifications(ec2_tags(ResourceType::Natgateway, tags))
            .send()
            .await
            .expect("NAT gateway")
            .nat_gateway
            .and_then(|gateway| gateway.nat_gateway_id)
            .expect("NAT gateway id")
    }

    /// (destination, NAT gateway) of the table's routes through a NAT gateway, sorted.
    pub async fn nat_routes(&self) -> Vec<(String, String)> {
        let mut routes: Vec<(String, String)> = self
            .ec2
            .describe_route_tables()
            .route_table_ids(&self.route_table)
            .send()
            .await
            .expect("route tables")
            .route_tables()
            .iter()
            .flat_map(|table| table.routes())
            .filter_map(|route| {
                let destination = route
                    .destination_cidr_block()
                    .or(route.destination_ipv6_cidr_block())?;
                Some((destination.to_owned(), route.nat_gateway_id()?.to_owned()))
            })
            .collect();
        routes.sort();
        routes
    }

    /// Puts one datapoint of `metric` (namespace `AWS/NATGateway`) for `gateway`, a minute
    /// ago, as the gateway reports it to CloudWatch.
    pub async fn report(sdk: &SdkConfig, gateway: &str, metric: &str, value: f64) {
        let minute_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        aws_sdk_cloudwatch::Client::new(sdk)
            .put_metric_data()
            .namespace("AWS/NATGateway")
            .metric_data(
                aws_sdk_cloudwatch::types::MetricDatum::builder()
                    .metric_name(metric)
                    .dimensions(
                        aws_sdk_cloudwatch::types::Dimension::builder()
                            .name("NatGatewayId")
                            .value(gateway)
                            .build(),
                    )
                    .timestamp(aws_sdk_cloudwatch::primitives::DateTime::from(minute_ago))
                    .value(value)
                    .build(),
            )
            .send()
            .await
            .expect("put metric data");
    }

    /// Whether any route table still routes through `nat_gateway_id`.
    pub async fn tables_through(&self, nat_gateway_id: &str) -> usize {
        self.ec2
            .describe_route_tables()
            .filters(
                Filter::builder()
                    .name("route.nat-gateway-id")
                    .values(nat_gateway_id)
                    .build(),
            )
            .send()
            .await
            .expect("route tables")
            .route_tables()
            .len()
    }
}
