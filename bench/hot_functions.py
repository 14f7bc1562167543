"""The functions each release binary runs on its way to its first answers, for the link to lay
them out together (functions/release-link/hot-functions.txt).

    python bench/hot_functions.py --binaries DIR [--warm 3] [--functions infrastructure,...]
                                  [--output functions/release-link/hot-functions.txt]

DIR holds release binaries that kept their symbols (`make hot-functions` builds them with
RUSTFLAGS that keep the symbols and give the processor cargo-lambda would: the same code and
the same symbols as the stripped build's). Each
function runs once as the benchmark runs it (bench/run.py: the local Runtime API, the
emulator, the same scenario): its init, a fresh acted event and its duplicate, WARM more of
each, under valgrind's callgrind, which records every function that runs at least one
instruction. The names from every function's run are written sorted to OUTPUT, each Rust
symbol of the legacy mangling without the hash it ends with where that name stands for few
symbols (the hash changes with the compiler and the dependencies' versions; the standard
library's symbols, mangled the v0 way, keep theirs and match the compiler that wrote the
list), and each numbered local copy that fat LTO made of a function (`.110`, renumbered at
any change to the program) up to the dot. The link (functions/release-link/build.rs) places
the code of each before the rest, so that the pages a start-up and its first events touch
are few and together.

Needs valgrind, and the project's .venv (the emulator and boto3: `make tools`).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Container

import harness
import run
import scenarios
from emulator import Emulator
from harness import Implementation

REPOSITORY = run.BENCH.parent
DEFAULT_OUTPUT = REPOSITORY / "functions" / "release-link" / "hot-functions.txt"
# A legacy-mangled Rust symbol ends with the hash of its crate and instance: `17h` and 16
# hexadecimal digits, then `E` (and a number, where fat LTO renamed a local copy). The list
# keeps what comes before the digits: the link matches the rest with a wildcard.
HASHED = re.compile(r"^(_ZN.*17h)[0-9a-f]{16}E(\.[0-9]+)?$")
# Fat LTO names the local copies it keeps of a function with a number (`.110`), and numbers
# them again at any change to the program: the list names them up to the dot, which the link
# matches with a wildcard (every copy of that function).
NUMBERED = re.compile(r"^(.*\.)[0-9]+$")
# A generic function's instances share their name up to the hash (`<&T as Debug>::fmt` has
# over a thousand): where the instances that did not run would bring more than this many bytes
# of code into the hot part, the list names those that ran, hash and all, instead. Those are
# matched only by a build from the same compiler and dependencies; after a change they are
# laid out with the rest.
MAX_BYTES_NOT_RUN = 2048
# callgrind's mark of a recursive call's level (`'2`), after the symbol.
RECURSION = re.compile(r"'[0-9]+$")
# What a symbol of the binary's code is made of (legacy and v0 mangling, C names); callgrind
# also names code it found no symbol for, as `(below main)`.
SYMBOL = re.compile(r"^[A-Za-z0-9_.$]+$")
# How long valgrind may take to write its profile once the Runtime API has gone away.
EXIT_SECONDS = 120.0
# What runs on Lambda's processors in place of what ran under valgrind, whose simulated
# processor has no SHA extensions: there each request's signature hashes with sha2's portable
# rounds, and on x86-64 with SHA-NI or on Graviton with the Armv8 SHA-2 instructions with
# functions of their own, which a profile never shows. Left out, they sat with the rest of the
# code, and the first signature touched each one's page and the 64 kB the kernel maps around
# it (three such pages: 0.2 MiB of the infrastructure function's peak RSS, seen from its page
# faults). Listed whenever SHA-256 ran: the binary's own, and by name the arm64 one that an
# x86-64 binary does not have.
SHA256 = "_ZN4sha26sha256"
SHA256_HARDWARE = re.compile(r"^_ZN4sha26sha256(7x86_sha|12aarch64_sha2)")
SHA256_HARDWARE_ARM64 = ["_ZN4sha26sha25612aarch64_sha22rk17h"]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binaries", type=Path, required=True, help="release bootstraps with their symbols (DIR/autoheal-<layer>/bootstrap)")
    parser.add_argument("--warm", type=int, default=3, help="acted events (and duplicates) after the first (default: 3)")
    parser.add_argument("--functions", default=",".join(scenarios.SCENARIOS), help="comma-separated layers (default: all)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help=f"the list to write (default: {DEFAULT_OUTPUT.relative_to(REPOSITORY)})")
    parser.add_argument("--python", default=sys.executable, help="the Python that runs the emulator (default: this one)")
    parser.add_argument("--ran", type=Path, help="where to write each layer's functions that ran, whole (DIR/autoheal-<layer>.txt, for bench/link_order.py)")
    return parser.parse_args()


def profile(args: argparse.Namespace, scenario: scenarios.Scenario, work: Path) -> Path:
    """Runs the layer's function once under callgrind; returns its profile."""
    function = f"autoheal-{scenario.layer}"
    binary = args.binaries / function / "bootstrap"
    if not binary.is_file():
        sys.exit(f"{binary} is missing: build the release binaries with their symbols first (make hot-functions)")
    out = work / f"{scenario.layer}.callgrind"
    written = work / f"{scenario.layer}.written"
    # The harness ends a process with SIGKILL, which would lose the profile: valgrind runs in
    # a subshell behind the shell it kills instead, and ends when the Runtime API stops
    # answering (the runtime's loop returns its error), writing the profile as it exits; the
    # subshell then marks it written.
    command = (
        f"(valgrind --tool=callgrind --demangle=no --compress-strings=no --compress-pos=no "
        f"--callgrind-out-file={out} {binary}; touch {written}) & wait"
    )
    implementation = Implementation("callgrind", function, ["/bin/sh", "-c", command])
    emulator = Emulator(args.python, scenario.shims, work / f"{scenario.layer}-emulator.log").start()
    try:
        deployment = scenarios.Deployment.bootstrap(emulator.url)
        configuration = deployment.environment(scenario.layer, scenarios.bench_rules(work))
        configuration.update(scenario.environment)
        resources = iter(scenario.prepare(emulator.url, args.warm + 1))
        harness.run_process(
            implementation,
            configuration,
            emulator.url,
            run.deliveries(scenario, resources, args.warm, emulator.url),
            work / f"{scenario.layer}.log",
            None,
            deployment.emptier(emulator.url),
            timeout=600.0,
        )
        deadline = time.monotonic() + EXIT_SECONDS
        while not written.is_file() and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        emulator.stop()
    if not (written.is_file() and out.is_file()):
        sys.exit(f"{scenario.layer}: callgrind wrote no profile: see {work / (scenario.layer + '.log')}")
    return out


