"""The local AWS emulator (moto in server mode) and a counting proxy in front of it.

The emulator is started as the end-to-end tests start it: the scripts of `tests/emulator/`
that add what moto lacks are loaded first (always DynamoDB's atomic conditional writes; moto
serves CloudWatch in the Rust SDK's protocol itself), then moto's server, on a free 127.0.0.1
port.

The proxy names every request `service:Operation` the way the tests' fault proxy does (the
service from the SigV4 credential scope, the operation from `X-Amz-Target`, the RPCv2 path,
the query `Action`, or the REST method and path) and times its trip to the emulator.
"""

from __future__ import annotations

import http.client
import re
import socket
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from runtime_api import QuietServer

REPO = Path(__file__).resolve().parents[1]
SHIMS = REPO / "tests" / "emulator"
ALWAYS = ("moto_dynamodb_atomic.py",)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Emulator:
    """One moto server with the given shims; `stop` ends it."""

    def __init__(self, python: str, shims: tuple[str, ...] = (), log: Path | None = None) -> None:
        paths = [str(SHIMS / name) for name in (*ALWAYS, *shims)]
        self._launcher = (
            "import runpy, sys\n"
            f"for shim in {paths!r}:\n"
            "    runpy.run_path(shim, run_name='shim')\n"
            "from moto.server import main\n"
            "sys.exit(main(sys.argv[1:]))"
        )
        self._python = python
        self._log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> "Emulator":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.port = free_port()
            out = open(self._log, "ab") if self._log else subprocess.DEVNULL
            self.process = subprocess.Popen(
                [self._python, "-c", self._launcher, "-H", "127.0.0.1", "-p", str(self.port)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
            )
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    break  # lost the port to someone else: try another
                try:
                    urllib.request.urlopen(f"{self.url}/moto-api/", timeout=2).read()
                    return self
                except OSError:
                    time.sleep(0.1)
        raise RuntimeError("the emulator did not start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


# REST operations by (service, method, path pattern); anything else is named by its method
# and first path segment.
REST_OPERATIONS = [
    ("scheduler", "POST", r"^/schedules/[^/]+$", "CreateSchedule"),
    ("scheduler", "GET", r"^/schedules/[^/]+$", "GetSchedule"),
    ("scheduler", "PUT", r"^/schedules/[^/]+$", "UpdateSchedule"),
    ("scheduler", "DELETE", r"^/schedules/[^/]+$", "DeleteSchedule"),
    ("scheduler", "GET", r"^/schedules$", "ListSchedules"),
    ("lambda", "GET", r"/functions/[^/]+/aliases/[^/]+$", "GetAlias"),
    ("lambda", "PUT", r"/functions/[^/]+/aliases/[^/]+$", "UpdateAlias"),
    ("lambda", "GET", r"/functions/[^/]+/versions$", "ListVersionsByFunction"),
    ("lambda", "POST", r"/functions/[^/]+/invocations$", "Invoke"),
    ("lambda", "GET", r"/functions/[^/]+/configuration$", "GetFunctionConfiguration"),
    ("lambda", "GET", r"/functions/[^/]+$", "GetFunction"),
    ("lambda", "GET", r"/tags/.+$", "ListTags"),
    ("lambda", "POST", r"/tags/.+$", "TagResource"),
]


def operation_of(method: str, path: str, headers: http.client.HTTPMessage, body: bytes) -> str:
    """`service:Operation` of one signed AWS request."""
    auth = headers.get("Authorization", "")
    scope = auth.split("Credential=", 1)[1].split(",", 1)[0].split("/") if "Credential=" in auth else []
    service = scope[3] if len(scope) > 3 else "unsigned"
    target = headers.get("X-Amz-Target")
    if target:
        return f"{service}:{target.rsplit('.', 1)[-1]}"
    path = path.split("?", 1)[0]
    if "/operation/" in path:
        return f"{service}:{path.rsplit('/operation/', 1)[1]}"
    if (headers.get("Content-Type") or "").startswith("application/x-www-form-urlencoded"):
        for pair in body.decode("utf-8", "replace").split("&"):
            if pair.startswith("Action="):
                return f"{service}:{pair[len('Action='):]}"
    for svc, verb, pattern, name in REST_OPERATIONS:
        if svc == service and verb == method and re.search(pattern, path):
            return f"{service}:{name}"
    first = path.strip("/").split("/", 1)[0]
    return f"{service}:{method} /{first}"


@dataclass
class Request:
    operation: str
    upstream_seconds: float


class CountingProxy:
    """Forwards every request to the emulator over a kept-alive connection and logs it."""

    HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "content-length"}

    def __init__(self, upstream_port: int) -> None:
        self.log: list[Request] = []
        self._lock = threading.Lock()
        self._server = QuietServer(("127.0.0.1", 0), self._handler(upstream_port))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> "CountingProxy":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def mark(self) -> int:
        with self._lock:
            return len(self.log)

    def since(self, mark: int) -> list[Request]:
        with self._lock:
            return list(self.log[mark:])

    def _handler(self, upstream_port: int) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True
            upstream: http.client.HTTPConnection | None = None

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                operation = operation_of(self.command, self.path, self.headers, body)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in self.HOP}
                started = time.monotonic()
                for attempt in (1, 2):
                    if self.upstream is None:
                        self.upstream = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=60)
                    try:
                        self.upstream.request(self.command, self.path, body=body, headers=headers)
                        response = self.upstream.getresponse()
                        payload = response.read()
                        break
                    except (http.client.HTTPException, OSError):
                        # The emulator closed a kept-alive connection: one fresh try.
                        self.upstream.close()
                        self.upstream = None
                        if attempt == 2:
                            raise
                elapsed = time.monotonic() - started
                with proxy._lock:
                    proxy.log.append(Request(operation, elapsed))
                self.send_response_only(response.status, response.reason)
                for key, value in response.getheaders():
                    if key.lower() not in self.HOP:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                # Head and body in one write (see runtime_api.py).
                self._headers_buffer.append(b"\r\n")
                self._headers_buffer.append(payload)
                self.wfile.write(b"".join(self._headers_buffer))
                self._headers_buffer = []

            HOP = CountingProxy.HOP_BY_HOP
            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _forward

        return Handler
