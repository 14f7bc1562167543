"""Starts emulators by forking one process that has already imported moto.

Each test has an emulator of its own. Started from scratch, each paid for importing moto, its
server and the services it serves (about a second of CPU, then more at each service's first
request): the end-to-end tests took 412 s on 2 cores with a fresh process per emulator, and
263 s with forks. This process imports all of that once, applies the shims every emulator has, and forks a copy per emulator: the
copy applies the test's own shims and runs moto's server. A copy shares nothing with the
others after the fork, so tests stay as isolated as with a process each.

It reads one command per line on stdin and answers one line on stdout:

    start PORT [SHIM ...]   fork an emulator on 127.0.0.1:PORT   -> its pid
    alive PID               is it still running?                 -> yes | no
    stop PID                kill it and reap it                  -> stopped

At the end of stdin (the test process ended, however it ended) it kills every emulator it
started and exits.

A shim is named by its file name in this folder.

Usage: zygote.py BASE_SHIM ...   (the shims every emulator applies, in order)
"""

import importlib
import os
import random
import runpy
import signal
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

# What every test reaches sooner or later: importing it here is what the copies save.
SERVICES = (
    "autoscaling",
    "awslambda",
    "cloudwatch",
    "dynamodb",
    "ec2",
    "ecs",
    "elasticache",
    "elbv2",
    "events",
    "iam",
    "rds",
    "route53",
    "scheduler",
    "sns",
    "sqs",
    "ssm",
    "sts",
)


def preload(base_shims: list[str]) -> None:
    import moto.server  # noqa: F401

    for service in SERVICES:
        importlib.import_module(f"moto.{service}.models")
        importlib.import_module(f"moto.{service}.urls")
    for shim in base_shims:
        runpy.run_path(str(HERE / shim), run_name="shim")


def run_emulator(port: str, shims: list[str]) -> None:
    """In the forked copy: detach from the protocol's pipes, apply the shims, serve."""
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    # The copies would otherwise draw the same "random" ids.
    random.seed()
    try:
        for shim in shims:
            runpy.run_path(str(HERE / shim), run_name="shim")
        from moto.server import main

        main(["-H", "127.0.0.1", "-p", port])
    finally:
        os._exit(1)


def reap(pid: int) -> bool:
    """True when the process has ended (and is reaped)."""
    try:
        ended, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return ended == pid


def main() -> None:
    preload(sys.argv[1:])
    children: set[int] = set()
    for line in sys.stdin:
        command, *args = line.split() or [""]
        if command == "start" and args:
            pid = os.fork()
            if pid == 0:
                run_emulator(args[0], args[1:])
            children.add(pid)
            answer = str(pid)
        elif command == "alive" and args:
            pid = int(args[0])
            if reap(pid):
                # Reaped: its pid may be reused, so it must not be killed later.
                children.discard(pid)
                answer = "no"
            else:
                answer = "yes"
        elif command == "stop" and args:
            pid = int(args[0])
            if pid in children:
                children.discard(pid)
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            answer = "stopped"
        else:
            answer = f"error: not a command: {line.strip()!r}"
        sys.stdout.write(answer + "\n")
        sys.stdout.flush()
    for pid in children:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


if __name__ == "__main__":
    main()
