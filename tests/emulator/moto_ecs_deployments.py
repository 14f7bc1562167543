"""Starts the emulator (moto in server mode) with ECS deployments that roll out, roll back or fail.

ECS rolls a service's deployment out: the new deployment (`PRIMARY`) is `IN_PROGRESS` while its
tasks start and the previous one (`ACTIVE`) drains, then `COMPLETED` with the desired tasks
running. The deployment circuit breaker marks a deployment whose tasks keep failing `FAILED`
and, with rollback on, rolls back to the last completed deployment (`IN_PROGRESS` again); with
rollback off, the failed deployment stays. moto 5.2.5 runs no task for a service: its one
deployment stays `IN_PROGRESS` with no task running, forever. This shim reports instead:

- by default, the rollout done, as ECS reports a healthy service: one `PRIMARY` deployment,
  `COMPLETED`, with the desired tasks running (`runningCount`);
- for a service tagged `emulator:deployments`, the deployments that tag lists, the primary
  first, as `<status>:<rolloutState>` separated by commas: `PRIMARY:IN_PROGRESS,ACTIVE:COMPLETED`
  is a rollout under way, `PRIMARY:IN_PROGRESS,ACTIVE:FAILED` a circuit breaker rolling back,
  `PRIMARY:FAILED` a failed deployment nothing rolls back. The primary keeps moto's deployment
  id (a forced deployment changes it); the others get ids of their own;
- for a service tagged `emulator:running-count`, that many tasks running.

Nothing else in moto changes.

Usage: moto_ecs_deployments.py -H 127.0.0.1 -p PORT   (the arguments of moto_server)
"""

import sys
from typing import Any

from moto.ecs.models import Service
from moto.server import main

DEPLOYMENTS_TAG = "emulator:deployments"
RUNNING_TAG = "emulator:running-count"
FAILED_REASON = "ECS deployment circuit breaker: tasks failed to start."


def _tag(service: Service, key: str) -> str | None:
    for tag in service.tags or []:
        if tag.get("key") == key:
            return tag.get("value")
    return None


def _get_running(service: Service) -> int:
    value = _tag(service, RUNNING_TAG)
    if value is not None:
        return int(value)
    return service.desired_count


def _set_running(service: Service, value: Any) -> None:
    service.__dict__["_emulator_running_count"] = value


def _get_deployments(service: Service) -> list[dict[str, Any]]:
    stored = service.__dict__.get("_emulator_deployments") or []
    if not stored:
        # CodeDeploy or an external controller: ECS lists no deployment.
        return stored
    primary = stored[0]
    running = _get_running(service)
    listed = _tag(service, DEPLOYMENTS_TAG)
    entries = listed.split(",") if listed else ["PRIMARY:COMPLETED"]
    deployments = []
    for index, entry in enumerate(entries):
        status, _, state = entry.strip().partition(":")
        # The primary is moto's own record (a forced deployment renews its id).
        deployment = primary if index == 0 else dict(primary, id=f"ecs-svc/emulator{index}")
        deployment["status"] = status
        deployment["rolloutState"] = state
        deployment["rolloutStateReason"] = (
            FAILED_REASON
            if state == "FAILED"
            else f"ECS deployment {deployment['id']} {state.lower().replace('_', ' ')}."
        )
        deployment["desiredCount"] = service.desired_count
        deployment["runningCount"] = running if index == 0 else 0
        deployment["pendingCount"] = max(service.desired_count - running, 0) if index == 0 else 0
        deployments.append(deployment)
    return deployments


def _set_deployments(service: Service, value: Any) -> None:
    service.__dict__["_emulator_deployments"] = value


Service.running_count = property(_get_running, _set_running)
Service.deployments = property(_get_deployments, _set_deployments)

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
