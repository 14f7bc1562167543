"""Starts the emulator (moto in server mode) with DB snapshots and restores that take time.

RDS takes minutes to hours to make a DB snapshot (`creating`, with a `PercentProgress`) before
it is `available`. moto 5.2.6 makes every snapshot available at once. This shim reports, for a
snapshot of a DB instance tagged `emulator:snapshot-status` (e.g. `creating` or `failed`), that
tag's value as the snapshot's status, read live, so that a test decides when the snapshot
completes by removing the tag. Nothing else in moto changes.

Usage: moto_rds_snapshot_progress.py -H 127.0.0.1 -p PORT   (the arguments of moto_server)
"""

import sys
from typing import Any

from moto.rds.models import DBInstance, DBSnapshot
from moto.server import main

STATUS_TAG = "emulator:snapshot-status"


def _get_status(snapshot: DBSnapshot) -> str:
    source = snapshot.backend.databases.get(snapshot.db_instance_identifier)
    if source is not None:
        for tag in source.tags or []:
            if tag.get("Key") == STATUS_TAG:
                return tag.get("Value", "creating")
    return snapshot.__dict__.get("_emulator_status", "available")


def _set_status(snapshot: DBSnapshot, value: Any) -> None:
    snapshot.__dict__["_emulator_status"] = value


DBSnapshot.status = property(_get_status, _set_status)

# Restores take time too: an instance restored from a source tagged
# `emulator:restore-status` (autoheal tags its copies `autoheal:restored-from=<source>`)
# reports that tag's value as its status until the tag goes.
RESTORE_STATUS_TAG = "emulator:restore-status"


def _get_instance_status(instance: DBInstance) -> str:
    for tag in instance.tags or []:
        if tag.get("Key") == "autoheal:restored-from":
            source = instance.backend.databases.get(tag.get("Value"))
            for source_tag in (source.tags or []) if source is not None else []:
                if source_tag.get("Key") == RESTORE_STATUS_TAG:
                    return source_tag.get("Value", "creating")
    return instance.__dict__.get("_emulator_status", "available")


def _set_instance_status(instance: DBInstance, value: Any) -> None:
    instance.__dict__["_emulator_status"] = value


DBInstance.status = property(_get_instance_status, _set_instance_status)

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
