"""Starts the emulator (moto in server mode) with EC2 status checks a test can fail.

EC2 reports an instance's system and instance status checks (`DescribeInstanceStatus`) from
its host and guest. moto 5.2.6 runs no instances, so it always reports both as `ok` while the
instance runs and `not-applicable` otherwise. This shim reports, while the instance runs, the
value of its tag `emulator:system-status` or `emulator:instance-status` (e.g. `impaired`) as
that check's status, as EC2 does until the fault clears; a stop and start onto healthy
hardware clears a system fault, and so removes `emulator:system-status` (a reboot does not).

EC2 also reports the events it scheduled for an instance (a reboot, maintenance, the
retirement or stop of degraded hardware) in `DescribeInstanceStatus`, whatever the instance's
state; moto 5.2.5 reports none. This shim reports one event while the instance carries the tag
`emulator:scheduled-event`, whose value is the event's code, then optionally `+SECONDS` (it
starts that long from now; else it started a minute ago) and `completed` or `canceled` (EC2
keeps such events a while, their description starting `[Completed]` or `[Canceled]`), e.g.
`system-reboot`, `instance-retirement +1209600`, `system-maintenance completed`. The event's
window is two hours.

So that a test can tell a reboot from a stop and start (moto keeps no history of either),
each stop, start and reboot is appended to the instance's tag `emulator:history`
(e.g. `stop,start`); and so that it can tell whether a volume was detached from a running
instance, each detach tags the volume `emulator:detached-from` with the instance and the
state it was in (e.g. `i-0123:stopped`). Nothing else in moto changes.

Usage: moto_ec2_status_checks.py -H 127.0.0.1 -p PORT   (the arguments of moto_server)
"""

import sys
from datetime import datetime, timedelta, timezone
from typing import Any

from moto.ec2.models.elastic_block_store import EBSBackend
from moto.ec2.models.instances import Instance
from moto.server import main

SYSTEM_TAG = "emulator:system-status"
INSTANCE_TAG = "emulator:instance-status"
HISTORY_TAG = "emulator:history"
EVENT_TAG = "emulator:scheduled-event"
DETACHED_TAG = "emulator:detached-from"

_original_instance_status = Instance.instance_status
_original_system_status = Instance.system_status
_original_stop = Instance.stop
_original_start = Instance.start
_original_reboot = Instance.reboot
_original_detach = EBSBackend.detach_volume


def _tag(instance: Instance, key: str) -> str | None:
    for tag in instance.get_tags():
        if tag.get("key") == key:
            return tag.get("value")
    return None


def _status(original: Any, key: str) -> Any:
    def status(instance: Instance) -> dict[str, Any]:
        reported = original.fget(instance)
        value = _tag(instance, key)
        if value is None or instance.state_code != 16:
            return reported
        passed = "passed" if value == "ok" else "failed"
        return {"Details": [{"Name": "reachability", "Status": passed}], "Status": value}

    return property(status)


def _recorded(original: Any, what: str) -> Any:
    def transition(instance: Instance, *args: Any, **kwargs: Any) -> Any:
        result = original(instance, *args, **kwargs)
        history = _tag(instance, HISTORY_TAG)
        instance.add_tag(HISTORY_TAG, f"{history},{what}" if history else what)
        if what == "stop" and _tag(instance, SYSTEM_TAG) is not None:
            instance.ec2_backend.delete_tags([instance.id], {SYSTEM_TAG: None})
        return result

    return transition


def _events(instance: Instance) -> list[dict[str, Any]]:
    value = _tag(instance, EVENT_TAG)
    if not value:
        return []
    code, *options = value.split()
    not_before = datetime.now(timezone.utc) - timedelta(minutes=1)
    description = f"The instance is scheduled for {code}"
    for option in options:
        if option.startswith("+"):
            not_before = datetime.now(timezone.utc) + timedelta(seconds=int(option[1:]))
        elif option in ("completed", "canceled"):
            description = f"[{option.capitalize()}] {description}"
    return [
        {
            "InstanceEventId": f"instance-event-{instance.id.removeprefix('i-')}",
            "Code": code,
            "Description": description,
            "NotBefore": not_before,
            "NotAfter": not_before + timedelta(hours=2),
        }
    ]


def _detach_witnessed(backend: EBSBackend, volume_id: str, instance_id: str, device_path: str) -> Any:
    state = backend.get_instance(instance_id).instance_state.name
    attachment = _original_detach(backend, volume_id, instance_id, device_path)
    backend.get_volume(volume_id).add_tag(DETACHED_TAG, f"{instance_id}:{state}")
    return attachment


Instance.events = property(_events)
Instance.instance_status = _status(_original_instance_status, INSTANCE_TAG)
Instance.system_status = _status(_original_system_status, SYSTEM_TAG)
Instance.stop = _recorded(_original_stop, "stop")
Instance.start = _recorded(_original_start, "start")
Instance.reboot = _recorded(_original_reboot, "reboot")
EBSBackend.detach_volume = _detach_witnessed

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
