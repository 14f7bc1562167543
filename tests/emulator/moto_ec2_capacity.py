"""Starts the emulator (moto in server mode) with EC2 refusing starts for want of capacity.

EC2 sometimes cannot start a stopped instance: it has no capacity of the instance's type in
its Availability Zone for now, and `StartInstances` fails with the server error
`InsufficientInstanceCapacity` (HTTP 500) while the instance stays stopped; a later start
succeeds once capacity is back. moto 5.2.5 always has capacity. This shim refuses, in EC2's
words, to start an instance tagged `emulator:insufficient-capacity` (any value), so that a
test can make starts fail and then, by removing the tag, let capacity come back. Nothing else
in moto changes.

Usage: moto_ec2_capacity.py -H 127.0.0.1 -p PORT   (the arguments of moto_server)
"""

import sys
from typing import Any
from xml.sax.saxutils import escape

from moto.ec2.models.instances import InstanceBackend
from moto.server import main
from werkzeug.exceptions import HTTPException

CAPACITY_TAG = "emulator:insufficient-capacity"

_start_instances = InstanceBackend.start_instances


class InsufficientInstanceCapacity(HTTPException):
    """EC2's error response, with its HTTP status: a server error."""

    code = 500

    def __init__(self, instance_type: str, zone: str) -> None:
        super().__init__()
        message = (
            f"We currently do not have sufficient {instance_type} capacity in the Availability "
            f"Zone you requested ({zone}). Our system will be working on provisioning additional "
            f"capacity. You can currently get {instance_type} capacity by not specifying an "
            "Availability Zone in your request or choosing another Availability Zone."
        )
        self.description = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
            "<Code>InsufficientInstanceCapacity</Code>"
            f"<Message>{escape(message)}</Message></Error></Errors>"
            "<RequestID>59dbff89-35bd-4eac-99ed-be587EXAMPLE</RequestID></Response>"
        )

    def get_headers(self, *args: Any, **kwargs: Any) -> list[tuple[str, str]]:
        return [("Content-Type", "text/xml")]

    def get_body(self, *args: Any, **kwargs: Any) -> str:
        return self.description or ""


def _start_if_capacity(self: InstanceBackend, instance_ids: list[str]) -> Any:
    for instance in self.get_multi_instances_by_id(instance_ids):
        if any(tag.get("key") == CAPACITY_TAG for tag in instance.get_tags()):
            raise InsufficientInstanceCapacity(instance.instance_type, instance.availability_zone or "")
    return _start_instances(self, instance_ids)


InstanceBackend.start_instances = _start_if_capacity

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
