"""Starts the emulator (moto in server mode) with Auto Scaling instance refreshes.

An instance refresh replaces a group's instances in batches (`StartInstanceRefresh`); while it
runs (`Pending`, `InProgress`, `Baking`, `Cancelling`, `RollbackInProgress`) a group has one
refresh at most (another start fails with `InstanceRefreshInProgress`), and
`DescribeInstanceRefreshes` lists the group's refreshes, the most recent first, with
`InstanceRefreshIds`, `MaxRecords` and `NextToken`. `CancelInstanceRefresh` cancels the one
under way (none: `ActiveInstanceRefreshNotFound`). moto 5.2.5 implements none of these.

This shim adds them over moto's own groups. A refresh it starts stays `InProgress` at 0 %
until it is cancelled (then `Cancelled`): it replaces no instance, which is all a test of
what runs beside a refresh needs. Nothing else in moto changes.

Usage: moto_autoscaling_instance_refresh.py -H 127.0.0.1 -p PORT   (the arguments of moto_server)
"""

import sys
import uuid
from datetime import datetime, timezone
from typing import Any

from moto.autoscaling.exceptions import AutoscalingClientError, ValidationError
from moto.autoscaling.models import AutoScalingBackend
from moto.autoscaling.responses import AutoScalingResponse
from moto.core.responses import ActionResult
from moto.server import main

ACTIVE = ("Pending", "InProgress", "Baking", "Cancelling", "RollbackInProgress")


def _refreshes(backend: AutoScalingBackend, group: str) -> list[dict[str, Any]]:
    if not hasattr(backend, "_emulator_refreshes"):
        backend._emulator_refreshes = {}
    return backend._emulator_refreshes.setdefault(group, [])


def _group(self: AutoScalingResponse) -> str:
    name = self._get_param("AutoScalingGroupName")
    if name not in self.autoscaling_backend.autoscaling_groups:
        raise ValidationError(f"AutoScalingGroup name not found - {name}")
    return name


def start_instance_refresh(self: AutoScalingResponse) -> ActionResult:
    name = _group(self)
    refreshes = _refreshes(self.autoscaling_backend, name)
    if any(refresh["Status"] in ACTIVE for refresh in refreshes):
        raise AutoscalingClientError(
            "InstanceRefreshInProgress",
            "An Instance Refresh is already in progress and blocks the execution of this Instance Refresh.",
        )
    group = self.autoscaling_backend.autoscaling_groups[name]
    refresh = {
        "InstanceRefreshId": str(uuid.uuid4()),
        "AutoScalingGroupName": name,
        "Status": "InProgress",
        "StatusReason": "Waiting for instances to warm up before continuing.",
        "StartTime": datetime.now(timezone.utc),
        "PercentageComplete": 0,
        "InstancesToUpdate": len(group.instance_states),
        "Strategy": self._get_param("Strategy") or "Rolling",
    }
    refreshes.insert(0, refresh)
    return ActionResult({"InstanceRefreshId": refresh["InstanceRefreshId"]})


def describe_instance_refreshes(self: AutoScalingResponse) -> ActionResult:
    name = _group(self)
    wanted = set(self._get_param("InstanceRefreshIds", []) or [])
    listed = [
        refresh
        for refresh in _refreshes(self.autoscaling_backend, name)
        if not wanted or refresh["InstanceRefreshId"] in wanted
    ]
    start = int(self._get_param("NextToken") or 0)
    size = int(self._get_param("MaxRecords") or 50)
    result: dict[str, Any] = {"InstanceRefreshes": listed[start : start + size]}
    if start + size < len(listed):
        result["NextToken"] = str(start + size)
    return ActionResult(result)


def cancel_instance_refresh(self: AutoScalingResponse) -> ActionResult:
    name = _group(self)
    for refresh in _refreshes(self.autoscaling_backend, name):
        if refresh["Status"] in ACTIVE:
            refresh["Status"] = "Cancelled"
            refresh["EndTime"] = datetime.now(timezone.utc)
            return ActionResult({"InstanceRefreshId": refresh["InstanceRefreshId"]})
    raise AutoscalingClientError(
        "ActiveInstanceRefreshNotFound",
        f"No in progress or pending Instance Refresh found for Auto Scaling group {name}",
    )


AutoScalingResponse.start_instance_refresh = start_instance_refresh
AutoScalingResponse.describe_instance_refreshes = describe_instance_refreshes
AutoScalingResponse.cancel_instance_refresh = cancel_instance_refresh

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
