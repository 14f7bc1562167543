"""Benchmark of autoheal's Lambda functions, side by side with a boto3 baseline.

    python bench/run.py [--binaries DIR] [--results DIR] [--cold-starts 10] [--warm 100]
                        [--functions infrastructure,platform,...]

Each function's release binary (DIR/autoheal-<layer>/bootstrap, from `make lambda`) and, where
there is one, its Python boto3 baseline (bench/baseline/) run as Lambda would run them, under a
local Runtime API, against the AWS emulator on 127.0.0.1. Per function and implementation:
an unmeasured warm-up process (it warms the emulator and the page cache for both alike), then
COLD-STARTS processes, each given a fresh acted event and its duplicate, the implementations
alternating; one process that serves WARM more of each after its first pair; then the cold
starts again behind a counting proxy, for the AWS requests of each event and the share of its
time the emulator took. Before them, the bare runtime (bench/bare-runtime: `lambda_runtime` echoing
its event, built with the same profile) starts as many times: the floor each function's init and
peak RSS are compared with. Beside the infrastructure function and its baseline, the SDK's floor
(bench/sdk-floor: the same requests with the same clients, and nothing else) runs as a third
implementation: what the requests alone cost the Rust SDK. The results go to RESULTS/bench.md and
RESULTS/bench.json; the functions' and the emulator's logs to RESULTS/logs/.

Needs a Python with boto3 and moto[server] (the project's .venv: `make tools`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import harness
import report
import scenarios
from emulator import CountingProxy, Emulator
from harness import Implementation, ProcessResult

BENCH = Path(__file__).resolve().parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR") or Path.home() / ".cache" / "autoheal-target")
# In the counting pass, the first process of each implementation serves this many more acted
# events and duplicates after its first pair (requests per event should not change once warm).
COUNTED_WARM = 10
# The floor the functions are measured against: a bare `lambda_runtime` echo (bench/bare-runtime).
FLOOR = "autoheal-bare-runtime"
# The SDK's floor: the infrastructure baseline's requests with the Rust SDK and nothing else
# (bench/sdk-floor), for the function whose baseline that is.
SDK_FLOOR = "autoheal-sdk-floor"
SDK_FLOOR_BASELINE = "infrastructure"
# The bare runtime calls no AWS endpoint; the address it is given answers nothing.
UNREACHABLE = "http://127.0.0.1:9"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binaries", type=Path, default=TARGET / "lambda", help="the release bootstraps' directory (default: $CARGO_TARGET_DIR/lambda)")
    parser.add_argument("--results", type=Path, default=TARGET / "bench", help="where the table, the JSON and the logs go (default: $CARGO_TARGET_DIR/bench)")
    parser.add_argument("--cold-starts", type=int, default=10, help="measured cold starts per function and implementation (default: 10)")
    parser.add_argument("--warm", type=int, default=100, help="warm acted events (and as many duplicates) after the first (default: 100)")
    parser.add_argument("--functions", default=",".join(scenarios.SCENARIOS), help="comma-separated layers (default: all)")
    parser.add_argument("--python", default=sys.executable, help="the Python that runs the emulator and the baseline (default: this one)")
    args = parser.parse_args()
    if args.cold_starts < 1 or args.warm < 0:
        parser.error("--cold-starts must be at least 1 and --warm at least 0")
    return args


def implementations(args: argparse.Namespace, scenario: scenarios.Scenario) -> list[Implementation]:
    function = f"autoheal-{scenario.layer}"
    binary = args.binaries / function / "bootstrap"
    if not binary.is_file():
        sys.exit(f"{binary} is missing: build the release binaries first (make lambda)")
    found = [Implementation("rust", function, [str(binary)])]
    if scenario.baseline:
        baseline = BENCH / "baseline"
        found.append(Implementation("python", function, [args.python, str(baseline / "bootstrap.py"), scenario.baseline]))
    if scenario.baseline == SDK_FLOOR_BASELINE:
        # The baseline's requests with the Rust SDK: run as the function, under its name.
        floor = args.binaries / SDK_FLOOR / "bootstrap"
        if not floor.is_file():
            sys.exit(f"{floor} is missing: build it first (make bench builds it)")
        found.append(Implementation("sdk-floor", function, [str(floor)]))
    return found


def deliveries(
    scenario: scenarios.Scenario, resources: Iterator[str], warm: int, endpoint: str
) -> list[tuple[str, dict[str, Any]]]:
    """A fresh acted event and its duplicate (same event, same id), `warm` + 1 times; each
    event's alarm fired in CloudWatch first, as it would have been."""
    events = []
    for _ in range(warm + 1):
        event = scenario.event(next(resources), str(uuid.uuid4()))
        scenarios.fire(endpoint, event)
        events += [("acted", event), ("duplicate", event)]
    return events


