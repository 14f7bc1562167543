"""Starts the emulator (moto in server mode) with RDS instance states a test can set, reboots it
can see, Multi-AZ failover events, and parameter changes that wait for a reboot.

moto 5.2.5 keeps every DB instance `available`, records nothing of a reboot, no failover event,
and reports every parameter group `in-sync`. This shim adds, following RDS:

- the instance's status (`DBInstanceStatus`) is the value of its tag `emulator:db-instance-status`
  while it has one (`backing-up`, `maintenance`, `modifying`, `stopped`, ...);
- each `RebootDBInstance` is appended to the instance's tag `emulator:history` (`reboot`, or
  `reboot-with-failover` with `ForceFailover`), so that a test can tell whether it was rebooted;
- a reboot with failover of a Multi-AZ instance records RDS's failover events (category
  `failover`): the failover started, then completed, read back with `DescribeEvents`;
- `ModifyDBParameterGroup` with a parameter whose `ApplyMethod` is `pending-reboot` leaves every
  instance of that group `pending-reboot` (`DBParameterGroups[].ParameterApplyStatus`) until it
  is rebooted, when RDS applies the change.

Nothing else in moto changes.

Usage: moto_rds_instance_states.py -H 127.0.0.1 -p PORT   (the arguments of moto_server)
"""

import sys
from typing import Any

from moto.rds.models import DBInstance, Event, RDSBackend
from moto.rds.responses import RDSResponse
from moto.server import main

STATUS_TAG = "emulator:db-instance-status"
HISTORY_TAG = "emulator:history"
PENDING_REBOOT = "_emulator_pending_reboot"

Event.EVENT_MAP["DB_INSTANCE_MULTI_AZ_FAILOVER_START"] = {
    "Categories": ["failover"],
    "Message": "A Multi-AZ failover that resulted in the promotion of a standby instance has started.",
}
Event.EVENT_MAP["DB_INSTANCE_MULTI_AZ_FAILOVER_FINISH"] = {
    "Categories": ["failover"],
    "Message": (
        "The Multi-AZ failover that resulted in the promotion of a standby instance is complete. "
        "It may take several minutes for the DNS to transfer to the new primary DB instance."
    ),
}


def _tag(instance: DBInstance, key: str) -> str | None:
    for tag in instance.tags or []:
        if tag.get("Key") == key:
            return tag.get("Value")
    return None


_original_status = DBInstance.__dict__.get("status")


def _get_status(instance: DBInstance) -> str:
    value = _tag(instance, STATUS_TAG)
    if value is not None:
        return value
    if isinstance(_original_status, property) and _original_status.fget is not None:
        return _original_status.fget(instance)
    return instance.__dict__.get("_emulator_status", "available")


def _set_status(instance: DBInstance, value: Any) -> None:
    if isinstance(_original_status, property) and _original_status.fset is not None:
        _original_status.fset(instance, value)
    else:
        instance.__dict__["_emulator_status"] = value


def _parameter_group_status(instance: DBInstance) -> list[dict[str, str]]:
    status = "pending-reboot" if instance.__dict__.get(PENDING_REBOOT) else "in-sync"
    return [
        {"DBParameterGroupName": group.name, "ParameterApplyStatus": status}
        for group in instance.db_parameter_groups()
    ]


_original_reboot = RDSResponse.reboot_db_instance


def _reboot(self: RDSResponse) -> Any:
    result = _original_reboot(self)
    identifier = self.params.get("DBInstanceIdentifier")
    failover = str(self.params.get("ForceFailover", "false")).lower() == "true"
    instance = self.backend.databases[identifier]
    history = _tag(instance, HISTORY_TAG)
    what = "reboot-with-failover" if failover else "reboot"
    instance.add_tags([{"Key": HISTORY_TAG, "Value": f"{history},{what}" if history else what}])
    # The reboot applies the parameter changes that waited for it.
    instance.__dict__[PENDING_REBOOT] = False
    if failover and instance.multi_az:
        instance.add_event("DB_INSTANCE_MULTI_AZ_FAILOVER_START")
        instance.add_event("DB_INSTANCE_MULTI_AZ_FAILOVER_FINISH")
    return result


_original_modify_group = RDSBackend.modify_db_parameter_group


def _modify_group(self: RDSBackend, db_parameter_group_name: str, db_parameter_group_parameters: Any) -> Any:
    group = _original_modify_group(self, db_parameter_group_name, db_parameter_group_parameters)
    if any(p.get("ApplyMethod") == "pending-reboot" for p in db_parameter_group_parameters or []):
        for instance in self.databases.values():
            if group.name in [g.name for g in instance.db_parameter_groups()]:
                instance.__dict__[PENDING_REBOOT] = True
    return group


DBInstance.status = property(_get_status, _set_status)
DBInstance.db_parameter_group_status_list = property(_parameter_group_status)
RDSResponse.reboot_db_instance = _reboot
RDSBackend.modify_db_parameter_group = _modify_group

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
