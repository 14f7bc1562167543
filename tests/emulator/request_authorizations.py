"""What IAM authorizes for each AWS request autoheal's functions make.

One API request is authorized as one or more IAM requests: an action on a resource, with the
request context its policies' conditions read. Which ones, for each operation, is AWS's
Service Authorization Reference (the "Actions, resources, and condition keys" page of each
service); this module writes that down for the operations the functions call, with the tags
a condition may test read from the emulator's own state as they are when the request arrives
(before the request changes them). A request's tags (`aws:RequestTag`, `aws:TagKeys`) describe
only the resources it creates: a statement that needs them on another resource of the request
(a source snapshot, a source database) would be denied. `moto_request_log.py` records the
result for each request of a function; the tests evaluate it against that function's policy
in `template.yaml`.

An operation that is not written down here is recorded as unmodelled, and the tests fail on
it: a function that makes a new request needs its authorization here and its grant in the
template.
"""

from __future__ import annotations

from typing import Callable

from iam_context import (
    PARTITION,
    Call,
    Context,
    authorization,
    ec2_tags,
    ecs_tags,
    elasticache_tags,
    elbv2_tags,
    group_arn,
    group_context,
    group_of_instance,
    lambda_tags,
    merged,
    pairs,
    rds_context,
    request_tags,
    resource_tags,
    route53_tags,
    ssm_tags,
)

Model = Callable[[Call], list[dict]]


# ------------------------------------------------------------------ EC2 and EBS

EC2_TYPES = {
    "i-": "instance",
    "vol-": "volume",
    "snap-": "snapshot",
    "rtb-": "route-table",
    "nat-": "natgateway",
    "eni-": "network-interface",
    "sg-": "security-group",
    "subnet-": "subnet",
    "vpc-": "vpc",
}


def ec2_arn(call: Call, resource_id: str) -> str:
    kind = next((t for p, t in EC2_TYPES.items() if resource_id.startswith(p)), "unknown")
    # Snapshots (and images) are not named by account in their ARN.
    return call.arn("ec2", f"{kind}/{resource_id}", account=kind != "snapshot")


def ec2_resource(call: Call, action: str, resource_id: str, extra: dict | None = None) -> dict:
    context = merged(resource_tags("ec2", ec2_tags(call, resource_id)), extra or {})
    return authorization(action, ec2_arn(call, resource_id), context)


def tag_specification(call: Call, resource_type: str) -> dict[str, str]:
    for spec in call.get("TagSpecifications", []):
        if spec.get("ResourceType") == resource_type:
            return pairs(spec.get("Tags"))
    return {}


def tagged_on_create(call: Call, create_action: str, arn: str, tags: dict[str, str]) -> list[dict]:
    """Tags given in a create call are authorized as `ec2:CreateTags` on the new resource, with
    `ec2:CreateAction` naming the call."""
    if not tags:
        return []
    context = merged(request_tags(tags), {"ec2:CreateAction": [create_action]})
    return [authorization("ec2:CreateTags", arn, context)]


def ec2_on_instances(call: Call, action: str) -> list[dict]:
    return [ec2_resource(call, action, i) for i in call.get("InstanceIds", [])]


def ec2_create_tags(call: Call) -> list[dict]:
    tags = pairs(call.get("Tags"))
    return [
        ec2_resource(call, "ec2:CreateTags", resource, request_tags(tags))
        for resource in call.get("Resources", [])
    ]


def ec2_delete_tags(call: Call) -> list[dict]:
    given = call.get("Tags", [])
    keys = [t.get("Key") for t in given if t.get("Key") is not None]
    context: Context = {"aws:TagKeys": keys} if keys else {}
    context.update(
        {f"aws:RequestTag/{t['Key']}": [t["Value"]] for t in given if t.get("Value") is not None}
    )
    return [ec2_resource(call, "ec2:DeleteTags", r, context) for r in call.get("Resources", [])]


def ec2_create_snapshot(call: Call) -> list[dict]:
    # The volume is read; the request's tags describe the new snapshot only.
    new = call.arn("ec2", "snapshot/snap-new", account=False)
    tags = tag_specification(call, "snapshot")
    return [
        ec2_resource(call, "ec2:CreateSnapshot", call.get("VolumeId")),
        authorization("ec2:CreateSnapshot", new, request_tags(tags)),
        *tagged_on_create(call, "CreateSnapshot", new, tags),
    ]


