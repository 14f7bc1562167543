"""What each function is benchmarked on: the emulated account it needs, and its acted event.

Every acted event is a fresh ALARM on a resource of its own (a resource autoheal acted on is in
cooldown, so reusing one would measure a skip). A scenario makes all the resources a run needs
up front, outside any timing; the duplicate of an event is the same event (same EventBridge id)
delivered again.
"""

from __future__ import annotations

import copy
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import boto3

REPO = Path(__file__).resolve().parents[1]
EVENTS = REPO / "events"
ACCOUNT = "123456789012"
REGION = "us-east-1"
TABLE = "autoheal-state"
TOPIC = "autoheal-notifications"
SCHEDULE_GROUP = "autoheal-follow-ups"


def sample_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def client(service: str, endpoint: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@dataclass
class Deployment:
    """autoheal's own resources, as `autoheal bootstrap` and the template make them."""

    topic_arn: str

    @classmethod
    def bootstrap(cls, endpoint: str) -> "Deployment":
        dynamodb = client("dynamodb", endpoint)
        # The definition of shared/aws/src/bootstrap.rs (`ensure_table`).
        dynamodb.create_table(
            TableName=TABLE,
            BillingMode="PAY_PER_REQUEST",
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            SSESpecification={"Enabled": True},
        )
        dynamodb.update_time_to_live(
            TableName=TABLE,
            TimeToLiveSpecification={"AttributeName": "expires_at", "Enabled": True},
        )
        dynamodb.update_continuous_backups(
            TableName=TABLE,
            PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
        )
        topic_arn = client("sns", endpoint).create_topic(Name=TOPIC)["TopicArn"]
        client("scheduler", endpoint).create_schedule_group(Name=SCHEDULE_GROUP)
        return cls(topic_arn)

    @staticmethod
    def emptier(endpoint: str) -> Callable[[], None]:
        """Deletes every item of the state table. The emulator's TransactWriteItems deep-copies
        the whole table for each item it writes (its rollback), so its time grows with the
        table, which DynamoDB's does not: emptied between events, every event meets the same
        emulator. Each acted event has a resource of its own, so no event needs an older
        event's items."""
        dynamodb = client("dynamodb", endpoint)

        def empty() -> None:
            keys = []
            for page in dynamodb.get_paginator("scan").paginate(TableName=TABLE, ProjectionExpression="pk, sk"):
                keys += page["Items"]
            for start in range(0, len(keys), 25):
                batch = [{"DeleteRequest": {"Key": key}} for key in keys[start : start + 25]]
                dynamodb.batch_write_item(RequestItems={TABLE: batch})

        return empty

    def environment(self, layer: str, rules_path: Path) -> dict[str, str]:
        """The function's configuration, as the template sets it (shared/aws/src/config.rs)."""
        return {
            "AUTOHEAL_TABLE_NAME": TABLE,
            "AUTOHEAL_TOPIC_ARN": self.topic_arn,
            "AUTOHEAL_MODE": "enforce",
            "AUTOHEAL_ENABLED_LAYERS": "all",
            # Budgets stay on (their reads and writes are part of every acted event) but are
            # far from spent, so the hundredth acted event takes the same path as the first.
            "AUTOHEAL_LAYER_BUDGET": "1000000/900",
            "AUTOHEAL_GLOBAL_BUDGET": "1000000/900",
            "AUTOHEAL_RULES_PATH": str(rules_path),
            "AUTOHEAL_SCHEDULE_GROUP": SCHEDULE_GROUP,
            "AUTOHEAL_SCHEDULER_ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/autoheal-scheduler",
            "AUTOHEAL_FUNCTION_ARN": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:autoheal-{layer}",
        }


def bench_rules(out: Path) -> Path:
    """The shipped rules with the per-rule action budget lifted (the only change): a run acts
    on more resources of one rule than the shipped 5 per 15 minutes allow."""
    shipped = (REPO / "rules" / "autoheal-rules.toml").read_text()
    lines = []
    in_defaults = False
    for line in shipped.splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            in_defaults = stripped == "[defaults]"
        if in_defaults and stripped.startswith("max_actions_per_window"):
            line = "max_actions_per_window = 1000000"
        lines.append(line)
    text = "\n".join(lines) + "\n"
    if "max_actions_per_window = 1000000" not in text:
        raise RuntimeError("the shipped rules have no [defaults] max_actions_per_window to lift")
    path = out / "bench-rules.toml"
    path.write_text(text)
    return path


# How CloudWatch's state reason says the datapoints compared with the threshold (longest
# phrase first: "greater than" is in "greater than or equal to").
COMPARISONS = (
    ("greater than or equal to", "GreaterThanOrEqualToThreshold"),
    ("less than or equal to", "LessThanOrEqualToThreshold"),
    ("greater than", "GreaterThanThreshold"),
    ("less than", "LessThanThreshold"),
)


def fire(endpoint: str, event: dict[str, Any]) -> None:
    """Makes `event` true in the emulator's CloudWatch, as `autoheal invoke --fire` does:
    autoheal acts only on an alarm CloudWatch holds as the event describes it, in its state,
    comparing in the direction its rule heals (read from the event's state reason)."""
    cloudwatch = client("cloudwatch", endpoint)
    detail = event["detail"]
    queries = []
    for query in detail["configuration"]["metrics"]:
        metric = query["metricStat"]["metric"]
        queries.append(
            {
                "Namespace": metric["namespace"],
                "MetricName": metric["name"],
                "Dimensions": [{"Name": k, "Value": v} for k, v in metric.get("dimensions", {}).items()],
                "Statistic": query["metricStat"]["stat"],
                "Period": query["metricStat"]["period"],
            }
        )
    if len(queries) != 1:
        raise ValueError(f"the bench fires single-metric alarms only: {detail['alarmName']}")
    reason = detail["state"]["reason"]
    comparison = next((op for phrase, op in COMPARISONS if f" {phrase} the threshold" in reason), None)
    if comparison is None:
        raise ValueError(f"no comparison in the state reason of {detail['alarmName']}: {reason}")
    cloudwatch.put_metric_alarm(
        AlarmName=detail["alarmName"],
        **queries[0],
        EvaluationPeriods=1,
        Threshold=float(json.loads(detail["state"]["reasonData"])["threshold"]),
        ComparisonOperator=comparison,
    )
    cloudwatch.set_alarm_state(AlarmName=detail["alarmName"], StateValue=detail["state"]["value"], StateReason="bench")


def set_dimension(event: dict[str, Any], name: str, value: str) -> None:
    event["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"]["dimensions"][name] = value


@dataclass
class Scenario:
    """One function's benchmark: its layer, the emulator shims it needs, how to make `n`
    fresh resources, and the ALARM event for one of them."""

    layer: str
    rule: str
    action: str
    shims: tuple[str, ...]
    prepare: Callable[[str, int], list[str]]
    event: Callable[[str, str], dict[str, Any]]
    # The module of bench/baseline/ that mirrors this path in Python, if any.
    baseline: str | None = None
    # Configuration beyond the deployment's (e.g. a hook function's name).
    environment: dict[str, str] = field(default_factory=dict)


# --- infrastructure: ec2-instance-healing, a failed instance status check → reboot ----------


def _ec2_instances(endpoint: str, count: int) -> list[str]:
    ec2 = client("ec2", endpoint)
    cloudwatch = client("cloudwatch", endpoint)
    image = ec2.describe_images()["Images"][0]["ImageId"]
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/18", AvailabilityZone="us-east-1a")[
        "Subnet"
    ]["SubnetId"]
    group = ec2.create_security_group(GroupName="web", Description="web servers", VpcId=vpc)["GroupId"]
    ids: list[str] = []
    while len(ids) < count:
        batch = min(50, count - len(ids))
        reservation = ec2.run_instances(
            ImageId=image,
            InstanceType="t3.small",
            SubnetId=subnet,
            SecurityGroupIds=[group],
            MinCount=batch,
            MaxCount=batch,
            TagSpecifications=[
                {
                    "ResourceType": "instance",
                    # Read by tests/emulator/moto_ec2_status_checks.py: the guest check fails.
                    "Tags": [{"Key": "Name", "Value": "web"}, {"Key": "emulator:instance-status", "Value": "impaired"}],
                }
            ],
        )
        ids.extend(i["InstanceId"] for i in reservation["Instances"])
    for instance in ids:
        # The alarm a follow-up reads back, as a deployment has it.
        cloudwatch.put_metric_alarm(
            AlarmName=f"{instance}-instance-status-check-failed",
            Namespace="AWS/EC2",
            MetricName="StatusCheckFailed_Instance",
            Dimensions=[{"Name": "InstanceId", "Value": instance}],
            Statistic="Maximum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=1.0,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
        )
    return ids


