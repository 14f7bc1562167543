"""Summaries of the measurements, the machine they were taken on, and the Markdown report."""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import statistics
import subprocess
from collections import Counter
from importlib import metadata
from pathlib import Path
from typing import Any

from harness import EventResult, ProcessResult

# The targets: Rust/Python ratios (at most), and requests per event (at most). An event is
# measured by its CPU time and its time outside the emulator: its wall time here is mostly the
# emulator's (moto, in Python), which real AWS endpoints are not.
TARGET_RATIOS = {"init_ms": 1 / 25, "peak_rss_kib": 1 / 8, "first_acted_cpu_ms": 1 / 10}
# The same target, read on the event's time outside the emulator and on its CPU time with the
# connections kept alive (for reference).
REFERENCE_RATIOS = {"first_acted_own_ms": 1 / 10, "first_acted_kept_alive_cpu_ms": 1 / 10}
TARGET_DYNAMODB = {"acted": 2, "duplicate": 1}
# Against the bare runtime (the floor): function / floor, at most.
FLOOR_RATIOS = {"init_ms": 2.0, "peak_rss_kib": 2.5}


def stats(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "min": min(values),
        "median": statistics.median(values),
        "max": max(values),
        "mean": statistics.fmean(values),
    }


def _ms(events: list[EventResult]) -> list[float]:
    return [round(e.seconds * 1000, 3) for e in events]


def _cpu_ms(events: list[EventResult]) -> list[float]:
    return [round(e.cpu_seconds * 1000, 3) for e in events]


def _requests(event: EventResult) -> dict[str, Any]:
    spent: dict[str, float] = {}
    for operation, seconds in zip(event.requests, event.request_seconds):
        spent[operation] = spent.get(operation, 0.0) + seconds * 1000
    return {
        "by_operation": dict(sorted(Counter(event.requests).items())),
        "emulator_ms_by_operation": {op: round(ms, 3) for op, ms in sorted(spent.items())},
        "total": len(event.requests),
        "dynamodb": sum(1 for r in event.requests if r.startswith("dynamodb:")),
        "event_ms": round(event.seconds * 1000, 3),
        "emulator_ms": round(event.emulator_seconds * 1000, 3),
    }


def _own_ms(events: list[EventResult]) -> list[float]:
    """Each event's time outside the emulator (and the proxy's hops)."""
    return [round((e.seconds - e.emulator_seconds) * 1000, 3) for e in events]


