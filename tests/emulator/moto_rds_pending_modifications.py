"""Starts the emulator (moto in server mode) with RDS modifications that wait for the maintenance
window.

`ModifyDBInstance` without `ApplyImmediately` leaves most changes pending until the instance's
next maintenance window, listed in `PendingModifiedValues` (an instance class, an engine version,
storage, Multi-AZ, a port, ...): they take the instance offline. A backup retention change from
one non-zero value to another, and a new backup window, are applied as soon as possible anyway;
turning automated backups on or off (retention from or to 0) waits too. `ApplyImmediately`
applies the request's changes and every pending one now. moto 5.2.5 applies every change at
once, whatever `ApplyImmediately` says, and lists nothing pending. This shim holds the changes
RDS holds, lists them in `PendingModifiedValues`, and applies them with the next
`ApplyImmediately`. Nothing else in moto changes.

Usage: moto_rds_pending_modifications.py -H 127.0.0.1 -p PORT   (the arguments of moto_server)
"""

import sys
from typing import Any

from moto.rds.models import DBInstance, RDSBackend
from moto.server import main

PENDING = "_emulator_pending_modifications"

# ModifyDBInstance's parameters that wait for the maintenance window, and their names in
# PendingModifiedValues.
DEFERRED = {
    "DBInstanceClass": "DBInstanceClass",
    "EngineVersion": "EngineVersion",
    "AllocatedStorage": "AllocatedStorage",
    "StorageType": "StorageType",
    "Iops": "Iops",
    "StorageThroughput": "StorageThroughput",
    "MultiAZ": "MultiAZ",
    "DBPortNumber": "Port",
    "MasterUserPassword": "MasterUserPassword",
    "LicenseModel": "LicenseModel",
    "CACertificateIdentifier": "CACertificateIdentifier",
    "DBSubnetGroupName": "DBSubnetGroupName",
}
PARAMETER_OF = {pending: parameter for parameter, pending in DEFERRED.items()}
PARAMETER_OF["BackupRetentionPeriod"] = "BackupRetentionPeriod"


def _pending(instance: DBInstance) -> dict[str, Any]:
    return instance.__dict__.setdefault(PENDING, {})


def _pending_modified_values(instance: DBInstance) -> dict[str, Any]:
    return dict(_pending(instance))


_original_modify = RDSBackend.modify_db_instance


def _modify(self: RDSBackend, db_instance_identifier: str, db_kwargs: Any) -> DBInstance:
    instance = self.databases.get(db_instance_identifier)
    if instance is None:
        return _original_modify(self, db_instance_identifier, db_kwargs)
    pending = _pending(instance)
    if str(db_kwargs.get("ApplyImmediately", False)).lower() == "true":
        # This request's changes, and every pending one, now.
        for name, value in list(pending.items()):
            parameter = PARAMETER_OF[name]
            if parameter not in db_kwargs:
                db_kwargs[parameter] = value
        pending.clear()
        return _original_modify(self, db_instance_identifier, db_kwargs)
    for parameter, name in DEFERRED.items():
        if parameter in db_kwargs and db_kwargs[parameter] is not None:
            pending[name] = db_kwargs.pop(parameter)
    if db_kwargs.get("BackupRetentionPeriod") is not None:
        new = int(db_kwargs["BackupRetentionPeriod"])
        old = int(instance.backup_retention_period or 0)
        if (old == 0) != (new == 0):
            pending["BackupRetentionPeriod"] = db_kwargs.pop("BackupRetentionPeriod")
    return _original_modify(self, db_instance_identifier, db_kwargs)


DBInstance.pending_modified_values = property(_pending_modified_values)
RDSBackend.modify_db_instance = _modify

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