def ec2_create_volume(call: Call) -> list[dict]:
    # The source snapshot is authorized too, with its own tags: the request's tags describe
    # the new volume only (EBS's resource-level permissions for CreateVolume).
    new = call.arn("ec2", "volume/vol-new")
    tags = tag_specification(call, "volume")
    found = [authorization("ec2:CreateVolume", new, request_tags(tags))]
    if call.get("SnapshotId"):
        found.append(ec2_resource(call, "ec2:CreateVolume", call.get("SnapshotId")))
    return found + tagged_on_create(call, "CreateVolume", new, tags)


def attached_instance(call: Call, volume_id: str) -> str | None:
    from moto.ec2.models import ec2_backends

    ec2 = ec2_backends[call.account][call.region]
    try:
        attachment = ec2.get_volume(volume_id).attachment
    except Exception:  # noqa: BLE001 - an unknown volume is attached to nothing
        return None
    return attachment.instance.id if attachment else None


def ec2_volume_and_instance(call: Call, action: str) -> list[dict]:
    volume = call.get("VolumeId")
    instance = call.get("InstanceId") or attached_instance(call, volume)
    found = [ec2_resource(call, action, volume)]
    if instance:
        found.append(ec2_resource(call, action, instance))
    return found


EC2 = {
    # Attributes are authorized on the instance or volume they are read of.
    "DescribeInstanceAttribute": lambda c: [
        ec2_resource(c, "ec2:DescribeInstanceAttribute", c.get("InstanceId"))
    ],
    "DescribeVolumeAttribute": lambda c: [
        ec2_resource(c, "ec2:DescribeVolumeAttribute", c.get("VolumeId"))
    ],
    "EnableVolumeIO": lambda c: [ec2_resource(c, "ec2:EnableVolumeIO", c.get("VolumeId"))],
    "RebootInstances": lambda c: ec2_on_instances(c, "ec2:RebootInstances"),
    "StopInstances": lambda c: ec2_on_instances(c, "ec2:StopInstances"),
    "StartInstances": lambda c: ec2_on_instances(c, "ec2:StartInstances"),
    "CreateTags": ec2_create_tags,
    "DeleteTags": ec2_delete_tags,
    "CreateSnapshot": ec2_create_snapshot,
    "CreateVolume": ec2_create_volume,
    "AttachVolume": lambda c: ec2_volume_and_instance(c, "ec2:AttachVolume"),
    "DetachVolume": lambda c: ec2_volume_and_instance(c, "ec2:DetachVolume"),
    "DeleteSnapshot": lambda c: [ec2_resource(c, "ec2:DeleteSnapshot", c.get("SnapshotId"))],
    "ReplaceRoute": lambda c: [ec2_resource(c, "ec2:ReplaceRoute", c.get("RouteTableId"))],
}


# ------------------------------------------------------------------ Auto Scaling


def autoscaling_group(call: Call, action: str, name: str, extra: dict | None = None) -> dict:
    context = merged(group_context(call, name), extra or {})
    return authorization(action, group_arn(call, name), context)


def autoscaling_of_instance(call: Call, action: str) -> list[dict]:
    group = group_of_instance(call, call.get("InstanceId"))
    name = group.name if group is not None else "unknown"
    return [autoscaling_group(call, action, name)]


def update_group(call: Call) -> list[dict]:
    """The condition keys AWS sets from UpdateAutoScalingGroup's parameters, when given."""
    context: Context = {}
    for parameter, key in (("MinSize", "MinSize"), ("MaxSize", "MaxSize")):
        if call.get(parameter) is not None:
            context[f"autoscaling:{key}"] = [str(call.get(parameter))]
    if call.get("VPCZoneIdentifier"):
        context["autoscaling:VPCZoneIdentifiers"] = call.get("VPCZoneIdentifier").split(",")
    if call.get("LaunchConfigurationName"):
        context["autoscaling:LaunchConfigurationName"] = [call.get("LaunchConfigurationName")]
    template = call.get("LaunchTemplate") or (call.get("MixedInstancesPolicy") or {}).get(
        "LaunchTemplate", {}
    ).get("LaunchTemplateSpecification")
    if template:
        context["autoscaling:LaunchTemplateVersionSpecified"] = [
            "true" if template.get("Version") else "false"
        ]
    if call.get("MixedInstancesPolicy"):
        launch = call.get("MixedInstancesPolicy").get("LaunchTemplate") or {}
        overrides = launch.get("Overrides") or []
        types = [o.get("InstanceType") for o in overrides if o.get("InstanceType")]
        if types:
            context["autoscaling:InstanceTypes"] = types
    name = call.get("AutoScalingGroupName")
    return [autoscaling_group(call, "autoscaling:UpdateAutoScalingGroup", name, context)]


