"""Starts the emulator (moto in server mode) with Systems Manager's ListCommands in pages.

Systems Manager lists the commands sent to an instance a page at a time: `MaxResults` (1 to
50, 50 when not given) commands per page, and a `NextToken` while more are left; `Filters`
keep the commands sent after (`InvokedAfter`) or before (`InvokedBefore`) a time, in a
given `Status` or of a given `DocumentName`. moto 5.2.5 answers every command in one page
and ignores the filters, so a busy instance's older commands can never be missed. This shim
pages ListCommands as Systems Manager does, newest command first, and honours those filters;
nothing else in moto changes.

Usage: moto_ssm_list_commands.py -H 127.0.0.1 -p PORT   (the arguments of moto_server)
"""

import sys
from datetime import datetime, timezone
from typing import Any

from moto.core.responses import ActionResult
from moto.server import main
from moto.ssm.exceptions import ValidationException
from moto.ssm.responses import SimpleSystemManagerResponse

PAGE_DEFAULT = 50
PAGE_MAX = 50


def _time(value: str) -> datetime:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _kept(command: Any, filters: list[dict[str, str]]) -> bool:
    for item in filters:
        key, value = item.get("key") or item.get("Key"), item.get("value") or item.get("Value")
        sent = _aware(command.requested_date_time)
        if key == "InvokedAfter" and sent < _time(value):
            return False
        if key == "InvokedBefore" and sent > _time(value):
            return False
        if key == "Status" and command.status.lower() != value.lower():
            return False
        if key == "DocumentName" and command.document_name != value:
            return False
    return True


def list_commands(self: SimpleSystemManagerResponse) -> ActionResult:
    command_id = self._get_param("CommandId")
    instance_id = self._get_param("InstanceId")
    size = self._get_param("MaxResults") or PAGE_DEFAULT
    if not 1 <= int(size) <= PAGE_MAX:
        raise ValidationException(
            f"1 validation error detected: Value '{size}' at 'maxResults' failed to satisfy "
            f"constraint: Member must have value less than or equal to {PAGE_MAX}"
        )
    commands = self.ssm_backend.list_commands(command_id, instance_id)
    filters = self._get_param("Filters", []) or []
    listed = sorted(
        (command for command in commands if _kept(command, filters)),
        key=lambda command: _aware(command.requested_date_time),
        reverse=True,
    )
    start = int(self._get_param("NextToken") or 0)
    page = listed[start : start + int(size)]
    response: dict[str, Any] = {"Commands": [command.response_object() for command in page]}
    if start + int(size) < len(listed):
        response["NextToken"] = str(start + int(size))
    return ActionResult(response)


SimpleSystemManagerResponse.list_commands = list_commands

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
