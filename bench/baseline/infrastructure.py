"""The boto3 baseline of the infrastructure function's `ec2-instance-healing` path.

It does what the Rust function does for a status-check alarm on a standalone instance, with
the same requests in the same order (shared/aws/src/state/, shared/core/src/engine/,
functions/infrastructure/src/ec2.rs), so the two differ only in language, runtime and SDK:

    parse the EventBridge event, select the rule (tag, name prefix, metric) from the rules file
    DescribeAlarms    the alarm as CloudWatch holds it: there, watching the event's metric, in
                      ALARM, firing in the rule's direction, with no EC2 stop or terminate action
    DescribeAutoScalingInstances     the group guard: is it a group member?
    DescribeInstances, DescribeAutoScalingInstances, DescribeInstanceStatus,
    DescribeInstanceTypes            the healer's read-only look before a new attempt (the
                      instance type once per process: its description does not change)
    CreateSchedule    the follow-up, before the claim (a scheduler that cannot be reached
                      leaves nothing done)
    decide on nothing stored (no state, the event unclaimed, no budget spent): a new incident
    TransactWriteItems  event claim (new), state (none stored), `in_progress` record, and per
                      budget the current window counted (below the limit) and the previous
                      one checked (empty); a refusal returns the stored claim and state
      duplicate:      refused with the event's claim: ignored, and done
    DescribeInstances, DescribeAutoScalingInstances, DescribeInstanceStatus,
    RebootInstances   the action: the same look again, live (the type as described), then
                      the reboot (reboot first)
    TransactWriteItems  the `completed` record, and the lease released with version + 1
                      (condition: the lease is this run's; when it is not, PutItem of the record)
    Publish           the notification, with its filterable attributes

Only what that path needs is here: other actions, follow-up checks, the stop and start,
reverts and escalations are out of scope (an event that needs them is an error).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
import tomllib
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import boto3
from botocore.config import Config

LAYER = "infrastructure"
OPT_OUT_TAG = "autoheal:disabled"
INSTANCE_ID = re.compile(r"^i-([0-9a-f]{8}|[0-9a-f]{17})$")


def _env(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, "").strip()
    if value:
        return value
    if default is None:
        raise RuntimeError(f"{name} is not set")
    return default


def _budget(name: str, default: tuple[int, int]) -> tuple[int, int] | None:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    if value == "off":
        return None
    count, seconds = value.split("/")
    return int(count), int(seconds)


# --- init: configuration, rules and clients, once per container (as the Rust `run` does) ----

TABLE = _env("AUTOHEAL_TABLE_NAME", "autoheal-state")
TOPIC_ARN = _env("AUTOHEAL_TOPIC_ARN")
MODE = _env("AUTOHEAL_MODE", "enforce")
SCHEDULE_GROUP = _env("AUTOHEAL_SCHEDULE_GROUP", "default")
SCHEDULER_ROLE_ARN = _env("AUTOHEAL_SCHEDULER_ROLE_ARN")
FUNCTION_ARN = _env("AUTOHEAL_FUNCTION_ARN")
LAYER_BUDGET = _budget("AUTOHEAL_LAYER_BUDGET", (10, 900))
GLOBAL_BUDGET = _budget("AUTOHEAL_GLOBAL_BUDGET", (20, 900))

with open(_env("AUTOHEAL_RULES_PATH"), "rb") as rules_file:
    _RULES_FILE = tomllib.load(rules_file)
DEFAULTS: dict[str, Any] = _RULES_FILE.get("defaults", {})
RULES: list[dict[str, Any]] = _RULES_FILE["rule"]

# The SDK settings of shared/aws/src/config.rs: three attempts, standard backoff, 3 s to
# connect, 20 s per attempt.
_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 3},
    connect_timeout=3,
    read_timeout=20,
)
# The clients the Rust function builds at init: the state store, the notifier, the follow-ups
# (Scheduler, CloudWatch) and the layer's healer (EC2, Auto Scaling).
_session = boto3.session.Session()
dynamodb = _session.client("dynamodb", config=_CONFIG)
sns = _session.client("sns", config=_CONFIG)
scheduler = _session.client("scheduler", config=_CONFIG)
cloudwatch = _session.client("cloudwatch", config=_CONFIG)
ec2 = _session.client("ec2", config=_CONFIG)
autoscaling = _session.client("autoscaling", config=_CONFIG)


# --- helpers -----------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def _expiry(at: datetime, days: int) -> dict[str, str]:
    return _n(int((at + timedelta(days=days)).timestamp()))


def _policy(rule: dict[str, Any], name: str, default: Any) -> Any:
    return rule.get(name, DEFAULTS.get(name, default))


def _log(**fields: Any) -> None:
    print(json.dumps({"level": "INFO", "timestamp": _iso(_now()), "fields": fields}), flush=False)


def _metric(name: str, dimensions: dict[str, str]) -> None:
    # The embedded metric format line the Rust function writes for each outcome.
    print(
        json.dumps(
            {
                **dimensions,
                name: 1,
                "_aws": {
                    "Timestamp": int(time.time() * 1000),
                    "CloudWatchMetrics": [
                        {
                            "Namespace": "autoheal",
                            "Dimensions": [list(dimensions)],
                            "Metrics": [{"Name": name, "Unit": "Count"}],
                        }
                    ],
                },
            }
        ),
        flush=True,
    )


# --- the event -------------------------------------------------------------------------------


class InvalidEvent(Exception):
    pass


def _parse(event: dict[str, Any]) -> dict[str, Any]:
    if event.get("detail-type") != "CloudWatch Alarm State Change" or event.get("source") != "aws.cloudwatch":
        raise InvalidEvent("not a CloudWatch alarm state change")
    detail = event.get("detail") or {}
    name = detail.get("alarmName")
    state = (detail.get("state") or {}).get("value")
    if not isinstance(name, str) or state not in ("ALARM", "OK", "INSUFFICIENT_DATA"):
        raise InvalidEvent("no alarm name or state")
    metrics = []
    for query in (detail.get("configuration") or {}).get("metrics") or []:
        metric = (query.get("metricStat") or {}).get("metric")
        if metric:
            metrics.append(metric)
    return {
        "id": event["id"],
        "name": name,
        "state": state,
        "metrics": metrics,
        "tags": detail.get("alarmTags") or {},
        "arn": (event.get("resources") or [""])[0],
    }


def _select(alarm: dict[str, Any]) -> dict[str, Any] | None:
    """The rule the alarm selects, by the most explicit selector that matches any rule."""
    enabled = [rule for rule in RULES if rule.get("enabled", True)]
    tagged = alarm["tags"].get("autoheal:rule")
    if tagged:
        return next((r for r in enabled if r["name"] == tagged), None)
    for rule in enabled:
        if any(alarm["name"].startswith(p) for p in rule.get("alarm_name_prefixes", [])):
            return rule
    for rule in enabled:
        trigger = rule.get("trigger", {})
        for metric in alarm["metrics"]:
            if metric.get("namespace") != trigger.get("namespace"):
                continue
            if trigger.get("metrics") and metric.get("name") not in trigger["metrics"]:
                continue
            if all(d in (metric.get("dimensions") or {}) for d in trigger.get("dimensions", [])):
                return rule
    return None


# --- the state store -----------------------------------------------------------------------------


def _resource_pk(rule: str, resource: str) -> str:
    return f"RESOURCE#{rule}#{resource}"


def _record_item(record: dict[str, Any]) -> dict[str, Any]:
    started = record["started_at"]
    item = {
        "pk": _s(f"RUNS#{started[:10]}"),
        "sk": _s(f"{started.replace('Z', '+00:00')}#{record['id']}"),
        "item_type": _s("healing-record"),
        "expires_at": _expiry(datetime.fromisoformat(started), 90),
    }
    for key, value in record.items():
        if value is None:
            continue
        if isinstance(value, bool):
            item[key] = {"BOOL": value}
        elif isinstance(value, int):
            item[key] = _n(value)
        elif isinstance(value, dict):
            if value:
                item[key] = {"M": {k: _s(str(v)) for k, v in value.items()}}
        else:
            item[key] = _s(str(value))
    return item


def _windows(now: datetime, seconds: int) -> tuple[int, int]:
    start = int(now.timestamp()) // seconds * seconds
    return start - seconds, start


def _budgets(rule: dict[str, Any]) -> list[tuple[str, int, int]]:
    """(scope, limit, window seconds) of each budget the attempt spends."""
    budgets = [
        (
            f"rule#{rule['name']}",
            int(_policy(rule, "max_actions_per_window", 5)),
            int(_policy(rule, "budget_window_seconds", 900)),
        )
    ]
    if LAYER_BUDGET:
        budgets.append((f"layer#{LAYER}", *LAYER_BUDGET))
    if GLOBAL_BUDGET:
        budgets.append(("global", *GLOBAL_BUDGET))
    return budgets


def _claim(
    pk: str,
    event_id: str,
    state: dict[str, Any],
    record: dict[str, Any],
    budgets: list[tuple[str, int, int]],
    now: datetime,
) -> bool:
    """The claim on nothing stored: one transaction; `False` when this event was claimed
    before (the refusal returns its claim and the state)."""
    state_put: dict[str, Any] = {
        "TableName": TABLE,
        "Item": state,
        "ConditionExpression": "attribute_not_exists(pk)",
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }
    items: list[dict[str, Any]] = [
        {
            "Put": {
                "TableName": TABLE,
                "Item": {
                    "pk": _s(pk),
                    "sk": _s(f"EVENT#{event_id}"),
                    "item_type": _s("event-claim"),
                    "run_id": _s(record["id"]),
                    "claimed_at": _s(now.isoformat()),
                    "expires_at": _expiry(now, 7),
                },
                "ConditionExpression": "attribute_not_exists(pk)",
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        },
        {"Put": state_put},
        {"Put": {"TableName": TABLE, "Item": _record_item(record)}},
    ]
    for scope, limit, seconds in budgets:
        previous, current = _windows(now, seconds)
        items.append(
            {
                "Update": {
                    "TableName": TABLE,
                    "Key": {"pk": _s(f"BUDGET#{scope}"), "sk": _s(f"WINDOW#{current}")},
                    "UpdateExpression": "ADD #n :one SET #expires = :expires",
                    "ConditionExpression": "attribute_not_exists(#n) OR #n < :cap",
                    "ExpressionAttributeNames": {"#n": "actions", "#expires": "expires_at"},
                    "ExpressionAttributeValues": {
                        ":one": _n(1),
                        ":cap": _n(limit),
                        ":expires": _n(current + 2 * seconds + 86_400),
                    },
                }
            }
        )
        items.append(
            {
                "ConditionCheck": {
                    "TableName": TABLE,
                    "Key": {"pk": _s(f"BUDGET#{scope}"), "sk": _s(f"WINDOW#{previous}")},
                    "ConditionExpression": "attribute_not_exists(#n) OR #n <= :previous",
                    "ExpressionAttributeNames": {"#n": "actions"},
                    "ExpressionAttributeValues": {":previous": _n(0)},
                }
            }
        )
    try:
        dynamodb.transact_write_items(TransactItems=items, ClientRequestToken=str(uuid.uuid4()))
        return True
    except dynamodb.exceptions.TransactionCanceledException as error:
        reasons = error.response.get("CancellationReasons") or []
        codes = [reason.get("Code") for reason in reasons]
        if codes[:2] == ["ConditionalCheckFailed", "ConditionalCheckFailed"] and "Item" in reasons[1]:
            return False
        raise NotImplementedError(f"a claim refused with {codes}: outside the baseline's path") from error


def _finish(pk: str, run_id: str, record: dict[str, Any]) -> None:
    """The final record and the lease's release in one transaction."""
    release = {
        "TableName": TABLE,
        "Key": {"pk": _s(pk), "sk": _s("STATE")},
        "UpdateExpression": "REMOVE #lease, #incident.#unfinished SET #version = #version + :one",
        "ConditionExpression": "#lease.#run_id = :run_id",
        "ExpressionAttributeNames": {
            "#lease": "lease",
            "#run_id": "run_id",
            "#version": "version",
            "#incident": "incident",
            "#unfinished": "unfinished",
        },
        "ExpressionAttributeValues": {":run_id": _s(run_id), ":one": _n(1)},
    }
    items = [
        {"Put": {"TableName": TABLE, "Item": _record_item(record)}},
        {"Update": release},
    ]
    try:
        dynamodb.transact_write_items(TransactItems=items, ClientRequestToken=str(uuid.uuid4()))
    except dynamodb.exceptions.TransactionCanceledException:
        # The lease was taken over: the other run owns the state; the record still goes in.
        dynamodb.put_item(TableName=TABLE, Item=_record_item(record))