def create_or_update_tags(call: Call) -> list[dict]:
    by_group: dict[str, dict[str, str]] = {}
    for tag in call.get("Tags", []):
        by_group.setdefault(tag.get("ResourceId"), {})[tag.get("Key")] = tag.get("Value") or ""
    return [
        autoscaling_group(call, "autoscaling:CreateOrUpdateTags", group, request_tags(tags))
        for group, tags in by_group.items()
    ]


AUTOSCALING = {
    "SetInstanceHealth": lambda c: autoscaling_of_instance(c, "autoscaling:SetInstanceHealth"),
    "TerminateInstanceInAutoScalingGroup": lambda c: autoscaling_of_instance(
        c, "autoscaling:TerminateInstanceInAutoScalingGroup"
    ),
    "SetDesiredCapacity": lambda c: [
        autoscaling_group(c, "autoscaling:SetDesiredCapacity", c.get("AutoScalingGroupName"))
    ],
    "UpdateAutoScalingGroup": update_group,
    "CreateOrUpdateTags": create_or_update_tags,
}


# ------------------------------------------------------------------ RDS


def rds_arn(call: Call, kind: str, name: str) -> str:
    return name if name.startswith("arn:") else call.arn("rds", f"{kind}:{name}")


def rds_resource(call: Call, action: str, kind: str, name: str, extra: dict | None = None) -> dict:
    arn = rds_arn(call, kind, name)
    return authorization(action, arn, merged(rds_context(call, arn), extra or {}))


def rds_created(call: Call, action: str, kind: str, name: str) -> list[dict]:
    """A resource an RDS call creates: the request's tags describe it, and tags given in the
    call are authorized as `rds:AddTagsToResource` on it."""
    arn = rds_arn(call, kind, name)
    tags = request_tags(pairs(call.get("Tags")))
    found = [authorization(action, arn, tags)]
    if tags:
        found.append(authorization("rds:AddTagsToResource", arn, tags))
    return found


def rds_groups(call: Call, action: str) -> list[dict]:
    """The option group, parameter group and subnet group a call names."""
    found = []
    for parameter, kind in (
        ("OptionGroupName", "og"),
        ("DBParameterGroupName", "pg"),
        ("DBSubnetGroupName", "subgrp"),
    ):
        if call.get(parameter):
            found.append(rds_resource(call, action, kind, call.get(parameter)))
    return found


def describe_db_snapshots(call: Call) -> list[dict]:
    if call.get("DBSnapshotIdentifier"):
        name = call.get("DBSnapshotIdentifier")
        return [rds_resource(call, "rds:DescribeDBSnapshots", "snapshot", name)]
    if call.get("DBInstanceIdentifier"):
        name = call.get("DBInstanceIdentifier")
        return [rds_resource(call, "rds:DescribeDBSnapshots", "db", name)]
    return [authorization("rds:DescribeDBSnapshots", call.arn("rds", "snapshot:*"))]


def describe_db_instances(call: Call) -> list[dict]:
    if call.get("DBInstanceIdentifier"):
        name = call.get("DBInstanceIdentifier")
        return [rds_resource(call, "rds:DescribeDBInstances", "db", name)]
    return [authorization("rds:DescribeDBInstances", call.arn("rds", "db:*"))]


def modify_db_instance(call: Call) -> list[dict]:
    context: Context = {}
    if call.get("DBInstanceClass"):
        context["rds:DatabaseClass"] = [call.get("DBInstanceClass")]
    if call.get("MultiAZ") is not None:
        context["rds:MultiAz"] = [str(call.get("MultiAZ")).lower()]
    if call.get("AllocatedStorage") is not None:
        context["rds:StorageSize"] = [str(call.get("AllocatedStorage"))]
    if call.get("ManageMasterUserPassword") is not None:
        managed = str(call.get("ManageMasterUserPassword")).lower()
        context["rds:ManageMasterUserPassword"] = [managed]
    name = call.get("DBInstanceIdentifier")
    return [
        rds_resource(call, "rds:ModifyDBInstance", "db", name, context),
        *rds_groups(call, "rds:ModifyDBInstance"),
    ]