def bench_floor(args: argparse.Namespace, logs: Path) -> dict[str, Any]:
    """The bare runtime (bench/bare-runtime): the same cold starts, each answering the
    infrastructure function's acted event with the event itself. No emulator: it calls
    nothing."""
    binary = args.binaries / FLOOR / "bootstrap"
    if not binary.is_file():
        sys.exit(f"{binary} is missing: build it first (make bench builds it)")
    floor = Implementation("bare", FLOOR, [str(binary)])
    event = scenarios.sample_event("ec2-instance-healing.alarm.json")

    def run() -> ProcessResult:
        return harness.run_process(floor, {}, UNREACHABLE, [("echo", event)], logs / "bare-runtime.log")

    run()  # warm-up, not measured
    cold = [run() for _ in range(args.cold_starts)]
    print(f"bare runtime: {args.cold_starts} cold starts", flush=True)
    return report.summarize_floor(cold)


def bench_function(args: argparse.Namespace, scenario: scenarios.Scenario, logs: Path) -> dict[str, Any]:
    impls = implementations(args, scenario)
    # Fresh resources per implementation: warm-up, cold starts, warm series, counting pass.
    per_impl = 1 + args.cold_starts + (1 + args.warm) + (args.cold_starts + COUNTED_WARM)
    emulator = Emulator(args.python, scenario.shims, logs / f"{scenario.layer}-emulator.log").start()
    proxy: CountingProxy | None = None
    try:
        deployment = scenarios.Deployment.bootstrap(emulator.url)
        configuration = deployment.environment(scenario.layer, scenarios.bench_rules(args.results))
        configuration.update(scenario.environment)
        empty_table = deployment.emptier(emulator.url)
        print(f"{scenario.layer}: preparing {per_impl * len(impls)} resources", flush=True)
        made = scenario.prepare(emulator.url, per_impl * len(impls))
        pools = {impl.name: iter(made[i * per_impl : (i + 1) * per_impl]) for i, impl in enumerate(impls)}

        def run(impl: Implementation, more: int, counting: CountingProxy | None = None) -> ProcessResult:
            return harness.run_process(
                impl,
                configuration,
                emulator.url,
                deliveries(scenario, pools[impl.name], more, emulator.url),
                logs / f"{scenario.layer}-{impl.name}.log",
                counting,
                empty_table,
            )

        for impl in impls:
            run(impl, 0)  # warm-up, not measured
        cold: dict[str, list[ProcessResult]] = {impl.name: [] for impl in impls}
        for round_ in range(args.cold_starts):
            # Alternate who goes first, so that neither always meets the emulator just after
            # the other.
            order = impls if round_ % 2 == 0 else impls[::-1]
            for impl in order:
                cold[impl.name].append(run(impl, 0))
            print(f"{scenario.layer}: cold start {round_ + 1}/{args.cold_starts}", flush=True)
        # The warm series in a process of its own, so every cold process serves the same two
        # events and its peak RSS is comparable.
        series = {impl.name: run(impl, args.warm) for impl in impls}
        print(f"{scenario.layer}: warm series done", flush=True)
        # The same cold starts again behind the counting proxy: the requests of each event, and
        # how much of its time the emulator took to answer them.
        proxy = CountingProxy(emulator.port).start()
        counted: dict[str, list[ProcessResult]] = {impl.name: [] for impl in impls}
        for round_ in range(args.cold_starts):
            for impl in impls if round_ % 2 == 0 else impls[::-1]:
                counted[impl.name].append(run(impl, COUNTED_WARM if round_ == 0 else 0, proxy))
        print(f"{scenario.layer}: counting pass done", flush=True)
    finally:
        if proxy:
            proxy.stop()
        emulator.stop()
    return {
        "layer": scenario.layer,
        "rule": scenario.rule,
        "action": scenario.action,
        "implementations": {
            name: report.summarize(cold[name], series[name], counted[name]) for name in cold
        },
    }


def main() -> None:
    args = parse_args()
    chosen = scenarios.chosen(args.functions)
    args.results.mkdir(parents=True, exist_ok=True)
    logs = args.results / "logs"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir()
    started = time.time()
    results = {
        "machine": report.machine(args),
        "settings": {"cold_starts": args.cold_starts, "warm": args.warm, "counted_warm": COUNTED_WARM},
        "functions": [],
    }
    results["floor"] = bench_floor(args, logs)
    for name in chosen:
        results["functions"].append(bench_function(args, scenarios.SCENARIOS[name], logs))
    results["seconds"] = round(time.time() - started, 1)
    results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    table = report.markdown(results)
    (args.results / "bench.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.results / "bench.md").write_text(table)
    print(table)
    print(f"written: {args.results / 'bench.md'}, {args.results / 'bench.json'}")


if __name__ == "__main__":
    main()
