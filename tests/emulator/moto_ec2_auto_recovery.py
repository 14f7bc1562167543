"""Starts the emulator (moto in server mode) with EC2's simplified automatic recovery setting.

EC2 describes each instance's recovery behaviour in `MaintenanceOptions.AutoRecovery`:
`default` (simplified automatic recovery on, for the instance types that support it) unless
someone disabled it, with `ModifyInstanceMaintenanceOptions` (`disabled` or `default`).
moto 5.2.5 describes no `MaintenanceOptions` and has no `ModifyInstanceMaintenanceOptions`.
This shim adds both: every instance starts at `default`, as in EC2, and the operation sets
it, refusing any other value with `InvalidParameterValue`. It recovers nothing itself (moto
runs no hardware to fail); nothing else in moto changes.

Usage: moto_ec2_auto_recovery.py -H 127.0.0.1 -p PORT   (the arguments of moto_server)
"""

import sys

from moto.core.responses import ActionResult
from moto.ec2.exceptions import EC2ClientError
from moto.ec2.models.instances import Instance
from moto.ec2.responses.instances import InstanceResponse
from moto.server import main

STATES = ("default", "disabled")


def _maintenance_options(instance: Instance) -> dict[str, str]:
    return {"AutoRecovery": getattr(instance, "_emulator_auto_recovery", "default")}


def modify_instance_maintenance_options(self: InstanceResponse) -> ActionResult:
    instance_id = self._get_param("InstanceId")
    state = self._get_param("AutoRecovery")
    self.error_on_dryrun()
    instance = self.ec2_backend.get_instance(instance_id)
    if state is not None:
        if state not in STATES:
            raise EC2ClientError(
                "InvalidParameterValue",
                f"Value ({state}) for parameter AutoRecovery is invalid. Valid values: default, disabled.",
            )
        instance._emulator_auto_recovery = state
    return ActionResult(
        {"InstanceId": instance.id, "AutoRecovery": _maintenance_options(instance)["AutoRecovery"]}
    )


Instance.maintenance_options = property(_maintenance_options)
InstanceResponse.modify_instance_maintenance_options = modify_instance_maintenance_options

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