def restore_to_point_in_time(call: Call) -> list[dict]:
    action = "rds:RestoreDBInstanceToPointInTime"
    source = call.get("SourceDBInstanceIdentifier")
    found = rds_created(call, action, "db", call.get("TargetDBInstanceIdentifier"))
    if source:
        found.append(rds_resource(call, action, "db", source))
    return found + rds_groups(call, action)


def restore_from_snapshot(call: Call) -> list[dict]:
    action = "rds:RestoreDBInstanceFromDBSnapshot"
    found = rds_created(call, action, "db", call.get("DBInstanceIdentifier"))
    found.append(rds_resource(call, action, "snapshot", call.get("DBSnapshotIdentifier")))
    return found + rds_groups(call, action)


def create_db_snapshot(call: Call) -> list[dict]:
    action = "rds:CreateDBSnapshot"
    return [
        rds_resource(call, action, "db", call.get("DBInstanceIdentifier")),
        *rds_created(call, action, "snapshot", call.get("DBSnapshotIdentifier")),
    ]


RDS = {
    "DescribeDBInstances": describe_db_instances,
    "DescribeDBSnapshots": describe_db_snapshots,
    "ListTagsForResource": lambda c: [
        authorization(
            "rds:ListTagsForResource", c.get("ResourceName"), rds_context(c, c.get("ResourceName"))
        )
    ],
    "CreateDBSnapshot": create_db_snapshot,
    "RebootDBInstance": lambda c: [
        rds_resource(c, "rds:RebootDBInstance", "db", c.get("DBInstanceIdentifier"))
    ],
    "DeleteDBSnapshot": lambda c: [
        rds_resource(c, "rds:DeleteDBSnapshot", "snapshot", c.get("DBSnapshotIdentifier"))
    ],
    "DeleteDBInstance": lambda c: [
        rds_resource(c, "rds:DeleteDBInstance", "db", c.get("DBInstanceIdentifier"))
    ],
    "ModifyDBInstance": modify_db_instance,
    "RestoreDBInstanceToPointInTime": restore_to_point_in_time,
    "RestoreDBInstanceFromDBSnapshot": restore_from_snapshot,
    "AddTagsToResource": lambda c: [
        authorization(
            "rds:AddTagsToResource",
            c.get("ResourceName"),
            merged(rds_context(c, c.get("ResourceName")), request_tags(pairs(c.get("Tags")))),
        )
    ],
}


# ------------------------------------------------------------------ Systems Manager


def parameter_arn(call: Call, name: str) -> str:
    return call.arn("ssm", f"parameter{name}" if name.startswith("/") else f"parameter/{name}")


def parameter(call: Call, action: str, name: str, extra: dict | None = None) -> dict:
    tags = resource_tags("ssm", ssm_tags(call, "Parameter", name))
    return authorization(action, parameter_arn(call, name), merged(tags, extra or {}))


def document_arn(call: Call, name: str) -> str:
    if name.startswith("arn:"):
        return name
    # Documents AWS owns are named without an account.
    owned_by_aws = name.startswith(("AWS-", "AWSSupport-", "AmazonCloudWatch-"))
    return call.arn("ssm", f"document/{name}", account=not owned_by_aws)


def send_command(call: Call) -> list[dict]:
    name = call.get("DocumentName")
    document_tags = ssm_tags(call, "Document", name.split("/")[-1]) if name else {}
    document = resource_tags("ssm", document_tags)
    found = [authorization("ssm:SendCommand", document_arn(call, name), document)]
    for instance in call.get("InstanceIds", []):
        own = resource_tags("ssm", ec2_tags(call, instance))
        found.append(ec2_resource(call, "ssm:SendCommand", instance, own))
    return found


def ssm_list_tags(call: Call) -> list[dict]:
    if call.get("ResourceType") == "Parameter":
        return [parameter(call, "ssm:ListTagsForResource", call.get("ResourceId"))]
    kind = str(call.get("ResourceType", "")).lower()
    return [
        authorization(
            "ssm:ListTagsForResource", call.arn("ssm", f"{kind}/{call.get('ResourceId')}")
        )
    ]


