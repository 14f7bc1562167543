"""Starts the emulator (moto in server mode) with ECS task health.

ECS reports a task's `healthStatus` from its containers' health checks. moto 5.2.6 runs no
containers, so its tasks have no `healthStatus` at all. This shim reports, as a task's
health, the value of its tag `emulator:health-status` (e.g. `UNHEALTHY`), so that a test can
start unhealthy tasks, and changes nothing else.

Usage: moto_ecs_task_health.py -H 127.0.0.1 -p PORT   (the arguments of moto_server)
"""

import sys

from moto.ecs.models import Task
from moto.server import main

HEALTH_TAG = "emulator:health-status"


def _health_status(task: Task) -> str | None:
    for tag in task.tags or []:
        if tag.get("key") == HEALTH_TAG:
            return tag.get("value")
    return None


Task.health_status = property(_health_status)

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
