"""A Python Lambda runtime loop, as AWS's Python runtime client runs a handler.

Init imports the handler module (which reads its configuration and builds its boto3 clients),
then the loop asks the Runtime API for the next event, calls the handler, and posts its result
or error. An import that fails is posted to /init/error.

Usage: python bootstrap.py MODULE   (MODULE.handler(event, context), MODULE next to this file)
"""

from __future__ import annotations

import http.client
import importlib
import json
import os
import sys
import time
import traceback
from typing import Any

PREFIX = "/2018-06-01/runtime"


class Context:
    """The parts of Lambda's context object a handler reads."""

    def __init__(self, headers: http.client.HTTPMessage) -> None:
        self.aws_request_id = headers["Lambda-Runtime-Aws-Request-Id"]
        self.invoked_function_arn = headers.get("Lambda-Runtime-Invoked-Function-Arn", "")
        self.deadline_ms = int(headers.get("Lambda-Runtime-Deadline-Ms", "0"))
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self.deadline_ms - int(time.time() * 1000))


def _error(exc: BaseException) -> bytes:
    return json.dumps(
        {
            "errorMessage": str(exc),
            "errorType": type(exc).__name__,
            "stackTrace": traceback.format_tb(exc.__traceback__),
        }
    ).encode()


def main() -> None:
    host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].rsplit(":", 1)
    api = http.client.HTTPConnection(host, int(port))

    def post(path: str, body: bytes) -> None:
        api.request("POST", f"{PREFIX}{path}", body=body, headers={"Content-Type": "application/json"})
        api.getresponse().read()

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    try:
        module: Any = importlib.import_module(sys.argv[1])
        handler = module.handler
    except Exception as exc:  # noqa: BLE001 - any init failure is reported as Lambda does
        post("/init/error", _error(exc))
        raise
    while True:
        api.request("GET", f"{PREFIX}/invocation/next")
        response = api.getresponse()
        event = json.loads(response.read())
        context = Context(response.headers)
        try:
            result = handler(event, context)
            post(f"/invocation/{context.aws_request_id}/response", json.dumps(result).encode())
        except Exception as exc:  # noqa: BLE001 - the handler's error goes to Lambda
            post(f"/invocation/{context.aws_request_id}/error", _error(exc))


if __name__ == "__main__":
    main()