SSM = {
    "GetParameter": lambda c: [parameter(c, "ssm:GetParameter", c.get("Name"))],
    "GetParametersByPath": lambda c: [
        authorization("ssm:GetParametersByPath", parameter_arn(c, c.get("Path").rstrip("/") or "/"))
    ],
    "PutParameter": lambda c: [
        parameter(c, "ssm:PutParameter", c.get("Name"), request_tags(pairs(c.get("Tags"))))
    ],
    "ListTagsForResource": ssm_list_tags,
    "SendCommand": send_command,
}


# ------------------------------------------------------------------ ECS


def ecs_arn(call: Call, kind: str, cluster: str, name: str) -> str:
    if name.startswith("arn:"):
        return name
    return call.arn("ecs", f"{kind}/{cluster.split('/')[-1]}/{name}")


def ecs_resource(call: Call, action: str, kind: str, name: str) -> dict:
    cluster = call.get("cluster", "default")
    arn = ecs_arn(call, kind, cluster, name)
    cluster_arn = cluster if cluster.startswith("arn:") else call.arn("ecs", f"cluster/{cluster}")
    context = merged(resource_tags("ecs", ecs_tags(call, arn)), {"ecs:cluster": [cluster_arn]})
    return authorization(action, arn, context)


ECS = {
    "DescribeServices": lambda c: [
        ecs_resource(c, "ecs:DescribeServices", "service", s) for s in c.get("services", [])
    ],
    "DescribeTasks": lambda c: [
        ecs_resource(c, "ecs:DescribeTasks", "task", t) for t in c.get("tasks", [])
    ],
    "UpdateService": lambda c: [ecs_resource(c, "ecs:UpdateService", "service", c.get("service"))],
    "StopTask": lambda c: [ecs_resource(c, "ecs:StopTask", "task", c.get("task"))],
    "TagResource": lambda c: [
        authorization(
            "ecs:TagResource",
            c.get("resourceArn"),
            merged(
                resource_tags("ecs", ecs_tags(c, c.get("resourceArn"))),
                request_tags(pairs(c.get("tags"), "key", "value")),
            ),
        )
    ],
}


# ------------------------------------------------------------------ Lambda


def function_arn(call: Call, name: str, qualifier: str | None = None) -> str:
    arn = name if name.startswith("arn:") else call.arn("lambda", f"function:{name}")
    return f"{arn}:{qualifier}" if qualifier and arn.count(":") == 6 else arn


def lambda_resource(call: Call, action: str, name: str, qualifier: str | None = None) -> dict:
    arn = function_arn(call, name, qualifier)
    return authorization(action, arn, resource_tags("lambda", lambda_tags(call, arn)))


def lambda_tag_resource(call: Call) -> list[dict]:
    # The tags are the request's, on a function that exists: its own tags are read too.
    arn = function_arn(call, call.get("Resource"), None)
    context = merged(
        resource_tags("lambda", lambda_tags(call, arn)), request_tags(call.get("Tags") or {})
    )
    return [authorization("lambda:TagResource", arn, context)]


LAMBDA = {
    "TagResource": lambda_tag_resource,
    "GetAlias": lambda c: [lambda_resource(c, "lambda:GetAlias", c.get("FunctionName"))],
    "UpdateAlias": lambda c: [lambda_resource(c, "lambda:UpdateAlias", c.get("FunctionName"))],
    "ListVersionsByFunction": lambda c: [
        lambda_resource(c, "lambda:ListVersionsByFunction", c.get("FunctionName"))
    ],
    "ListTags": lambda c: [lambda_resource(c, "lambda:ListTags", c.get("Resource"))],
    "Invoke": lambda c: [
        lambda_resource(c, "lambda:InvokeFunction", c.get("FunctionName"), c.get("Qualifier"))
    ],
}


# ------------------------------------------------------------------ load balancing, DNS, caches


def record_name(name: str) -> str:
    return name.lower().rstrip(".")


