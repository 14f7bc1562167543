"""Records, for each request autoheal's functions send the emulator, what IAM authorizes.

The tests give each function's SDK configuration credentials whose access key id names the
function (`autoheal-infrastructure`, ...); in a member account, a function signs with the
credentials of the member role it assumed there through STS, in a session named `autoheal-...`,
and its requests are recorded as the member role's (`member:<role ARN>`). For every request
signed with such a key, before
moto handles it, this shim records the function, the operation, the names of the parameters
it set, and the IAM requests AWS would authorize for it (action, resource ARN and the request
context its conditions read: the resource's tags as they are now, the tags and keys the
request sets; see `request_authorizations.py`). `GET /autoheal-test/requests` answers the records so far as a
JSON list; the tests evaluate them against each function's policy in `template.yaml` when
the emulator stops. Requests signed with any other key (the tests' own fixtures) are not
recorded, and nothing about how moto answers any request changes. Every emulator the tests
start loads it.

Usage: moto_request_log.py -H 127.0.0.1 -p PORT   (the arguments of moto_server)
"""

import json
import re
import sys
import threading
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from moto.core.model import OperationModel  # noqa: E402
from moto.core.parse import PROTOCOL_PARSERS  # noqa: E402
from moto.core.request import determine_request_protocol  # noqa: E402
from moto.core.responses import BaseResponse, get_service_model  # noqa: E402
from moto.moto_server.werkzeug_app import DomainDispatcherApplication  # noqa: E402
from moto.server import main  # noqa: E402
from moto.sts.models import sts_backends  # noqa: E402

import request_authorizations  # noqa: E402

FUNCTION_KEY_PREFIX = "autoheal-"
LOG_PATH = "/autoheal-test/requests"
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")

_RECORDS: list[dict[str, Any]] = []
_LOCK = threading.Lock()


def _parameters(response: BaseResponse, operation: str) -> Any:
    """The request's parameters in the shape of the service's API model, whatever its
    protocol (query, JSON, REST, CBOR), through moto's own parsers."""
    if getattr(response, "automated_parameter_parsing", False) and hasattr(response, "params"):
        return response.params
    service_model = get_service_model(response.boto3_service_name)
    operation_model: OperationModel = service_model.operation_model(operation)
    request = response.normalized_request
    protocol = determine_request_protocol(service_model, request)
    parser = PROTOCOL_PARSERS[protocol](operation_model, map_type=response.PROTOCOL_PARSER_MAP_TYPE)
    return parser.parse(
        {
            "method": request.method,
            "values": request.values,
            "headers": request.headers,
            "body": request.data,
            "url_path": request.path,
            "url_params": response.uri_match,
        }
    )


def _names(response: BaseResponse, operation: str, parameters: Any) -> list[str]:
    """The names of the parameters a request set, as the service's API model spells them
    (moto keeps some services' parsed names in snake case)."""
    members = get_service_model(response.boto3_service_name).operation_model(operation).input_shape
    spelled = {name.lower(): name for name in (members.members if members else {})}
    return sorted(
        spelled.get(str(name).replace("_", "").lower(), str(name))
        for name in (parameters or {}).keys()
    )


def _principal(response: BaseResponse) -> str:
    """The access key id the request is signed with (SigV4's `Credential=KEY/...`)."""
    found = _CREDENTIAL.search(response.headers.get("Authorization", ""))
    return found.group(1) if found else ""


# The session names of the functions' member role sessions (the fixtures name theirs otherwise).
SESSION_PREFIX = "autoheal-"


def _member_role(response: BaseResponse, key: str) -> str | None:
    """The role a function assumed in this request's account, when `key` is the access key of
    one of its sessions there."""
    try:
        backend = sts_backends[response.current_account]["aws"]
    except Exception:  # noqa: BLE001 - an account or partition moto has no STS for
        return None
    assumed = backend.get_assumed_role_from_access_key(key)
    if assumed is None or not assumed.session_name.startswith(SESSION_PREFIX):
        return None
    return assumed.role_arn


def _record(response: BaseResponse) -> None:
    principal = _principal(response)
    if not principal.startswith(FUNCTION_KEY_PREFIX):
        role = _member_role(response, principal) if principal else None
        if role is None:
            return
        principal = f"member:{role}"
    operation = response._get_action()
    entry: dict[str, Any] = {"principal": principal, "service": response.service_name}
    try:
        parameters = _parameters(response, operation)
        # Which parameters it set: the limits IAM cannot express are checked on these.
        entry["parameters"] = _names(response, operation, parameters)
        call = request_authorizations.Call(parameters, response.current_account, response.region)
        name, found = request_authorizations.authorizations(
            response.service_name, operation, call
        )
        entry["operation"] = name
        if found is None:
            entry["unmodelled"] = True
        else:
            entry["authorizations"] = found
    except Exception as error:  # noqa: BLE001 - the tests report it with the request
        entry["operation"] = f"{response.service_name}:{operation}"
        entry["error"] = f"{type(error).__name__}: {error}"
    with _LOCK:
        _RECORDS.append(entry)


_call_action = BaseResponse.call_action


def call_action(self: BaseResponse) -> Any:
    _record(self)
    return _call_action(self)


BaseResponse.call_action = call_action

_dispatch = DomainDispatcherApplication.__call__


def dispatch(
    self: DomainDispatcherApplication, environ: dict[str, Any], start_response: Any
) -> Any:
    if environ.get("PATH_INFO") == LOG_PATH:
        with _LOCK:
            body = json.dumps(_RECORDS, default=str).encode()
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        start_response("200 OK", headers)
        return [body]
    return _dispatch(self, environ, start_response)


DomainDispatcherApplication.__call__ = dispatch

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