def summarize(cold: list[ProcessResult], series: ProcessResult, counted: list[ProcessResult]) -> dict[str, Any]:
    """One implementation of one function: every sample, and their statistics."""
    first_counted = counted[0]
    samples = {
        "init_ms": [round(p.init_seconds * 1000, 3) for p in cold],
        "first_acted_ms": [round(p.first("acted").seconds * 1000, 3) for p in cold],
        "first_duplicate_ms": [round(p.first("duplicate").seconds * 1000, 3) for p in cold],
        "peak_rss_kib": [p.peak_rss_kib for p in cold],
        "cpu_ms": [round(p.cpu_seconds * 1000, 1) for p in cold],
        "warm_acted_ms": _ms(series.warm("acted")),
        "warm_duplicate_ms": _ms(series.warm("duplicate")),
        "init_cpu_ms": [round(p.init_cpu_seconds * 1000, 3) for p in cold],
        "first_acted_cpu_ms": _cpu_ms([p.first("acted") for p in cold]),
        "first_duplicate_cpu_ms": _cpu_ms([p.first("duplicate") for p in cold]),
        "warm_acted_cpu_ms": _cpu_ms(series.warm("acted")),
        "warm_duplicate_cpu_ms": _cpu_ms(series.warm("duplicate")),
        # The same events behind the counting proxy, which keeps connections alive (the
        # emulator closes each after one answer): what a connection per request costs the
        # process. One host for every service, where AWS has one per service: not AWS's figure.
        "first_acted_kept_alive_cpu_ms": _cpu_ms([p.first("acted") for p in counted]),
        "first_duplicate_kept_alive_cpu_ms": _cpu_ms([p.first("duplicate") for p in counted]),
        "first_acted_own_ms": _own_ms([p.first("acted") for p in counted]),
        "first_duplicate_own_ms": _own_ms([p.first("duplicate") for p in counted]),
        "warm_acted_own_ms": _own_ms(first_counted.warm("acted")),
        "warm_duplicate_own_ms": _own_ms(first_counted.warm("duplicate")),
    }
    return {
        "samples": samples,
        "stats": {name: stats(values) for name, values in samples.items() if values},
        "warm_process": {
            "peak_rss_kib": series.peak_rss_kib,
            "cpu_ms": round(series.cpu_seconds * 1000, 1),
            "events": len(series.events),
        },
        "counted_event_ms": {
            "first_acted": statistics.median(p.first("acted").seconds * 1000 for p in counted),
            "first_duplicate": statistics.median(p.first("duplicate").seconds * 1000 for p in counted),
            "warm_acted": statistics.median([e.seconds * 1000 for e in first_counted.warm("acted")] or [0]),
            "warm_duplicate": statistics.median([e.seconds * 1000 for e in first_counted.warm("duplicate")] or [0]),
        },
        "emulator_ms": {
            "first_acted": statistics.median(p.first("acted").emulator_seconds * 1000 for p in counted),
            "first_duplicate": statistics.median(p.first("duplicate").emulator_seconds * 1000 for p in counted),
            "warm_acted": statistics.median([e.emulator_seconds * 1000 for e in first_counted.warm("acted")] or [0]),
            "warm_duplicate": statistics.median([e.emulator_seconds * 1000 for e in first_counted.warm("duplicate")] or [0]),
        },
        # Resident at the kill, anonymous (heap, stacks) and file-backed (the binary's or the
        # interpreter's and libraries' pages): what the peak is made of.
        "rss_anon_kib": [p.memory_kib.get("RssAnon", 0) for p in cold],
        "rss_file_kib": [p.memory_kib.get("RssFile", 0) for p in cold],
        "rss_executable_kib": [p.memory_kib.get("RssExecutable", 0) for p in cold],
        "requests": {
            "first_acted": _requests(first_counted.first("acted")),
            "first_duplicate": _requests(first_counted.first("duplicate")),
            "warm_acted": [_requests(e) for e in first_counted.warm("acted")],
            "warm_duplicate": [_requests(e) for e in first_counted.warm("duplicate")],
            # Whether every counted process made the same requests for its first pair.
            "first_pair_always_the_same": all(
                sorted(p.first(k).requests) == sorted(first_counted.first(k).requests)
                for p in counted
                for k in ("acted", "duplicate")
            ),
        },
    }


def summarize_floor(cold: list[ProcessResult]) -> dict[str, Any]:
    """The bare runtime's cold starts: init, its CPU time, the echo, and the peak RSS."""
    samples = {
        "init_ms": [round(p.init_seconds * 1000, 3) for p in cold],
        "init_cpu_ms": [round(p.init_cpu_seconds * 1000, 3) for p in cold],
        "event_ms": _ms([p.first("echo") for p in cold]),
        "event_cpu_ms": _cpu_ms([p.first("echo") for p in cold]),
        "peak_rss_kib": [p.peak_rss_kib for p in cold],
    }
    return {
        "samples": samples,
        "stats": {name: stats(values) for name, values in samples.items()},
        "rss_anon_kib": [p.memory_kib.get("RssAnon", 0) for p in cold],
        "rss_file_kib": [p.memory_kib.get("RssFile", 0) for p in cold],
        "rss_executable_kib": [p.memory_kib.get("RssExecutable", 0) for p in cold],
    }