def functions_run(profile_path: Path, symbols: Container[str]) -> set[str]:
    """The binary's function symbols that a callgrind profile (uncompressed names) shows
    running: every `fn=` block is a function that ran at least one instruction. The names
    are checked against the binary's own symbols rather than the profile's object, which
    valgrind gives as unknown for code outside the binary's `.text`."""
    names: set[str] = set()
    for line in profile_path.read_text(errors="replace").splitlines():
        if line.startswith("fn="):
            name = RECURSION.sub("", line[3:].strip())
            if name in symbols:
                names.add(name)
    return names


def function_symbols(binary: Path) -> dict[str, int]:
    """The binary's function symbols (`nm`) that a pattern of the link's script can name, and
    the size of each's code."""
    listed = subprocess.run(
        ["nm", "--defined-only", "--print-size", str(binary)], capture_output=True, text=True, check=True
    )
    symbols = {}
    for line in listed.stdout.splitlines():
        fields = line.split()
        if len(fields) == 4 and fields[2] in "tTwW" and SYMBOL.match(fields[3]):
            symbols[fields[3]] = int(fields[1], 16)
    return symbols


def with_hardware_twins(ran: set[str], symbols: Container[str]) -> set[str]:
    """`ran` and, where SHA-256 ran, the binary's functions that hash with the processor's
    SHA instructions in its place (SHA256_HARDWARE)."""
    if not any(name.startswith(SHA256) for name in ran):
        return ran
    return ran | {symbol for symbol in symbols if SHA256_HARDWARE.match(symbol)}


def listed_names(ran: set[str], symbols: dict[str, int]) -> set[str]:
    """The list's lines for the symbols that ran: a name without its hash, unless the
    instances it also stands for that did not run are large; then the symbols themselves."""
    not_run: Counter[str] = Counter()
    for symbol, size in symbols.items():
        if symbol not in ran:
            not_run[family(symbol)] += size
    listed = set()
    for symbol in ran:
        name = family(symbol)
        listed.add(name if not_run[name] <= MAX_BYTES_NOT_RUN else NUMBERED.sub(r"\1", symbol))
    return listed


def family(symbol: str) -> str:
    """The name a symbol is listed by where it stands for few: a legacy Rust symbol without its
    hash, another up to the dot of a local copy's number."""
    name = HASHED.sub(r"\1", symbol)
    return name if name != symbol else NUMBERED.sub(r"\1", symbol)


def main() -> None:
    args = parse_args()
    chosen = scenarios.chosen(args.functions)
    if subprocess.run(["valgrind", "--version"], capture_output=True).returncode != 0:
        sys.exit("valgrind is needed (Debian's package valgrind)")
    names: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="hot-functions-") as scratch:
        for layer in chosen:
            symbols = function_symbols(args.binaries / f"autoheal-{layer}" / "bootstrap")
            if not symbols:
                sys.exit(f"{layer}: the binary has no symbols: build it with RUSTFLAGS='-C strip=none' (make hot-functions)")
            ran = functions_run(profile(args, scenarios.SCENARIOS[layer], Path(scratch)), symbols)
            if not ran:
                sys.exit(f"{layer}: no function of the binary in its profile")
            ran = with_hardware_twins(ran, symbols)
            print(f"{layer}: {len(ran)} functions", flush=True)
            names |= listed_names(ran, symbols)
            if any(name.startswith(SHA256) for name in ran):
                names |= set(SHA256_HARDWARE_ARM64)
            if args.ran:
                args.ran.mkdir(parents=True, exist_ok=True)
                (args.ran / f"autoheal-{layer}.txt").write_text("\n".join(sorted(ran)) + "\n")
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    header = [
        "# The functions the release functions run from their start to their first answers, laid",
        "# out together at the link (functions/release-link/build.rs). Written by",
        "# bench/hot_functions.py (make hot-functions): do not edit by hand. One symbol per line,",
        "# most without their mangling's hash; a name no longer in the program matches nothing.",
        f"# Layers: {', '.join(chosen)}; {args.warm + 1} acted events and duplicates each; {rustc}.",
    ]
    args.output.write_text("\n".join(header + sorted(names)) + "\n")
    print(f"written: {args.output} ({len(names)} functions)")


if __name__ == "__main__":
    main()