def change_record_sets(call: Call) -> list[dict]:
    changes = (call.get("ChangeBatch") or {}).get("Changes") or []
    zone = call.get("Id") or call.get("HostedZoneId") or ""
    context = {
        "route53:ChangeResourceRecordSetsActions": sorted({c.get("Action") for c in changes}),
        "route53:ChangeResourceRecordSetsRecordTypes": sorted(
            {c.get("ResourceRecordSet", {}).get("Type") for c in changes}
        ),
        "route53:ChangeResourceRecordSetsNormalizedRecordNames": sorted(
            {record_name(c.get("ResourceRecordSet", {}).get("Name", "")) for c in changes}
        ),
    }
    return [route53(call, "route53:ChangeResourceRecordSets", "hostedzone", zone, context)]


def route53(
    call: Call, action: str, kind: str, resource_id: str, extra: Context | None = None
) -> dict:
    resource_id = resource_id.split("/")[-1]
    tags = resource_tags("route53", route53_tags(call, resource_id))
    arn = f"arn:{PARTITION}:route53:::{kind}/{resource_id}"
    return authorization(action, arn, merged(tags, extra or {}))


ELASTICLOADBALANCING = {
    "DeregisterTargets": lambda c: [
        authorization(
            "elasticloadbalancing:DeregisterTargets",
            c.get("TargetGroupArn"),
            resource_tags("elasticloadbalancing", elbv2_tags(c, c.get("TargetGroupArn"))),
        )
    ],
}

ROUTE53 = {
    "GetHealthCheck": lambda c: [
        route53(c, "route53:GetHealthCheck", "healthcheck", c.get("HealthCheckId"))
    ],
    "GetHealthCheckStatus": lambda c: [
        route53(c, "route53:GetHealthCheckStatus", "healthcheck", c.get("HealthCheckId"))
    ],
    "ListTagsForResource": lambda c: [
        route53(c, "route53:ListTagsForResource", c.get("ResourceType"), c.get("ResourceId"))
    ],
    "ListResourceRecordSets": lambda c: [
        route53(
            c, "route53:ListResourceRecordSets", "hostedzone", c.get("Id") or c.get("HostedZoneId")
        )
    ],
    "ChangeResourceRecordSets": change_record_sets,
}


def cache_cluster(call: Call, action: str) -> list[dict]:
    cluster = call.get("CacheClusterId")
    if not cluster:
        return [authorization(action, "*")]
    arn = call.arn("elasticache", f"cluster:{cluster}")
    return [authorization(action, arn, resource_tags("elasticache", elasticache_tags(call, arn)))]


ELASTICACHE = {
    "DescribeCacheClusters": lambda c: cache_cluster(c, "elasticache:DescribeCacheClusters"),
    "ListTagsForResource": lambda c: [
        authorization(
            "elasticache:ListTagsForResource",
            c.get("ResourceName"),
            resource_tags("elasticache", elasticache_tags(c, c.get("ResourceName"))),
        )
    ],
}


# ------------------------------------------------------------------ the adapters every function has


def table_arn(call: Call, name: str) -> str:
    return name if name.startswith("arn:") else call.arn("dynamodb", f"table/{name}")


def on_table(action: str) -> Model:
    def model(call: Call) -> list[dict]:
        arn = table_arn(call, call.get("TableName"))
        if call.get("IndexName"):
            arn = f"{arn}/index/{call.get('IndexName')}"
        return [authorization(action, arn)]

    return model


TRANSACT_ACTIONS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
    "Get": "dynamodb:GetItem",
}


def transact(call: Call) -> list[dict]:
    """A transaction is authorized item by item, as the item's own action."""
    found = []
    for item in call.get("TransactItems", []):
        for kind, action in TRANSACT_ACTIONS.items():
            if item.get(kind):
                found.append(authorization(action, table_arn(call, item[kind].get("TableName"))))
    return found


def per_table(action: str, parameter: str) -> Model:
    return lambda call: [authorization(action, table_arn(call, t)) for t in call.get(parameter, {})]


DYNAMODB = {
    **{
        op: on_table(f"dynamodb:{op}")
        for op in ("GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan")
    },
    "BatchGetItem": per_table("dynamodb:BatchGetItem", "RequestItems"),
    "BatchWriteItem": per_table("dynamodb:BatchWriteItem", "RequestItems"),
    "TransactWriteItems": transact,
    "TransactGetItems": transact,
}