def _floor_lines(results: dict[str, Any]) -> list[str]:
    floor = results.get("floor")
    if not floor:
        return []
    fs = floor["stats"]
    lines = [
        "",
        "## Against the floor: a bare `lambda_runtime` (medians)",
        "",
        "The floor is `bench/bare-runtime`: `lambda_runtime` on the same single-threaded tokio "
        "runtime, built with the same release profile, answering each event with the event "
        f"itself. It starts in {_range(fs['init_ms'])} ms ({_f(fs['init_cpu_ms']['median'])} ms of CPU), "
        f"answers the acted event in {_range(fs['event_ms'])} ms ({_f(fs['event_cpu_ms']['median'])} ms of CPU) "
        f"and peaks at {_mib(fs['peak_rss_kib']['median'])} MiB "
        f"({_mib(statistics.median(floor['rss_anon_kib']))} anon + {_mib(statistics.median(floor['rss_file_kib']))} file at the end, "
        f"{_mib(statistics.median(floor['rss_executable_kib']))} of it the binary's).",
        "",
        "| function | init ms | × floor | init CPU ms | × floor | peak RSS MiB | × floor | aim |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for function in results["functions"]:
        rust = function["implementations"].get("rust")
        if not rust:
            continue
        st = rust["stats"]
        init = st["init_ms"]["median"] / fs["init_ms"]["median"]
        cpu = st["init_cpu_ms"]["median"] / fs["init_cpu_ms"]["median"]
        rss = st["peak_rss_kib"]["median"] / fs["peak_rss_kib"]["median"]
        met = [
            f"init ≤ {FLOOR_RATIOS['init_ms']:g}×: {'yes' if init <= FLOOR_RATIOS['init_ms'] else 'no'}",
            f"RSS ≤ {FLOOR_RATIOS['peak_rss_kib']:g}×: {'yes' if rss <= FLOOR_RATIOS['peak_rss_kib'] else 'no'}",
        ]
        lines.append(
            f"| {function['layer']} | {_f(st['init_ms']['median'])} | {init:.1f}× | {_f(st['init_cpu_ms']['median'])} | {cpu:.1f}× "
            f"| {_mib(st['peak_rss_kib']['median'])} | {rss:.1f}× | {'; '.join(met)} |"
        )
    return lines


def _same_requests(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two implementations made the same requests, by operation, for their first
    acted event and their first duplicate."""
    return all(a[key]["by_operation"] == b[key]["by_operation"] for key in ("first_acted", "first_duplicate"))


def _sdk_floor_lines(results: dict[str, Any]) -> list[str]:
    compared = [f for f in results["functions"] if {"rust", "python", "sdk-floor"} <= set(f["implementations"])]
    if not compared:
        return []
    lines = [
        "",
        "## Against the SDK's floor: the same requests and nothing else (medians, CPU time)",
        "",
        "The SDK's floor is `bench/sdk-floor`: the requests the function makes for the event "
        "(the boto3 baseline's list), with the same clients, SDK configuration and runtime, and "
        "no rules, decision or log. *autoheal's own*: the function's CPU time less the floor's; "
        "*floor / Python*: how far below boto3 the requests alone are, the bound on the "
        "function's own ratio.",
        "",
        "| function | event | Rust | SDK's floor | Python | autoheal's own | Rust / Python | floor / Python | the same requests |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for function in compared:
        impls = function["implementations"]
        same = _same_requests(impls["rust"]["requests"], impls["sdk-floor"]["requests"])
        for key, label in (
            ("first_acted_cpu_ms", "first acted"),
            ("first_duplicate_cpu_ms", "first duplicate"),
            ("first_acted_kept_alive_cpu_ms", "first acted, connections kept alive"),
            ("warm_acted_cpu_ms", "warm acted"),
        ):
            rust, floor, python = (impls[name]["stats"][key]["median"] for name in ("rust", "sdk-floor", "python"))
            lines.append(
                f"| {function['layer']} | {label} | {_f(rust)} | {_f(floor)} | {_f(python)} | {_f(rust - floor)} "
                f"| 1/{python / rust:.1f} | 1/{python / floor:.1f} | {'yes' if same else 'no: see the requests below'} |"
            )
    return lines


def _run(command: list[str]) -> str:
    try:
        return subprocess.run(command, capture_output=True, text=True, check=False, timeout=10).stdout.strip()
    except OSError:
        return ""


def machine(args: argparse.Namespace) -> dict[str, Any]:
    """The facts a reader needs to weigh the figures."""
    cpu = ""
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory_kib = 0
    with open("/proc/meminfo") as info:
        for line in info:
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
    binaries = {}
    for path in sorted(args.binaries.glob("autoheal-*/bootstrap")):
        data = path.read_bytes()
        binaries[path.parent.name] = {
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest()[:16],
        }
    python = _run([args.python, "-c", "import sys, boto3, botocore, moto; print(sys.version.split()[0], boto3.__version__, botocore.__version__, moto.__version__)"]).split()
    repo = Path(__file__).resolve().parents[1]
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "kernel": platform.release(),
        "memory_mib": memory_kib // 1024,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": python[0] if python else platform.python_version(),
        "boto3": python[1] if len(python) > 1 else metadata.version("boto3"),
        "botocore": python[2] if len(python) > 2 else "",
        "moto": python[3] if len(python) > 3 else "",
        "commit": _run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"]),
        "binaries": binaries,
    }


# --- Markdown ----------------------------------------------------------------------------------


def _f(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def _range(stat: dict[str, float]) -> str:
    return f"{_f(stat['median'])} ({_f(stat['min'])}–{_f(stat['max'])})"


def _mib(kib: float) -> str:
    return f"{kib / 1024:.1f}"


def _ops(requests: dict[str, Any], exclude_dynamodb: bool = False) -> str:
    items = [
        f"{op} ×{n}" if n > 1 else op
        for op, n in requests["by_operation"].items()
        if not (exclude_dynamodb and op.startswith("dynamodb:"))
    ]
    return ", ".join(items) or "none"


def _by_service(requests: dict[str, Any]) -> str:
    services: Counter[str] = Counter()
    for operation, n in requests["by_operation"].items():
        services[operation.split(":", 1)[0]] += n
    ordered = sorted(services.items(), key=lambda item: (item[0] != "dynamodb", item[0]))
    return f"{requests['total']}: " + ", ".join(f"{service} {n}" for service, n in ordered)


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    s = results["settings"]
    lines = [
        "# autoheal benchmark: release binaries and a boto3 baseline under a local Lambda Runtime API",
        "",
        f"Machine: {m['cpu']}, {m['usable_cores']} of {m['cores']} cores usable, {m['memory_mib']} MiB, "
        f"Linux {m['kernel']}; 1-minute load average {m['load_average'][0]} at the start, "
        f"{results.get('load_average_at_end', ['?'])[0]} at the end. "
        f"Python {m['python']}, boto3 {m['boto3']}, moto {m['moto']} (the emulator, on 127.0.0.1). "
        f"Commit {m['commit']}. {s['cold_starts']} cold starts per function and implementation, "
        f"{s['warm']} warm acted events and {s['warm']} duplicates in one more process; "
        f"run time {results.get('seconds', 0):.0f} s.",
        "",
        "Times in ms as median (min–max). *init*: process spawned → its first "
        "`GET /runtime/invocation/next`. *first acted*: the first event of a fresh process (an ALARM "
        "the function acts on), from hand-out to posted result; *first duplicate*: the same event "
        "delivered again next. *warm*: median of the events after the first in one process. "
        "*outside the emulator*: the event's time less the time the emulator took to answer its "
        "requests (from the counting pass, below). *peak RSS*: VmHWM just before the kill, after "
        "the acted event and its duplicate. Requests: counted by a proxy in the counting pass.",
        "",
        "| function | impl | init | first acted | first acted, outside the emulator | first duplicate | warm acted | warm duplicate | peak RSS MiB | resident at the end, anon + file (the executable's) MiB | requests per acted event, by service | per duplicate |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for function in results["functions"]:
        for name, impl in function["implementations"].items():
            st = impl["stats"]
            req = impl["requests"]
            lines.append(
                f"| {function['layer']} | {name} | {_range(st['init_ms'])} | {_range(st['first_acted_ms'])} "
                f"| {_range(st['first_acted_own_ms'])} | {_range(st['first_duplicate_ms'])} | {_f(st['warm_acted_ms']['median'])} "
                f"| {_f(st['warm_duplicate_ms']['median'])} | {_mib(st['peak_rss_kib']['median'])} "
                f"({_mib(st['peak_rss_kib']['min'])}–{_mib(st['peak_rss_kib']['max'])}) "
                f"| {_mib(statistics.median(impl['rss_anon_kib']))} + {_mib(statistics.median(impl['rss_file_kib']))} "
                f"({_mib(statistics.median(impl['rss_executable_kib']))}) "
                f"| {_by_service(req['first_acted'])} | {_by_service(req['first_duplicate'])} |"
            )

    compared = [f for f in results["functions"] if {"rust", "python"} <= set(f["implementations"])]
    if compared:
        lines += [
            "",
            "## Rust against the boto3 baseline (medians)",
            "",
            "CPU time: on-CPU time of the process's threads (schedstat), from one "
            "`GET /next` to the next; unlike wall time it does not include waiting for the "
            "emulator, nor for cores taken by other work on the machine.",
            "",
            "| function | measure | Rust | Python | Rust / Python | target | met? |",
            "|---|---|---|---|---|---|---|",
        ]
        for function in compared:
            rust = function["implementations"]["rust"]["stats"]
            python = function["implementations"]["python"]["stats"]
            for key, label, unit in (
                ("init_ms", "init", "ms"),
                ("first_acted_ms", "first acted event", "ms"),
                ("first_duplicate_ms", "first duplicate", "ms"),
                ("warm_acted_ms", "warm acted event", "ms"),
                ("warm_duplicate_ms", "warm duplicate", "ms"),
                ("first_acted_own_ms", "first acted event, outside the emulator", "ms"),
                ("first_duplicate_own_ms", "first duplicate, outside the emulator", "ms"),
                ("warm_acted_own_ms", "warm acted event, outside the emulator", "ms"),
                ("warm_duplicate_own_ms", "warm duplicate, outside the emulator", "ms"),
                ("peak_rss_kib", "peak RSS", "MiB"),
                ("init_cpu_ms", "CPU time: init", "ms"),
                ("first_acted_cpu_ms", "CPU time: first acted event", "ms"),
                ("first_duplicate_cpu_ms", "CPU time: first duplicate", "ms"),
                ("first_acted_kept_alive_cpu_ms", "CPU time: first acted event, connections kept alive", "ms"),
                ("first_duplicate_kept_alive_cpu_ms", "CPU time: first duplicate, connections kept alive", "ms"),
                ("warm_acted_cpu_ms", "CPU time: warm acted event", "ms"),
                ("warm_duplicate_cpu_ms", "CPU time: warm duplicate", "ms"),
                ("cpu_ms", "CPU time: whole cold process", "ms"),
            ):
                r, p = rust[key]["median"], python[key]["median"]
                shown = (_mib(r), _mib(p)) if unit == "MiB" else (_f(r), _f(p))
                ratio = r / p if p else float("nan")
                target = TARGET_RATIOS.get(key) or REFERENCE_RATIOS.get(key)
                if target is None:
                    verdict, wanted = "", ""
                elif ratio <= target:
                    verdict, wanted = "yes", f"≤ 1/{round(1 / target)}"
                else:
                    verdict = f"no: 1/{1 / ratio:.1f}, {ratio / target:.1f}× the target"
                    wanted = f"≤ 1/{round(1 / target)}"
                lines.append(
                    f"| {function['layer']} | {label} | {shown[0]} {unit} | {shown[1]} {unit} "
                    f"| {ratio:.3f} ({f'1/{1 / ratio:.1f}' if ratio < 1 else f'{ratio:.1f}×'}) | {wanted} | {verdict} |"
                )

    lines += _floor_lines(results)
    lines += _sdk_floor_lines(results)
    lines += [
        "",
        "## AWS requests per event, and where the time goes",
        "",
        "Counted by the proxy (the first acted event and its duplicate of the first counted "
        "process; the warm ones are the last of its warm events). *in emulator*: the time the "
        "emulator took to answer them, measured at the proxy; *outside*: the event's time "
        "minus that, i.e. the function's own time plus the proxy's hops. Times are medians "
        "over the counted processes (warm: over the warm events of the first), each taken on "
        "its own, so they need not add up; the slowest operations are those of the event whose "
        "requests are listed.",
        "",
        "| function | impl | event | DynamoDB requests | all requests | event ms | in emulator ms | outside ms | slowest in the emulator (ms) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for function in results["functions"]:
        for name, impl in function["implementations"].items():
            req = impl["requests"]
            st = impl["stats"]
            rows = [
                ("first acted", req["first_acted"], "first_acted"),
                ("first duplicate", req["first_duplicate"], "first_duplicate"),
                ("warm acted", req["warm_acted"][-1] if req["warm_acted"] else None, "warm_acted"),
                ("warm duplicate", req["warm_duplicate"][-1] if req["warm_duplicate"] else None, "warm_duplicate"),
            ]
            for label, r, key in rows:
                if r is None:
                    continue
                dynamo = {op: n for op, n in r["by_operation"].items() if op.startswith("dynamodb:")}
                dynamo_text = ", ".join(f"{op.split(':')[1]}{' ×' + str(n) if n > 1 else ''}" for op, n in dynamo.items())
                own = st[f"{key}_own_ms"]["median"]
                emulator = impl["emulator_ms"][key]
                slowest = sorted(r["emulator_ms_by_operation"].items(), key=lambda item: -item[1])[:3]
                lines.append(
                    f"| {function['layer']} | {name} | {label} | {r['dynamodb']}: {dynamo_text} | {r['total']}: {_ops(r)} "
                    f"| {_f(impl['counted_event_ms'][key])} | {_f(emulator)} | {_f(own)} "
                    f"| {', '.join(f'{op} {ms:.1f}' for op, ms in slowest)} |"
                )
    lines += ["", "Request targets: at most "
              f"{TARGET_DYNAMODB['acted']} DynamoDB requests per acted event, {TARGET_DYNAMODB['duplicate']} per duplicate.", ""]
    for function in results["functions"]:
        for name, impl in function["implementations"].items():
            verdicts = []
            for kind in ("acted", "duplicate"):
                seen = impl["requests"][f"first_{kind}"]["dynamodb"]
                limit = TARGET_DYNAMODB[kind]
                verdict = "met" if seen <= limit else f"missed by {seen - limit}"
                verdicts.append(f"{seen} per {kind} event ({verdict})")
            lines.append(f"- {function['layer']} ({name}): " + ", ".join(verdicts) + ".")
    lines.append("")
    return "\n".join(lines)