# --- the follow-up, the action, the notification ------------------------------------------------


def _schedule(rule: dict[str, Any], resource: str, alarm: dict[str, Any], incident: str, at: datetime) -> str:
    check = 1
    key = f"{rule['name']}\x1f{resource}\x1f{incident}"
    name = f"autoheal-{hashlib.sha256(key.encode()).hexdigest()[:16]}-{check}"
    payload = {
        "version": "0",
        "id": f"{incident}#check-{check}",
        "source": "autoheal",
        "detail-type": "autoheal.check",
        "detail": {
            "alarm": {"alarm_name": alarm["name"], "alarm_arn": alarm["arn"], "id": alarm["id"], "state": alarm["state"]},
            "check": check,
            "incident_id": incident,
            "layer": LAYER,
            "resource_id": resource,
            "rule": rule["name"],
        },
    }
    whole = at.replace(microsecond=0) + (timedelta(seconds=1) if at.microsecond else timedelta())
    try:
        scheduler.create_schedule(
            Name=name,
            GroupName=SCHEDULE_GROUP,
            ScheduleExpression=f"at({whole.strftime('%Y-%m-%dT%H:%M:%S')})",
            ScheduleExpressionTimezone="UTC",
            FlexibleTimeWindow={"Mode": "OFF"},
            ActionAfterCompletion="DELETE",
            Description=f"autoheal check {check} of {rule['name']} on {resource}",
            Target={
                "Arn": FUNCTION_ARN,
                "RoleArn": SCHEDULER_ROLE_ARN,
                "Input": json.dumps(payload),
                "RetryPolicy": {"MaximumEventAgeInSeconds": 3600, "MaximumRetryAttempts": 20},
            },
        )
    except scheduler.exceptions.ConflictException:
        pass  # scheduled by an earlier delivery: that schedule stands
    return whole.isoformat()


