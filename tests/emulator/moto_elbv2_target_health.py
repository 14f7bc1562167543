"""Starts the emulator (moto in server mode) with load-balancer targets a test can fail.

A load balancer reports a registered target that fails its health checks as `unhealthy`
(reason `Target.FailedHealthChecks`, "Health checks failed"), whatever is behind it. moto
5.2.5 runs no health checks: it reports every registered running target `healthy` (and a
stopped instance `unused`), so a running target can never fail. This shim reports, for a
target group tagged `emulator:unhealthy-targets` (target ids, comma-separated), those of
its registered targets that moto finds healthy as failing their health checks; nothing
else changes.

Usage: moto_elbv2_target_health.py -H 127.0.0.1 -p PORT   (the arguments of moto_server)
"""

import sys
from typing import Any

from moto.elbv2.models import ELBv2Backend
from moto.server import main

UNHEALTHY_TAG = "emulator:unhealthy-targets"

_original = ELBv2Backend.describe_target_health


def _describe_target_health(
    self: ELBv2Backend, target_group_arn: str, targets: list[dict[str, Any]]
) -> list[Any]:
    statuses = _original(self, target_group_arn, targets)
    tags = self.tagging_service.get_tag_dict_for_resource(target_group_arn) or {}
    failing = {item.strip() for item in tags.get(UNHEALTHY_TAG, "").split(",") if item.strip()}
    for status in statuses:
        if status.status == "healthy" and status.instance_id in failing:
            status.status = "unhealthy"
            status.reason = "Target.FailedHealthChecks"
            status.description = "Health checks failed"
    return statuses


ELBv2Backend.describe_target_health = _describe_target_health

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
