"""The parts of an IAM request the emulator can fill in: a request's parameters and place, the
IAM requests it makes up, and the request context their conditions read (the resource's tags
as the emulator holds them, the tags the request sets). `request_authorizations.py` builds on
these, operation by operation.
"""

from __future__ import annotations

from typing import Any, Callable

PARTITION = "aws"

Context = dict[str, list[str]]


class Call:
    """One request as the model sees it: the parsed parameters and where it was sent."""

    def __init__(self, params: Any, account: str, region: str) -> None:
        self.params = params
        self.account = account
        self.region = region

    def get(self, name: str, default: Any = None) -> Any:
        value = self.params.get(name) if self.params is not None else None
        return default if value is None else value

    def arn(self, service: str, resource: str, region: bool = True, account: bool = True) -> str:
        return ":".join(
            [
                "arn",
                PARTITION,
                service,
                self.region if region else "",
                self.account if account else "",
                resource,
            ]
        )


def authorization(action: str, resource: str, context: Context | None = None) -> dict:
    return {"action": action, "resource": resource, "context": context or {}}


def resource_tags(prefix: str, tags: dict[str, str], *more: str) -> Context:
    """The context keys of a resource's tags: `aws:ResourceTag/k` and the service's own."""
    context: Context = {}
    for key, value in tags.items():
        for name in ("aws:ResourceTag", f"{prefix}:ResourceTag", *more):
            context[f"{name}/{key}"] = [value]
    return context


def request_tags(tags: dict[str, str]) -> Context:
    """The context keys of the tags a request sets."""
    context = {f"aws:RequestTag/{key}": [value] for key, value in tags.items()}
    if tags:
        context["aws:TagKeys"] = list(tags)
    return context


def pairs(tags: Any, key: str = "Key", value: str = "Value") -> dict[str, str]:
    """`[{"Key": k, "Value": v}, ...]` (or another spelling of the two) as a dict."""
    found: dict[str, str] = {}
    for tag in tags or []:
        name = tag.get(key) if hasattr(tag, "get") else None
        if name is not None:
            found[name] = tag.get(value) or ""
    return found


def merged(*contexts: Context) -> Context:
    result: Context = {}
    for context in contexts:
        result.update(context)
    return result


def backend(module: str, name: str, call: Call, region: str | None = None) -> Any:
    """moto's backend of a service for the request's account and region (`region` for a
    service moto keeps under another key): a wrong key raises, and the request is reported."""
    backends = getattr(__import__(f"moto.{module}.models", fromlist=[name]), name)
    return backends[call.account][region or call.region]


def tags_of(read: Callable[[], Any], spelled: tuple[str, str] | None = None) -> dict[str, str]:
    """A resource's tags as `read` answers them (a dict, or pairs spelled `spelled`); none
    when the emulator does not know the resource (IAM still authorizes a request on a
    resource that does not exist)."""
    try:
        answer = read()
    except Exception:  # noqa: BLE001 - moto's "not found" differs by service
        return {}
    if spelled is not None:
        return pairs(answer, *spelled)
    return dict(answer or {})


# ------------------------------------------------------------------ each service's tags


def ec2_tags(call: Call, resource_id: str) -> dict[str, str]:
    ec2 = backend("ec2", "ec2_backends", call)
    return tags_of(lambda: ec2.tags.get(resource_id, {}))


def autoscaling_groups(call: Call) -> dict[str, Any]:
    return backend("autoscaling", "autoscaling_backends", call).autoscaling_groups


def group_of_instance(call: Call, instance_id: str) -> Any:
    for group in autoscaling_groups(call).values():
        if any(state.instance.id == instance_id for state in group.instance_states):
            return group
    return None


def group_arn(call: Call, name: str) -> str:
    group = autoscaling_groups(call).get(name)
    if group is not None and getattr(group, "arn", None):
        return group.arn
    return call.arn("autoscaling", f"autoScalingGroup:unknown:autoScalingGroupName/{name}")


def group_context(call: Call, name: str | None) -> Context:
    group = autoscaling_groups(call).get(name) if name else None
    tags = pairs(group.tags, "Key", "Value") if group is not None else {}
    if group is not None and not tags:
        tags = pairs(group.tags, "key", "value")
    return resource_tags("autoscaling", tags)


RDS_TAG_KEYS = {
    "db": "rds:db-tag",
    "snapshot": "rds:snapshot-tag",
    "pg": "rds:pg-tag",
    "og": "rds:og-tag",
    "subgrp": "rds:subgrp-tag",
    "secgrp": "rds:secgrp-tag",
}


def rds_context(call: Call, arn: str) -> Context:
    rds = backend("rds", "rds_backends", call)
    tags = tags_of(lambda: rds.list_tags_for_resource(arn), ("Key", "Value"))
    kind = arn.split(":")[5]
    more = [RDS_TAG_KEYS[kind]] if kind in RDS_TAG_KEYS else []
    return resource_tags("rds", tags, *more)


def ssm_tags(call: Call, kind: str, name: str) -> dict[str, str]:
    ssm = backend("ssm", "ssm_backends", call)
    return tags_of(lambda: ssm.list_tags_for_resource(kind, name))


def ecs_tags(call: Call, arn: str) -> dict[str, str]:
    ecs = backend("ecs", "ecs_backends", call)
    return tags_of(lambda: ecs.list_tags_for_resource(arn), ("key", "value"))


def lambda_tags(call: Call, arn: str) -> dict[str, str]:
    functions = backend("awslambda", "lambda_backends", call)
    unqualified = ":".join(arn.split(":")[:7])
    return tags_of(lambda: functions.list_tags(unqualified))


def elbv2_tags(call: Call, arn: str) -> dict[str, str]:
    tagging = backend("elbv2", "elbv2_backends", call).tagging_service
    return tags_of(lambda: tagging.get_tag_dict_for_resource(arn))


def route53_tags(call: Call, resource_id: str) -> dict[str, str]:
    route53 = backend("route53", "route53_backends", call, PARTITION)
    return tags_of(lambda: route53.list_tags_for_resource(resource_id))


def elasticache_tags(call: Call, arn: str) -> dict[str, str]:
    elasticache = backend("elasticache", "elasticache_backends", call)
    return tags_of(
        lambda: elasticache.list_tags_for_resource(arn).get("Tags"), ("Key", "Value")
    )