def _status(check: dict[str, Any] | None) -> str:
    return (check or {}).get("Status", "unknown")


def _look(resource: str) -> tuple[str | None, dict[str, Any]]:
    """The instance as the healer reads it before it acts: why nothing is to be done (or
    `None`), and what it found. Read-only; the Rust function takes it before the claim and
    again, live, in the action."""
    reservations = ec2.describe_instances(InstanceIds=[resource])["Reservations"]
    instance = reservations[0]["Instances"][0]
    tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
    state = instance["State"]["Name"]
    if state in ("shutting-down", "terminated"):
        return f"{resource} is already terminated or terminating", {}
    if tags.get(OPT_OUT_TAG, "").lower() == "true":
        return f"{resource} is tagged {OPT_OUT_TAG}=true", {}
    members = autoscaling.describe_auto_scaling_instances(InstanceIds=[resource])["AutoScalingInstances"]
    if members:
        raise NotImplementedError("an Auto Scaling member: outside the baseline's path")
    if state != "running":
        return f"{resource} is {state}", {}
    statuses = ec2.describe_instance_status(InstanceIds=[resource], IncludeAllInstances=True)["InstanceStatuses"]
    return None, {
        "system": _status(statuses[0].get("SystemStatus") if statuses else None),
        "guest": _status(statuses[0].get("InstanceStatus") if statuses else None),
        "instance_store": _instance_storage(instance["InstanceType"]),
    }


