"""What each function is benchmarked on: the emulated account it needs, and its acted event.

Every acted event is a fresh ALARM on a resource of its own (a resource autoheal acted on is in
cooldown, so reusing one would measure a skip). A scenario makes all the resources a run needs
up front, outside any timing; the duplicate of an event is the same event (same EventBridge id)
delivered again.
"""

from __future__ import annotations

import copy
import json
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

SCENARIOS: dict[str, Scenario] = {"infrastructure": INFRASTRUCTURE}
