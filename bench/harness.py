"""Runs one function process under the local Runtime API and measures it.

A process is started with the environment Lambda gives a function (plus the emulator's
endpoint and test credentials), and measured from outside, the same way for every
implementation:

- init: from just before the process is spawned to its first `GET .../invocation/next`;
- each event: from the moment the Runtime API hands it out to the moment its result arrives;
- CPU time (summed over the process's threads) of init and of each event, which competing
  load on the machine does not inflate as it does wall time;
- peak RSS: `VmHWM` of /proc/<pid>/status right before the process is killed (not the
  kernel's `ru_maxrss` of the reaped child: Linux carries the harness's own, larger, RSS of
  the forked copy across the exec into it), and its CPU time;
- with a counting proxy as its endpoint: the AWS requests each event made, by operation.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from emulator import CountingProxy
from runtime_api import Invocation, RuntimeApi


@dataclass
class Implementation:
    """How to start one implementation of a function."""

    name: str  # "rust", "python", or "bare" (the bare runtime, the floor)
    function: str  # the Lambda function name, e.g. autoheal-infrastructure
    command: list[str]


@dataclass
class EventResult:
    kind: str  # "acted", "duplicate", or "echo" (the bare runtime's)
    seconds: float
    cpu_seconds: float
    requests: list[str] = field(default_factory=list)
    emulator_seconds: float = 0.0
    # The emulator's time for each request, in the order of `requests`.
    request_seconds: list[float] = field(default_factory=list)


@dataclass
class ProcessResult:
    implementation: str
    init_seconds: float
    init_cpu_seconds: float
    events: list[EventResult]
    peak_rss_kib: int
    memory_kib: dict[str, int]
    cpu_seconds: float

    def first(self, kind: str) -> EventResult:
        return next(e for e in self.events if e.kind == kind)

    def warm(self, kind: str) -> list[EventResult]:
        return [e for e in self.events if e.kind == kind][1:]


class OutcomeError(RuntimeError):
    """The function did not do what the scenario expects: nothing it timed is worth keeping."""


def lambda_environment(function: str, runtime_api: str, endpoint: str) -> dict[str, str]:
    """What Lambda sets for a 128 MB function, and the emulator's endpoint and credentials."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "TZ": ":UTC",
        "AWS_LAMBDA_RUNTIME_API": runtime_api,
        "AWS_LAMBDA_FUNCTION_NAME": function,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2026/01/01/[$LATEST]bench",
        "AWS_LAMBDA_LOG_FORMAT": "JSON",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_EXECUTION_ENV": "bench",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ENDPOINT_URL": endpoint,
    }


def _memory_kib(pid: int) -> dict[str, int]:
    """VmHWM (the peak resident set), and what is resident now: anonymous, file-backed, and
    of that the executable's own pages (`RssExecutable`, from /proc/<pid>/smaps; the rest of
    the file-backed pages are the shared libraries')."""
    found = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem"):
                found[key] = int(value.split()[0])
    executable = os.readlink(f"/proc/{pid}/exe")
    in_executable = False
    found["RssExecutable"] = 0
    with open(f"/proc/{pid}/smaps") as smaps:
        for line in smaps:
            # A mapping's header: address, permissions, offset, device, inode, then its path
            # (which may hold spaces); each of its fields after it: `Name: value`.
            fields = line.split(maxsplit=5)
            if fields and fields[0].endswith(":"):
                if in_executable and fields[0] == "Rss:":
                    found["RssExecutable"] += int(fields[1])
            else:
                in_executable = len(fields) == 6 and fields[5].rstrip("\n") == executable
    return found


def _cpu_ns(pid: int) -> int:
    """Time the process's threads have spent on a CPU (ns; /proc/<pid>/task/*/schedstat): unlike
    wall time, it does not grow when other work on the machine competes for the cores."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pass  # the thread ended meanwhile
    return total


def _check(kind: str, invocation: Invocation, event: dict[str, Any]) -> None:
    result = invocation.result()
    if invocation.error or not isinstance(result, dict):
        raise OutcomeError(f"{kind}: the function failed: {result}")
    if kind == "acted":
        record = result.get("record") or {}
        if result.get("decision") != "act" or record.get("status") != "completed":
            raise OutcomeError(f"acted: expected a completed action, got {result}")
    elif kind == "echo":
        # The bare runtime answers with the event itself.
        if result != event:
            raise OutcomeError(f"echo: expected the event back, got {result}")
    elif result.get("reason") != "duplicate":
        raise OutcomeError(f"duplicate: expected a duplicate skip, got {result}")


def run_process(
    implementation: Implementation,
    configuration: dict[str, str],
    endpoint: str,
    events: list[tuple[str, dict[str, Any]]],
    log: Path,
    proxy: CountingProxy | None = None,
    between: Callable[[], None] = lambda: None,
    timeout: float = 120.0,
) -> ProcessResult:
    """Starts the function, delivers `events` ((kind, event) pairs) one at a time, kills it.
    `between` runs before the first event and after each duplicate, outside any timing."""
    api = RuntimeApi(implementation.function).start()
    environment = lambda_environment(implementation.function, api.address, proxy.url if proxy else endpoint)
    environment.update(configuration)
    process: subprocess.Popen[bytes] | None = None
    try:
        with open(log, "ab") as out:
            started = time.monotonic_ns()
            process = subprocess.Popen(
                implementation.command,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
            )
        if not api.ready.wait(timeout) or api.first_next_ns is None:
            raise OutcomeError(f"{implementation.function} ({implementation.name}) never asked for an event: see {log}")
        init = (api.first_next_ns - started) / 1e9
        init_cpu = _cpu_ns(process.pid)
        between()
        results = []
        for number, (kind, event) in enumerate(events, start=1):
            mark = proxy.mark() if proxy else 0
            before = _cpu_ns(process.pid)
            invocation = api.invoke(event, str(uuid.uuid4()), timeout)
            # Back for the next event: done with this one, CPU time included.
            api.wait_for_poll(number + 1)
            cpu = _cpu_ns(process.pid) - before
            _check(kind, invocation, event)
            seen = proxy.since(mark) if proxy else []
            results.append(
                EventResult(
                    kind,
                    invocation.seconds,
                    cpu / 1e9,
                    [r.operation for r in seen],
                    sum(r.upstream_seconds for r in seen),
                    [r.upstream_seconds for r in seen],
                )
            )
            if kind == "duplicate":
                between()
        memory = _memory_kib(process.pid)
        process.send_signal(signal.SIGKILL)
        _, _, usage = os.wait4(process.pid, 0)
        process.returncode = -signal.SIGKILL
        return ProcessResult(
            implementation.name,
            init,
            init_cpu / 1e9,
            results,
            memory.get("VmHWM", 0),
            memory,
            usage.ru_utime + usage.ru_stime,
        )
    finally:
        if process is not None and process.returncode is None:
            process.kill()
            process.wait()
        api.stop()