# Each instance type's description, read once per process, as the Rust function keeps it.
_INSTANCE_STORAGE: dict[str, bool] = {}


def _instance_storage(instance_type: str) -> bool:
    if instance_type not in _INSTANCE_STORAGE:
        types = ec2.describe_instance_types(InstanceTypes=[instance_type])["InstanceTypes"]
        if not types:
            return False
        _INSTANCE_STORAGE[instance_type] = bool(types[0].get("InstanceStorageSupported"))
    return _INSTANCE_STORAGE[instance_type]


def _recover(rule: dict[str, Any], resource: str, alarm: dict[str, Any], attempt: int) -> tuple[str, str, dict[str, str]]:
    """(status, summary, details) of `recover-ec2-instance` on a standalone instance."""
    skipped, found = _look(resource)
    if skipped:
        return "skipped", skipped, {}
    system, guest = found["system"], found["guest"]
    if system == "ok" and guest == "ok":
        return "skipped", f"{resource}: both status checks pass again", {}
    system_failed = system == "impaired" or (
        guest != "impaired" and any(m.get("name") == "StatusCheckFailed_System" for m in alarm["metrics"])
    )
    reboot_first = rule.get("action", {}).get("reboot_first", True)
    if system_failed or not reboot_first or attempt > 1:
        raise NotImplementedError(f"a stop and start (instance store: {found['instance_store']}): outside the baseline's path")
    ec2.reboot_instances(InstanceIds=[resource])
    summary = (
        f"rebooted {resource} (instance status check {guest}, system status check {system}); "
        "a later attempt stops and starts it"
    )
    return "completed", summary, {"recovery": "reboot", "failed_check": "instance"}