def schedule(call: Call, action: str) -> list[dict]:
    group = call.get("GroupName") or "default"
    found = [authorization(action, call.arn("scheduler", f"schedule/{group}/{call.get('Name')}"))]
    role = (call.get("Target") or {}).get("RoleArn")
    if role and action in ("scheduler:CreateSchedule", "scheduler:UpdateSchedule"):
        passed = {"iam:PassedToService": ["scheduler.amazonaws.com"]}
        found.append(authorization("iam:PassRole", role, passed))
    return found


SCHEDULER = {
    "CreateSchedule": lambda c: schedule(c, "scheduler:CreateSchedule"),
    "GetSchedule": lambda c: schedule(c, "scheduler:GetSchedule"),
    "DeleteSchedule": lambda c: schedule(c, "scheduler:DeleteSchedule"),
}

CLOUDWATCH = {
    "DescribeAlarms": lambda c: [
        authorization("cloudwatch:DescribeAlarms", c.arn("cloudwatch", f"alarm:{name}"))
        for name in c.get("AlarmNames", [])
    ]
    or [authorization("cloudwatch:DescribeAlarms", "*")],
    "ListTagsForResource": lambda c: [
        authorization("cloudwatch:ListTagsForResource", c.get("ResourceARN"))
    ],
}

SNS = {"Publish": lambda c: [authorization("sns:Publish", c.get("TopicArn") or c.get("TargetArn"))]}


def assume_role(call: Call) -> list[dict]:
    """The role, with the account that owns it and the session's name."""
    role = call.get("RoleArn") or ""
    parts = role.split(":")
    context: Context = {"sts:RoleSessionName": [call.get("RoleSessionName") or ""]}
    if len(parts) > 4 and parts[4]:
        context["aws:ResourceAccount"] = [parts[4]]
    return [authorization("sts:AssumeRole", role, context)]


STS = {"AssumeRole": assume_role}


# ------------------------------------------------------------------ the table of services

# moto's name of a service, its IAM prefix, and its operations' models.
SERVICES: dict[str, tuple[str, dict[str, Model]]] = {
    "ec2": ("ec2", EC2),
    "autoscaling": ("autoscaling", AUTOSCALING),
    "rds": ("rds", RDS),
    "ssm": ("ssm", SSM),
    "ecs": ("ecs", ECS),
    "awslambda": ("lambda", LAMBDA),
    "elbv2": ("elasticloadbalancing", ELASTICLOADBALANCING),
    "route53": ("route53", ROUTE53),
    "elasticache": ("elasticache", ELASTICACHE),
    "dynamodb": ("dynamodb", DYNAMODB),
    "scheduler": ("scheduler", SCHEDULER),
    "cloudwatch": ("cloudwatch", CLOUDWATCH),
    "sns": ("sns", SNS),
    "sts": ("sts", STS),
    "cloudtrail": ("cloudtrail", {}),
}

# Reads whose IAM action has the operation's name and that AWS authorizes on every
# resource (`Resource: "*"`) only.
READS_ON_EVERY_RESOURCE = {
    "ec2": {
        "DescribeInstances",
        "DescribeInstanceStatus",
        "DescribeInstanceTypes",
        "DescribeVolumes",
        "DescribeVolumeStatus",
        "DescribeSnapshots",
        "DescribeNatGateways",
        "DescribeRouteTables",
    },
    "autoscaling": {
        "DescribeAutoScalingInstances",
        "DescribeAutoScalingGroups",
        "DescribeInstanceRefreshes",
    },
    "rds": {"DescribeEvents"},
    "cloudtrail": {"LookupEvents"},
    "ssm": {"DescribeInstanceInformation", "ListCommands"},
    "ecs": {"ListClusters", "ListServices", "ListTasks"},
    "elbv2": {"DescribeTargetHealth", "DescribeTags"},
    "route53": {"ListHostedZones"},
    "cloudwatch": {"GetMetricData"},
    "scheduler": {"ListSchedules"},
}


def authorizations(service: str, operation: str, call: Call) -> tuple[str, list[dict] | None]:
    """`prefix:Operation` and what IAM authorizes for it; `None` when it is not modelled."""
    prefix, operations = SERVICES.get(service, (service, {}))
    name = f"{prefix}:{operation}"
    if operation in READS_ON_EVERY_RESOURCE.get(service, set()):
        return name, [authorization(name, "*")]
    model = operations.get(operation)
    return name, model(call) if model else None