def _ec2_event(instance: str, event_id: str) -> dict[str, Any]:
    event = copy.deepcopy(sample_event("ec2-instance-healing.alarm.json"))
    event["id"] = event_id
    name = f"{instance}-instance-status-check-failed"
    event["detail"]["alarmName"] = name
    event["resources"] = [f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}"]
    event["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"]["name"] = "StatusCheckFailed_Instance"
    set_dimension(event, "InstanceId", instance)
    return event


INFRASTRUCTURE = Scenario(
    layer="infrastructure",
    rule="ec2-instance-healing",
    action="RebootInstances of an instance whose instance status check fails",
    shims=("moto_ec2_status_checks.py",),
    prepare=_ec2_instances,
    event=_ec2_event,
    baseline="infrastructure",
)


def _aimed(sample: str, dimension: str, value: str, event_id: str) -> dict[str, Any]:
    """The sample's event for one resource, under an alarm of its own (the sample's name and the
    resource), as a deployment has one alarm per resource: the warm series fires all its alarms
    before its process starts, and one alarm would hold only the last resource's metric."""
    event = copy.deepcopy(sample_event(sample))
    event["id"] = event_id
    name = f"{event['detail']['alarmName']}-{value.replace('/', '-')}"
    event["detail"]["alarmName"] = name
    event["resources"] = [f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}"]
    set_dimension(event, dimension, value)
    return event