def _judge(rule: dict[str, Any], alarm: dict[str, Any]) -> str | None:
    """Why the event is not to be acted on, judged against the alarm as CloudWatch holds it
    (one read), or `None`."""
    held = cloudwatch.describe_alarms(
        AlarmNames=[alarm["name"]], AlarmTypes=["MetricAlarm", "CompositeAlarm"]
    )["MetricAlarms"]
    held = [a for a in held if a["AlarmName"] == alarm["name"]]
    if not held:
        return "not-genuine"
    watched = {
        (a.get("Namespace"), a.get("MetricName"), frozenset((d["Name"], d["Value"]) for d in a.get("Dimensions", [])))
        for a in held
    }
    for metric in alarm["metrics"]:
        key = (metric.get("namespace"), metric.get("name"), frozenset((metric.get("dimensions") or {}).items()))
        if key not in watched:
            return "not-genuine"
    if held[0]["StateValue"] != "ALARM":
        return "stale"
    wanted = (rule.get("alarm") or {}).get("comparison", "")
    if wanted and wanted.startswith("Greater") != held[0]["ComparisonOperator"].startswith("Greater"):
        return "opposite-direction"
    if any(":ec2:stop" in a or ":ec2:terminate" in a for a in held[0].get("AlarmActions", [])):
        raise NotImplementedError("the alarm's own EC2 stop or terminate action: outside the baseline's path")
    return None


def _publish(record: dict[str, Any], rule: dict[str, Any]) -> None:
    message = {
        "kind": "healing",
        "record": record,
        "max_attempts": int(_policy(rule, "max_attempts", 3)),
        "description": rule.get("description", ""),
    }
    attributes = {
        "layer": LAYER,
        "status": record["status"],
        "rule": rule["name"],
        "kind": "healing",
        "phase": "heal",
    }
    try:
        sns.publish(
            TopicArn=TOPIC_ARN,
            Subject=f"autoheal {record['status']}: {LAYER} {record['action']} on {record['resource_id']}",
            Message=json.dumps(message, indent=2),
            MessageAttributes={k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()},
        )
    except Exception as error:  # noqa: BLE001 - a notification that fails is logged, never retried
        _log(message=f"notification failed: {error}")


