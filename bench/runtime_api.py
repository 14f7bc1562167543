"""A local AWS Lambda Runtime API on 127.0.0.1, for one function process at a time.

It speaks the part of the Runtime API a function's runtime client uses
(https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html):

    GET  /2018-06-01/runtime/invocation/next          long poll: the next event
    POST /2018-06-01/runtime/invocation/<id>/response the handler's result
    POST /2018-06-01/runtime/invocation/<id>/error    the handler's error
    POST /2018-06-01/runtime/init/error               the function could not start

and timestamps what the benchmark measures, on the harness's monotonic clock: when the process
first asks for an event (it is ready: the end of its init), when each event is handed out, and
when its result arrives.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "/2018-06-01/runtime"
ACCOUNT = "123456789012"
REGION = "us-east-1"


@dataclass
class Invocation:
    """One event's round trip through the function."""

    request_id: str
    handed_out_ns: int = 0
    done_ns: int = 0
    error: bool = False
    body: bytes = b""
    finished: threading.Event = field(default_factory=threading.Event)

    @property
    def seconds(self) -> float:
        return (self.done_ns - self.handed_out_ns) / 1e9

    def result(self) -> object:
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return self.body.decode("utf-8", "replace")


class QuietServer(ThreadingHTTPServer):
    """A threaded server that does not print a traceback when a killed process drops its
    connection (every process is killed at the end of its run)."""

    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class RuntimeApi:
    """The Runtime API for one function process; `invoke` hands it one event and waits."""

    def __init__(self, function_name: str) -> None:
        self.function_name = function_name
        self.first_next_ns: int | None = None
        self.ready = threading.Event()
        # How many times the process has asked for an event: once it asks again, it is done
        # with the previous one (its CPU time can be read).
        self.polls = 0
        self._polled = threading.Condition()
        self.init_error: bytes | None = None
        self._pending: queue.Queue[tuple[Invocation, bytes] | None] = queue.Queue()
        self._invocations: dict[str, Invocation] = {}
        self._lock = threading.Lock()
        self._server = QuietServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def address(self) -> str:
        """What the process finds in `AWS_LAMBDA_RUNTIME_API`."""
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    def start(self) -> "RuntimeApi":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._pending.put(None)  # releases a long poll still waiting
        self._server.shutdown()
        self._server.server_close()

    def wait_for_poll(self, count: int, timeout: float = 10.0) -> bool:
        """Waits until the process has asked for an event `count` times in all."""
        with self._polled:
            return self._polled.wait_for(lambda: self.polls >= count, timeout)

    def invoke(self, event: object, request_id: str, timeout: float = 120.0) -> Invocation:
        """Hands `event` to the function and waits for its response or error."""
        invocation = Invocation(request_id)
        with self._lock:
            self._invocations[request_id] = invocation
        self._pending.put((invocation, json.dumps(event).encode()))
        if not invocation.finished.wait(timeout):
            raise TimeoutError(f"{self.function_name}: no result for {request_id} in {timeout} s")
        return invocation

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            # Keep-alive, as Lambda's own endpoint: a runtime client reuses its connection.
            protocol_version = "HTTP/1.1"
            # Small answers go out at once, never held back for an ACK (Nagle's algorithm).
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

            def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                # Head and body in one write: split, a small body waits for the peer's
                # delayed ACK (about 40 ms), a cost no real endpoint has.
                self._headers_buffer.append(b"\r\n")
                self._headers_buffer.append(body)
                self.wfile.write(b"".join(self._headers_buffer))
                self._headers_buffer = []

            def _body(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def do_GET(self) -> None:  # noqa: N802
                if self.path != f"{PREFIX}/invocation/next":
                    self._reply(404, b'{"errorMessage":"not found"}')
                    return
                if api.first_next_ns is None:
                    api.first_next_ns = time.monotonic_ns()
                    api.ready.set()
                with api._polled:
                    api.polls += 1
                    api._polled.notify_all()
                item = api._pending.get()
                if item is None:
                    self.close_connection = True
                    return
                invocation, body = item
                deadline_ms = int(time.time() * 1000) + 300_000  # the template's Timeout
                arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{api.function_name}"
                headers = {
                    "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
                    "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
                    "Lambda-Runtime-Invoked-Function-Arn": arn,
                    "Lambda-Runtime-Trace-Id": f"Root=1-00000000-{invocation.request_id[-24:]:0>24};Sampled=0",
                }
                # Stamped before the write, so a fast answer never precedes it.
                invocation.handed_out_ns = time.monotonic_ns()
                self._reply(200, body, headers)

            def do_POST(self) -> None:  # noqa: N802
                body = self._body()
                now = time.monotonic_ns()
                if self.path == f"{PREFIX}/init/error":
                    api.init_error = body
                    api.ready.set()
                    self._reply(202, b'{"status":"OK"}')
                    return
                parts = self.path.removeprefix(f"{PREFIX}/invocation/").split("/")
                if len(parts) != 2 or parts[1] not in ("response", "error"):
                    self._reply(404, b'{"errorMessage":"not found"}')
                    return
                with api._lock:
                    invocation = api._invocations.pop(parts[0], None)
                if invocation is None:
                    self._reply(400, b'{"errorMessage":"unknown request id"}')
                    return
                invocation.done_ns = now
                invocation.error = parts[1] == "error"
                invocation.body = body
                self._reply(202, b'{"status":"OK"}')
                invocation.finished.set()

        return Handler
