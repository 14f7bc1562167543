"""Starts the emulator (moto in server mode) with EBS snapshots that an AMI uses.

EC2 refuses to delete a snapshot an AMI was registered from (`InvalidSnapshot.InUse`). moto
5.2.5 knows this only of the snapshots it makes for its own AMIs. This shim refuses, in the
same words, to delete a snapshot tagged `emulator:in-use-by` (the AMI's id as the value), so
that a test can make a deletion fail, and changes nothing else.

Usage: moto_snapshot_in_use.py -H 127.0.0.1 -p PORT   (the arguments of moto_server)
"""

import sys

from moto.ec2.exceptions import InvalidSnapshotInUse
from moto.ec2.models.elastic_block_store import EBSBackend
from moto.server import main

IN_USE_TAG = "emulator:in-use-by"

_delete_snapshot = EBSBackend.delete_snapshot


def _delete_unless_in_use(self, snapshot_id):
    snapshot = self.snapshots.get(snapshot_id)
    if snapshot is not None:
        for tag in snapshot.get_tags():
            if tag.get("key") == IN_USE_TAG:
                raise InvalidSnapshotInUse(snapshot_id, tag.get("value"))
    return _delete_snapshot(self, snapshot_id)


EBSBackend.delete_snapshot = _delete_unless_in_use

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