# --- the handler -----------------------------------------------------------------------------


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    run_id = context.aws_request_id
    alarm = _parse(event)
    rule = _select(alarm)
    if rule is None or rule.get("layer") != LAYER:
        return {"layer": LAYER, "decision": "skip", "reason": "other-layer" if rule else "no-matching-rule"}
    if rule["action"]["type"] != "recover-ec2-instance" or alarm["state"] != "ALARM":
        raise NotImplementedError(f"{rule['name']} {alarm['state']}: outside the baseline's path")
    dimension = rule["resource"]["dimension"]
    values = {m.get("dimensions", {}).get(dimension) for m in alarm["metrics"]} - {None}
    if len(values) != 1:
        return {"layer": LAYER, "decision": "skip", "reason": "ambiguous-resource"}
    resource = values.pop().strip()
    if not INSTANCE_ID.match(resource):
        return {"layer": LAYER, "decision": "skip", "reason": "invalid-resource-id"}

    pk = _resource_pk(rule["name"], resource)
    outcome = {
        "layer": LAYER,
        "event_id": alarm["id"],
        "alarm_name": alarm["name"],
        "rule": rule["name"],
        "resource_id": resource,
        "action": rule["action"]["type"],
        "mode": MODE,
    }
    now = _now()
    record: dict[str, Any] = {
        "id": run_id,
        "event_id": alarm["id"],
        "alarm_name": alarm["name"],
        "rule": rule["name"],
        "layer": LAYER,
        "action": rule["action"]["type"],
        "resource_id": resource,
        "mode": MODE,
        "started_at": _iso(now),
    }
    budgets = _budgets(rule)
    refused = _judge(rule, alarm)
    if refused:
        return {**outcome, "decision": "ignore", "reason": refused}
    # A new incident, attempt 1, decided on nothing stored: the group guard, the healer's look,
    # the follow-up, then the claim.
    autoscaling.describe_auto_scaling_instances(InstanceIds=[resource])  # the group guard
    skipped, _ = _look(resource)
    if skipped:
        raise NotImplementedError(f"{skipped}: outside the baseline's path")
    cooldown = int(_policy(rule, "cooldown_seconds", 600))
    lease = int(_policy(rule, "lease_seconds", 900))
    next_attempt = now + timedelta(seconds=cooldown)
    incident_id = alarm["id"]
    state_item = {
        "pk": _s(pk),
        "sk": _s("STATE"),
        "item_type": _s("resource-state"),
        "rule": _s(rule["name"]),
        "resource_id": _s(resource),
        "version": _n(1),
        "last_action_at": _s(_iso(now)),
        "incident": {
            "M": {
                "id": _s(incident_id),
                "opened_at": _s(_iso(now)),
                "last_attempt_at": _s(_iso(now)),
                "next_attempt_at": _s(_iso(next_attempt)),
                "attempts": _n(1),
                "checks": _n(1),
                "unfinished": {"BOOL": True},
            }
        },
        "lease": {
            "M": {
                "run_id": _s(run_id),
                "event_id": _s(alarm["id"]),
                "attempt": _n(1),
                "expires_at": _s(_iso(now + timedelta(seconds=lease))),
            }
        },
        "updated_at": _s(_iso(now)),
        "expires_at": _expiry(now, 90),
    }
    record.update(status="in_progress", attempt=1, incident_id=incident_id)
    follow_up_at = _schedule(rule, resource, alarm, incident_id, next_attempt)
    if not _claim(pk, alarm["id"], state_item, record, budgets, now):
        summary = "this event was already handled by another delivery"
        _log(message=summary, rule=rule["name"], resource=resource, decision="ignore", reason="duplicate")
        _metric("Skips", {"Layer": LAYER, "Reason": "duplicate"})
        return {**outcome, "decision": "ignore", "reason": "duplicate", "detail": summary}
    status, summary, details = _recover(rule, resource, alarm, 1)
    record.update(
        status=status,
        summary=summary,
        ended_at=_iso(_now()),
        details={**details, "follow_up_at": follow_up_at},
    )
    _finish(pk, run_id, record)
    _publish(record, rule)
    _log(message=summary, rule=rule["name"], resource=resource, decision="act", status=status)
    _metric("Actions", {"Layer": LAYER, "Rule": rule["name"], "Status": status})
    return {**outcome, "decision": "act", "detail": summary, "record": record}


if __name__ == "__main__":
    sys.exit("run through bootstrap.py")
