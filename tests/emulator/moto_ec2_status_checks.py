"""Starts the emulator (moto in server mode) with EC2 status checks a test can fail.

EC2 reports an instance's system and instance status checks (`DescribeInstanceStatus`) from
its host and guest. moto 5.2.6 runs no instances, so it always reports both as `ok` while the
instance runs and `not-applicable` otherwise. This shim reports, while the instance runs, the
value of its tag `emulator:system-status` or `emulator:instance-status` (e.g. `impaired`) as
that check's status, as EC2 does until the fault clears; a stop and start onto healthy
hardware clears a system fault, and so removes `emulator:system-status` (a reboot does not).

So that a test can tell a reboot from a stop and start (moto keeps no history of either),
each stop, start and reboot is appended to the instance's tag `emulator:history`
(e.g. `stop,start`). Nothing else in moto changes.

Usage: moto_ec2_status_checks.py -H 127.0.0.1 -p PORT   (the arguments of moto_server)
"""

import sys
from typing import Any

from moto.ec2.models.instances import Instance
from moto.server import main

SYSTEM_TAG = "emulator:system-status"
INSTANCE_TAG = "emulator:instance-status"
HISTORY_TAG = "emulator:history"

_original_instance_status = Instance.instance_status
_original_system_status = Instance.system_status
_original_stop = Instance.stop
_original_start = Instance.start
_original_reboot = Instance.reboot


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


Instance.instance_status = _status(_original_instance_status, INSTANCE_TAG)
Instance.system_status = _status(_original_system_status, SYSTEM_TAG)
Instance.stop = _recorded(_original_stop, "stop")
Instance.start = _recorded(_original_start, "start")
Instance.reboot = _recorded(_original_reboot, "reboot")

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