# --- platform: lambda-function-healing, errors after a release → the alias back to 1 ------------


def _lambda_functions(endpoint: str, count: int) -> list[str]:
    import io
    import zipfile

    iam = client("iam", endpoint)
    lambda_ = client("lambda", endpoint)
    role = iam.create_role(
        RoleName="orders-role",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
            }
        ),
    )["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("bootstrap", "")
    names = []
    for index in range(count):
        name = f"orders-processor-{index:04d}"
        lambda_.create_function(
            FunctionName=name,
            Runtime="provided.al2023",
            Handler="bootstrap",
            Role=role,
            Code={"ZipFile": code.getvalue()},
        )
        for release in ("1", "2"):
            # A version is published only when the function changed since the last one.
            lambda_.update_function_configuration(FunctionName=name, Description=f"release {release}")
            lambda_.publish_version(FunctionName=name)
        # Release 2 deployed over 1: the alias's history (CloudTrail) says 1 was live before.
        lambda_.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
        lambda_.update_alias(FunctionName=name, Name="live", FunctionVersion="2")
        names.append(name)
    return names


PLATFORM = Scenario(
    layer="platform",
    rule="lambda-function-healing",
    action="UpdateAlias: the alias `live` back from version 2 to 1",
    shims=("moto_cloudtrail_lookup_events.py",),
    prepare=_lambda_functions,
    event=lambda name, event_id: _aimed("lambda-function-healing.alarm.json", "FunctionName", name, event_id),
)


# --- application: circuit-breaker-healing, an open breaker → half-open ----------------------------


def _breakers(endpoint: str, count: int) -> list[str]:
    ssm = client("ssm", endpoint)
    services = []
    for index in range(count):
        service = f"orders-api-{index:04d}"
        ssm.put_parameter(
            Name=f"/autoheal/{service}/circuit-breaker",
            Type="String",
            Value=json.dumps({"state": "open", "dependency": "inventory", "opened_at": "2026-11-24T06:41:00Z"}),
        )
        services.append(service)
    return services


APPLICATION = Scenario(
    layer="application",
    rule="circuit-breaker-healing",
    action="PutParameter: an open circuit breaker half-opened",
    shims=(),
    prepare=_breakers,
    event=lambda service, event_id: _aimed("circuit-breaker-healing.alarm.json", "Service", service, event_id),
    # The stack's restart document, which the function requires at start (no restart here).
    environment={"AUTOHEAL_RESTART_DOCUMENT": "autoheal-restart-process"},
)


# --- data: cache-invalidation-healing, a collapsed hit rate → the cache hook invoked --------------


def _caches(endpoint: str, count: int) -> list[str]:
    import urllib.request

    # The emulator's Lambda answers an Invoke with the request it received, without Docker.
    urllib.request.urlopen(
        urllib.request.Request(
            f"{endpoint}/moto-api/config",
            data=json.dumps({"lambda": {"use_docker": False}}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        ),
        timeout=10,
    ).read()
    elasticache = client("elasticache", endpoint)
    ids = []
    for index in range(count):
        cluster = f"sessions-cache-{index:04d}"
        elasticache.create_cache_cluster(
            CacheClusterId=cluster, Engine="redis", CacheNodeType="cache.t3.micro", NumCacheNodes=1
        )
        ids.append(cluster)
    return ids


DATA = Scenario(
    layer="data",
    rule="cache-invalidation-healing",
    action="Invoke of the cache hook for an available ElastiCache cluster",
    shims=(),
    prepare=_caches,
    event=lambda cluster, event_id: _aimed("cache-invalidation-healing.alarm.json", "CacheClusterId", cluster, event_id),
)


# --- network: alb-target-healing, a stopped target → deregistered ---------------------------------


def _target_groups(endpoint: str, count: int) -> list[str]:
    ec2 = client("ec2", endpoint)
    elb = client("elbv2", endpoint)
    image = ec2.describe_images()["Images"][0]["ImageId"]
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/18", AvailabilityZone="us-east-1a")[
        "Subnet"
    ]["SubnetId"]
    dimensions = []
    for index in range(count):
        # Three targets, one failing its health checks (tests/emulator/moto_elbv2_target_health.py):
        # within the group guard (one of three in healing, a third unhealthy), so it is
        # deregistered.
        instances = [
            i["InstanceId"]
            for i in ec2.run_instances(
                ImageId=image, InstanceType="t3.micro", SubnetId=subnet, MinCount=3, MaxCount=3
            )["Instances"]
        ]
        arn = elb.create_target_group(
            Name=f"web-{index:04d}",
            Protocol="HTTP",
            Port=80,
            VpcId=vpc,
            TargetType="instance",
            Tags=[{"Key": "emulator:unhealthy-targets", "Value": instances[0]}],
        )["TargetGroups"][0]["TargetGroupArn"]
        elb.register_targets(TargetGroupArn=arn, Targets=[{"Id": i, "Port": 80} for i in instances])
        dimensions.append(arn.rsplit(":", 1)[-1])
    return dimensions


NETWORK = Scenario(
    layer="network",
    rule="alb-target-healing",
    action="DeregisterTargets of a failing target (one of three)",
    shims=("moto_elbv2_target_health.py",),
    prepare=_target_groups,
    event=lambda group, event_id: _aimed("alb-target-healing.alarm.json", "TargetGroup", group, event_id),
)

SCENARIOS: dict[str, Scenario] = {
    scenario.layer: scenario for scenario in (INFRASTRUCTURE, PLATFORM, APPLICATION, DATA, NETWORK)
}


def chosen(functions: str) -> list[str]:
    """The layers a comma-separated `--functions` names; exits on one without a scenario."""
    names = [name.strip() for name in functions.split(",") if name.strip()]
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown:
        sys.exit(f"unknown function(s) {unknown}; known: {list(SCENARIOS)}")
    return names
